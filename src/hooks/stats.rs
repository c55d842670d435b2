//! Counters per hook, written by the actor's thread and read through the `Hooks` handle.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::event::EventName;

use super::discover::HookFile;
use super::error::HookError;

/// A snapshot of what the hooks have done since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookStats {
    /// One entry per discovered script, in run order.
    pub hooks: Vec<HookStat>,
    /// Times the VM was rebuilt (after a panic, or when memory stayed exhausted).
    pub vm_restarts: u64,
    /// Times the actor was found gone and started again.
    pub actor_restarts: u64,
    /// Events whose data exceeded `max_input_bytes`, passed on without hooks.
    pub skipped_too_large: u64,
}

/// What one hook has done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookStat {
    /// `<event_dir>/<file>`, as in logs and rejections.
    pub file: String,
    /// The event it runs on.
    pub event: EventName,
    /// Whether it compiled into the running VM (false: see `last_error`).
    pub loaded: bool,
    /// Calls made.
    pub runs: u64,
    /// Calls that failed (error, timeout, memory, bad return); the data was left as it was.
    pub failures: u64,
    /// Calls that rejected the event.
    pub rejections: u64,
    /// The latest load or call error.
    pub last_error: Option<String>,
}

/// The live counters; index `i` belongs to the `i`-th discovered file.
pub struct SharedStats {
    pub hooks: Vec<Counters>,
    pub vm_restarts: AtomicU64,
    pub actor_restarts: AtomicU64,
    pub skipped_too_large: AtomicU64,
}

/// Counters of one hook. Relaxed atomics: these are statistics, not synchronisation.
pub struct Counters {
    file: String,
    event: EventName,
    loaded: AtomicBool,
    runs: AtomicU64,
    failures: AtomicU64,
    rejections: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl SharedStats {
    pub fn new(files: &[HookFile]) -> SharedStats {
        SharedStats {
            hooks: files.iter().map(Counters::new).collect(),
            vm_restarts: AtomicU64::new(0),
            actor_restarts: AtomicU64::new(0),
            skipped_too_large: AtomicU64::new(0),
        }
    }

    pub fn snapshot(&self) -> HookStats {
        HookStats {
            hooks: self.hooks.iter().map(Counters::snapshot).collect(),
            vm_restarts: self.vm_restarts.load(Ordering::Relaxed),
            actor_restarts: self.actor_restarts.load(Ordering::Relaxed),
            skipped_too_large: self.skipped_too_large.load(Ordering::Relaxed),
        }
    }
}

impl Counters {
    fn new(file: &HookFile) -> Counters {
        Counters {
            file: file.name.clone(),
            event: file.event,
            loaded: AtomicBool::new(false),
            runs: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub fn loaded(&self) {
        self.loaded.store(true, Ordering::Relaxed);
    }

    pub fn not_loaded(&self, err: &HookError) {
        self.loaded.store(false, Ordering::Relaxed);
        self.set_error(err);
    }

    pub fn ran(&self) {
        self.runs.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejected(&self) {
        self.rejections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn failed(&self, err: &HookError) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.set_error(err);
    }

    fn set_error(&self, err: &HookError) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(err.to_string());
    }

    fn snapshot(&self) -> HookStat {
        HookStat {
            file: self.file.clone(),
            event: self.event,
            loaded: self.loaded.load(Ordering::Relaxed),
            runs: self.runs.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            rejections: self.rejections.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}
