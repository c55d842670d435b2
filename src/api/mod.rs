//! The HTTP API (actix-web): send events, see every plugin's state, test a plugin's connection.

mod events;
mod plugins;

use std::net::SocketAddr;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use crate::app::Handle;

/// Largest request body accepted (events bigger than this are refused with 413).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Could not start serving.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}; set server.listen in the config to a free host:port")]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

/// A bound server, ready to run (`.await` it or spawn it; its `handle()` stops it), and
/// the address it is bound to (port 0 in `listen` picks a free port).
pub fn server(
    listen: SocketAddr,
    handle: Handle,
) -> Result<(actix_web::dev::Server, SocketAddr), BindError> {
    let data = web::Data::new(handle);
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
        .workers(2)
        .disable_signals()
        .shutdown_timeout(5)
        .bind(listen)
        .map_err(|source| BindError {
            addr: listen,
            source,
        })?;
    let bound = server.addrs().first().copied().unwrap_or(listen);
    Ok((server.run(), bound))
}

/// The routes, for embedding into another actix-web `App` (needs `web::Data<Handle>`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(MAX_BODY))
        .route("/healthz", web::get().to(healthz))
        .route("/api/v1/events", web::post().to(events::post_event))
        .route("/api/v1/events", web::get().to(events::catalog))
        .route("/api/v1/hooks", web::get().to(plugins::hooks))
        // A hook's name holds a slash (`event_dir/file.lua`), so the segment may too.
        .route(
            "/api/v1/hooks/{name:.+}/release",
            web::post().to(plugins::release_hook),
        )
        .route("/api/v1/plugins", web::get().to(plugins::list))
        .route("/api/v1/plugins/{name}", web::get().to(plugins::one))
        .route("/api/v1/plugins/{name}/test", web::post().to(plugins::test))
        .default_service(web::to(not_found));
}

async fn healthz(handle: web::Data<Handle>) -> HttpResponse {
    let status = handle.status().await;
    let count = |s: &str| status.iter().filter(|p| p.state == s).count();
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "plugins": {
            "closed": count("closed"), "open": count("open"), "half_open": count("half_open"),
            "misconfigured": count("misconfigured"), "disabled": count("disabled"),
        }
    }))
}

async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    error(
        actix_web::http::StatusCode::NOT_FOUND,
        format!(
            "no route for {} {}; see GET /api/v1/events, POST /api/v1/events, GET /api/v1/plugins, POST /api/v1/plugins/NAME/test, GET /api/v1/hooks, POST /api/v1/hooks/NAME/release, GET /healthz",
            req.method(),
            req.path()
        ),
    )
}

/// A JSON error body `{"error": ...}` with `status`.
pub(crate) fn error(
    status: actix_web::http::StatusCode,
    message: impl Into<String>,
) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message.into() }))
}
