//! The Slack message for an event: `text` for the notification, Block Kit blocks for the channel, cut to Slack's limits.

use serde_json::{json, Value};

use crate::event::Event;
use crate::message::{Part, RenderedField, Templates};
use crate::plugins::notification::format::{self, Notice};
use crate::plugins::notification::text::{cut_chars, one_line, truncate_chars, ELLIPSIS};
use crate::plugins::webhook::discord::overview;

/// Longest section text (Slack's limit for a text object in a section).
pub const MAX_SECTION_CHARS: usize = 3000;
/// Longest header text (Slack's limit for a header block).
pub const MAX_HEADER_CHARS: usize = 150;
/// Longest top-level `text` we send; notifications show far less anyway.
pub const MAX_TEXT_CHARS: usize = 3000;
/// Slack's limit on blocks per message.
pub const MAX_BLOCKS: usize = 50;
/// Slack's limit on fields in a section.
pub const MAX_FIELDS: usize = 10;
/// Slack's limit on one field's text.
pub const MAX_FIELD_CHARS: usize = 2000;

/// The message for `event`, with `poster` as the section's image when given.
pub fn message(event: &Event, poster: Option<&str>) -> Value {
    templated_message(event, poster, None)
}

/// [`message`] with the instance's template for `event`: its title and message (then
/// without the overview: the template says what to show) in place of the built-in ones,
/// and its fields as a section of `*name*` / value pairs. Template text is escaped and
/// cut exactly like the built-in text, so it cannot write `<!channel>` or a link.
pub fn templated_message(
    event: &Event,
    poster: Option<&str>,
    templates: Option<&Templates>,
) -> Value {
    let (notice, rendered) = format::templated(event, templates);
    let templated = rendered
        .as_ref()
        .is_some_and(|r| r.get(Part::Message).is_some());
    let mut section_text = escape(&notice.message);
    if let Some(overview) = overview(event).filter(|_| !templated) {
        section_text.push_str("\n\n");
        section_text.push_str(&escape(&overview));
    }
    let mut section = json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": fit("blocks[1].text.text", &section_text, MAX_SECTION_CHARS), "verbatim": true},
    });
    if let Some(url) = poster {
        section["accessory"] = json!({"type": "image", "image_url": url, "alt_text": "Poster"});
    }
    let mut context = format!("Mydia · {}", slack_date(event));
    if let Some(link) = &notice.link {
        let site = if link.contains("imdb.com") {
            "IMDb"
        } else {
            "TMDB"
        };
        context.push_str(&format!(" · <{link}|View on {site}>"));
    }
    let mut blocks = vec![header(&notice.title), section];
    if let Some(fields) = rendered.as_ref().and_then(|r| fields_section(&r.fields)) {
        blocks.push(fields);
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}));
    json!({"text": preview(&notice), "blocks": blocks})
}

/// A section of up to [`MAX_FIELDS`] fields, each `*name*` over its value, escaped.
fn fields_section(fields: &[RenderedField]) -> Option<Value> {
    let fields: Vec<Value> = fields
        .iter()
        .take(MAX_FIELDS)
        .map(|f| {
            let name = escape(&one_line(&f.name)).replace('*', "");
            let text = if name.is_empty() {
                escape(&f.value)
            } else {
                format!("*{name}*\n{}", escape(&f.value))
            };
            json!({"type": "mrkdwn", "text": fit("blocks[].fields[].text", &text, MAX_FIELD_CHARS), "verbatim": true})
        })
        .collect();
    (!fields.is_empty()).then(|| json!({"type": "section", "fields": fields}))
}

/// The notification preview: `Title: line · line`, escaped.
fn preview(notice: &Notice) -> String {
    let lines: Vec<&str> = notice.message.lines().filter(|l| !l.is_empty()).collect();
    let text = escape(&format!(
        "{}: {}",
        one_line(&notice.title),
        lines.join(" · ")
    ));
    fit("text", &text, MAX_TEXT_CHARS)
}

/// A header block (plain text: shown as written, no escaping).
pub(super) fn header(title: &str) -> Value {
    let title = cut_chars("blocks[0].text.text", &one_line(title), MAX_HEADER_CHARS).into_owned();
    json!({"type": "header", "text": {"type": "plain_text", "text": title, "emoji": true}})
}

/// The event time as Slack's date token, shown in each reader's own time zone.
fn slack_date(event: &Event) -> String {
    let fallback = event.timestamp.format("%Y-%m-%d %H:%M UTC");
    format!(
        "<!date^{}^{{date_short_pretty}} at {{time}}|{fallback}>",
        event.timestamp.timestamp()
    )
}

/// `&`, `<` and `>` as Slack's entities: the only escaping mrkdwn has, and what stops
/// data from writing `<!channel>`, `<@U123>` or `<https://evil|a link>`.
pub fn escape(s: &str) -> String {
    let out = s
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    if out.len() != s.len() {
        let special = s.chars().filter(|c| matches!(c, '&' | '<' | '>'));
        crate::preview::notes::escaped("Slack mrkdwn", special);
    }
    out
}

/// Escaped text cut to `max` characters with `…`, never inside an entity (`&am…`).
fn fit(field: &str, escaped: &str, max: usize) -> String {
    let chars = escaped.chars().count();
    if chars <= max {
        return escaped.to_owned();
    }
    let mut out = truncate_chars(escaped, max).into_owned();
    out.pop(); // the ellipsis, put back below
    if let Some(amp) = out.rfind('&') {
        if !out[amp..].contains(';') {
            out.truncate(amp);
        }
    }
    let mut out = out.trim_end().to_owned();
    out.push(ELLIPSIS);
    crate::preview::notes::truncated(field, chars, out.chars().count(), "characters");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;

    fn event(name: EventName, data: Value) -> Event {
        Event::new(name, data.as_object().cloned().unwrap_or_default())
    }

    fn section_text(m: &Value) -> &str {
        m["blocks"][1]["text"]["text"].as_str().unwrap()
    }

    #[test]
    fn media_added_has_text_header_section_and_context() {
        let ev = event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"title": "Dune", "year": 2021, "type": "movie", "tmdb_id": 438631,
                   "overview": "Paul Atreides…"}}),
        );
        let ts = ev.timestamp.timestamp();
        let fallback = ev.timestamp.format("%Y-%m-%d %H:%M UTC");
        assert_eq!(
            message(&ev, Some("https://image.tmdb.org/p.jpg")),
            json!({
                "text": "Movie added: Dune (2021)",
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": "Movie added", "emoji": true}},
                    {"type": "section",
                     "text": {"type": "mrkdwn", "text": "Dune (2021)\n\nPaul Atreides…", "verbatim": true},
                     "accessory": {"type": "image", "image_url": "https://image.tmdb.org/p.jpg", "alt_text": "Poster"}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
                        "Mydia · <!date^{ts}^{{date_short_pretty}} at {{time}}|{fallback}> · \
                         <https://www.themoviedb.org/movie/438631|View on TMDB>")}]},
                ],
            })
        );
    }

    #[test]
    fn every_event_has_text_and_fits_slack_limits() {
        let odd = json!({"media_item": {"title": 42, "type": ["x"], "overview": {}}, "user": [1]});
        let huge = json!({"media_item": {"title": "&".repeat(2000), "overview": "<".repeat(10_000)},
                          "error_message": "x".repeat(5000), "plugin": "p".repeat(500)});
        for data in [json!({}), json!(null), odd, huge] {
            for name in EventName::ALL {
                let m = message(&event(*name, data.clone()), None);
                let text = m["text"].as_str().unwrap();
                assert!(
                    !text.is_empty() && text.chars().count() <= MAX_TEXT_CHARS,
                    "{name}"
                );
                let blocks = m["blocks"].as_array().unwrap();
                assert!(blocks.len() <= MAX_BLOCKS);
                let header = blocks[0]["text"]["text"].as_str().unwrap();
                assert!(!header.is_empty() && header.chars().count() <= MAX_HEADER_CHARS);
                let section = section_text(&m);
                assert!(!section.is_empty() && section.chars().count() <= MAX_SECTION_CHARS);
                for cut in [text, section] {
                    let tail = &cut[cut.rfind('&').unwrap_or(0)..];
                    assert!(
                        tail.is_empty() || !tail.starts_with('&') || tail.contains(';'),
                        "{name}: an entity was split: …{tail}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_huge_overview_is_cut_to_the_section_limit() {
        let ev = event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"title": "Dune", "overview": "a&b ".repeat(3000)}}),
        );
        let m = message(&ev, None);
        let section = section_text(&m);
        assert!(section.chars().count() <= MAX_SECTION_CHARS);
        assert!(
            section.chars().count() > MAX_SECTION_CHARS - 8,
            "cut close to the limit"
        );
        assert!(section.starts_with("Dune\n\na&amp;b a&amp;b") && section.ends_with('…'));
    }

    #[test]
    fn user_strings_cannot_ping_or_link() {
        let ev = event(
            EventName::OnImportFailed,
            json!({"media_item": {"title": "<!channel> & <@U123>"}, "error_message": "<https://e.vil|click>"}),
        );
        let m = message(&ev, None);
        assert_eq!(
            section_text(&m),
            "&lt;!channel&gt; &amp; &lt;@U123&gt;\nError: &lt;https://e.vil|click&gt;"
        );
        assert_eq!(
            m["text"],
            "Import failed: &lt;!channel&gt; &amp; &lt;@U123&gt; · Error: &lt;https://e.vil|click&gt;"
        );
        assert_eq!(escape("a<b>c&d"), "a&lt;b&gt;c&amp;d");
        assert_eq!(fit("t", "abc&amp;", 6), "abc…");
        assert_eq!(fit("t", "abc&amp;", 8), "abc&amp;");
        assert_eq!(fit("t", "ab&lt;cdef", 9), "ab&lt;cd…");
    }

    #[test]
    fn imdb_links_say_imdb() {
        let ev = event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"title": "X", "imdb_id": "tt0133093"}}),
        );
        let context = message(&ev, None)["blocks"][2]["elements"][0]["text"].clone();
        assert!(context
            .as_str()
            .unwrap()
            .ends_with("<https://www.imdb.com/title/tt0133093/|View on IMDb>"));
    }
}
