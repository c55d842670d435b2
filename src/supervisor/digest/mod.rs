//! Digests and quiet hours: deliveries an instance's own policy holds (durably: the store
//! shows them `held`, parked so a pause or recovery of the instance leaves them alone),
//! then sends as one message, or as they are.
//!
//! - A **digest** groups like events (`key.rs`) that arrive within `wait_secs` of each
//!   other; when the group is quiet for `wait_secs` (or `max_wait_secs` after its first),
//!   `min_events` or more go out as one message carried by the first member's delivery,
//!   fewer as the originals, in order. **Overflow mode**: past `overflow_at` waiting
//!   deliveries, every event joins a digest of its kind until the queue drains.
//! - **Quiet hours** hold every event not in `except` while the window lasts
//!   (`quiet.rs`); when it ends, what was held goes out as one summary, or below
//!   `min_events` as the originals, in order.
//!
//! Each member of a digest records the digest's delivery id (`digest_id`); when the digest
//! is delivered they are delivered through it, when it is rejected they are dead with the
//! reason. A restart re-forms a digest from its members, and regroups the rest.

use std::collections::HashMap;

mod build;
mod hold;
mod key;
mod quiet;
mod release;
mod settle;

use super::slot::Pending;

/// What an instance's digest and quiet hours hold now.
#[derive(Default)]
pub(crate) struct Held {
    /// Open digest groups by key (a map: a flood of distinct items makes many).
    groups: HashMap<String, Group>,
    /// Held by quiet hours, in order.
    quiet: Vec<Pending>,
    /// Every event joins a digest (the queue passed `overflow_at`).
    overflow: bool,
}

impl Held {
    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.quiet.is_empty()
    }

    /// In overflow mode: every event joins a digest.
    pub fn overflow(&self) -> bool {
        self.overflow
    }

    /// How many deliveries are held.
    pub fn len(&self) -> usize {
        self.quiet.len() + self.groups.values().map(|g| g.members.len()).sum::<usize>()
    }

    /// Everything held, in delivery order; nothing is held after.
    pub fn take_all(&mut self) -> Vec<Pending> {
        let mut all = std::mem::take(&mut self.quiet);
        for (_, g) in self.groups.drain() {
            all.extend(g.members);
        }
        self.overflow = false;
        all.sort_by_key(|p| p.seq);
        all
    }

    /// Whether delivery `seq` is held, and if so takes it out (a person asked to send it now).
    fn take(&mut self, seq: u64) -> Option<Pending> {
        if let Some(i) = self.quiet.iter().position(|p| p.seq == seq) {
            return Some(self.quiet.remove(i));
        }
        for g in self.groups.values_mut() {
            if let Some(i) = g.members.iter().position(|p| p.seq == seq) {
                return Some(g.members.remove(i));
            }
        }
        None
    }
}

/// Like events waiting for more of their kind.
struct Group {
    /// In delivery order.
    members: Vec<Pending>,
    /// When its first and newest members arrived (the instance's clock, ms).
    first_at: i64,
    last_at: i64,
    /// Formed in overflow mode.
    overflow: bool,
}

/// What the delivery carrying a digest also stands for.
#[derive(Debug)]
pub(crate) struct DigestSend {
    /// The other members' deliveries, in order.
    pub members: Vec<u64>,
}
