//! `/metrics` against the real server: the names the issue lists, with values that match
//! what happened (events, a rejection, deliveries, a misconfigured plugin, hook timings,
//! store commits).

use std::time::Duration;

use mydia_plugins::config::{Config, StorageBackend, StorageConfig};
use mydia_plugins::event::EventName;
use mydia_plugins::plugins::PluginError;
use mydia_plugins::start_with;

use crate::data;
use crate::support::scripted::{Mode, Script};
use crate::support::{fast_config, state, wait_until};

const LONG: Duration = Duration::from_secs(20);

/// The value of the sample `name{labels}` (labels exactly as written by the encoder).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[actix_rt::test]
async fn metrics_show_what_happened_under_their_documented_names() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks");
    std::fs::create_dir_all(hooks.join("after_media_added")).unwrap();
    std::fs::write(
        hooks.join("after_media_added/10_no_cams.lua"),
        "function hook(e) if e.data.cam then reject('no cam releases') end return e end",
    )
    .unwrap();
    let mut config: Config = fast_config();
    config.hooks.enabled = true;
    config.hooks.directory = hooks;
    config.storage = StorageConfig {
        backend: StorageBackend::Sqlite,
        path: dir.path().join("store.sqlite3"),
        ..StorageConfig::default()
    };
    let sink = Script::new(Mode::Ok);
    let picky = Script::new(Mode::Fail(PluginError::Rejected {
        status: Some(400),
        reason: "400 Bad Request".into(),
    }));
    let broken = Script::new(Mode::Fail(PluginError::Misconfigured {
        status: Some(401),
        reason: "401 Unauthorized".into(),
    }));
    let only = || vec![EventName::AfterMediaAdded];
    let specs = vec![
        sink.spec("sink").with_events(only()),
        broken.spec("broken").with_events(only()),
        picky
            .spec("picky")
            .with_events(vec![EventName::OnDownloadFailed]),
    ];
    let h = start_with(&config, specs).expect("start");
    let base = crate::support::serve_api(&h);

    for i in 0..3 {
        h.emit(EventName::AfterMediaAdded, data!({"n": i}))
            .await
            .unwrap();
    }
    h.emit(EventName::OnDownloadFailed, data!({}))
        .await
        .unwrap();
    assert!(wait_until(LONG, || async { state(&h, "picky").await.dead == 1 }).await);
    let rejected = h
        .emit(EventName::AfterMediaAdded, data!({"cam": true}))
        .await;
    assert!(rejected.is_err(), "{rejected:?}");
    assert!(wait_until(LONG, || async { sink.delivered_count() == 3 }).await);
    // Its first attempt found it misconfigured; all three wait in the store.
    assert!(wait_until(LONG, || async { state(&h, "broken").await.held == 3 }).await);

    let answer = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(answer.status(), 200);
    let content_type = answer.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = answer.text().await.unwrap();
    let at =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));

    assert_eq!(at("mydia_events_total{event=\"after_media_added\"}"), 3.0);
    assert_eq!(at("mydia_events_total{event=\"on_download_failed\"}"), 1.0);
    assert_eq!(at("mydia_events_total{event=\"on_import_failed\"}"), 0.0);
    assert_eq!(
        at("mydia_events_rejected_total{hook=\"after_media_added/10_no_cams.lua\"}"),
        1.0
    );
    assert_eq!(
        at("mydia_deliveries_total{plugin=\"sink\",type=\"scripted\",outcome=\"delivered\"}"),
        3.0
    );
    assert_eq!(
        at("mydia_plugin_state{plugin=\"sink\",state=\"closed\"}"),
        1.0
    );
    assert_eq!(
        at("mydia_plugin_state{plugin=\"broken\",state=\"misconfigured\"}"),
        1.0
    );
    assert_eq!(
        at("mydia_plugin_state{plugin=\"broken\",state=\"closed\"}"),
        0.0
    );
    assert_eq!(at("mydia_deliveries_held{plugin=\"broken\"}"), 3.0);
    // Its first attempts found it misconfigured (one or more were running at once).
    let failed = state(&h, "broken").await.failed;
    assert!(failed >= 1);
    assert_eq!(
        at("mydia_deliveries_total{plugin=\"broken\",type=\"scripted\",outcome=\"failed\"}"),
        failed as f64
    );
    assert_eq!(at("mydia_plugin_restarts_total{plugin=\"sink\"}"), 0.0);
    // Four calls of the hook (three passed, one rejected), each timed.
    assert_eq!(
        at("mydia_hook_duration_seconds_count{hook=\"after_media_added/10_no_cams.lua\"}"),
        4.0
    );
    assert_eq!(
        at("mydia_hook_duration_seconds_bucket{le=\"+Inf\",hook=\"after_media_added/10_no_cams.lua\"}"),
        4.0
    );
    assert!(at("mydia_store_commit_seconds_count") >= 1.0, "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    h.shutdown().await;
}
