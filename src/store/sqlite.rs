//! The SQLite backend: one file in WAL mode, one writer thread that group-commits, and a
//! read connection of its own for the API.

mod checkpoint;
mod read;
mod schema;
mod writer;

use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

use super::{
    Accept, DeliveryStore, Detail, Page, Query, Requeue, Result, Seq, State, StoreError,
    Unfinished, Update,
};
use crate::config::StorageConfig;
use crate::metrics::{Timings, TimingsSnapshot};
use writer::{Op, Queue, Writer};

/// The SQLite delivery store.
pub struct SqliteStore {
    queue: Mutex<Option<Queue>>,
    reader: Mutex<Connection>,
    commits: Arc<Timings>,
    tag: u32,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl SqliteStore {
    /// Open (or create) the file at `config.path` and start the writer.
    pub fn open(config: &StorageConfig) -> Result<SqliteStore> {
        let path = &config.path;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Write(format!(
                    "cannot create the directory {} for the delivery store: {e}; set storage.path to a writable place",
                    dir.display()
                ))
            })?;
        }
        let conn = schema::open(path, config.synchronous)?;
        let tag = schema::tag(&conn)?;
        let restored = writer::lazy::recover(&conn)?;
        if restored > 0 {
            tracing::info!(target: "store", deliveries = restored, "wrote the rows of deliveries accepted before the last stop and not yet written");
        }
        // Past the highest row, and past what the last prune had handed out (see
        // `Writer::prune`).
        let next_seq = |table: &str, kept: &str| -> Result<Seq> {
            conn.query_row(
                &format!(
                    "SELECT max(coalesce((SELECT max(seq) FROM {table}), 0) + 1,
                                coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = '{kept}'), 0))"
                ),
                [],
                |r| r.get(0),
            )
            .map_err(|e| StoreError::Read(e.to_string()))
        };
        let next = writer::Seqs {
            event: next_seq("events", "next_event")?,
            delivery: next_seq("deliveries", "next_delivery")?,
        };
        let reader = schema::open(path, config.synchronous)?;
        let checkpoints =
            checkpoint::Checkpointer::start(&conn, schema::open(path, config.synchronous)?)?;
        let (tx, rx) = mpsc::channel();
        let commits = Arc::new(Timings::default());
        let writer = Writer::new(
            conn,
            checkpoints,
            Arc::clone(&commits),
            next,
            config.retention.as_millis().min(i64::MAX as u128) as i64,
        );
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Write(format!("cannot start the store's writer: {e}")))?;
        Ok(SqliteStore {
            queue: Mutex::new(Some(Queue::new(tx, thread.thread().clone()))),
            reader: Mutex::new(reader),
            commits,
            tag,
            writer: Mutex::new(Some(thread)),
        })
    }

    // The op comes back only when the writer is gone (at shutdown), to answer its caller.
    #[allow(clippy::result_large_err)]
    fn send(&self, op: Op) -> std::result::Result<(), Op> {
        match lock(&self.queue).as_ref() {
            Some(queue) => queue.send(op),
            None => Err(op),
        }
    }

    /// Wait until what was queued before is committed and every delivery has its row
    /// (some are written only when something happens to them: see `writer::lazy`), so a
    /// read sees them.
    fn settled(&self) {
        let (tx, rx) = mpsc::channel();
        if self.send(Op::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        lock(&self.reader)
    }
}

/// Nothing panics while these locks are held; a poisoned one is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DeliveryStore for SqliteStore {
    fn accept(&self, accept: Accept) {
        let encoded = writer::Encoded::new(&accept);
        if let Err(Op::Accept(a, _)) = self.send(Op::Accept(accept, encoded)) {
            (a.done)(Err(StoreError::Closed));
        }
    }

    fn update(&self, update: Update) {
        let _ = self.send(Op::Update(update));
    }

    fn update_many(&self, updates: Vec<Update>) {
        let _ = self.send(Op::Updates(updates));
    }

    fn bury(&self, instance: Arc<str>, reason: String, reply: Box<dyn FnOnce(Result<u64>) + Send>) {
        if let Err(Op::Bury(_, _, reply)) = self.send(Op::Bury(instance, reason, reply)) {
            reply(Err(StoreError::Closed));
        }
    }

    fn requeue(&self, which: Requeue, reply: Box<dyn FnOnce(Result<Vec<Unfinished>>) + Send>) {
        if let Err(Op::Requeue(_, reply)) = self.send(Op::Requeue(which, reply)) {
            reply(Err(StoreError::Closed));
        }
    }

    fn unfinished(&self) -> Result<Vec<Unfinished>> {
        self.settled();
        read::unfinished(&self.reader())
    }

    fn list(&self, query: &Query) -> Result<Page> {
        self.settled();
        read::list(&self.reader(), query)
    }

    fn get(&self, seq: Seq) -> Result<Option<Detail>> {
        self.settled();
        read::get(&self.reader(), seq)
    }

    fn counts(&self) -> Result<Vec<(String, State, u64)>> {
        self.settled();
        read::counts(&self.reader())
    }

    fn unfinished_count(&self) -> Result<u64> {
        self.settled();
        read::unfinished_count(&self.reader())
    }

    fn waiting_after(&self, instance: &str, after: Seq, limit: usize) -> Result<Vec<Unfinished>> {
        // On the writer, which knows the deliveries that have no rows yet.
        let (tx, rx) = mpsc::channel();
        let ask = writer::Waiting {
            instance: instance.to_owned(),
            after,
            limit,
        };
        if self.send(Op::Waiting(ask, tx)).is_err() {
            return Err(StoreError::Closed);
        }
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                Err(StoreError::Read(
                    "the store's writer did not answer in 30 s".into(),
                ))
            })
    }

    fn in_memory(&self) -> bool {
        false
    }

    fn tag(&self) -> u32 {
        self.tag
    }

    fn commit_timings(&self) -> Option<TimingsSnapshot> {
        Some(self.commits.snapshot())
    }

    fn flush(&self) {
        self.settled();
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer once it has committed what it holds.
        lock(&self.queue).take();
        if let Some(t) = lock(&self.writer).take() {
            // Dropped by a callback on the writer itself: it ends on its own.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}
