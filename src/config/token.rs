//! `server.api_token`: the bearer token every API call needs once it is set.
//!
//! Kept secret (`secrecy`): `Debug` shows a label, never the value. Compared in constant
//! time, so the answer's timing says nothing about how much of a guess was right.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// Shortest token accepted: a guessable token on a LAN is no token.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The API's bearer token.
#[derive(Clone)]
pub struct ApiToken(SecretString);

/// Why a token is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadToken {
    /// Empty, or only spaces.
    #[error("is empty; remove it to run without a token, or set at least {MIN_TOKEN_CHARS} characters (e.g. the output of `openssl rand -hex 32`)")]
    Empty,
    /// Too short to resist guessing.
    #[error("is {0} characters; use at least {MIN_TOKEN_CHARS} (e.g. the output of `openssl rand -hex 32`)")]
    TooShort(usize),
    /// Holds a space, tab or other control character, which a header cannot carry unchanged.
    #[error("holds a space or control character, which an `Authorization` header cannot carry; use letters, digits and punctuation only")]
    Whitespace,
}

impl ApiToken {
    /// A token from the config's text.
    pub fn new(text: &str) -> Result<Self, BadToken> {
        if text.trim().is_empty() {
            return Err(BadToken::Empty);
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(BadToken::Whitespace);
        }
        let chars = text.chars().count();
        if chars < MIN_TOKEN_CHARS {
            return Err(BadToken::TooShort(chars));
        }
        Ok(ApiToken(SecretString::from(text.to_owned())))
    }

    /// Whether `given` is this token (constant time in the token's length).
    pub fn matches(&self, given: &[u8]) -> bool {
        self.0.expose_secret().as_bytes().ct_eq(given).into()
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken([redacted])")
    }
}

impl PartialEq for ApiToken {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other.0.expose_secret().as_bytes())
    }
}

impl Eq for ApiToken {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_only_itself_and_never_prints() {
        let t = ApiToken::new("0123456789abcdef-long").unwrap();
        assert!(t.matches(b"0123456789abcdef-long"));
        assert!(!t.matches(b"0123456789abcdef-lonG"));
        assert!(!t.matches(b"0123456789abcdef-lon"));
        assert!(!t.matches(b""));
        assert!(!format!("{t:?}").contains("0123"));
    }

    #[test]
    fn weak_tokens_are_refused_with_what_to_use() {
        assert_eq!(ApiToken::new("  ").unwrap_err(), BadToken::Empty);
        assert_eq!(ApiToken::new("short").unwrap_err(), BadToken::TooShort(5));
        assert_eq!(
            ApiToken::new("0123456789 abcdef").unwrap_err(),
            BadToken::Whitespace
        );
        assert!(BadToken::TooShort(5)
            .to_string()
            .contains("openssl rand -hex 32"));
    }
}
