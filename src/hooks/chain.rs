//! The hook chain: every compiled hook per event, run in order, fail-soft, stopped by `reject`.

use std::cell::Cell;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::config::HooksConfig;
use crate::event::{Event, EventData, EventName};

use super::actor::HookRejected;
use super::discover::HookFile;
use super::error::HookError;
use super::sandbox::{CompiledHook, Header, Outcome, Sandbox};
use super::stats::SharedStats;

/// One VM and the hooks compiled into it, grouped by event in run order.
pub struct Chain {
    sandbox: Sandbox,
    by_event: HashMap<EventName, Vec<Loaded>>,
    stats: Arc<SharedStats>,
    max_input_bytes: usize,
    /// Set when memory stayed exhausted after a collection: the owner should rebuild.
    exhausted: Cell<bool>,
}

struct Loaded {
    hook: CompiledHook,
    name: String,
    /// Index into `SharedStats::hooks`.
    stat: usize,
}

impl Chain {
    /// A new VM with every file compiled; a file that does not load is logged and skipped.
    pub fn build(
        config: &HooksConfig,
        files: &[HookFile],
        stats: &Arc<SharedStats>,
    ) -> Result<Chain, HookError> {
        let sandbox = Sandbox::new(config)?;
        let mut by_event: HashMap<EventName, Vec<Loaded>> = HashMap::new();
        for (stat, file) in files.iter().enumerate() {
            match sandbox.compile(file) {
                Ok(hook) => {
                    stats.hooks[stat].loaded();
                    // `files` is in run order, so pushing keeps each event's list ordered.
                    by_event.entry(file.event).or_default().push(Loaded {
                        hook,
                        name: file.name.clone(),
                        stat,
                    });
                }
                Err(err) => {
                    tracing::error!(target: "hooks", hook = %file.name, path = %file.path.display(), error = %err, "hook not loaded; skipping it");
                    stats.hooks[stat].not_loaded(&err);
                }
            }
        }
        Ok(Chain {
            sandbox,
            by_event,
            stats: Arc::clone(stats),
            max_input_bytes: config.max_input_bytes,
            exhausted: Cell::new(false),
        })
    }

    /// Run the event's hooks. `Ok(None)`: the data is unchanged (or there are no hooks).
    pub fn run(&self, event: &Event) -> Result<Option<EventData>, HookRejected> {
        let Some(hooks) = self.by_event.get(&event.name) else {
            return Ok(None);
        };
        if !fits(&event.data, self.max_input_bytes) {
            let err = HookError::InputTooLarge {
                max: self.max_input_bytes,
            };
            tracing::warn!(target: "hooks", event = %event.name, id = %event.id, error = %err, "skipping hooks for this event");
            self.stats
                .skipped_too_large
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(None);
        }
        let header = Header::of(event);
        let mut changed: Option<EventData> = None;
        for loaded in hooks {
            let stat = &self.stats.hooks[loaded.stat];
            let _span =
                tracing::debug_span!(target: "hooks", "hook", hook = %loaded.name).entered();
            stat.ran();
            let data = changed.as_ref().unwrap_or(&event.data);
            match self.sandbox.call(&loaded.hook, &header, data) {
                Ok(Outcome::Unchanged) => {}
                Ok(Outcome::Changed(new)) => changed = Some(new),
                Ok(Outcome::Rejected(reason)) => {
                    stat.rejected();
                    tracing::debug!(target: "hooks", hook = %loaded.name, event = %event.name, id = %event.id, reason = %reason, "event rejected");
                    return Err(HookRejected {
                        hook: loaded.name.clone(),
                        reason,
                    });
                }
                Err(err) => {
                    stat.failed(&err);
                    tracing::warn!(target: "hooks", hook = %loaded.name, event = %event.name, id = %event.id, error = %err, "hook failed; data left as it was before it");
                    if matches!(err, HookError::Memory { .. }) && self.sandbox.memory_exhausted() {
                        self.exhausted.set(true);
                    }
                }
            }
        }
        Ok(changed)
    }

    /// Whether the VM should be replaced before the next event.
    pub fn exhausted(&self) -> bool {
        self.exhausted.get()
    }
}

/// Whether `data`, as JSON, is at most `max` bytes. A cheap upper bound settles the usual
/// case (data far below the cap) without serialising; otherwise the data is serialised,
/// stopping as soon as it is too large.
fn fits(data: &EventData, max: usize) -> bool {
    object_bound(data, max).is_some() || serialises_within(data, max)
}

/// An upper bound of the JSON size of `value`, or `None` once it passes `left`.
fn bound(value: &Json, left: usize) -> Option<usize> {
    let size = match value {
        Json::Null | Json::Bool(_) => 5,
        // serde_json prints integers in at most 20 bytes and floats (shortest round trip)
        // in at most 24; the `arbitrary_precision` feature, which would print more, is off.
        Json::Number(_) => 24,
        Json::String(s) => string_bound(s),
        Json::Array(items) => {
            let mut size = 2;
            for item in items {
                size += 1 + bound(item, left.checked_sub(size)?)?;
            }
            size
        }
        Json::Object(map) => object_bound(map, left)?,
    };
    (size <= left).then_some(size)
}

fn object_bound(map: &EventData, left: usize) -> Option<usize> {
    let mut size = 2;
    for (key, value) in map {
        size += string_bound(key) + 2;
        size += bound(value, left.checked_sub(size)?)?;
    }
    (size <= left).then_some(size)
}

/// Quotes, and every byte escaped as `\u00XX` at worst.
fn string_bound(s: &str) -> usize {
    s.len().saturating_mul(6).saturating_add(2)
}

fn serialises_within(data: &EventData, max: usize) -> bool {
    struct Counter {
        left: usize,
    }
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.left = self
                .left
                .checked_sub(buf.len())
                .ok_or_else(|| io::Error::other("too large"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(&mut Counter { left: max }, data).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fits_counts_serialised_bytes() {
        let data = json!({"a": "xxxx"}).as_object().unwrap().clone();
        let len = serde_json::to_vec(&data).unwrap().len();
        assert!(fits(&data, len));
        assert!(!fits(&data, len - 1));
    }

    #[test]
    fn the_size_bound_is_never_below_the_real_size() {
        let data = json!({
            "plain": "Spirited Away", "escaped": "quote \" backslash \\ tab \t nul \u{0} bell \u{7}",
            "unicode": "Amélie 🎬 日本語", "": "",
            "numbers": [0, -1, i64::MIN, u64::MAX, 1.5, -2.2250738585072014e-308, f64::MAX, 1e300],
            "nested": {"a": [null, true, false, [], {}], "b": {"c": {"d": [[["deep"]]]}}},
        });
        let data = data.as_object().unwrap().clone();
        let len = serde_json::to_vec(&data).unwrap().len();
        let total = object_bound(&data, usize::MAX).unwrap();
        assert!(total >= len, "{total} < {len}");
        assert!(object_bound(&data, len - 1).is_none());
        for (key, value) in &data {
            let one = serde_json::to_vec(value).unwrap().len();
            assert!(bound(value, usize::MAX).unwrap() >= one, "{key}");
        }
    }
}
