//! The supervisor's policy: admit, send, judge each result, hold, retry, restart, probe.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use serde_json::json;

use super::breaker::{Admission, BreakerState, Transition};
use super::restart::RestartDecision;
use super::slot::{Pending, Waiter};
use super::{DeliveryReport, HealthChanged, PluginSupervisor, ShutdownReport, TestError};
use crate::event::{Event, EventName};
use crate::plugins::actor::{Call, Reply};
use crate::plugins::{ConnectionReport, Outcome, PluginError};

/// A crash on the same event this many times and the event is dropped (a poison event
/// must not restart a plugin forever).
const MAX_CRASHES_PER_EVENT: u32 = 3;
/// After a delivery times out, the actor must answer a ping within this, or its thread
/// is taken to be blocked and the instance is restarted on a fresh arbiter.
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a 429 without `Retry-After`, doubling per consecutive pause (ntfy sends none).
const RATE_LIMIT_PAUSE: Duration = Duration::from_secs(5);
/// Pause after a transient failure before the held delivery is retried, doubling.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(300);

fn report(plugin: &str, status: &'static str, took: Duration) -> DeliveryReport {
    DeliveryReport {
        plugin: plugin.to_owned(),
        status,
        detail: None,
        error_kind: None,
        error: None,
        duration_ms: took.as_millis() as u64,
    }
}

fn reply(waiter: Waiter, r: impl FnOnce() -> DeliveryReport) {
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
    }

    /// Ask the breaker; logs the move to half-open when this call is the probe.
    fn admit(&mut self, idx: usize, now: Instant) -> bool {
        let (admission, t) = self.slots[idx].breaker.admit(now);
        if let Some(t) = t {
            self.log_breaker(idx, &t, "cooldown over: probing with one delivery");
        }
        !matches!(admission, Admission::Refused(_))
    }

    /// Queue one delivery in the instance's outbox; the outbox goes out as one batch
    /// when the current mailbox turn is over (see [`PluginSupervisor::flush`]).
    fn send(&mut self, idx: usize, pending: Pending, waiter: Waiter, ctx: &mut Context<Self>) {
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
        let name = slot.spec.name.clone();
        match result {
            Ok(outcome) => {
                slot.stats.delivered += 1;
                slot.stats.last_delivered_at = Some(Utc::now());
                slot.pause_streak = 0;
                let detail = match outcome {
                    Outcome::Delivered(d) => Some(d.detail),
                    Outcome::Enriched(_) => None,
                };
                if current {
                    if let Some(t) = slot.breaker.record_success() {
                        slot.restarts.clear();
                        self.log_breaker(idx, &t, "probe delivery succeeded");
                    }
                }
                reply(waiter, || DeliveryReport {
                    detail,
                    ..report(&name, "delivered", took)
                });
            }
            Err(err) => {
                slot.stats.failed += 1;
                slot.note_error(err.to_string());
                tracing::debug!(target: "supervision", plugin = %name, error = %err, kind = err.kind(), "delivery failed");
                match &err {
                    PluginError::RateLimited { retry_after } => {
                        slot.breaker.record_neutral();
                        slot.requeue(pending);
                        let pause = retry_after
                            .unwrap_or_else(|| backoff(RATE_LIMIT_PAUSE, slot.pause_streak));
                        self.pause(idx, pause, "rate_limited", ctx);
                        reply(waiter, || DeliveryReport {
                            error_kind: Some(err.kind()),
                            error: Some(err.to_string()),
                            ..report(&name, "queued", took)
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
                            ..report(&name, "queued", took)
                        });
                    }
                }
            }
        }
        self.drain(idx, ctx);
        self.maybe_finish_shutdown(ctx);
    }

    fn requeue_or_drop(&mut self, idx: usize, pending: Pending, err: &PluginError) {
        let slot = &mut self.slots[idx];
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

    fn record_failure(&mut self, idx: usize, now: Instant) {
        if let Some(t) = self.slots[idx].breaker.record_failure(now) {
            let reason = self.slots[idx].stats.last_error.clone().unwrap_or_default();
            self.log_breaker(idx, &t, &reason);
        }
    }

    /// Send what the backlog holds, in order, as far as the instance's state allows.
    pub(super) fn drain(&mut self, idx: usize, ctx: &mut Context<Self>) {
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

    /// Hold deliveries for `pause`, then drain.
    fn pause(&mut self, idx: usize, pause: Duration, why: &'static str, ctx: &mut Context<Self>) {
        let slot = &mut self.slots[idx];
        let until = Instant::now() + pause;
        if slot.held_until.is_some_and(|t| t >= until) {
            return;
        }
        slot.held_until = Some(until);
        slot.hold_reason = Some(why);
        slot.pause_streak += 1;
        tracing::info!(
            target: "supervision", plugin = %slot.spec.name, to = %"paused", reason = %why,
            pause_ms = pause.as_millis() as u64, queued = slot.backlog.len(), "deliveries paused"
        );
        ctx.run_later(pause, move |act, ctx| act.drain(idx, ctx));
    }

    /// Our own rate limit says wait: hold deliveries (quietly: this is expected) until then.
    fn rate_hold(&mut self, idx: usize, wait: Duration, ctx: &mut Context<Self>) {
        let slot = &mut self.slots[idx];
        let until = Instant::now() + wait;
        if slot.held_until.is_some_and(|t| t >= until) {
            return;
        }
        slot.held_until = Some(until);
        slot.hold_reason = Some("rate_limit");
        tracing::debug!(target: "supervision", plugin = %slot.spec.name, wait_ms = wait.as_millis() as u64, queued = slot.backlog.len(), "rate limit: holding deliveries");
        ctx.run_later(wait, move |act, ctx| act.drain(idx, ctx));
    }

    /// Wake up when an open breaker's cooldown ends, so the backlog's head can probe.
    fn schedule_probe(&mut self, idx: usize, ctx: &mut Context<Self>) {
        if let Some(until) = self.slots[idx].breaker.open_until() {
            let wait = until.saturating_duration_since(Instant::now());
            let generation = self.slots[idx].generation;
            ctx.run_later(wait, move |act, ctx| {
                let slot = &mut act.slots[idx];
                if slot.handle.is_none()
                    && slot.generation == generation
                    && slot.misconfigured.is_none()
                    && !act.spawn_actor(idx)
                {
                    return;
                }
                act.drain(idx, ctx);
            });
        }
    }

    /// Start a fresh actor for `idx`; a plugin that cannot be built from its config is
    /// marked misconfigured (false).
    pub(super) fn spawn_actor(&mut self, idx: usize) -> bool {
        let slot = &mut self.slots[idx];
        match (slot.spec.factory)() {
            Ok(h) => {
                slot.handle = Some(h);
                true
            }
            Err(e) => {
                slot.handle = None;
                let reason = match e {
                    PluginError::Misconfigured { reason, .. } => reason,
                    other => other.to_string(),
                };
                self.mark_misconfigured(idx, format!("cannot start: {reason}"));
                false
            }
        }
    }

    /// The actor panicked, vanished or blocked its thread: restart it, or trip it open.
    fn crash(&mut self, idx: usize, reason: String, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let unit: f64 = rand::random();
        let slot = &mut self.slots[idx];
        if let Some(old) = slot.handle.take() {
            old.stop();
        }
        slot.generation += 1;
        slot.pinging = false;
        let generation = slot.generation;
        match slot.restarts.on_crash(now, unit) {
            RestartDecision::Restart { backoff, restarts } => {
                slot.held_until = Some(now + backoff);
                slot.hold_reason = Some("restarting");
                tracing::warn!(
                    target: "supervision", plugin = %slot.spec.name, from = %"running", to = %"restarting",
                    reason = %reason, restarts, backoff_ms = backoff.as_millis() as u64, "plugin crashed; restarting"
                );
                ctx.run_later(backoff, move |act, ctx| act.restart(idx, generation, ctx));
            }
            RestartDecision::GiveUp { restarts } => {
                let window = self.config.restart_window.as_secs();
                let why = format!(
                    "restart budget spent: {restarts} restarts within {window}s (last: {reason})"
                );
                if let Some(t) = slot.breaker.trip(now) {
                    self.log_breaker(idx, &t, &why);
                }
                self.schedule_probe(idx, ctx);
            }
        }
    }

    fn restart(&mut self, idx: usize, generation: u64, ctx: &mut Context<Self>) {
        let slot = &mut self.slots[idx];
        if slot.generation != generation || self.shutting_down {
            return;
        }
        slot.held_until = None;
        slot.hold_reason = None;
        if !self.spawn_actor(idx) {
            return;
        }
        let slot = &self.slots[idx];
        tracing::info!(
            target: "supervision", plugin = %slot.spec.name, from = %"restarting", to = %"running",
            restarts = slot.restarts.total(), "plugin restarted"
        );
        self.drain(idx, ctx);
    }

    /// After a timeout: does the actor still answer? If not, its thread is blocked.
    fn check_alive(&mut self, idx: usize, ctx: &mut Context<Self>) {
        let slot = &mut self.slots[idx];
        let Some(handle) = &slot.handle else { return };
        if slot.pinging {
            return;
        }
        slot.pinging = true;
        let generation = slot.generation;
        let ping = handle.calls.send(Call::Ping);
        let fut = async move {
            matches!(
                tokio::time::timeout(PING_TIMEOUT, ping).await,
                Ok(Ok(Ok(_)))
            )
        };
        ctx.spawn(fut.into_actor(self).map(move |alive, act, ctx| {
            let slot = &mut act.slots[idx];
            if slot.generation != generation {
                return;
            }
            slot.pinging = false;
            if !alive {
                let why = format!(
                    "unresponsive: no answer to a ping within {}ms after a delivery timed out",
                    PING_TIMEOUT.as_millis()
                );
                act.crash(idx, why, ctx);
            }
        }));
    }

    fn mark_misconfigured(&mut self, idx: usize, reason: String) {
        let slot = &mut self.slots[idx];
        if slot.misconfigured.is_some() {
            return;
        }
        let from = slot.state_label(Instant::now());
        let dropped = slot.backlog.len();
        slot.backlog.clear();
        slot.stats.dropped += dropped as u64;
        tracing::error!(
            target: "supervision", plugin = %slot.spec.name, from = %from, to = %"misconfigured", reason = %reason, dropped,
            "plugin misconfigured: deliveries stop until the config is fixed or a connection test passes"
        );
        slot.misconfigured = Some(reason.clone());
        self.health_changed(idx, from, "misconfigured", &reason);
    }

    pub(super) fn test_connection(
        &mut self,
        idx: usize,
    ) -> ResponseActFuture<Self, Result<ConnectionReport, TestError>> {
        let slot = &mut self.slots[idx];
        // A tripped or restarting instance has no actor: test on a temporary one.
        let (recipient, temp) = match &slot.handle {
            Some(h) => (h.calls.clone(), None),
            None => match (slot.spec.factory)() {
                Ok(h) => (h.calls.clone(), Some(h)),
                Err(e) => return Box::pin(actix::fut::ready(Err(TestError::Failed(e)))),
            },
        };
        let timeout = slot.timeout;
        let fut = async move {
            let r = match tokio::time::timeout(timeout, recipient.send(Call::Test)).await {
                Err(_) => Err(PluginError::Timeout { after: timeout }),
                Ok(Err(_)) => Err(PluginError::Unresponsive),
                Ok(Ok(Ok(Reply::Report(r)))) => Ok(r),
                Ok(Ok(Ok(_))) => Err(PluginError::Unresponsive),
                Ok(Ok(Err(e))) => Err(e),
            };
            if let Some(h) = temp {
                h.stop();
            }
            r
        };
        Box::pin(fut.into_actor(self).map(move |r, act, ctx| {
            if r.is_ok() {
                act.recover_after_test(idx, ctx);
            }
            r.map_err(TestError::Failed)
        }))
    }

    /// A passed connection test clears `misconfigured` and closes an open breaker.
    fn recover_after_test(&mut self, idx: usize, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let slot = &mut self.slots[idx];
        if !slot.spec.enabled {
            return;
        }
        let from = slot.state_label(now);
        if from == "closed" {
            return;
        }
        slot.misconfigured = None;
        slot.breaker.reset();
        slot.restarts.clear();
        if slot.handle.is_none() && !self.spawn_actor(idx) {
            return;
        }
        let slot = &self.slots[idx];
        tracing::info!(target: "supervision", plugin = %slot.spec.name, from = %from, to = %"closed", reason = %"connection test passed", "plugin recovered");
        self.health_changed(idx, from, "closed", "connection test passed");
        self.drain(idx, ctx);
    }

    fn log_breaker(&mut self, idx: usize, t: &Transition, reason: &str) {
        let slot = &self.slots[idx];
        let (from, to) = (t.from.to_string(), t.to.to_string());
        let name = &slot.spec.name;
        match t.to {
            BreakerState::Open => tracing::warn!(
                target: "supervision", plugin = %name, from = %from, to = %to, reason = %reason,
                cooldown_ms = slot.breaker.open_until().map(|u| u.saturating_duration_since(Instant::now()).as_millis() as u64),
                queued = slot.backlog.len(), "circuit opened: deliveries held until a probe succeeds"
            ),
            _ => {
                tracing::info!(target: "supervision", plugin = %name, from = %from, to = %to, reason = %reason, "circuit state changed")
            }
        }
        // Half-open is internal to recovery; users hear about open and closed.
        if t.to != BreakerState::HalfOpen
            && !(t.from == BreakerState::HalfOpen && t.to == BreakerState::Open)
        {
            self.health_changed(idx, &from, &to, reason);
        }
    }

    fn health_changed(&self, idx: usize, from: &str, to: &str, reason: &str) {
        let Some(sink) = &self.health_sink else {
            return;
        };
        let slot = &self.slots[idx];
        let data = json!({
            "plugin": slot.spec.name, "type": slot.spec.kind, "from": from, "to": to,
            "reason": reason, "healthy": to == "closed",
        });
        let data = data.as_object().cloned().unwrap_or_default();
        sink.do_send(HealthChanged(Event::new(
            EventName::OnPluginHealthChanged,
            data,
        )));
    }

    pub(super) fn maybe_finish_shutdown(&mut self, ctx: &mut Context<Self>) {
        if self.shutdown_waiter.is_some() && self.slots.iter().all(|s| s.in_flight == 0) {
            self.finish_shutdown(ctx);
        }
    }

    pub(super) fn finish_shutdown(&mut self, ctx: &mut Context<Self>) {
        let Some(tx) = self.shutdown_waiter.take() else {
            return;
        };
        let mut r = ShutdownReport::default();
        for slot in &mut self.slots {
            r.abandoned_in_flight += u64::from(slot.in_flight);
            r.undelivered += slot.backlog.len() as u64;
            if !slot.backlog.is_empty() || slot.in_flight > 0 {
                tracing::warn!(
                    target: "supervision", plugin = %slot.spec.name, undelivered = slot.backlog.len(),
                    in_flight = slot.in_flight, "shutting down with deliveries not done"
                );
            }
            if let Some(h) = slot.handle.take() {
                h.stop();
            }
        }
        let _ = tx.send(r);
        ctx.stop();
    }
}

fn failed(plugin: &str, err: &PluginError, took: Duration) -> DeliveryReport {
    DeliveryReport {
        error_kind: Some(err.kind()),
        error: Some(err.to_string()),
        ..report(plugin, "failed", took)
    }
}

fn backoff(base: Duration, streak: u32) -> Duration {
    base.saturating_mul(1u32 << streak.min(16)).min(MAX_PAUSE)
}
