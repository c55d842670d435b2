//! What a template sees: the event's data at the top level, plus `event`, `plugin` and `data`.
//!
//! Only the top-level names a template reads are converted (found when it is compiled),
//! so a message template pays for `media_item`, not for a large `metadata` it never
//! shows. `event`, `plugin` and `data` are ours and hide data fields of the same name
//! (the data's own `plugin`, in `on_plugin_health_changed`, is `data.plugin`).

use chrono::SecondsFormat;
use minijinja::Value;
use serde_json::Value as Json;

use crate::event::Event;

/// Names the context provides whatever the event's data holds.
pub const RESERVED: &[&str] = &["event", "plugin", "data"];

/// The context for one render of a template that reads `roots`, for `instance`.
pub fn build(event: &Event, instance: &str, roots: &[String]) -> Value {
    Value::from_pairs(roots.iter().filter_map(|root| {
        let value = match root.as_str() {
            "event" => event_value(event),
            "plugin" => Value::from(instance),
            "data" => object(&event.data),
            key => to_value(event.data.get(key)?),
        };
        Some((root.as_str(), value))
    }))
}

/// `event`: `{name, id, timestamp}` (the name canonical, the time RFC 3339 in UTC), and
/// `about`, the catalog's line on when the event is emitted.
fn event_value(event: &Event) -> Value {
    Value::from_pairs([
        ("name", Value::from(event.name.as_str())),
        ("id", Value::from(event.id.as_str())),
        (
            "timestamp",
            Value::from(event.timestamp.to_rfc3339_opts(SecondsFormat::Secs, true)),
        ),
        ("about", Value::from(event.name.about())),
    ])
}

/// A JSON value as a template value: objects as maps, arrays as lists, numbers as
/// integers where they are whole.
pub fn to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::from(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => items.iter().map(to_value).collect(),
        Json::Object(map) => object(map),
    }
}

fn object(map: &serde_json::Map<String, Json>) -> Value {
    Value::from_pairs(map.iter().map(|(k, v)| (k.as_str(), to_value(v))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use serde_json::json;

    #[test]
    fn only_the_roots_read_are_in_the_context() {
        let data = json!({"media_item": {"title": "Dune", "year": 2021}, "big": [1, 2, 3], "plugin": "tg"});
        let ev = Event::new(
            EventName::AfterMediaAdded,
            data.as_object().unwrap().clone(),
        )
        .with_id("e1");
        let roots: Vec<String> = ["media_item", "event", "plugin", "data", "absent"]
            .map(String::from)
            .into();
        let ctx = build(&ev, "ntfy_home", &roots);
        assert_eq!(
            ctx.get_attr("media_item")
                .unwrap()
                .get_attr("title")
                .unwrap()
                .as_str(),
            Some("Dune")
        );
        assert!(ctx.get_attr("big").unwrap().is_undefined(), "not read");
        assert!(ctx.get_attr("absent").unwrap().is_undefined());
        assert_eq!(ctx.get_attr("plugin").unwrap().as_str(), Some("ntfy_home"));
        let data = ctx.get_attr("data").unwrap();
        assert_eq!(data.get_attr("plugin").unwrap().as_str(), Some("tg"));
        let event = ctx.get_attr("event").unwrap();
        assert_eq!(
            event.get_attr("name").unwrap().as_str(),
            Some("after_media_added")
        );
        assert_eq!(event.get_attr("id").unwrap().as_str(), Some("e1"));
    }

    #[test]
    fn json_numbers_keep_their_kind() {
        assert_eq!(to_value(&json!(2021)).to_string(), "2021");
        assert_eq!(to_value(&json!(u64::MAX)).to_string(), u64::MAX.to_string());
        assert_eq!(to_value(&json!(1.5)).to_string(), "1.5");
        assert!(to_value(&json!(null)).is_none());
        assert_eq!(to_value(&json!([1, "a"])).to_string(), "[1, 'a']");
    }
}
