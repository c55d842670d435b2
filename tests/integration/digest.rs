//! Burst digests and quiet hours through the library, on an injected clock (the
//! supervisor re-reads it every 200 ms, so a test moves time by setting it): a season in
//! 40 s is one message, two seasons two, a small burst goes out as it is, a trickle is
//! bounded by max_wait_secs, overflow mode, a restart while a digest is held, a rejected
//! digest, quiet hours across midnight and a daylight-saving change, `except`, and a real
//! ntfy plugin against a mock server.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mydia_plugins::config::digest::{DigestSettings, QuietHours};
use mydia_plugins::config::{Config, StorageBackend, StorageConfig};
use mydia_plugins::event::{DigestKind, Event, EventName};
use mydia_plugins::plugins::PluginError;
use mydia_plugins::store::{Query, State, Summary};
use mydia_plugins::supervisor::InstanceSpec;
use mydia_plugins::{start_with, Handle};
use serde_json::{json, Value};

use crate::support::scripted::{Mode, Script};
use crate::support::{fast_config, state, wait_until};

const LONG: Duration = Duration::from_secs(20);

/// A clock the test sets (ms since the epoch).
#[derive(Clone)]
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn at(rfc3339: &str) -> TestClock {
        let t = chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap();
        TestClock(Arc::new(AtomicI64::new(t.timestamp_millis())))
    }
    fn advance(&self, secs: i64) {
        self.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }
    fn set(&self, rfc3339: &str) {
        let t = chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap();
        self.0.store(t.timestamp_millis(), Ordering::SeqCst);
    }
    fn spec(&self, spec: InstanceSpec) -> InstanceSpec {
        let c = Arc::clone(&self.0);
        InstanceSpec {
            max_in_flight: Some(1),
            ..spec.with_clock(Arc::new(move || c.load(Ordering::SeqCst)))
        }
    }
}

fn digest(wait: u64, max_wait: u64, min_events: usize) -> DigestSettings {
    DigestSettings {
        group_by: vec![],
        wait: Duration::from_secs(wait),
        max_wait: Duration::from_secs(max_wait),
        min_events,
        overflow_at: None,
    }
}

fn quiet(from: u32, to: u32, timezone: chrono_tz::Tz, except: &[EventName]) -> QuietHours {
    QuietHours {
        from,
        to,
        timezone,
        except: except.to_vec(),
        min_events: 3,
    }
}

fn episode(series: &str, season: u64, n: u64) -> serde_json::Map<String, Value> {
    json!({"media_item": {"title": series, "type": "tv_show", "year": 2008},
           "episode": {"season_number": season, "episode_number": n}})
    .as_object()
    .cloned()
    .unwrap()
}

async fn import(h: &Handle, series: &str, season: u64, n: u64) -> String {
    h.emit(EventName::AfterImportCompleted, episode(series, season, n))
        .await
        .expect("accepted")
        .event
        .id
        .clone()
}

async fn emit(h: &Handle, name: EventName, title: &str) -> String {
    let data = json!({"media_item": {"title": title}});
    h.emit(name, data.as_object().cloned().unwrap())
        .await
        .expect("accepted")
        .event
        .id
        .clone()
}

/// `instance`'s deliveries, oldest first.
async fn rows(h: &Handle, instance: &str) -> Vec<Summary> {
    let mut items = h
        .deliveries(Query {
            instance: Some(instance.into()),
            limit: 500,
            ..Query::default()
        })
        .await
        .expect("the store answers")
        .items;
    items.sort_by_key(|r| r.seq);
    items
}

async fn held_with(h: &Handle, instance: &str, prefix: &str) -> usize {
    rows(h, instance)
        .await
        .iter()
        .filter(|r| r.state == State::Held && r.reason.as_deref().unwrap_or("").starts_with(prefix))
        .count()
}

/// Wait until every delivery of `instance` is delivered or dead in the store (committed,
/// not only handed to the writer).
async fn settled(h: &Handle, instance: &str) -> bool {
    wait_until(LONG, || async {
        rows(h, instance).await.iter().all(|r| r.state.is_final())
    })
    .await
}

fn delivered(script: &Script) -> Vec<Arc<Event>> {
    script.delivered.lock().unwrap().clone()
}

fn sqlite(dir: &tempfile::TempDir) -> Config {
    let mut config = fast_config();
    config.storage = StorageConfig {
        backend: StorageBackend::Sqlite,
        path: dir.path().join("store.sqlite3"),
        ..StorageConfig::default()
    };
    config
}

#[actix_rt::test]
async fn thirteen_imports_of_one_season_in_40_seconds_are_one_message() {
    let clock = TestClock::at("2026-05-01T12:00:00Z");
    let sink = Script::new(Mode::Ok);
    let spec = clock.spec(sink.spec("ntfy").with_digest(digest(30, 300, 3)));
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    let mut ids = Vec::new();
    for n in 1..=13 {
        ids.push(import(&h, "Breaking Bad", 2, n).await);
        clock.advance(3);
    }
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "digest").await == 13
        })
        .await,
        "{:?}",
        rows(&h, "ntfy").await
    );
    assert!(delivered(&sink).is_empty(), "held while the season arrives");
    clock.advance(31);
    assert!(wait_until(LONG, || async { sink.delivered_count() == 1 }).await);
    let sent = delivered(&sink);
    let d = sent[0].digest.as_ref().expect("a digest");
    assert_eq!(d.kind, DigestKind::Burst);
    assert_eq!(d.title, "Breaking Bad S02: 13 episodes imported");
    assert_eq!((d.count, d.lines.len(), d.more), (13, 10, 3));
    let members: Vec<String> = d.events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(members, ids, "every event, in order");

    // Every member's row says it went out through the digest, whose id the message has.
    assert!(settled(&h, "ntfy").await);
    let rows = rows(&h, "ntfy").await;
    let carrier = rows[0].seq;
    assert_eq!(sent[0].id, h.store().public_id(carrier));
    assert!(rows
        .iter()
        .all(|r| r.state == State::Delivered && r.digest == Some(carrier)));
    let s = state(&h, "ntfy").await;
    assert_eq!(
        (s.delivered, s.digests),
        (13, 1),
        "events delivered, digests sent"
    );
    // /metrics counts the events that went out through the digest.
    assert_eq!(s.digested, 13, "{s:?}");
    let text = h.metrics().await;
    assert!(
        text.contains(&format!(
            "mydia_deliveries_total{{plugin=\"ntfy\",type=\"scripted\",outcome=\"digested\"}} {}",
            s.digested
        )),
        "{text}"
    );
    h.shutdown().await;
}

#[actix_rt::test]
async fn two_seasons_are_two_messages_and_a_small_burst_goes_out_as_it_is() {
    let clock = TestClock::at("2026-05-01T12:00:00Z");
    let sink = Script::new(Mode::Ok);
    let spec = clock.spec(sink.spec("ntfy").with_digest(digest(30, 300, 3)));
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    for n in 1..=4 {
        import(&h, "The Wire", 1, n).await;
        import(&h, "The Wire", 2, n).await;
    }
    let small = [
        emit(&h, EventName::AfterMediaAdded, "Dune").await,
        emit(&h, EventName::AfterMediaAdded, "Dune").await,
    ];
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "digest").await == 10
        })
        .await
    );
    clock.advance(31);
    assert!(wait_until(LONG, || async { sink.delivered_count() == 4 }).await);
    let sent = delivered(&sink);
    let titles: Vec<_> = sent
        .iter()
        .filter_map(|e| e.digest.as_ref().map(|d| d.title.clone()))
        .collect();
    assert_eq!(
        titles,
        [
            "The Wire S01: 4 episodes imported",
            "The Wire S02: 4 episodes imported"
        ]
    );
    let originals: Vec<_> = sent
        .iter()
        .filter(|e| e.digest.is_none())
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(
        originals, small,
        "below min_events: the originals, in order"
    );
    assert!(settled(&h, "ntfy").await);
    let s = state(&h, "ntfy").await;
    assert_eq!((s.delivered, s.digests), (10, 2));
    h.shutdown().await;
}

#[actix_rt::test]
async fn a_steady_trickle_is_sent_after_max_wait_secs() {
    let clock = TestClock::at("2026-05-01T12:00:00Z");
    let sink = Script::new(Mode::Ok);
    let spec = clock.spec(sink.spec("ntfy").with_digest(digest(30, 60, 3)));
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    for n in 1..=3 {
        import(&h, "Lost", 1, n).await;
        // Seen by the supervisor at this time, before the clock moves on.
        assert!(
            wait_until(LONG, || async {
                held_with(&h, "ntfy", "digest").await == n as usize
            })
            .await
        );
        clock.advance(20);
    }
    // 60 s after the first, 20 s after the newest: max_wait_secs ends the wait.
    clock.advance(1);
    assert!(wait_until(LONG, || async { sink.delivered_count() == 1 }).await);
    assert_eq!(
        delivered(&sink)[0].digest.as_ref().map(|d| d.count),
        Some(3)
    );
    // The next ones start a group of their own.
    import(&h, "Lost", 1, 4).await;
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "digest").await == 1
        })
        .await
    );
    clock.advance(31);
    assert!(wait_until(LONG, || async { sink.delivered_count() == 2 }).await);
    assert!(
        delivered(&sink)[1].digest.is_none(),
        "one alone goes out as it is"
    );
    h.shutdown().await;
}

#[actix_rt::test]
async fn overflow_mode_sends_one_digest_for_a_queue_and_ends_when_it_drains() {
    let clock = TestClock::at("2026-05-01T12:00:00Z");
    let down = Script::new(Mode::Fail(PluginError::Transient {
        status: Some(503),
        reason: "503".into(),
    }));
    let settings = DigestSettings {
        overflow_at: Some(3),
        ..digest(1, 10, 2)
    };
    let spec = clock.spec(down.spec("ntfy").with_digest(settings));
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    // Six different films: groups of one, released as they are, queued behind a failing service.
    for i in 0..6 {
        emit(&h, EventName::AfterMediaAdded, &format!("Film {i}")).await;
    }
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "digest").await == 6
        })
        .await
    );
    clock.advance(2);
    assert!(wait_until(LONG, || async { !down.received.lock().unwrap().is_empty() }).await);
    assert!(
        wait_until(LONG, || async { state(&h, "ntfy").await.queued >= 3 }).await,
        "{:#?} {:#?}",
        state(&h, "ntfy").await,
        rows(&h, "ntfy").await
    );
    // The queue is past overflow_at: the next event, and the queue with it, go into a digest.
    emit(&h, EventName::AfterMediaAdded, "Film 6").await;
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "digest").await == 7
        })
        .await,
        "{:#?}",
        rows(&h, "ntfy").await
    );
    down.set(Mode::Ok);
    clock.advance(2);
    assert!(settled(&h, "ntfy").await);
    let sent = delivered(&down);
    assert_eq!(sent.len(), 1, "one message for the whole queue: {sent:?}");
    let d = sent[0].digest.as_ref().expect("a digest");
    assert_eq!((d.count, d.title.as_str()), (7, "7 items added"));
    // The queue has drained: overflow is over, a lone event goes out as it is.
    clock.advance(1);
    emit(&h, EventName::AfterMediaAdded, "Film 7").await;
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "digest").await == 1
        })
        .await
    );
    clock.advance(2);
    assert!(wait_until(LONG, || async { down.delivered_count() == 2 }).await);
    assert!(delivered(&down)[1].digest.is_none());
    h.shutdown().await;
}

#[actix_rt::test]
async fn a_restart_regroups_held_members_and_sends_a_formed_digest_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite(&dir);
    let clock = TestClock::at("2026-05-01T12:00:00Z");
    let spec = |s: &Arc<Script>| clock.spec(s.spec("ntfy").with_digest(digest(30, 300, 3)));

    // Held while the group is open, then stopped: kept for the next start.
    let first = Script::new(Mode::Ok);
    let h = start_with(&config, vec![spec(&first)]).expect("start");
    for n in 1..=5 {
        import(&h, "Fargo", 1, n).await;
    }
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "digest").await == 5
        })
        .await
    );
    assert_eq!(h.shutdown().await.kept, 5);

    // Restarted with a failing service: regrouped, formed, and its send fails.
    let down = Script::new(Mode::Fail(PluginError::Transient {
        status: Some(503),
        reason: "503".into(),
    }));
    let h = start_with(&config, vec![spec(&down)]).expect("restart");
    clock.advance(31);
    assert!(wait_until(LONG, || async { !down.received.lock().unwrap().is_empty() }).await);
    let formed = down.received.lock().unwrap()[0].1.clone();
    assert_eq!(formed.digest.as_ref().map(|d| d.count), Some(5));
    assert!(
        wait_until(LONG, || async {
            let before = rows(&h, "ntfy").await;
            before.iter().all(|r| r.digest == Some(before[0].seq))
        })
        .await,
        "{:?}",
        rows(&h, "ntfy").await
    );
    h.shutdown().await;

    // Restarted again: the same digest, with the same id, goes out at once.
    let up = Script::new(Mode::Ok);
    let h = start_with(&config, vec![spec(&up)]).expect("restart");
    assert!(wait_until(LONG, || async { up.delivered_count() == 1 }).await);
    let sent = delivered(&up);
    assert_eq!(
        sent[0].id, formed.id,
        "the receiver sees the same delivery id"
    );
    assert_eq!(sent[0].digest.as_ref().map(|d| d.count), Some(5));
    assert!(settled(&h, "ntfy").await);
    let after = rows(&h, "ntfy").await;
    assert!(
        after.iter().all(|r| r.state == State::Delivered),
        "{after:#?}"
    );
    h.shutdown().await;
}

#[actix_rt::test]
async fn a_rejected_digest_dead_letters_its_members_with_the_reason() {
    let clock = TestClock::at("2026-05-01T12:00:00Z");
    let picky = Script::new(Mode::Fail(PluginError::Rejected {
        status: Some(400),
        reason: "400 Bad Request: message too long".into(),
    }));
    let spec = clock.spec(picky.spec("ntfy").with_digest(digest(30, 300, 3)));
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    for n in 1..=3 {
        import(&h, "Dark", 1, n).await;
    }
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "digest").await == 3
        })
        .await
    );
    clock.advance(31);
    assert!(settled(&h, "ntfy").await);
    let rows = rows(&h, "ntfy").await;
    let id = h.store().public_id(rows[0].seq);
    assert!(rows.iter().all(|r| r.state == State::Dead), "{rows:?}");
    for r in &rows[1..] {
        let reason = r.reason.as_deref().unwrap_or("");
        assert!(
            reason.contains("message too long")
                && reason.contains(&format!("(sent in digest {id})")),
            "{reason}"
        );
    }
    assert_eq!(state(&h, "ntfy").await.dead, 3);
    h.shutdown().await;
}

#[actix_rt::test]
async fn quiet_hours_across_midnight_hold_all_but_the_exceptions_and_end_in_a_summary() {
    let clock = TestClock::at("2026-05-01T22:59:00Z");
    let sink = Script::new(Mode::Ok);
    let q = quiet(
        23 * 60,
        7 * 60 + 30,
        chrono_tz::UTC,
        &[EventName::OnImportFailed],
    );
    let spec = clock.spec(sink.spec("ntfy").with_quiet_hours(q));
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    emit(&h, EventName::AfterMediaAdded, "Before").await;
    assert!(wait_until(LONG, || async { sink.delivered_count() == 1 }).await);

    clock.set("2026-05-01T23:30:00Z");
    let mut held = Vec::new();
    for n in 1..=4 {
        held.push(import(&h, "Succession", 4, n).await);
    }
    clock.set("2026-05-02T03:00:00Z");
    held.push(emit(&h, EventName::OnDownloadFailed, "Tár").await);
    let urgent = emit(&h, EventName::OnImportFailed, "Tár").await;
    assert!(wait_until(LONG, || async { sink.delivered_count() == 2 }).await);
    assert_eq!(
        delivered(&sink)[1].id,
        urgent,
        "an `except` event goes out at once"
    );
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "quiet hours until 07:30").await == 5
        })
        .await
    );

    clock.set("2026-05-02T07:29:00Z");
    emit(&h, EventName::OnImportFailed, "Sync").await;
    assert!(wait_until(LONG, || async { sink.delivered_count() == 3 }).await);
    clock.set("2026-05-02T07:31:00Z");
    assert!(wait_until(LONG, || async { sink.delivered_count() == 4 }).await);
    let sent = delivered(&sink);
    let d = sent[3].digest.as_ref().expect("a summary");
    assert_eq!(d.kind, DigestKind::QuietHours);
    assert_eq!(d.title, "While you were away: 4 imports, 1 failure");
    let members: Vec<_> = d.events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(members, held);
    assert!(settled(&h, "ntfy").await);
    h.shutdown().await;
}

#[actix_rt::test]
async fn quiet_hours_end_on_local_time_across_a_daylight_saving_change() {
    // Europe/Berlin, the night clocks go forward (28 March 2027): 07:30 CEST is 05:30 UTC,
    // an hour earlier than the night before.
    let clock = TestClock::at("2027-03-27T22:30:00Z");
    let sink = Script::new(Mode::Ok);
    let q = quiet(23 * 60, 7 * 60 + 30, chrono_tz::Europe::Berlin, &[]);
    let spec = clock.spec(sink.spec("ntfy").with_quiet_hours(q));
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    let ids = [
        emit(&h, EventName::AfterMediaAdded, "One").await,
        emit(&h, EventName::OnDownloadCompleted, "Two").await,
    ];
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "quiet hours until 07:30").await == 2
        })
        .await
    );
    // 05:31 UTC: 06:31 by winter time (still quiet), 07:31 by the summer time now in force.
    clock.set("2027-03-28T05:31:00Z");
    assert!(wait_until(LONG, || async { sink.delivered_count() == 2 }).await);
    let sent: Vec<_> = delivered(&sink).iter().map(|e| e.id.clone()).collect();
    assert_eq!(sent, ids, "below min_events: the originals, in order");
    assert!(delivered(&sink).iter().all(|e| e.digest.is_none()));
    h.shutdown().await;
}

/// `check` on the real binary: the README's examples pass, mistakes are named with their
/// line, path and a suggestion.
#[test]
fn check_accepts_the_documented_settings_and_names_each_mistake() {
    let bin = env!("CARGO_BIN_EXE_mydia-plugins");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let good = write(
        "good.yaml",
        "hooks: {enabled: false}
plugins:
  telegram:
    enabled: true
    bot_token: '123456:abcdefghijklmnopqrstuvwxyz0123456789'
    chat_id: -1001234567890
    digest: {wait_secs: 30, max_wait_secs: 300, min_events: 3, group_by: [media_item.title]}
  pushover:
    enabled: true
    user_key: uQiRzpo4DXghDmr9QzzfQu27cmVRsG
    api_token: azGDORePK8gMaC0QOYAMyEEuzJnyUi
    quiet_hours:
      from: '23:00'
      to: '07:30'
      timezone: Europe/Berlin
      except: [on_download_failed, on_import_failed, on_plugin_health_changed]
",
    );
    let out = std::process::Command::new(bin)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let bad = write(
        "bad.yaml",
        "hooks: {enabled: false}
plugins:
  log:
    enabled: true
    digest: {wait_secs: 60, max_wait_secs: 10, min_event: 3}
    quiet_hours:
      from: '23:00'
      to: '7:30 am'
      timezone: Europe/Berln
      except: [on_import_faild]
  webhook:
    url: https://example.com/hook
    digest: {}
",
    );
    let out = std::process::Command::new(bin)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    for expected in [
        "plugins.log.digest.min_event",
        "did you mean `min_events`?",
        "bad.yaml:8: plugins.log.quiet_hours.to: `7:30 am` is not a time of day",
        "did you mean `Europe/Berlin`?",
        "plugins.log.quiet_hours.except[0]",
        "did you mean `on_import_failed`?",
        "plugins.webhook.digest",
        "is for notification and chat plugins",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

/// The real ntfy plugin, configured from YAML (with `extra` lines under it), against a
/// mock ntfy server: a season of 12 imports, held, then the digest's one published body.
async fn ntfy_season_body(extra: &str) -> Value {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "m1"})))
        .mount(&server)
        .await;
    let yaml = format!(
        "hooks: {{enabled: false}}
storage: {{backend: memory}}
plugins:
  ntfy:
    enabled: true
    server_url: {}
    allow_insecure_http: true
    allow_private_network: true
    topic: shows
    events: [after_import_completed]
    digest: {{wait_secs: 30, max_wait_secs: 300, min_events: 3}}
{extra}",
        server.uri()
    );
    let config = Config::parse(&yaml, None).expect("valid config");
    let clock = TestClock::at("2026-05-01T12:00:00Z");
    let specs = config
        .plugins
        .iter()
        .map(|p| clock.spec(InstanceSpec::from_config(p)))
        .collect();
    let h = start_with(&config, specs).expect("start");
    for n in 1..=12 {
        import(&h, "Breaking Bad", 2, n).await;
    }
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "digest").await == 12
        })
        .await
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    clock.advance(31);
    assert!(settled(&h, "ntfy").await);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "one message for the season");
    h.shutdown().await;
    serde_json::from_slice(&requests[0].body).unwrap()
}

/// The real ntfy plugin against a mock server: a season is one published message with
/// the digest's title and list.
#[actix_rt::test]
async fn ntfy_publishes_one_message_for_a_season() {
    let body = ntfy_season_body("").await;
    assert_eq!(body["title"], "Breaking Bad S02: 12 episodes imported");
    let message = body["message"].as_str().unwrap();
    assert_eq!(message.lines().count(), 11, "{message}");
    assert!(
        message.starts_with("Breaking Bad (2008) S02E01"),
        "{message}"
    );
    assert!(message.ends_with("and 2 more"), "{message}");
}

/// `templates.digest` writes the digest's message from the digest itself (its count,
/// title, lines and events); the events' own template is not used for it.
#[actix_rt::test]
async fn a_digest_template_writes_the_digest_message() {
    let body = ntfy_season_body(
        "    templates:
      default: {title: \"one event\"}
      digest:
        title: \"{{ digest.count }} new: {{ digest.title }}\"
        message: \"{{ digest.events | map(attribute='data.episode.episode_number') | join(', ') }}\"
",
    )
    .await;
    assert_eq!(
        body["title"],
        "12 new: Breaking Bad S02: 12 episodes imported"
    );
    assert_eq!(body["message"], "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12");
}

/// The real binary, killed (-9) while a digest is held: the next start regroups the held
/// events from the store and sends them as one message.
#[actix_rt::test]
async fn the_binary_sends_a_digest_held_across_a_kill() {
    use crate::support::daemon::{free_port, Service};
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let ntfy = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "m1"})))
        .mount(&ntfy)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let write = |wait: u64| {
        let text = format!(
            "server: {{listen: 127.0.0.1:{port}}}\nhooks: {{enabled: false}}\n\
             storage: {{path: store.sqlite3}}\n\
             plugins:\n  ntfy:\n    enabled: true\n    server_url: {}\n    topic: shows\n    \
             allow_insecure_http: true\n    allow_private_network: true\n    \
             events: [after_import_completed]\n    \
             digest: {{wait_secs: {wait}, max_wait_secs: {wait}, min_events: 3}}\n",
            ntfy.uri()
        );
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, text).unwrap();
        path
    };
    let path = write(3600);
    let mut service = Service::spawn(&path, port);
    assert!(service.ready().await);
    let http = reqwest::Client::new();
    for n in 1..=5 {
        let body = json!({"event": "after_import_completed", "id": format!("fargo-{n}"),
                          "data": episode("Fargo", 1, n)});
        let r = http
            .post(format!("{}/api/v1/events", service.base))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let held = format!("{}/api/v1/deliveries?state=held", service.base);
    assert!(
        wait_until(LONG, || async {
            let v: Value = http.get(&held).send().await.unwrap().json().await.unwrap();
            v["deliveries"].as_array().is_some_and(|i| i.len() == 5)
        })
        .await
    );
    service.kill9();
    assert!(ntfy.received_requests().await.unwrap().is_empty());

    // Started again with a short wait: the held events are regrouped and sent as one.
    let path = write(1);
    let service = Service::spawn(&path, port);
    assert!(service.ready().await);
    assert!(
        wait_until(LONG, || async {
            !ntfy.received_requests().await.unwrap().is_empty()
        })
        .await
    );
    let all = format!("{}/api/v1/deliveries?plugin=ntfy", service.base);
    assert!(
        wait_until(LONG, || async {
            let v: Value = http.get(&all).send().await.unwrap().json().await.unwrap();
            v["deliveries"]
                .as_array()
                .is_some_and(|i| i.iter().all(|d| d["state"] == "delivered"))
        })
        .await
    );
    let requests = ntfy.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["title"], "Fargo S01: 5 episodes imported");
    let v: Value = http.get(&all).send().await.unwrap().json().await.unwrap();
    let items = v["deliveries"].as_array().unwrap();
    let carrier = items.iter().find(|d| d["event_id"] == "fargo-1").unwrap();
    assert!(
        items.iter().all(|d| d["digest_id"] == carrier["id"]),
        "every row names the digest: {items:#?}"
    );
}

#[actix_rt::test]
async fn a_retry_sends_one_held_delivery_now_and_leaves_the_rest_waiting() {
    let clock = TestClock::at("2026-05-01T12:00:00Z");
    let sink = Script::new(Mode::Ok);
    let spec = clock.spec(sink.spec("ntfy").with_digest(digest(30, 300, 3)));
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    let ids = [
        import(&h, "Ozark", 1, 1).await,
        import(&h, "Ozark", 1, 2).await,
    ];
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "digest").await == 2
        })
        .await
    );
    let second = h.store().public_id(rows(&h, "ntfy").await[1].seq);
    h.retry(&second)
        .await
        .expect("a held delivery can be retried");
    assert!(wait_until(LONG, || async { sink.delivered_count() == 1 }).await);
    assert_eq!(delivered(&sink)[0].id, ids[1]);
    assert_eq!(
        held_with(&h, "ntfy", "digest").await,
        1,
        "the other still waits"
    );
    clock.advance(31);
    assert!(wait_until(LONG, || async { sink.delivered_count() == 2 }).await);
    assert_eq!(delivered(&sink)[1].id, ids[0]);
    assert!(settled(&h, "ntfy").await);
    h.shutdown().await;
}

#[actix_rt::test]
async fn overflow_starts_at_ten_minutes_of_the_rate_limit_by_default() {
    let clock = TestClock::at("2026-05-01T12:00:00Z");
    let sink = Script::new(Mode::Ok);
    // One a minute: ten minutes of it is 10 waiting deliveries.
    let spec = clock.spec(
        sink.spec("ntfy")
            .with_rate_limit(1, 1)
            .with_digest(digest(1, 10, 2)),
    );
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    for i in 0..11 {
        emit(&h, EventName::AfterMediaAdded, &format!("Film {i}")).await;
    }
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "digest").await == 11
        })
        .await
    );
    clock.advance(2);
    // The first goes out at once; ten wait a minute each for the rate limit.
    assert!(wait_until(LONG, || async { sink.delivered_count() == 1 }).await);
    assert!(wait_until(LONG, || async { state(&h, "ntfy").await.queued == 10 }).await);
    emit(&h, EventName::AfterMediaAdded, "Film 11").await;
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "digest").await == 11
        })
        .await,
        "the queue joins the digest: {:#?}",
        rows(&h, "ntfy").await
    );
    assert_eq!(state(&h, "ntfy").await.queued, 0);
    h.shutdown().await;
}

#[actix_rt::test]
async fn a_digest_that_closes_in_quiet_hours_waits_for_the_summary() {
    let clock = TestClock::at("2026-05-01T22:59:30Z");
    let sink = Script::new(Mode::Ok);
    let q = quiet(23 * 60, 7 * 60 + 30, chrono_tz::UTC, &[]);
    let spec = clock.spec(
        sink.spec("ntfy")
            .with_digest(digest(30, 300, 3))
            .with_quiet_hours(q),
    );
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(import(&h, "Severance", 2, n).await);
    }
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "digest").await == 3
        })
        .await
    );
    // The group is due at 23:00:00, inside the window: it joins the quiet hold.
    clock.set("2026-05-01T23:00:05Z");
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "quiet hours until 07:30").await == 3
        })
        .await
    );
    ids.push(emit(&h, EventName::OnDownloadFailed, "Nope").await);
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "ntfy", "quiet hours until 07:30").await == 4
        })
        .await
    );
    assert!(delivered(&sink).is_empty());
    clock.set("2026-05-02T07:30:00Z");
    assert!(wait_until(LONG, || async { sink.delivered_count() == 1 }).await);
    let d = delivered(&sink)[0].digest.clone().expect("a summary");
    assert_eq!(d.title, "While you were away: 3 imports, 1 failure");
    let members: Vec<_> = d.events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(members, ids);
    assert!(settled(&h, "ntfy").await);
    h.shutdown().await;
}

#[actix_rt::test]
async fn quiet_hours_last_an_hour_longer_the_night_clocks_go_back() {
    // Europe/Berlin, 31 October 2027: 03:00 CEST becomes 02:00 CET, so 07:30 is 06:30 UTC.
    let clock = TestClock::at("2027-10-30T22:30:00Z");
    let night = Script::new(Mode::Ok);
    let probe = Script::new(Mode::Ok);
    let q = quiet(23 * 60, 7 * 60 + 30, chrono_tz::Europe::Berlin, &[]);
    let specs = vec![
        clock.spec(
            night
                .spec("night")
                .with_events([EventName::AfterMediaAdded])
                .with_quiet_hours(q),
        ),
        // Closing its group shows the supervisor has looked at the clock since it moved.
        clock.spec(
            probe
                .spec("probe")
                .with_events([EventName::OnDownloadCompleted])
                .with_digest(digest(1, 1, 2)),
        ),
    ];
    let h = start_with(&fast_config(), specs).expect("start");
    emit(&h, EventName::AfterMediaAdded, "One").await;
    emit(&h, EventName::AfterMediaAdded, "Two").await;
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "night", "quiet hours until 07:30").await == 2
        })
        .await
    );
    // 06:29 UTC is 07:29 CET: still quiet (by summer time it would be 08:29, and over).
    clock.set("2027-10-31T06:29:00Z");
    emit(&h, EventName::OnDownloadCompleted, "Probe").await;
    assert!(
        wait_until(LONG, || async {
            held_with(&h, "probe", "digest").await == 1
        })
        .await
    );
    clock.set("2027-10-31T06:29:05Z");
    assert!(settled(&h, "probe").await);
    // Store writes are in order: the tick that released the probe saw `night` quiet.
    assert_eq!(
        held_with(&h, "night", "quiet hours until 07:30").await,
        2,
        "{:?}",
        rows(&h, "night").await
    );
    assert!(night.delivered_ids().is_empty());
    clock.set("2027-10-31T06:31:00Z");
    assert!(wait_until(LONG, || async { night.delivered_count() == 2 }).await);
    h.shutdown().await;
}
