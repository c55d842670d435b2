//! The delivery store through the library: held deliveries go out in order once an
//! instance is healthy, dead letters are listed and replayed, a repeated id is delivered
//! once, order holds across a 429 pause, a restart resumes what was pending, and one
//! round of failures grows a pause only once.

use std::time::Duration;

use mydia_plugins::config::{Config, StorageBackend, StorageConfig};
use mydia_plugins::event::{Event, EventName};
use mydia_plugins::plugins::PluginError;
use mydia_plugins::store::{Query, State, Summary};
use mydia_plugins::supervisor::InstanceSpec;
use mydia_plugins::{start_with, Handle};

use crate::data;
use crate::support::scripted::{Mode, Script};
use crate::support::{emit_n, fast_config, state, wait_until};

const LONG: Duration = Duration::from_secs(20);

/// Up to 500 deliveries, newest first: of `instance` (or every one), in `state` (or any).
async fn listed(h: &Handle, instance: Option<&str>, state: Option<State>) -> Vec<Summary> {
    h.deliveries(Query {
        instance: instance.map(str::to_owned),
        state,
        limit: 500,
        ..Query::default()
    })
    .await
    .expect("the store answers")
    .items
}

/// The event ids of `instance`'s deliveries in the order the store accepted them.
async fn accepted_order(h: &Handle, instance: &str) -> Vec<String> {
    let mut rows = listed(h, Some(instance), None).await;
    rows.sort_by_key(|r| r.seq);
    rows.into_iter().map(|r| r.event_id).collect()
}

/// One at a time, as notification plugins send by default.
/// Fast supervision and a SQLite store in `dir`.
fn sqlite_config(dir: &tempfile::TempDir) -> Config {
    let mut config: Config = fast_config();
    config.storage = StorageConfig {
        backend: StorageBackend::Sqlite,
        path: dir.path().join("store.sqlite3"),
        ..StorageConfig::default()
    };
    config
}

/// A plugin whose service answers 503 until its mode is changed.
fn unavailable() -> std::sync::Arc<Script> {
    Script::new(Mode::Fail(PluginError::Transient {
        status: Some(503),
        reason: "503".into(),
    }))
}

fn one_at_a_time(spec: InstanceSpec) -> InstanceSpec {
    InstanceSpec {
        max_in_flight: Some(1),
        ..spec
    }
}

#[actix_rt::test]
async fn an_open_instance_holds_its_deliveries_and_sends_them_in_order_when_it_recovers() {
    let flaky = Script::new(Mode::Fail(PluginError::Transient {
        status: Some(503),
        reason: "503 Service Unavailable".into(),
    }));
    let h = start_with(&fast_config(), vec![one_at_a_time(flaky.spec("flaky"))]).expect("start");
    let ids = emit_n(&h, 10).await;
    assert!(
        wait_until(LONG, || async {
            let s = state(&h, "flaky").await;
            s.state == "open" && s.held > 0
        })
        .await,
        "{:?}",
        state(&h, "flaky").await
    );
    let held = listed(&h, Some("flaky"), Some(State::Held)).await;
    assert!(!held.is_empty());
    assert!(
        held[0].reason.as_deref().unwrap_or("").starts_with("open"),
        "{:?}",
        held[0]
    );
    flaky.set(Mode::Ok);
    assert!(wait_until(LONG, || async { flaky.delivered_count() == 10 }).await);
    assert_eq!(
        flaky.delivered_ids(),
        ids,
        "each once, in the order accepted"
    );
    let s = state(&h, "flaky").await;
    assert_eq!((s.state, s.held, s.dead), ("closed", 0, 0), "{s:?}");
    h.shutdown().await;
}

#[actix_rt::test]
async fn dead_letters_are_listed_and_replayed_in_their_original_order() {
    let picky = Script::new(Mode::Fail(PluginError::Rejected {
        status: Some(400),
        reason: "400 Bad Request: message too long".into(),
    }));
    let h = start_with(&fast_config(), vec![one_at_a_time(picky.spec("picky"))]).expect("start");
    let ids = emit_n(&h, 3).await;
    assert!(wait_until(LONG, || async { state(&h, "picky").await.dead == 3 }).await);
    let dead = listed(&h, None, Some(State::Dead)).await;
    let newest_first: Vec<&str> = dead.iter().rev().map(|d| d.event_id.as_str()).collect();
    assert_eq!(newest_first, ids, "newest first");
    assert!(dead[0]
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("400 Bad Request")));
    let one = h.store().public_id(dead[0].seq);
    let detail = h.delivery(&one).await.unwrap().expect("found");
    assert_eq!(detail.attempts.len(), 1);
    assert_eq!(detail.attempts[0].status, Some(400));

    picky.set(Mode::Ok);
    assert_eq!(h.replay("picky", None).await.unwrap(), 3);
    assert!(wait_until(LONG, || async { picky.delivered_count() == 3 }).await);
    assert_eq!(picky.delivered_ids(), ids);
    assert!(wait_until(LONG, || async { state(&h, "picky").await.dead == 0 }).await);
    // Delivered now: neither dead nor held, so there is nothing to retry.
    let err = h.retry(&one).await.unwrap_err();
    assert!(err.to_string().contains("is delivered"), "{err}");
    assert!(h.replay("nobody", None).await.is_err());
    h.shutdown().await;
}

#[actix_rt::test]
async fn the_same_event_id_twice_is_delivered_once() {
    let sink = Script::new(Mode::Ok);
    let h = start_with(&fast_config(), vec![one_at_a_time(sink.spec("sink"))]).expect("start");
    let first = Event::new(
        EventName::AfterMediaAdded,
        data!({"media_item": {"title": "Dune"}}),
    )
    .with_id("mydia-42");
    let a = h.emit_event(first, false).await.unwrap();
    assert!(!a.duplicate);
    let again = Event::new(
        EventName::AfterMediaAdded,
        data!({"media_item": {"title": "Other"}}),
    )
    .with_id("mydia-42");
    let b = h.emit_event(again, true).await.unwrap();
    assert!(b.duplicate);
    assert_eq!(
        b.event.str_at("media_item.title"),
        Some("Dune"),
        "the stored event"
    );
    assert_eq!(b.deliveries.as_deref(), Some(&[][..]));
    // Deliveries go in order: once a later event is through, a second copy would be too.
    let later = emit_n(&h, 1).await;
    assert!(wait_until(LONG, || async { sink.delivered_count() == 2 }).await);
    assert_eq!(
        sink.delivered_ids(),
        ["mydia-42".to_owned(), later[0].clone()]
    );
    h.shutdown().await;
}

#[actix_rt::test]
async fn order_holds_across_a_429_pause_and_a_429_is_not_a_failure() {
    let paced = Script::new(Mode::Fail(PluginError::RateLimited {
        retry_after: Some(Duration::from_millis(200)),
    }));
    let h = start_with(&fast_config(), vec![one_at_a_time(paced.spec("paced"))]).expect("start");
    let ids = emit_n(&h, 20).await;
    assert!(
        wait_until(LONG, || async {
            state(&h, "paced").await.paused == Some("rate_limited")
        })
        .await
    );
    paced.set(Mode::Ok);
    assert!(wait_until(LONG, || async { paced.delivered_count() == 20 }).await);
    assert_eq!(paced.delivered_ids(), ids);
    let s = state(&h, "paced").await;
    assert_eq!((s.state, s.failed), ("closed", 0), "{s:?}");
    h.shutdown().await;
}

#[actix_rt::test]
async fn one_round_of_failures_grows_the_pause_once() {
    let down = Script::new(Mode::Slow(Duration::from_millis(50)));
    let mut config = fast_config();
    // Let the pause, not the breaker, answer the failures.
    config.supervision.breaker_window = 100;
    config.supervision.breaker_min_calls = 100;
    let h = start_with(&config, vec![down.spec("down")]).expect("start");
    down.set(Mode::Fail(PluginError::Transient {
        status: Some(502),
        reason: "502 Bad Gateway".into(),
    }));
    // Eight at once: one round, all failing together.
    emit_n(&h, 8).await;
    assert!(
        wait_until(LONG, || async {
            let s = state(&h, "down").await;
            s.failed >= 8 && s.in_flight == 0
        })
        .await
    );
    let s = state(&h, "down").await;
    assert_eq!(s.paused, Some("retry_backoff"), "{s:?}");
    let wait = s.retry_at.expect("a pause") - chrono::Utc::now();
    // The first pause is 1 s; once per delivery it would have reached 128 s.
    assert!(wait <= chrono::Duration::seconds(3), "paused for {wait:?}");
    h.shutdown().await;
}

#[actix_rt::test]
async fn a_restart_resumes_pending_deliveries_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(&dir);
    let down = unavailable();
    let h = start_with(&config, vec![one_at_a_time(down.spec("ntfy"))]).expect("start");
    let ids = emit_n(&h, 5).await;
    assert!(wait_until(LONG, || async { !down.received.lock().unwrap().is_empty() }).await);
    let report = h.shutdown().await;
    assert_eq!(report.kept, 5, "{report:?}");
    assert_eq!(down.delivered_count(), 0);

    let up = Script::new(Mode::Ok);
    let h = start_with(&config, vec![one_at_a_time(up.spec("ntfy"))]).expect("restart");
    assert!(wait_until(LONG, || async { up.delivered_count() == 5 }).await);
    assert_eq!(up.delivered_ids(), ids);
    assert!(wait_until(LONG, || async { h.store().pending() == 0 }).await);
    h.shutdown().await;

    // An instance taken out of the config dead-letters what it left.
    let down = unavailable();
    let h = start_with(&config, vec![one_at_a_time(down.spec("ntfy"))]).expect("start");
    emit_n(&h, 2).await;
    h.shutdown().await;
    let other = Script::new(Mode::Ok);
    let h = start_with(&config, vec![other.spec("slack")]).expect("restart");
    let ok = wait_until(LONG, || async {
        listed(&h, None, Some(State::Dead)).await.len() == 2
    })
    .await;
    let dead = listed(&h, None, Some(State::Dead)).await;
    assert!(ok, "{dead:?}");
    assert!(dead[0]
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("instance removed")));
    h.shutdown().await;
}

#[actix_rt::test]
async fn the_webhook_id_is_the_delivery_id_on_every_attempt() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let yaml = format!(
        "hooks: {{enabled: false}}\nsupervision: {{delivery_timeout_ms: 2000}}\nplugins:\n  hook:\n    type: webhook\n    \
         enabled: true\n    url: {}/in\n    allow_insecure_http: true\n    allow_private_network: true\n    retries: 0\n",
        receiver.uri()
    );
    let h = mydia_plugins::start(&Config::parse(&yaml, None).unwrap()).expect("start");
    let ids = emit_n(&h, 1).await;
    assert!(
        wait_until(LONG, || async {
            receiver.received_requests().await.unwrap_or_default().len() == 2
        })
        .await
    );
    let sent: Vec<String> = receiver
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    let page = h
        .deliveries(Query {
            event_id: Some(ids[0].clone()),
            limit: 5,
            ..Query::default()
        })
        .await
        .unwrap();
    let id = h.store().public_id(page.items[0].seq);
    assert_eq!(sent, [id.clone(), id], "the same id on the retry");
    h.shutdown().await;
}

#[actix_rt::test]
async fn the_deliveries_api_pages_filters_retries_and_replays() {
    use serde_json::Value;
    let picky = Script::new(Mode::Fail(PluginError::Rejected {
        status: Some(422),
        reason: "422 Unprocessable Entity".into(),
    }));
    let h = start_with(&fast_config(), vec![one_at_a_time(picky.spec("picky"))]).expect("start");
    let base = crate::support::serve_api(&h);
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r = http.get(format!("{base}{path}")).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let post = |path: String, body: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r = http
                .post(format!("{base}{path}"))
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let ids = emit_n(&h, 3).await;
    assert!(wait_until(LONG, || async { state(&h, "picky").await.dead == 3 }).await);

    let (status, page) = get("/api/v1/deliveries?plugin=picky&state=dead&limit=2".into()).await;
    assert_eq!(status, 200, "{page}");
    let items = page["deliveries"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["event_id"], ids[2].as_str(), "newest first");
    assert_eq!(items[0]["state"], "dead");
    assert_eq!(items[0]["last_status"], 422);
    let next = page["next"].as_str().expect("a cursor").to_owned();
    let (_, rest) = get(format!("/api/v1/deliveries?plugin=picky&before={next}")).await;
    assert_eq!(rest["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(rest["deliveries"][0]["event_id"], ids[0].as_str());
    assert_eq!(rest["next"], Value::Null);

    let oldest = rest["deliveries"][0]["id"].as_str().unwrap().to_owned();
    let (status, one) = get(format!("/api/v1/deliveries/{oldest}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["attempt_log"][0]["outcome"], "rejected");
    assert_eq!(one["event_data"]["data"]["media_item"]["title"], "Movie 0");

    // What a person can get wrong, each with what to fix.
    let (status, bad) = get("/api/v1/deliveries?state=lost&limit=0&colour=red".into()).await;
    assert_eq!(status, 400);
    let msg = bad["error"].as_str().unwrap();
    for part in [
        "unknown delivery state `lost`",
        "`limit`",
        "unknown query parameter `colour`",
    ] {
        assert!(msg.contains(part), "{msg}");
    }
    assert_eq!(get("/api/v1/deliveries/nope".into()).await.0, 404);
    assert_eq!(
        post("/api/v1/deliveries/nope/retry".into(), "").await.0,
        404
    );
    assert_eq!(
        post("/api/v1/plugins/nobody/replay".into(), "").await.0,
        404
    );
    let (status, bad) = post(
        "/api/v1/plugins/picky/replay".into(),
        r#"{"state": "held"}"#,
    )
    .await;
    assert_eq!(status, 400, "{bad}");

    picky.set(Mode::Ok);
    let (status, r) = post(format!("/api/v1/deliveries/{oldest}/retry"), "").await;
    assert_eq!((status, &r["state"]), (202, &Value::from("pending")));
    assert!(wait_until(LONG, || async { picky.delivered_count() == 1 }).await);
    let (status, r) = post(format!("/api/v1/deliveries/{oldest}/retry"), "").await;
    assert_eq!(status, 409, "delivered now: {r}");
    let (status, r) = post(
        "/api/v1/plugins/picky/replay".into(),
        r#"{"state": "dead"}"#,
    )
    .await;
    assert_eq!((status, &r["requeued"]), (200, &Value::from(2)));
    assert!(wait_until(LONG, || async { picky.delivered_count() == 3 }).await);
    assert_eq!(
        picky.delivered_ids(),
        ids,
        "the retried first, then the rest in order"
    );
    let (_, plugins) = get("/api/v1/plugins".into()).await;
    assert_eq!(
        (&plugins[0]["dead"], &plugins[0]["held"]),
        (&Value::from(0), &Value::from(0))
    );
    h.shutdown().await;
}

/// The window (50) bounds what waits in memory. Deliveries the plugin had in hand (one
/// running, and those sent ahead of it) go back to their place in memory when it fails,
/// even into a full window: on a loaded machine they come back after it has filled.
async fn in_memory_at_most_the_window(h: &Handle) {
    let s = state(h, "ntfy").await;
    let in_hand = (1 + mydia_plugins::plugins::actor::QUEUED_PER_RUNNING) as usize;
    assert!(
        s.queued + s.in_flight as usize <= 50 + in_hand,
        "only the window, and what the plugin had, is in memory: {s:?}"
    );
}

#[actix_rt::test]
async fn beyond_the_memory_window_deliveries_wait_in_the_store_and_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(&dir);
    let open = || {
        let store = mydia_plugins::store::Store::open(&config.storage)
            .unwrap()
            .with_memory_window(50);
        let resume = store.unfinished().unwrap();
        (store, resume)
    };
    let down = unavailable();
    let (store, resume) = open();
    let h = mydia_plugins::start_with_store(
        &config,
        vec![one_at_a_time(down.spec("ntfy"))],
        store,
        resume,
    );
    let mut ids = Vec::new();
    for chunk in 0..6 {
        let sent = futures::future::join_all((0..50).map(|i| {
            h.emit(
                EventName::AfterMediaAdded,
                data!({"media_item": {"title": format!("Movie {chunk}/{i}")}}),
            )
        }))
        .await;
        // Concurrent emits are accepted in some order: the store's is the delivery order.
        ids.extend(sent.into_iter().map(|r| r.unwrap().event.id.clone()));
    }
    in_memory_at_most_the_window(&h).await;
    // Half of them wait across a restart.
    let report = h.shutdown().await;
    assert_eq!(report.kept, 300, "{report:?}");

    let up = Script::new(Mode::Ok);
    let (store, resume) = open();
    assert_eq!(resume.len(), 300);
    let h = mydia_plugins::start_with_store(
        &config,
        vec![one_at_a_time(up.spec("ntfy"))],
        store,
        resume,
    );
    assert!(
        wait_until(LONG, || async { up.delivered_count() == 300 }).await,
        "{}",
        up.delivered_count()
    );
    let got = up.delivered_ids();
    let expected = accepted_order(&h, "ntfy").await;
    assert_eq!(got, expected, "each once, in the order accepted");
    assert_eq!(got.len(), ids.len());

    // And while running: down again, 200 more, then back.
    up.set(Mode::Fail(PluginError::Transient {
        status: Some(503),
        reason: "503".into(),
    }));
    for i in 0..200 {
        h.emit(
            EventName::AfterMediaAdded,
            data!({"media_item": {"title": format!("More {i}")}}),
        )
        .await
        .unwrap();
    }
    in_memory_at_most_the_window(&h).await;
    up.set(Mode::Ok);
    assert!(
        wait_until(LONG, || async { up.delivered_count() == 500 }).await,
        "{}",
        up.delivered_count()
    );
    assert_eq!(up.delivered_ids(), accepted_order(&h, "ntfy").await);
    h.shutdown().await;
}

#[actix_rt::test]
async fn an_instance_turned_off_holds_and_gets_nothing_new_and_turned_on_sends_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(&dir);
    let down = unavailable();
    let other = Script::new(Mode::Ok);
    let h = start_with(
        &config,
        vec![one_at_a_time(down.spec("ntfy")), other.spec("other")],
    )
    .expect("start");
    let first = emit_n(&h, 5).await;
    assert!(wait_until(LONG, || async { state(&h, "ntfy").await.failed >= 1 }).await);
    h.set_enabled("ntfy", false).await.unwrap();
    down.set(Mode::Ok);
    assert_eq!(state(&h, "ntfy").await.state, "disabled");
    // Off: what waits stays, held as disabled; a new event goes to the others only.
    let later = emit_n(&h, 3).await;
    assert!(wait_until(LONG, || async { other.delivered_count() == 8 }).await);
    let disabled = |r: &Summary| {
        r.state == State::Held
            && r.reason
                .as_deref()
                .is_some_and(|x| x.starts_with("disabled"))
    };
    assert!(
        wait_until(LONG, || async {
            listed(&h, Some("ntfy"), None)
                .await
                .iter()
                .filter(|r| disabled(r))
                .count()
                == 5
        })
        .await,
        "{:?}",
        listed(&h, Some("ntfy"), None).await
    );
    assert_eq!(down.delivered_count(), 0, "nothing is sent while off");
    let rows = listed(&h, Some("ntfy"), None).await;
    assert!(
        later
            .iter()
            .all(|id| !rows.iter().any(|r| r.event_id == *id)),
        "no delivery row for an event while off"
    );
    // On again: the held ones go out, in order, and new events arrive again.
    h.set_enabled("ntfy", true).await.unwrap();
    let again = emit_n(&h, 2).await;
    assert!(
        wait_until(LONG, || async { down.delivered_count() == 7 }).await,
        "{:?}",
        state(&h, "ntfy").await
    );
    let expected: Vec<String> = first.iter().chain(&again).cloned().collect();
    assert_eq!(down.delivered_ids(), expected);
    let unknown = h.set_enabled("nope", true).await.unwrap_err();
    assert!(
        unknown.to_string().contains("configured: ntfy, other"),
        "{unknown}"
    );
    h.shutdown().await;
}

#[actix_rt::test]
async fn an_instance_off_at_start_and_turned_on_sends_what_waited_for_it_from_before() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(&dir);
    // A first run leaves 4 deliveries waiting for an instance that is down.
    let down = unavailable();
    let h = start_with(&config, vec![one_at_a_time(down.spec("ntfy"))]).expect("start");
    let before = emit_n(&h, 4).await;
    assert_eq!(h.shutdown().await.kept, 4);
    // The next start has it disabled: nothing is sent, nothing new is routed to it.
    let up = Script::new(Mode::Ok);
    let h = start_with(
        &config,
        vec![one_at_a_time(up.spec("ntfy")).with_enabled(false)],
    )
    .expect("start");
    assert_eq!(state(&h, "ntfy").await.state, "disabled");
    emit_n(&h, 2).await;
    // Turned on: the four from before go out in order, then new events.
    h.set_enabled("ntfy", true).await.unwrap();
    let after = emit_n(&h, 1).await;
    assert!(
        wait_until(LONG, || async { up.delivered_count() >= 5 }).await,
        "{} {:?}",
        up.delivered_count(),
        state(&h, "ntfy").await
    );
    let expected: Vec<String> = before.iter().chain(&after).cloned().collect();
    // Each once: a delivery committed while the store was read back is not sent twice
    // (settled first: a second copy would follow the first at once).
    assert!(
        wait_until(LONG, || async {
            state(&h, "ntfy").await.in_flight == 0 && state(&h, "ntfy").await.queued == 0
        })
        .await
    );
    assert_eq!(up.delivered_ids(), expected);
    h.shutdown().await;
}
