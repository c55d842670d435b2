//! `Timings`: a histogram of durations on plain atomics, cheap enough for every hook call.
//!
//! prometheus-client's own `Histogram` takes a lock on every observation; a hook runs on
//! several workers at once and a shared lock would bounce between their cores (the hook
//! counters are kept per worker for the same reason). A `Timings` is written by one
//! thread in the common case and read, bucket by bucket, at scrape time; a scrape may
//! see an observation's count before its sum, which a histogram tolerates.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds, in seconds, of the buckets: 100 µs to 30 s (hooks take microseconds,
/// deliveries up to their timeout). An implicit `+Inf` bucket follows.
pub const BOUNDS: [f64; 14] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// Observed durations, bucketed by [`BOUNDS`].
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Timings {
    /// Per-bucket (not cumulative) counts; the last is `+Inf`.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// What a [`Timings`] holds at one moment, ready to encode.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimingsSnapshot {
    /// Sum of all observations in seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// `(upper bound, count in this bucket)`, the last bound `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

impl Timings {
    /// Count one duration.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> TimingsSnapshot {
        let mut out = TimingsSnapshot::default();
        out.add(self);
        out
    }
}

impl TimingsSnapshot {
    /// No observations, with every bucket.
    pub fn zero() -> Self {
        TimingsSnapshot {
            sum: 0.0,
            count: 0,
            buckets: BOUNDS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .map(|b| (b, 0))
                .collect(),
        }
    }

    /// Add `t`'s counts to these (to merge the per-worker timings of one hook).
    pub fn add(&mut self, t: &Timings) {
        if self.buckets.is_empty() {
            *self = TimingsSnapshot::zero();
        }
        for (slot, n) in self.buckets.iter_mut().zip(&t.buckets) {
            slot.1 += n.load(Relaxed);
        }
        self.count += t.count.load(Relaxed);
        self.sum += Duration::from_nanos(t.sum_nanos.load(Relaxed)).as_secs_f64();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_the_first_bucket_that_holds_them() {
        let t = Timings::default();
        t.observe(Duration::from_micros(50));
        t.observe(Duration::from_micros(100));
        t.observe(Duration::from_millis(3));
        t.observe(Duration::from_secs(60));
        let s = t.snapshot();
        assert_eq!(s.count, 4);
        assert!((s.sum - 60.00315).abs() < 1e-9, "{}", s.sum);
        let count_at = |bound: f64| s.buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(count_at(0.0001), 2, "100 µs is in the 100 µs bucket");
        assert_eq!(count_at(0.005), 1);
        assert_eq!(count_at(f64::INFINITY), 1);
        assert_eq!(s.buckets.iter().map(|b| b.1).sum::<u64>(), 4);
        let mut merged = s.clone();
        merged.add(&t);
        assert_eq!(merged.count, 8);
    }
}
