//! `FanartConfig`: the Fanart.tv settings, their defaults, pure validation and the schema shown to users.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Problems;
use crate::plugins::registry::CommonSettings;

/// The most retries a config may ask for: enrichment holds up every notification of the event.
pub(super) const MAX_RETRIES: u32 = 3;

/// `type: fanart` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanartConfig {
    /// Project API key from fanart.tv; required when enabled. Sent as the `api-key` header,
    /// never in the URL.
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// Personal API key of a fanart.tv user (optional; gets newer art sooner). Sent as `client-key`.
    #[serde(default)]
    pub client_key: Option<SecretString>,
    /// Preferred image language, two letters (default `en`). Images in it come first, then
    /// English, then images without text.
    #[serde(default = "default_language")]
    pub language: String,
    /// API base URL (default `https://webservice.fanart.tv`).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// How long an answer, "no art" included, is reused for the same id, in seconds
    /// (default 86400, one day; 0 turns the cache off).
    #[serde(default = "default_cache_ttl_secs")]
    pub cache_ttl_secs: u64,
    /// Let the Fanart poster replace the event's `poster_url` (default false: it only fills
    /// a missing one; `media_item.fanart.poster` always has it).
    #[serde(default)]
    pub replace_poster: bool,
    /// Retries after a network error or 5xx (default 1, at most 3); never after 4xx or 429.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The instance's common `allow_private_network` setting, copied here when the config
    /// is loaded (it is written beside `enabled`, not among this type's own fields): lets
    /// the plugin's HTTP client reach loopback, private and CGNAT addresses.
    #[serde(skip)]
    pub allow_private_network: bool,
}

fn default_language() -> String {
    "en".to_owned()
}

fn default_api_url() -> String {
    "https://webservice.fanart.tv".to_owned()
}

fn default_cache_ttl_secs() -> u64 {
    24 * 3600
}

fn default_retries() -> u32 {
    1
}

impl Default for FanartConfig {
    fn default() -> Self {
        FanartConfig {
            api_key: None,
            client_key: None,
            language: default_language(),
            api_url: default_api_url(),
            cache_ttl_secs: default_cache_ttl_secs(),
            replace_poster: false,
            retries: default_retries(),
            allow_private_network: false,
        }
    }
}

impl FanartConfig {
    /// Pure checks of the Fanart.tv fields. Never quotes a key.
    pub fn validate(&self, path: &str, common: &CommonSettings, problems: &mut Problems) {
        crate::config::validate::check_url(
            problems,
            &format!("{path}.api_url"),
            &self.api_url,
            common.allow_insecure_http,
        );
        match self.api_key.as_ref().map(|k| k.expose_secret().trim()) {
            None | Some("") if common.enabled => problems.push(
                format!("{path}.api_key"),
                "is required when the plugin is enabled; get a project key at https://fanart.tv/get-an-api-key/",
            ),
            Some(k) if !is_header_safe(k) => {
                problems.push(format!("{path}.api_key"), NOT_A_KEY)
            }
            _ => {}
        }
        if let Some(k) = self.client_key.as_ref().map(|k| k.expose_secret().trim()) {
            if !k.is_empty() && !is_header_safe(k) {
                problems.push(format!("{path}.client_key"), NOT_A_KEY);
            }
        }
        if !is_language(&self.language) {
            problems.push(
                format!("{path}.language"),
                format!(
                    "`{}` is not a two-letter language code such as en, de or ja",
                    self.language
                ),
            );
        }
        if self.retries > MAX_RETRIES {
            problems.push(
                format!("{path}.retries"),
                format!(
                    "must be at most {MAX_RETRIES}, got {}; enrichment delays every notification of the event",
                    self.retries
                ),
            );
        }
    }
}

/// Why a key is refused (without quoting it).
pub(super) const NOT_A_KEY: &str =
    "does not look like a fanart.tv key: it must be printable text without spaces";

/// Printable ASCII without spaces: what fits in a header and what fanart.tv hands out.
pub(super) fn is_header_safe(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Two ASCII letters.
pub(super) fn is_language(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic())
}

/// The config's JSON schema, for the API and docs.
/// The config schema: field name → type, default and meaning.
pub(crate) fn config_schema() -> Value {
    json!({
        "type": "object",
        "required": ["api_key"],
        "properties": {
            "api_key": {"type": "string", "description": "fanart.tv project API key, sent as the api-key header; secret"},
            "client_key": {"type": "string", "description": "personal fanart.tv key, sent as the client-key header; secret"},
            "language": {"type": "string", "default": "en", "description": "preferred image language (two letters); then English, then textless"},
            "api_url": {"type": "string", "default": "https://webservice.fanart.tv", "description": "API base URL; http:// needs allow_insecure_http"},
            "cache_ttl_secs": {"type": "integer", "minimum": 0, "default": 86400, "description": "seconds an answer (no art included) is reused; 0 turns the cache off"},
            "replace_poster": {"type": "boolean", "default": false, "description": "the Fanart poster replaces the event's poster_url instead of only filling a missing one"},
            "retries": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES, "default": 1, "description": "retries after network errors and 5xx"},
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

    fn problems(yaml: &str, enabled: bool) -> Vec<String> {
        let config: FanartConfig = serde_yaml::from_str(yaml).expect("parses");
        problem_lines(|p| config.validate("plugins.fanart", &common(enabled), p))
    }

    #[test]
    fn defaults_and_a_minimal_config_pass() {
        let config: FanartConfig = serde_yaml::from_str("api_key: k123").unwrap();
        assert_eq!(config.language, "en");
        assert_eq!(config.api_url, "https://webservice.fanart.tv");
        assert_eq!((config.cache_ttl_secs, config.retries), (86400, 1));
        assert!(!config.replace_poster);
        assert!(problems("api_key: k123", true).is_empty());
        assert!(
            problems("{}", false).is_empty(),
            "a key is only needed when enabled"
        );
    }

    #[test]
    fn rejects_unknown_field() {
        let err = serde_yaml::from_str::<FanartConfig>("api_key: k\napikey: k").unwrap_err();
        assert!(err.to_string().contains("unknown field `apikey`"), "{err}");
    }

    #[test]
    fn reports_every_problem_at_once_without_quoting_keys() {
        let got = problems(
            "client_key: 'SECRET_CLIENT with space'\nlanguage: english\napi_url: http://x\nretries: 4",
            true,
        );
        let expect = [
            "plugins.fanart.api_url: uses http://",
            "plugins.fanart.api_key: is required",
            "plugins.fanart.client_key: does not look like",
            "plugins.fanart.language",
            "plugins.fanart.retries",
        ];
        assert_eq!(got.len(), expect.len(), "{got:#?}");
        for e in expect {
            assert!(
                got.iter().any(|g| g.starts_with(e)),
                "missing {e}: {got:#?}"
            );
        }
        assert!(!format!("{got:?}").contains("SECRET_CLIENT"));
        let bad_key = problems("api_key: \"SECRET_KEY\\r\\nx: y\"", true);
        assert_eq!(bad_key.len(), 1, "{bad_key:?}");
        assert!(!bad_key[0].contains("SECRET_KEY"));
    }

    #[test]
    fn schema_lists_every_field() {
        let yaml =
            "api_key: a\nclient_key: b\nlanguage: de\napi_url: https://x\ncache_ttl_secs: 1\n\
                    replace_poster: true\nretries: 0\n";
        serde_yaml::from_str::<FanartConfig>(yaml).expect("every listed field exists");
        let fields: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        let schema = config_schema();
        let props = schema["properties"].as_object().unwrap();
        assert_eq!(props.len(), fields.len());
        for key in fields.keys() {
            assert!(props.contains_key(key.as_str().unwrap()), "{key:?}");
        }
    }
}
