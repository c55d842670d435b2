//! `PluginError`: every way a delivery can fail, classified for the retry and supervision policy.

use std::time::Duration;

/// Why a plugin call failed. The variant decides what the supervisor does next:
/// retry, count a breaker failure, pause, or mark the instance misconfigured.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PluginError {
    /// A network error or a 5xx: worth retrying, and a breaker failure if retries run out.
    #[error("transient failure: {reason}")]
    Transient {
        /// HTTP status, when there was a response.
        status: Option<u16>,
        /// What went wrong, already redacted.
        reason: String,
    },
    /// The delivery did not finish within its timeout.
    #[error("timed out after {}ms", .after.as_millis())]
    Timeout {
        /// The timeout that ran out.
        after: Duration,
    },
    /// The service asked us to slow down (429): pause, do not count a failure.
    #[error("rate limited by the service{}", retry_hint(.retry_after))]
    RateLimited {
        /// How long the service asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// 401/403/404 and the like: the configuration is wrong and retrying will not help.
    #[error("misconfigured: {reason}")]
    Misconfigured {
        /// HTTP status, when there was a response.
        status: Option<u16>,
        /// What to fix, already redacted.
        reason: String,
    },
    /// The service refused this one request (a 4xx other than the above): not retried,
    /// not a sign the service is down.
    #[error("rejected by the service: {reason}")]
    Rejected {
        /// HTTP status.
        status: Option<u16>,
        /// The service's own error text, redacted.
        reason: String,
    },
    /// The plugin's code panicked; the supervisor restarts the instance.
    #[error("plugin panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The plugin's actor did not answer at all (its thread is blocked or it is gone).
    #[error("plugin is unresponsive")]
    Unresponsive,
    /// The delivery was not attempted because the instance is not accepting work.
    #[error("not attempted: plugin is {state}")]
    Unavailable {
        /// The state that refused it (`open`, `misconfigured`, `disabled`, `paused`).
        state: String,
    },
    /// A dry run (preview) recorded the request instead of sending it. Not retried.
    #[error("not sent: a dry run records the request instead of sending it")]
    DryRun,
}

fn retry_hint(d: &Option<Duration>) -> String {
    d.map(|d| format!(" (retry after {}s)", d.as_secs_f64()))
        .unwrap_or_default()
}

impl PluginError {
    /// Worth retrying the same request soon (network trouble, 5xx, timeouts).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PluginError::Transient { .. } | PluginError::Timeout { .. }
        )
    }

    /// Counts toward opening the circuit breaker: the service (or the plugin) looks unhealthy.
    pub fn is_breaker_failure(&self) -> bool {
        matches!(
            self,
            PluginError::Transient { .. }
                | PluginError::Timeout { .. }
                | PluginError::Panicked { .. }
                | PluginError::Unresponsive
        )
    }

    /// The HTTP status the service answered, when there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            PluginError::Transient { status, .. }
            | PluginError::Misconfigured { status, .. }
            | PluginError::Rejected { status, .. } => *status,
            PluginError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// A short machine-readable kind for logs and the API.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Transient { .. } => "transient",
            PluginError::Timeout { .. } => "timeout",
            PluginError::RateLimited { .. } => "rate_limited",
            PluginError::Misconfigured { .. } => "misconfigured",
            PluginError::Rejected { .. } => "rejected",
            PluginError::Panicked { .. } => "panicked",
            PluginError::Unresponsive => "unresponsive",
            PluginError::Unavailable { .. } => "unavailable",
            PluginError::DryRun => "dry_run",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_drives_policy() {
        let t = PluginError::Transient {
            status: Some(502),
            reason: "bad gateway".into(),
        };
        assert!(t.is_transient() && t.is_breaker_failure());
        let r = PluginError::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(!r.is_transient() && !r.is_breaker_failure());
        assert_eq!(
            r.to_string(),
            "rate limited by the service (retry after 3s)"
        );
        let m = PluginError::Misconfigured {
            status: Some(401),
            reason: "bad token".into(),
        };
        assert!(!m.is_transient() && !m.is_breaker_failure());
        let p = PluginError::Panicked {
            message: "boom".into(),
        };
        assert!(!p.is_transient() && p.is_breaker_failure());
    }
}
