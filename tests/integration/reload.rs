//! Live reload: through the library, a changed instance is rebuilt keeping what it holds
//! while an unchanged one keeps its breaker and held deliveries, a removed one's
//! deliveries are dead ("instance removed"), a new one starts, and a config with problems
//! is refused while the old one goes on; against the real binary, SIGHUP and
//! `POST /api/v1/reload` do the same and say so in one log event.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use mydia_plugins::config::Config;
use mydia_plugins::event::EventName;
use mydia_plugins::store::{Query, State, Summary};
use mydia_plugins::{Handle, ReloadError};

use crate::support::service::Service;
use crate::support::{emit_n, state, wait_until};

const LONG: Duration = Duration::from_secs(30);

/// A webhook instance `name` posting to `receiver`/`name`, `max_in_flight` at once.
fn webhook(name: &str, receiver: &str, max_in_flight: u32) -> String {
    format!(
        "  {name}:\n    type: webhook\n    enabled: true\n    url: {receiver}/{name}\n    \
         allow_insecure_http: true\n    allow_private_network: true\n    \
         max_in_flight: {max_in_flight}\n    events: [after_media_added]\n"
    )
}

/// Write the config in `dir` with these plugins (a breaker that opens after 3 failures
/// and stays open for a minute, so a test sees it keep its state).
fn write(dir: &Path, plugins: &str) -> PathBuf {
    let text = format!(
        "hooks: {{enabled: false}}\nstorage: {{path: store.sqlite3}}\n\
         supervision: {{breaker_min_calls: 3, open_cooldown_secs: 60, restart_backoff_base_ms: 20}}\n\
         plugins:\n{plugins}"
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn receiver(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

/// The event ids `server` got at `/path`, in arrival order.
async fn got(server: &MockServer, path: &str) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == path)
        .filter_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).ok()?;
            Some(body["id"].as_str()?.to_owned())
        })
        .collect()
}

/// Emit one event; whether it arrives at `server`'s `path` as the only one there.
async fn arrives_alone(h: &Handle, server: &MockServer, path: &str) -> bool {
    let id = emit_n(h, 1).await.remove(0);
    wait_until(LONG, || async { got(server, path).await == [id.clone()] }).await
}

async fn listed(h: &Handle, instance: &str) -> Vec<Summary> {
    let mut rows = h
        .deliveries(Query {
            instance: Some(instance.to_owned()),
            limit: 500,
            ..Query::default()
        })
        .await
        .expect("the store answers")
        .items;
    rows.sort_by_key(|r| r.seq);
    rows
}

fn start(path: &Path) -> Handle {
    let config = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
    mydia_plugins::start(&config).expect("start")
}

#[actix_rt::test]
async fn a_changed_instance_is_rebuilt_with_what_it_held_and_an_unchanged_one_keeps_its_breaker() {
    let (bad, good) = (receiver(503).await, receiver(200).await);
    let dir = tempfile::tempdir().unwrap();
    let both = |a_to: &str, a_in_flight| {
        format!(
            "{}{}",
            webhook("a", a_to, a_in_flight),
            webhook("b", &bad.uri(), 4)
        )
    };
    let path = write(dir.path(), &both(&bad.uri(), 4));
    let h = start(&path);
    let ids = emit_n(&h, 5).await;
    // Both fail against the 503 receiver until their breakers open; what waits is held.
    assert!(
        wait_until(LONG, || async {
            let (a, b) = (state(&h, "a").await, state(&h, "b").await);
            // Settled: the attempts in flight when a breaker opened have come back.
            a.state == "open" && b.state == "open" && a.in_flight == 0 && b.in_flight == 0
        })
        .await,
        "{:?}",
        h.status().await
    );
    let b_before = state(&h, "b").await;
    let b_calls = got(&bad, "/b").await.len();

    // `a` now points at a receiver that works, one at a time; `b` is written as it was.
    write(dir.path(), &both(&good.uri(), 1));
    let report = h.reload().await.expect("a valid config reloads");
    assert_eq!(report.changed, ["a"], "{report:?}");
    assert_eq!(report.unchanged, ["b"], "{report:?}");
    assert!(
        report.added.is_empty() && report.removed.is_empty(),
        "{report:?}"
    );

    // What `a` held goes out through its new config, each once, in order.
    assert!(
        wait_until(LONG, || async { got(&good, "/a").await.len() >= ids.len() }).await,
        "{:?}",
        got(&good, "/a").await
    );
    assert_eq!(got(&good, "/a").await, ids);
    assert!(
        wait_until(LONG, || async {
            listed(&h, "a")
                .await
                .iter()
                .all(|r| r.state == State::Delivered)
        })
        .await
    );
    let a = state(&h, "a").await;
    assert_eq!(a.state, "closed", "{a:?}");

    // `b` kept its open breaker, its counters and everything it holds; it sent nothing new.
    let b = state(&h, "b").await;
    assert_eq!(b.state, "open", "{b:?}");
    assert_eq!((b.failed, b.delivered), (b_before.failed, 0), "{b:?}");
    assert_eq!(got(&bad, "/b").await.len(), b_calls);
    let b_rows = listed(&h, "b").await;
    assert_eq!(b_rows.len(), ids.len());
    assert!(
        b_rows
            .iter()
            .all(|r| r.state == State::Held || r.state == State::Pending),
        "{:?}",
        b_rows.iter().map(|r| r.state).collect::<Vec<_>>()
    );
    h.shutdown().await;
}

#[actix_rt::test]
async fn a_removed_instance_dead_letters_what_it_held_and_a_new_one_starts() {
    let (bad, good) = (receiver(503).await, receiver(200).await);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &webhook("gone", &bad.uri(), 4));
    let h = start(&path);
    emit_n(&h, 3).await;
    assert!(wait_until(LONG, || async { state(&h, "gone").await.state == "open" }).await);

    write(dir.path(), &webhook("fresh", &good.uri(), 1));
    let report = h.reload().await.expect("reloads");
    assert_eq!(
        (report.removed.as_slice(), report.added.as_slice()),
        (&["gone".to_owned()][..], &["fresh".to_owned()][..])
    );

    // Every delivery it held is dead, and says why.
    assert!(
        wait_until(LONG, || async {
            let rows = listed(&h, "gone").await;
            rows.len() == 3 && rows.iter().all(|r| r.state == State::Dead)
        })
        .await,
        "{:?}",
        listed(&h, "gone").await
    );
    for r in listed(&h, "gone").await {
        let reason = r.reason.unwrap_or_default();
        assert!(reason.contains("instance removed"), "{reason}");
    }
    let names: Vec<String> = h.status().await.into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["fresh"]);

    // The new one gets the next event; the removed one gets nothing more.
    let calls = got(&bad, "/gone").await.len();
    assert!(arrives_alone(&h, &good, "/fresh").await);
    assert_eq!(got(&bad, "/gone").await.len(), calls);
    assert_eq!(listed(&h, "gone").await.len(), 3);

    // Taking it back in starts it afresh, under the same name.
    write(
        dir.path(),
        &format!(
            "{}{}",
            webhook("fresh", &good.uri(), 1),
            webhook("gone", &good.uri(), 1)
        ),
    );
    let report = h.reload().await.expect("reloads");
    assert_eq!(report.added, ["gone"], "{report:?}");
    assert!(arrives_alone(&h, &good, "/gone").await);
    h.shutdown().await;
}

#[actix_rt::test]
async fn a_config_with_problems_is_refused_and_the_running_one_goes_on() {
    let good = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &webhook("a", &good.uri(), 1));
    let h = start(&path);

    // Nothing changed: said so, nothing rebuilt.
    let report = h.reload().await.expect("reloads");
    assert!(report.is_empty(), "{report:?}");
    assert_eq!(report.unchanged, ["a"]);

    std::fs::write(
        &path,
        "plugins:\n  a:\n    type: webhook\n    enabled: true\n    url: not a url\n    colour: red\n",
    )
    .unwrap();
    let err = h.reload().await.expect_err("refused");
    assert!(matches!(err, ReloadError::Invalid(_)), "{err}");
    let problems = err.problems();
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert!(paths.contains(&"plugins.a.url"), "{paths:?}");
    assert!(paths.iter().any(|p| p.contains("colour")), "{paths:?}");
    assert!(err.problems().iter().all(|p| p.line.is_some()), "{err}");

    // The old instance still delivers.
    assert!(arrives_alone(&h, &good, "/a").await);
    assert_eq!(state(&h, "a").await.state, "closed");
    h.shutdown().await;
}

#[actix_rt::test]
async fn enabled_alone_changing_turns_an_instance_off_without_a_rebuild() {
    let good = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &webhook("a", &good.uri(), 1));
    let h = start(&path);
    emit_n(&h, 1).await;
    assert!(wait_until(LONG, || async { state(&h, "a").await.delivered == 1 }).await);

    write(
        dir.path(),
        &webhook("a", &good.uri(), 1).replace("enabled: true", "enabled: false"),
    );
    let report = h.reload().await.expect("reloads");
    assert_eq!(
        (report.toggled.as_slice(), report.unchanged.as_slice()),
        (&["a".to_owned()][..], &["a".to_owned()][..]),
        "{report:?}"
    );
    assert!(report.changed.is_empty(), "{report:?}");
    let a = state(&h, "a").await;
    assert_eq!((a.state, a.delivered), ("disabled", 1), "{a:?}");
    // Off: a new event is not routed to it.
    h.emit(
        EventName::AfterMediaAdded,
        crate::data!({"media_item": {"title": "x"}}),
    )
    .await
    .unwrap();
    assert_eq!(listed(&h, "a").await.len(), 1);
    h.shutdown().await;
}

/// The binary's config: the log plugin, and a webhook `extra` when `receiver` is given.
fn binary_config(receiver: Option<&str>) -> String {
    let extra = receiver.map(|r| webhook("extra", r, 1)).unwrap_or_default();
    format!("server: {{listen: 127.0.0.1:0}}\nhooks: {{enabled: false}}\nstorage: {{backend: memory}}\nplugins:\n  console: {{type: log, enabled: true}}\n{extra}")
}

fn post(path: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

fn body(answer: &str) -> Value {
    serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or("null")).unwrap_or(Value::Null)
}

#[actix_rt::test]
async fn sighup_and_the_api_reload_the_real_binary_and_refuse_a_broken_config() {
    let good = receiver(200).await;
    let mut service = Service::start(&binary_config(None));

    // SIGHUP: the new instance starts, one supervision event says what changed.
    std::fs::write(service.config_path(), binary_config(Some(&good.uri()))).unwrap();
    service.signal("HUP");
    let line = service.wait_for(|l| l.contains("config reloaded"));
    assert!(line.contains("added") && line.contains("extra"), "{line}");
    assert!(line.contains("supervision"), "{line}");
    let event = json!({"event": "after_media_added", "data": {"media_item": {"title": "Dune"}}})
        .to_string();
    let send = format!("POST /api/v1/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{event}", event.len());
    assert!(service.request(&send).starts_with("HTTP/1.1 202"));
    assert!(wait_until(LONG, || async { got(&good, "/extra").await.len() == 1 }).await);

    // A broken file: refused with its problems, logged, and the service goes on.
    std::fs::write(
        service.config_path(),
        "plugins:\n  console: {type: log, enabled: maybe}\n",
    )
    .unwrap();
    service.signal("HUP");
    let line = service.wait_for(|l| l.contains("reload refused"));
    assert!(line.contains("WARN") && line.contains("enabled"), "{line}");
    let answer = service.request(&post("/api/v1/reload"));
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let problems = body(&answer)["problems"].clone();
    assert_eq!(problems[0]["path"], "plugins.console.enabled", "{answer}");
    assert_eq!(problems[0]["line"], 2, "{answer}");

    // Fixed again through the API: `extra` is removed, the rest unchanged.
    std::fs::write(service.config_path(), binary_config(None)).unwrap();
    let answer = service.request(&post("/api/v1/reload"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let report = &body(&answer)["report"];
    assert_eq!(report["removed"], json!(["extra"]), "{answer}");
    assert_eq!(report["unchanged"], json!(["console"]), "{answer}");
    let plugins =
        service.request("GET /api/v1/plugins HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(!plugins.contains("\"extra\""), "{plugins}");
    assert!(!service.exited());
}

#[actix_rt::test]
async fn reloading_under_load_loses_and_doubles_nothing_and_keeps_the_order() {
    let good = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    // Each reload changes `a` (its timeout), so each rebuilds it while events flow.
    let config = |timeout_ms: u32| {
        format!(
            "{}    timeout_ms: {timeout_ms}\n",
            webhook("a", &good.uri(), 1)
        )
    };
    let path = write(dir.path(), &config(5_000));
    let h = start(&path);
    let sender = {
        let h = h.clone();
        actix_rt::spawn(async move { emit_n(&h, 300).await })
    };
    let mut rebuilt = 0;
    for round in 1..=6 {
        write(dir.path(), &config(5_000 + round));
        let report = h.reload().await.expect("reloads");
        rebuilt += report.changed.len();
        // Pacing only: the reloads spread over the burst.
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let ids = sender.await.unwrap();
    assert_eq!(rebuilt, 6);
    assert!(
        wait_until(LONG, || async { got(&good, "/a").await.len() >= ids.len() }).await,
        "{} of {}",
        got(&good, "/a").await.len(),
        ids.len()
    );
    // Give a doubled delivery the chance to arrive, then compare: each once.
    assert!(
        wait_until(LONG, || async {
            listed(&h, "a")
                .await
                .iter()
                .all(|r| r.state == State::Delivered)
        })
        .await
    );
    // One at a time: each once, in the order accepted, across every rebuild.
    assert_eq!(got(&good, "/a").await, ids);
    h.shutdown().await;
}

#[actix_rt::test]
async fn a_reload_swaps_the_hooks_too_and_a_hook_that_does_not_compile_refuses_it_all() {
    let good = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hooks/after_media_added/10_tag.lua");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    let stamp = |v: &str| format!("function hook(e) e.data.tag = \"{v}\"; return e end");
    std::fs::write(&script, stamp("v1")).unwrap();
    // The watcher off: only the reload asked for here swaps the hooks.
    let config = |url: &str| {
        format!(
            "hooks: {{directory: hooks, watch: false}}\nstorage: {{backend: memory}}\nplugins:\n{}",
            webhook("a", url, 1)
        )
    };
    std::fs::write(dir.path().join("config.yaml"), config(&good.uri())).unwrap();
    let h = start(&dir.path().join("config.yaml"));
    let tag = |h: Handle| async move {
        let done = h
            .emit(
                EventName::AfterMediaAdded,
                crate::data!({"media_item": {"title": "x"}}),
            )
            .await
            .unwrap();
        done.event.data["tag"].clone()
    };
    assert_eq!(tag(h.clone()).await, "v1");

    std::fs::write(&script, stamp("v2")).unwrap();
    let report = h.reload().await.expect("reloads");
    assert_eq!(
        report.hooks.changed,
        ["after_media_added/10_tag.lua"],
        "{report:?}"
    );
    assert_eq!(tag(h.clone()).await, "v2");

    // A broken hook and a changed plugin: nothing applies, the problem names the file.
    std::fs::write(&script, "function hook(e) return e").unwrap();
    std::fs::write(dir.path().join("config.yaml"), config("http://127.0.0.1:9")).unwrap();
    let err = h.reload().await.expect_err("refused");
    assert!(matches!(err, ReloadError::Hooks(_)), "{err}");
    let problems = err.problems();
    assert!(
        problems.iter().any(|p| p.path.ends_with("10_tag.lua")),
        "{problems:?}"
    );
    assert_eq!(tag(h.clone()).await, "v2");
    let before = got(&good, "/a").await.len();
    tag(h.clone()).await;
    assert!(wait_until(LONG, || async { got(&good, "/a").await.len() > before }).await);
    h.shutdown().await;
}

#[actix_rt::test]
async fn a_digest_taken_out_by_a_reload_sends_what_it_held() {
    let ntfy = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let ntfy_config = |digest: &str| {
        format!(
            "hooks: {{enabled: false}}\nstorage: {{backend: memory}}\nplugins:\n  ntfy:\n    enabled: true\n    \
             server_url: '{}'\n    topic: media\n    allow_insecure_http: true\n    allow_private_network: true\n    \
             events: [after_media_added]\n{digest}",
            ntfy.uri()
        )
    };
    let path = dir.path().join("config.yaml");
    // A digest that would hold this burst for ten minutes.
    std::fs::write(
        &path,
        ntfy_config("    digest: {wait_secs: 600, max_wait_secs: 600, min_events: 2}\n"),
    )
    .unwrap();
    let h = start(&path);
    for _ in 0..3 {
        h.emit(
            EventName::AfterMediaAdded,
            crate::data!({"media_item": {"title": "Severance"}}),
        )
        .await
        .unwrap();
    }
    assert!(wait_until(LONG, || async { state(&h, "ntfy").await.held == 3 }).await);
    assert_eq!(ntfy.received_requests().await.unwrap().len(), 0);

    std::fs::write(&path, ntfy_config("")).unwrap();
    let report = h.reload().await.expect("reloads");
    assert_eq!(report.changed, ["ntfy"], "{report:?}");
    // Without a digest now: the three go out as they are.
    assert!(
        wait_until(LONG, || async {
            ntfy.received_requests().await.unwrap().len() == 3
        })
        .await,
        "{:?}",
        state(&h, "ntfy").await
    );
    assert!(wait_until(LONG, || async { state(&h, "ntfy").await.held == 0 }).await);
    h.shutdown().await;
}
