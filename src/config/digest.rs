//! Two common fields of a plugin instance: `digest:` (bursts of like events sent as one
//! message) and `quiet_hours:` (deliveries deferred, not dropped, during a daily window).
//! Parsed leniently into raw structs, then validated into [`DigestSettings`] and
//! [`QuietHours`] with every problem reported at its path.

use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

use super::fields::{closest, Collector};
use super::join;
use crate::event::EventName;

/// `digest:`: events of one group arriving within `wait` of each other are held and sent
/// as one message once the group is quiet for `wait` (or `max_wait` after its first).
#[derive(Debug, Clone, PartialEq)]
pub struct DigestSettings {
    /// Dotted data paths whose values make the group key; empty: the default key (event
    /// name + series or media item + season).
    pub group_by: Vec<String>,
    /// A group closes this long after its newest event.
    pub wait: Duration,
    /// ... and at the latest this long after its first (a steady trickle).
    pub max_wait: Duration,
    /// Groups smaller than this go out as the original messages, in order.
    pub min_events: usize,
    /// Held deliveries beyond which every event goes into digests (overflow mode);
    /// `None`: ten minutes of the instance's rate limit, off without one.
    pub overflow_at: Option<usize>,
}

/// `quiet_hours:`: from `from` to `to` (local time in `timezone`, may cross midnight),
/// deliveries are held; events in `except` go out at once.
#[derive(Debug, Clone, PartialEq)]
pub struct QuietHours {
    /// Start, minutes after local midnight.
    pub from: u32,
    /// End, minutes after local midnight.
    pub to: u32,
    /// The IANA zone the times are in.
    pub timezone: chrono_tz::Tz,
    /// Events that are never held.
    pub except: Vec<EventName>,
    /// What was held goes out as one summary from this many on; fewer go out as they are.
    pub min_events: usize,
}

const DIGEST_FIELDS: &[&str] = &[
    "group_by",
    "wait_secs",
    "max_wait_secs",
    "min_events",
    "overflow_at",
];
const QUIET_FIELDS: &[&str] = &["from", "to", "timezone", "except", "min_events"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDigest {
    #[serde(default)]
    group_by: Vec<String>,
    #[serde(default = "default_wait")]
    wait_secs: u64,
    #[serde(default = "default_max_wait")]
    max_wait_secs: u64,
    #[serde(default = "default_min_events")]
    min_events: usize,
    #[serde(default)]
    overflow_at: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuiet {
    from: String,
    to: String,
    timezone: String,
    #[serde(default)]
    except: Vec<String>,
    #[serde(default = "default_min_events")]
    min_events: usize,
}

fn default_wait() -> u64 {
    30
}
fn default_max_wait() -> u64 {
    300
}
fn default_min_events() -> usize {
    3
}

/// `digest:` at `path`; `None` when absent, null or wrong (each problem recorded).
pub fn digest(cx: &mut Collector, path: &str, value: Option<Value>) -> Option<DigestSettings> {
    let path = join(path, "digest");
    let raw: RawDigest = mapping(cx, &path, value?, DIGEST_FIELDS)?;
    let mut ok = true;
    let mut bad = |field: &str, msg: String| {
        cx.problems.push(join(&path, field), msg);
        ok = false;
    };
    if raw.wait_secs == 0 {
        bad(
            "wait_secs",
            "must be at least 1 (seconds a group waits for more like it)".into(),
        );
    }
    if raw.max_wait_secs < raw.wait_secs {
        bad(
            "max_wait_secs",
            format!(
                "must be at least wait_secs ({}): it bounds how long a group can be held",
                raw.wait_secs
            ),
        );
    }
    if raw.max_wait_secs > 86_400 {
        bad("max_wait_secs", "must be at most 86400 (a day)".into());
    }
    if raw.min_events < 2 {
        bad(
            "min_events",
            "must be at least 2 (a digest of one is the message itself)".into(),
        );
    }
    if raw.overflow_at == Some(0) {
        bad(
            "overflow_at",
            "must be at least 1 (remove it for the default: ten minutes of rate_limit)".into(),
        );
    }
    for (i, p) in raw.group_by.iter().enumerate() {
        let parts_ok = !p.is_empty() && p.split('.').all(|s| !s.trim().is_empty());
        if !parts_ok {
            bad(
                &format!("group_by[{i}]"),
                format!("`{p}` is not a dotted data path, e.g. `media_item.title`"),
            );
        }
    }
    ok.then(|| DigestSettings {
        group_by: raw.group_by,
        wait: Duration::from_secs(raw.wait_secs),
        max_wait: Duration::from_secs(raw.max_wait_secs),
        min_events: raw.min_events,
        overflow_at: raw.overflow_at,
    })
}

/// `quiet_hours:` at `path`; `None` when absent, null or wrong (each problem recorded).
pub fn quiet_hours(cx: &mut Collector, path: &str, value: Option<Value>) -> Option<QuietHours> {
    let path = join(path, "quiet_hours");
    let raw: RawQuiet = mapping(cx, &path, value?, QUIET_FIELDS)?;
    let from = clock_time(cx, &join(&path, "from"), &raw.from);
    let to = clock_time(cx, &join(&path, "to"), &raw.to);
    let timezone = match raw.timezone.trim().parse::<chrono_tz::Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
            let hint = closest(raw.timezone.trim(), names)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            cx.problems.push(
                join(&path, "timezone"),
                format!(
                    "unknown time zone `{}`{hint}; use an IANA name such as `Europe/Berlin`, `America/New_York` or `UTC`",
                    raw.timezone
                ),
            );
            None
        }
    };
    let mut except = Vec::new();
    let mut ok = true;
    for (i, name) in raw.except.iter().enumerate() {
        match name.parse::<EventName>() {
            Ok(e) => except.push(e),
            Err(e) => {
                cx.problems
                    .push(format!("{}[{i}]", join(&path, "except")), e.to_string());
                ok = false;
            }
        }
    }
    if raw.min_events < 2 {
        cx.problems.push(
            join(&path, "min_events"),
            "must be at least 2 (fewer held deliveries go out as they are)",
        );
        ok = false;
    }
    if let (Some(f), Some(t)) = (from, to) {
        if f == t {
            cx.problems.push(
                join(&path, "to"),
                "must differ from `from` (the window would be empty, or the whole day)",
            );
            ok = false;
        }
    }
    let (from, to, timezone) = (from?, to?, timezone?);
    ok.then_some(QuietHours {
        from,
        to,
        timezone,
        except,
        min_events: raw.min_events,
    })
}

/// A mapping deserialized as `T`, with did-you-mean for a mistyped field.
fn mapping<T: serde::de::DeserializeOwned>(
    cx: &mut Collector,
    path: &str,
    value: Value,
    fields: &[&str],
) -> Option<T> {
    match value {
        Value::Null => None,
        Value::Mapping(m) => cx.mapping(path, m, &[], |v| serde_yaml::from_value(v)),
        _ => {
            cx.problems.push(
                path,
                format!("must be a mapping with the fields {}", fields.join(", ")),
            );
            None
        }
    }
}

/// `"HH:MM"` (24-hour clock) as minutes after midnight.
fn clock_time(cx: &mut Collector, path: &str, s: &str) -> Option<u32> {
    let parsed = s.trim().split_once(':').and_then(|(h, m)| {
        let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
        (h < 24 && m < 60 && s.trim().len() <= 5).then_some(h * 60 + m)
    });
    if parsed.is_none() {
        cx.problems.push(
            path,
            format!("`{s}` is not a time of day; write it as HH:MM on a 24-hour clock, e.g. \"23:00\" or \"07:30\""),
        );
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_digest(yaml: &str) -> (Option<DigestSettings>, Collector) {
        let mut cx = Collector::default();
        let v: Value = serde_yaml::from_str(yaml).unwrap();
        (digest(&mut cx, "plugins.ntfy", Some(v)), cx)
    }

    fn run_quiet(yaml: &str) -> (Option<QuietHours>, Collector) {
        let mut cx = Collector::default();
        let v: Value = serde_yaml::from_str(yaml).unwrap();
        (quiet_hours(&mut cx, "plugins.ntfy", Some(v)), cx)
    }

    fn messages(cx: &Collector) -> Vec<String> {
        cx.problems
            .items()
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn a_digest_takes_its_defaults() {
        let (d, cx) = run_digest("{}");
        assert!(cx.problems.is_empty(), "{:?}", messages(&cx));
        let d = d.expect("parsed");
        assert_eq!(d.wait, Duration::from_secs(30));
        assert_eq!(d.max_wait, Duration::from_secs(300));
        assert_eq!((d.min_events, d.overflow_at), (3, None));
        assert!(d.group_by.is_empty());
    }

    #[test]
    fn digest_problems_are_reported_together_with_their_paths() {
        let (d, cx) = run_digest(
            "{wait_secs: 60, max_wait_secs: 30, min_events: 1, overflow_at: 0, group_by: ['a..b']}",
        );
        assert!(d.is_none());
        let m = messages(&cx);
        assert_eq!(m.len(), 4, "{m:?}");
        assert!(
            m[0].starts_with("plugins.ntfy.digest.max_wait_secs: must be at least wait_secs (60)"),
            "{m:?}"
        );
        assert!(m[1].starts_with("plugins.ntfy.digest.min_events"), "{m:?}");
        assert!(m[2].starts_with("plugins.ntfy.digest.overflow_at"), "{m:?}");
        assert!(m[3].starts_with("plugins.ntfy.digest.group_by[0]"), "{m:?}");
    }

    #[test]
    fn a_mistyped_digest_field_gets_a_suggestion() {
        let (_, cx) = run_digest("{wait_sec: 10}");
        let m = messages(&cx);
        assert!(m[0].contains("did you mean `wait_secs`?"), "{m:?}");
        let (_, cx) = run_digest("5");
        assert!(messages(&cx)[0].contains("must be a mapping"));
    }

    #[test]
    fn quiet_hours_parse_times_zone_and_exceptions() {
        let (q, cx) = run_quiet(
            "{from: '23:00', to: '07:30', timezone: Europe/Berlin, except: [download.failed]}",
        );
        assert!(cx.problems.is_empty(), "{:?}", messages(&cx));
        let q = q.expect("parsed");
        assert_eq!((q.from, q.to), (23 * 60, 7 * 60 + 30));
        assert_eq!(q.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(q.except, [EventName::OnDownloadFailed]);
        assert_eq!(q.min_events, 3);
    }

    #[test]
    fn quiet_hours_problems_say_what_to_write() {
        let (q, cx) = run_quiet(
            "{from: '25:00', to: '7.30', timezone: Europe/Berlim, except: [on_import_faild], min_events: 1}",
        );
        assert!(q.is_none());
        let m = messages(&cx);
        assert_eq!(m.len(), 5, "{m:?}");
        assert!(
            m[0].starts_with("plugins.ntfy.quiet_hours.from: `25:00` is not a time of day"),
            "{m:?}"
        );
        assert!(m[1].starts_with("plugins.ntfy.quiet_hours.to:"), "{m:?}");
        assert!(m[2].contains("did you mean `Europe/Berlin`?"), "{m:?}");
        assert!(
            m[3].starts_with("plugins.ntfy.quiet_hours.except[0]")
                && m[3].contains("did you mean `on_import_failed`"),
            "{m:?}"
        );
        assert!(
            m[4].starts_with("plugins.ntfy.quiet_hours.min_events"),
            "{m:?}"
        );
        let (_, cx) = run_quiet("{from: '07:00', to: '07:00', timezone: UTC}");
        assert!(
            messages(&cx)[0].contains("must differ"),
            "{:?}",
            messages(&cx)
        );
        let (_, cx) = run_quiet("{from: '07:00', timezone: UTC}");
        assert!(
            messages(&cx)[0].contains("plugins.ntfy.quiet_hours.to: is required"),
            "{:?}",
            messages(&cx)
        );
    }
}
