//! Supervision end to end with scripted plugins: restarts, the breaker, pauses, isolation, no loss.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mydia_plugins::event::EventName;
use mydia_plugins::plugins::PluginError;
use mydia_plugins::{start_with, Handle};

use crate::data;
use crate::support::scripted::{Mode, Script};
use crate::support::{emit_n, fast_config, state, wait_until};

const LONG: Duration = Duration::from_secs(5);

#[actix_rt::test]
async fn panicking_plugin_restarts_with_backoff_then_trips_open_then_recovers() {
    let bad = Script::new(Mode::Panic);
    let observer = Script::new(Mode::Ok);
    let mut cfg = fast_config();
    // Let the restart budget, not the breaker's failure rate, be what trips it.
    cfg.supervision.breaker_min_calls = 100;
    let h = start_with(
        &cfg,
        vec![
            bad.spec("bad"),
            observer
                .spec("observer")
                .with_events([EventName::OnPluginHealthChanged]),
        ],
    )
    .expect("start");
    // max_restarts = 3: the first event crashes it three times (three restarts) and is
    // dead-lettered as a poison event; the second crashes it a fourth time: budget spent, open.
    let mut ids = emit_n(&h, 1).await;
    assert!(
        wait_until(LONG, || async { state(&h, "bad").await.dead == 1 }).await,
        "{:?}",
        state(&h, "bad").await
    );
    assert_eq!(state(&h, "bad").await.state, "closed");
    ids.extend(emit_n(&h, 1).await);
    assert!(
        wait_until(LONG, || async { state(&h, "bad").await.state == "open" }).await,
        "{:?}",
        state(&h, "bad").await
    );
    let s = state(&h, "bad").await;
    assert_eq!(s.restarts, 3, "{s:?}");
    assert!(
        s.last_error
            .as_deref()
            .unwrap_or("")
            .contains("scripted panic"),
        "{s:?}"
    );
    assert_eq!((s.dead, s.queued), (1, 1), "{s:?}");
    // Every restart built a fresh instance (1 at start + 3 restarts); none while open.
    assert_eq!(*bad.built.lock().unwrap(), 4);

    // The other plugin heard about it.
    assert!(wait_until(LONG, || async { observer.delivered_count() >= 1 }).await);
    let health = observer.delivered.lock().unwrap()[0].clone();
    assert_eq!(health.str_at("plugin"), Some("bad"));
    assert_eq!(health.str_at("to"), Some("open"));
    assert!(
        health
            .str_at("reason")
            .unwrap()
            .contains("restart budget spent"),
        "{health:?}"
    );

    // It behaves again: after the cooldown the held event is the probe; success closes it.
    bad.set(Mode::Ok);
    assert!(
        wait_until(LONG, || async { state(&h, "bad").await.state == "closed" }).await,
        "{:?}",
        state(&h, "bad").await
    );
    assert_eq!(bad.delivered_ids(), vec![ids[1].clone()]);
    assert!(wait_until(LONG, || async { observer.delivered_count() >= 2 }).await);
    assert_eq!(
        observer.delivered.lock().unwrap()[1].str_at("to"),
        Some("closed")
    );
    let later = emit_n(&h, 1).await;
    assert!(wait_until(LONG, || async { bad.delivered_count() == 2 }).await);
    assert_eq!(bad.delivered_ids()[1], later[0]);
    h.shutdown().await;
}

#[actix_rt::test]
async fn a_plugin_that_blocks_its_thread_does_not_delay_another() {
    let blocker = Script::new(Mode::Block(Duration::from_secs(3)));
    let fast = Script::new(Mode::Ok);
    let h = start_with(
        &fast_config(),
        vec![blocker.spec("blocker"), fast.spec("fast")],
    )
    .expect("start");
    let started = Instant::now();
    let ids = emit_n(&h, 5).await;
    assert!(wait_until(LONG, || async { fast.delivered_count() == 5 }).await);
    // All five reached the healthy plugin long before the blocked thread woke up.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(fast.delivered_ids(), ids);
    // The blocked actor missed its timeout and a ping: it was restarted on a fresh arbiter.
    assert!(
        wait_until(LONG, || async { state(&h, "blocker").await.restarts >= 1 }).await,
        "{:?}",
        state(&h, "blocker").await
    );
    h.shutdown().await;
}

#[actix_rt::test]
async fn a_plugin_that_never_answers_times_out_and_opens_without_stalling_others() {
    let hung = Script::new(Mode::Hang);
    let fast = Script::new(Mode::Ok);
    let mut cfg = fast_config();
    cfg.supervision.delivery_timeout = Duration::from_millis(100);
    let specs = vec![
        hung.spec("hung").with_timeout(Duration::from_millis(100)),
        fast.spec("fast"),
    ];
    let h = start_with(&cfg, specs).expect("start");
    let res = h
        .emit_sync(
            EventName::AfterMediaAdded,
            data!({"media_item": {"title": "X"}}),
        )
        .await
        .unwrap();
    let reports = res.deliveries.unwrap();
    let hung_r = reports.iter().find(|r| r.plugin == "hung").unwrap();
    let fast_r = reports.iter().find(|r| r.plugin == "fast").unwrap();
    assert_eq!(fast_r.status, "delivered");
    assert_eq!(hung_r.error_kind, Some("timeout"), "{hung_r:?}");
    assert_eq!(
        hung_r.status, "queued",
        "a timed-out delivery is kept for a retry: {hung_r:?}"
    );
    // It answers pings (its thread is free), so it is not restarted, but the breaker opens.
    assert!(
        wait_until(LONG, || async { state(&h, "hung").await.state == "open" }).await,
        "{:?}",
        state(&h, "hung").await
    );
    assert_eq!(state(&h, "hung").await.restarts, 0);
    h.shutdown().await;
}

#[actix_rt::test]
async fn failing_server_opens_the_breaker_and_nothing_is_lost_when_it_recovers() {
    let flaky = Script::new(Mode::Fail(PluginError::Transient {
        status: Some(503),
        reason: "503 Service Unavailable".into(),
    }));
    let h = start_with(&fast_config(), vec![flaky.spec("flaky")]).expect("start");
    let ids = emit_n(&h, 6).await;
    assert!(
        wait_until(LONG, || async { state(&h, "flaky").await.state == "open" }).await,
        "{:?}",
        state(&h, "flaky").await
    );
    let s = state(&h, "flaky").await;
    assert!(s.queued >= 1 && s.delivered == 0, "{s:?}");
    assert_eq!(
        s.last_error.as_deref(),
        Some("transient failure: 503 Service Unavailable")
    );

    flaky.set(Mode::Ok);
    assert!(
        wait_until(LONG, || async { flaky.delivered_count() == 6 }).await,
        "{:?}",
        state(&h, "flaky").await
    );
    let s = state(&h, "flaky").await;
    assert_eq!(s.state, "closed", "{s:?}");
    assert_eq!((s.queued, s.dead), (0, 0), "{s:?}");
    // Every event arrived exactly once, in the order it was emitted.
    assert_eq!(flaky.delivered_ids(), ids);
    h.shutdown().await;
}

#[actix_rt::test]
async fn rate_limit_pauses_without_counting_a_failure_and_keeps_order() {
    let limited = Script::new(Mode::Fail(PluginError::RateLimited {
        retry_after: Some(Duration::from_millis(300)),
    }));
    let h = start_with(&fast_config(), vec![limited.spec("limited")]).expect("start");
    let ids = emit_n(&h, 3).await;
    assert!(
        wait_until(LONG, || async {
            let s = state(&h, "limited").await;
            // Everything answered 429 and sits in the backlog (none still in flight).
            s.paused == Some("rate_limited") && s.in_flight == 0 && s.queued == 3
        })
        .await
    );
    limited.set(Mode::Ok);
    let paused_at = Instant::now();
    assert!(wait_until(LONG, || async { limited.delivered_count() == 3 }).await);
    assert!(
        paused_at.elapsed() >= Duration::from_millis(150),
        "resumed before Retry-After: {:?}",
        paused_at.elapsed()
    );
    assert_eq!(limited.delivered_ids(), ids);
    let s = state(&h, "limited").await;
    assert_eq!(s.state, "closed", "a 429 is not a breaker failure: {s:?}");
    h.shutdown().await;
}

#[actix_rt::test]
async fn unauthorized_marks_misconfigured_until_a_connection_test_passes() {
    let bad_token = Script::new(Mode::Fail(PluginError::Misconfigured {
        status: Some(401),
        reason: "401 Unauthorized: check auth_token".into(),
    }));
    let observer = Script::new(Mode::Ok);
    let h = start_with(
        &fast_config(),
        vec![
            bad_token.spec("ntfy"),
            observer
                .spec("observer")
                .with_events([EventName::OnPluginHealthChanged]),
        ],
    )
    .expect("start");
    let mut ids = emit_n(&h, 3).await;
    assert!(
        wait_until(LONG, || async {
            let s = state(&h, "ntfy").await;
            s.state == "misconfigured" && s.in_flight == 0
        })
        .await
    );
    // No retry storm: what was already in flight got its 401; nothing after is sent.
    let calls = bad_token.received.lock().unwrap().len();
    assert!((1..=3).contains(&calls), "{calls}");
    ids.extend(emit_n(&h, 5).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(bad_token.received.lock().unwrap().len(), calls);
    // Held, not dropped: all eight wait in the store for the fix.
    assert!(
        wait_until(LONG, || async { state(&h, "ntfy").await.held == 8 }).await,
        "{:?}",
        state(&h, "ntfy").await
    );
    let s = state(&h, "ntfy").await;
    assert_eq!(
        s.misconfigured_reason.as_deref(),
        Some("401 Unauthorized: check auth_token")
    );
    assert!(wait_until(LONG, || async { observer.delivered_count() == 1 }).await);
    assert_eq!(
        observer.delivered.lock().unwrap()[0].str_at("to"),
        Some("misconfigured")
    );

    assert!(h.test_connection("ntfy").await.is_err());
    bad_token.set(Mode::Ok);
    let report = h.test_connection("ntfy").await.expect("test passes");
    assert_eq!(report.detail, "scripted ok");
    assert_eq!(state(&h, "ntfy").await.state, "closed");
    ids.extend(emit_n(&h, 1).await);
    // What was held goes out once it is healthy, in order, followed by the new one.
    assert!(wait_until(LONG, || async { bad_token.delivered_count() == 9 }).await);
    assert_eq!(bad_token.delivered_ids(), ids);
    assert_eq!(state(&h, "ntfy").await.held, 0);
    h.shutdown().await;
}

#[actix_rt::test]
async fn emit_sync_reports_each_plugin_and_disabled_ones_get_nothing() {
    let a = Script::new(Mode::Ok);
    let b = Script::new(Mode::Fail(PluginError::Rejected {
        status: Some(400),
        reason: "400: bad message".into(),
    }));
    let off = Script::new(Mode::Ok);
    let other_event = Script::new(Mode::Ok);
    let h = start_with(
        &fast_config(),
        vec![
            a.spec("a"),
            b.spec("b"),
            off.spec("off").with_enabled(false),
            other_event
                .spec("other")
                .with_events([EventName::OnImportFailed]),
        ],
    )
    .expect("start");
    let res = h
        .emit_sync(EventName::AfterMediaAdded, data!({"x": 1}))
        .await
        .unwrap();
    let mut reports = res.deliveries.unwrap();
    reports.sort_by(|x, y| x.plugin.cmp(&y.plugin));
    let summary: Vec<_> = reports
        .iter()
        .map(|r| (r.plugin.as_str(), r.status, r.error_kind))
        .collect();
    assert_eq!(
        summary,
        vec![("a", "delivered", None), ("b", "failed", Some("rejected"))]
    );
    assert_eq!(res.plugins, 2);
    // A 4xx for one message is not retried and does not hurt the instance's health.
    assert_eq!(state(&h, "b").await.state, "closed");
    assert_eq!(state(&h, "off").await.state, "disabled");
    assert_eq!(
        *off.built.lock().unwrap(),
        0,
        "a disabled plugin is never started"
    );
    assert!(other_event.received.lock().unwrap().is_empty());
    h.shutdown().await;
}

#[actix_rt::test]
async fn shutdown_waits_for_in_flight_deliveries_and_refuses_new_events() {
    let slow = Script::new(Mode::Block(Duration::from_millis(200)));
    let mut cfg = fast_config();
    cfg.supervision.delivery_timeout = Duration::from_secs(2);
    let h = start_with(
        &cfg,
        vec![slow.spec("slow").with_timeout(Duration::from_secs(2))],
    )
    .expect("start");
    emit_n(&h, 1).await;
    assert!(wait_until(LONG, || async { state(&h, "slow").await.in_flight == 1 }).await);
    let report = h.shutdown().await;
    assert_eq!(report.abandoned_in_flight, 0, "{report:?}");
    let again = h.emit(EventName::AfterMediaAdded, data!({})).await;
    assert!(
        matches!(again, Err(mydia_plugins::bus::EmitError::ShuttingDown)),
        "{again:?}"
    );
    let _ = Arc::clone(&slow);
}

#[actix_rt::test]
async fn rate_limit_spaces_deliveries_and_keeps_order() {
    let sink = Script::new(Mode::Ok);
    // 120 per minute = one per 500 ms, after a burst of 2. The spacing is wide so that a
    // loaded machine's scheduling delay (tens of ms) cannot look like a rate-limit wait.
    let h = start_with(
        &fast_config(),
        vec![sink.spec("limited").with_rate_limit(120, 2)],
    )
    .expect("start");
    let ids = emit_n(&h, 4).await;
    assert!(wait_until(LONG, || async { sink.delivered_count() == 4 }).await);
    assert_eq!(sink.delivered_ids(), ids);
    let at: Vec<Instant> = sink
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(t, _)| *t)
        .collect();
    let gap = |a: usize, b: usize| at[b].duration_since(at[a]);
    assert!(
        gap(0, 1) < Duration::from_millis(250),
        "the burst goes at once: {:?}",
        gap(0, 1)
    );
    assert!(
        gap(1, 2) >= Duration::from_millis(400),
        "then one per 500 ms: {:?}",
        gap(1, 2)
    );
    assert!(gap(2, 3) >= Duration::from_millis(400), "{:?}", gap(2, 3));
    let s = state(&h, "limited").await;
    assert_eq!((s.state, s.failed, s.dead), ("closed", 0, 0), "{s:?}");
    h.shutdown().await;
}

#[actix_rt::test]
async fn the_actor_runs_at_most_max_in_flight_and_the_rest_wait_in_order() {
    let slow = Script::new(Mode::Slow(Duration::from_millis(150)));
    let mut spec = slow.spec("slow");
    spec.max_in_flight = Some(2);
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    let ids = emit_n(&h, 9).await;
    // Two run; the supervisor hands the actor two more to queue; five wait in the backlog;
    // the status shows the two running and the seven waiting.
    assert!(
        wait_until(LONG, || async {
            let s = state(&h, "slow").await;
            (s.in_flight, s.queued) == (2, 7)
        })
        .await,
        "{:?}",
        state(&h, "slow").await
    );
    assert!(wait_until(LONG, || async { slow.delivered_count() == 9 }).await);
    use std::sync::atomic::Ordering;
    assert_eq!(
        slow.max_running.load(Ordering::SeqCst),
        2,
        "never more than max_in_flight calls at once, and the limit is used"
    );
    let started = slow.received_ids();
    assert_eq!(started, ids, "calls start in emit order");
    assert_eq!(slow.delivered_ids(), ids);
    let s = state(&h, "slow").await;
    assert_eq!((s.in_flight, s.queued, s.delivered), (0, 0, 9), "{s:?}");
    h.shutdown().await;
}

/// A slow plugin running one delivery at a time (1 running + 7 queued in its actor), with
/// `first` events handed over and the supervisor already past them: its backlog holds
/// the rest, so events emitted next wait in the hand-over without waking the supervisor.
async fn backlogged(first: usize) -> (Handle, Arc<Script>, Vec<String>) {
    let slow = Script::new(Mode::Slow(Duration::from_millis(5)));
    let mut spec = slow.spec("slow");
    spec.max_in_flight = Some(1);
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    let ids = emit_n(&h, first).await;
    // The first call started: the supervisor took the first events (a status request
    // would also take the hand-over, so it is not used here).
    assert!(wait_until(LONG, || async { !slow.received.lock().unwrap().is_empty() }).await);
    (h, slow, ids)
}

#[actix_rt::test]
async fn events_handed_over_while_backlogged_go_out_when_the_backlog_drains() {
    // Nothing else asks for the waiting events: they must go out when the backlog
    // empties, after it, in order.
    let (h, slow, mut ids) = backlogged(12).await;
    ids.extend(emit_n(&h, 20).await);
    assert!(
        wait_until(LONG, || async { slow.delivered_count() == 32 }).await,
        "delivered {} of 32",
        slow.delivered_count()
    );
    assert_eq!(slow.delivered_ids(), ids);
    h.shutdown().await;
}

#[actix_rt::test]
async fn status_counts_events_still_waiting_in_the_hand_over() {
    let (h, slow, _) = backlogged(12).await;
    emit_n(&h, 10).await;
    // Asked at once (the ten are not taken yet unless the status request takes them):
    // every event is delivered, running, or counted as waiting.
    let s = state(&h, "slow").await;
    assert_eq!(
        s.delivered as usize + s.in_flight as usize + s.queued,
        22,
        "{s:?}"
    );
    assert!(wait_until(LONG, || async { slow.delivered_count() == 22 }).await);
    h.shutdown().await;
}

#[actix_rt::test]
async fn emit_sync_waits_behind_events_handed_over_before_it() {
    let (h, slow, mut ids) = backlogged(12).await;
    ids.extend(emit_n(&h, 10).await);
    let sync = h
        .emit_sync(
            EventName::AfterMediaAdded,
            data!({"media_item": {"title": "Last"}}),
        )
        .await
        .unwrap();
    // Behind a backlog, emit_sync answers at once that the delivery is held.
    let reports = sync.deliveries.expect("emit_sync reports");
    assert_eq!(reports[0].status, "queued", "{reports:?}");
    ids.push(sync.event.id.clone());
    assert!(wait_until(LONG, || async { slow.delivered_count() == 23 }).await);
    assert_eq!(
        slow.delivered_ids(),
        ids,
        "the sync event went out after every event emitted before it"
    );
    h.shutdown().await;
}

#[actix_rt::test]
async fn after_a_failure_the_deliveries_queued_in_the_actor_are_not_sent() {
    // One at a time: the first answers 429, and the two the actor holds behind it must
    // wait for the pause instead of hitting a server that just asked us to slow down.
    let limited = Script::new(Mode::Fail(PluginError::RateLimited {
        retry_after: Some(Duration::from_millis(400)),
    }));
    let mut spec = limited.spec("limited");
    spec.max_in_flight = Some(1);
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    let ids = emit_n(&h, 3).await;
    assert!(
        wait_until(LONG, || async {
            let s = state(&h, "limited").await;
            s.paused == Some("rate_limited") && s.in_flight == 0 && s.queued == 3
        })
        .await
    );
    limited.set(Mode::Ok);
    assert!(wait_until(LONG, || async { limited.delivered_count() == 3 }).await);
    assert_eq!(
        limited.delivered_ids(),
        ids,
        "handed-back deliveries keep their order"
    );
    // What reached the plugin: the first, answered 429 (again, should a pause end before
    // the mode changed), until it went through; only then the two behind it. Whatever the
    // machine's speed: a loaded one may see the pause end before it looks.
    let received = limited.received_ids();
    let (first, rest) = received.split_at(received.len() - 2);
    assert!(
        first.len() >= 2 && first.iter().all(|id| *id == ids[0]) && rest == &ids[1..],
        "only the first delivery reached the plugin until the pause ended: {received:?}"
    );
    h.shutdown().await;
}

#[actix_rt::test]
async fn deliveries_admitted_while_a_429_was_on_its_way_wait_for_its_pause() {
    // Two at a time. After a first pause, the first report holds a success ("First")
    // and then a 429 ("Movie 0"): the success frees a place, and deliveries behind them
    // were admitted before the 429 was read. They must wait for the pause the 429
    // starts, not overtake the delivery it paused.
    let script = Script::new(Mode::Fail(PluginError::RateLimited {
        retry_after: Some(Duration::from_secs(1)),
    }));
    let mut spec = script.spec("limited");
    spec.max_in_flight = Some(2);
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    let first = h
        .emit(
            EventName::AfterMediaAdded,
            data!({"media_item": {"title": "First"}}),
        )
        .await
        .unwrap();
    let mut ids = vec![first.event.id.clone()];
    assert!(
        wait_until(LONG, || async {
            state(&h, "limited").await.paused == Some("rate_limited")
        })
        .await
    );
    // The rest ("Movie 0" to "Movie 29") wait behind it; then "Movie 0" fails once.
    ids.extend(emit_n(&h, 30).await);
    script.set(Mode::FailOnce(
        "Movie 0".into(),
        PluginError::RateLimited {
            retry_after: Some(Duration::from_millis(300)),
        },
    ));
    assert!(wait_until(LONG, || async { script.delivered_count() == ids.len() }).await);
    // Delivered in the order of `ids`, by index.
    let order: Vec<usize> = script
        .delivered_ids()
        .iter()
        .map(|d| ids.iter().position(|i| i == d).expect("an emitted event"))
        .collect();
    let mut once = order.clone();
    once.sort_unstable();
    once.dedup();
    assert_eq!(once.len(), ids.len(), "each delivered once: {order:?}");
    // "Movie 0" went out second, or third after the one started beside it (two at a
    // time); none of those behind them went out during its pause.
    let at = order.iter().position(|&i| i == 1).unwrap();
    assert!(
        at <= 2,
        "{at} deliveries overtook the one a 429 paused: {order:?}"
    );
    h.shutdown().await;
}

#[actix_rt::test]
async fn a_delivery_waiting_in_the_actor_queue_is_not_timed_out_for_the_wait() {
    // One at a time, each call well within the timeout: the third waits two calls in the
    // actor's queue, longer than one timeout, and must still count as a success.
    let slow = Script::new(Mode::Slow(Duration::from_millis(200)));
    let mut spec = slow.spec("slow").with_timeout(Duration::from_millis(300));
    spec.max_in_flight = Some(1);
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    let ids = emit_n(&h, 3).await;
    assert!(wait_until(LONG, || async { slow.delivered_count() == 3 }).await);
    let s = state(&h, "slow").await;
    assert_eq!((s.delivered, s.failed), (3, 0), "{s:?}");
    assert_eq!(
        slow.received.lock().unwrap().len(),
        3,
        "none was sent twice"
    );
    assert_eq!(slow.delivered_ids(), ids);
    h.shutdown().await;
}

#[actix_rt::test]
async fn deliveries_a_blocked_actor_held_go_out_once_it_is_restarted() {
    // One at a time: the first call blocks the thread, seven wait in the actor's queue.
    // Once the supervisor restarts the actor (a missed timeout, then a missed ping), they
    // go to the new one at once, not after their own, longer, deadlines.
    let blocker = Script::new(Mode::Block(Duration::from_secs(8)));
    let mut spec = blocker.spec("blocker").with_timeout(Duration::from_secs(1));
    spec.max_in_flight = Some(1);
    let h = start_with(&fast_config(), vec![spec]).expect("start");
    let started = Instant::now();
    let ids = emit_n(&h, 8).await;
    assert!(
        wait_until(LONG, || async {
            !blocker.received.lock().unwrap().is_empty()
        })
        .await
    );
    blocker.set(Mode::Ok);
    assert!(wait_until(LONG, || async { blocker.delivered_count() == 8 }).await);
    // Timeout (1 s) + ping (1 s) + restart backoff: well under the queued deliveries'
    // deadlines (several rounds of 1.1 s after the timeout).
    assert!(
        started.elapsed() < Duration::from_millis(3200),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        blocker.delivered_ids(),
        ids,
        "in order, the blocked one first"
    );
    assert!(state(&h, "blocker").await.restarts >= 1);
    h.shutdown().await;
}
