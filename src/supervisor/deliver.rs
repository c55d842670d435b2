//! The delivery path: admit, send, judge each result, hold in order, drain the backlog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;

use super::breaker::{Admission, BreakerState};
use super::slot::{Pending, Waiter};
use super::{DeliveryReport, PluginSupervisor};
use crate::event::{Event, EventName};
use crate::plugins::{Outcome, PluginError};

/// A crash on the same event this many times and the event is dropped (a poison event
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
    /// A new delivery for instance `idx`: send it now, or hold it in order.
    pub(super) fn offer(
        &mut self,
        idx: usize,
        event: Arc<Event>,
        waiter: Waiter,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        let slot = &mut self.slots[idx];
        let name = slot.spec.name.as_str();
        // A health event about this instance is for the others.
        if event.name == EventName::OnPluginHealthChanged && event.str_at("plugin") == Some(name) {
            return reply(waiter, || report(name, "skipped", Duration::ZERO));
        }
        if !slot.spec.enabled || self.shutting_down {
            return reply(waiter, || report(name, "skipped", Duration::ZERO));
        }
        if let Some(reason) = &slot.misconfigured {
            slot.stats.dropped += 1;
            let err = PluginError::Unavailable {
                state: format!("misconfigured ({reason})"),
            };
            return reply(waiter, || failed(name, &err, Duration::ZERO));
        }
        slot.next_seq += 1;
        let pending = Pending {
            event,
            seq: slot.next_seq,
            crashes: 0,
            queued_at: now,
            enrich: false,
        };
        if !slot.backlog.is_empty() || !slot.can_send(now) {
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
        slot.next_seq += 1;
        let pending = Pending {
            event,
            seq: slot.next_seq,
            crashes: 0,
            queued_at: now,
            enrich: true,
        };
        self.send(idx, pending, waiter, ctx);
    }

    pub(super) fn hold(&mut self, idx: usize, pending: Pending, waiter: Waiter) {
        let slot = &mut self.slots[idx];
        if slot.backlog.len() >= self.config.backlog as usize {
            slot.stats.dropped += 1;
            tracing::warn!(
                target: "supervision", plugin = %slot.spec.name, event_id = %pending.event.id,
                backlog = slot.backlog.len(), "backlog full: dropping the delivery"
            );
            let err = PluginError::Unavailable {
                state: "backlogged (queue full)".into(),
            };
            return reply(waiter, || failed(&slot.spec.name, &err, Duration::ZERO));
        }
        slot.backlog.push_back(pending);
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
        pending: Pending,
        waiter: Waiter,
        ctx: &mut Context<Self>,
    ) {
        let slot = &mut self.slots[idx];
        if slot.handle.is_none() {
            slot.breaker.record_neutral();
            return self.hold(idx, pending, waiter);
        }
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
        match result {
            Ok(outcome) => {
                slot.stats.delivered += 1;
                slot.stats.last_delivered_at = Some(Utc::now());
                slot.pause_streak = 0;
                let (detail, patch) = match outcome {
                    Outcome::Delivered(d) => (Some(d.detail), None),
                    Outcome::Enriched(e) => (None, Some(e.patch)),
                };
                if let Some(t) = current.then(|| slot.breaker.record_success()).flatten() {
                    slot.restarts.clear();
                    self.log_breaker(idx, &t, "probe delivery succeeded");
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
                slot.stats.failed += 1;
                slot.note_error(err.to_string());
                tracing::debug!(target: "supervision", plugin = %name, error = %err, kind = err.kind(), "delivery failed");
                match &err {
                    PluginError::RateLimited { retry_after } => {
                        slot.breaker.record_neutral();
                        if !pending.enrich {
                            slot.requeue(pending);
                        }
                        let pause = retry_after
                            .unwrap_or_else(|| backoff(RATE_LIMIT_PAUSE, slot.pause_streak));
                        self.pause(idx, pause, "rate_limited", ctx);
                        reply(waiter, || DeliveryReport {
                            error_kind: Some(err.kind()),
                            error: Some(err.to_string()),
                            ..report(&name, held, took)
                        });
                    }
                    PluginError::Misconfigured { reason, .. } => {
                        slot.breaker.record_neutral();
                        slot.stats.dropped += 1;
                        let reason = reason.clone();
                        self.mark_misconfigured(idx, reason);
                        reply(waiter, || failed(&name, &err, took));
                    }
                    PluginError::Rejected { .. } | PluginError::Unavailable { .. } => {
                        slot.breaker.record_neutral();
                        reply(waiter, || failed(&name, &err, took));
                    }
                    PluginError::Panicked { .. } | PluginError::Unresponsive => {
                        pending.crashes += 1;
                        if current {
                            self.record_failure(idx, now);
                        }
                        self.requeue_or_drop(idx, pending, &err);
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
                        self.requeue_or_drop(idx, pending, &err);
                        let slot = &mut self.slots[idx];
                        let pause = backoff(RETRY_PAUSE, slot.pause_streak);
                        if slot.breaker.state() == BreakerState::Closed {
                            self.pause(idx, pause, "retry_backoff", ctx);
                        } else {
                            self.schedule_probe(idx, ctx);
                        }
                        if timed_out && current {
                            self.check_alive(idx, ctx);
                        }
                        reply(waiter, || DeliveryReport {
                            error_kind: Some(err.kind()),
                            error: Some(err.to_string()),
                            ..report(&name, held, took)
                        });
                    }
                }
            }
        }
        self.drain(idx, ctx);
        self.maybe_finish_shutdown(ctx);
    }

    pub(super) fn requeue_or_drop(&mut self, idx: usize, pending: Pending, err: &PluginError) {
        let slot = &mut self.slots[idx];
        if pending.enrich {
            return;
        }
        if pending.crashes >= MAX_CRASHES_PER_EVENT {
            slot.stats.dropped += 1;
            tracing::error!(
                target: "supervision", plugin = %slot.spec.name, event_id = %pending.event.id,
                crashes = pending.crashes, error = %err, "dropping a delivery that crashed the plugin repeatedly"
            );
        } else {
            slot.requeue(pending);
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
        self.drain_backlog(idx, ctx);
        self.backlog_changed(idx);
    }

    fn drain_backlog(&mut self, idx: usize, ctx: &mut Context<Self>) {
        loop {
            let now = Instant::now();
            let max_age = self.config.backlog_max_age;
            let slot = &mut self.slots[idx];
            while slot
                .backlog
                .front()
                .is_some_and(|p| now.duration_since(p.queued_at) > max_age)
            {
                let p = slot.backlog.pop_front().expect("front exists");
                slot.stats.dropped += 1;
                tracing::warn!(
                    target: "supervision", plugin = %slot.spec.name, event_id = %p.event.id,
                    max_age_secs = max_age.as_secs(), "dropping a delivery older than backlog_max_age"
                );
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
