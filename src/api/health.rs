//! `GET /healthz` (liveness, with the plugins' health) and `GET /readyz` (readiness).
//!
//! Liveness answers 200 whenever the service runs, so an orchestrator does not restart it
//! because a notification server is down; it says `degraded` with counts instead.
//! Readiness answers 503 while starting or shutting down, so a caller can hold back.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::app::Handle;

/// States that count as "not healthy" for `/healthz`.
const UNHEALTHY: &[&str] = &["open", "half_open", "misconfigured"];

/// Every state a plugin can be in, as `/healthz` counts them.
const STATES: &[&str] = &["closed", "open", "half_open", "misconfigured", "disabled"];

const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPING: u8 = 2;

/// Whether the service takes work: starting, ready, then shutting down. Cheap to clone;
/// every clone sees the same state. Starts as starting.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicU8>);

impl Readiness {
    /// Everything is up: `/readyz` answers 200.
    pub fn set_ready(&self) {
        let _ = self
            .0
            .compare_exchange(STARTING, READY, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Shutting down: `/readyz` answers 503 from now on.
    pub fn set_shutting_down(&self) {
        self.0.store(STOPPING, Ordering::Release);
    }

    /// `starting`, `ready` or `shutting_down`.
    pub fn state(&self) -> &'static str {
        match self.0.load(Ordering::Acquire) {
            STARTING => "starting",
            READY => "ready",
            _ => "shutting_down",
        }
    }
}

pub(super) async fn healthz(handle: web::Data<Handle>) -> HttpResponse {
    let status = handle.status().await;
    let count = |s: &str| status.iter().filter(|p| p.state == s).count();
    let plugins: serde_json::Map<String, serde_json::Value> = STATES
        .iter()
        .map(|s| ((*s).to_owned(), count(s).into()))
        .collect();
    let degraded = UNHEALTHY.iter().any(|s| count(s) > 0);
    HttpResponse::Ok().json(json!({
        "status": if degraded { "degraded" } else { "ok" },
        "plugins": plugins,
    }))
}

/// Embedded without a [`Readiness`] in the app data, the API counts as ready.
pub(super) async fn readyz(req: HttpRequest) -> HttpResponse {
    let state = req
        .app_data::<Readiness>()
        .map(Readiness::state)
        .unwrap_or("ready");
    match state {
        "ready" => HttpResponse::Ok().json(json!({ "status": state })),
        _ => HttpResponse::ServiceUnavailable().json(json!({
            "status": state,
            "error": format!("not ready: {}", state.replace('_', " ")),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_goes_starting_ready_shutting_down_and_never_back() {
        let r = Readiness::default();
        assert_eq!(r.state(), "starting");
        let seen_elsewhere = r.clone();
        r.set_ready();
        assert_eq!(seen_elsewhere.state(), "ready");
        r.set_shutting_down();
        r.set_ready();
        assert_eq!(r.state(), "shutting_down");
    }
}
