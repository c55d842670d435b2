//! Counters per hook and the quarantine, written by the workers and read through the `Hooks` handle.
//!
//! Quarantine lives here because every worker must see it at once: a hook that failed
//! `quarantine_after` calls in a row, on whichever workers, is skipped by all of them
//! until it is released.
//!
//! A reload keeps the counters of a hook whose file is unchanged (same name, same text):
//! the new set shares them with the old one, so calls still finishing on the old workers
//! count where the new ones do. Changed and new files start from zero. The totals
//! (restarts, skipped events) belong to the service, not to one set, and are kept too.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::event::EventName;
use crate::metrics::{Timings, TimingsSnapshot};

use super::discover::HookFile;
use super::error::HookError;

/// A snapshot of what the hooks have done since start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookStats {
    /// One entry per discovered script, in run order.
    pub hooks: Vec<HookStat>,
    /// Hook VMs running events side by side (`hooks.workers`).
    pub workers: usize,
    /// Times a VM was rebuilt (after a panic, or when memory stayed exhausted).
    pub vm_restarts: u64,
    /// Times a worker was found gone and started again.
    pub actor_restarts: u64,
    /// Events whose data exceeded `max_input_kb`, passed on without hooks (fail-soft events).
    pub skipped_too_large: u64,
    /// Events whose data exceeded `max_input_kb`, refused (fail-closed events).
    pub refused_too_large: u64,
}

/// What one hook has done.
#[derive(Debug, Clone, PartialEq)]
pub struct HookStat {
    /// `<event_dir>/<file>`, as in logs and rejections.
    pub file: String,
    /// The event it runs on.
    pub event: EventName,
    /// Whether it compiled (false: see `last_error`).
    pub loaded: bool,
    /// Calls made.
    pub runs: u64,
    /// Calls that failed (error, timeout, memory, bad or oversized result).
    pub failures: u64,
    /// Calls that rejected the event.
    pub rejections: u64,
    /// Events it was skipped for while quarantined.
    pub skipped: u64,
    /// Failed calls in a row, up to now.
    pub failing_streak: u32,
    /// Why it is quarantined; `None` while it runs.
    pub quarantined: Option<String>,
    /// The latest load or call error.
    pub last_error: Option<String>,
    /// Failed calls by kind ([`HookError::kind`]), only kinds seen.
    pub failure_kinds: Vec<(&'static str, u64)>,
    /// How long its calls took (those that ran: not skipped ones).
    pub durations: TimingsSnapshot,
}

impl HookStat {
    /// `quarantined`, `active` or `not_loaded` (it did not compile).
    pub fn state(&self) -> &'static str {
        match (&self.quarantined, self.loaded) {
            (Some(_), _) => "quarantined",
            (None, true) => "active",
            (None, false) => "not_loaded",
        }
    }
}

/// The live counters; index `i` belongs to the `i`-th discovered file.
pub struct SharedStats {
    pub hooks: Vec<Arc<Counters>>,
    pub workers: usize,
    pub vm_restarts: Arc<AtomicU64>,
    pub actor_restarts: Arc<AtomicU64>,
    pub skipped_too_large: Arc<AtomicU64>,
    pub refused_too_large: Arc<AtomicU64>,
    /// Failures in a row that quarantine a hook; 0 never does.
    quarantine_after: u32,
}

/// Counters of one hook. Relaxed atomics: these are statistics, not synchronisation;
/// the quarantine reason is set and cleared under its lock, so it happens once.
pub struct Counters {
    file: String,
    event: EventName,
    loaded: AtomicBool,
    /// One per worker, each on a cache line of its own: counted on every call, a shared
    /// counter would bounce between the workers' cores (the rest change only on failure).
    runs: Box<[PerWorker]>,
    /// Call durations, per worker like `runs`.
    durations: Box<[Timings]>,
    failures: AtomicU64,
    /// Failures by [`HookError::kind_index`].
    kinds: [AtomicU64; HookError::KINDS.len()],
    rejections: AtomicU64,
    skipped: AtomicU64,
    streak: AtomicU32,
    /// Mirrors `quarantine.is_some()`, for the check on every call.
    quarantined: AtomicBool,
    quarantine: Mutex<Option<String>>,
    last_error: Mutex<Option<String>>,
}

/// A counter alone on its cache line.
#[repr(align(64))]
#[derive(Default)]
struct PerWorker(AtomicU64);

impl SharedStats {
    pub fn new(files: &[HookFile], workers: usize, quarantine_after: u32) -> SharedStats {
        SharedStats {
            hooks: files
                .iter()
                .map(|f| Arc::new(Counters::new(f, workers)))
                .collect(),
            workers,
            vm_restarts: Arc::default(),
            actor_restarts: Arc::default(),
            skipped_too_large: Arc::default(),
            refused_too_large: Arc::default(),
            quarantine_after,
        }
    }

    /// Counters for a reloaded set: `keep[i]` are file `i`'s counters from the set before
    /// (its file is unchanged), `None` starts it fresh; the totals go on from `before`.
    pub fn carried(
        files: &[HookFile],
        keep: Vec<Option<Arc<Counters>>>,
        before: &SharedStats,
        workers: usize,
        quarantine_after: u32,
    ) -> SharedStats {
        SharedStats {
            hooks: files
                .iter()
                .zip(keep)
                .map(|(f, kept)| kept.unwrap_or_else(|| Arc::new(Counters::new(f, workers))))
                .collect(),
            workers,
            vm_restarts: Arc::clone(&before.vm_restarts),
            actor_restarts: Arc::clone(&before.actor_restarts),
            skipped_too_large: Arc::clone(&before.skipped_too_large),
            refused_too_large: Arc::clone(&before.refused_too_large),
            quarantine_after,
        }
    }

    pub fn snapshot(&self) -> HookStats {
        HookStats {
            hooks: self.hooks.iter().map(|c| c.snapshot()).collect(),
            workers: self.workers,
            vm_restarts: self.vm_restarts.load(Ordering::Relaxed),
            actor_restarts: self.actor_restarts.load(Ordering::Relaxed),
            skipped_too_large: self.skipped_too_large.load(Ordering::Relaxed),
            refused_too_large: self.refused_too_large.load(Ordering::Relaxed),
        }
    }

    /// Count a failed call of hook `i`; the quarantine reason when this call put it there.
    pub fn failed(&self, i: usize, err: &HookError) -> Option<String> {
        let hook = &self.hooks[i];
        hook.failures.fetch_add(1, Ordering::Relaxed);
        hook.kinds[err.kind_index()].fetch_add(1, Ordering::Relaxed);
        hook.set_error(err);
        if !err.counts_against_hook() || self.quarantine_after == 0 {
            return None;
        }
        let streak = hook.streak.fetch_add(1, Ordering::Relaxed) + 1;
        if streak < self.quarantine_after {
            return None;
        }
        let mut reason = hook
            .quarantine
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if reason.is_some() {
            return None;
        }
        let why = format!("failed {streak} calls in a row; the last: {err}");
        *reason = Some(why.clone());
        hook.quarantined.store(true, Ordering::Relaxed);
        Some(why)
    }
}

impl Counters {
    fn new(file: &HookFile, workers: usize) -> Counters {
        Counters {
            file: file.name.clone(),
            event: file.event,
            loaded: AtomicBool::new(false),
            runs: (0..workers.max(1)).map(|_| PerWorker::default()).collect(),
            durations: (0..workers.max(1)).map(|_| Timings::default()).collect(),
            failures: AtomicU64::new(0),
            kinds: Default::default(),
            rejections: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            streak: AtomicU32::new(0),
            quarantined: AtomicBool::new(false),
            quarantine: Mutex::new(None),
            last_error: Mutex::new(None),
        }
    }

    /// The hook's name, `<event_dir>/<file>`.
    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn loaded(&self) {
        self.loaded.store(true, Ordering::Relaxed);
    }

    pub fn not_loaded_because(&self, err: &str) {
        self.loaded.store(false, Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(err.to_owned());
    }

    /// A call on `worker`. Counters kept across a reload that changed `hooks.workers`
    /// have a slot count of the set that made them: workers then share slots (modulo),
    /// which costs a little contention and counts the same.
    pub fn ran(&self, worker: usize) {
        self.runs[worker % self.runs.len()]
            .0
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A call on `worker` took `took` (whatever its outcome).
    pub fn took(&self, worker: usize, took: std::time::Duration) {
        self.durations[worker % self.durations.len()].observe(took);
    }

    /// A call that ran to its end (changed, unchanged or rejected): the streak is over.
    pub fn succeeded(&self) {
        // Read first: a store on every call would bounce the line between workers.
        if self.streak.load(Ordering::Relaxed) != 0 {
            self.streak.store(0, Ordering::Relaxed);
        }
    }

    pub fn rejected(&self) {
        self.rejections.fetch_add(1, Ordering::Relaxed);
        self.succeeded();
    }

    /// Why the hook is quarantined, if it is; counts the skip.
    pub fn quarantined(&self) -> Option<String> {
        if !self.quarantined.load(Ordering::Relaxed) {
            return None;
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        let reason = self
            .quarantine
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Some(reason.clone().unwrap_or_else(|| "quarantined".to_owned()))
    }

    /// Lift the quarantine and start the streak over; true if it was quarantined.
    pub fn release(&self) -> bool {
        let mut reason = self
            .quarantine
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.quarantined.store(false, Ordering::Relaxed);
        self.streak.store(0, Ordering::Relaxed);
        reason.take().is_some()
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
            runs: self.runs.iter().map(|r| r.0.load(Ordering::Relaxed)).sum(),
            failures: self.failures.load(Ordering::Relaxed),
            rejections: self.rejections.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            failing_streak: self.streak.load(Ordering::Relaxed),
            quarantined: self
                .quarantine
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            failure_kinds: HookError::KINDS
                .iter()
                .zip(&self.kinds)
                .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            durations: self
                .durations
                .iter()
                .fold(TimingsSnapshot::default(), |mut all, t| {
                    all.add(t);
                    all
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stats(after: u32) -> SharedStats {
        let file = HookFile {
            event: EventName::AfterMediaAdded,
            name: "after_media_added/1.lua".into(),
            file: "1.lua".into(),
            path: "1.lua".into(),
            priority: 1,
            source: String::new(),
        };
        SharedStats::new(&[file], 1, after)
    }

    #[test]
    fn quarantined_once_after_failures_in_a_row_and_released() {
        let s = stats(3);
        let timeout = HookError::Timeout(Duration::from_millis(100));
        assert_eq!(s.failed(0, &timeout), None);
        s.hooks[0].succeeded();
        assert_eq!(s.failed(0, &timeout), None);
        assert_eq!(s.failed(0, &timeout), None);
        assert!(
            s.hooks[0].quarantined().is_none(),
            "a success broke the streak"
        );
        let why = s.failed(0, &timeout).expect("the third in a row");
        assert!(
            why.contains("failed 3 calls in a row") && why.contains("timed out"),
            "{why}"
        );
        assert_eq!(s.failed(0, &timeout), None, "reported once");
        assert_eq!(s.hooks[0].quarantined(), Some(why.clone()));
        assert_eq!(s.snapshot().hooks[0].quarantined, Some(why));
        assert_eq!(s.snapshot().hooks[0].skipped, 1);
        assert!(s.hooks[0].release());
        assert!(!s.hooks[0].release());
        assert!(s.hooks[0].quarantined().is_none());
        assert_eq!(s.snapshot().hooks[0].failing_streak, 0);
    }

    #[test]
    fn bad_input_and_a_zero_threshold_never_quarantine() {
        let s = stats(1);
        assert_eq!(s.failed(0, &HookError::BadInput("too deep".into())), None);
        assert_eq!(s.snapshot().hooks[0].failing_streak, 0);
        let never = stats(0);
        for _ in 0..10 {
            assert_eq!(never.failed(0, &HookError::Runtime("x".into())), None);
        }
        assert_eq!(never.snapshot().hooks[0].failures, 10);
        assert_eq!(never.snapshot().hooks[0].failure_kinds, [("runtime", 10)]);
    }
}
