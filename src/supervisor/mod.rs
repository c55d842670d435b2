//! `PluginSupervisor`: one-for-one supervision of every plugin instance.
//!
//! It owns each instance's actor, circuit breaker, restart budget and backlog, and is
//! the only place that decides what a result means: success closes things, a transient
//! failure or timeout counts against the breaker and holds the delivery for a retry, a
//! 429 pauses the instance, a 401/403/404 marks it misconfigured, a panic or a blocked
//! thread restarts it with backoff until the budget trips it open. Timeouts run on the
//! supervisor's own thread, so a plugin that blocks its thread cannot delay them or any
//! other plugin. Every state change is one `tracing` event with target `supervision`.
//! An instance's digest and quiet hours (`digest/`) hold deliveries before they are
//! admitted, and hand them back as one message or as they were.

mod batch;
pub mod breaker;
mod deliver;
mod digest;
mod durable;
mod handoff;
mod reconfigure;
mod recovery;
pub mod restart;
mod slot;
pub mod spec;
mod toggle;
mod window;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;
use tokio::sync::oneshot;

pub use breaker::{BreakerPolicy, BreakerState};
pub use handoff::{Handoff, Intake, Take, TAKE_AT};
pub use reconfigure::{Reconfigure, Reconfigured};
pub use restart::RestartPolicy;
pub use slot::PluginStatus;
pub use spec::InstanceSpec;
pub use toggle::SetEnabled;

use crate::config::SupervisionConfig;
use crate::event::Event;
use crate::plugins::{ConnectionReport, PluginError};
use crate::store::{Store, Unfinished};
use slot::{Slot, Stats};

/// Deliver `event` to the instances at `targets` (indices into the supervisor's list),
/// through a [`Handoff`], once the store has committed its deliveries.
pub struct Deliver {
    /// The event, after hooks.
    pub event: Arc<Event>,
    /// Which instances, from the bus's subscription table.
    pub targets: Arc<[usize]>,
    /// The store's sequence number of the first target's delivery; target `i` has `first + i`.
    pub first: crate::store::Seq,
    /// For `emit_sync`: where each target's report goes, in target order.
    pub waiters: Option<Vec<oneshot::Sender<DeliveryReport>>>,
}

/// Deliveries made pending again in the store (a retry or a replay): put them back in
/// order. `retry` also lets a misconfigured instance try once more.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Requeued {
    /// The deliveries, oldest first.
    pub rows: Vec<crate::store::Unfinished>,
    /// A person asked for this one now.
    pub retry: bool,
}

/// Ask the enrichment instances at `targets` about `event` (in parallel, each bounded by
/// its timeout) and answer with the event, their fields merged in target order.
#[derive(Message)]
#[rtype(result = "Event")]
pub struct Enrich {
    /// The event, after hooks.
    pub event: Arc<Event>,
    /// Which enrichment instances.
    pub targets: Arc<[usize]>,
}

/// Run one instance's `test_connection`.
#[derive(Message)]
#[rtype(result = "Result<ConnectionReport, TestError>")]
pub struct TestConnection {
    /// Instance name.
    pub plugin: String,
}

/// Every instance's status.
#[derive(Message)]
#[rtype(result = "Vec<PluginStatus>")]
pub struct GetStatus;

/// Where `on_plugin_health_changed` events go (the bus, so hooks see them too).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetHealthSink(pub Recipient<HealthChanged>);

/// A plugin tripped open, recovered or was found misconfigured.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct HealthChanged(pub Event);

/// Stop taking work, let in-flight deliveries finish within `grace`, then stop every plugin.
#[derive(Message)]
#[rtype(result = "ShutdownReport")]
pub struct Shutdown {
    /// How long to wait for in-flight deliveries.
    pub grace: Duration,
}

/// How a shutdown went.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Deliveries still running when the grace ran out (sent again at the next start).
    pub abandoned_in_flight: u64,
    /// Deliveries waiting or held, kept in the store for the next start.
    pub kept: u64,
}

/// What happened to one delivery (for `emit_sync` and the API's `mode: sync`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeliveryReport {
    /// Instance name.
    pub plugin: String,
    /// `delivered`, `failed`, `queued` (held for a later retry) or `skipped`.
    pub status: &'static str,
    /// What the service answered, on success.
    pub detail: Option<String>,
    /// The error's kind (`transient`, `timeout`, `rate_limited`, ...), on failure.
    pub error_kind: Option<&'static str>,
    /// The error, redacted.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
    /// What an enrichment plugin answered (merged into the event, not shown).
    #[serde(skip)]
    pub patch: Option<crate::event::EventData>,
}

/// A connection test could not be run or failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TestError {
    /// No instance has that name.
    #[error("no plugin instance named `{name}`; configured: {known}")]
    UnknownPlugin {
        /// What was asked for.
        name: String,
        /// The instance names.
        known: String,
    },
    /// The test ran and failed.
    #[error("{0}")]
    Failed(PluginError),
}

/// The supervisor actor.
pub struct PluginSupervisor {
    slots: Vec<Slot>,
    config: SupervisionConfig,
    health_sink: Option<Recipient<HealthChanged>>,
    shutting_down: bool,
    shutdown_waiter: Option<oneshot::Sender<ShutdownReport>>,
    /// Instances with a non-empty outbox.
    dirty: Vec<usize>,
    flush_scheduled: bool,
    batches: batch::Batches,
    /// Where plugin actors report (this supervisor; set when it starts).
    reply: Option<Recipient<crate::plugins::actor::Done>>,
    /// This supervisor's address (set when it starts), to tell itself to take the intake.
    me: Option<Addr<PluginSupervisor>>,
    /// Fire-and-forget deliveries handed over and not taken yet (see [`Handoff`]).
    intake: Arc<Intake>,
    /// Where every delivery's life is recorded.
    store: Store,
    /// Store updates of this mailbox turn, not handed over yet.
    updates: durable::Updates,
    /// Waiting deliveries kept in memory per instance (`None`: all; see `window.rs`).
    window: Option<usize>,
    /// A digest or quiet hours hold something: the tick that releases them is wanted
    /// (set where there is no context to arm it), or armed.
    want_tick: bool,
    tick_armed: bool,
}

/// Send the outboxes (posted to itself at the end of a mailbox turn).
#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

impl PluginSupervisor {
    /// A supervisor for these instances (their index in `specs` is their target index),
    /// recording in `store`; `resume` are the deliveries a previous run left unfinished.
    pub fn new(
        specs: Vec<InstanceSpec>,
        config: SupervisionConfig,
        store: Store,
        resume: Vec<Unfinished>,
    ) -> Self {
        let slots = specs
            .into_iter()
            .map(|spec| Slot::new(spec, &config))
            .collect::<Vec<_>>();
        let mut sup = PluginSupervisor {
            intake: Intake::new(slots.len()),
            slots,
            config,
            health_sink: None,
            shutting_down: false,
            shutdown_waiter: None,
            dirty: Vec::new(),
            flush_scheduled: false,
            batches: batch::Batches::default(),
            reply: None,
            me: None,
            window: store.memory_window(),
            store,
            updates: durable::Updates::default(),
            want_tick: false,
            tick_armed: false,
        };
        sup.resume(resume);
        sup
    }
}

impl PluginSupervisor {
    /// How instance `idx`'s actor is set up: it reports here and runs up to its in-flight
    /// limit at once.
    fn actor_setup(&self, idx: usize) -> crate::plugins::actor::ActorSetup {
        crate::plugins::actor::ActorSetup {
            reply: self.reply.clone().expect("set when the supervisor starts"),
            max_concurrent: self.slots[idx].max_in_flight as usize,
            store_tag: self.store.tag(),
        }
    }
}

impl Slot {
    /// A fresh slot for `spec`: nothing sent, held or counted yet.
    fn new(spec: InstanceSpec, config: &SupervisionConfig) -> Slot {
        let breaker = BreakerPolicy {
            window: config.breaker_window,
            min_calls: config.breaker_min_calls,
            failure_rate: config.breaker_failure_rate,
            cooldown: config.open_cooldown,
            cooldown_max: config.open_cooldown_max,
        };
        let restart = RestartPolicy {
            base: config.restart_backoff_base,
            max: config.restart_backoff_max,
            reset_after: config.restart_reset_after,
            max_restarts: config.max_restarts,
            window: config.restart_window,
        };
        Slot {
            name: Arc::from(spec.name.as_str()),
            store_hold: None,
            spill: None,
            read_back: 0,
            handle: None,
            generation: 0,
            failures_seen: 0,
            breaker: breaker::Breaker::new(breaker),
            restarts: restart::RestartTracker::new(restart),
            misconfigured: None,
            held_until: None,
            hold_reason: None,
            pause_streak: 0,
            rate_streak: 0,
            pause_epoch: 0,
            pinging: false,
            in_flight: 0,
            backlog: Default::default(),
            outbox: Vec::new(),
            timeout: spec.timeout.unwrap_or(config.delivery_timeout),
            max_in_flight: spec.max_in_flight.unwrap_or(config.max_in_flight).max(1),
            limiter: spec.rate_limit.and_then(limiter),
            stats: Stats::default(),
            held: Default::default(),
            removed: false,
            rebuild: None,
            spec,
        }
    }
}

/// A limiter for `rate`; `None` for a zero rate (validation refuses those).
fn limiter(
    rate: crate::plugins::registry::RateLimit,
) -> Option<governor::DefaultDirectRateLimiter> {
    let per_minute = std::num::NonZeroU32::new(rate.per_minute)?;
    let burst = std::num::NonZeroU32::new(rate.burst)?;
    Some(governor::RateLimiter::direct(
        governor::Quota::per_minute(per_minute).allow_burst(burst),
    ))
}

impl Actor for PluginSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Pipelined emits arrive in bursts; the default mailbox (16) would push back on the bus.
        ctx.set_mailbox_capacity(65_536);
        self.me = Some(ctx.address());
        self.reply = Some(ctx.address().recipient());
        for idx in 0..self.slots.len() {
            if !self.slots[idx].spec.enabled || !self.spawn_actor(idx) {
                continue;
            }
            let slot = &self.slots[idx];
            tracing::info!(
                target: "supervision",
                plugin = %slot.spec.name,
                kind = %slot.spec.kind,
                events = slot.spec.events.len(),
                "plugin started"
            );
        }
        // What the previous run left goes out first, in order.
        for idx in 0..self.slots.len() {
            if !self.slots[idx].backlog.is_empty() {
                self.drain(idx, ctx);
            }
        }
        // Digests and quiet hours held before the restart.
        self.arm_tick(ctx);
        // Updates made while resuming, before there was an address to ask for a flush.
        self.flush_updates();
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        for slot in &mut self.slots {
            if let Some(h) = slot.handle.take() {
                h.stop();
            }
        }
    }
}

impl Handler<Take> for PluginSupervisor {
    type Result = ();

    fn handle(&mut self, _: Take, ctx: &mut Context<Self>) {
        self.take_intake(ctx);
    }
}

impl Handler<Requeued> for PluginSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Requeued, ctx: &mut Context<Self>) {
        self.take_intake(ctx);
        self.requeued(msg.rows, msg.retry, ctx);
    }
}

impl Handler<Flush> for PluginSupervisor {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) {
        self.flush(ctx);
    }
}

impl Handler<Enrich> for PluginSupervisor {
    type Result = ResponseFuture<Event>;

    fn handle(&mut self, msg: Enrich, ctx: &mut Context<Self>) -> Self::Result {
        self.take_intake(ctx);
        let answers: Vec<_> = msg
            .targets
            .iter()
            .map(|&idx| {
                let (tx, rx) = oneshot::channel();
                self.offer_enrichment(idx, Arc::clone(&msg.event), Some(tx), ctx);
                rx
            })
            .collect();
        Box::pin(async move {
            let mut event = (*msg.event).clone();
            for answer in answers {
                if let Ok(DeliveryReport {
                    patch: Some(patch), ..
                }) = answer.await
                {
                    merge(&mut event.data, patch);
                }
            }
            event
        })
    }
}

/// Merge `patch` into `data`: objects merge key by key, anything else replaces.
fn merge(data: &mut crate::event::EventData, patch: crate::event::EventData) {
    for (key, value) in patch {
        match (data.get_mut(&key), value) {
            (Some(serde_json::Value::Object(old)), serde_json::Value::Object(new)) => {
                merge(old, new)
            }
            (_, value) => {
                data.insert(key, value);
            }
        }
    }
}

impl Handler<crate::plugins::actor::Done> for PluginSupervisor {
    type Result = ();

    fn handle(&mut self, msg: crate::plugins::actor::Done, ctx: &mut Context<Self>) {
        self.on_done(msg, ctx);
    }
}

impl Handler<TestConnection> for PluginSupervisor {
    type Result = ResponseActFuture<Self, Result<ConnectionReport, TestError>>;

    fn handle(&mut self, msg: TestConnection, _: &mut Context<Self>) -> Self::Result {
        let idx = match self.find(&msg.plugin) {
            Ok(idx) => idx,
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        self.test_connection(idx)
    }
}

impl Handler<GetStatus> for PluginSupervisor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, ctx: &mut Context<Self>) -> Self::Result {
        // Count what was handed over but not taken yet.
        self.take_intake(ctx);
        let now = Instant::now();
        MessageResult(
            self.slots
                .iter()
                .filter(|s| !s.removed)
                .map(|s| s.status(now))
                .collect(),
        )
    }
}

impl Handler<SetHealthSink> for PluginSupervisor {
    type Result = ();

    fn handle(&mut self, msg: SetHealthSink, _: &mut Context<Self>) {
        self.health_sink = Some(msg.0);
    }
}

impl Handler<Shutdown> for PluginSupervisor {
    type Result = ResponseFuture<ShutdownReport>;

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        // What was handed over before shutdown is held and drained like the rest.
        self.take_intake(ctx);
        self.shutting_down = true;
        let (tx, rx) = oneshot::channel();
        self.shutdown_waiter = Some(tx);
        ctx.run_later(msg.grace, |act, ctx| act.finish_shutdown(ctx));
        self.maybe_finish_shutdown(ctx);
        Box::pin(async move { rx.await.unwrap_or_default() })
    }
}
