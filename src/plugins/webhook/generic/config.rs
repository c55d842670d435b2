//! `WebhookConfig`: the generic webhook's settings, their defaults, pure validation and schema.

use std::collections::BTreeMap;

use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use super::signature::SigningSecret;
use crate::config::Problems;
use crate::plugins::registry::CommonSettings;

/// The most retries a config may ask for.
pub(super) const MAX_RETRIES: u32 = 10;

/// Headers the plugin sets itself; a configured header may not replace them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
];

/// `type: webhook` settings: where to POST each event, extra headers, and the signing secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The receiver's URL; required when enabled. https://, or http:// with
    /// `allow_insecure_http`. Secret as a whole: receivers often put a token in its path or query.
    #[serde(default)]
    pub url: Option<SecretString>,
    /// Extra request headers, name → value (e.g. `authorization: Bearer ...`). Values are
    /// secrets; names may not replace `content-type`, `content-length`, `host`,
    /// `transfer-encoding`, `connection` or any `webhook-*` header.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretString>,
    /// Standard Webhooks signing secret, `whsec_` + base64 of at least 24 bytes, as the
    /// receiver gave it. Without it, requests carry `webhook-id` and `webhook-timestamp` but
    /// no `webhook-signature`.
    #[serde(default)]
    pub secret: Option<SecretString>,
    /// Retries of one delivery after a network error or 5xx (default 2, at most 10); never for
    /// 4xx. A 429 pauses the plugin instead.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The instance's common `allow_private_network` setting, copied here when the config
    /// is loaded (it is written beside `enabled`, not among this type's own fields): lets
    /// the plugin's HTTP client reach loopback, private and CGNAT addresses.
    #[serde(skip)]
    pub allow_private_network: bool,
}

fn default_retries() -> u32 {
    2
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: None,
            headers: BTreeMap::new(),
            secret: None,
            retries: default_retries(),
            allow_private_network: false,
        }
    }
}

impl WebhookConfig {
    /// Pure checks of the webhook fields. No message quotes the URL, a header value or the secret.
    pub fn validate(&self, path: &str, common: &CommonSettings, problems: &mut Problems) {
        let url_path = format!("{path}.url");
        crate::config::validate::check_secret(
            problems,
            &url_path,
            self.url.as_ref().map(|u| u.expose_secret()),
        );
        match self.url.as_ref().map(|u| u.expose_secret().trim()) {
            None | Some("") if common.enabled => problems.push(
                url_path,
                "is required when the plugin is enabled: the receiver's URL, e.g. https://receiver.example.com/hooks/mydia",
            ),
            None | Some("") => {}
            Some(url) => match parse_url(url) {
                Err(message) => problems.push(url_path, message),
                Ok(url) => crate::config::validate::check_url(
                    problems,
                    &url_path,
                    &origin(&url),
                    common.allow_insecure_http,
                ),
            },
        }
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in &self.headers {
            let header_path = format!("{path}.headers.{name}");
            if let Err(message) = check_header(name, value.expose_secret()) {
                problems.push(header_path.clone(), message);
            }
            let lower = name.to_ascii_lowercase();
            if seen.contains(&lower) {
                problems.push(
                    header_path,
                    "is given twice (header names ignore case); keep one",
                );
            } else {
                seen.push(lower);
            }
        }
        if let Some(secret) = &self.secret {
            if let Err(e) = SigningSecret::parse(secret.expose_secret()) {
                problems.push(format!("{path}.secret"), e.to_string());
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

/// The URL parsed, or why not, without quoting it (it may hold a token).
pub(super) fn parse_url(url: &str) -> Result<reqwest::Url, &'static str> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|_| "is not a valid URL; write e.g. https://receiver.example.com/hooks/mydia")?;
    if !parsed.has_host() || parsed.host_str() == Some("") {
        return Err("has no host; write e.g. https://receiver.example.com/hooks/mydia");
    }
    Ok(parsed)
}

/// `scheme://host[:port]`: the one part of the URL we show (in reports and config checks).
pub(super) fn origin(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// One configured header as reqwest takes it (the value marked sensitive), or why it cannot
/// be sent. Messages name the header, never its value.
pub(super) fn check_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name: use letters, digits and `-`"))?;
    if header.as_str().starts_with("webhook-") {
        return Err(
            "`webhook-*` headers carry the Standard Webhooks id, timestamp and signature; the plugin sets them"
                .to_owned(),
        );
    }
    if RESERVED_HEADERS.contains(&header.as_str()) {
        return Err(format!(
            "`{}` is set by the plugin and cannot be replaced",
            header.as_str()
        ));
    }
    if value.contains(['\r', '\n']) {
        return Err(
            "the value contains a line break (CR or LF), which could inject headers; remove it"
                .to_owned(),
        );
    }
    if value.trim().is_empty() {
        return Err("the value is empty (an unset environment variable?)".to_owned());
    }
    // `HeaderValue` takes any byte from 0x80 up, but receivers read those as Latin-1 and
    // garble UTF-8 text: insist on ASCII.
    let printable_ascii =
        "the value must be printable ASCII (no control characters or non-ASCII text)";
    if !value.is_ascii() {
        return Err(printable_ascii.to_owned());
    }
    let mut value = HeaderValue::from_str(value).map_err(|_| printable_ascii.to_owned())?;
    value.set_sensitive(true);
    Ok((header, value))
}

/// The config's JSON schema, for the API and docs.
/// The config schema: field name → type, default and meaning.
pub(crate) fn config_schema() -> Value {
    json!({
        "type": "object",
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "description": "receiver URL; https:// (http:// needs allow_insecure_http); secret as a whole"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}, "description": "extra headers, name → value; values are secret; content-type, host, content-length and webhook-* are reserved"},
            "secret": {"type": "string", "description": "Standard Webhooks signing secret, whsec_ + base64 (≥ 24 bytes); secret"},
            "retries": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES, "default": 2, "description": "retries after network errors and 5xx"},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::registry::testing::{common, problem_lines};

    fn problems_with(yaml: &str, common: &CommonSettings) -> Vec<String> {
        let config: WebhookConfig = serde_yaml::from_str(yaml).expect("parses");
        problem_lines(|p| config.validate("plugins.hook", common, p))
    }

    fn problems(yaml: &str) -> Vec<String> {
        problems_with(yaml, &common(true, false))
    }

    #[test]
    fn a_minimal_config_passes_with_defaults() {
        let config: WebhookConfig =
            serde_yaml::from_str("url: https://receiver.example.com/hook").unwrap();
        assert_eq!(config.retries, 2);
        assert!(config.headers.is_empty() && config.secret.is_none());
        assert!(problems("url: https://receiver.example.com/hook").is_empty());
        let full = "url: https://r.example.com/h?token=abc\nsecret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n\
                    headers: {authorization: Bearer tk_1, X-Source: mydia}\nretries: 0\n";
        assert!(problems(full).is_empty(), "{:?}", problems(full));
    }

    #[test]
    fn rejects_unknown_field() {
        let err = serde_yaml::from_str::<WebhookConfig>("url: https://r.example.com\nsecrett: x")
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `secrett`"), "{err}");
    }

    #[test]
    fn url_is_required_only_when_enabled() {
        assert_eq!(
            problems("headers: {}"),
            ["plugins.hook.url: is required when the plugin is enabled: the receiver's URL, e.g. https://receiver.example.com/hooks/mydia"]
        );
        assert!(problems("url: '  '")[0].starts_with("plugins.hook.url: is required"));
        assert!(problems_with("headers: {}", &common(false, false)).is_empty());
    }

    #[test]
    fn http_needs_the_opt_in_and_no_url_problem_quotes_the_url() {
        let http = "url: http://10.0.0.5:8080/hook?token=URLCANARY";
        let got = problems(http);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("allow_insecure_http: true"), "{got:?}");
        assert!(problems_with(http, &common(true, true)).is_empty());
        for bad in [
            "url: not a url URLCANARY",
            "url: ftp://files.example.com/URLCANARY",
            "url: 'file:///URLCANARY'",
        ] {
            let got = problems(bad);
            assert_eq!(got.len(), 1, "{bad}: {got:?}");
            assert!(got[0].starts_with("plugins.hook.url: "), "{got:?}");
            assert!(!got[0].contains("URLCANARY"), "{got:?}");
        }
    }

    #[test]
    fn bad_secrets_are_reported_without_quoting_them() {
        for (secret, expect) in [
            (
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "must start with `whsec_`",
            ),
            ("whsec_SECRET*CANARY!", "not valid base64"),
            ("whsec_U0VDUkVUQ0FOQVJZ", "decodes to 12 bytes"),
        ] {
            let got = problems(&format!("url: https://r.example.com\nsecret: '{secret}'"));
            assert_eq!(got.len(), 1, "{got:?}");
            assert!(got[0].starts_with("plugins.hook.secret: "), "{got:?}");
            assert!(got[0].contains(expect), "{got:?}");
            assert!(
                !got[0].contains("CANARY") && !got[0].contains("U0VD"),
                "{got:?}"
            );
        }
    }

    #[test]
    fn header_names_and_values_are_checked_without_quoting_values() {
        let yaml = "url: https://r.example.com\nheaders:\n  \
                    X-Ok: fine\n  Content-Type: text/plain\n  webhook-id: x\n  Host: evil\n  \
                    'bad name': v\n  X-Crlf: \"a\\r\\nX-Injected: VALCANARY\"\n  X-Lf: \"VALCANARY\\n\"\n  \
                    X-Empty: ''\n  X-Uni: 'é VALCANARY'\n  x-ok: again\n";
        let got = problems(yaml);
        let expect = [
            "plugins.hook.headers.Content-Type: `content-type` is set by the plugin",
            "plugins.hook.headers.Host: `host` is set by the plugin",
            "plugins.hook.headers.X-Crlf: the value contains a line break",
            "plugins.hook.headers.X-Empty: the value is empty",
            "plugins.hook.headers.X-Lf: the value contains a line break",
            "plugins.hook.headers.X-Uni: the value must be printable ASCII",
            "plugins.hook.headers.bad name: \"bad name\" is not a valid header name",
            "plugins.hook.headers.webhook-id: `webhook-*` headers",
            "plugins.hook.headers.x-ok: is given twice",
        ];
        assert_eq!(got.len(), expect.len(), "{got:#?}");
        for e in expect {
            assert!(
                got.iter().any(|g| g.starts_with(e)),
                "missing {e}: {got:#?}"
            );
        }
        assert!(!got.iter().any(|g| g.contains("VALCANARY")), "{got:#?}");
    }

    #[test]
    fn checked_headers_are_sensitive() {
        let (name, value) = check_header("Authorization", "Bearer tk_1").unwrap();
        assert_eq!(name.as_str(), "authorization");
        assert!(value.is_sensitive());
        assert_eq!(format!("{value:?}"), "Sensitive");
    }

    #[test]
    fn too_many_retries_are_refused() {
        assert!(problems("url: https://r.example.com\nretries: 11")[0]
            .starts_with("plugins.hook.retries: must be at most 10"));
    }

    #[test]
    fn origin_shows_scheme_host_and_port_only() {
        let url = parse_url("https://me:pw@r.example.com:8443/hook/tok?x=y#f").unwrap();
        assert_eq!(origin(&url), "https://r.example.com:8443");
        assert_eq!(
            origin(&parse_url("http://127.0.0.1/x").unwrap()),
            "http://127.0.0.1"
        );
    }

    #[test]
    fn schema_lists_every_field() {
        let schema = config_schema();
        let props = schema["properties"].as_object().unwrap();
        let yaml = "url: https://r.example.com\nheaders: {a: b}\nsecret: whsec_x\nretries: 1\n";
        let fields: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        serde_yaml::from_str::<WebhookConfig>(yaml).expect("every listed field exists");
        assert_eq!(props.len(), fields.len());
        for key in fields.keys() {
            assert!(props.contains_key(key.as_str().unwrap()), "{key:?}");
        }
    }
}
