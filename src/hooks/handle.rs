//! `Hooks`: the cloneable handle the service uses to run hooks.
//!
//! The handle answers events without hooks itself, without a hop to a worker's thread,
//! so they cost a set lookup. Events with hooks are queued for the workers; many may be
//! in flight at once (each caller awaits its own reply, nothing serialises the sends).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;

use actix::prelude::*;
use futures::future::{select, Either};
use tokio::sync::oneshot::{self, error::RecvError};

use crate::config::HooksConfig;
use crate::event::{Event, EventName};

use super::actor::{Drain, Fault, HookActor, InjectFault, Shared};
use super::check::{load_errors, log_discovery};
use super::discover::discover;
use super::error::HookRejected;
use super::queue::{Answer, Job, JobQueue};
use super::stats::{HookStats, SharedStats};

/// The hooks of a running service; clones share the workers and one set of counters.
#[derive(Clone)]
pub struct Hooks {
    inner: Option<Arc<Inner>>,
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

struct Inner {
    shared: Arc<Shared>,
    /// Events a worker must see: those with a script that loaded, and fail-closed events
    /// with any script (one that did not load refuses them). Others never reach a worker.
    events: HashSet<EventName>,
    workers: Vec<Mutex<Running>>,
}

struct Running {
    addr: Addr<HookActor>,
    arbiter: ArbiterHandle,
}

impl Hooks {
    /// Discover the scripts, compile them once to see which load, and start
    /// `hooks.workers` workers on arbiters of their own (needs a running actix `System`).
    /// Scripts that do not load are logged and skipped; this never fails.
    pub fn start(config: &HooksConfig) -> Hooks {
        if !config.enabled {
            tracing::info!(target: "hooks", "hooks disabled in the config");
            return Hooks::disabled();
        }
        let found = discover(&config.directory, config.directory_explicit);
        log_discovery(&found);
        if found.files.is_empty() {
            return Hooks::disabled();
        }
        let files = found.files;
        let load_errors = load_errors(config, &files);
        let workers = config.workers.max(1);
        let stats = Arc::new(SharedStats::new(&files, workers, config.quarantine_after));
        let mut not_loaded = Vec::new();
        let mut events = HashSet::new();
        for (i, (file, err)) in files.iter().zip(&load_errors).enumerate() {
            match err {
                None => stats.hooks[i].loaded(),
                Some(err) => {
                    let effect = if config.fails_closed(file.event) {
                        "its event fails closed, so each one is refused until the script is fixed"
                    } else {
                        "skipping it"
                    };
                    tracing::error!(target: "hooks", hook = %file.name, path = %file.path.display(), error = %err, "hook not loaded; {effect}");
                    stats.hooks[i].not_loaded_because(err);
                    not_loaded.push(file.name.as_str());
                }
            }
            if err.is_none() || config.fails_closed(file.event) {
                events.insert(file.event);
            }
        }
        let scripts = files.len() - not_loaded.len();
        let not_loaded = not_loaded.join(", ");
        let directory = config.directory.display();
        if not_loaded.is_empty() {
            tracing::info!(target: "hooks", scripts, events = events.len(), workers, directory = %directory, "hooks started");
        } else {
            tracing::warn!(target: "hooks", scripts, events = events.len(), workers, directory = %directory, not_loaded = %not_loaded, "hooks started; some scripts did not load");
        }
        let shared = Arc::new(Shared {
            config: config.clone(),
            files,
            load_errors,
            stats,
            queue: Arc::new(JobQueue::new(workers)),
        });
        let workers = (0..workers)
            .map(|i| {
                let (addr, arbiter) = HookActor::spawn(i, Arc::clone(&shared));
                Mutex::new(Running { addr, arbiter })
            })
            .collect();
        Hooks {
            inner: Some(Arc::new(Inner {
                shared,
                events,
                workers,
            })),
        }
    }

    /// A handle that passes every event through unchanged.
    pub fn disabled() -> Hooks {
        Hooks { inner: None }
    }

    /// Whether hooks run at all (false for [`Hooks::disabled`]).
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Whether any script exists for `event` (false for a disabled handle).
    pub fn has_hooks(&self, event: EventName) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|inner| inner.events.contains(&event))
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
        let Some(inner) = self
            .inner
            .as_ref()
            .filter(|i| i.events.contains(&event.name))
        else {
            return Ok(event);
        };
        let queue = &inner.shared.queue;
        let closed = inner.shared.config.fails_closed(event.name);
        let (job, answer) = Job::new(event, closed);
        let job = if dry_run { job.dry_run() } else { job };
        // Answered or given up, this caller passes on the answers a worker left with it.
        let _pass_on = PassOn(queue, std::thread::current().id());
        let answer = match queue.push(job) {
            Some(worker) => inner.drain(worker, answer).await,
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
        self.inner
            .as_ref()
            .map(|inner| inner.shared.stats.snapshot())
            .unwrap_or_default()
    }

    /// Lift the quarantine of hook `name` (`<event_dir>/<file>`, as in [`HookStats`]):
    /// it runs again from the next event. `Ok(true)` if it was quarantined.
    pub fn release(&self, name: &str) -> Result<bool, UnknownHook> {
        let hooks = self.inner.as_ref().map(|i| &i.shared.stats.hooks[..]);
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
        if let Some(inner) = &self.inner {
            for worker in 0..inner.workers.len() {
                let _ = inner.addr(worker).send(InjectFault(fault)).await;
            }
        }
    }
}

/// Runs [`JobQueue::pass_on`] for the thread that queued the job (where a worker left
/// its neighbours' answers) when the caller is done, however it is done.
struct PassOn<'a>(&'a JobQueue, ThreadId);

impl Drop for PassOn<'_> {
    fn drop(&mut self) {
        self.0.pass_on(self.1);
    }
}

impl Inner {
    fn addr(&self, worker: usize) -> Addr<HookActor> {
        self.workers[worker]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .addr
            .clone()
    }

    /// Have `worker` run the queue, and wait for `answer`. Watching the drain's `done`
    /// alongside is how a dead worker shows: a stopped actor drops the message
    /// unhandled, so it is restarted and asked again.
    async fn drain(
        &self,
        worker: usize,
        answer: oneshot::Receiver<Answer>,
    ) -> Result<Answer, RecvError> {
        let queue = &self.shared.queue;
        let addr = self.addr(worker);
        let answer = match Inner::send_drain(&addr, queue, worker, answer).await {
            Ok(answered) => return answered,
            Err(answer) => answer,
        };
        tracing::error!(target: "hooks", worker, "hook worker is gone; starting a new one");
        let addr = self.restart(worker, &addr);
        if !queue.claim(worker) {
            // Another caller woke it in the meantime; it runs our job too.
            return answer.await;
        }
        match Inner::send_drain(&addr, queue, worker, answer).await {
            Ok(answered) => answered,
            Err(answer) => {
                tracing::error!(target: "hooks", worker, "hook worker failed again; queued events passed on without hooks (fail-closed ones refused)");
                // Dropped jobs answer by themselves.
                drop(queue.take());
                answer.await
            }
        }
    }

    /// Send one `Drain` and wait for `answer`; hands `answer` back if the worker dropped
    /// the drain unhandled. Waiting on the answer itself, not only on the drain's end,
    /// lets this caller be the one a worker wakes mid-batch (see `queue.rs`).
    async fn send_drain(
        addr: &Addr<HookActor>,
        queue: &Arc<JobQueue>,
        worker: usize,
        mut answer: oneshot::Receiver<Answer>,
    ) -> Result<Result<Answer, RecvError>, oneshot::Receiver<Answer>> {
        let (drain, done) = Drain::new(queue, worker);
        addr.do_send(drain);
        let done = match select(&mut answer, done).await {
            Either::Left((answered, _)) => return Ok(answered),
            Either::Right((done, _)) => done,
        };
        match done {
            Ok(()) => Ok(answer.await),
            Err(_) => Err(answer),
        }
    }

    /// Replace `worker`, unless a concurrent caller already replaced `failed`.
    fn restart(&self, worker: usize, failed: &Addr<HookActor>) -> Addr<HookActor> {
        let mut running = self.workers[worker]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if running.addr == *failed {
            running.arbiter.stop();
            let (addr, arbiter) = HookActor::spawn(worker, Arc::clone(&self.shared));
            *running = Running { addr, arbiter };
            self.shared
                .stats
                .actor_restarts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        running.addr.clone()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: let the arbiters' threads end with the VMs on them.
        for worker in &mut self.workers {
            worker
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .arbiter
                .stop();
        }
    }
}
