//! `DiscordConfig`: the Discord webhook settings, their defaults, pure validation and the schema shown to users.
//!
//! The webhook URL carries the token that lets anyone post as the webhook, so the whole
//! URL is a secret: no problem, error or `Debug` output here ever quotes it. Problems say
//! which part is wrong instead.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Problems;
use crate::plugins::registry::CommonSettings;

/// The most retries a config may ask for.
pub(super) const MAX_RETRIES: u32 = 10;

/// Where a user finds the URL, for problems that ask them to copy it again.
const WHERE_TO_FIND: &str =
    "copy it from Discord: Server Settings → Integrations → Webhooks → Copy Webhook URL";

/// `type: discord` settings (the seed's fields and defaults, plus what Discord users expect).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// The webhook URL, `https://discord.com/api/webhooks/<id>/<token>`; required when
    /// enabled. Secret: the token in it lets anyone post. Append `?thread_id=<id>` to post
    /// into a thread or forum post.
    #[serde(default)]
    pub webhook_url: Option<SecretString>,
    /// Name shown as the message's author (default "Mydia"); 1 to 80 characters, and
    /// Discord refuses names containing "discord" or "clyde".
    #[serde(default = "default_username")]
    pub username: String,
    /// URL of the author's avatar image; without it the webhook's own avatar is shown.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// A role to ping with every message of this instance (its numeric id). Only this
    /// role can be pinged: `@everyone`, `@here` and mentions in event data never are. To
    /// ping only for failures, add a second instance with those events.
    #[serde(default)]
    pub mention_role_id: Option<String>,
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

fn default_username() -> String {
    "Mydia".to_owned()
}

fn default_retries() -> u32 {
    2
}

impl Default for DiscordConfig {
    fn default() -> Self {
        DiscordConfig {
            webhook_url: None,
            username: default_username(),
            avatar_url: None,
            mention_role_id: None,
            retries: default_retries(),
            allow_private_network: false,
            templates: None,
        }
    }
}

impl DiscordConfig {
    /// Pure checks of the Discord fields. Never quotes the webhook URL.
    pub fn validate(&self, path: &str, common: &CommonSettings, problems: &mut Problems) {
        let url_path = format!("{path}.webhook_url");
        // A disabled instance's URL is never used, so it is not checked: the seed ships a
        // disabled `discord` with the placeholder `https://discord.com/api/webhooks/...`.
        let url = self.webhook_url.as_ref().map(|u| u.expose_secret().trim());
        match url {
            _ if !common.enabled => {}
            None | Some("") => problems.push(
                url_path,
                format!("is required when the plugin is enabled; {WHERE_TO_FIND}"),
            ),
            Some(url) => {
                if let Err(why) = parse_webhook_url(url, common.allow_insecure_http) {
                    problems.push(url_path, why);
                }
            }
        }
        if let Err(why) = check_username(&self.username) {
            problems.push(format!("{path}.username"), why);
        }
        if let Some(url) = self.avatar_url.as_deref().filter(|u| !is_web_url(u)) {
            problems.push(
                format!("{path}.avatar_url"),
                format!("`{url}` is not an http:// or https:// URL"),
            );
        }
        if let Some(id) = self
            .mention_role_id
            .as_deref()
            .filter(|id| !is_snowflake(id))
        {
            problems.push(
                format!("{path}.mention_role_id"),
                format!(
                    "`{id}` is not a Discord role id: use the number from Server Settings → Roles → \
                     ⋯ → Copy Role ID (Developer Mode on)"
                ),
            );
        }
        if self.retries > MAX_RETRIES {
            problems.push(
                format!("{path}.retries"),
                format!("must be at most {MAX_RETRIES}, got {}; longer outages are handled by the circuit breaker", self.retries),
            );
        }
    }
}

/// The webhook URL, parsed and checked: http(s) (http only with `allow_insecure_http`), a
/// host, no credentials, and Discord's execute path `/api[/v<N>]/webhooks/<id>/<token>`.
/// Any host is accepted (discord.com, ptb.discord.com, a test server). The error never
/// quotes the URL.
pub(super) fn parse_webhook_url(
    url: &str,
    allow_insecure_http: bool,
) -> Result<WebhookUrl, String> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| format!("is not a valid URL ({e}); {WHERE_TO_FIND}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_insecure_http => {}
        "http" => {
            return Err(
                "uses http://, which sends the webhook token unencrypted; use https://, \
                        or set `allow_insecure_http: true` on this plugin for a server on your LAN"
                    .to_owned(),
            )
        }
        other => return Err(format!("scheme `{other}` is not supported; use https://")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("has no host; {WHERE_TO_FIND}"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not contain `user:password@`; Discord webhooks need none".to_owned());
    }
    let segments: Vec<&str> = parsed
        .path_segments()
        .map(|s| s.collect())
        .unwrap_or_default();
    let segments = match segments.split_last() {
        Some((&"", rest)) => rest,
        _ => &segments[..],
    };
    let (id, token) = match segments {
        ["api", "webhooks", id, token] => (*id, *token),
        ["api", v, "webhooks", id, token] if is_api_version(v) => (*id, *token),
        _ => {
            return Err(format!(
                "does not look like a Discord webhook URL: its path must be \
                 /api/webhooks/<id>/<token>; {WHERE_TO_FIND}"
            ))
        }
    };
    if !is_snowflake(id) {
        return Err(format!(
            "does not look like a Discord webhook URL: the part after /api/webhooks/ must be \
             the webhook's numeric id; {WHERE_TO_FIND}"
        ));
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "does not look like a Discord webhook URL: the token (the last part) has characters \
             Discord tokens never have; {WHERE_TO_FIND}"
        ));
    }
    Ok(WebhookUrl {
        id: id.to_owned(),
        token: token.to_owned(),
        url: parsed,
    })
}

/// A checked webhook URL and its parts. Not `Debug`: every part but `id` is secret.
pub(super) struct WebhookUrl {
    /// The webhook id (a snowflake; not secret, it grants nothing on its own).
    pub id: String,
    /// The token: whoever has it can post as the webhook.
    pub token: String,
    /// The whole URL, query (e.g. `thread_id`) included.
    pub url: reqwest::Url,
}

fn is_api_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .is_some_and(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A Discord id: a snowflake, i.e. a u64 in decimal.
pub(super) fn is_snowflake(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<u64>().is_ok()
}

/// Discord's rules for a webhook's `username` (violations are a 400 for every message).
fn check_username(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if !(1..=80).contains(&len) || name.trim().is_empty() {
        return Err(format!("must be 1 to 80 characters, got {len}"));
    }
    let lower = name.to_lowercase();
    if let Some(word) = ["discord", "clyde"].iter().find(|w| lower.contains(*w)) {
        return Err(format!(
            "`{name}` contains \"{word}\", which Discord refuses in webhook names"
        ));
    }
    if matches!(lower.trim(), "everyone" | "here") {
        return Err(format!("`{name}` is reserved by Discord"));
    }
    Ok(())
}

/// An http(s) URL with a host.
pub(super) fn is_web_url(s: &str) -> bool {
    reqwest::Url::parse(s.trim())
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// The config's JSON schema, for the API and docs.
/// The config schema: field name → type, default and meaning.
pub(crate) fn config_schema() -> Value {
    json!({
        "type": "object",
        "required": ["webhook_url"],
        "properties": {
            "webhook_url": {"type": "string", "description": "https://discord.com/api/webhooks/<id>/<token>, optionally ?thread_id=<id>; secret"},
            "username": {"type": "string", "default": "Mydia", "description": "author name shown on messages; 1 to 80 characters, no \"discord\" or \"clyde\""},
            "avatar_url": {"type": "string", "description": "author avatar image URL; default: the webhook's own avatar"},
            "mention_role_id": {"type": "string", "description": "numeric id of a role pinged with every message; nothing else is ever pinged"},
            "retries": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES, "default": 2, "description": "retries after network errors and 5xx"},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::registry::testing::{common, problem_lines};

    const URL: &str = "https://discord.com/api/webhooks/1234567890/tok_SECRET-abc";

    fn problems_with(yaml: &str, common: &CommonSettings) -> Vec<String> {
        let config: DiscordConfig = serde_yaml::from_str(yaml).expect("parses");
        problem_lines(|p| config.validate("plugins.discord", common, p))
    }

    fn problems(yaml: &str) -> Vec<String> {
        problems_with(yaml, &common(true, false))
    }

    #[test]
    fn seed_defaults_and_a_minimal_config_pass() {
        let config: DiscordConfig = serde_yaml::from_str(&format!("webhook_url: {URL}")).unwrap();
        assert_eq!(config.username, "Mydia");
        assert_eq!(config.retries, 2);
        assert!(config.avatar_url.is_none() && config.mention_role_id.is_none());
        assert!(problems(&format!("webhook_url: {URL}")).is_empty());
        for ok in [
            "https://discord.com/api/webhooks/1/t?thread_id=99",
            "https://ptb.discord.com/api/v10/webhooks/1/t/",
            "https://discordapp.com/api/webhooks/123/abc_DEF-9",
        ] {
            assert!(problems(&format!("webhook_url: '{ok}'")).is_empty(), "{ok}");
        }
    }

    #[test]
    fn rejects_unknown_field() {
        let err = serde_yaml::from_str::<DiscordConfig>(&format!("webhook_url: {URL}\nusrname: x"))
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `usrname`"), "{err}");
    }

    #[test]
    fn webhook_url_is_required_only_when_enabled() {
        let got = problems("username: Mydia");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("plugins.discord.webhook_url: is required"));
        assert!(problems("webhook_url: '  '")[0].contains("is required"));
        assert!(problems_with("username: Mydia", &common(false, false)).is_empty());
    }

    #[test]
    fn the_seeds_disabled_placeholder_loads() {
        let seed = "webhook_url: 'https://discord.com/api/webhooks/...'\nusername: Mydia";
        assert!(problems_with(seed, &common(false, false)).is_empty());
        assert!(problems(seed)[0].contains("does not look like a Discord webhook URL"));
    }

    #[test]
    fn http_needs_the_opt_in() {
        let http = "webhook_url: http://127.0.0.1:9000/api/webhooks/1/t";
        let got = problems(http);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("allow_insecure_http: true"), "{got:?}");
        assert!(problems_with(http, &common(true, true)).is_empty());
    }

    #[test]
    fn bad_urls_are_reported_without_quoting_them() {
        let secret = "CANARYtok3n";
        for bad in [
            format!("not a url {secret}"),
            format!("ftp://discord.com/api/webhooks/1/{secret}"),
            format!("https://me:{secret}@discord.com/api/webhooks/1/{secret}"),
            format!("https://discord.com/api/webhooks/{secret}"),
            format!("https://discord.com/api/webhooks/abc/{secret}"),
            format!("https://discord.com/api/webhooks/1/{secret}/slack"),
            format!("https://discord.com/api/webhooks/1/{secret}%20x"),
            format!("https://discord.com/webhooks/1/{secret}"),
        ] {
            let got = problems(&format!("webhook_url: '{bad}'"));
            assert_eq!(got.len(), 1, "{bad}: {got:?}");
            assert!(
                got[0].starts_with("plugins.discord.webhook_url: "),
                "{got:?}"
            );
            assert!(!got[0].contains(secret), "quoted the URL: {got:?}");
        }
    }

    #[test]
    fn reports_every_other_problem_at_once() {
        let got = problems(&format!(
            "webhook_url: {URL}\nusername: My Discord Bot\navatar_url: 'javascript:x'\n\
             mention_role_id: '@everyone'\nretries: 11\n"
        ));
        let expect = [
            "plugins.discord.username: `My Discord Bot` contains \"discord\"",
            "plugins.discord.avatar_url",
            "plugins.discord.mention_role_id: `@everyone` is not a Discord role id",
            "plugins.discord.retries",
        ];
        assert_eq!(got.len(), expect.len(), "{got:#?}");
        for e in expect {
            assert!(
                got.iter().any(|g| g.starts_with(e)),
                "missing {e}: {got:#?}"
            );
        }
        assert!(problems(&format!("webhook_url: {URL}\nusername: ''"))[0].contains("1 to 80"));
        assert!(problems(&format!("webhook_url: {URL}\nusername: Here"))[0].contains("reserved"));
        assert!(problems(&format!(
            "webhook_url: {URL}\nusername: '{}'",
            "x".repeat(81)
        ))[0]
            .contains("got 81"));
    }

    #[test]
    fn url_parts_are_split_out() {
        let u = parse_webhook_url(&format!(" {URL}?thread_id=5\n"), false).unwrap();
        assert_eq!(
            (u.id.as_str(), u.token.as_str()),
            ("1234567890", "tok_SECRET-abc")
        );
        assert_eq!(u.url.query(), Some("thread_id=5"));
    }

    #[test]
    fn debug_output_never_shows_the_url() {
        let config: DiscordConfig = serde_yaml::from_str(&format!("webhook_url: {URL}")).unwrap();
        assert!(!format!("{config:?}").contains("tok_SECRET"));
    }

    #[test]
    fn schema_lists_every_field() {
        let schema = config_schema();
        let props = schema["properties"].as_object().unwrap();
        let yaml = format!(
            "webhook_url: {URL}\nusername: u\navatar_url: https://a/b.png\nmention_role_id: '1'\nretries: 1\n"
        );
        let fields: serde_yaml::Mapping = serde_yaml::from_str(&yaml).unwrap();
        serde_yaml::from_str::<DiscordConfig>(&yaml).expect("every listed field exists");
        assert_eq!(props.len(), fields.len());
        for key in fields.keys() {
            assert!(props.contains_key(key.as_str().unwrap()), "{key:?}");
        }
    }
}
