//! Discord: post an embed per event to a channel's incoming webhook (`?wait=true`, mentions off).
//!
//! We post with `wait=true` so Discord answers only once the message is saved: without
//! it, a message Discord drops still gets a 204. `allowed_mentions` always has an empty
//! `parse` list, so nothing in event data (an `@everyone` in a title) can ping anyone;
//! only a configured `mention_role_id` is ever pinged. The webhook URL holds the token:
//! it is in the redactor, and `Debug` shows only the webhook id.

use std::fmt;

use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::event::Event;
use crate::http::{self, AddressPolicy, Redactor, Reply, RetryPolicy};
use crate::plugins::notification::text::{one_line, truncate_chars};
use crate::plugins::{
    ConnectionReport, Delivered, Plugin, PluginContext, PluginError, PluginInfo, WebhookPlugin,
};

mod answer;
mod bucket;
mod config;
mod embed;

use answer::judge;
pub(crate) use config::config_schema;
pub use config::DiscordConfig;
use config::{is_snowflake, parse_webhook_url, MAX_RETRIES};
pub use embed::{
    counted_chars, embed, escape_markdown, overview, poster, templated_embed,
    MAX_DESCRIPTION_CHARS, MAX_EMBEDS_TOTAL_CHARS, MAX_FIELD_VALUE_CHARS, MAX_TITLE_CHARS,
};

/// The Discord plugin: one incoming webhook.
pub struct Discord {
    config: DiscordConfig,
    webhook_id: String,
    /// The webhook URL with `wait=true` added to its query (`thread_id` kept).
    execute_url: reqwest::Url,
    /// The bare webhook URL, for the side-effect-free `GET`.
    info_url: reqwest::Url,
    retry: RetryPolicy,
    redactor: Redactor,
    bucket: bucket::Bucket,
}

impl Discord {
    /// A plugin for a validated config. Fails (`Misconfigured`) only on what it cannot work
    /// without: a webhook URL with Discord's `/api/webhooks/<id>/<token>` path, and a
    /// numeric `mention_role_id` when one is set. Whether `http://` is allowed is the
    /// config validation's call.
    pub fn new(config: DiscordConfig) -> Result<Self, PluginError> {
        let bad = |reason: String| PluginError::Misconfigured {
            status: None,
            reason,
        };
        let secret = config
            .webhook_url
            .as_ref()
            .map(|u| u.expose_secret().trim())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| bad("discord needs a `webhook_url`".to_owned()))?;
        let parts = parse_webhook_url(secret, true)
            .map_err(|why| bad(format!("discord `webhook_url` {why}")))?;
        if let Some(id) = config
            .mention_role_id
            .as_deref()
            .filter(|id| !is_snowflake(id))
        {
            return Err(bad(format!(
                "discord `mention_role_id` `{id}` is not a numeric role id"
            )));
        }
        let mut info_url = parts.url.clone();
        info_url.set_query(None);
        info_url.set_fragment(None);
        let execute_url = with_wait(&parts.url);
        let redactor = Redactor::new()
            .with(secret)
            .with(parts.url.as_str())
            .with(execute_url.as_str())
            .with(&parts.token);
        let retry = RetryPolicy {
            max_attempts: config.retries.min(MAX_RETRIES) + 1,
            ..RetryPolicy::default()
        };
        Ok(Discord {
            config,
            webhook_id: parts.id,
            execute_url,
            info_url,
            retry,
            redactor,
            bucket: bucket::Bucket::default(),
        })
    }

    /// The same plugin with another retry policy (tests use tiny backoffs).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The JSON body posted for `event`: one embed, `username`, `avatar_url` when set, and
    /// `allowed_mentions` that lets at most the configured role be pinged.
    pub fn payload(&self, event: &Event) -> Value {
        let mut body = json!({
            "username": self.config.username,
            "embeds": [templated_embed(event, self.config.templates.as_deref())],
            "allowed_mentions": {"parse": []},
        });
        if let Some(avatar) = &self.config.avatar_url {
            body["avatar_url"] = json!(avatar.trim());
        }
        if let Some(role) = &self.config.mention_role_id {
            // Embeds never ping; the mention must be in `content`.
            body["content"] = json!(format!("<@&{role}>"));
            body["allowed_mentions"]["roles"] = json!([role]);
        }
        body
    }

    /// Sends a fresh request per attempt, retrying transient failures; Discord's answers
    /// are judged by [`judge`].
    async fn call<F>(&self, cx: &PluginContext, mut make_request: F) -> Result<Reply, PluginError>
    where
        F: FnMut() -> reqwest::RequestBuilder,
    {
        let redactor = &self.redactor;
        http::retry(&self.retry, |_| {
            let request = make_request();
            async move {
                let reply = cx.http.fetch(request, redactor).await?;
                judge(&reply, redactor)?;
                Ok(reply)
            }
        })
        .await
    }
}

impl fmt::Debug for Discord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discord")
            .field("webhook_id", &self.webhook_id)
            .field("username", &self.config.username)
            .field("mention_role_id", &self.config.mention_role_id)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// `url` with `wait=true` in its query, replacing any `wait` there and keeping the rest
/// (`thread_id`).
fn with_wait(url: &reqwest::Url) -> reqwest::Url {
    let mut url = url.clone();
    url.set_fragment(None);
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "wait")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("wait", "true");
    url
}

impl Plugin for Discord {
    fn address_policy(&self) -> AddressPolicy {
        AddressPolicy::from_allow_private(self.config.allow_private_network)
    }

    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: "Discord",
            description: "Post an embed per event to a Discord channel through an incoming webhook",
            version: env!("CARGO_PKG_VERSION"),
            config_schema: config_schema(),
        }
    }

    /// `GET` on the webhook URL: proves the webhook exists and the token is right, without
    /// posting anything. Reports the webhook's name and channel, never its token.
    async fn test_connection(&self, cx: &PluginContext) -> Result<ConnectionReport, PluginError> {
        let reply = self.call(cx, || cx.http.get(self.info_url.clone())).await?;
        let answer: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
        let Some(channel) = answer["channel_id"].as_str().filter(|c| is_snowflake(c)) else {
            return Err(PluginError::Misconfigured {
                status: Some(reply.status.as_u16()),
                reason: format!(
                    "{}: the webhook URL answered GET, but not like a Discord webhook (no channel \
                     id); check webhook_url",
                    reply.status
                ),
            });
        };
        let name = answer["name"]
            .as_str()
            .map(|n| truncate_chars(&one_line(n), 80).into_owned())
            .filter(|n| !n.is_empty())
            .map_or_else(|| "(unnamed)".to_owned(), |n| format!("\"{n}\""));
        let detail = format!(
            "Discord webhook {name} (id {}) posts to channel {channel}: the URL and token are valid \
             (GET on the webhook); nothing was sent",
            self.webhook_id
        );
        Ok(ConnectionReport {
            detail: self.redactor.redact(&detail),
            sent_message: false,
        })
    }
}

impl WebhookPlugin for Discord {
    async fn send_webhook(
        &self,
        cx: &PluginContext,
        event: &Event,
    ) -> Result<Delivered, PluginError> {
        let body = self.payload(event);
        // The last reply said the bucket is empty: wait for it rather than earn a 429.
        if let Some(wait) = self.bucket.wait() {
            if wait > bucket::MAX_SLEEP {
                return Err(PluginError::RateLimited {
                    retry_after: Some(wait),
                });
            }
            tokio::time::sleep(wait).await;
        }
        let reply = self
            .call(cx, || cx.http.post(self.execute_url.clone()).json(&body))
            .await?;
        self.bucket.note(&reply.headers);
        // With wait=true Discord answers with the saved message; 204 if it chose not to.
        let id = serde_json::from_str::<Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("id")?.as_str().map(str::to_owned))
            .filter(|id| is_snowflake(id));
        tracing::debug!(plugin = %cx.instance, event = %event.name, message_id = id.as_deref(), "posted to Discord");
        let detail = match id {
            Some(id) => format!("{}, message id {id}", reply.status),
            None => reply.status.to_string(),
        };
        Ok(Delivered { detail })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use secrecy::SecretString;

    const URL: &str = "https://discord.com/api/webhooks/1234567890/tok_DEBUGCANARY";

    fn config(url: &str) -> DiscordConfig {
        DiscordConfig {
            webhook_url: Some(SecretString::from(url)),
            ..DiscordConfig::default()
        }
    }

    fn discord(config: DiscordConfig) -> Discord {
        Discord::new(config).expect("valid config")
    }

    fn event(name: EventName, data: Value) -> Event {
        Event::new(name, data.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn wait_true_is_added_to_any_query() {
        let cases = [
            (URL, "wait=true"),
            (&format!("{URL}?thread_id=42"), "thread_id=42&wait=true"),
            (
                &format!("{URL}?wait=false&thread_id=42#x"),
                "thread_id=42&wait=true",
            ),
        ];
        for (url, query) in cases {
            let plugin = discord(config(url));
            assert_eq!(plugin.execute_url.query(), Some(query), "{url}");
            assert_eq!(plugin.execute_url.fragment(), None);
            assert_eq!(plugin.info_url.as_str(), URL);
        }
    }

    #[test]
    fn mentions_are_off_even_when_data_says_everyone() {
        let plugin = discord(config(URL));
        let ev = event(
            EventName::OnPluginHealthChanged,
            json!({"plugin": "@everyone", "to": "open", "reason": "@here <@&1> <@123>"}),
        );
        let body = plugin.payload(&ev);
        assert_eq!(body["allowed_mentions"], json!({"parse": []}));
        assert!(body.get("content").is_none());
        assert_eq!(body["username"], "Mydia");
        assert!(body["embeds"][0]["title"]
            .as_str()
            .unwrap()
            .contains("@everyone"));
        assert_eq!(body["embeds"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_configured_role_is_the_only_mention() {
        let plugin = discord(DiscordConfig {
            mention_role_id: Some("987654321".into()),
            avatar_url: Some("https://mydia.local/logo.png".into()),
            username: "Media Bot".into(),
            ..config(URL)
        });
        let body = plugin.payload(&event(
            EventName::OnDownloadFailed,
            json!({"error_message": "@everyone"}),
        ));
        assert_eq!(body["content"], "<@&987654321>");
        assert_eq!(
            body["allowed_mentions"],
            json!({"parse": [], "roles": ["987654321"]})
        );
        assert_eq!(body["avatar_url"], "https://mydia.local/logo.png");
        assert_eq!(body["username"], "Media Bot");
        assert!(matches!(
            Discord::new(DiscordConfig {
                mention_role_id: Some("everyone".into()),
                ..config(URL)
            }),
            Err(PluginError::Misconfigured { .. })
        ));
    }

    #[test]
    fn unusable_urls_are_refused_without_echoing_them() {
        for bad in [
            None,
            Some("  "),
            Some("https://discord.com/api/webhooks/tok_DEBUGCANARY"),
            Some("https://me:tok_DEBUGCANARY@discord.com/api/webhooks/1/t"),
        ] {
            let err = Discord::new(DiscordConfig {
                webhook_url: bad.map(SecretString::from),
                ..DiscordConfig::default()
            })
            .unwrap_err();
            assert!(matches!(err, PluginError::Misconfigured { .. }), "{err:?}");
            assert!(!format!("{err} {err:?}").contains("DEBUGCANARY"), "{err}");
        }
    }

    #[test]
    fn debug_output_and_redactor_hide_the_token() {
        let plugin = discord(config(&format!("{URL}?thread_id=7")));
        let shown = format!("{plugin:?}");
        assert!(!shown.contains("DEBUGCANARY"), "{shown}");
        assert!(
            shown.contains("1234567890"),
            "the id identifies the webhook: {shown}"
        );
        let text = format!("{URL}?wait=true and tok_DEBUGCANARY");
        let redacted = plugin.redactor.redact(&text);
        assert!(!redacted.contains("DEBUGCANARY"), "{redacted}");
    }

    #[test]
    fn info_describes_the_plugin() {
        let info = discord(config(URL)).info();
        assert_eq!(info.name, "Discord");
        assert_eq!(info.config_schema["required"], json!(["webhook_url"]));
    }

    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let plugin = discord(config(URL));
        let cx = PluginContext {
            instance: "discord".into(),
            http: http::new_client(http::AddressPolicy::AllowPrivate),
        };
        let ev = event(EventName::AfterMediaAdded, json!({}));
        assert_send(plugin.send_webhook(&cx, &ev));
        assert_send(plugin.test_connection(&cx));
    }
}
