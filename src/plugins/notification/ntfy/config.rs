//! `NtfyConfig`: the ntfy settings, their defaults, pure validation and the schema shown to users.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Problems;
use crate::plugins::registry::CommonSettings;

/// The most retries a config may ask for.
pub(super) const MAX_RETRIES: u32 = 10;

/// `type: ntfy` settings (the seed's fields and defaults, plus what ntfy users expect).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtfyConfig {
    /// Server base URL (default `https://ntfy.sh`).
    #[serde(default = "default_server_url")]
    pub server_url: String,
    /// Topic to publish to; required when enabled. `[-_A-Za-z0-9]{1,64}`.
    #[serde(default)]
    pub topic: Option<String>,
    /// Message priority 1..5 (default 3).
    #[serde(default = "default_priority")]
    pub priority: i64,
    /// Tags (emoji short codes) added to every message; the event's own default tags are added too.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Access token (`tk_...`) for protected topics; sent as `Authorization: Bearer`.
    #[serde(default)]
    pub auth_token: Option<SecretString>,
    /// User name for Basic auth on a self-hosted server (with `password`; instead of `auth_token`).
    #[serde(default)]
    pub username: Option<String>,
    /// Password for Basic auth (with `username`).
    #[serde(default)]
    pub password: Option<SecretString>,
    /// URL opened when the notification is tapped (e.g. your Mydia page). Without it, the
    /// movie's or series' TMDB (else IMDb) page is opened when the event names one.
    #[serde(default)]
    pub click: Option<String>,
    /// URL of a JPEG or PNG shown beside each notification (e.g. the Mydia logo).
    #[serde(default)]
    pub icon: Option<String>,
    /// Retries of one message after a network error or 5xx (default 2, at most 10); never for
    /// 4xx. A 429 pauses the plugin instead.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Let `test_connection` publish a real test message (default false: it only checks the
    /// server's health, which does not prove the topic and credentials work).
    #[serde(default)]
    pub test_publishes: bool,
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

fn default_server_url() -> String {
    "https://ntfy.sh".to_owned()
}

fn default_priority() -> i64 {
    3
}

fn default_retries() -> u32 {
    2
}

impl Default for NtfyConfig {
    fn default() -> Self {
        NtfyConfig {
            server_url: default_server_url(),
            topic: None,
            priority: default_priority(),
            tags: Vec::new(),
            auth_token: None,
            username: None,
            password: None,
            click: None,
            icon: None,
            retries: default_retries(),
            test_publishes: false,
            allow_private_network: false,
            templates: None,
        }
    }
}

impl NtfyConfig {
    /// Pure checks of the ntfy fields.
    pub fn validate(&self, path: &str, common: &CommonSettings, problems: &mut Problems) {
        crate::config::validate::check_url(
            problems,
            &format!("{path}.server_url"),
            &self.server_url,
            common.allow_insecure_http,
        );
        if reqwest::Url::parse(&self.server_url).is_ok_and(|u| has_credentials(&u)) {
            problems.push(format!("{path}.server_url"), CREDENTIALS_IN_URL);
        }
        match self.topic.as_deref() {
            None | Some("") if common.enabled => problems.push(
                format!("{path}.topic"),
                "is required when the plugin is enabled; pick a hard-to-guess topic name, e.g. mydia-7f3k2",
            ),
            Some(t) if !is_valid_topic(t) => problems.push(
                format!("{path}.topic"),
                format!("`{t}` is not a valid ntfy topic: use 1 to 64 letters, digits, `-` or `_`"),
            ),
            _ => {}
        }
        if !(1..=5).contains(&self.priority) {
            problems.push(
                format!("{path}.priority"),
                format!("must be between 1 (min) and 5 (max), got {}", self.priority),
            );
        }
        for (i, tag) in self.tags.iter().enumerate() {
            if tag.trim().is_empty() || tag.contains(',') {
                problems.push(
                    format!("{path}.tags[{i}]"),
                    format!(
                        "`{tag}` is not a usable tag: tags are non-empty and contain no commas"
                    ),
                );
            }
        }
        self.validate_auth(path, problems);
        for (field, value) in [
            (
                "auth_token",
                self.auth_token.as_ref().map(|s| s.expose_secret()),
            ),
            (
                "password",
                self.password.as_ref().map(|s| s.expose_secret()),
            ),
            ("username", self.username.as_deref()),
        ] {
            crate::config::validate::check_secret(problems, &format!("{path}.{field}"), value);
        }
        for (field, value) in [("click", &self.click), ("icon", &self.icon)] {
            if let Some(url) = value.as_deref().filter(|u| !is_web_url(u)) {
                problems.push(
                    format!("{path}.{field}"),
                    format!("`{url}` is not an http:// or https:// URL"),
                );
            }
        }
        if self.retries > MAX_RETRIES {
            problems.push(
                format!("{path}.retries"),
                format!("must be at most {MAX_RETRIES}, got {}; longer outages are handled by the circuit breaker", self.retries),
            );
        }
    }

    fn validate_auth(&self, path: &str, problems: &mut Problems) {
        let user = self.username.as_deref().filter(|u| !u.is_empty());
        let pass = self
            .password
            .as_ref()
            .filter(|p| !p.expose_secret().is_empty());
        match (user, pass) {
            (Some(_), None) => {
                problems.push(format!("{path}.password"), "is required with `username`")
            }
            (None, Some(_)) => {
                problems.push(format!("{path}.username"), "is required with `password`")
            }
            (Some(u), Some(_)) if u.contains(':') => problems.push(
                format!("{path}.username"),
                "must not contain `:` (Basic auth cannot carry it)",
            ),
            _ => {}
        }
        if self.auth_token.is_some() && (user.is_some() || pass.is_some()) {
            problems.push(
                format!("{path}.auth_token"),
                "set either `auth_token` or `username`/`password`, not both",
            );
        }
    }
}

/// ntfy topic names: `[-_A-Za-z0-9]{1,64}`.
pub fn is_valid_topic(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Why `user:password@` in `server_url` is refused: the URL is shown in logs and reports,
/// and credentials have fields of their own that stay secret.
pub(super) const CREDENTIALS_IN_URL: &str =
    "must not contain credentials (`user:password@`): they would show wherever the URL is shown; \
     use `username`/`password` or `auth_token`";

/// Whether a URL carries a user name or password.
pub(super) fn has_credentials(url: &reqwest::Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

fn is_web_url(s: &str) -> bool {
    reqwest::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// The config's JSON schema, for the API and docs.
/// The config schema: field name → type, default and meaning.
pub(crate) fn config_schema() -> Value {
    let field = |kind: &str, about: &str| json!({"type": kind, "description": about});
    json!({
        "type": "object",
        "required": ["topic"],
        "properties": {
            "server_url": {"type": "string", "default": "https://ntfy.sh", "description": "server base URL; http:// needs allow_insecure_http"},
            "topic": field("string", "topic to publish to: 1 to 64 letters, digits, - or _"),
            "priority": {"type": "integer", "minimum": 1, "maximum": 5, "default": 3, "description": "1 (min) to 5 (max)"},
            "tags": {"type": "array", "items": {"type": "string"}, "default": [], "description": "added to every message, before the event's own emoji tag"},
            "auth_token": field("string", "access token (tk_...), sent as a Bearer token; secret"),
            "username": field("string", "Basic auth user, with password (instead of auth_token)"),
            "password": field("string", "Basic auth password; secret"),
            "click": field("string", "URL opened on tap; default: the TMDB or IMDb page when known"),
            "icon": field("string", "URL of a JPEG or PNG icon"),
            "retries": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES, "default": 2, "description": "retries after network errors and 5xx"},
            "test_publishes": {"type": "boolean", "default": false, "description": "test_connection also publishes a test message"},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::registry::testing::problem_lines;

    fn common(enabled: bool) -> CommonSettings {
        crate::plugins::registry::testing::common(enabled, false)
    }

    fn problems(yaml: &str) -> Vec<String> {
        let config: NtfyConfig = serde_yaml::from_str(yaml).expect("parses");
        problem_lines(|p| config.validate("plugins.ntfy", &common(true), p))
    }

    #[test]
    fn seed_defaults_and_a_minimal_config_pass() {
        let config: NtfyConfig = serde_yaml::from_str("topic: mydia-7f3k2").unwrap();
        assert_eq!(config.server_url, "https://ntfy.sh");
        assert_eq!(
            (config.priority, config.retries, config.test_publishes),
            (3, 2, false)
        );
        assert!(problems("topic: mydia-7f3k2").is_empty());
    }

    #[test]
    fn rejects_unknown_field() {
        let err = serde_yaml::from_str::<NtfyConfig>("topic: t\nauth_tokn: tk_x").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `auth_tokn`"),
            "{err}"
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let got = problems(
            "topic: 'bad topic'\npriority: 9\ntags: ['', 'a,b']\nclick: 'javascript:alert(1)'\n\
             icon: ftp://x/i.png\nretries: 11\nauth_token: tk_1\nusername: u\n",
        );
        let expect = [
            "plugins.ntfy.topic",
            "plugins.ntfy.priority",
            "plugins.ntfy.tags[0]",
            "plugins.ntfy.tags[1]",
            "plugins.ntfy.click",
            "plugins.ntfy.icon",
            "plugins.ntfy.retries",
            "plugins.ntfy.password: is required with `username`",
            "plugins.ntfy.auth_token: set either",
        ];
        assert_eq!(got.len(), expect.len(), "{got:#?}");
        for e in expect {
            assert!(
                got.iter().any(|g| g.starts_with(e)),
                "missing {e}: {got:#?}"
            );
        }
    }

    #[test]
    fn basic_auth_needs_both_halves_and_no_colon() {
        assert!(problems("topic: t\nusername: me\npassword: pw").is_empty());
        assert!(problems("topic: t\npassword: pw")[0].starts_with("plugins.ntfy.username"));
        assert!(
            problems("topic: t\nusername: 'a:b'\npassword: pw")[0].contains("must not contain `:`")
        );
        let in_url = problems("topic: t\nserver_url: https://me:secret@ntfy.example.com");
        assert_eq!(in_url.len(), 1, "{in_url:?}");
        assert!(in_url[0].starts_with("plugins.ntfy.server_url: must not contain credentials"));
        assert!(!in_url[0].contains("secret"));
    }

    #[test]
    fn schema_lists_every_field() {
        let schema = config_schema();
        let props = schema["properties"].as_object().unwrap();
        let yaml = "server_url: https://ntfy.sh\ntopic: t\npriority: 3\ntags: []\nauth_token: x\nusername: u\n\
                    password: p\nclick: https://a\nicon: https://b\nretries: 1\ntest_publishes: true\n";
        let fields: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        serde_yaml::from_str::<NtfyConfig>(yaml).expect("every listed field exists");
        assert_eq!(props.len(), fields.len());
        for key in fields.keys() {
            assert!(props.contains_key(key.as_str().unwrap()), "{key:?}");
        }
    }
}
