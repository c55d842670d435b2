//! `POST /api/v1/reload`: re-read the config file and apply what changed, as SIGHUP does.
//! A config with problems, or a hook that does not compile, is refused with every problem
//! (400) and the running one goes on.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::error;
use crate::app::{Handle, ReloadError};

/// Reload now; answers what changed, or why nothing did.
pub(super) async fn reload(handle: web::Data<Handle>) -> HttpResponse {
    match handle.reload().await {
        Ok(report) => HttpResponse::Ok().json(json!({ "reloaded": true, "report": report })),
        Err(e @ (ReloadError::Invalid(_) | ReloadError::Hooks(_))) => HttpResponse::BadRequest()
            .json(json!({
                "error": e.to_string(),
                "problems": e.problems(),
            })),
        Err(e @ ReloadError::NoFile) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e @ ReloadError::ShuttingDown) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
