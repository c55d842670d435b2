//! Holding: a delivery goes into the quiet-hours hold or its digest group (or, past the
//! overflow mark, into a digest of its kind), parked in the store until it is released.

use std::collections::hash_map::Entry;

use actix::prelude::*;

use super::{key, quiet, Group};
use crate::store::{Parked, Seq, Update};
use crate::supervisor::slot::Pending;
use crate::supervisor::PluginSupervisor;

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
        if !slot.has_policy() || pending.enrich || pending.digest.is_some() {
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

    pub(super) fn hold_quiet(&mut self, idx: usize, pending: Pending) -> Option<Pending> {
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

    pub(super) fn hold_digest(&mut self, idx: usize, mut pending: Pending) -> Option<Pending> {
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
        match slot.held.groups.entry(key) {
            Entry::Occupied(mut g) => {
                let g = g.get_mut();
                g.last_at = now;
                let at = g.members.partition_point(|p| p.seq < pending.seq);
                g.members.insert(at, pending);
            }
            Entry::Vacant(v) => {
                v.insert(Group {
                    members: vec![pending],
                    first_at: now,
                    last_at: now,
                    overflow,
                });
            }
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
}
