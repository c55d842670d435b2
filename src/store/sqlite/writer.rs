//! The one writer: owns the write connection and commits everything queued since its last
//! commit as one transaction (group commit), so the fsync that `synchronous=FULL` pays is
//! paid per batch, not per event. Accept callbacks run after the commit, in order.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

pub(super) mod rows;
mod starts;

use rusqlite::{params, Connection};

use super::super::{
    now_ms, Accept, Accepted, Requeue, Result, Seq, StoreError, Unfinished, Update,
};
use super::checkpoint::Checkpointer;
use crate::metrics::Timings;
pub(super) use rows::Seqs;
use rows::{accept, accept_rows, requeue, update, Hot, ROWS};
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
}

/// The writer's queue, as its callers hold it. An op someone waits for also wakes the
/// writer when it lingers over a batch of state changes; state changes alone do not (the
/// supervisor sends one per mailbox turn, and each wake cost a context switch: bench (3)'s
/// durable side made 44k of them in a run, 30k without these wakes).
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

/// An accepted event's columns that take work to write (its data as JSON, its time as
/// RFC 3339), made on the caller's thread: the writer is the store's one bottleneck.
pub(super) struct Encoded {
    pub data: String,
    pub timestamp: String,
}

impl Encoded {
    pub fn new(accept: &Accept) -> Self {
        let ev = &accept.event;
        Encoded {
            data: serde_json::to_string(&ev.data).unwrap_or_else(|_| "{}".into()),
            timestamp: ev.timestamp.to_rfc3339(),
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
                Err(RecvTimeoutError::Disconnected) => return,
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
                (Op::Update(_) | Op::Updates(_), _) => {}
            }
        }
    }

    /// Apply every op in one transaction; one outcome per op, in order.
    fn apply(&mut self, batch: &[Op]) -> rusqlite::Result<Vec<Outcome>> {
        let now = now_ms();
        let clock = Instant::now();
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
                    if let Some(accepted) = accept_rows(&mut hot, &run, &mut next, now)? {
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
                    Outcome::Accepted(accept(&mut hot, a, encoded, &mut next, now)?)
                }
                Op::Update(u) => {
                    change(&mut hot, starts, u, now, clock)?;
                    Outcome::Done
                }
                Op::Updates(us) => {
                    for u in us {
                        change(&mut hot, starts, u, now, clock)?;
                    }
                    Outcome::Done
                }
                // These read or change rows by state: the starts before them are written
                // first, so they see what came before them.
                Op::Requeue(r, _) => {
                    write_starts(&mut hot, starts.all(), now)?;
                    Outcome::Requeued(requeue(&tx, r, now)?)
                }
                Op::Bury(instance, reason, _) => {
                    write_starts(&mut hot, starts.all(), now)?;
                    Outcome::Buried(
                        tx.prepare_cached(
                            "UPDATE deliveries SET state = 'dead', parked = 0, reason = ?2,
                                 next_attempt_at = NULL, updated_at = ?3
                             WHERE instance = ?1 AND state IN ('pending', 'held')",
                        )?
                        .execute(params![&**instance, reason, now])? as u64,
                    )
                }
                Op::Flush(_) => {
                    write_starts(&mut hot, starts.all(), now)?;
                    Outcome::Done
                }
            });
        }
        write_starts(&mut hot, starts.due(clock), now)?;
        drop(hot);
        tx.commit()?;
        self.checkpoints.committed();
        self.next = next;
        Ok(out)
    }

    /// Drop finished deliveries (and then events with none left) past the retention.
    fn prune(&mut self) {
        let cutoff = now_ms() - self.retention_ms;
        let r = self.conn.execute_batch(&format!(
            "BEGIN;
             DELETE FROM attempts WHERE delivery_seq IN
                 (SELECT seq FROM deliveries WHERE state = 'delivered' AND updated_at < {cutoff});
             DELETE FROM deliveries WHERE state = 'delivered' AND updated_at < {cutoff};
             DELETE FROM events WHERE accepted_at < {cutoff}
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
                write_starts(hot, vec![*seq], now)?;
            }
        }
        Update::Digested { seqs, .. } => {
            let held: Vec<Seq> = seqs.iter().copied().filter(|s| starts.cancel(*s)).collect();
            write_starts(hot, held, now)?;
        }
        Update::Hold { .. } | Update::Release { .. } => write_starts(hot, starts.all(), now)?,
    }
    update(hot, u, now)
}

fn write_starts(hot: &mut Hot, seqs: Vec<Seq>, now: i64) -> rusqlite::Result<()> {
    for seq in seqs {
        update(hot, &Update::Started { seq }, now)?;
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
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn started(seq: Seq) -> Op {
        Op::Update(Update::Started { seq })
    }

    /// A linger no test run reaches: a batch that ends early ended for its reason.
    const LONG: Duration = Duration::from_secs(120);

    #[test]
    fn state_changes_wait_for_more_until_someone_waits_for_the_commit() {
        let (tx, rx) = mpsc::channel();
        let t = Instant::now();
        let gathering = std::thread::spawn(move || gather(started(1), &rx, LONG));
        let queue = Queue::new(tx, gathering.thread().clone());
        // Give the batch time to be cut, were it cut at once (it passes either way when
        // right: the wait ends on the flush, not on a clock).
        std::thread::sleep(Duration::from_millis(100));
        queue.send(started(2)).map_err(|_| "sent").unwrap();
        let (flushed, _flushed_rx) = mpsc::channel();
        queue.send(Op::Flush(flushed)).map_err(|_| "sent").unwrap();
        // Queued after the flush: the next batch's.
        queue.send(started(3)).map_err(|_| "sent").unwrap();
        let (batch, open) = gathering.join().unwrap();
        let kinds: Vec<_> = batch
            .iter()
            .map(|op| match op {
                Op::Update(Update::Started { seq }) => format!("started {seq}"),
                Op::Flush(_) => "flush".to_owned(),
                _ => "other".to_owned(),
            })
            .collect();
        assert!(open);
        // The flush woke the parked writer: the batch did not wait for its linger.
        assert!(t.elapsed() < LONG / 2, "the flush did not end the linger");
        assert_eq!(kinds[..3], ["started 1", "started 2", "flush"]);
        // The one after the flush may have been queued before the batch was cut.
        assert!(kinds.len() <= 4, "{kinds:?}");
        drop(queue);
    }

    #[test]
    fn a_batch_waited_for_is_cut_at_once_and_a_closed_channel_ends_the_wait() {
        let (tx, rx) = mpsc::channel();
        let (flushed, _flushed_rx) = mpsc::channel();
        tx.send(started(1)).unwrap();
        let t = Instant::now();
        let (batch, open) = gather(Op::Flush(flushed), &rx, LONG);
        assert_eq!((batch.len(), open), (2, true));
        assert!(
            t.elapsed() < LONG / 2,
            "a batch someone waits for did not linger"
        );

        // Shutting down: what lingers is handed back for its commit, and the writer ends
        // (closing the queue wakes it).
        let t = Instant::now();
        let gathering = std::thread::spawn(move || gather(started(2), &rx, LONG));
        let queue = Queue::new(tx, gathering.thread().clone());
        std::thread::sleep(Duration::from_millis(100));
        queue.send(started(3)).map_err(|_| "sent").unwrap();
        drop(queue);
        let (batch, open) = gathering.join().unwrap();
        assert_eq!((batch.len(), open), (2, false));
        assert!(
            t.elapsed() < LONG / 2,
            "closing the queue did not end the linger"
        );
    }
}

#[cfg(test)]
mod many_rows {
    use std::sync::Mutex;

    use super::*;
    use crate::config::Synchronous;
    use crate::event::{Event, EventName};
    use crate::store::sqlite::schema;

    type Results = Arc<Mutex<Vec<(usize, Result<Accepted>)>>>;

    fn accept(k: usize, id: &str, instances: &[&str], results: &Results) -> Op {
        let event = Event::new(EventName::AfterMediaAdded, Default::default()).with_id(id);
        let results = Arc::clone(results);
        let a = Accept {
            event: Arc::new(event),
            instances: instances.iter().map(|&i| Arc::from(i)).collect(),
            done: Box::new(move |r| results.lock().unwrap().push((k, r))),
        };
        let encoded = Encoded::new(&a);
        Op::Accept(a, encoded)
    }

    /// Instances of the `k`th accept: none, one or two, in turn.
    fn instances(k: usize) -> &'static [&'static str] {
        [&[][..], &["a"][..], &["a", "b"][..]][k % 3]
    }

    #[test]
    fn accepts_written_many_rows_at_a_time_keep_their_order_and_duplicates_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let conn = schema::open(&path, Synchronous::Full).unwrap();
        let checkpoints =
            Checkpointer::start(&conn, schema::open(&path, Synchronous::Full).unwrap()).unwrap();
        let start = Seqs {
            event: 1,
            delivery: 1,
        };
        let mut writer = Writer::new(conn, checkpoints, Arc::default(), start, i64::MAX);
        let results: Results = Arc::default();
        writer.commit(vec![accept(1000, "old", &["a"], &results)]);
        // 16 new ones (one statement), 16 with a stored id and a repeat among them (one
        // by one), 16 new ones again, and 5 (fewer than a statement takes).
        let ids: Vec<String> = (0..53)
            .map(|k| match k {
                20 => "old".to_owned(),
                25 => "e17".to_owned(),
                k => format!("e{k}"),
            })
            .collect();
        let batch = (0..53)
            .map(|k| accept(k, &ids[k], instances(k), &results))
            .collect();
        writer.commit(batch);

        let results = std::mem::take(&mut *results.lock().unwrap());
        assert_eq!(results.len(), 54);
        let mut first = 2;
        for (k, r) in results.into_iter().skip(1) {
            let r = r.unwrap();
            if k == 20 || k == 25 {
                assert_eq!(
                    r.duplicate.as_ref().map(|e| e.id.as_str()),
                    Some(ids[k].as_str()),
                    "accept {k}"
                );
                continue;
            }
            assert!(r.duplicate.is_none(), "accept {k}");
            assert_eq!(r.first, first, "accept {k}");
            first += instances(k).len() as Seq;
        }
        // Read back: events in order, each with its deliveries' range, and those rows
        // point at it, in order of its instances.
        let read = schema::open(&path, Synchronous::Full).unwrap();
        let mut events = read
            .prepare("SELECT seq, id, first_delivery, deliveries FROM events ORDER BY seq")
            .unwrap();
        let events: Vec<(Seq, String, Seq, i64)> = events
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let expected: Vec<&str> = std::iter::once("old")
            .chain(
                (0..53)
                    .filter(|k| *k != 20 && *k != 25)
                    .map(|k| ids[k].as_str()),
            )
            .collect();
        let stored: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(stored, expected);
        for (seq, id, first, n) in &events {
            let rows: Vec<(Seq, Seq, String)> = read
                .prepare(
                    "SELECT seq, event_seq, instance FROM deliveries
                     WHERE seq >= ?1 AND seq < ?1 + ?2 ORDER BY seq",
                )
                .unwrap()
                .query_map(params![first, n], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(rows.len() as i64, *n, "event {id}");
            for (i, (d, e, instance)) in rows.iter().enumerate() {
                assert_eq!((*d, *e), (first + i as Seq, *seq), "event {id}");
                assert_eq!(instance, ["a", "b"][i], "event {id}");
            }
        }
        let total: i64 = read
            .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(total, events.iter().map(|e| e.3).sum::<i64>());
    }
}
