//! The restart policy: exponential backoff with full jitter, and a restart budget
//! (more than N restarts within a window gives up). Pure; the clock and the jitter are injected.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Numbers that shape restarts (from `supervision:`).
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    /// First backoff ceiling; doubles per consecutive restart.
    pub base: Duration,
    /// Backoff cap.
    pub max: Duration,
    /// Healthy this long after a restart and the backoff starts over.
    pub reset_after: Duration,
    /// More restarts than this within `window` gives up.
    pub max_restarts: u32,
    /// The budget's window.
    pub window: Duration,
}

/// What to do about a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart after this backoff; `restarts` counts those within the window, this one included.
    Restart {
        /// How long to wait.
        backoff: Duration,
        /// Restarts within the window, this one included.
        restarts: u32,
    },
    /// The budget is spent: stop restarting (the supervisor trips the plugin open).
    GiveUp {
        /// Restarts within the window.
        restarts: u32,
    },
}

/// One instance's restart history.
#[derive(Debug)]
pub struct RestartTracker {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
    consecutive: u32,
    last: Option<Instant>,
    total: u64,
}

impl RestartTracker {
    /// No restarts yet.
    pub fn new(policy: RestartPolicy) -> Self {
        RestartTracker {
            policy,
            recent: VecDeque::new(),
            consecutive: 0,
            last: None,
            total: 0,
        }
    }

    /// All restarts since start.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The instance crashed at `now`. `unit` is a random number in [0, 1) for the jitter.
    pub fn on_crash(&mut self, now: Instant, unit: f64) -> RestartDecision {
        self.forget_before(now);
        if let Some(last) = self.last {
            if now.saturating_duration_since(last) >= self.policy.reset_after {
                self.consecutive = 0;
            }
        }
        if self.recent.len() as u32 >= self.policy.max_restarts {
            return RestartDecision::GiveUp {
                restarts: self.recent.len() as u32,
            };
        }
        let ceiling = self
            .policy
            .base
            .saturating_mul(1u32 << self.consecutive.min(20))
            .min(self.policy.max);
        let backoff = ceiling.mul_f64(unit.clamp(0.0, 1.0));
        self.consecutive += 1;
        self.recent.push_back(now);
        self.last = Some(now);
        self.total += 1;
        RestartDecision::Restart {
            backoff,
            restarts: self.recent.len() as u32,
        }
    }

    /// Forget the history (after the plugin was tripped open and then closed again).
    pub fn clear(&mut self) {
        self.recent.clear();
        self.consecutive = 0;
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some(t) = self.recent.front() {
            if now.saturating_duration_since(*t) > self.policy.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
            reset_after: Duration::from_secs(60),
            max_restarts: 5,
            window: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_with_full_jitter_up_to_the_cap() {
        let now = Instant::now();
        let mut r = RestartTracker::new(RestartPolicy {
            max_restarts: 100,
            window: Duration::from_secs(1),
            ..policy()
        });
        let mut ceilings = Vec::new();
        for i in 0..10 {
            // unit just below 1 gives (almost) the ceiling; each crash 2 s apart keeps the window small.
            let at = now + Duration::from_secs(2 * i);
            match r.on_crash(at, 0.999_999) {
                RestartDecision::Restart { backoff, .. } => ceilings.push(backoff.as_millis()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            ceilings[..8],
            [499, 999, 1999, 3999, 7999, 15999, 31999, 59999]
        );
        assert_eq!(ceilings[9], 59999);
        let half = r.on_crash(now + Duration::from_secs(21), 0.5);
        assert!(
            matches!(half, RestartDecision::Restart { backoff, .. } if backoff == Duration::from_secs(30))
        );
    }

    #[test]
    fn more_than_budget_in_window_gives_up() {
        let now = Instant::now();
        let mut r = RestartTracker::new(policy());
        for i in 1..=5 {
            let d = r.on_crash(now + Duration::from_secs(i), 0.0);
            assert!(
                matches!(d, RestartDecision::Restart { restarts, .. } if restarts == i as u32),
                "{d:?}"
            );
        }
        assert_eq!(
            r.on_crash(now + Duration::from_secs(6), 0.0),
            RestartDecision::GiveUp { restarts: 5 }
        );
        assert_eq!(r.total(), 5);
    }

    #[test]
    fn crashes_outside_the_window_do_not_count() {
        let now = Instant::now();
        let mut r = RestartTracker::new(policy());
        for i in 0..5 {
            r.on_crash(now + Duration::from_secs(i), 0.0);
        }
        let d = r.on_crash(now + Duration::from_secs(70), 0.0);
        assert!(
            matches!(d, RestartDecision::Restart { restarts: 1, .. }),
            "{d:?}"
        );
    }

    #[test]
    fn healthy_period_resets_the_backoff() {
        let now = Instant::now();
        let mut r = RestartTracker::new(policy());
        r.on_crash(now, 0.999_999);
        r.on_crash(now + Duration::from_secs(1), 0.999_999);
        let d = r.on_crash(now + Duration::from_secs(100), 0.999_999);
        assert!(
            matches!(d, RestartDecision::Restart { backoff, .. } if backoff.as_millis() == 499),
            "{d:?}"
        );
    }
}
