//! `HookActor`: one hook worker, owning a Luau VM on its own arbiter and running the hook
//! chain for each event it takes from the shared queue.
//!
//! Lua is `!Send`, so the VM is created inside the start closure, on the arbiter's thread,
//! and never leaves it. Hook calls block (up to the budget per hook), which is why each
//! worker has an arbiter to itself: a blocking handler freezes every actor on its arbiter.
//! There are `hooks.workers` of them, each with its own compiled copy of the scripts, so
//! a slow event holds up only its own worker. Panics are caught around each run and
//! answered with a fresh VM ("itself supervised").

use std::any::Any;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::config::HooksConfig;
use crate::event::Event;

use super::chain::Chain;
use super::discover::HookFile;
use super::error::HookRejected;
use super::queue::{JobQueue, Outbox};
use super::stats::SharedStats;

/// Take jobs from the shared queue until it is empty, then tell the caller that asked.
///
/// Sent with `do_send`, never `send`: actix skips a message whose reply nobody awaits
/// any more, so a cancelled caller used to leave the queue waiting for a drain that
/// never came, and every later event with it. Dropped unhandled (the worker is gone), it
/// puts the worker back on the idle list, so that the next event wakes it again.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Drain {
    queue: Arc<JobQueue>,
    worker: usize,
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

/// What every worker shares: the config, the scripts, the counters and the queue.
pub(crate) struct Shared {
    pub config: HooksConfig,
    /// Every discovered script, in run order (the index of its counters).
    pub files: Vec<HookFile>,
    /// Why each script did not compile at start; `None`: it did.
    pub load_errors: Vec<Option<String>>,
    pub stats: Arc<SharedStats>,
    pub queue: Arc<JobQueue>,
}

/// One worker: a VM and the compiled hooks.
pub struct HookActor {
    index: usize,
    shared: Arc<Shared>,
    /// Answers on their way back; the VM's interrupt sends them while a slow hook runs.
    outbox: Rc<RefCell<Outbox>>,
    /// `None` only if the VM itself could not be created.
    chain: Option<Chain>,
    panic_next: bool,
}

impl HookActor {
    pub(crate) fn spawn(index: usize, shared: Arc<Shared>) -> (Addr<HookActor>, ArbiterHandle) {
        let arbiter = Arbiter::new().handle();
        let addr = HookActor::start_in_arbiter(&arbiter, move |_| {
            let outbox = Rc::new(RefCell::new(Outbox::new(Arc::clone(&shared.queue))));
            let mut actor = HookActor {
                index,
                shared,
                outbox,
                chain: None,
                panic_next: false,
            };
            actor.chain = actor.build_chain();
            actor
        });
        (addr, arbiter)
    }

    /// The hook chain for one event; panics caught, the VM rebuilt when needed.
    fn run(&mut self, event: Event, dry_run: bool) -> Result<Event, HookRejected> {
        let closed = self.shared.config.fails_closed(event.name);
        let Some(chain) = self.chain.as_ref() else {
            if closed {
                return Err(HookRejected::failed(
                    "(hook worker)",
                    "the lua vm could not be created (see the service log)",
                ));
            }
            return Ok(event);
        };
        chain.set_due(self.outbox.borrow().due());
        let inject = std::mem::take(&mut self.panic_next);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if inject {
                panic!("injected fault");
            }
            chain.run(&event, dry_run)
        }));
        let exhausted = chain.exhausted();
        let answer = match outcome {
            Ok(Ok(Some(data))) => Ok(Event { data, ..event }),
            Ok(Ok(None)) => Ok(event),
            Ok(Err(rejected)) => Err(rejected),
            Err(panic) => {
                let panic = panic_text(&*panic).to_owned();
                tracing::error!(target: "hooks", event = %event.name, id = %event.id, panic = %panic, "hook chain panicked; rebuilding the vm");
                self.rebuild();
                if closed {
                    return Err(HookRejected::failed(
                        "(hook worker)",
                        format!("the hook chain panicked: {panic}"),
                    ));
                }
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
        self.chain = self.build_chain();
        self.shared
            .stats
            .vm_restarts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn build_chain(&self) -> Option<Chain> {
        let s = &self.shared;
        match Chain::build(&s.config, &s.files, &s.load_errors, &s.stats, self.index) {
            Ok(chain) => {
                let outbox = Rc::clone(&self.outbox);
                chain.set_on_due(Box::new(move || {
                    if let Ok(mut outbox) = outbox.try_borrow_mut() {
                        outbox.flush();
                    }
                }));
                Some(chain)
            }
            Err(err) => {
                tracing::error!(target: "hooks", worker = self.index, error = %err, "cannot create the lua vm; events pass through without hooks (fail-closed events are refused)");
                None
            }
        }
    }
}

impl Actor for HookActor {
    type Context = Context<Self>;
}

impl Handler<Drain> for HookActor {
    type Result = ();

    fn handle(&mut self, mut drain: Drain, _: &mut Context<Self>) {
        // One job at a time, so the other workers take those behind a slow one.
        while let Some(mut job) = self.shared.queue.next(self.index) {
            if let Some(event) = job.take_event() {
                let answer = self.run(event, job.is_dry_run());
                self.outbox.borrow_mut().push(job.answered(answer));
            }
        }
        self.outbox.borrow_mut().flush();
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
    /// A drain for `worker`, and the receiver that hears when it is done (or dropped).
    pub(crate) fn new(queue: &Arc<JobQueue>, worker: usize) -> (Drain, oneshot::Receiver<()>) {
        let (done, rx) = oneshot::channel();
        let drain = Drain {
            queue: Arc::clone(queue),
            worker,
            done: Some(done),
        };
        (drain, rx)
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        if self.done.is_some() {
            self.queue.drain_lost(self.worker);
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
