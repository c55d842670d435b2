//! The event type and the one catalog of event names (seed names canonical, upstream dotted names as aliases).

mod digest;

use std::fmt;
use std::str::FromStr;

pub use digest::{Digest, DigestKind};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The JSON object an event carries.
pub type EventData = Map<String, Value>;

macro_rules! catalog {
    ($( $variant:ident => $name:literal, $alias:expr, $about:literal; )*) => {
        /// Every event Mydia emits. One table: the canonical name, the upstream alias and a line of help.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventName { $( #[doc = $about] $variant, )* }

        impl EventName {
            /// All events, in catalog order.
            pub const ALL: &'static [EventName] = &[ $( EventName::$variant, )* ];

            /// This name's place in [`EventName::ALL`], for tables indexed by event.
            pub fn index(self) -> usize {
                self as usize
            }

            /// The canonical (seed) name, e.g. `after_media_added`.
            pub fn as_str(self) -> &'static str {
                match self { $( EventName::$variant => $name, )* }
            }

            /// Upstream Mydia's dotted name, where it has one (e.g. `media_item.added`).
            pub fn alias(self) -> Option<&'static str> {
                match self { $( EventName::$variant => $alias, )* }
            }

            /// One line saying when the event is emitted.
            pub fn about(self) -> &'static str {
                match self { $( EventName::$variant => $about, )* }
            }
        }
    };
}

catalog! {
    BeforeMediaAdded => "before_media_added", None, "a media item is about to be stored (hooks may modify or reject it)";
    AfterMediaAdded => "after_media_added", Some("media_item.added"), "a movie or series was added to the library";
    AfterMediaUpdated => "after_media_updated", Some("media_item.updated"), "a media item's metadata changed";
    AfterMediaDeleted => "after_media_deleted", Some("media_item.removed"), "a media item was removed from the library";
    BeforeDownloadInitiated => "before_download_initiated", None, "a release is about to be grabbed (hooks may validate or reject it)";
    AfterDownloadInitiated => "after_download_initiated", Some("download.initiated"), "a release was sent to the download client";
    OnDownloadCompleted => "on_download_completed", Some("download.completed"), "a download finished";
    OnDownloadFailed => "on_download_failed", Some("download.failed"), "a download failed";
    AfterImportCompleted => "after_import_completed", Some("media_file.imported"), "a downloaded file was imported into the library";
    OnImportFailed => "on_import_failed", Some("media_file.import_failed"), "importing a downloaded file failed";
    OnPlaybackStarted => "on_playback_started", Some("playback.started"), "someone started playing a media item";
    OnPlaybackFinished => "on_playback_finished", Some("playback.finished"), "someone finished playing a media item";
    OnPluginHealthChanged => "on_plugin_health_changed", None, "a plugin tripped open, recovered or was found misconfigured (emitted by this service)";
}

/// An event name that is not in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event `{given}`{hint}; known events: {known}", hint = suggestion_hint(.suggestion), known = known_names())]
pub struct UnknownEvent {
    /// What the caller wrote.
    pub given: String,
    /// The closest known name, if one is close.
    pub suggestion: Option<&'static str>,
}

fn suggestion_hint(s: &Option<&'static str>) -> String {
    s.map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// The canonical names, comma separated, for error messages.
pub fn known_names() -> String {
    EventName::ALL
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for EventName {
    type Err = UnknownEvent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        EventName::ALL
            .iter()
            .copied()
            .find(|e| e.as_str() == wanted || e.alias() == Some(wanted))
            .ok_or_else(|| UnknownEvent {
                given: s.to_owned(),
                suggestion: closest(wanted),
            })
    }
}

/// The known name nearest to `s`, if it is near enough to be a typo.
fn closest(s: &str) -> Option<&'static str> {
    let names = EventName::ALL
        .iter()
        .flat_map(|e| std::iter::once(e.as_str()).chain(e.alias()));
    crate::suggest::closest(s, names)
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// "an array", "a string", ... : what a JSON value is, for error messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "an object",
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    }
}

/// One event: what happened, when, and its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id; generated when the caller gives none. Receivers deduplicate on it.
    pub id: String,
    /// Which event this is.
    pub name: EventName,
    /// When it was emitted (RFC 3339, UTC).
    pub timestamp: DateTime<Utc>,
    /// The event's data, a JSON object.
    pub data: EventData,
    /// Set only on the message a digest or a quiet-hours summary sends (its members are
    /// in it); `None` on every real event. Not part of the event's JSON.
    #[serde(skip)]
    pub digest: Option<std::sync::Arc<Digest>>,
}

impl Event {
    /// A new event with a fresh id and the current time. The id is a version 7 UUID:
    /// the time first, then random bits, increasing in the order this process makes them.
    /// The store's unique index on ids then grows at its end, instead of taking each new
    /// id at a random page (which dirtied most of the index's pages in every commit).
    pub fn new(name: EventName, data: EventData) -> Self {
        Event {
            id: uuid::Uuid::now_v7().to_string(),
            name,
            timestamp: Utc::now(),
            data,
            digest: None,
        }
    }

    /// The same event with the given id (when the caller supplies one).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// A string field at a dotted path in the data, e.g. `media_item.title`.
    pub fn str_at(&self, path: &str) -> Option<&str> {
        self.value_at(path).and_then(Value::as_str)
    }

    /// The value at a dotted path in the data.
    pub fn value_at(&self, path: &str) -> Option<&Value> {
        // Split on the byte: paths are short, and a `char` pattern's searcher cost more
        // than the lookups themselves (notification text does a dozen per event).
        fn next(p: &str) -> (&str, Option<&str>) {
            match p.bytes().position(|b| b == b'.') {
                Some(i) => (&p[..i], Some(&p[i + 1..])),
                None => (p, None),
            }
        }
        let (key, mut rest) = next(path);
        let mut v = self.data.get(key)?;
        while let Some(path) = rest {
            let (key, more) = next(path);
            v = v.as_object()?.get(key)?;
            rest = more;
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_and_aliases_parse() {
        assert_eq!("after_media_added".parse(), Ok(EventName::AfterMediaAdded));
        assert_eq!("media_item.added".parse(), Ok(EventName::AfterMediaAdded));
        assert_eq!("download.failed".parse(), Ok(EventName::OnDownloadFailed));
        for e in EventName::ALL {
            assert_eq!(e.as_str().parse::<EventName>(), Ok(*e));
            if let Some(a) = e.alias() {
                assert_eq!(a.parse::<EventName>(), Ok(*e));
            }
        }
    }

    /// Tables indexed by event (the bus's routes) rely on this.
    #[test]
    fn each_name_is_indexed_by_its_place_in_the_catalog() {
        for (i, name) in EventName::ALL.iter().enumerate() {
            assert_eq!(name.index(), i, "{name:?}");
        }
    }

    #[test]
    fn unknown_name_suggests_the_closest_and_lists_all() {
        let err = "after_media_aded".parse::<EventName>().unwrap_err();
        assert_eq!(err.suggestion, Some("after_media_added"));
        let text = err.to_string();
        assert!(text.contains("did you mean `after_media_added`"), "{text}");
        assert!(text.contains("on_plugin_health_changed"), "{text}");
        let far = "completely_different".parse::<EventName>().unwrap_err();
        assert_eq!(far.suggestion, None);
    }

    #[test]
    fn generated_ids_are_uuids_increasing_in_creation_order() {
        let ids: Vec<String> = (0..2000)
            .map(|_| Event::new(EventName::AfterMediaAdded, EventData::new()).id)
            .collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        let id = uuid::Uuid::parse_str(&ids[0]).expect("a UUID");
        assert_eq!(id.get_version_num(), 7);
        let at = id.get_timestamp().expect("a v7 id has a time").to_unix();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        assert!(
            now.as_secs().abs_diff(at.0) < 60,
            "the id's time is now: {at:?}"
        );
    }

    #[test]
    fn serializes_as_canonical_name() {
        let json = serde_json::to_string(&EventName::OnImportFailed).unwrap();
        assert_eq!(json, "\"on_import_failed\"");
        let back: EventName = serde_json::from_str("\"media_file.import_failed\"").unwrap();
        assert_eq!(back, EventName::OnImportFailed);
    }

    #[test]
    fn value_at_follows_dotted_paths() {
        let data = serde_json::json!({"media_item": {"title": "Dune", "year": 2021}});
        let ev = Event::new(
            EventName::AfterMediaAdded,
            data.as_object().unwrap().clone(),
        );
        assert_eq!(ev.str_at("media_item.title"), Some("Dune"));
        assert_eq!(
            ev.value_at("media_item.year"),
            Some(&serde_json::json!(2021))
        );
        assert_eq!(ev.str_at("media_item.missing"), None);
    }
}
