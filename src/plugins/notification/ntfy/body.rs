//! The JSON body of one publish, and fitting it to ntfy's limit on a JSON request, which
//! counts the body after escaping: a message of 4096 `"` is 8192 bytes on the wire.

use std::borrow::Cow;

use serde::Serialize;

use crate::plugins::notification::text::ELLIPSIS;

/// ntfy's limit on a JSON publish body, in bytes as sent (after escaping); a larger body
/// is refused with 413.
pub const MAX_JSON_BYTES: usize = 8192;

/// One publish request's JSON body, serialized as it is sent.
#[derive(Serialize, Clone, Debug)]
pub(super) struct Publish<'a> {
    pub topic: &'a str,
    pub title: String,
    pub message: String,
    pub priority: i64,
    pub tags: Vec<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub click: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon: Option<&'a str>,
}

impl Publish<'_> {
    /// The body with its message cut (ending in `…`) so the whole serializes to at most
    /// [`MAX_JSON_BYTES`]; as it was when it fits.
    pub fn fit_json(self) -> Self {
        // Every byte escapes to at most 6: most bodies are far below the limit even so,
        // and skip the serialization (this runs once per notification).
        if self.escaped_upper_bound() <= MAX_JSON_BYTES {
            return self;
        }
        let len = serialized_len(&self);
        if len <= MAX_JSON_BYTES {
            return self;
        }
        let budget = escaped_len(&self.message).saturating_sub(len - MAX_JSON_BYTES);
        self.with_message_within(budget)
    }

    /// The body with its message cut to half its escaped size, for a server that refused
    /// the body as too large (413) although it is within ntfy's default limit. `None` when
    /// the message is too short to shorten.
    pub fn shortened(&self) -> Option<Self> {
        let escaped = escaped_len(&self.message);
        (escaped > 2 * ELLIPSIS.len_utf8()).then(|| self.clone().with_message_within(escaped / 2))
    }

    /// At least the serialized length: keys and punctuation, plus 6 bytes per byte of text.
    fn escaped_upper_bound(&self) -> usize {
        let text = [
            self.topic,
            &self.title,
            &self.message,
            self.click.as_deref().unwrap_or_default(),
            self.icon.unwrap_or_default(),
        ]
        .iter()
        .map(|s| s.len())
        .chain(self.tags.iter().map(|t| t.len()))
        .sum::<usize>();
        128 + 3 * self.tags.len() + 6 * text
    }

    fn with_message_within(mut self, budget: usize) -> Self {
        if let Cow::Owned(cut) = truncate_escaped(&self.message, budget) {
            let (from, to) = (escaped_len(&self.message), escaped_len(&cut));
            crate::preview::notes::truncated("message", from, to, "bytes once JSON-escaped");
            self.message = cut;
        }
        self
    }
}

fn serialized_len(body: &Publish<'_>) -> usize {
    serde_json::to_vec(body)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

/// Bytes `c` takes inside a JSON string as serde_json writes it.
fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
        c if u32::from(c) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Bytes `s` takes inside a JSON string, quotes not counted.
fn escaped_len(s: &str) -> usize {
    s.chars().map(escaped_char_len).sum()
}

/// `s` cut so that, escaped, it takes at most `max` bytes, ending in [`ELLIPSIS`] when cut.
fn truncate_escaped(s: &str, max: usize) -> Cow<'_, str> {
    if escaped_len(s) <= max {
        return Cow::Borrowed(s);
    }
    let budget = max.saturating_sub(ELLIPSIS.len_utf8());
    let mut used = 0;
    let mut cut = 0;
    for (i, c) in s.char_indices() {
        used += escaped_char_len(c);
        if used > budget {
            break;
        }
        cut = i + c.len_utf8();
    }
    if max < ELLIPSIS.len_utf8() {
        return Cow::Borrowed(&s[..cut]);
    }
    Cow::Owned(format!("{}{ELLIPSIS}", s[..cut].trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(message: String) -> Publish<'static> {
        Publish {
            topic: "mydia-alerts",
            title: "Import failed".into(),
            message,
            priority: 3,
            tags: vec!["warning".into()],
            click: Some("https://www.themoviedb.org/movie/438631".into()),
            icon: None,
        }
    }

    #[test]
    fn escaped_length_matches_serde_json() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        for s in [
            "",
            "plain",
            "\"quoted\" \\ back",
            "tab\tnew\nline\u{1}\u{7f}",
            "é千🎬",
            &all,
        ] {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(escaped_len(s), json.len() - 2, "{s:?}");
        }
    }

    /// 4096 bytes of `"` are 8192 escaped: the body would be 8263 bytes and get a 413.
    #[test]
    fn a_message_full_of_quotes_fits_the_json_limit() {
        let quotes = "\"".repeat(4096);
        assert!(serialized_len(&body(quotes.clone())) > MAX_JSON_BYTES);
        let fitted = body(quotes).fit_json();
        let len = serialized_len(&fitted);
        assert!(len <= MAX_JSON_BYTES && len > MAX_JSON_BYTES - 8, "{len}");
        assert!(fitted.message.ends_with(ELLIPSIS));
        for s in ["\u{1}".repeat(4000), "\\ é\n".repeat(1000)] {
            let len = serialized_len(&body(s).fit_json());
            assert!(len <= MAX_JSON_BYTES, "{len}");
        }
    }

    #[test]
    fn the_upper_bound_is_never_below_the_serialized_length() {
        for message in ["", "Dune (2021)", "\u{1}\u{2}\"", &"\u{1}".repeat(1300)] {
            let b = Publish {
                tags: vec!["a".into(), "movie_camera".into(), "\u{1}".into()],
                icon: Some("https://x/\""),
                ..body(message.to_owned())
            };
            assert!(b.escaped_upper_bound() >= serialized_len(&b), "{message:?}");
        }
    }

    #[test]
    fn a_body_that_fits_is_left_alone() {
        let message = "Dune (2021): \"quoted\"".to_owned();
        assert_eq!(body(message.clone()).fit_json().message, message);
        let full = "x".repeat(4096);
        assert_eq!(body(full.clone()).fit_json().message, full);
    }

    #[test]
    fn shortened_halves_the_message() {
        let long = body("\"".repeat(1000));
        let short = long.shortened().unwrap();
        assert!(
            escaped_len(&short.message) <= 1000,
            "{}",
            short.message.len()
        );
        assert!(short.message.ends_with(ELLIPSIS));
        assert!(body("ab".into()).shortened().is_none());
    }
}
