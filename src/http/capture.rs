//! Capture mode for [`super::Client`]: the request a plugin built, recorded with its secrets
//! redacted instead of sent, for a dry run (`/api/v1/preview`).
//!
//! The plugin's own code builds the request exactly as it would for a delivery; the client
//! records it at the point it would go out and answers [`PluginError::DryRun`], which no
//! retry loop retries, so the plugin stops at its first request.

use std::sync::{Arc, Mutex, PoisonError};

use reqwest::header::{HeaderName, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use reqwest::{Request, Url};

use super::{Redactor, REDACTED};

/// Where a capturing client records the requests it was asked to send. Clones share one list.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    requests: Arc<Mutex<Vec<Captured>>>,
}

/// One request as it would have gone out, secrets redacted.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The URL, secrets in its path, query and userinfo redacted.
    pub url: String,
    /// Every header in the order sent, values of credential headers redacted whole.
    pub headers: Vec<(String, String)>,
    /// The body's `Content-Type`, if it has one.
    pub content_type: Option<String>,
    /// The body, redacted; `None` for no body, or a streamed one (not readable up front).
    pub body: Option<String>,
    /// The body's size in bytes as it would be sent (before redaction), when known.
    pub body_bytes: Option<usize>,
}

impl Capture {
    /// An empty capture.
    pub fn new() -> Self {
        Capture::default()
    }

    /// Records `request`, with everything `redactor` knows scrubbed.
    pub fn record(&self, request: &Request, redactor: &Redactor) {
        let captured = captured(request, redactor);
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(captured);
    }

    /// What was recorded, in order.
    pub fn requests(&self) -> Vec<Captured> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn captured(request: &Request, redactor: &Redactor) -> Captured {
    let mut headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes());
            (
                name.as_str().to_owned(),
                header_value(name, &value, redactor),
            )
        })
        .collect();
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = request.body().and_then(|b| b.as_bytes());
    // Added when the request goes out, so not in `request` yet; shown for the whole picture.
    if !request.headers().contains_key(USER_AGENT) {
        headers.push((
            USER_AGENT.as_str().to_owned(),
            super::client::USER_AGENT.to_owned(),
        ));
    }
    if let Some(b) = bytes.filter(|b| !b.is_empty()) {
        headers.push((CONTENT_LENGTH.as_str().to_owned(), b.len().to_string()));
    }
    Captured {
        method: request.method().to_string(),
        url: url(request.url(), redactor),
        headers,
        content_type,
        body: bytes.map(|b| redactor.redact(&String::from_utf8_lossy(b))),
        body_bytes: bytes.map(<[u8]>::len),
    }
}

/// `url` for showing: userinfo replaced, path and query through the redactor, and query
/// values whose names say they are credentials redacted even when the redactor does not
/// know them.
pub fn url(url: &Url, redactor: &Redactor) -> String {
    let mut out = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        out.push_str(REDACTED);
        out.push('@');
    }
    out.push_str(&redactor.redact(url.host_str().unwrap_or_default()));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    let mut tail = url.path().to_owned();
    if let Some(query) = url.query() {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_credential_name(k) => format!("{k}={REDACTED}"),
                _ => pair.to_owned(),
            })
            .collect();
        tail.push('?');
        tail.push_str(&pairs.join("&"));
    }
    let tail = redactor.redact(&tail);
    if !tail.starts_with('/') {
        out.push('/');
    }
    out.push_str(&tail);
    out
}

/// A header's value for showing: credential headers redacted whole (keeping an auth
/// scheme such as `Bearer`), every other value through the redactor.
fn header_value(name: &HeaderName, value: &str, redactor: &Redactor) -> String {
    if !is_credential_name(name.as_str()) {
        return redactor.redact(value);
    }
    match value.split_once(' ') {
        Some((scheme, _))
            if ["basic", "bearer", "token", "digest"].contains(&scheme.to_lowercase().as_str()) =>
        {
            format!("{scheme} {REDACTED}")
        }
        _ => REDACTED.to_owned(),
    }
}

/// Names that carry credentials or signatures by their look: `Authorization`,
/// `X-Api-Key`, `webhook-signature`, `?token=`, `cookie`...
pub fn is_credential_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "auth",
        "token",
        "secret",
        "signature",
        "password",
        "passwd",
        "key",
        "cookie",
        "session",
        "sig",
    ]
    .iter()
    .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new().post(url)
    }

    #[test]
    fn redacts_tokens_in_path_query_userinfo_and_headers() {
        let redactor = Redactor::new().with("123:SECRET-TOKEN");
        let req = request("https://api.example.org/bot123:SECRET-TOKEN/sendMessage?token=abc&x=1")
            .bearer_auth("tk_NOT_KNOWN")
            .header("X-Api-Key", "k3y")
            .header("Accept", "application/json")
            .json(&serde_json::json!({"text": "hi 123:SECRET-TOKEN"}))
            .build()
            .unwrap();
        let capture = Capture::new();
        capture.record(&req, &redactor);
        let [c] = &capture.requests()[..] else {
            panic!("one request")
        };
        assert_eq!(c.method, "POST");
        assert_eq!(
            c.url,
            "https://api.example.org/bot[redacted]/sendMessage?token=[redacted]&x=1"
        );
        let header = |n: &str| {
            c.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("authorization"), Some("Bearer [redacted]"));
        assert_eq!(header("x-api-key"), Some("[redacted]"));
        assert_eq!(header("accept"), Some("application/json"));
        assert_eq!(c.content_type.as_deref(), Some("application/json"));
        assert_eq!(c.body.as_deref(), Some(r#"{"text":"hi [redacted]"}"#));
        assert_eq!(
            c.body_bytes,
            Some(r#"{"text":"hi 123:SECRET-TOKEN"}"#.len())
        );
    }

    #[test]
    fn a_url_that_is_a_secret_keeps_its_host() {
        let redactor = Redactor::new()
            .with("https://hooks.example.com/services/T1/B2/XYZSECRET")
            .with("/services/T1/B2/XYZSECRET");
        let url = Url::parse("https://hooks.example.com/services/T1/B2/XYZSECRET").unwrap();
        assert_eq!(
            super::url(&url, &redactor),
            "https://hooks.example.com/[redacted]"
        );
        let userinfo = Url::parse("https://bob:pw@example.com/x").unwrap();
        assert_eq!(
            super::url(&userinfo, &Redactor::new()),
            "https://[redacted]@example.com/x"
        );
        let plain = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            super::url(&plain, &Redactor::new()),
            "http://127.0.0.1:8080/"
        );
    }

    #[test]
    fn credential_names_are_recognised() {
        for n in [
            "Authorization",
            "webhook-signature",
            "X-Hub-Signature-256",
            "token",
            "X-Api-Key",
            "Cookie",
        ] {
            assert!(is_credential_name(n), "{n}");
        }
        for n in [
            "content-type",
            "webhook-id",
            "user-agent",
            "title",
            "priority",
        ] {
            assert!(!is_credential_name(n), "{n}");
        }
    }
}
