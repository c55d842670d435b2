//! The Slack plugin against a mock Slack on 127.0.0.1: the exact request (`text` plus
//! blocks), Slack's plain-text errors → what to fix, retries, rate limits, the poster
//! fallback, the labelled test message, and no webhook secret in any output or log.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use mydia_plugins::event::{Event, EventName};
use mydia_plugins::http::{self, RetryPolicy};
use mydia_plugins::plugins::webhook::slack::{Slack, SlackConfig};
use mydia_plugins::plugins::{Plugin, PluginContext, PluginError, WebhookPlugin};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::logs::{capture_logs, closed_port_url};

const SECRET: &str = "sEcReT0123456789abcdefgh";

/// Tiny backoffs: wiremock serves on real time, so paused time is not an option here.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
    }
}

fn webhook_path(secret: &str) -> String {
    format!("/services/T0001/B0001/{secret}")
}

fn plugin(base: &str, secret: &str) -> Slack {
    Slack::new(SlackConfig {
        webhook_url: Some(SecretString::from(format!(
            "{base}{}",
            webhook_path(secret)
        ))),
        ..SlackConfig::default()
    })
    .expect("valid config")
    .with_retry_policy(fast_retry())
}

fn cx() -> PluginContext {
    PluginContext {
        instance: "slack".into(),
        http: http::new_client(http::AddressPolicy::AllowPrivate),
    }
}

fn event(name: EventName, data: Value) -> Event {
    let mut ev = Event::new(name, data.as_object().cloned().unwrap());
    ev.timestamp = Utc.with_ymd_and_hms(2024, 3, 1, 12, 30, 0).unwrap();
    ev
}

fn download_failed() -> Event {
    event(
        EventName::OnDownloadFailed,
        json!({"media_item": {"title": "Tom & Jerry", "year": 2021, "type": "movie", "tmdb_id": 587807},
               "release_name": "Tom.and.Jerry.2021.1080p", "error_message": "<disk> full"}),
    )
}

/// Slack's success answer.
fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_string("ok")
}

/// Slack's error answer: a plain word.
fn slack_error(status: u16, word: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_string(word)
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

async fn server_answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(webhook_path(SECRET)))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn posts_text_and_blocks_to_the_webhook() {
    let server = server_answering(ok()).await;

    let delivered = plugin(&server.uri(), SECRET)
        .send_webhook(&cx(), &download_failed())
        .await
        .unwrap();

    assert_eq!(delivered.detail, "200 OK");
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.url.path(), webhook_path(SECRET));
    assert_eq!(req.headers.get("content-type").unwrap(), "application/json");
    assert_eq!(
        req.body_json::<Value>().unwrap(),
        json!({
            "text": "Download failed: Tom &amp; Jerry (2021) · Tom.and.Jerry.2021.1080p · Error: &lt;disk&gt; full",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "Download failed", "emoji": true}},
                {"type": "section", "text": {"type": "mrkdwn", "verbatim": true,
                    "text": "Tom &amp; Jerry (2021)\nTom.and.Jerry.2021.1080p\nError: &lt;disk&gt; full"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text":
                    "Mydia · <!date^1709296200^{date_short_pretty} at {time}|2024-03-01 12:30 UTC> · \
                     <https://www.themoviedb.org/movie/587807|View on TMDB>"}]},
            ],
        })
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(slack_error(500, "rollup_error"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok())
        .mount(&server)
        .await;

    let delivered = plugin(&server.uri(), SECRET)
        .send_webhook(&cx(), &download_failed())
        .await;

    assert!(delivered.is_ok(), "{delivered:?}");
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn an_invalid_payload_is_rejected_once_in_slacks_words() {
    let server = server_answering(slack_error(400, "invalid_payload")).await;

    let err = plugin(&server.uri(), SECRET)
        .send_webhook(&cx(), &download_failed())
        .await
        .unwrap_err();

    assert_eq!(requests(&server).await.len(), 1, "4xx is never retried");
    assert_eq!(
        err,
        PluginError::Rejected {
            status: Some(400),
            reason: "400 Bad Request: Slack refused the message (Slack said: invalid_payload)"
                .into()
        }
    );
}

#[tokio::test]
async fn a_dead_webhook_or_channel_is_misconfigured() {
    for (status, word, fix) in [
        (403, "action_prohibited", "restricted posting"),
        (404, "channel_not_found", "channel no longer exists"),
        (410, "channel_is_archived", "channel is archived"),
        (404, "no_service", "disabled, removed or invalid"),
        (400, "no_service", "disabled, removed or invalid"),
        (401, "", "Slack refused this webhook"),
    ] {
        let server = server_answering(slack_error(status, word)).await;

        let err = plugin(&server.uri(), SECRET)
            .send_webhook(&cx(), &download_failed())
            .await
            .unwrap_err();

        assert_eq!(requests(&server).await.len(), 1, "{word}");
        assert!(
            matches!(err, PluginError::Misconfigured { status: Some(s), .. } if s == status),
            "{status} {word}: {err:?}"
        );
        assert!(err.to_string().contains(fix), "{err}");
        assert!(err.to_string().contains(word), "{err}");
    }
}

#[tokio::test]
async fn rate_limits_return_at_once_with_the_wait() {
    let server =
        server_answering(slack_error(429, "rate_limited").insert_header("retry-after", "7")).await;
    let started = Instant::now();

    let err = plugin(&server.uri(), SECRET)
        .send_webhook(&cx(), &download_failed())
        .await
        .unwrap_err();

    assert_eq!(
        err,
        PluginError::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert_eq!(requests(&server).await.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn an_unreachable_server_is_transient() {
    let err = plugin(&closed_port_url(), SECRET)
        .send_webhook(&cx(), &download_failed())
        .await
        .unwrap_err();

    assert!(
        matches!(err, PluginError::Transient { status: None, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_poster_slack_cannot_fetch_is_dropped_not_the_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(slack_error(400, "invalid_blocks"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok())
        .mount(&server)
        .await;
    let added = event(
        EventName::AfterMediaAdded,
        json!({"media_item": {"title": "Dune", "poster_url": "http://mydia.lan/poster.jpg"}}),
    );

    plugin(&server.uri(), SECRET)
        .send_webhook(&cx(), &added)
        .await
        .expect("sent without the poster");

    let bodies: Vec<Value> = requests(&server)
        .await
        .iter()
        .map(|r| r.body_json().unwrap())
        .collect();
    assert_eq!(bodies.len(), 2);
    assert_eq!(
        bodies[0]["blocks"][1]["accessory"]["image_url"],
        "http://mydia.lan/poster.jpg"
    );
    assert!(bodies[1]["blocks"][1].get("accessory").is_none());
    assert_eq!(bodies[0]["text"], bodies[1]["text"]);

    // Without a poster there is nothing to drop: refused once.
    let server = server_answering(slack_error(400, "invalid_blocks")).await;
    let err = plugin(&server.uri(), SECRET)
        .send_webhook(&cx(), &download_failed())
        .await
        .unwrap_err();
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
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn test_connection_sends_a_labelled_test_message_and_says_so() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(webhook_path(SECRET)))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;

    let report = plugin(&server.uri(), SECRET)
        .test_connection(&cx())
        .await
        .unwrap();

    assert!(report.sent_message);
    assert!(
        report
            .detail
            .contains("Slack accepted a test message (200 OK)")
            && report.detail.contains("no check without posting"),
        "{}",
        report.detail
    );
    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert_eq!(body["text"], "Mydia test message");
    assert_eq!(body["blocks"][0]["text"]["text"], "Mydia test message");
    assert!(body["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("test message"));

    let gone = server_answering(slack_error(404, "no_service")).await;
    let err = plugin(&gone.uri(), SECRET)
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

/// Plants a unique secret in the webhook URL's path, provokes every path (a hostile
/// server echoes the secret and the whole path back), and checks it is in no error's
/// Display or Debug, no delivery detail, no connection report and no log line, while the
/// server did receive it.
#[tokio::test]
async fn the_webhook_secret_never_leaks() {
    let canary = format!("CANARY{}", uuid::Uuid::new_v4().simple());
    let (logs, _capture) = capture_logs();

    let echo = |status: u16| slack_error(status, &format!("invalid_token {canary}"));
    let responses = [
        echo(400),
        echo(403),
        echo(404),
        echo(410),
        echo(500),
        slack_error(400, &format!("invalid_blocks {}", webhook_path(&canary))),
        echo(429).insert_header("retry-after", "5"),
        ResponseTemplate::new(302).insert_header(
            "location",
            format!("https://hooks.slack.com{}", webhook_path(&canary)).as_str(),
        ),
        ResponseTemplate::new(200).set_body_string(format!("ok {canary}")),
    ];
    let added = event(
        EventName::AfterMediaAdded,
        json!({"media_item": {"title": "Dune", "poster_url": "https://image.tmdb.org/p.jpg"}}),
    );
    let mut shown = Vec::new();
    for response in responses {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(response)
            .mount(&server)
            .await;
        let slack = plugin(&server.uri(), &canary);
        match slack.send_webhook(&cx(), &added).await {
            Ok(d) => shown.push(format!("{} | {d:?}", d.detail)),
            Err(e) => shown.push(format!("{e} | {e:?}")),
        }
        match slack.test_connection(&cx()).await {
            Ok(r) => shown.push(format!("{} | {r:?}", r.detail)),
            Err(e) => shown.push(format!("{e} | {e:?}")),
        }
        shown.push(format!("{slack:?}"));
        let sent = &requests(&server).await[0];
        assert_eq!(sent.url.path(), webhook_path(&canary), "the server got it");
    }
    let unreachable = plugin(&closed_port_url(), &canary);
    for err in [
        unreachable.send_webhook(&cx(), &added).await.unwrap_err(),
        unreachable.test_connection(&cx()).await.unwrap_err(),
    ] {
        shown.push(format!("{err} | {err:?}"));
    }

    for text in &shown {
        assert!(!text.contains(&canary), "secret leaked: {text}");
    }
    assert!(
        shown.iter().any(|t| t.contains("invalid_token [redacted]")),
        "the echo was redacted, not dropped: {shown:#?}"
    );
    let logged = logs.contents();
    assert!(
        logged.contains("transient failure, retrying")
            && logged.contains("resending without it")
            && logged.contains("posted to Slack"),
        "the subscriber captured the plugin's logs:\n{logged}"
    );
    assert!(
        !logged.contains(&canary),
        "secret leaked into the logs:\n{logged}"
    );
}
