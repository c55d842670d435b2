//! The writer's tests: gathering a batch, many-row accepts, deliveries without rows.

use super::*;
use crate::config::Synchronous;
use crate::store::sqlite::schema;

/// A writer on a new file at `path`, numbering from 1.
fn fresh(path: &std::path::Path) -> Writer {
    let conn = schema::open(path, Synchronous::Full).unwrap();
    let checkpoints =
        Checkpointer::start(&conn, schema::open(path, Synchronous::Full).unwrap()).unwrap();
    let start = Seqs {
        event: 1,
        delivery: 1,
    };
    Writer::new(conn, checkpoints, Arc::default(), start, i64::MAX)
}

/// A writer whose deliveries keep going without rows for an hour: what has a row in a
/// test is what the code wrote, not what a slow machine let become due.
fn lazy_writer(path: &std::path::Path) -> Writer {
    let mut writer = fresh(path);
    writer.lazy_for = Duration::from_secs(3600);
    writer
}

mod gather {
    use std::sync::mpsc;

    use super::*;

    fn started(seq: Seq) -> Op {
        Op::Update(Update::Started { seq })
    }

    /// A linger no test run reaches: a batch that ends early ended for its reason.
    const LONG: Duration = Duration::from_secs(120);

    #[test]
    fn state_changes_wait_for_more_until_someone_waits_for_the_commit() {
        let (tx, rx) = mpsc::channel();
        let t = Instant::now();
        let gathering = std::thread::spawn(move || gather(started(1), &rx, LONG));
        let queue = Queue::new(tx, gathering.thread().clone());
        // Give the batch time to be cut, were it cut at once (it passes either way when
        // right: the wait ends on the flush, not on a clock).
        std::thread::sleep(Duration::from_millis(100));
        queue.send(started(2)).map_err(|_| "sent").unwrap();
        let (flushed, _flushed_rx) = mpsc::channel();
        queue.send(Op::Flush(flushed)).map_err(|_| "sent").unwrap();
        // Queued after the flush: the next batch's.
        queue.send(started(3)).map_err(|_| "sent").unwrap();
        let (batch, open) = gathering.join().unwrap();
        let kinds: Vec<_> = batch
            .iter()
            .map(|op| match op {
                Op::Update(Update::Started { seq }) => format!("started {seq}"),
                Op::Flush(_) => "flush".to_owned(),
                _ => "other".to_owned(),
            })
            .collect();
        assert!(open);
        // The flush woke the parked writer: the batch did not wait for its linger.
        assert!(t.elapsed() < LONG / 2, "the flush did not end the linger");
        assert_eq!(kinds[..3], ["started 1", "started 2", "flush"]);
        // The one after the flush may have been queued before the batch was cut.
        assert!(kinds.len() <= 4, "{kinds:?}");
        drop(queue);
    }

    #[test]
    fn a_batch_waited_for_is_cut_at_once_and_a_closed_channel_ends_the_wait() {
        let (tx, rx) = mpsc::channel();
        let (flushed, _flushed_rx) = mpsc::channel();
        tx.send(started(1)).unwrap();
        let t = Instant::now();
        let (batch, open) = gather(Op::Flush(flushed), &rx, LONG);
        assert_eq!((batch.len(), open), (2, true));
        assert!(
            t.elapsed() < LONG / 2,
            "a batch someone waits for did not linger"
        );

        // Shutting down: what lingers is handed back for its commit, and the writer ends
        // (closing the queue wakes it).
        let t = Instant::now();
        let gathering = std::thread::spawn(move || gather(started(2), &rx, LONG));
        let queue = Queue::new(tx, gathering.thread().clone());
        std::thread::sleep(Duration::from_millis(100));
        queue.send(started(3)).map_err(|_| "sent").unwrap();
        drop(queue);
        let (batch, open) = gathering.join().unwrap();
        assert_eq!((batch.len(), open), (2, false));
        assert!(
            t.elapsed() < LONG / 2,
            "closing the queue did not end the linger"
        );
    }
}

mod many_rows {
    use std::sync::Mutex;

    use super::*;
    use crate::config::Synchronous;
    use crate::event::{Event, EventName};
    use crate::store::sqlite::schema;

    type Results = Arc<Mutex<Vec<(usize, Result<Accepted>)>>>;

    fn accept(k: usize, id: &str, instances: &[&str], results: &Results) -> Op {
        let event = Event::new(EventName::AfterMediaAdded, Default::default()).with_id(id);
        let results = Arc::clone(results);
        let a = Accept {
            event: Arc::new(event),
            instances: instances.iter().map(|&i| Arc::from(i)).collect(),
            done: Box::new(move |r| results.lock().unwrap().push((k, r))),
        };
        let encoded = Encoded::new(&a);
        Op::Accept(a, encoded)
    }

    /// Instances of the `k`th accept: none, one or two, in turn.
    fn instances(k: usize) -> &'static [&'static str] {
        [&[][..], &["a"][..], &["a", "b"][..]][k % 3]
    }

    #[test]
    fn accepts_written_many_rows_at_a_time_keep_their_order_and_duplicates_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let mut writer = fresh(&path);
        let results: Results = Arc::default();
        writer.commit(vec![accept(1000, "old", &["a"], &results)]);
        // 16 new ones (one statement), 16 with a stored id and a repeat among them (one
        // by one), 16 new ones again, and 5 (fewer than a statement takes).
        let ids: Vec<String> = (0..53)
            .map(|k| match k {
                20 => "old".to_owned(),
                25 => "e17".to_owned(),
                k => format!("e{k}"),
            })
            .collect();
        let batch = (0..53)
            .map(|k| accept(k, &ids[k], instances(k), &results))
            .collect();
        writer.commit(batch);
        // The deliveries have no rows yet (the events name their instances); a flush
        // writes them, as a read or the writer's end would.
        let rows = |path: &std::path::Path| -> i64 {
            schema::open(path, Synchronous::Full)
                .unwrap()
                .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(rows(&path), 0);
        let (flushed, _flushed_rx) = std::sync::mpsc::channel();
        writer.commit(vec![Op::Flush(flushed)]);

        let results = std::mem::take(&mut *results.lock().unwrap());
        assert_eq!(results.len(), 54);
        let mut first = 2;
        for (k, r) in results.into_iter().skip(1) {
            let r = r.unwrap();
            if k == 20 || k == 25 {
                assert_eq!(
                    r.duplicate.as_ref().map(|e| e.id.as_str()),
                    Some(ids[k].as_str()),
                    "accept {k}"
                );
                continue;
            }
            assert!(r.duplicate.is_none(), "accept {k}");
            assert_eq!(r.first, first, "accept {k}");
            first += instances(k).len() as Seq;
        }
        // Read back: events in order, each with its deliveries' range, and those rows
        // point at it, in order of its instances.
        let read = schema::open(&path, Synchronous::Full).unwrap();
        let mut events = read
            .prepare("SELECT seq, id, first_delivery, deliveries FROM events ORDER BY seq")
            .unwrap();
        let events: Vec<(Seq, String, Seq, i64)> = events
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let expected: Vec<&str> = std::iter::once("old")
            .chain(
                (0..53)
                    .filter(|k| *k != 20 && *k != 25)
                    .map(|k| ids[k].as_str()),
            )
            .collect();
        let stored: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(stored, expected);
        for (seq, id, first, n) in &events {
            let rows: Vec<(Seq, Seq, String)> = read
                .prepare(
                    "SELECT seq, event_seq, instance FROM deliveries
                     WHERE seq >= ?1 AND seq < ?1 + ?2 ORDER BY seq",
                )
                .unwrap()
                .query_map(params![first, n], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(rows.len() as i64, *n, "event {id}");
            for (i, (d, e, instance)) in rows.iter().enumerate() {
                assert_eq!((*d, *e), (first + i as Seq, *seq), "event {id}");
                assert_eq!(instance, ["a", "b"][i], "event {id}");
            }
        }
        let total: i64 = read
            .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(total, events.iter().map(|e| e.3).sum::<i64>());
    }
}

mod crash {
    use super::*;
    use crate::config::{StorageConfig, Synchronous};
    use crate::event::{Event, EventName};
    use crate::store::sqlite::{schema, SqliteStore};
    use crate::store::{Attempt, DeliveryStore, State};

    fn accept(id: &str, instances: &[&str]) -> Op {
        let event = Event::new(EventName::AfterMediaAdded, Default::default()).with_id(id);
        let a = Accept {
            event: Arc::new(event),
            instances: instances.iter().map(|&i| Arc::from(i)).collect(),
            done: Box::new(|r| assert!(r.is_ok())),
        };
        let encoded = Encoded::new(&a);
        Op::Accept(a, encoded)
    }

    fn attempted(seq: Seq, state: State) -> Update {
        Update::Attempted {
            seq,
            attempt: Attempt {
                at: now_ms(),
                outcome: if state == State::Delivered {
                    "delivered"
                } else {
                    "unavailable"
                }
                .into(),
                status: Some(if state == State::Delivered { 200 } else { 503 }),
                error: Some("answer".into()),
                duration_ms: 2,
            },
            state,
            reason: None,
            next_attempt_at: None,
        }
    }

    #[test]
    fn waiting_deliveries_are_read_from_rows_and_from_events_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let mut writer = lazy_writer(&path);
        // Deliveries 1 (A to ntfy), 2 (A to slack), 3 (B), 4 (C), 5 (D).
        writer.commit(vec![
            accept("A", &["ntfy", "slack"]),
            accept("B", &["ntfy"]),
            accept("C", &["slack"]),
            accept("D", &["ntfy"]),
        ]);
        writer.commit(vec![Op::Updates(vec![
            attempted(1, State::Delivered),
            Update::HoldOne {
                seq: 3,
                reason: "paused".into(),
            },
        ])]);
        let rows: i64 = writer
            .conn
            .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            rows, 2,
            "A's success and B's hold have rows; C's and D's none"
        );
        let waiting = |instance: &str, after: Seq, limit: usize| {
            let w = Waiting {
                instance: instance.into(),
                after,
                limit,
            };
            let rows = writer.waiting(&w).unwrap();
            assert!(rows.iter().all(|r| r.instance == instance));
            rows.iter()
                .map(|r| (r.seq, r.event.id.clone(), r.state))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            waiting("ntfy", 0, 10),
            [
                (3, "B".into(), State::Held),
                (5, "D".into(), State::Pending)
            ]
        );
        assert_eq!(waiting("ntfy", 3, 10), [(5, "D".into(), State::Pending)]);
        assert_eq!(waiting("ntfy", 0, 1), [(3, "B".into(), State::Held)]);
        assert_eq!(
            waiting("slack", 0, 10),
            [
                (2, "A".into(), State::Pending),
                (4, "C".into(), State::Pending)
            ]
        );
        assert_eq!(waiting("slack", 0, 1), [(2, "A".into(), State::Pending)]);
        assert_eq!(waiting("slack", 4, 10), []);
    }

    #[test]
    fn deliveries_without_rows_at_a_crash_are_pending_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        {
            let mut writer = lazy_writer(&path);
            // Deliveries 1, 2 (event A), 3 (B), 4, 5 (C).
            writer.commit(vec![
                accept("A", &["ntfy", "slack"]),
                accept("B", &["ntfy"]),
                accept("C", &["ntfy", "slack"]),
            ]);
            writer.commit(vec![Op::Updates(vec![
                attempted(1, State::Delivered),
                attempted(3, State::Pending),
                attempted(5, State::Delivered),
            ])]);
            // The process dies here: the writer never ends, nothing more is written.
        }
        let store = SqliteStore::open(&StorageConfig {
            path: path.clone(),
            ..StorageConfig::default()
        })
        .unwrap();
        let rows = store.unfinished().unwrap();
        let got: Vec<(Seq, &str, &str, u32, State)> = rows
            .iter()
            .map(|r| {
                (
                    r.seq,
                    r.instance.as_str(),
                    r.event.id.as_str(),
                    r.attempts,
                    r.state,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (2, "slack", "A", 0, State::Pending),
                (3, "ntfy", "B", 1, State::Pending),
                (4, "ntfy", "C", 0, State::Pending),
            ]
        );
        // The delivered ones kept their one row, with the success in it.
        let one = store.get(1).unwrap().unwrap();
        assert_eq!(one.summary.state, State::Delivered);
        assert_eq!(
            (one.summary.attempts, one.summary.last_status),
            (1, Some(200))
        );
        assert_eq!(store.get(5).unwrap().unwrap().summary.plugin, "slack");
        // Every delivery has its row now, and the mark is gone.
        let conn = schema::open(&path, Synchronous::Full).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 5);
        let mark: i64 = conn
            .query_row(
                "SELECT count(*) FROM meta WHERE key = 'lazy_from'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(mark, 0);
    }
}
