//! One scrape: a snapshot of the service encoded as OpenMetrics text.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::TimingsSnapshot;
use crate::event::EventName;
use crate::hooks::HookStats;
use crate::supervisor::PluginStatus;

/// The states `mydia_plugin_state` has a series for (1 for the current one).
const STATES: [&str; 5] = ["closed", "open", "half_open", "misconfigured", "disabled"];

/// What one scrape shows.
#[derive(Debug, Default)]
pub struct Scrape {
    /// Accepted events per name.
    pub events: Vec<(EventName, u64)>,
    /// Every plugin instance's status (with held and dead counts from the store).
    pub plugins: Vec<PluginStatus>,
    /// The hook counters.
    pub hooks: HookStats,
    /// The store's commit timings (`None` for the memory store).
    pub store_commits: Option<TimingsSnapshot>,
}

/// `scrape` as OpenMetrics text, ending with `# EOF`.
pub fn render(scrape: Scrape) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut out = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail; an encoder error would be ours (a bad name).
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "cannot encode the metrics");
    }
    out
}

type Result = std::result::Result<(), std::fmt::Error>;

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result {
        self.encode_events(&mut enc)?;
        self.encode_plugins(&mut enc)?;
        self.encode_hooks(&mut enc)?;
        if let Some(commits) = &self.store_commits {
            let mut m = enc.encode_descriptor(
                "mydia_store_commit_seconds",
                "Time of one store transaction (a group of accepts and updates), its fsync included",
                None,
                MetricType::Histogram,
            )?;
            histogram(&mut m, commits)?;
        }
        Ok(())
    }
}

impl Scrape {
    fn encode_events(&self, enc: &mut DescriptorEncoder<'_>) -> Result {
        let mut m = enc.encode_descriptor(
            "mydia_events",
            "Events accepted (stored, handed to the plugins), by event name; duplicates not counted",
            None,
            MetricType::Counter,
        )?;
        for (name, n) in &self.events {
            let labels = [("event", name.as_str())];
            counter(&mut m.encode_family(&labels)?, *n)?;
        }
        let mut m = enc.encode_descriptor(
            "mydia_events_rejected",
            "Events a hook rejected, by hook",
            None,
            MetricType::Counter,
        )?;
        for h in &self.hooks.hooks {
            let labels = [("hook", h.file.as_str())];
            counter(&mut m.encode_family(&labels)?, h.rejections)?;
        }
        Ok(())
    }

    fn encode_plugins(&self, enc: &mut DescriptorEncoder<'_>) -> Result {
        let mut m = enc.encode_descriptor(
            "mydia_deliveries",
            "Delivery outcomes since start, by plugin instance, its type and the outcome (delivered, failed attempts, dead letters made, events delivered through a digest)",
            None,
            MetricType::Counter,
        )?;
        for p in &self.plugins {
            for (outcome, n) in [
                ("delivered", p.delivered),
                ("failed", p.failed),
                ("dead", p.dead_lettered),
                ("digested", p.digested),
            ] {
                let labels = [
                    ("plugin", p.name.as_str()),
                    ("type", p.kind.as_str()),
                    ("outcome", outcome),
                ];
                counter(&mut m.encode_family(&labels)?, n)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "mydia_delivery_duration_seconds",
            "Time of one delivery attempt (success or failure), by plugin instance",
            None,
            MetricType::Histogram,
        )?;
        for p in &self.plugins {
            let labels = [("plugin", p.name.as_str())];
            histogram(&mut m.encode_family(&labels)?, &p.durations)?;
        }
        let mut m = enc.encode_descriptor(
            "mydia_deliveries_held",
            "Deliveries the store holds for an instance (paused, open, misconfigured or disabled)",
            None,
            MetricType::Gauge,
        )?;
        for p in &self.plugins {
            let labels = [("plugin", p.name.as_str())];
            m.encode_family(&labels)?.encode_gauge(&p.held)?;
        }
        let mut m = enc.encode_descriptor(
            "mydia_deliveries_dead",
            "Dead letters the store keeps for an instance (a replay sends them again)",
            None,
            MetricType::Gauge,
        )?;
        for p in &self.plugins {
            let labels = [("plugin", p.name.as_str())];
            m.encode_family(&labels)?.encode_gauge(&p.dead)?;
        }
        let mut m = enc.encode_descriptor(
            "mydia_plugin_state",
            "1 for the state each plugin instance is in now, 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for p in &self.plugins {
            for state in STATES {
                let labels = [("plugin", p.name.as_str()), ("state", state)];
                let on = u64::from(p.state == state);
                m.encode_family(&labels)?.encode_gauge(&on)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "mydia_plugin_restarts",
            "Times a plugin instance's actor was restarted",
            None,
            MetricType::Counter,
        )?;
        for p in &self.plugins {
            let labels = [("plugin", p.name.as_str())];
            counter(&mut m.encode_family(&labels)?, p.restarts)?;
        }
        Ok(())
    }

    fn encode_hooks(&self, enc: &mut DescriptorEncoder<'_>) -> Result {
        let mut m = enc.encode_descriptor(
            "mydia_hook_duration_seconds",
            "Time of one hook call",
            None,
            MetricType::Histogram,
        )?;
        for h in &self.hooks.hooks {
            let labels = [("hook", h.file.as_str())];
            histogram(&mut m.encode_family(&labels)?, &h.durations)?;
        }
        let mut m = enc.encode_descriptor(
            "mydia_hook_failures",
            "Failed hook calls, by hook and kind (runtime, timeout, memory, bad_return, ...)",
            None,
            MetricType::Counter,
        )?;
        for h in &self.hooks.hooks {
            for (kind, n) in &h.failure_kinds {
                let labels = [("hook", h.file.as_str()), ("kind", *kind)];
                counter(&mut m.encode_family(&labels)?, *n)?;
            }
        }
        Ok(())
    }
}

fn counter(m: &mut prometheus_client::encoding::MetricEncoder<'_>, n: u64) -> Result {
    m.encode_counter::<NoLabelSet, u64, u64>(&n, None)
}

fn histogram(
    m: &mut prometheus_client::encoding::MetricEncoder<'_>,
    t: &TimingsSnapshot,
) -> Result {
    let empty;
    let t = if t.buckets.is_empty() {
        empty = TimingsSnapshot::zero();
        &empty
    } else {
        t
    };
    m.encode_histogram::<NoLabelSet>(t.sum, t.count, &t.buckets, None)
}
