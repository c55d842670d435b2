//! The HTTP client builder every plugin uses, and the one mapping from responses and
//! `reqwest` errors to a classified, redacted [`PluginError`], with retries for the
//! transient ones.
//!
//! A plugin builds its request with its instance's [`Client`]; the client sends it (to an
//! address the instance may reach: see [`address`]), reads a bounded body, classifies the
//! status and retries network errors and 5xx with exponential backoff and full jitter.
//! Everything that leaves this module as error text has passed through a [`Redactor`], and
//! every `reqwest::Error` through [`map_reqwest_error`], which drops the URL (reqwest prints
//! full URLs, and Telegram, Discord and Slack put their tokens in them).

pub mod address;
pub mod capture;
mod classify;
mod client;
mod redact;
mod resolve;
mod retry;

use std::error::Error as _;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

pub use address::{AddressPolicy, AddressRefused};
pub use capture::{Capture, Captured};
pub use classify::{classify, parse_retry_after, service_error_text, MAX_RETRY_AFTER};
pub use client::{new_capture_client, new_client, new_client_with_resolver, Client};
pub use redact::{Redactor, REDACTED};
pub use resolve::{FilteringResolver, SystemResolver};
pub use retry::{retry, RetryPolicy};

use crate::plugins::PluginError;

/// How much of a response body we read: enough for any error message, bounded so a
/// misbehaving server cannot make us buffer gigabytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The one mapping from a `reqwest` error to a [`PluginError`]. Always drops the URL first.
///
/// Connect errors, timeouts and failures while sending or reading are `Transient`; an
/// error building the request (a bad URL or header value) is `Misconfigured`, and so is an
/// address the resolver refused ([`AddressRefused`]): retrying cannot help.
pub fn map_reqwest_error(err: reqwest::Error) -> PluginError {
    // The host only: the path and query may hold tokens (Telegram, Discord, Slack).
    let host = err.url().and_then(|u| u.host_str()).map(str::to_owned);
    let err = err.without_url();
    if let Some(refused) = find_source::<AddressRefused>(&err) {
        return PluginError::Misconfigured {
            status: None,
            reason: refused.to_string(),
        };
    }
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

/// The first error of type `T` in `err`'s source chain.
fn find_source<T: std::error::Error + 'static>(err: &reqwest::Error) -> Option<&T> {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        source = e.source();
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connection_errors_are_transient_and_name_only_the_host() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/botSECRET123/sendMessage?token=SECRET123");
        let client = new_client(AddressPolicy::AllowPrivate);
        let err = client.get(&url).send().await.unwrap_err();
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
        let err = new_client(AddressPolicy::AllowPrivate)
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
        let client = new_client(AddressPolicy::AllowPrivate);
        let reply = client
            .fetch(client.get(server.uri()), &Redactor::new())
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reply.body.len(), MAX_BODY_BYTES);
    }
}
