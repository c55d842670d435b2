//! `EventBus`: hooks first, then delivery to every subscribed plugin instance; many events in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;

use crate::event::{Event, EventName};
use crate::hooks::{HookRejected, Hooks};
use crate::supervisor::{
    Deliver, DeliverAndWait, DeliveryReport, Enrich, Handoff, HealthChanged, InstanceSpec,
    PluginSupervisor,
};

/// Run an event through hooks and hand it to its plugins.
#[derive(Message)]
#[rtype(result = "Result<Emitted, EmitError>")]
pub struct Emit {
    /// The event as the caller sent it.
    pub event: Event,
    /// Wait for every plugin's outcome (`emit_sync`) instead of returning after hooks.
    pub wait: bool,
}

/// What became of an emitted event.
#[derive(Debug, Clone)]
pub struct Emitted {
    /// The event after hooks.
    pub event: Arc<Event>,
    /// How many plugin instances it was handed to.
    pub plugins: usize,
    /// Each plugin's outcome, when the caller waited for them.
    pub deliveries: Option<Vec<DeliveryReport>>,
}

/// Why an event went no further.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmitError {
    /// A hook rejected it.
    #[error(transparent)]
    Rejected(#[from] HookRejected),
    /// The service is shutting down and takes no new events.
    #[error("the service is shutting down and takes no new events")]
    ShuttingDown,
    /// The supervisor is gone (only during shutdown).
    #[error("the plugin supervisor is not running")]
    SupervisorGone,
}

/// Event name → the supervisor's indices of the instances that act on it: enrichment
/// plugins (asked first, their fields merged) and delivery plugins (notifications and
/// webhooks, which get the enriched event).
#[derive(Debug)]
pub struct Subscriptions {
    enrich: HashMap<EventName, Arc<[usize]>>,
    deliver: HashMap<EventName, Arc<[usize]>>,
}

impl Subscriptions {
    /// The table for `specs` (their order is the supervisor's).
    pub fn new(specs: &[InstanceSpec]) -> Self {
        let table = |enrichers: bool| {
            EventName::ALL
                .iter()
                .map(|&name| {
                    let targets: Vec<usize> = specs
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.wants(name) && (s.role == "enrichment") == enrichers)
                        .map(|(i, _)| i)
                        .collect();
                    (name, Arc::from(targets))
                })
                .collect()
        };
        Subscriptions {
            enrich: table(true),
            deliver: table(false),
        }
    }

    /// The delivery instances that receive `name`.
    pub fn targets(&self, name: EventName) -> Arc<[usize]> {
        self.deliver
            .get(&name)
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// The enrichment instances asked about `name`.
    pub fn enrichers(&self, name: EventName) -> Arc<[usize]> {
        self.enrich
            .get(&name)
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }
}

/// The bus: hooks, then hands each event to the supervisor with its targets.
pub struct EventBus {
    hooks: Hooks,
    supervisor: Addr<PluginSupervisor>,
    handoff: Handoff,
    subscriptions: Arc<Subscriptions>,
    closed: Arc<AtomicBool>,
}

impl EventBus {
    /// A bus delivering through `supervisor` (fire-and-forget deliveries through its
    /// `handoff`) by the `subscriptions` table.
    pub fn new(
        hooks: Hooks,
        supervisor: Addr<PluginSupervisor>,
        handoff: Handoff,
        subscriptions: Arc<Subscriptions>,
        closed: Arc<AtomicBool>,
    ) -> Self {
        EventBus {
            hooks,
            supervisor,
            handoff,
            subscriptions,
            closed,
        }
    }
}

impl Actor for EventBus {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(65_536);
    }
}

impl Handler<Emit> for EventBus {
    type Result = ResponseFuture<Result<Emitted, EmitError>>;

    fn handle(&mut self, msg: Emit, _: &mut Context<Self>) -> Self::Result {
        if self.closed.load(Ordering::Acquire) {
            return Box::pin(async { Err(EmitError::ShuttingDown) });
        }
        let hooks = self.hooks.clone();
        let supervisor = self.supervisor.clone();
        let handoff = self.handoff.clone();
        let targets = self.subscriptions.targets(msg.event.name);
        let enrichers = self.subscriptions.enrichers(msg.event.name);
        Box::pin(async move {
            let mut event = Arc::new(hooks.apply(msg.event).await?);
            if !enrichers.is_empty() {
                // Fail-soft: enrichers that fail or are down leave the event as it was.
                let ask = Enrich {
                    event: Arc::clone(&event),
                    targets: enrichers,
                };
                if let Ok(enriched) = supervisor.send(ask).await {
                    event = Arc::new(enriched);
                }
            }
            let plugins = targets.len();
            if targets.is_empty() {
                let deliveries = msg.wait.then(Vec::new);
                return Ok(Emitted {
                    event,
                    plugins,
                    deliveries,
                });
            }
            let deliveries = if msg.wait {
                let wait = DeliverAndWait {
                    event: Arc::clone(&event),
                    targets,
                };
                Some(
                    supervisor
                        .send(wait)
                        .await
                        .map_err(|_| EmitError::SupervisorGone)?,
                )
            } else {
                // Hand-over only: the supervisor holds what it cannot deliver yet.
                handoff.deliver(Deliver {
                    event: Arc::clone(&event),
                    targets,
                });
                None
            };
            Ok(Emitted {
                event,
                plugins,
                deliveries,
            })
        })
    }
}

impl Handler<HealthChanged> for EventBus {
    type Result = ();

    fn handle(&mut self, msg: HealthChanged, ctx: &mut Context<Self>) {
        let plugin = msg.0.str_at("plugin").unwrap_or_default().to_owned();
        let fut = self.handle(
            Emit {
                event: msg.0,
                wait: false,
            },
            ctx,
        );
        actix::spawn(async move {
            if let Err(e) = fut.await {
                tracing::debug!(target: "supervision", plugin = %plugin, error = %e, "health event not delivered");
            }
        });
    }
}
