//! `GET /api/v1/plugins`, `GET /api/v1/plugins/{name}` and `POST /api/v1/plugins/{name}/test`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::error;
use crate::app::Handle;
use crate::supervisor::TestError;

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
