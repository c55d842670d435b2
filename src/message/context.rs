//! What a template sees: the event's data at the top level, plus `event`, `plugin` and `data`.
//!
//! Nothing is converted up front: the data's objects and lists are views into the event
//! (shared with the delivery, not copied), and a value is made only for a field a
//! template reads. A message template then pays for `media_item.title`, not for the rest
//! of `media_item`, nor for a large `metadata` it never shows. `event`, `plugin` and
//! `data` are ours and hide data fields of the same name (the data's own `plugin`, in
//! `on_plugin_health_changed`, is `data.plugin`).
//!
//! Measured with `cargo bench --bench pipeline -- template`: see the README, benchmark (6).

use std::sync::Arc;

use chrono::SecondsFormat;
use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::Value;
use serde_json::Value as Json;

use crate::event::Event;

/// Names the context provides whatever the event's data holds.
pub const RESERVED: &[&str] = &["event", "plugin", "data"];

/// The context for one render of a template that reads `roots`, for `instance`.
pub fn build(event: &Arc<Event>, instance: &str, roots: &[String]) -> Value {
    let entries = roots
        .iter()
        .filter_map(|root| {
            let value = match root.as_str() {
                "event" => event_value(event),
                "plugin" => Value::from(instance),
                "data" => Value::from_object(View {
                    event: Arc::clone(event),
                    path: Vec::new(),
                }),
                key => {
                    let json = event.data.get(key)?;
                    scalar(json).unwrap_or_else(|| {
                        Value::from_object(View {
                            event: Arc::clone(event),
                            path: vec![Step::Key(key.to_owned())],
                        })
                    })
                }
            };
            Some((Value::from(root.as_str()), value))
        })
        .collect();
    Value::from_object(Root(entries))
}

/// The context's top level: the values of the roots a template reads, made once per
/// render and found by a scan (a template reads a handful). A map of them cost a sorted
/// build and a tree's drop per message: this saves about 0.6k instructions of 11k per
/// message (callgrind of benchmark (6), the whole run's count).
#[derive(Debug)]
struct Root(Vec<(Value, Value)>);

impl Object for Root {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.iter().map(|(k, _)| k.clone()).collect())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.0.len())
    }
}

/// `event` shared: the delivery's own copy when `event` is the event of the delivery
/// the current plugin call makes, else (a preview, a check of the config) a copy.
pub fn share(event: &Event) -> Arc<Event> {
    crate::plugins::actor::shared_event(event).unwrap_or_else(|| Arc::new(event.clone()))
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
/// integers where they are whole. Converts the whole value (for data that is not an
/// event's, such as a sample); an event's data is read through views instead.
pub fn to_value(json: &Json) -> Value {
    match json {
        Json::Array(items) => items.iter().map(to_value).collect(),
        Json::Object(map) => Value::from_pairs(map.iter().map(|(k, v)| (k.as_str(), to_value(v)))),
        leaf => scalar(leaf).unwrap_or_default(),
    }
}

/// A null, boolean, number or string as a template value; `None` for objects and arrays.
fn scalar(json: &Json) -> Option<Value> {
    Some(match json {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::from(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(_) | Json::Object(_) => return None,
    })
}

/// One step from an object or list to a value in it.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// An object or list in an event's data, seen by a template as a map or a list: the
/// event, and the steps from its data to the value (none: the data itself).
#[derive(Debug)]
struct View {
    event: Arc<Event>,
    path: Vec<Step>,
}

/// What a [`View`] shows.
enum Target<'a> {
    Map(&'a serde_json::Map<String, Json>),
    Seq(&'a [Json]),
}

impl View {
    /// The value the steps lead to. Views are made only along steps that exist, and the
    /// shared event does not change, so the walk always arrives.
    fn target(&self) -> Target<'_> {
        let mut at = Target::Map(&self.event.data);
        for step in &self.path {
            let next = match (at, step) {
                (Target::Map(m), Step::Key(k)) => m.get(k),
                (Target::Seq(s), Step::Index(i)) => s.get(*i),
                _ => None,
            };
            at = match next {
                Some(Json::Object(m)) => Target::Map(m),
                Some(Json::Array(s)) => Target::Seq(s),
                _ => return Target::Seq(&[]),
            };
        }
        at
    }

    /// The value at `json`, one step below this view; `step` is called only for an
    /// object or a list (a scalar needs no path, so no key is copied for it).
    fn child(self: &Arc<Self>, json: &Json, step: impl FnOnce() -> Step) -> Value {
        scalar(json).unwrap_or_else(|| {
            let mut path = Vec::with_capacity(self.path.len() + 1);
            path.extend_from_slice(&self.path);
            path.push(step());
            Value::from_object(View {
                event: Arc::clone(&self.event),
                path,
            })
        })
    }
}

impl Object for View {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.target() {
            Target::Map(_) => ObjectRepr::Map,
            Target::Seq(_) => ObjectRepr::Seq,
        }
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match self.target() {
            Target::Map(_) => self.get_value_by_str(key.as_str()?),
            Target::Seq(s) => {
                let i = key.as_usize()?;
                Some(self.child(s.get(i)?, || Step::Index(i)))
            }
        }
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        match self.target() {
            Target::Map(m) => Some(self.child(m.get(key)?, || Step::Key(key.to_owned()))),
            Target::Seq(_) => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.target() {
            Target::Map(m) => {
                Enumerator::Values(m.keys().map(|k| Value::from(k.as_str())).collect())
            }
            Target::Seq(s) => Enumerator::Seq(s.len()),
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(match self.target() {
            Target::Map(m) => m.len(),
            Target::Seq(s) => s.len(),
        })
    }
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
        let ctx = build(&Arc::new(ev), "ntfy_home", &roots);
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
        // The top level lists the roots it holds, in the order they were read.
        let keys: Vec<String> = ctx.try_iter().unwrap().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["media_item", "event", "plugin", "data"]);
        assert_eq!(ctx.len(), Some(4));
    }

    /// Every expression renders through the views exactly as through the data converted
    /// whole (the conversion the views replace), so templates cannot tell them apart.
    #[test]
    fn views_render_as_the_whole_data_converted() {
        use minijinja::UndefinedBehavior;
        let data = json!({
            "media_item": {"title": "Dune", "year": 2021, "rating": 8.1, "seen": false,
                "genres": ["Sci-Fi", "Adventure"], "missing": null,
                "episodes": [{"n": 1, "title": "Pilot"}, {"n": 2, "title": "Two"}],
                "studio": {"name": "Legendary", "ids": {"tmdb": 923}}},
            "empty": {}, "none": [], "size": 15032385536u64, "name": "x"
        });
        let ev = Arc::new(Event::new(
            EventName::AfterMediaAdded,
            data.as_object().unwrap().clone(),
        ));
        let roots: Vec<String> = ["media_item", "empty", "none", "size", "name", "data"]
            .map(String::from)
            .into();
        let views = build(&ev, "p", &roots);
        let mut whole: Vec<(String, Value)> = roots
            .iter()
            .filter(|r| *r != "data")
            .map(|r| (r.clone(), to_value(&data[r.as_str()])))
            .collect();
        whole.push(("data".into(), to_value(&data)));
        let whole = Value::from_pairs(whole.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let env = crate::message::filters::environment(UndefinedBehavior::Chainable);
        for source in [
            "{{ media_item }}",
            "{{ media_item.title }} ({{ media_item.year }}) {{ media_item['rating'] }}",
            "{{ media_item.genres|join(', ') }} {{ media_item.genres[-1] }} {{ media_item.genres|length }}",
            "{% for e in media_item.episodes %}{{ loop.index }}:{{ e.n }} {{ e['title'] }};{% endfor %}",
            "{% for k, v in media_item.studio|items %}{{ k }}={{ v }};{% endfor %}",
            "{{ media_item.studio.ids.tmdb }} {{ media_item.nothing.deeper }} {{ media_item.missing }}",
            "{{ media_item|length }} {{ media_item|list }} {{ media_item.seen }}",
            "{% if empty %}full{% else %}empty{% endif %} {% if none %}x{% else %}none{% endif %} {% if media_item %}item{% endif %}",
            "{{ media_item.episodes[0] }} {{ media_item.episodes|last }} {{ media_item.genres|reverse|list }}",
            "{{ 'title' in media_item }} {{ 'Sci-Fi' in media_item.genres }} {{ media_item.genres is sequence }} {{ media_item is mapping }}",
            "{{ media_item.studio|dictsort }} {{ data.size|filesize }} {{ data.name }} {{ data|length }}",
            "{{ media_item.genres == ['Sci-Fi', 'Adventure'] }} {{ media_item.episodes|map(attribute='title')|join('/') }}",
        ] {
            let render = |ctx: &Value| env.render_str(source, ctx.clone()).unwrap();
            assert_eq!(render(&views), render(&whole), "{source}");
        }
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
