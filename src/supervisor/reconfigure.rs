//! A reloaded config applied to the running instances as a difference, matched by name.
//!
//! - **Unchanged**: keeps everything: its actor, breaker, restart budget, what it holds,
//!   its counters. Only `enabled` is applied, as Enable/Disable would.
//! - **Changed**: stops sending; once what is in flight has come back, its actor is
//!   stopped and a new one built from the new spec, with a fresh breaker and budget (the
//!   change may be the fix). What waits for it (in memory, in the store, in a digest)
//!   stays and goes out through the new one, in order. A changed digest or quiet hours
//!   lets what they held go through the new ones.
//! - **Removed**: every delivery waiting for it is dead ("instance removed"), in memory
//!   and in the store; what is in flight finishes, and a failure of it is dead too. Its
//!   place in the list stays, empty and hidden, so the indices the bus routes by stay valid.
//! - **New**: starts, after the others.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::deliver::{reply, report};
use super::slot::{Slot, Waiter};
use super::{DeliveryReport, InstanceSpec, PluginSupervisor, TestError};
use crate::bus::Subscriptions;
use crate::store::{Seq, Update};

/// Run these instances from now on.
#[derive(Message)]
#[rtype(result = "Reconfigured")]
pub struct Reconfigure {
    /// Every instance of the new config, in its order.
    pub specs: Vec<InstanceSpec>,
    /// The names among them whose config differs from the running one.
    pub changed: HashSet<String>,
    /// Instances the old config had and the new one does not. Only these are removed:
    /// instances an embedder started with specs of its own are left alone.
    pub removed: HashSet<String>,
}

/// What a [`Reconfigure`] did, by instance name.
#[derive(Debug, Default)]
pub struct Reconfigured {
    /// Started.
    pub added: Vec<String>,
    /// Rebuilt (at once, or when their deliveries in flight are back).
    pub changed: Vec<String>,
    /// Gone; what waited for them is dead.
    pub removed: Vec<String>,
    /// Kept as they were.
    pub unchanged: Vec<String>,
    /// Turned on or off by the new config (also in `unchanged` or `changed`).
    pub toggled: Vec<String>,
    /// The routing table to use from now on.
    pub table: Option<Subscriptions>,
}

impl Handler<Reconfigure> for PluginSupervisor {
    type Result = MessageResult<Reconfigure>;

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Context<Self>) -> Self::Result {
        // Everything handed over so far is offered under the old setup, and what this
        // turn admitted goes to the actors it was admitted for.
        self.take_intake(ctx);
        self.flush(ctx);
        let mut done = Reconfigured::default();
        for idx in 0..self.slots.len() {
            let slot = &self.slots[idx];
            if !slot.removed && msg.removed.contains(slot.spec.name.as_str()) {
                done.removed.push(slot.spec.name.clone());
                self.remove(idx);
            }
        }
        for spec in msg.specs {
            let name = spec.name.clone();
            match self.index_of(&name) {
                Some(idx) if msg.changed.contains(&name) => {
                    if self.slots[idx].spec.enabled != spec.enabled {
                        done.toggled.push(name.clone());
                    }
                    done.changed.push(name);
                    self.slots[idx].rebuild = Some(Box::new(spec));
                    self.drain(idx, ctx);
                }
                Some(idx) => {
                    if self.slots[idx].spec.enabled != spec.enabled {
                        done.toggled.push(name.clone());
                        self.switch(idx, spec.enabled, "the config was reloaded", ctx);
                    }
                    done.unchanged.push(name);
                }
                None => {
                    self.slots.push(Slot::new(spec, &self.config));
                    let idx = self.slots.len() - 1;
                    if self.slots[idx].spec.enabled && self.spawn_actor(idx) {
                        let slot = &self.slots[idx];
                        tracing::info!(target: "supervision", plugin = %slot.spec.name, kind = %slot.spec.kind, events = slot.spec.events.len(), "plugin started");
                    }
                    done.added.push(name);
                }
            }
        }
        self.flush_updates();
        done.table = Some(self.routing());
        MessageResult(done)
    }
}

impl PluginSupervisor {
    /// The instance named `name` (removed ones are not found).
    pub(super) fn index_of(&self, name: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| !s.removed && s.spec.name == name)
    }

    /// The instance named `name`, or why there is none.
    pub(super) fn find(&self, name: &str) -> Result<usize, TestError> {
        self.index_of(name).ok_or_else(|| {
            let known: Vec<&str> = self
                .slots
                .iter()
                .filter(|s| !s.removed)
                .map(|s| s.spec.name.as_str())
                .collect();
            TestError::UnknownPlugin {
                name: name.to_owned(),
                known: if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                },
            }
        })
    }

    /// The routing table for the instances as they are now.
    pub(super) fn routing(&self) -> Subscriptions {
        let specs: Vec<InstanceSpec> = self.slots.iter().map(|s| s.spec.clone()).collect();
        Subscriptions::new(&specs)
    }

    /// Instance `idx` is no longer configured: what waits for it is dead.
    fn remove(&mut self, idx: usize) {
        let slot = &mut self.slots[idx];
        let name = Arc::clone(&slot.name);
        tracing::info!(target: "supervision", plugin = %name, from = %slot.state_label(Instant::now()), to = %"removed", in_flight = slot.in_flight, "plugin removed from the config");
        slot.removed = true;
        slot.spec.enabled = false;
        slot.spec.events.clear();
        slot.rebuild = None;
        slot.spill = None;
        slot.store_hold = None;
        // What this supervisor has not written yet goes first: a later write must not
        // make a buried delivery pending again.
        self.flush_updates();
        let plugin = Arc::clone(&name);
        self.store.bury(name, removed_reason(&plugin), move |r| match r {
            Ok(n) => tracing::info!(target: "supervision", plugin = %plugin, dead = n, "its waiting deliveries are dead letters (reason: instance removed)"),
            Err(e) => tracing::error!(target: "supervision", plugin = %plugin, error = %e, "could not mark the removed instance's deliveries dead; they stay in the store"),
        });
        // In memory: dropped (the store has them dead already).
        let slot = &mut self.slots[idx];
        slot.backlog.clear();
        let _ = slot.held.take_all();
        self.drain_removed(idx);
    }

    /// What came back to a removed instance (a failure of one in flight) is dead; once
    /// nothing is in flight its actor stops.
    pub(super) fn drain_removed(&mut self, idx: usize) {
        let slot = &mut self.slots[idx];
        let reason = removed_reason(&slot.name);
        let mut dead: Vec<u64> = slot
            .backlog
            .drain(..)
            .filter(|p| !p.enrich)
            .map(|p| p.seq)
            .collect();
        dead.extend(slot.held.take_all().into_iter().map(|p| p.seq));
        slot.stats.dead_lettered += dead.len() as u64;
        if slot.in_flight == 0 {
            if let Some(h) = slot.handle.take() {
                h.stop();
            }
        }
        for seq in dead {
            self.updates.push(
                Update::Dead {
                    seq: seq as Seq,
                    reason: reason.clone(),
                },
                &self.me,
            );
        }
    }

    /// A delivery for a removed instance (accepted while the reload ran): dead at once.
    pub(super) fn offer_removed(&mut self, idx: usize, seq: u64, waiter: Waiter) {
        let name = Arc::clone(&self.slots[idx].name);
        let reason = removed_reason(&name);
        self.updates.push(
            Update::Dead {
                seq: seq as Seq,
                reason: reason.clone(),
            },
            &self.me,
        );
        reply(waiter, || DeliveryReport {
            error_kind: Some("removed"),
            error: Some(reason),
            ..report(&name, "failed", Duration::ZERO)
        });
    }

    /// Instance `idx` waits for a rebuild and nothing of it is in flight: build it anew
    /// from its new spec, keeping what waits for it. True when it was rebuilt.
    pub(super) fn finish_rebuild(&mut self, idx: usize) -> bool {
        if self.slots[idx].in_flight > 0 {
            return false;
        }
        let Some(spec) = self.slots[idx].rebuild.take() else {
            return false;
        };
        let mut old = std::mem::replace(&mut self.slots[idx], Slot::new(*spec, &self.config));
        if let Some(h) = old.handle.take() {
            h.stop();
        }
        let slot = &mut self.slots[idx];
        let enabled = std::mem::replace(&mut slot.spec.enabled, old.spec.enabled);
        let policy_changed =
            slot.spec.digest != old.spec.digest || slot.spec.quiet_hours != old.spec.quiet_hours;
        // Answers from the old actor (a late one after a timeout) judge nothing now.
        slot.generation = old.generation + 1;
        slot.pause_epoch = old.pause_epoch + 1;
        slot.stats = std::mem::take(&mut old.stats);
        slot.backlog = std::mem::take(&mut old.backlog);
        slot.held = std::mem::take(&mut old.held);
        slot.spill = old.spill.take();
        slot.read_back = old.read_back;
        slot.store_hold = old.store_hold.take();
        slot.outbox = std::mem::take(&mut old.outbox);
        tracing::info!(target: "supervision", plugin = %slot.spec.name, kind = %slot.spec.kind, waiting = slot.backlog.len() + slot.held.len(), "plugin rebuilt with its new config");
        if policy_changed {
            self.release_all_held(idx);
        }
        if enabled != self.slots[idx].spec.enabled {
            self.switch_state(idx, enabled, "the config was reloaded");
        } else if enabled {
            self.spawn_actor(idx);
        }
        true
    }
}

/// Why a removed instance's deliveries are dead.
fn removed_reason(name: &str) -> String {
    format!("instance removed: `{name}` is no longer in the config")
}
