//! `PushoverConfig`: the Pushover settings, their defaults, pure validation and the schema shown to users.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Problems;
use crate::plugins::registry::CommonSettings;

/// Emergency priority: repeats every `retry` seconds until acknowledged or `expire` passes.
pub(super) const EMERGENCY: i64 = 2;
/// Pushover's shortest emergency repeat, in seconds.
pub(super) const MIN_EMERGENCY_RETRY: u32 = 30;
/// Pushover's longest emergency repeat window, in seconds (3 hours).
pub(super) const MAX_EMERGENCY_EXPIRE: u32 = 10_800;

/// `type: pushover` settings (the seed's `user_key`, `api_token`, `priority` 0, plus the
/// message options Pushover users expect).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushoverConfig {
    /// Your user key (or a group key) from the Pushover dashboard; required when enabled. Secret.
    #[serde(default)]
    pub user_key: Option<SecretString>,
    /// The API token of an application you created at pushover.net/apps; required when
    /// enabled. Secret.
    #[serde(default)]
    pub api_token: Option<SecretString>,
    /// -2 (no alert), -1 (quiet), 0 (normal, the default), 1 (high, bypasses quiet hours)
    /// or 2 (emergency: repeats until acknowledged; needs `retry` and `expire`).
    #[serde(default)]
    pub priority: i64,
    /// Device name(s) to notify, comma-separated (default: all of the user's devices).
    #[serde(default)]
    pub device: Option<String>,
    /// Notification sound, e.g. `pushover`, `magic`, `none` (default: the user's choice).
    #[serde(default)]
    pub sound: Option<String>,
    /// Priority 2 only: seconds between repeats, at least 30.
    #[serde(default)]
    pub retry: Option<u32>,
    /// Priority 2 only: seconds to keep repeating, at most 10800 (3 hours).
    #[serde(default)]
    pub expire: Option<u32>,
    /// API server (default `https://api.pushover.net`); tests and proxies may point elsewhere.
    #[serde(default = "default_api_url")]
    pub api_url: String,
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
    "https://api.pushover.net".to_owned()
}

impl Default for PushoverConfig {
    fn default() -> Self {
        PushoverConfig {
            user_key: None,
            api_token: None,
            priority: 0,
            device: None,
            sound: None,
            retry: None,
            expire: None,
            api_url: default_api_url(),
            allow_private_network: false,
            templates: None,
        }
    }
}

impl PushoverConfig {
    /// Pure checks of the Pushover fields. Never echoes a key.
    ///
    /// Keys are not checked for Pushover's 30-character shape: the seed's own example uses
    /// `"xxxxx"` placeholders and must load; the connection test and the first message
    /// report a wrong key with Pushover's own words.
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
        for (field, value, how) in [
            (
                "user_key",
                &self.user_key,
                "your user key is on the Pushover dashboard",
            ),
            (
                "api_token",
                &self.api_token,
                "create an application at https://pushover.net/apps",
            ),
        ] {
            crate::config::validate::check_secret(
                problems,
                &format!("{path}.{field}"),
                value.as_ref().map(|v| v.expose_secret()),
            );
            if common.enabled && !is_set(value.as_ref()) {
                problems.push(
                    format!("{path}.{field}"),
                    format!("is required when the plugin is enabled; {how}, e.g. `{field}: ${{PUSHOVER_{}}}`", field.to_ascii_uppercase()),
                );
            }
        }
        if let Some(message) = priority_problem(self.priority) {
            problems.push(format!("{path}.priority"), message);
        }
        for (field, message) in emergency_problems(self) {
            problems.push(format!("{path}.{field}"), message);
        }
        if let Some(device) = &self.device {
            if !device.split(',').all(|d| is_device_name(d.trim())) {
                problems.push(
                    format!("{path}.device"),
                    format!("`{device}` is not a device name or a comma-separated list of them (up to 25 letters, digits, `_` or `-` each)"),
                );
            }
        }
        if let Some(sound) = &self.sound {
            if sound.is_empty()
                || sound.len() > 64
                || sound
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == ',')
            {
                problems.push(
                    format!("{path}.sound"),
                    format!("`{sound}` is not a sound name (e.g. `pushover`, `magic`, `none`)"),
                );
            }
        }
    }
}

fn is_set(secret: Option<&SecretString>) -> bool {
    secret.is_some_and(|s| !s.expose_secret().trim().is_empty())
}

/// Why `priority` is unusable, if it is.
pub(super) fn priority_problem(priority: i64) -> Option<String> {
    (!(-2..=2).contains(&priority))
        .then(|| format!("must be between -2 (no alert) and 2 (emergency), got {priority}"))
}

/// Problems with `retry` and `expire`: required for priority 2, in Pushover's ranges when set.
pub(super) fn emergency_problems(c: &PushoverConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let emergency = c.priority == EMERGENCY;
    match c.retry {
        None if emergency => out.push(("retry", format!("is required with priority 2: seconds between repeats, at least {MIN_EMERGENCY_RETRY}"))),
        Some(r) if r < MIN_EMERGENCY_RETRY => out.push(("retry", format!("must be at least {MIN_EMERGENCY_RETRY} seconds, got {r}"))),
        _ => {}
    }
    match c.expire {
        None if emergency => out.push(("expire", format!("is required with priority 2: seconds to keep repeating, at most {MAX_EMERGENCY_EXPIRE}"))),
        Some(e) if e == 0 || e > MAX_EMERGENCY_EXPIRE => out.push(("expire", format!("must be 1 to {MAX_EMERGENCY_EXPIRE} seconds (3 hours), got {e}"))),
        _ => {}
    }
    out
}

fn is_device_name(d: &str) -> bool {
    (1..=25).contains(&d.len())
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The config's JSON schema, for the API and docs.
/// The config schema: field name → type, default and meaning.
pub(crate) fn config_schema() -> Value {
    json!({
        "type": "object",
        "required": ["user_key", "api_token"],
        "properties": {
            "user_key": {"type": "string", "description": "user or group key; secret"},
            "api_token": {"type": "string", "description": "application API token; secret"},
            "priority": {"type": "integer", "minimum": -2, "maximum": 2, "default": 0, "description": "-2 no alert .. 2 emergency (needs retry and expire)"},
            "device": {"type": "string", "description": "device name(s), comma-separated; default all devices"},
            "sound": {"type": "string", "description": "notification sound; default the user's choice"},
            "retry": {"type": "integer", "minimum": MIN_EMERGENCY_RETRY, "description": "priority 2: seconds between repeats"},
            "expire": {"type": "integer", "minimum": 1, "maximum": MAX_EMERGENCY_EXPIRE, "description": "priority 2: seconds to keep repeating"},
            "api_url": {"type": "string", "default": "https://api.pushover.net", "description": "API server; http:// needs allow_insecure_http"},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::registry::testing::{common, problem_lines};

    fn problems_with(yaml: &str, common: &CommonSettings) -> Vec<String> {
        let config: PushoverConfig = serde_yaml::from_str(yaml).expect("parses");
        problem_lines(|p| config.validate("plugins.pushover", common, p))
    }

    fn problems(yaml: &str) -> Vec<String> {
        problems_with(yaml, &common(true, false))
    }

    const KEYS: &str =
        "user_key: uQiRzpo4DXghDmr9QzzfQu27cmVRsG\napi_token: azGDORePK8gMaC0QOYAMyEEuzJnyUi\n";

    #[test]
    fn seed_defaults_and_the_seed_example_pass() {
        let config: PushoverConfig = serde_yaml::from_str(KEYS).unwrap();
        assert_eq!(
            (config.priority, config.api_url.as_str()),
            (0, "https://api.pushover.net")
        );
        assert_eq!(
            (config.retry, config.expire, config.device, config.sound),
            (None, None, None, None)
        );
        assert!(problems(KEYS).is_empty());
        assert!(problems("user_key: \"xxxxx\"\napi_token: \"xxxxx\"\npriority: 0").is_empty());
    }

    #[test]
    fn rejects_unknown_field() {
        let err = serde_yaml::from_str::<PushoverConfig>("user_key: u\nuser_keys: x").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `user_keys`"),
            "{err}"
        );
    }

    #[test]
    fn an_enabled_instance_needs_both_keys() {
        let got = problems("priority: 1\napi_token: ' '");
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(
            got[0].starts_with("plugins.pushover.user_key: is required"),
            "{got:?}"
        );
        assert!(
            got[1].starts_with("plugins.pushover.api_token: is required"),
            "{got:?}"
        );
        assert!(got[1].contains("${PUSHOVER_API_TOKEN}"), "{got:?}");
        assert!(problems_with("priority: 1", &common(false, false)).is_empty());
    }

    #[test]
    fn priority_must_be_in_range() {
        for p in [-3, 3, 100] {
            let got = problems(&format!("{KEYS}priority: {p}"));
            assert_eq!(got.len(), 1, "{got:?}");
            assert!(
                got[0].starts_with("plugins.pushover.priority: must be between -2"),
                "{got:?}"
            );
        }
        for p in -2..=1 {
            assert!(problems(&format!("{KEYS}priority: {p}")).is_empty(), "{p}");
        }
    }

    #[test]
    fn emergency_priority_needs_retry_and_expire_in_range() {
        let got = problems(&format!("{KEYS}priority: 2"));
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("plugins.pushover.retry: is required with priority 2"));
        assert!(got[1].starts_with("plugins.pushover.expire: is required with priority 2"));
        let got = problems(&format!("{KEYS}priority: 2\nretry: 29\nexpire: 10801"));
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("plugins.pushover.retry: must be at least 30"));
        assert!(got[1].starts_with("plugins.pushover.expire: must be 1 to 10800"));
        assert!(problems(&format!("{KEYS}priority: 2\nretry: 30\nexpire: 10800")).is_empty());
        // Kept for when priority goes back to 2; still checked.
        assert!(problems(&format!("{KEYS}priority: 1\nretry: 60\nexpire: 3600")).is_empty());
        assert_eq!(problems(&format!("{KEYS}retry: 5")).len(), 1);
    }

    #[test]
    fn reports_every_problem_at_once_without_echoing_keys() {
        let got = problems(
            "user_key: SECRETUSER\napi_url: http://pushover.lan\npriority: 2\ndevice: 'phone, bad device'\nsound: ''\n",
        );
        let expect = [
            "plugins.pushover.api_url: uses http://",
            "plugins.pushover.api_token: is required",
            "plugins.pushover.retry",
            "plugins.pushover.expire",
            "plugins.pushover.device",
            "plugins.pushover.sound",
        ];
        assert_eq!(got.len(), expect.len(), "{got:#?}");
        for e in expect {
            assert!(
                got.iter().any(|g| g.starts_with(e)),
                "missing {e}: {got:#?}"
            );
        }
        assert!(!got.iter().any(|g| g.contains("SECRETUSER")));
        assert!(problems(&format!("{KEYS}device: 'iphone,pixel-7'")).is_empty());
    }

    #[test]
    fn http_api_url_needs_the_opt_in() {
        let yaml = format!("{KEYS}api_url: http://127.0.0.1:8080");
        assert_eq!(problems(&yaml).len(), 1);
        assert!(problems_with(&yaml, &common(true, true)).is_empty());
    }

    #[test]
    fn schema_lists_every_field() {
        let schema = config_schema();
        let props = schema["properties"].as_object().unwrap();
        let yaml = "user_key: u\napi_token: t\npriority: 2\ndevice: d\nsound: s\nretry: 30\nexpire: 60\napi_url: https://a\n";
        let fields: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        serde_yaml::from_str::<PushoverConfig>(yaml).expect("every listed field exists");
        assert_eq!(props.len(), fields.len());
        for key in fields.keys() {
            assert!(props.contains_key(key.as_str().unwrap()), "{key:?}");
        }
    }
}
