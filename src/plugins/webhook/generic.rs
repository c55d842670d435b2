//! Generic webhook: POST each event as JSON to a configured URL, signed per Standard Webhooks.
//!
//! The body is `{"type", "id", "timestamp", "data"}`: Standard Webhooks' suggested envelope
//! (`type`, `timestamp`, `data`) plus the event id. `type` is the canonical catalog name
//! (`after_media_added`, never the dotted alias) and `timestamp` is when the event happened
//! (RFC 3339), the same on every attempt. The body is serialized once per delivery, and those
//! exact bytes are both signed and sent.
//!
//! Every request carries `webhook-id` (derived from the event id, so it is the same on every
//! attempt and on a redelivery by the supervisor: receivers deduplicate on it) and
//! `webhook-timestamp` (unix seconds, taken per attempt, as the spec says: receivers reject
//! timestamps outside a tolerance, typically 5 minutes, so a retry after a long backoff or a
//! pause must carry a fresh one). With a `secret`, `webhook-signature` signs
//! `{webhook-id}.{webhook-timestamp}.{body}`, re-computed per attempt. Without one, the id and
//! timestamp are still sent: they cost nothing and receivers deduplicate on the id.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;

use crate::event::{Event, EventData, EventName};
use crate::http::{self, AddressPolicy, Redactor, RetryPolicy};
use crate::plugins::{
    ConnectionReport, Delivered, Plugin, PluginContext, PluginError, PluginInfo, WebhookPlugin,
};

mod config;
mod signature;

pub(crate) use config::config_schema;
pub use config::WebhookConfig;
use config::{check_header, origin, parse_url, MAX_RETRIES};
pub use signature::{
    webhook_id, SecretError, SigningSecret, MIN_SECRET_BYTES, SECRET_PREFIX, WEBHOOK_ID,
    WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
};

/// The `type` of the delivery `test_connection` sends; no catalog event has it.
pub const TEST_EVENT_TYPE: &str = "mydia.test";

/// Parts of the URL (query keys and values, path segments) at least this long are redacted
/// wherever they appear. Shorter ones are no secret worth the name, and scrubbing `/` or `1`
/// would garble every message. The whole URL and its whole query are always redacted.
const MIN_REDACTED_URL_PART: usize = 6;

/// The events a webhook instance receives when its config has no `events:` list: everything
/// except the `before_*` events, which announce something that may still be rejected or fail.
pub fn default_events() -> Vec<EventName> {
    EventName::ALL
        .iter()
        .copied()
        .filter(|e| !e.as_str().starts_with("before_"))
        .collect()
}

/// The generic webhook plugin: one receiver URL, optional extra headers and signing secret.
pub struct Webhook {
    /// Never shown: it may carry a token. [`Webhook::origin`] is what reports show.
    url: reqwest::Url,
    origin: String,
    /// Configured headers, values marked sensitive.
    headers: HeaderMap,
    secret: Option<SigningSecret>,
    retry: RetryPolicy,
    redactor: Redactor,
    allow_private_network: bool,
}

/// The JSON envelope, in the order it is written.
#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    timestamp: &'a DateTime<Utc>,
    data: &'a EventData,
}

impl Webhook {
    /// A plugin for a validated config. Fails (`Misconfigured`, quoting none of the secret
    /// values) when the URL is missing or not http(s), a header cannot be sent, or the secret
    /// is not a usable `whsec_` secret. The https-only rule is the config validation's job.
    pub fn new(config: WebhookConfig) -> Result<Self, PluginError> {
        let bad = |reason: String| PluginError::Misconfigured {
            status: None,
            reason,
        };
        let raw = config
            .url
            .as_ref()
            .map(|u| u.expose_secret().trim())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| bad("webhook needs a `url`".to_owned()))?;
        let url = parse_url(raw).map_err(|m| bad(format!("webhook `url` {m}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("webhook `url` must be an http(s) URL".to_owned()));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let (name, value) = check_header(name, value.expose_secret())
                .map_err(|m| bad(format!("webhook header `{name}`: {m}")))?;
            headers.insert(name, value);
        }
        let secret = config
            .secret
            .as_ref()
            .map(|s| SigningSecret::parse(s.expose_secret()))
            .transpose()
            .map_err(|e| bad(format!("webhook `secret` {e}")))?;
        let redactor = redactor(raw, &url, &config.headers, config.secret.as_ref());
        let retry = RetryPolicy {
            max_attempts: config.retries.min(MAX_RETRIES) + 1,
            ..RetryPolicy::default()
        };
        Ok(Webhook {
            origin: origin(&url),
            url,
            headers,
            secret,
            retry,
            redactor,
            allow_private_network: config.allow_private_network,
        })
    }

    /// The same plugin with another retry policy (tests use tiny backoffs).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The exact body sent for `event`: `{"type", "id", "timestamp", "data"}` as compact JSON.
    pub fn body(event: &Event) -> Vec<u8> {
        envelope(
            event.name.as_str(),
            &event.id,
            &event.timestamp,
            &event.data,
        )
    }

    /// POSTs `body` with the webhook headers, signing each attempt afresh, retrying
    /// transient failures. Every error is classified and redacted by [`http`].
    async fn post(
        &self,
        cx: &PluginContext,
        msg_id: &str,
        body: &[u8],
    ) -> Result<http::Reply, PluginError> {
        cx.http
            .send_with_retry(&self.retry, &self.redactor, || {
                let timestamp = Utc::now().timestamp();
                let request = cx
                    .http
                    .post(self.url.clone())
                    .headers(self.headers.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .header(WEBHOOK_ID, msg_id)
                    .header(WEBHOOK_TIMESTAMP, timestamp.to_string());
                match &self.secret {
                    Some(secret) => {
                        request.header(WEBHOOK_SIGNATURE, secret.sign(msg_id, timestamp, body))
                    }
                    None => request,
                }
                .body(body.to_vec())
            })
            .await
            .map_err(explain_gone)
    }
}

fn envelope(kind: &str, id: &str, timestamp: &DateTime<Utc>, data: &EventData) -> Vec<u8> {
    let envelope = Envelope {
        kind,
        id,
        timestamp,
        data,
    };
    serde_json::to_vec(&envelope).expect("strings, a timestamp and a JSON map always serialize")
}

/// 410 is already `Misconfigured` (see [`http::classify`]); say what it means for a webhook.
fn explain_gone(err: PluginError) -> PluginError {
    match err {
        PluginError::Misconfigured {
            status: Some(410),
            reason,
        } => PluginError::Misconfigured {
            status: Some(410),
            reason: format!(
                "{reason}; per Standard Webhooks the receiver wants no more deliveries: fix or replace `url`"
            ),
        },
        other => other,
    }
}

/// Everything to scrub: the URL as written and as parsed, its query, its longer parts and any
/// credentials in it; every header value (whatever its length: each may be a token); and the
/// signing secret, which is never sent but must not show either.
fn redactor(
    raw: &str,
    url: &reqwest::Url,
    headers: &BTreeMap<String, SecretString>,
    secret: Option<&SecretString>,
) -> Redactor {
    let mut r = Redactor::new().with(raw).with(url.as_str());
    // reqwest sends userinfo as `Authorization: Basic`, which receivers echo back.
    r.add_url_credentials(url);
    let long = |s: &str| s.chars().count() >= MIN_REDACTED_URL_PART;
    let tail = match url.query() {
        Some(q) => {
            r.add(q);
            format!("{}?{q}", url.path())
        }
        None => url.path().to_owned(),
    };
    let mut parts: Vec<String> = vec![tail, url.username().to_owned()];
    parts.extend(url.password().map(str::to_owned));
    parts.extend(url.path_segments().into_iter().flatten().map(str::to_owned));
    for (k, v) in url.query_pairs() {
        parts.push(k.into_owned());
        parts.push(v.into_owned());
    }
    for part in parts.iter().filter(|p| long(p)) {
        r.add(part);
    }
    for value in headers.values() {
        r.add(value.expose_secret());
    }
    if let Some(secret) = secret.map(|s| s.expose_secret().trim()) {
        r.add(secret);
        r.add(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret));
    }
    r
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("origin", &self.origin)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("signed", &self.secret.is_some())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Plugin for Webhook {
    fn address_policy(&self) -> AddressPolicy {
        AddressPolicy::from_allow_private(self.allow_private_network)
    }

    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: "Webhook",
            description: "POST events as JSON to any URL, signed per Standard Webhooks",
            version: env!("CARGO_PKG_VERSION"),
            config_schema: config_schema(),
        }
    }

    /// Sends a real, clearly marked test delivery (`type: mydia.test`), signed like any other.
    /// An arbitrary receiver has no side-effect-free check: a HEAD or OPTIONS would prove only
    /// that something listens, often answering 404 or 405 where a POST works, and nothing
    /// about the headers or the signature. Only a delivery proves what users care about.
    async fn test_connection(&self, cx: &PluginContext) -> Result<ConnectionReport, PluginError> {
        let id = uuid::Uuid::new_v4().to_string();
        let data = json!({
            "message": "If you can read this, Mydia can deliver webhooks to this URL.",
        });
        let body = envelope(
            TEST_EVENT_TYPE,
            &id,
            &Utc::now(),
            data.as_object().expect("an object"),
        );
        let reply = self.post(cx, &webhook_id(&id), &body).await?;
        let signed = if self.secret.is_some() {
            "signed"
        } else {
            "unsigned (no secret set)"
        };
        Ok(ConnectionReport {
            detail: format!(
                "the receiver at {} accepted a {signed} test delivery (type `{TEST_EVENT_TYPE}`) with {}; \
                 it was a real POST, which the receiver may store or act on",
                self.origin, reply.status
            ),
            sent_message: true,
        })
    }
}

impl WebhookPlugin for Webhook {
    async fn send_webhook(
        &self,
        cx: &PluginContext,
        event: &Event,
    ) -> Result<Delivered, PluginError> {
        // The delivery's own id: the same on every retry and after a restart, and unique
        // per receiver even when one event goes to several.
        let msg_id = crate::plugins::actor::delivery_id().unwrap_or_else(|| webhook_id(&event.id));
        let reply = self.post(cx, &msg_id, &Webhook::body(event)).await?;
        tracing::debug!(plugin = %cx.instance, event = %event.name, webhook_id = %msg_id, status = %reply.status, "webhook delivered");
        Ok(Delivered {
            detail: format!("{}, webhook-id {msg_id}", reply.status),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn config(url: &str) -> WebhookConfig {
        WebhookConfig {
            url: Some(SecretString::from(url)),
            ..WebhookConfig::default()
        }
    }

    fn misconfigured(config: WebhookConfig) -> String {
        match Webhook::new(config) {
            Err(e @ PluginError::Misconfigured { status: None, .. }) => format!("{e} | {e:?}"),
            other => panic!("expected Misconfigured, got {other:?}"),
        }
    }

    fn amelie() -> Event {
        Event {
            id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
            name: EventName::AfterMediaAdded,
            timestamp: "2024-03-01T12:00:00Z".parse().unwrap(),
            data: json!({"media_item": {"title": "Amélie — 千と千尋の神隠し 🎬"}})
                .as_object()
                .cloned()
                .unwrap(),
            digest: None,
        }
    }

    #[test]
    fn body_is_the_envelope_byte_for_byte_and_signs_to_the_known_answer() {
        let event = amelie();
        let body = Webhook::body(&event);
        // The same bytes the signature module's unicode known answer was computed over with
        // Python, so the envelope and the signature are pinned together.
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            r#"{"type":"after_media_added","id":"0f8fad5b-d9cb-469f-a165-70867728950e","timestamp":"2024-03-01T12:00:00Z","data":{"media_item":{"title":"Amélie — 千と千尋の神隠し 🎬"}}}"#
        );
        let id = webhook_id(&event.id);
        assert_eq!(id, event.id);
        assert_eq!(
            SigningSecret::parse(SPEC_SECRET)
                .unwrap()
                .sign(&id, 1709294400, &body),
            "v1,FXC/pdNxm+9dt6cLPrQeY+ZZCe5tQHO/f1Gis6qmyS0="
        );
        let parsed: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["type"], "after_media_added");
        assert_eq!(parsed["timestamp"], "2024-03-01T12:00:00Z");
    }

    #[test]
    fn aliases_are_sent_under_the_canonical_name() {
        let event = Event::new("download.completed".parse().unwrap(), EventData::new());
        let parsed: Value = serde_json::from_slice(&Webhook::body(&event)).unwrap();
        assert_eq!(parsed["type"], "on_download_completed");
        assert_eq!(parsed["data"], json!({}));
    }

    #[test]
    fn default_events_are_all_but_the_before_events() {
        let events = default_events();
        assert_eq!(events.len(), EventName::ALL.len() - 2);
        assert!(!events.contains(&EventName::BeforeMediaAdded));
        assert!(!events.contains(&EventName::BeforeDownloadInitiated));
        assert!(events.contains(&EventName::AfterMediaAdded));
        assert!(events.contains(&EventName::OnPluginHealthChanged));
    }

    #[test]
    fn new_refuses_what_it_cannot_send_without_quoting_secrets() {
        assert!(misconfigured(WebhookConfig::default()).contains("needs a `url`"));
        let shown = misconfigured(config("receiver.example.com/URLCANARY"));
        assert!(
            shown.contains("not a valid URL") && !shown.contains("URLCANARY"),
            "{shown}"
        );
        let shown = misconfigured(config("ftp://files.example.com/URLCANARY"));
        assert!(
            shown.contains("http(s)") && !shown.contains("URLCANARY"),
            "{shown}"
        );
        let mut headers = BTreeMap::new();
        headers.insert("X-Token".to_owned(), SecretString::from("a\r\nVALCANARY"));
        let shown = misconfigured(WebhookConfig {
            headers,
            ..config("https://r.example.com")
        });
        assert!(
            shown.contains("`X-Token`") && !shown.contains("VALCANARY"),
            "{shown}"
        );
        let shown = misconfigured(WebhookConfig {
            secret: Some(SecretString::from("SECRETCANARY")),
            ..config("https://r.example.com")
        });
        assert!(
            shown.contains("whsec_") && !shown.contains("SECRETCANARY"),
            "{shown}"
        );
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let mut headers = BTreeMap::new();
        headers.insert(
            "Authorization".to_owned(),
            SecretString::from("Bearer VALCANARY"),
        );
        let hook = Webhook::new(WebhookConfig {
            headers,
            secret: Some(SecretString::from(SPEC_SECRET)),
            ..config("https://user:PWCANARY@r.example.com:8443/hooks/PATHCANARY?token=QUERYCANARY")
        })
        .unwrap();
        let shown = format!("{hook:?}");
        assert!(
            !shown.contains("CANARY") && !shown.contains("MfKQ9r8G"),
            "{shown}"
        );
        assert!(
            shown.contains("https://r.example.com:8443") && shown.contains("authorization"),
            "{shown}"
        );
        assert_eq!(hook.retry.max_attempts, 3);
    }

    #[test]
    fn redactor_scrubs_the_url_its_parts_and_header_values() {
        let mut headers = BTreeMap::new();
        headers.insert("X-Key".to_owned(), SecretString::from("k3y"));
        let hook = Webhook::new(WebhookConfig {
            headers,
            secret: Some(SecretString::from(SPEC_SECRET)),
            ..config("https://me:PWCANARY@r.example.com/hooks/PATHCANARY123?token=QUERYCANARY&v=1")
        })
        .unwrap();
        let r = &hook.redactor;
        assert_eq!(
            r.redact("no route /hooks/PATHCANARY123?token=QUERYCANARY&v=1 for k3y"),
            "no route [redacted] for [redacted]"
        );
        assert_eq!(
            r.redact("token QUERYCANARY, PATHCANARY123"),
            "token [redacted], [redacted]"
        );
        assert_eq!(
            r.redact("pw PWCANARY, key MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, whole whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "pw [redacted], key [redacted], whole [redacted]"
        );
        assert_eq!(
            r.redact("401 Unauthorized v=1"),
            "401 Unauthorized v=1",
            "short URL parts stay"
        );
    }

    #[test]
    fn gone_is_misconfigured_with_the_standard_webhooks_meaning() {
        let err = explain_gone(PluginError::Misconfigured {
            status: Some(410),
            reason: "410 Gone: gone for good".into(),
        });
        assert!(
            err.to_string()
                .contains("the receiver wants no more deliveries"),
            "{err}"
        );
        let other = PluginError::Misconfigured {
            status: Some(404),
            reason: "not found".into(),
        };
        assert_eq!(explain_gone(other.clone()), other);
    }

    #[test]
    fn info_describes_the_plugin() {
        let info = Webhook::new(config("https://r.example.com"))
            .unwrap()
            .info();
        assert_eq!(info.name, "Webhook");
        assert_eq!(info.config_schema["required"], json!(["url"]));
    }

    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let hook = Webhook::new(config("https://r.example.com")).unwrap();
        let cx = PluginContext {
            instance: "webhook".into(),
            http: http::new_client(http::AddressPolicy::AllowPrivate),
        };
        let event = amelie();
        assert_send(hook.send_webhook(&cx, &event));
        assert_send(hook.test_connection(&cx));
    }
}
