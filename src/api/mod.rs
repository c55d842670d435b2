//! The HTTP API (actix-web): send events, see every plugin's state, test a plugin's connection.
//!
//! [`routes`] holds the one table of endpoints; [`guard`] bounds what a request may take
//! (body size, time to send it) and turns every error into `{"error": ...}`.

mod auth;
pub(crate) mod deliveries;
mod events;
mod guard;
mod health;
mod metrics;
mod plugins;
mod preview;
mod reload;
mod routes;
pub(crate) mod session;
pub(crate) mod settings;

use std::net::SocketAddr;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

pub use auth::Access;
pub use guard::Limits;
pub use health::Readiness;
pub use routes::{routes, routes_secured, routes_with};

use crate::app::Handle;
use crate::config::{ListenAddr, ServerConfig};

/// Worker threads of the HTTP server: the API is light, the plugins have their own threads.
const WORKERS: usize = 2;

/// Could not start serving.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}; set server.listen in the config to a free host:port")]
pub struct BindError {
    /// The address as configured.
    pub addr: ListenAddr,
    /// Why.
    pub source: std::io::Error,
}

/// A bound server with the default limits, ready to run (`.await` it or spawn it; its
/// `handle()` stops it), and the address it is bound to (port 0 in `listen` picks a free
/// port). `/readyz` answers ready at once; see [`serve`] to control that.
pub fn server(
    listen: ListenAddr,
    handle: Handle,
) -> Result<(actix_web::dev::Server, SocketAddr), BindError> {
    let config = ServerConfig {
        listen,
        ..ServerConfig::default()
    };
    let readiness = Readiness::default();
    readiness.set_ready();
    let (server, addrs) = serve(&config, handle, readiness)?;
    Ok((server, addrs[0]))
}

/// A bound server with `config`'s address, body limit, request timeout and connection cap;
/// `/readyz` follows `readiness`. Returns every bound address (a host name may resolve to
/// several, e.g. `localhost` to `127.0.0.1` and `::1`); there is at least one.
pub fn serve(
    config: &ServerConfig,
    handle: Handle,
    readiness: Readiness,
) -> Result<(actix_web::dev::Server, Vec<SocketAddr>), BindError> {
    let data = web::Data::new(handle);
    let limits = Limits::from(config);
    let access = Access::new(config.api_token.clone(), config.metrics.public);
    let metrics = web::Data::new(config.metrics);
    let page_access = web::Data::new(access.clone());
    let workers = WORKERS.min(config.max_connections).max(1);
    let fail = |source| BindError {
        addr: config.listen.clone(),
        source,
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(readiness.clone())
            .app_data(metrics.clone())
            .app_data(page_access.clone())
            .configure(|cfg| routes_secured(cfg, limits, access.clone()))
    })
    .workers(workers)
    // actix counts per worker; round up so the total is at least what was asked for.
    .max_connections(config.max_connections.div_ceil(workers))
    // The head must arrive within the same bound as the body ([`guard`] times the body).
    .client_request_timeout(config.request_timeout)
    // actix-web times only a connection's first request head: a second request sent half
    // on a kept-alive connection would hold it forever. One request per connection.
    .keep_alive(actix_web::http::KeepAlive::Disabled)
    .disable_signals()
    .shutdown_timeout(5)
    .bind((config.listen.host(), config.listen.port()))
    .map_err(fail)?;
    let addrs = server.addrs();
    if addrs.is_empty() {
        return Err(fail(std::io::Error::other(
            "the name resolved to no address",
        )));
    }
    Ok((server.run(), addrs))
}

/// A JSON error body `{"error": ...}` with `status`.
pub(crate) fn error(
    status: actix_web::http::StatusCode,
    message: impl Into<String>,
) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message.into() }))
}
