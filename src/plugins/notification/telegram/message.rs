//! The text of a Telegram message: Bot API HTML, every data string escaped, cut to fit 4096.
//!
//! Layout: an emoji and the bold title, the message lines, then a link to the TMDB/IMDb
//! page when one is known. Text is cut *before* it is escaped and wrapped in tags, so a cut
//! can never land inside an entity (`&amp;`) or a tag, and the limit is counted on the
//! visible text, the way Telegram counts it ("after entities parsing").

use std::borrow::Cow;

use crate::event::{Event, EventName};
use crate::message::Templates;
use crate::plugins::notification::format::{self, MediaKind, Notice, Tone};
use crate::plugins::notification::text::{self, ELLIPSIS};

/// Telegram's limit on a message's visible text. Counted here in UTF-16 code units, which
/// is how Telegram measures text (entity offsets too); never less than the characters, so
/// the text fits whichever way it is counted.
pub const MAX_TEXT: usize = 4096;
/// The longest title we show, in characters; the message gets the rest of the room.
pub const MAX_TITLE_CHARS: usize = 256;

/// The HTML text for `notice`, with the event's emoji.
pub fn html(event: &Event) -> (String, Option<String>) {
    templated_html(event, None)
}

/// [`html`] with the instance's template for `event`: its title and message, escaped
/// and cut exactly like the built-in text (so a template cannot add tags or links).
pub fn templated_html(event: &Event, templates: Option<&Templates>) -> (String, Option<String>) {
    let (notice, _) = format::templated(event, templates);
    let emoji = emoji(event.name, notice.media, notice.tone);
    (compose(emoji, &notice), notice.link)
}

/// `emoji <b>title</b>\nmessage[\n<a href="link">View on TMDB</a>]`, at most [`MAX_TEXT`]
/// visible UTF-16 units.
pub fn compose(emoji: &str, notice: &Notice) -> String {
    let title = text::one_line(&notice.title);
    let title = text::cut_chars("text (its title line)", &title, MAX_TITLE_CHARS);
    let head = format!("{emoji} {title}");
    let label = notice.link.as_deref().map(link_label);
    let used = utf16_len(&head) + 1 + label.map_or(0, |l| 1 + utf16_len(l));
    let message = fit_utf16(&notice.message, MAX_TEXT.saturating_sub(used));
    if let Cow::Owned(cut) = &message {
        let (from, to) = (utf16_len(&notice.message), utf16_len(cut));
        crate::preview::notes::truncated("text (its message)", from, to, "UTF-16 units");
    }
    let mut out = format!("{emoji} <b>{}</b>\n{}", escape(&title), escape(&message));
    if let (Some(link), Some(label)) = (&notice.link, label) {
        out.push_str(&format!(
            "\n<a href=\"{}\">{}</a>",
            escape_attr(link),
            escape(label)
        ));
    }
    out
}

/// The words of the link: which site it opens.
pub fn link_label(url: &str) -> &'static str {
    if url.starts_with("https://www.themoviedb.org/") {
        "View on TMDB"
    } else if url.starts_with("https://www.imdb.com/") {
        "View on IMDb"
    } else {
        "Open link"
    }
}

/// The three characters Telegram's HTML mode needs escaped in text.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    if out.len() != s.len() {
        let special = s.chars().filter(|c| matches!(c, '&' | '<' | '>'));
        crate::preview::notes::escaped("Telegram HTML", special);
    }
    out
}

/// [`escape`], plus `"` for a value inside `href="..."`.
fn escape_attr(s: &str) -> String {
    escape(s).replace('"', "&quot;")
}

/// Length in UTF-16 code units.
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// `s` cut to at most `max` UTF-16 units on a character boundary, ending in `…` when cut.
pub fn fit_utf16(s: &str, max: usize) -> Cow<'_, str> {
    if utf16_len(s) <= max {
        return Cow::Borrowed(s);
    }
    let Some(budget) = max.checked_sub(ELLIPSIS.len_utf16()) else {
        return Cow::Borrowed("");
    };
    let mut used = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        used += c.len_utf16();
        if used > budget {
            break;
        }
        end = i + c.len_utf8();
    }
    Cow::Owned(format!("{}{ELLIPSIS}", s[..end].trim_end()))
}

/// A leading emoji per event, the same pictures as ntfy's tags.
pub fn emoji(event: EventName, media: MediaKind, tone: Tone) -> &'static str {
    use EventName::*;
    match event {
        BeforeMediaAdded | AfterMediaAdded => match media {
            MediaKind::Series => "📺",
            MediaKind::Movie | MediaKind::Unknown => "🎬",
        },
        AfterMediaUpdated => "✏️",
        AfterMediaDeleted => "🗑️",
        BeforeDownloadInitiated => "🔎",
        AfterDownloadInitiated => "⬇️",
        OnDownloadCompleted => "📥",
        OnDownloadFailed => "❌",
        AfterImportCompleted => "✅",
        OnImportFailed => "⚠️",
        OnPlaybackStarted => "▶️",
        OnPlaybackFinished => "🏁",
        OnPluginHealthChanged => match tone {
            Tone::Failure => "🚨",
            Tone::Success => "✅",
            Tone::Warning | Tone::Info => "ℹ️",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn event(name: EventName, data: Value) -> Event {
        Event::new(name, data.as_object().cloned().unwrap_or_default())
    }

    /// Parses Telegram HTML the way the Bot API does for what we emit: `<b>`, `<a href>`
    /// and the four entities. Returns the visible text; panics on anything else, so a stray
    /// `<`, `&` or a cut entity fails the test.
    fn visible(html: &str) -> String {
        let mut out = String::new();
        let mut rest = html;
        while let Some(c) = rest.chars().next() {
            if c == '<' {
                let end = rest.find('>').expect("unclosed tag");
                let tag = &rest[..=end];
                assert!(
                    tag == "<b>"
                        || tag == "</b>"
                        || tag == "</a>"
                        || (tag.starts_with("<a href=\"") && tag.ends_with("\">")),
                    "unexpected tag {tag} in {html}"
                );
                rest = &rest[end + 1..];
            } else if c == '&' {
                let end = rest.find(';').expect("unterminated entity");
                out.push(match &rest[..=end] {
                    "&amp;" => '&',
                    "&lt;" => '<',
                    "&gt;" => '>',
                    "&quot;" => '"',
                    other => panic!("unknown entity {other} in {html}"),
                });
                rest = &rest[end + 1..];
            } else {
                assert!(c != '>', "bare > in {html}");
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        assert_eq!(html.matches("<b>").count(), html.matches("</b>").count());
        assert_eq!(html.matches("<a ").count(), html.matches("</a>").count());
        out
    }

    #[test]
    fn reads_well_with_a_bold_title_and_a_link() {
        let ev = event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"title": "Dune", "year": 2021, "type": "movie", "tmdb_id": 438631}}),
        );
        let (text, link) = html(&ev);
        assert_eq!(
            text,
            "🎬 <b>Movie added</b>\nDune (2021)\n\
             <a href=\"https://www.themoviedb.org/movie/438631\">View on TMDB</a>"
        );
        assert_eq!(
            link.as_deref(),
            Some("https://www.themoviedb.org/movie/438631")
        );
        let imdb = event(
            EventName::OnDownloadFailed,
            json!({"media_item": {"title": "X", "imdb_id": "tt0133093"}, "error_message": "no seeds"}),
        );
        let (text, _) = html(&imdb);
        assert_eq!(
            text,
            "❌ <b>Download failed</b>\nX\nError: no seeds\n\
             <a href=\"https://www.imdb.com/title/tt0133093/\">View on IMDb</a>"
        );
    }

    #[test]
    fn escapes_every_user_supplied_string() {
        let ev = event(
            EventName::OnPluginHealthChanged,
            json!({"plugin": "<b>Tom & Jerry</b>", "to": "open", "reason": "a<i>b</i> & \"c\" >"}),
        );
        let (text, _) = html(&ev);
        assert_eq!(
            text,
            "🚨 <b>Plugin failing: &lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</b>\nNow open\n\
             a&lt;i&gt;b&lt;/i&gt; &amp; \"c\" &gt;"
        );
        assert_eq!(
            visible(&text),
            "🚨 Plugin failing: <b>Tom & Jerry</b>\nNow open\na<i>b</i> & \"c\" >"
        );
        let title = event(
            EventName::AfterMediaAdded,
            json!({"media_item": {"title": "<b>Tom & Jerry</b>", "type": "movie"}}),
        );
        assert_eq!(
            html(&title).0,
            "🎬 <b>Movie added</b>\n&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;"
        );
        assert_eq!(escape_attr("a\"&b"), "a&quot;&amp;b");
    }

    #[test]
    fn every_event_is_valid_html_with_any_data() {
        let full = json!({
            "media_item": {"title": "A & B <x>", "year": 2021, "type": "tv_show", "tmdb_id": 1},
            "release": {"title": "R&R", "quality": "1080p", "indexer": "<i>"},
            "download": {"title": "D", "indexer": "I", "download_client": "C"},
            "release_name": "N", "error_message": "E & <e>", "file_path": "/a/b&c.mkv",
            "media_file": {"resolution": "720p"}, "user": {"name": "<u>"},
            "plugin": "p&q", "to": "misconfigured", "reason": "<r>",
        });
        let odd = json!({"media_item": {"title": 42, "year": null, "type": ["x"]}, "user": [1], "changes": 3});
        for name in EventName::ALL {
            for data in [json!({}), json!(null), odd.clone(), full.clone()] {
                let (text, _) = html(&event(*name, data));
                let shown = visible(&text);
                assert!(
                    shown.contains('\n') && utf16_len(&shown) <= MAX_TEXT,
                    "{name}: {text}"
                );
                assert!(text.contains("<b>") && !text.contains("<b></b>"), "{name}");
            }
        }
    }

    #[test]
    fn long_multibyte_text_is_cut_to_4096_visible_units_outside_entities() {
        for unit in ["&", "千", "👍", "a<b>"] {
            let ev = event(
                EventName::OnImportFailed,
                json!({"media_item": {"title": "千と千尋", "type": "movie", "tmdb_id": 129}, "error_message": unit.repeat(5000)}),
            );
            let (text, _) = html(&ev);
            let shown = visible(&text);
            let len = utf16_len(&shown);
            assert!(len <= MAX_TEXT, "{unit}: {len}");
            assert!(
                len >= MAX_TEXT - 4,
                "{unit}: cut close to the limit, got {len}"
            );
            assert!(shown.contains("Error: ") && shown.contains('…'), "{unit}");
            assert!(
                text.ends_with("\">View on TMDB</a>"),
                "the link survives the cut"
            );
        }
        let long_title = "é".repeat(1000);
        let ev = event(
            EventName::OnPluginHealthChanged,
            json!({"plugin": long_title}),
        );
        let shown = visible(&html(&ev).0);
        let title_line = shown.lines().next().unwrap();
        let (emoji, title) = title_line.split_once(' ').unwrap();
        assert_eq!(emoji, "ℹ️");
        assert_eq!(title.chars().count(), MAX_TITLE_CHARS);
        assert!(title.starts_with("Plugin health changed: éé") && title.ends_with('…'));
    }

    #[test]
    fn fit_utf16_counts_surrogate_pairs() {
        assert_eq!(fit_utf16("abc", 3), "abc");
        assert_eq!(fit_utf16("abcd", 3), "ab…");
        assert_eq!(fit_utf16("👍👍👍", 5), "👍👍…");
        assert_eq!(fit_utf16("👍👍👍", 4), "👍…");
        assert_eq!(fit_utf16("👍👍👍", 2), "…");
        assert_eq!(fit_utf16("abc", 0), "");
        assert_eq!(utf16_len("a千👍"), 4);
    }

    #[test]
    fn link_labels() {
        assert_eq!(
            link_label("https://www.themoviedb.org/tv/1"),
            "View on TMDB"
        );
        assert_eq!(
            link_label("https://www.imdb.com/title/tt1/"),
            "View on IMDb"
        );
        assert_eq!(link_label("https://example.com"), "Open link");
    }
}
