//! The tables, and opening a connection with the pragmas the store relies on.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use super::super::{Result, StoreError};
use crate::config::Synchronous;

/// Schema version, kept in `meta`; a newer file than this build is refused, an older one
/// is brought up to date.
const VERSION: i64 = 4;

/// From version 1 (one development day's files): an event's delivery range, the success
/// in the row, no event index.
const FROM_1: &str = "
ALTER TABLE events ADD COLUMN first_delivery INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN deliveries INTEGER NOT NULL DEFAULT 0;
UPDATE events SET
    first_delivery = coalesce((SELECT min(d.seq) FROM deliveries d WHERE d.event_seq = events.seq), 0),
    deliveries = (SELECT count(*) FROM deliveries d WHERE d.event_seq = events.seq);
ALTER TABLE deliveries ADD COLUMN detail TEXT;
ALTER TABLE deliveries ADD COLUMN duration_ms INTEGER;
DROP INDEX IF EXISTS deliveries_by_event;
";

/// From version 2: digests and quiet hours (the digest a delivery goes out in, and
/// whether the instance's own policy holds it).
const FROM_2: &str = "
ALTER TABLE deliveries ADD COLUMN digest_id INTEGER;
ALTER TABLE deliveries ADD COLUMN parked INTEGER NOT NULL DEFAULT 0;
";

/// From version 3: an event names its instances (its deliveries' rows may come later:
/// see `writer::lazy`). Older files have every row.
const FROM_3: &str = "
ALTER TABLE events ADD COLUMN instances TEXT NOT NULL DEFAULT '[]';
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    data TEXT NOT NULL,
    accepted_at INTEGER NOT NULL,
    -- An event's deliveries have consecutive sequence numbers: these, no index needed.
    first_delivery INTEGER NOT NULL,
    deliveries INTEGER NOT NULL,
    -- Their instances, in order (JSON): delivery i goes to the i-th.
    instances TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL,
    instance TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    next_attempt_at INTEGER,
    -- The successful attempt, kept in the row (failed attempts have rows of their own).
    detail TEXT,
    duration_ms INTEGER,
    -- The delivery that carries this one in a digest; whether a digest (1) or quiet
    -- hours (2) hold it, which an instance's pause and recovery leave alone.
    digest_id INTEGER,
    parked INTEGER NOT NULL DEFAULT 0
);
-- What is still to do (and the dead letters), per instance in order: counts, holds, resume.
CREATE INDEX IF NOT EXISTS deliveries_open ON deliveries(instance, state, seq) WHERE state <> 'delivered';
CREATE TABLE IF NOT EXISTS attempts (
    delivery_seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    status INTEGER,
    error TEXT,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_delivery ON attempts(delivery_seq);
";

/// How long a statement waits for another connection's lock before it fails.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(1);

/// Open `path` (creating it), set WAL and `synchronous`, create the tables.
pub(super) fn open(path: &Path, sync: Synchronous) -> Result<Connection> {
    let fail = |e: &dyn std::fmt::Display| {
        StoreError::Write(format!(
            "cannot open {}: {e}; set storage.path to a writable file, or storage.backend: memory",
            path.display()
        ))
    };
    let conn = Connection::open(path).map_err(|e| fail(&e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| fail(&e))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| fail(&e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(fail(&format!("the file refused WAL mode (got {mode})")));
    }
    let sync = match sync {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    // 32 MiB of page cache (default 2 MiB): event ids are random, so their index's pages
    // are touched all over; keeping them cached spares the writer re-reading them.
    conn.execute_batch(&format!(
        "PRAGMA synchronous={sync}; PRAGMA cache_size=-32768;"
    ))
    .map_err(|e| fail(&e))?;
    let version: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
            r.get(0)
        })
        .optional()
        .or_else(|e| match e {
            // A new file has no meta table yet.
            rusqlite::Error::SqliteFailure(..) => Ok(None),
            e => Err(e),
        })
        .map_err(|e| fail(&e))?;
    let steps = match version.as_deref() {
        Some("1") => vec![FROM_1, FROM_2, FROM_3],
        Some("2") => vec![FROM_2, FROM_3],
        Some("3") => vec![FROM_3],
        _ => vec![],
    };
    if !steps.is_empty() {
        conn.execute_batch(&format!(
            "BEGIN; {} UPDATE meta SET value = '{VERSION}' WHERE key = 'version'; COMMIT;",
            steps.concat()
        ))
        .map_err(|e| fail(&format!("cannot bring the file up to date: {e}")))?;
    }
    conn.execute_batch(SCHEMA).map_err(|e| fail(&e))?;
    let version: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| fail(&e))?;
    match version.and_then(|v| v.parse::<i64>().ok()) {
        None => {
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('version', ?1)",
                [VERSION.to_string()],
            )
            .map_err(|e| fail(&e))?;
        }
        Some(v) if v > VERSION => {
            return Err(fail(&format!(
                "the file has schema version {v}, newer than this build understands ({VERSION})"
            )))
        }
        Some(_) => {}
    }
    Ok(conn)
}

/// The store's tag (random, made once per file).
pub(super) fn tag(conn: &Connection) -> Result<u32> {
    let fail = |e: rusqlite::Error| StoreError::Write(e.to_string());
    let existing: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'tag'", [], |r| r.get(0))
        .optional()
        .map_err(fail)?;
    if let Some(t) = existing.and_then(|t| u32::from_str_radix(&t, 16).ok()) {
        return Ok(t);
    }
    let t: u32 = rand::random();
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES ('tag', ?1)",
        [format!("{t:08x}")],
    )
    .map_err(fail)?;
    Ok(t)
}
