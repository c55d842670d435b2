//! The one table of endpoints, used for routing, for `405`'s `Allow` header and for the
//! list of routes a `404` names, so none of them can go stale. Adding an endpoint is one
//! line in [`table`].

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::{from_fn, Next};
use actix_web::{guard as method, web, HttpRequest, HttpResponse, Route};

use super::auth::Access;
use super::guard::{guard, Limits};
use super::{deliveries, error, events, health, metrics, plugins, preview, reload};
use crate::ui;

/// One endpoint: a method, a path pattern and its handler.
struct Endpoint {
    method: Method,
    path: &'static str,
    route: Route,
}

/// Every endpoint, in matching order (a literal segment before a `{name}` at the same depth).
/// A `GET` endpoint answers `HEAD` too.
fn table() -> Vec<Endpoint> {
    use Method as M;
    vec![
        at(M::GET, "/healthz", web::to(health::healthz)),
        at(M::GET, "/readyz", web::to(health::readyz)),
        at(M::GET, "/metrics", web::to(metrics::scrape)),
        // The operator's page: pages ask for the token themselves (a sign-in form).
        at(M::GET, "/", web::to(ui::plugins_page)),
        at(M::GET, "/activity", web::to(ui::activity_page)),
        at(M::GET, "/hooks", web::to(ui::hooks_page)),
        at(M::GET, "/try", web::to(ui::try_page)),
        at(M::GET, "/plugins/{name}", web::to(ui::settings_page)),
        at(M::POST, "/ui/preview", web::to(ui::preview_fragment)),
        at(M::POST, "/ui/login", web::to(ui::login)),
        at(M::GET, "/ui/plugins", web::to(ui::plugins_fragment)),
        at(M::GET, "/ui/activity", web::to(ui::activity_fragment)),
        at(M::GET, "/ui/hooks", web::to(ui::hooks_fragment)),
        at(M::GET, "/ui/delivery/{id}", web::to(ui::delivery_fragment)),
        at(M::GET, "/assets/{file}", web::to(ui::asset)),
        at(M::GET, "/api/v1/events", web::to(events::catalog)),
        at(M::POST, "/api/v1/events", web::to(events::post_event)),
        at(M::POST, "/api/v1/preview", web::to(preview::preview)),
        at(M::POST, "/api/v1/reload", web::to(reload::reload)),
        at(M::GET, "/api/v1/hooks", web::to(plugins::hooks)),
        // A hook's name holds a slash (`event_dir/file.lua`), so the segment may too.
        at(
            M::POST,
            "/api/v1/hooks/{name:.+}/release",
            web::to(plugins::release_hook),
        ),
        at(M::GET, "/api/v1/plugins", web::to(plugins::list)),
        at(M::GET, "/api/v1/plugins/{name}", web::to(plugins::one)),
        at(
            M::GET,
            "/api/v1/plugins/{name}/settings",
            web::to(plugins::settings),
        ),
        at(
            M::PATCH,
            "/api/v1/plugins/{name}/settings",
            web::to(super::settings::patch),
        ),
        at(
            M::POST,
            "/api/v1/plugins/{name}/test",
            web::to(plugins::test),
        ),
        at(
            M::POST,
            "/api/v1/plugins/{name}/enable",
            web::to(plugins::enable),
        ),
        at(
            M::POST,
            "/api/v1/plugins/{name}/disable",
            web::to(plugins::disable),
        ),
        at(
            M::POST,
            "/api/v1/plugins/{name}/replay",
            web::to(deliveries::replay),
        ),
        at(M::GET, "/api/v1/deliveries", web::to(deliveries::list)),
        at(M::GET, "/api/v1/deliveries/{id}", web::to(deliveries::one)),
        at(
            M::POST,
            "/api/v1/deliveries/{id}/retry",
            web::to(deliveries::retry),
        ),
    ]
}

fn at(method: Method, path: &'static str, route: Route) -> Endpoint {
    Endpoint {
        method,
        path,
        route,
    }
}

/// The routes with the default limits, for embedding into another actix-web `App` (needs
/// `web::Data<Handle>`; a [`super::Readiness`] in the app data drives `/readyz`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    routes_with(cfg, Limits::default());
}

/// The routes with these limits and no token. Every endpoint is wrapped in the request
/// guard, so the body limit and the body timeout hold on each, and every error answer is JSON.
pub fn routes_with(cfg: &mut web::ServiceConfig, limits: Limits) {
    routes_secured(cfg, limits, Access::default());
}

/// [`routes_with`], and every endpoint but the health probes needs `access`'s token (the
/// check runs before the body is read).
pub fn routes_secured(cfg: &mut web::ServiceConfig, limits: Limits, access: Access) {
    let mut resources: Vec<(&'static str, Vec<(Method, Route)>)> = Vec::new();
    let mut listing = Vec::new();
    for e in table() {
        listing.push(format!("{} {}", e.method, e.path));
        match resources.iter_mut().find(|(p, _)| *p == e.path) {
            Some((_, routes)) => routes.push((e.method, e.route)),
            None => resources.push((e.path, vec![(e.method, e.route)])),
        }
    }
    for (path, routes) in resources {
        let mut allow: Vec<String> = Vec::new();
        let mut resource = web::resource(path)
            .app_data(web::PayloadConfig::new(limits.max_body_bytes))
            .app_data(web::JsonConfig::default().limit(limits.max_body_bytes));
        for (m, route) in routes {
            allow.push(m.to_string());
            resource = if m == Method::GET {
                allow.push(Method::HEAD.to_string());
                resource.route(route.guard(method::Any(method::Get()).or(method::Head())))
            } else {
                resource.route(route.method(m))
            };
        }
        let allow = allow.join(", ");
        let open = access.is_open(path);
        let gate = access.clone();
        let resource = resource
            .default_service(web::to(move |req: HttpRequest| {
                let allow = allow.clone();
                async move { not_allowed(&req, &allow) }
            }))
            .wrap(from_fn(move |req, next| guard(limits, req, next)))
            .wrap(from_fn(move |req, next| {
                let gate = gate.clone();
                async move { authorized(open, &gate, req, next).await }
            }));
        cfg.service(resource);
    }
    let listing = listing.join(", ");
    cfg.default_service(web::to(move |req: HttpRequest| {
        let listing = listing.clone();
        let access = access.clone();
        // Without the token, not even the list of routes is told.
        async move {
            access
                .denial(&req)
                .unwrap_or_else(|| not_found(&req, &listing))
        }
    }));
}

/// The token check around one resource; `open` resources skip it.
async fn authorized(
    open: bool,
    access: &Access,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse, actix_web::Error> {
    if !open {
        if let Some(denied) = access.denial(req.request()) {
            return Ok(req.into_response(denied));
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

fn not_allowed(req: &HttpRequest, allow: &str) -> HttpResponse {
    let mut res = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}; allowed: {allow}",
            req.method(),
            req.path()
        ),
    );
    if let Ok(v) = header::HeaderValue::from_str(allow) {
        res.headers_mut().insert(header::ALLOW, v);
    }
    res
}

fn not_found(req: &HttpRequest, listing: &str) -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no route for {} {}; routes: {listing}",
            req.method(),
            req.path()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_each_method_and_path_once() {
        let mut seen: Vec<String> = table()
            .iter()
            .map(|e| format!("{} {}", e.method, e.path))
            .collect();
        let all = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen.len(),
            all,
            "a duplicate endpoint would never be reached"
        );
    }
}
