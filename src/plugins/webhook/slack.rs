//! Slack: post each event to an incoming webhook as `text` (the notification preview) plus Block Kit blocks.
//!
//! `text` is always set: Slack shows it in notifications and wherever blocks cannot be
//! drawn. User strings are escaped for mrkdwn (`&`, `<`, `>`), so data can neither ping
//! (`<!channel>`) nor forge links; the section is `verbatim` so Slack does not auto-link
//! mentions in it either. Slack answers errors in plain words (`no_service`,
//! `channel_not_found`, ...), mapped here to what the user must fix. The webhook URL is
//! the secret: it is in the redactor, and `Debug` shows only its host.

use std::fmt;

use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::discord::poster;
use crate::event::Event;
use crate::http::{self, AddressPolicy, Redactor, Reply, RetryPolicy};
use crate::plugins::notification::text::truncate_chars;
use crate::plugins::{
    ConnectionReport, Delivered, Plugin, PluginContext, PluginError, PluginInfo, WebhookPlugin,
};

mod blocks;
mod config;

use blocks::header;
pub use blocks::{
    escape, message, templated_message, MAX_BLOCKS, MAX_FIELDS, MAX_FIELD_CHARS, MAX_HEADER_CHARS,
    MAX_SECTION_CHARS, MAX_TEXT_CHARS,
};
pub(crate) use config::config_schema;
pub use config::SlackConfig;
use config::{parse_webhook_url, MAX_RETRIES};

/// How much of Slack's own error text goes into an error reason, in characters.
const MAX_SAID_CHARS: usize = 300;

/// The Slack plugin: one incoming webhook.
pub struct Slack {
    url: reqwest::Url,
    retry: RetryPolicy,
    redactor: Redactor,
    allow_private_network: bool,
    templates: Option<std::sync::Arc<crate::message::Templates>>,
}

impl Slack {
    /// A plugin for a validated config. Fails (`Misconfigured`) only without a usable
    /// http(s) `webhook_url`; whether `http://` is allowed is the config validation's call.
    pub fn new(config: SlackConfig) -> Result<Self, PluginError> {
        let bad = |reason: String| PluginError::Misconfigured {
            status: None,
            reason,
        };
        let secret = config
            .webhook_url
            .as_ref()
            .map(|u| u.expose_secret().trim())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| bad("slack needs a `webhook_url`".to_owned()))?;
        let url = parse_webhook_url(secret, true)
            .map_err(|why| bad(format!("slack `webhook_url` {why}")))?;
        let mut redactor = Redactor::new().with(secret).with(url.as_str());
        // The secret part of the URL on its own, as a service might echo it: the path
        // (`/services/T…/B…/<secret>`), its last segment, and any query.
        let last = url.path_segments().and_then(|mut s| s.next_back());
        for part in [Some(url.path()), last, url.query()].into_iter().flatten() {
            if part.len() >= 8 {
                redactor.add(part);
            }
        }
        let retry = RetryPolicy {
            max_attempts: config.retries.min(MAX_RETRIES) + 1,
            ..RetryPolicy::default()
        };
        Ok(Slack {
            url,
            retry,
            redactor,
            allow_private_network: config.allow_private_network,
            templates: config.templates,
        })
    }

    /// The same plugin with another retry policy (tests use tiny backoffs).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The JSON body posted for `event`: `text` plus a header, a section (with the poster
    /// beside it when the event has one) and a context line with the time and link.
    pub fn payload(&self, event: &Event) -> Value {
        self.message(event, poster(event).as_deref())
    }

    fn message(&self, event: &Event, poster: Option<&str>) -> Value {
        templated_message(event, poster, self.templates.as_deref())
    }

    /// POST `body`, retrying transient failures; Slack's answers judged by [`judge`].
    async fn post(&self, cx: &PluginContext, body: &Value) -> Result<Reply, PluginError> {
        let redactor = &self.redactor;
        http::retry(&self.retry, |_| {
            let request = cx.http.post(self.url.clone()).json(body);
            async move {
                let reply = cx.http.fetch(request, redactor).await?;
                judge(&reply, redactor)?;
                Ok(reply)
            }
        })
        .await
    }
}

impl fmt::Debug for Slack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slack")
            .field("host", &self.url.host_str())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Slack's answer → `Ok` or a classified error naming what to fix. Slack answers errors
/// as plain words; those that mean the webhook itself is unusable are `Misconfigured`
/// whatever the status, and 403/404/410 are too (via [`http::classify`]).
fn judge(reply: &Reply, redactor: &Redactor) -> Result<(), PluginError> {
    let Err(err) = http::classify(reply.status, &reply.headers, &reply.body, redactor) else {
        return Ok(());
    };
    let said = http::service_error_text(&reply.body)
        .map(|t| redactor.redact(&truncate_chars(&t, MAX_SAID_CHARS)))
        .map(|t| format!(" (Slack said: {t})"))
        .unwrap_or_default();
    let status = reply.status;
    let code = Some(status.as_u16());
    let fix = if status.is_client_error() {
        webhook_problem(reply.body.trim())
    } else {
        None
    };
    Err(match (fix, err) {
        (Some(fix), _) => PluginError::Misconfigured {
            status: code,
            reason: format!("{status}: {fix}{said}"),
        },
        (None, PluginError::Misconfigured { .. }) if status.is_client_error() => {
            PluginError::Misconfigured {
                status: code,
                reason: format!(
                    "{status}: Slack refused this webhook; check webhook_url, or create a new \
                     incoming webhook{said}"
                ),
            }
        }
        (None, PluginError::Rejected { .. }) => PluginError::Rejected {
            status: code,
            reason: format!("{status}: Slack refused the message{said}"),
        },
        (None, other) => other,
    })
}

/// What to fix for Slack's error words that mean the webhook cannot post at all.
fn webhook_problem(said: &str) -> Option<&'static str> {
    Some(match said {
        "no_service" | "no_active_hooks" | "invalid_token" => {
            "Slack says this webhook is disabled, removed or invalid; create a new incoming \
             webhook (your Slack app → Incoming Webhooks) and set webhook_url to it"
        }
        "no_team" | "team_disabled" => "the Slack workspace of this webhook is gone or disabled",
        "channel_not_found" | "user_not_found" => {
            "the webhook's channel no longer exists; create a webhook for another channel"
        }
        "channel_is_archived" => {
            "the webhook's channel is archived; unarchive it or create a webhook for another channel"
        }
        "action_prohibited" => {
            "a workspace admin has restricted posting to the webhook's channel"
        }
        "posting_to_general_channel_denied" => {
            "only admins may post to the webhook's channel; pick another channel"
        }
        _ => return None,
    })
}

/// A refusal that may be the poster: Slack fetches image URLs while checking the blocks
/// and refuses the whole message when it cannot.
fn is_block_refusal(err: &PluginError) -> bool {
    matches!(err, PluginError::Rejected { status: Some(400), reason } if reason.contains("invalid_blocks"))
}

impl Plugin for Slack {
    fn address_policy(&self) -> AddressPolicy {
        AddressPolicy::from_allow_private(self.allow_private_network)
    }

    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: "Slack",
            description: "Post each event to a Slack channel through an incoming webhook",
            version: env!("CARGO_PKG_VERSION"),
            config_schema: config_schema(),
        }
    }

    /// Sends a real, clearly labelled test message: Slack offers no check without posting.
    async fn test_connection(&self, cx: &PluginContext) -> Result<ConnectionReport, PluginError> {
        let text = "If you can read this, Mydia can post to this channel. This is a test \
                    message from mydia-plugins; nothing happened in your library.";
        let body = json!({
            "text": "Mydia test message",
            "blocks": [
                header("Mydia test message"),
                {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            ],
        });
        let reply = self.post(cx, &body).await?;
        Ok(ConnectionReport {
            detail: format!(
                "Slack accepted a test message ({}): look for \"Mydia test message\" in the \
                 webhook's channel (Slack webhooks offer no check without posting)",
                reply.status
            ),
            sent_message: true,
        })
    }
}

impl WebhookPlugin for Slack {
    async fn send_webhook(
        &self,
        cx: &PluginContext,
        event: &Event,
    ) -> Result<Delivered, PluginError> {
        let poster = poster(event);
        let reply = match self.post(cx, &self.message(event, poster.as_deref())).await {
            Err(err) if poster.is_some() && is_block_refusal(&err) => {
                tracing::debug!(plugin = %cx.instance, event = %event.name, error = %err,
                    "Slack refused the blocks, perhaps the poster it could not fetch; resending without it");
                self.post(cx, &self.message(event, None)).await?
            }
            result => result?,
        };
        tracing::debug!(plugin = %cx.instance, event = %event.name, "posted to Slack");
        Ok(Delivered {
            detail: reply.status.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use reqwest::header::HeaderMap;
    use reqwest::StatusCode;
    use secrecy::SecretString;

    const URL: &str = "https://hooks.slack.com/services/T000/B000/sk_DEBUGCANARY0123";

    fn slack(url: &str) -> Slack {
        Slack::new(SlackConfig {
            webhook_url: Some(SecretString::from(url)),
            ..SlackConfig::default()
        })
        .expect("valid config")
    }

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.to_owned(),
        }
    }

    #[test]
    fn slacks_error_words_say_what_to_fix() {
        let r = Redactor::new();
        let cases = [
            (404, "no_service", "disabled, removed or invalid"),
            (400, "no_service", "disabled, removed or invalid"),
            (403, "invalid_token", "disabled, removed or invalid"),
            (404, "channel_not_found", "channel no longer exists"),
            (410, "channel_is_archived", "channel is archived"),
            (403, "action_prohibited", "restricted posting"),
            (403, "posting_to_general_channel_denied", "only admins"),
            (403, "something_new", "Slack refused this webhook"),
            (401, "", "Slack refused this webhook"),
        ];
        for (status, body, says) in cases {
            let err = judge(&reply(status, body), &r).unwrap_err();
            assert!(
                matches!(err, PluginError::Misconfigured { status: Some(s), .. } if s == status),
                "{status} {body}: {err:?}"
            );
            let text = err.to_string();
            assert!(text.contains(says), "{text}");
            if !body.is_empty() {
                assert!(text.contains(&format!("(Slack said: {body})")), "{text}");
            }
        }
        let err = judge(&reply(400, "invalid_payload"), &r).unwrap_err();
        assert_eq!(
            err,
            PluginError::Rejected {
                status: Some(400),
                reason: "400 Bad Request: Slack refused the message (Slack said: invalid_payload)"
                    .into()
            }
        );
        assert!(!is_block_refusal(&err));
        assert!(is_block_refusal(
            &judge(&reply(400, "invalid_blocks"), &r).unwrap_err()
        ));
        assert!(judge(&reply(500, "rollup_error"), &r)
            .unwrap_err()
            .is_transient());
        assert_eq!(judge(&reply(200, "ok"), &r), Ok(()));
    }

    #[test]
    fn debug_output_and_redactor_hide_the_secret() {
        let plugin = slack(URL);
        let shown = format!("{plugin:?}");
        assert!(!shown.contains("DEBUGCANARY"), "{shown}");
        assert!(shown.contains("hooks.slack.com"), "{shown}");
        for echo in [
            URL.to_owned(),
            "/services/T000/B000/sk_DEBUGCANARY0123".to_owned(),
            "secret sk_DEBUGCANARY0123 refused".to_owned(),
        ] {
            let redacted = plugin.redactor.redact(&echo);
            assert!(!redacted.contains("DEBUGCANARY"), "{redacted}");
        }
        // Short path parts are not secrets: redacting them would garble every message.
        let plain = slack("https://chat.example.com/x");
        assert_eq!(plain.redactor.redact("x marks /x"), "x marks /x");
    }

    #[test]
    fn unusable_urls_are_refused_without_echoing_them() {
        for bad in [None, Some(" "), Some("sk_DEBUGCANARY0123")] {
            let err = Slack::new(SlackConfig {
                webhook_url: bad.map(SecretString::from),
                ..SlackConfig::default()
            })
            .unwrap_err();
            assert!(matches!(err, PluginError::Misconfigured { .. }), "{err:?}");
            assert!(!format!("{err} {err:?}").contains("DEBUGCANARY"), "{err}");
        }
    }

    #[test]
    fn payload_shows_a_web_poster_beside_the_text() {
        let plugin = slack(URL);
        let ev = Event::new(
            EventName::AfterMediaAdded,
            json!({"media_item": {"title": "Dune", "poster_url": "https://image.tmdb.org/p.jpg"}})
                .as_object()
                .cloned()
                .unwrap(),
        );
        let body = plugin.payload(&ev);
        assert_eq!(
            body["blocks"][1]["accessory"]["image_url"],
            "https://image.tmdb.org/p.jpg"
        );
        assert_eq!(body["text"], "Media added: Dune");
    }

    #[test]
    fn info_describes_the_plugin() {
        let info = slack(URL).info();
        assert_eq!(info.name, "Slack");
        assert_eq!(info.config_schema["required"], json!(["webhook_url"]));
    }

    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let plugin = slack(URL);
        let cx = PluginContext {
            instance: "slack".into(),
            http: http::new_client(http::AddressPolicy::AllowPrivate),
        };
        let ev = Event::new(EventName::AfterMediaAdded, Default::default());
        assert_send(plugin.send_webhook(&cx, &ev));
        assert_send(plugin.test_connection(&cx));
    }
}
