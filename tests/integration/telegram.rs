//! The Telegram plugin against a mock Bot API server on 127.0.0.1: request shape, escaping,
//! limits, status → error mapping, retries, chat migration, the connection test, and no
//! token in any error, report or log line.

use std::time::Duration;

use mydia_plugins::event::{Event, EventName};
use mydia_plugins::http::{self, RetryPolicy};
use mydia_plugins::plugins::notification::telegram::message::{utf16_len, MAX_TEXT};
use mydia_plugins::plugins::notification::telegram::{ChatId, Telegram, TelegramConfig};
use mydia_plugins::plugins::{NotificationPlugin, Plugin, PluginContext, PluginError};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::logs::{capture_logs, closed_port_url};

const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const CHAT: i64 = -1001234567890;

/// Tiny backoffs: wiremock serves on real time, so paused time is not an option here.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
    }
}

fn config_with(server: &str, token: &str) -> TelegramConfig {
    TelegramConfig {
        bot_token: Some(SecretString::from(token)),
        chat_id: Some(ChatId::Id(CHAT)),
        api_url: server.to_owned(),
        ..TelegramConfig::default()
    }
}

fn config(server: &str) -> TelegramConfig {
    config_with(server, TOKEN)
}

fn plugin(config: TelegramConfig) -> Telegram {
    Telegram::new(config)
        .expect("valid config")
        .with_retry_policy(fast_retry())
}

fn cx() -> PluginContext {
    PluginContext {
        instance: "telegram".into(),
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

fn send_path(token: &str) -> String {
    format!("/bot{token}/sendMessage")
}

/// What the Bot API answers on a successful sendMessage.
fn sent(chat: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "ok": true,
        "result": {"message_id": 7, "date": 1_700_000_000, "chat": {"id": chat, "type": "supergroup", "title": "Media"}, "text": "x"}
    }))
}

/// The Bot API's error body.
fn tg_error(status: u16, description: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"ok": false, "error_code": status, "description": description}))
}

fn migrated_to(chat: i64) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({
        "ok": false, "error_code": 400,
        "description": "Bad Request: group chat was upgraded to a supergroup chat",
        "parameters": {"migrate_to_chat_id": chat}
    }))
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    requests(server)
        .await
        .iter()
        .map(|r| r.body_json().expect("a JSON body"))
        .collect()
}

async fn server_answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(send_path(TOKEN)))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn sends_html_json_to_the_bots_send_message() {
    let server = server_answering(sent(CHAT)).await;
    let telegram = plugin(TelegramConfig {
        message_thread_id: Some(12),
        silent: true,
        ..config(&server.uri())
    });

    let delivered = telegram.notify(&cx(), &dune_added()).await.expect("sent");

    assert_eq!(delivered.detail, format!("message 7 in chat {CHAT}"));
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].url.path(), format!("/bot{TOKEN}/sendMessage"));
    assert_eq!(
        reqs[0].headers.get("content-type").unwrap(),
        "application/json"
    );
    assert_eq!(
        reqs[0].body_json::<Value>().unwrap(),
        json!({
            "chat_id": CHAT,
            "message_thread_id": 12,
            "text": "🎬 <b>Movie added</b>\nDune (2021)\n<a href=\"https://www.themoviedb.org/movie/438631\">View on TMDB</a>",
            "parse_mode": "HTML",
            "disable_notification": true,
            "link_preview_options": {"url": "https://www.themoviedb.org/movie/438631", "prefer_small_media": true},
        })
    );
}

#[tokio::test]
async fn a_channel_username_is_sent_as_a_string() {
    let server = server_answering(sent(-100555)).await;
    let telegram = plugin(TelegramConfig {
        chat_id: Some(ChatId::from("@mydia_news")),
        ..config(&server.uri())
    });

    let delivered = telegram.notify(&cx(), &dune_added()).await.unwrap();

    assert_eq!(delivered.detail, "message 7 in chat @mydia_news");
    assert_eq!(bodies(&server).await[0]["chat_id"], json!("@mydia_news"));
}

#[tokio::test]
async fn user_text_is_escaped_and_long_text_cut_to_fit() {
    let server = server_answering(sent(CHAT)).await;
    let telegram = plugin(config(&server.uri()));
    let tom = event(
        EventName::AfterMediaAdded,
        json!({"media_item": {"title": "<b>Tom & Jerry</b>", "type": "movie"}}),
    );
    let long = event(
        EventName::OnImportFailed,
        json!({"media_item": {"title": "千と千尋"}, "error_message": "&<👍>".repeat(3000)}),
    );

    telegram.notify(&cx(), &tom).await.unwrap();
    telegram.notify(&cx(), &long).await.unwrap();

    let bodies = bodies(&server).await;
    assert_eq!(
        bodies[0]["text"],
        "🎬 <b>Movie added</b>\n&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;"
    );
    let text = bodies[1]["text"].as_str().unwrap();
    let shown = text
        .replace("<b>", "")
        .replace("</b>", "")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    assert!(utf16_len(&shown) <= MAX_TEXT, "{}", utf16_len(&shown));
    assert!(utf16_len(&shown) > MAX_TEXT - 8, "cut close to the limit");
    assert!(shown.ends_with('…'));
    for (i, _) in text.match_indices('&') {
        let rest = &text[i..];
        assert!(
            ["&amp;", "&lt;", "&gt;"]
                .iter()
                .any(|e| rest.starts_with(e)),
            "a cut entity or a bare & at {i}: {}",
            &rest[..rest.len().min(12)]
        );
    }
    assert_eq!(text.matches('<').count(), 2, "only <b> and </b>: {text}");
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(send_path(TOKEN)))
        .respond_with(tg_error(502, "Bad Gateway"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(send_path(TOKEN)))
        .respond_with(sent(CHAT))
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
    let server = server_answering(tg_error(500, "Internal Server Error")).await;

    let err = plugin(config(&server.uri()))
        .notify(&cx(), &dune_added())
        .await
        .unwrap_err();

    assert_eq!(requests(&server).await.len(), 3);
    assert!(
        matches!(
            err,
            PluginError::Transient {
                status: Some(500),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_bad_request_is_rejected_once_with_telegrams_words() {
    let server = server_answering(tg_error(
        400,
        "Bad Request: can't parse entities: Unsupported start tag \"x\"",
    ))
    .await;

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
            .contains("can't parse entities: Unsupported start tag \"x\" (code 400)"),
        "{err}"
    );
}

#[tokio::test]
async fn a_chat_the_bot_cannot_reach_is_misconfigured() {
    for (status, description, hint) in [
        (400, "Bad Request: chat not found", "check chat_id"),
        (401, "Unauthorized", "check bot_token"),
        (
            403,
            "Forbidden: bot was blocked by the user",
            "blocked by the user",
        ),
        (
            403,
            "Forbidden: bot is not a member of the channel chat",
            "not a member",
        ),
    ] {
        let server = server_answering(tg_error(status, description)).await;

        let err = plugin(config(&server.uri()))
            .notify(&cx(), &dune_added())
            .await
            .unwrap_err();

        assert_eq!(requests(&server).await.len(), 1, "{description}");
        assert!(
            matches!(err, PluginError::Misconfigured { status: Some(s), .. } if s == status),
            "{err:?}"
        );
        let shown = err.to_string();
        assert!(shown.contains(description), "{shown}");
        assert!(shown.contains(hint), "{shown}");
    }
}

#[tokio::test]
async fn rate_limits_return_at_once_with_telegrams_retry_after() {
    let server = server_answering(ResponseTemplate::new(429).set_body_json(json!({
        "ok": false, "error_code": 429, "description": "Too Many Requests: retry after 17",
        "parameters": {"retry_after": 17}
    })))
    .await;

    let err = plugin(config(&server.uri()))
        .notify(&cx(), &dune_added())
        .await
        .unwrap_err();

    assert_eq!(
        err,
        PluginError::RateLimited {
            retry_after: Some(Duration::from_secs(17))
        }
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_migrated_group_is_followed_and_the_new_id_kept() {
    const SUPERGROUP: i64 = -1009876543210;
    let (logs, _capture) = capture_logs();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(send_path(TOKEN)))
        .and(ChatIs(CHAT))
        .respond_with(migrated_to(SUPERGROUP))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(send_path(TOKEN)))
        .and(ChatIs(SUPERGROUP))
        .respond_with(sent(SUPERGROUP))
        .mount(&server)
        .await;
    let telegram = plugin(config(&server.uri()));

    let first = telegram
        .notify(&cx(), &dune_added())
        .await
        .expect("re-sent to the supergroup");
    let second = telegram
        .notify(&cx(), &dune_added())
        .await
        .expect("sent straight to the supergroup");

    let chats: Vec<Value> = bodies(&server)
        .await
        .iter()
        .map(|b| b["chat_id"].clone())
        .collect();
    assert_eq!(chats, [json!(CHAT), json!(SUPERGROUP), json!(SUPERGROUP)]);
    assert_eq!(telegram.chat_id(), ChatId::Id(SUPERGROUP));
    assert_eq!(
        first.detail,
        format!(
            "message 7 in chat {SUPERGROUP}; chat {CHAT} became supergroup {SUPERGROUP}: \
             set `chat_id: {SUPERGROUP}` in the config"
        )
    );
    assert_eq!(second.detail, format!("message 7 in chat {SUPERGROUP}"));
    let logged = logs.contents();
    let warning: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("supergroup"))
        .collect();
    assert_eq!(warning.len(), 1, "warned once:\n{logged}");
    assert!(
        warning[0].contains(&format!("old_chat_id={CHAT}"))
            && warning[0].contains(&format!("new_chat_id={SUPERGROUP}")),
        "{}",
        warning[0]
    );
}

#[tokio::test]
async fn a_migration_loop_is_not_followed_twice() {
    let server = server_answering(migrated_to(-100222)).await;

    let err = plugin(config(&server.uri()))
        .notify(&cx(), &dune_added())
        .await
        .unwrap_err();

    assert_eq!(requests(&server).await.len(), 2);
    assert!(matches!(err, PluginError::Rejected { .. }), "{err:?}");
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

async fn bot_api(server: &MockServer, token: &str, chat: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(format!("/bot{token}/getMe")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "result": {"id": 123456789, "is_bot": true, "first_name": "Mydia", "username": "mydia_bot"}
        })))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{token}/getChat")))
        .respond_with(chat)
        .mount(server)
        .await;
}

fn chat_info(id: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "ok": true, "result": {"id": id, "type": "supergroup", "title": "Home <Media>"}
    }))
}

#[tokio::test]
async fn test_connection_checks_the_bot_and_the_chat_without_sending() {
    let server = MockServer::start().await;
    bot_api(&server, TOKEN, chat_info(CHAT)).await;

    let report = plugin(config(&server.uri()))
        .test_connection(&cx())
        .await
        .expect("valid");

    assert!(!report.sent_message);
    assert_eq!(
        report.detail,
        format!(
            "Telegram bot @mydia_bot is valid (getMe on {}) and can see supergroup \
             \"Home <Media>\", chat {CHAT} (getChat); nothing was sent, so permission to post there \
             is not proven",
            server.uri()
        )
    );
    let reqs = requests(&server).await;
    let paths: Vec<&str> = reqs.iter().map(|r| r.url.path()).collect();
    assert_eq!(
        paths,
        [format!("/bot{TOKEN}/getMe"), format!("/bot{TOKEN}/getChat")]
    );
    assert_eq!(
        reqs[1].body_json::<Value>().unwrap(),
        json!({"chat_id": CHAT})
    );
}

#[tokio::test]
async fn test_connection_reports_a_bad_token_a_missing_chat_and_a_migration() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/bot{TOKEN}/getMe")))
        .respond_with(tg_error(401, "Unauthorized"))
        .mount(&server)
        .await;
    let err = plugin(config(&server.uri()))
        .test_connection(&cx())
        .await
        .unwrap_err();
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

    let server = MockServer::start().await;
    bot_api(&server, TOKEN, tg_error(400, "Bad Request: chat not found")).await;
    let err = plugin(config(&server.uri()))
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
    assert!(err.to_string().contains("chat not found"), "{err}");

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/getChat")))
        .and(ChatIs(-100333))
        .respond_with(chat_info(-100333))
        .mount(&server)
        .await;
    bot_api(&server, TOKEN, migrated_to(-100333)).await;
    let telegram = plugin(config(&server.uri()));
    let report = telegram.test_connection(&cx()).await.unwrap();
    assert!(
        report.detail.ends_with(&format!(
            "; chat {CHAT} became supergroup -100333: set `chat_id: -100333` in the config"
        )),
        "{}",
        report.detail
    );
    assert_eq!(telegram.chat_id(), ChatId::Id(-100333));

    let err = plugin(config(&closed_port_url()))
        .test_connection(&cx())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

/// Plants a unique token, provokes every error path (the server even echoes the token
/// back in its error text, a redirect, a non-JSON body and a chat title), and checks the
/// token shows up in no error's Display or Debug, no delivery detail, no report and no log
/// line, while the server did receive it.
#[tokio::test]
async fn the_token_never_leaks_into_errors_reports_or_logs() {
    let canary = format!("987654321:CANARY{}", uuid::Uuid::new_v4().simple());
    let (logs, _capture) = capture_logs();

    let echo = |status: u16| tg_error(status, &format!("bad token {canary}"));
    let responses = [
        echo(400),
        echo(400).set_body_json(json!({"ok": false, "error_code": 400, "description": format!("chat not found {canary}")})),
        echo(401),
        echo(403),
        echo(404),
        echo(409),
        echo(500),
        echo(429).set_body_json(json!({"ok": false, "error_code": 429, "description": canary, "parameters": {"retry_after": 3}})),
        ResponseTemplate::new(302).insert_header(
            "location",
            format!("https://x.example/bot{canary}/sendMessage").as_str(),
        ),
        ResponseTemplate::new(418).set_body_string(format!("plain {canary} text")),
        ResponseTemplate::new(200).set_body_string(format!("<html>{canary}</html>")),
        ResponseTemplate::new(200).set_body_json(json!({"ok": false, "description": canary})),
    ];
    let mut errors = Vec::new();
    for response in responses {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(response)
            .mount(&server)
            .await;
        let telegram = plugin(config_with(&server.uri(), &canary));
        errors.push(telegram.notify(&cx(), &dune_added()).await.unwrap_err());
        errors.push(telegram.test_connection(&cx()).await.unwrap_err());
        let first = &requests(&server).await[0];
        assert_eq!(first.url.path(), format!("/bot{canary}/sendMessage"));
        assert!(!format!("{telegram:?}").contains(&canary));
    }
    let unreachable = plugin(config_with(&closed_port_url(), &canary));
    errors.push(unreachable.notify(&cx(), &dune_added()).await.unwrap_err());
    errors.push(unreachable.test_connection(&cx()).await.unwrap_err());

    // Successes carry server-supplied names into reports and details; a migration logs.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(send_path(&canary)))
        .and(ChatIs(CHAT))
        .respond_with(migrated_to(-100444))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(send_path(&canary)))
        .respond_with(sent(-100444))
        .mount(&server)
        .await;
    let hostile_chat = ResponseTemplate::new(200).set_body_json(json!({
        "ok": true, "result": {"id": CHAT, "type": "group", "title": format!("chat {canary}")}
    }));
    bot_api(&server, &canary, hostile_chat).await;
    let telegram = plugin(config_with(&server.uri(), &canary));
    let report = telegram.test_connection(&cx()).await.unwrap();
    let delivered = telegram.notify(&cx(), &dune_added()).await.unwrap();

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
    for shown in [format!("{report:?}"), format!("{delivered:?}")] {
        assert!(!shown.contains(&canary), "token leaked: {shown}");
    }
    assert!(
        report.detail.contains("\"chat [redacted]\""),
        "{}",
        report.detail
    );
    let logged = logs.contents();
    assert!(
        logged.contains("transient failure, retrying") && logged.contains("supergroup"),
        "the subscriber captured the retries and the migration:\n{logged}"
    );
    assert!(
        !logged.contains(&canary) && !logged.contains("CANARY"),
        "token leaked into the logs:\n{logged}"
    );
}

/// Matches a JSON body whose `chat_id` is `self.0`.
struct ChatIs(i64);

impl wiremock::Match for ChatIs {
    fn matches(&self, request: &Request) -> bool {
        request
            .body_json::<Value>()
            .is_ok_and(|b| b["chat_id"] == json!(self.0))
    }
}
