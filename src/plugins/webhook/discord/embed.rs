//! The Discord embed for an event: the shared notice text, coloured by tone, cut to Discord's limits.
//!
//! Discord rejects the whole message (400) when any embed limit is exceeded, so every
//! piece is cut to fit with `…` here instead. Limits count characters (Unicode scalar
//! values), like the shared text helpers.

use chrono::SecondsFormat;
use serde_json::{json, Map, Value};

use crate::event::{Event, EventName};
use crate::message::{Part, Templates};
use crate::plugins::notification::format::{self, MediaKind, Tone};
use crate::plugins::notification::text::{cut_chars, one_line};

/// Longest embed title.
pub const MAX_TITLE_CHARS: usize = 256;
/// Longest embed description.
pub const MAX_DESCRIPTION_CHARS: usize = 4096;
/// Longest field value.
pub const MAX_FIELD_VALUE_CHARS: usize = 1024;
/// Longest field name.
pub const MAX_FIELD_NAME_CHARS: usize = 256;
/// Fields in one embed.
pub const MAX_FIELDS: usize = 25;
/// All embeds of a message together: titles, descriptions, field names and values,
/// footers and author names.
pub const MAX_EMBEDS_TOTAL_CHARS: usize = 6000;
/// Longest image URL we pass on; longer ones are dropped rather than risk a 400.
const MAX_URL_CHARS: usize = 2048;

/// Discord's own palette: blurple, green, yellow, red.
pub fn colour(tone: Tone) -> u32 {
    match tone {
        Tone::Info => 0x5865F2,
        Tone::Success => 0x57F287,
        Tone::Warning => 0xFEE75C,
        Tone::Failure => 0xED4245,
    }
}

/// The embed for `event`: title, description (plus the overview for a new item), colour,
/// `Year` and `Type` inline fields when known, the poster as thumbnail when it is an
/// http(s) URL, the TMDB/IMDb page as link, and the event's time. Never fails.
pub fn embed(event: &Event) -> Value {
    templated_embed(event, None)
}

/// [`embed`] with the instance's template for `event`: its title, message (then without
/// the overview: the template says what to show), colour and fields in place of the
/// built-in ones. Template text is escaped and cut exactly like the built-in text.
pub fn templated_embed(event: &Event, templates: Option<&Templates>) -> Value {
    let (notice, rendered) = format::templated(event, templates);
    let title = cut_chars(
        "embeds[0].title",
        &escape_markdown(&one_line(&notice.title)),
        MAX_TITLE_CHARS,
    )
    .into_owned();
    let templated_message = rendered
        .as_ref()
        .is_some_and(|r| r.get(Part::Message).is_some());
    let color = rendered
        .as_ref()
        .and_then(|r| r.get(Part::Color))
        .and_then(parse_colour)
        .unwrap_or_else(|| colour(notice.tone));

    let fields = match rendered.as_ref().filter(|r| !r.fields.is_empty()) {
        Some(r) => r
            .fields
            .iter()
            .take(MAX_FIELDS)
            .map(|f| {
                let name = escape_markdown(&one_line(&f.name));
                // Discord refuses an empty field name; a zero-width space shows nothing.
                let name = if name.is_empty() {
                    "\u{200B}".to_owned()
                } else {
                    name
                };
                (
                    cut_chars("embeds[0].fields[].name", &name, MAX_FIELD_NAME_CHARS).into_owned(),
                    cut_chars(
                        "embeds[0].fields[].value",
                        &escape_markdown(&f.value),
                        MAX_FIELD_VALUE_CHARS,
                    )
                    .into_owned(),
                    f.inline,
                )
            })
            .collect(),
        None => builtin_fields(event, notice.media),
    };

    let mut description = escape_markdown(&notice.message);
    if let Some(overview) = overview(event).filter(|_| !templated_message) {
        description.push_str("\n\n");
        description.push_str(&escape_markdown(&overview));
    }
    // The description gives way: title and fields are short and say what happened.
    let used = title.chars().count()
        + fields
            .iter()
            .map(|(n, v, _)| n.chars().count() + v.chars().count())
            .sum::<usize>();
    let room = MAX_DESCRIPTION_CHARS.min(MAX_EMBEDS_TOTAL_CHARS.saturating_sub(used));
    let description = cut_chars("embeds[0].description", &description, room).into_owned();

    let mut embed = Map::new();
    embed.insert("title".into(), json!(title));
    if !description.is_empty() {
        embed.insert("description".into(), json!(description));
    }
    embed.insert("color".into(), json!(color));
    if let Some(link) = notice.link {
        embed.insert("url".into(), json!(link));
    }
    if !fields.is_empty() {
        let fields: Vec<Value> = fields
            .into_iter()
            .map(|(name, value, inline)| json!({"name": name, "value": value, "inline": inline}))
            .collect();
        embed.insert("fields".into(), json!(fields));
    }
    if let Some(poster) = poster(event) {
        embed.insert("thumbnail".into(), json!({ "url": poster }));
    }
    embed.insert(
        "timestamp".into(),
        json!(event.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true)),
    );
    Value::Object(embed)
}

/// `Year` and `Type`, inline, when known.
fn builtin_fields(event: &Event, media: MediaKind) -> Vec<(String, String, bool)> {
    let mut fields = Vec::new();
    if let Some(year) = text_at(event, "media_item.year") {
        fields.push(("Year", year));
    }
    if let Some(kind) = media_type(event, media) {
        fields.push(("Type", kind));
    }
    fields
        .into_iter()
        .map(|(name, value)| {
            let value = escape_markdown(&value);
            (
                name.to_owned(),
                cut_chars("embeds[0].fields[].value", &value, MAX_FIELD_VALUE_CHARS).into_owned(),
                true,
            )
        })
        .collect()
}

/// A colour as a template writes it: `#5865F2`, `0x5865F2` or `5793266`.
fn parse_colour(text: &str) -> Option<u32> {
    let text = text.trim();
    let hex = text.strip_prefix('#').or_else(|| text.strip_prefix("0x"));
    let value = match hex {
        Some(h) => u32::from_str_radix(h, 16).ok()?,
        None => text.parse().ok()?,
    };
    (value <= 0xFF_FFFF).then_some(value)
}

/// Characters Discord counts toward [`MAX_EMBEDS_TOTAL_CHARS`] in one embed.
pub fn counted_chars(embed: &Value) -> usize {
    let len = |v: Option<&Value>| v.and_then(Value::as_str).map_or(0, |s| s.chars().count());
    let fields: usize = embed["fields"].as_array().map_or(0, |fields| {
        fields
            .iter()
            .map(|f| len(f.get("name")) + len(f.get("value")))
            .sum()
    });
    len(embed.get("title"))
        + len(embed.get("description"))
        + len(embed.pointer("/footer/text"))
        + len(embed.pointer("/author/name"))
        + fields
}

/// Discord markdown made literal: a release called `The_Office_S02` or a title with `*`
/// shows as written, and data cannot add masked links, headings, quotes or code blocks.
/// A backslash before punctuation is Discord's escape and is not shown.
pub fn escape_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut line_start = true;
    for c in s.chars() {
        let special = matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '<' | '>' | '[' | ']'
        ) || (line_start && matches!(c, '#' | '-'));
        if special {
            out.push('\\');
        }
        out.push(c);
        line_start = c == '\n';
    }
    if out.len() != s.len() && crate::preview::notes::active() {
        // The character after each added backslash (an escaped `\\` is a pair).
        let mut special = Vec::new();
        let mut chars = out.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                special.extend(chars.next());
            }
        }
        crate::preview::notes::escaped("Discord markdown", special);
    }
    out
}

/// A string or number at `path`, on one line; `None` when missing, blank or of another type.
fn text_at(event: &Event, path: &str) -> Option<String> {
    let text = match event.value_at(path)? {
        Value::String(s) => one_line(s),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// "Movie", "Series", or the item's own `type` when it is another one.
fn media_type(event: &Event, kind: MediaKind) -> Option<String> {
    match kind {
        MediaKind::Movie => Some("Movie".to_owned()),
        MediaKind::Series => Some("Series".to_owned()),
        MediaKind::Unknown => {
            let raw = text_at(event, "media_item.type")?.replace('_', " ");
            let mut chars = raw.chars();
            let first = chars.next()?;
            Some(first.to_uppercase().chain(chars).collect())
        }
    }
}

/// The item's overview, for events about the item itself (not downloads or playback),
/// paragraphs kept, each line flattened. Slack shows the same.
pub fn overview(event: &Event) -> Option<String> {
    if !matches!(
        event.name,
        EventName::BeforeMediaAdded | EventName::AfterMediaAdded
    ) {
        return None;
    }
    let raw = event.str_at("media_item.overview")?;
    let lines: Vec<String> = raw
        .lines()
        .map(one_line)
        .filter(|l| !l.is_empty())
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// `media_item.poster_url` when it is an http(s) URL with a host, of a sane length.
/// Slack shows the same.
pub fn poster(event: &Event) -> Option<String> {
    let url = event.str_at("media_item.poster_url")?.trim();
    let parsed = reqwest::Url::parse(url).ok()?;
    let ok = matches!(parsed.scheme(), "http" | "https")
        && parsed.has_host()
        && parsed.as_str().chars().count() <= MAX_URL_CHARS;
    ok.then(|| parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: EventName, data: Value) -> Event {
        Event::new(name, data.as_object().cloned().unwrap_or_default())
    }

    fn dune() -> Value {
        json!({"media_item": {"title": "Dune", "year": 2021, "type": "movie", "tmdb_id": 438631,
               "poster_url": "https://image.tmdb.org/t/p/w500/d5NXSklXo0qyIYkgV94XAgMIckC.jpg",
               "overview": "Paul Atreides, a brilliant and gifted young man…"}})
    }

    #[test]
    fn media_added_reads_like_the_seed() {
        let ev = event(EventName::AfterMediaAdded, dune());
        let e = embed(&ev);
        assert_eq!(
            e,
            json!({
                "title": "Movie added",
                "description": "Dune (2021)\n\nPaul Atreides, a brilliant and gifted young man…",
                "color": 0x5865F2,
                "url": "https://www.themoviedb.org/movie/438631",
                "fields": [
                    {"name": "Year", "value": "2021", "inline": true},
                    {"name": "Type", "value": "Movie", "inline": true},
                ],
                "thumbnail": {"url": "https://image.tmdb.org/t/p/w500/d5NXSklXo0qyIYkgV94XAgMIckC.jpg"},
                "timestamp": ev.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
            })
        );
    }

    #[test]
    fn every_event_has_a_title_and_description_whatever_the_data() {
        let odd = json!({"media_item": {"title": 42, "year": null, "type": ["x"], "poster_url": 7,
                         "overview": {}}, "user": [1], "changes": 3, "file_path": {}});
        for data in [json!({}), json!(null), odd, dune()] {
            for name in EventName::ALL {
                let e = embed(&event(*name, data.clone()));
                let title = e["title"].as_str().unwrap_or_default();
                let description = e["description"].as_str().unwrap_or_default();
                assert!(!title.is_empty() && !description.is_empty(), "{name}: {e}");
                assert!(e["color"].is_u64() && e["timestamp"].is_string(), "{name}");
                if let Some(fields) = e["fields"].as_array() {
                    assert!(fields
                        .iter()
                        .all(|f| !f["value"].as_str().unwrap().is_empty()));
                }
            }
        }
    }

    #[test]
    fn colour_follows_the_tone() {
        let failed = embed(&event(EventName::OnDownloadFailed, json!({})));
        assert_eq!(failed["color"], 0xED4245);
        let done = embed(&event(EventName::AfterImportCompleted, json!({})));
        assert_eq!(done["color"], 0x57F287);
    }

    #[test]
    fn a_huge_overview_is_cut_so_the_embed_fits() {
        let ev = event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"title": "T".repeat(400), "type": "y".repeat(5000),
                   "year": "9".repeat(3000), "overview": "o".repeat(10_000)}}),
        );
        let e = embed(&ev);
        let title = e["title"].as_str().unwrap();
        let description = e["description"].as_str().unwrap();
        assert_eq!(title, "Media added");
        assert!(description.chars().count() <= MAX_DESCRIPTION_CHARS);
        assert!(description.ends_with('…'), "cut, not dropped");
        for f in e["fields"].as_array().unwrap() {
            let value = f["value"].as_str().unwrap();
            assert_eq!(
                value.chars().count(),
                MAX_FIELD_VALUE_CHARS,
                "{}",
                f["name"]
            );
            assert!(value.ends_with('…'));
        }
        let total = counted_chars(&e);
        assert!(total <= MAX_EMBEDS_TOTAL_CHARS, "{total}");
        assert!(
            total > MAX_EMBEDS_TOTAL_CHARS - 10,
            "the budget is used, not wasted: {total}"
        );

        let long_title = event(
            EventName::OnPluginHealthChanged,
            json!({"plugin": "p".repeat(1000), "to": "open"}),
        );
        let title = embed(&long_title)["title"].as_str().unwrap().to_owned();
        assert_eq!(title.chars().count(), MAX_TITLE_CHARS);
        assert!(title.starts_with("Plugin failing: ppp") && title.ends_with('…'));

        let overview_only = event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"title": "Dune", "overview": "word ".repeat(2000)}}),
        );
        let description = embed(&overview_only)["description"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(description.chars().count(), MAX_DESCRIPTION_CHARS);
        assert!(description.starts_with("Dune\n\nword word"));
    }

    #[test]
    fn markdown_in_data_is_shown_literally() {
        assert_eq!(
            escape_markdown("The_Office *x* [a](https://e.vil) `c` <@&1> ~s~ |s| \\"),
            "The\\_Office \\*x\\* \\[a\\](https://e.vil) \\`c\\` \\<@&1\\> \\~s\\~ \\|s\\| \\\\"
        );
        assert_eq!(
            escape_markdown("# h\n- l\n> q\na-b #1"),
            "\\# h\n\\- l\n\\> q\na-b #1"
        );
        let ev = event(
            EventName::OnDownloadCompleted,
            json!({"release_name": "The_Office_S02_[WEB]"}),
        );
        assert_eq!(embed(&ev)["description"], "The\\_Office\\_S02\\_\\[WEB\\]");
    }

    #[test]
    fn only_web_posters_become_thumbnails() {
        for (poster, shown) in [
            ("http://mydia.local/p.jpg", true),
            (" https://image.tmdb.org/p.jpg ", true),
            ("javascript:alert(1)", false),
            ("file:///etc/passwd", false),
            ("/relative/poster.jpg", false),
        ] {
            let ev = event(
                EventName::AfterMediaAdded,
                json!({"media_item": {"poster_url": poster}}),
            );
            assert_eq!(embed(&ev).get("thumbnail").is_some(), shown, "{poster}");
        }
        let long = format!("https://x.example/{}", "p".repeat(MAX_URL_CHARS));
        let ev = event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"poster_url": long}}),
        );
        assert!(embed(&ev).get("thumbnail").is_none());
    }

    #[test]
    fn type_field_names_other_kinds_and_year_survives_floats() {
        let ev = event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"type": "music_video", "year": 1999.0}}),
        );
        let e = embed(&ev);
        assert_eq!(
            e["fields"][0],
            json!({"name": "Year", "value": "1999", "inline": true})
        );
        assert_eq!(e["fields"][1]["value"], "Music video");
        let series = event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"type": "tv_show"}}),
        );
        assert_eq!(embed(&series)["fields"][0]["value"], "Series");
    }
}
