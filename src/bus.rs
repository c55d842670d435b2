//! `EventBus`: hooks first, then delivery to every subscribed plugin instance; many events in flight.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;

use tokio::sync::oneshot;

use crate::event::{Event, EventName};
use crate::hooks::{HookRejected, Hooks};
use crate::store::{Store, StoreError};
use crate::supervisor::{
    Deliver, DeliveryReport, Enrich, Handoff, HealthChanged, InstanceSpec, PluginSupervisor,
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
    /// An event with this id was accepted before: `event` is the stored one, and nothing
    /// new is delivered.
    pub duplicate: bool,
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
    /// The store could not take the event (nothing was accepted).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The subscription table in use, replaced when an instance is enabled or disabled while
/// running. Read once per event (an uncontended read lock and an `Arc` clone).
#[derive(Debug)]
pub struct Routing(std::sync::RwLock<Arc<Subscriptions>>);

impl Routing {
    /// Routing by `table`.
    pub fn new(table: Subscriptions) -> Self {
        Routing(std::sync::RwLock::new(Arc::new(table)))
    }

    /// The table now.
    pub fn current(&self) -> Arc<Subscriptions> {
        Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Route by `table` from the next event on.
    pub fn replace(&self, table: Subscriptions) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(table);
    }
}

/// Event name → the supervisor's indices of the instances that act on it: enrichment
/// plugins (asked first, their fields merged) and delivery plugins (notifications and
/// webhooks, which get the enriched event).
#[derive(Debug)]
pub struct Subscriptions {
    /// Indexed by [`EventName::index`], as all three tables.
    enrich: Vec<Arc<[usize]>>,
    deliver: Vec<Arc<[usize]>>,
    /// The names of `deliver`'s instances, in the same order (the store's rows).
    names: Vec<Arc<[Arc<str>]>>,
    all_names: Vec<Arc<str>>,
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
                    Arc::from(targets)
                })
                .collect()
        };
        let all_names: Vec<Arc<str>> = specs.iter().map(|s| Arc::from(s.name.as_str())).collect();
        let deliver: Vec<Arc<[usize]>> = table(false);
        let names = deliver
            .iter()
            .map(|targets| {
                let names: Vec<Arc<str>> =
                    targets.iter().map(|&i| Arc::clone(&all_names[i])).collect();
                Arc::from(names)
            })
            .collect();
        Subscriptions {
            enrich: table(true),
            deliver,
            names,
            all_names,
        }
    }

    /// The delivery instances that receive `name`.
    pub fn targets(&self, name: EventName) -> Arc<[usize]> {
        Arc::clone(&self.deliver[name.index()])
    }

    /// The delivery instances `event` goes to and their names. A health event about an
    /// instance is for the others.
    pub fn deliveries(&self, event: &Event) -> (Arc<[usize]>, Arc<[Arc<str>]>) {
        let targets = self.targets(event.name);
        let names = Arc::clone(&self.names[event.name.index()]);
        let about = (event.name == EventName::OnPluginHealthChanged)
            .then(|| event.str_at("plugin"))
            .flatten();
        match about {
            Some(me) if names.iter().any(|n| &**n == me) => {
                let keep: Vec<usize> = targets
                    .iter()
                    .copied()
                    .filter(|&i| &*self.all_names[i] != me)
                    .collect();
                let names: Vec<Arc<str>> = keep
                    .iter()
                    .map(|&i| Arc::clone(&self.all_names[i]))
                    .collect();
                (Arc::from(keep), Arc::from(names))
            }
            _ => (targets, names),
        }
    }

    /// The enrichment instances asked about `name`.
    pub fn enrichers(&self, name: EventName) -> Arc<[usize]> {
        Arc::clone(&self.enrich[name.index()])
    }
}

/// The accept step, shared by the bus and the handle's fast path: store `event` with one
/// delivery per target, and hand it to the supervisor once that is committed (the
/// store's writer hands over in commit order, so each instance sees acceptance order).
/// With `wait`, also wait for every plugin's outcome.
pub async fn accept(
    store: &Store,
    handoff: &Handoff,
    subscriptions: &Subscriptions,
    event: Arc<Event>,
    wait: bool,
) -> Result<Emitted, EmitError> {
    let (targets, names) = subscriptions.deliveries(&event);
    let plugins = targets.len();
    let (waiters, answers): (Option<Vec<_>>, Vec<_>) = if wait {
        let (tx, rx): (Vec<_>, Vec<_>) = names
            .iter()
            .map(|n| {
                let (tx, rx) = oneshot::channel();
                (tx, (n.to_string(), rx))
            })
            .unzip();
        (Some(tx), rx)
    } else {
        (None, Vec::new())
    };
    // The store's answer. Not tokio's oneshot: that one takes from the caller's task
    // budget, so a caller awaiting many accepts in one task (a `buffer_unordered` of
    // emits) had each answer after its 128th refused and re-polled later, though it was
    // already there (perf: a sixth of the emitting thread in futures' wakers).
    let (tx, rx) = futures::channel::oneshot::channel();
    let handoff = handoff.clone();
    let stored = Arc::clone(&event);
    store.accept(
        Arc::clone(&event),
        names,
        Box::new(move |r| {
            let r = r.map(|a| {
                if a.duplicate.is_none() && !targets.is_empty() {
                    handoff.deliver(Deliver {
                        event: stored,
                        targets,
                        first: a.first,
                        waiters,
                    });
                }
                a.duplicate
            });
            let _ = tx.send(r);
        }),
    );
    let duplicate = rx.await.map_err(|_| StoreError::Closed)??;
    if let Some(stored) = duplicate {
        return Ok(Emitted {
            event: stored,
            plugins: 0,
            deliveries: wait.then(Vec::new),
            duplicate: true,
        });
    }
    let deliveries = if wait {
        let mut reports = Vec::with_capacity(answers.len());
        for (plugin, rx) in answers {
            reports.push(rx.await.unwrap_or_else(|_| DeliveryReport {
                plugin,
                status: "queued",
                detail: None,
                error_kind: Some("unavailable"),
                error: Some("the supervisor stopped before the delivery finished; it is kept for the next start".into()),
                duration_ms: 0,
                patch: None,
            }));
        }
        Some(reports)
    } else {
        None
    };
    Ok(Emitted {
        event,
        plugins,
        deliveries,
        duplicate: false,
    })
}

/// The bus: hooks, then hands each event to the supervisor with its targets.
pub struct EventBus {
    hooks: Hooks,
    supervisor: Addr<PluginSupervisor>,
    handoff: Handoff,
    subscriptions: Arc<Routing>,
    closed: Arc<AtomicBool>,
    store: Store,
}

impl EventBus {
    /// A bus delivering through `supervisor` (deliveries through its `handoff`) by the
    /// `subscriptions` table, accepting into `store`.
    pub fn new(
        hooks: Hooks,
        supervisor: Addr<PluginSupervisor>,
        handoff: Handoff,
        subscriptions: Arc<Routing>,
        closed: Arc<AtomicBool>,
        store: Store,
    ) -> Self {
        EventBus {
            hooks,
            supervisor,
            handoff,
            subscriptions,
            closed,
            store,
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
        let subscriptions = self.subscriptions.current();
        let store = self.store.clone();
        let enrichers = subscriptions.enrichers(msg.event.name);
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
            accept(&store, &handoff, &subscriptions, event, msg.wait).await
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
