//! The delivery store's benchmarks: durable accept (SQLite, `synchronous: full`) against
//! the in-memory store in the same run, and a restart with many pending deliveries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use mydia_plugins::config::{Config, StorageBackend, StorageConfig, Synchronous};
use mydia_plugins::event::EventName;
use mydia_plugins::store::Store;
use mydia_plugins::supervisor::InstanceSpec;

use super::{NoOp, ROUNDS};

fn config(storage: StorageConfig) -> Config {
    let mut config = Config::empty();
    config.hooks.enabled = false;
    config.storage = storage;
    config
}

/// `BENCH_SYNC=normal` measures the SQLite sides with `synchronous: normal` (no fsync per
/// commit), to see how much of the gap to the memory store is the fsync; default `full`.
pub fn synchronous_name() -> &'static str {
    match std::env::var("BENCH_SYNC").as_deref() {
        Ok("normal") => "normal",
        _ => "full",
    }
}

fn sqlite(dir: &tempfile::TempDir) -> StorageConfig {
    StorageConfig {
        backend: StorageBackend::Sqlite,
        path: dir.path().join("bench.sqlite3"),
        synchronous: match synchronous_name() {
            "normal" => Synchronous::Normal,
            _ => Synchronous::Full,
        },
        ..StorageConfig::default()
    }
}

fn noop(counter: &Arc<AtomicU64>) -> InstanceSpec {
    let c = Arc::clone(counter);
    InstanceSpec::new("noop", "noop", "notification", move || NoOp(Arc::clone(&c)))
        .with_events([EventName::AfterMediaAdded])
}

/// Events per second accepted by `emit` (1,000 in flight at a time) with one subscribed
/// plugin; the deliveries themselves are not waited for.
async fn accept_rate(handle: &mydia_plugins::Handle, events: u64) -> f64 {
    let data = serde_json::json!({"media_item": {"title": "Dune", "year": 2021}})
        .as_object()
        .cloned()
        .unwrap();
    let start = Instant::now();
    for _ in 0..events / 1000 {
        let done =
            join_all((0..1000).map(|_| handle.emit(EventName::AfterMediaAdded, data.clone())))
                .await;
        assert!(done.iter().all(Result::is_ok), "every event accepted");
    }
    events as f64 / start.elapsed().as_secs_f64()
}

/// (4) Durable accept: SQLite (`synchronous: full`) and memory, interleaved, best round each.
pub async fn durable_accept() -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let durable = mydia_plugins::start_with(&config(sqlite(&dir)), vec![noop(&counter)]).unwrap();
    let memory =
        mydia_plugins::start_with(&config(StorageConfig::memory()), vec![noop(&counter)]).unwrap();
    let (mut best_sqlite, mut best_memory) = (0f64, 0f64);
    // BENCH_SIDE=sqlite or memory runs one side alone, to profile it or count its CPU.
    let side = std::env::var("BENCH_SIDE").unwrap_or_default();
    let run = |name: &str| side.is_empty() || side.split(',').any(|s| s == name);
    for _ in 0..ROUNDS {
        if run("sqlite") {
            best_sqlite = best_sqlite.max(accept_rate(&durable, 20_000).await);
        }
        if run("memory") {
            best_memory = best_memory.max(accept_rate(&memory, 20_000).await);
        }
    }
    durable.shutdown().await;
    memory.shutdown().await;
    (best_sqlite, best_memory)
}

/// How a restart with many pending deliveries went.
pub struct Restart {
    pub pending: u64,
    /// Until `start_with` returned (the API is served right after).
    pub started: Duration,
    /// Until the first resumed delivery went out.
    pub first: Duration,
    /// Until every resumed delivery went out.
    pub all: Duration,
}

/// (5) A store with `pending` waiting deliveries; start the service on it.
pub async fn restart_with_pending(pending: u64) -> Restart {
    let dir = tempfile::tempdir().unwrap();
    let storage = sqlite(&dir);
    {
        let store = Store::open(&storage).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let names: Arc<[Arc<str>]> = Arc::from(vec![Arc::from("noop")]);
        let data = serde_json::json!({"media_item": {"title": "Dune", "year": 2021}})
            .as_object()
            .cloned()
            .unwrap();
        for _ in 0..pending {
            let ev = Arc::new(mydia_plugins::Event::new(
                EventName::AfterMediaAdded,
                data.clone(),
            ));
            let tx = tx.clone();
            store.accept(
                ev,
                Arc::clone(&names),
                Box::new(move |r| tx.send(r.is_ok()).unwrap()),
            );
        }
        assert!((0..pending).all(|_| rx.recv().unwrap()));
    }
    let counter = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let handle = mydia_plugins::start_with(&config(storage), vec![noop(&counter)]).unwrap();
    let started = t0.elapsed();
    while counter.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let first = t0.elapsed();
    while counter.load(Ordering::Relaxed) < pending {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let all = t0.elapsed();
    handle.shutdown().await;
    Restart {
        pending,
        started,
        first,
        all,
    }
}
