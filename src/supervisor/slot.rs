//! One supervised instance's state: its actor, breaker, restart budget, backlog and counters,
//! and the status the API shows.

use std::collections::VecDeque;

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::DefaultDirectRateLimiter;
use serde::Serialize;

use super::breaker::{Breaker, BreakerState};
use super::restart::RestartTracker;
use super::spec::InstanceSpec;
use crate::event::{Event, EventName};
use crate::plugins::actor::{PluginHandle, QUEUED_PER_RUNNING};

/// A delivery waiting its turn (the plugin is paused, open, restarting or at its in-flight limit).
pub(crate) struct Pending {
    pub event: Arc<Event>,
    /// The delivery's sequence number in the store (0 for an enrichment call, which has no
    /// row): the order of acceptance, so a retried delivery goes back to its place.
    pub seq: u64,
    /// Failed attempts that crashed the plugin (bounded, so one poison event cannot loop).
    pub crashes: u32,
    /// When it was accepted (a resumed delivery keeps its age across restarts).
    pub queued_at: Instant,
    /// An enrichment call: answered once, never held or retried (a late patch would find
    /// the event already delivered).
    pub enrich: bool,
    /// The instance's pause epoch when it was sent (see `Slot::pause_epoch`).
    pub epoch: u64,
    /// Through the instance's digest and quiet hours already: sent as it is.
    pub released: bool,
    /// Has been in an overflow digest group (it does not join another).
    pub overflowed: bool,
    /// This delivery carries a digest of these other deliveries (`event` is the digest).
    pub digest: Option<Box<super::digest::DigestSend>>,
}

impl Pending {
    /// A delivery of `event` (store sequence `seq`), waiting since `queued_at`.
    pub fn new(event: Arc<Event>, seq: u64, queued_at: Instant) -> Pending {
        Pending {
            event,
            seq,
            crashes: 0,
            queued_at,
            enrich: false,
            epoch: 0,
            released: false,
            overflowed: false,
            digest: None,
        }
    }
}

/// Where a waiting caller (`emit_sync`) gets this delivery's report.
pub(crate) type Waiter = Option<oneshot::Sender<super::DeliveryReport>>;

/// Per-instance counters.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    pub delivered: u64,
    /// Digest and quiet-hours summary messages sent (their events count in `delivered`).
    pub digests: u64,
    /// Events delivered through a digest (they count in `delivered` too).
    pub digested: u64,
    /// Deliveries given up on since start (dead letters made).
    pub dead_lettered: u64,
    /// How long each attempt took, success or failure.
    pub durations: Arc<crate::metrics::Timings>,
    pub failed: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub last_delivered_at: Option<DateTime<Utc>>,
}

pub(crate) struct Slot {
    pub spec: InstanceSpec,
    /// The instance name, shared with store updates.
    pub name: Arc<str>,
    /// Why the store shows this instance's waiting deliveries as held (`None`: pending).
    pub store_hold: Option<String>,
    /// Waiting deliveries kept only in the store (the memory window is full).
    pub spill: Option<super::window::Spill>,
    /// The newest delivery read back from the store (0: none). A new delivery handed over
    /// with a sequence up to this was committed while a read ran, and the read has it.
    pub read_back: u64,
    pub handle: Option<PluginHandle>,
    /// Bumped at every restart; answers from an older actor do not judge the new one.
    pub generation: u64,
    /// Failure reports read from the current actor (the highest count a `Done` of its
    /// carried); each batch sent carries it, so the actor can tell a batch sent before
    /// the supervisor judged a failure.
    pub failures_seen: u64,
    pub breaker: Breaker,
    pub restarts: RestartTracker,
    pub misconfigured: Option<String>,
    /// No deliveries until then: a restart backoff, a 429, or a retry pause after a failure.
    pub held_until: Option<Instant>,
    pub hold_reason: Option<&'static str>,
    /// Consecutive failure pauses without a success between them (grows the pause).
    pub pause_streak: u32,
    /// Consecutive 429s without `Retry-After` (grows their pause; not a failure).
    pub rate_streak: u32,
    /// Counts pauses; a failure of a delivery sent before the current pause does not
    /// grow it again (one round of failures escalates once).
    pub pause_epoch: u64,
    pub pinging: bool,
    pub in_flight: u32,
    pub backlog: VecDeque<Pending>,
    /// Deliveries admitted in this mailbox turn, sent as one batch at its end.
    pub outbox: Vec<(Pending, Waiter)>,
    /// The spec's timeout, or the supervision default.
    pub timeout: Duration,
    /// The spec's in-flight limit, or the supervision default.
    pub max_in_flight: u32,
    /// The instance's own rate limit, if it has one.
    pub limiter: Option<DefaultDirectRateLimiter>,
    pub stats: Stats,
    /// Deliveries the instance's digest or quiet hours hold.
    pub held: super::digest::Held,
    /// No longer in the config (a reload removed it): it gets nothing, shows nowhere, and
    /// what comes back to it is dead. Its place stays so every other index stays valid.
    pub removed: bool,
    /// A reload changed its config: sending stops, and once what is in flight has come
    /// back it is rebuilt from this spec (see `reconfigure.rs`).
    pub rebuild: Option<Box<InstanceSpec>>,
}

impl Slot {
    pub fn is_held(&self, now: Instant) -> bool {
        self.held_until.is_some_and(|t| now < t)
    }

    /// Can hand the actor another delivery right now (the breaker is asked separately).
    /// The actor runs `max_in_flight` at once and queues more, so it has the next one at
    /// hand when one ends.
    pub fn can_send(&self, now: Instant) -> bool {
        self.spec.enabled
            && self.rebuild.is_none()
            && self.handle.is_some()
            && self.misconfigured.is_none()
            && !self.is_held(now)
            && self.in_flight < self.max_in_flight.saturating_mul(1 + QUEUED_PER_RUNNING)
    }

    /// A digest or quiet hours decide on each delivery as it arrives (so the intake hands
    /// them over at once, even while older ones wait).
    pub fn has_policy(&self) -> bool {
        self.spec.digest.is_some() || self.spec.quiet_hours.is_some()
    }

    /// A delivery handed over now starts at once (the actor has a free place).
    pub fn starts_at_once(&self) -> bool {
        self.in_flight < self.max_in_flight
    }

    /// Put a delivery that must be retried back in offer order (concurrent failures
    /// come back in any order; the user should still get their notifications in order).
    /// One that is there already (a retry of a held delivery) is not added twice.
    pub fn requeue(&mut self, pending: Pending) -> bool {
        let at = self.backlog.partition_point(|p| p.seq < pending.seq);
        if self.backlog.get(at).is_some_and(|p| p.seq == pending.seq) {
            return false;
        }
        self.backlog.insert(at, pending);
        true
    }

    pub fn state_label(&self, now: Instant) -> &'static str {
        if !self.spec.enabled {
            "disabled"
        } else if self.misconfigured.is_some() {
            "misconfigured"
        } else {
            match self.breaker.state() {
                BreakerState::Closed => "closed",
                BreakerState::HalfOpen => "half_open",
                // Cooldown over: the next delivery is the probe.
                BreakerState::Open if self.breaker.open_until().is_some_and(|t| t <= now) => {
                    "half_open"
                }
                BreakerState::Open => "open",
            }
        }
    }

    /// How long until the rate limit lets another delivery out; `None` when one may go
    /// now (and that one is counted).
    pub fn rate_wait(&self) -> Option<Duration> {
        let limiter = self.limiter.as_ref()?;
        let refused = limiter.check().err()?;
        Some(refused.wait_time_from(DefaultClock::default().now()))
    }

    pub fn note_error(&mut self, text: String) {
        self.stats.last_error = Some(text);
        self.stats.last_error_at = Some(Utc::now());
    }

    pub fn status(&self, now: Instant) -> PluginStatus {
        let until = |t: Instant| {
            Utc::now()
                + chrono::Duration::from_std(t.saturating_duration_since(now)).unwrap_or_default()
        };
        let retry_at = self
            .breaker
            .open_until()
            .or(self.held_until.filter(|t| *t > now));
        PluginStatus {
            name: self.spec.name.clone(),
            kind: self.spec.kind.clone(),
            role: self.spec.role,
            enabled: self.spec.enabled,
            events: self.spec.events.clone(),
            state: self.state_label(now),
            paused: if self.rebuild.is_some() {
                Some("reloading")
            } else {
                self.hold_reason.filter(|_| self.is_held(now))
            },
            misconfigured_reason: self.misconfigured.clone(),
            restarts: self.restarts.total(),
            delivered: self.stats.delivered,
            digests: self.stats.digests,
            digested: self.stats.digested,
            dead_lettered: self.stats.dead_lettered,
            durations: self.stats.durations.snapshot(),
            failed: self.stats.failed,
            held: 0,
            dead: 0,
            // Deliveries the actor holds beyond its limit are waiting, not running.
            queued: self.backlog.len() + self.in_flight.saturating_sub(self.max_in_flight) as usize,
            in_flight: self.in_flight.min(self.max_in_flight),
            last_error: self.stats.last_error.clone(),
            last_error_at: self.stats.last_error_at,
            last_delivered_at: self.stats.last_delivered_at,
            retry_at: retry_at.filter(|t| *t > now).map(until),
        }
    }
}

/// What `GET /api/v1/plugins` shows for one instance.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PluginStatus {
    /// Instance name.
    pub name: String,
    /// Plugin type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `notification`, `webhook` or `enrichment`.
    pub role: &'static str,
    /// Whether it receives events.
    pub enabled: bool,
    /// Events it receives.
    pub events: Vec<EventName>,
    /// `closed`, `open`, `half_open`, `misconfigured` or `disabled`.
    pub state: &'static str,
    /// Why sending is paused right now (`restarting`, `rate_limited`, `retry_backoff`,
    /// `rate_limit`, `reloading`: rebuilt once what is in flight is back), if it is.
    pub paused: Option<&'static str>,
    /// What to fix, when misconfigured.
    pub misconfigured_reason: Option<String>,
    /// Restarts since start.
    pub restarts: u64,
    /// Events delivered (an event sent in a digest counts once, as delivered).
    pub delivered: u64,
    /// Digest and quiet-hours summary messages sent. `delivered` counts events, so each
    /// event a digest carried counts there once, and the digest message only here.
    pub digests: u64,
    /// Events delivered through a digest since start (counted in `delivered` too).
    pub digested: u64,
    /// Dead letters made since start (`dead` is what the store keeps now).
    pub dead_lettered: u64,
    /// How long its attempts took (for `/metrics`).
    #[serde(skip)]
    pub durations: crate::metrics::TimingsSnapshot,
    /// Failed delivery attempts.
    pub failed: u64,
    /// Deliveries the store holds for this instance while it is paused, open or
    /// misconfigured (from the store).
    pub held: u64,
    /// Dead letters: deliveries given up on with a reason, kept for a replay (from the store).
    pub dead: u64,
    /// Deliveries waiting their turn (in the backlog, or queued in the plugin's actor).
    pub queued: usize,
    /// Deliveries running now.
    pub in_flight: u32,
    /// The last error, redacted.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// When the last delivery succeeded.
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// When deliveries resume (end of cooldown, pause or restart backoff).
    pub retry_at: Option<DateTime<Utc>>,
}
