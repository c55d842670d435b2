//! The Pushover plugin against a mock Pushover API on 127.0.0.1: the form fields, limits,
//! status → error mapping, retries with Pushover's gap, the quota, the connection test, and
//! no key in any error, report or log line.

use std::time::{Duration, Instant};

use mydia_plugins::event::{Event, EventName};
use mydia_plugins::http::{self, RetryPolicy, MAX_RETRY_AFTER};
use mydia_plugins::plugins::notification::pushover::{
    Pushover, PushoverConfig, MAX_MESSAGE_CHARS, MAX_TITLE_CHARS,
};
use mydia_plugins::plugins::{NotificationPlugin, Plugin, PluginContext, PluginError};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::logs::{capture_logs, closed_port_url};

const USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";
const TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
const MESSAGES: &str = "/1/messages.json";
const VALIDATE: &str = "/1/users/validate.json";

/// Tiny backoffs and no gap: wiremock serves on real time.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
    }
}

fn config_with(server: &str, user: &str, token: &str) -> PushoverConfig {
    PushoverConfig {
        user_key: Some(SecretString::from(user)),
        api_token: Some(SecretString::from(token)),
        api_url: server.to_owned(),
        ..PushoverConfig::default()
    }
}

fn config(server: &str) -> PushoverConfig {
    config_with(server, USER, TOKEN)
}

fn plugin(config: PushoverConfig) -> Pushover {
    Pushover::new(config)
        .expect("valid config")
        .with_retry_policy(fast_retry(), Duration::ZERO)
}

fn cx() -> PluginContext {
    PluginContext {
        instance: "pushover".into(),
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

/// What Pushover answers on success, with its quota headers.
fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"status": 1, "request": "647d2300-702c-4b38-8b2f-d56326ae460b"}))
        .insert_header("x-limit-app-limit", "10000")
        .insert_header("x-limit-app-remaining", "7496")
        .insert_header("x-limit-app-reset", "1893456000")
}

/// Pushover's error body: the offending parameter named, and an `errors` array.
fn po_error(status: u16, param: &str, errors: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(
        json!({param: "invalid", "errors": [errors], "status": 0, "request": "5042853c-402d-4a18-abcb-168734a801de"}),
    )
}

/// A form-encoded body as ordered pairs.
fn form(request: &Request) -> Vec<(String, String)> {
    let body = String::from_utf8(request.body.clone()).expect("utf-8");
    reqwest::Url::parse(&format!("http://x/?{body}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

async fn server_answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn posts_the_form_fields_to_messages_json() {
    let server = server_answering(accepted()).await;
    let pushover = plugin(PushoverConfig {
        priority: 1,
        sound: Some("magic".into()),
        device: Some("iphone, pixel".into()),
        ..config(&server.uri())
    });
    let ev = dune_added();

    let delivered = pushover.notify(&cx(), &ev).await.expect("sent");

    assert_eq!(
        delivered.detail,
        "200 OK, request 647d2300-702c-4b38-8b2f-d56326ae460b; 7496 of 10000 messages left this month"
    );
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].url.path(), MESSAGES);
    assert_eq!(
        reqs[0].headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    let stamp = ev.timestamp.timestamp().to_string();
    let expected: Vec<(&str, &str)> = vec![
        ("token", TOKEN),
        ("user", USER),
        ("title", "Movie added"),
        ("message", "Dune (2021)"),
        ("priority", "1"),
        ("timestamp", &stamp),
        ("url", "https://www.themoviedb.org/movie/438631"),
        ("url_title", "View on TMDB"),
        ("sound", "magic"),
        ("device", "iphone,pixel"),
    ];
    let sent = form(&reqs[0]);
    let sent: Vec<(&str, &str)> = sent.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(sent, expected);
}

#[tokio::test]
async fn emergency_priority_sends_retry_and_expire_and_reports_the_receipt() {
    let server = server_answering(ResponseTemplate::new(200).set_body_json(
        json!({"status": 1, "request": "r1", "receipt": "rLqVuqTRh62UzxtmqiaLzQmVcPgiCy"}),
    ))
    .await;
    let pushover = plugin(PushoverConfig {
        priority: 2,
        retry: Some(60),
        expire: Some(3600),
        ..config(&server.uri())
    });
    let failed = event(
        EventName::OnImportFailed,
        json!({"media_item": {"title": "Dune"}, "error_message": "disk full"}),
    );

    let delivered = pushover.notify(&cx(), &failed).await.unwrap();

    assert_eq!(
        delivered.detail,
        "200 OK, request r1, emergency receipt rLqVuqTRh62UzxtmqiaLzQmVcPgiCy"
    );
    let sent = form(&requests(&server).await[0]);
    assert_eq!(field(&sent, "priority"), Some("2"));
    assert_eq!(field(&sent, "retry"), Some("60"));
    assert_eq!(field(&sent, "expire"), Some("3600"));
    assert_eq!(field(&sent, "title"), Some("Import failed"));
    assert_eq!(field(&sent, "message"), Some("Dune\nError: disk full"));
    assert_eq!(field(&sent, "url"), None);
}

#[tokio::test]
async fn text_is_plain_and_cut_to_pushovers_limits() {
    let server = server_answering(accepted()).await;
    let pushover = plugin(config(&server.uri()));
    let tom = event(
        EventName::AfterMediaAdded,
        json!({"media_item": {"title": "<b>Tom & Jerry</b>", "type": "movie"}}),
    );
    let long = event(
        EventName::OnPluginHealthChanged,
        json!({"plugin": "千と千尋".repeat(100), "to": "open", "reason": "エラー👍 ".repeat(500)}),
    );

    pushover.notify(&cx(), &tom).await.unwrap();
    pushover.notify(&cx(), &long).await.unwrap();

    let reqs = requests(&server).await;
    let tom = form(&reqs[0]);
    assert_eq!(field(&tom, "message"), Some("<b>Tom & Jerry</b>"));
    assert_eq!(field(&tom, "html"), None);
    let long = form(&reqs[1]);
    let (title, message) = (
        field(&long, "title").unwrap(),
        field(&long, "message").unwrap(),
    );
    assert!(
        title.chars().count() <= MAX_TITLE_CHARS && title.chars().count() > MAX_TITLE_CHARS - 3
    );
    assert!(
        message.chars().count() <= MAX_MESSAGE_CHARS
            && message.chars().count() > MAX_MESSAGE_CHARS - 4
    );
    assert!(title.ends_with('…') && message.ends_with('…'));
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(accepted())
        .mount(&server)
        .await;

    let delivered = plugin(config(&server.uri()))
        .notify(&cx(), &dune_added())
        .await;

    assert!(delivered.is_ok(), "{delivered:?}");
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn retries_wait_pushovers_gap_even_across_deliveries() {
    const GAP: Duration = Duration::from_millis(300);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(accepted())
        .mount(&server)
        .await;
    let pushover = Pushover::new(config(&server.uri()))
        .unwrap()
        .with_retry_policy(
            RetryPolicy {
                max_attempts: 2,
                ..fast_retry()
            },
            GAP,
        );

    let start = Instant::now();
    let err = pushover.notify(&cx(), &dune_added()).await.unwrap_err();
    let first = start.elapsed();
    assert!(err.is_transient(), "{err:?}");
    assert!(first >= GAP, "one gap between the two attempts: {first:?}");
    assert!(first < 2 * GAP, "no gap after the last attempt: {first:?}");
    // The supervisor redelivers at once here; the plugin still keeps Pushover's gap.
    let again = Instant::now();
    let delivered = pushover.notify(&cx(), &dune_added()).await;
    let second = again.elapsed();

    assert!(delivered.is_ok(), "{delivered:?}");
    assert!(second >= 2 * GAP - Duration::from_millis(20), "{second:?}");
    assert_eq!(requests(&server).await.len(), 4);
}

/// A delivery cut off by its timeout may have reached Pushover (or be hanging there): the
/// next request still waits the gap.
#[tokio::test]
async fn a_delivery_that_timed_out_keeps_pushovers_gap_too() {
    const GAP: Duration = Duration::from_millis(300);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(accepted().set_delay(Duration::from_secs(5)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(accepted())
        .mount(&server)
        .await;
    let pushover = Pushover::new(config(&server.uri()))
        .unwrap()
        .with_retry_policy(fast_retry(), GAP);

    // What the supervisor's timeout does: drop the delivery mid-request.
    let cut = tokio::time::timeout(
        Duration::from_millis(100),
        pushover.notify(&cx(), &dune_added()),
    )
    .await;
    assert!(cut.is_err(), "the slow delivery was cut off: {cut:?}");
    let again = Instant::now();
    let delivered = pushover.notify(&cx(), &dune_added()).await;
    let waited = again.elapsed();

    assert!(delivered.is_ok(), "{delivered:?}");
    assert!(waited >= GAP - Duration::from_millis(20), "{waited:?}");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_bad_request_is_rejected_once_with_pushovers_words() {
    let server = server_answering(po_error(400, "message", "message cannot be blank")).await;

    let err = plugin(config(&server.uri()))
        .notify(&cx(), &dune_added())
        .await
        .unwrap_err();

    assert_eq!(requests(&server).await.len(), 1, "4xx is never retried");
    assert_eq!(
        err,
        PluginError::Rejected {
            status: Some(400),
            reason: "400 Bad Request (service said: message cannot be blank)".into()
        }
    );
}

#[tokio::test]
async fn refused_keys_and_auth_errors_are_misconfigured() {
    for (response, words) in [
        (
            po_error(
                400,
                "user",
                "user identifier is not a valid user, group, or subscribed user key",
            ),
            "refused the configured user_key",
        ),
        (
            po_error(400, "token", "application token is invalid"),
            "refused the configured api_token",
        ),
        (po_error(401, "token", "unauthorized"), "401 Unauthorized"),
        (po_error(403, "x", "forbidden"), "403 Forbidden"),
    ] {
        let server = server_answering(response).await;

        let err = plugin(config(&server.uri()))
            .notify(&cx(), &dune_added())
            .await
            .unwrap_err();

        assert_eq!(requests(&server).await.len(), 1);
        assert!(matches!(err, PluginError::Misconfigured { .. }), "{err:?}");
        assert!(err.to_string().contains(words), "{err}");
    }
}

#[tokio::test]
async fn a_used_up_quota_is_rate_limited_until_the_reset_and_logged() {
    let (logs, _capture) = capture_logs();
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 900;
    let server = server_answering(
        po_error(
            429,
            "x",
            "application has exceeded its monthly message limit",
        )
        .insert_header("x-limit-app-remaining", "0")
        .insert_header("x-limit-app-reset", reset.to_string().as_str()),
    )
    .await;

    let err = plugin(config(&server.uri()))
        .notify(&cx(), &dune_added())
        .await
        .unwrap_err();

    assert_eq!(requests(&server).await.len(), 1);
    let PluginError::RateLimited {
        retry_after: Some(wait),
    } = err
    else {
        panic!("{err:?}")
    };
    assert!(
        wait <= Duration::from_secs(900) && wait >= Duration::from_secs(890),
        "{wait:?}"
    );
    let logged = logs.contents();
    assert!(
        logged.contains("WARN") && logged.contains("monthly message quota is used up"),
        "{logged}"
    );

    let far = server_answering(ResponseTemplate::new(429)).await;
    let err = plugin(config(&far.uri()))
        .notify(&cx(), &dune_added())
        .await;
    assert_eq!(
        err,
        Err(PluginError::RateLimited {
            retry_after: Some(MAX_RETRY_AFTER)
        }),
        "no reset time: check back within the hour"
    );
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
async fn test_connection_validates_the_keys_without_sending() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(VALIDATE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": 1, "group": 0, "devices": ["iphone", "pixel"], "licenses": ["iOS", "Android"], "request": "r"
        })))
        .mount(&server)
        .await;

    let report = plugin(config(&server.uri()))
        .test_connection(&cx())
        .await
        .expect("valid");

    assert!(!report.sent_message);
    assert_eq!(
        report.detail,
        format!(
            "Pushover accepted the api_token and the user key (users/validate.json on {}); \
             devices: iphone, pixel; nothing was sent",
            server.uri()
        )
    );
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].url.path(), VALIDATE);
    let sent = form(&reqs[0]);
    assert_eq!(
        sent,
        [
            ("token".to_owned(), TOKEN.to_owned()),
            ("user".to_owned(), USER.to_owned())
        ]
    );

    let report = plugin(PushoverConfig {
        device: Some("pixel".into()),
        ..config(&server.uri())
    })
    .test_connection(&cx())
    .await
    .unwrap();
    assert!(
        report.detail.contains("device pixel is valid"),
        "{}",
        report.detail
    );
    assert_eq!(
        field(&form(&requests(&server).await[1]), "device"),
        Some("pixel")
    );
}

#[tokio::test]
async fn test_connection_reports_invalid_keys_as_misconfigured() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(VALIDATE))
        .respond_with(po_error(400, "device", "device name is not valid for user"))
        .mount(&server)
        .await;

    let err = plugin(PushoverConfig {
        device: Some("toaster".into()),
        ..config(&server.uri())
    })
    .test_connection(&cx())
    .await
    .unwrap_err();

    assert!(
        matches!(
            err,
            PluginError::Misconfigured {
                status: Some(400),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("device name is not valid for user"),
        "{err}"
    );
    let err = plugin(config(&closed_port_url()))
        .test_connection(&cx())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

/// Plants a unique user key and api token, provokes every error path (the server even
/// echoes them back in its error text, a redirect, a non-JSON body and a device name), and
/// checks neither shows up in any error's Display or Debug, delivery detail, report or log
/// line, while the server did receive them.
#[tokio::test]
async fn the_keys_never_leak_into_errors_reports_or_logs() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let user = format!("uCANARY{}", &id[..23]);
    let token = format!("aCANARY{}", &id[9..]);
    let (logs, _capture) = capture_logs();

    let echo = |status: u16| {
        ResponseTemplate::new(status).set_body_json(json!({
            "user": "invalid", "errors": [format!("user {user} or token {token} is invalid")], "status": 0
        }))
    };
    let responses = [
        echo(400),
        echo(400).set_body_json(json!({"errors": [format!("message bad {token}")], "status": 0})),
        echo(401),
        echo(403),
        echo(404),
        echo(500),
        echo(429),
        ResponseTemplate::new(301).insert_header(
            "location",
            format!("https://x.example/?token={token}&user={user}").as_str(),
        ),
        ResponseTemplate::new(418).set_body_string(format!("plain {user} {token}")),
        ResponseTemplate::new(200).set_body_string(format!("<html>{token}</html>")),
        ResponseTemplate::new(200).set_body_json(json!({"status": 0, "errors": [user.clone()]})),
    ];
    let mut errors = Vec::new();
    for response in responses {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(response)
            .mount(&server)
            .await;
        let pushover = plugin(config_with(&server.uri(), &user, &token));
        errors.push(pushover.notify(&cx(), &dune_added()).await.unwrap_err());
        errors.push(pushover.test_connection(&cx()).await.unwrap_err());
        let sent = form(&requests(&server).await[0]);
        assert_eq!(
            (field(&sent, "token"), field(&sent, "user")),
            (Some(token.as_str()), Some(user.as_str()))
        );
        assert!(!format!("{pushover:?}").contains("CANARY"));
    }
    let unreachable = plugin(config_with(&closed_port_url(), &user, &token));
    errors.push(unreachable.notify(&cx(), &dune_added()).await.unwrap_err());
    errors.push(unreachable.test_connection(&cx()).await.unwrap_err());

    // Successes carry server-supplied text (request ids, devices) into details and reports.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": 1, "request": token, "receipt": user})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(VALIDATE))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": 1, "devices": [user, token]})),
        )
        .mount(&server)
        .await;
    let pushover = plugin(config_with(&server.uri(), &user, &token));
    let delivered = pushover.notify(&cx(), &dune_added()).await.unwrap();
    let report = pushover.test_connection(&cx()).await.unwrap();

    let kinds: std::collections::BTreeSet<&str> = errors.iter().map(PluginError::kind).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["misconfigured", "rate_limited", "rejected", "transient"]
    );
    for shown in errors
        .iter()
        .map(|e| format!("{e} | {e:?}"))
        .chain([format!("{delivered:?}"), format!("{report:?}")])
    {
        assert!(!shown.contains("CANARY"), "a key leaked: {shown}");
    }
    assert!(
        errors.iter().any(|e| e
            .to_string()
            .contains("user [redacted] or token [redacted] is invalid")),
        "the echo was redacted, not dropped"
    );
    assert!(
        report.detail.contains("devices: [redacted], [redacted]"),
        "{}",
        report.detail
    );
    let logged = logs.contents();
    assert!(
        logged.contains("transient failure, retrying") && logged.contains("monthly message quota"),
        "the subscriber captured the retries and the quota warning:\n{logged}"
    );
    assert!(
        !logged.contains("CANARY"),
        "a key leaked into the logs:\n{logged}"
    );
}
