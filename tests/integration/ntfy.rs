//! The ntfy plugin against a mock ntfy server on 127.0.0.1: request shape, auth, limits,
//! status → error mapping, retries, the health check, and no secret in any error or log.

use std::time::Duration;

use mydia_plugins::event::{Event, EventName};
use mydia_plugins::http::{self, RetryPolicy};
use mydia_plugins::plugins::notification::ntfy::{
    Ntfy, NtfyConfig, MAX_JSON_BYTES, MAX_MESSAGE_BYTES,
};
use mydia_plugins::plugins::{NotificationPlugin, Plugin, PluginContext, PluginError};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::logs::{capture_logs, closed_port_url};

const TOPIC: &str = "mydia-test";

/// Tiny backoffs: wiremock serves on real time, so paused time is not an option here.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
    }
}

fn config(server: &str) -> NtfyConfig {
    NtfyConfig {
        server_url: server.to_owned(),
        topic: Some(TOPIC.into()),
        ..NtfyConfig::default()
    }
}

fn plugin(config: NtfyConfig) -> Ntfy {
    Ntfy::new(config)
        .expect("valid config")
        .with_retry_policy(fast_retry())
}

fn cx() -> PluginContext {
    PluginContext {
        instance: "ntfy".into(),
        http: http::new_client(http::AddressPolicy::AllowPrivate),
    }
}

fn event(name: EventName, data: Value) -> Event {
    Event::new(name, data.as_object().cloned().expect("an object"))
}

fn dune_added() -> Event {
    event(
        EventName::AfterMediaAdded,
        json!({"media_item": {"title": "Dune", "year": 2021, "type": "movie", "tmdb_id": 438631}}),
    )
}

/// What ntfy answers on a successful publish.
fn published() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "sPs5ZlGXlKbW", "time": 1_700_000_000, "event": "message", "topic": TOPIC, "message": "Dune (2021)"
    }))
}

/// ntfy's error body.
fn ntfy_error(status: u16, code: u32, error: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"code": code, "http": status, "error": error}))
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

async fn server_answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn publishes_json_to_the_server_root_with_topic_in_the_body() {
    let server = server_answering(published()).await;
    let ntfy = plugin(NtfyConfig {
        priority: 5,
        tags: vec!["mydia".into()],
        ..config(&server.uri())
    });

    let delivered = ntfy.notify(&cx(), &dune_added()).await.expect("published");

    assert_eq!(delivered.detail, "200 OK, message id sPs5ZlGXlKbW");
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(
        req.url.path(),
        "/",
        "JSON must go to the root: posted to /<topic> it is not parsed"
    );
    assert_eq!(req.headers.get("content-type").unwrap(), "application/json");
    assert!(req.headers.get("authorization").is_none());
    assert_eq!(
        req.body_json::<Value>().unwrap(),
        json!({
            "topic": TOPIC,
            "title": "Movie added",
            "message": "Dune (2021)",
            "priority": 5,
            "tags": ["mydia", "movie_camera"],
            "click": "https://www.themoviedb.org/movie/438631",
        })
    );
}

#[tokio::test]
async fn sends_the_access_token_as_bearer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header("authorization", "Bearer tk_abc123"))
        .respond_with(published())
        .expect(1)
        .mount(&server)
        .await;
    let ntfy = plugin(NtfyConfig {
        auth_token: Some(SecretString::from(" tk_abc123\n")),
        ..config(&server.uri())
    });

    ntfy.notify(&cx(), &dune_added())
        .await
        .expect("published with the trimmed token");
}

#[tokio::test]
async fn sends_username_and_password_as_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header("authorization", "Basic cGhpbDpteXBhc3M=")) // phil:mypass
        .respond_with(published())
        .expect(1)
        .mount(&server)
        .await;
    let ntfy = plugin(NtfyConfig {
        username: Some("phil".into()),
        password: Some(SecretString::from("mypass")),
        ..config(&server.uri())
    });

    ntfy.notify(&cx(), &dune_added()).await.expect("published");
}

#[tokio::test]
async fn event_tags_follow_the_media_kind_and_merge_without_repeats() {
    let server = server_answering(published()).await;
    let ntfy = plugin(NtfyConfig {
        tags: vec!["tv".into(), "home".into()],
        ..config(&server.uri())
    });
    let series = event(
        EventName::AfterMediaAdded,
        json!({"media_item": {"title": "Severance", "type": "tv_show"}}),
    );
    let done = event(
        EventName::OnDownloadCompleted,
        json!({"release_name": "Severance.S02E01.1080p"}),
    );

    ntfy.notify(&cx(), &series).await.unwrap();
    ntfy.notify(&cx(), &done).await.unwrap();

    let bodies: Vec<Value> = requests(&server)
        .await
        .iter()
        .map(|r| r.body_json().unwrap())
        .collect();
    assert_eq!(bodies[0]["tags"], json!(["tv", "home"]));
    assert_eq!(bodies[0]["title"], "Series added");
    assert_eq!(bodies[1]["tags"], json!(["tv", "home", "inbox_tray"]));
    assert_eq!(bodies[1]["title"], "Download completed");
    assert_eq!(bodies[1]["message"], "Severance.S02E01.1080p");
}

#[tokio::test]
async fn unicode_survives_byte_exact() {
    let server = server_answering(published()).await;
    let ntfy = plugin(config(&server.uri()));
    let name = "Amélie — 千と千尋の神隠し";
    let ev = event(
        EventName::OnPluginHealthChanged,
        json!({"plugin": name, "to": "open", "reason": name}),
    );

    ntfy.notify(&cx(), &ev).await.unwrap();

    let req = &requests(&server).await[0];
    let body: Value = req.body_json().unwrap();
    assert_eq!(body["title"], format!("Plugin failing: {name}"));
    assert_eq!(body["message"], format!("Now open\n{name}"));
    // Sent as raw UTF-8 in the JSON, not as RFC 2047 headers or mangled escapes.
    let raw = String::from_utf8(req.body.clone()).unwrap();
    assert!(raw.contains(name), "{raw}");
    assert!(req.headers.get("x-title").is_none());
}

#[tokio::test]
async fn long_messages_are_cut_to_ntfys_byte_limit() {
    let server = server_answering(published()).await;
    let ntfy = plugin(config(&server.uri()));
    let ev = event(
        EventName::OnDownloadFailed,
        json!({"media_item": {"title": "千と千尋の神隠し"}, "error_message": "エラー".repeat(2000)}),
    );

    ntfy.notify(&cx(), &ev).await.unwrap();

    let body: Value = requests(&server).await[0].body_json().unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.len() <= MAX_MESSAGE_BYTES,
        "{} bytes",
        message.len()
    );
    assert!(
        message.len() > MAX_MESSAGE_BYTES - 8,
        "cut close to the limit, not far below it"
    );
    assert!(message.starts_with("千と千尋の神隠し\nError: エラー") && message.ends_with('…'));
}

/// A mock ntfy that refuses a JSON body over `limit` bytes as ntfy does (413).
async fn server_with_body_limit(limit: usize) -> MockServer {
    struct Over(usize);
    impl wiremock::Match for Over {
        fn matches(&self, request: &Request) -> bool {
            request.body.len() > self.0
        }
    }
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(Over(limit))
        .respond_with(ntfy_error(413, 41301, "request entity too large"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(published())
        .mount(&server)
        .await;
    server
}

fn quotes_failed() -> Event {
    event(
        EventName::OnDownloadFailed,
        json!({"media_item": {"title": "Dune"}, "error_message": "\"".repeat(5000)}),
    )
}

/// Escaping doubles a `"`: a message of them would be 8263 bytes on the wire and be
/// refused; it is cut so the whole body fits ntfy's 8192-byte JSON limit.
#[tokio::test]
async fn the_json_body_fits_ntfys_limit_after_escaping() {
    let server = server_with_body_limit(MAX_JSON_BYTES).await;
    let ntfy = plugin(config(&server.uri()));

    ntfy.notify(&cx(), &quotes_failed()).await.unwrap();

    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    let len = sent[0].body.len();
    assert!(len <= MAX_JSON_BYTES && len > MAX_JSON_BYTES - 16, "{len}");
    let body: Value = sent[0].body_json().unwrap();
    assert!(body["message"].as_str().unwrap().ends_with('…'));
}

/// A server with a lower limit answers 413: the message goes once more, shortened.
#[tokio::test]
async fn a_413_is_retried_once_with_the_message_shortened() {
    let server = server_with_body_limit(5000).await;
    let ntfy = plugin(config(&server.uri()));

    ntfy.notify(&cx(), &quotes_failed()).await.unwrap();

    let sent = requests(&server).await;
    assert_eq!(sent.len(), 2);
    assert!(sent[0].body.len() > 5000 && sent[1].body.len() <= 5000);
    let body: Value = sent[1].body_json().unwrap();
    assert!(body["message"].as_str().unwrap().ends_with('…'));

    // Only once: a server that refuses the shorter one too gets no third request.
    let tiny = server_with_body_limit(100).await;
    let ntfy = plugin(config(&tiny.uri()));
    let err = ntfy.notify(&cx(), &quotes_failed()).await.unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::Rejected {
                status: Some(413),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(requests(&tiny).await.len(), 2);
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(ntfy_error(503, 50301, "service unavailable"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(published())
        .mount(&server)
        .await;

    let delivered = plugin(config(&server.uri()))
        .notify(&cx(), &dune_added())
        .await;

    assert!(delivered.is_ok(), "{delivered:?}");
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn server_errors_exhaust_the_retries_as_transient() {
    let server = server_answering(ntfy_error(502, 50200, "bad gateway")).await;

    let err = plugin(config(&server.uri()))
        .notify(&cx(), &dune_added())
        .await
        .unwrap_err();

    assert_eq!(requests(&server).await.len(), 3, "max_attempts in all");
    assert!(
        matches!(
            err,
            PluginError::Transient {
                status: Some(502),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_breaker_failure());
}

#[tokio::test]
async fn client_errors_are_rejected_once_with_ntfys_own_words() {
    let server = server_answering(ntfy_error(400, 40009, "invalid request: topic invalid")).await;

    let err = plugin(config(&server.uri()))
        .notify(&cx(), &dune_added())
        .await
        .unwrap_err();

    assert_eq!(requests(&server).await.len(), 1, "4xx is never retried");
    assert!(
        matches!(
            err,
            PluginError::Rejected {
                status: Some(400),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("invalid request: topic invalid (code 40009)"),
        "{err}"
    );
}

#[tokio::test]
async fn unauthorized_is_misconfigured_and_not_retried() {
    let server = server_answering(ntfy_error(401, 40101, "unauthorized")).await;
    let ntfy = plugin(NtfyConfig {
        auth_token: Some(SecretString::from("tk_wrong")),
        ..config(&server.uri())
    });

    let err = ntfy.notify(&cx(), &dune_added()).await.unwrap_err();

    assert_eq!(requests(&server).await.len(), 1);
    assert!(
        matches!(
            err,
            PluginError::Misconfigured {
                status: Some(401),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("unauthorized (code 40101)"),
        "{err}"
    );
}

#[tokio::test]
async fn rate_limits_return_at_once_with_the_wait_when_given() {
    let server = server_answering(ntfy_error(429, 42901, "limit reached: too many requests")).await;
    let err = plugin(config(&server.uri()))
        .notify(&cx(), &dune_added())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PluginError::RateLimited { retry_after: None },
        "ntfy usually sends no Retry-After"
    );
    assert_eq!(requests(&server).await.len(), 1);

    let server = server_answering(
        ntfy_error(429, 42908, "limit reached").insert_header("retry-after", "30"),
    )
    .await;
    let err = plugin(config(&server.uri()))
        .notify(&cx(), &dune_added())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PluginError::RateLimited {
            retry_after: Some(Duration::from_secs(30))
        }
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_transient() {
    let err = plugin(config(&closed_port_url()))
        .notify(&cx(), &dune_added())
        .await
        .unwrap_err();

    assert!(
        matches!(err, PluginError::Transient { status: None, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("could not connect"), "{err}");
}

#[tokio::test]
async fn test_connection_checks_health_without_publishing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/health"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"healthy": true})))
        .expect(1)
        .mount(&server)
        .await;

    let report = plugin(config(&server.uri()))
        .test_connection(&cx())
        .await
        .expect("healthy");

    assert!(!report.sent_message);
    assert!(
        report.detail.contains("healthy (GET /v1/health)"),
        "{}",
        report.detail
    );
    assert!(
        report.detail.contains("nothing was published"),
        "{}",
        report.detail
    );
    assert!(
        report
            .detail
            .contains("only a real publish proves write access"),
        "{}",
        report.detail
    );
    assert!(requests(&server)
        .await
        .iter()
        .all(|r| r.method.as_str() == "GET"));
}

#[tokio::test]
async fn test_connection_can_publish_a_real_test_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/health"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"healthy": true})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(published())
        .expect(1)
        .mount(&server)
        .await;

    let report = plugin(NtfyConfig {
        test_publishes: true,
        ..config(&server.uri())
    })
    .test_connection(&cx())
    .await
    .expect("published");

    assert!(report.sent_message);
    assert!(
        report.detail.contains("publishing works"),
        "{}",
        report.detail
    );
    let post = requests(&server)
        .await
        .into_iter()
        .find(|r| r.method.as_str() == "POST")
        .unwrap();
    let body: Value = post.body_json().unwrap();
    assert_eq!(
        (body["topic"].as_str(), body["tags"].clone()),
        (Some(TOPIC), json!(["test_tube"]))
    );
}

#[tokio::test]
async fn test_connection_reports_unhealthy_and_non_ntfy_servers() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/health"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"healthy": false})))
        .mount(&server)
        .await;
    let err = plugin(config(&server.uri()))
        .test_connection(&cx())
        .await
        .unwrap_err();
    assert!(
        err.is_transient() && err.to_string().contains("unhealthy"),
        "{err}"
    );

    let not_ntfy = MockServer::start().await; // answers 404 to everything
    let err = plugin(config(&not_ntfy.uri()))
        .test_connection(&cx())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::Misconfigured {
                status: Some(404),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("like an ntfy server; check server_url"),
        "{err}"
    );

    let err = plugin(config(&closed_port_url()))
        .test_connection(&cx())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

/// Plants a unique token, provokes every error path (the server even echoes the token
/// back in its error text and a redirect), and checks the token shows up in no error's
/// Display or Debug and in no log line, while the server did receive it.
#[tokio::test]
async fn the_token_never_leaks_into_errors_or_logs() {
    let canary = format!("tk_CANARY_{}", uuid::Uuid::new_v4().simple());
    let (logs, _capture) = capture_logs();

    let echo = |status: u16| {
        ntfy_error(
            status,
            u32::from(status) * 100,
            &format!("bad token {canary}"),
        )
    };
    let responses = [
        echo(400),
        echo(401),
        echo(403),
        echo(404),
        echo(410),
        echo(500),
        echo(429).insert_header("retry-after", "5"),
        ResponseTemplate::new(301).insert_header(
            "location",
            format!("https://x.example/?auth={canary}").as_str(),
        ),
        ResponseTemplate::new(418).set_body_string(format!("plain {canary} text")),
    ];
    let mut errors = Vec::new();
    for response in responses {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/"))
            .respond_with(response.clone())
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/health"))
            .respond_with(response)
            .mount(&server)
            .await;
        let ntfy = plugin(NtfyConfig {
            auth_token: Some(SecretString::from(canary.as_str())),
            test_publishes: true,
            ..config(&server.uri())
        });
        errors.push(ntfy.notify(&cx(), &dune_added()).await.unwrap_err());
        errors.push(ntfy.test_connection(&cx()).await.unwrap_err());
        let sent = requests(&server)
            .await
            .into_iter()
            .find(|r| r.method.as_str() == "POST")
            .unwrap();
        assert_eq!(
            sent.headers.get("authorization").unwrap().to_str().unwrap(),
            format!("Bearer {canary}")
        );
        assert!(!format!("{ntfy:?}").contains(&canary));
    }
    let unreachable = plugin(NtfyConfig {
        auth_token: Some(SecretString::from(canary.as_str())),
        ..config(&closed_port_url())
    });
    errors.push(unreachable.notify(&cx(), &dune_added()).await.unwrap_err());
    errors.push(unreachable.test_connection(&cx()).await.unwrap_err());

    let kinds: std::collections::BTreeSet<&str> = errors.iter().map(PluginError::kind).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["misconfigured", "rate_limited", "rejected", "transient"]
    );
    for err in &errors {
        let shown = format!("{err} | {err:?}");
        assert!(!shown.contains(&canary), "token leaked: {shown}");
    }
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("bad token [redacted]")),
        "the echo was redacted, not dropped"
    );
    let logged = logs.contents();
    assert!(
        logged.contains("transient failure, retrying"),
        "the subscriber captured the retries:\n{logged}"
    );
    assert!(
        !logged.contains(&canary),
        "token leaked into the logs:\n{logged}"
    );
}
