//! An instance's settings page: a form built from its type's schema, each value with where
//! it comes from (the config file, changed here, the default), secrets only as set or not
//! (their inputs are always empty: a value never reaches the page). Save sends
//! `PATCH /api/v1/plugins/{name}/settings`; the answer's problems are shown beside their
//! fields.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::context;
use minijinja::value::Serde;
use serde_json::{json, Value};

use super::{access_of, page, render};
use crate::app::Handle;

/// `GET /plugins/{name}`: the settings form of an instance.
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
    let mut view = crate::api::settings::live_view(&handle, cfg).await;
    for f in view["fields"].as_array_mut().into_iter().flatten() {
        form_field(f);
    }
    let common = common_fields(&view);
    let s = Serde(view);
    let file = handle
        .config_source()
        .and_then(|p| p.file_name())
        .map(|p| p.to_string_lossy().into_owned());
    let editable = file.is_some();
    let file = file.unwrap_or_else(|| "the config".to_owned());
    let ctx = context! {
        title => format!("Settings: {name}"), s, common => Serde(common), file, editable,
    };
    page(&req, access_of(&req), "settings.html", "plugins", ctx)
}

/// Adds to a settings field what its input needs: `input` (text, number, checkbox,
/// select), `kind` (how the page's script reads it back), `current` (the input's value as
/// text, empty for secrets), `options` and `placeholder`.
fn form_field(f: &mut Value) {
    let secret = f["secret"].as_bool().unwrap_or(false);
    let ty = &f["type"];
    let (input, kind) = if let Some(options) = ty.get("enum") {
        f["options"] = options.clone();
        ("select", "text")
    } else {
        match ty.as_str() {
            Some("boolean") => ("checkbox", "bool"),
            Some("integer") => ("number", "int"),
            Some("number") => ("number", "number"),
            Some("array") => ("text", "list"),
            Some("object") => ("text", "json"),
            Some(_) => ("text", "text"),
            // Several types (`["integer", "string"]`): a number when it reads as one.
            None if ty.is_array() => ("text", "int_or_text"),
            None => ("text", "json"),
        }
    };
    let (input, kind) = if secret {
        ("password", if kind == "json" { "json" } else { "text" })
    } else {
        (input, kind)
    };
    f["input"] = json!(input);
    f["kind"] = json!(kind);
    f["current"] = json!(if secret {
        String::new()
    } else {
        as_text(&f["value"])
    });
    f["checked"] = json!(f["value"].as_bool().unwrap_or(false));
    let placeholder = match (&f["default"], f["required"].as_bool()) {
        (Value::Null, Some(true)) => "required".to_owned(),
        (Value::Null, _) => String::new(),
        (d, _) if as_text(d).is_empty() => "default: none".to_owned(),
        (d, _) => format!("default: {}", as_text(d)),
    };
    f["placeholder"] = json!(placeholder);
}

/// The fields every instance has that the form can change, with their current values.
fn common_fields(view: &Value) -> Value {
    let c = &view["common"];
    let overridden = |f: &str| {
        view["overridden"]
            .as_array()
            .is_some_and(|o| o.iter().any(|x| x == f))
    };
    let row = |name: &str, input: &str, kind: &str, placeholder: &str, about: &str| {
        json!({
            "name": name, "input": input, "kind": kind, "current": as_text(&c[name]),
            "checked": c[name].as_bool().unwrap_or(false), "placeholder": placeholder,
            "source": if overridden(name) { "overrides" } else { "file" }, "description": about,
        })
    };
    json!([
        row(
            "enabled",
            "checkbox",
            "bool",
            "",
            "deliver to this instance at all"
        ),
        row(
            "events",
            "text",
            "list",
            "the type's defaults",
            "events it receives, comma-separated"
        ),
        row(
            "timeout_ms",
            "number",
            "int",
            "supervision.delivery_timeout",
            "per-delivery timeout in milliseconds"
        ),
        row(
            "max_in_flight",
            "number",
            "int",
            "the type's default",
            "deliveries in flight at once"
        ),
    ])
}

/// A value as an input shows it: text as is, lists comma-separated, objects as JSON.
fn as_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}
