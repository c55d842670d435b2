//! The generic webhook against a mock receiver on 127.0.0.1: the exact request, Standard
//! Webhooks signatures checked by an independent receiver-side verifier, the stable
//! `webhook-id` across retries, status → error mapping, config validation, the test
//! delivery, and no URL token or header value in any error, report or log line.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use mydia_plugins::config::Problems;
use mydia_plugins::event::{Event, EventName};
use mydia_plugins::http::{self, RetryPolicy};
use mydia_plugins::plugins::registry::CommonSettings;
use mydia_plugins::plugins::webhook::generic::{Webhook, WebhookConfig, TEST_EVENT_TYPE};
use mydia_plugins::plugins::{Plugin, PluginContext, PluginError, WebhookPlugin};
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::logs::{capture_logs, closed_port_url};

/// The example secret from the Standard Webhooks spec (24 bytes behind `whsec_`).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HOOK_PATH: &str = "/hooks/mydia";

/// Tiny backoffs: wiremock serves on real time, so paused time is not an option here.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
    }
}

fn config(url: &str) -> WebhookConfig {
    WebhookConfig {
        url: Some(SecretString::from(url)),
        secret: Some(SecretString::from(SECRET)),
        ..WebhookConfig::default()
    }
}

fn hook_url(server: &MockServer) -> String {
    format!("{}{HOOK_PATH}", server.uri())
}

fn plugin(config: WebhookConfig) -> Webhook {
    Webhook::new(config)
        .expect("valid config")
        .with_retry_policy(fast_retry())
}

fn cx() -> PluginContext {
    PluginContext {
        instance: "webhook".into(),
        http: http::new_client(http::AddressPolicy::AllowPrivate),
    }
}

fn dune_added() -> Event {
    Event::new(
        EventName::AfterMediaAdded,
        json!({"media_item": {"title": "Dune", "year": 2021, "type": "movie", "tmdb_id": 438631}})
            .as_object()
            .cloned()
            .unwrap(),
    )
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

async fn receiver(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(HOOK_PATH))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

fn header<'r>(req: &'r Request, name: &str) -> &'r str {
    req.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// What a receiver does, written from the spec and not from the plugin's code: decode the
/// key behind `whsec_`, recompute HMAC-SHA256 over `{id}.{timestamp}.{raw body}` from the
/// headers, compare in constant time with each `v1,` entry, and refuse a timestamp more than
/// 5 minutes from `now`.
fn verify(secret: &str, req: &Request, body: &[u8], now: i64) -> Result<(), String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").ok_or("no whsec_ prefix")?)
        .map_err(|e| e.to_string())?;
    let get = |name: &str| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(format!("missing {name}"))
    };
    let (id, timestamp, signatures) = (
        get("webhook-id")?,
        get("webhook-timestamp")?,
        get("webhook-signature")?,
    );
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| "timestamp is not an integer")?;
    if (now - ts).abs() > 300 {
        return Err(format!("timestamp {ts} is outside the tolerance"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    for entry in signatures.split(' ') {
        let Some(b64) = entry.strip_prefix("v1,") else {
            continue;
        };
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            continue;
        };
        if mac.clone().verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    Err("no signature matches".into())
}

#[tokio::test]
async fn posts_the_event_envelope_with_headers_and_a_valid_signature() {
    let server = receiver(ResponseTemplate::new(204)).await;
    let mut headers = BTreeMap::new();
    headers.insert(
        "Authorization".to_owned(),
        SecretString::from("Bearer tk_receiver"),
    );
    headers.insert("X-Source".to_owned(), SecretString::from("mydia"));
    let hook = plugin(WebhookConfig {
        headers,
        ..config(&format!("{}?tenant=home", hook_url(&server)))
    });
    let event = dune_added();

    let delivered = hook.send_webhook(&cx(), &event).await.expect("delivered");

    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.method.as_str(), "POST");
    assert_eq!(req.url.path(), HOOK_PATH);
    assert_eq!(req.url.query(), Some("tenant=home"));
    assert_eq!(header(req, "content-type"), "application/json");
    assert_eq!(header(req, "authorization"), "Bearer tk_receiver");
    assert_eq!(header(req, "x-source"), "mydia");
    assert_eq!(
        req.body_json::<Value>().unwrap(),
        json!({
            "type": "after_media_added",
            "id": event.id,
            "timestamp": event.timestamp,
            "data": {"media_item": {"title": "Dune", "year": 2021, "type": "movie", "tmdb_id": 438631}},
        })
    );
    assert_eq!(
        req.body,
        Webhook::body(&event),
        "the signed bytes are the sent bytes"
    );
    assert_eq!(
        header(req, "webhook-id"),
        event.id,
        "a UUID event id is used as is"
    );
    let ts: i64 = header(req, "webhook-timestamp").parse().unwrap();
    assert!((now() - ts).abs() <= 5, "unix seconds of the attempt: {ts}");
    assert!(header(req, "webhook-signature").starts_with("v1,"));
    verify(SECRET, req, &req.body, now()).expect("the receiver accepts it");
    assert_eq!(
        delivered.detail,
        format!("204 No Content, webhook-id {}", event.id)
    );
}

#[tokio::test]
async fn the_receiver_side_verifier_accepts_the_real_thing_and_nothing_else() {
    let server = receiver(ResponseTemplate::new(200)).await;
    plugin(config(&hook_url(&server)))
        .send_webhook(&cx(), &dune_added())
        .await
        .unwrap();
    let req = &requests(&server).await[0];

    assert_eq!(verify(SECRET, req, &req.body, now()), Ok(()));

    let mut tampered = req.body.clone();
    let at = tampered.iter().position(|b| *b == b'D').unwrap(); // "Dune" → "Eune"
    tampered[at] = b'E';
    assert_eq!(
        verify(SECRET, req, &tampered, now()),
        Err("no signature matches".into())
    );
    let mut extra = req.body.clone();
    extra.push(b' ');
    assert!(
        verify(SECRET, req, &extra, now()).is_err(),
        "even whitespace"
    );
    let other_secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    assert!(verify(other_secret, req, &req.body, now()).is_err());
    assert!(
        verify(SECRET, req, &req.body, now() + 3600).is_err(),
        "a replay an hour later is refused on its timestamp"
    );
    let mut forged = req.clone();
    forged
        .headers
        .insert("webhook-id", "another-id".parse().unwrap());
    assert!(
        verify(SECRET, &forged, &req.body, now()).is_err(),
        "the id is signed"
    );
}

#[tokio::test]
async fn a_unicode_event_is_sent_as_utf8_and_still_verifies() {
    let server = receiver(ResponseTemplate::new(200)).await;
    let title = "Amélie — 千と千尋の神隠し 🎬";
    let event = Event::new(
        EventName::AfterImportCompleted,
        json!({"media_item": {"title": title}})
            .as_object()
            .cloned()
            .unwrap(),
    );
    plugin(config(&hook_url(&server)))
        .send_webhook(&cx(), &event)
        .await
        .unwrap();
    let req = &requests(&server).await[0];
    assert!(String::from_utf8(req.body.clone()).unwrap().contains(title));
    verify(SECRET, req, &req.body, now()).expect("valid");
}

#[tokio::test]
async fn retries_keep_the_webhook_id_and_sign_each_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(HOOK_PATH))
        .respond_with(ResponseTemplate::new(503).set_body_string("try later"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(HOOK_PATH))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let event = dune_added();

    plugin(config(&hook_url(&server)))
        .send_webhook(&cx(), &event)
        .await
        .expect("the third attempt succeeds");

    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 3);
    for req in &reqs {
        assert_eq!(header(req, "webhook-id"), event.id);
        assert_eq!(req.body, reqs[0].body, "the same body every time");
        verify(SECRET, req, &req.body, now()).expect("each attempt is signed");
    }
}

#[tokio::test]
async fn a_redelivery_of_the_same_event_keeps_the_webhook_id() {
    let server = receiver(ResponseTemplate::new(200)).await;
    let hook = plugin(config(&hook_url(&server)));
    // What the supervisor does after a timeout: the same event again, through a fresh call.
    let event = dune_added().with_id("mydia.evt 42"); // not header-safe: hashed
    hook.send_webhook(&cx(), &event).await.unwrap();
    hook.send_webhook(&cx(), &event).await.unwrap();
    hook.send_webhook(&cx(), &dune_added()).await.unwrap();

    let ids: Vec<String> = requests(&server)
        .await
        .iter()
        .map(|r| header(r, "webhook-id").to_owned())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert!(
        ids[0].starts_with("evt_") && !ids[0].contains('.'),
        "{}",
        ids[0]
    );
    assert_ne!(ids[0], ids[2], "another event, another id");
    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert_eq!(
        body["id"], "mydia.evt 42",
        "the body keeps the event's own id"
    );
}

#[tokio::test]
async fn without_a_secret_the_id_and_timestamp_are_still_sent() {
    let server = receiver(ResponseTemplate::new(200)).await;
    let event = dune_added();
    plugin(WebhookConfig {
        secret: None,
        ..config(&hook_url(&server))
    })
    .send_webhook(&cx(), &event)
    .await
    .unwrap();
    let req = &requests(&server).await[0];
    assert_eq!(header(req, "webhook-id"), event.id);
    assert!(header(req, "webhook-timestamp").parse::<i64>().is_ok());
    assert!(req.headers.get("webhook-signature").is_none());
}

#[tokio::test]
async fn a_client_error_is_rejected_once_with_the_receivers_words() {
    let server =
        receiver(ResponseTemplate::new(400).set_body_json(json!({"error": "unknown event type"})))
            .await;

    let err = plugin(config(&hook_url(&server)))
        .send_webhook(&cx(), &dune_added())
        .await
        .unwrap_err();

    assert_eq!(requests(&server).await.len(), 1, "4xx is never retried");
    assert_eq!(
        err,
        PluginError::Rejected {
            status: Some(400),
            reason: "400 Bad Request (service said: unknown event type)".into()
        }
    );
}

#[tokio::test]
async fn gone_means_misconfigured_and_is_not_retried() {
    let server = receiver(ResponseTemplate::new(410).set_body_string("endpoint disabled")).await;

    let err = plugin(config(&hook_url(&server)))
        .send_webhook(&cx(), &dune_added())
        .await
        .unwrap_err();

    assert_eq!(requests(&server).await.len(), 1);
    assert!(
        matches!(
            err,
            PluginError::Misconfigured {
                status: Some(410),
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("410 Gone"), "{text}");
    assert!(text.contains("endpoint disabled"), "{text}");
    assert!(
        text.contains("the receiver wants no more deliveries"),
        "{text}"
    );
    assert!(!err.is_transient() && !err.is_breaker_failure());
}

#[tokio::test]
async fn a_rate_limit_returns_at_once_with_retry_after() {
    let server = receiver(ResponseTemplate::new(429).insert_header("retry-after", "12")).await;

    let err = plugin(config(&hook_url(&server)))
        .send_webhook(&cx(), &dune_added())
        .await
        .unwrap_err();

    assert_eq!(
        err,
        PluginError::RateLimited {
            retry_after: Some(Duration::from_secs(12))
        }
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn server_errors_exhaust_the_retries_as_transient() {
    let server = receiver(ResponseTemplate::new(502)).await;
    let err = plugin(config(&hook_url(&server)))
        .send_webhook(&cx(), &dune_added())
        .await
        .unwrap_err();
    assert_eq!(requests(&server).await.len(), 3);
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
}

#[tokio::test]
async fn an_unreachable_receiver_is_transient() {
    let err = plugin(config(&format!("{}/hook", closed_port_url())))
        .send_webhook(&cx(), &dune_added())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PluginError::Transient { status: None, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("could not connect"), "{err}");
}

#[tokio::test]
async fn test_connection_sends_a_marked_signed_test_delivery() {
    let server = receiver(ResponseTemplate::new(200)).await;

    let report = plugin(config(&hook_url(&server)))
        .test_connection(&cx())
        .await
        .expect("accepted");

    assert!(report.sent_message);
    assert_eq!(
        report.detail,
        format!(
            "the receiver at {} accepted a signed test delivery (type `mydia.test`) with 200 OK; \
             it was a real POST, which the receiver may store or act on",
            server.uri()
        )
    );
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    let body: Value = req.body_json().unwrap();
    assert_eq!(body["type"], TEST_EVENT_TYPE);
    assert_eq!(header(req, "webhook-id"), body["id"].as_str().unwrap());
    assert!(body["data"]["message"].as_str().unwrap().contains("Mydia"));
    verify(SECRET, req, &req.body, now()).expect("signed like any delivery");

    let missing = MockServer::start().await; // 404 for everything
    let err = plugin(config(&hook_url(&missing)))
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
}

fn problems(yaml: &str, allow_insecure_http: bool) -> Vec<String> {
    let config: WebhookConfig = serde_yaml::from_str(yaml).expect("parses");
    let common = CommonSettings {
        enabled: true,
        events: vec![],
        allow_insecure_http,
        allow_private_network: false,
        timeout: None,
        rate_limit: None,
        max_in_flight: None,
        templates: None,
        digest: None,
        quiet_hours: None,
    };
    let mut p = Problems::default();
    config.validate("plugins.hook", &common, &mut p);
    p.into_vec()
        .into_iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect()
}

#[test]
fn config_validation_reports_each_mistake_at_its_field() {
    let ok =
        "url: https://receiver.example.com/hook\nsecret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n\
              headers: {Authorization: Bearer tk_1}";
    assert!(problems(ok, false).is_empty());
    let cases = [
        (
            "url: https://r.example.com\nsecret: MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "plugins.hook.secret: must start with `whsec_`",
        ),
        (
            "url: https://r.example.com\nsecret: 'whsec_%%%not-base64%%%'",
            "plugins.hook.secret: the part after `whsec_` is not valid base64",
        ),
        (
            "url: https://r.example.com\nheaders: {X-Api-Key: \"k\\r\\nX-Evil: 1\"}",
            "plugins.hook.headers.X-Api-Key: the value contains a line break",
        ),
        (
            "url: http://127.0.0.1:8080/hook",
            "plugins.hook.url: uses http://",
        ),
        (
            "url: https://r.example.com\nheaders: {Webhook-Signature: 'v1,forged'}",
            "plugins.hook.headers.Webhook-Signature: `webhook-*` headers",
        ),
    ];
    for (yaml, expect) in cases {
        let got = problems(yaml, false);
        assert_eq!(got.len(), 1, "{yaml}: {got:?}");
        assert!(got[0].starts_with(expect), "{yaml}: {got:?}");
    }
    assert!(problems("url: http://127.0.0.1:8080/hook", true).is_empty());
    let typo = serde_yaml::from_str::<WebhookConfig>("url: https://r.example.com\nheader: {}")
        .unwrap_err();
    assert!(
        typo.to_string().contains("unknown field `header`"),
        "{typo}"
    );
}

/// Plants one token in the URL's query and another in a header value, provokes every
/// outcome (the receiver even echoes both tokens back in its error text and a redirect), and
/// checks neither shows up in any error's Display or Debug, any Delivered detail, any
/// ConnectionReport or any log line, while the receiver did get both.
#[tokio::test]
async fn url_and_header_tokens_never_leak() {
    let url_token = format!("qCANARY{}", uuid::Uuid::new_v4().simple());
    let header_token = format!("hCANARY{}", uuid::Uuid::new_v4().simple());
    let (logs, _capture) = capture_logs();
    let hook_for = |base: &str| {
        let mut headers = BTreeMap::new();
        headers.insert(
            "X-Api-Key".to_owned(),
            SecretString::from(header_token.as_str()),
        );
        plugin(WebhookConfig {
            headers,
            ..config(&format!("{base}{HOOK_PATH}?token={url_token}"))
        })
    };
    let echo = format!("bad token={url_token} key {header_token} at {HOOK_PATH}?token={url_token}");
    let responses = [
        ResponseTemplate::new(200).set_body_string(echo.clone()),
        ResponseTemplate::new(400).set_body_json(json!({"error": echo})),
        ResponseTemplate::new(401).set_body_string(echo.clone()),
        ResponseTemplate::new(404).set_body_string(echo.clone()),
        ResponseTemplate::new(410).set_body_string(echo.clone()),
        ResponseTemplate::new(500).set_body_string(echo.clone()),
        ResponseTemplate::new(429).insert_header("retry-after", "5"),
        ResponseTemplate::new(307).insert_header(
            "location",
            format!("https://elsewhere.example{HOOK_PATH}?token={url_token}").as_str(),
        ),
    ];
    let mut shown: Vec<String> = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for response in responses {
        let server = receiver(response).await;
        let hook = hook_for(&server.uri());
        for result in [
            hook.send_webhook(&cx(), &dune_added())
                .await
                .map(|d| format!("{d:?} {}", d.detail)),
            hook.test_connection(&cx())
                .await
                .map(|r| format!("{r:?} {}", r.detail)),
        ] {
            match result {
                Ok(text) => shown.push(text),
                Err(err) => {
                    kinds.insert(err.kind());
                    shown.push(format!("{err} | {err:?}"));
                }
            }
        }
        let sent = &requests(&server).await[0];
        assert_eq!(
            sent.url.query(),
            Some(format!("token={url_token}").as_str())
        );
        assert_eq!(header(sent, "x-api-key"), header_token);
        shown.push(format!("{hook:?}"));
    }
    let unreachable = hook_for(&closed_port_url());
    let err = unreachable
        .send_webhook(&cx(), &dune_added())
        .await
        .unwrap_err();
    kinds.insert(err.kind());
    shown.push(format!("{err} | {err:?}"));

    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["misconfigured", "rate_limited", "rejected", "transient"]
    );
    for text in &shown {
        assert!(
            !text.contains(&url_token) && !text.contains(&header_token),
            "token leaked: {text}"
        );
    }
    assert!(
        shown
            .iter()
            .any(|t| t.contains("service said: bad [redacted] key [redacted] at [redacted]")),
        "the echo was redacted, not dropped: {shown:#?}"
    );
    let logged = logs.contents();
    assert!(
        logged.contains("transient failure, retrying") && logged.contains("webhook delivered"),
        "the subscriber captured the retries and deliveries:\n{logged}"
    );
    assert!(
        !logged.contains(&url_token) && !logged.contains(&header_token),
        "token leaked into the logs:\n{logged}"
    );
}
