//! A digest's members once it is sent or given up on, a person's retry of one held
//! delivery, and what a restart finds parked in the store.

use std::collections::BTreeMap;

use crate::store::{Parked, Seq, Unfinished, Update};
use crate::supervisor::slot::Pending;
use crate::supervisor::PluginSupervisor;

impl PluginSupervisor {
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
        let stats = &mut self.slots[idx].stats;
        if dead.is_none() {
            stats.delivered += send.members.len() as u64;
            // The carrier's own event went out in the digest too.
            stats.digested += send.members.len() as u64 + 1;
            stats.digests += 1;
        } else {
            stats.dead_lettered += send.members.len() as u64;
        }
    }

    /// A person asked for delivery `seq` now: out of its group or the quiet-hours hold (or
    /// out of a formed digest's members: it goes out on its own).
    pub(in crate::supervisor) fn unhold(&mut self, idx: usize, seq: u64) {
        let slot = &mut self.slots[idx];
        let _ = slot.held.take(seq);
        slot.held.groups.retain(|_, g| !g.members.is_empty());
        // A member of a digest that waits to go out: no longer settled by it.
        for p in slot.backlog.iter_mut() {
            if let Some(d) = &mut p.digest {
                d.members.retain(|m| *m != seq);
            }
        }
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
