//! The Fanart.tv enrichment plugin against a mock fanart.tv on 127.0.0.1: request path and
//! `api-key` header, image choice, 404 as "no art", status → error mapping, retries, the
//! cache, and the API key in no error, patch, report or log line.

use std::time::Duration;

use mydia_plugins::event::{Event, EventName};
use mydia_plugins::http::{self, RetryPolicy};
use mydia_plugins::plugins::enrichment::fanart::{Fanart, FanartConfig};
use mydia_plugins::plugins::{EnrichmentPlugin, Plugin, PluginContext, PluginError};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::logs::{capture_logs, closed_port_url};

const KEY: &str = "fanart_test_key_0123";

/// Tiny backoffs: wiremock serves on real time, so paused time is not an option here.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
    }
}

fn config(server: &str) -> FanartConfig {
    FanartConfig {
        api_url: server.to_owned(),
        api_key: Some(SecretString::from(KEY)),
        ..FanartConfig::default()
    }
}

fn plugin(config: FanartConfig) -> Fanart {
    Fanart::new(config)
        .expect("valid config")
        .with_retry_policy(fast_retry())
}

fn cx() -> PluginContext {
    PluginContext {
        instance: "fanart".into(),
        http: http::new_client(http::AddressPolicy::AllowPrivate),
    }
}

fn added(media_item: Value) -> Event {
    Event::new(
        EventName::AfterMediaAdded,
        json!({ "media_item": media_item })
            .as_object()
            .cloned()
            .unwrap(),
    )
}

fn the_matrix() -> Event {
    added(
        json!({"type": "movie", "title": "The Matrix", "year": 1999, "tmdb_id": 603, "imdb_id": "tt0133093"}),
    )
}

fn image(id: &str, lang: &str, likes: &str) -> Value {
    json!({"id": id, "url": format!("https://assets.fanart.tv/fanart/{id}.jpg"), "lang": lang, "likes": likes})
}

/// fanart.tv's answer for The Matrix (shortened): likes are strings.
fn matrix_art() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "name": "The Matrix", "tmdb_id": "603", "imdb_id": "tt0133093",
        "movieposter": [image("poster-de", "de", "40"), image("poster-en-9", "en", "9"), image("poster-en-12", "en", "12")],
        "moviebackground": [image("bg-a", "", "3"), image("bg-b", "", "11")],
        "hdmovielogo": [image("logo-en", "en", "5")],
        "moviethumb": [image("thumb-en", "en", "2")],
        "moviedisc": [image("disc", "en", "99")],
    }))
}

fn no_art() -> ResponseTemplate {
    ResponseTemplate::new(404)
        .set_body_json(json!({"status": "error", "error message": "Not found"}))
}

async fn server_answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

fn art(id: &str) -> String {
    format!("https://assets.fanart.tv/fanart/{id}.jpg")
}

#[tokio::test]
async fn looks_up_a_movie_by_tmdb_id_with_the_key_in_a_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/movies/603"))
        .and(header("api-key", KEY))
        .respond_with(matrix_art())
        .expect(1)
        .mount(&server)
        .await;
    let fanart = plugin(FanartConfig {
        client_key: Some(SecretString::from("personal_key_1")),
        ..config(&server.uri())
    });

    let patch = fanart
        .enrich(&cx(), &the_matrix())
        .await
        .expect("enriched")
        .patch;

    let req = &requests(&server).await[0];
    assert_eq!(req.url.query(), None, "the key is never put in the URL");
    assert!(!req.url.as_str().contains(KEY));
    assert_eq!(req.headers.get("client-key").unwrap(), "personal_key_1");
    assert_eq!(
        Value::Object(patch),
        json!({"media_item": {
            "poster_url": art("poster-en-12"),
            "fanart": {
                "poster": art("poster-en-12"),
                "background": art("bg-b"),
                "logo": art("logo-en"),
                "thumb": art("thumb-en"),
            }
        }})
    );
}

#[tokio::test]
async fn the_preferred_language_comes_first() {
    let server = server_answering(matrix_art()).await;
    let fanart = plugin(FanartConfig {
        language: "de".into(),
        ..config(&server.uri())
    });
    let patch = fanart.enrich(&cx(), &the_matrix()).await.unwrap().patch;
    assert_eq!(patch["media_item"]["fanart"]["poster"], art("poster-de"));
    assert_eq!(
        patch["media_item"]["fanart"]["logo"],
        art("logo-en"),
        "then English"
    );
}

#[tokio::test]
async fn an_existing_poster_is_kept_unless_replace_poster() {
    let server = server_answering(matrix_art()).await;
    let with_poster = added(
        json!({"type": "movie", "tmdb_id": "603", "poster_url": "https://image.tmdb.org/t/p/w500/x.jpg"}),
    );
    let keep = plugin(config(&server.uri()));
    let patch = keep.enrich(&cx(), &with_poster).await.unwrap().patch;
    assert!(patch["media_item"].get("poster_url").is_none());
    assert_eq!(patch["media_item"]["fanart"]["poster"], art("poster-en-12"));

    let replace = plugin(FanartConfig {
        replace_poster: true,
        ..config(&server.uri())
    });
    let patch = replace.enrich(&cx(), &with_poster).await.unwrap().patch;
    assert_eq!(patch["media_item"]["poster_url"], art("poster-en-12"));
}

#[tokio::test]
async fn series_are_looked_up_by_tvdb_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/tv/81189"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name": "Breaking Bad", "thetvdb_id": "81189",
            "tvposter": [image("tv-poster", "en", "7")],
            "showbackground": [image("tv-bg", "", "1")],
            "hdtvlogo": [image("tv-logo", "en", "3")],
            "tvthumb": [image("tv-thumb", "en", "1")],
        })))
        .expect(1)
        .mount(&server)
        .await;
    let episode = added(
        json!({"type": "tv_show", "title": "Breaking Bad", "tmdb_id": 1396, "metadata": {"tvdb_id": "81189"}}),
    );
    let patch = plugin(config(&server.uri()))
        .enrich(&cx(), &episode)
        .await
        .unwrap()
        .patch;
    assert_eq!(
        patch["media_item"]["fanart"],
        json!({"poster": art("tv-poster"), "background": art("tv-bg"), "logo": art("tv-logo"), "thumb": art("tv-thumb")})
    );
}

#[tokio::test]
async fn no_usable_id_sends_no_request() {
    let server = server_answering(matrix_art()).await;
    let fanart = plugin(config(&server.uri()));
    for item in [
        json!({"type": "tv_show", "title": "Breaking Bad", "tmdb_id": 1396}),
        json!({"type": "movie", "title": "Dune"}),
        json!({"tmdb_id": 603}),
        json!({"type": "movie", "tmdb_id": "603/../../admin"}),
    ] {
        let patch = fanart.enrich(&cx(), &added(item)).await.unwrap().patch;
        assert!(patch.is_empty());
    }
    assert_eq!(requests(&server).await.len(), 0);
}

#[tokio::test]
async fn unknown_ids_mean_no_art_not_a_failure_and_are_cached() {
    let server = server_answering(no_art()).await;
    let fanart = plugin(config(&server.uri()));
    for _ in 0..2 {
        let patch = fanart
            .enrich(&cx(), &the_matrix())
            .await
            .expect("no art is fine")
            .patch;
        assert!(patch.is_empty());
    }
    assert_eq!(requests(&server).await.len(), 1, "\"no art\" is cached");
}

#[tokio::test]
async fn a_404_that_is_not_fanart_talking_is_misconfigured() {
    let server =
        server_answering(ResponseTemplate::new(404).set_body_string("<html>Not Found</html>"))
            .await;
    let err = plugin(config(&server.uri()))
        .enrich(&cx(), &the_matrix())
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

#[tokio::test]
async fn a_bad_key_is_misconfigured() {
    let server = server_answering(
        ResponseTemplate::new(401)
            .set_body_json(json!({"status": "error", "error message": "Invalid API key"})),
    )
    .await;
    let fanart = plugin(config(&server.uri()));
    let err = fanart.enrich(&cx(), &the_matrix()).await.unwrap_err();
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
    assert!(err.to_string().contains("api_key"), "{err}");
    let err = fanart.test_connection(&cx()).await.unwrap_err();
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
    assert_eq!(requests(&server).await.len(), 2, "never retried");
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(matrix_art())
        .mount(&server)
        .await;
    let patch = plugin(config(&server.uri()))
        .enrich(&cx(), &the_matrix())
        .await
        .expect("the third attempt worked")
        .patch;
    assert_eq!(patch["media_item"]["fanart"]["poster"], art("poster-en-12"));
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn rate_limits_come_back_at_once() {
    let server =
        server_answering(ResponseTemplate::new(429).insert_header("retry-after", "20")).await;
    let err = plugin(config(&server.uri()))
        .enrich(&cx(), &the_matrix())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PluginError::RateLimited {
            retry_after: Some(Duration::from_secs(20))
        }
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn answers_are_cached_until_they_expire() {
    let server = server_answering(matrix_art()).await;
    let fanart = plugin(config(&server.uri())).with_cache_ttl(Duration::from_millis(200));
    let first = fanart.enrich(&cx(), &the_matrix()).await.unwrap();
    let second = fanart.enrich(&cx(), &the_matrix()).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(
        requests(&server).await.len(),
        1,
        "two identical calls, one request"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    fanart.enrich(&cx(), &the_matrix()).await.unwrap();
    assert_eq!(
        requests(&server).await.len(),
        2,
        "asked again after the TTL"
    );
}

#[tokio::test]
async fn test_connection_looks_up_a_known_movie_and_sends_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/movies/603"))
        .and(header("api-key", KEY))
        .respond_with(matrix_art())
        .expect(1)
        .mount(&server)
        .await;
    let report = plugin(config(&server.uri()))
        .test_connection(&cx())
        .await
        .expect("the key works");
    assert!(!report.sent_message);
    assert!(
        report.detail.contains("accepted the api_key"),
        "{}",
        report.detail
    );
}

/// A unique key; servers that echo it in every way they can (error text, a redirect, an
/// image URL, the "no art" body); then checks the key shows up in no error's Display or
/// Debug, no patch, no report and no log line, while the server did receive it.
#[tokio::test]
async fn the_api_key_never_leaks() {
    let canary = format!("fanart_CANARY_{}", uuid::Uuid::new_v4().simple());
    let (logs, _capture) = capture_logs();
    let echo = |status: u16| {
        ResponseTemplate::new(status)
            .set_body_json(json!({"status": "error", "error message": format!("bad key {canary}")}))
    };
    let responses = [
        echo(400),
        echo(401),
        echo(403),
        echo(404),
        echo(200),
        echo(500),
        echo(429).insert_header("retry-after", "5"),
        ResponseTemplate::new(404).set_body_string(format!("no such path for {canary}")),
        ResponseTemplate::new(301).insert_header("location", format!("https://x.example/?api_key={canary}").as_str()),
        ResponseTemplate::new(418).set_body_string(format!("plain {canary} text")),
        ResponseTemplate::new(200).set_body_json(json!({
            "movieposter": [{"id": "1", "url": format!("https://assets.fanart.tv/p.jpg?api_key={canary}"), "lang": "en", "likes": "9"}],
            "moviebackground": [{"id": "2", "url": "https://assets.fanart.tv/bg.jpg", "lang": "", "likes": "1"}],
        })),
    ];
    let mut errors = Vec::new();
    let mut shown = Vec::new();
    for response in responses {
        let server = server_answering(response).await;
        let fanart = plugin(FanartConfig {
            api_key: Some(SecretString::from(canary.as_str())),
            client_key: Some(SecretString::from(format!("client_{canary}"))),
            ..config(&server.uri())
        });
        match fanart.enrich(&cx(), &the_matrix()).await {
            Ok(e) => shown.push(format!("{:?} {}", e, Value::Object(e.patch.clone()))),
            Err(e) => errors.push(e),
        }
        match fanart.test_connection(&cx()).await {
            Ok(report) => shown.push(format!("{report:?}")),
            Err(e) => errors.push(e),
        }
        let sent = &requests(&server).await[0];
        assert_eq!(
            sent.headers.get("api-key").unwrap().to_str().unwrap(),
            canary
        );
        shown.push(format!("{fanart:?}"));
    }
    let unreachable = plugin(FanartConfig {
        api_key: Some(SecretString::from(canary.as_str())),
        ..config(&closed_port_url())
    });
    errors.push(unreachable.enrich(&cx(), &the_matrix()).await.unwrap_err());
    errors.push(unreachable.test_connection(&cx()).await.unwrap_err());

    let kinds: std::collections::BTreeSet<&str> = errors.iter().map(PluginError::kind).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["misconfigured", "rate_limited", "rejected", "transient"]
    );
    for err in &errors {
        shown.push(format!("{err} | {err:?}"));
    }
    for text in &shown {
        assert!(!text.contains("CANARY"), "key leaked: {text}");
    }
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("bad key [redacted]")),
        "the echo was redacted, not dropped"
    );
    assert!(
        shown
            .iter()
            .any(|s| s.contains("https://assets.fanart.tv/bg.jpg")),
        "the clean image was kept, only the one carrying the key dropped"
    );
    let logged = logs.contents();
    assert!(
        logged.contains("transient failure, retrying") && logged.contains("looked up fanart"),
        "the subscriber captured the plugin's lines:\n{logged}"
    );
    assert!(
        !logged.contains("CANARY"),
        "key leaked into the logs:\n{logged}"
    );
}
