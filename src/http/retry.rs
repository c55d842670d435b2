//! Retrying transient failures: exponential backoff with full jitter, on tokio's clock.

use std::future::Future;
use std::time::Duration;

use rand::Rng as _;

use crate::plugins::PluginError;

/// How often and how patiently to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 counts as 1).
    pub max_attempts: u32,
    /// The backoff ceiling before the first retry; it doubles per retry.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts, 500 ms base, 10 s cap: a short burst that fits the default 10 s
    /// delivery timeout. Longer outages are the supervisor's business (breaker, restarts).
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(500),
            max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn no_retry() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The ceiling of the backoff before retry number `retry` (0 for the first retry):
    /// `min(max, base * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The backoff before retry number `retry`: full jitter, uniform in `[0, ceiling]`, so
    /// many plugins failing together do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = u64::try_from(self.ceiling(retry).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=ceiling))
    }
}

/// Runs `op` until it succeeds, fails with a non-transient error, or `policy` runs out of
/// attempts, sleeping [`RetryPolicy::backoff`] between tries (`tokio::time::sleep`, so tests
/// may pause time). Only [`PluginError::is_transient`] errors are retried: a 4xx will fail
/// the same way again, and a 429 goes straight back so the supervisor can pause the plugin.
/// `op` receives the attempt number, starting at 1.
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, mut op: F) -> Result<T, PluginError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, PluginError>>,
{
    let max_attempts = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        match op(attempt).await {
            Err(err) if err.is_transient() && attempt < max_attempts => {
                let backoff = policy.backoff(attempt - 1);
                // Debug, not warn: the final outcome is logged by the supervisor, and a
                // retry that then succeeds needs no one's attention.
                tracing::debug!(
                    attempt,
                    max_attempts,
                    backoff_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                    error = %err,
                    "transient failure, retrying"
                );
                tokio::time::sleep(backoff).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_ceilings_double_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(0), Duration::from_millis(500));
        assert_eq!(p.ceiling(1), Duration::from_secs(1));
        assert_eq!(p.ceiling(3), Duration::from_secs(4));
        assert_eq!(p.ceiling(5), Duration::from_secs(10));
        assert_eq!(p.ceiling(200), Duration::from_secs(10));
    }

    #[test]
    fn full_jitter_stays_within_bounds_and_varies() {
        let p = RetryPolicy::default();
        for retry in 0..6 {
            let samples: Vec<Duration> = (0..200).map(|_| p.backoff(retry)).collect();
            assert!(
                samples.iter().all(|d| *d <= p.ceiling(retry)),
                "retry {retry}"
            );
            let distinct: std::collections::HashSet<_> = samples.iter().collect();
            assert!(
                distinct.len() > 100,
                "full jitter should spread, got {} distinct",
                distinct.len()
            );
            // Full jitter reaches into the lower half, unlike "equal jitter".
            assert!(samples.iter().any(|d| *d < p.ceiling(retry) / 2));
        }
        let zero = RetryPolicy {
            base: Duration::ZERO,
            ..p
        };
        assert_eq!(zero.backoff(3), Duration::ZERO);
    }

    fn transient() -> PluginError {
        PluginError::Transient {
            status: Some(503),
            reason: "503 Service Unavailable".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_failures_then_succeeds() {
        let start = tokio::time::Instant::now();
        let mut calls = 0;
        let result = retry(&RetryPolicy::default(), |attempt| {
            calls += 1;
            assert_eq!(attempt, calls);
            async move {
                if attempt < 3 {
                    Err(transient())
                } else {
                    Ok("sent")
                }
            }
        })
        .await;
        assert_eq!(result, Ok("sent"));
        assert_eq!(calls, 3);
        let p = RetryPolicy::default();
        assert!(start.elapsed() <= p.ceiling(0) + p.ceiling(1));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_with_the_last_error() {
        let mut calls = 0;
        let result: Result<(), _> = retry(&RetryPolicy::default(), |_| {
            calls += 1;
            async { Err(transient()) }
        })
        .await;
        assert_eq!(result, Err(transient()));
        assert_eq!(calls, 3);
        let mut calls = 0;
        let once = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        let _ = retry(&once, |_| {
            calls += 1;
            async { Err::<(), _>(transient()) }
        })
        .await;
        assert_eq!(calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn never_retries_client_errors_or_rate_limits() {
        for err in [
            PluginError::Rejected {
                status: Some(400),
                reason: "bad".into(),
            },
            PluginError::Misconfigured {
                status: Some(401),
                reason: "token".into(),
            },
            PluginError::RateLimited { retry_after: None },
        ] {
            let mut calls = 0;
            let result: Result<(), _> = retry(&RetryPolicy::default(), |_| {
                calls += 1;
                let err = err.clone();
                async move { Err(err) }
            })
            .await;
            assert_eq!(result, Err(err));
            assert_eq!(calls, 1);
        }
    }
}
