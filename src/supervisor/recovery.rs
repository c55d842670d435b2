//! Recovery: pauses, restarts with backoff, the half-open probe, misconfiguration, health
//! events and shutdown. Every state change here is one `supervision` log event.

use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::json;

use super::breaker::{BreakerState, Transition};
use super::restart::RestartDecision;
use super::{HealthChanged, PluginSupervisor, ShutdownReport, TestError};
use crate::event::{Event, EventName};
use crate::plugins::actor::{Call, Reply};
use crate::plugins::{ConnectionReport, PluginError};

/// After a delivery times out, the actor must answer a ping within this, or its thread
/// is taken to be blocked and the instance is restarted on a fresh arbiter.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

impl PluginSupervisor {
    /// Hold deliveries for `pause`, then drain.
    pub(super) fn pause(
        &mut self,
        idx: usize,
        pause: Duration,
        why: &'static str,
        ctx: &mut Context<Self>,
    ) {
        let slot = &mut self.slots[idx];
        let until = Instant::now() + pause;
        if slot.held_until.is_some_and(|t| t >= until) {
            return;
        }
        slot.held_until = Some(until);
        slot.hold_reason = Some(why);
        slot.pause_epoch += 1;
        tracing::info!(
            target: "supervision", plugin = %slot.spec.name, to = %"paused", reason = %why,
            pause_ms = pause.as_millis() as u64, queued = slot.backlog.len(), "deliveries paused"
        );
        ctx.run_later(pause, move |act, ctx| act.drain(idx, ctx));
    }

    /// Our own rate limit says wait: hold deliveries (quietly: this is expected) until then.
    pub(super) fn rate_hold(&mut self, idx: usize, wait: Duration, ctx: &mut Context<Self>) {
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
    pub(super) fn schedule_probe(&mut self, idx: usize, ctx: &mut Context<Self>) {
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
        if self.slots[idx].removed {
            return false;
        }
        let setup = self.actor_setup(idx);
        let slot = &mut self.slots[idx];
        match (slot.spec.factory)(setup) {
            Ok(h) => {
                slot.handle = Some(h);
                slot.failures_seen = 0;
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
    pub(super) fn crash(&mut self, idx: usize, reason: String, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let unit: f64 = rand::random();
        let slot = &mut self.slots[idx];
        if let Some(old) = slot.handle.take() {
            old.stop();
        }
        let old = slot.generation;
        slot.generation += 1;
        slot.pinging = false;
        let generation = slot.generation;
        self.abandon_batches(idx, old);
        let slot = &mut self.slots[idx];
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

    pub(super) fn restart(&mut self, idx: usize, generation: u64, ctx: &mut Context<Self>) {
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
    pub(super) fn check_alive(&mut self, idx: usize, ctx: &mut Context<Self>) {
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

    pub(super) fn mark_misconfigured(&mut self, idx: usize, reason: String) {
        let slot = &mut self.slots[idx];
        if slot.misconfigured.is_some() {
            return;
        }
        let from = slot.state_label(Instant::now());
        tracing::error!(
            target: "supervision", plugin = %slot.spec.name, from = %from, to = %"misconfigured", reason = %reason,
            held = slot.backlog.len(),
            "plugin misconfigured: deliveries are held until the config is fixed or a connection test passes"
        );
        slot.misconfigured = Some(reason.clone());
        self.backlog_changed(idx);
        self.health_changed(idx, from, "misconfigured", &reason);
    }

    pub(super) fn test_connection(
        &mut self,
        idx: usize,
    ) -> ResponseActFuture<Self, Result<ConnectionReport, TestError>> {
        let setup = self.actor_setup(idx);
        let slot = &mut self.slots[idx];
        // A tripped or restarting instance has no actor: test on a temporary one.
        let (recipient, temp) = match &slot.handle {
            Some(h) => (h.calls.clone(), None),
            None => match (slot.spec.factory)(setup) {
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
    pub(super) fn recover_after_test(&mut self, idx: usize, ctx: &mut Context<Self>) {
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

    pub(super) fn log_breaker(&mut self, idx: usize, t: &Transition, reason: &str) {
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

    pub(super) fn health_changed(&self, idx: usize, from: &str, to: &str, reason: &str) {
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
            let kept = slot.backlog.len() + slot.held.len();
            r.kept += kept as u64 + u64::from(slot.in_flight);
            if kept > 0 || slot.in_flight > 0 {
                tracing::info!(
                    target: "supervision", plugin = %slot.spec.name, kept,
                    held_for_digest_or_quiet_hours = slot.held.len(),
                    in_flight = slot.in_flight, "kept for the next start"
                );
            }
            if let Some(h) = slot.handle.take() {
                h.stop();
            }
        }
        self.flush_updates();
        // Deliveries beyond the memory window are in the store, and kept too.
        r.kept = r.kept.max(self.store.pending());
        let _ = tx.send(r);
        ctx.stop();
    }
}
