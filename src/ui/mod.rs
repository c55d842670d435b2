//! The operator's page at `/`: plugins and their state in words, their activity, the hooks.
//!
//! Server-rendered HTML (minijinja, autoescaped) with one small script that refreshes
//! parts of the page and sends the buttons' requests to the JSON API; templates and
//! assets are compiled into the binary, so it works offline with no build step. With
//! `server.api_token` set, a page asks for the token once and keeps a session cookie
//! (see [`crate::api`]'s access checks); the fragments and the API need that session.

mod try_page;
mod view;

use std::sync::OnceLock;

use actix_web::cookie::{time::Duration as CookieAge, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::value::Serde;
use minijinja::{context, Environment, Value};
use serde::Deserialize;

use crate::api::deliveries::item;
use crate::api::{session, Access};
use crate::app::Handle;
use crate::store::{Query, State};
pub use try_page::{preview_fragment, try_page};
use view::PluginRow;

/// The templates, by name, as compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("login.html", include_str!("templates/login.html")),
    ("plugins.html", include_str!("templates/plugins.html")),
    (
        "plugins_table.html",
        include_str!("templates/plugins_table.html"),
    ),
    ("activity.html", include_str!("templates/activity.html")),
    (
        "activity_table.html",
        include_str!("templates/activity_table.html"),
    ),
    ("delivery.html", include_str!("templates/delivery.html")),
    ("hooks.html", include_str!("templates/hooks.html")),
    (
        "hooks_table.html",
        include_str!("templates/hooks_table.html"),
    ),
    ("try.html", include_str!("templates/try.html")),
    ("settings.html", include_str!("templates/settings.html")),
    ("preview.html", include_str!("templates/preview.html")),
    ("error.html", include_str!("templates/error.html")),
];

/// Deliveries one activity page shows.
const ACTIVITY_LIMIT: usize = 100;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            // The templates ship with the binary; a test renders every one of them.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "a page template does not compile");
            }
        }
        env
    })
}

/// `name` rendered with `ctx`, or a plain 500 saying which template failed.
fn render(name: &str, ctx: Value) -> HttpResponse {
    match env().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(html),
        Err(e) => {
            tracing::error!(template = name, error = %e, "cannot render a page");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body(format!("cannot render {name}: {e}"))
        }
    }
}

/// The session's CSRF token for the page's `<meta>`, when the request came with a session.
fn csrf_of(req: &HttpRequest, access: Option<&Access>) -> Option<String> {
    let access = access?;
    let id = access.session_of(req)?;
    access.sessions().csrf(&id)
}

/// A full page: `name` inside the layout, or the sign-in page when the token is needed.
fn page(
    req: &HttpRequest,
    access: Option<&Access>,
    name: &str,
    page: &str,
    ctx: Value,
) -> HttpResponse {
    if access.is_some_and(|a| a.denial(req).is_some()) {
        let next = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let mut r = render(
            "login.html",
            context! { title => "Sign in", page => "", version => env!("CARGO_PKG_VERSION"), next, failed => false },
        );
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    }
    let ctx = context! {
        page, version => env!("CARGO_PKG_VERSION"), csrf => csrf_of(req, access), ..ctx
    };
    render(name, ctx)
}

fn access_of(req: &HttpRequest) -> Option<&Access> {
    req.app_data::<web::Data<Access>>().map(|d| d.get_ref())
}

async fn plugin_rows(handle: &Handle) -> Vec<PluginRow> {
    let configs = handle.plugin_configs();
    handle
        .status()
        .await
        .iter()
        .map(|p| PluginRow {
            configured: configs.iter().any(|c| c.name == p.name),
            ..PluginRow::from(p)
        })
        .collect()
}

/// `GET /`: the plugins.
pub async fn plugins_page(req: HttpRequest, handle: web::Data<Handle>) -> HttpResponse {
    let plugins = Serde(plugin_rows(&handle).await);
    page(
        &req,
        access_of(&req),
        "plugins.html",
        "plugins",
        context! { title => "Plugins", plugins },
    )
}

/// `GET /ui/plugins`: the plugins table alone, for the page's refresh.
pub async fn plugins_fragment(handle: web::Data<Handle>) -> HttpResponse {
    render(
        "plugins_table.html",
        context! { plugins => Serde(plugin_rows(&handle).await) },
    )
}

/// The activity filters, as given in the query string.
#[derive(Debug, Default, Deserialize)]
pub struct ActivityFilter {
    #[serde(default)]
    plugin: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    event_id: String,
}

async fn activity_context(handle: &Handle, f: &ActivityFilter) -> Value {
    let mut query = Query {
        limit: ACTIVITY_LIMIT,
        ..Query::default()
    };
    let mut error = None;
    if !f.plugin.is_empty() {
        query.instance = Some(f.plugin.clone());
    }
    if !f.event_id.is_empty() {
        query.event_id = Some(f.event_id.trim().to_owned());
    }
    if !f.state.is_empty() {
        match f.state.parse::<State>() {
            Ok(s) => query.state = Some(s),
            Err(e) => error = Some(e),
        }
    }
    let deliveries: Vec<serde_json::Value> = match handle.deliveries(query).await {
        Ok(page) => page.items.iter().map(|s| item(handle, s)).collect(),
        Err(e) => {
            error = Some(format!("the store could not answer: {e}"));
            Vec::new()
        }
    };
    let plugin_names: Vec<String> = handle.status().await.into_iter().map(|p| p.name).collect();
    let query = serde_urlencoded_pairs(f);
    context! {
        deliveries => Serde(deliveries), error, plugin_names, query,
        plugin => &f.plugin, state => &f.state, event_id => &f.event_id,
        states => ["pending", "in_flight", "held", "delivered", "dead"],
    }
}

/// The filters as a query string (values percent-encoded).
fn serde_urlencoded_pairs(f: &ActivityFilter) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "plugin={}&state={}&event_id={}",
        enc(&f.plugin),
        enc(&f.state),
        enc(&f.event_id)
    )
}

/// `GET /activity`: deliveries, newest first, with filters, Retry and Replay.
pub async fn activity_page(
    req: HttpRequest,
    handle: web::Data<Handle>,
    filter: web::Query<ActivityFilter>,
) -> HttpResponse {
    let ctx = activity_context(&handle, &filter).await;
    page(
        &req,
        access_of(&req),
        "activity.html",
        "activity",
        context! { title => "Activity", ..ctx },
    )
}

/// `GET /ui/activity`: the deliveries table alone.
pub async fn activity_fragment(
    handle: web::Data<Handle>,
    filter: web::Query<ActivityFilter>,
) -> HttpResponse {
    render(
        "activity_table.html",
        activity_context(&handle, &filter).await,
    )
}

/// `GET /ui/delivery/{id}`: one delivery's attempts.
pub async fn delivery_fragment(handle: web::Data<Handle>, id: web::Path<String>) -> HttpResponse {
    match handle.delivery(&id).await {
        Ok(Some(detail)) => render(
            "delivery.html",
            context! { attempts => Serde(&detail.attempts) },
        ),
        Ok(None) => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no delivery {id}")),
        Err(e) => HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body(format!("the store could not answer: {e}")),
    }
}

fn hooks_context(handle: &Handle) -> Value {
    let stats = handle.hooks().stats();
    let hooks: Vec<_> = stats
        .hooks
        .iter()
        .map(|h| {
            let state = h.state();
            context! {
                file => &h.file, state, runs => h.runs, failures => h.failures,
                rejections => h.rejections, quarantined => &h.quarantined, last_error => &h.last_error,
            }
        })
        .collect();
    context! {
        hooks, workers => stats.workers, vm_restarts => stats.vm_restarts,
        enabled => handle.hooks().is_enabled(),
    }
}

/// `GET /hooks`: every hook with its counters, quarantine and Release.
pub async fn hooks_page(req: HttpRequest, handle: web::Data<Handle>) -> HttpResponse {
    let ctx = hooks_context(&handle);
    page(
        &req,
        access_of(&req),
        "hooks.html",
        "hooks",
        context! { title => "Hooks", ..ctx },
    )
}

/// `GET /ui/hooks`: the hooks table alone.
pub async fn hooks_fragment(handle: web::Data<Handle>) -> HttpResponse {
    render("hooks_table.html", hooks_context(&handle))
}

/// `GET /plugins/{name}`: an instance's settings, where each value comes from, secrets as
/// set or not.
pub async fn settings_page(
    req: HttpRequest,
    handle: web::Data<Handle>,
    name: web::Path<String>,
) -> HttpResponse {
    let configs = handle.plugin_configs();
    let Some(cfg) = configs.iter().find(|c| c.name == *name) else {
        let known: Vec<_> = configs.iter().map(|c| c.name.as_str()).collect();
        let mut r = render(
            "error.html",
            context! { error => format!("no configured instance named {name}; configured: {}", known.join(", ")) },
        );
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let mut view = crate::plugins::settings::view(cfg);
    // Shown as YAML writes them (`true`), not as the template engine prints a boolean.
    let yaml_bool = |v: &mut serde_json::Value| {
        if let Some(b) = v.as_bool() {
            *v = serde_json::Value::String(b.to_string());
        }
    };
    for f in view["fields"].as_array_mut().into_iter().flatten() {
        yaml_bool(&mut f["value"]);
    }
    for v in view["common"]
        .as_object_mut()
        .into_iter()
        .flat_map(|m| m.values_mut())
    {
        yaml_bool(v);
    }
    let s = Serde(view);
    let source = handle
        .config_source()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the config".to_owned());
    let ctx = context! { title => format!("Settings: {name}"), s, source };
    page(&req, access_of(&req), "settings.html", "plugins", ctx)
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct Login {
    token: String,
    #[serde(default)]
    next: String,
}

/// Where to go after signing in: a path on this site only (never `//host`).
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

/// `POST /ui/login`: the token typed once becomes a session cookie.
pub async fn login(req: HttpRequest, form: web::Form<Login>) -> HttpResponse {
    let Some(access) = access_of(&req).filter(|a| a.is_required()) else {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/"))
            .finish();
    };
    if !access.token_matches(&form.token) {
        tracing::warn!(target: "api", "sign-in to the page with a wrong token");
        let mut r = render(
            "login.html",
            context! { title => "Sign in", page => "", version => env!("CARGO_PKG_VERSION"), next => safe_next(&form.next), failed => true },
        );
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    }
    let (id, _csrf) = access.sessions().start();
    let cookie = Cookie::build(session::COOKIE, id)
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(CookieAge::seconds(session::LIFETIME.as_secs() as i64))
        .finish();
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, safe_next(&form.next)))
        .finish()
}

/// The page's static files.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
];

/// `GET /assets/{file}`.
pub async fn asset(file: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(name, _, _)| *name == file.as_str()) {
        Some((_, kind, body)) => HttpResponse::Ok()
            .content_type(*kind)
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(*body),
        None => {
            let known: Vec<_> = ASSETS.iter().map(|a| a.0).collect();
            crate::api::error(
                StatusCode::NOT_FOUND,
                format!("no asset {file}; there are: {}", known.join(", ")),
            )
        }
    }
}

/// Every template with an empty context, for the test that they all compile and render.
#[cfg(test)]
fn all_templates() -> Vec<&'static str> {
    TEMPLATES.iter().map(|(n, _)| *n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_renders_escaped() {
        for name in all_templates() {
            env()
                .get_template(name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let rows = vec![
            context! { name => "<b>x</b>", kind => "ntfy", role => "notification", state => "closed", state_label => "healthy", words => "<script>", delivered => 1, failed => 0, held => 0, dead => 0 },
        ];
        let html = env()
            .get_template("plugins_table.html")
            .unwrap()
            .render(context! { plugins => rows })
            .unwrap();
        assert!(
            html.contains("&lt;b&gt;x&lt;&#x2f;b&gt;") || html.contains("&lt;b&gt;x&lt;/b&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
    }

    #[test]
    fn every_template_file_is_compiled_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ui/templates");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut listed = all_templates();
        listed.sort();
        assert_eq!(files, listed);
    }

    #[test]
    fn only_local_paths_are_followed_after_signing_in() {
        assert_eq!(safe_next("/activity?plugin=ntfy"), "/activity?plugin=ntfy");
        for bad in ["//evil.example", "https://evil.example", "", "/\\evil"] {
            assert_eq!(safe_next(bad), "/", "{bad}");
        }
    }

    #[test]
    fn filters_are_percent_encoded() {
        let f = ActivityFilter {
            plugin: "ntfy".into(),
            state: "dead".into(),
            event_id: "a b&c".into(),
        };
        assert_eq!(
            serde_urlencoded_pairs(&f),
            "plugin=ntfy&state=dead&event_id=a%20b%26c"
        );
    }
}
