//! `GET /metrics`: Prometheus metrics in the OpenMetrics text format.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::error;
use crate::app::Handle;
use crate::config::MetricsConfig;

/// The OpenMetrics text content type (Prometheus asks for it and parses it).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) async fn scrape(
    handle: web::Data<Handle>,
    config: Option<web::Data<MetricsConfig>>,
) -> HttpResponse {
    if config.is_some_and(|c| !c.enabled) {
        return error(
            StatusCode::NOT_FOUND,
            "metrics are turned off; set `metrics: {enabled: true}` in the config to serve them",
        );
    }
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(handle.metrics().await)
}
