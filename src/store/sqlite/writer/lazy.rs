//! Deliveries without a row yet. An accepted event's row names its instances, and that is
//! what makes its deliveries durable: the writer writes a delivery's own row only when
//! something happens to it. Most deliveries succeed at once, and then their one row is
//! written as delivered, in place of a pending row written at the accept and rewritten
//! (with its index entry) at the success. Anything else that happens to a delivery, a
//! read, a change by instance, or a wait of [`LAZY_FOR`] first writes the pending rows of
//! its event; so does the writer as it ends.
//!
//! `meta.lazy_from` names the first event whose rows may be missing. Opening the store
//! writes the missing ones as pending ([`recover`]): after a crash, every accepted event's
//! deliveries are there again, and those delivered keep their rows.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use crate::store::{Result, Seq, StoreError};

/// How long a delivery goes without a row at most (while the writer has work).
pub(super) const LAZY_FOR: Duration = Duration::from_secs(1);
/// At most this many events' deliveries go without rows; past it the oldest get theirs.
pub(super) const MAX_LAZY: usize = 50_000;

/// An event whose deliveries are not all written.
#[derive(Clone)]
pub(super) struct Waiting {
    pub event: Seq,
    pub instances: Arc<[Arc<str>]>,
    pub created_at: i64,
    since: Instant,
    /// Delivery `i` has its row (written as delivered).
    written: Vec<bool>,
    left: usize,
}

impl Waiting {
    /// The deliveries still without a row: (index, instance).
    pub fn unwritten(&self) -> impl Iterator<Item = (usize, &Arc<str>)> {
        self.instances
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.written[*i])
    }
}

enum Undo {
    Added(Seq),
    Written(Seq, usize),
    Removed(Seq, Waiting),
}

/// The events with deliveries not written, by their first delivery's sequence number, and
/// what the current transaction changed of them (undone if it rolls back).
#[derive(Default)]
pub(super) struct Lazy {
    by_first: BTreeMap<Seq, Waiting>,
    journal: Vec<Undo>,
}

impl Lazy {
    /// A transaction begins: what follows is undone by [`Lazy::rollback`].
    pub fn begin(&mut self) {
        self.journal.clear();
    }

    pub fn rollback(&mut self) {
        while let Some(undo) = self.journal.pop() {
            match undo {
                Undo::Added(first) => {
                    self.by_first.remove(&first);
                }
                Undo::Written(first, i) => {
                    if let Some(w) = self.by_first.get_mut(&first) {
                        w.written[i] = false;
                        w.left += 1;
                    }
                }
                Undo::Removed(first, w) => {
                    self.by_first.insert(first, w);
                }
            }
        }
    }

    pub fn add(
        &mut self,
        first: Seq,
        event: Seq,
        instances: &Arc<[Arc<str>]>,
        created_at: i64,
        since: Instant,
    ) {
        if instances.is_empty() {
            return;
        }
        self.by_first.insert(
            first,
            Waiting {
                event,
                instances: Arc::clone(instances),
                created_at,
                since,
                written: vec![false; instances.len()],
                left: instances.len(),
            },
        );
        self.journal.push(Undo::Added(first));
    }

    /// The event of delivery `seq` when that delivery has no row: its first delivery and
    /// the delivery's index.
    pub fn find(&self, seq: Seq) -> Option<(Seq, usize)> {
        let (&first, w) = self.by_first.range(..=seq).next_back()?;
        let i = usize::try_from(seq - first).ok()?;
        (i < w.written.len() && !w.written[i]).then_some((first, i))
    }

    pub fn instance(&self, first: Seq, i: usize) -> Option<(&Waiting, &Arc<str>)> {
        let w = self.by_first.get(&first)?;
        Some((w, w.instances.get(i)?))
    }

    /// Delivery `i` of the event at `first` now has its row.
    pub fn written(&mut self, first: Seq, i: usize) {
        let Some(w) = self.by_first.get_mut(&first) else {
            return;
        };
        w.written[i] = true;
        w.left -= 1;
        self.journal.push(Undo::Written(first, i));
        if w.left == 0 {
            self.take(first);
        }
    }

    /// The event at `first`, no longer waiting (its remaining rows are being written).
    pub fn take(&mut self, first: Seq) -> Option<Waiting> {
        let w = self.by_first.remove(&first)?;
        self.journal.push(Undo::Removed(first, w.clone()));
        Some(w)
    }

    /// Events to write out now: those waiting since before `before`, and the oldest past
    /// [`MAX_LAZY`].
    pub fn due(&self, before: Instant) -> Vec<Seq> {
        let over = self.by_first.len().saturating_sub(MAX_LAZY);
        self.by_first
            .iter()
            .enumerate()
            .take_while(|(k, (_, w))| *k < over || w.since < before)
            .map(|(_, (&first, _))| first)
            .collect()
    }

    /// The events with a delivery at `seq` or later, in order, with their first delivery.
    pub fn from(&self, seq: Seq) -> impl Iterator<Item = (Seq, &Waiting)> {
        let start = self
            .by_first
            .range(..=seq)
            .next_back()
            .map_or(seq, |(&first, _)| first);
        self.by_first.range(start..).map(|(&first, w)| (first, w))
    }

    pub fn all(&self) -> Vec<Seq> {
        self.by_first.keys().copied().collect()
    }

    /// The first event with a delivery not written.
    pub fn first_event(&self) -> Option<Seq> {
        self.by_first.values().next().map(|w| w.event)
    }
}

/// The `meta` key naming the first event whose delivery rows may be missing.
const LAZY_FROM: &str = "lazy_from";

/// Write `from` as the first event that may lack rows (`None`: none does).
pub(super) fn mark(conn: &Connection, from: Option<Seq>) -> rusqlite::Result<()> {
    match from {
        Some(from) => conn
            .prepare_cached("INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)")?
            .execute(params![LAZY_FROM, from.to_string()])?,
        None => conn
            .prepare_cached("DELETE FROM meta WHERE key = ?1")?
            .execute([LAZY_FROM])?,
    };
    Ok(())
}

/// Write the pending rows that the last run left unwritten (at open, before the writer
/// starts). Answers how many.
pub(in crate::store::sqlite) fn recover(conn: &Connection) -> Result<u64> {
    let fail = |e: &dyn std::fmt::Display| {
        StoreError::Write(format!(
            "cannot restore the deliveries of the events accepted last: {e}; the file may be \
             damaged: restore a backup of storage.path, or move it aside to start with an empty store"
        ))
    };
    let from: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [LAZY_FROM], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| fail(&e))?;
    let Some(from) = from else { return Ok(0) };
    let from: Seq = from
        .parse()
        .map_err(|e| fail(&format!("meta.{LAZY_FROM} is {from:?}: {e}")))?;
    let tx = conn.unchecked_transaction().map_err(|e| fail(&e))?;
    let mut written = 0;
    {
        let mut events = tx
            .prepare(
                "SELECT seq, first_delivery, deliveries, instances, accepted_at FROM events
                 WHERE seq >= ?1 ORDER BY seq",
            )
            .map_err(|e| fail(&e))?;
        let mut insert = tx
            .prepare(
                "INSERT OR IGNORE INTO deliveries(seq, event_seq, instance, state, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
            )
            .map_err(|e| fail(&e))?;
        let mut rows = events.query([from]).map_err(|e| fail(&e))?;
        while let Some(r) = rows.next().map_err(|e| fail(&e))? {
            let (seq, first, n, instances, at): (Seq, Seq, i64, String, i64) = (
                r.get(0).map_err(|e| fail(&e))?,
                r.get(1).map_err(|e| fail(&e))?,
                r.get(2).map_err(|e| fail(&e))?,
                r.get(3).map_err(|e| fail(&e))?,
                r.get(4).map_err(|e| fail(&e))?,
            );
            let names: Vec<String> = serde_json::from_str(&instances).map_err(|e| {
                fail(&format!(
                    "event {seq} names its instances as {instances:?}: {e}"
                ))
            })?;
            if names.len() as i64 != n {
                return Err(fail(&format!(
                    "event {seq} has {n} deliveries but names {} instances",
                    names.len()
                )));
            }
            for (i, name) in names.iter().enumerate() {
                written += insert
                    .execute(params![first + i as Seq, seq, name, at])
                    .map_err(|e| fail(&e))? as u64;
            }
        }
    }
    mark(&tx, None).map_err(|e| fail(&e))?;
    tx.commit().map_err(|e| fail(&e))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Arc<[Arc<str>]> {
        n.iter().map(|&s| Arc::from(s)).collect()
    }

    #[test]
    fn finds_unwritten_deliveries_and_undoes_a_rolled_back_transaction() {
        let mut lazy = Lazy::default();
        let t = Instant::now();
        lazy.begin();
        lazy.add(10, 1, &names(&["a", "b"]), 0, t);
        lazy.add(12, 2, &names(&[]), 0, t);
        lazy.add(12, 3, &names(&["a"]), 0, t);
        assert_eq!(lazy.find(9), None);
        assert_eq!(lazy.find(10), Some((10, 0)));
        assert_eq!(lazy.find(11), Some((10, 1)));
        assert_eq!(lazy.find(12), Some((12, 0)));
        assert_eq!(lazy.find(13), None);
        lazy.begin();
        lazy.written(10, 1);
        assert_eq!(lazy.find(11), None);
        lazy.written(10, 0);
        assert_eq!(lazy.first_event(), Some(3), "event 1 has every row");
        let taken = lazy.take(12).unwrap();
        assert_eq!(taken.unwritten().count(), 1);
        assert_eq!(lazy.first_event(), None);
        // The transaction failed: as it was before it.
        lazy.rollback();
        assert_eq!(lazy.find(10), Some((10, 0)));
        assert_eq!(lazy.find(11), Some((10, 1)));
        assert_eq!(lazy.find(12), Some((12, 0)));
        assert_eq!(lazy.first_event(), Some(1));
    }

    #[test]
    fn what_is_due_is_what_waited_long_enough_and_the_oldest_past_the_bound() {
        let mut lazy = Lazy::default();
        let t = Instant::now();
        lazy.add(1, 1, &names(&["a"]), 0, t);
        lazy.add(2, 2, &names(&["a"]), 0, t + Duration::from_secs(5));
        assert_eq!(lazy.due(t), Vec::<Seq>::new());
        assert_eq!(lazy.due(t + Duration::from_millis(1)), [1]);
        for k in 0..MAX_LAZY as Seq {
            lazy.add(3 + k, 3 + k, &names(&["a"]), 0, t + Duration::from_secs(9));
        }
        assert_eq!(lazy.due(t), [1, 2]);
    }
}
