//! `Hooks`: the cloneable handle the service uses to run hooks, and `check` for the CLI.
//!
//! The handle answers events without hooks itself, without a hop to the actor's thread,
//! so they cost a set lookup. Events with hooks are sent to the actor; many may be in
//! flight at once (each caller awaits its own reply, nothing serialises the sends).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;

use actix::prelude::*;
use futures::future::{select, Either};
use tokio::sync::oneshot::{self, error::RecvError};

use crate::config::HooksConfig;
use crate::event::{Event, EventName};

use super::actor::{Drain, Fault, HookActor, HookRejected, InjectFault};
use super::discover::{discover, HookFile};
use super::error::HookProblem;
use super::queue::{Answer, Job, JobQueue};
use super::sandbox::Sandbox;
use super::stats::{HookStats, SharedStats};

/// The hooks of a running service; clones share one actor and one set of counters.
#[derive(Clone)]
pub struct Hooks {
    inner: Option<Arc<Inner>>,
}

/// A hook that `check` compiled successfully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSummary {
    /// The event it runs on.
    pub event: EventName,
    /// `<event_dir>/<file>`.
    pub hook: String,
    /// Where it lives.
    pub path: PathBuf,
    /// Lower runs first.
    pub priority: u32,
}

struct Inner {
    config: HooksConfig,
    files: Arc<[HookFile]>,
    /// Events with at least one script; others never reach the actor.
    events: HashSet<EventName>,
    stats: Arc<SharedStats>,
    queue: Arc<JobQueue>,
    running: Mutex<Running>,
}

struct Running {
    addr: Addr<HookActor>,
    arbiter: ArbiterHandle,
}

impl Hooks {
    /// Discover the scripts and start the actor on its own arbiter (needs a running actix
    /// `System`). Scripts that do not load are logged and skipped; this never fails.
    pub fn start(config: &HooksConfig) -> Hooks {
        if !config.enabled {
            tracing::info!(target: "hooks", "hooks disabled in the config");
            return Hooks::disabled();
        }
        let found = discover(&config.directory);
        for problem in &found.problems {
            tracing::error!(target: "hooks", path = %problem.path.display(), error = %problem.message, "hook not loaded; skipping it");
        }
        if found.files.is_empty() {
            return Hooks::disabled();
        }
        let events: HashSet<EventName> = found.files.iter().map(|f| f.event).collect();
        let files: Arc<[HookFile]> = found.files.into();
        let stats = Arc::new(SharedStats::new(&files));
        let queue = Arc::new(JobQueue::default());
        let (addr, arbiter) =
            HookActor::spawn(config.clone(), Arc::clone(&files), Arc::clone(&stats));
        tracing::info!(target: "hooks", scripts = files.len(), events = events.len(), directory = %config.directory.display(), "hooks started");
        Hooks {
            inner: Some(Arc::new(Inner {
                config: config.clone(),
                files,
                events,
                stats,
                queue,
                running: Mutex::new(Running { addr, arbiter }),
            })),
        }
    }

    /// A handle that passes every event through unchanged.
    pub fn disabled() -> Hooks {
        Hooks { inner: None }
    }

    /// Whether any script exists for `event` (false for a disabled handle).
    pub fn has_hooks(&self, event: EventName) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|inner| inner.events.contains(&event))
    }

    /// Run the event's hooks. The event is never lost: if the actor is gone it is started
    /// again once, and if that fails too the event passes through unchanged.
    pub async fn apply(&self, event: Event) -> Result<Event, HookRejected> {
        let Some(inner) = self
            .inner
            .as_ref()
            .filter(|i| i.events.contains(&event.name))
        else {
            return Ok(event);
        };
        let (job, answer) = Job::new(event);
        // Answered or given up, this caller passes on the answers the actor left with it.
        let _pass_on = PassOn(&inner.queue, std::thread::current().id());
        let answer = if inner.queue.push(job) {
            inner.drain(answer).await
        } else {
            answer.await
        };
        // A job dropped unanswered answers with its event, so the error arm cannot lose
        // an event; it only covers a reply channel that vanished without either.
        answer.unwrap_or_else(|_| {
            Err(HookRejected {
                hook: "(hook actor)".into(),
                reason: "the hook actor stopped without answering; send the event again".into(),
            })
        })
    }

    /// Counters per hook, plus restarts and skipped events.
    pub fn stats(&self) -> HookStats {
        self.inner
            .as_ref()
            .map(|inner| inner.stats.snapshot())
            .unwrap_or_default()
    }

    /// Test support: make the actor fail on purpose.
    #[doc(hidden)]
    pub async fn inject_fault(&self, fault: Fault) {
        if let Some(inner) = &self.inner {
            let _ = inner.addr().send(InjectFault(fault)).await;
        }
    }
}

/// Runs [`JobQueue::pass_on`] for the thread that queued the job (where the actor left
/// its neighbours' answers) when the caller is done, however it is done.
struct PassOn<'a>(&'a JobQueue, ThreadId);

impl Drop for PassOn<'_> {
    fn drop(&mut self) {
        self.0.pass_on(self.1);
    }
}

impl Inner {
    fn addr(&self) -> Addr<HookActor> {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .addr
            .clone()
    }

    /// Have the actor run the queue, and wait for `answer`. Watching the drain's `done`
    /// alongside is how a dead actor shows: a stopped actor drops the message unhandled,
    /// so it is restarted and asked again.
    async fn drain(&self, answer: oneshot::Receiver<Answer>) -> Result<Answer, RecvError> {
        let addr = self.addr();
        let answer = match Inner::send_drain(&addr, &self.queue, answer).await {
            Ok(answered) => return answered,
            Err(answer) => answer,
        };
        tracing::error!(target: "hooks", "hook actor is gone; starting a new one");
        let addr = self.restart(&addr);
        match Inner::send_drain(&addr, &self.queue, answer).await {
            Ok(answered) => answered,
            Err(answer) => {
                tracing::error!(target: "hooks", "hook actor failed again; queued events passed on without hooks");
                // Dropped jobs answer with their events unchanged.
                drop(self.queue.take());
                answer.await
            }
        }
    }

    /// Send one `Drain` and wait for `answer`; hands `answer` back if the actor dropped the
    /// drain unhandled. Waiting on the answer itself, not only on the drain's end, lets
    /// this caller be the one the actor wakes mid-batch (see `queue.rs`).
    async fn send_drain(
        addr: &Addr<HookActor>,
        queue: &Arc<JobQueue>,
        mut answer: oneshot::Receiver<Answer>,
    ) -> Result<Result<Answer, RecvError>, oneshot::Receiver<Answer>> {
        let (drain, done) = Drain::new(queue);
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

    /// Replace the actor, unless a concurrent caller already replaced `failed`.
    fn restart(&self, failed: &Addr<HookActor>) -> Addr<HookActor> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running.addr == *failed {
            running.arbiter.stop();
            let (addr, arbiter) = HookActor::spawn(
                self.config.clone(),
                Arc::clone(&self.files),
                Arc::clone(&self.stats),
            );
            *running = Running { addr, arbiter };
            self.stats
                .actor_restarts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        running.addr.clone()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: let the arbiter's thread end with the VM on it.
        self.running
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .arbiter
            .stop();
    }
}

/// Discover and compile every script, as `serve` would, and report every problem at once
/// (file path and Lua error message). With hooks disabled there is nothing to check.
pub fn check(config: &HooksConfig) -> Result<Vec<HookSummary>, Vec<HookProblem>> {
    if !config.enabled {
        return Ok(Vec::new());
    }
    let found = discover(&config.directory);
    let mut problems = found.problems;
    let mut summaries = Vec::new();
    if !found.files.is_empty() {
        match Sandbox::new(config) {
            Ok(sandbox) => {
                for file in &found.files {
                    match sandbox.compile(file) {
                        Ok(_) => summaries.push(HookSummary {
                            event: file.event,
                            hook: file.name.clone(),
                            path: file.path.clone(),
                            priority: file.priority,
                        }),
                        Err(err) => problems.push(HookProblem {
                            path: file.path.clone(),
                            message: err.to_string(),
                        }),
                    }
                }
            }
            Err(err) => problems.push(HookProblem {
                path: config.directory.clone(),
                message: err.to_string(),
            }),
        }
    }
    if problems.is_empty() {
        Ok(summaries)
    } else {
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        Err(problems)
    }
}
