//! The circuit breaker: a pure state machine (closed / open / half-open) driven by an injected clock.
//!
//! Closed judges a count-based window of recent calls; past the failure rate (with at
//! least `min_calls` in the window) it opens. Open rests for a cooldown that doubles on
//! every reopen up to a cap, then admits exactly one probe (half-open): success closes
//! it and resets the cooldown, failure reopens it.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Healthy: deliveries flow.
    Closed,
    /// Tripped: no deliveries until the cooldown ends.
    Open,
    /// Cooldown over: one probe delivery decides.
    HalfOpen,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        })
    }
}

/// Numbers that shape the breaker (from `supervision:`).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerPolicy {
    /// The last N calls are judged.
    pub window: u32,
    /// No judgement with fewer calls than this in the window.
    pub min_calls: u32,
    /// Failure rate (0..1] that opens the breaker.
    pub failure_rate: f64,
    /// First cooldown.
    pub cooldown: Duration,
    /// Cooldown cap (it doubles on each reopen).
    pub cooldown_max: Duration,
}

/// A state change, for the supervision log.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
}

/// What the breaker says about one more call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Allowed,
    /// Go ahead: this call is the half-open probe (the transition to half-open is returned).
    Probe,
    /// Not now; try again at this instant (the cooldown's end), or once the probe answers.
    Refused(Option<Instant>),
}

/// One instance's breaker.
#[derive(Debug)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: BreakerState,
    /// Recent outcomes, `true` for a failure; only used while closed.
    window: VecDeque<bool>,
    opened_until: Option<Instant>,
    cooldown: Duration,
    probe_in_flight: bool,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(policy: BreakerPolicy) -> Self {
        let cooldown = policy.cooldown;
        Breaker {
            window: VecDeque::with_capacity(policy.window as usize),
            policy,
            state: BreakerState::Closed,
            opened_until: None,
            cooldown,
            probe_in_flight: false,
        }
    }

    /// The current state (an open breaker whose cooldown is over still says `Open` until
    /// [`Breaker::admit`] lets the probe through).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// When an open breaker will admit a probe.
    pub fn open_until(&self) -> Option<Instant> {
        self.opened_until
            .filter(|_| self.state == BreakerState::Open)
    }

    /// Ask to make one call now; may move open → half-open.
    pub fn admit(&mut self, now: Instant) -> (Admission, Option<Transition>) {
        match self.state {
            BreakerState::Closed => (Admission::Allowed, None),
            BreakerState::Open => match self.opened_until {
                Some(until) if now < until => (Admission::Refused(Some(until)), None),
                _ => {
                    self.probe_in_flight = true;
                    let t = self.go(BreakerState::HalfOpen);
                    (Admission::Probe, t)
                }
            },
            BreakerState::HalfOpen if self.probe_in_flight => (Admission::Refused(None), None),
            BreakerState::HalfOpen => {
                self.probe_in_flight = true;
                (Admission::Probe, None)
            }
        }
    }

    /// A call succeeded.
    pub fn record_success(&mut self) -> Option<Transition> {
        match self.state {
            BreakerState::Closed => {
                self.push(false);
                None
            }
            BreakerState::HalfOpen => {
                self.probe_in_flight = false;
                self.cooldown = self.policy.cooldown;
                self.window.clear();
                self.go(BreakerState::Closed)
            }
            // A late success from before the breaker opened changes nothing.
            BreakerState::Open => None,
        }
    }

    /// A call failed in a way that counts (timeout, connection error, 5xx, panic).
    pub fn record_failure(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            BreakerState::Closed => {
                self.push(true);
                let calls = self.window.len() as u32;
                let failures = self.window.iter().filter(|f| **f).count() as f64;
                if calls >= self.policy.min_calls.max(1)
                    && failures / f64::from(calls) >= self.policy.failure_rate
                {
                    self.open(now)
                } else {
                    None
                }
            }
            BreakerState::HalfOpen => {
                self.probe_in_flight = false;
                self.cooldown = (self.cooldown * 2).min(self.policy.cooldown_max);
                self.open(now)
            }
            BreakerState::Open => None,
        }
    }

    /// A call that was admitted finished without a verdict on the service's health
    /// (a 4xx, a 429): release the probe slot so another call can probe.
    pub fn record_neutral(&mut self) {
        self.probe_in_flight = false;
    }

    /// Open now, whatever the window says (the restart budget ran out).
    pub fn trip(&mut self, now: Instant) -> Option<Transition> {
        if self.state == BreakerState::HalfOpen {
            self.cooldown = (self.cooldown * 2).min(self.policy.cooldown_max);
        }
        self.probe_in_flight = false;
        self.open(now)
    }

    /// Close now (an explicit successful connection test).
    pub fn reset(&mut self) -> Option<Transition> {
        self.window.clear();
        self.probe_in_flight = false;
        self.cooldown = self.policy.cooldown;
        self.opened_until = None;
        self.go(BreakerState::Closed)
    }

    fn open(&mut self, now: Instant) -> Option<Transition> {
        self.window.clear();
        self.opened_until = Some(now + self.cooldown);
        self.go(BreakerState::Open)
    }

    fn push(&mut self, failure: bool) {
        if self.window.len() == self.policy.window.max(1) as usize {
            self.window.pop_front();
        }
        self.window.push_back(failure);
    }

    fn go(&mut self, to: BreakerState) -> Option<Transition> {
        let from = std::mem::replace(&mut self.state, to);
        (from != to).then_some(Transition { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            window: 20,
            min_calls: 5,
            failure_rate: 0.5,
            cooldown: Duration::from_secs(300),
            cooldown_max: Duration::from_secs(3600),
        }
    }

    fn open_it(b: &mut Breaker, now: Instant) {
        for _ in 0..5 {
            b.record_failure(now);
        }
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn stays_closed_below_min_calls() {
        let now = Instant::now();
        let mut b = Breaker::new(policy());
        for _ in 0..4 {
            assert_eq!(b.record_failure(now), None);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn opens_after_failure_rate() {
        let now = Instant::now();
        let mut b = Breaker::new(policy());
        for _ in 0..5 {
            b.record_success();
        }
        // 5 ok + 4 failed = 44 %: closed; the 5th failure makes 50 %: open.
        for _ in 0..4 {
            assert_eq!(b.record_failure(now), None);
        }
        let t = b.record_failure(now).expect("opens");
        assert_eq!((t.from, t.to), (BreakerState::Closed, BreakerState::Open));
        assert_eq!(b.open_until(), Some(now + Duration::from_secs(300)));
    }

    #[test]
    fn old_outcomes_slide_out_of_the_window() {
        let now = Instant::now();
        let mut b = Breaker::new(policy());
        for _ in 0..4 {
            b.record_failure(now);
        }
        for _ in 0..20 {
            b.record_success();
        }
        // The four failures have left the 20-call window: one more failure is 1/20.
        assert_eq!(b.record_failure(now), None);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn refuses_while_open_then_admits_one_probe() {
        let now = Instant::now();
        let mut b = Breaker::new(policy());
        open_it(&mut b, now);
        let until = now + Duration::from_secs(300);
        assert_eq!(
            b.admit(now + Duration::from_secs(10)).0,
            Admission::Refused(Some(until))
        );
        let (a, t) = b.admit(until);
        assert_eq!(a, Admission::Probe);
        assert_eq!(t.map(|t| t.to), Some(BreakerState::HalfOpen));
        // A second caller must wait for the probe's answer.
        assert_eq!(b.admit(until).0, Admission::Refused(None));
    }

    #[test]
    fn probe_success_closes_and_resets_cooldown() {
        let now = Instant::now();
        let mut b = Breaker::new(policy());
        open_it(&mut b, now);
        let later = now + Duration::from_secs(300);
        b.admit(later);
        b.record_failure(later); // reopen: cooldown doubles
        assert_eq!(b.open_until(), Some(later + Duration::from_secs(600)));
        let later2 = later + Duration::from_secs(600);
        b.admit(later2);
        let t = b.record_success().expect("closes");
        assert_eq!(
            (t.from, t.to),
            (BreakerState::HalfOpen, BreakerState::Closed)
        );
        open_it(&mut b, later2);
        assert_eq!(b.open_until(), Some(later2 + Duration::from_secs(300)));
    }

    #[test]
    fn cooldown_doubles_up_to_the_cap() {
        let mut now = Instant::now();
        let mut b = Breaker::new(policy());
        open_it(&mut b, now);
        let mut seen = Vec::new();
        for _ in 0..6 {
            now = b.open_until().unwrap();
            b.admit(now);
            b.record_failure(now);
            seen.push((b.open_until().unwrap() - now).as_secs());
        }
        assert_eq!(seen, vec![600, 1200, 2400, 3600, 3600, 3600]);
    }

    #[test]
    fn neutral_outcome_frees_the_probe_slot() {
        let now = Instant::now();
        let mut b = Breaker::new(policy());
        open_it(&mut b, now);
        let until = b.open_until().unwrap();
        assert_eq!(b.admit(until).0, Admission::Probe);
        b.record_neutral();
        assert_eq!(b.admit(until).0, Admission::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn trip_and_reset() {
        let now = Instant::now();
        let mut b = Breaker::new(policy());
        assert_eq!(b.trip(now).map(|t| t.to), Some(BreakerState::Open));
        assert_eq!(b.reset().map(|t| t.to), Some(BreakerState::Closed));
        assert_eq!(b.admit(now).0, Admission::Allowed);
    }
}
