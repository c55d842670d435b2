//! `POST /api/v1/preview`: what each plugin instance would send for an event (or a stored
//! delivery's event), sending and storing nothing.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::error;
use crate::app::Handle;
use crate::preview::{PreviewError, PreviewRequest};

pub(super) async fn preview(handle: web::Data<Handle>, body: web::Bytes) -> HttpResponse {
    let request = match PreviewRequest::from_json(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match handle.preview(request).await {
        Ok(preview) => HttpResponse::Ok().json(preview),
        Err(e @ PreviewError::UnknownDelivery(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(PreviewError::Store(e)) => super::deliveries::store_error(e),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}
