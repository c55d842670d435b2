//! The Discord plugin against a mock Discord on 127.0.0.1: the exact request (`wait=true`,
//! one embed, mentions off), status → error mapping in Discord's words, retries, rate
//! limits, the side-effect-free test, and no webhook token in any output or log.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use mydia_plugins::event::{Event, EventName};
use mydia_plugins::http::{self, RetryPolicy};
use mydia_plugins::plugins::webhook::discord::{Discord, DiscordConfig};
use mydia_plugins::plugins::{Plugin, PluginContext, PluginError, WebhookPlugin};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::logs::{capture_logs, closed_port_url};

const ID: &str = "1187654321098765432";
const TOKEN: &str = "tok3n_abcDEF-123";

/// Tiny backoffs: wiremock serves on real time, so paused time is not an option here.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
    }
}

fn webhook_path(token: &str) -> String {
    format!("/api/webhooks/{ID}/{token}")
}

fn config(base: &str, token: &str) -> DiscordConfig {
    DiscordConfig {
        webhook_url: Some(SecretString::from(format!("{base}{}", webhook_path(token)))),
        ..DiscordConfig::default()
    }
}

fn plugin(config: DiscordConfig) -> Discord {
    Discord::new(config)
        .expect("valid config")
        .with_retry_policy(fast_retry())
}

fn cx() -> PluginContext {
    PluginContext {
        instance: "discord".into(),
        http: http::new_client(http::AddressPolicy::AllowPrivate),
    }
}

fn dune_added() -> Event {
    let mut ev = Event::new(
        EventName::AfterMediaAdded,
        json!({"media_item": {"title": "Dune", "year": 2021, "type": "movie", "tmdb_id": 438631,
               "poster_url": "https://image.tmdb.org/t/p/w500/dune.jpg", "overview": "A mythic hero's journey."}})
        .as_object()
        .cloned()
        .unwrap(),
    );
    ev.timestamp = Utc.with_ymd_and_hms(2024, 3, 1, 12, 30, 0).unwrap();
    ev
}

/// What Discord answers to an execute with `wait=true`: the saved message.
fn saved_message() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "1212121212121212121", "type": 0, "channel_id": "555", "webhook_id": ID,
        "content": "", "embeds": [{"title": "Movie added"}],
    }))
}

/// Discord's error body.
fn discord_error(status: u16, code: u32, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"message": message, "code": code}))
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

async fn server_answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(webhook_path(TOKEN)))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn posts_one_embed_with_wait_true_and_no_mentions() {
    let server = server_answering(saved_message()).await;
    let discord = plugin(config(&server.uri(), TOKEN));

    let delivered = discord.send_webhook(&cx(), &dune_added()).await.unwrap();

    assert_eq!(delivered.detail, "200 OK, message id 1212121212121212121");
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.url.path(), webhook_path(TOKEN));
    assert_eq!(req.url.query(), Some("wait=true"));
    assert_eq!(req.headers.get("content-type").unwrap(), "application/json");
    assert_eq!(
        req.body_json::<Value>().unwrap(),
        json!({
            "username": "Mydia",
            "allowed_mentions": {"parse": []},
            "embeds": [{
                "title": "Movie added",
                "description": "Dune (2021)\n\nA mythic hero's journey.",
                "color": 0x5865F2,
                "url": "https://www.themoviedb.org/movie/438631",
                "fields": [
                    {"name": "Year", "value": "2021", "inline": true},
                    {"name": "Type", "value": "Movie", "inline": true},
                ],
                "thumbnail": {"url": "https://image.tmdb.org/t/p/w500/dune.jpg"},
                "timestamp": "2024-03-01T12:30:00.000Z",
            }],
        })
    );
}

#[tokio::test]
async fn keeps_the_thread_id_and_takes_204_as_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(webhook_path(TOKEN)))
        .and(query_param("thread_id", "42"))
        .and(query_param("wait", "true"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let url = format!("{}{}?thread_id=42", server.uri(), webhook_path(TOKEN));
    let discord = plugin(DiscordConfig {
        webhook_url: Some(SecretString::from(url)),
        mention_role_id: Some("777".into()),
        ..DiscordConfig::default()
    });

    let delivered = discord.send_webhook(&cx(), &dune_added()).await.unwrap();

    assert_eq!(delivered.detail, "204 No Content");
    let req = &requests(&server).await[0];
    assert_eq!(req.url.query(), Some("thread_id=42&wait=true"));
    let body: Value = req.body_json().unwrap();
    assert_eq!(body["content"], "<@&777>");
    assert_eq!(
        body["allowed_mentions"],
        json!({"parse": [], "roles": ["777"]})
    );
}

#[tokio::test]
async fn everyone_in_event_data_pings_no_one() {
    let server = server_answering(saved_message()).await;
    let ev = Event::new(
        EventName::OnPluginHealthChanged,
        json!({"plugin": "@everyone", "to": "open", "reason": "@here <@&1>"})
            .as_object()
            .cloned()
            .unwrap(),
    );

    plugin(config(&server.uri(), TOKEN))
        .send_webhook(&cx(), &ev)
        .await
        .unwrap();

    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    assert!(
        body.get("content").is_none(),
        "embeds cannot ping; content could"
    );
    assert_eq!(body["embeds"][0]["title"], "Plugin failing: @everyone");
}

#[tokio::test]
async fn a_huge_overview_is_cut_to_fit_not_rejected() {
    let server = server_answering(saved_message()).await;
    let ev = Event::new(
        EventName::AfterMediaAdded,
        json!({"media_item": {"title": "Dune", "type": "x".repeat(3000), "year": "9".repeat(3000),
               "overview": "o".repeat(10_000)}})
        .as_object()
        .cloned()
        .unwrap(),
    );

    plugin(config(&server.uri(), TOKEN))
        .send_webhook(&cx(), &ev)
        .await
        .unwrap();

    let body: Value = requests(&server).await[0].body_json().unwrap();
    let embed = &body["embeds"][0];
    let chars = |v: &Value| v.as_str().unwrap().chars().count();
    let fields = embed["fields"].as_array().unwrap();
    assert!(fields.iter().all(|f| chars(&f["value"]) <= 1024));
    assert!(chars(&embed["description"]) <= 4096);
    let total = chars(&embed["title"])
        + chars(&embed["description"])
        + fields
            .iter()
            .map(|f| chars(&f["name"]) + chars(&f["value"]))
            .sum::<usize>();
    assert!(total <= 6000, "{total}");
    assert!(embed["description"].as_str().unwrap().ends_with('…'));
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(discord_error(503, 0, "upstream connect error"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(saved_message())
        .mount(&server)
        .await;

    let delivered = plugin(config(&server.uri(), TOKEN))
        .send_webhook(&cx(), &dune_added())
        .await;

    assert!(delivered.is_ok(), "{delivered:?}");
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn a_bad_request_is_rejected_once_in_discords_words() {
    let body = json!({"code": 50035, "message": "Invalid Form Body", "errors": {"embeds": {"0": {
        "description": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 4096 or fewer in length."}]}}}}});
    let server = server_answering(ResponseTemplate::new(400).set_body_json(body)).await;

    let err = plugin(config(&server.uri(), TOKEN))
        .send_webhook(&cx(), &dune_added())
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
        err.to_string().contains(
            "Invalid Form Body (code 50035): embeds.0.description: Must be 4096 or fewer in length."
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_deleted_webhook_or_wrong_token_is_misconfigured() {
    for (status, code, message) in [
        (401, 50027, "Invalid Webhook Token"),
        (404, 10015, "Unknown Webhook"),
    ] {
        let server = server_answering(discord_error(status, code, message)).await;

        let err = plugin(config(&server.uri(), TOKEN))
            .send_webhook(&cx(), &dune_added())
            .await
            .unwrap_err();

        assert_eq!(requests(&server).await.len(), 1);
        assert!(
            matches!(err, PluginError::Misconfigured { status: Some(s), .. } if s == status),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("does not know this webhook"), "{text}");
        assert!(text.contains(&format!("{message} (code {code})")), "{text}");
    }
}

#[tokio::test]
async fn rate_limits_return_at_once_with_the_wait() {
    let cases = [
        (
            discord_error(429, 0, "You are being rate limited.").insert_header("retry-after", "3"),
            Duration::from_secs(3),
        ),
        (
            ResponseTemplate::new(429).set_body_json(
                json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false}),
            ),
            Duration::from_millis(1500),
        ),
    ];
    for (response, wait) in cases {
        let server = server_answering(response).await;
        let started = Instant::now();

        let err = plugin(config(&server.uri(), TOKEN))
            .send_webhook(&cx(), &dune_added())
            .await
            .unwrap_err();

        assert_eq!(
            err,
            PluginError::RateLimited {
                retry_after: Some(wait)
            }
        );
        assert_eq!(requests(&server).await.len(), 1);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "returned promptly, not slept on"
        );
    }
}

#[tokio::test]
async fn an_unreachable_server_is_transient() {
    let err = plugin(config(&closed_port_url(), TOKEN))
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
async fn test_connection_gets_the_webhook_without_posting() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(webhook_path(TOKEN)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": 1, "id": ID, "name": "Mydia alerts", "avatar": null, "channel_id": "5550001",
            "guild_id": "6660001", "application_id": null, "token": TOKEN,
        })))
        .expect(1)
        .mount(&server)
        .await;
    let url = format!("{}{}?thread_id=42", server.uri(), webhook_path(TOKEN));

    let report = plugin(DiscordConfig {
        webhook_url: Some(SecretString::from(url)),
        ..DiscordConfig::default()
    })
    .test_connection(&cx())
    .await
    .unwrap();

    assert!(!report.sent_message);
    assert_eq!(
        report.detail,
        format!(
            "Discord webhook \"Mydia alerts\" (id {ID}) posts to channel 5550001: the URL and \
             token are valid (GET on the webhook); nothing was sent"
        )
    );
    let reqs = requests(&server).await;
    assert!(reqs.iter().all(|r| r.method.as_str() == "GET"));
    assert_eq!(reqs[0].url.query(), None);
}

#[tokio::test]
async fn test_connection_reports_what_is_wrong() {
    let gone = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(discord_error(404, 10015, "Unknown Webhook"))
        .mount(&gone)
        .await;
    let err = plugin(config(&gone.uri(), TOKEN))
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

    let not_discord = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>hello</html>"))
        .mount(&not_discord)
        .await;
    let err = plugin(config(&not_discord.uri(), TOKEN))
        .test_connection(&cx())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not like a Discord webhook"),
        "{err}"
    );

    let err = plugin(config(&closed_port_url(), TOKEN))
        .test_connection(&cx())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

/// Plants a unique token in the webhook URL's path, provokes every path (a hostile server
/// echoes the token in its errors, a redirect and its answers), and checks the token is in
/// no error's Display or Debug, no delivery detail, no connection report and no log line,
/// while the server did receive it.
#[tokio::test]
async fn the_webhook_token_never_leaks() {
    let canary = format!("CANARY{}", uuid::Uuid::new_v4().simple());
    let (logs, _capture) = capture_logs();

    let echo = |status: u16| discord_error(status, 50000, &format!("bad token {canary}"));
    let failures = [
        echo(400),
        echo(401),
        echo(403),
        echo(404),
        echo(500),
        echo(429).insert_header("retry-after", "5"),
        ResponseTemplate::new(301).insert_header(
            "location",
            format!("https://discord.com{}", webhook_path(&canary)).as_str(),
        ),
        ResponseTemplate::new(418).set_body_string(format!("plain {canary} text")),
        ResponseTemplate::new(200).set_body_string(format!("not json {canary}")),
    ];
    let mut shown = Vec::new();
    for response in failures {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(response)
            .mount(&server)
            .await;
        let discord = plugin(config(&server.uri(), &canary));
        match discord.send_webhook(&cx(), &dune_added()).await {
            Ok(d) => shown.push(format!("{} | {d:?}", d.detail)),
            Err(e) => shown.push(format!("{e} | {e:?}")),
        }
        match discord.test_connection(&cx()).await {
            Ok(r) => shown.push(format!("{} | {r:?}", r.detail)),
            Err(e) => shown.push(format!("{e} | {e:?}")),
        }
        shown.push(format!("{discord:?}"));
        let sent = &requests(&server).await[0];
        assert_eq!(sent.url.path(), webhook_path(&canary), "the server got it");
    }
    // Success paths: Discord's answers carry the token (the GET returns it in `token`).
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": canary, "content": canary, "webhook_id": ID})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"type": 1, "id": ID, "name": canary, "channel_id": "5550001", "token": canary}),
        ))
        .mount(&server)
        .await;
    let discord = plugin(config(&server.uri(), &canary));
    let delivered = discord.send_webhook(&cx(), &dune_added()).await.unwrap();
    let report = discord.test_connection(&cx()).await.unwrap();
    shown.push(format!("{} | {delivered:?}", delivered.detail));
    shown.push(format!("{} | {report:?}", report.detail));
    let unreachable = plugin(config(&closed_port_url(), &canary));
    for err in [
        unreachable
            .send_webhook(&cx(), &dune_added())
            .await
            .unwrap_err(),
        unreachable.test_connection(&cx()).await.unwrap_err(),
    ] {
        shown.push(format!("{err} | {err:?}"));
    }

    for text in &shown {
        assert!(!text.contains(&canary), "token leaked: {text}");
    }
    assert!(
        shown.iter().any(|t| t.contains("bad token [redacted]")),
        "the echo was redacted, not dropped: {shown:#?}"
    );
    let logged = logs.contents();
    assert!(
        logged.contains("transient failure, retrying") && logged.contains("posted to Discord"),
        "the subscriber captured the plugin's logs:\n{logged}"
    );
    assert!(
        !logged.contains(&canary),
        "token leaked into the logs:\n{logged}"
    );
}

#[actix_rt::test]
async fn an_empty_rate_limit_bucket_is_waited_for_before_a_429_happens() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(webhook_path(TOKEN)))
        .respond_with(
            saved_message()
                .insert_header("x-ratelimit-limit", "5")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset-after", "0.4"),
        )
        .mount(&server)
        .await;
    let discord = plugin(config(&server.uri(), TOKEN));
    let cx = cx();
    discord.send_webhook(&cx, &dune_added()).await.unwrap();
    discord.send_webhook(&cx, &dune_added()).await.unwrap();
    let got = server.received_requests().await.unwrap();
    assert_eq!(got.len(), 2);
    // wiremock does not time requests; the plugin's own wait is what spaces them, so
    // measure it around a third call, made right after the second reply.
    let before = Instant::now();
    discord.send_webhook(&cx, &dune_added()).await.unwrap();
    assert!(
        before.elapsed() >= Duration::from_millis(350),
        "waited only {:?} for the bucket to refill",
        before.elapsed()
    );
    // A refill far away is handed back as a rate-limit pause, without a request.
    let far = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            saved_message()
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset-after", "60"),
        )
        .mount(&far)
        .await;
    let discord = plugin(config(&far.uri(), TOKEN));
    discord.send_webhook(&cx, &dune_added()).await.unwrap();
    let err = discord.send_webhook(&cx, &dune_added()).await.unwrap_err();
    assert!(
        matches!(err, PluginError::RateLimited { retry_after: Some(d) } if d > Duration::from_secs(50)),
        "{err:?}"
    );
    assert_eq!(far.received_requests().await.unwrap().len(), 1);
}
