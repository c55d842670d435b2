//! What one request may take, and the shape of every error answer.
//!
//! Wrapped around every endpoint: the request body must arrive within the request timeout
//! (else 408 and the connection is closed: a client sending `Content-Length: 1000` and one
//! byte would otherwise hold its connection forever), and an error that actix-web answers
//! itself (an extractor's 413, a JSON payload error) comes back as `{"error": ...}` like
//! ours instead of `text/plain`.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, HttpResponse};
use futures::Stream;
use serde_json::json;

use crate::config::ServerConfig;

/// The per-request bounds, from `server:` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body in bytes (`server.max_body_kb`).
    pub max_body_bytes: usize,
    /// Time allowed for the body to arrive (`server.request_timeout_secs`).
    pub request_timeout: Duration,
}

impl From<&ServerConfig> for Limits {
    fn from(c: &ServerConfig) -> Self {
        Limits {
            max_body_bytes: c.max_body_bytes,
            request_timeout: c.request_timeout,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from(&ServerConfig::default())
    }
}

/// The middleware: time the body, then make any error answer JSON.
pub(super) async fn guard(
    limits: Limits,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let timed_out = Rc::new(Cell::new(false));
    match req.take_payload() {
        Payload::None => {}
        inner => req.set_payload(Payload::Stream {
            payload: Box::pin(Deadline {
                inner,
                sleep: Box::pin(tokio::time::sleep(limits.request_timeout)),
                fired: Rc::clone(&timed_out),
                done: false,
            }),
        }),
    }
    let request = req.request().clone();
    let res = match next.call(req).await {
        Ok(res) => res.map_into_boxed_body(),
        Err(err) => ServiceResponse::from_err(err, request),
    };
    if timed_out.get() {
        let secs = limits.request_timeout.as_secs();
        let answer = HttpResponse::build(StatusCode::REQUEST_TIMEOUT)
            .force_close()
            .json(json!({ "error": format!(
                "the request body did not arrive within {secs} s (server.request_timeout_secs); \
                 the connection is closed"
            )}));
        return Ok(res.into_response(answer));
    }
    Ok(as_json(res, limits))
}

/// An answer actix-web built from an error (not one of ours, which are JSON already),
/// rewritten as `{"error": ...}` with the same status.
fn as_json(res: ServiceResponse<BoxBody>, limits: Limits) -> ServiceResponse<BoxBody> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let message = match res.response().error() {
        Some(_) if is_json => return res,
        Some(err) => err.to_string(),
        None => return res,
    };
    let status = res.status();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the request body is larger than {} KiB; send less, or raise server.max_body_kb",
            limits.max_body_bytes / 1024
        ),
        _ => message,
    };
    let answer = HttpResponse::build(status).json(json!({ "error": message }));
    res.into_response(answer)
}

/// The request body, cut off with an error once the deadline passes.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    fired: Rc<Cell<bool>>,
    done: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.done = true;
            self.fired.set(true);
            let err = std::io::Error::new(std::io::ErrorKind::TimedOut, "request body timed out");
            return Poll::Ready(Some(Err(PayloadError::Io(err))));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{test, web, App};
    use serde_json::Value;

    use super::*;

    async fn echo(body: web::Json<Value>) -> HttpResponse {
        HttpResponse::Ok().json(body.into_inner())
    }

    fn limits(max_body_bytes: usize, ms: u64) -> Limits {
        Limits {
            max_body_bytes,
            request_timeout: Duration::from_millis(ms),
        }
    }

    #[actix_web::test]
    async fn extractor_errors_come_back_as_json() {
        let l = limits(16, 5_000);
        let app = test::init_service(
            App::new().service(
                web::resource("/echo")
                    .app_data(web::JsonConfig::default().limit(l.max_body_bytes))
                    .wrap(actix_web::middleware::from_fn(move |r, n| guard(l, r, n)))
                    .route(web::post().to(echo)),
            ),
        )
        .await;
        for (body, status, says) in [
            ("{nope", 400, "Json deserialize error"),
            (r#"{"a": "0123456789abcdef"}"#, 413, "larger than 0 KiB"),
        ] {
            let req = test::TestRequest::post()
                .uri("/echo")
                .insert_header(("content-type", "application/json"))
                .set_payload(body)
                .to_request();
            let res = test::call_service(&app, req).await;
            assert_eq!(res.status().as_u16(), status, "{body}");
            let ct = res.headers().get("content-type").unwrap().to_str().unwrap();
            assert_eq!(ct, "application/json", "{body}");
            let v: Value = test::read_body_json(res).await;
            let msg = v["error"].as_str().unwrap();
            assert!(msg.contains(says), "{body}: {msg}");
        }
    }

    #[actix_web::test]
    async fn a_body_that_never_ends_is_cut_off_with_408_and_close() {
        let l = limits(1024, 50);
        let app = test::init_service(
            App::new().service(
                web::resource("/echo")
                    .wrap(actix_web::middleware::from_fn(move |r, n| guard(l, r, n)))
                    .route(web::post().to(|body: Bytes| async move { body.len().to_string() })),
            ),
        )
        .await;
        // One byte of the promised thousand, then nothing.
        let first = futures::stream::iter([Ok::<_, PayloadError>(Bytes::from_static(b"{"))]);
        let stream = futures::StreamExt::chain(first, futures::stream::pending());
        let req = test::TestRequest::post()
            .uri("/echo")
            .insert_header(("content-length", "1000"))
            .to_request();
        let (req, _) = req.replace_payload(Payload::Stream {
            payload: Box::pin(stream) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>,
        });
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(
            res.response().head().connection_type(),
            actix_web::http::ConnectionType::Close
        );
        let v: Value = test::read_body_json(res).await;
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("server.request_timeout_secs"),
            "{v}"
        );
    }
}
