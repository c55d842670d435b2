//! Each template rendered against a sample event of its kind, strictly: a variable the
//! sample does not have is a warning (it would render empty), not a problem, since
//! event data is optional and hooks may add fields the sample lacks.

use std::collections::HashSet;

use minijinja::{ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value as Json};

use super::filters::environment;
use super::templates::{MessageTemplate, Templates};
use super::{context, describe, sample};
use crate::config::Problems;
use crate::event::{Event, EventName};
use crate::suggest::closest;

/// A sample to render against: what to call it in a warning, and its context.
type Sample = (&'static str, Map<String, Json>);

/// Marks a message about a render that failed (not a variable that is missing).
const FAILS: &str = "\u{0}fails";

/// Warnings (at `path.<piece>`) for variables of `templates` missing from the sample of
/// each event they would render for: an event's own template against that event,
/// `default` against every received event without its own, `digest` against a sample
/// digest of three imports.
pub fn against_samples(
    templates: &Templates,
    path: &str,
    events: &[EventName],
    warnings: &mut Problems,
) {
    // Strict rendering: printing or reading an attribute of an undefined value fails
    // (`{% if x %}` on one does not: that is how a template asks whether data is there).
    let mut strict = environment(UndefinedBehavior::SemiStrict);
    for (name, source) in &templates.sources {
        // Compiled once already in the lenient environment, so this cannot fail.
        let _ = strict.add_template_owned(name.clone(), source.clone());
    }
    let globals: HashSet<String> = strict.globals().map(|(n, _)| n.to_owned()).collect();
    let instance = templates.instance();
    let of_event = |e: EventName| (e.as_str(), sample_context(&sample::event(e), instance));
    let mut jobs: Vec<(&MessageTemplate, Vec<Sample>)> = templates
        .events
        .iter()
        .map(|(e, t)| (t, vec![of_event(*e)]))
        .collect();
    if let Some(default) = &templates.default {
        let rest = events
            .iter()
            .copied()
            .filter(|e| !templates.events.iter().any(|(own, _)| own == e))
            .map(of_event)
            .collect();
        jobs.push((default, rest));
    }
    if let Some(digest) = &templates.digest {
        jobs.push((digest, vec![("digest", digest_context(instance))]));
    }
    for (template, samples) in jobs {
        // (piece, message) → samples it applies to, in config order, so `default` warns
        // once per variable.
        let mut found: Vec<((String, String), Vec<&'static str>)> = Vec::new();
        for (event, json) in samples {
            let ctx = context::to_value(&Json::Object(json.clone()));
            for name in piece_names(template) {
                let Ok(tmpl) = strict.get_template(name) else {
                    continue;
                };
                let mut messages: Vec<String> = tmpl
                    .undeclared_variables(true)
                    .into_iter()
                    .filter(|v| !globals.contains(v.split('.').next().unwrap_or_default()))
                    .filter_map(|v| missing(&json, &v))
                    .collect();
                if messages.is_empty() {
                    if let Err(err) = tmpl.render(ctx.clone()) {
                        messages.push(match err.kind() {
                            ErrorKind::UndefinedError => {
                                format!("uses an undefined value: {}", describe(&err))
                            }
                            _ => format!("fails: {}", describe(&err)) + FAILS,
                        });
                    }
                }
                for m in messages {
                    let key = (name.to_owned(), m);
                    match found.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, events)) => events.push(event),
                        None => found.push((key, vec![event])),
                    }
                }
            }
        }
        for ((piece, message), events) in found {
            let s = if events.len() == 1 { "" } else { "s" };
            warnings.push(
                format!("{path}.{piece}"),
                match message.split_once(FAILS) {
                    Some((message, _)) => format!(
                        "{message}, with the sample {} event{s}; the built-in text is sent \
                         whenever it fails",
                        events.join(", ")
                    ),
                    None => format!(
                        "{message}, in the sample {} event{s}; it renders empty (or the \
                         built-in text is used) when an event lacks it",
                        events.join(", ")
                    ),
                },
            );
        }
    }
}

fn piece_names(t: &MessageTemplate) -> impl Iterator<Item = &str> {
    t.pieces.iter().map(|(_, p)| p.name.as_str()).chain(
        t.fields
            .iter()
            .flat_map(|f| [f.name.name.as_str(), f.value.name.as_str()]),
    )
}

/// A digest's context as JSON: the first of three sample imports as its event, and
/// `digest` with the three.
fn digest_context(instance: &str) -> Map<String, Json> {
    let events: Vec<std::sync::Arc<Event>> = (0..3)
        .map(|_| std::sync::Arc::new(sample::event(EventName::AfterImportCompleted)))
        .collect();
    let digest = crate::event::Digest {
        kind: crate::event::DigestKind::Burst,
        title: "The Office S02: 3 episodes imported".into(),
        count: events.len(),
        lines: vec!["The Office (2005) S02E03".into(); 3],
        more: 0,
        counts: [(EventName::AfterImportCompleted.as_str().to_owned(), 3)].into(),
        events,
    };
    let mut ctx = sample_context(&digest.events[0], instance);
    ctx.insert(
        "digest".into(),
        serde_json::to_value(&digest).unwrap_or_default(),
    );
    ctx
}

/// The sample's context as JSON: its data, then `event`, `plugin` and `data` on top.
fn sample_context(event: &Event, instance: &str) -> Map<String, Json> {
    let mut ctx = event.data.clone();
    ctx.insert(
        "event".into(),
        serde_json::json!({"name": event.name.as_str(), "id": event.id, "timestamp": event.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "about": event.name.about()}),
    );
    ctx.insert("plugin".into(), Json::from(instance));
    ctx.insert("data".into(), Json::Object(event.data.clone()));
    ctx
}

/// Why dotted `path` is missing from `ctx`, or `None` when it is there (or cannot be
/// judged: a step into a value that is not an object may be a method or an index).
fn missing(ctx: &Map<String, Json>, path: &str) -> Option<String> {
    let mut object = ctx;
    let mut walked = Vec::new();
    for segment in path.split('.') {
        let Some(value) = object.get(segment) else {
            let hint = closest(segment, object.keys().map(String::as_str))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            let known: Vec<&str> = object.keys().map(String::as_str).collect();
            let within = if walked.is_empty() {
                "the context".to_owned()
            } else {
                format!("`{}`", walked.join("."))
            };
            return Some(format!(
                "`{path}` is undefined{hint} ({within} has: {})",
                known.join(", ")
            ));
        };
        walked.push(segment);
        match value {
            Json::Object(next) => object = next,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_the_gap_and_a_near_name() {
        let ctx = serde_json::json!({"media_item": {"title": "Dune", "year": 2021}, "plugin": "x"});
        let ctx = ctx.as_object().unwrap();
        assert_eq!(missing(ctx, "media_item.title"), None);
        assert_eq!(
            missing(ctx, "media_item.title.upper"),
            None,
            "a method on a string"
        );
        let m = missing(ctx, "media_item.titel").unwrap();
        assert!(
            m.contains("(did you mean `title`?)") && m.contains("(`media_item` has: title, year)"),
            "{m}"
        );
        let m = missing(ctx, "relase_name").unwrap();
        assert!(m.contains("(the context has: media_item, plugin)"), "{m}");
    }

    #[test]
    fn values_are_the_same_as_at_run_time() {
        let e = sample::event(EventName::AfterMediaAdded);
        let ctx = sample_context(&e, "ntfy");
        assert_eq!(ctx["plugin"], "ntfy");
        assert_eq!(ctx["event"]["name"], "after_media_added");
        let _: minijinja::Value = context::to_value(&Json::Object(ctx));
    }
}
