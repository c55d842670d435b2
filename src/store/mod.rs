//! The delivery store: every accepted event and one delivery row per target instance,
//! kept until each delivery is delivered or dead-lettered with a reason.
//!
//! "Accepted means durable": a caller's 202 comes after the event and its deliveries are
//! committed. One small trait, [`DeliveryStore`], hides the backend: [`sqlite`] (the
//! default: WAL, group commit on one writer thread) and [`memory`] (nothing survives a
//! restart; for embedders and tests). [`Store`] wraps either with what both need: the
//! admission limit (`max_pending`) and the public delivery ids.

pub mod memory;
pub mod sqlite;
mod types;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

pub use types::*;

use crate::config::{StorageBackend, StorageConfig};

/// What a backend does. Writes are queued and group-committed; the callback of an
/// [`Accept`] runs once its transaction is committed (or failed), in commit order, on the
/// backend's writer: whatever it hands on (to the supervisor) is therefore in that order.
pub trait DeliveryStore: Send + Sync + 'static {
    /// Store an event and one pending delivery per instance; then call `accept.done`.
    fn accept(&self, accept: Accept);
    /// Record a change of a delivery's state (fire and forget; committed with the next batch).
    fn update(&self, update: Update);
    /// Record several changes, in order.
    fn update_many(&self, updates: Vec<Update>) {
        for u in updates {
            self.update(u);
        }
    }
    /// Every waiting delivery of `instance` (pending or held, parked too; not those in
    /// flight) made dead with `reason`; then `reply` with how many (after the commit).
    fn bury(&self, instance: Arc<str>, reason: String, reply: Box<dyn FnOnce(Result<u64>) + Send>);
    /// Dead or held deliveries made pending again, oldest first; then `reply` with them.
    fn requeue(&self, which: Requeue, reply: Box<dyn FnOnce(Result<Vec<Unfinished>>) + Send>);
    /// Every delivery not yet delivered or dead, oldest first, with its event (for a restart).
    fn unfinished(&self) -> Result<Vec<Unfinished>>;
    /// Deliveries, newest first, as the query asks.
    fn list(&self, query: &Query) -> Result<Page>;
    /// One delivery with its attempts and its event.
    fn get(&self, seq: Seq) -> Result<Option<Detail>>;
    /// Per instance: how many deliveries are in each state other than `delivered`.
    fn counts(&self) -> Result<Vec<(String, State, u64)>>;
    /// Deliveries not yet delivered or dead (for the admission limit at start).
    fn unfinished_count(&self) -> Result<u64>;
    /// Up to `limit` of `instance`'s pending or held deliveries after `after`, oldest
    /// first (the supervisor keeps a window of them in memory and reads on from here).
    fn waiting_after(&self, instance: &str, after: Seq, limit: usize) -> Result<Vec<Unfinished>>;
    /// Whether waiting deliveries need to be kept in memory too (they do for a store
    /// that is itself memory).
    fn in_memory(&self) -> bool;
    /// A random tag of this store, part of every public delivery id: ids stay unique even
    /// when the store is deleted and started afresh (receivers deduplicate on them).
    fn tag(&self) -> u32;
    /// Let the writer finish what is queued (called at shutdown).
    fn flush(&self);
    /// How long its commits took, for a backend that commits (SQLite).
    fn commit_timings(&self) -> Option<crate::metrics::TimingsSnapshot> {
        None
    }
}

/// A store and its admission limit. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    backend: Box<dyn DeliveryStore>,
    /// Deliveries accepted and not yet delivered or dead. Shared on its own with the
    /// callbacks, which run on the backend's writer: were they to hold the store, its
    /// last reference could end there, and the writer would wait for itself.
    unfinished: Arc<AtomicI64>,
    max_pending: i64,
    /// See [`Store::memory_window`].
    window: std::sync::atomic::AtomicUsize,
}

impl Store {
    /// Open the store `config` describes (creating the SQLite file and its directory).
    pub fn open(config: &StorageConfig) -> Result<Store> {
        let backend: Box<dyn DeliveryStore> = match config.backend {
            StorageBackend::Sqlite => Box::new(sqlite::SqliteStore::open(config)?),
            StorageBackend::Memory => Box::new(memory::MemoryStore::new(config.retention)),
        };
        Store::with_backend(backend, config.max_pending)
    }

    /// A store on an in-memory backend with the default limits (for embedders and tests).
    pub fn in_memory() -> Store {
        let config = StorageConfig::memory();
        Store::with_backend(
            Box::new(memory::MemoryStore::new(config.retention)),
            config.max_pending,
        )
        .expect("an in-memory store always opens")
    }

    fn with_backend(backend: Box<dyn DeliveryStore>, max_pending: u64) -> Result<Store> {
        let unfinished = backend.unfinished_count()? as i64;
        Ok(Store {
            inner: Arc::new(StoreInner {
                backend,
                unfinished: Arc::new(AtomicI64::new(unfinished)),
                max_pending: max_pending.min(i64::MAX as u64) as i64,
                window: std::sync::atomic::AtomicUsize::new(MEMORY_WINDOW),
            }),
        })
    }

    /// Store `event` with a delivery for each of `instances`; `done` runs after the commit.
    /// Refused at once, before anything is written, when `max_pending` would be passed.
    pub fn accept(
        &self,
        event: Arc<crate::event::Event>,
        instances: Arc<[Arc<str>]>,
        done: AcceptDone,
    ) {
        let n = instances.len() as i64;
        let before = self.inner.unfinished.fetch_add(n, Ordering::AcqRel);
        if n > 0 && before + n > self.inner.max_pending {
            self.inner.unfinished.fetch_sub(n, Ordering::AcqRel);
            return done(Err(StoreError::Full {
                pending: before.max(0) as u64,
                max: self.inner.max_pending as u64,
            }));
        }
        let inner = Arc::clone(&self.inner);
        let done: AcceptDone = Box::new(move |r| {
            // Nothing new is pending when the write failed or the id was a duplicate.
            if !matches!(
                r,
                Ok(Accepted {
                    duplicate: None,
                    ..
                })
            ) {
                inner.unfinished.fetch_sub(n, Ordering::AcqRel);
            }
            done(r)
        });
        self.inner.backend.accept(Accept {
            event,
            instances,
            done,
        });
    }

    /// Record a state change; a delivery that is now delivered or dead frees its place.
    pub fn update(&self, update: Update) {
        if update.finishes() {
            self.inner.unfinished.fetch_sub(1, Ordering::AcqRel);
        }
        self.inner.backend.update(update);
    }

    /// Record several state changes, in order (one lock or one message for all).
    pub fn update_many(&self, updates: Vec<Update>) {
        let done = updates.iter().filter(|u| u.finishes()).count() as i64;
        if done > 0 {
            self.inner.unfinished.fetch_sub(done, Ordering::AcqRel);
        }
        self.inner.backend.update_many(updates);
    }

    /// Make dead or held deliveries pending again; `reply` gets them, oldest first.
    pub fn requeue(
        &self,
        which: Requeue,
        reply: impl FnOnce(Result<Vec<Unfinished>>) + Send + 'static,
    ) {
        let inner = Arc::clone(&self.inner);
        self.inner.backend.requeue(
            which,
            Box::new(move |r: Result<Vec<Unfinished>>| {
                if let Ok(rows) = &r {
                    let revived = rows.iter().filter(|u| u.state == State::Dead).count();
                    inner.unfinished.fetch_add(revived as i64, Ordering::AcqRel);
                }
                reply(r)
            }),
        );
    }

    /// Every waiting delivery of `instance` is dead with `reason` (the instance was removed
    /// from the config); `reply` gets how many, once committed. Those in flight finish.
    pub fn bury(
        &self,
        instance: Arc<str>,
        reason: String,
        reply: impl FnOnce(Result<u64>) + Send + 'static,
    ) {
        let inner = Arc::clone(&self.inner);
        self.inner.backend.bury(
            instance,
            reason,
            Box::new(move |r: Result<u64>| {
                if let Ok(n) = &r {
                    inner.unfinished.fetch_sub(*n as i64, Ordering::AcqRel);
                }
                reply(r)
            }),
        );
    }

    /// Every unfinished delivery, oldest first (read once at start).
    pub fn unfinished(&self) -> Result<Vec<Unfinished>> {
        self.inner.backend.unfinished()
    }

    /// Deliveries as `query` asks, newest first.
    pub fn list(&self, query: &Query) -> Result<Page> {
        self.inner.backend.list(query)
    }

    /// One delivery, by its public id.
    pub fn get(&self, id: &str) -> Result<Option<Detail>> {
        match self.parse_id(id) {
            Some(seq) => self.inner.backend.get(seq),
            None => Ok(None),
        }
    }

    /// Up to `limit` of `instance`'s waiting deliveries after `after`, oldest first.
    pub fn waiting_after(
        &self,
        instance: &str,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Unfinished>> {
        self.inner.backend.waiting_after(instance, after, limit)
    }

    /// How many waiting deliveries per instance the supervisor keeps in memory; the rest
    /// are read from the store as it gets to them (`None`: all, for the memory store).
    pub fn memory_window(&self) -> Option<usize> {
        (!self.inner.backend.in_memory()).then(|| self.inner.window.load(Ordering::Relaxed))
    }

    /// Keep `n` waiting deliveries per instance in memory instead of
    /// [`MEMORY_WINDOW`] (set before the service starts; tests use a small one).
    pub fn with_memory_window(self, n: usize) -> Store {
        self.inner.window.store(n.max(2), Ordering::Relaxed);
        self
    }

    /// Per instance and state, how many deliveries are not delivered.
    pub fn counts(&self) -> Result<Vec<(String, State, u64)>> {
        self.inner.backend.counts()
    }

    /// Deliveries accepted and not yet delivered or dead.
    pub fn pending(&self) -> u64 {
        self.inner.unfinished.load(Ordering::Acquire).max(0) as u64
    }

    /// This store's tag (the first part of every public delivery id).
    pub fn tag(&self) -> u32 {
        self.inner.backend.tag()
    }

    /// How long the backend's commits took (`None` for the memory store, which has none).
    pub fn commit_timings(&self) -> Option<crate::metrics::TimingsSnapshot> {
        self.inner.backend.commit_timings()
    }

    /// The public id of delivery `seq`: the store's tag and the sequence number.
    pub fn public_id(&self, seq: Seq) -> String {
        format_id(self.inner.backend.tag(), seq)
    }

    /// The sequence number in a public id of this store; `None` for anything else.
    pub fn parse_id(&self, id: &str) -> Option<Seq> {
        let (tag, seq) = id.split_once('-')?;
        let tag = u32::from_str_radix(tag, 16).ok()?;
        (tag == self.inner.backend.tag())
            .then(|| seq.parse::<Seq>().ok())
            .flatten()
            .filter(|s| *s > 0)
    }

    /// Let the writer commit what is queued.
    pub fn flush(&self) {
        self.inner.backend.flush();
    }
}

/// Waiting deliveries per instance the supervisor keeps in memory with a disk store.
pub const MEMORY_WINDOW: usize = 10_000;

/// `tag-seq`, the tag as 8 hex digits.
pub fn format_id(tag: u32, seq: Seq) -> String {
    format!("{tag:08x}-{seq}")
}

impl StorageConfig {
    /// The in-memory backend with the default limits.
    pub fn memory() -> StorageConfig {
        StorageConfig {
            backend: StorageBackend::Memory,
            ..StorageConfig::default()
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests;
