//! The enrichment stage: after hooks, before delivery; merged in order; fail-soft; bounded.

use std::time::{Duration, Instant};

use mydia_plugins::event::EventName;
use mydia_plugins::plugins::PluginError;
use mydia_plugins::start_with;
use serde_json::json;

use crate::data;
use crate::support::scripted::{Mode, Script};
use crate::support::{fast_config, wait_until};

const LONG: Duration = Duration::from_secs(5);

#[actix_rt::test]
async fn enrichment_fields_reach_the_caller_and_every_delivery_plugin() {
    let cover = Script::new(Mode::Ok);
    let sink = Script::new(Mode::Ok);
    let h = start_with(
        &fast_config(),
        vec![
            cover.enricher_spec(
                "anilist",
                json!({"media_item": {"cover_url": "https://img/cover.jpg", "anilist_id": 199}}),
            ),
            sink.spec("discord"),
        ],
    )
    .expect("start");
    let done = h
        .emit(
            EventName::AfterMediaAdded,
            data!({"media_item": {"title": "Spirited Away", "year": 2001}}),
        )
        .await
        .unwrap();
    let item = done.event.value_at("media_item").unwrap().clone();
    assert_eq!(
        item,
        json!({"title": "Spirited Away", "year": 2001, "cover_url": "https://img/cover.jpg", "anilist_id": 199})
    );
    assert_eq!(done.plugins, 1, "the enricher is not a delivery target");
    assert!(wait_until(LONG, || async { sink.delivered_count() == 1 }).await);
    let delivered = sink.delivered.lock().unwrap()[0].clone();
    assert_eq!(
        delivered.str_at("media_item.cover_url"),
        Some("https://img/cover.jpg")
    );
    assert_eq!(cover.received.lock().unwrap().len(), 1, "asked once");
    h.shutdown().await;
}

#[actix_rt::test]
async fn several_enrichers_merge_in_config_order() {
    let first = Script::new(Mode::Ok);
    let second = Script::new(Mode::Ok);
    let h = start_with(
        &fast_config(),
        vec![
            first.enricher_spec("first", json!({"media_item": {"poster": "a", "score": 80}})),
            second.enricher_spec(
                "second",
                json!({"media_item": {"poster": "b"}, "extra": true}),
            ),
        ],
    )
    .expect("start");
    let done = h
        .emit(
            EventName::AfterMediaAdded,
            data!({"media_item": {"title": "X"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(done.event.data.clone()),
        json!({"media_item": {"title": "X", "poster": "b", "score": 80}, "extra": true})
    );
    h.shutdown().await;
}

#[actix_rt::test]
async fn a_failing_or_hanging_enricher_leaves_the_event_as_it_was_and_delivery_goes_on() {
    let broken = Script::new(Mode::Fail(PluginError::Transient {
        status: Some(502),
        reason: "502".into(),
    }));
    let hung = Script::new(Mode::Hang);
    let sink = Script::new(Mode::Ok);
    let h = start_with(
        &fast_config(),
        vec![
            broken.enricher_spec("broken", json!({"media_item": {"never": 1}})),
            hung.enricher_spec("hung", json!({"media_item": {"never": 2}}))
                .with_timeout(Duration::from_millis(150)),
            sink.spec("ntfy"),
        ],
    )
    .expect("start");
    let started = Instant::now();
    let done = h
        .emit(
            EventName::OnImportFailed,
            data!({"media_item": {"title": "X"}}),
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the enricher's timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(
        serde_json::Value::Object(done.event.data.clone()),
        json!({"media_item": {"title": "X"}})
    );
    assert!(wait_until(LONG, || async { sink.delivered_count() == 1 }).await);
    // Enrichment is asked once, never queued for a retry.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(broken.received.lock().unwrap().len(), 1);
    assert_eq!(hung.received.lock().unwrap().len(), 1);
    let status = h.status().await;
    let b = status.iter().find(|p| p.name == "broken").unwrap();
    assert_eq!((b.failed, b.queued), (1, 0), "{b:?}");
    h.shutdown().await;
}

#[actix_rt::test]
async fn enrichment_only_runs_for_subscribed_events_and_sync_mode_reports_only_deliveries() {
    let cover = Script::new(Mode::Ok);
    let sink = Script::new(Mode::Ok);
    let h = start_with(
        &fast_config(),
        vec![
            cover
                .enricher_spec("anilist", json!({"media_item": {"cover_url": "c"}}))
                .with_events([EventName::AfterMediaAdded]),
            sink.spec("ntfy"),
        ],
    )
    .expect("start");
    let done = h
        .emit_sync(
            EventName::OnDownloadCompleted,
            data!({"media_item": {"title": "X"}}),
        )
        .await
        .unwrap();
    assert!(done.event.str_at("media_item.cover_url").is_none());
    assert!(cover.received.lock().unwrap().is_empty());
    let reports = done.deliveries.unwrap();
    assert_eq!(
        reports
            .iter()
            .map(|r| r.plugin.as_str())
            .collect::<Vec<_>>(),
        ["ntfy"]
    );
    let done = h
        .emit_sync(
            EventName::AfterMediaAdded,
            data!({"media_item": {"title": "X"}}),
        )
        .await
        .unwrap();
    assert_eq!(done.event.str_at("media_item.cover_url"), Some("c"));
    h.shutdown().await;
}
