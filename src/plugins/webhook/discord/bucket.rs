//! Discord's rate-limit bucket, honoured before a 429 happens: every webhook reply says
//! how many requests are left (`X-RateLimit-Remaining`) and when the bucket refills
//! (`X-RateLimit-Reset-After`, seconds); with none left, the next post waits.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

/// A longer wait than this is handed to the supervisor as a rate-limit pause (the
/// delivery goes back in order) instead of being slept through inside one call.
pub const MAX_SLEEP: Duration = Duration::from_secs(5);

/// When the bucket is empty until.
#[derive(Debug, Default)]
pub struct Bucket {
    empty_until: Mutex<Option<Instant>>,
}

impl Bucket {
    /// Take note of a reply's rate-limit headers.
    pub fn note(&self, headers: &HeaderMap) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let remaining = header("x-ratelimit-remaining").and_then(|v| v.trim().parse::<u64>().ok());
        let reset_after = header("x-ratelimit-reset-after")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(3600.0)));
        let mut slot = self
            .empty_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *slot = match (remaining, reset_after) {
            (Some(0), Some(wait)) => Some(Instant::now() + wait),
            _ => None,
        };
    }

    /// How long the next post must wait, if it must.
    pub fn wait(&self) -> Option<Duration> {
        let slot = self
            .empty_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.map(|t| t.saturating_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn an_empty_bucket_makes_the_next_post_wait_until_it_refills() {
        let b = Bucket::default();
        assert_eq!(b.wait(), None);
        b.note(&headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset-after", "1.5"),
        ]));
        let w = b.wait().expect("must wait");
        assert!(
            w > Duration::from_millis(1400) && w <= Duration::from_millis(1500),
            "{w:?}"
        );
        // Requests left, or no headers at all: no wait.
        b.note(&headers(&[
            ("x-ratelimit-remaining", "4"),
            ("x-ratelimit-reset-after", "1.5"),
        ]));
        assert_eq!(b.wait(), None);
        b.note(&headers(&[("x-ratelimit-remaining", "0")]));
        assert_eq!(b.wait(), None);
        b.note(&headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset-after", "nan"),
        ]));
        assert_eq!(b.wait(), None);
    }
}
