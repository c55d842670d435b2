//! The hook chain: every compiled hook per event, run in order, stopped by `reject`.
//!
//! Fail-soft by default: a hook that cannot run leaves the data as it was before it and
//! the chain goes on. At a fail-closed event (`hooks.fail_closed`) the same failure
//! refuses the event, so no payload (too large, too deep, one that makes the hook error
//! or time out) can slip past a validation hook. Quarantined hooks are skipped, or at a
//! fail-closed event refuse it.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::config::HooksConfig;
use crate::event::{Event, EventData, EventName};

use super::discover::HookFile;
use super::error::{HookError, HookRejected};
use super::limits::fits;
use super::sandbox::{CompiledHook, Header, Outcome, Sandbox};
use super::stats::SharedStats;

/// One VM and the hooks compiled into it, grouped by event in run order.
pub struct Chain {
    sandbox: Sandbox,
    by_event: HashMap<EventName, Vec<Loaded>>,
    stats: Arc<SharedStats>,
    max_input_bytes: usize,
    fail_closed: Vec<EventName>,
    /// Which worker owns this VM (for its own counters).
    worker: usize,
    /// Set when memory stayed exhausted after a collection: the owner should rebuild.
    exhausted: Cell<bool>,
}

struct Loaded {
    /// The compiled hook, or why it did not load (kept only at fail-closed events,
    /// where it refuses the event rather than let it pass unchecked).
    hook: Result<CompiledHook, String>,
    name: String,
    /// Index into `SharedStats::hooks`.
    stat: usize,
}

impl Chain {
    /// A new VM with every file compiled, in run order. `load_errors[i]` is why file `i`
    /// did not compile at start (`None`: it did); a file can also fail here alone (a top
    /// level that timed out on a busy machine, say). Either way it is logged by the
    /// caller or here and left out, except at a fail-closed event.
    pub fn build(
        config: &HooksConfig,
        files: &[HookFile],
        load_errors: &[Option<String>],
        stats: &Arc<SharedStats>,
        worker: usize,
    ) -> Result<Chain, HookError> {
        let sandbox = Sandbox::new(config)?;
        let mut by_event: HashMap<EventName, Vec<Loaded>> = HashMap::new();
        for (stat, file) in files.iter().enumerate() {
            let hook = match &load_errors[stat] {
                Some(err) => Err(err.clone()),
                None => sandbox.compile(file).map_err(|err| {
                    tracing::error!(target: "hooks", hook = %file.name, path = %file.path.display(), error = %err, "hook did not load into this worker's vm");
                    err.to_string()
                }),
            };
            if hook.is_err() && !config.fails_closed(file.event) {
                continue;
            }
            // `files` is in run order, so pushing keeps each event's list ordered.
            by_event.entry(file.event).or_default().push(Loaded {
                hook,
                name: file.name.clone(),
                stat,
            });
        }
        Ok(Chain {
            sandbox,
            by_event,
            stats: Arc::clone(stats),
            max_input_bytes: config.max_input_bytes,
            fail_closed: config.fail_closed.clone(),
            worker,
            exhausted: Cell::new(false),
        })
    }

    /// Run the event's hooks. `Ok(None)`: the data is unchanged (or there are no hooks).
    /// A `dry_run` (a preview) counts nothing: no stats, no step towards a quarantine.
    pub fn run(&self, event: &Event, dry_run: bool) -> Result<Option<EventData>, HookRejected> {
        let Some(hooks) = self.by_event.get(&event.name) else {
            return Ok(None);
        };
        let closed = self.fail_closed.contains(&event.name);
        if !fits(&event.data, self.max_input_bytes) {
            return self.too_large(event, &hooks[0].name, closed, dry_run);
        }
        let header = Header::of(event);
        let mut changed: Option<EventData> = None;
        for loaded in hooks {
            let stat = &self.stats.hooks[loaded.stat];
            let _span =
                tracing::debug_span!(target: "hooks", "hook", hook = %loaded.name).entered();
            if let Some(reason) = stat.quarantined() {
                if closed {
                    return Err(HookRejected::failed(
                        &loaded.name,
                        format!(
                            "quarantined: {reason}; release it with POST /api/v1/hooks/{}/release",
                            loaded.name
                        ),
                    ));
                }
                continue;
            }
            let hook = match &loaded.hook {
                Ok(hook) => hook,
                Err(err) => {
                    return Err(HookRejected::failed(
                        &loaded.name,
                        format!("it did not load: {err}; fix it (mydia-plugins check shows why) and restart"),
                    ))
                }
            };
            let count = !dry_run;
            if count {
                stat.ran(self.worker);
            }
            let data = changed.as_ref().unwrap_or(&event.data);
            let started = std::time::Instant::now();
            let outcome = self.sandbox.call(hook, &header, data);
            if count {
                stat.took(self.worker, started.elapsed());
            }
            match outcome {
                Ok(Outcome::Unchanged) => {
                    if count {
                        stat.succeeded();
                    }
                }
                Ok(Outcome::Changed(new)) => {
                    if count {
                        stat.succeeded();
                    }
                    changed = Some(new);
                }
                Ok(Outcome::Rejected(reason)) => {
                    if count {
                        stat.rejected();
                    }
                    tracing::debug!(target: "hooks", hook = %loaded.name, event = %event.name, id = %event.id, reason = %reason, "event rejected");
                    return Err(HookRejected::rejected(&loaded.name, reason));
                }
                Err(err) => {
                    self.failed(loaded, event, &err, closed, dry_run);
                    if closed {
                        return Err(HookRejected::failed(&loaded.name, err.to_string()));
                    }
                }
            }
        }
        Ok(changed)
    }

    /// See [`Sandbox::set_on_due`].
    pub fn set_on_due(&self, on_due: Box<dyn Fn()>) {
        self.sandbox.set_on_due(on_due);
    }

    /// See [`Sandbox::set_due`].
    pub fn set_due(&self, due: Option<std::time::Instant>) {
        self.sandbox.set_due(due);
    }

    /// Whether the VM should be replaced before the next event.
    pub fn exhausted(&self) -> bool {
        self.exhausted.get()
    }

    /// The event is over `max_input_bytes`: refused at a fail-closed event, else passed on.
    fn too_large(
        &self,
        event: &Event,
        first: &str,
        closed: bool,
        dry_run: bool,
    ) -> Result<Option<EventData>, HookRejected> {
        let err = HookError::InputTooLarge {
            max: self.max_input_bytes,
        };
        let counter = if closed {
            tracing::warn!(target: "hooks", event = %event.name, id = %event.id, error = %err, "event refused: too large for its validation hooks (raise hooks.max_input_kb)");
            &self.stats.refused_too_large
        } else {
            tracing::warn!(target: "hooks", event = %event.name, id = %event.id, error = %err, "skipping hooks for this event");
            &self.stats.skipped_too_large
        };
        if !dry_run {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if closed {
            return Err(HookRejected::too_large(first, self.max_input_bytes));
        }
        Ok(None)
    }

    /// Count and log a failed call; quarantine the hook when that was one too many.
    fn failed(&self, loaded: &Loaded, event: &Event, err: &HookError, closed: bool, dry_run: bool) {
        let outcome = if closed {
            "event refused (this event fails closed)"
        } else {
            "data left as it was before it"
        };
        if dry_run {
            tracing::info!(target: "hooks", hook = %loaded.name, event = %event.name, id = %event.id, error = %err, "hook failed in a preview (not counted); {outcome}");
        } else {
            tracing::warn!(target: "hooks", hook = %loaded.name, event = %event.name, id = %event.id, error = %err, "hook failed; {outcome}");
        }
        if dry_run {
            // Not counted, so a preview never quarantines a hook; the VM is still rebuilt
            // below if the failure left it without memory.
        } else if let Some(reason) = self.stats.failed(loaded.stat, err) {
            tracing::warn!(target: "hooks", hook = %loaded.name, reason = %reason, "hook quarantined: skipped until released (POST /api/v1/hooks/{}/release) or restart", loaded.name);
        }
        if matches!(err, HookError::Memory { .. }) && self.sandbox.memory_exhausted() {
            self.exhausted.set(true);
        }
    }
}
