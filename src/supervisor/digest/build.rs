//! What a digest says: its title ("Breaking Bad S02: 13 episodes imported", "While you
//! were away: 14 imports, 1 failure"), one line per event, and the event that carries it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::event::{Digest, DigestKind, Event, EventName};
use crate::plugins::notification::{format, text};

/// Characters per listed line (a long title is cut with an ellipsis).
const LINE_CHARS: usize = 100;

/// The digest of a burst of like events.
pub fn burst(events: Vec<Arc<Event>>) -> Digest {
    let phrase = counted(&events, true);
    let title = match subject(&events) {
        Some(s) => format!("{s}: {phrase}"),
        None => capitalised(&phrase),
    };
    // Only the listed ones are written out (an overflow digest may stand for thousands).
    let lines = events
        .iter()
        .take(Digest::MAX_LINES)
        .map(|e| line(e, false))
        .collect();
    digest(DigestKind::Burst, title, lines, events)
}

/// The summary of what quiet hours held.
pub fn summary(events: Vec<Arc<Event>>) -> Digest {
    let title = format!("While you were away: {}", counted(&events, false));
    let lines = events
        .iter()
        .take(Digest::MAX_LINES)
        .map(|e| line(e, true))
        .collect();
    digest(DigestKind::QuietHours, title, lines, events)
}

/// The event a digest goes out as: named like its first member, with the digest's
/// delivery id, and the media item its members share (for a poster or a link).
pub fn message_event(digest: Digest, id: String) -> Event {
    let first = &digest.events[0];
    let mut data = Map::new();
    let items: Vec<Option<&Value>> = digest
        .events
        .iter()
        .map(|e| e.data.get("media_item"))
        .collect();
    if let Some(Some(item)) = items.first() {
        if items.iter().all(|i| *i == Some(item)) || same_title(&items) {
            data.insert("media_item".into(), shared_item(item));
        }
    }
    let timestamp = digest
        .events
        .last()
        .map_or(first.timestamp, |e| e.timestamp);
    Event {
        id,
        name: first.name,
        timestamp,
        data,
        digest: Some(Arc::new(digest)),
    }
}

fn digest(kind: DigestKind, title: String, lines: Vec<String>, events: Vec<Arc<Event>>) -> Digest {
    let mut counts = BTreeMap::new();
    for e in &events {
        *counts.entry(e.name.as_str().to_owned()).or_insert(0) += 1;
    }
    let more = events.len().saturating_sub(lines.len());
    Digest {
        kind,
        title,
        count: events.len(),
        lines,
        more,
        counts,
        events,
    }
}

/// Episodes of one season share "Breaking Bad S02"; items of one title share the title.
fn subject(events: &[Arc<Event>]) -> Option<String> {
    let title = |e: &Event| {
        e.str_at("media_item.title")
            .or_else(|| e.str_at("media_item.name"))
            .map(|t| t.trim().to_owned())
    };
    let first = title(&events[0]).filter(|t| !t.is_empty())?;
    if !events
        .iter()
        .all(|e| title(e).as_deref() == Some(first.as_str()))
    {
        return None;
    }
    let season = |e: &Event| {
        [
            "episode.season_number",
            "episode.season",
            "media_item.season_number",
        ]
        .iter()
        .find_map(|p| match e.value_at(p)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    };
    let s = season(&events[0]);
    let label = cut(&first, 60);
    match s.filter(|s| events.iter().all(|e| season(e) == Some(*s))) {
        Some(s) => Some(format!("{label} S{s:02}")),
        None => Some(label),
    }
}

/// "13 episodes imported" (`one_kind`, for a burst) or "14 imports, 1 failure" (a summary),
/// counting by event name in order of first appearance.
fn counted(events: &[Arc<Event>], one_kind: bool) -> String {
    let mut order: Vec<(&'static str, &'static str, usize)> = Vec::new();
    let names: Vec<EventName> = events.iter().map(|e| e.name).collect();
    let same = names.iter().all(|n| *n == names[0]);
    if one_kind && same {
        let n = events.len();
        let noun = if events.iter().all(|e| e.data.get("episode").is_some()) {
            "episodes"
        } else if events
            .iter()
            .all(|e| format::MediaKind::of(e) == format::MediaKind::Movie)
        {
            "movies"
        } else {
            "items"
        };
        return match verb(names[0]) {
            Ok(v) => format!("{n} {noun} {v}"),
            Err((_, plural)) => format!("{n} {plural}"),
        };
    }
    for name in names {
        let (one, many) = noun(name);
        match order.iter_mut().find(|(o, _, _)| *o == one) {
            Some(entry) => entry.2 += 1,
            None => order.push((one, many, 1)),
        }
    }
    order
        .into_iter()
        .map(|(one, many, n)| format!("{n} {}", if n == 1 { one } else { many }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a burst of one event reads: a verb after "13 episodes", or (`Err`) a phrase of
/// its own after the number.
fn verb(name: EventName) -> Result<&'static str, (&'static str, &'static str)> {
    use EventName::*;
    match name {
        BeforeMediaAdded => Ok("about to be added"),
        AfterMediaAdded => Ok("added"),
        AfterMediaUpdated => Ok("updated"),
        AfterMediaDeleted => Ok("removed"),
        OnDownloadCompleted => Ok("downloaded"),
        AfterImportCompleted => Ok("imported"),
        BeforeDownloadInitiated => Err(("release to grab", "releases to grab")),
        AfterDownloadInitiated => Err(("download started", "downloads started")),
        OnDownloadFailed => Err(("download failed", "downloads failed")),
        OnImportFailed => Err(("import failed", "imports failed")),
        OnPlaybackStarted => Err(("playback started", "playbacks started")),
        OnPlaybackFinished => Err(("playback finished", "playbacks finished")),
        OnPluginHealthChanged => Err(("plugin health change", "plugin health changes")),
    }
}

/// What a summary counts an event as: singular and plural.
fn noun(name: EventName) -> (&'static str, &'static str) {
    use EventName::*;
    match name {
        BeforeMediaAdded | AfterMediaAdded => ("addition", "additions"),
        AfterMediaUpdated => ("update", "updates"),
        AfterMediaDeleted => ("removal", "removals"),
        BeforeDownloadInitiated | AfterDownloadInitiated => ("grab", "grabs"),
        OnDownloadCompleted => ("download", "downloads"),
        AfterImportCompleted => ("import", "imports"),
        OnDownloadFailed | OnImportFailed => ("failure", "failures"),
        OnPlaybackStarted | OnPlaybackFinished => ("playback", "playbacks"),
        OnPluginHealthChanged => ("plugin health change", "plugin health changes"),
    }
}

/// One event's line: what it is about ("Breaking Bad (2008) S02E03 · Bit by a Dead Bee"),
/// with the error of a failure, after its own title in a summary ("Import completed: ...").
fn line(event: &Event, titled: bool) -> String {
    let notice = format::notice(event);
    let mut about = format::media_label(event)
        .or_else(|| notice.message.lines().next().map(str::to_owned))
        .unwrap_or_default();
    // A failure says why ("Error: disk full" is its message's last line).
    let why = notice
        .message
        .lines()
        .last()
        .filter(|l| l.starts_with("Error: "));
    if let Some(why) = why.filter(|_| notice.tone == format::Tone::Failure) {
        about = if about.is_empty() {
            why.to_owned()
        } else {
            format!("{about} · {why}")
        };
    }
    let text = if titled && !about.is_empty() {
        format!("{}: {about}", notice.title)
    } else if about.is_empty() {
        notice.title
    } else {
        about
    };
    cut(&text, LINE_CHARS)
}

fn same_title(items: &[Option<&Value>]) -> bool {
    fn title<'a>(i: &Option<&'a Value>) -> Option<&'a str> {
        i.and_then(|v| v.get("title")).and_then(Value::as_str)
    }
    let first = title(&items[0]);
    first.is_some() && items.iter().all(|i| title(i) == first)
}

/// What of a media item a digest keeps: what names it and links to it, not one episode's
/// details.
fn shared_item(item: &Value) -> Value {
    let mut out = Map::new();
    if let Value::Object(m) = item {
        for key in [
            "id",
            "type",
            "title",
            "name",
            "year",
            "tmdb_id",
            "imdb_id",
            "poster_url",
        ] {
            if let Some(v) = m.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// On one line and at most `max` characters.
fn cut(s: &str, max: usize) -> String {
    text::truncate_chars(&text::one_line(s), max).into_owned()
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(name: EventName, data: Value) -> Arc<Event> {
        Arc::new(Event::new(name, data.as_object().cloned().unwrap()))
    }

    fn episode(n: u64) -> Arc<Event> {
        ev(
            EventName::AfterImportCompleted,
            json!({"media_item": {"title": "Breaking Bad", "year": 2008, "type": "tv_show", "tmdb_id": 1396},
                   "episode": {"season_number": 2, "episode_number": n, "title": format!("Episode {n}")}}),
        )
    }

    #[test]
    fn a_season_burst_reads_as_one_message_with_a_bounded_list() {
        let d = burst((1..=13).map(episode).collect());
        assert_eq!(d.title, "Breaking Bad S02: 13 episodes imported");
        assert_eq!((d.count, d.lines.len(), d.more), (13, 10, 3));
        assert_eq!(d.lines[0], "Breaking Bad (2008) S02E01 · Episode 1");
        assert_eq!(d.counts["after_import_completed"], 13);
        let notice = format::notice(&message_event(d, "t-1".into()));
        assert_eq!(notice.title, "Breaking Bad S02: 13 episodes imported");
        assert!(
            notice.message.ends_with("\nand 3 more"),
            "{}",
            notice.message
        );
        assert_eq!(notice.message.lines().count(), 11);
        assert_eq!(
            notice.link.as_deref(),
            Some("https://www.themoviedb.org/tv/1396")
        );
    }

    #[test]
    fn a_summary_counts_by_kind_and_takes_the_gravest_tone() {
        let failed = ev(
            EventName::OnDownloadFailed,
            json!({"media_item": {"title": "Dune"}, "error_message": "disk full"}),
        );
        let mut events: Vec<_> = (1..=14).map(episode).collect();
        events.insert(3, failed);
        let d = summary(events);
        assert_eq!(d.title, "While you were away: 14 imports, 1 failure");
        assert_eq!(d.lines[3], "Download failed: Dune · Error: disk full");
        assert_eq!(
            d.lines[0],
            "Import completed: Breaking Bad (2008) S02E01 · Episode 1"
        );
        let e = message_event(d, "t-2".into());
        assert_eq!(e.name, EventName::AfterImportCompleted);
        assert_eq!(format::notice(&e).tone, format::Tone::Failure);
    }

    #[test]
    fn an_overflow_digest_of_thousands_lists_ten_and_shows_a_failure_at_the_end() {
        let mut events: Vec<_> = (1..=5000).map(episode).collect();
        events.push(ev(
            EventName::OnImportFailed,
            json!({"media_item": {"title": "Breaking Bad"}}),
        ));
        let d = summary(events);
        assert_eq!((d.count, d.lines.len(), d.more), (5001, 10, 4991));
        assert_eq!(d.title, "While you were away: 5000 imports, 1 failure");
        let n = format::notice(&message_event(d, "t-4".into()));
        assert_eq!(n.tone, format::Tone::Failure);
        assert!(n.message.ends_with("and 4991 more"));
    }

    #[test]
    fn mixed_and_subjectless_bursts_still_read_well() {
        let a = ev(
            EventName::OnDownloadFailed,
            json!({"media_item": {"title": "A"}}),
        );
        let b = ev(
            EventName::OnDownloadFailed,
            json!({"media_item": {"title": "B"}}),
        );
        assert_eq!(
            burst(vec![a.clone(), b.clone()]).title,
            "2 downloads failed"
        );
        let c = ev(
            EventName::AfterMediaAdded,
            json!({"media_item": {"title": "A", "type": "movie"}}),
        );
        assert_eq!(burst(vec![a, c]).title, "A: 1 failure, 1 addition");
        let m = |t: &str| {
            ev(
                EventName::AfterMediaAdded,
                json!({"media_item": {"title": t, "type": "movie"}}),
            )
        };
        let d = burst(vec![m("X"), m("Y")]);
        assert_eq!(d.title, "2 movies added");
        assert!(
            message_event(d, "t-3".into()).data.is_empty(),
            "no shared item"
        );
    }
}
