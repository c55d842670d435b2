//! `PATCH /api/v1/plugins/{name}/settings` and what Enable/Disable keep: a change is
//! written to `overrides.yaml` only after the config with it merged in loads (the same
//! checks as the file: every problem at once, nothing written), then applied live by a
//! reload, which rebuilds the changed instance keeping what waits for it.
//!
//! Fields a change may set: the type's own (its `config_schema`) and `enabled`, `events`,
//! `timeout_ms`, `max_in_flight` (see [`overrides::COMMON_FIELDS`]); `null` removes the
//! override, so the field goes back to the file's value or the default. Secrets are
//! write-only: a value sets one, no answer echoes it.

use std::path::Path;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use super::error;
use crate::app::{Handle, ReloadError, ReloadReport};
use crate::config::overrides::{self, Overrides};
use crate::config::{Config, ConfigError, Problem};
use crate::plugins::PluginConfig;

/// The answer to give instead, when a step refuses (boxed: an answer is large).
pub(super) type Refused = Box<HttpResponse>;

/// One change at a time: each reads the overrides file, checks and writes it whole.
static EDITS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `PATCH /api/v1/plugins/{name}/settings` with `{"field": value, ...}`: 200 with the
/// new settings and what the reload changed, 400 with every problem, 409 without a file.
pub(super) async fn patch(
    handle: web::Data<Handle>,
    name: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let edits: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) | Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object of field to new value, e.g. {\"priority\": 5}; null goes back to the config file's value",
            )
        }
    };
    let cfg = match instance(&handle, &name) {
        Ok(cfg) => cfg,
        Err(r) => return *r,
    };
    let changes = edits
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone()).filter(|v| !v.is_null())))
        .collect::<Vec<_>>();
    let secrets: Vec<String> = edits
        .iter()
        .filter(|(k, _)| is_secret(&cfg, k))
        .filter_map(|(_, v)| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
        .collect();
    let _one = EDITS.lock().await;
    if let Err(r) = persist(&handle, &name, &changes, &secrets).await {
        return *r;
    }
    let report = match apply(&handle).await {
        Ok(report) => report,
        Err(e) => return not_applied(e),
    };
    let configs = handle.plugin_configs();
    let Some(now) = configs.iter().find(|c| c.name == *name) else {
        return error(
            StatusCode::CONFLICT,
            format!("`{name}` is no longer configured"),
        );
    };
    let mut view = live_view(&handle, now).await;
    view["applied"] = json!(report);
    HttpResponse::Ok().json(view)
}

/// The settings view of `cfg`, with `enabled` as it is now (Enable/Disable switch it
/// without a reload, so the loaded config may say otherwise until the next one).
pub(crate) async fn live_view(handle: &Handle, cfg: &PluginConfig) -> Value {
    let mut view = crate::plugins::settings::view(cfg);
    if let Some(s) = handle.status().await.iter().find(|s| s.name == cfg.name) {
        view["common"]["enabled"] = json!(s.enabled);
    }
    view
}

/// Keep `enabled` for the next start (Enable/Disable); `Ok(false)` when there is no file
/// to keep it in (the change then lasts until the service stops). Holds the edit lock
/// until the returned guard is dropped, so the live switch follows in the same order.
pub(super) async fn keep_enabled(
    handle: &Handle,
    name: &str,
    enabled: bool,
) -> Result<(bool, tokio::sync::MutexGuard<'static, ()>), Refused> {
    let guard = EDITS.lock().await;
    let configured = handle.plugin_configs().iter().any(|c| c.name == name);
    if handle.config_source().is_none() || !configured {
        return Ok((false, guard));
    }
    // What config.yaml says alone: an Enable/Disable back to it drops the override, so
    // the page does not show "changed here" for what the file says anyway.
    let path = handle.config_source().map(Path::to_path_buf);
    let plain = tokio::task::spawn_blocking(move || {
        path.and_then(|p| Config::load_with_overrides(&p, None).ok())
    })
    .await
    .ok()
    .flatten();
    let as_written = plain
        .and_then(|c| c.plugins.into_iter().find(|p| p.name == name))
        .map(|p| p.common.enabled);
    let value = (as_written != Some(enabled)).then_some(Value::Bool(enabled));
    let changes = [("enabled".to_owned(), value)];
    persist(handle, name, &changes, &[]).await?;
    Ok((true, guard))
}

/// The configured instance `name`, or the answer saying why not.
fn instance(handle: &Handle, name: &str) -> Result<PluginConfig, Refused> {
    let configs = handle.plugin_configs();
    let Some(cfg) = configs.iter().find(|c| c.name == name) else {
        let known: Vec<_> = configs.iter().map(|c| c.name.as_str()).collect();
        return Err(refuse(
            StatusCode::NOT_FOUND,
            format!(
                "no plugin instance named `{name}`; configured: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    };
    if handle.config_source().is_none() {
        return Err(refuse(
            StatusCode::CONFLICT,
            "settings can only be changed when the service runs from a config file (serve --config <file>): this one was given a config in code, so there is no overrides.yaml to keep a change in",
        ));
    }
    Ok(cfg.clone())
}

/// Write `changes` of instance `name` into the overrides file, if the config with them
/// merged in loads; else the 400 with every problem, and nothing written.
async fn persist(
    handle: &Handle,
    name: &str,
    changes: &[(String, Option<Value>)],
    secrets: &[String],
) -> Result<(), Refused> {
    let Some(config) = handle.config_source().map(Path::to_path_buf) else {
        return Err(refuse(StatusCode::CONFLICT, "there is no config file"));
    };
    let file = overrides::path_for(&config);
    let mut current = read_overrides(&file)?;
    let mut refused = Vec::new();
    for (field, value) in changes {
        if let Some(why) = overrides::refusal(field) {
            refused.push(json!({ "field": field, "message": why }));
            continue;
        }
        let value = value.as_ref().map(serde_yaml::to_value).transpose();
        match value {
            Ok(v) => current.set(name, field, v),
            Err(e) => refused.push(json!({ "field": field, "message": e.to_string() })),
        }
    }
    let text = current.to_yaml();
    let candidate = text.clone();
    let loaded =
        tokio::task::spawn_blocking(move || Config::load_with_overrides(&config, Some(&candidate)))
            .await
            .map_err(|_| {
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the service is shutting down",
                )
            })?;
    let problems = match loaded {
        Ok(_) => Vec::new(),
        Err(e @ ConfigError::Read { .. }) => {
            return Err(refuse(StatusCode::CONFLICT, e.to_string()));
        }
        Err(ConfigError::Invalid { problems, .. }) => problems,
    };
    refused.extend(problems.iter().map(|p| described(p, name, secrets)));
    if !refused.is_empty() {
        let n = refused.len();
        return Err(Box::new(HttpResponse::BadRequest().json(json!({
            "error": format!("{n} problem{}; nothing was changed", if n == 1 { "" } else { "s" }),
            "problems": refused,
        }))));
    }
    tokio::task::spawn_blocking(move || current.write(&file).map_err(|e| (file, e)))
        .await
        .map_err(|_| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the service is shutting down",
            )
        })?
        .map_err(|(file, e)| {
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot write {}: {e}; nothing was changed", file.display()),
            )
        })
}

/// The overrides file as it is now (empty when there is none); a broken one is a 409
/// saying what to fix, as the next start would refuse it too.
fn read_overrides(file: &Path) -> Result<Overrides, Refused> {
    let broken = |problems: Vec<Problem>| {
        Box::new(HttpResponse::Conflict().json(json!({
            "error": format!("{} cannot be read; fix or remove it first (nothing was changed)", file.display()),
            "problems": problems,
        })))
    };
    match overrides::read(file) {
        Ok(None) => Ok(Overrides::default()),
        Ok(Some(text)) => Overrides::parse(&text).map_err(broken),
        Err(p) => Err(broken(vec![p])),
    }
}

/// A loader problem as the API gives it: `field` is the instance's field it is about (the
/// schema's name; `null` when it is about something else), with the loader's message.
fn described(p: &Problem, name: &str, secrets: &[String]) -> Value {
    let prefix = format!("plugins.{name}.");
    let field = p
        .path
        .strip_prefix(&prefix)
        .map(|rest| rest.split(['.', '[']).next().unwrap_or(rest).to_owned());
    let mut message = p.message.clone();
    for s in secrets {
        message = message.replace(s.as_str(), "(the value given)");
    }
    // A line in the overrides file as it would have been written means nothing to the
    // caller; one in the config file says where to look.
    let line = p.line.filter(|_| p.file.is_none());
    json!({ "field": field, "message": message, "path": p.path, "line": line })
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refused {
    Box::new(error(status, message))
}

fn is_secret(cfg: &PluginConfig, field: &str) -> bool {
    cfg.kind.secret_fields().contains(&field) || crate::http::capture::is_credential_name(field)
}

/// Apply the written overrides live: the reload re-reads config and overrides.
async fn apply(handle: &Handle) -> Result<ReloadReport, ReloadError> {
    handle.reload().await
}

/// The change was written but the reload refused or failed.
fn not_applied(e: ReloadError) -> HttpResponse {
    let status = match e {
        ReloadError::Invalid(_) | ReloadError::Hooks(_) => StatusCode::CONFLICT,
        ReloadError::NoFile => StatusCode::CONFLICT,
        ReloadError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
    };
    HttpResponse::build(status).json(json!({
        "error": format!("the change was written to overrides.yaml but not applied: {e}"),
        "problems": e.problems(),
    }))
}
