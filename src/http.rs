//! The HTTP client builder every plugin uses, and the one mapping from responses and
//! `reqwest` errors to a classified, redacted [`PluginError`], with retries for the
//! transient ones.
//!
//! A plugin builds its request; this module sends it, reads a bounded body, classifies the
//! status and retries network errors and 5xx with exponential backoff and full jitter.
//! Everything that leaves this module as error text has passed through a [`Redactor`], and
//! every `reqwest::Error` through [`map_reqwest_error`], which drops the URL (reqwest prints
//! full URLs, and Telegram, Discord and Slack put their tokens in them).

mod classify;
mod redact;
mod retry;

use std::error::Error as _;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

pub use classify::{classify, parse_retry_after, service_error_text, MAX_RETRY_AFTER};
pub use redact::{Redactor, REDACTED};
pub use retry::{retry, RetryPolicy};

use crate::plugins::PluginError;

/// How much of a response body we read: enough for any error message, bounded so a
/// misbehaving server cannot make us buffer gigabytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A client for one arbiter: no redirects followed, bounded connect time, our user agent.
pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("mydia-plugins/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with static settings builds")
}

/// The one mapping from a `reqwest` error to a [`PluginError`]. Always drops the URL first.
///
/// Connect errors, timeouts and failures while sending or reading are `Transient`; an
/// error building the request (a bad URL or header value) is `Misconfigured`.
pub fn map_reqwest_error(err: reqwest::Error) -> PluginError {
    // The host only: the path and query may hold tokens (Telegram, Discord, Slack).
    let host = err.url().and_then(|u| u.host_str()).map(str::to_owned);
    let err = err.without_url();
    let chain = error_chain(&err);
    if err.is_builder() {
        return PluginError::Misconfigured {
            status: None,
            reason: format!("could not build the request ({chain}); check the URL and credentials"),
        };
    }
    let mut what = if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "could not connect".to_owned()
    } else if err.is_body() || err.is_decode() {
        "failed reading the response".to_owned()
    } else {
        "request failed".to_owned()
    };
    if let Some(host) = host {
        what = format!("{what} ({host})");
    }
    PluginError::Transient {
        status: err.status().map(|s| s.as_u16()),
        reason: format!("{what}: {chain}"),
    }
}

/// The error and its sources, `: `-joined, skipping repeats (hyper nests similar messages).
fn error_chain(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

/// A response read in full: status, headers and a body of at most [`MAX_BODY_BYTES`]
/// (decoded lossily as UTF-8).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body text, cut at [`MAX_BODY_BYTES`].
    pub body: String,
}

/// Sends `request` and reads the reply, without judging its status. For plugins whose
/// service needs a look at the body before [`classify`] (e.g. Telegram's chat migration).
/// Transport errors are mapped by [`map_reqwest_error`] and redacted.
pub async fn fetch(
    request: reqwest::RequestBuilder,
    redactor: &Redactor,
) -> Result<Reply, PluginError> {
    let fail = |e| redactor.redact_error(map_reqwest_error(e));
    let mut response = request.send().await.map_err(fail)?;
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            // A 2xx means the service took the request: failing (and so retrying) now
            // would deliver it twice. Keep what was read.
            Err(e) if status.is_success() => {
                tracing::debug!(error = %fail(e), "response body cut short after a success status");
                break;
            }
            Err(e) => return Err(fail(e)),
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// [`fetch`] then [`classify`]: the reply on a 2xx, a classified, redacted error otherwise.
pub async fn send(
    request: reqwest::RequestBuilder,
    redactor: &Redactor,
) -> Result<Reply, PluginError> {
    let reply = fetch(request, redactor).await?;
    classify(reply.status, &reply.headers, &reply.body, redactor)?;
    Ok(reply)
}

/// [`send`] under [`retry`]: `make_request` builds a fresh request for every attempt.
pub async fn send_with_retry<F>(
    policy: &RetryPolicy,
    redactor: &Redactor,
    mut make_request: F,
) -> Result<Reply, PluginError>
where
    F: FnMut() -> reqwest::RequestBuilder,
{
    retry(policy, |_| send(make_request(), redactor)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connection_errors_are_transient_and_name_only_the_host() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/botSECRET123/sendMessage?token=SECRET123");
        let err = new_client().get(&url).send().await.unwrap_err();
        let mapped = map_reqwest_error(err);
        assert!(mapped.is_transient(), "{mapped:?}");
        let shown = format!("{mapped} {mapped:?}");
        assert!(
            shown.contains("could not connect (127.0.0.1)"),
            "the host is named: {shown}"
        );
        assert!(
            !shown.contains("SECRET123") && !shown.contains("sendMessage"),
            "never the path or query: {shown}"
        );
    }

    #[tokio::test]
    async fn request_build_errors_are_misconfigured_and_redacted() {
        let err = new_client()
            .get("http://127.0.0.1:9/")
            .header("authorization", "Bearer tk_bad\nvalue")
            .send()
            .await
            .unwrap_err();
        let mapped = map_reqwest_error(err);
        assert!(
            matches!(mapped, PluginError::Misconfigured { status: None, .. }),
            "{mapped:?}"
        );
        assert!(!format!("{mapped:?}").contains("tk_bad"));
    }

    #[tokio::test]
    async fn reads_at_most_max_body_bytes() {
        use wiremock::{matchers::any, Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        let huge = "x".repeat(3 * MAX_BODY_BYTES);
        Mock::given(any())
            .respond_with(ResponseTemplate::new(500).set_body_string(huge))
            .mount(&server)
            .await;
        let reply = fetch(new_client().get(server.uri()), &Redactor::new())
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reply.body.len(), MAX_BODY_BYTES);
    }
}
