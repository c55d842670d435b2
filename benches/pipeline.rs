//! The pipeline benchmarks: each measured against a baseline in the same run, printed as ratios.
//!
//! Criterion measures one function at a time; these targets are ratios between the
//! service and a bare baseline on the same (shared, noisy) machine, so both sides run
//! interleaved in one process, best of several rounds each, and the ratio is printed.
//! Run with `cargo bench --bench pipeline`, or `-- hooks`, `-- fanout`, `-- ntfy`, `-- store`,
//! `-- template` for one.

/// The allocator the service binary uses (see `mimalloc` in Cargo.toml), so "the service"
/// measured here is the one that ships; the bare loops run with it too.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use futures::StreamExt;
use mydia_plugins::config::Config;
use mydia_plugins::event::{Event, EventName};
use mydia_plugins::plugins::{
    ConnectionReport, Delivered, Outcome, PluginContext, PluginError, PluginInfo, Role,
};
use mydia_plugins::supervisor::InstanceSpec;

#[path = "pipeline/metrics.rs"]
mod metrics;
#[path = "pipeline/store.rs"]
mod store;
#[path = "pipeline/template.rs"]
mod template;

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
    config.supervision.max_in_flight = 256;
    let specs = (0..10)
        .map(|i| {
            let c = Arc::clone(&counter);
            InstanceSpec::new(&format!("noop{i}"), "noop", "notification", move || {
                NoOp(Arc::clone(&c))
            })
        })
        .collect();
    let handle = mydia_plugins::start_with(&config, specs).expect("start");
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

const HOOK: &str = r#"
function hook(event)
  local item = event.data.media_item
  item.title = string.upper(item.title)
  item.tags = { "anime" }
  item.checked = true
  return event
end
"#;

fn media_event() -> Event {
    let data = serde_json::json!({"media_item": {
        "id": 42, "type": "movie", "title": "Spirited Away", "year": 2001, "tmdb_id": 129,
        "genres": ["Animation", "Fantasy"], "original_language": "ja"
    }});
    Event::new(
        EventName::AfterMediaAdded,
        data.as_object().cloned().unwrap(),
    )
}

/// Rates measured by (1), one entry per round and side.
#[derive(Default)]
struct HookRates {
    one_worker: Vec<f64>,
    two_workers: Vec<f64>,
    bare: Vec<f64>,
}

/// `Hooks` running [`HOOK`] on `workers` VMs.
async fn start_hooks(dir: &std::path::Path, workers: usize) -> mydia_plugins::hooks::Hooks {
    let mut config = Config::empty();
    config.hooks.directory = dir.to_owned();
    config.hooks.workers = workers;
    let hooks = mydia_plugins::hooks::Hooks::start(&config.hooks);
    let check = hooks.apply(media_event()).await.expect("hook runs");
    assert_eq!(check.str_at("media_item.title"), Some("SPIRITED AWAY"));
    hooks
}

/// `n` events through `hooks`, 1,000 in flight at a time: events per second.
async fn through_hooks(hooks: &mydia_plugins::hooks::Hooks, event: &Event, n: u64) -> f64 {
    let start = Instant::now();
    for _ in 0..(n / 1000) {
        join_all((0..1000).map(|_| hooks.apply(event.clone()))).await;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// (1) One sandboxed hook changing 3 fields: events/s through `Hooks` (many in flight)
/// with one worker and with two (`hooks.workers: 2`), vs. calling the same script on a
/// bare Luau VM with a plain conversion. The three sides take turns within each round.
async fn hooks_vs_bare() -> HookRates {
    let dir = tempfile::tempdir().unwrap();
    let event_dir = dir.path().join("after_media_added");
    std::fs::create_dir_all(&event_dir).unwrap();
    std::fs::write(event_dir.join("10_bench.lua"), HOOK).unwrap();
    let one = start_hooks(dir.path(), 1).await;
    let two = start_hooks(dir.path(), 2).await;
    let event = media_event();

    let lua = mlua::Lua::new();
    lua.load(HOOK).exec().unwrap();
    let f: mlua::Function = lua.globals().get("hook").unwrap();
    let bare = |n: u64| {
        let start = Instant::now();
        for _ in 0..n {
            let t = lua.create_table().unwrap();
            t.set("name", event.name.as_str()).unwrap();
            t.set("id", event.id.as_str()).unwrap();
            t.set(
                "data",
                json_to_lua(&lua, &serde_json::Value::Object(event.data.clone())),
            )
            .unwrap();
            let out: mlua::Table = f.call(t).unwrap();
            let data = lua_to_json(out.get("data").unwrap());
            assert!(data.is_object());
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    let n = 20_000u64;
    let mut rates = HookRates::default();
    // BENCH_SIDE=one, two or bare runs one side alone, to profile it.
    let side = std::env::var("BENCH_SIDE").unwrap_or_default();
    let run = |name: &str| side.is_empty() || side.split(',').any(|s| s == name);
    for _ in 0..ROUNDS {
        if run("one") {
            rates.one_worker.push(through_hooks(&one, &event, n).await);
        }
        if run("two") {
            rates.two_workers.push(through_hooks(&two, &event, n).await);
        }
        if run("bare") {
            rates.bare.push(bare(n));
        }
    }
    rates
}

fn json_to_lua(lua: &mlua::Lua, v: &serde_json::Value) -> mlua::Value {
    use serde_json::Value as J;
    match v {
        J::Null => mlua::Value::Nil,
        J::Bool(b) => mlua::Value::Boolean(*b),
        J::Number(n) => mlua::Value::Number(n.as_f64().unwrap_or(0.0)),
        J::String(s) => mlua::Value::String(lua.create_string(s).unwrap()),
        J::Array(a) => {
            let t = lua.create_table().unwrap();
            for (i, x) in a.iter().enumerate() {
                t.raw_set(i + 1, json_to_lua(lua, x)).unwrap();
            }
            mlua::Value::Table(t)
        }
        J::Object(o) => {
            let t = lua.create_table().unwrap();
            for (k, x) in o {
                t.raw_set(k.as_str(), json_to_lua(lua, x)).unwrap();
            }
            mlua::Value::Table(t)
        }
    }
}

fn lua_to_json(v: mlua::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        mlua::Value::Boolean(b) => J::Bool(b),
        mlua::Value::Integer(i) => J::from(i),
        mlua::Value::Number(n) if n.fract() == 0.0 => J::from(n as i64),
        mlua::Value::Number(n) => J::from(n),
        mlua::Value::String(s) => J::String(s.to_string_lossy()),
        mlua::Value::Table(t) => {
            if t.raw_len() > 0 {
                J::Array(
                    t.sequence_values::<mlua::Value>()
                        .map(|x| lua_to_json(x.unwrap()))
                        .collect(),
                )
            } else {
                let mut m = serde_json::Map::new();
                for pair in t.pairs::<String, mlua::Value>() {
                    let (k, x) = pair.unwrap();
                    m.insert(k, lua_to_json(x));
                }
                J::Object(m)
            }
        }
        _ => J::Null,
    }
}

/// A local ntfy stand-in on 127.0.0.1: answers every publish with 200 and counts them.
/// Counts requests and wakes a waiter once a goal is reached (no polling: a poller's
/// wake-ups would compete with the side being measured for the two cores).
#[derive(Default)]
struct Sink {
    hits: AtomicU64,
    goal: AtomicU64,
    reached: tokio::sync::Notify,
}

impl Sink {
    /// Wait until `more` requests beyond the current count have arrived.
    async fn wait_for(&self, more: u64) {
        let goal = self.hits.load(Ordering::SeqCst) + more;
        self.goal.store(goal, Ordering::SeqCst);
        while self.hits.load(Ordering::SeqCst) < goal {
            self.reached.notified().await;
        }
    }
}

fn start_sink() -> (std::net::SocketAddr, Arc<Sink>) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let hits = Arc::new(Sink::default());
    let counter = Arc::clone(&hits);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                let counter = Arc::clone(&counter);
                // Take the body: actix-web closes a connection whose request body was left
                // unread, which would make every request open a new one (ntfy keeps them alive).
                App::new().default_service(web::to(move |_body: web::Bytes| {
                    let n = counter.hits.fetch_add(1, Ordering::SeqCst) + 1;
                    if n == counter.goal.load(Ordering::SeqCst) {
                        counter.reached.notify_one();
                    }
                    async {
                        HttpResponse::Ok().json(serde_json::json!({"id": "x", "event": "message"}))
                    }
                }))
            })
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .expect("bind sink");
            tx.send(server.addrs()[0]).unwrap();
            server.run().await.unwrap();
        });
    });
    (rx.recv().unwrap(), hits)
}

/// The body both the bare loop and [`BareRequest`] send.
fn bare_body() -> serde_json::Value {
    serde_json::json!({"topic": "bench", "title": "Movie added", "message": "Dune (2021)", "priority": 3, "tags": ["movie_camera"]})
}

/// A plugin that sends exactly the bare loop's request and nothing else: through the
/// service, it shows what the pipeline itself costs, apart from the ntfy plugin's work.
struct BareRequest {
    url: String,
    body: serde_json::Value,
}

impl Role for BareRequest {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: "BareRequest",
            description: "the bare loop's request as a plugin",
            version: "0",
            config_schema: serde_json::json!({}),
        }
    }
    async fn call(&self, cx: &PluginContext, _: &Event) -> Result<Outcome, PluginError> {
        let failed = |e: reqwest::Error| PluginError::Transient {
            status: None,
            reason: e.to_string(),
        };
        let reply = cx
            .http
            .post(&self.url)
            .json(&self.body)
            .send()
            .await
            .map_err(failed)?;
        reply.bytes().await.map_err(failed)?;
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

/// Emit `n` events into `handle` (up to 2,000 waiting for their accept at once, as a busy
/// caller would: the accept waits for the store's commit) and wait until the sink has seen
/// `n` more requests.
async fn through_service(handle: &mydia_plugins::Handle, hits: &Sink, n: u64) -> f64 {
    let data = serde_json::json!({"media_item": {"title": "Dune", "year": 2021, "type": "movie"}});
    let data = data.as_object().cloned().unwrap();
    let arrived = hits.wait_for(n);
    futures::pin_mut!(arrived);
    // Register interest before the first request can arrive.
    let _ = futures::poll!(arrived.as_mut());
    let start = Instant::now();
    let emits = futures::stream::iter(0..n)
        .map(|_| handle.emit(EventName::AfterMediaAdded, data.clone()))
        .buffer_unordered(2000);
    futures::pin_mut!(emits);
    while let Some(r) = emits.next().await {
        r.expect("every event accepted");
    }
    arrived.await;
    n as f64 / start.elapsed().as_secs_f64()
}

/// Rates measured by (3), one entry per round and side.
#[derive(Default)]
struct NtfyRates {
    service: Vec<f64>,
    /// The same ntfy instance with the SQLite store (`synchronous: full`).
    durable: Vec<f64>,
    /// The same ntfy instance with a template for the event (title and message from the data).
    templated: Vec<f64>,
    bare_plugin: Vec<f64>,
    bare: Vec<f64>,
}

impl NtfyRates {
    fn best(rates: &[f64]) -> f64 {
        rates.iter().copied().fold(0.0, f64::max)
    }

    /// The median of `side / bare` within each round. The sides of one round run back to
    /// back, so each ratio compares them under nearly the same machine load; the ratio
    /// of the best rounds can pair a quiet moment on one side with a busy one on the other.
    fn paired(side: &[f64], bare: &[f64]) -> f64 {
        let mut r: Vec<f64> = side.iter().zip(bare).map(|(s, b)| s / b).collect();
        if r.is_empty() {
            return f64::NAN;
        }
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    }
}

/// (3) ntfy notifications through the whole service vs. a bare reqwest loop with the
/// same concurrency to the same sink; also the bare loop's request as a plugin through
/// the service, to split the gap between the pipeline and the ntfy plugin's own work.
async fn ntfy_vs_bare() -> NtfyRates {
    let (addr, hits) = start_sink();
    let concurrency = 8usize;
    let supervision =
        format!("hooks: {{enabled: false}}\nsupervision: {{max_in_flight: {concurrency}}}\n");
    // ntfy sends one at a time by default; the bare loop keeps 8 in flight, so this does too.
    let plugins = format!(
        "plugins:\n  ntfy:\n    enabled: true\n    server_url: http://{addr}\n    allow_insecure_http: true\n    allow_private_network: true\n    topic: bench\n    max_in_flight: {concurrency}\n"
    );
    let yaml = format!("{supervision}{plugins}");
    let ntfy =
        mydia_plugins::start(&Config::parse(&yaml, None).expect("bench config")).expect("start");
    let dir = tempfile::tempdir().unwrap();
    let durable_yaml = format!(
        "{supervision}storage: {{backend: sqlite, path: {}, synchronous: {}}}\n{plugins}",
        dir.path().join("bench.sqlite3").display(),
        store::synchronous_name()
    );
    let durable = mydia_plugins::start(&Config::parse(&durable_yaml, None).expect("bench config"))
        .expect("start");
    let templated_yaml = format!("{supervision}{plugins}{}", template::TEMPLATES);
    let templated =
        mydia_plugins::start(&Config::parse(&templated_yaml, None).expect("bench config"))
            .expect("start");
    let url = format!("http://{addr}/");
    let plain = {
        let url = url.clone();
        let spec = InstanceSpec::new("bare", "bare", "notification", move || BareRequest {
            url: url.clone(),
            body: bare_body(),
        });
        let config = Config::parse(&supervision, None).expect("bench config");
        mydia_plugins::start_with(&config, vec![spec]).expect("start")
    };
    // Rounds long enough (about a quarter of a second) that a burst of other load on
    // the shared machine does not decide one.
    let n = 15_000u64;
    let client = reqwest::Client::new();
    let body = bare_body();
    let mut rates = NtfyRates::default();
    // Interleave the sides so all see the same machine load. BENCH_SIDE=service, plugin or
    // bare runs one side alone, to profile it or count its CPU with perf stat; a list
    // (`service,templated,bare`) runs those.
    let side = std::env::var("BENCH_SIDE").unwrap_or_default();
    let run = |name: &str| side.is_empty() || side.split(',').any(|s| s == name);
    for _ in 0..ROUNDS {
        if run("service") {
            rates.service.push(through_service(&ntfy, &hits, n).await);
        }
        if run("durable") {
            rates
                .durable
                .push(through_service(&durable, &hits, n).await);
        }
        if run("templated") {
            rates
                .templated
                .push(through_service(&templated, &hits, n).await);
        }
        if run("plugin") {
            rates
                .bare_plugin
                .push(through_service(&plain, &hits, n).await);
        }
        if run("bare") {
            let start = Instant::now();
            let sent = futures::stream::iter(0..n)
                .map(|_| client.post(&url).json(&body).send())
                .buffer_unordered(concurrency);
            futures::pin_mut!(sent);
            while let Some(r) = sent.next().await {
                let _ = r.expect("sink answers").bytes().await;
            }
            rates.bare.push(n as f64 / start.elapsed().as_secs_f64());
        }
    }
    for handle in [ntfy, durable, templated, plain] {
        let status = handle.status().await;
        assert!(
            status.iter().all(|p| p.failed == 0),
            "deliveries failed: {status:?}"
        );
        handle.shutdown().await;
    }
    rates
}

fn main() {
    // `cargo bench --bench pipeline -- hooks` runs only the benchmarks whose name is given.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let system = actix_rt::System::new();
    system.block_on(async {
        println!("mydia-plugins pipeline benchmarks (best of {ROUNDS} rounds each)");
        if run("hooks") {
            let r = hooks_vs_bare().await;
            let (one, two, bare) = (
                NtfyRates::best(&r.one_worker),
                NtfyRates::best(&r.two_workers),
                NtfyRates::best(&r.bare),
            );
            println!(
                "(1) one hook changing 3 fields: Hooks (1 worker) {:>8.0} events/s, bare mlua {:>8.0}/s, ratio {:.2}; median of paired rounds {:.2}   (target >= 0.6 and >= 100000/s)",
                one,
                bare,
                one / bare,
                NtfyRates::paired(&r.one_worker, &r.bare)
            );
            println!(
                "    hooks.workers: 2 {:>8.0} events/s, {:.2}x one worker; median of paired rounds {:.2}x   (target >= 1.4x)",
                two,
                two / one,
                NtfyRates::paired(&r.two_workers, &r.one_worker)
            );
        }
        if run("fanout") {
        let fan = fan_out().await;
        println!(
            "(2) one event to 10 no-op plugins: {:>10.0} deliveries/s   (target >= 500000)",
            fan
        );
        }
        if run("store") || run("accept") {
            let (sqlite, memory) = store::durable_accept().await;
            println!(
                "(4) durable accept, one plugin: SQLite (synchronous: {}) {:>8.0} events/s, memory {:>8.0}/s, ratio {:.2}   (target >= 50000/s and >= 0.5)",
                store::synchronous_name(),
                sqlite,
                memory,
                sqlite / memory
            );
        }
        if run("store") || run("restart") {
            let r = store::restart_with_pending(100_000).await;
            println!(
                "(5) restart with {} pending deliveries: started (API served next) in {:.0} ms, first delivery after {:.0} ms, all sent after {:.1} s   (target: API within 2 s, sending at once)",
                r.pending,
                r.started.as_secs_f64() * 1000.0,
                r.first.as_secs_f64() * 1000.0,
                r.all.as_secs_f64()
            );
        }
        if run("metrics") {
            let (took, bytes) = metrics::scrape_cost().await;
            println!(
                "(7) one /metrics scrape with {} instances (SQLite store): {:.3} ms, {} bytes of text   (target < 1 ms)",
                metrics::INSTANCES,
                took.as_secs_f64() * 1000.0,
                bytes
            );
        }
        if run("ntfy") {
            let r = ntfy_vs_bare().await;
            let (service, plugin, bare) = (
                NtfyRates::best(&r.service),
                NtfyRates::best(&r.bare_plugin),
                NtfyRates::best(&r.bare),
            );
            println!(
                "(3) ntfy to a local sink: service {:>8.0}/s, bare reqwest {:>8.0}/s, ratio {:.2}; median of paired rounds {:.2}   (target >= 0.8)",
                service,
                bare,
                service / bare,
                NtfyRates::paired(&r.service, &r.bare)
            );
            let durable = NtfyRates::best(&r.durable);
            println!(
                "    with the SQLite store (synchronous: {}): {:>8.0}/s, ratio {:.2}; median of paired rounds {:.2}   (target >= 0.7)",
                store::synchronous_name(),
                durable,
                durable / bare,
                NtfyRates::paired(&r.durable, &r.bare)
            );
            let templated = NtfyRates::best(&r.templated);
            println!(
                "    with a template for the event (title and message from the data): {:>8.0}/s, ratio {:.2}; median of paired rounds {:.2}   (target >= 0.75)",
                templated,
                templated / bare,
                NtfyRates::paired(&r.templated, &r.bare)
            );
            println!(
                "    the bare request as a plugin through the service: {:>8.0}/s, ratio {:.2}; median of paired rounds {:.2}   (the pipeline's share of the gap)",
                plugin,
                plugin / bare,
                NtfyRates::paired(&r.bare_plugin, &r.bare)
            );
        }
        if run("template") {
            let cost = template::render_cost(ROUNDS);
            println!(
                "(6) one message template (title and message from the data): {:>6.0} ns per render in a delivery (the event shared); {:>6.0} ns from a copy of it (a preview); the built-in text {:>6.0} ns   (target <= 2000 ns)",
                cost.shared, cost.copied, cost.builtin
            );
        }
    });
}
