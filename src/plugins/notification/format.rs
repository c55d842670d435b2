//! Notification text shared by every notification plugin: a human title, a short message and a link per event.
//!
//! Event data comes from the media manager and may have been changed by user hooks, so
//! every field is optional here: a missing or oddly typed field drops its line, and an
//! event with nothing usable still reads well (its catalog description). Values are
//! flattened to one line each, so data cannot forge extra lines or control characters.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::text::{human_size, one_line};
use crate::event::{Digest, Event, EventName};
use crate::message::{Part, Rendered, Templates};

/// What kind of media an event is about, from `media_item.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// A film.
    Movie,
    /// A TV series (or one of its episodes).
    Series,
    /// No type, or one we do not know.
    Unknown,
}

impl MediaKind {
    /// The kind named by the event's `media_item.type` (`movie`, `tv_show`, `series`...).
    pub fn of(event: &Event) -> MediaKind {
        MediaKind::of_item(Sections::of(event).item)
    }

    /// The kind named by `type` in a `media_item` object.
    fn of_item(item: Option<&Map<String, Value>>) -> MediaKind {
        const MOVIE: &[&str] = &["movie", "film"];
        const SERIES: &[&str] = &["tv_show", "tv", "show", "series", "tv_series", "episode"];
        let Some(kind) = get(item, "type").and_then(Value::as_str).map(str::trim) else {
            return MediaKind::Unknown;
        };
        let is = |names: &[&str]| names.iter().any(|n| kind.eq_ignore_ascii_case(n));
        if is(MOVIE) {
            MediaKind::Movie
        } else if is(SERIES) {
            MediaKind::Series
        } else {
            MediaKind::Unknown
        }
    }

    /// "movie", "series" or "media", for titles.
    pub fn noun(self) -> &'static str {
        match self {
            MediaKind::Movie => "movie",
            MediaKind::Series => "series",
            MediaKind::Unknown => "media",
        }
    }

    /// `noun`, capitalised: "Movie", "Series" or "Media".
    fn title_noun(self) -> &'static str {
        match self {
            MediaKind::Movie => "Movie",
            MediaKind::Series => "Series",
            MediaKind::Unknown => "Media",
        }
    }
}

/// The two objects most lines read from, `media_item` and `episode`, looked up once: a
/// notification reads a dozen of their fields, and walking each dotted path from the top
/// of the data cost more than building the text.
#[derive(Clone, Copy)]
struct Sections<'a> {
    item: Option<&'a Map<String, Value>>,
    episode: Option<&'a Map<String, Value>>,
}

impl<'a> Sections<'a> {
    fn of(event: &'a Event) -> Self {
        let section = |key| event.data.get(key).and_then(Value::as_object);
        Sections {
            item: section("media_item"),
            episode: section("episode"),
        }
    }
}

/// `key` in `map`, when both exist.
fn get<'a>(map: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a Value> {
    map?.get(key)
}

/// How the news feels, so each service can pick a colour, an emoji or a sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Something happened.
    Info,
    /// Something finished well.
    Success,
    /// Something needs a look.
    Warning,
    /// Something failed.
    Failure,
}

/// The text of one notification, before any service's limits are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// One line, e.g. "Movie added".
    pub title: String,
    /// One or more lines, e.g. "Dune (2021)".
    pub message: String,
    /// A page about the media (TMDB, else IMDb), when the data has an id for it.
    pub link: Option<String>,
    /// The media kind, for icons and tags.
    pub media: MediaKind,
    /// Success, failure and the like.
    pub tone: Tone,
}

/// The title, message and link for `event`. Never fails: missing data only drops lines.
pub fn notice(event: &Event) -> Notice {
    use EventName::*;
    if let Some(digest) = &event.digest {
        return digest_notice(digest);
    }
    let sections = Sections::of(event);
    let media = MediaKind::of_item(sections.item);
    let noun = media.noun();
    let item = label(sections);
    // Looked up only by the events that show them.
    let release = || field(event, &["release_name", "download.title", "release.title"]);
    let file = || field(event, &["file_path", "media_file.path"]).map(|p| file_name(&p));
    let error =
        || field(event, &["error_message", "error", "reason"]).map(|e| format!("Error: {e}"));
    let (title, lines) = match event.name {
        BeforeMediaAdded => (format!("Adding {noun}"), vec![item]),
        AfterMediaAdded => (format!("{} added", media.title_noun()), vec![item]),
        AfterMediaUpdated => (
            format!("{} updated", media.title_noun()),
            vec![item, changes(event)],
        ),
        AfterMediaDeleted => (format!("{} removed", media.title_noun()), vec![item]),
        BeforeDownloadInitiated => {
            let details = joined(
                event,
                &["release.quality", "release.size", "release.indexer"],
            );
            let target = item.map(|i| format!("For {i}"));
            (
                "Grabbing release".to_owned(),
                vec![field(event, &["release.title"]), details, target],
            )
        }
        AfterDownloadInitiated => {
            let from =
                field(event, &["download.indexer", "release.indexer"]).map(|i| format!("from {i}"));
            let via = field(event, &["download.download_client"]).map(|c| format!("via {c}"));
            let route = [from, via]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let route = (!route.is_empty()).then(|| capitalised(&route));
            ("Download started".to_owned(), vec![item, release(), route])
        }
        OnDownloadCompleted => ("Download completed".to_owned(), vec![item, release()]),
        OnDownloadFailed => ("Download failed".to_owned(), vec![item, release(), error()]),
        AfterImportCompleted => {
            let details = joined(
                event,
                &[
                    "media_file.resolution",
                    "media_file.codec",
                    "media_file.size",
                ],
            );
            ("Import completed".to_owned(), vec![item, file(), details])
        }
        OnImportFailed => ("Import failed".to_owned(), vec![item, file(), error()]),
        OnPlaybackStarted => (
            "Playback started".to_owned(),
            vec![playback(event, item, "is watching")],
        ),
        OnPlaybackFinished => (
            "Playback finished".to_owned(),
            vec![playback(event, item, "finished")],
        ),
        OnPluginHealthChanged => return plugin_health(event),
    };
    let message = joined_lines(lines).unwrap_or_else(|| capitalised(event.name.about()));
    assembled(event, sections, media, title, message)
}

/// A notice of `event` with this text: the link, media kind and tone from the event.
fn assembled(
    event: &Event,
    sections: Sections,
    media: MediaKind,
    title: String,
    message: String,
) -> Notice {
    Notice {
        title,
        message,
        link: link_in(sections.item, media),
        media,
        tone: tone(event.name),
    }
}

/// The tone of `name`'s notices (a plugin's health takes its own from the data).
fn tone(name: EventName) -> Tone {
    use EventName::*;
    match name {
        OnDownloadCompleted | AfterImportCompleted => Tone::Success,
        OnDownloadFailed | OnImportFailed => Tone::Failure,
        _ => Tone::Info,
    }
}

/// [`notice`] with `title` and `message` in place of the built-in ones, which are then
/// not made at all; `None` where the rest of the notice comes with its text (a digest, a
/// plugin's health).
fn framed(event: &Event, title: &str, message: &str) -> Option<Notice> {
    if event.digest.is_some() || event.name == EventName::OnPluginHealthChanged {
        return None;
    }
    let sections = Sections::of(event);
    let media = MediaKind::of_item(sections.item);
    Some(assembled(
        event,
        sections,
        media,
        title.to_owned(),
        message.to_owned(),
    ))
}

/// [`notice`] with the title and message the instance's template gives for `event` in
/// place of the built-in ones (each part falls back on its own), and what else the
/// template rendered (tags, links, fields) for the plugin to use. Without templates, or
/// with none for this event, exactly [`notice`].
pub fn templated(event: &Event, templates: Option<&Templates>) -> (Notice, Option<Rendered>) {
    let rendered = templates.and_then(|t| match (&event.digest, t.digest()) {
        // A digest has a template of its own (`templates.digest`), with the digest in its
        // context; the events' templates would read one event's data. Without one, the
        // built-in digest text.
        (Some(digest), Some(template)) => {
            let base = t.context(template, event);
            let ctx = minijinja::context! { digest => minijinja::value::Serde(&**digest), ..base };
            Some(t.render_with(template, ctx))
        }
        (Some(_), None) => None,
        (None, _) => t.render(event),
    });
    let Some(r) = &rendered else {
        return (notice(event), rendered);
    };
    for (template, reason) in &r.failed {
        crate::preview::notes::template_fell_back(template, reason);
    }
    let (title, message) = (r.get(Part::Title), r.get(Part::Message));
    if let Some(n) = title.zip(message).and_then(|(t, m)| framed(event, t, m)) {
        return (n, rendered);
    }
    let mut notice = notice(event);
    if let Some(title) = title {
        title.clone_into(&mut notice.title);
    }
    if let Some(message) = message {
        message.clone_into(&mut notice.message);
    }
    (notice, rendered)
}

/// The URL a template rendered for `part`, when it is a whole http(s) URL of at most
/// `max_chars` (a link that data made into `javascript:` or cut in half is left out, and
/// the built-in link stays).
pub fn templated_url(rendered: Option<&Rendered>, part: Part, max_chars: usize) -> Option<String> {
    let text = rendered?.get(part)?.trim();
    let url = reqwest::Url::parse(text).ok()?;
    let fits = matches!(url.scheme(), "http" | "https")
        && url.has_host()
        && text.chars().count() <= max_chars
        && !text.chars().any(|c| c.is_whitespace() || c.is_control());
    fits.then(|| text.to_owned())
}

/// The text of a digest or a quiet-hours summary: its title, one line per event (at most
/// [`Digest::MAX_LINES`], then "and N more"), the link and media kind its events share,
/// and the gravest tone among them (a failure in a summary still reads as one).
pub fn digest_notice(digest: &Digest) -> Notice {
    let mut message = digest.lines.join("\n");
    if digest.more > 0 {
        let _ = write!(message, "\nand {} more", digest.more);
    }
    // Cheap per event (a digest may stand for thousands): the kind and link of each; the
    // tone from the listed ones, and from every name (a failure anywhere shows).
    let events = &digest.events;
    let media = events
        .first()
        .map(|e| MediaKind::of(e))
        .filter(|m| events.iter().all(|e| MediaKind::of(e) == *m))
        .unwrap_or(MediaKind::Unknown);
    let link = events
        .first()
        .and_then(|e| link(e, media))
        .filter(|l| events.iter().all(|e| link(e, media).as_ref() == Some(l)));
    let rank = |t: &Tone| match t {
        Tone::Info => 0,
        Tone::Success => 1,
        Tone::Warning => 2,
        Tone::Failure => 3,
    };
    let failed = events.iter().any(|e| {
        matches!(
            e.name,
            EventName::OnDownloadFailed | EventName::OnImportFailed
        )
    });
    let tone = events
        .iter()
        .take(Digest::MAX_LINES)
        .map(|e| notice(e).tone)
        .chain(failed.then_some(Tone::Failure))
        .max_by_key(rank)
        .unwrap_or(Tone::Info);
    Notice {
        title: digest.title.clone(),
        message,
        link,
        media,
        tone,
    }
}

/// The lines present, one per line; `None` when there are none.
fn joined_lines(lines: Vec<Option<String>>) -> Option<String> {
    let mut lines = lines.into_iter().flatten().filter(|l| !l.is_empty());
    let mut text = lines.next()?;
    for line in lines {
        text.push('\n');
        text.push_str(&line);
    }
    Some(text)
}

/// `on_plugin_health_changed`: `{plugin, from, to, reason}` (also `instance`, `state`).
fn plugin_health(event: &Event) -> Notice {
    let plugin = field(event, &["plugin", "instance", "name"]);
    let to = field(event, &["to", "state", "status"]);
    let (what, tone) = match to.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("open" | "tripped" | "failing") => ("Plugin failing", Tone::Failure),
        Some("misconfigured") => ("Plugin misconfigured", Tone::Failure),
        Some("half_open" | "half-open" | "probing") => ("Plugin recovering", Tone::Warning),
        Some("closed" | "healthy" | "recovered" | "running") => ("Plugin recovered", Tone::Success),
        _ => ("Plugin health changed", Tone::Warning),
    };
    let title = match &plugin {
        Some(p) => format!("{what}: {p}"),
        None => what.to_owned(),
    };
    let change = match (field(event, &["from"]), &to) {
        (Some(from), Some(to)) => Some(format!("{from} → {to}")),
        (None, Some(to)) => Some(format!("Now {to}")),
        _ => None,
    };
    let lines: Vec<String> = [change, field(event, &["reason", "error_message", "error"])]
        .into_iter()
        .flatten()
        .collect();
    let message = if lines.is_empty() {
        capitalised(event.name.about())
    } else {
        lines.join("\n")
    };
    Notice {
        title,
        message,
        link: None,
        media: MediaKind::Unknown,
        tone,
    }
}

/// "Dune (2021)", "The Office (2005) S02E03 · The Dundies", or whatever part is known.
pub fn media_label(event: &Event) -> Option<String> {
    label(Sections::of(event))
}

fn label(sections: Sections<'_>) -> Option<String> {
    let Sections { item, episode } = sections;
    let mut label = first_text([get(item, "title"), get(item, "name")])?;
    if let Some(year) = first_text([get(item, "year")]) {
        // " (2021)", unless the title says so already.
        let end = label.len();
        let _ = write!(label, " ({year})");
        if label[..end].contains(&label[end + 1..]) {
            label.truncate(end);
        }
    }
    let season = first_number([
        get(episode, "season_number"),
        get(episode, "season"),
        get(item, "season_number"),
    ]);
    let number = first_number([
        get(episode, "episode_number"),
        get(episode, "number"),
        get(item, "episode_number"),
    ]);
    match (season, number) {
        (Some(s), Some(e)) => {
            let _ = write!(label, " S{s:02}E{e:02}");
        }
        (Some(s), None) => {
            let _ = write!(label, " Season {s}");
        }
        _ => {}
    }
    if let Some(name) = first_text([get(episode, "title")]) {
        label.push_str(" · ");
        label.push_str(&name);
    }
    Some(label)
}

/// A TMDB page when the kind and `tmdb_id` are known, else an IMDb page for `imdb_id`.
/// Ids are checked (digits; `tt` + digits) so data cannot steer the link elsewhere.
pub fn link(event: &Event, media: MediaKind) -> Option<String> {
    link_in(Sections::of(event).item, media)
}

fn link_in(item: Option<&Map<String, Value>>, media: MediaKind) -> Option<String> {
    let tmdb = match get(item, "tmdb_id") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match (media, tmdb) {
        (MediaKind::Movie, Some(id)) => {
            return Some(format!("https://www.themoviedb.org/movie/{id}"))
        }
        (MediaKind::Series, Some(id)) => {
            return Some(format!("https://www.themoviedb.org/tv/{id}"))
        }
        _ => {}
    }
    let imdb = get(item, "imdb_id")?.as_str()?.trim();
    let valid = imdb.len() <= 14
        && imdb
            .strip_prefix("tt")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    valid.then(|| format!("https://www.imdb.com/title/{imdb}/"))
}

/// The first of `paths` holding a non-empty string or a number, flattened to one line.
fn field(event: &Event, paths: &[&str]) -> Option<String> {
    paths.iter().find_map(|p| text(event.value_at(p)?))
}

/// The first of `values` that [`text`] shows.
fn first_text<const N: usize>(values: [Option<&Value>; N]) -> Option<String> {
    values.into_iter().flatten().find_map(text)
}

/// A non-empty string flattened to one line, or a number; nothing else.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(one_line(s)).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(number_text(n)),
        _ => None,
    }
}

/// A whole number without a fraction even when it came as a float (2021.0 → "2021").
fn number_text(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        _ => n.to_string(),
    }
}

/// The first of `values` that is a whole number (or a string holding one).
fn first_number<const N: usize>(values: [Option<&Value>; N]) -> Option<u64> {
    values.into_iter().flatten().find_map(|v| match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// The known ones of `paths`, ` · `-joined; a numeric `size` shown in binary units.
fn joined(event: &Event, paths: &[&str]) -> Option<String> {
    let parts: Vec<String> = paths
        .iter()
        .filter_map(|p| match event.value_at(p) {
            Some(Value::Number(n)) if p.ends_with("size") => n.as_f64().map(human_size),
            _ => field(event, &[p]),
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// "Changed: title, year" from `changes` as an object (its keys), a list or a string.
fn changes(event: &Event) -> Option<String> {
    let names: Vec<String> = match event.value_at("changes")? {
        Value::Object(o) => o.keys().map(|k| one_line(k)).collect(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(one_line).collect(),
        Value::String(s) => vec![one_line(s)],
        _ => vec![],
    };
    let names: Vec<String> = names.into_iter().filter(|n| !n.is_empty()).collect();
    (!names.is_empty()).then(|| format!("Changed: {}", names.join(", ")))
}

fn playback(event: &Event, item: Option<String>, verb: &str) -> Option<String> {
    let user = field(event, &["user.name", "user.username", "user"]);
    match (user, item) {
        (Some(u), Some(i)) => Some(format!("{u} {verb} {i}")),
        (None, i) => i,
        (Some(u), None) => Some(format!("{u} {verb}")),
    }
}

/// The last component of a Unix or Windows path.
fn file_name(path: &str) -> String {
    path.rsplit(['/', '\\'])
        .find(|p| !p.is_empty())
        .unwrap_or(path)
        .to_owned()
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(name: EventName, data: Value) -> Event {
        Event::new(name, data.as_object().cloned().unwrap_or_default())
    }

    fn dune() -> Value {
        json!({"id": 7, "type": "movie", "title": "Dune", "year": 2021, "tmdb_id": 438631, "imdb_id": "tt1160419"})
    }

    fn office() -> Value {
        json!({"type": "tv_show", "title": "The Office", "year": 2005, "tmdb_id": "2316"})
    }

    #[test]
    fn media_added_names_the_kind_and_the_item() {
        let n = notice(&event(
            EventName::AfterMediaAdded,
            json!({"media_item": dune()}),
        ));
        assert_eq!(
            (n.title.as_str(), n.message.as_str()),
            ("Movie added", "Dune (2021)")
        );
        assert_eq!(
            n.link.as_deref(),
            Some("https://www.themoviedb.org/movie/438631")
        );
        assert_eq!(n.media, MediaKind::Movie);
        let n = notice(&event(
            EventName::AfterMediaAdded,
            json!({"media_item": office()}),
        ));
        assert_eq!(
            (n.title.as_str(), n.message.as_str()),
            ("Series added", "The Office (2005)")
        );
        assert_eq!(
            n.link.as_deref(),
            Some("https://www.themoviedb.org/tv/2316")
        );
    }

    #[test]
    fn every_event_reads_well_with_full_data() {
        let data = json!({
            "media_item": dune(),
            "changes": {"title": ["Dune: Part One", "Dune"]},
            "release": {"title": "Dune.2021.2160p.WEB-DL", "quality": "2160p", "size": 15_032_385_536u64, "indexer": "NZBgeek"},
            "download": {"title": "Dune.2021.2160p.WEB-DL", "indexer": "NZBgeek", "download_client": "SABnzbd", "id": "d1"},
            "release_name": "Dune.2021.2160p.WEB-DL",
            "error_message": "disk full",
            "file_path": "/media/movies/Dune (2021)/Dune.2021.2160p.mkv",
            "media_file": {"resolution": "2160p", "codec": "HEVC", "size": 15_032_385_536u64},
            "user": {"name": "alice"},
            "position_seconds": 120,
        });
        let expected = [
            (EventName::BeforeMediaAdded, "Adding movie", "Dune (2021)"),
            (EventName::AfterMediaAdded, "Movie added", "Dune (2021)"),
            (
                EventName::AfterMediaUpdated,
                "Movie updated",
                "Dune (2021)\nChanged: title",
            ),
            (EventName::AfterMediaDeleted, "Movie removed", "Dune (2021)"),
            (
                EventName::BeforeDownloadInitiated,
                "Grabbing release",
                "Dune.2021.2160p.WEB-DL\n2160p · 14.0 GiB · NZBgeek\nFor Dune (2021)",
            ),
            (
                EventName::AfterDownloadInitiated,
                "Download started",
                "Dune (2021)\nDune.2021.2160p.WEB-DL\nFrom NZBgeek via SABnzbd",
            ),
            (
                EventName::OnDownloadCompleted,
                "Download completed",
                "Dune (2021)\nDune.2021.2160p.WEB-DL",
            ),
            (
                EventName::OnDownloadFailed,
                "Download failed",
                "Dune (2021)\nDune.2021.2160p.WEB-DL\nError: disk full",
            ),
            (
                EventName::AfterImportCompleted,
                "Import completed",
                "Dune (2021)\nDune.2021.2160p.mkv\n2160p · HEVC · 14.0 GiB",
            ),
            (
                EventName::OnImportFailed,
                "Import failed",
                "Dune (2021)\nDune.2021.2160p.mkv\nError: disk full",
            ),
            (
                EventName::OnPlaybackStarted,
                "Playback started",
                "alice is watching Dune (2021)",
            ),
            (
                EventName::OnPlaybackFinished,
                "Playback finished",
                "alice finished Dune (2021)",
            ),
        ];
        assert_eq!(
            expected.len() + 1,
            EventName::ALL.len(),
            "every event but plugin health is listed"
        );
        for (name, title, message) in expected {
            let n = notice(&event(name, data.clone()));
            assert_eq!(
                (n.title.as_str(), n.message.as_str()),
                (title, message),
                "{name}"
            );
        }
    }

    #[test]
    fn every_event_copes_with_missing_or_odd_data() {
        let odd = json!({"media_item": {"title": 42, "year": null, "type": ["x"]}, "user": [1], "changes": 3, "file_path": {}});
        for data in [json!({}), json!(null), odd] {
            for name in EventName::ALL {
                let n = notice(&event(*name, data.clone()));
                assert!(
                    !n.title.is_empty() && !n.message.is_empty(),
                    "{name}: {n:?}"
                );
                assert!(!n.title.contains('\n'), "{name}");
            }
        }
        let n = notice(&event(EventName::AfterMediaAdded, json!({})));
        assert_eq!(
            (n.title.as_str(), n.message.as_str()),
            ("Media added", "A movie or series was added to the library")
        );
        let n = notice(&event(
            EventName::OnImportFailed,
            json!({"error_message": "no space"}),
        ));
        assert_eq!(n.message, "Error: no space");
        assert_eq!(n.tone, Tone::Failure);
    }

    #[test]
    fn plugin_health_says_which_plugin_and_why() {
        let data = json!({"plugin": "ntfy_alerts", "from": "closed", "to": "open", "reason": "5 failures in 20 calls"});
        let n = notice(&event(EventName::OnPluginHealthChanged, data));
        assert_eq!(n.title, "Plugin failing: ntfy_alerts");
        assert_eq!(n.message, "closed → open\n5 failures in 20 calls");
        assert_eq!(n.tone, Tone::Failure);
        let n = notice(&event(
            EventName::OnPluginHealthChanged,
            json!({"instance": "tg", "state": "closed"}),
        ));
        assert_eq!(
            (n.title.as_str(), n.message.as_str(), n.tone),
            ("Plugin recovered: tg", "Now closed", Tone::Success)
        );
        let n = notice(&event(EventName::OnPluginHealthChanged, json!({})));
        assert_eq!(n.title, "Plugin health changed");
    }

    #[test]
    fn title_nouns_are_the_nouns_capitalised() {
        for kind in [MediaKind::Movie, MediaKind::Series, MediaKind::Unknown] {
            assert_eq!(kind.title_noun(), capitalised(kind.noun()));
        }
    }

    #[test]
    fn labels_episodes_and_float_years() {
        let data = json!({"media_item": {"title": "The Office", "year": 2005.0, "type": "episode"},
                          "episode": {"season_number": 2, "episode_number": 3, "title": "The Dundies"}});
        let n = notice(&event(EventName::OnDownloadCompleted, data));
        assert_eq!(n.message, "The Office (2005) S02E03 · The Dundies");
        let same_year = json!({"media_item": {"title": "Dune (2021)", "year": 2021}});
        assert_eq!(
            notice(&event(EventName::AfterMediaAdded, same_year)).message,
            "Dune (2021)"
        );
        // The fallbacks: `name` for the title, numbers on the item or as strings, a season alone.
        let season = json!({"media_item": {"name": "Severance", "season_number": "2", "year": "2022"},
                            "episode": {"title": " "}});
        assert_eq!(
            notice(&event(EventName::OnDownloadCompleted, season)).message,
            "Severance (2022) Season 2"
        );
        let on_item = json!({"media_item": {"title": "Severance", "season_number": 1, "episode_number": 9},
                             "episode": {"number": 8}});
        assert_eq!(
            notice(&event(EventName::OnDownloadCompleted, on_item)).message,
            "Severance S01E08"
        );
    }

    #[test]
    fn templated_urls_must_be_whole_web_urls() {
        use crate::message::{for_tests, Part};
        let url = |source: &str| {
            let t = for_tests(&[Part::Url], &format!("default: {{url: {source:?}}}"));
            let r = t.render(&event(EventName::AfterMediaAdded, json!({"id": "a b"})));
            templated_url(r.as_ref(), Part::Url, 40)
        };
        assert_eq!(
            url("https://example.org/x").as_deref(),
            Some("https://example.org/x")
        );
        assert_eq!(url("javascript:alert(1)"), None);
        assert_eq!(
            url("https://example.org/{{ id }}"),
            None,
            "a space from the data"
        );
        assert_eq!(
            url("https://example.org/{{ 'x' * 40 }}"),
            None,
            "too long to send whole"
        );
        assert_eq!(url("{{ nothing }}"), None);
    }

    #[test]
    fn templated_title_and_message_replace_the_built_in_ones_part_by_part() {
        use crate::message::{for_tests, Part};
        let t = for_tests(
            &[Part::Title, Part::Message],
            "default: {title: 'New: {{ media_item.title }}'}",
        );
        let ev = event(EventName::AfterMediaAdded, json!({"media_item": dune()}));
        let (n, rendered) = templated(&ev, Some(&t));
        assert_eq!(
            (n.title.as_str(), n.message.as_str()),
            ("New: Dune", "Dune (2021)")
        );
        assert!(rendered.is_some());
        assert_eq!(templated(&ev, None), (notice(&ev), None));
    }

    #[test]
    fn a_template_giving_title_and_message_keeps_the_rest_of_the_built_in_notice() {
        use crate::message::{for_tests, Part};
        let t = for_tests(
            &[Part::Title, Part::Message],
            "default: {title: 'T {{ event.name }}', message: 'M {{ event.id }}'}",
        );
        let episode =
            json!({"series": office(), "episode": {"season_number": 2, "episode_number": 3}});
        let cases = [
            (EventName::AfterMediaAdded, json!({"media_item": dune()})),
            (
                EventName::OnDownloadCompleted,
                json!({"media_item": dune()}),
            ),
            (EventName::OnImportFailed, episode.clone()),
            (EventName::AfterImportCompleted, episode),
            (EventName::OnDownloadFailed, json!({})),
            (
                EventName::OnPluginHealthChanged,
                json!({"plugin": "tg", "to": "open"}),
            ),
        ];
        use Tone::*;
        let tones = [Info, Success, Failure, Success, Failure, Failure];
        for ((name, data), tone) in cases.into_iter().zip(tones) {
            let ev = event(name, data);
            let (n, _) = templated(&ev, Some(&t));
            let built_in = notice(&ev);
            assert_eq!(built_in.tone, tone, "{name:?}");
            assert_eq!(
                n,
                Notice {
                    title: format!("T {}", name.as_str()),
                    message: format!("M {}", ev.id),
                    ..built_in
                },
                "{name:?}"
            );
        }
    }

    #[test]
    fn data_cannot_inject_lines_or_links() {
        let data = json!({"media_item": {"title": "Evil\r\nTitle\u{7}", "type": "movie", "tmdb_id": "1/../x", "imdb_id": "tt12 javascript:"}});
        let n = notice(&event(EventName::AfterMediaAdded, data));
        assert_eq!(n.message, "Evil Title");
        assert_eq!(n.link, None);
        let imdb_only =
            json!({"media_item": {"title": "X", "imdb_id": "tt0133093", "tmdb_id": 603}});
        let n = notice(&event(EventName::AfterMediaAdded, imdb_only));
        assert_eq!(
            n.link.as_deref(),
            Some("https://www.imdb.com/title/tt0133093/"),
            "unknown kind: TMDB path unknown"
        );
    }
}
