//! `TelegramConfig`: the Telegram settings, their defaults, pure validation and the schema shown to users.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use crate::config::Problems;
use crate::plugins::registry::CommonSettings;

/// The most retries a config may ask for.
pub(super) const MAX_RETRIES: u32 = 10;

/// `type: telegram` settings: a bot (from @BotFather) posting to one chat.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// Bot token from @BotFather (`123456789:AA...`); required when enabled. Secret: it sits
    /// in the path of every request URL, so no URL of this plugin is ever shown.
    #[serde(default)]
    pub bot_token: Option<SecretString>,
    /// The chat to post to: a numeric id (groups and channels are negative, e.g.
    /// `-1001234567890`) or a public channel's `@username`; required when enabled.
    #[serde(default)]
    pub chat_id: Option<ChatId>,
    /// Forum topic to post in, in a supergroup with topics.
    #[serde(default)]
    pub message_thread_id: Option<i64>,
    /// Deliver without sound (`disable_notification`; default false).
    #[serde(default)]
    pub silent: bool,
    /// Show a preview of the movie's or series' TMDB/IMDb page when the message links one
    /// (default true).
    #[serde(default = "default_true")]
    pub link_preview: bool,
    /// Bot API server (default `https://api.telegram.org`); a self-hosted server on the LAN
    /// may use http:// with `allow_insecure_http: true`.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Retries of one message after a network error or 5xx (default 2, at most 10); never
    /// for 4xx. A 429 pauses the plugin instead.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The instance's common `allow_private_network` setting, copied here when the config
    /// is loaded (it is written beside `enabled`, not among this type's own fields): lets
    /// the plugin's HTTP client reach loopback, private and CGNAT addresses.
    #[serde(skip)]
    pub allow_private_network: bool,
    /// The instance's compiled `templates:` (a common field, copied here when the config
    /// is loaded); `None`: the built-in texts.
    #[serde(skip)]
    pub templates: Option<std::sync::Arc<crate::message::Templates>>,
}

fn default_api_url() -> String {
    "https://api.telegram.org".to_owned()
}

fn default_retries() -> u32 {
    2
}

fn default_true() -> bool {
    true
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            bot_token: None,
            chat_id: None,
            message_thread_id: None,
            silent: false,
            link_preview: true,
            api_url: default_api_url(),
            retries: default_retries(),
            allow_private_network: false,
            templates: None,
        }
    }
}

/// A Telegram chat: a numeric id or a public `@username`. Chat ids are not secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatId {
    /// A user, group, supergroup or channel id (groups and channels are negative).
    Id(i64),
    /// A public channel or supergroup, `@` included.
    Username(String),
}

impl ChatId {
    /// The value sent as `chat_id`: a JSON number or the `@username` string.
    pub fn to_json(&self) -> Value {
        match self {
            ChatId::Id(id) => json!(id),
            ChatId::Username(name) => json!(name),
        }
    }
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatId::Id(id) => write!(f, "{id}"),
            ChatId::Username(name) => f.write_str(name),
        }
    }
}

impl From<&str> for ChatId {
    /// A number in text (as `${VAR}` gives it) is an id; anything else a username.
    fn from(s: &str) -> Self {
        let s = s.trim();
        match s.parse::<i64>() {
            Ok(id) => ChatId::Id(id),
            Err(_) => ChatId::Username(s.to_owned()),
        }
    }
}

impl<'de> Deserialize<'de> for ChatId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ChatId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a chat id (e.g. -1001234567890) or a channel's @username")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ChatId, E> {
                Ok(ChatId::Id(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ChatId, E> {
                i64::try_from(v)
                    .map(ChatId::Id)
                    .map_err(|_| E::custom("chat id is too large"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ChatId, E> {
                Ok(ChatId::from(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl TelegramConfig {
    /// Pure checks of the Telegram fields. Never echoes the token.
    pub fn validate(&self, path: &str, common: &CommonSettings, problems: &mut Problems) {
        crate::config::validate::check_url(
            problems,
            &format!("{path}.api_url"),
            &self.api_url,
            common.allow_insecure_http,
        );
        if reqwest::Url::parse(&self.api_url)
            .is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
        {
            problems.push(
                format!("{path}.api_url"),
                "must not contain credentials (`user:password@`)",
            );
        }
        let token = self
            .bot_token
            .as_ref()
            .map(|t| t.expose_secret().trim())
            .filter(|t| !t.is_empty());
        match token {
            None if common.enabled => problems.push(
                format!("{path}.bot_token"),
                "is required when the plugin is enabled; create a bot with @BotFather and use \
                 its token, e.g. `bot_token: ${TELEGRAM_BOT_TOKEN}`",
            ),
            Some(t) if !is_plausible_token(t) => problems.push(
                format!("{path}.bot_token"),
                "does not look like a bot token: @BotFather gives `<digits>:<letters, digits, - or _>`",
            ),
            _ => {}
        }
        match &self.chat_id {
            None if common.enabled => problems.push(
                format!("{path}.chat_id"),
                "is required when the plugin is enabled: a numeric chat id (e.g. -1001234567890) \
                 or a public channel's @username",
            ),
            Some(ChatId::Id(0)) => problems.push(format!("{path}.chat_id"), "must not be 0"),
            Some(ChatId::Username(name)) if !is_valid_username(name) => problems.push(
                format!("{path}.chat_id"),
                format!(
                    "`{name}` is neither a number nor a @username (`@` then up to 32 letters, \
                     digits or `_`)"
                ),
            ),
            _ => {}
        }
        if self.message_thread_id.is_some_and(|t| t <= 0) {
            problems.push(
                format!("{path}.message_thread_id"),
                "must be a positive topic id",
            );
        }
        if self.retries > MAX_RETRIES {
            problems.push(
                format!("{path}.retries"),
                format!(
                    "must be at most {MAX_RETRIES}, got {}; longer outages are handled by the circuit breaker",
                    self.retries
                ),
            );
        }
    }
}

/// `<bot id>:<secret>`, as @BotFather hands them out.
pub(super) fn is_plausible_token(t: &str) -> bool {
    t.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Characters a token may have and still be one URL path segment as it is.
pub(super) fn is_path_safe(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'-' | b'_'))
}

fn is_valid_username(name: &str) -> bool {
    name.strip_prefix('@').is_some_and(|n| {
        (1..=32).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// The config's JSON schema, for the API and docs.
/// The config schema: field name → type, default and meaning.
pub(crate) fn config_schema() -> Value {
    json!({
        "type": "object",
        "required": ["bot_token", "chat_id"],
        "properties": {
            "bot_token": {"type": "string", "description": "bot token from @BotFather; secret (it is part of every request URL)"},
            "chat_id": {"type": ["integer", "string"], "description": "numeric chat id (groups are negative) or a public channel's @username"},
            "message_thread_id": {"type": "integer", "minimum": 1, "description": "forum topic to post in"},
            "silent": {"type": "boolean", "default": false, "description": "deliver without sound (disable_notification)"},
            "link_preview": {"type": "boolean", "default": true, "description": "preview the TMDB/IMDb page when the message links one"},
            "api_url": {"type": "string", "default": "https://api.telegram.org", "description": "Bot API server; http:// needs allow_insecure_http"},
            "retries": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES, "default": 2, "description": "retries after network errors and 5xx"},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::registry::testing::{common, problem_lines};

    fn problems_with(yaml: &str, common: &CommonSettings) -> Vec<String> {
        let config: TelegramConfig = serde_yaml::from_str(yaml).expect("parses");
        problem_lines(|p| config.validate("plugins.telegram", common, p))
    }

    fn problems(yaml: &str) -> Vec<String> {
        problems_with(yaml, &common(true, false))
    }

    const GOOD: &str =
        "bot_token: '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw'\nchat_id: -1001234567890\n";

    #[test]
    fn defaults_and_a_minimal_config_pass() {
        let config: TelegramConfig = serde_yaml::from_str(GOOD).unwrap();
        assert_eq!(config.api_url, "https://api.telegram.org");
        assert_eq!(config.chat_id, Some(ChatId::Id(-1001234567890)));
        assert_eq!(
            (
                config.silent,
                config.link_preview,
                config.retries,
                config.message_thread_id
            ),
            (false, true, 2, None)
        );
        assert!(problems(GOOD).is_empty(), "{:?}", problems(GOOD));
    }

    #[test]
    fn chat_id_is_a_number_a_numeric_string_or_a_username() {
        let parse = |v: &str| serde_yaml::from_str::<TelegramConfig>(&format!("chat_id: {v}"));
        assert_eq!(parse("42").unwrap().chat_id, Some(ChatId::Id(42)));
        // What `${TELEGRAM_CHAT_ID}` expands to: text.
        assert_eq!(
            parse("'-100987'").unwrap().chat_id,
            Some(ChatId::Id(-100987))
        );
        assert_eq!(
            parse("'@mydia_news'").unwrap().chat_id,
            Some(ChatId::Username("@mydia_news".into()))
        );
        assert!(parse("[1]").is_err());
        assert_eq!(ChatId::Id(-5).to_json(), json!(-5));
        assert_eq!(ChatId::Username("@x".into()).to_json(), json!("@x"));
    }

    #[test]
    fn rejects_unknown_field() {
        let err = serde_yaml::from_str::<TelegramConfig>("chat_id: 1\nbot_tokn: x").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `bot_tokn`"),
            "{err}"
        );
    }

    #[test]
    fn an_enabled_instance_needs_token_and_chat() {
        let got = problems("silent: true");
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].starts_with("plugins.telegram.bot_token: is required"));
        assert!(got[1].starts_with("plugins.telegram.chat_id: is required"));
        assert!(problems("bot_token: '  '\nchat_id: 1")[0].contains("bot_token: is required"));
        assert!(problems_with("silent: true", &common(false, false)).is_empty());
    }

    #[test]
    fn reports_every_problem_at_once_without_echoing_the_token() {
        let got = problems(
            "bot_token: 'not a token SECRETISH'\nchat_id: 'mychannel'\nmessage_thread_id: 0\n\
             retries: 11\napi_url: 'ftp://x'\n",
        );
        let expect = [
            "plugins.telegram.api_url: scheme `ftp`",
            "plugins.telegram.bot_token: does not look like a bot token",
            "plugins.telegram.chat_id: `mychannel` is neither",
            "plugins.telegram.message_thread_id",
            "plugins.telegram.retries",
        ];
        assert_eq!(got.len(), expect.len(), "{got:#?}");
        for e in expect {
            assert!(
                got.iter().any(|g| g.starts_with(e)),
                "missing {e}: {got:#?}"
            );
        }
        assert!(!got.iter().any(|g| g.contains("SECRETISH")));
        assert!(problems("bot_token: '1:a'\nchat_id: 0")[0].contains("must not be 0"));
    }

    #[test]
    fn http_api_url_needs_the_opt_in() {
        let yaml = format!("{GOOD}api_url: http://10.0.0.5:8081\n");
        let got = problems(&yaml);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("plugins.telegram.api_url: uses http://"));
        assert!(problems_with(&yaml, &common(true, true)).is_empty());
        let creds = problems(&format!("{GOOD}api_url: https://u:p@tg.example.com\n"));
        assert!(
            creds[0].contains("must not contain credentials"),
            "{creds:?}"
        );
    }

    #[test]
    fn token_shapes() {
        assert!(is_plausible_token(
            "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
        ));
        for bad in ["", "123", ":abc", "12a:abc", "123:", "123:ab/c", "123:a b"] {
            assert!(!is_plausible_token(bad), "{bad}");
        }
        assert!(is_path_safe("1:a-b_c"));
        assert!(!is_path_safe("1:a/../b") && !is_path_safe("1:a?x") && !is_path_safe(""));
    }

    #[test]
    fn schema_lists_every_field() {
        let schema = config_schema();
        let props = schema["properties"].as_object().unwrap();
        let yaml = "bot_token: '1:a'\nchat_id: 1\nmessage_thread_id: 2\nsilent: true\nlink_preview: false\n\
                    api_url: https://a\nretries: 1\n";
        let fields: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        serde_yaml::from_str::<TelegramConfig>(yaml).expect("every listed field exists");
        assert_eq!(props.len(), fields.len());
        for key in fields.keys() {
            assert!(props.contains_key(key.as_str().unwrap()), "{key:?}");
        }
    }
}
