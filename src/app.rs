//! Build the actor graph from a validated config and hand back a [`Handle`]; own graceful shutdown.
//!
//! The bus and the supervisor share one "core" arbiter (a hand-over between them is a
//! same-thread message); the hook VM and every plugin instance get arbiters of their own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

mod deliveries;
mod preview;
mod reload;
pub use deliveries::RequeueError;
pub use reload::{ReloadError, ReloadReport};

use crate::bus::{Emit, EmitError, Emitted, EventBus, Routing, Subscriptions};
use crate::config::Config;
use crate::event::{Event, EventData, EventName};
use crate::hooks::Hooks;
use crate::plugins::ConnectionReport;
use crate::store::{Store, StoreError, Unfinished};
use crate::supervisor::{
    GetStatus, Handoff, InstanceSpec, PluginStatus, PluginSupervisor, SetHealthSink, Shutdown,
    ShutdownReport, TestConnection, TestError,
};

/// A running plugin system. Cheap to clone; every method sends to the actors' mailboxes.
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

struct Inner {
    bus: Addr<EventBus>,
    supervisor: Addr<PluginSupervisor>,
    handoff: Handoff,
    hooks: Hooks,
    subscriptions: Arc<Routing>,
    closed: Arc<AtomicBool>,
    grace: Duration,
    core: Arbiter,
    store: Store,
    metrics: Arc<crate::metrics::Metrics>,
    /// The configured instances and the default delivery timeout, for previews (which
    /// build each instance fresh from its config).
    plugins: std::sync::RwLock<Arc<[crate::plugins::PluginConfig]>>,
    delivery_timeout: Duration,
    /// The config running now, which the next reload compares with (locked for the
    /// whole of a reload, so reloads run one at a time).
    running: tokio::sync::Mutex<Arc<Config>>,
    /// The config file, when there is one.
    source: Option<std::path::PathBuf>,
    /// Watches the hooks directory while the service runs.
    /// Stopped at shutdown, so a file change then starts no workers.
    hook_watcher: std::sync::Mutex<Option<crate::hooks::HookWatcher>>,
}

/// Start everything `config` describes, opening its delivery store. Call from inside a
/// running actix `System`.
pub fn start(config: &Config) -> Result<Handle, StoreError> {
    let specs = config
        .plugins
        .iter()
        .map(InstanceSpec::from_config)
        .collect();
    start_with(config, specs)
}

/// Start with these plugin instances instead of the config's (for embedders and tests);
/// hooks, supervision and storage settings still come from `config`.
pub fn start_with(config: &Config, specs: Vec<InstanceSpec>) -> Result<Handle, StoreError> {
    let store = Store::open(&config.storage)?;
    let resume = store.unfinished()?;
    Ok(start_with_store(config, specs, store, resume))
}

/// Start on a store that is open already; `resume` are its unfinished deliveries.
pub fn start_with_store(
    config: &Config,
    specs: Vec<InstanceSpec>,
    store: Store,
    resume: Vec<Unfinished>,
) -> Handle {
    for p in config
        .enabled_plugins()
        .filter(|p| p.common.allow_insecure_http)
    {
        tracing::warn!(plugin = %p.name, "allow_insecure_http is set: this plugin may send data over plain http://");
    }
    let hooks = Hooks::start(&config.hooks);
    // Reloads the hooks when their directory changes (`hooks.watch`); a watch the OS
    // refuses is logged, and the service runs on without it.
    let hook_watcher = hooks
        .watch()
        .inspect_err(|err| tracing::warn!(target: "hooks", error = %err, "hooks are not reloaded on changes"))
        .ok();
    let closed = Arc::new(AtomicBool::new(false));
    let core = Arbiter::new();
    let sup_config = config.supervision.clone();
    let subscriptions = Arc::new(Routing::new(Subscriptions::new(&specs)));
    let bus_subs = Arc::clone(&subscriptions);
    let supervisor = PluginSupervisor::new(specs, sup_config, store.clone(), resume);
    let intake = supervisor.intake();
    let supervisor = PluginSupervisor::start_in_arbiter(&core.handle(), move |_| supervisor);
    let handoff = Handoff::new(intake, supervisor.clone());
    let (bus_hooks, bus_sup, bus_handoff, bus_closed, bus_store) = (
        hooks.clone(),
        supervisor.clone(),
        handoff.clone(),
        Arc::clone(&closed),
        store.clone(),
    );
    let bus = EventBus::start_in_arbiter(&core.handle(), move |_| {
        EventBus::new(
            bus_hooks,
            bus_sup,
            bus_handoff,
            bus_subs,
            bus_closed,
            bus_store,
        )
    });
    supervisor.do_send(SetHealthSink(bus.clone().recipient()));
    Handle {
        inner: Arc::new(Inner {
            bus,
            supervisor,
            handoff,
            hooks,
            subscriptions,
            closed,
            grace: config.supervision.shutdown_grace,
            core,
            store,
            metrics: Arc::default(),
            plugins: std::sync::RwLock::new(config.plugins.clone().into()),
            running: tokio::sync::Mutex::new(Arc::new(config.clone())),
            delivery_timeout: config.supervision.delivery_timeout,
            source: config.source.clone(),
            hook_watcher: std::sync::Mutex::new(hook_watcher),
        }),
    }
}

/// Why a handle call could not be answered.
fn gone() -> EmitError {
    EmitError::ShuttingDown
}

impl Handle {
    /// Emit an event by name: returns after hooks (with the final data); delivery goes on in the background.
    pub async fn emit(&self, name: EventName, data: EventData) -> Result<Emitted, EmitError> {
        self.emit_event(Event::new(name, data), false).await
    }

    /// Emit and wait for every plugin's outcome, each bounded by its timeout.
    pub async fn emit_sync(&self, name: EventName, data: EventData) -> Result<Emitted, EmitError> {
        self.emit_event(Event::new(name, data), true).await
    }

    /// Emit a fully formed event (with the caller's id); `wait` as in [`Handle::emit_sync`].
    pub async fn emit_event(&self, event: Event, wait: bool) -> Result<Emitted, EmitError> {
        let emitted = self.emit_inner(event, wait).await;
        if let Ok(e) = &emitted {
            if !e.duplicate {
                self.inner.metrics.event_accepted(e.event.name);
            }
        }
        emitted
    }

    async fn emit_inner(&self, event: Event, wait: bool) -> Result<Emitted, EmitError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(EmitError::ShuttingDown);
        }
        let subs = &self.inner.subscriptions.current();
        if !self.inner.hooks.has_hooks(event.name) && subs.enrichers(event.name).is_empty() {
            // No hook or enricher can change or refuse it: store it and hand it over from
            // here, without a turn of the bus's mailbox.
            let inner = &self.inner;
            return crate::bus::accept(&inner.store, &inner.handoff, subs, Arc::new(event), wait)
                .await;
        }
        self.inner
            .bus
            .send(Emit { event, wait })
            .await
            .map_err(|_| gone())?
    }

    /// Run one instance's `test_connection`; a pass also clears `misconfigured` or an open breaker.
    pub async fn test_connection(&self, plugin: &str) -> Result<ConnectionReport, TestError> {
        let msg = TestConnection {
            plugin: plugin.to_owned(),
        };
        self.inner.supervisor.send(msg).await.unwrap_or_else(|_| {
            Err(TestError::Failed(
                crate::plugins::PluginError::Unavailable {
                    state: "shut down".into(),
                },
            ))
        })
    }

    /// Turn an instance on or off now (not kept across a restart: the config decides then).
    /// Off, it sends nothing and gets no new events; what waits for it stays held.
    pub async fn set_enabled(&self, plugin: &str, enabled: bool) -> Result<(), TestError> {
        let msg = crate::supervisor::SetEnabled {
            plugin: plugin.to_owned(),
            enabled,
        };
        let table = self.inner.supervisor.send(msg).await.map_err(|_| {
            TestError::Failed(crate::plugins::PluginError::Unavailable {
                state: "shut down".into(),
            })
        })??;
        self.inner.subscriptions.replace(table);
        Ok(())
    }

    /// Every instance's state and counters.
    pub async fn status(&self) -> Vec<PluginStatus> {
        let mut status = self
            .inner
            .supervisor
            .send(GetStatus)
            .await
            .unwrap_or_default();
        let store = self.inner.store.clone();
        let counts = tokio::task::spawn_blocking(move || store.counts()).await;
        match counts {
            Ok(Ok(counts)) => {
                for (instance, state, n) in counts {
                    let Some(p) = status.iter_mut().find(|p| p.name == instance) else {
                        continue;
                    };
                    match state {
                        crate::store::State::Held => p.held = n,
                        crate::store::State::Dead => p.dead = n,
                        _ => {}
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(target: "store", error = %e, "cannot count held and dead deliveries")
            }
            Err(e) => {
                tracing::warn!(target: "store", error = %e, "cannot count held and dead deliveries")
            }
        }
        status
    }

    /// Everything `/metrics` shows, as OpenMetrics text.
    pub async fn metrics(&self) -> String {
        let scrape = crate::metrics::Scrape {
            events: self.inner.metrics.events(),
            plugins: self.status().await,
            hooks: self.inner.hooks.stats(),
            store_commits: self.inner.store.commit_timings(),
        };
        crate::metrics::render(scrape)
    }

    /// The configured instances (not those added with [`start_with`]'s own specs).
    pub fn plugin_configs(&self) -> Arc<[crate::plugins::PluginConfig]> {
        Arc::clone(&self.inner.plugins.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether shutdown has begun.
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// The config file the handle was started from, when there is one.
    pub fn config_source(&self) -> Option<&std::path::Path> {
        self.inner.source.as_deref()
    }

    /// The hook chain this handle runs.
    pub fn hooks(&self) -> &Hooks {
        &self.inner.hooks
    }

    /// Stop taking events, let in-flight deliveries finish within the configured grace, stop everything.
    pub async fn shutdown(&self) -> ShutdownReport {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return ShutdownReport::default();
        }
        drop(
            self.inner
                .hook_watcher
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        let grace = self.inner.grace;
        let report = self
            .inner
            .supervisor
            .send(Shutdown { grace })
            .await
            .unwrap_or_default();
        self.inner.core.stop();
        let store = self.inner.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.flush()).await;
        report
    }
}
