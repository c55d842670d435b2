//! The delivery path: admit, send, judge each result, hold in order, drain the backlog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;

use super::breaker::{Admission, BreakerState};
use super::slot::{Pending, Waiter};
use super::{DeliveryReport, PluginSupervisor};
use crate::event::Event;
use crate::plugins::{Outcome, PluginError};
use crate::store::{Seq, State, Update};

/// A crash on the same event this many times and the delivery is dead (a poison event
/// must not restart a plugin forever).
const MAX_CRASHES_PER_EVENT: u32 = 3;
/// Pause after a 429 without `Retry-After`, doubling per consecutive pause (ntfy sends none).
const RATE_LIMIT_PAUSE: Duration = Duration::from_secs(5);
/// Pause after a transient failure before the held delivery is retried, doubling.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(300);

pub(super) fn report(plugin: &str, status: &'static str, took: Duration) -> DeliveryReport {
    DeliveryReport {
        patch: None,
        plugin: plugin.to_owned(),
        status,
        detail: None,
        error_kind: None,
        error: None,
        duration_ms: took.as_millis() as u64,
    }
}

pub(super) fn reply(waiter: Waiter, r: impl FnOnce() -> DeliveryReport) {
    if let Some(w) = waiter {
        let _ = w.send(r());
    }
}

impl PluginSupervisor {
    /// A new delivery for instance `idx` (store sequence `seq`): send it now, or hold it
    /// in order. A misconfigured, open or paused instance holds it until it is healthy.
    pub(super) fn offer(
        &mut self,
        idx: usize,
        event: Arc<Event>,
        seq: u64,
        waiter: Waiter,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        if self.slots[idx].removed {
            return self.offer_removed(idx, seq, waiter);
        }
        let slot = &mut self.slots[idx];
        if seq <= slot.read_back {
            // Read back from the store already (it was committed while a read ran).
            return reply(waiter, || report(&slot.spec.name, "queued", Duration::ZERO));
        }
        if self.shutting_down {
            // Accepted and stored: the next start sends it.
            return reply(waiter, || report(&slot.spec.name, "queued", Duration::ZERO));
        }
        // Held for a digest or quiet hours: in the store (parked), sent later.
        let Some(pending) = self.divert(idx, Pending::new(event, seq, now), ctx) else {
            let slot = &self.slots[idx];
            return reply(waiter, || report(&slot.spec.name, "queued", Duration::ZERO));
        };
        let slot = &mut self.slots[idx];
        // Older deliveries wait in the backlog, or in the store beyond the memory window.
        if !slot.backlog.is_empty() || slot.spill.is_some() || !slot.can_send(now) {
            return self.hold(idx, pending, waiter);
        }
        if let Some(wait) = slot.rate_wait() {
            self.rate_hold(idx, wait, ctx);
            return self.hold(idx, pending, waiter);
        }
        match self.admit(idx, now) {
            true => self.send(idx, pending, waiter, ctx),
            false => self.hold(idx, pending, waiter),
        }
    }

    /// Ask enrichment instance `idx` about `event` now, or not at all: an enricher that is
    /// disabled, held, open or busy is skipped and the event goes on without its fields.
    pub(super) fn offer_enrichment(
        &mut self,
        idx: usize,
        event: Arc<Event>,
        waiter: Waiter,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        let slot = &self.slots[idx];
        // The event waits for this answer: a busy enricher is skipped, not queued.
        let ready = slot.spec.enabled
            && !self.shutting_down
            && slot.can_send(now)
            && slot.starts_at_once()
            && slot.rate_wait().is_none()
            && self.admit(idx, now);
        let slot = &mut self.slots[idx];
        if !ready {
            return reply(waiter, || {
                report(&slot.spec.name, "skipped", Duration::ZERO)
            });
        }
        let pending = Pending {
            enrich: true,
            ..Pending::new(event, 0, now)
        };
        self.send(idx, pending, waiter, ctx);
    }

    /// Keep a delivery in the backlog, in order; the store already has it.
    pub(super) fn hold(&mut self, idx: usize, pending: Pending, waiter: Waiter) {
        let slot = &mut self.slots[idx];
        if let Some(reason) = &slot.store_hold {
            self.updates.push(
                Update::HoldOne {
                    seq: pending.seq as Seq,
                    reason: reason.clone(),
                },
                &self.me,
            );
        }
        if self.spills(idx, &pending) {
            // In the store only, read back in order when the window has room.
            let slot = &self.slots[idx];
            reply(waiter, || report(&slot.spec.name, "queued", Duration::ZERO));
            return self.backlog_changed(idx);
        }
        let slot = &mut self.slots[idx];
        if slot.backlog.back().is_some_and(|b| pending.seq < b.seq) {
            slot.requeue(pending);
        } else {
            slot.backlog.push_back(pending);
        }
        reply(waiter, || report(&slot.spec.name, "queued", Duration::ZERO));
        self.backlog_changed(idx);
    }

    /// Ask the breaker; logs the move to half-open when this call is the probe.
    pub(super) fn admit(&mut self, idx: usize, now: Instant) -> bool {
        let (admission, t) = self.slots[idx].breaker.admit(now);
        if let Some(t) = t {
            self.log_breaker(idx, &t, "cooldown over: probing with one delivery");
        }
        !matches!(admission, Admission::Refused(_))
    }

    /// Queue one delivery in the instance's outbox; the outbox goes out as one batch
    /// when the current mailbox turn is over (see [`PluginSupervisor::flush`]).
    pub(super) fn send(
        &mut self,
        idx: usize,
        mut pending: Pending,
        waiter: Waiter,
        ctx: &mut Context<Self>,
    ) {
        let slot = &mut self.slots[idx];
        if slot.handle.is_none() {
            slot.breaker.record_neutral();
            return self.hold(idx, pending, waiter);
        }
        if !pending.enrich {
            self.updates.push(
                Update::Started {
                    seq: pending.seq as Seq,
                },
                &self.me,
            );
        }
        pending.epoch = slot.pause_epoch;
        slot.in_flight += 1;
        if slot.outbox.is_empty() {
            self.dirty.push(idx);
        }
        slot.outbox.push((pending, waiter));
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.notify(super::Flush);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn finished(
        &mut self,
        idx: usize,
        generation: u64,
        mut pending: Pending,
        waiter: Waiter,
        result: Result<Outcome, PluginError>,
        took: Duration,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        let current = self.slots[idx].generation == generation;
        let slot = &mut self.slots[idx];
        slot.in_flight = slot.in_flight.saturating_sub(1);
        if !pending.enrich {
            slot.stats.durations.observe(took);
        }
        // Deliveries that were in flight when the current pause began fail with it: a pause
        // grows once per round of failures, not once per delivery that shared the round.
        let fresh = pending.epoch == slot.pause_epoch;
        match result {
            Ok(outcome) => {
                slot.stats.delivered += 1;
                slot.stats.last_delivered_at = Some(Utc::now());
                slot.pause_streak = 0;
                slot.rate_streak = 0;
                let (detail, patch) = match outcome {
                    Outcome::Delivered(d) => (Some(d.detail), None),
                    Outcome::Enriched(e) => (None, Some(e.patch)),
                };
                if let Some(t) = current.then(|| slot.breaker.record_success()).flatten() {
                    slot.restarts.clear();
                    self.log_breaker(idx, &t, "probe delivery succeeded");
                }
                if !pending.enrich {
                    self.record_delivered(pending.seq, detail.as_deref(), took);
                    self.settle_members(idx, &pending, None);
                }
                let name = &self.slots[idx].spec.name;
                reply(waiter, || DeliveryReport {
                    detail,
                    patch,
                    ..report(name, "delivered", took)
                });
            }
            Err(err) => {
                let name = slot.spec.name.clone();
                // Held for a retry, except enrichment calls: those are asked once.
                let held = if pending.enrich { "failed" } else { "queued" };
                // A 429 is the service pacing us, not a failure.
                if !matches!(err, PluginError::RateLimited { .. }) {
                    slot.stats.failed += 1;
                }
                slot.note_error(err.to_string());
                tracing::debug!(target: "supervision", plugin = %name, error = %err, kind = err.kind(), "delivery failed");
                let queued = |err: &PluginError| DeliveryReport {
                    error_kind: Some(err.kind()),
                    error: Some(err.to_string()),
                    ..report(&name, held, took)
                };
                match &err {
                    PluginError::RateLimited { retry_after } => {
                        slot.breaker.record_neutral();
                        let pause = retry_after
                            .unwrap_or_else(|| backoff(RATE_LIMIT_PAUSE, slot.rate_streak));
                        if fresh && retry_after.is_none() {
                            slot.rate_streak += 1;
                        }
                        self.retry_later(idx, pending, &err, took, Some(pause));
                        if fresh {
                            self.pause(idx, pause, "rate_limited", ctx);
                        }
                        reply(waiter, || queued(&err));
                    }
                    PluginError::Misconfigured { reason, .. } => {
                        slot.breaker.record_neutral();
                        let reason = reason.clone();
                        // Held, not dropped: it goes out once the config is fixed.
                        self.retry_later(idx, pending, &err, took, None);
                        self.mark_misconfigured(idx, reason);
                        reply(waiter, || failed(&name, &err, took));
                    }
                    // A capturing client (a preview's) never runs under the supervisor.
                    PluginError::Rejected { .. } | PluginError::DryRun => {
                        slot.breaker.record_neutral();
                        if !pending.enrich {
                            let reason = err.to_string();
                            self.slots[idx].stats.dead_lettered += 1;
                            self.settle_members(idx, &pending, Some(&reason));
                            self.record_attempt(
                                pending.seq,
                                &err,
                                took,
                                State::Dead,
                                Some(reason),
                                None,
                            );
                        }
                        reply(waiter, || failed(&name, &err, took));
                    }
                    PluginError::Unavailable { .. } => {
                        slot.breaker.record_neutral();
                        self.retry_later(idx, pending, &err, took, None);
                        reply(waiter, || failed(&name, &err, took));
                    }
                    PluginError::Panicked { .. } | PluginError::Unresponsive => {
                        pending.crashes += 1;
                        if current {
                            self.record_failure(idx, now);
                        }
                        self.requeue_or_bury(idx, pending, &err, took);
                        if current {
                            self.crash(idx, err.to_string(), ctx);
                        }
                        reply(waiter, || failed(&name, &err, took));
                    }
                    PluginError::Timeout { .. } | PluginError::Transient { .. } => {
                        if current {
                            self.record_failure(idx, now);
                        }
                        let timed_out = matches!(err, PluginError::Timeout { .. });
                        let pause = backoff(RETRY_PAUSE, self.slots[idx].pause_streak);
                        let closed = self.slots[idx].breaker.state() == BreakerState::Closed;
                        self.retry_later(idx, pending, &err, took, closed.then_some(pause));
                        if !closed {
                            self.schedule_probe(idx, ctx);
                        } else if fresh {
                            self.slots[idx].pause_streak += 1;
                            self.pause(idx, pause, "retry_backoff", ctx);
                        }
                        if timed_out && current {
                            self.check_alive(idx, ctx);
                        }
                        reply(waiter, || queued(&err));
                    }
                }
            }
        }
        self.drain(idx, ctx);
        self.maybe_finish_shutdown(ctx);
    }

    /// A failed delivery that is tried again later: recorded, and back in the backlog at
    /// its place (an enrichment call is asked once and forgotten).
    fn retry_later(
        &mut self,
        idx: usize,
        pending: Pending,
        err: &PluginError,
        took: Duration,
        retry_in: Option<Duration>,
    ) {
        if pending.enrich {
            return;
        }
        let next = retry_in.map(|d| crate::store::now_ms() + d.as_millis() as i64);
        // Rejoining an instance whose waiting deliveries are held: held too.
        let (state, reason) = match &self.slots[idx].store_hold {
            Some(r) => (State::Held, Some(r.clone())),
            None => (State::Pending, None),
        };
        self.record_attempt(pending.seq, err, took, state, reason, next);
        self.slots[idx].requeue(pending);
    }

    /// After a crash: tried again, unless it has crashed the plugin too often (dead).
    pub(super) fn requeue_or_bury(
        &mut self,
        idx: usize,
        pending: Pending,
        err: &PluginError,
        took: Duration,
    ) {
        if pending.enrich {
            return;
        }
        if pending.crashes >= MAX_CRASHES_PER_EVENT {
            let slot = &self.slots[idx];
            tracing::error!(
                target: "supervision", plugin = %slot.spec.name, event_id = %pending.event.id,
                crashes = pending.crashes, error = %err, "dead letter: a delivery that crashed the plugin repeatedly"
            );
            let reason = format!("crashed the plugin {} times: {err}", pending.crashes);
            self.slots[idx].stats.dead_lettered += 1;
            self.settle_members(idx, &pending, Some(&reason));
            self.record_attempt(pending.seq, err, took, State::Dead, Some(reason), None);
        } else {
            self.retry_later(idx, pending, err, took, None);
        }
    }

    pub(super) fn record_failure(&mut self, idx: usize, now: Instant) {
        if let Some(t) = self.slots[idx].breaker.record_failure(now) {
            let reason = self.slots[idx].stats.last_error.clone().unwrap_or_default();
            self.log_breaker(idx, &t, &reason);
        }
    }

    /// Send what the backlog holds, in order, as far as the instance's state allows.
    pub(super) fn drain(&mut self, idx: usize, ctx: &mut Context<Self>) {
        if self.slots[idx].removed {
            return self.drain_removed(idx);
        }
        // A reload changed it: rebuilt once nothing of it is in flight.
        self.finish_rebuild(idx);
        self.drain_backlog(idx, ctx);
        self.refill(idx, ctx);
        self.backlog_changed(idx);
    }

    fn drain_backlog(&mut self, idx: usize, ctx: &mut Context<Self>) {
        loop {
            let now = Instant::now();
            let max_age = self.config.backlog_max_age;
            let mut slot = &mut self.slots[idx];
            while slot
                .backlog
                .front()
                .is_some_and(|p| now.duration_since(p.queued_at) > max_age)
            {
                let p = slot.backlog.pop_front().expect("front exists");
                tracing::warn!(
                    target: "supervision", plugin = %slot.spec.name, event_id = %p.event.id,
                    max_age_secs = max_age.as_secs(), "dead letter: a delivery older than backlog_max_age"
                );
                let reason = format!(
                    "too old: not delivered within backlog_max_age ({}s)",
                    max_age.as_secs()
                );
                self.slots[idx].stats.dead_lettered += 1;
                self.settle_members(idx, &p, Some(&reason));
                self.updates.push(
                    Update::Dead {
                        seq: p.seq as Seq,
                        reason,
                    },
                    &self.me,
                );
                slot = &mut self.slots[idx];
            }
            // A delivery that has not been through the digest and quiet hours yet (it
            // waited for its turn, or was resumed) goes through them before it is admitted.
            let policy = slot.has_policy();
            let overflow = slot.held.overflow();
            let unsorted = |p: &Pending| {
                (!p.released || (overflow && !p.overflowed)) && p.digest.is_none() && !p.enrich
            };
            if policy && slot.backlog.front().is_some_and(unsorted) {
                let p = slot.backlog.pop_front().expect("front exists");
                if let Some(mut p) = self.divert(idx, p, ctx) {
                    p.released = true;
                    p.overflowed |= overflow;
                    self.slots[idx].backlog.push_front(p);
                }
                continue;
            }
            if slot.backlog.is_empty() || !slot.can_send(now) {
                return;
            }
            if let Some(wait) = slot.rate_wait() {
                return self.rate_hold(idx, wait, ctx);
            }
            if !self.admit(idx, now) {
                return;
            }
            let pending = self.slots[idx]
                .backlog
                .pop_front()
                .expect("checked non-empty");
            self.send(idx, pending, None, ctx);
        }
    }
}

pub(super) fn failed(plugin: &str, err: &PluginError, took: Duration) -> DeliveryReport {
    DeliveryReport {
        error_kind: Some(err.kind()),
        error: Some(err.to_string()),
        ..report(plugin, "failed", took)
    }
}

fn backoff(base: Duration, streak: u32) -> Duration {
    base.saturating_mul(1u32 << streak.min(16)).min(MAX_PAUSE)
}
