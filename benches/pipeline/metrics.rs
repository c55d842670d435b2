//! (7) One `/metrics` scrape with 50 plugin instances: the whole `Handle::metrics` call
//! (each instance's status from the supervisor, held and dead counts from the SQLite
//! store, the hook counters, and the encoding).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mydia_plugins::config::{Config, StorageBackend, StorageConfig};
use mydia_plugins::event::EventName;
use mydia_plugins::supervisor::InstanceSpec;

use super::{NoOp, ROUNDS};

/// Instances in the scraped service.
pub const INSTANCES: usize = 50;
const SCRAPES: u32 = 200;

/// The best round's mean time of one scrape, and the size of its text.
pub async fn scrape_cost() -> (Duration, usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::empty();
    config.hooks.enabled = false;
    config.storage = StorageConfig {
        backend: StorageBackend::Sqlite,
        path: dir.path().join("bench.sqlite3"),
        ..StorageConfig::default()
    };
    let specs = (0..INSTANCES)
        .map(|i| {
            let c = Arc::new(AtomicU64::new(0));
            InstanceSpec::new(&format!("noop-{i}"), "noop", "notification", move || {
                NoOp(Arc::clone(&c))
            })
        })
        .collect();
    let h = mydia_plugins::start_with(&config, specs).expect("start");
    for _ in 0..100 {
        h.emit_sync(EventName::AfterMediaAdded, Default::default())
            .await
            .unwrap();
    }
    let mut best = Duration::MAX;
    let mut size = 0;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..SCRAPES {
            size = h.metrics().await.len();
        }
        best = best.min(started.elapsed() / SCRAPES);
    }
    h.shutdown().await;
    (best, size)
}
