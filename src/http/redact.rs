//! `Redactor`: the secrets to scrub from any text before it reaches an error or a log line.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::plugins::PluginError;

/// What replaces a secret in any text we show.
pub const REDACTED: &str = "[redacted]";

/// Secrets to scrub from any text before it reaches an error or a log line.
///
/// Also scrubs each secret's percent-encoded form, as it appears inside URLs. Its `Debug`
/// shows only how many secrets it holds.
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

    /// Adds a secret (and its percent-encoded form), trimmed; blank secrets are ignored.
    pub fn add(&mut self, secret: &str) {
        let secret = secret.trim();
        if secret.is_empty() {
            return;
        }
        for form in [secret.to_owned(), percent_encode(secret)] {
            if !self.secrets.iter().any(|s| s.expose_secret() == form) {
                self.secrets.push(SecretString::from(form));
            }
        }
        self.secrets
            .sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
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
            other @ (Timeout { .. } | RateLimited { .. } | Unresponsive) => other,
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

/// Every byte outside RFC 3986's unreserved set as `%XX` (how a secret looks inside a URL).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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
        assert_eq!(format!("{r:?}"), "Redactor { secrets: 3 }");
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
