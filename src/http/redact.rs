//! `Redactor`: the secrets to scrub from any text before it reaches an error or a log line.
//!
//! Receivers echo requests back in their errors, so a secret is scrubbed in the forms a
//! request carries it too: percent-encoded (URLs, forms) and base64 (`Authorization: Basic`
//! carries `user:password`, and URL userinfo becomes exactly that header).

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

use crate::plugins::PluginError;

/// What replaces a secret in any text we show.
pub const REDACTED: &str = "[redacted]";

/// A derived form shorter than this is not scrubbed on its own: a few base64 letters
/// would match ordinary text. The secret as written is always scrubbed.
const MIN_DERIVED_CHARS: usize = 8;

/// Secrets to scrub from any text before it reaches an error or a log line.
///
/// Each secret is scrubbed as written and in its derived forms (see [`Redactor::add`]).
/// Its `Debug` shows only how many forms it holds.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret containing another is replaced whole.
    secrets: Vec<SecretString>,
}

impl Redactor {
    /// A redactor with no secrets yet.
    pub fn new() -> Self {
        Redactor::default()
    }

    /// Adds a secret, trimmed (blank secrets are ignored), with its derived forms:
    /// percent-encoded (upper- and lower-case hex, and form encoding) and base64 (standard
    /// and URL-safe, padded and not), including the part of its base64 that is the same
    /// wherever it sits inside a longer encoded value (`user:` + secret, say).
    pub fn add(&mut self, secret: &str) {
        let secret = secret.trim();
        if secret.is_empty() {
            return;
        }
        self.push(secret.to_owned());
        for form in derived_forms(secret.as_bytes()) {
            if form.len() >= MIN_DERIVED_CHARS {
                self.push(form);
            }
        }
        self.secrets
            .sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
    }

    /// Adds a Basic-auth pair: the password, and `user:password` with its derived forms
    /// (the `Authorization: Basic` value).
    pub fn add_credentials(&mut self, user: &str, password: &str) {
        self.add(password);
        if !password.trim().is_empty() {
            self.add(&format!("{user}:{password}"));
        }
    }

    /// Adds the credentials of `url`'s userinfo, if any, as written and percent-decoded
    /// (reqwest sends them decoded, as `Authorization: Basic`).
    pub fn add_url_credentials(&mut self, url: &reqwest::Url) {
        let Some(password) = url.password() else {
            return;
        };
        let user = url.username();
        self.add_credentials(user, password);
        self.add_credentials(&percent_decode(user), &percent_decode(password));
    }

    fn push(&mut self, form: String) {
        if !self.secrets.iter().any(|s| s.expose_secret() == form) {
            self.secrets.push(SecretString::from(form));
        }
    }

    /// The same redactor with one more secret.
    pub fn with(mut self, secret: &str) -> Self {
        self.add(secret);
        self
    }

    /// `text` with every occurrence of every secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.expose_secret()) {
                out = out.replace(s.expose_secret(), REDACTED);
            }
        }
        out
    }

    /// `err` with its free-text fields redacted.
    pub fn redact_error(&self, err: PluginError) -> PluginError {
        use PluginError::*;
        match err {
            Transient { status, reason } => Transient {
                status,
                reason: self.redact(&reason),
            },
            Misconfigured { status, reason } => Misconfigured {
                status,
                reason: self.redact(&reason),
            },
            Rejected { status, reason } => Rejected {
                status,
                reason: self.redact(&reason),
            },
            Panicked { message } => Panicked {
                message: self.redact(&message),
            },
            Unavailable { state } => Unavailable {
                state: self.redact(&state),
            },
            other @ (Timeout { .. } | RateLimited { .. } | Unresponsive | DryRun) => other,
        }
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

/// The forms a request may carry `secret` in, besides as written.
fn derived_forms(secret: &[u8]) -> Vec<String> {
    let mut forms = vec![
        percent_encode(secret, false),
        percent_encode(secret, true),
        form_encode(secret),
    ];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        forms.push(engine.encode(secret));
    }
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for offset in 0..3 {
            forms.push(base64_core(engine, secret, offset));
        }
    }
    forms
}

/// The base64 letters that depend on `secret`'s bytes alone when it starts `offset` bytes
/// into the encoded value: the same whatever comes before or after it.
fn base64_core(engine: &impl base64::Engine, secret: &[u8], offset: usize) -> String {
    let mut buf = vec![0u8; offset];
    buf.extend_from_slice(secret);
    let encoded = engine.encode(&buf);
    // Letter i holds bits 6i..6i+6; the secret's bits are 8*offset..8*(offset+len).
    let start = (8 * offset).div_ceil(6);
    let end = (8 * (offset + secret.len()) / 6).min(encoded.len());
    encoded.get(start..end).unwrap_or_default().to_owned()
}

/// Every byte outside RFC 3986's unreserved set as `%XX` (how a secret looks inside a URL).
fn percent_encode(s: &[u8], lower: bool) -> String {
    s.iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ if lower => format!("%{b:02x}"),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `application/x-www-form-urlencoded`: a space as `+`, `*-._` and alphanumerics as they are.
fn form_encode(s: &[u8]) -> String {
    s.iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `%XX` sequences decoded (invalid UTF-8 replaced); anything else kept.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_scrubs_every_occurrence_and_encoded_forms() {
        let r = Redactor::new()
            .with("tk_secret")
            .with("bot123:AB/C")
            .with("  ");
        let text = "tk_secret then tk_secret; url /bot123%3AAB%2FC/x and bot123:AB/C";
        let out = r.redact(text);
        assert_eq!(
            out,
            "[redacted] then [redacted]; url /[redacted]/x and [redacted]"
        );
        assert_eq!(r.redact("nothing here"), "nothing here");
        assert!(format!("{r:?}").starts_with("Redactor { secrets: "));
    }

    /// What a receiver that echoes `Authorization` shows: `Basic base64(user:password)`.
    #[test]
    fn basic_auth_is_scrubbed_with_or_without_knowing_the_user() {
        let basic = "echo: Authorization: Basic dXNlcl90OnMzY3IzdC1wYXNzLTQy";
        let mut pair = Redactor::new();
        pair.add_credentials("user_t", "s3cr3t-pass-42");
        assert_eq!(pair.redact(basic), "echo: Authorization: Basic [redacted]");
        // Knowing only the password, the letters that depend on it alone still go.
        let bare = Redactor::new().with("s3cr3t-pass-42");
        assert_eq!(
            bare.redact(basic),
            "echo: Authorization: Basic dXNlcl90On[redacted]"
        );
    }

    #[test]
    fn base64_in_both_alphabets_with_and_without_padding_is_scrubbed() {
        let r = Redactor::new().with("??>>??>>??");
        for text in [
            "Pz8+Pj8/Pj4/Pw==",
            "Pz8+Pj8/Pj4/Pw",
            "Pz8-Pj8_Pj4_Pw==",
            "Pz8-Pj8_Pj4_Pw",
        ] {
            assert_eq!(r.redact(&format!("[{text}]")), "[[redacted]]", "{text}");
        }
    }

    #[test]
    fn percent_and_form_encodings_are_scrubbed() {
        let r = Redactor::new().with("pa ss/wörd");
        for text in [
            "pa%20ss%2Fw%C3%B6rd",
            "pa%20ss%2fw%c3%b6rd",
            "pa+ss%2Fw%C3%B6rd",
        ] {
            assert_eq!(r.redact(&format!("x={text}&")), "x=[redacted]&", "{text}");
        }
    }

    #[test]
    fn url_userinfo_is_scrubbed_as_the_basic_header_it_becomes() {
        let url = reqwest::Url::parse("https://bob:p%40ss%20word1@example.com/hook").unwrap();
        let mut r = Redactor::new();
        r.add_url_credentials(&url);
        let header = format!("Basic {}", STANDARD.encode("bob:p@ss word1"));
        assert_eq!(r.redact(&header), "Basic [redacted]");
        assert_eq!(r.redact("got p@ss word1"), "got [redacted]");
        assert_eq!(
            r.redact(url.as_str()),
            "https://[redacted]@example.com/hook"
        );
        let none = reqwest::Url::parse("https://example.com/").unwrap();
        let mut r = Redactor::new();
        r.add_url_credentials(&none);
        assert!(format!("{r:?}").contains("secrets: 0"));
    }

    #[test]
    fn short_derived_forms_are_not_scrubbed_alone() {
        // base64("ab") is "YWI": too short to tell from ordinary text.
        let r = Redactor::new().with("ab");
        assert_eq!(r.redact("YWI ab"), "YWI [redacted]");
    }

    #[test]
    fn redactor_replaces_the_longest_secret_whole() {
        let r = Redactor::new().with("abc").with("abcdef");
        assert_eq!(r.redact("xabcdefx abc"), "x[redacted]x [redacted]");
    }

    #[test]
    fn redactor_cleans_error_reasons() {
        let r = Redactor::new().with("tk_x1");
        let err = r.redact_error(PluginError::Rejected {
            status: Some(400),
            reason: "bad tk_x1".into(),
        });
        assert_eq!(err.to_string(), "rejected by the service: bad [redacted]");
    }
}
