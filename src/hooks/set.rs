//! One set of hooks: the scripts of one load, their workers and counters; a reload swaps it whole.
//!
//! A caller takes the current set once per event and keeps it until the event's answer
//! is in, so an event runs entirely on one set. The set's workers stop when the last
//! holder lets go: after a swap, that is when the last event still running on it has
//! its answer.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use actix::prelude::*;
use futures::future::{select, Either};
use tokio::sync::oneshot::{self, error::RecvError};

use crate::config::HooksConfig;
use crate::event::EventName;

use super::actor::{Drain, HookActor, Shared};
use super::discover::HookFile;
use super::queue::{Answer, JobQueue};
use super::stats::{Counters, SharedStats};

/// The workers and counters of one load of the scripts.
pub(super) struct HookSet {
    pub shared: Arc<Shared>,
    /// Events a worker must see: those with a script that loaded, and fail-closed events
    /// with any script (one that did not load refuses them). Others never reach a worker.
    pub events: HashSet<EventName>,
    workers: Vec<Mutex<Running>>,
}

struct Running {
    addr: Addr<HookActor>,
    arbiter: ArbiterHandle,
}

impl HookSet {
    /// Start `config.workers` workers for `files` (`load_errors[i]`: why file `i` did not
    /// compile). `before` is the set this one replaces: a file with the same name and
    /// text keeps its counters and quarantine from it. Needs a running actix `System`.
    pub fn start(
        config: &HooksConfig,
        files: Vec<HookFile>,
        load_errors: Vec<Option<String>>,
        before: Option<&HookSet>,
    ) -> HookSet {
        let workers = config.workers.max(1);
        let stats = match before {
            None => SharedStats::new(&files, workers, config.quarantine_after),
            Some(before) => {
                let keep = before.unchanged_counters(&files);
                let before = &before.shared.stats;
                SharedStats::carried(&files, keep, before, workers, config.quarantine_after)
            }
        };
        let stats = Arc::new(stats);
        let mut events = HashSet::new();
        for (i, (file, err)) in files.iter().zip(&load_errors).enumerate() {
            match err {
                None => stats.hooks[i].loaded(),
                Some(err) => stats.hooks[i].not_loaded_because(err),
            }
            if err.is_none() || config.fails_closed(file.event) {
                events.insert(file.event);
            }
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
        HookSet {
            shared,
            events,
            workers,
        }
    }

    /// For each of `files`, this set's counters of the same file if its text is unchanged.
    fn unchanged_counters(&self, files: &[HookFile]) -> Vec<Option<Arc<Counters>>> {
        let mine: HashMap<&str, (&str, &Arc<Counters>)> = self
            .shared
            .files
            .iter()
            .zip(&self.shared.stats.hooks)
            .map(|(f, c)| (f.name.as_str(), (f.source.as_str(), c)))
            .collect();
        files
            .iter()
            .map(|f| match mine.get(f.name.as_str()) {
                Some((source, counters)) if *source == f.source => Some(Arc::clone(counters)),
                _ => None,
            })
            .collect()
    }

    /// How many workers the set runs.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    pub fn addr(&self, worker: usize) -> Addr<HookActor> {
        self.workers[worker]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .addr
            .clone()
    }

    /// Have `worker` run the queue, and wait for `answer`. Watching the drain's `done`
    /// alongside is how a dead worker shows: a stopped actor drops the message
    /// unhandled, so it is restarted and asked again.
    pub async fn drain(
        &self,
        worker: usize,
        answer: oneshot::Receiver<Answer>,
    ) -> Result<Answer, RecvError> {
        let queue = &self.shared.queue;
        let addr = self.addr(worker);
        let answer = match HookSet::send_drain(&addr, queue, worker, answer).await {
            Ok(answered) => return answered,
            Err(answer) => answer,
        };
        tracing::error!(target: "hooks", worker, "hook worker is gone; starting a new one");
        let addr = self.restart(worker, &addr);
        if !queue.claim(worker) {
            // Another caller woke it in the meantime; it runs our job too.
            return answer.await;
        }
        match HookSet::send_drain(&addr, queue, worker, answer).await {
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

impl Drop for HookSet {
    fn drop(&mut self) {
        // The last holder is gone (the handle swapped this set out, or the service ends)
        // and every event that ran on it has its answer: let the workers' threads end.
        for worker in &mut self.workers {
            worker
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .arbiter
                .stop();
        }
    }
}
