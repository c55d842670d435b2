//! Batched sending: each instance's outbox goes out as one message per mailbox turn, and
//! results stream back as `Done` reports; a sweep times out what does not come back.
//!
//! One message per delivery each way cost a cross-thread wake each (measured: 331k
//! deliveries/s to 10 no-op plugins; batched, about 2M). Results stream back instead of
//! waiting for the whole batch, so a fast delivery frees its slot at once even when a
//! slow one shares its batch. Timeouts are checked by one sweep timer, armed only while
//! batches are in flight: a timer per batch would pile up in the actor's context, which
//! polls every pending future on each wake.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use foldhash::HashMap;

use super::deliver::{reply, report};
use super::slot::{Pending, Waiter};
use super::PluginSupervisor;
use crate::plugins::actor::{DeliverBatch, Done, Finished, CANCEL_GRACE, QUEUED_PER_RUNNING};
use crate::plugins::PluginError;
use crate::store::Update;

/// A batch on its way: what each position was, so results can be judged.
pub(super) struct Batch {
    idx: usize,
    generation: u64,
    started: Instant,
    deadline: Instant,
    timeout: Duration,
    items: Vec<Option<(Pending, Waiter)>>,
    open: usize,
}

/// In-flight batches of every instance, by tag.
#[derive(Default)]
pub(super) struct Batches {
    by_tag: HashMap<u64, Batch>,
    next_tag: u64,
    sweep_armed: bool,
}

/// Never check for timeouts more often than this (bounds the sweep's cost).
const MIN_SWEEP: Duration = Duration::from_millis(10);

impl PluginSupervisor {
    /// Send every outbox: per instance, one batch of the deliveries the actor can start at
    /// once and one of those it will queue, each with a deadline that fits.
    pub(super) fn flush(&mut self, ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        for idx in std::mem::take(&mut self.dirty) {
            let slot = &mut self.slots[idx];
            let mut items = std::mem::take(&mut slot.outbox);
            // A failure read between a delivery's admission and this flush paused the
            // instance (a new pause epoch): the delivery waits for that pause too, back in
            // the backlog at its place, instead of reaching a service that just failed.
            let epoch = slot.pause_epoch;
            if items.iter().any(|(p, _)| p.epoch != epoch) {
                let (fresh, stale) = items.into_iter().partition(|(p, _)| p.epoch == epoch);
                items = fresh;
                for (pending, waiter) in stale {
                    self.put_back(idx, pending, waiter);
                }
            }
            let slot = &mut self.slots[idx];
            let before = slot.in_flight - items.len() as u32;
            let at_once = (slot.max_in_flight.saturating_sub(before) as usize).min(items.len());
            let queued = items.split_off(at_once);
            // A queued delivery waits, for each full round of running deliveries ahead of
            // it, at most a timeout plus the actor's grace.
            let rounds = slot.in_flight.saturating_sub(1) / slot.max_in_flight;
            let wait = (slot.timeout + CANCEL_GRACE) * rounds.min(QUEUED_PER_RUNNING);
            self.send_batch(idx, items, Duration::ZERO, ctx);
            self.send_batch(idx, queued, wait, ctx);
        }
        self.arm_sweep(ctx);
    }

    /// Hand `items` to instance `idx`'s actor as one batch, due within `wait` plus the timeout.
    fn send_batch(
        &mut self,
        idx: usize,
        items: Vec<(Pending, Waiter)>,
        wait: Duration,
        ctx: &mut Context<Self>,
    ) {
        if items.is_empty() {
            return;
        }
        let slot = &mut self.slots[idx];
        let Some(handle) = &slot.handle else {
            // Crashed between queueing and sending: back to the backlog, in order.
            for (pending, waiter) in items {
                self.put_back(idx, pending, waiter);
            }
            return;
        };
        self.batches.next_tag += 1;
        let tag = self.batches.next_tag;
        let events = items
            .iter()
            .map(|(p, _)| (p.seq, Arc::clone(&p.event)))
            .collect();
        let msg = DeliverBatch {
            batch: tag,
            events,
            timeout: slot.timeout,
            failures_seen: slot.failures_seen,
        };
        let sent = handle.deliveries.try_send(msg);
        let started = Instant::now();
        let batch = Batch {
            idx,
            generation: slot.generation,
            started,
            deadline: started + wait + slot.timeout,
            timeout: slot.timeout,
            open: items.len(),
            items: items.into_iter().map(Some).collect(),
        };
        self.batches.by_tag.insert(tag, batch);
        if sent.is_err() {
            // The actor is gone (or its mailbox is jammed): every delivery fails now.
            self.fail_batch(tag, PluginError::Unresponsive, ctx);
        }
    }

    /// Instance `idx`'s actor of `generation` is gone (it crashed or was found blocked):
    /// what it still held goes back in the backlog now, in order, instead of waiting for
    /// each batch's deadline. The call that crashed it was judged already; the others
    /// were not the plugin's fault, so they count as nothing.
    pub(super) fn abandon_batches(&mut self, idx: usize, generation: u64) {
        let tags: Vec<u64> = self
            .batches
            .by_tag
            .iter()
            .filter(|(_, b)| b.idx == idx && b.generation == generation)
            .map(|(tag, _)| *tag)
            .collect();
        for tag in tags {
            let Some(batch) = self.batches.by_tag.remove(&tag) else {
                continue;
            };
            for (pending, waiter) in batch.items.into_iter().flatten() {
                self.put_back(idx, pending, waiter);
            }
        }
    }

    /// A delivery handed out but not judged goes back in the backlog at its place (an
    /// enrichment call is skipped instead: the event does not wait for a retry).
    fn put_back(&mut self, idx: usize, pending: Pending, waiter: Waiter) {
        let slot = &mut self.slots[idx];
        slot.in_flight = slot.in_flight.saturating_sub(1);
        if pending.enrich {
            return reply(waiter, || {
                report(&slot.spec.name, "skipped", Duration::ZERO)
            });
        }
        let seq = pending.seq;
        slot.requeue(pending);
        reply(waiter, || report(&slot.spec.name, "queued", Duration::ZERO));
        // Not started after all: the store shows it waiting again.
        let held = slot.store_hold.clone();
        self.updates.push(
            Update::NotStarted {
                seq: seq as crate::store::Seq,
                held,
            },
            &self.me,
        );
    }

    /// Take a `Done` report: deliveries handed back go back in the backlog first, in
    /// order, so nothing drained while judging the results overtakes them.
    pub(super) fn on_done(&mut self, done: Done, ctx: &mut Context<Self>) {
        self.count_failures(&done);
        let mut waiting = Vec::new();
        for (tag, index) in done.returned {
            if let Some(idx) = self.returned(tag, index) {
                waiting.push(idx);
            }
        }
        // Handed back with no results: a batch that crossed a failure report on its way
        // (judged already, so the deliveries go out again now if nothing holds them).
        let crossed = done.results.is_empty();
        for finished in done.results {
            self.on_result(finished, ctx);
        }
        // A reload waits for these to come back before it rebuilds or drops the instance.
        waiting.dedup();
        for idx in waiting {
            let slot = &self.slots[idx];
            if crossed || slot.removed || slot.rebuild.is_some() {
                self.drain(idx, ctx);
            }
        }
    }

    /// Note how many failure reports the actor behind `done` has sent. Any batch it names
    /// tells which actor that is; one from an older actor is ignored. A maximum, so a
    /// report whose batches all timed out already is made up for by the next one.
    fn count_failures(&mut self, done: &Done) {
        let tags = done.results.iter().map(|f| f.batch);
        let tags = tags.chain(done.returned.iter().map(|(tag, _)| *tag));
        let Some(batch) = tags.filter_map(|t| self.batches.by_tag.get(&t)).next() else {
            return;
        };
        let slot = &mut self.slots[batch.idx];
        if slot.generation == batch.generation {
            slot.failures_seen = slot.failures_seen.max(done.failures);
        }
    }

    /// The item at `index` of batch `tag` was handed back unstarted.
    fn returned(&mut self, tag: u64, index: usize) -> Option<usize> {
        // An unknown batch timed out already, and its deliveries were put back then.
        let (idx, pending, waiter) = self.take_item(tag, index)?;
        self.put_back(idx, pending, waiter);
        Some(idx)
    }

    /// Judge one result.
    fn on_result(&mut self, f: Finished, ctx: &mut Context<Self>) {
        let Some(batch) = self.batches.by_tag.get(&f.batch) else {
            return self.late_result(f.seq, f.result);
        };
        let (generation, took) = (batch.generation, batch.started.elapsed());
        if let Some((idx, pending, waiter)) = self.take_item(f.batch, f.index) {
            self.finished(idx, generation, pending, waiter, f.result, took, ctx);
        }
    }

    /// Take item `index` out of batch `tag` (forgetting the batch once it is empty).
    fn take_item(&mut self, tag: u64, index: usize) -> Option<(usize, Pending, Waiter)> {
        let batch = self.batches.by_tag.get_mut(&tag)?;
        let (pending, waiter) = batch.items.get_mut(index).and_then(Option::take)?;
        batch.open -= 1;
        let idx = batch.idx;
        if batch.open == 0 {
            self.batches.by_tag.remove(&tag);
        }
        Some((idx, pending, waiter))
    }

    /// A result for a batch that already timed out: its deliveries were put back in the
    /// backlog for a retry. A late success is taken out again, so it is not sent twice.
    fn late_result(&mut self, seq: u64, result: Result<crate::plugins::Outcome, PluginError>) {
        if result.is_err() {
            return;
        }
        for idx in 0..self.slots.len() {
            let slot = &mut self.slots[idx];
            if let Some(pos) = slot.backlog.iter().position(|p| p.seq == seq) {
                let p = slot.backlog.remove(pos).expect("position is in range");
                slot.stats.delivered += 1;
                tracing::debug!(target: "supervision", plugin = %slot.spec.name, event_id = %p.event.id, "late success after a timeout; not sending it again");
                self.record_delivered(p.seq, Some("answered after its timeout"), Duration::ZERO);
                self.backlog_changed(idx);
                break;
            }
        }
    }

    fn fail_batch(&mut self, tag: u64, err: PluginError, ctx: &mut Context<Self>) {
        let Some(batch) = self.batches.by_tag.remove(&tag) else {
            return;
        };
        let took = batch.started.elapsed();
        for (pending, waiter) in batch.items.into_iter().flatten() {
            self.finished(
                batch.idx,
                batch.generation,
                pending,
                waiter,
                Err(err.clone()),
                took,
                ctx,
            );
        }
    }

    fn arm_sweep(&mut self, ctx: &mut Context<Self>) {
        if self.batches.sweep_armed || self.batches.by_tag.is_empty() {
            return;
        }
        let now = Instant::now();
        let next = self
            .batches
            .by_tag
            .values()
            .map(|b| b.deadline)
            .min()
            .unwrap_or(now);
        self.batches.sweep_armed = true;
        ctx.run_later(
            next.saturating_duration_since(now).max(MIN_SWEEP),
            |act, ctx| {
                act.batches.sweep_armed = false;
                act.sweep(ctx);
            },
        );
    }

    /// Time out every delivery whose batch is past its deadline.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let expired: Vec<(u64, Duration)> = self
            .batches
            .by_tag
            .iter()
            .filter(|(_, b)| b.deadline <= now)
            .map(|(tag, b)| (*tag, b.timeout))
            .collect();
        for (tag, timeout) in expired {
            self.fail_batch(tag, PluginError::Timeout { after: timeout }, ctx);
        }
        self.arm_sweep(ctx);
    }
}
