//! The supervisor's side of digests and quiet hours: divert a delivery into a group or
//! the quiet-hours hold, close what is due on a short tick, settle a digest's members.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::{build, key, quiet, DigestSend, Group};
use crate::store::{Parked, Seq, Unfinished, Update};
use crate::supervisor::slot::Pending;
use crate::supervisor::PluginSupervisor;

/// The longest the supervisor sleeps while it holds anything: the clock is re-read this
/// often, so a due group or the end of quiet hours is acted on within it, and an injected
/// clock that jumps (tests) is noticed at once.
const TICK: Duration = Duration::from_millis(200);

impl PluginSupervisor {
    /// Hold `pending` when instance `idx`'s quiet hours or digest say so (`None`), or hand
    /// it back to be sent as it is.
    pub(in crate::supervisor) fn divert(
        &mut self,
        idx: usize,
        pending: Pending,
        ctx: &mut Context<Self>,
    ) -> Option<Pending> {
        let slot = &self.slots[idx];
        let policy = slot.spec.digest.is_some() || slot.spec.quiet_hours.is_some();
        if !policy || pending.enrich || pending.digest.is_some() {
            return Some(pending);
        }
        let rest = if pending.released {
            // Through the policy already; in overflow mode it still joins a digest, once.
            if !slot.held.overflow || pending.overflowed {
                return Some(pending);
            }
            self.hold_digest(idx, pending)
        } else {
            self.hold_quiet(idx, pending)
                .and_then(|p| self.hold_digest(idx, p))
        };
        self.arm_tick(ctx);
        rest
    }

    fn hold_quiet(&mut self, idx: usize, pending: Pending) -> Option<Pending> {
        let slot = &mut self.slots[idx];
        let Some(q) = &slot.spec.quiet_hours else {
            return Some(pending);
        };
        let now = (slot.spec.clock)();
        if q.except.contains(&pending.event.name) || quiet::window_end(q, now).is_none() {
            return Some(pending);
        }
        let reason = quiet::reason(q);
        if slot.held.quiet.is_empty() {
            tracing::info!(target: "supervision", plugin = %slot.spec.name, reason = %reason, "quiet hours: holding deliveries");
        }
        let seq = pending.seq as Seq;
        slot.held.quiet.push(pending);
        let why = Parked::Quiet;
        self.updates
            .push(Update::Park { seq, why, reason }, &self.me);
        self.want_tick = true;
        None
    }

    fn hold_digest(&mut self, idx: usize, mut pending: Pending) -> Option<Pending> {
        self.check_overflow(idx);
        let slot = &mut self.slots[idx];
        let Some(d) = &slot.spec.digest else {
            return Some(pending);
        };
        let now = (slot.spec.clock)();
        let overflow = slot.held.overflow;
        let key = if overflow {
            format!("overflow\u{1f}{}", pending.event.name)
        } else {
            key::group_key(&pending.event, &d.group_by)
        };
        let reason = format!(
            "digest: waiting up to {}s for more like it",
            d.wait.as_secs()
        );
        let seq = pending.seq as Seq;
        pending.overflowed |= overflow;
        let groups = &mut slot.held.groups;
        match groups.iter_mut().find(|g| g.key == key) {
            Some(g) => {
                g.last_at = now;
                let at = g.members.partition_point(|p| p.seq < pending.seq);
                g.members.insert(at, pending);
            }
            None => groups.push(Group {
                key,
                members: vec![pending],
                first_at: now,
                last_at: now,
                overflow,
            }),
        }
        let why = Parked::Digest;
        self.updates
            .push(Update::Park { seq, why, reason }, &self.me);
        self.want_tick = true;
        None
    }

    /// Past `overflow_at` waiting deliveries, every event goes into a digest of its kind
    /// (those waiting already too) until the queue drains.
    fn check_overflow(&mut self, idx: usize) {
        let slot = &mut self.slots[idx];
        let Some(d) = &slot.spec.digest else { return };
        let limit = d
            .overflow_at
            .or(slot.spec.rate_limit.map(|r| r.per_minute as usize * 10));
        let Some(limit) = limit else { return };
        // Waiting: in the backlog, and handed to the actor beyond what it runs at once.
        let queued =
            slot.backlog.len() + slot.in_flight.saturating_sub(slot.max_in_flight) as usize;
        if slot.held.overflow || queued < limit {
            return;
        }
        slot.held.overflow = true;
        tracing::warn!(
            target: "supervision", plugin = %slot.spec.name, queued,
            overflow_at = limit, "overflow: sending digests for every event until the queue drains"
        );
        // What waits in the backlog joins the digests now (what comes back from the actor
        // joins them as the backlog drains).
        let (sweep, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut slot.backlog)
            .into_iter()
            .partition(|p| p.digest.is_none() && !p.enrich && !p.overflowed);
        slot.backlog = keep.into();
        for p in sweep {
            let _ = self.hold_digest(idx, p);
        }
    }

    /// Arm the tick when something is held and it is not armed yet.
    pub(in crate::supervisor) fn arm_tick(&mut self, ctx: &mut Context<Self>) {
        let held = self.want_tick || self.slots.iter().any(|s| !s.held.is_empty());
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
            let overflow_left = slot.held.groups.iter().any(|g| g.overflow);
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
        let (due, open): (Vec<_>, Vec<_>) = std::mem::take(&mut slot.held.groups)
            .into_iter()
            .partition(|g| (g.last_at + wait).min(g.first_at + max_wait) <= now);
        slot.held.groups = open;
        for g in due {
            let except = |p: &Pending| {
                self.slots[idx]
                    .spec
                    .quiet_hours
                    .as_ref()
                    .is_some_and(|q| q.except.contains(&p.event.name))
            };
            let (members, quieted): (Vec<_>, Vec<_>) = if quiet_now {
                g.members.into_iter().partition(except)
            } else {
                (g.members, Vec::new())
            };
            for p in quieted {
                let _ = self.hold_quiet(idx, p);
            }
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
    fn form(&mut self, idx: usize, mut members: Vec<Pending>, why: Parked) {
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
        let mut carrier = Pending::new(Arc::new(event), lead.seq, lead.queued_at);
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

    /// Fewer than `min_events`: each goes out as it is, at its place.
    fn release_originals(&mut self, idx: usize, members: Vec<Pending>) {
        for mut p in members {
            let held = self.slots[idx].store_hold.clone();
            self.updates.push(
                Update::Unpark {
                    seq: p.seq as Seq,
                    held,
                },
                &self.me,
            );
            p.released = true;
            self.slots[idx].requeue(p);
        }
    }

    /// The digest `carrier` carried was delivered (`dead: None`) or is dead with a reason:
    /// so are its members.
    pub(in crate::supervisor) fn settle_members(
        &mut self,
        idx: usize,
        carrier: &Pending,
        dead: Option<&str>,
    ) {
        let Some(send) = &carrier.digest else { return };
        let id = self.store.public_id(carrier.seq as Seq);
        for &m in &send.members {
            let update = match dead {
                None => Update::DeliveredVia {
                    seq: m as Seq,
                    digest: carrier.seq as Seq,
                },
                Some(reason) => Update::Dead {
                    seq: m as Seq,
                    reason: format!("{reason} (sent in digest {id})"),
                },
            };
            self.updates.push(update, &self.me);
        }
        if dead.is_none() {
            let stats = &mut self.slots[idx].stats;
            stats.delivered += send.members.len() as u64;
            stats.digests += 1;
        }
    }

    /// A person asked for delivery `seq` now: out of its group or the quiet-hours hold.
    pub(in crate::supervisor) fn unhold(&mut self, idx: usize, seq: u64) {
        let held = &mut self.slots[idx].held;
        let _ = held.take(seq);
        held.groups.retain(|g| !g.members.is_empty());
    }

    /// Put deliveries parked before a restart back: a digest formed already is formed
    /// again from its members (same id), the rest rejoin their groups or the quiet hold.
    pub(in crate::supervisor) fn resume_parked(
        &mut self,
        idx: usize,
        rows: Vec<(Unfinished, Pending)>,
    ) {
        let mut formed: BTreeMap<Seq, (Parked, Vec<Pending>)> = BTreeMap::new();
        for (row, pending) in rows {
            match (row.digest, row.parked) {
                (Some(d), why) => {
                    let entry = formed
                        .entry(d)
                        .or_insert_with(|| (why.unwrap_or(Parked::Digest), Vec::new()));
                    if why == Some(Parked::Quiet) {
                        entry.0 = Parked::Quiet;
                    }
                    entry.1.push(pending);
                }
                (None, Some(Parked::Quiet)) => {
                    if let Some(p) = self.hold_quiet(idx, pending) {
                        // Quiet hours are over: the tick sends it in its turn.
                        self.slots[idx].held.quiet.push(p);
                    }
                }
                (None, _) => {
                    if let Some(p) = self.hold_digest(idx, pending) {
                        // No digest configured any more: it goes out as it is.
                        self.release_originals(idx, vec![p]);
                    }
                }
            }
        }
        for (_, (why, members)) in formed {
            self.form(idx, members, why);
        }
    }
}
