//! Telegram: a bot posts each notification to one chat through the Bot API (`sendMessage`, HTML).
//!
//! The bot token is part of every request URL (`/bot<token>/<method>`), so the URLs are
//! held in a type whose `Debug` hides them, every error passes the [`Redactor`], and
//! reports name only the server's scheme and host. A group that becomes a supergroup gets
//! a new chat id; Telegram says so in a 400 (`migrate_to_chat_id`), and we follow it at
//! once (the message is re-sent, not lost) and keep using the new id, telling the user to
//! update the config.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use secrecy::ExposeSecret;
use serde_json::{json, Map, Value};

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
use config::{is_path_safe, MAX_RETRIES};
pub use config::{ChatId, TelegramConfig};
use reply::Answer;

/// The Telegram plugin: one bot, one chat.
#[derive(Debug)]
pub struct Telegram {
    config: TelegramConfig,
    /// Where messages go: the configured chat until Telegram reports a migration.
    chat: Mutex<ChatId>,
    urls: BotUrls,
    /// `scheme://host[:port]` of the Bot API server, for reports.
    server: String,
    retry: RetryPolicy,
    redactor: Redactor,
}

/// The Bot API method URLs. Each holds the token, so `Debug` shows none of them.
struct BotUrls {
    send_message: reqwest::Url,
    get_me: reqwest::Url,
    get_chat: reqwest::Url,
}

impl fmt::Debug for BotUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(http::REDACTED)
    }
}

impl Telegram {
    /// A plugin for a validated config. Fails (`Misconfigured`) only on what it cannot work
    /// without: a token usable in a URL path, a chat id and an http(s) `api_url`. Never
    /// echoes the token.
    pub fn new(config: TelegramConfig) -> Result<Self, PluginError> {
        let bad = |reason: &str| PluginError::Misconfigured {
            status: None,
            reason: reason.to_owned(),
        };
        let token = config
            .bot_token
            .as_ref()
            .map(|t| t.expose_secret().trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("telegram needs a `bot_token` (from @BotFather)"))?;
        if !is_path_safe(token) {
            return Err(bad("telegram `bot_token` may only contain letters, digits, `:`, `-` and `_`; copy it again from @BotFather"));
        }
        let chat = config.chat_id.clone().ok_or_else(|| {
            bad("telegram needs a `chat_id`: a numeric chat id or a channel's @username")
        })?;
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
            .ok_or_else(|| {
                bad("telegram `api_url` must be an http(s) URL without credentials or query, e.g. https://api.telegram.org")
            })?;
        let server = match parsed.port() {
            Some(port) => format!(
                "{}://{}:{port}",
                parsed.scheme(),
                parsed.host_str().unwrap_or("?")
            ),
            None => format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or("?")),
        };
        // Never show the parse error: its input holds the token.
        let method = |name: &str| {
            reqwest::Url::parse(&format!("{base}/bot{token}/{name}"))
                .map_err(|_| bad("telegram `api_url` and `bot_token` do not make a valid URL"))
        };
        let urls = BotUrls {
            send_message: method("sendMessage")?,
            get_me: method("getMe")?,
            get_chat: method("getChat")?,
        };
        let redactor = Redactor::new().with(token);
        let retry = RetryPolicy {
            max_attempts: config.retries.min(MAX_RETRIES) + 1,
            ..RetryPolicy::default()
        };
        Ok(Telegram {
            chat: Mutex::new(chat),
            config,
            urls,
            server,
            retry,
            redactor,
        })
    }

    /// The same plugin with another retry policy (tests use tiny backoffs).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The chat messages go to now: the configured one, or the supergroup it became.
    pub fn chat_id(&self) -> ChatId {
        self.chat
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The `sendMessage` JSON for `event`, to the current chat.
    pub fn payload(&self, event: &Event) -> Value {
        let (text, link) = message::templated_html(event, self.config.templates.as_deref());
        self.body(&self.chat_id(), &text, link.as_deref())
    }

    fn body(&self, chat: &ChatId, text: &str, link: Option<&str>) -> Value {
        let mut body = Map::new();
        body.insert("chat_id".into(), chat.to_json());
        if let Some(thread) = self.config.message_thread_id {
            body.insert("message_thread_id".into(), json!(thread));
        }
        body.insert("text".into(), json!(text));
        body.insert("parse_mode".into(), json!("HTML"));
        body.insert("disable_notification".into(), json!(self.config.silent));
        // Preview the page we link (the poster shows), never some URL inside the data.
        let preview = match link.filter(|_| self.config.link_preview) {
            Some(url) => json!({"url": url, "prefer_small_media": true}),
            None => json!({"is_disabled": true}),
        };
        body.insert("link_preview_options".into(), preview);
        Value::Object(body)
    }

    /// One Bot API call (POST JSON, or GET without a body), retrying transient failures.
    async fn call(
        &self,
        cx: &PluginContext,
        url: &reqwest::Url,
        body: Option<&Value>,
    ) -> Result<Answer, PluginError> {
        http::retry(&self.retry, |_| async move {
            let request = match body {
                Some(body) => cx.http.post(url.clone()).json(body),
                None => cx.http.get(url.clone()),
            };
            let reply = cx.http.fetch(request, &self.redactor).await?;
            reply::judge(&reply, &self.redactor)
        })
        .await
    }

    /// A call about the current chat; on a migration, the same call once more for the new
    /// chat, which is kept from then on. The result, the chat it was for, and the old chat
    /// when a migration happened.
    async fn call_in_chat(
        &self,
        cx: &PluginContext,
        url: &reqwest::Url,
        body: impl Fn(&ChatId) -> Value,
    ) -> Result<(Value, ChatId, Option<ChatId>), PluginError> {
        let chat = self.chat_id();
        let to = match self.call(cx, url, Some(&body(&chat))).await? {
            Answer::Done(result) => return Ok((result, chat, None)),
            Answer::Migrated(to) => to,
        };
        self.migrate(cx, &chat, to);
        let new = ChatId::Id(to);
        match self.call(cx, url, Some(&body(&new))).await? {
            Answer::Done(result) => Ok((result, new, Some(chat))),
            Answer::Migrated(again) => Err(PluginError::Rejected {
                status: Some(400),
                reason: format!("chat {chat} migrated to {to}, which says it migrated to {again}; not following a second time"),
            }),
        }
    }

    /// Switches to the supergroup `to` unless another delivery already did.
    fn migrate(&self, cx: &PluginContext, from: &ChatId, to: i64) {
        let mut chat = self.chat.lock().unwrap_or_else(PoisonError::into_inner);
        if *chat == *from {
            *chat = ChatId::Id(to);
            tracing::warn!(
                plugin = %cx.instance, old_chat_id = %from, new_chat_id = to,
                "telegram group was upgraded to a supergroup: sending to the new chat id from now on; \
                 update chat_id in the config to new_chat_id"
            );
        }
    }
}

/// What a migration means for the user, for reports.
fn migration_note(old: Option<&ChatId>, new: &ChatId) -> String {
    old.map(|old| {
        format!("; chat {old} became supergroup {new}: set `chat_id: {new}` in the config")
    })
    .unwrap_or_default()
}

impl Plugin for Telegram {
    fn address_policy(&self) -> AddressPolicy {
        AddressPolicy::from_allow_private(self.config.allow_private_network)
    }

    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: "Telegram",
            description: "Send notifications to a Telegram chat, group or channel through a bot",
            version: env!("CARGO_PKG_VERSION"),
            config_schema: config_schema(),
        }
    }

    /// `getMe` (the token works) then `getChat` (the bot can see the chat); sends nothing.
    async fn test_connection(&self, cx: &PluginContext) -> Result<ConnectionReport, PluginError> {
        let me = match self.call(cx, &self.urls.get_me, None).await? {
            Answer::Done(me) => me,
            Answer::Migrated(_) => Value::Null,
        };
        let bot = me
            .get("username")
            .and_then(Value::as_str)
            .map(|u| format!("@{}", text::one_line(u)))
            .unwrap_or_else(|| "(no username)".to_owned());
        let (chat, id, old) = self
            .call_in_chat(cx, &self.urls.get_chat, |c| json!({"chat_id": c.to_json()}))
            .await?;
        let kind = chat.get("type").and_then(Value::as_str).unwrap_or("chat");
        let name = ["title", "username", "first_name"]
            .iter()
            .find_map(|k| chat.get(*k).and_then(Value::as_str))
            .map(|n| format!(" \"{}\"", text::truncate_chars(&text::one_line(n), 100)))
            .unwrap_or_default();
        let detail = format!(
            "Telegram bot {bot} is valid (getMe on {}) and can see {kind}{name}, chat {id} (getChat); \
             nothing was sent, so permission to post there is not proven{}",
            self.server,
            migration_note(old.as_ref(), &id)
        );
        // The names come from the server; a hostile one could echo the token in them.
        Ok(ConnectionReport {
            detail: self.redactor.redact(&detail),
            sent_message: false,
        })
    }
}

impl NotificationPlugin for Telegram {
    async fn notify(&self, cx: &PluginContext, event: &Event) -> Result<Delivered, PluginError> {
        let (text, link) = message::templated_html(event, self.config.templates.as_deref());
        let (result, chat, old) = self
            .call_in_chat(cx, &self.urls.send_message, |c| {
                self.body(c, &text, link.as_deref())
            })
            .await?;
        let id = result.get("message_id").and_then(Value::as_i64);
        tracing::debug!(plugin = %cx.instance, event = %event.name, chat_id = %chat, message_id = id, "sent to telegram");
        let sent = match id {
            Some(id) => format!("message {id} in chat {chat}"),
            None => format!("sent to chat {chat}"),
        };
        Ok(Delivered {
            detail: format!("{sent}{}", migration_note(old.as_ref(), &chat)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use secrecy::SecretString;

    const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

    fn config() -> TelegramConfig {
        TelegramConfig {
            bot_token: Some(SecretString::from(TOKEN)),
            chat_id: Some(ChatId::Id(-1001234567890)),
            ..TelegramConfig::default()
        }
    }

    fn telegram(config: TelegramConfig) -> Telegram {
        Telegram::new(config).expect("valid config")
    }

    fn event(name: EventName, data: Value) -> Event {
        Event::new(name, data.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn payload_has_the_fields_send_message_reads() {
        let plugin = telegram(TelegramConfig {
            message_thread_id: Some(42),
            silent: true,
            ..config()
        });
        let ev = event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"title": "Dune", "year": 2021, "type": "movie", "tmdb_id": 438631}}),
        );
        assert_eq!(
            plugin.payload(&ev),
            json!({
                "chat_id": -1001234567890i64,
                "message_thread_id": 42,
                "text": "🎬 <b>Movie added</b>\nDune (2021)\n<a href=\"https://www.themoviedb.org/movie/438631\">View on TMDB</a>",
                "parse_mode": "HTML",
                "disable_notification": true,
                "link_preview_options": {"url": "https://www.themoviedb.org/movie/438631", "prefer_small_media": true},
            })
        );
    }

    #[test]
    fn previews_only_our_own_link_and_only_when_wanted() {
        let no_link = event(
            EventName::OnDownloadFailed,
            json!({"error_message": "see https://x.example"}),
        );
        let body = telegram(config()).payload(&no_link);
        assert_eq!(body["link_preview_options"], json!({"is_disabled": true}));
        assert_eq!(body["chat_id"], json!(-1001234567890i64));
        assert!(body.get("message_thread_id").is_none());
        assert_eq!(body["disable_notification"], json!(false));

        let linked = event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"imdb_id": "tt0133093"}}),
        );
        let off = telegram(TelegramConfig {
            link_preview: false,
            ..config()
        });
        assert_eq!(
            off.payload(&linked)["link_preview_options"],
            json!({"is_disabled": true})
        );
        let channel = telegram(TelegramConfig {
            chat_id: Some(ChatId::Username("@mydia_news".into())),
            ..config()
        });
        assert_eq!(channel.payload(&linked)["chat_id"], json!("@mydia_news"));
    }

    #[test]
    fn every_event_builds_a_payload() {
        let plugin = telegram(config());
        for name in EventName::ALL {
            for data in [
                json!({}),
                json!(null),
                json!({"media_item": {"title": ["x"]}}),
            ] {
                let body = plugin.payload(&event(*name, data));
                let text = body["text"].as_str().unwrap();
                assert!(text.contains("<b>") && text.len() > 10, "{name}: {text}");
            }
        }
    }

    #[test]
    fn builds_method_urls_under_the_api_url() {
        let plugin = telegram(TelegramConfig {
            api_url: "http://10.0.0.5:8081/tg/".into(),
            ..config()
        });
        assert_eq!(
            plugin.urls.send_message.as_str(),
            format!("http://10.0.0.5:8081/tg/bot{TOKEN}/sendMessage")
        );
        assert_eq!(plugin.urls.get_me.path(), format!("/tg/bot{TOKEN}/getMe"));
        assert_eq!(plugin.server, "http://10.0.0.5:8081");
        assert_eq!(telegram(config()).server, "https://api.telegram.org");
        assert_eq!(telegram(config()).retry.max_attempts, 3);
    }

    #[test]
    fn new_refuses_what_it_cannot_work_without_and_never_echoes_the_token() {
        let cases = [
            TelegramConfig {
                bot_token: None,
                ..config()
            },
            TelegramConfig {
                bot_token: Some(SecretString::from("  ")),
                ..config()
            },
            TelegramConfig {
                bot_token: Some(SecretString::from("1:SECRET/../x")),
                ..config()
            },
            TelegramConfig {
                chat_id: None,
                ..config()
            },
            TelegramConfig {
                api_url: "api.telegram.org".into(),
                ..config()
            },
            TelegramConfig {
                api_url: "ftp://api.telegram.org".into(),
                ..config()
            },
            TelegramConfig {
                api_url: "https://api.telegram.org/?x=1".into(),
                ..config()
            },
            TelegramConfig {
                api_url: "https://u:SECRET@api.telegram.org".into(),
                ..config()
            },
        ];
        for bad in cases {
            let err = Telegram::new(bad).unwrap_err();
            assert!(
                matches!(err, PluginError::Misconfigured { status: None, .. }),
                "{err:?}"
            );
            assert!(!format!("{err} {err:?}").contains("SECRET"), "{err}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let plugin = telegram(config());
        let shown = format!("{plugin:?}");
        assert!(
            !shown.contains("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"),
            "{shown}"
        );
        assert!(shown.contains("urls: [redacted]"), "{shown}");
        assert_eq!(
            plugin.redactor.redact(&format!(
                "/bot{TOKEN}/x and bot123456789%3AAAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
            )),
            "/bot[redacted]/x and bot[redacted]"
        );
    }

    #[test]
    fn migration_switches_once_and_is_reported() {
        let plugin = telegram(config());
        let cx = PluginContext {
            instance: "tg".into(),
            http: http::new_client(http::AddressPolicy::AllowPrivate),
        };
        let old = plugin.chat_id();
        plugin.migrate(&cx, &old, -100777);
        assert_eq!(plugin.chat_id(), ChatId::Id(-100777));
        // A second delivery that saw the old id does not switch back or elsewhere.
        plugin.migrate(&cx, &old, -100888);
        assert_eq!(plugin.chat_id(), ChatId::Id(-100777));
        assert_eq!(
            migration_note(Some(&old), &ChatId::Id(-100777)),
            "; chat -1001234567890 became supergroup -100777: set `chat_id: -100777` in the config"
        );
        assert_eq!(migration_note(None, &old), "");
    }

    #[test]
    fn info_describes_the_plugin() {
        let info = telegram(config()).info();
        assert_eq!(info.name, "Telegram");
        assert_eq!(
            info.config_schema["required"],
            json!(["bot_token", "chat_id"])
        );
    }

    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let plugin = telegram(config());
        let cx = PluginContext {
            instance: "tg".into(),
            http: http::new_client(http::AddressPolicy::AllowPrivate),
        };
        let ev = event(EventName::AfterMediaAdded, json!({}));
        assert_send(plugin.notify(&cx, &ev));
        assert_send(plugin.test_connection(&cx));
    }
}
