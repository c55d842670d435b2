//! `MediaPatch`: builds the `{"media_item": {...}}` patch an enricher returns, filling
//! gaps or replacing fields as its config says.
//!
//! The bus merges a patch into the event key by key (objects recursively, anything else
//! replaced), so "fill only" means leaving a key out of the patch when the event already
//! has a value for it.

use serde_json::{Map, Value};

use crate::event::{Event, EventData};
use crate::plugins::Enrichment;

/// The fields one enricher adds under `media_item`.
#[derive(Debug)]
pub struct MediaPatch<'a> {
    existing: Option<&'a Map<String, Value>>,
    fields: Map<String, Value>,
}

impl<'a> MediaPatch<'a> {
    /// An empty patch for `event`'s `media_item`.
    pub fn new(event: &'a Event) -> Self {
        MediaPatch {
            existing: event.value_at("media_item").and_then(Value::as_object),
            fields: Map::new(),
        }
    }

    /// Sets `key` to `value` when `replace` is true or the event has no usable value for
    /// it yet (absent, null, blank text, empty list or object).
    pub fn offer(&mut self, key: &str, value: Value, replace: bool) {
        if is_blank(&value) {
            return;
        }
        if replace || self.existing.and_then(|m| m.get(key)).is_none_or(is_blank) {
            self.fields.insert(key.to_owned(), value);
        }
    }

    /// Sets `key` to `value` whatever the event holds (the plugin's own namespaced key).
    pub fn set(&mut self, key: &str, value: Value) {
        self.fields.insert(key.to_owned(), value);
    }

    /// The enrichment: `{"media_item": fields}`, or an empty patch when nothing was set.
    pub fn finish(self) -> Enrichment {
        let mut patch = EventData::new();
        if !self.fields.is_empty() {
            patch.insert("media_item".to_owned(), Value::Object(self.fields));
        }
        Enrichment { patch }
    }
}

/// No usable value: null, blank text, an empty list or object.
pub fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The first of `paths` (dotted, in `event.data`) holding a whole number or a string of
/// digits, as a string: ids arrive both ways (`438631` or `"438631"`). Anything else is
/// ignored, so an id can go into a URL path without escaping.
pub fn numeric_id(event: &Event, paths: &[&str]) -> Option<String> {
    paths.iter().find_map(|p| match event.value_at(p)? {
        Value::Number(n) => n.as_u64().filter(|n| *n > 0).map(|n| n.to_string()),
        Value::String(s) => {
            let s = s.trim();
            (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.to_owned())
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use serde_json::json;

    fn event(data: Value) -> Event {
        Event::new(
            EventName::AfterMediaAdded,
            data.as_object().cloned().unwrap(),
        )
    }

    #[test]
    fn fills_gaps_or_replaces() {
        let ev = event(json!({"media_item": {"title": "Dune", "overview": " ", "genres": []}}));
        let mut p = MediaPatch::new(&ev);
        p.offer("title", json!("Dune: Part One"), false);
        p.offer("overview", json!("Paul..."), false);
        p.offer("genres", json!(["Drama"]), false);
        p.offer("poster_url", json!("https://p"), false);
        p.offer("banner_url", Value::Null, true);
        p.set("x", json!({"id": 1}));
        assert_eq!(
            Value::Object(p.finish().patch),
            json!({"media_item": {"overview": "Paul...", "genres": ["Drama"], "poster_url": "https://p", "x": {"id": 1}}})
        );
        let mut p = MediaPatch::new(&ev);
        p.offer("title", json!("Dune: Part One"), true);
        assert_eq!(
            Value::Object(p.finish().patch),
            json!({"media_item": {"title": "Dune: Part One"}})
        );
    }

    #[test]
    fn nothing_set_is_an_empty_patch() {
        let ev = event(json!({}));
        let mut p = MediaPatch::new(&ev);
        p.offer("title", json!(""), true);
        assert!(p.finish().patch.is_empty());
    }

    #[test]
    fn ids_are_digits_only() {
        let ev = event(json!({"a": 42, "b": " 77 ", "c": "../x", "d": -3, "e": 1.5, "z": 0}));
        assert_eq!(numeric_id(&ev, &["missing", "a"]).as_deref(), Some("42"));
        assert_eq!(numeric_id(&ev, &["b"]).as_deref(), Some("77"));
        for bad in ["c", "d", "e", "z"] {
            assert_eq!(numeric_id(&ev, &[bad]), None, "{bad}");
        }
    }
}
