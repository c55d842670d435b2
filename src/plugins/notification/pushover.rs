//! Pushover: one form-encoded POST to `/1/messages.json` per notification.
//!
//! Plain text, not `html=1`: the message needs no markup, and plain text cannot be
//! misread whatever a title contains. Pushover asks clients to retry no more often than
//! every 5 s, so a transient failure, or a request cut off by the delivery timeout, holds
//! the next request back at least [`MIN_RETRY_GAP`] (full-jitter backoff comes on top), and
//! that hold also covers the supervisor's own redelivery, whose pause can be shorter.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::time::Instant;

use crate::event::Event;
use crate::http::{self, AddressPolicy, Redactor, RetryPolicy};
use crate::plugins::notification::text;
use crate::plugins::{
    ConnectionReport, Delivered, NotificationPlugin, Plugin, PluginContext, PluginError, PluginInfo,
};

mod config;
pub mod message;
mod reply;

pub(crate) use config::config_schema;
pub use config::PushoverConfig;
use config::{emergency_problems, priority_problem};
pub use message::{MAX_MESSAGE_CHARS, MAX_TITLE_CHARS, MAX_URL_CHARS, MAX_URL_TITLE_CHARS};

/// The least time between a transient failure and the next request, as Pushover asks.
pub const MIN_RETRY_GAP: Duration = Duration::from_secs(5);

/// The Pushover plugin: one application token, one user or group.
#[derive(Debug)]
pub struct Pushover {
    config: PushoverConfig,
    messages_url: reqwest::Url,
    validate_url: reqwest::Url,
    /// `scheme://host[:port]` of the API server, for reports.
    server: String,
    retry: RetryPolicy,
    min_gap: Duration,
    /// No request before this instant: set [`MIN_RETRY_GAP`] after a transient failure.
    not_before: Mutex<Option<Instant>>,
    redactor: Redactor,
}

impl Pushover {
    /// A plugin for a validated config. Fails (`Misconfigured`) only on what it cannot work
    /// without: both keys, a priority of -2..2 (with `retry` and `expire` for 2) and an
    /// http(s) `api_url`. Never echoes a key.
    pub fn new(config: PushoverConfig) -> Result<Self, PluginError> {
        let bad = |reason: String| PluginError::Misconfigured {
            status: None,
            reason,
        };
        for (field, value) in [
            ("user_key", &config.user_key),
            ("api_token", &config.api_token),
        ] {
            if value
                .as_ref()
                .is_none_or(|v| v.expose_secret().trim().is_empty())
            {
                return Err(bad(format!("pushover needs a `{field}`")));
            }
        }
        if let Some(problem) = priority_problem(config.priority) {
            return Err(bad(format!("pushover priority {problem}")));
        }
        if let Some((field, problem)) = emergency_problems(&config).into_iter().next() {
            return Err(bad(format!("pushover `{field}` {problem}")));
        }
        let base = config.api_url.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(base)
            .ok()
            .filter(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.has_host()
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.query().is_none()
                    && u.fragment().is_none()
            })
            .ok_or_else(|| bad("pushover `api_url` must be an http(s) URL without credentials or query, e.g. https://api.pushover.net".to_owned()))?;
        let host = parsed.host_str().unwrap_or("?");
        let server = match parsed.port() {
            Some(port) => format!("{}://{host}:{port}", parsed.scheme()),
            None => format!("{}://{host}", parsed.scheme()),
        };
        let endpoint = |p: &str| {
            reqwest::Url::parse(&format!("{base}/1/{p}"))
                .map_err(|e| bad(format!("pushover `api_url`: {e}")))
        };
        let mut redactor = Redactor::new();
        for secret in [&config.user_key, &config.api_token].into_iter().flatten() {
            redactor.add(secret.expose_secret());
        }
        Ok(Pushover {
            messages_url: endpoint("messages.json")?,
            validate_url: endpoint("users/validate.json")?,
            server,
            // One retry: with the 5 s gap, two attempts fit the default 10 s delivery timeout.
            // Longer outages are the supervisor's (its redelivery also waits for the gap).
            retry: RetryPolicy {
                max_attempts: 2,
                base: Duration::from_secs(1),
                max: Duration::from_secs(10),
            },
            min_gap: MIN_RETRY_GAP,
            not_before: Mutex::new(None),
            redactor,
            config,
        })
    }

    /// The same plugin with another retry policy and gap after failures (tests use tiny ones).
    pub fn with_retry_policy(mut self, policy: RetryPolicy, min_gap: Duration) -> Self {
        self.retry = policy;
        self.min_gap = min_gap;
        self
    }

    /// The form fields for `event`, without the credentials (`token`, `user`), which are
    /// added only when sending. Text fits Pushover's limits.
    pub fn form(&self, event: &Event) -> Vec<(&'static str, String)> {
        message::form(&self.config, event)
    }

    /// POSTs `form` plus the credentials to `url`, retrying transient failures no sooner
    /// than the gap Pushover asks for.
    async fn post(
        &self,
        cx: &PluginContext,
        url: &reqwest::Url,
        form: &[(&'static str, String)],
    ) -> Result<http::Reply, PluginError> {
        let secret = |s: &Option<secrecy::SecretString>| {
            s.as_ref()
                .map(|s| s.expose_secret().trim().to_owned())
                .unwrap_or_default()
        };
        let mut fields: Vec<(&str, String)> = vec![
            ("token", secret(&self.config.api_token)),
            ("user", secret(&self.config.user_key)),
        ];
        fields.extend(form.iter().cloned());
        let fields = &fields;
        let last_attempt = self.retry.max_attempts.max(1);
        http::retry(&self.retry, |attempt| async move {
            let hold = *self
                .not_before
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(until) = hold {
                tokio::time::sleep_until(until).await;
            }
            // Dropped mid-request (the delivery timed out), the request may have reached
            // Pushover or be hanging there: the next one keeps the gap too.
            let cancelled = GapIfDropped {
                not_before: &self.not_before,
                gap: self.min_gap,
            };
            let reply = cx
                .http
                .fetch(cx.http.post(url.clone()).form(fields), &self.redactor)
                .await;
            std::mem::forget(cancelled);
            let result =
                reply.and_then(|r| reply::judge(&r, &self.redactor, SystemTime::now()).map(|_| r));
            if result.as_ref().is_err_and(PluginError::is_transient) {
                let until = Instant::now() + self.min_gap;
                *self
                    .not_before
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(until);
                // Wait here, so the retry's jittered backoff comes on top of the gap.
                if attempt < last_attempt {
                    tokio::time::sleep_until(until).await;
                }
            }
            result
        })
        .await
    }
}

/// Holds the next request back by `gap` when dropped: armed around a request, forgotten
/// once it returns, so it fires only when the request is cancelled.
struct GapIfDropped<'a> {
    not_before: &'a Mutex<Option<Instant>>,
    gap: Duration,
}

impl Drop for GapIfDropped<'_> {
    fn drop(&mut self) {
        *self
            .not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + self.gap);
    }
}

fn body_json(reply: &http::Reply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or(Value::Null)
}

impl Plugin for Pushover {
    fn address_policy(&self) -> AddressPolicy {
        AddressPolicy::from_allow_private(self.config.allow_private_network)
    }

    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: "Pushover",
            description: "Send push notifications via Pushover",
            version: env!("CARGO_PKG_VERSION"),
            config_schema: config_schema(),
        }
    }

    /// `POST /1/users/validate.json` with token, user (and device): checks both keys and
    /// lists the user's devices; sends nothing and uses no message quota.
    async fn test_connection(&self, cx: &PluginContext) -> Result<ConnectionReport, PluginError> {
        let form: Vec<_> = message::devices(&self.config)
            .map(|d| ("device", d))
            .into_iter()
            .collect();
        let reply = self
            .post(cx, &self.validate_url, &form)
            .await
            .map_err(|e| match e {
                // A refusal here is always about the keys or the device: that is what it checks.
                PluginError::Rejected { status, reason } => {
                    PluginError::Misconfigured { status, reason }
                }
                other => other,
            })?;
        let body = body_json(&reply);
        let who = if body.get("group").and_then(Value::as_i64) == Some(1) {
            "group"
        } else {
            "user"
        };
        let devices: Vec<String> = body
            .get("devices")
            .and_then(Value::as_array)
            .map(|d| {
                d.iter()
                    .filter_map(Value::as_str)
                    .map(text::one_line)
                    .collect()
            })
            .unwrap_or_default();
        let devices = match (message::devices(&self.config), devices.is_empty()) {
            (Some(d), _) => format!("device {d} is valid"),
            (None, true) => "no active devices listed".to_owned(),
            (None, false) => format!("devices: {}", devices.join(", ")),
        };
        let detail = format!(
            "Pushover accepted the api_token and the {who} key (users/validate.json on {}); {devices}; \
             nothing was sent",
            self.server
        );
        Ok(ConnectionReport {
            detail: self.redactor.redact(&detail),
            sent_message: false,
        })
    }
}

impl NotificationPlugin for Pushover {
    async fn notify(&self, cx: &PluginContext, event: &Event) -> Result<Delivered, PluginError> {
        let reply = self.post(cx, &self.messages_url, &self.form(event)).await.inspect_err(|e| {
            if let PluginError::RateLimited { retry_after } = e {
                tracing::warn!(
                    plugin = %cx.instance, retry_after_s = retry_after.map(|d| d.as_secs()),
                    "pushover refused the message: the application's monthly message quota is used up \
                     (it resets on the 1st; pausing, then checking back)"
                );
            }
        })?;
        let body = body_json(&reply);
        let field = |k: &str| body.get(k).and_then(Value::as_str).map(text::one_line);
        let mut detail = reply.status.to_string();
        if let Some(request) = field("request") {
            detail.push_str(&format!(", request {request}"));
        }
        if let Some(receipt) = field("receipt") {
            detail.push_str(&format!(", emergency receipt {receipt}"));
        }
        if let Some((remaining, limit)) = reply::quota(&reply.headers) {
            detail.push_str(&format!(
                "; {remaining} of {limit} messages left this month"
            ));
        }
        tracing::debug!(plugin = %cx.instance, event = %event.name, "sent to pushover");
        Ok(Delivered {
            detail: self.redactor.redact(&detail),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use secrecy::SecretString;
    use serde_json::json;

    const USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";
    const TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";

    fn config() -> PushoverConfig {
        PushoverConfig {
            user_key: Some(SecretString::from(USER)),
            api_token: Some(SecretString::from(TOKEN)),
            ..PushoverConfig::default()
        }
    }

    fn pushover(config: PushoverConfig) -> Pushover {
        Pushover::new(config).expect("valid config")
    }

    fn event(name: EventName, data: Value) -> Event {
        Event::new(name, data.as_object().cloned().unwrap_or_default())
    }

    fn get<'a>(form: &'a [(&'static str, String)], key: &str) -> Option<&'a str> {
        form.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn form_has_the_fields_pushover_reads() {
        let plugin = pushover(PushoverConfig {
            priority: 1,
            sound: Some("magic".into()),
            device: Some(" iphone , pixel ".into()),
            retry: Some(60),
            expire: Some(3600),
            ..config()
        });
        let ev = event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"title": "Dune", "year": 2021, "type": "movie", "tmdb_id": 438631}}),
        );
        let stamp = ev.timestamp.timestamp().to_string();
        let form = plugin.form(&ev);
        let expected: Vec<(&str, &str)> = vec![
            ("title", "Movie added"),
            ("message", "Dune (2021)"),
            ("priority", "1"),
            ("timestamp", &stamp),
            ("url", "https://www.themoviedb.org/movie/438631"),
            ("url_title", "View on TMDB"),
            ("sound", "magic"),
            ("device", "iphone,pixel"),
        ];
        let got: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            got, expected,
            "retry/expire only with priority 2; never credentials"
        );
    }

    #[test]
    fn emergency_priority_sends_retry_and_expire() {
        let plugin = pushover(PushoverConfig {
            priority: 2,
            retry: Some(30),
            expire: Some(10800),
            ..config()
        });
        let form = plugin.form(&event(EventName::OnDownloadFailed, json!({})));
        assert_eq!(get(&form, "priority"), Some("2"));
        assert_eq!(get(&form, "retry"), Some("30"));
        assert_eq!(get(&form, "expire"), Some("10800"));
        assert_eq!(get(&form, "url"), None);
        assert_eq!(get(&form, "sound"), None);
        assert_eq!(get(&form, "html"), None, "plain text");
    }

    #[test]
    fn every_event_builds_a_form_with_any_data() {
        let plugin = pushover(config());
        let odd = json!({"media_item": {"title": 42, "year": null, "type": ["x"]}, "user": [1], "changes": 3});
        for name in EventName::ALL {
            for data in [json!({}), json!(null), odd.clone()] {
                let form = plugin.form(&event(*name, data));
                assert!(!get(&form, "title").unwrap().is_empty(), "{name}");
                assert!(!get(&form, "message").unwrap().is_empty(), "{name}");
            }
        }
    }

    #[test]
    fn markup_is_sent_as_plain_text() {
        let form = pushover(config()).form(&event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"title": "<b>Tom & Jerry</b>", "type": "movie"}}),
        ));
        assert_eq!(get(&form, "message"), Some("<b>Tom & Jerry</b>"));
        assert_eq!(get(&form, "html"), None);
    }

    #[test]
    fn long_multibyte_text_fits_pushovers_limits() {
        let ev = event(
            EventName::OnPluginHealthChanged,
            json!({"plugin": "千と千尋".repeat(200), "to": "open", "reason": "エラー👍".repeat(1000)}),
        );
        let form = pushover(config()).form(&ev);
        let title = get(&form, "title").unwrap();
        let message = get(&form, "message").unwrap();
        assert_eq!(title.chars().count(), MAX_TITLE_CHARS);
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS);
        assert!(title.ends_with('…') && message.ends_with('…'));
        assert!(message.starts_with("Now open\nエラー👍"));
    }

    #[test]
    fn new_refuses_what_it_cannot_work_without() {
        for bad in [
            PushoverConfig {
                user_key: None,
                ..config()
            },
            PushoverConfig {
                api_token: Some(SecretString::from(" ")),
                ..config()
            },
            PushoverConfig {
                priority: 3,
                ..config()
            },
            PushoverConfig {
                priority: 2,
                retry: Some(30),
                ..config()
            },
            PushoverConfig {
                priority: 2,
                retry: Some(10),
                expire: Some(60),
                ..config()
            },
            PushoverConfig {
                api_url: "api.pushover.net".into(),
                ..config()
            },
            PushoverConfig {
                api_url: "https://api.pushover.net?x=1".into(),
                ..config()
            },
        ] {
            let err = Pushover::new(bad).unwrap_err();
            assert!(
                matches!(err, PluginError::Misconfigured { status: None, .. }),
                "{err:?}"
            );
            assert!(!format!("{err:?}").contains(USER) && !format!("{err:?}").contains(TOKEN));
        }
        let plugin = pushover(PushoverConfig {
            api_url: "http://10.0.0.9:8080/po/".into(),
            ..config()
        });
        assert_eq!(
            plugin.messages_url.as_str(),
            "http://10.0.0.9:8080/po/1/messages.json"
        );
        assert_eq!(
            plugin.validate_url.as_str(),
            "http://10.0.0.9:8080/po/1/users/validate.json"
        );
        assert_eq!(plugin.server, "http://10.0.0.9:8080");
    }

    #[test]
    fn debug_output_never_shows_the_keys() {
        let plugin = pushover(config());
        let shown = format!("{plugin:?}");
        assert!(!shown.contains(USER) && !shown.contains(TOKEN), "{shown}");
        assert_eq!(
            plugin.redactor.redact(&format!("{USER} {TOKEN}")),
            "[redacted] [redacted]"
        );
    }

    #[test]
    fn info_describes_the_plugin() {
        let info = pushover(config()).info();
        assert_eq!(info.name, "Pushover");
        assert_eq!(
            info.config_schema["required"],
            json!(["user_key", "api_token"])
        );
    }

    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let plugin = pushover(config());
        let cx = PluginContext {
            instance: "pushover".into(),
            http: http::new_client(http::AddressPolicy::AllowPrivate),
        };
        let ev = event(EventName::AfterMediaAdded, json!({}));
        assert_send(plugin.notify(&cx, &ev));
        assert_send(plugin.test_connection(&cx));
    }
}
