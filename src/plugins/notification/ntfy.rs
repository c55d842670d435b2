//! ntfy: publish to a topic on ntfy.sh or a self-hosted server (JSON publishing to the root URL).
//!
//! We publish JSON to the server root with the topic in the body. JSON posted to
//! `/<topic>` is not parsed (its raw text would become the message), and JSON carries
//! non-ASCII titles as they are, where `X-Title` headers would need RFC 2047 encoding.

use std::borrow::Cow;

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use crate::event::{Event, EventName};
use crate::http::{self, AddressPolicy, Redactor, RetryPolicy};
use crate::message::Part;
use crate::plugins::notification::format::{self, MediaKind, Tone};
use crate::plugins::notification::text;
use crate::plugins::{
    ConnectionReport, Delivered, NotificationPlugin, Plugin, PluginContext, PluginError, PluginInfo,
};

mod body;
mod config;

use body::Publish;
pub use body::MAX_JSON_BYTES;
pub(crate) use config::config_schema;
use config::{has_credentials, CREDENTIALS_IN_URL, MAX_RETRIES};
pub use config::{is_valid_topic, NtfyConfig};

/// ntfy's message limit in bytes; a longer message would be turned into an attachment.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// The longest title we send, in characters (ntfy has no hard limit; phones show less).
pub const MAX_TITLE_CHARS: usize = 250;
/// The longest click URL a template may give; a longer one is left out, not cut.
const MAX_CLICK_CHARS: usize = 2048;
/// Tags a template may add, and the length of each (ntfy shows them beside the title).
const MAX_TEMPLATE_TAGS: usize = 10;
const MAX_TAG_CHARS: usize = 64;

/// The ntfy plugin: one configured topic on one server.
#[derive(Debug)]
pub struct Ntfy {
    config: NtfyConfig,
    topic: String,
    publish_url: reqwest::Url,
    health_url: reqwest::Url,
    retry: RetryPolicy,
    redactor: Redactor,
}

impl Ntfy {
    /// A plugin for a validated config. Fails (`Misconfigured`) only on what it cannot work
    /// without: a valid topic, a parseable http(s) `server_url` and a priority of 1..5.
    pub fn new(config: NtfyConfig) -> Result<Self, PluginError> {
        let bad = |reason: String| PluginError::Misconfigured {
            status: None,
            reason,
        };
        let topic = config
            .topic
            .clone()
            .filter(|t| is_valid_topic(t))
            .ok_or_else(|| {
                bad("ntfy needs a `topic` of 1 to 64 letters, digits, `-` or `_`".to_owned())
            })?;
        if !(1..=5).contains(&config.priority) {
            return Err(bad(format!(
                "ntfy priority must be 1..5, got {}",
                config.priority
            )));
        }
        let base = config.server_url.trim().trim_end_matches('/');
        let publish_url = reqwest::Url::parse(&format!("{base}/"))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                bad("ntfy `server_url` must be an http(s) URL, e.g. https://ntfy.sh".to_owned())
            })?;
        if has_credentials(&publish_url) {
            return Err(bad(CREDENTIALS_IN_URL.to_owned()));
        }
        let health_url = publish_url
            .join("v1/health")
            .map_err(|e| bad(format!("ntfy `server_url`: {e}")))?;
        let mut redactor = Redactor::new();
        if let Some(token) = &config.auth_token {
            redactor.add(token.expose_secret());
        }
        if let Some(password) = &config.password {
            // Also as the `Authorization: Basic` value a receiver may echo back.
            let user = config.username.as_deref().unwrap_or_default();
            redactor.add_credentials(user, password.expose_secret());
        }
        let retry = RetryPolicy {
            max_attempts: config.retries.min(MAX_RETRIES) + 1,
            ..RetryPolicy::default()
        };
        Ok(Ntfy {
            config,
            topic,
            publish_url,
            health_url,
            retry,
            redactor,
        })
    }

    /// The same plugin with another retry policy (tests use tiny backoffs).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The JSON body published for `event`: topic, title, message, priority, tags, and
    /// click and icon when known. Title and message fit ntfy's limits.
    pub fn payload(&self, event: &Event) -> Value {
        serde_json::to_value(self.message(event)).unwrap_or_default()
    }

    /// What [`Ntfy::payload`] shows, as it is sent. A template's `click` and `tags` come
    /// before the configured and built-in ones.
    fn message(&self, event: &Event) -> Publish<'_> {
        let (notice, rendered) = format::templated(event, self.config.templates.as_deref());
        let click = format::templated_url(rendered.as_ref(), Part::Click, MAX_CLICK_CHARS)
            .or_else(|| self.config.click.clone())
            .or(notice.link);
        let templated: Vec<Cow<'_, str>> = rendered
            .iter()
            .flat_map(|r| r.all(Part::Tags))
            .flat_map(|t| t.split(','))
            .map(|t| {
                Cow::Owned(text::truncate_chars(&text::one_line(t), MAX_TAG_CHARS).into_owned())
            })
            .take(MAX_TEMPLATE_TAGS)
            .collect();
        let tags = if templated.is_empty() {
            let defaults = default_tags(event.name, notice.media, notice.tone);
            merged_tags(&self.config.tags, defaults.map(Cow::Borrowed))
        } else {
            merged_tags(&self.config.tags, templated)
        };
        self.body(notice.title, notice.message, tags, click)
    }

    fn body<'a>(
        &'a self,
        title: String,
        message: String,
        tags: Vec<Cow<'a, str>>,
        click: Option<String>,
    ) -> Publish<'a> {
        let title = text::into_one_line(title);
        Publish {
            topic: &self.topic,
            title: fit(title, |t| text::cut_chars("title", t, MAX_TITLE_CHARS)),
            message: fit(message, |m| {
                text::cut_bytes("message", m, MAX_MESSAGE_BYTES)
            }),
            priority: self.config.priority,
            tags,
            click,
            icon: self.config.icon.as_deref(),
        }
        .fit_json()
    }

    /// POST the body to the server root, with auth, retrying transient failures. A 413
    /// (a server whose limit is below ntfy's default) is tried once more with the message
    /// shortened, rather than dropping the notification.
    async fn publish(
        &self,
        cx: &PluginContext,
        body: &Publish<'_>,
    ) -> Result<http::Reply, PluginError> {
        match self.publish_once(cx, body).await {
            Err(
                err @ PluginError::Rejected {
                    status: Some(413), ..
                },
            ) => match body.shortened() {
                Some(shorter) => {
                    tracing::warn!(
                        plugin = %cx.instance, message_bytes = shorter.message.len(),
                        "ntfy refused the message as too large (413); sending it once more, shortened"
                    );
                    self.publish_once(cx, &shorter).await
                }
                None => Err(err),
            },
            other => other,
        }
    }

    async fn publish_once(
        &self,
        cx: &PluginContext,
        body: &Publish<'_>,
    ) -> Result<http::Reply, PluginError> {
        cx.http
            .send_with_retry(&self.retry, &self.redactor, || {
                let request = cx.http.post(self.publish_url.clone()).json(body);
                match (
                    &self.config.auth_token,
                    &self.config.username,
                    &self.config.password,
                ) {
                    (Some(token), _, _) => request.bearer_auth(token.expose_secret().trim()),
                    (None, Some(user), Some(pass)) => {
                        request.basic_auth(user, Some(pass.expose_secret()))
                    }
                    _ => request,
                }
            })
            .await
    }

    /// `scheme://host[:port]` of the server, without credentials or path, for reports.
    fn server_label(&self) -> String {
        let url = &self.publish_url;
        let host = url.host_str().unwrap_or("?");
        match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        }
    }
}

/// The event's own tags (ntfy shows emoji short codes as emoji before the title). Every
/// code here is in ntfy's emoji table; the seed's `inbox_down` is not, so it is `inbox_tray`.
pub fn default_tags(event: EventName, media: MediaKind, tone: Tone) -> [&'static str; 1] {
    use EventName::*;
    let media_tag = match media {
        MediaKind::Movie => "movie_camera",
        MediaKind::Series => "tv",
        MediaKind::Unknown => "clapper",
    };
    let tag = match event {
        BeforeMediaAdded | AfterMediaAdded => media_tag,
        AfterMediaUpdated => "pencil2",
        AfterMediaDeleted => "wastebasket",
        BeforeDownloadInitiated => "mag",
        AfterDownloadInitiated => "arrow_down",
        OnDownloadCompleted => "inbox_tray",
        OnDownloadFailed => "x",
        AfterImportCompleted => "white_check_mark",
        OnImportFailed => "warning",
        OnPlaybackStarted => "arrow_forward",
        OnPlaybackFinished => "checkered_flag",
        OnPluginHealthChanged => match tone {
            Tone::Failure => "rotating_light",
            Tone::Success => "white_check_mark",
            Tone::Warning | Tone::Info => "information_source",
        },
    };
    [tag]
}

/// The part of ntfy's answer to a publish that we report.
#[derive(Deserialize)]
struct Published<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

/// `s` as `cut` leaves it, reusing `s` when nothing was cut.
fn fit(s: String, cut: impl Fn(&str) -> Cow<'_, str>) -> String {
    match cut(&s) {
        Cow::Borrowed(b) if b.len() == s.len() => s,
        other => other.into_owned(),
    }
}

/// Config tags first, then the event's (built-in or templated), trimmed, without blanks
/// or repeats.
fn merged_tags<'a>(
    config: &'a [String],
    defaults: impl IntoIterator<Item = Cow<'a, str>>,
) -> Vec<Cow<'a, str>> {
    let mut tags: Vec<Cow<'a, str>> = Vec::with_capacity(config.len() + 1);
    for tag in config
        .iter()
        .map(|t| Cow::Borrowed(t.trim()))
        .chain(defaults)
    {
        if !tag.is_empty() && !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    tags
}

impl Plugin for Ntfy {
    fn address_policy(&self) -> AddressPolicy {
        AddressPolicy::from_allow_private(self.config.allow_private_network)
    }

    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: "Ntfy",
            description: "Send notifications via ntfy.sh or a self-hosted ntfy server",
            version: env!("CARGO_PKG_VERSION"),
            config_schema: config_schema(),
        }
    }

    /// Checks `GET /v1/health`; publishes a test message only with `test_publishes: true`.
    async fn test_connection(&self, cx: &PluginContext) -> Result<ConnectionReport, PluginError> {
        let server = self.server_label();
        let not_ntfy = |status| PluginError::Misconfigured {
            status,
            reason: format!(
                "{server} did not answer GET /v1/health like an ntfy server; check server_url"
            ),
        };
        let reply = cx
            .http
            .send_with_retry(&self.retry, &self.redactor, || {
                cx.http.get(self.health_url.clone())
            })
            .await
            .map_err(|e| match e {
                PluginError::Misconfigured {
                    status: Some(404), ..
                } => not_ntfy(Some(404)),
                other => other,
            })?;
        match serde_json::from_str::<Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("healthy")?.as_bool())
        {
            Some(true) => {}
            Some(false) => {
                return Err(PluginError::Transient {
                    status: Some(reply.status.as_u16()),
                    reason: format!("{server} reports itself unhealthy (GET /v1/health)"),
                })
            }
            None => return Err(not_ntfy(Some(reply.status.as_u16()))),
        }
        if !self.config.test_publishes {
            return Ok(ConnectionReport {
                detail: format!(
                    "ntfy server {server} is reachable and healthy (GET /v1/health); nothing was published, \
                     so the topic and credentials are not proven (only a real publish proves write access; \
                     set test_publishes: true to send a test message)"
                ),
                sent_message: false,
            });
        }
        let tags = merged_tags(&self.config.tags, [Cow::Borrowed("test_tube")]);
        let text = "If you can read this, Mydia can publish notifications to this topic.";
        self.publish(
            cx,
            &self.body(
                "Mydia test notification".to_owned(),
                text.to_owned(),
                tags,
                self.config.click.clone(),
            ),
        )
        .await?;
        Ok(ConnectionReport {
            detail: format!("ntfy server {server} is healthy and accepted a test message on the topic: publishing works"),
            sent_message: true,
        })
    }
}

impl NotificationPlugin for Ntfy {
    async fn notify(&self, cx: &PluginContext, event: &Event) -> Result<Delivered, PluginError> {
        let reply = self.publish(cx, &self.message(event)).await?;
        let id = serde_json::from_str::<Published>(&reply.body)
            .ok()
            .and_then(|p| p.id);
        tracing::debug!(plugin = %cx.instance, event = %event.name, message_id = id.as_deref(), "published to ntfy");
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
    use secrecy::SecretString;
    use serde_json::json;

    /// Every tag `default_tags` can return, each checked against ntfy's emoji table
    /// (`server/mailer_emoji_map.json` in the ntfy repository).
    const NTFY_EMOJI: &[&str] = &[
        "movie_camera",
        "tv",
        "clapper",
        "pencil2",
        "wastebasket",
        "mag",
        "arrow_down",
        "inbox_tray",
        "x",
        "white_check_mark",
        "warning",
        "arrow_forward",
        "checkered_flag",
        "rotating_light",
        "information_source",
        "test_tube",
    ];

    fn ntfy(config: NtfyConfig) -> Ntfy {
        Ntfy::new(config).expect("valid config")
    }

    fn config() -> NtfyConfig {
        NtfyConfig {
            topic: Some("mydia-alerts".into()),
            ..NtfyConfig::default()
        }
    }

    fn event(name: EventName, data: Value) -> Event {
        Event::new(name, data.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn payload_has_the_json_fields_ntfy_reads() {
        let plugin = ntfy(NtfyConfig {
            priority: 4,
            tags: vec!["mydia".into()],
            ..config()
        });
        let ev = event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"title": "Dune", "year": 2021, "type": "movie", "tmdb_id": 438631}}),
        );
        assert_eq!(
            plugin.payload(&ev),
            json!({
                "topic": "mydia-alerts",
                "title": "Movie added",
                "message": "Dune (2021)",
                "priority": 4,
                "tags": ["mydia", "movie_camera"],
                "click": "https://www.themoviedb.org/movie/438631",
            })
        );
    }

    #[test]
    fn configured_click_and_icon_win() {
        let plugin = ntfy(NtfyConfig {
            click: Some("https://mydia.local/".into()),
            icon: Some("https://mydia.local/logo.png".into()),
            ..config()
        });
        let ev = event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"imdb_id": "tt1160419"}}),
        );
        let body = plugin.payload(&ev);
        assert_eq!(body["click"], "https://mydia.local/");
        assert_eq!(body["icon"], "https://mydia.local/logo.png");
    }

    #[test]
    fn every_event_gets_a_known_emoji_tag_and_a_title() {
        let plugin = ntfy(NtfyConfig {
            tags: vec![" x ".into(), "x".into()],
            ..config()
        });
        for name in EventName::ALL {
            for data in [
                json!({}),
                json!({"media_item": {"type": "tv_show"}, "to": "open"}),
            ] {
                let body = plugin.payload(&event(*name, data));
                let tags: Vec<&str> = body["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap())
                    .collect();
                assert_eq!(tags[0], "x", "config tags first, trimmed and deduplicated");
                assert!(
                    tags.iter().all(|t| NTFY_EMOJI.contains(t)),
                    "{name}: {tags:?}"
                );
                assert!(!body["title"].as_str().unwrap().is_empty(), "{name}");
            }
        }
        let tv = default_tags(EventName::AfterMediaAdded, MediaKind::Series, Tone::Info);
        assert_eq!(tv, ["tv"]);
        assert_eq!(
            default_tags(
                EventName::OnDownloadCompleted,
                MediaKind::Movie,
                Tone::Success
            ),
            ["inbox_tray"]
        );
    }

    #[test]
    fn long_text_fits_ntfy_limits() {
        let plugin = ntfy(config());
        let ev = event(
            EventName::OnImportFailed,
            json!({"media_item": {"title": "千と千尋の神隠し".repeat(100)}, "error_message": "é".repeat(5000)}),
        );
        let body = plugin.payload(&ev);
        let message = body["message"].as_str().unwrap();
        assert!(
            message.len() <= MAX_MESSAGE_BYTES && message.ends_with('…'),
            "{}",
            message.len()
        );
        let long_title = plugin.body("Ä".repeat(400), "m".into(), vec![], None);
        assert_eq!(long_title.title.chars().count(), MAX_TITLE_CHARS);
    }

    #[test]
    fn new_refuses_what_it_cannot_work_without() {
        for bad in [
            NtfyConfig {
                topic: None,
                ..config()
            },
            NtfyConfig {
                topic: Some("a/b".into()),
                ..config()
            },
            NtfyConfig {
                priority: 0,
                ..config()
            },
            NtfyConfig {
                server_url: "ntfy.sh".into(),
                ..config()
            },
            NtfyConfig {
                server_url: "file:///etc".into(),
                ..config()
            },
        ] {
            assert!(matches!(
                Ntfy::new(bad),
                Err(PluginError::Misconfigured { .. })
            ));
        }
        let trailing = ntfy(NtfyConfig {
            server_url: "http://10.0.0.2:8080/".into(),
            ..config()
        });
        assert_eq!(trailing.publish_url.as_str(), "http://10.0.0.2:8080/");
        assert_eq!(
            trailing.health_url.as_str(),
            "http://10.0.0.2:8080/v1/health"
        );
        assert_eq!(trailing.retry.max_attempts, 3);
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let plugin = ntfy(NtfyConfig {
            auth_token: Some(SecretString::from("tk_DEBUGCANARY")),
            password: Some(SecretString::from("pw_DEBUGCANARY")),
            server_url: "https://ntfy.example.com:8443/base/".into(),
            ..config()
        });
        let shown = format!("{plugin:?}");
        assert!(!shown.contains("DEBUGCANARY"), "{shown}");
        assert_eq!(plugin.server_label(), "https://ntfy.example.com:8443");
        assert_eq!(
            plugin.redactor.redact("a pw_DEBUGCANARY b"),
            "a [redacted] b"
        );
    }

    #[test]
    fn credentials_in_the_server_url_are_refused_without_echoing_them() {
        let url = "https://me:pw_URLCANARY@ntfy.example.com";
        let err = Ntfy::new(NtfyConfig {
            server_url: url.into(),
            ..config()
        })
        .unwrap_err();
        assert!(matches!(err, PluginError::Misconfigured { .. }));
        assert!(!format!("{err} {err:?}").contains("pw_URLCANARY"));
    }

    #[test]
    fn info_describes_the_plugin() {
        let info = ntfy(config()).info();
        assert_eq!(info.name, "Ntfy");
        assert_eq!(info.config_schema["required"], json!(["topic"]));
    }

    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let plugin = ntfy(config());
        let cx = PluginContext {
            instance: "ntfy".into(),
            http: http::new_client(http::AddressPolicy::AllowPrivate),
        };
        let ev = event(EventName::AfterMediaAdded, json!({}));
        assert_send(plugin.notify(&cx, &ev));
        assert_send(plugin.test_connection(&cx));
    }
}
