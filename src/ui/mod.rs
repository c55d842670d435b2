//! The operator's page at `/`: plugins and their state in words, their activity, the hooks.
//!
//! Server-rendered HTML (minijinja, autoescaped) with one small script that refreshes
//! parts of the page and sends the buttons' requests to the JSON API; templates and
//! assets are compiled into the binary, so it works offline with no build step. With
//! `server.api_token` set, a page asks for the token once and keeps a session cookie
//! (see [`crate::api`]'s access checks); the fragments and the API need that session.

mod activity;
mod hooks;
mod login;
mod settings_page;
mod try_page;
mod view;

use std::sync::OnceLock;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::value::Serde;
use minijinja::{context, Environment, Value};

use crate::api::Access;
use crate::app::Handle;
pub use activity::{activity_fragment, activity_page, delivery_fragment, ActivityFilter};
pub use hooks::{hooks_fragment, hooks_page};
pub use login::{login, Login};
pub use settings_page::settings_page;
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
}
