//! Reads, on a connection of their own (WAL lets them run beside the writer): the list,
//! one delivery, counts, and the unfinished deliveries to resume.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::types::Value as Sql;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::super::{
    Attempt, Detail, Page, Parked, Query, Result, Seq, State, StoreError, Summary, Unfinished,
};
use crate::event::Event;

/// The event's columns, read by [`event_from_row`].
pub(super) const EVENT_COLUMNS: &str = "e.id, e.name, e.timestamp, e.data";

const SUMMARY_COLUMNS: &str = "d.seq, e.id, e.name, d.instance, d.state, d.reason, d.attempts,
    d.last_status, d.last_error, d.created_at, d.updated_at, d.next_attempt_at, d.digest_id";

fn read_err(e: rusqlite::Error) -> StoreError {
    StoreError::Read(e.to_string())
}

fn bad(col: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, what.into())
}

/// The event whose [`EVENT_COLUMNS`] start at column `at`.
pub(super) fn event_from_row(r: &Row, at: usize) -> rusqlite::Result<Event> {
    let name: String = r.get(at + 1)?;
    let timestamp: String = r.get(at + 2)?;
    let data: String = r.get(at + 3)?;
    Ok(Event {
        id: r.get(at)?,
        name: name
            .parse()
            .map_err(|e: crate::event::UnknownEvent| bad(at + 1, e.to_string()))?,
        timestamp: chrono::DateTime::parse_from_rfc3339(&timestamp)
            .map_err(|e| bad(at + 2, e.to_string()))?
            .to_utc(),
        data: serde_json::from_str(&data).map_err(|e| bad(at + 3, e.to_string()))?,
        digest: None,
    })
}

fn state_at(r: &Row, at: usize) -> rusqlite::Result<State> {
    let s: String = r.get(at)?;
    s.parse().map_err(|e| bad(at, e))
}

/// `d.seq, d.instance, d.state, d.attempts, d.created_at, d.parked, d.digest_id` and then
/// the event.
pub(super) fn unfinished_from_row(r: &Row) -> rusqlite::Result<Unfinished> {
    Ok(Unfinished {
        seq: r.get(0)?,
        instance: r.get(1)?,
        state: state_at(r, 2)?,
        attempts: r.get(3)?,
        created_at: r.get(4)?,
        parked: Parked::from_code(r.get(5)?),
        digest: r.get(6)?,
        event: Arc::new(event_from_row(r, 7)?),
    })
}

fn summary_from_row(r: &Row) -> rusqlite::Result<Summary> {
    Ok(Summary {
        seq: r.get(0)?,
        event_id: r.get(1)?,
        event: r.get(2)?,
        plugin: r.get(3)?,
        state: state_at(r, 4)?,
        reason: r.get(5)?,
        attempts: r.get(6)?,
        last_status: r.get(7)?,
        last_error: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        next_attempt_at: r.get(11)?,
        digest: r.get(12)?,
    })
}

/// Every delivery not delivered or dead, oldest first; deliveries of one event share it.
pub(super) fn unfinished(conn: &Connection) -> Result<Vec<Unfinished>> {
    // `state <> 'delivered'` as written lets SQLite use the partial index.
    let mut stmt = conn
        .prepare(
            "SELECT d.seq, d.instance, d.state, d.attempts, d.created_at, d.event_seq,
                    e.id, e.name, e.timestamp, e.data, d.parked, d.digest_id
             FROM deliveries d JOIN events e ON e.seq = d.event_seq
             WHERE d.state <> 'delivered' AND d.state <> 'dead' ORDER BY d.seq",
        )
        .map_err(read_err)?;
    let mut events: HashMap<i64, Arc<Event>> = HashMap::new();
    let mut rows = stmt.query([]).map_err(read_err)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(read_err)? {
        let event_seq: i64 = r.get(5).map_err(read_err)?;
        let event = match events.get(&event_seq) {
            Some(e) => Arc::clone(e),
            None => {
                let e = Arc::new(event_from_row(r, 6).map_err(read_err)?);
                events.insert(event_seq, Arc::clone(&e));
                e
            }
        };
        out.push(Unfinished {
            seq: r.get(0).map_err(read_err)?,
            instance: r.get(1).map_err(read_err)?,
            state: state_at(r, 2).map_err(read_err)?,
            attempts: r.get(3).map_err(read_err)?,
            created_at: r.get(4).map_err(read_err)?,
            parked: Parked::from_code(r.get(10).map_err(read_err)?),
            digest: r.get(11).map_err(read_err)?,
            event,
        });
    }
    Ok(out)
}

/// The columns [`unfinished_from_row`] reads, of deliveries `d` joined with their events
/// `e`; a query adds its `WHERE`.
pub(super) fn select_unfinished() -> String {
    format!(
        "SELECT d.seq, d.instance, d.state, d.attempts, d.created_at, d.parked, d.digest_id,
                {EVENT_COLUMNS}
         FROM deliveries d JOIN events e ON e.seq = d.event_seq"
    )
}

/// An instance's waiting deliveries in one state (?2) after ?3, in order, at most ?4.
fn waiting_sql() -> String {
    format!(
        "{} WHERE d.instance = ?1 AND d.state = ?2 AND d.state <> 'delivered' AND d.seq > ?3
             AND d.parked = 0
         ORDER BY d.seq LIMIT ?4",
        select_unfinished()
    )
}

/// Up to `limit` of `instance`'s pending or held rows after `after`, not parked, in order.
pub(super) fn waiting_rows(
    conn: &Connection,
    instance: &str,
    after: Seq,
    limit: usize,
) -> rusqlite::Result<Vec<Unfinished>> {
    // One ordered range of the open-deliveries index per state, merged here: one query
    // over both states (`IN`) would read every waiting row, its event too, and sort them
    // all before its LIMIT, at each refill of the window. (`<> 'delivered'` lets the
    // planner use that partial index with the state as a parameter.)
    let mut stmt = conn.prepare_cached(&waiting_sql())?;
    let mut read = |state: &str| {
        stmt.query_map(
            params![instance, state, after, limit as i64],
            unfinished_from_row,
        )
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
    };
    let mut rows = read("pending")?;
    rows.extend(read("held")?);
    rows.sort_unstable_by_key(|r| r.seq);
    rows.truncate(limit);
    Ok(rows)
}

pub(super) fn unfinished_count(conn: &Connection) -> Result<u64> {
    conn.query_row(
        "SELECT count(*) FROM deliveries WHERE state <> 'delivered' AND state <> 'dead'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n.max(0) as u64)
    .map_err(read_err)
}

pub(super) fn list(conn: &Connection, q: &Query) -> Result<Page> {
    let limit = q.limit.clamp(1, 500);
    let (sql, args) = list_sql(q, limit);
    let mut stmt = conn.prepare(&sql).map_err(read_err)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), summary_from_row)
        .map_err(read_err)?;
    let items = rows
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(read_err)?;
    Ok(Page::cut(items, limit))
}

/// The query for a page of `q` (one more row than `limit`, to know whether a next page
/// exists), and its arguments.
fn list_sql(q: &Query, limit: usize) -> (String, Vec<Sql>) {
    let mut sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE 1 = 1"
    );
    let mut args: Vec<Sql> = Vec::new();
    // Adds `AND clause ?N` with its value; answers N.
    let mut arg = |sql: &mut String, clause: &str, v: Sql| {
        args.push(v);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        args.len()
    };
    if let Some(i) = &q.instance {
        arg(&mut sql, "d.instance =", Sql::Text(i.clone()));
    }
    if let Some(s) = q.state {
        arg(&mut sql, "d.state =", Sql::Text(s.as_str().into()));
        if s != State::Delivered {
            // Lets SQLite read the partial index of open deliveries, not the whole table.
            sql.push_str(" AND d.state <> 'delivered'");
        }
    }
    if let Some(id) = &q.event_id {
        // The event's deliveries are a range of sequence numbers.
        let n = arg(&mut sql, "e.id =", Sql::Text(id.clone()));
        sql.push_str(&format!(
            " AND d.seq >= (SELECT first_delivery FROM events WHERE id = ?{n})
              AND d.seq < (SELECT first_delivery + deliveries FROM events WHERE id = ?{n})"
        ));
    }
    if let Some(b) = q.before {
        arg(&mut sql, "d.seq <", Sql::Integer(b));
    }
    sql.push_str(&format!(" ORDER BY d.seq DESC LIMIT {}", limit + 1));
    (sql, args)
}

pub(super) fn get(conn: &Connection, seq: Seq) -> Result<Option<Detail>> {
    let row = conn
        .query_row(
            &format!(
                "SELECT {SUMMARY_COLUMNS}, {EVENT_COLUMNS}, d.detail, d.duration_ms
                 FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.seq = ?1"
            ),
            [seq],
            |r| {
                let success = match (r.get::<_, Option<i64>>(18)?, state_at(r, 4)?) {
                    (Some(ms), State::Delivered) => Some(Attempt {
                        at: r.get(10)?,
                        outcome: "delivered".into(),
                        status: r.get(7)?,
                        error: r.get(17)?,
                        duration_ms: ms.max(0) as u64,
                    }),
                    _ => None,
                };
                Ok((summary_from_row(r)?, event_from_row(r, 13)?, success))
            },
        )
        .optional()
        .map_err(read_err)?;
    let Some((summary, event, success)) = row else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT at, outcome, status, error, duration_ms FROM attempts
             WHERE delivery_seq = ?1 ORDER BY rowid",
        )
        .map_err(read_err)?;
    let attempts = stmt
        .query_map(params![seq], |r| {
            Ok(Attempt {
                at: r.get(0)?,
                outcome: r.get(1)?,
                status: r.get(2)?,
                error: r.get(3)?,
                duration_ms: r.get::<_, i64>(4)?.max(0) as u64,
            })
        })
        .map_err(read_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(read_err)?;
    let attempts = attempts.into_iter().chain(success).collect();
    Ok(Some(Detail {
        summary,
        attempts,
        event: Arc::new(event),
    }))
}

pub(super) fn counts(conn: &Connection) -> Result<Vec<(String, State, u64)>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT instance, state, count(*) FROM deliveries WHERE state <> 'delivered'
             GROUP BY instance, state",
        )
        .map_err(read_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                state_at(r, 1)?,
                r.get::<_, i64>(2)?.max(0) as u64,
            ))
        })
        .map_err(read_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(read_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What SQLite does for `sql` with `args`, one line per step.
    fn plan(sql: &str, args: Vec<Sql>) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::schema::open(
            &dir.path().join("s.sqlite3"),
            crate::config::Synchronous::Full,
        )
        .unwrap();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let steps = stmt
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap();
        steps.collect::<rusqlite::Result<_>>().unwrap()
    }

    fn reads_the_open_index_in_order(plan: &[String]) {
        assert!(
            plan.iter()
                .any(|p| p.contains("SEARCH d USING INDEX deliveries_open")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
    }

    /// What waits or is dead is found through the partial index of open deliveries, in
    /// order: not by scanning every delivery kept for `retention_days`, nor by sorting all
    /// that waits (which made each refill of the memory window cost as much as the whole
    /// spill, its events' data included).
    #[test]
    fn open_deliveries_are_read_from_their_index_without_a_scan_or_sort() {
        let text = |s: &str| Sql::Text(s.into());
        let waiting = vec![
            text("ntfy"),
            text("pending"),
            Sql::Integer(0),
            Sql::Integer(10),
        ];
        reads_the_open_index_in_order(&plan(&waiting_sql(), waiting));
        let dead = vec![text("ntfy"), Sql::Integer(0)];
        reads_the_open_index_in_order(&plan(&super::super::writer::rows::dead_sql(), dead));
        for state in [State::Dead, State::Held, State::Pending] {
            let q = Query {
                instance: Some("ntfy".into()),
                state: Some(state),
                event_id: None,
                limit: 50,
                before: Some(1000),
            };
            let (sql, args) = list_sql(&q, 50);
            reads_the_open_index_in_order(&plan(&sql, args));
        }
    }
}
