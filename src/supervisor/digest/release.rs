//! Letting held deliveries go: a short tick closes the digest groups that are due and
//! ends quiet hours that are over; each becomes one message, or the originals in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::{build, quiet, DigestSend};
use crate::store::{Parked, Seq, Update};
use crate::supervisor::slot::Pending;
use crate::supervisor::PluginSupervisor;

/// The longest the supervisor sleeps while it holds anything: the clock is re-read this
/// often, so a due group or the end of quiet hours is acted on within it, and an injected
/// clock that jumps (tests) is noticed at once.
const TICK: Duration = Duration::from_millis(200);

impl PluginSupervisor {
    /// Arm the tick when something is held and it is not armed yet.
    pub(in crate::supervisor) fn arm_tick(&mut self, ctx: &mut Context<Self>) {
        // Overflow mode ends on a tick too, once the queue has drained.
        let held = self.want_tick
            || self
                .slots
                .iter()
                .any(|s| !s.held.is_empty() || s.held.overflow);
        self.want_tick = false;
        if self.tick_armed || !held || self.shutting_down {
            return;
        }
        self.tick_armed = true;
        ctx.run_later(TICK, |act, ctx| {
            act.tick_armed = false;
            act.release_due(ctx);
            act.arm_tick(ctx);
        });
    }

    /// Close the groups that are due and end quiet hours that are over.
    fn release_due(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        for idx in 0..self.slots.len() {
            let slot = &self.slots[idx];
            if slot.held.is_empty() && !slot.held.overflow {
                continue;
            }
            let now = (slot.spec.clock)();
            let quiet_now = slot
                .spec
                .quiet_hours
                .as_ref()
                .is_some_and(|q| quiet::window_end(q, now).is_some());
            if !quiet_now && !slot.held.quiet.is_empty() {
                self.end_quiet(idx);
            }
            self.close_due(idx, now, quiet_now);
            let slot = &mut self.slots[idx];
            let overflow_left = slot.held.groups.values().any(|g| g.overflow);
            if slot.held.overflow && slot.backlog.is_empty() && !overflow_left {
                slot.held.overflow = false;
                tracing::info!(target: "supervision", plugin = %slot.spec.name, "overflow over: the queue has drained");
            }
            self.drain(idx, ctx);
        }
    }

    fn close_due(&mut self, idx: usize, now: i64, quiet_now: bool) {
        let slot = &mut self.slots[idx];
        let Some(d) = &slot.spec.digest else { return };
        let (wait, max_wait) = (d.wait.as_millis() as i64, d.max_wait.as_millis() as i64);
        let min = d.min_events;
        let groups = &mut slot.held.groups;
        let keys: Vec<String> = groups
            .iter()
            .filter(|(_, g)| (g.last_at + wait).min(g.first_at + max_wait) <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut due: Vec<_> = keys.iter().filter_map(|k| groups.remove(k)).collect();
        due.sort_by_key(|g| g.members.first().map(|p| p.seq));
        for g in due {
            let except = |p: &Pending| {
                self.slots[idx]
                    .spec
                    .quiet_hours
                    .as_ref()
                    .is_some_and(|q| q.except.contains(&p.event.name))
            };
            let (mut members, quieted): (Vec<_>, Vec<_>) = if quiet_now {
                g.members.into_iter().partition(except)
            } else {
                (g.members, Vec::new())
            };
            // Closed during quiet hours: into the quiet hold (the summary), but the exceptions.
            members.extend(quieted.into_iter().filter_map(|p| self.hold_quiet(idx, p)));
            if members.len() >= min {
                self.form(idx, members, Parked::Digest);
            } else {
                self.release_originals(idx, members);
            }
        }
    }

    /// Quiet hours are over: a summary of what was held, or the originals.
    fn end_quiet(&mut self, idx: usize) {
        let slot = &mut self.slots[idx];
        let held = std::mem::take(&mut slot.held.quiet);
        let min = slot.spec.quiet_hours.as_ref().map_or(2, |q| q.min_events);
        let how = if held.len() >= min {
            "a summary"
        } else {
            "the original messages"
        };
        tracing::info!(target: "supervision", plugin = %slot.spec.name, held = held.len(), "quiet hours over: sending what was held as {how}");
        if held.len() >= min {
            self.form(idx, held, Parked::Quiet);
        } else {
            self.release_originals(idx, held);
        }
    }

    /// One message for `members` (in order), carried by the first one's delivery.
    pub(super) fn form(&mut self, idx: usize, mut members: Vec<Pending>, why: Parked) {
        members.sort_by_key(|p| p.seq);
        let events = members.iter().map(|p| Arc::clone(&p.event)).collect();
        let digest = match why {
            Parked::Digest => build::burst(events),
            Parked::Quiet => build::summary(events),
        };
        let lead = &members[0];
        let id = self.store.public_id(lead.seq as Seq);
        let event = build::message_event(digest, id.clone());
        let seqs: Vec<Seq> = members.iter().map(|p| p.seq as Seq).collect();
        let n = seqs.len();
        let slot = &self.slots[idx];
        tracing::debug!(target: "supervision", plugin = %slot.spec.name, digest_id = %id, events = n, "digest formed");
        // Its age (for backlog_max_age) counts from now: time held on purpose is not lateness.
        let mut carrier = Pending::new(Arc::new(event), lead.seq, Instant::now());
        carrier.released = true;
        carrier.digest = Some(Box::new(DigestSend {
            members: seqs[1..].iter().map(|s| *s as u64).collect(),
        }));
        let reason = format!("in digest {id} of {n} events");
        self.updates.push(
            Update::Digested {
                seqs,
                digest: lead.seq as Seq,
                why,
                reason,
            },
            &self.me,
        );
        self.slots[idx].requeue(carrier);
    }

    /// The instance's digest or quiet hours changed (a reload): what they held goes back
    /// in the backlog at its place, and through the new ones as it goes out.
    pub(in crate::supervisor) fn release_all_held(&mut self, idx: usize) {
        let held = self.slots[idx].held.take_all();
        if held.is_empty() {
            return;
        }
        tracing::info!(target: "supervision", plugin = %self.slots[idx].spec.name, held = held.len(), "digest or quiet hours changed: what they held goes through the new ones");
        // Through the new policy as it goes out, not around it.
        self.unpark(idx, held, false);
    }

    /// Fewer than `min_events`: each goes out as it is, at its place.
    pub(super) fn release_originals(&mut self, idx: usize, members: Vec<Pending>) {
        self.unpark(idx, members, true);
    }

    /// `members` leave the digest or quiet hours, back in the backlog at their places;
    /// `released`: sent as they are (else they go through the policy again).
    fn unpark(&mut self, idx: usize, members: Vec<Pending>, released: bool) {
        for mut p in members {
            let held = self.slots[idx].store_hold.clone();
            self.updates.push(
                Update::Unpark {
                    seq: p.seq as Seq,
                    held,
                },
                &self.me,
            );
            p.released = released;
            p.overflowed &= released;
            p.queued_at = Instant::now();
            self.slots[idx].requeue(p);
        }
    }
}
