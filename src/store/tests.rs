//! The store's rules, checked on both backends (SQLite on a temporary file, and memory),
//! plus what only SQLite does: group commit, durability across reopening, pruning, and a
//! refused write.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::{StorageBackend, StorageConfig};
use crate::event::{Event, EventName};

fn event(title: &str) -> Arc<Event> {
    let data = serde_json::json!({ "media_item": { "title": title } });
    Arc::new(Event::new(
        EventName::AfterMediaAdded,
        data.as_object().cloned().unwrap(),
    ))
}

fn names(n: &[&str]) -> Arc<[Arc<str>]> {
    n.iter().map(|s| Arc::from(*s)).collect()
}

/// Accept and wait for the commit.
fn accept(store: &Store, ev: Arc<Event>, to: &[&str]) -> Result<Accepted> {
    let (tx, rx) = mpsc::channel();
    store.accept(
        ev,
        names(to),
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the accept is answered")
}

fn delivered(store: &Store, seq: Seq) {
    store.update(Update::Attempted {
        seq,
        attempt: Attempt {
            at: now_ms(),
            outcome: "delivered".into(),
            status: Some(200),
            error: Some("200 OK".into()),
            duration_ms: 3,
        },
        state: State::Delivered,
        reason: None,
        next_attempt_at: None,
    });
}

fn sqlite_config(dir: &tempfile::TempDir) -> StorageConfig {
    StorageConfig {
        path: dir.path().join("sub/dir/store.sqlite3"),
        ..StorageConfig::default()
    }
}

/// A SQLite store that prunes every delivered row when it opens (no retention).
fn pruning_everything(dir: &tempfile::TempDir) -> StorageConfig {
    StorageConfig {
        retention: Duration::ZERO,
        ..sqlite_config(dir)
    }
}

/// Both backends, fresh.
fn stores() -> Vec<(Store, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&sqlite_config(&dir)).unwrap();
    vec![(sqlite, Some(dir)), (Store::in_memory(), None)]
}

fn seqs(rows: &[Unfinished]) -> Vec<Seq> {
    rows.iter().map(|r| r.seq).collect()
}

#[test]
fn accepts_in_order_and_lists_what_is_unfinished() {
    for (store, _dir) in stores() {
        let a = accept(&store, event("A"), &["ntfy", "discord"]).unwrap();
        let b = accept(&store, event("B"), &["ntfy", "discord"]).unwrap();
        assert!(a.duplicate.is_none());
        assert_eq!(b.first, a.first + 2, "consecutive sequence numbers");
        delivered(&store, a.first);
        store.flush();
        let rows = store.unfinished().unwrap();
        assert_eq!(seqs(&rows), [a.first + 1, b.first, b.first + 1]);
        assert_eq!(rows[0].instance, "discord");
        assert_eq!(rows[1].event.str_at("media_item.title"), Some("B"));
        // Deliveries of one event share it.
        assert!(Arc::ptr_eq(&rows[1].event, &rows[2].event));
        assert_eq!(store.pending(), 3);
    }
}

#[test]
fn a_repeated_event_id_is_a_duplicate_with_the_stored_event() {
    for (store, _dir) in stores() {
        let first = event("Dune");
        accept(&store, Arc::clone(&first), &["ntfy"]).unwrap();
        let mut again = Event::new(EventName::AfterMediaAdded, Default::default());
        again.id = first.id.clone();
        let r = accept(&store, Arc::new(again), &["ntfy"]).unwrap();
        let stored = r.duplicate.expect("a duplicate");
        assert_eq!(stored.str_at("media_item.title"), Some("Dune"));
        store.flush();
        assert_eq!(store.unfinished().unwrap().len(), 1, "no new delivery");
        assert_eq!(store.pending(), 1);
    }
}

#[test]
fn pages_newest_first_with_a_cursor_and_filters() {
    for (store, _dir) in stores() {
        let mut firsts = Vec::new();
        for i in 0..5 {
            firsts.push(
                accept(&store, event(&format!("E{i}")), &["ntfy"])
                    .unwrap()
                    .first,
            );
        }
        accept(&store, event("other"), &["slack"]).unwrap();
        delivered(&store, firsts[1]);
        store.flush();
        let q = |before, limit| Query {
            instance: Some("ntfy".into()),
            limit,
            before,
            ..Query::default()
        };
        let p1 = store.list(&q(None, 2)).unwrap();
        let got: Vec<Seq> = p1.items.iter().map(|s| s.seq).collect();
        assert_eq!(got, [firsts[4], firsts[3]]);
        let p2 = store.list(&q(p1.next, 2)).unwrap();
        assert_eq!(
            p2.items.iter().map(|s| s.seq).collect::<Vec<_>>(),
            [firsts[2], firsts[1]]
        );
        let p3 = store.list(&q(p2.next, 2)).unwrap();
        assert_eq!(p3.items.len(), 1);
        assert_eq!(p3.next, None, "the last page has no cursor");
        let done = store
            .list(&Query {
                state: Some(State::Delivered),
                limit: 10,
                ..Query::default()
            })
            .unwrap();
        assert_eq!(done.items.len(), 1);
        let s = &done.items[0];
        assert_eq!(
            (s.plugin.as_str(), s.attempts, s.last_status),
            ("ntfy", 1, Some(200))
        );
        assert_eq!(s.last_error, None, "a success leaves no error");
        let by_event = store
            .list(&Query {
                event_id: Some(s.event_id.clone()),
                limit: 10,
                ..Query::default()
            })
            .unwrap();
        assert_eq!(by_event.items.len(), 1);
        let detail = store.get(&store.public_id(s.seq)).unwrap().expect("found");
        assert_eq!(detail.attempts.len(), 1);
        assert_eq!(detail.event.str_at("media_item.title"), Some("E1"));
        assert!(
            store.get("0badf00d-1").unwrap().is_none(),
            "another store's id"
        );
    }
}

#[test]
fn holds_releases_and_replays_dead_letters_in_order() {
    for (store, _dir) in stores() {
        let ids: Vec<Seq> = (0..4)
            .map(|i| {
                accept(&store, event(&format!("E{i}")), &["ntfy"])
                    .unwrap()
                    .first
            })
            .collect();
        store.update(Update::Hold {
            instance: Arc::from("ntfy"),
            reason: "misconfigured: 401".into(),
            until: None,
        });
        store.flush();
        let held = |store: &Store| {
            store
                .counts()
                .unwrap()
                .into_iter()
                .find(|(i, s, _)| i == "ntfy" && *s == State::Held)
                .map(|c| c.2)
        };
        assert_eq!(held(&store), Some(4));
        store.update(Update::Release {
            instance: Arc::from("ntfy"),
        });
        store.update(Update::Dead {
            seq: ids[2],
            reason: "rejected by the service: 400".into(),
        });
        store.update(Update::Dead {
            seq: ids[0],
            reason: "too old".into(),
        });
        store.flush();
        assert_eq!(held(&store), None);
        assert_eq!(store.pending(), 2, "dead letters free their place");
        let (tx, rx) = mpsc::channel();
        store.requeue(
            Requeue::Dead {
                instance: "ntfy".into(),
                since: None,
            },
            move |r| tx.send(r).unwrap(),
        );
        let revived = rx.recv_timeout(Duration::from_secs(30)).unwrap().unwrap();
        assert_eq!(seqs(&revived), [ids[0], ids[2]], "in their original order");
        assert_eq!(store.pending(), 4);
        store.flush();
        assert_eq!(store.unfinished().unwrap().len(), 4);
    }
}

#[test]
fn refuses_before_accepting_past_max_pending() {
    let dir = tempfile::tempdir().unwrap();
    let configs = [
        StorageConfig {
            max_pending: 3,
            ..sqlite_config(&dir)
        },
        StorageConfig {
            max_pending: 3,
            backend: StorageBackend::Memory,
            ..StorageConfig::default()
        },
    ];
    for config in configs {
        let store = Store::open(&config).unwrap();
        let a = accept(&store, event("A"), &["ntfy", "slack"]).unwrap();
        let err = accept(&store, event("B"), &["ntfy", "slack"]).unwrap_err();
        assert!(
            matches!(err, StoreError::Full { pending: 2, max: 3 }),
            "{err}"
        );
        assert!(err.to_string().contains("storage.max_pending"), "{err}");
        assert_eq!(
            store
                .list(&Query {
                    limit: 10,
                    ..Query::default()
                })
                .unwrap()
                .items
                .len(),
            2,
            "nothing of B was stored"
        );
        delivered(&store, a.first);
        accept(&store, event("C"), &["ntfy", "slack"]).unwrap();
    }
}

#[test]
fn sqlite_keeps_everything_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(&dir);
    let (tag, first) = {
        let store = Store::open(&config).unwrap();
        let a = accept(&store, event("kept"), &["ntfy"]).unwrap();
        (store.tag(), a.first)
    };
    let store = Store::open(&config).unwrap();
    assert_eq!(store.tag(), tag, "ids stay the same across restarts");
    let rows = store.unfinished().unwrap();
    assert_eq!(seqs(&rows), [first]);
    assert_eq!(store.pending(), 1);
    let next = accept(&store, event("new"), &["ntfy"]).unwrap();
    assert!(next.first > first, "sequence numbers go on");
}

#[test]
fn sqlite_commits_many_events_per_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(&dir);
    let store = Store::open(&config).unwrap();
    let commits = |store: &Store| -> i64 {
        let c = rusqlite::Connection::open(&config.path).unwrap();
        let _ = store;
        c.query_row("SELECT count(DISTINCT accepted_at) FROM events", [], |r| {
            r.get(0)
        })
        .unwrap()
    };
    // Hold the write lock while 1,000 accepts queue up: the writer's first transaction
    // waits for it, and everything queued meanwhile goes in its next one.
    let blocker = rusqlite::Connection::open(&config.path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..1000 {
        let tx = tx.clone();
        store.accept(
            event(&format!("E{i}")),
            names(&["ntfy"]),
            Box::new(move |r| tx.send(r.is_ok()).unwrap()),
        );
    }
    blocker.execute_batch("COMMIT").unwrap();
    let ok = (0..1000)
        .filter(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap())
        .count();
    assert_eq!(ok, 1000);
    // Each transaction stamps its events with one time: at most two transactions.
    assert!(commits(&store) <= 2, "{} transactions", commits(&store));
}

#[test]
fn sqlite_refuses_a_write_it_cannot_make() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(&dir);
    let store = Store::open(&config).unwrap();
    let blocker = rusqlite::Connection::open(&config.path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = accept(&store, event("locked out"), &["ntfy"]).unwrap_err();
    assert!(matches!(err, StoreError::Write(_)), "{err}");
    assert_eq!(store.pending(), 0, "a refused event holds no place");
    blocker.execute_batch("ROLLBACK").unwrap();
    accept(&store, event("fine again"), &["ntfy"]).unwrap();
}

#[test]
fn sqlite_prunes_delivered_rows_past_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = pruning_everything(&dir);
    let (done, waiting) = {
        let store = Store::open(&config).unwrap();
        let done = event("done");
        let a = accept(&store, Arc::clone(&done), &["ntfy"]).unwrap();
        accept(&store, event("waiting"), &["ntfy"]).unwrap();
        delivered(&store, a.first);
        (done, a.first + 1)
    };
    std::thread::sleep(Duration::from_millis(5));
    // Pruning runs when the store opens (and hourly).
    let store = Store::open(&config).unwrap();
    store.flush();
    let all = store
        .list(&Query {
            limit: 10,
            ..Query::default()
        })
        .unwrap();
    assert_eq!(
        all.items.iter().map(|s| s.seq).collect::<Vec<_>>(),
        [waiting]
    );
    // The pruned event's id is free again.
    assert!(accept(&store, done, &["ntfy"]).unwrap().duplicate.is_none());
}

#[test]
fn sqlite_numbers_on_after_pruning_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let config = pruning_everything(&dir);
    {
        let store = Store::open(&config).unwrap();
        let a = accept(&store, event("one"), &["ntfy", "slack"]).unwrap();
        assert_eq!(a.first, 1);
        delivered(&store, 1);
        delivered(&store, 2);
        store.flush();
    }
    std::thread::sleep(Duration::from_millis(5));
    // This open prunes every row (pruning runs when the store opens).
    let store = Store::open(&config).unwrap();
    store.flush();
    assert!(store.list(&Query::default()).unwrap().items.is_empty());
    drop(store);
    let store = Store::open(&config).unwrap();
    let b = accept(&store, event("two"), &["ntfy"]).unwrap();
    assert_eq!(b.first, 3, "a delivery id is never handed out twice");
}

#[test]
fn sqlite_brings_a_version_1_file_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(&dir);
    std::fs::create_dir_all(config.path.parent().unwrap()).unwrap();
    let old = rusqlite::Connection::open(&config.path).unwrap();
    old.execute_batch(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT INTO meta VALUES ('version', '1'), ('tag', '0000abcd');
         CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
             timestamp TEXT NOT NULL, data TEXT NOT NULL, accepted_at INTEGER NOT NULL);
         CREATE TABLE deliveries (seq INTEGER PRIMARY KEY, event_seq INTEGER NOT NULL,
             instance TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
             last_status INTEGER, last_error TEXT, reason TEXT, created_at INTEGER NOT NULL,
             updated_at INTEGER NOT NULL, next_attempt_at INTEGER);
         CREATE INDEX deliveries_by_event ON deliveries(event_seq);
         INSERT INTO events VALUES (1, 'old-1', 'after_media_added', '2026-01-01T00:00:00+00:00',
             '{\"media_item\":{\"title\":\"Old\"}}', 1);
         INSERT INTO deliveries(seq, event_seq, instance, state, created_at, updated_at)
             VALUES (7, 1, 'ntfy', 'pending', 1, 1), (8, 1, 'slack', 'pending', 1, 1);",
    )
    .unwrap();
    drop(old);
    let store = Store::open(&config).unwrap();
    assert_eq!(store.tag(), 0xabcd);
    assert_eq!(seqs(&store.unfinished().unwrap()), [7, 8]);
    let by_event = store
        .list(&Query {
            event_id: Some("old-1".into()),
            limit: 10,
            ..Query::default()
        })
        .unwrap();
    assert_eq!(
        by_event.items.len(),
        2,
        "found by the event's delivery range"
    );
    assert!(accept(&store, event("new"), &["ntfy"]).unwrap().first > 8);
}

#[test]
fn memory_prunes_delivered_rows_and_their_events_as_it_goes() {
    let store =
        Store::with_backend(Box::new(memory::MemoryStore::new(Duration::ZERO)), 100).unwrap();
    let done = event("done");
    let a = accept(&store, Arc::clone(&done), &["ntfy"]).unwrap();
    let dead = accept(&store, event("dead"), &["ntfy"]).unwrap();
    delivered(&store, a.first);
    store.update(Update::Dead {
        seq: dead.first,
        reason: "rejected".into(),
    });
    std::thread::sleep(Duration::from_millis(3));
    // Each accept prunes what is past the retention.
    accept(&store, event("later"), &["ntfy"]).unwrap();
    let all = store
        .list(&Query {
            limit: 10,
            ..Query::default()
        })
        .unwrap();
    let left: Vec<Seq> = all.items.iter().map(|s| s.seq).collect();
    assert_eq!(
        left,
        [dead.first + 1, dead.first],
        "the delivered one is gone, the dead letter stays"
    );
    assert!(
        accept(&store, done, &["ntfy"]).unwrap().duplicate.is_none(),
        "its id is free again"
    );
}

/// `rows` of `store` by sequence number, as listed.
fn listed(store: &Store) -> Vec<Summary> {
    let mut items = store
        .list(&Query {
            limit: 100,
            ..Query::default()
        })
        .unwrap()
        .items;
    items.sort_by_key(|s| s.seq);
    items
}

#[test]
fn parked_deliveries_outlive_an_instance_hold_and_record_their_digest() {
    for (store, _dir) in stores() {
        let first = accept(&store, event("a"), &["ntfy"]).unwrap().first;
        for t in ["b", "c", "d"] {
            accept(&store, event(t), &["ntfy"]).unwrap();
        }
        let [a, b, c] = [first, first + 1, first + 2];
        store.update_many(vec![
            Update::Park {
                seq: a,
                why: Parked::Digest,
                reason: "digest: waiting for more like it".into(),
            },
            Update::Park {
                seq: b,
                why: Parked::Digest,
                reason: "digest: waiting for more like it".into(),
            },
            Update::Park {
                seq: c,
                why: Parked::Quiet,
                reason: "quiet hours until 07:30".into(),
            },
            // The instance pauses and recovers: its own hold leaves parked rows alone.
            Update::Hold {
                instance: Arc::from("ntfy"),
                reason: "paused: rate_limited".into(),
                until: None,
            },
            Update::Release {
                instance: Arc::from("ntfy"),
            },
            Update::Digested {
                seqs: vec![a, b],
                digest: a,
                why: Parked::Digest,
                reason: "in a digest of 2".into(),
            },
        ]);
        store.flush();
        let rows = listed(&store);
        let view: Vec<_> = rows
            .iter()
            .map(|r| (r.state, r.reason.as_deref(), r.digest))
            .collect();
        assert_eq!(
            view,
            [
                (State::Held, Some("in a digest of 2"), Some(a)),
                (State::Held, Some("in a digest of 2"), Some(a)),
                (State::Held, Some("quiet hours until 07:30"), None),
                (State::Pending, None, None),
            ]
        );
        let open = store.unfinished().unwrap();
        let parked: Vec<_> = open.iter().map(|u| (u.parked, u.digest)).collect();
        assert_eq!(
            parked,
            [
                (Some(Parked::Digest), Some(a)),
                (Some(Parked::Digest), Some(a)),
                (Some(Parked::Quiet), None),
                (None, None)
            ]
        );
        // The digest goes out on `a`'s row; `b` is delivered through it, counted once.
        assert_eq!(store.pending(), 4);
        delivered(&store, a);
        store.update_many(vec![
            Update::DeliveredVia { seq: b, digest: a },
            Update::Unpark { seq: c, held: None },
        ]);
        store.flush();
        assert_eq!(store.pending(), 2);
        let rows = listed(&store);
        assert_eq!(rows[1].state, State::Delivered);
        assert_eq!(rows[1].digest, Some(a));
        assert_eq!(
            (rows[2].state, rows[2].reason.as_deref()),
            (State::Pending, None)
        );
    }
}

#[test]
fn sqlite_keeps_parked_rows_across_a_reopen_and_upgrades_a_version_2_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(&dir);
    let first = {
        let store = Store::open(&config).unwrap();
        let a = accept(&store, event("a"), &["ntfy"]).unwrap().first;
        accept(&store, event("b"), &["ntfy"]).unwrap();
        store.update(Update::Digested {
            seqs: vec![a, a + 1],
            digest: a,
            why: Parked::Quiet,
            reason: "quiet hours until 07:30".into(),
        });
        store.flush();
        a
    };
    let store = Store::open(&config).unwrap();
    let rows = store.unfinished().unwrap();
    assert_eq!(
        rows.iter()
            .map(|u| (u.parked, u.digest))
            .collect::<Vec<_>>(),
        [(Some(Parked::Quiet), Some(first)); 2]
    );
    drop(store);

    // A file of the previous schema (version 2) gains the columns and keeps its rows.
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(&dir);
    std::fs::create_dir_all(config.path.parent().unwrap()).unwrap();
    let old = rusqlite::Connection::open(&config.path).unwrap();
    old.execute_batch(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT INTO meta VALUES ('version', '2'), ('tag', '0000abce');
         CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
             timestamp TEXT NOT NULL, data TEXT NOT NULL, accepted_at INTEGER NOT NULL,
             first_delivery INTEGER NOT NULL, deliveries INTEGER NOT NULL);
         CREATE TABLE deliveries (seq INTEGER PRIMARY KEY, event_seq INTEGER NOT NULL,
             instance TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
             last_status INTEGER, last_error TEXT, reason TEXT, created_at INTEGER NOT NULL,
             updated_at INTEGER NOT NULL, next_attempt_at INTEGER, detail TEXT, duration_ms INTEGER);
         INSERT INTO events VALUES (1, 'old-2', 'after_media_added', '2026-01-01T00:00:00+00:00',
             '{\"media_item\":{\"title\":\"Old\"}}', 1, 5, 1);
         INSERT INTO deliveries(seq, event_seq, instance, state, reason, created_at, updated_at)
             VALUES (5, 1, 'ntfy', 'held', 'paused: rate_limited', 1, 1);",
    )
    .unwrap();
    drop(old);
    let store = Store::open(&config).unwrap();
    let rows = store.unfinished().unwrap();
    assert_eq!(seqs(&rows), [5]);
    assert_eq!((rows[0].parked, rows[0].digest), (None, None));
    store.update(Update::Park {
        seq: 5,
        why: Parked::Digest,
        reason: "digest".into(),
    });
    store.flush();
    assert_eq!(store.unfinished().unwrap()[0].parked, Some(Parked::Digest));
    let version: String = rusqlite::Connection::open(&config.path)
        .unwrap()
        .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(version, "4");
}

#[test]
fn burying_an_instance_makes_what_waits_dead_leaves_in_flight_and_frees_the_places() {
    for (store, _dir) in stores() {
        let seqs: Vec<Seq> = (0..4)
            .map(|i| {
                accept(&store, event(&format!("E{i}")), &["gone", "kept"])
                    .unwrap()
                    .first
            })
            .collect();
        // One pending, one held, one in flight, one delivered.
        store.update(Update::HoldOne {
            seq: seqs[1],
            reason: "open".into(),
        });
        store.update(Update::Started { seq: seqs[2] });
        delivered(&store, seqs[3]);
        let (tx, rx) = mpsc::channel();
        store.bury(Arc::from("gone"), "instance removed".into(), move |r| {
            tx.send(r).unwrap()
        });
        let buried = rx.recv_timeout(Duration::from_secs(30)).unwrap().unwrap();
        assert_eq!(buried, 2, "the pending and the held one");
        // 8 accepted, 1 delivered, 2 dead.
        assert_eq!(store.pending(), 5);
        store.flush();
        let gone: Vec<(Seq, State)> = store
            .unfinished()
            .unwrap()
            .iter()
            .filter(|r| r.instance == "gone")
            .map(|r| (r.seq, r.state))
            .collect();
        assert_eq!(gone, [(seqs[2], State::InFlight)]);
        let dead = store
            .list(&Query {
                instance: Some("gone".into()),
                state: Some(State::Dead),
                limit: 50,
                ..Query::default()
            })
            .unwrap()
            .items;
        assert_eq!(dead.len(), 2, "{dead:?}");
        assert!(dead
            .iter()
            .all(|d| d.reason.as_deref() == Some("instance removed")));
    }
}

#[test]
fn a_delivery_handed_back_unstarted_is_waiting_again() {
    for (store, _dir) in stores() {
        let a = accept(&store, event("A"), &["ntfy", "slack"])
            .unwrap()
            .first;
        for seq in [a, a + 1] {
            store.update(Update::Started { seq });
        }
        store.update(Update::NotStarted { seq: a, held: None });
        store.update(Update::NotStarted {
            seq: a + 1,
            held: Some("open: the circuit breaker is open".into()),
        });
        store.flush();
        let rows = store.unfinished().unwrap();
        let states: Vec<State> = rows.iter().map(|r| r.state).collect();
        assert_eq!(states, [State::Pending, State::Held]);
        // Only an attempt in flight goes back: a finished one stays finished.
        delivered(&store, a);
        store.update(Update::NotStarted { seq: a, held: None });
        store.flush();
        assert_eq!(seqs(&store.unfinished().unwrap()), [a + 1]);
    }
}

#[test]
fn sqlite_writes_a_held_back_start_on_its_own_and_before_what_must_follow_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&sqlite_config(&dir)).unwrap();
    let a = accept(&store, event("A"), &["ntfy", "slack"])
        .unwrap()
        .first;
    // Burying the instance after the start leaves the delivery in flight, as it would
    // had the start been written at once.
    store.update(Update::Started { seq: a });
    let (tx, rx) = mpsc::channel();
    store.bury(Arc::from("ntfy"), "instance removed".into(), move |r| {
        tx.send(r).unwrap()
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30)).unwrap().unwrap(),
        0
    );
    store.update(Update::Started { seq: a + 1 });
    // No flush: the writer writes the start once it has waited its grace out.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let states = loop {
        let states: Vec<State> = store
            .unfinished()
            .unwrap()
            .iter()
            .map(|r| r.state)
            .collect();
        if states == [State::InFlight, State::InFlight] || std::time::Instant::now() > deadline {
            break states;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(states, [State::InFlight, State::InFlight]);
}

/// What the memory window reads back: an instance's pending and held deliveries after a
/// point, merged in order, at most the limit, without parked ones or other instances'.
#[test]
fn waiting_deliveries_come_back_in_order_across_pending_and_held() {
    for (store, _dir) in stores() {
        let seqs_of: Vec<Seq> = (0..6)
            .map(|i| {
                accept(&store, event(&format!("E{i}")), &["ntfy", "other"])
                    .unwrap()
                    .first
            })
            .collect();
        for &i in &[1, 4] {
            store.update(Update::HoldOne {
                seq: seqs_of[i],
                reason: "paused".into(),
            });
        }
        store.update(Update::Park {
            seq: seqs_of[3],
            why: Parked::Quiet,
            reason: "quiet hours".into(),
        });
        store.flush();
        let waiting = |after: Seq, limit: usize| {
            let rows = store.waiting_after("ntfy", after, limit).unwrap();
            assert!(rows.iter().all(|r| &*r.instance == "ntfy"));
            seqs(&rows)
        };
        let all = [0, 1, 2, 4, 5].map(|i| seqs_of[i]);
        assert_eq!(waiting(0, 100), all, "pending and held, merged in order");
        assert_eq!(waiting(0, 3), all[..3], "the limit counts both states");
        assert_eq!(waiting(seqs_of[1], 2), [seqs_of[2], seqs_of[4]]);
        assert_eq!(waiting(seqs_of[5], 10), Vec::<Seq>::new());
    }
}
