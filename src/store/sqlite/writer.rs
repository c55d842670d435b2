//! The one writer: owns the write connection and commits everything queued since its last
//! commit as one transaction (group commit), so the fsync that `synchronous=FULL` pays is
//! paid per batch, not per event. Accept callbacks run after the commit, in order.

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, CachedStatement, Connection, OptionalExtension, Transaction};

use super::super::{
    now_ms, Accept, Accepted, Requeue, Result, Seq, State, StoreError, Unfinished, Update,
};
use super::read::{event_from_row, EVENT_COLUMNS};
use crate::metrics::Timings;

/// Requeue replies run after the commit that made the rows pending.
pub(super) type RequeueReply = Box<dyn FnOnce(Result<Vec<Unfinished>>) + Send>;

/// Work for the writer.
pub(super) enum Op {
    Accept(Accept),
    Update(Update),
    /// Several, from one turn of the supervisor.
    Updates(Vec<Update>),
    Requeue(Requeue, RequeueReply),
    /// An instance's waiting deliveries made dead; answered with how many.
    Bury(Arc<str>, String, Box<dyn FnOnce(Result<u64>) + Send>),
    /// Answered once everything queued before it is committed.
    Flush(Sender<()>),
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
    pub conn: Connection,
    /// How long each batch's transaction took, commit (and its fsync) included.
    pub commits: Arc<Timings>,
    pub next_seq: Seq,
    pub retention_ms: i64,
}

impl Writer {
    /// Run until every sender is gone.
    pub fn run(mut self, rx: Receiver<Op>) {
        self.prune();
        let mut last_prune = Instant::now();
        loop {
            let first = match rx.recv_timeout(PRUNE_EVERY) {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => {
                    self.prune();
                    last_prune = Instant::now();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let (batch, open) = gather(first, &rx, LINGER);
            self.commit(batch);
            if !open {
                return;
            }
            if last_prune.elapsed() >= PRUNE_EVERY {
                self.prune();
                last_prune = Instant::now();
            }
        }
    }

    fn commit(&mut self, batch: Vec<Op>) {
        let first_seq = self.next_seq;
        let started = Instant::now();
        let applied = self.apply(&batch);
        self.commits.observe(started.elapsed());
        let (mut results, failure) = match applied {
            Ok(r) => (r.into_iter(), None),
            Err(e) => {
                self.next_seq = first_seq;
                let _ = self.conn.execute_batch("ROLLBACK");
                tracing::error!(target: "store", error = %e, ops = batch.len(), "delivery store write failed; its callers are refused");
                (Vec::new().into_iter(), Some(e.to_string()))
            }
        };
        let err = || StoreError::Write(failure.clone().unwrap_or_default());
        for op in batch {
            match (op, results.next()) {
                (Op::Accept(a), Some(Outcome::Accepted(r))) => (a.done)(Ok(r)),
                (Op::Accept(a), _) => (a.done)(Err(err())),
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
        // A delivery that started and ended within this batch needs only its end written.
        let ended: HashSet<Seq> = batch
            .iter()
            .flat_map(|op| match op {
                Op::Update(u) => std::slice::from_ref(u),
                Op::Updates(us) => us.as_slice(),
                _ => &[],
            })
            .filter_map(|u| match u {
                Update::Attempted { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let mut out = Vec::with_capacity(batch.len());
        let mut next = self.next_seq;
        let mut hot = Hot::new(&tx);
        for op in batch {
            out.push(match op {
                Op::Accept(a) => Outcome::Accepted(accept(&mut hot, a, &mut next, now)?),
                Op::Update(Update::Started { seq }) if ended.contains(seq) => Outcome::Done,
                Op::Update(u) => {
                    update(&mut hot, u, now)?;
                    Outcome::Done
                }
                Op::Updates(us) => {
                    for u in us {
                        if !matches!(u, Update::Started { seq } if ended.contains(seq)) {
                            update(&mut hot, u, now)?;
                        }
                    }
                    Outcome::Done
                }
                Op::Requeue(r, _) => Outcome::Requeued(requeue(&tx, r, now)?),
                Op::Bury(instance, reason, _) => Outcome::Buried(
                    tx.prepare_cached(
                        "UPDATE deliveries SET state = 'dead', parked = 0, reason = ?2,
                             next_attempt_at = NULL, updated_at = ?3
                         WHERE instance = ?1 AND state IN ('pending', 'held')",
                    )?
                    .execute(params![&**instance, reason, now])? as u64,
                ),
                Op::Flush(_) => Outcome::Done,
            });
        }
        drop(hot);
        tx.commit()?;
        self.next_seq = next;
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
    }
}

impl Op {
    /// Whether someone waits for this op's commit.
    fn awaited(&self) -> bool {
        !matches!(self, Op::Update(_) | Op::Updates(_))
    }
}

/// `first` and what follows it into one batch: everything already queued, and while the
/// batch holds only state changes, what arrives within `linger` of the first wait. Also
/// whether the channel is still open.
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
                match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(op) => op,
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return (batch, false),
                }
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

/// The statements nearly every batch runs once per delivery, prepared once per batch:
/// taking them from the statement cache costs a hash of their text and a re-insert each
/// time, per row.
struct Hot<'c> {
    tx: &'c Transaction<'c>,
    insert_event: Option<CachedStatement<'c>>,
    insert_delivery: Option<CachedStatement<'c>>,
    started: Option<CachedStatement<'c>>,
    delivered: Option<CachedStatement<'c>>,
}

impl<'c> Hot<'c> {
    fn new(tx: &'c Transaction<'c>) -> Self {
        Hot {
            tx,
            insert_event: None,
            insert_delivery: None,
            started: None,
            delivered: None,
        }
    }
}

/// `slot`'s statement, prepared on first use.
fn stmt<'s, 'c>(
    tx: &'c Transaction<'c>,
    slot: &'s mut Option<CachedStatement<'c>>,
    sql: &str,
) -> rusqlite::Result<&'s mut CachedStatement<'c>> {
    if slot.is_none() {
        *slot = Some(tx.prepare_cached(sql)?);
    }
    Ok(slot.as_mut().expect("prepared just above"))
}

fn accept(hot: &mut Hot, a: &Accept, next: &mut Seq, now: i64) -> rusqlite::Result<Accepted> {
    let tx = hot.tx;
    let ev = &a.event;
    let data = serde_json::to_string(&ev.data).unwrap_or_else(|_| "{}".into());
    let inserted = stmt(
        tx,
        &mut hot.insert_event,
        "INSERT INTO events(id, name, timestamp, data, accepted_at, first_delivery, deliveries)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO NOTHING",
    )?
    .execute(params![
        ev.id,
        ev.name.as_str(),
        ev.timestamp.to_rfc3339(),
        data,
        now,
        *next,
        a.instances.len() as i64
    ])?;
    if inserted == 0 {
        let stored = tx
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events e WHERE e.id = ?1"
            ))?
            .query_row([&ev.id], |r| event_from_row(r, 0))
            .optional()?;
        return Ok(Accepted {
            first: 0,
            duplicate: Some(stored.map(Arc::new).unwrap_or_else(|| Arc::clone(ev))),
        });
    }
    let event_seq = tx.last_insert_rowid();
    let first = *next;
    let insert = stmt(
        tx,
        &mut hot.insert_delivery,
        "INSERT INTO deliveries(seq, event_seq, instance, state, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
    )?;
    for instance in a.instances.iter() {
        insert.execute(params![*next, event_seq, &**instance, now])?;
        *next += 1;
    }
    Ok(Accepted {
        first,
        duplicate: None,
    })
}

fn update(hot: &mut Hot, u: &Update, now: i64) -> rusqlite::Result<()> {
    let tx = hot.tx;
    match u {
        Update::Started { seq } => {
            stmt(
                tx,
                &mut hot.started,
                "UPDATE deliveries SET state = 'in_flight', parked = 0, updated_at = ?2
                 WHERE seq = ?1 AND state IN ('pending', 'held')",
            )?
            .execute(params![seq, now])?;
        }
        Update::NotStarted { seq, held } => {
            let state = if held.is_some() { "held" } else { "pending" };
            tx.prepare_cached(
                "UPDATE deliveries SET state = ?2, reason = ?3, updated_at = ?4
                 WHERE seq = ?1 AND state = 'in_flight'",
            )?
            .execute(params![seq, state, held, now])?;
        }
        Update::Attempted {
            seq,
            attempt,
            state: State::Delivered,
            ..
        } => {
            // Most deliveries succeed at once: the success lives in the row itself, which
            // saves an insert (and its index) per delivery.
            stmt(
                tx,
                &mut hot.delivered,
                "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, parked = 0,
                     last_status = ?2, last_error = NULL, reason = NULL, next_attempt_at = NULL,
                     detail = ?3, duration_ms = ?4, updated_at = ?5
                 WHERE seq = ?1",
            )?
            .execute(params![
                seq,
                attempt.status,
                attempt.error,
                attempt.duration_ms as i64,
                attempt.at
            ])?;
        }
        Update::Attempted {
            seq,
            attempt,
            state,
            reason,
            next_attempt_at,
        } => {
            tx.prepare_cached(
                "INSERT INTO attempts(delivery_seq, at, outcome, status, error, duration_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                seq,
                attempt.at,
                attempt.outcome,
                attempt.status,
                attempt.error,
                attempt.duration_ms as i64
            ])?;
            let last_error = attempt.error.as_deref();
            tx.prepare_cached(
                "UPDATE deliveries SET state = ?2, attempts = attempts + 1, parked = 0, last_status = ?3,
                     last_error = ?4, reason = ?5, next_attempt_at = ?6, updated_at = ?7
                 WHERE seq = ?1",
            )?
            .execute(params![
                seq,
                state.as_str(),
                attempt.status,
                last_error,
                reason,
                next_attempt_at,
                now
            ])?;
        }
        Update::Dead { seq, reason } => {
            tx.prepare_cached(
                "UPDATE deliveries SET state = 'dead', reason = ?2, next_attempt_at = NULL,
                     updated_at = ?3 WHERE seq = ?1",
            )?
            .execute(params![seq, reason, now])?;
        }
        Update::Hold {
            instance,
            reason,
            until,
        } => {
            tx.prepare_cached(
                "UPDATE deliveries SET state = 'held', reason = ?2, next_attempt_at = ?3,
                     updated_at = ?4
                 WHERE instance = ?1 AND state IN ('pending', 'held') AND parked = 0",
            )?
            .execute(params![&**instance, reason, until, now])?;
        }
        Update::HoldOne { seq, reason } => {
            tx.prepare_cached(
                "UPDATE deliveries SET state = 'held', reason = ?2, updated_at = ?3
                 WHERE seq = ?1 AND state = 'pending'",
            )?
            .execute(params![seq, reason, now])?;
        }
        Update::Release { instance } => {
            tx.prepare_cached(
                "UPDATE deliveries SET state = 'pending', reason = NULL, next_attempt_at = NULL,
                     updated_at = ?2 WHERE instance = ?1 AND state = 'held' AND parked = 0",
            )?
            .execute(params![&**instance, now])?;
        }
        Update::Park { seq, why, reason } => {
            tx.prepare_cached(
                "UPDATE deliveries SET state = 'held', parked = ?2, reason = ?3, updated_at = ?4
                 WHERE seq = ?1 AND state IN ('pending', 'held', 'in_flight')",
            )?
            .execute(params![seq, why.code(), reason, now])?;
        }
        Update::Unpark { seq, held } => {
            let state = if held.is_some() { "held" } else { "pending" };
            tx.prepare_cached(
                "UPDATE deliveries SET state = ?2, parked = 0, reason = ?3, digest_id = NULL,
                     updated_at = ?4 WHERE seq = ?1 AND state IN ('pending', 'held', 'in_flight')",
            )?
            .execute(params![seq, state, held, now])?;
        }
        Update::Digested {
            seqs,
            digest,
            why,
            reason,
        } => {
            let mut stmt = tx.prepare_cached(
                "UPDATE deliveries SET state = 'held', parked = ?2, digest_id = ?3, reason = ?4,
                     updated_at = ?5 WHERE seq = ?1 AND state IN ('pending', 'held', 'in_flight')",
            )?;
            for seq in seqs {
                stmt.execute(params![seq, why.code(), digest, reason, now])?;
            }
        }
        Update::DeliveredVia { seq, digest } => {
            tx.prepare_cached(
                "UPDATE deliveries SET state = 'delivered', parked = 0, digest_id = ?2,
                     reason = NULL, next_attempt_at = NULL, updated_at = ?3
                 WHERE seq = ?1 AND state <> 'delivered'",
            )?
            .execute(params![seq, digest, now])?;
        }
    }
    Ok(())
}

fn requeue(tx: &Transaction, r: &Requeue, now: i64) -> rusqlite::Result<Vec<Unfinished>> {
    let select = format!(
        "SELECT d.seq, d.instance, d.state, d.attempts, d.created_at, d.parked, d.digest_id,
                {EVENT_COLUMNS}
         FROM deliveries d JOIN events e ON e.seq = d.event_seq"
    );
    let rows = match r {
        Requeue::One(seq) => {
            let mut stmt = tx.prepare_cached(&format!(
                "{select} WHERE d.seq = ?1 AND d.state IN ('dead', 'held')"
            ))?;
            let rows = stmt.query_map([seq], super::read::unfinished_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        }
        Requeue::Dead { instance, since } => {
            let mut stmt = tx.prepare_cached(&format!(
                "{select} WHERE d.instance = ?1 AND d.state = 'dead' AND d.created_at >= ?2
                 ORDER BY d.seq"
            ))?;
            let rows = stmt.query_map(
                params![instance, since.unwrap_or(i64::MIN)],
                super::read::unfinished_from_row,
            )?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        }
    };
    let mut revive = tx.prepare_cached(
        "UPDATE deliveries SET state = 'pending', reason = NULL, next_attempt_at = NULL,
             parked = 0, digest_id = NULL, updated_at = ?2 WHERE seq = ?1",
    )?;
    for row in &rows {
        revive.execute(params![row.seq, now])?;
    }
    Ok(rows)
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
        let gathering = std::thread::spawn(move || gather(started(1), &rx, LONG));
        // Give the batch time to be cut, were it cut at once (it passes either way when
        // right: the wait ends on the flush, not on a clock).
        std::thread::sleep(Duration::from_millis(100));
        tx.send(started(2)).unwrap();
        let (flushed, _flushed_rx) = mpsc::channel();
        tx.send(Op::Flush(flushed)).unwrap();
        // Queued after the flush: the next batch's.
        tx.send(started(3)).unwrap();
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
        assert_eq!(kinds[..3], ["started 1", "started 2", "flush"]);
        // The one after the flush may have been queued before the batch was cut.
        assert!(kinds.len() <= 4, "{kinds:?}");
        drop(tx);
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

        // Shutting down: what lingers is handed back for its commit, and the writer ends.
        let gathering = std::thread::spawn(move || gather(started(2), &rx, LONG));
        std::thread::sleep(Duration::from_millis(100));
        tx.send(started(3)).unwrap();
        drop(tx);
        let (batch, open) = gathering.join().unwrap();
        assert_eq!((batch.len(), open), (2, false));
    }
}
