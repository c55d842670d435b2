//! `Hooks`: the cloneable handle the service uses to run hooks.
//!
//! The handle answers events without hooks itself, without a hop to a worker's thread,
//! so they cost a set lookup. Events with hooks are queued for the workers; many may be
//! in flight at once (each caller awaits its own reply, nothing serialises the sends).
//! Every clone sees one cell holding the running [`HookSet`]; a reload swaps the cell's
//! content, and each event takes the set once, so it runs entirely on the old set or
//! entirely on the new one.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;

use arc_swap::ArcSwapOption;

use crate::config::HooksConfig;
use crate::event::{Event, EventName};

use super::actor::{Fault, InjectFault};
use super::check::{load_errors, log_discovery};
use super::discover::discover;
use super::error::HookRejected;
use super::queue::{Job, JobQueue};
use super::set::HookSet;
use super::stats::HookStats;
use super::watch::Signal;

/// The hooks of a running service; clones share the running set, its workers and counters.
#[derive(Clone)]
pub struct Hooks {
    pub(super) cell: Arc<Cell>,
}

/// `release` was asked for a hook that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no hook named `{name}`; known hooks: {}", if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
pub struct UnknownHook {
    /// The name asked for.
    pub name: String,
    /// Every hook's name (`<event_dir>/<file>`).
    pub known: Vec<String>,
}

/// What every clone of one [`Hooks`] shares.
pub(super) struct Cell {
    /// The running set; `None` while hooks are off or there is no script. Read on every
    /// event: `arc-swap` loads without a lock word or a reference count that every
    /// calling thread would bounce between cores.
    pub current: ArcSwapOption<HookSet>,
    /// The settings of the latest start or reload: what the watcher reloads with.
    pub config: Mutex<HooksConfig>,
    /// One reload at a time, so two cannot both build on the same old set.
    pub reloading: Mutex<()>,
    /// Watchers to tell when a reload brought new settings (another directory, `watch`).
    pub watchers: Mutex<Vec<std::sync::mpsc::Sender<Signal>>>,
}

impl Hooks {
    /// Discover the scripts, compile them once to see which load, and start
    /// `hooks.workers` workers on arbiters of their own (needs a running actix `System`).
    /// Scripts that do not load are logged and skipped; this never fails (a reload is
    /// stricter: see [`Hooks::reload`]).
    pub fn start(config: &HooksConfig) -> Hooks {
        let hooks = Hooks::with_config(config.clone());
        hooks.cell.current.store(first_set(config).map(Arc::new));
        hooks
    }

    /// A handle that passes every event through unchanged (until a reload turns hooks on).
    pub fn disabled() -> Hooks {
        Hooks::with_config(HooksConfig {
            enabled: false,
            ..HooksConfig::default()
        })
    }

    fn with_config(config: HooksConfig) -> Hooks {
        Hooks {
            cell: Arc::new(Cell {
                current: ArcSwapOption::empty(),
                config: Mutex::new(config),
                reloading: Mutex::new(()),
                watchers: Mutex::default(),
            }),
        }
    }

    /// Whether hooks run at all (false for [`Hooks::disabled`], or with no script).
    pub fn is_enabled(&self) -> bool {
        self.cell.current.load().is_some()
    }

    /// Whether any script exists for `event` (false for a disabled handle).
    pub fn has_hooks(&self, event: EventName) -> bool {
        self.cell
            .current
            .load()
            .as_ref()
            .is_some_and(|set| set.events.contains(&event))
    }

    /// The settings of the latest start or reload.
    pub fn config(&self) -> HooksConfig {
        self.cell
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Run the event's hooks. The event is never lost: if a worker is gone it is started
    /// again once, and if that fails too the event passes through unchanged (or, at a
    /// fail-closed event, is refused).
    pub async fn apply(&self, event: Event) -> Result<Event, HookRejected> {
        self.run(event, false).await
    }

    /// [`Hooks::apply`] for a preview: the same hooks on the same workers with the same
    /// answer, but nothing is counted (no stats, no step towards a quarantine).
    pub async fn dry_run(&self, event: Event) -> Result<Event, HookRejected> {
        self.run(event, true).await
    }

    async fn run(&self, event: Event, dry_run: bool) -> Result<Event, HookRejected> {
        let current = self.cell.current.load();
        if !current
            .as_ref()
            .is_some_and(|set| set.events.contains(&event.name))
        {
            return Ok(event);
        }
        // Held until the answer is in: this event runs on this set, whatever a reload
        // stores meanwhile, and the set's workers outlive it.
        let Some(set) = arc_swap::Guard::into_inner(current) else {
            return Ok(event);
        };
        let queue = &set.shared.queue;
        let closed = set.shared.config.fails_closed(event.name);
        let (job, answer) = Job::new(event, closed);
        let job = if dry_run { job.dry_run() } else { job };
        // Answered or given up, this caller passes on the answers a worker left with it.
        let _pass_on = PassOn(queue, std::thread::current().id());
        let answer = match queue.push(job) {
            Some(worker) => set.drain(worker, answer).await,
            None => answer.await,
        };
        // A job dropped unanswered answers by itself, so the error arm cannot lose an
        // event; it only covers a reply channel that vanished without either.
        answer.unwrap_or_else(|_| {
            Err(HookRejected::failed(
                "(hook worker)",
                "the hook worker stopped without answering; send the event again",
            ))
        })
    }

    /// Counters per hook, plus restarts and skipped events.
    pub fn stats(&self) -> HookStats {
        self.cell
            .current
            .load()
            .as_ref()
            .map(|set| set.shared.stats.snapshot())
            .unwrap_or_default()
    }

    /// Lift the quarantine of hook `name` (`<event_dir>/<file>`, as in [`HookStats`]):
    /// it runs again from the next event. `Ok(true)` if it was quarantined.
    pub fn release(&self, name: &str) -> Result<bool, UnknownHook> {
        let current = self.cell.current.load();
        let hooks = current.as_ref().map(|set| &set.shared.stats.hooks[..]);
        let hooks = hooks.unwrap_or_default();
        let Some(hook) = hooks.iter().find(|h| h.file() == name) else {
            return Err(UnknownHook {
                name: name.to_owned(),
                known: hooks.iter().map(|h| h.file().to_owned()).collect(),
            });
        };
        let released = hook.release();
        if released {
            tracing::info!(target: "hooks", hook = %name, "hook released from quarantine; it runs again");
        }
        Ok(released)
    }

    /// Test support: make every worker fail on purpose.
    #[doc(hidden)]
    pub async fn inject_fault(&self, fault: Fault) {
        let Some(set) = self.cell.current.load_full() else {
            return;
        };
        for worker in 0..set.worker_count() {
            let _ = set.addr(worker).send(InjectFault(fault)).await;
        }
    }
}

/// The set `start` runs: every script discovered, those that do not compile logged and
/// left out (or, at a fail-closed event, kept to refuse it). `None`: nothing to run.
fn first_set(config: &HooksConfig) -> Option<HookSet> {
    if !config.enabled {
        tracing::info!(target: "hooks", "hooks disabled in the config");
        return None;
    }
    let found = discover(&config.directory, config.directory_explicit);
    log_discovery(&found);
    if found.files.is_empty() {
        return None;
    }
    let files = found.files;
    let load_errors = load_errors(config, &files);
    let mut not_loaded = Vec::new();
    for (file, err) in files.iter().zip(&load_errors) {
        if let Some(err) = err {
            let effect = if config.fails_closed(file.event) {
                "its event fails closed, so each one is refused until the script is fixed"
            } else {
                "skipping it"
            };
            tracing::error!(target: "hooks", hook = %file.name, path = %file.path.display(), error = %err, "hook not loaded; {effect}");
            not_loaded.push(file.name.clone());
        }
    }
    let scripts = files.len() - not_loaded.len();
    let set = HookSet::start(config, files, load_errors, None);
    let (events, workers) = (set.events.len(), set.worker_count());
    let not_loaded = not_loaded.join(", ");
    let directory = config.directory.display();
    if not_loaded.is_empty() {
        tracing::info!(target: "hooks", scripts, events, workers, directory = %directory, "hooks started");
    } else {
        tracing::warn!(target: "hooks", scripts, events, workers, directory = %directory, not_loaded = %not_loaded, "hooks started; some scripts did not load");
    }
    Some(set)
}

/// Runs [`JobQueue::pass_on`] for the thread that queued the job (where a worker left
/// its neighbours' answers) when the caller is done, however it is done.
struct PassOn<'a>(&'a JobQueue, ThreadId);

impl Drop for PassOn<'_> {
    fn drop(&mut self) {
        self.0.pass_on(self.1);
    }
}
