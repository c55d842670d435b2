//! The AniList enrichment plugin against a mock GraphQL server on 127.0.0.1: request shape,
//! ranking, GraphQL errors on HTTP 200, status → error mapping, retries, the cache, and
//! no request at all for what is not anime.

use std::time::Duration;

use mydia_plugins::event::{Event, EventName};
use mydia_plugins::http::{self, RetryPolicy};
use mydia_plugins::plugins::enrichment::anilist::{AniList, AniListConfig};
use mydia_plugins::plugins::{EnrichmentPlugin, Plugin, PluginContext, PluginError};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// Tiny backoffs: wiremock serves on real time, so paused time is not an option here.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
    }
}

fn plugin(server: &MockServer, config: AniListConfig) -> AniList {
    AniList::new(AniListConfig {
        api_url: server.uri(),
        ..config
    })
    .expect("valid config")
    .with_retry_policy(fast_retry())
}

fn cx() -> PluginContext {
    PluginContext {
        instance: "anilist".into(),
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

/// Dororo (2019), as Mydia would send it from TMDB's data.
fn dororo() -> Event {
    added(json!({
        "id": 7, "type": "tv_show", "title": "Dororo", "year": 2019, "tmdb_id": 83100,
        "overview": "TMDB's overview", "poster_url": null,
        "metadata": {"genres": ["Animation", "Action & Adventure"], "original_language": "ja"}
    }))
}

fn entry(id: u64, english: &str, format: &str, year: i32) -> Value {
    json!({
        "id": id, "idMal": id + 1000,
        "title": {"romaji": english, "english": english, "native": "どろろ"},
        "synonyms": [], "format": format, "episodes": 24, "seasonYear": year,
        "startDate": {"year": year},
        "coverImage": {"large": format!("https://s4.anilist.co/cover/{id}.jpg")},
        "bannerImage": format!("https://s4.anilist.co/banner/{id}.jpg"),
        "genres": ["Action", "Supernatural"], "averageScore": 80,
        "siteUrl": format!("https://anilist.co/anime/{id}"),
        "description": "Hyakkimaru&#039;s body was <i>stolen</i>.<br><br>By demons."
    })
}

/// What AniList answers for "Dororo": the 1969 series first, then a film, then the 2019 series.
fn dororo_page() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"data": {"Page": {"media": [
        entry(2634, "Dororo", "TV", 1969),
        entry(900, "Dororo", "MOVIE", 2019),
        entry(101347, "Dororo", "TV", 2019),
    ]}}}))
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

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

#[tokio::test]
async fn searches_by_title_and_patches_the_best_ranked_match() {
    let server = server_answering(dororo_page()).await;
    let anilist = plugin(&server, AniListConfig::default());

    let patch = anilist
        .enrich(&cx(), &dororo())
        .await
        .expect("enriched")
        .patch;

    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method.as_str(), "POST");
    assert_eq!(
        reqs[0].headers.get("content-type").unwrap(),
        "application/json"
    );
    let body: Value = reqs[0].body_json().unwrap();
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["query", "variables"]
    );
    assert_eq!(
        body["variables"],
        json!({"search": "Dororo", "perPage": 10})
    );
    let query = body["query"].as_str().unwrap();
    assert!(
        query.contains("Page(perPage: $perPage)")
            && query.contains("media(search: $search, type: ANIME)"),
        "{query}"
    );
    assert_eq!(
        Value::Object(patch),
        json!({"media_item": {
            // Gaps filled; TMDB's title and overview stay (prefer_over_tmdb is false).
            "poster_url": "https://s4.anilist.co/cover/101347.jpg",
            "banner_url": "https://s4.anilist.co/banner/101347.jpg",
            "genres": ["Action", "Supernatural"],
            "score": 80,
            "anilist": {
                "id": 101347, "id_mal": 102347, "url": "https://anilist.co/anime/101347",
                "score": 80, "format": "TV", "episodes": 24, "season_year": 2019,
                "title": {"romaji": "Dororo", "english": "Dororo", "native": "どろろ"},
                "cover_url": "https://s4.anilist.co/cover/101347.jpg",
                "banner_url": "https://s4.anilist.co/banner/101347.jpg",
                "confidence": 1.0,
            }
        }})
    );
}

#[tokio::test]
async fn prefer_over_tmdb_replaces_the_events_fields() {
    let server = server_answering(dororo_page()).await;
    let anilist = plugin(
        &server,
        AniListConfig {
            prefer_over_tmdb: true,
            ..AniListConfig::default()
        },
    );
    let patch = anilist.enrich(&cx(), &dororo()).await.unwrap().patch;
    let item = &patch["media_item"];
    assert_eq!(
        item["overview"],
        "Hyakkimaru's body was stolen.\n\nBy demons."
    );
    assert_eq!(item["title"], "Dororo");
    assert_eq!(item["anilist"]["id"], 101347);
}

#[tokio::test]
async fn nothing_close_enough_is_an_empty_patch() {
    let server = server_answering(ResponseTemplate::new(200).set_body_json(
        json!({"data": {"Page": {"media": [
            entry(1, "Dororo to Hyakkimaru Gaiden", "OVA", 1990),
            entry(2, "Dorohedoro", "TV", 2020),
        ]}}}),
    ))
    .await;
    let patch = plugin(&server, AniListConfig::default())
        .enrich(&cx(), &dororo())
        .await
        .unwrap()
        .patch;
    assert!(patch.is_empty(), "{patch:?}");
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_known_anilist_id_is_looked_up_directly() {
    let server = server_answering(ResponseTemplate::new(200).set_body_json(
        json!({"data": {"Page": {"media": [entry(101347, "Dororo", "TV", 2019)]}}}),
    ))
    .await;
    let event = added(json!({"title": "Whatever the title", "anilist_id": 101347}));
    let patch = plugin(&server, AniListConfig::default())
        .enrich(&cx(), &event)
        .await
        .unwrap()
        .patch;
    assert_eq!(patch["media_item"]["anilist"]["confidence"], 1.0);
    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert_eq!(body["variables"], json!({"id": 101347}));
    assert!(body["query"]
        .as_str()
        .unwrap()
        .contains("media(id: $id, type: ANIME)"));
}

#[tokio::test]
async fn what_is_not_anime_sends_no_request() {
    let server = server_answering(dororo_page()).await;
    let anilist = plugin(&server, AniListConfig::default());
    for item in [
        json!({"type": "movie", "title": "Dune", "year": 2021, "metadata": {"genres": ["Science Fiction"], "original_language": "en"}}),
        json!({"type": "movie", "title": "Toy Story", "genres": ["Animation"], "original_language": "en"}),
        json!({"title": "Dororo", "is_anime": false, "genres": ["Animation"], "original_language": "ja"}),
    ] {
        let patch = anilist.enrich(&cx(), &added(item)).await.unwrap().patch;
        assert!(patch.is_empty());
    }
    let no_media = Event::new(EventName::OnDownloadFailed, Default::default());
    assert!(anilist
        .enrich(&cx(), &no_media)
        .await
        .unwrap()
        .patch
        .is_empty());
    assert_eq!(requests(&server).await.len(), 0);
}

#[tokio::test]
async fn graphql_errors_on_http_200_are_failures() {
    let cases = [
        (
            json!({"data": null, "errors": [{"message": "Validation error: unknown field \"titel\"", "status": 400}]}),
            "rejected",
        ),
        (
            json!({"data": null, "errors": [{"message": "Internal Server Error", "status": 500}]}),
            "transient",
        ),
        (
            json!({"data": {"Page": {"media": []}}, "errors": [{"message": "Too Many Requests.", "status": 429}]}),
            "rate_limited",
        ),
    ];
    for (body, kind) in cases {
        let server = server_answering(ResponseTemplate::new(200).set_body_json(&body)).await;
        let err = plugin(&server, AniListConfig::default())
            .enrich(&cx(), &dororo())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{err:?}");
        let expected = if kind == "transient" { 3 } else { 1 };
        assert_eq!(requests(&server).await.len(), expected, "{kind}");
        if kind == "rejected" {
            assert!(err.to_string().contains("unknown field \"titel\""), "{err}");
        }
    }
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream down"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(dororo_page())
        .mount(&server)
        .await;
    let patch = plugin(&server, AniListConfig::default())
        .enrich(&cx(), &dororo())
        .await
        .expect("the retry succeeded")
        .patch;
    assert_eq!(patch["media_item"]["anilist"]["id"], 101347);
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn rate_limits_come_back_at_once_with_retry_after() {
    let server = server_answering(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "60")
            .insert_header("x-ratelimit-remaining", "0")
            .set_body_json(
                json!({"data": null, "errors": [{"message": "Too Many Requests.", "status": 429}]}),
            ),
    )
    .await;
    let err = plugin(&server, AniListConfig::default())
        .enrich(&cx(), &dororo())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PluginError::RateLimited {
            retry_after: Some(Duration::from_secs(60))
        }
    );
    assert_eq!(requests(&server).await.len(), 1, "a 429 is not retried");
}

#[tokio::test]
async fn client_errors_are_not_retried_and_quote_the_service() {
    let server = server_answering(ResponseTemplate::new(400).set_body_json(
        json!({"data": null, "errors": [{"message": "Invalid query", "status": 400}]}),
    ))
    .await;
    let err = plugin(&server, AniListConfig::default())
        .enrich(&cx(), &dororo())
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
    assert!(err.to_string().contains("Invalid query"), "{err}");
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn answers_are_cached_no_match_included() {
    let server = server_answering(dororo_page()).await;
    let anilist = plugin(&server, AniListConfig::default());
    let first = anilist.enrich(&cx(), &dororo()).await.unwrap();
    let second = anilist.enrich(&cx(), &dororo()).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(
        requests(&server).await.len(),
        1,
        "the same title is asked once"
    );

    let empty = server_answering(
        ResponseTemplate::new(200).set_body_json(json!({"data": {"Page": {"media": []}}})),
    )
    .await;
    let anilist = plugin(&empty, AniListConfig::default());
    for _ in 0..2 {
        assert!(anilist
            .enrich(&cx(), &dororo())
            .await
            .unwrap()
            .patch
            .is_empty());
    }
    assert_eq!(
        requests(&empty).await.len(),
        1,
        "\"no match\" is cached too"
    );
}

#[tokio::test]
async fn failures_are_not_cached_and_answers_expire() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(dororo_page())
        .mount(&server)
        .await;
    let anilist =
        plugin(&server, AniListConfig::default()).with_cache_ttl(Duration::from_millis(200));
    assert!(anilist.enrich(&cx(), &dororo()).await.is_err());
    assert!(
        anilist.enrich(&cx(), &dororo()).await.is_ok(),
        "the failure was not cached"
    );
    assert_eq!(requests(&server).await.len(), 4);
    assert!(anilist.enrich(&cx(), &dororo()).await.is_ok());
    assert_eq!(requests(&server).await.len(), 4, "cached");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(anilist.enrich(&cx(), &dororo()).await.is_ok());
    assert_eq!(requests(&server).await.len(), 5, "expired, asked again");

    let uncached = plugin(
        &server,
        AniListConfig {
            cache_ttl_secs: 0,
            ..AniListConfig::default()
        },
    );
    uncached.enrich(&cx(), &dororo()).await.unwrap();
    uncached.enrich(&cx(), &dororo()).await.unwrap();
    assert_eq!(
        requests(&server).await.len(),
        7,
        "cache_ttl_secs: 0 caches nothing"
    );
}

#[tokio::test]
async fn test_connection_runs_a_tiny_query_and_sends_nothing() {
    let server = server_answering(
        ResponseTemplate::new(200).set_body_json(json!({"data": {"Media": {"id": 1}}})),
    )
    .await;
    let report = plugin(&server, AniListConfig::default())
        .test_connection(&cx())
        .await
        .expect("reachable");
    assert!(!report.sent_message);
    assert!(
        report.detail.contains("answered a lookup"),
        "{}",
        report.detail
    );
    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert!(
        body["query"]
            .as_str()
            .unwrap()
            .contains("Media(id: 1) { id }"),
        "{body}"
    );

    let not_anilist = server_answering(
        ResponseTemplate::new(200).set_body_json(json!({"data": {"something": "else"}})),
    )
    .await;
    let err = plugin(&not_anilist, AniListConfig::default())
        .test_connection(&cx())
        .await
        .unwrap_err();
    assert!(matches!(err, PluginError::Misconfigured { .. }), "{err:?}");
}
