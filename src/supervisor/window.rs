//! The memory window: with a store on disk, each instance keeps at most
//! [`crate::store::MEMORY_WINDOW`] waiting deliveries in memory; newer ones stay only in
//! the store and are read back, in order, as the window empties. So a long outage or a
//! flood is bounded by the disk (and `storage.max_pending`), not by memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::slot::Pending;
use super::PluginSupervisor;
use crate::store::{StoreError, Unfinished};

/// Deliveries of an instance that are in the store but not in its backlog.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spill {
    /// Everything of this instance up to here is in memory (or done); later ones are read
    /// from the store.
    pub after: u64,
    /// The newest delivery left in the store while spilled.
    pub newest: u64,
    pub loading: bool,
    /// A short read was repeated once (a delivery committed while the read ran).
    pub reread: bool,
}

impl PluginSupervisor {
    /// Whether `pending` stays in the store only: the window is full, or earlier ones do.
    /// An older delivery (a retry) always goes back in memory, at its place.
    pub(super) fn spills(&mut self, idx: usize, pending: &Pending) -> bool {
        let window = self.window;
        let slot = &mut self.slots[idx];
        if pending.enrich {
            return false;
        }
        let back = slot.backlog.back().map(|p| p.seq);
        let spill = match &mut slot.spill {
            Some(s) if pending.seq > s.after => s,
            Some(_) => return false,
            None => {
                let full = window.is_some_and(|w| slot.backlog.len() >= w);
                if !full || back.is_some_and(|b| pending.seq < b) {
                    return false;
                }
                slot.spill.insert(Spill {
                    after: back.unwrap_or(pending.seq.saturating_sub(1)),
                    newest: 0,
                    loading: false,
                    reread: false,
                })
            }
        };
        spill.newest = spill.newest.max(pending.seq);
        true
    }

    /// Read the next spilled deliveries once the window is half empty.
    pub(super) fn refill(&mut self, idx: usize, ctx: &mut Context<Self>) {
        let Some(window) = self.window else { return };
        let slot = &mut self.slots[idx];
        let room = window.saturating_sub(slot.backlog.len());
        let Some(spill) = &mut slot.spill else { return };
        if spill.loading || self.shutting_down || room < window / 2 {
            return;
        }
        spill.loading = true;
        let (store, name, after) = (self.store.clone(), slot.spec.name.clone(), spill.after);
        let read = async move {
            tokio::task::spawn_blocking(move || store.waiting_after(&name, after as i64, room))
                .await
                .unwrap_or_else(|e| Err(StoreError::Read(e.to_string())))
        };
        ctx.spawn(
            read.into_actor(self)
                .map(move |r, act, ctx| act.refilled(idx, room, r, ctx)),
        );
    }

    fn refilled(
        &mut self,
        idx: usize,
        asked: usize,
        rows: Result<Vec<Unfinished>, StoreError>,
        ctx: &mut Context<Self>,
    ) {
        let slot = &mut self.slots[idx];
        let Some(spill) = &mut slot.spill else { return };
        spill.loading = false;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(target: "store", plugin = %slot.spec.name, error = %e, "cannot read waiting deliveries; trying again in 1 s");
                ctx.run_later(Duration::from_secs(1), move |act, ctx| act.drain(idx, ctx));
                return;
            }
        };
        let got = rows.len();
        let now = Instant::now();
        for row in rows {
            let seq = row.seq as u64;
            let at = slot.backlog.partition_point(|p| p.seq < seq);
            if seq <= spill.after || slot.backlog.get(at).is_some_and(|p| p.seq == seq) {
                continue;
            }
            let age =
                Duration::from_millis((crate::store::now_ms() - row.created_at).max(0) as u64);
            slot.backlog.insert(
                at,
                Pending::new(
                    Arc::clone(&row.event),
                    seq,
                    now.checked_sub(age).unwrap_or(now),
                ),
            );
            spill.after = seq;
            slot.read_back = slot.read_back.max(seq);
        }
        if got < asked {
            if spill.newest > spill.after && !spill.reread {
                // One committed while the read ran: it is visible to a second read.
                spill.reread = true;
            } else {
                slot.spill = None;
            }
        } else {
            spill.reread = false;
        }
        self.drain(idx, ctx);
    }
}
