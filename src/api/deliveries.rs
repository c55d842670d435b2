//! The delivery routes: list and read deliveries, retry one, replay an instance's dead letters.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error;
use crate::app::{Handle, RequeueError};
use crate::store::{Query, State, StoreError, Summary};

const QUERY_FIELDS: &str = "plugin, state, event_id, limit, before";
const DEFAULT_LIMIT: usize = 50;

/// A delivery as the API shows it: the summary with its public id first.
pub(crate) fn item(handle: &Handle, s: &Summary) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut v {
        m.insert("id".into(), Value::String(handle.store().public_id(s.seq)));
        // The delivery that carries (or carried) this one as part of a digest.
        let digest = s.digest.map(|d| Value::String(handle.store().public_id(d)));
        m.insert("digest_id".into(), digest.unwrap_or(Value::Null));
    }
    v
}

/// The store could not answer: 503, with `Retry-After` saying when to try again.
pub(super) fn store_error(e: StoreError) -> HttpResponse {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    if let Ok(v) = e.retry_after_secs().to_string().parse() {
        r.headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, v);
    }
    r
}

/// `GET /api/v1/deliveries`: newest first, filtered, a page at a time.
pub(super) async fn list(
    handle: web::Data<Handle>,
    params: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let mut query = Query {
        limit: DEFAULT_LIMIT,
        ..Query::default()
    };
    let mut problems = Vec::new();
    for (key, value) in params.into_inner() {
        match key.as_str() {
            "plugin" => query.instance = Some(value),
            "event_id" => query.event_id = Some(value),
            "state" => match value.parse::<State>() {
                Ok(s) => query.state = Some(s),
                Err(e) => problems.push(e),
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=500).contains(&n) => query.limit = n,
                _ => problems.push(format!("`limit` must be a number from 1 to 500, got {value:?}")),
            },
            "before" => match handle.store().parse_id(&value) {
                Some(seq) => query.before = Some(seq),
                None => problems.push(format!(
                    "`before` must be a delivery id from this store (the `next` of the previous page), got {value:?}"
                )),
            },
            other => problems.push(format!("unknown query parameter `{other}`; known: {QUERY_FIELDS}")),
        }
    }
    if !problems.is_empty() {
        problems.sort();
        return error(StatusCode::BAD_REQUEST, problems.join("; "));
    }
    match handle.deliveries(query).await {
        Ok(page) => HttpResponse::Ok().json(json!({
            "deliveries": page.items.iter().map(|s| item(&handle, s)).collect::<Vec<_>>(),
            "next": page.next.map(|seq| handle.store().public_id(seq)),
        })),
        Err(e) => store_error(e),
    }
}

/// `GET /api/v1/deliveries/{id}`: everything about one delivery.
pub(super) async fn one(handle: web::Data<Handle>, id: web::Path<String>) -> HttpResponse {
    match handle.delivery(&id).await {
        Ok(Some(d)) => {
            let mut v = item(&handle, &d.summary);
            if let Value::Object(m) = &mut v {
                m.insert("attempt_log".into(), json!(d.attempts));
                m.insert(
                    "event_data".into(),
                    json!({
                        "id": d.event.id, "event": d.event.name,
                        "timestamp": d.event.timestamp, "data": d.event.data,
                    }),
                );
            }
            HttpResponse::Ok().json(v)
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no delivery with id `{id}`")),
        Err(e) => store_error(e),
    }
}

/// `POST /api/v1/deliveries/{id}/retry`: a dead or held delivery goes out now.
pub(super) async fn retry(handle: web::Data<Handle>, id: web::Path<String>) -> HttpResponse {
    match handle.retry(&id).await {
        Ok(()) => HttpResponse::Accepted().json(json!({ "id": *id, "state": "pending" })),
        Err(e) => requeue_error(e),
    }
}

/// The body of a replay.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    since: Option<chrono::DateTime<chrono::Utc>>,
}

/// `POST /api/v1/plugins/{name}/replay`: requeue the instance's dead letters in order.
pub(super) async fn replay(
    handle: web::Data<Handle>,
    name: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let req: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest {
            state: None,
            since: None,
        }
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("invalid request body: {e}; send JSON like {{\"state\": \"dead\", \"since\": \"2026-01-31T00:00:00Z\"}} (since is optional)"),
                )
            }
        }
    };
    if let Some(s) = req.state.as_deref().filter(|s| *s != "dead") {
        return error(
            StatusCode::BAD_REQUEST,
            format!("only dead letters are replayed: `state` must be \"dead\", got {s:?}"),
        );
    }
    match handle.replay(&name, req.since).await {
        Ok(n) => HttpResponse::Ok().json(json!({ "plugin": *name, "requeued": n })),
        Err(e) => requeue_error(e),
    }
}

fn requeue_error(e: RequeueError) -> HttpResponse {
    let status = match &e {
        RequeueError::UnknownDelivery(_) | RequeueError::UnknownPlugin { .. } => {
            StatusCode::NOT_FOUND
        }
        RequeueError::NotRetryable { .. } => StatusCode::CONFLICT,
        RequeueError::Store(e) => return store_error(e.clone()),
    };
    error(status, e.to_string())
}
