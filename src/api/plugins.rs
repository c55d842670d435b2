//! `GET /api/v1/plugins`, `GET /api/v1/plugins/{name}`, `POST /api/v1/plugins/{name}/test`,
//! and the hooks: `GET /api/v1/hooks`, `POST /api/v1/hooks/{name}/release`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::error;
use crate::app::Handle;
use crate::supervisor::TestError;

/// `GET /api/v1/hooks`: every hook with its counters and state, so a failing or
/// quarantined hook shows at a glance.
pub(super) async fn hooks(handle: web::Data<Handle>) -> HttpResponse {
    let stats = handle.hooks().stats();
    let hooks: Vec<_> = stats
        .hooks
        .iter()
        .map(|h| {
            let state = h.state();
            json!({
                "file": h.file, "event": h.event, "state": state, "loaded": h.loaded,
                "quarantined_reason": h.quarantined, "runs": h.runs, "failures": h.failures,
                "failing_streak": h.failing_streak, "rejections": h.rejections,
                "skipped": h.skipped, "last_error": h.last_error,
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "hooks": hooks,
        "workers": stats.workers,
        "vm_restarts": stats.vm_restarts,
        "actor_restarts": stats.actor_restarts,
        "skipped_too_large": stats.skipped_too_large,
        "refused_too_large": stats.refused_too_large,
    }))
}

/// `POST /api/v1/hooks/{name}/release`: a quarantined hook runs again from the next event.
/// The name is the hook's `file` as `GET /api/v1/hooks` shows it (`event_dir/NN_name.lua`).
pub(super) async fn release_hook(
    handle: web::Data<Handle>,
    name: web::Path<String>,
) -> HttpResponse {
    match handle.hooks().release(&name) {
        Ok(was) => HttpResponse::Ok().json(json!({
            "hook": *name, "released": true, "was_quarantined": was,
        })),
        Err(unknown) => error(StatusCode::NOT_FOUND, unknown.to_string()),
    }
}

pub(super) async fn list(handle: web::Data<Handle>) -> HttpResponse {
    HttpResponse::Ok().json(handle.status().await)
}

pub(super) async fn one(handle: web::Data<Handle>, name: web::Path<String>) -> HttpResponse {
    let all = handle.status().await;
    match all.iter().find(|p| p.name == *name) {
        Some(p) => HttpResponse::Ok().json(p),
        None => error(
            StatusCode::NOT_FOUND,
            unknown(&name, all.iter().map(|p| p.name.as_str())),
        ),
    }
}

pub(super) async fn test(handle: web::Data<Handle>, name: web::Path<String>) -> HttpResponse {
    match handle.test_connection(&name).await {
        Ok(report) => HttpResponse::Ok().json(json!({
            "plugin": *name, "ok": true, "detail": report.detail, "sent_message": report.sent_message,
        })),
        Err(TestError::UnknownPlugin { name, known }) => {
            error(StatusCode::NOT_FOUND, format!("no plugin instance named `{name}`; configured: {known}"))
        }
        Err(TestError::Failed(e)) => HttpResponse::BadGateway().json(json!({
            "plugin": *name, "ok": false, "error": e.to_string(), "error_kind": e.kind(),
        })),
    }
}

fn unknown<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    let known: Vec<_> = known.collect();
    let known = if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    };
    format!("no plugin instance named `{name}`; configured: {known}")
}

/// `GET /api/v1/plugins/{name}/settings`: the instance's fields with their values and
/// where they come from; secrets as `"set"` or `null`.
pub(super) async fn settings(handle: web::Data<Handle>, name: web::Path<String>) -> HttpResponse {
    let configs = handle.plugin_configs();
    match configs.iter().find(|c| c.name == *name) {
        Some(cfg) => HttpResponse::Ok().json(super::settings::live_view(&handle, cfg).await),
        None => error(
            StatusCode::NOT_FOUND,
            unknown(&name, configs.iter().map(|c| c.name.as_str())),
        ),
    }
}

/// `POST /api/v1/plugins/{name}/enable` and `/disable`: on or off at once, and kept in
/// `overrides.yaml` for the next start when the service runs from a config file
/// (`"kept": true`; an Enable the config would refuse, such as a missing required field,
/// is a 400 with the problems, and nothing changes).
async fn set_enabled(handle: &Handle, name: &str, enabled: bool) -> HttpResponse {
    let (kept, _one) = match super::settings::keep_enabled(handle, name, enabled).await {
        Ok(kept) => kept,
        Err(refused) => return *refused,
    };
    match handle.set_enabled(name, enabled).await {
        Ok(()) => {
            HttpResponse::Ok().json(json!({ "plugin": name, "enabled": enabled, "kept": kept }))
        }
        Err(TestError::UnknownPlugin { name, known }) => error(
            StatusCode::NOT_FOUND,
            format!("no plugin instance named `{name}`; configured: {known}"),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

pub(super) async fn enable(handle: web::Data<Handle>, name: web::Path<String>) -> HttpResponse {
    set_enabled(&handle, &name, true).await
}

pub(super) async fn disable(handle: web::Data<Handle>, name: web::Path<String>) -> HttpResponse {
    set_enabled(&handle, &name, false).await
}
