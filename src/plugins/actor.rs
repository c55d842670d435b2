//! `PluginActor<R>`: one generic actor per plugin instance, on its own arbiter with its own HTTP client.
//!
//! The actor only runs the plugin's code and turns panics into [`PluginError::Panicked`];
//! timeouts, retries across deliveries, breakers and restarts belong to the supervisor,
//! which enforces them from its own thread so that a plugin that blocks its thread
//! cannot stop them from firing.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use std::task::Poll;

use actix::prelude::*;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use crate::event::Event;
use crate::plugins::{ConnectionReport, Outcome, PluginContext, PluginError, Role};

/// Run the plugin's main call (notify, send_webhook or enrich) for each event, all at
/// once, each within the timeout (the actor drops a call that outlives it, so a hung
/// call leaks nothing). One message carries many deliveries; results stream back as
/// [`Done`] reports, each carrying whatever finished since the last, so a fast delivery
/// is never held back by a slow one in the same batch.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeliverBatch {
    /// The batch's tag, echoed in every [`Done`].
    pub batch: u64,
    /// `(sequence number, event)` pairs; the sequence number is echoed with each result.
    pub events: Vec<(u64, Arc<Event>)>,
    /// Per-delivery timeout.
    pub timeout: Duration,
    /// Where results go.
    pub reply: Recipient<Done>,
}

/// Results of some deliveries of a batch: `(index in the batch, sequence number, result)`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Done {
    /// The batch's tag.
    pub batch: u64,
    /// What finished.
    pub results: Vec<(usize, u64, Result<Outcome, PluginError>)>,
}

/// Work for a plugin actor.
#[derive(Message)]
#[rtype(result = "Result<Reply, PluginError>")]
pub enum Call {
    /// Run `test_connection`.
    Test,
    /// Answer at once: proves the actor's thread is not blocked.
    Ping,
}

/// A plugin actor's answer.
#[derive(Debug)]
pub enum Reply {
    /// `test_connection` succeeded.
    Report(ConnectionReport),
    /// The actor is alive.
    Pong,
}

/// The supervisor times a delivery out first; the actor cancels it a little later, so the
/// supervisor's verdict is the one that counts.
const CANCEL_GRACE: Duration = Duration::from_millis(100);

/// Runs one plugin instance.
pub struct PluginActor<R: Role> {
    role: Arc<R>,
    cx: PluginContext,
}

/// A running plugin actor: where to send work, and the arbiter (thread) it lives on.
pub struct PluginHandle {
    /// Deliveries.
    pub deliveries: Recipient<DeliverBatch>,
    /// Tests and pings.
    pub calls: Recipient<Call>,
    arbiter: Arbiter,
}

impl PluginHandle {
    /// Stop the actor's arbiter. A thread that is blocked ends when it unblocks; nothing waits for it.
    pub fn stop(self) {
        self.arbiter.stop();
    }
}

/// Start `role` as instance `instance` on a new arbiter; its HTTP client is built there.
pub fn spawn<R: Role>(instance: String, role: R) -> PluginHandle {
    let arbiter = Arbiter::new();
    let addr = PluginActor::start_in_arbiter(&arbiter.handle(), move |_| PluginActor {
        role: Arc::new(role),
        cx: PluginContext {
            instance,
            http: crate::http::new_client(),
        },
    });
    PluginHandle {
        deliveries: addr.clone().recipient(),
        calls: addr.recipient(),
        arbiter,
    }
}

impl<R: Role> Actor for PluginActor<R> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Deliveries are bounded by the supervisor's in-flight limit; the mailbox only
        // needs room for a burst of those plus pings.
        ctx.set_mailbox_capacity(1024);
    }
}

impl<R: Role> Handler<DeliverBatch> for PluginActor<R> {
    type Result = ();

    fn handle(&mut self, msg: DeliverBatch, _: &mut Context<Self>) {
        let role = Arc::clone(&self.role);
        let cx = self.cx.clone();
        // A task of its own, not a future in this actor's context (which polls all of
        // its futures on every wake).
        actix::spawn(async move {
            let (role, cx, timeout) = (&role, &cx, msg.timeout);
            let mut running: FuturesUnordered<_> = msg
                .events
                .iter()
                .enumerate()
                .map(|(i, (seq, event))| async move {
                    let call = AssertUnwindSafe(role.call(cx, event)).catch_unwind();
                    let result = match tokio::time::timeout(timeout + CANCEL_GRACE, call).await {
                        Ok(Ok(r)) => r,
                        Ok(Err(panic)) => Err(PluginError::Panicked {
                            message: panic_message(&panic),
                        }),
                        Err(_) => Err(PluginError::Timeout { after: timeout }),
                    };
                    (i, *seq, result)
                })
                .collect();
            let mut ready = Vec::new();
            // Report what is done each time the rest must wait: one message for
            // everything that finished together.
            futures::future::poll_fn(|task| loop {
                match running.poll_next_unpin(task) {
                    Poll::Ready(Some(r)) => ready.push(r),
                    done_or_waiting => {
                        if !ready.is_empty() {
                            let results = std::mem::take(&mut ready);
                            msg.reply.do_send(Done {
                                batch: msg.batch,
                                results,
                            });
                        }
                        return done_or_waiting.map(|_| ());
                    }
                }
            })
            .await;
        });
    }
}

impl<R: Role> Handler<Call> for PluginActor<R> {
    type Result = ResponseFuture<Result<Reply, PluginError>>;

    fn handle(&mut self, msg: Call, _: &mut Context<Self>) -> Self::Result {
        let role = Arc::clone(&self.role);
        let cx = self.cx.clone();
        Box::pin(async move {
            let work = async {
                match msg {
                    Call::Test => role.test(&cx).await.map(Reply::Report),
                    Call::Ping => Ok(Reply::Pong),
                }
            };
            AssertUnwindSafe(work)
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    Err(PluginError::Panicked {
                        message: panic_message(&panic),
                    })
                })
        })
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-text payload".to_owned())
}
