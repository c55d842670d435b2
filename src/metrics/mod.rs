//! Prometheus metrics at `/metrics`, in the OpenMetrics text format (prometheus-client).
//!
//! Most values are read at scrape time from what the service keeps anyway (each plugin's
//! status, the hook counters, the store's commit timings), so the hot paths pay nothing
//! for metrics; the few counters only metrics need ([`Metrics`]) are plain atomics.
//! Labels carry instance names, plugin types, hook file names, event names and fixed
//! words, never a secret or event data.

mod render;
mod timings;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub use render::{render, Scrape};
pub use timings::{Timings, TimingsSnapshot, BOUNDS};

use crate::event::EventName;

/// Counters kept for metrics alone, one set per running [`crate::app::Handle`].
#[derive(Debug)]
pub struct Metrics {
    /// Accepted events (duplicates not counted), indexed like [`EventName::ALL`].
    events: Box<[AtomicU64]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            events: EventName::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Metrics {
    /// Count an accepted event.
    pub fn event_accepted(&self, name: EventName) {
        if let Some(i) = EventName::ALL.iter().position(|n| *n == name) {
            self.events[i].fetch_add(1, Relaxed);
        }
    }

    /// Accepted events per name, every name (zero included) so a dashboard has all series.
    pub fn events(&self) -> Vec<(EventName, u64)> {
        EventName::ALL
            .iter()
            .zip(self.events.iter())
            .map(|(n, c)| (*n, c.load(Relaxed)))
            .collect()
    }
}
