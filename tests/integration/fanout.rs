//! End to end through the running service: one event fans out to every configured plugin,
//! the enrichment shows up in the notifications, and a failing plugin hurts no other.

use mydia_plugins::event::EventName;
use mydia_plugins::Config;
use serde_json::{json, Value};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::data;

const COVER: &str = "https://s4.anilist.co/cover/199.jpg";

async fn mock(server: &MockServer, verb: &str, route: &str, answer: ResponseTemplate) {
    Mock::given(method(verb))
        .and(path_regex(route))
        .respond_with(answer)
        .mount(server)
        .await;
}

/// The bodies of the requests whose path starts with `prefix`.
fn bodies(requests: &[wiremock::Request], prefix: &str) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.url.path().starts_with(prefix))
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

#[actix_rt::test]
async fn one_event_reaches_every_plugin_with_its_enrichment_and_a_failure_stays_contained() {
    let server = MockServer::start().await;
    let anilist_page = json!({"data": {"Page": {"media": [{
        "id": 199, "idMal": 199, "title": {"romaji": "Sen to Chihiro no Kamikakushi", "english": "Spirited Away", "native": "千と千尋の神隠し"},
        "synonyms": [], "format": "MOVIE", "episodes": 1, "seasonYear": 2001, "startDate": {"year": 2001},
        "coverImage": {"large": COVER}, "bannerImage": null, "genres": ["Adventure", "Fantasy"],
        "averageScore": 86, "siteUrl": "https://anilist.co/anime/199", "description": "A girl <i>wanders</i> into the spirit world."
    }]}}});
    mock(
        &server,
        "POST",
        "^/anilist$",
        ResponseTemplate::new(200).set_body_json(anilist_page),
    )
    .await;
    mock(
        &server,
        "POST",
        "^/ntfy/$",
        ResponseTemplate::new(200).set_body_json(json!({"id": "n1"})),
    )
    .await;
    mock(
        &server,
        "POST",
        "^/tg/bot[^/]+/sendMessage$",
        ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {"message_id": 1}})),
    )
    .await;
    mock(
        &server,
        "POST",
        "^/po/1/messages.json$",
        ResponseTemplate::new(200).set_body_json(json!({"status": 1, "request": "r"})),
    )
    .await;
    mock(
        &server,
        "POST",
        "^/api/webhooks/1/tok$",
        ResponseTemplate::new(200).set_body_json(json!({"id": "m"})),
    )
    .await;
    mock(&server, "POST", "^/hook$", ResponseTemplate::new(204)).await;
    // Slack is having a bad day.
    mock(
        &server,
        "POST",
        "^/services/T/B/x$",
        ResponseTemplate::new(503).set_body_string("service unavailable"),
    )
    .await;

    let url = server.uri();
    let yaml = format!(
        r#"
hooks: {{enabled: false}}
plugins:
  anilist: {{enabled: true, api_url: "{url}/anilist", allow_insecure_http: true, allow_private_network: true, events: [after_media_added]}}
  ntfy: {{enabled: true, server_url: "{url}/ntfy", allow_insecure_http: true, allow_private_network: true, topic: media, events: [after_media_added]}}
  telegram: {{enabled: true, api_url: "{url}/tg", allow_insecure_http: true, allow_private_network: true, bot_token: "1:abc", chat_id: 7, events: [after_media_added]}}
  pushover: {{enabled: true, api_url: "{url}/po", allow_insecure_http: true, allow_private_network: true, user_key: u, api_token: a, events: [after_media_added]}}
  discord: {{enabled: true, webhook_url: "{url}/api/webhooks/1/tok", allow_insecure_http: true, allow_private_network: true, events: [after_media_added]}}
  slack: {{enabled: true, webhook_url: "{url}/services/T/B/x", allow_insecure_http: true, allow_private_network: true, retries: 0, events: [after_media_added]}}
  webhook: {{enabled: true, url: "{url}/hook", allow_insecure_http: true, allow_private_network: true, events: [after_media_added]}}
"#
    );
    let config = Config::parse(&yaml, None).unwrap_or_else(|e| panic!("{e}"));
    let handle = mydia_plugins::start(&config).expect("start");
    let done = handle
        .emit_sync(
            EventName::AfterMediaAdded,
            data!({"media_item": {"title": "Spirited Away", "year": 2001, "type": "movie", "tmdb_id": 129,
                "genres": ["Animation"], "original_language": "ja"}}),
        )
        .await
        .unwrap();

    // The caller sees the enrichment.
    assert_eq!(
        done.event.str_at("media_item.poster_url"),
        Some(COVER),
        "{:?}",
        done.event.data
    );
    assert_eq!(
        done.event.value_at("media_item.anilist.id"),
        Some(&json!(199))
    );

    // Every delivery plugin got it; only the failing one did not deliver, and it is held.
    let mut outcome: Vec<(String, &str)> = done
        .deliveries
        .unwrap()
        .into_iter()
        .map(|r| (r.plugin, r.status))
        .collect();
    outcome.sort();
    let expected = [
        ("discord", "delivered"),
        ("ntfy", "delivered"),
        ("pushover", "delivered"),
        ("slack", "queued"),
        ("telegram", "delivered"),
        ("webhook", "delivered"),
    ];
    assert_eq!(outcome, expected.map(|(p, s)| (p.to_owned(), s)));

    // The enrichment shows up in what the services received.
    let requests = server.received_requests().await.unwrap();
    let discord: Value = serde_json::from_str(&bodies(&requests, "/api/webhooks")[0]).unwrap();
    assert_eq!(discord["embeds"][0]["thumbnail"]["url"], COVER, "{discord}");
    let webhook: Value = serde_json::from_str(&bodies(&requests, "/hook")[0]).unwrap();
    assert_eq!(
        webhook["data"]["media_item"]["anilist"]["id"], 199,
        "{webhook}"
    );
    assert_eq!(bodies(&requests, "/anilist").len(), 1, "asked once");

    let status = handle.status().await;
    let slack = status.iter().find(|p| p.name == "slack").unwrap();
    assert_eq!((slack.queued, slack.delivered), (1, 0), "{slack:?}");
    assert!(
        status
            .iter()
            .filter(|p| p.name != "slack" && p.role != "enrichment")
            .all(|p| p.delivered == 1 && p.failed == 0),
        "{status:?}"
    );
    handle.shutdown().await;
}
