//! `PluginActor<R>`: one generic actor per plugin instance, on its own arbiter with its own HTTP client.
//!
//! The actor only runs the plugin's code and turns panics into [`PluginError::Panicked`];
//! timeouts, retries across deliveries, breakers and restarts belong to the supervisor,
//! which enforces them from its own thread so that a plugin that blocks its thread
//! cannot stop them from firing.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::FutureExt;

use crate::event::Event;
use crate::plugins::{ConnectionReport, Outcome, PluginContext, PluginError, Role};

/// Work for a plugin actor.
#[derive(Message)]
#[rtype(result = "Result<Reply, PluginError>")]
pub enum Call {
    /// Run the plugin's main call (notify, send_webhook or enrich) for each event, all at
    /// once, each within the timeout (the actor drops a call that outlives it, so a hung
    /// call leaks nothing). A batch costs one cross-thread round trip however many events
    /// it carries; answers come back in the same order.
    Deliver(Vec<Arc<Event>>, Duration),
    /// Run `test_connection`.
    Test,
    /// Answer at once: proves the actor's thread is not blocked.
    Ping,
}

/// A plugin actor's answer.
#[derive(Debug)]
pub enum Reply {
    /// One result per delivered event, in order.
    Outcomes(Vec<Result<Outcome, PluginError>>),
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

/// A running plugin actor: where to send calls, and the arbiter (thread) it lives on.
pub struct PluginHandle {
    /// The actor's mailbox.
    pub recipient: Recipient<Call>,
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
        recipient: addr.recipient(),
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

impl<R: Role> Handler<Call> for PluginActor<R> {
    type Result = ResponseFuture<Result<Reply, PluginError>>;

    fn handle(&mut self, msg: Call, _: &mut Context<Self>) -> Self::Result {
        let role = Arc::clone(&self.role);
        let cx = self.cx.clone();
        Box::pin(async move {
            let work = async {
                match msg {
                    Call::Deliver(events, timeout) => {
                        let (role, cx) = (&role, &cx);
                        let each = events.iter().map(|event| async move {
                            let call = AssertUnwindSafe(role.call(cx, event)).catch_unwind();
                            match tokio::time::timeout(timeout + CANCEL_GRACE, call).await {
                                Ok(Ok(r)) => r,
                                Ok(Err(panic)) => Err(PluginError::Panicked {
                                    message: panic_message(&panic),
                                }),
                                Err(_) => Err(PluginError::Timeout { after: timeout }),
                            }
                        });
                        Ok(Reply::Outcomes(futures::future::join_all(each).await))
                    }
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
