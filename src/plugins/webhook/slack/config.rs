//! `SlackConfig`: the Slack webhook settings, their defaults and pure validation.
//!
//! The webhook URL is the secret (anyone with it can post), so no problem or error here
//! ever quotes it; problems say which part is wrong instead.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Problems;
use crate::plugins::registry::CommonSettings;

/// The most retries a config may ask for.
pub(super) const MAX_RETRIES: u32 = 10;

/// `type: slack` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming webhook URL (`https://hooks.slack.com/services/T…/B…/…`); required when
    /// enabled. Secret: anyone with it can post. The channel, name and icon are the
    /// webhook's own: Slack app webhooks cannot change them per message.
    #[serde(default)]
    pub webhook_url: Option<SecretString>,
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

fn default_retries() -> u32 {
    2
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            webhook_url: None,
            retries: default_retries(),
            allow_private_network: false,
            templates: None,
        }
    }
}

impl SlackConfig {
    /// Pure checks of the Slack fields. Never quotes the webhook URL.
    pub fn validate(&self, path: &str, common: &CommonSettings, problems: &mut Problems) {
        let url_path = format!("{path}.webhook_url");
        // A disabled instance's URL is never used, so it is not checked: placeholders load,
        // as the seed's disabled `discord` with `https://discord.com/api/webhooks/...` must.
        let url = self.webhook_url.as_ref().map(|u| u.expose_secret().trim());
        crate::config::validate::check_secret(problems, &url_path, url);
        match url {
            _ if !common.enabled => {}
            None | Some("") => problems.push(
                url_path,
                "is required when the plugin is enabled; create one in your Slack app under \
                 Features → Incoming Webhooks → Add New Webhook to Workspace",
            ),
            Some(url) => {
                if let Err(why) = parse_webhook_url(url, common.allow_insecure_http) {
                    problems.push(url_path, why);
                }
            }
        }
        if self.retries > MAX_RETRIES {
            problems.push(
                format!("{path}.retries"),
                format!("must be at most {MAX_RETRIES}, got {}; longer outages are handled by the circuit breaker", self.retries),
            );
        }
    }
}

/// The webhook URL, parsed: http(s) (http only with `allow_insecure_http`), a host, no
/// credentials. Any host and path (Slack-compatible servers take the same JSON). The
/// error never quotes the URL.
pub(super) fn parse_webhook_url(
    url: &str,
    allow_insecure_http: bool,
) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
        format!(
            "is not a valid URL ({e}); copy it again from your Slack app's Incoming Webhooks page"
        )
    })?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_insecure_http => {}
        "http" => {
            return Err(
                "uses http://, which sends the webhook secret unencrypted; use https://, \
                        or set `allow_insecure_http: true` on this plugin for a server on your LAN"
                    .to_owned(),
            )
        }
        other => return Err(format!("scheme `{other}` is not supported; use https://")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("has no host; write e.g. https://hooks.slack.com/services/…".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not contain `user:password@`".to_owned());
    }
    Ok(parsed)
}

/// The config's JSON schema, for the API and docs.
/// The config schema: field name → type, default and meaning.
pub(crate) fn config_schema() -> Value {
    json!({
        "type": "object",
        "required": ["webhook_url"],
        "properties": {
            "webhook_url": {"type": "string", "description": "https://hooks.slack.com/services/T…/B…/…; secret"},
            "retries": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES, "default": 2, "description": "retries after network errors and 5xx"},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::registry::testing::{common, problem_lines};

    const URL: &str = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX";

    fn problems_with(yaml: &str, common: &CommonSettings) -> Vec<String> {
        let config: SlackConfig = serde_yaml::from_str(yaml).expect("parses");
        problem_lines(|p| config.validate("plugins.slack", common, p))
    }

    fn problems(yaml: &str) -> Vec<String> {
        problems_with(yaml, &common(true, false))
    }

    #[test]
    fn a_minimal_config_passes_with_defaults() {
        let config: SlackConfig = serde_yaml::from_str(&format!("webhook_url: {URL}")).unwrap();
        assert_eq!(config.retries, 2);
        assert!(problems(&format!("webhook_url: {URL}")).is_empty());
        assert!(
            problems("webhook_url: https://chat.example.com/hooks/abc").is_empty(),
            "any https URL: Slack-compatible servers take the same JSON"
        );
    }

    #[test]
    fn rejects_unknown_field() {
        for typo in ["webhook: x", "channel: '#media'", "username: Mydia"] {
            let err = serde_yaml::from_str::<SlackConfig>(typo).unwrap_err();
            assert!(err.to_string().contains("unknown field"), "{typo}: {err}");
        }
    }

    #[test]
    fn webhook_url_is_required_only_when_enabled() {
        let got = problems("retries: 1");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("plugins.slack.webhook_url: is required"));
        assert!(problems_with("retries: 1", &common(false, false)).is_empty());
        let placeholder = "webhook_url: 'hooks.slack.com/services/...'";
        assert!(problems_with(placeholder, &common(false, false)).is_empty());
        assert_eq!(problems(placeholder).len(), 1);
    }

    #[test]
    fn http_needs_the_opt_in_and_bad_urls_are_not_quoted() {
        let http = "webhook_url: http://127.0.0.1:9/services/T/B/SECRETxyz";
        let got = problems(http);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("allow_insecure_http: true"));
        assert!(problems_with(http, &common(true, true)).is_empty());
        for bad in [
            "hooks.slack.com/services/T/B/SECRETxyz",
            "ftp://hooks.slack.com/services/T/B/SECRETxyz",
            "https://u:SECRETxyz@hooks.slack.com/services/T/B/SECRETxyz",
        ] {
            let got = problems(&format!("webhook_url: '{bad}'"));
            assert_eq!(got.len(), 1, "{bad}: {got:?}");
            assert!(!got[0].contains("SECRETxyz"), "quoted the URL: {got:?}");
        }
        let got = problems(&format!("webhook_url: {URL}\nretries: 11"));
        assert!(got[0].starts_with("plugins.slack.retries"), "{got:?}");
    }

    #[test]
    fn debug_output_never_shows_the_url() {
        let config: SlackConfig = serde_yaml::from_str(&format!("webhook_url: {URL}")).unwrap();
        assert!(!format!("{config:?}").contains("XXXXXXXX"));
    }

    #[test]
    fn schema_lists_every_field() {
        let schema = config_schema();
        let props = schema["properties"].as_object().unwrap();
        let yaml = format!("webhook_url: {URL}\nretries: 1\n");
        let fields: serde_yaml::Mapping = serde_yaml::from_str(&yaml).unwrap();
        serde_yaml::from_str::<SlackConfig>(&yaml).expect("every listed field exists");
        assert_eq!(props.len(), fields.len());
    }
}
