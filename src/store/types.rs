//! What the store keeps and answers: delivery states, the write requests, the query and
//! its rows, and `StoreError`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;

use crate::event::Event;

/// A delivery's sequence number: unique in its store, and in the order deliveries were
/// accepted (so per instance it is the order they must arrive in).
pub type Seq = i64;

/// The store's results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for its turn (or for a rate limit).
    Pending,
    /// Handed to the plugin; a restart sends it again (at least once).
    InFlight,
    /// The instance is paused, open or misconfigured: kept until it is healthy again.
    Held,
    /// The service took it.
    Delivered,
    /// Given up on, with a reason a person can act on; kept for a replay.
    Dead,
}

impl State {
    /// Every state, in life order.
    pub const ALL: [State; 5] = [
        State::Pending,
        State::InFlight,
        State::Held,
        State::Delivered,
        State::Dead,
    ];

    /// The name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::InFlight => "in_flight",
            State::Held => "held",
            State::Delivered => "delivered",
            State::Dead => "dead",
        }
    }

    /// Delivered or dead: nothing more will be tried.
    pub fn is_final(self) -> bool {
        matches!(self, State::Delivered | State::Dead)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!("unknown delivery state `{s}`; one of pending, in_flight, held, delivered, dead")
            })
    }
}

/// Why a delivery is held by the instance's own policy rather than by its health: a
/// pause or recovery of the instance (`Hold`/`Release`) leaves these alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parked {
    /// Waiting for more like it, to go out in one digest.
    Digest,
    /// Waiting for the end of the instance's quiet hours.
    Quiet,
}

impl Parked {
    /// The database's number for it (0 is "not parked").
    pub fn code(self) -> i64 {
        match self {
            Parked::Digest => 1,
            Parked::Quiet => 2,
        }
    }

    /// The kind a database number names.
    pub fn from_code(code: i64) -> Option<Parked> {
        match code {
            1 => Some(Parked::Digest),
            2 => Some(Parked::Quiet),
            _ => None,
        }
    }
}

/// Runs once the accept is committed (or failed), on the store's writer, in commit order.
pub type AcceptDone = Box<dyn FnOnce(Result<Accepted>) + Send>;

/// Store an event and one pending delivery per instance.
pub struct Accept {
    /// The event after hooks and enrichment.
    pub event: Arc<Event>,
    /// The instances it goes to; delivery `i` goes to `instances[i]`.
    pub instances: Arc<[Arc<str>]>,
    /// Called after the commit.
    pub done: AcceptDone,
}

/// A committed accept.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The first delivery's sequence number; delivery `i` has `first + i`.
    pub first: Seq,
    /// The event already stored under this id (nothing new was stored), if it was a repeat.
    pub duplicate: Option<Arc<Event>>,
}

/// One attempt at a delivery, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// When it ended (ms since the epoch).
    #[serde(serialize_with = "ser_time")]
    pub at: i64,
    /// `delivered`, or the error's kind (`transient`, `timeout`, `rate_limited`, ...).
    pub outcome: String,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    /// The error, redacted; or what the service answered, on success.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
}

/// A change of one delivery (or, for `Hold`/`Release`, of an instance's waiting ones).
#[derive(Debug, Clone)]
pub enum Update {
    /// Handed to the plugin.
    Started {
        /// The delivery.
        seq: Seq,
    },
    /// Handed to the plugin but given back unstarted: waiting again, held with `held`
    /// when the instance is held.
    NotStarted {
        /// The delivery.
        seq: Seq,
        /// The instance's hold reason, when it has one.
        held: Option<String>,
    },
    /// An attempt ended; the delivery is now in `state`.
    Attempted {
        /// The delivery.
        seq: Seq,
        /// What happened.
        attempt: Attempt,
        /// `pending` (retried later), `held`, `delivered` or `dead`.
        state: State,
        /// Why it is held or dead.
        reason: Option<String>,
        /// When it is tried again, when known (ms since the epoch).
        next_attempt_at: Option<i64>,
    },
    /// Dead without a new attempt (too old, crashed the plugin, instance removed).
    Dead {
        /// The delivery.
        seq: Seq,
        /// Why.
        reason: String,
    },
    /// Every pending delivery of `instance` (and later ones, by `HoldOne`) is held.
    Hold {
        /// The instance.
        instance: Arc<str>,
        /// Why (shown in the API).
        reason: String,
        /// When it may go on, when known (ms since the epoch).
        until: Option<i64>,
    },
    /// One more delivery joins an instance's held ones.
    HoldOne {
        /// The delivery.
        seq: Seq,
        /// Why.
        reason: String,
    },
    /// The instance is healthy again: its held deliveries are pending.
    Release {
        /// The instance.
        instance: Arc<str>,
    },
    /// Held by the instance's digest or quiet hours (not touched by `Hold`/`Release`).
    Park {
        /// The delivery.
        seq: Seq,
        /// Digest or quiet hours.
        why: Parked,
        /// Shown in the API, e.g. "quiet hours until 07:30".
        reason: String,
    },
    /// No longer parked: pending, or held with `held` when the instance is held.
    Unpark {
        /// The delivery.
        seq: Seq,
        /// The instance's hold reason, when it has one.
        held: Option<String>,
    },
    /// These deliveries go out together as the digest sent as delivery `digest`.
    Digested {
        /// The members, the digest's own delivery among them.
        seqs: Vec<Seq>,
        /// The delivery that carries the digest.
        digest: Seq,
        /// Digest or quiet-hours summary.
        why: Parked,
        /// Shown in the API.
        reason: String,
    },
    /// Delivered as part of digest `digest` (its own attempt is recorded there).
    DeliveredVia {
        /// The member.
        seq: Seq,
        /// The delivery that carried it.
        digest: Seq,
    },
}

impl Update {
    /// This change makes a delivery delivered or dead.
    pub fn finishes(&self) -> bool {
        match self {
            Update::Attempted { state, .. } => state.is_final(),
            Update::Dead { .. } | Update::DeliveredVia { .. } => true,
            _ => false,
        }
    }
}

/// Which deliveries to make pending again.
#[derive(Debug, Clone)]
pub enum Requeue {
    /// One delivery that is dead or held.
    One(Seq),
    /// An instance's dead letters, accepted at or after `since` (ms since the epoch).
    Dead {
        /// The instance.
        instance: String,
        /// Only those accepted since then.
        since: Option<i64>,
    },
}

/// A delivery not yet delivered or dead, with its event (to resume or requeue it).
#[derive(Debug, Clone)]
pub struct Unfinished {
    /// The delivery.
    pub seq: Seq,
    /// Its instance.
    pub instance: String,
    /// Its state before this read (a requeue reports the state it revived).
    pub state: State,
    /// Attempts so far.
    pub attempts: u32,
    /// When it was accepted (ms since the epoch).
    pub created_at: i64,
    /// The event.
    pub event: Arc<Event>,
    /// Held by the instance's digest or quiet hours.
    pub parked: Option<Parked>,
    /// The digest it goes out in, once its group was closed.
    pub digest: Option<Seq>,
}

/// What `GET /api/v1/deliveries` asks for.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only this instance's.
    pub instance: Option<String>,
    /// Only deliveries in this state.
    pub state: Option<State>,
    /// Only this event's.
    pub event_id: Option<String>,
    /// At most this many (1..=500).
    pub limit: usize,
    /// Only older than this delivery (the cursor of the previous page).
    pub before: Option<Seq>,
}

/// One delivery as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Sequence number (the public id is made from it).
    #[serde(skip)]
    pub seq: Seq,
    /// The event's id.
    pub event_id: String,
    /// The event's name.
    pub event: String,
    /// The instance.
    pub plugin: String,
    /// Where it is.
    pub state: State,
    /// Why it is held or dead.
    pub reason: Option<String>,
    /// Attempts so far.
    pub attempts: u32,
    /// The last attempt's HTTP status.
    pub last_status: Option<u16>,
    /// The last attempt's error, redacted.
    pub last_error: Option<String>,
    /// When it was accepted.
    #[serde(serialize_with = "ser_time")]
    pub created_at: i64,
    /// When it last changed.
    #[serde(serialize_with = "ser_time")]
    pub updated_at: i64,
    /// When it is tried next, when known.
    #[serde(serialize_with = "ser_opt_time")]
    pub next_attempt_at: Option<i64>,
    /// The delivery that carries (or carried) it as part of a digest (the API shows its
    /// public id as `digest_id`).
    #[serde(skip)]
    pub digest: Option<Seq>,
}

/// A page of deliveries.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Newest first.
    pub items: Vec<Summary>,
    /// Pass as `before` for the next page; `None` on the last page.
    pub next: Option<Seq>,
}

impl Page {
    /// The page of `limit` from `items`, read with one more than `limit` so that a
    /// further item says a next page exists (its cursor: the last item kept).
    pub fn cut(mut items: Vec<Summary>, limit: usize) -> Page {
        let next = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(|s| s.seq)
        });
        Page {
            items,
            next: next.flatten(),
        }
    }
}

/// One delivery with everything about it.
#[derive(Debug, Clone)]
pub struct Detail {
    /// As listed.
    pub summary: Summary,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// The event as accepted (after hooks and enrichment).
    pub event: Arc<Event>,
}

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or written (disk full, read-only, I/O error).
    #[error("the delivery store cannot write: {0}")]
    Write(String),
    /// A read failed.
    #[error("the delivery store cannot be read: {0}")]
    Read(String),
    /// `storage.max_pending` deliveries are waiting already.
    #[error("{pending} deliveries are waiting already (storage.max_pending is {max}); try again once some are delivered")]
    Full {
        /// Waiting now.
        pending: u64,
        /// The limit.
        max: u64,
    },
    /// The store has stopped (shutdown).
    #[error("the delivery store has stopped")]
    Closed,
}

impl StoreError {
    /// Seconds a caller should wait before trying again (the API's `Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            StoreError::Full { .. } => 30,
            _ => 5,
        }
    }
}

fn ser_time<S: serde::Serializer>(ms: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
    match chrono::DateTime::from_timestamp_millis(*ms) {
        Some(t) => s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        None => s.serialize_none(),
    }
}

fn ser_opt_time<S: serde::Serializer>(
    ms: &Option<i64>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => ser_time(ms, s),
        None => s.serialize_none(),
    }
}
