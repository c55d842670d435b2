//! The `plugins:` section: one entry per instance, keyed by instance name.
//!
//! Each entry is split in two: the fields every instance has (`type`, `enabled`,
//! `events`, `allow_insecure_http`, `allow_private_network`, `timeout_ms`, `rate_limit`,
//! `max_in_flight`, `templates`, `digest`, `quiet_hours`) are read here; the rest goes to the
//! type's own struct through [`PluginKind::parse_settings`], which rejects unknown fields.
//!
//! Types the seed design describes but that are not built yet ([`PLANNED`]) are skipped
//! with a warning, so the seed's YAML loads verbatim; any other unknown type is an error.

use std::sync::Arc;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::fields::{closest, Collector};
use super::{join, key_label};
use crate::event::EventName;
use crate::message::{self, Templates};
use crate::plugins::registry::{CommonSettings, RateLimit};
use crate::plugins::{PluginConfig, PluginKind};

/// Fields every instance has, whatever its type.
pub const COMMON_FIELDS: &[&str] = &[
    "type",
    "enabled",
    "events",
    "allow_insecure_http",
    "allow_private_network",
    "timeout_ms",
    "rate_limit",
    "max_in_flight",
    "templates",
    "digest",
    "quiet_hours",
];

/// Plugin types named by the seed design that are not built yet. An instance of one is
/// skipped with a warning (whether enabled or not) instead of failing the whole config.
/// A name here that [`PluginKind::parse`] knows is a built type: built wins. Empty now:
/// every type the seed names is built.
pub const PLANNED: &[&str] = &[];

/// Every instance under `plugins:` (the section's value), in file order; skipped and
/// invalid instances are left out, with a warning or a problem recorded in `cx`.
pub fn parse(section: Value, cx: &mut Collector) -> Vec<PluginConfig> {
    let map = match section {
        Value::Null => return Vec::new(),
        Value::Mapping(m) => m,
        _ => {
            cx.problems.push(
                "plugins",
                "must be a mapping of instance name to settings, e.g. `ntfy: {enabled: true, topic: mydia}`",
            );
            return Vec::new();
        }
    };
    map.into_iter()
        .filter_map(|(k, v)| {
            let name = key_label(&k);
            let path = join("plugins", &name);
            if !matches!(k, Value::String(_)) || !is_valid_instance_name(&name) {
                cx.problems.push(
                    path,
                    "is not a usable instance name: use 1 to 64 letters, digits, `_` or `-`",
                );
                return None;
            }
            instance(&name, &path, v, cx)
        })
        .collect()
}

fn instance(name: &str, path: &str, value: Value, cx: &mut Collector) -> Option<PluginConfig> {
    let fingerprint = fingerprint(&value);
    let mut rest = match value {
        Value::Mapping(m) => m,
        Value::Null => Mapping::new(),
        _ => {
            cx.problems.push(
                path,
                "must be a mapping of settings, e.g. `enabled: true` on the next line, indented",
            );
            return None;
        }
    };
    let type_field = rest.shift_remove("type");
    let enabled = rest.shift_remove("enabled");
    let events = rest.shift_remove("events");
    let insecure = rest.shift_remove("allow_insecure_http");
    let private = rest.shift_remove("allow_private_network");
    let timeout_ms = rest.shift_remove("timeout_ms");
    let rate_limit = rest.shift_remove("rate_limit");
    let max_in_flight = rest.shift_remove("max_in_flight");
    let templates = rest.shift_remove("templates");
    let digest = rest.shift_remove("digest");
    let quiet_hours = rest.shift_remove("quiet_hours");

    let type_given = type_field.is_some();
    let type_name: Option<String> = match type_field {
        None => Some(name.to_owned()),
        Some(v) => cx.value(&join(path, "type"), v),
    };
    let enabled: Option<bool> = opt(cx, path, "enabled", enabled);
    let allow_insecure_http: Option<bool> = opt(cx, path, "allow_insecure_http", insecure);
    let allow_private_network: Option<bool> = opt(cx, path, "allow_private_network", private);
    let timeout = opt::<u64>(cx, path, "timeout_ms", timeout_ms).and_then(|ms| {
        if ms == 0 {
            cx.problems
                .push(join(path, "timeout_ms"), "must be at least 1");
            None
        } else {
            Some(Duration::from_millis(ms))
        }
    });
    let max_in_flight = opt::<u32>(cx, path, "max_in_flight", max_in_flight).filter(|&n| {
        if n == 0 {
            cx.problems.push(
                join(path, "max_in_flight"),
                "must be at least 1 (1 sends one at a time, in order)",
            );
        }
        n > 0
    });
    let events = event_list(cx, &join(path, "events"), events);
    let rate_limit: Option<RateLimit> =
        opt(cx, path, "rate_limit", rate_limit).filter(|r: &RateLimit| {
            let ok = r.per_minute >= 1 && r.burst >= 1;
            if !ok {
                cx.problems.push(
                    join(path, "rate_limit"),
                    "per_minute and burst must be at least 1 (remove `rate_limit` for no limit)",
                );
            }
            ok
        });

    let digest = super::digest::digest(cx, path, digest);
    let quiet_hours = super::digest::quiet_hours(cx, path, quiet_hours);

    let type_path = if type_given {
        join(path, "type")
    } else {
        path.to_owned()
    };
    let type_name = type_name?;
    let Some(kind) = PluginKind::parse(&type_name) else {
        unknown_type(cx, name, &type_name, &type_path, enabled == Some(true));
        return None;
    };

    let events = events.unwrap_or_else(|| kind.default_events());
    let templates = templates_of(cx, name, path, kind, &events, templates);
    let common = CommonSettings {
        enabled: enabled.unwrap_or(false),
        events,
        allow_insecure_http: allow_insecure_http.unwrap_or(false),
        allow_private_network: allow_private_network.unwrap_or(false),
        timeout,
        rate_limit,
        max_in_flight,
        templates,
        digest,
        quiet_hours,
    };
    holds_for_people(cx, path, kind, &common);
    if common.enabled && common.events.is_empty() {
        cx.warnings.push(
            join(path, "events"),
            "is empty, so this enabled instance receives nothing; list events or remove `events:` for the defaults",
        );
    }
    let written = written(kind, &rest);
    // Problems about a secret field never quote its value, even a wrong one.
    let before = cx.problems.len();
    let prefix = format!("{path}.");
    let secret = |field: &str| {
        kind.secret_fields().contains(&field) || crate::http::capture::is_credential_name(field)
    };
    let settings = cx.mapping(path, rest, COMMON_FIELDS, |v| kind.parse_settings(v));
    cx.problems.redact_quoted(before, &prefix, secret);
    let mut settings = settings?;
    settings.set_allow_private_network(common.allow_private_network);
    settings.set_templates(common.templates.clone());
    settings.validate(path, &common, &mut cx.problems);
    cx.problems.redact_quoted(before, &prefix, secret);
    let overridden = cx
        .overridden
        .iter()
        .filter_map(|o| o.strip_prefix(&prefix))
        .map(str::to_owned)
        .collect();
    Some(PluginConfig {
        overridden,
        name: name.to_owned(),
        kind,
        common,
        settings,
        written,
        fingerprint,
    })
}

/// A hash of everything written for an instance but `enabled` (after `${VAR}`
/// expansion, secrets included): a reload rebuilds the instance when it differs, and
/// only turns it on or off when `enabled` alone changed.
fn fingerprint(value: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut value = value.clone();
    if let Value::Mapping(m) = &mut value {
        m.shift_remove("enabled");
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// The type's own fields as written, secrets (by the type's list, or by a name that
/// says credential) replaced by `"set"`.
fn written(kind: PluginKind, rest: &Mapping) -> serde_json::Map<String, serde_json::Value> {
    rest.iter()
        .filter_map(|(k, v)| {
            let key = k.as_str()?.to_owned();
            let secret = kind.secret_fields().contains(&key.as_str())
                || crate::http::capture::is_credential_name(&key);
            let value = if secret {
                serde_json::Value::String("set".into())
            } else {
                serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
            };
            (!v.is_null()).then_some((key, value))
        })
        .collect()
}

/// `templates:` compiled for the instance; `None` when absent or wrong (with problems).
fn templates_of(
    cx: &mut Collector,
    name: &str,
    path: &str,
    kind: PluginKind,
    events: &[EventName],
    value: Option<Value>,
) -> Option<Arc<Templates>> {
    let value = value.filter(|v| !v.is_null())?;
    let at = join(path, "templates");
    let parts = match kind.template_parts() {
        Ok(parts) => parts,
        Err(why) => {
            cx.problems
                .push(at, format!("is not taken by `{}`: {why}", kind.as_str()));
            return None;
        }
    };
    let target = message::Target {
        instance: name,
        kind: kind.as_str(),
        parts,
        events,
    };
    message::compile(&target, &at, value, &mut cx.problems, &mut cx.warnings).map(Arc::new)
}

/// Digests and quiet hours are for what people read: not the generic webhook, whose
/// receivers are programs, nor enrichment.
fn holds_for_people(cx: &mut Collector, path: &str, kind: PluginKind, c: &CommonSettings) {
    let people = !matches!(
        kind,
        PluginKind::Webhook | PluginKind::AniList | PluginKind::Fanart
    );
    for (field, set) in [
        ("digest", c.digest.is_some()),
        ("quiet_hours", c.quiet_hours.is_some()),
    ] {
        if set && !people {
            cx.problems.push(
                join(path, field),
                format!(
                    "is for notification and chat plugins (ntfy, pushover, telegram, discord, slack, log); a `{}` instance sends every event as it comes",
                    kind.as_str()
                ),
            );
        }
    }
}

/// A common field's value; `None` when absent, null, or wrong (with a problem).
fn opt<T: serde::de::DeserializeOwned>(
    cx: &mut Collector,
    path: &str,
    field: &str,
    v: Option<Value>,
) -> Option<T> {
    match v? {
        Value::Null => None,
        v => cx.value(&join(path, field), v),
    }
}

/// `events:` as canonical names, duplicates dropped with a warning; `None` when absent
/// (the type's defaults apply) or when an entry is wrong (each wrong entry reported).
fn event_list(cx: &mut Collector, path: &str, value: Option<Value>) -> Option<Vec<EventName>> {
    let items = match value? {
        Value::Null => return None,
        Value::Sequence(items) => items,
        _ => {
            cx.problems.push(
                path,
                "must be a list of event names, e.g. `events: [after_media_added, on_download_failed]`",
            );
            return None;
        }
    };
    let mut out: Vec<EventName> = Vec::new();
    let mut ok = true;
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Value::String(s) = item else {
            cx.problems
                .push(at, "must be an event name, e.g. after_media_added");
            ok = false;
            continue;
        };
        match s.parse::<EventName>() {
            Ok(e) if out.contains(&e) => cx.warnings.push(
                at,
                format!("`{s}` is listed twice (as `{e}`); the repeat is ignored"),
            ),
            Ok(e) => out.push(e),
            Err(err) => {
                cx.problems.push(at, err.to_string());
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn unknown_type(cx: &mut Collector, name: &str, type_name: &str, type_path: &str, enabled: bool) {
    let known = PluginKind::known_type_names();
    if PLANNED.contains(&type_name) {
        let effect = if enabled {
            " (its `enabled: true` has no effect yet)"
        } else {
            ""
        };
        cx.warnings.push(
            type_path,
            format!(
                "plugin type `{type_name}` is not built yet, so instance `{name}` is skipped{effect}; \
                 built types: {known}"
            ),
        );
        return;
    }
    let candidates = PluginKind::ALL
        .iter()
        .map(|k| k.as_str())
        .chain(PLANNED.iter().copied());
    let hint = closest(type_name, candidates)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    let how = if type_path.ends_with(".type") {
        String::new()
    } else {
        format!(
            "; for another instance of a type, keep the name `{name}` and add e.g. `type: ntfy`"
        )
    };
    cx.problems.push(
        type_path,
        format!(
            "unknown plugin type `{type_name}`{hint}; built types: {known}; planned: {}{how}",
            PLANNED.join(", ")
        ),
    );
}

/// Instance names appear in logs, metrics and API paths, so they stay simple.
fn is_valid_instance_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str) -> (Vec<PluginConfig>, Collector) {
        let mut cx = Collector::default();
        let section: Value = serde_yaml::from_str(yaml).unwrap();
        (parse(section, &mut cx), cx)
    }

    fn paths(p: &crate::config::Problems) -> Vec<&str> {
        p.items().iter().map(|p| p.path.as_str()).collect()
    }

    #[test]
    fn rate_limit_parses_with_a_default_burst_and_refuses_zero() {
        let (plugins, cx) = run("ntfy: {rate_limit: {per_minute: 12}}");
        assert!(cx.problems.is_empty(), "{:?}", cx.problems);
        let limit = plugins[0].common.rate_limit.expect("parsed");
        assert_eq!((limit.per_minute, limit.burst), (12, 1));
        let (_, cx) = run("ntfy: {rate_limit: {per_minute: 0, burst: 5}}");
        assert_eq!(paths(&cx.problems), ["plugins.ntfy.rate_limit"]);
        let (_, cx) = run("ntfy: {rate_limit: {per_minut: 5}}");
        assert_eq!(cx.problems.items().len(), 1, "{:?}", cx.problems);
        assert!(
            cx.problems.items()[0].message.contains("per_minut"),
            "{:?}",
            cx.problems
        );
    }

    #[test]
    fn a_wrong_value_for_a_secret_is_named_without_being_quoted() {
        let (_, cx) = run(
            "ntfy: {password: 87654321, auth_token: true, priority: 99x}\n\
             hook: {type: webhook, url: 4242, secret: [a]}",
        );
        let text = format!("{:?}", cx.problems);
        for shown in ["87654321", "true", "4242"] {
            assert!(!text.contains(shown), "{shown} quoted: {text}");
        }
        for path in [
            "plugins.ntfy.password",
            "plugins.ntfy.auth_token",
            "plugins.hook.url",
        ] {
            let p = cx.problems.items().iter().find(|p| p.path == path);
            let p = p.unwrap_or_else(|| panic!("{path} named: {text}"));
            assert!(p.message.contains("(the value given)"), "{p:?}");
        }
        // A field that is not a secret keeps its value in the message, to show what is wrong.
        assert!(text.contains("99x"), "{text}");
    }

    #[test]
    fn a_bare_instance_is_disabled_with_the_type_defaults() {
        let (plugins, cx) = run("ntfy:");
        assert!(cx.problems.is_empty() && cx.warnings.is_empty());
        let p = &plugins[0];
        assert_eq!((p.name.as_str(), p.kind), ("ntfy", PluginKind::Ntfy));
        assert!(!p.common.enabled && !p.common.allow_insecure_http);
        assert!(!p.common.allow_private_network);
        assert_eq!(p.common.events, PluginKind::Ntfy.default_events());
        assert_eq!(p.common.timeout, None);
    }

    #[test]
    fn common_fields_are_checked_with_their_paths() {
        let (_, cx) = run("anilist:\n  enabled: yes please\n  events: [after_media_aded]");
        assert_eq!(
            paths(&cx.problems),
            ["plugins.anilist.enabled", "plugins.anilist.events[0]"]
        );
    }

    #[test]
    fn unknown_types_are_errors_that_suggest_a_near_name() {
        let (plugins, cx) = run("alerts: {type: discrod}\nntfyy: {}");
        assert!(plugins.is_empty());
        assert_eq!(
            paths(&cx.problems),
            ["plugins.alerts.type", "plugins.ntfyy"]
        );
        assert!(cx.problems.items()[0]
            .message
            .contains("did you mean `discord`?"));
        assert!(cx.problems.items()[1]
            .message
            .contains("did you mean `ntfy`?"));
    }

    #[test]
    fn events_are_canonicalised_and_repeats_warned_about() {
        let (plugins, cx) =
            run("ntfy:\n  events: [download.failed, on_download_failed, after_media_added]");
        assert!(cx.problems.is_empty());
        assert_eq!(
            plugins[0].common.events,
            [EventName::OnDownloadFailed, EventName::AfterMediaAdded]
        );
        assert_eq!(paths(&cx.warnings), ["plugins.ntfy.events[1]"]);
    }

    #[test]
    fn an_enabled_instance_with_no_events_is_warned_about() {
        let (plugins, cx) = run("ntfy: {enabled: true, topic: t, events: []}");
        assert!(plugins[0].common.events.is_empty());
        assert_eq!(paths(&cx.warnings), ["plugins.ntfy.events"]);
    }

    #[test]
    fn instance_names_stay_simple() {
        let (plugins, cx) = run(
            "ntfy-home_2: {type: ntfy}\n'a b': {type: ntfy}\n'': {type: ntfy}\n3: {type: ntfy}",
        );
        assert_eq!(plugins.len(), 1);
        assert_eq!(cx.problems.items().len(), 3, "{:?}", cx.problems);
    }

    #[test]
    fn templates_are_compiled_per_instance_and_reach_its_settings() {
        let (plugins, cx) = run("a: {type: ntfy, templates: {default: {title: A}}}\nb: {type: ntfy, templates: {default: {title: B}}}\nc: {type: telegram}");
        assert!(cx.problems.is_empty(), "{:?}", cx.problems);
        let title = |p: &PluginConfig| {
            let crate::plugins::registry::PluginSettings::Ntfy(c) = &p.settings else {
                panic!("ntfy")
            };
            let t = c.templates.as_ref().expect("in the settings");
            assert_eq!(Some(t), p.common.templates.as_ref());
            assert_eq!(t.instance(), p.name);
            let r = t.render(&crate::event::Event::new(
                EventName::OnImportFailed,
                Default::default(),
            ));
            r.unwrap()
                .get(crate::message::Part::Title)
                .map(str::to_owned)
        };
        assert_eq!(title(&plugins[0]).as_deref(), Some("A"));
        assert_eq!(title(&plugins[1]).as_deref(), Some("B"));
        assert!(plugins[2].common.templates.is_none());
    }

    #[test]
    fn templates_are_refused_where_there_is_no_message() {
        let (_, cx) = run("hook: {type: webhook, templates: {default: {title: x}}}\nanilist: {templates: {}}\nntfy: {templates: [x]}");
        assert_eq!(
            paths(&cx.problems),
            [
                "plugins.hook.templates",
                "plugins.anilist.templates",
                "plugins.ntfy.templates"
            ]
        );
        assert!(
            cx.problems.items()[0].message.contains("signed JSON"),
            "{:?}",
            cx.problems
        );
    }

    #[test]
    fn digest_and_quiet_hours_are_read_for_people_and_refused_for_programs() {
        let (plugins, cx) = run(
            "ntfy: {digest: {wait_secs: 10}, quiet_hours: {from: '23:00', to: '07:00', timezone: UTC}}",
        );
        assert!(cx.problems.is_empty(), "{:?}", cx.problems);
        let common = &plugins[0].common;
        assert_eq!(common.digest.as_ref().map(|d| d.wait.as_secs()), Some(10));
        assert_eq!(common.quiet_hours.as_ref().map(|q| q.from), Some(23 * 60));
        let (_, cx) = run("hook: {type: webhook, digest: {}, quiet_hours: {from: '23:00', to: '07:00', timezone: UTC}}");
        assert_eq!(
            paths(&cx.problems),
            ["plugins.hook.digest", "plugins.hook.quiet_hours"]
        );
        let (_, cx) = run("ntfy: {digest: {min_events: 1}}");
        assert_eq!(paths(&cx.problems), ["plugins.ntfy.digest.min_events"]);
    }

    #[test]
    fn timeout_must_be_positive() {
        let (_, cx) = run("ntfy: {timeout_ms: 0}");
        assert_eq!(paths(&cx.problems), ["plugins.ntfy.timeout_ms"]);
    }
}
