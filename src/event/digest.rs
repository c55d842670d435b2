//! `Digest`: what one message stands for when it carries several events (a burst of like
//! events, or what quiet hours held). Set only on the event a digest sends, never on a
//! real one; the plugins render it through `format::notice` like any other event.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::Event;

/// Why several events go out as one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestKind {
    /// Like events that arrived close together (`digest:`).
    Burst,
    /// What was held during quiet hours (`quiet_hours:`).
    QuietHours,
}

/// One message standing for `count` events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    /// Burst or quiet hours.
    pub kind: DigestKind,
    /// One line, e.g. "Breaking Bad S02: 13 episodes imported".
    pub title: String,
    /// How many events it stands for.
    pub count: usize,
    /// One line per event, at most [`Digest::MAX_LINES`], in arrival order.
    pub lines: Vec<String>,
    /// Events not listed in `lines` (shown as "and N more").
    pub more: usize,
    /// How many of each event name.
    pub counts: BTreeMap<String, usize>,
    /// The events themselves, in arrival order.
    #[serde(serialize_with = "events")]
    pub events: Vec<Arc<Event>>,
}

fn events<S: serde::Serializer>(events: &[Arc<Event>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(events.iter().map(|e| &**e))
}

impl Digest {
    /// Lines listed before "and N more": ten short lines fit every service's limit
    /// (Pushover's 1,024 characters is the smallest).
    pub const MAX_LINES: usize = 10;
}
