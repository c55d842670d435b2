//! `GET /api/v1/plugins`, `GET /api/v1/plugins/{name}` and `POST /api/v1/plugins/{name}/test`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::error;
use crate::app::Handle;
use crate::supervisor::TestError;

/// `GET /api/v1/hooks`: every hook with its counters, so a failing hook shows at a glance.
pub(super) async fn hooks(handle: web::Data<Handle>) -> HttpResponse {
    let stats = handle.hooks().stats();
    let hooks: Vec<_> = stats
        .hooks
        .iter()
        .map(|h| {
            json!({
                "file": h.file, "event": h.event, "loaded": h.loaded, "runs": h.runs,
                "failures": h.failures, "rejections": h.rejections, "last_error": h.last_error,
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "hooks": hooks,
        "vm_restarts": stats.vm_restarts,
        "actor_restarts": stats.actor_restarts,
        "skipped_too_large": stats.skipped_too_large,
    }))
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
