//! Sessions of the web page: once a person has typed the API token, the browser keeps an
//! HttpOnly, SameSite=Strict cookie instead, and every change it asks for carries the
//! session's CSRF token in a header (the page reads it from a `<meta>` tag).
//!
//! Kept in memory: a restart asks for the token again. Bounded: the oldest session goes
//! when a new one would pass [`MAX_SESSIONS`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng;
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "mydia_session";
/// The header a page's change requests carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Sessions kept at once.
pub const MAX_SESSIONS: usize = 64;
/// How long a session lasts.
pub const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The live sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    started: Instant,
}

/// 32 random bytes as hex.
fn random_hex() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// A new session: its id (the cookie's value) and its CSRF token.
    pub fn start(&self) -> (String, String) {
        let (id, csrf) = (random_hex(), random_hex());
        let mut all = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|_, s| s.started.elapsed() < LIFETIME);
        if all.len() >= MAX_SESSIONS {
            if let Some(oldest) = all
                .iter()
                .min_by_key(|(_, s)| s.started)
                .map(|(k, _)| k.clone())
            {
                all.remove(&oldest);
            }
        }
        all.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                started: Instant::now(),
            },
        );
        (id, csrf)
    }

    /// The CSRF token of a live session `id`.
    pub fn csrf(&self, id: &str) -> Option<String> {
        let all = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        // Looked up by the id itself; the ids are random and 256 bits long, so a timing
        // difference in the map's lookup tells an attacker nothing useful.
        all.get(id)
            .filter(|s| s.started.elapsed() < LIFETIME)
            .map(|s| s.csrf.clone())
    }

    /// Whether `given` is session `id`'s CSRF token.
    pub fn csrf_matches(&self, id: &str, given: &str) -> bool {
        self.csrf(id)
            .is_some_and(|csrf| bool::from(csrf.as_bytes().ct_eq(given.as_bytes())))
    }

    /// End session `id` (logging out).
    pub fn end(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_knows_its_csrf_token_and_ends() {
        let s = Sessions::default();
        let (id, csrf) = s.start();
        assert_eq!(id.len(), 64);
        assert_ne!(id, csrf);
        assert!(s.csrf_matches(&id, &csrf));
        assert!(!s.csrf_matches(&id, &id));
        assert!(!s.csrf_matches(&csrf, &csrf));
        s.end(&id);
        assert!(s.csrf(&id).is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let s = Sessions::default();
        let first = s.start().0;
        for _ in 0..MAX_SESSIONS {
            s.start();
        }
        assert!(s.csrf(&first).is_none(), "the oldest went");
        assert_eq!(s.by_id.lock().unwrap().len(), MAX_SESSIONS);
    }
}
