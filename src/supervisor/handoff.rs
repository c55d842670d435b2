//! The hand-over of fire-and-forget deliveries to the supervisor: many events per wake-up.
//!
//! An `emit` that waits for no plugin hands its event to the supervisor's thread and
//! returns. With one actix message per event, a burst (an import that emits thousands of
//! events at once) woke the supervisor's thread over and over, and paid for an envelope, a
//! queue node and a turn of its mailbox per event, on the same two cores as the plugins
//! and the servers they talk to. Yet while an instance's backlog holds deliveries, a new
//! event for it can only join the end of that backlog, and the supervisor will run again
//! anyway when a delivery in flight comes back.
//!
//! So events go into a shared [`Intake`], and the supervisor is told at once ([`Take`])
//! only when an event is for an instance whose backlog is empty (it may go out now), or
//! when [`TAKE_AT`] events are waiting (so the backlog's limit and its age limit still
//! apply to a flood). The supervisor takes what waits whenever a backlog empties, and
//! before anything that must see every event handed over so far: an `emit_sync`, a
//! status request, shutdown.
//!
//! Order is kept: the intake is only ever taken whole and in order, and for one instance
//! it holds only events newer than its whole backlog.
//!
//! Measured with `cargo bench --bench pipeline -- ntfy`, ten alternating runs each: (3)
//! went from 0.79 to 0.80 (mean of best-round ratios) and from 0.80 to 0.81 (mean of
//! paired medians); the supervisor's thread now wakes about 15 times per 15,000-event
//! burst instead of about 800.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix::prelude::*;

use super::{Deliver, PluginSupervisor};

/// Events waiting in the intake that make the supervisor take them even when every
/// instance they are for is backlogged.
pub const TAKE_AT: usize = 1024;

/// Deliveries handed over and not yet taken by the supervisor, shared by both sides.
pub struct Intake {
    queue: Mutex<Queue>,
    /// Per instance: an event for it needs the supervisor at once (its backlog is empty).
    prompt: Box<[AtomicBool]>,
}

#[derive(Default)]
struct Queue {
    items: Vec<Deliver>,
    /// A [`Take`] is on its way to the supervisor.
    asked: bool,
}

/// Tells the supervisor to take the intake.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Take;

impl Intake {
    /// An intake for `instances` instances, each prompt at first.
    pub fn new(instances: usize) -> Arc<Self> {
        Arc::new(Intake {
            queue: Mutex::default(),
            prompt: (0..instances).map(|_| AtomicBool::new(true)).collect(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; a poisoned queue is still a valid queue.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue `delivery`; true when the caller must send a [`Take`].
    fn push(&self, delivery: Deliver) -> bool {
        let mut queue = self.lock();
        // A caller waiting for its reports (`emit_sync`) needs the supervisor now.
        let urgent = delivery.waiters.is_some()
            || delivery
                .targets
                .iter()
                .any(|&i| self.prompt.get(i).is_none_or(|p| p.load(Ordering::Acquire)));
        queue.items.push(delivery);
        let tell = !queue.asked && (urgent || queue.items.len() >= TAKE_AT);
        queue.asked |= tell;
        tell
    }

    /// Everything handed over so far, in order; the intake is left empty.
    pub(super) fn take(&self) -> Vec<Deliver> {
        let mut queue = self.lock();
        queue.asked = false;
        // The next batch is likely about as long as this one: give it room up front, so
        // the emitting thread does not grow the vector step by step.
        let room = queue.items.len();
        std::mem::replace(&mut queue.items, Vec::with_capacity(room))
    }

    /// Instance `idx`'s backlog is now empty (`prompt`) or not. Returns true when the
    /// supervisor must take the intake: the instance just became prompt while events wait
    /// there, and no [`Take`] is on its way (the caller sends one; this counts it as sent).
    pub(super) fn set_prompt(&self, idx: usize, prompt: bool) -> bool {
        let Some(flag) = self.prompt.get(idx) else {
            return false;
        };
        if flag.swap(prompt, Ordering::AcqRel) == prompt || !prompt {
            return false;
        }
        // The flag is up before this lock is taken: an event pushed after it sees the flag
        // (and asks for itself), one pushed before it is seen here.
        let mut queue = self.lock();
        let tell = !queue.asked && !queue.items.is_empty();
        queue.asked |= tell;
        tell
    }
}

/// Where fire-and-forget deliveries go; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Handoff {
    intake: Arc<Intake>,
    supervisor: Addr<PluginSupervisor>,
}

impl Handoff {
    /// A hand-over to `supervisor` through its `intake`.
    pub fn new(intake: Arc<Intake>, supervisor: Addr<PluginSupervisor>) -> Self {
        Handoff { intake, supervisor }
    }

    /// Hand `delivery` over; the supervisor takes it at once or on its next turn.
    pub fn deliver(&self, delivery: Deliver) {
        if self.intake.push(delivery) {
            // Sent after the lock is released: the supervisor's thread may take the intake at once.
            self.supervisor.do_send(Take);
        }
    }
}

impl PluginSupervisor {
    /// The intake this supervisor takes from (for the [`Handoff`] that feeds it).
    pub fn intake(&self) -> Arc<Intake> {
        Arc::clone(&self.intake)
    }

    /// Offer everything the intake holds, in the order it was handed over.
    pub(super) fn take_intake(&mut self, ctx: &mut Context<Self>) {
        for delivery in self.intake.take() {
            let mut waiters = delivery.waiters.map(Vec::into_iter);
            for (i, &idx) in delivery.targets.iter().enumerate() {
                let waiter = waiters.as_mut().and_then(Iterator::next);
                let seq = (delivery.first + i as crate::store::Seq) as u64;
                self.offer(idx, Arc::clone(&delivery.event), seq, waiter, ctx);
            }
        }
    }

    /// Instance `idx`'s backlog may have filled or emptied: tell the intake, and take it
    /// soon when events wait there that may now go out.
    pub(super) fn backlog_changed(&mut self, idx: usize) {
        self.sync_hold(idx);
        let slot = &self.slots[idx];
        // A digest or quiet hours time each delivery on arrival: never left in the intake.
        let prompt = (slot.backlog.is_empty() && slot.spill.is_none()) || slot.has_policy();
        if self.intake.set_prompt(idx, prompt) {
            if let Some(me) = &self.me {
                me.do_send(Take);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventName};

    fn delivery(targets: &[usize]) -> Deliver {
        Deliver {
            event: Arc::new(Event::new(EventName::AfterMediaAdded, Default::default())),
            targets: Arc::from(targets),
            first: 1,
            waiters: None,
        }
    }

    #[test]
    fn asks_once_for_a_prompt_instance_until_taken() {
        let intake = Intake::new(2);
        assert!(
            intake.push(delivery(&[0])),
            "a prompt instance asks at once"
        );
        assert!(!intake.push(delivery(&[0])), "a Take is already on its way");
        assert_eq!(intake.take().len(), 2);
        assert!(
            intake.push(delivery(&[1])),
            "after a take, the next event asks again"
        );
    }

    #[test]
    fn a_backlogged_instance_waits_until_its_backlog_empties() {
        let intake = Intake::new(2);
        assert!(!intake.set_prompt(0, false));
        assert!(!intake.push(delivery(&[0])));
        assert!(!intake.push(delivery(&[0])));
        // An event also for a prompt instance asks.
        assert!(intake.push(delivery(&[0, 1])));
        assert_eq!(intake.take().len(), 3);
        assert!(!intake.push(delivery(&[0])));
        assert!(
            intake.set_prompt(0, true),
            "the backlog emptied while an event waits"
        );
        assert!(!intake.set_prompt(0, true), "no change, nothing to do");
        assert_eq!(intake.take().len(), 1);
        assert!(!intake.set_prompt(0, false));
        assert!(!intake.set_prompt(0, true), "nothing waits");
    }

    #[test]
    fn a_flood_asks_even_when_every_instance_is_backlogged() {
        let intake = Intake::new(1);
        intake.set_prompt(0, false);
        for _ in 1..TAKE_AT {
            assert!(!intake.push(delivery(&[0])));
        }
        assert!(intake.push(delivery(&[0])));
        let taken = intake.take();
        assert_eq!(taken.len(), TAKE_AT);
    }

    #[test]
    fn keeps_the_order_events_came_in() {
        let intake = Intake::new(1);
        let sent: Vec<_> = (0..5).map(|_| delivery(&[0])).collect();
        let ids: Vec<String> = sent.iter().map(|d| d.event.id.clone()).collect();
        for d in sent {
            intake.push(d);
        }
        let taken: Vec<String> = intake.take().iter().map(|d| d.event.id.clone()).collect();
        assert_eq!(taken, ids);
    }
}
