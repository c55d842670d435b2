//! `TtlCache`: a small, bounded map whose entries expire, shared by the enrichment plugins.
//!
//! Enrichment runs before every delivery, and the same title comes back often (an episode
//! imported, then downloaded, then played), so each plugin instance keeps its answers,
//! "no match" included, for a while. The cache lives in the plugin struct: a restarted
//! instance starts empty, which only costs one request. It is a `Mutex<HashMap>`, never
//! held across an `.await`, so a lookup costs a lock and a hash.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many answers one plugin instance keeps at most; beyond it the entry closest to
/// expiry goes first. A few thousand titles is a large library's hot set, and an entry
/// is a few hundred bytes.
pub const MAX_ENTRIES: usize = 4096;

/// Answers kept for `ttl`, at most `capacity` of them.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// A cache keeping each answer for `ttl` (zero keeps nothing), at most [`MAX_ENTRIES`].
    pub fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, MAX_ENTRIES)
    }

    /// A cache keeping at most `capacity` answers (zero keeps nothing).
    pub fn with_capacity(ttl: Duration, capacity: usize) -> Self {
        TtlCache {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The answer stored for `key`, unless it has expired.
    pub fn get(&self, key: &K) -> Option<V> {
        self.get_at(key, Instant::now())
    }

    /// Stores `value` for `key` for the cache's TTL.
    pub fn insert(&self, key: K, value: V) {
        self.insert_at(key, value, Instant::now());
    }

    /// [`TtlCache::get`] as seen at `now` (tests inject the clock this way).
    pub fn get_at(&self, key: &K, now: Instant) -> Option<V> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((expires, value)) if now < *expires => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// [`TtlCache::insert`] as seen at `now`. When full, expired entries are dropped
    /// first, then the one that would expire soonest (the oldest).
    pub fn insert_at(&self, key: K, value: V, now: Instant) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let Some(expires) = now.checked_add(self.ttl) else {
            return;
        };
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (at, _)| now < *at);
            if entries.len() >= self.capacity {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(key, (expires, value));
    }

    /// How many entries are stored, expired ones included until they are noticed.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A poisoned lock only means another call panicked mid-update of a plain map: the
    /// map is still usable, and a cache must never turn one panic into many.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, V)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn answers_until_the_ttl_runs_out() {
        let cache = TtlCache::new(HOUR);
        let t0 = Instant::now();
        cache.insert_at("dune", Some(1), t0);
        cache.insert_at("nothing", None::<i32>, t0);
        assert_eq!(cache.get_at(&"dune", t0 + HOUR / 2), Some(Some(1)));
        assert_eq!(
            cache.get_at(&"nothing", t0 + HOUR / 2),
            Some(None),
            "a cached \"no match\" is an answer too"
        );
        assert_eq!(cache.get_at(&"dune", t0 + HOUR), None, "expired at the TTL");
        assert_eq!(cache.len(), 1, "the expired entry was dropped when seen");
        assert_eq!(cache.get_at(&"other", t0), None);
    }

    #[test]
    fn a_new_answer_restarts_the_ttl() {
        let cache = TtlCache::new(HOUR);
        let t0 = Instant::now();
        cache.insert_at("k", 1, t0);
        cache.insert_at("k", 2, t0 + HOUR / 2);
        assert_eq!(cache.get_at(&"k", t0 + HOUR), Some(2));
    }

    #[test]
    fn zero_ttl_or_capacity_keeps_nothing() {
        let t0 = Instant::now();
        let off = TtlCache::new(Duration::ZERO);
        off.insert_at("k", 1, t0);
        assert_eq!(off.get_at(&"k", t0), None);
        let tiny = TtlCache::with_capacity(HOUR, 0);
        tiny.insert_at("k", 1, t0);
        assert!(tiny.is_empty());
    }

    #[test]
    fn stays_bounded_dropping_expired_then_oldest() {
        let cache = TtlCache::with_capacity(HOUR, 3);
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        cache.insert_at(1, "a", t0);
        cache.insert_at(2, "b", t0 + s);
        cache.insert_at(3, "c", t0 + 2 * s);
        cache.insert_at(4, "d", t0 + 3 * s);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get_at(&1, t0 + 3 * s), None, "the oldest went first");
        assert_eq!(cache.get_at(&2, t0 + 3 * s), Some("b"));
        cache.insert_at(2, "b2", t0 + 4 * s);
        assert_eq!(cache.len(), 3, "replacing a key evicts nothing");
        // Later, everything but 2 has expired: they make room before anything live goes.
        let later = t0 + HOUR + 3 * s + s / 2;
        cache.insert_at(5, "e", later);
        cache.insert_at(6, "f", later);
        assert_eq!(cache.get_at(&2, later), Some("b2"));
        assert_eq!(cache.get_at(&5, later), Some("e"));
        assert_eq!(cache.get_at(&6, later), Some("f"));
    }
}
