//! The pipeline benchmarks: each measured against a baseline in the same run, printed as ratios.
//!
//! Criterion measures one function at a time; these targets are ratios between the
//! service and a bare baseline on the same (shared, noisy) machine, so both sides run
//! interleaved in one process, best of several rounds each, and the ratio is printed.
//! Run with `cargo bench --bench pipeline`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use mydia_plugins::config::Config;
use mydia_plugins::event::{Event, EventName};
use mydia_plugins::plugins::{
    ConnectionReport, Delivered, Outcome, PluginContext, PluginError, PluginInfo, Role,
};
use mydia_plugins::supervisor::InstanceSpec;

const ROUNDS: usize = 5;

/// Best (highest) rate over `ROUNDS` runs of `f`, which returns (items, elapsed).
async fn best_rate<F, Fut>(mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (u64, Duration)>,
{
    let mut best = 0f64;
    for _ in 0..ROUNDS {
        let (n, took) = f().await;
        best = best.max(n as f64 / took.as_secs_f64());
    }
    best
}

struct NoOp(Arc<AtomicU64>);

impl Role for NoOp {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: "NoOp",
            description: "counts",
            version: "0",
            config_schema: serde_json::json!({}),
        }
    }
    async fn call(&self, _: &PluginContext, _: &Event) -> Result<Outcome, PluginError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Outcome::Delivered(Delivered {
            detail: String::new(),
        }))
    }
    async fn test(&self, _: &PluginContext) -> Result<ConnectionReport, PluginError> {
        Ok(ConnectionReport {
            detail: String::new(),
            sent_message: false,
        })
    }
}

/// (2) One event to 10 no-op plugins: deliveries per second through bus and supervisor.
async fn fan_out() -> f64 {
    let counter = Arc::new(AtomicU64::new(0));
    let mut config = Config::empty();
    config.hooks.enabled = false;
    config.supervision.backlog = 1_000_000;
    config.supervision.max_in_flight = 256;
    let specs = (0..10)
        .map(|i| {
            let c = Arc::clone(&counter);
            InstanceSpec::new(&format!("noop{i}"), "noop", "notification", move || {
                NoOp(Arc::clone(&c))
            })
        })
        .collect();
    let handle = mydia_plugins::start_with(&config, specs);
    let data = serde_json::json!({"media_item": {"title": "Dune", "year": 2021}})
        .as_object()
        .cloned()
        .unwrap();
    let events = 20_000u64;
    let rate = best_rate(|| {
        let handle = handle.clone();
        let counter = Arc::clone(&counter);
        let data = data.clone();
        async move {
            let before = counter.load(Ordering::Relaxed);
            let start = Instant::now();
            for chunk in 0..(events / 1000) {
                let _ = chunk;
                join_all((0..1000).map(|_| handle.emit(EventName::AfterMediaAdded, data.clone())))
                    .await;
            }
            while counter.load(Ordering::Relaxed) - before < events * 10 {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            (events * 10, start.elapsed())
        }
    })
    .await;
    handle.shutdown().await;
    rate
}

fn main() {
    // `cargo test --benches` runs this with no `--bench` flag: do one quick pass only.
    let system = actix_rt::System::new();
    system.block_on(async {
        println!("mydia-plugins pipeline benchmarks (best of {ROUNDS} rounds each)");
        let fan = fan_out().await;
        println!(
            "(2) one event to 10 no-op plugins: {:>10.0} deliveries/s   (target >= 500000)",
            fan
        );
    });
}
