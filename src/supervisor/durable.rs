//! The supervisor's side of the delivery store: resume what a previous run left, record
//! every attempt, keep the store's `held` state in step with the instance, and take back
//! deliveries a person retried or replayed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::breaker::BreakerState;
use super::slot::{Pending, Slot};
use super::PluginSupervisor;
use crate::plugins::PluginError;
use crate::store::{now_ms, Attempt, Seq, State, Unfinished, Update};

/// Store updates made during a turn of the supervisor's mailbox, handed to the store in
/// one call when the turn is over (one lock, or one message to the writer, instead of
/// two per delivery: fan-out to ten plugins measured 322k deliveries/s one by one).
#[derive(Default)]
pub(super) struct Updates {
    items: Vec<Update>,
    asked: bool,
}

/// Hand the buffered store updates over (posted to itself).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct FlushUpdates;

impl Updates {
    /// Buffer `u`; the first one of a turn asks `me` to flush once the turn is over.
    pub fn push(&mut self, u: Update, me: &Option<Addr<PluginSupervisor>>) {
        self.items.push(u);
        if !self.asked {
            if let Some(me) = me {
                self.asked = true;
                me.do_send(FlushUpdates);
            }
        }
    }
}

impl Handler<FlushUpdates> for PluginSupervisor {
    type Result = ();

    fn handle(&mut self, _: FlushUpdates, _: &mut Context<Self>) {
        self.flush_updates();
    }
}

impl PluginSupervisor {
    /// Hand every buffered update to the store now.
    pub(super) fn flush_updates(&mut self) {
        self.updates.asked = false;
        if !self.updates.items.is_empty() {
            self.store
                .update_many(std::mem::take(&mut self.updates.items));
        }
    }

    /// Put the deliveries a previous run left unfinished back in their backlogs, in order.
    /// Those of an instance no longer configured are dead; a disabled one's stay held.
    pub(super) fn resume(&mut self, rows: Vec<Unfinished>) {
        let by_name: HashMap<String, usize> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.spec.name.clone(), i))
            .collect();
        let now = Instant::now();
        let now_ms = now_ms();
        let mut disabled = BTreeSet::new();
        let mut parked: HashMap<usize, Vec<(Unfinished, Pending)>> = HashMap::new();
        for row in rows {
            let Some(&idx) = by_name.get(&row.instance) else {
                self.bury_removed(&row);
                continue;
            };
            let slot = &mut self.slots[idx];
            if !slot.spec.enabled || slot.spec.role == "enrichment" {
                disabled.insert(idx);
                continue;
            }
            let age = Duration::from_millis((now_ms - row.created_at).max(0) as u64);
            let pending = Pending::new(
                Arc::clone(&row.event),
                row.seq as u64,
                now.checked_sub(age).unwrap_or(now),
            );
            if row.parked.is_some() || row.digest.is_some() {
                // Held by a digest or quiet hours: back there, not in the backlog.
                parked.entry(idx).or_default().push((row, pending));
                continue;
            }
            if row.state == State::Held {
                // Released by the first sync once the instance can send.
                slot.store_hold = Some("held before the restart".into());
            }
            slot.backlog.push_back(pending);
        }
        for (idx, rows) in parked {
            self.resume_parked(idx, rows);
        }
        for idx in disabled {
            let slot = &self.slots[idx];
            self.updates.push(
                Update::Hold {
                    instance: Arc::clone(&slot.name),
                    reason: "instance disabled: enable it to send these".into(),
                    until: None,
                },
                &self.me,
            );
        }
        let resumed: usize = self.slots.iter().map(|s| s.backlog.len()).sum();
        if let Some(window) = self.window {
            // Beyond the memory window, read back from the store as the backlog empties.
            for slot in &mut self.slots {
                let Some(newest) = slot.backlog.back().map(|p| p.seq) else {
                    continue;
                };
                if slot.backlog.len() > window {
                    slot.backlog.truncate(window);
                    slot.spill = Some(super::window::Spill {
                        after: slot.backlog.back().map_or(0, |p| p.seq),
                        newest,
                        loading: false,
                        reread: false,
                    });
                }
            }
        }
        if resumed > 0 {
            tracing::info!(target: "supervision", deliveries = resumed, "resuming deliveries left by the previous run");
        }
        for idx in 0..self.slots.len() {
            let slot = &self.slots[idx];
            let prompt = (slot.backlog.is_empty() && slot.spill.is_none()) || slot.has_policy();
            self.intake.set_prompt(idx, prompt);
        }
    }

    /// A delivery for an instance no longer in the config: dead, with the reason.
    fn bury_removed(&mut self, row: &Unfinished) {
        self.updates.push(
            Update::Dead {
                seq: row.seq,
                reason: format!(
                    "instance removed: `{}` is no longer in the config",
                    row.instance
                ),
            },
            &self.me,
        );
    }

    /// A delivery went through.
    pub(super) fn record_delivered(&mut self, seq: u64, detail: Option<&str>, took: Duration) {
        // Plugins answer "200 OK, ..." : the leading status, when there is one.
        let status = detail
            .and_then(|d| d.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|s| (100..600).contains(s));
        self.updates.push(
            Update::Attempted {
                seq: seq as Seq,
                attempt: Attempt {
                    at: now_ms(),
                    outcome: "delivered".into(),
                    status,
                    error: detail.map(str::to_owned),
                    duration_ms: took.as_millis() as u64,
                },
                state: State::Delivered,
                reason: None,
                next_attempt_at: None,
            },
            &self.me,
        );
    }

    /// An attempt failed; the delivery is now in `state`.
    pub(super) fn record_attempt(
        &mut self,
        seq: u64,
        err: &PluginError,
        took: Duration,
        state: State,
        reason: Option<String>,
        next_attempt_at: Option<i64>,
    ) {
        self.updates.push(
            Update::Attempted {
                seq: seq as Seq,
                attempt: Attempt {
                    at: now_ms(),
                    outcome: err.kind().into(),
                    status: err.status(),
                    error: Some(err.to_string()),
                    duration_ms: took.as_millis() as u64,
                },
                state,
                reason,
                next_attempt_at,
            },
            &self.me,
        );
    }

    /// Make the store show instance `idx`'s waiting deliveries as held while it is
    /// paused, open or misconfigured, and as pending again once it can send.
    pub(super) fn sync_hold(&mut self, idx: usize) {
        let now = Instant::now();
        let slot = &self.slots[idx];
        let wanted = hold_reason(slot, now);
        if wanted.as_ref().map(|(r, _)| r) == slot.store_hold.as_ref() {
            return;
        }
        let instance = Arc::clone(&slot.name);
        let update = match &wanted {
            Some((reason, until)) => Update::Hold {
                instance,
                reason: reason.clone(),
                until: *until,
            },
            None => Update::Release { instance },
        };
        self.updates.push(update, &self.me);
        self.slots[idx].store_hold = wanted.map(|(r, _)| r);
    }

    /// Deliveries made pending again (a retry or a replay): back in their backlogs at
    /// their place. A retry also lets a misconfigured or open instance try at once
    /// (a 429 pause and the rate limit still apply).
    pub(super) fn requeued(&mut self, rows: Vec<Unfinished>, retry: bool, ctx: &mut Context<Self>) {
        let mut touched = BTreeSet::new();
        for row in rows {
            let Some(idx) = self.index_of(&row.instance) else {
                self.bury_removed(&row);
                continue;
            };
            let slot = &mut self.slots[idx];
            if slot.spill.is_some_and(|s| row.seq as u64 > s.after) {
                // Beyond the memory window: read back from the store in its turn.
                touched.insert(idx);
                continue;
            }
            // Its age counts from now: a replayed dead letter is not too old at once. Held
            // by a digest or quiet hours, it leaves them: a person asked for it.
            self.unhold(idx, row.seq as u64);
            let slot = &mut self.slots[idx];
            let added = slot.requeue(Pending {
                released: true,
                ..Pending::new(row.event, row.seq as u64, Instant::now())
            });
            if added && !retry {
                if let Some(reason) = &slot.store_hold {
                    self.updates.push(
                        Update::HoldOne {
                            seq: row.seq,
                            reason: reason.clone(),
                        },
                        &self.me,
                    );
                }
            }
            touched.insert(idx);
        }
        for idx in touched {
            if retry {
                self.retry_now(idx);
            }
            self.drain(idx, ctx);
        }
    }

    /// A person asked for a retry: a misconfigured or open instance tries once more now.
    fn retry_now(&mut self, idx: usize) {
        let slot = &mut self.slots[idx];
        if !slot.spec.enabled {
            return;
        }
        let from = slot.state_label(Instant::now());
        if from != "misconfigured" && from != "open" {
            return;
        }
        slot.misconfigured = None;
        slot.breaker.reset();
        tracing::info!(target: "supervision", plugin = %slot.spec.name, from = %from, to = %"closed", reason = %"a retry was asked for", "trying the instance again");
        if slot.handle.is_none() {
            self.spawn_actor(idx);
        }
    }
}

/// Why the store should show `slot`'s waiting deliveries as held, and until when.
fn hold_reason(slot: &Slot, now: Instant) -> Option<(String, Option<i64>)> {
    if slot.backlog.is_empty() && slot.spill.is_none() {
        return None;
    }
    let at = |t: Instant| now_ms() + t.saturating_duration_since(now).as_millis() as i64;
    if !slot.spec.enabled {
        return Some((
            "disabled: held until the instance is enabled again".into(),
            None,
        ));
    }
    if let Some(r) = &slot.misconfigured {
        return Some((format!("misconfigured: {r}"), None));
    }
    if slot.breaker.state() == BreakerState::Open {
        let until = slot.breaker.open_until();
        return Some((
            "open: the circuit breaker is open after failures".into(),
            until.map(at),
        ));
    }
    match slot.hold_reason.filter(|_| slot.is_held(now)) {
        // Our own rate limit is a turn to wait, not a hold.
        None | Some("rate_limit") => None,
        Some(why) => Some((format!("paused: {why}"), slot.held_until.map(at))),
    }
}
