//! Shared test helpers: scripted plugins, a polling wait, small supervision settings.

pub mod browser;
pub mod daemon;
pub mod hook_service;
pub mod logs;
pub mod scripted;
pub mod service;

use std::future::Future;
use std::time::{Duration, Instant};

use mydia_plugins::config::{Config, SupervisionConfig};
use mydia_plugins::Handle;

/// Poll `cond` every 10 ms until it holds or `limit` passes; returns whether it held.
pub async fn wait_until<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Supervision with small numbers so tests run in well under a second each.
pub fn fast_supervision() -> SupervisionConfig {
    SupervisionConfig {
        restart_backoff_base: Duration::from_millis(20),
        restart_backoff_max: Duration::from_millis(100),
        restart_reset_after: Duration::from_secs(60),
        max_restarts: 3,
        restart_window: Duration::from_secs(60),
        open_cooldown: Duration::from_millis(300),
        open_cooldown_max: Duration::from_secs(2),
        breaker_window: 10,
        breaker_min_calls: 3,
        breaker_failure_rate: 0.5,
        delivery_timeout: Duration::from_millis(300),
        max_in_flight: 8,
        backlog_max_age: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(2),
    }
}

/// A config with no plugins, no hooks and fast supervision.
pub fn fast_config() -> Config {
    let mut c = Config::empty();
    c.hooks.enabled = false;
    c.supervision = fast_supervision();
    c
}

/// A JSON object literal as event data.
#[macro_export]
macro_rules! data {
    ($($t:tt)*) => { serde_json::json!($($t)*).as_object().cloned().unwrap() };
}

/// Serve the HTTP API for `handle` on a free loopback port; its base URL.
pub fn serve_api(handle: &Handle) -> String {
    let (server, addr) =
        mydia_plugins::api::server("127.0.0.1:0".parse().unwrap(), handle.clone()).unwrap();
    actix_rt::spawn(server);
    format!("http://{addr}")
}

/// Instance `name`'s status.
pub async fn state(h: &Handle, name: &str) -> mydia_plugins::supervisor::PluginStatus {
    h.status()
        .await
        .into_iter()
        .find(|p| p.name == name)
        .expect("plugin exists")
}

/// Emit `n` media-added events one after another; their ids, in order.
pub async fn emit_n(h: &Handle, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let done = h
            .emit(
                mydia_plugins::event::EventName::AfterMediaAdded,
                serde_json::json!({"media_item": {"title": format!("Movie {i}")}})
                    .as_object()
                    .cloned()
                    .unwrap(),
            )
            .await
            .unwrap();
        ids.push(done.event.id.clone());
    }
    ids
}
