//! `POST /api/v1/events` (send an event) and `GET /api/v1/events` (the catalog).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error;
use crate::app::Handle;
use crate::bus::EmitError;
use crate::event::{json_kind, Event, EventName};
use crate::hooks::RejectKind;

/// The request body. Unknown fields are refused so a typo (`"evnet"`) is not silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventRequest {
    event: String,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    mode: Option<String>,
}

pub(super) async fn post_event(handle: web::Data<Handle>, body: web::Bytes) -> HttpResponse {
    // Through `Value` first: serde would read a struct from a JSON array, position by position.
    let req: EventRequest = match serde_json::from_slice::<Value>(&body).and_then(|v| match v {
        Value::Object(_) => serde_json::from_value(v),
        other => Err(serde::de::Error::custom(format!(
            "the body must be a JSON object, got {}",
            json_kind(&other)
        ))),
    }) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {e}; send JSON like {{\"event\": \"after_media_added\", \"data\": {{...}}}}"),
            )
        }
    };
    let name: EventName = match req.event.parse() {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if name == EventName::OnPluginHealthChanged {
        // Only the supervisor may say a plugin is down; a caller could fake an outage notice.
        return error(
            StatusCode::BAD_REQUEST,
            "`on_plugin_health_changed` is sent by this service itself when a plugin's health changes; it cannot be posted",
        );
    }
    let data = match req.data {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`data` must be a JSON object, got {}", json_kind(&other)),
            );
        }
    };
    let wait = match req.mode.as_deref() {
        None | Some("async") => false,
        Some("sync") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`mode` must be \"async\" (the default) or \"sync\", got {other:?}"),
            )
        }
    };
    let mut event = Event::new(name, data);
    if let Some(id) = req.id {
        if id.trim().is_empty() || id.len() > 200 {
            return error(
                StatusCode::BAD_REQUEST,
                "`id` must be a non-empty string of at most 200 characters",
            );
        }
        event = event.with_id(id);
    }
    let id = event.id.clone();
    match handle.emit_event(event, wait).await {
        Ok(done) => {
            let body = json!({
                "id": done.event.id,
                "event": done.event.name,
                "timestamp": done.event.timestamp,
                "data": done.event.data,
                "plugins": done.plugins,
                "deliveries": done.deliveries,
                "duplicate": done.duplicate,
            });
            // A repeated id is answered with what was stored the first time.
            let status = if wait || done.duplicate {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            HttpResponse::build(status).json(body)
        }
        Err(EmitError::Rejected(r)) => {
            tracing::info!(target: "api", event = %name, id = %id, hook = %r.hook, reason = %r.reason, kind = ?r.kind, "event rejected by a hook");
            // Too large for its validation hooks: the caller must send less or raise the limit.
            let status = match r.kind {
                RejectKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                RejectKind::Rejected | RejectKind::HookFailed => StatusCode::UNPROCESSABLE_ENTITY,
            };
            HttpResponse::build(status).json(json!({
                "error": r.to_string(), "id": id, "hook": r.hook, "reason": r.reason, "kind": r.kind,
            }))
        }
        Err(EmitError::Store(e)) => super::deliveries::store_error(e),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

pub(super) async fn catalog() -> HttpResponse {
    let events: Vec<Value> = EventName::ALL
        .iter()
        .map(|e| json!({ "name": e.as_str(), "alias": e.alias(), "about": e.about() }))
        .collect();
    HttpResponse::Ok().json(events)
}
