//! The rows each op writes: an accepted event and its deliveries, a state change, a
//! requeue. One transaction of the writer's runs these for a whole batch.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rusqlite::{params, CachedStatement, OptionalExtension, Transaction};

use super::lazy::Lazy;
use super::Encoded;
use crate::store::sqlite::read::{
    event_from_row, select_unfinished, unfinished_from_row, EVENT_COLUMNS,
};
use crate::store::{Accept, Accepted, Requeue, Seq, State, Unfinished, Update};

/// The statements nearly every batch runs once per delivery, prepared once per batch:
/// taking them from the statement cache costs a hash of their text and a re-insert each
/// time, per row.
pub(super) struct Hot<'c> {
    tx: &'c Transaction<'c>,
    insert_event: Option<CachedStatement<'c>>,
    insert_delivery: Option<CachedStatement<'c>>,
    insert_events: Option<CachedStatement<'c>>,
    started: Option<CachedStatement<'c>>,
    delivered: Option<CachedStatement<'c>>,
    delivered_row: Option<CachedStatement<'c>>,
}

impl<'c> Hot<'c> {
    pub fn new(tx: &'c Transaction<'c>) -> Self {
        Hot {
            tx,
            insert_event: None,
            insert_delivery: None,
            insert_events: None,
            started: None,
            delivered: None,
            delivered_row: None,
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

/// The next sequence numbers to hand out: events', deliveries'.
#[derive(Clone, Copy, Debug)]
pub(in crate::store::sqlite) struct Seqs {
    pub event: Seq,
    pub delivery: Seq,
}

/// Accepts written by one INSERT of this many rows. A statement of one row pays SQLite's
/// per-statement work (the machine's start and halt, its cursors opened, positioned and
/// closed, a reset) for every row: callgrind of bench (4)'s writer counted 21.7k
/// instructions per accepted event for its two inserts (the event's, its delivery's),
/// and a replay of the same inserts 22% fewer with 16 rows per statement.
pub(super) const ROWS: usize = 16;

const EVENT_COLUMNS_IN: &str = "INSERT INTO events(seq, id, name, timestamp, data, accepted_at, first_delivery, deliveries, instances)";

/// One accept: the event's row, which names its instances; its deliveries get rows of
/// their own later (see [`super::lazy`]).
pub(super) fn accept(
    hot: &mut Hot,
    lazy: &mut Lazy,
    a: &Accept,
    encoded: &Encoded,
    seqs: &mut Seqs,
    (now, clock): (i64, Instant),
) -> rusqlite::Result<Accepted> {
    let tx = hot.tx;
    let ev = &a.event;
    let inserted = stmt(tx, &mut hot.insert_event, event_sql())?.execute(params![
        seqs.event,
        ev.id,
        ev.name.as_str(),
        encoded.timestamp,
        encoded.data,
        now,
        seqs.delivery,
        a.instances.len() as i64,
        encoded.instances
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
    let first = seqs.delivery;
    lazy.add(first, seqs.event, &a.instances, now, clock);
    seqs.event += 1;
    seqs.delivery += a.instances.len() as Seq;
    Ok(Accepted {
        first,
        duplicate: None,
    })
}

/// A pending row for delivery `seq`, created at `at`.
fn insert_delivery(
    hot: &mut Hot,
    seq: Seq,
    event_seq: Seq,
    instance: &str,
    at: i64,
) -> rusqlite::Result<()> {
    stmt(
        hot.tx,
        &mut hot.insert_delivery,
        "INSERT INTO deliveries(seq, event_seq, instance, state, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
    )?
    .execute(params![seq, event_seq, instance, at])?;
    Ok(())
}

/// Write the pending rows of the event whose deliveries start at `first`.
pub(super) fn write_out(hot: &mut Hot, lazy: &mut Lazy, first: Seq) -> rusqlite::Result<()> {
    let Some(w) = lazy.take(first) else {
        return Ok(());
    };
    for (i, instance) in w.unwritten() {
        insert_delivery(hot, first + i as Seq, w.event, instance, w.created_at)?;
    }
    Ok(())
}

/// Write every pending row not written yet.
pub(super) fn write_out_all(hot: &mut Hot, lazy: &mut Lazy) -> rusqlite::Result<()> {
    for first in lazy.all() {
        write_out(hot, lazy, first)?;
    }
    Ok(())
}

/// `ROWS` accepts in one statement. `None`, with nothing written, when one of them has an
/// id already stored or given twice among them: those take [`accept`], one by one, which
/// tells which.
pub(super) fn accept_rows(
    hot: &mut Hot,
    lazy: &mut Lazy,
    run: &[(&Accept, &Encoded)],
    seqs: &mut Seqs,
    (now, clock): (i64, Instant),
) -> rusqlite::Result<Option<Vec<Accepted>>> {
    debug_assert_eq!(run.len(), ROWS);
    let tx = hot.tx;
    let insert = stmt(tx, &mut hot.insert_events, events_sql())?;
    insert.raw_bind_parameter(1, now)?;
    let mut first = seqs.delivery;
    for (r, (a, encoded)) in run.iter().enumerate() {
        let at = 2 + 8 * r;
        let ev = &a.event;
        insert.raw_bind_parameter(at, seqs.event + r as Seq)?;
        insert.raw_bind_parameter(at + 1, &ev.id)?;
        insert.raw_bind_parameter(at + 2, ev.name.as_str())?;
        insert.raw_bind_parameter(at + 3, &encoded.timestamp)?;
        insert.raw_bind_parameter(at + 4, &encoded.data)?;
        insert.raw_bind_parameter(at + 5, first)?;
        insert.raw_bind_parameter(at + 6, a.instances.len() as i64)?;
        insert.raw_bind_parameter(at + 7, &encoded.instances)?;
        first += a.instances.len() as Seq;
    }
    match insert.raw_execute() {
        Ok(_) => {}
        // The statement's rows are undone (SQLite's default ABORT), the transaction kept.
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    }
    let mut accepted = Vec::with_capacity(ROWS);
    for (r, (a, _)) in run.iter().enumerate() {
        accepted.push(Accepted {
            first: seqs.delivery,
            duplicate: None,
        });
        lazy.add(
            seqs.delivery,
            seqs.event + r as Seq,
            &a.instances,
            now,
            clock,
        );
        seqs.delivery += a.instances.len() as Seq;
    }
    seqs.event += ROWS as Seq;
    Ok(Some(accepted))
}

/// One event's insert, which leaves a stored id alone (the caller then reads it back).
fn event_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "{EVENT_COLUMNS_IN} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(id) DO NOTHING"
        )
    })
}

/// Events' many-row insert: row `r` binds ?(2 + 8r) on (seq, id, name, timestamp, data,
/// first_delivery, deliveries, instances); ?1 is the time the rows share.
fn events_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let row = |p: usize| {
            let [id, name, time, data, first, n, to] = [1, 2, 3, 4, 5, 6, 7].map(|i| p + i);
            format!("(?{p}, ?{id}, ?{name}, ?{time}, ?{data}, ?1, ?{first}, ?{n}, ?{to})")
        };
        let rows: Vec<String> = (0..ROWS).map(|r| row(2 + 8 * r)).collect();
        format!("{EVENT_COLUMNS_IN} VALUES {}", rows.join(", "))
    })
}

pub(super) fn update(hot: &mut Hot, lazy: &mut Lazy, u: &Update, now: i64) -> rusqlite::Result<()> {
    // Delivered at the first try, without a row yet: the delivery's one row.
    if let Update::Attempted {
        seq,
        attempt,
        state: State::Delivered,
        ..
    } = u
    {
        if let Some((first, i)) = lazy.find(*seq) {
            let (w, instance) = lazy.instance(first, i).expect("found just above");
            stmt(
                hot.tx,
                &mut hot.delivered_row,
                "INSERT INTO deliveries(seq, event_seq, instance, state, attempts, last_status,
                     detail, duration_ms, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'delivered', 1, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                seq,
                w.event,
                &**instance,
                attempt.status,
                attempt.error,
                attempt.duration_ms as i64,
                w.created_at,
                attempt.at
            ])?;
            lazy.written(first, i);
            return Ok(());
        }
    }
    match u {
        // Changes by instance see every delivery.
        Update::Hold { .. } | Update::Release { .. } => write_out_all(hot, lazy)?,
        Update::Digested { seqs, .. } => {
            for seq in seqs {
                if let Some((first, _)) = lazy.find(*seq) {
                    write_out(hot, lazy, first)?;
                }
            }
        }
        Update::Started { seq }
        | Update::NotStarted { seq, .. }
        | Update::Attempted { seq, .. }
        | Update::Dead { seq, .. }
        | Update::HoldOne { seq, .. }
        | Update::Park { seq, .. }
        | Update::Unpark { seq, .. }
        | Update::DeliveredVia { seq, .. } => {
            if let Some((first, _)) = lazy.find(*seq) {
                write_out(hot, lazy, first)?;
            }
        }
    }
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

/// An instance's dead letters (?1) since ?2, in order. `<> 'delivered'` lets SQLite read
/// them from the partial index of open deliveries instead of scanning every row.
pub(in crate::store::sqlite) fn dead_sql() -> String {
    format!(
        "{} WHERE d.instance = ?1 AND d.state = 'dead' AND d.state <> 'delivered'
             AND d.created_at >= ?2 ORDER BY d.seq",
        select_unfinished()
    )
}

pub(super) fn requeue(
    tx: &Transaction,
    r: &Requeue,
    now: i64,
) -> rusqlite::Result<Vec<Unfinished>> {
    let select = select_unfinished();
    let rows = match r {
        Requeue::One(seq) => {
            let mut stmt = tx.prepare_cached(&format!(
                "{select} WHERE d.seq = ?1 AND d.state IN ('dead', 'held')"
            ))?;
            let rows = stmt.query_map([seq], unfinished_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        }
        Requeue::Dead { instance, since } => {
            let mut stmt = tx.prepare_cached(&dead_sql())?;
            let rows = stmt.query_map(
                params![instance, since.unwrap_or(i64::MIN)],
                unfinished_from_row,
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
