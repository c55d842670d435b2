//! What to preview: the body of `POST /api/v1/preview` (and the file `mydia-plugins preview
//! --event` reads), parsed and checked, each mistake with a message that says what to send.

use serde::Deserialize;
use serde_json::Value;

use crate::event::{json_kind, Event, EventName};

/// A dry run to do.
#[derive(Debug, Clone)]
pub struct PreviewRequest {
    /// The event to run through, or a stored delivery whose event to preview.
    pub source: Source,
    /// Instances to preview (empty: every delivery instance; for a delivery: its own).
    pub plugins: Vec<String>,
    /// Run the enrichment plugins too (they make their real, read-only lookups).
    pub enrich: bool,
}

/// Where the previewed event comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An event as `POST /api/v1/events` takes it; hooks run on it.
    Event(Event),
    /// The stored event of this delivery (as accepted: after hooks and enrichment).
    Delivery(String),
}

/// The body is not a preview request; the text says what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    id: Option<String>,
    /// Accepted so a body for `/api/v1/events` previews as it is; nothing waits here.
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    plugins: Option<Vec<String>>,
    #[serde(default)]
    enrich: Option<bool>,
    #[serde(default)]
    delivery: Option<String>,
}

const EXAMPLE: &str = "send JSON like {\"event\": \"after_media_added\", \"data\": {...}}, optionally with \"plugins\": [\"ntfy\"] and \"enrich\": true, or {\"delivery\": \"<id>\"} to preview a stored delivery's event";

impl PreviewRequest {
    /// Parses a request body.
    pub fn from_json(body: &[u8]) -> Result<PreviewRequest, InvalidRequest> {
        let bad = |m: String| InvalidRequest(m);
        // Through `Value` first: serde would read a struct from a JSON array, position by position.
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| bad(format!("invalid request body: {e}; {EXAMPLE}")))?;
        if !value.is_object() {
            return Err(bad(format!(
                "invalid request body: the body must be a JSON object, got {}; {EXAMPLE}",
                json_kind(&value)
            )));
        }
        let body: Body = serde_json::from_value(value)
            .map_err(|e| bad(format!("invalid request body: {e}; {EXAMPLE}")))?;
        let plugins = body.plugins.unwrap_or_default();
        if let Some(blank) = plugins.iter().position(|p| p.trim().is_empty()) {
            return Err(bad(format!(
                "`plugins[{blank}]` is blank: name plugin instances as configured under `plugins:`"
            )));
        }
        let mut unique: Vec<String> = Vec::with_capacity(plugins.len());
        for p in plugins {
            if !unique.contains(&p) {
                unique.push(p);
            }
        }
        if let Some(mode) = body.mode.as_deref() {
            if !matches!(mode, "async" | "sync") {
                return Err(bad(format!(
                    "`mode` must be \"async\" (the default) or \"sync\", got {mode:?}"
                )));
            }
        }
        let source = match (body.event, body.delivery) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "send either `event` (with its `data`) or `delivery` (a stored delivery's id), not both".into(),
                ))
            }
            (None, None) => {
                return Err(bad(format!(
                    "nothing to preview: the body needs `event` or `delivery`; {EXAMPLE}"
                )))
            }
            (None, Some(id)) => {
                if body.data.is_some() || body.id.is_some() {
                    return Err(bad("`data` and `id` go with `event`; a delivery's stored event is previewed as it was accepted".into()));
                }
                if id.trim().is_empty() {
                    return Err(bad("`delivery` is blank: give a delivery id as GET /api/v1/deliveries lists them".into()));
                }
                Source::Delivery(id)
            }
            (Some(name), None) => Source::Event(event(&name, body.data, body.id)?),
        };
        Ok(PreviewRequest {
            source,
            plugins: unique,
            enrich: body.enrich.unwrap_or(false),
        })
    }
}

fn event(name: &str, data: Option<Value>, id: Option<String>) -> Result<Event, InvalidRequest> {
    let name: EventName = name
        .parse()
        .map_err(|e: crate::event::UnknownEvent| InvalidRequest(e.to_string()))?;
    let data = match data {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(InvalidRequest(format!(
                "`data` must be a JSON object, got {}",
                json_kind(&other)
            )))
        }
    };
    let mut event = Event::new(name, data);
    if let Some(id) = id {
        if id.trim().is_empty() || id.len() > 200 {
            return Err(InvalidRequest(
                "`id` must be a non-empty string of at most 200 characters".into(),
            ));
        }
        event = event.with_id(id);
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        PreviewRequest::from_json(body.as_bytes()).unwrap_err().0
    }

    #[test]
    fn reads_an_event_with_plugins_and_enrich() {
        let r = PreviewRequest::from_json(
            br#"{"event": "media_item.added", "data": {"media_item": {"title": "Dune"}}, "id": "ev-1", "plugins": ["ntfy", "ntfy", "discord"], "enrich": true, "mode": "sync"}"#,
        )
        .unwrap();
        let Source::Event(ev) = &r.source else {
            panic!("an event")
        };
        assert_eq!(ev.name, EventName::AfterMediaAdded);
        assert_eq!(ev.id, "ev-1");
        assert_eq!(ev.str_at("media_item.title"), Some("Dune"));
        assert_eq!(r.plugins, ["ntfy", "discord"]);
        assert!(r.enrich);
        let d = PreviewRequest::from_json(br#"{"delivery": "d-12"}"#).unwrap();
        assert!(matches!(d.source, Source::Delivery(ref id) if id == "d-12"));
        assert!(!d.enrich && d.plugins.is_empty());
    }

    #[test]
    fn every_mistake_says_what_to_send() {
        assert!(err("[1]").contains("must be a JSON object, got an array"));
        assert!(err("{").starts_with("invalid request body"));
        assert!(err(r#"{"evnet": "x"}"#).contains("unknown field `evnet`"));
        assert!(err("{}").starts_with("nothing to preview"));
        assert!(err(r#"{"event": "after_media_aded"}"#).contains("after_media_added"));
        assert!(err(r#"{"event": "after_media_added", "data": [1]}"#)
            .contains("`data` must be a JSON object, got an array"));
        assert!(err(r#"{"event": "after_media_added", "delivery": "d1"}"#).contains("not both"));
        assert!(err(r#"{"delivery": "d1", "data": {}}"#).contains("go with `event`"));
        assert!(
            err(r#"{"event": "after_media_added", "plugins": "ntfy"}"#).contains("invalid type")
        );
        assert!(err(r#"{"event": "after_media_added", "plugins": [" "]}"#)
            .contains("`plugins[0]` is blank"));
        assert!(err(r#"{"event": "after_media_added", "mode": "later"}"#).contains("`mode`"));
        assert!(err(r#"{"event": "after_media_added", "id": ""}"#).contains("`id`"));
    }
}
