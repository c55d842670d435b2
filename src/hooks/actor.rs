//! `HookActor`: owns the Luau VM on its own arbiter and runs the hook chain for each event.
//!
//! Lua is `!Send`, so the VM is created inside the start closure, on the arbiter's thread,
//! and never leaves it. Hook calls block (up to the budget per hook), which is why the
//! actor has an arbiter to itself: a blocking handler freezes every actor on its arbiter.
//! Panics are caught around each run and answered with a fresh VM ("itself supervised").

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::config::HooksConfig;
use crate::event::Event;

use super::chain::Chain;
use super::discover::HookFile;
use super::queue::{JobQueue, Outbox};
use super::stats::SharedStats;

/// A hook called `reject("reason")`: the event goes no further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rejected by hook {hook}: {reason}")]
pub struct HookRejected {
    /// The hook's file, relative to the hooks directory (e.g. `after_media_added/10_tag.lua`).
    pub hook: String,
    /// The reason it gave.
    pub reason: String,
}

/// Run every job waiting in the shared queue, then tell the caller that asked.
///
/// Sent with `do_send`, never `send`: actix skips a message whose reply nobody awaits
/// any more, so a cancelled caller used to leave the queue waiting for a drain that
/// never came, and every later event with it. Dropped unhandled (the actor is gone), it
/// clears the queue's pending flag so that the next event asks again.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Drain {
    queue: Arc<JobQueue>,
    done: Option<oneshot::Sender<()>>,
}

/// Test support: make the actor fail on purpose, to exercise recovery.
#[doc(hidden)]
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectFault(pub Fault);

/// Which failure [`InjectFault`] causes.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Panic inside the next event's hook run (the VM is then rebuilt).
    PanicOnNextEvent,
    /// Stop the actor, closing its mailbox (the `Hooks` handle then starts a new one).
    Stop,
}

/// Owns the VM and the compiled hooks.
pub struct HookActor {
    config: HooksConfig,
    files: Arc<[HookFile]>,
    stats: Arc<SharedStats>,
    /// `None` only if the VM itself could not be created; events then pass through.
    chain: Option<Chain>,
    panic_next: bool,
}

impl HookActor {
    pub(crate) fn spawn(
        config: HooksConfig,
        files: Arc<[HookFile]>,
        stats: Arc<SharedStats>,
    ) -> (Addr<HookActor>, ArbiterHandle) {
        let arbiter = Arbiter::new().handle();
        let addr = HookActor::start_in_arbiter(&arbiter, move |_| {
            let chain = build_chain(&config, &files, &stats);
            HookActor {
                config,
                files,
                stats,
                chain,
                panic_next: false,
            }
        });
        (addr, arbiter)
    }

    /// The hook chain for one event; panics caught, the VM rebuilt when needed.
    fn run(&mut self, event: Event) -> Result<Event, HookRejected> {
        let Some(chain) = self.chain.as_ref() else {
            return Ok(event);
        };
        let inject = std::mem::take(&mut self.panic_next);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if inject {
                panic!("injected fault");
            }
            chain.run(&event)
        }));
        let exhausted = chain.exhausted();
        let answer = match outcome {
            Ok(Ok(Some(data))) => Ok(Event { data, ..event }),
            Ok(Ok(None)) => Ok(event),
            Ok(Err(rejected)) => Err(rejected),
            Err(panic) => {
                tracing::error!(target: "hooks", event = %event.name, id = %event.id, panic = %panic_text(&*panic), "hook chain panicked; event passed on unchanged, rebuilding the vm");
                self.rebuild();
                return Ok(event);
            }
        };
        if exhausted {
            tracing::warn!(target: "hooks", "lua memory stays exhausted after collection; rebuilding the vm");
            self.rebuild();
        }
        answer
    }

    fn rebuild(&mut self) {
        // Drop the old VM first: two at once could need twice the memory limit.
        self.chain = None;
        self.chain = build_chain(&self.config, &self.files, &self.stats);
        self.stats
            .vm_restarts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Actor for HookActor {
    type Context = Context<Self>;
}

impl Handler<Drain> for HookActor {
    type Result = ();

    fn handle(&mut self, mut drain: Drain, _: &mut Context<Self>) {
        // Answers go out a batch per wake; see `queue.rs`.
        let mut outbox = Outbox::new(&drain.queue);
        for mut job in drain.queue.take() {
            if let Some(event) = job.take_event() {
                let answer = self.run(event);
                outbox.push(job.answered(answer));
            }
        }
        drop(outbox);
        if let Some(done) = drain.done.take() {
            let _ = done.send(());
        }
    }
}

impl Handler<InjectFault> for HookActor {
    type Result = ();

    fn handle(&mut self, InjectFault(fault): InjectFault, ctx: &mut Context<Self>) {
        match fault {
            Fault::PanicOnNextEvent => self.panic_next = true,
            Fault::Stop => ctx.stop(),
        }
    }
}

impl Drain {
    /// A drain of `queue`, and the receiver that hears when it is done (or dropped).
    pub(crate) fn new(queue: &Arc<JobQueue>) -> (Drain, oneshot::Receiver<()>) {
        let (done, rx) = oneshot::channel();
        let drain = Drain {
            queue: Arc::clone(queue),
            done: Some(done),
        };
        (drain, rx)
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        if self.done.is_some() {
            self.queue.drain_lost();
        }
    }
}

fn build_chain(
    config: &HooksConfig,
    files: &[HookFile],
    stats: &Arc<SharedStats>,
) -> Option<Chain> {
    match Chain::build(config, files, stats) {
        Ok(chain) => Some(chain),
        Err(err) => {
            tracing::error!(target: "hooks", error = %err, "cannot create the lua vm; events pass through without hooks");
            None
        }
    }
}

fn panic_text(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}
