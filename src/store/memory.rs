//! The in-memory backend: the same rules as SQLite, nothing survives a restart. For
//! embedders that keep their own queue, and for tests. Finished deliveries are kept for
//! the retention but at most [`MAX_FINISHED`] of them, and events (for duplicate ids) at
//! most [`MAX_EVENTS`], so memory stays bounded.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

// foldhash, not SipHash: event ids and numbers are hashed on every accept; its seed is
// random per process.
use foldhash::HashMap;

use super::{
    now_ms, Accept, Accepted, Attempt, DeliveryStore, Detail, Page, Parked, Query, Requeue, Result,
    Seq, State, Summary, Unfinished, Update,
};
use crate::event::Event;

/// Delivered deliveries kept at most (the oldest go first).
pub const MAX_FINISHED: usize = 10_000;
/// Events remembered at most (for duplicate ids); events with work left are always kept.
pub const MAX_EVENTS: usize = 100_000;

/// The in-memory delivery store.
pub struct MemoryStore {
    state: Mutex<Mem>,
    retention_ms: i64,
    tag: u32,
}

#[derive(Default)]
struct Mem {
    /// Event id → its sequence number.
    ids: HashMap<String, i64>,
    events: BTreeMap<i64, (Arc<Event>, i64)>,
    deliveries: BTreeMap<Seq, Row>,
    next_seq: Seq,
    next_event: i64,
    delivered: usize,
    /// Delivered deliveries, in the order they were delivered (pruned from the front).
    finished: std::collections::VecDeque<Seq>,
    /// Events in accept order (pruned from the front), and each one's deliveries left.
    order: std::collections::VecDeque<i64>,
    live: HashMap<i64, usize>,
}

struct Row {
    event: i64,
    instance: Arc<str>,
    state: State,
    attempts: Vec<Attempt>,
    last_status: Option<u16>,
    last_error: Option<String>,
    reason: Option<String>,
    created_at: i64,
    updated_at: i64,
    next_attempt_at: Option<i64>,
    parked: Option<Parked>,
    digest: Option<Seq>,
}

impl MemoryStore {
    /// An empty store keeping finished deliveries for `retention`.
    pub fn new(retention: Duration) -> MemoryStore {
        MemoryStore {
            state: Mutex::new(Mem {
                next_seq: 1,
                next_event: 1,
                ..Mem::default()
            }),
            retention_ms: retention.as_millis().min(i64::MAX as u128) as i64,
            tag: rand::random(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Mem> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Mem {
    fn set_state(&mut self, seq: Seq, state: State) -> Option<&mut Row> {
        let row = self.deliveries.get_mut(&seq)?;
        let (was, is) = (row.state == State::Delivered, state == State::Delivered);
        if was && !is {
            self.delivered -= 1;
        }
        if is && !was {
            self.delivered += 1;
            self.finished.push_back(seq);
        }
        row.state = state;
        Some(row)
    }

    fn unfinished(&self, seq: Seq, row: &Row) -> Unfinished {
        Unfinished {
            seq,
            instance: row.instance.to_string(),
            state: row.state,
            attempts: row.attempts.len() as u32,
            created_at: row.created_at,
            event: Arc::clone(&self.events[&row.event].0),
            parked: row.parked,
            digest: row.digest,
        }
    }

    fn summary(&self, seq: Seq, row: &Row) -> Summary {
        let event = &self.events[&row.event].0;
        Summary {
            seq,
            event_id: event.id.clone(),
            event: event.name.as_str().to_owned(),
            plugin: row.instance.to_string(),
            state: row.state,
            reason: row.reason.clone(),
            attempts: row.attempts.len() as u32,
            last_status: row.last_status,
            last_error: row.last_error.clone(),
            created_at: row.created_at,
            updated_at: row.updated_at,
            next_attempt_at: row.next_attempt_at,
            digest: row.digest,
        }
    }

    /// One state change.
    fn apply(&mut self, u: Update, now: i64) {
        match u {
            Update::Started { seq } => {
                if let Some(row) = self.deliveries.get(&seq) {
                    if matches!(row.state, State::Pending | State::Held) {
                        if let Some(row) = self.set_state(seq, State::InFlight) {
                            row.parked = None;
                            row.updated_at = now;
                        }
                    }
                }
            }
            Update::NotStarted { seq, held } => {
                if self
                    .deliveries
                    .get(&seq)
                    .is_some_and(|r| r.state == State::InFlight)
                {
                    let state = if held.is_some() {
                        State::Held
                    } else {
                        State::Pending
                    };
                    if let Some(row) = self.set_state(seq, state) {
                        row.reason = held;
                        row.updated_at = now;
                    }
                }
            }
            Update::Attempted {
                seq,
                attempt,
                state,
                reason,
                next_attempt_at,
            } => {
                if let Some(row) = self.set_state(seq, state) {
                    row.parked = None;
                    row.last_status = attempt.status;
                    row.last_error = (state != State::Delivered)
                        .then(|| attempt.error.clone())
                        .flatten();
                    row.reason = reason;
                    row.next_attempt_at = next_attempt_at;
                    row.updated_at = now;
                    row.attempts.push(attempt);
                }
            }
            Update::Dead { seq, reason } => {
                if let Some(row) = self.set_state(seq, State::Dead) {
                    row.reason = Some(reason);
                    row.next_attempt_at = None;
                    row.updated_at = now;
                }
            }
            Update::Hold {
                instance,
                reason,
                until,
            } => {
                for row in self.deliveries.values_mut() {
                    if matches!(row.state, State::Pending | State::Held)
                        && row.instance == instance
                        && row.parked.is_none()
                    {
                        row.state = State::Held;
                        row.reason = Some(reason.clone());
                        row.next_attempt_at = until;
                        row.updated_at = now;
                    }
                }
            }
            Update::HoldOne { seq, reason } => {
                if let Some(row) = self.deliveries.get_mut(&seq) {
                    if row.state == State::Pending {
                        row.state = State::Held;
                        row.reason = Some(reason);
                        row.updated_at = now;
                    }
                }
            }
            Update::Release { instance } => {
                for row in self.deliveries.values_mut() {
                    if row.state == State::Held && row.instance == instance && row.parked.is_none()
                    {
                        row.state = State::Pending;
                        row.reason = None;
                        row.next_attempt_at = None;
                        row.updated_at = now;
                    }
                }
            }
            Update::Park { seq, why, reason } => {
                if let Some(row) = self.waiting(seq) {
                    row.state = State::Held;
                    row.parked = Some(why);
                    row.reason = Some(reason);
                    row.updated_at = now;
                }
            }
            Update::Unpark { seq, held } => {
                if let Some(row) = self.waiting(seq) {
                    row.state = if held.is_some() {
                        State::Held
                    } else {
                        State::Pending
                    };
                    row.parked = None;
                    row.digest = None;
                    row.reason = held;
                    row.updated_at = now;
                }
            }
            Update::Digested {
                seqs,
                digest,
                why,
                reason,
            } => {
                for seq in seqs {
                    if let Some(row) = self.waiting(seq) {
                        row.state = State::Held;
                        row.parked = Some(why);
                        row.digest = Some(digest);
                        row.reason = Some(reason.clone());
                        row.updated_at = now;
                    }
                }
            }
            Update::DeliveredVia { seq, digest } => {
                let open = self
                    .deliveries
                    .get(&seq)
                    .is_some_and(|r| r.state != State::Delivered);
                if open {
                    if let Some(row) = self.set_state(seq, State::Delivered) {
                        row.parked = None;
                        row.digest = Some(digest);
                        row.reason = None;
                        row.next_attempt_at = None;
                        row.updated_at = now;
                    }
                }
            }
        }
    }

    /// Delivery `seq` when it is not finished (one handed to the plugin and handed back
    /// unstarted still shows `in_flight`).
    fn waiting(&mut self, seq: Seq) -> Option<&mut Row> {
        self.deliveries
            .get_mut(&seq)
            .filter(|r| !r.state.is_final())
    }

    /// Drop delivered deliveries past the retention (or past the cap), oldest first, then
    /// events that have no deliveries left and are past the retention (or the cap). Works
    /// from the front of two queues, so each call costs what it removes.
    fn prune(&mut self, cutoff: i64) {
        while let Some(&seq) = self.finished.front() {
            let Some(row) = self.deliveries.get(&seq) else {
                self.finished.pop_front();
                continue;
            };
            if self.delivered <= MAX_FINISHED && row.updated_at >= cutoff {
                break;
            }
            self.finished.pop_front();
            let event = row.event;
            self.deliveries.remove(&seq);
            self.delivered -= 1;
            if let Some(n) = self.live.get_mut(&event) {
                *n = n.saturating_sub(1);
            }
        }
        // An event still waiting on a dead letter goes to the back; a few per call.
        let mut rotations = 16;
        while let Some(&ev) = self.order.front() {
            let Some((event, at)) = self.events.get(&ev) else {
                self.order.pop_front();
                continue;
            };
            if *at >= cutoff && self.events.len() <= MAX_EVENTS {
                break;
            }
            self.order.pop_front();
            if self.live.get(&ev).copied().unwrap_or(0) > 0 {
                self.order.push_back(ev);
                rotations -= 1;
                if rotations == 0 {
                    break;
                }
                continue;
            }
            let id = event.id.clone();
            self.events.remove(&ev);
            self.live.remove(&ev);
            self.ids.remove(&id);
        }
    }
}

impl DeliveryStore for MemoryStore {
    fn accept(&self, a: Accept) {
        let now = now_ms();
        let mut guard = self.lock();
        let m = &mut *guard;
        let event = m.next_event;
        match m.ids.entry(a.event.id.clone()) {
            Entry::Occupied(seq) => {
                let stored = Arc::clone(&m.events[seq.get()].0);
                // Called under the lock, like every accept: hand-overs stay in accept order.
                return (a.done)(Ok(Accepted {
                    first: 0,
                    duplicate: Some(stored),
                }));
            }
            Entry::Vacant(slot) => {
                slot.insert(event);
            }
        }
        m.next_event += 1;
        m.events.insert(event, (Arc::clone(&a.event), now));
        let first = m.next_seq;
        for instance in a.instances.iter() {
            let seq = m.next_seq;
            m.next_seq += 1;
            m.deliveries.insert(
                seq,
                Row {
                    event,
                    instance: Arc::clone(instance),
                    state: State::Pending,
                    attempts: Vec::new(),
                    last_status: None,
                    last_error: None,
                    reason: None,
                    created_at: now,
                    updated_at: now,
                    next_attempt_at: None,
                    parked: None,
                    digest: None,
                },
            );
        }
        m.order.push_back(event);
        m.live.insert(event, a.instances.len());
        m.prune(now - self.retention_ms);
        (a.done)(Ok(Accepted {
            first,
            duplicate: None,
        }));
    }

    fn update(&self, u: Update) {
        let now = now_ms();
        let mut m = self.lock();
        m.apply(u, now);
    }

    fn update_many(&self, updates: Vec<Update>) {
        let now = now_ms();
        let mut m = self.lock();
        for u in updates {
            m.apply(u, now);
        }
    }

    fn bury(&self, instance: Arc<str>, reason: String, reply: Box<dyn FnOnce(Result<u64>) + Send>) {
        let now = now_ms();
        let mut m = self.lock();
        let mut n = 0;
        for row in m.deliveries.values_mut() {
            if matches!(row.state, State::Pending | State::Held) && row.instance == instance {
                row.state = State::Dead;
                row.parked = None;
                row.reason = Some(reason.clone());
                row.next_attempt_at = None;
                row.updated_at = now;
                n += 1;
            }
        }
        drop(m);
        reply(Ok(n))
    }

    fn requeue(&self, which: Requeue, reply: Box<dyn FnOnce(Result<Vec<Unfinished>>) + Send>) {
        let now = now_ms();
        let mut m = self.lock();
        let seqs: Vec<Seq> = match &which {
            Requeue::One(seq) => m
                .deliveries
                .get(seq)
                .filter(|r| matches!(r.state, State::Dead | State::Held))
                .map(|_| vec![*seq])
                .unwrap_or_default(),
            Requeue::Dead { instance, since } => m
                .deliveries
                .iter()
                .filter(|(_, r)| {
                    r.state == State::Dead
                        && &*r.instance == instance.as_str()
                        && since.is_none_or(|s| r.created_at >= s)
                })
                .map(|(seq, _)| *seq)
                .collect(),
        };
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            out.push(m.unfinished(seq, &m.deliveries[&seq]));
            if let Some(row) = m.set_state(seq, State::Pending) {
                row.parked = None;
                row.digest = None;
                row.reason = None;
                row.next_attempt_at = None;
                row.updated_at = now;
            }
        }
        reply(Ok(out));
    }

    fn unfinished(&self) -> Result<Vec<Unfinished>> {
        let m = self.lock();
        Ok(m.deliveries
            .iter()
            .filter(|(_, r)| !r.state.is_final())
            .map(|(seq, r)| m.unfinished(*seq, r))
            .collect())
    }

    fn list(&self, q: &Query) -> Result<Page> {
        let m = self.lock();
        let limit = q.limit.clamp(1, 500);
        let upper = q.before.unwrap_or(Seq::MAX);
        let items: Vec<Summary> = m
            .deliveries
            .range(..upper)
            .rev()
            .filter(|(_, r)| {
                q.instance.as_deref().is_none_or(|i| &*r.instance == i)
                    && q.state.is_none_or(|s| r.state == s)
                    && q.event_id
                        .as_deref()
                        .is_none_or(|id| m.events[&r.event].0.id == id)
            })
            .take(limit + 1)
            .map(|(seq, r)| m.summary(*seq, r))
            .collect();
        Ok(Page::cut(items, limit))
    }

    fn get(&self, seq: Seq) -> Result<Option<Detail>> {
        let m = self.lock();
        Ok(m.deliveries.get(&seq).map(|r| Detail {
            summary: m.summary(seq, r),
            attempts: r.attempts.clone(),
            event: Arc::clone(&m.events[&r.event].0),
        }))
    }

    fn counts(&self) -> Result<Vec<(String, State, u64)>> {
        let m = self.lock();
        let mut counts: BTreeMap<(String, State), u64> = BTreeMap::new();
        for r in m
            .deliveries
            .values()
            .filter(|r| r.state != State::Delivered)
        {
            *counts.entry((r.instance.to_string(), r.state)).or_default() += 1;
        }
        Ok(counts.into_iter().map(|((i, s), n)| (i, s, n)).collect())
    }

    fn unfinished_count(&self) -> Result<u64> {
        let m = self.lock();
        Ok(m.deliveries
            .values()
            .filter(|r| !r.state.is_final())
            .count() as u64)
    }

    fn waiting_after(&self, instance: &str, after: Seq, limit: usize) -> Result<Vec<Unfinished>> {
        let m = self.lock();
        Ok(m.deliveries
            .range(after + 1..)
            .filter(|(_, r)| {
                &*r.instance == instance
                    && matches!(r.state, State::Pending | State::Held)
                    && r.parked.is_none()
            })
            .take(limit)
            .map(|(seq, r)| m.unfinished(*seq, r))
            .collect())
    }

    fn in_memory(&self) -> bool {
        true
    }

    fn tag(&self) -> u32 {
        self.tag
    }

    fn flush(&self) {}
}
