//! The one writer: owns the write connection and commits everything queued since its last
//! commit as one transaction (group commit), so the fsync that `synchronous=FULL` pays is
//! paid per batch, not per event. Accept callbacks run after the commit, in order.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

pub(super) mod lazy;
pub(super) mod rows;
mod starts;

use rusqlite::{params, Connection};

use super::super::{
    now_ms, Accept, Accepted, Requeue, Result, Seq, StoreError, Unfinished, Update,
};
use super::checkpoint::Checkpointer;
use crate::metrics::Timings;
use lazy::{Lazy, LAZY_FOR};
pub(super) use rows::Seqs;
use rows::{accept, accept_rows, requeue, update, write_out, write_out_all, Hot, ROWS};
use starts::Starts;

/// Requeue replies run after the commit that made the rows pending.
pub(super) type RequeueReply = Box<dyn FnOnce(Result<Vec<Unfinished>>) + Send>;

/// Work for the writer.
pub(super) enum Op {
    Accept(Accept, Encoded),
    Update(Update),
    /// Several, from one turn of the supervisor.
    Updates(Vec<Update>),
    Requeue(Requeue, RequeueReply),
    /// An instance's waiting deliveries made dead; answered with how many.
    Bury(Arc<str>, String, Box<dyn FnOnce(Result<u64>) + Send>),
    /// Answered once everything queued before it is committed.
    Flush(Sender<()>),
    /// An instance's waiting deliveries after a point (see [`Writer::waiting`]), read
    /// once what came before is committed.
    Waiting(Waiting, Sender<Result<Vec<Unfinished>>>),
}

/// What [`Op::Waiting`] asks for: up to `limit` of `instance`'s deliveries after `after`.
pub(super) struct Waiting {
    pub instance: String,
    pub after: Seq,
    pub limit: usize,
}

/// The writer's queue, as its callers hold it. An op someone waits for also wakes the
/// writer when it lingers over a batch of state changes; state changes alone do not (the
/// supervisor sends one per mailbox turn, and each wake cost a context switch: on bench
/// (3)'s durable side the writer's own switches fell from 7.4k a run to 3.8k-5.9k).
pub(super) struct Queue {
    tx: Option<Sender<Op>>,
    writer: Thread,
}

impl Queue {
    pub fn new(tx: Sender<Op>, writer: Thread) -> Self {
        Queue {
            tx: Some(tx),
            writer,
        }
    }

    /// The op comes back when the writer is gone (at shutdown), to answer its caller.
    #[allow(clippy::result_large_err)]
    pub fn send(&self, op: Op) -> std::result::Result<(), Op> {
        let Some(tx) = &self.tx else { return Err(op) };
        let awaited = op.awaited();
        tx.send(op).map_err(|e| e.0)?;
        if awaited {
            self.writer.unpark();
        }
        Ok(())
    }
}

impl Drop for Queue {
    /// Closing the queue wakes a lingering writer, which then commits what it holds and ends.
    fn drop(&mut self) {
        self.tx.take();
        self.writer.unpark();
    }
}

/// An accepted event's columns that take work to write (its data and its instances as
/// JSON, its time as RFC 3339), made on the caller's thread: the writer is the store's
/// one bottleneck.
pub(super) struct Encoded {
    pub data: String,
    pub timestamp: String,
    pub instances: String,
}

impl Encoded {
    pub fn new(accept: &Accept) -> Self {
        let ev = &accept.event;
        let names: Vec<&str> = accept.instances.iter().map(|i| &**i).collect();
        Encoded {
            data: serde_json::to_string(&ev.data).unwrap_or_else(|_| "{}".into()),
            timestamp: ev.timestamp.to_rfc3339(),
            instances: serde_json::to_string(&names).unwrap_or_else(|_| "[]".into()),
        }
    }
}

/// Most operations in one transaction (bounds a commit's latency under a flood).
const MAX_BATCH: usize = 8192;
/// How long a batch of state changes alone waits for more before it is committed. Nobody
/// waits for those commits, and each costs an fsync with `synchronous: full`: while
/// deliveries stream out, this makes one commit of what would be several. A crash in
/// that time can send a delivery again at the next start, as one during a commit can.
const LINGER: Duration = Duration::from_millis(10);
/// How often finished deliveries past their retention are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub(super) struct Writer {
    conn: Connection,
    /// How long each batch's transaction took, commit (and its fsync) included.
    commits: Arc<Timings>,
    next: Seqs,
    retention_ms: i64,
    starts: Starts,
    lazy: Lazy,
    /// The first event whose delivery rows may be missing, as `meta` has it.
    lazy_from: Option<Seq>,
    /// Every delivery gets its row at this commit (the writer is ending).
    ending: bool,
    /// How long a delivery goes without its row at most ([`LAZY_FOR`]; tests make it long).
    lazy_for: Duration,
    checkpoints: Checkpointer,
}

impl Writer {
    pub fn new(
        conn: Connection,
        checkpoints: Checkpointer,
        commits: Arc<Timings>,
        next: Seqs,
        retention_ms: i64,
    ) -> Self {
        Writer {
            conn,
            commits,
            next,
            retention_ms,
            starts: Starts::default(),
            lazy: Lazy::default(),
            lazy_from: None,
            ending: false,
            lazy_for: LAZY_FOR,
            checkpoints,
        }
    }

    /// Run until every sender is gone.
    pub fn run(mut self, rx: Receiver<Op>) {
        self.prune();
        let mut last_prune = Instant::now();
        loop {
            let now = Instant::now();
            let mut wake = last_prune + PRUNE_EVERY;
            if let Some(due) = self.starts.next_due() {
                wake = wake.min(due);
            }
            match rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(first) => {
                    let (batch, open) = gather(first, &rx, LINGER);
                    self.ending = !open;
                    self.commit(batch);
                    if !open {
                        return;
                    }
                }
                // Starts that waited their grace out are written on their own.
                Err(RecvTimeoutError::Timeout)
                    if self.starts.next_due().is_some_and(|t| t <= Instant::now()) =>
                {
                    self.commit(Vec::new())
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.ending = true;
                    self.commit(Vec::new());
                    return;
                }
            }
            if last_prune.elapsed() >= PRUNE_EVERY {
                self.prune();
                last_prune = Instant::now();
            }
        }
    }

    fn commit(&mut self, batch: Vec<Op>) {
        let first = self.next;
        let started = Instant::now();
        let applied = self.apply(&batch);
        self.commits.observe(started.elapsed());
        let (mut results, failure) = match applied {
            Ok(r) => (r.into_iter(), None),
            Err(e) => {
                self.next = first;
                self.lazy.rollback();
                let _ = self.conn.execute_batch("ROLLBACK");
                tracing::error!(target: "store", error = %e, ops = batch.len(), "delivery store write failed; its callers are refused");
                (Vec::new().into_iter(), Some(e.to_string()))
            }
        };
        let err = || StoreError::Write(failure.clone().unwrap_or_default());
        for op in batch {
            match (op, results.next()) {
                (Op::Accept(a, _), Some(Outcome::Accepted(r))) => (a.done)(Ok(r)),
                (Op::Accept(a, _), _) => (a.done)(Err(err())),
                (Op::Requeue(_, reply), Some(Outcome::Requeued(rows))) => reply(Ok(rows)),
                (Op::Requeue(_, reply), _) => reply(Err(err())),
                (Op::Bury(_, _, reply), Some(Outcome::Buried(n))) => reply(Ok(n)),
                (Op::Bury(_, _, reply), _) => reply(Err(err())),
                (Op::Flush(tx), _) => {
                    let _ = tx.send(());
                }
                (Op::Waiting(w, tx), _) => {
                    let rows = match &failure {
                        None => self
                            .waiting(&w)
                            .map_err(|e| StoreError::Read(e.to_string())),
                        Some(_) => Err(err()),
                    };
                    let _ = tx.send(rows);
                }
                (Op::Update(_) | Op::Updates(_), _) => {}
            }
        }
    }

    /// Apply every op in one transaction; one outcome per op, in order.
    fn apply(&mut self, batch: &[Op]) -> rusqlite::Result<Vec<Outcome>> {
        let now = now_ms();
        let clock = Instant::now();
        let lazy = &mut self.lazy;
        lazy.begin();
        let tx = self.conn.transaction()?;
        let mut out = Vec::with_capacity(batch.len());
        let mut next = self.next;
        let mut hot = Hot::new(&tx);
        let starts = &mut self.starts;
        // Ops before this index are written one by one (a many-row insert found an id
        // stored or given twice among them).
        let mut single_until = 0;
        let mut i = 0;
        while let Some(op) = batch.get(i) {
            if i >= single_until {
                if let Some(run) = accept_run(&batch[i..]) {
                    if let Some(accepted) =
                        accept_rows(&mut hot, lazy, &run, &mut next, (now, clock))?
                    {
                        out.extend(accepted.into_iter().map(Outcome::Accepted));
                        i += ROWS;
                        continue;
                    }
                    single_until = i + ROWS;
                }
            }
            i += 1;
            out.push(match op {
                Op::Accept(a, encoded) => {
                    Outcome::Accepted(accept(&mut hot, lazy, a, encoded, &mut next, (now, clock))?)
                }
                Op::Update(u) => {
                    change(&mut hot, lazy, starts, u, now, clock)?;
                    Outcome::Done
                }
                Op::Updates(us) => {
                    for u in us {
                        change(&mut hot, lazy, starts, u, now, clock)?;
                    }
                    Outcome::Done
                }
                // These read or change rows by state: every delivery gets its row, and
                // the starts before them are written first, so they see what came before.
                Op::Requeue(r, _) => {
                    write_out_all(&mut hot, lazy)?;
                    write_starts(&mut hot, lazy, starts.all(), now)?;
                    Outcome::Requeued(requeue(&tx, r, now)?)
                }
                Op::Bury(instance, reason, _) => {
                    write_out_all(&mut hot, lazy)?;
                    write_starts(&mut hot, lazy, starts.all(), now)?;
                    Outcome::Buried(
                        tx.prepare_cached(
                            "UPDATE deliveries SET state = 'dead', parked = 0, reason = ?2,
                                 next_attempt_at = NULL, updated_at = ?3
                             WHERE instance = ?1 AND state IN ('pending', 'held')",
                        )?
                        .execute(params![&**instance, reason, now])? as u64,
                    )
                }
                Op::Waiting(..) => Outcome::Done,
                // Answered once what came before is committed, every delivery with its
                // row: reads come after one (see `SqliteStore::settled`).
                Op::Flush(_) => {
                    write_out_all(&mut hot, lazy)?;
                    write_starts(&mut hot, lazy, starts.all(), now)?;
                    Outcome::Done
                }
            });
        }
        write_starts(&mut hot, lazy, starts.due(clock), now)?;
        if self.ending {
            write_out_all(&mut hot, lazy)?;
        } else if let Some(before) = clock.checked_sub(self.lazy_for) {
            for first in lazy.due(before) {
                write_out(&mut hot, lazy, first)?;
            }
        }
        let from = lazy.first_event();
        if from != self.lazy_from {
            lazy::mark(&tx, from)?;
        }
        drop(hot);
        tx.commit()?;
        self.lazy_from = from;
        self.checkpoints.committed();
        self.next = next;
        Ok(out)
    }

    /// Up to `w.limit` of an instance's pending or held deliveries after `w.after`, in
    /// order: those with rows, as the reader would read them, and those without, from
    /// their events. On the writer, after a commit: it alone knows which have no rows, and
    /// writing them out for the memory window's refills would write most of the rows it
    /// spares.
    fn waiting(&self, w: &Waiting) -> rusqlite::Result<Vec<Unfinished>> {
        let mut rows = super::read::waiting_rows(&self.conn, &w.instance, w.after, w.limit)?;
        let mut event = self.conn.prepare_cached(&format!(
            "SELECT {} FROM events e WHERE e.seq = ?1",
            super::read::EVENT_COLUMNS
        ))?;
        let mut found = 0;
        'events: for (first, waiting) in self.lazy.from(w.after + 1) {
            let mut read: Option<Arc<crate::event::Event>> = None;
            for (i, instance) in waiting.unwritten() {
                let seq = first + i as Seq;
                if seq <= w.after || **instance != *w.instance {
                    continue;
                }
                let ev = match &read {
                    Some(ev) => Arc::clone(ev),
                    None => {
                        let ev =
                            Arc::new(event.query_row([waiting.event], |r| {
                                super::read::event_from_row(r, 0)
                            })?);
                        read = Some(Arc::clone(&ev));
                        ev
                    }
                };
                rows.push(Unfinished {
                    seq,
                    instance: w.instance.clone(),
                    state: crate::store::State::Pending,
                    attempts: 0,
                    created_at: waiting.created_at,
                    event: ev,
                    parked: None,
                    digest: None,
                });
                found += 1;
                if found >= w.limit {
                    break 'events;
                }
            }
        }
        rows.sort_unstable_by_key(|r| r.seq);
        rows.truncate(w.limit);
        Ok(rows)
    }

    /// Drop finished deliveries (and then events with none left) past the retention.
    /// The numbers handed out so far are kept too: with every row pruned, the next start
    /// would otherwise number from 1 again, and a receiver that remembers delivery ids
    /// (the generic webhook's `webhook-id`) would drop new deliveries as repeats.
    fn prune(&mut self) {
        let cutoff = now_ms() - self.retention_ms;
        // An event whose deliveries have no rows yet has nothing to show it is in use.
        let lazy = self.lazy.first_event().unwrap_or(Seq::MAX);
        let Seqs { event, delivery } = self.next;
        let r = self.conn.execute_batch(&format!(
            "BEGIN;
             INSERT OR REPLACE INTO meta(key, value)
                 VALUES ('next_event', '{event}'), ('next_delivery', '{delivery}');
             DELETE FROM attempts WHERE delivery_seq IN
                 (SELECT seq FROM deliveries WHERE state = 'delivered' AND updated_at < {cutoff});
             DELETE FROM deliveries WHERE state = 'delivered' AND updated_at < {cutoff};
             DELETE FROM events WHERE accepted_at < {cutoff} AND seq < {lazy}
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.seq >= events.first_delivery
                                 AND d.seq < events.first_delivery + events.deliveries);
             COMMIT;"
        ));
        if let Err(e) = r {
            let _ = self.conn.execute_batch("ROLLBACK");
            tracing::warn!(target: "store", error = %e, "pruning old deliveries failed; trying again later");
        }
        self.checkpoints.committed();
    }
}

/// Apply `u`, holding a start back (see [`starts`]): an attempt's end makes its start
/// moot, and any other change of that delivery, or of an instance's deliveries, writes
/// the starts it must come after.
fn change(
    hot: &mut Hot,
    lazy: &mut Lazy,
    starts: &mut Starts,
    u: &Update,
    now: i64,
    clock: Instant,
) -> rusqlite::Result<()> {
    match u {
        Update::Started { seq } => {
            starts.defer(*seq, clock);
            return Ok(());
        }
        Update::Attempted { seq, .. } => {
            starts.cancel(*seq);
        }
        Update::NotStarted { seq, .. }
        | Update::Dead { seq, .. }
        | Update::HoldOne { seq, .. }
        | Update::Park { seq, .. }
        | Update::Unpark { seq, .. }
        | Update::DeliveredVia { seq, .. } => {
            if starts.cancel(*seq) {
                write_starts(hot, lazy, vec![*seq], now)?;
            }
        }
        Update::Digested { seqs, .. } => {
            let held: Vec<Seq> = seqs.iter().copied().filter(|s| starts.cancel(*s)).collect();
            write_starts(hot, lazy, held, now)?;
        }
        Update::Hold { .. } | Update::Release { .. } => write_starts(hot, lazy, starts.all(), now)?,
    }
    update(hot, lazy, u, now)
}

fn write_starts(hot: &mut Hot, lazy: &mut Lazy, seqs: Vec<Seq>, now: i64) -> rusqlite::Result<()> {
    for seq in seqs {
        update(hot, lazy, &Update::Started { seq }, now)?;
    }
    Ok(())
}

/// The next [`ROWS`] ops, when all are accepts (checked before anything is gathered:
/// most positions in a batch of state changes are not the start of such a run).
fn accept_run(ops: &[Op]) -> Option<Vec<(&Accept, &Encoded)>> {
    let ops = ops.get(..ROWS)?;
    if !ops.iter().all(|op| matches!(op, Op::Accept(..))) {
        return None;
    }
    ops.iter()
        .map(|op| match op {
            Op::Accept(a, encoded) => Some((a, encoded)),
            _ => None,
        })
        .collect()
}

impl Op {
    /// Whether someone waits for this op's commit.
    fn awaited(&self) -> bool {
        !matches!(self, Op::Update(_) | Op::Updates(_))
    }
}

/// `first` and what follows it into one batch: everything already queued, and while the
/// batch holds only state changes, what arrives within `linger` of the first wait. Also
/// whether the channel is still open. Runs on the writer's thread (it parks that thread).
fn gather(first: Op, rx: &Receiver<Op>, linger: Duration) -> (Vec<Op>, bool) {
    let mut awaited = first.awaited();
    let mut batch = vec![first];
    let mut deadline = None;
    while batch.len() < MAX_BATCH {
        let op = match rx.try_recv() {
            Ok(op) => op,
            Err(TryRecvError::Disconnected) => return (batch, false),
            Err(TryRecvError::Empty) if awaited => break,
            Err(TryRecvError::Empty) => {
                let until = *deadline.get_or_insert_with(|| Instant::now() + linger);
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                // Parked, not waiting on the channel: only an op someone waits for, or the
                // queue closing, ends the linger early (see [`Queue`]). A wake for anything
                // else just looks at the channel again.
                std::thread::park_timeout(left);
                continue;
            }
        };
        awaited |= op.awaited();
        batch.push(op);
    }
    (batch, true)
}

enum Outcome {
    Accepted(Accepted),
    Requeued(Vec<Unfinished>),
    Buried(u64),
    Done,
}

#[cfg(test)]
mod tests;
