//! Checkpoints on a thread of their own. SQLite's automatic checkpoint runs in the
//! connection that commits, that is, on the writer: copying the WAL back into the
//! database file (and, with `synchronous: full`, its fsync) held up the store's one
//! bottleneck while callers waited for their commits. Here the writer's WAL hook only
//! notes how long the WAL has grown, and past SQLite's own threshold a second connection
//! checkpoints while the writer goes on (PASSIVE: it never blocks the writer or a reader).
//!
//! The WAL starts over only at a write that finds it copied whole. While the writer
//! commits back to back, each checkpoint ends behind the commits made during it, so past
//! [`CATCH_UP`] pages the writer waits for one checkpoint to finish: then nothing is left
//! to copy, and its next commit starts the WAL over. That bounds the file under a flood.

use std::cell::Cell;
use std::os::raw::c_int;
use std::sync::mpsc::{channel, sync_channel, Sender, SyncSender};
use std::thread::JoinHandle;

use rusqlite::hooks::Wal;
use rusqlite::Connection;

use super::super::{Result, StoreError};

/// SQLite's default for an automatic checkpoint: the WAL's length in pages.
const CHECKPOINT_AT: c_int = 1000;
/// A WAL this long (about 16 MB of 4 KiB pages) makes the writer wait for a checkpoint.
const CATCH_UP: c_int = 4 * CHECKPOINT_AT;

thread_local! {
    /// The WAL's length in pages after this thread's last commit (set by the writer's
    /// WAL hook, which runs on the committing thread: one writer thread, one store).
    static WAL_PAGES: Cell<c_int> = const { Cell::new(0) };
}

fn note_pages(_: &Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

/// The checkpointing thread, fed by the writer: each request is one checkpoint, and
/// answered when it is done if it carries a sender.
pub(super) struct Checkpointer {
    due: Option<SyncSender<Option<Sender<()>>>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Take checkpoints of `writer`'s database off it (its automatic checkpoint ends
    /// here) and run them on `conn`, another connection to the same file.
    pub fn start(writer: &Connection, conn: Connection) -> Result<Self> {
        // One waiting request is enough: a checkpoint copies all the WAL holds.
        let (due, rx) = sync_channel::<Option<Sender<()>>>(1);
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                let mut failing = Failing::default();
                while let Ok(done) = rx.recv() {
                    let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    match failing.note(r.as_ref().err().map(|e| e.to_string())) {
                        Some(Said::Failing(e)) => {
                            tracing::warn!(target: "store", error = %e, "checkpointing the delivery store's WAL failed; the WAL file grows until it works again (trying after each commit)");
                        }
                        Some(Said::Again(e)) => {
                            tracing::debug!(target: "store", error = %e, "checkpointing the delivery store's WAL failed again");
                        }
                        Some(Said::Works) => {
                            tracing::info!(target: "store", "checkpointing the delivery store's WAL works again");
                        }
                        None => {}
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
            })
            .map_err(|e| {
                StoreError::Write(format!("cannot start the store's checkpointer: {e}"))
            })?;
        // Replaces SQLite's automatic checkpoint on this connection.
        writer.wal_hook(Some(note_pages));
        Ok(Checkpointer {
            due: Some(due),
            thread: Some(thread),
        })
    }

    /// After a commit on the writer's thread: ask for a checkpoint once the WAL is long,
    /// and wait for one once it is too long.
    pub fn committed(&self) {
        let pages = WAL_PAGES.with(Cell::get);
        let Some(due) = self.due.as_ref().filter(|_| pages >= CHECKPOINT_AT) else {
            return;
        };
        if pages < CATCH_UP {
            // Full: one is asked for already, and it will copy these pages too.
            let _ = due.try_send(None);
            return;
        }
        let (done, finished) = channel();
        if due.send(Some(done)).is_ok() {
            let _ = finished.recv();
        }
    }
}

/// What to say of a checkpoint's outcome: once when checkpoints start failing (a warning)
/// and once when they work again, as under load one is tried after nearly every commit.
#[derive(Default)]
struct Failing(bool);

#[derive(Debug, PartialEq)]
enum Said {
    Failing(String),
    Again(String),
    Works,
}

impl Failing {
    fn note(&mut self, error: Option<String>) -> Option<Said> {
        let was = std::mem::replace(&mut self.0, error.is_some());
        match (was, error) {
            (false, Some(e)) => Some(Said::Failing(e)),
            (true, Some(e)) => Some(Said::Again(e)),
            (true, None) => Some(Said::Works),
            (false, None) => None,
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.due.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::Synchronous;
    use crate::store::sqlite::schema;

    /// The database file's length in pages of 4 KiB (what checkpoints have copied there).
    fn file_pages(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).unwrap().len() / 4096
    }

    /// About one page per row, in one commit.
    fn write_pages(conn: &Connection, from: u64, pages: u64) {
        conn.execute_batch(&format!(
            "WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {})
             INSERT INTO events(id, name, timestamp, data, accepted_at, first_delivery, deliveries)
             SELECT 'e' || i, 'x', 't', randomblob(3000), 0, 0, 0 FROM n;",
            from + pages - 1
        ))
        .unwrap();
    }

    fn small_commit(conn: &Connection) -> c_int {
        conn.execute_batch("INSERT OR REPLACE INTO meta(key, value) VALUES ('k', 'v')")
            .unwrap();
        WAL_PAGES.with(Cell::get)
    }

    fn open(dir: &tempfile::TempDir) -> (std::path::PathBuf, Connection, Checkpointer) {
        let path = dir.path().join("s.sqlite3");
        let writer = schema::open(&path, Synchronous::Full).unwrap();
        let checkpoints =
            Checkpointer::start(&writer, schema::open(&path, Synchronous::Full).unwrap()).unwrap();
        (path, writer, checkpoints)
    }

    #[test]
    fn the_writer_never_checkpoints_itself_and_the_thread_checkpoints_a_long_wal() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer, checkpoints) = open(&dir);
        let before = file_pages(&path);
        write_pages(&writer, 0, 2500);
        let pages = WAL_PAGES.with(Cell::get);
        assert!((2500..CATCH_UP).contains(&pages), "{pages} pages");
        // SQLite's own checkpoint would have run inside that commit.
        assert!(
            file_pages(&path) < before + 100,
            "the writer checkpointed: {} pages",
            file_pages(&path)
        );
        // Commit by commit, as the writer does, until a checkpoint has copied the WAL
        // whole and a commit starts it over.
        checkpoints.committed();
        let deadline = Instant::now() + Duration::from_secs(60);
        while small_commit(&writer) >= CHECKPOINT_AT && Instant::now() < deadline {
            checkpoints.committed();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            WAL_PAGES.with(Cell::get) < CHECKPOINT_AT,
            "the WAL was never checkpointed"
        );
        assert!(
            file_pages(&path) >= before + 2500,
            "the checkpoint did not copy the WAL: {} pages",
            file_pages(&path)
        );
    }

    #[test]
    fn a_failing_checkpoint_is_told_once_and_so_is_its_recovery() {
        let mut f = Failing::default();
        let said: Vec<Option<Said>> = [
            None,
            Some("disk I/O error"),
            Some("disk I/O error"),
            Some("disk full"),
            None,
            None,
            Some("locked"),
        ]
        .into_iter()
        .map(|e| f.note(e.map(str::to_owned)))
        .collect();
        assert_eq!(
            said,
            [
                None,
                Some(Said::Failing("disk I/O error".into())),
                Some(Said::Again("disk I/O error".into())),
                Some(Said::Again("disk full".into())),
                Some(Said::Works),
                None,
                Some(Said::Failing("locked".into())),
            ]
        );
    }

    #[test]
    fn past_the_catch_up_length_the_writer_waits_for_a_whole_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer, checkpoints) = open(&dir);
        write_pages(&writer, 0, CATCH_UP as u64 + 100);
        checkpoints.committed();
        // Copied before `committed` returned: the next commit starts the WAL over.
        assert!(file_pages(&path) > CATCH_UP as u64);
        assert!(small_commit(&writer) < 10);
    }
}
