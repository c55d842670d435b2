//! `Client`: one plugin instance's HTTP client, which dials only the addresses its
//! [`AddressPolicy`] allows, and the one way requests are sent ([`Client::fetch`]).
//!
//! Two checks, both at connect time: the resolver drops refused addresses from every DNS
//! answer, and [`Client::fetch`] checks a URL whose host is an address literal, because
//! reqwest dials those without asking the resolver.
//!
//! A client in capture mode ([`new_capture_client`]) sends nothing: see [`super::capture`].

use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::Resolve;
use reqwest::{IntoUrl, Method, RequestBuilder};

use super::address::{self, AddressPolicy};
use super::capture::Capture;
use super::resolve::{FilteringResolver, SystemResolver};
use super::{classify, map_reqwest_error, retry, Redactor, Reply, RetryPolicy, MAX_BODY_BYTES};
use crate::plugins::PluginError;

/// What every request says it is.
pub(super) const USER_AGENT: &str = concat!("mydia-plugins/", env!("CARGO_PKG_VERSION"));

/// A client for one arbiter and one plugin instance: no redirects followed, bounded
/// connect time, our user agent, and the instance's address policy.
#[derive(Debug, Clone)]
pub struct Client {
    inner: reqwest::Client,
    policy: AddressPolicy,
    /// Set in capture mode: requests are recorded here, never sent.
    capture: Option<Capture>,
}

/// A client that resolves names with the system resolver and dials only what `policy` allows.
pub fn new_client(policy: AddressPolicy) -> Client {
    new_client_with_resolver(policy, Arc::new(SystemResolver))
}

/// Like [`new_client`], with names resolved by `resolver` (its answers are still filtered).
pub fn new_client_with_resolver(policy: AddressPolicy, resolver: Arc<dyn Resolve>) -> Client {
    let inner = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(USER_AGENT)
        .dns_resolver(Arc::new(FilteringResolver::new(resolver, policy)))
        .build()
        .expect("a client with static settings builds");
    Client {
        inner,
        policy,
        capture: None,
    }
}

/// A client that sends nothing: [`Client::fetch`] records each request in `capture`
/// (redacted) and fails with [`PluginError::DryRun`], or with the misconfiguration a real
/// send would meet when the URL names an address `policy` refuses.
pub fn new_capture_client(policy: AddressPolicy, capture: Capture) -> Client {
    Client {
        capture: Some(capture),
        ..new_client_with_resolver(policy, Arc::new(SystemResolver))
    }
}

impl Client {
    /// Where this client may connect.
    pub fn policy(&self) -> AddressPolicy {
        self.policy
    }

    /// A request to build; send it with [`Client::fetch`] (or [`Client::send`]), which
    /// checks address literals, not with `RequestBuilder::send`.
    pub fn request<U: IntoUrl>(&self, method: Method, url: U) -> RequestBuilder {
        self.inner.request(method, url)
    }

    /// A GET to build; see [`Client::request`].
    pub fn get<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.inner.get(url)
    }

    /// A POST to build; see [`Client::request`].
    pub fn post<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.inner.post(url)
    }

    /// Sends `request` (built by this client) and reads the reply, without judging its
    /// status. For plugins whose service needs a look at the body before [`classify`] (e.g.
    /// Telegram's chat migration). Transport errors are mapped by [`map_reqwest_error`] and
    /// redacted; a refused address is a misconfiguration naming the host and its class.
    pub async fn fetch(
        &self,
        request: RequestBuilder,
        redactor: &Redactor,
    ) -> Result<Reply, PluginError> {
        let fail = |e| redactor.redact_error(map_reqwest_error(e));
        let (client, request) = request.build_split();
        let request = request.map_err(fail)?;
        if let Some(capture) = &self.capture {
            capture.record(&request, redactor);
        }
        address::check_url(request.url(), self.policy).map_err(|refused| {
            redactor.redact_error(PluginError::Misconfigured {
                status: None,
                reason: refused.to_string(),
            })
        })?;
        if self.capture.is_some() {
            return Err(PluginError::DryRun);
        }
        let mut response = client.execute(request).await.map_err(fail)?;
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

    /// [`Client::fetch`] then [`classify`]: the reply on a 2xx, a classified, redacted
    /// error otherwise.
    pub async fn send(
        &self,
        request: RequestBuilder,
        redactor: &Redactor,
    ) -> Result<Reply, PluginError> {
        let reply = self.fetch(request, redactor).await?;
        classify(reply.status, &reply.headers, &reply.body, redactor)?;
        Ok(reply)
    }

    /// [`Client::send`] under [`retry`]: `make_request` builds a fresh request for every attempt.
    pub async fn send_with_retry<F>(
        &self,
        policy: &RetryPolicy,
        redactor: &Redactor,
        mut make_request: F,
    ) -> Result<Reply, PluginError>
    where
        F: FnMut() -> RequestBuilder,
    {
        retry(policy, |_| self.send(make_request(), redactor)).await
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use reqwest::dns::{Addrs, Name, Resolving};
    use reqwest::StatusCode;
    use wiremock::{matchers::any, Mock, MockServer, ResponseTemplate};

    use super::*;

    /// A hostile DNS server: every name is 127.0.0.1.
    struct Rebinding;

    impl Resolve for Rebinding {
        fn resolve(&self, _: Name) -> Resolving {
            let addr = SocketAddr::from(([127, 0, 0, 1], 0));
            Box::pin(async move { Ok(Box::new(std::iter::once(addr)) as Addrs) })
        }
    }

    async fn server() -> MockServer {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        server
    }

    #[tokio::test]
    async fn a_name_rebound_to_loopback_is_refused_without_a_request() {
        let server = server().await;
        let port = server.address().port();
        let url = format!("http://ntfy.example.com:{port}/topic?token=tk_SECRET");
        let client = new_client_with_resolver(AddressPolicy::PublicOnly, Arc::new(Rebinding));
        let redactor = Redactor::new().with("tk_SECRET");
        let err = client.send(client.post(&url), &redactor).await.unwrap_err();
        let PluginError::Misconfigured {
            status: None,
            reason,
        } = &err
        else {
            panic!("a refused address is a misconfiguration: {err:?}")
        };
        assert!(
            reason.contains("ntfy.example.com resolves to 127.0.0.1, a loopback address")
                && reason.contains("allow_private_network: true"),
            "{reason}"
        );
        assert!(!reason.contains("tk_SECRET") && !reason.contains("/topic"));
        assert!(server.received_requests().await.unwrap().is_empty());

        // The same name with the LAN opt-in reaches the server: the resolver was used.
        let lan = new_client_with_resolver(AddressPolicy::AllowPrivate, Arc::new(Rebinding));
        let reply = lan.send(lan.post(&url), &redactor).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn literal_loopback_spellings_are_refused_before_connecting() {
        let server = server().await;
        let port = server.address().port();
        let client = new_client(AddressPolicy::PublicOnly);
        for host in [
            "127.0.0.1",
            "[::ffff:127.0.0.1]",
            "0x7f000001",
            "2130706433",
            "127.1",
            "0.0.0.0",
        ] {
            let url = format!("http://{host}:{port}/");
            let err = client
                .fetch(client.get(&url), &Redactor::new())
                .await
                .unwrap_err();
            assert!(
                matches!(&err, PluginError::Misconfigured { reason, .. } if reason.contains("allow_private_network")),
                "{host}: {err:?}"
            );
        }
        let err = client
            .fetch(
                client.get(format!("http://localhost:{port}/")),
                &Redactor::new(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PluginError::Misconfigured { reason, .. } if reason.starts_with("localhost resolves to")),
            "{err:?}"
        );
        assert!(server.received_requests().await.unwrap().is_empty());
        let lan = new_client(AddressPolicy::AllowPrivate);
        let reply = lan
            .fetch(lan.get(format!("http://127.1:{port}/")), &Redactor::new())
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_capture_client_records_the_request_and_sends_nothing() {
        let server = server().await;
        let capture = Capture::new();
        let client = new_capture_client(AddressPolicy::AllowPrivate, capture.clone());
        let redactor = Redactor::new().with("tk_SECRET");
        let url = format!("{}/topic?auth=tk_SECRET", server.uri());
        let err = client
            .send_with_retry(&RetryPolicy::default(), &redactor, || {
                client.post(&url).body("hello tk_SECRET")
            })
            .await
            .unwrap_err();
        assert_eq!(err, PluginError::DryRun, "not retried, not sent");
        let captured = capture.requests();
        assert_eq!(captured.len(), 1, "{captured:?}");
        assert_eq!(captured[0].body.as_deref(), Some("hello [redacted]"));
        assert!(
            captured[0].url.ends_with("/topic?auth=[redacted]"),
            "{captured:?}"
        );
        assert!(server.received_requests().await.unwrap().is_empty());

        // A refused address is what a real send would meet: the request is still shown.
        let public = new_capture_client(AddressPolicy::PublicOnly, capture.clone());
        let err = public
            .fetch(public.get(server.uri()), &redactor)
            .await
            .unwrap_err();
        assert!(matches!(err, PluginError::Misconfigured { .. }), "{err:?}");
        assert_eq!(capture.requests().len(), 2);
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn metadata_addresses_are_refused_even_with_the_lan_opt_in() {
        let lan = new_client(AddressPolicy::AllowPrivate);
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://100.100.100.200/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:169.254.169.254]/",
        ] {
            let err = lan.fetch(lan.get(url), &Redactor::new()).await.unwrap_err();
            assert!(
                matches!(&err, PluginError::Misconfigured { reason, .. } if reason.contains("never contacted")),
                "{url}: {err:?}"
            );
        }
    }
}
