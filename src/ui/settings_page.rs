//! An instance's settings page: each value, where it comes from, secrets as set or not.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::context;
use minijinja::value::Serde;

use super::{access_of, page, render};
use crate::app::Handle;

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
