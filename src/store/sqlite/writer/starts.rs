//! Starts the writer holds back. Most deliveries end moments after they start; one that
//! ends before its start is written needs only its end written, which spares each quick
//! delivery an UPDATE (and the re-indexing of its row). A start not yet written changes
//! nothing a restart does: pending and in-flight deliveries are resumed alike. It only
//! shows the delivery as `pending`, not `in_flight`, for up to [`GRACE`].

use std::collections::VecDeque;

use foldhash::HashSet;
use std::time::{Duration, Instant};

use crate::store::Seq;

/// How long a start waits for its delivery's end before it is written.
pub(super) const GRACE: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct Starts {
    /// In the order they came, so the oldest is in front; some may be cancelled already.
    queue: VecDeque<(Seq, Instant)>,
    /// The starts still to write.
    live: HashSet<Seq>,
}

impl Starts {
    pub fn defer(&mut self, seq: Seq, at: Instant) {
        if self.live.insert(seq) {
            self.queue.push_back((seq, at));
        }
    }

    /// Forget `seq`'s start; whether there was one.
    pub fn cancel(&mut self, seq: Seq) -> bool {
        self.live.remove(&seq)
    }

    /// The starts waiting since `GRACE` before `now`, oldest first.
    pub fn due(&mut self, now: Instant) -> Vec<Seq> {
        let mut out = Vec::new();
        while let Some(&(seq, at)) = self.queue.front() {
            if self.live.contains(&seq) && now.saturating_duration_since(at) < GRACE {
                break;
            }
            self.queue.pop_front();
            if self.live.remove(&seq) {
                out.push(seq);
            }
        }
        out
    }

    /// Every start still to write, oldest first.
    pub fn all(&mut self) -> Vec<Seq> {
        let live = std::mem::take(&mut self.live);
        self.queue
            .drain(..)
            .map(|(seq, _)| seq)
            .filter(|seq| live.contains(seq))
            .collect()
    }

    /// When the oldest start is due, if any waits.
    pub fn next_due(&mut self) -> Option<Instant> {
        while let Some(&(seq, at)) = self.queue.front() {
            if self.live.contains(&seq) {
                return Some(at + GRACE);
            }
            self.queue.pop_front();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_is_due_after_the_grace_unless_its_end_came_first() {
        let t0 = Instant::now();
        let mut s = Starts::default();
        s.defer(1, t0);
        s.defer(2, t0 + Duration::from_millis(10));
        s.defer(3, t0 + Duration::from_millis(20));
        assert!(s.cancel(1));
        assert!(!s.cancel(1), "cancelled once");
        // The cancelled one in front does not hold the others back or count as due.
        assert_eq!(s.next_due(), Some(t0 + Duration::from_millis(10) + GRACE));
        assert_eq!(s.due(t0 + GRACE), Vec::<Seq>::new());
        assert_eq!(s.due(t0 + GRACE + Duration::from_millis(15)), [2]);
        assert_eq!(s.next_due(), Some(t0 + Duration::from_millis(20) + GRACE));
        s.defer(4, t0 + Duration::from_millis(30));
        assert_eq!(s.all(), [3, 4]);
        assert_eq!(s.next_due(), None);
        assert_eq!(s.due(t0 + GRACE * 10), Vec::<Seq>::new());
    }

    #[test]
    fn a_start_deferred_twice_is_written_once() {
        let t0 = Instant::now();
        let mut s = Starts::default();
        s.defer(7, t0);
        s.defer(7, t0 + Duration::from_millis(5));
        assert_eq!(s.due(t0 + GRACE * 2), [7]);
        assert_eq!(s.next_due(), None);
    }
}
