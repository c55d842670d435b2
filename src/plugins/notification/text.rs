//! Fitting text to a service's limits: one line, so many bytes or characters, an ellipsis when cut.
//!
//! Services count differently (ntfy in bytes, Pushover, Telegram and Discord in
//! characters), and a message that is too long must be cut, never rejected whole.

use std::borrow::Cow;

use crate::preview::notes;

/// Marks text that was shortened to fit a limit.
pub const ELLIPSIS: char = '…';

/// Whitespace and control characters collapsed to single spaces, trimmed.
pub fn one_line(s: &str) -> String {
    let mut line = String::with_capacity(s.len());
    for word in s
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    line
}

/// [`one_line`] for text already owned: given back as it is when it is one line already
/// (notification titles are, so they need no copy).
pub fn into_one_line(s: String) -> String {
    let mut previous = ' ';
    let clean = !s.ends_with(' ')
        && s.chars().all(|c| {
            let ok = !((c.is_whitespace() && (c != ' ' || previous == ' ')) || c.is_control());
            previous = c;
            ok
        });
    if clean {
        s
    } else {
        one_line(&s)
    }
}

/// `s` cut to at most `max_bytes` bytes of UTF-8, on a character boundary, ending in
/// [`ELLIPSIS`] when shortened (for limits counted in bytes, like ntfy's 4096).
pub fn truncate_bytes(s: &str, max_bytes: usize) -> Cow<'_, str> {
    if s.len() <= max_bytes {
        return Cow::Borrowed(s);
    }
    let Some(budget) = max_bytes.checked_sub(ELLIPSIS.len_utf8()) else {
        return Cow::Owned(s[..floor_boundary(s, max_bytes)].to_owned());
    };
    let head = s[..floor_boundary(s, budget)].trim_end();
    Cow::Owned(format!("{head}{ELLIPSIS}"))
}

/// `s` cut to at most `max_chars` characters, ending in [`ELLIPSIS`] when shortened
/// (for limits counted in characters, like Pushover's 1024 or a title's 250).
pub fn truncate_chars(s: &str, max_chars: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max_chars) {
        None => Cow::Borrowed(s),
        Some(_) if max_chars == 0 => Cow::Borrowed(""),
        Some(_) => {
            let (cut, _) = s
                .char_indices()
                .nth(max_chars - 1)
                .expect("shorter than max_chars - 1 was ruled out");
            Cow::Owned(format!("{}{ELLIPSIS}", s[..cut].trim_end()))
        }
    }
}

/// [`truncate_chars`] that tells a preview when `field` (as named in the request) was cut.
pub fn cut_chars<'a>(field: &str, s: &'a str, max_chars: usize) -> Cow<'a, str> {
    let out = truncate_chars(s, max_chars);
    if let Cow::Owned(cut) = &out {
        notes::truncated(field, s.chars().count(), cut.chars().count(), "characters");
    }
    out
}

/// [`truncate_bytes`] that tells a preview when `field` (as named in the request) was cut.
pub fn cut_bytes<'a>(field: &str, s: &'a str, max_bytes: usize) -> Cow<'a, str> {
    let out = truncate_bytes(s, max_bytes);
    if let Cow::Owned(cut) = &out {
        notes::truncated(field, s.len(), cut.len(), "bytes");
    }
    out
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// 1536 → "1.5 KiB"; bytes up to 1023 as "512 B".
pub fn human_size(bytes: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes.max(0.0);
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_bytes_on_char_boundaries() {
        assert_eq!(truncate_bytes("short", 10), "short");
        let s = "é".repeat(3000); // 6000 bytes
        for max in [4096, 4095, 4094, 5, 4, 3, 2, 1, 0] {
            let t = truncate_bytes(&s, max);
            assert!(t.len() <= max, "{max}: {}", t.len());
            if max >= 3 {
                assert!(t.ends_with(ELLIPSIS), "{max}");
            }
        }
        let cjk = "千と千尋の神隠し".repeat(300);
        let t = truncate_bytes(&cjk, 4096);
        assert!(t.len() <= 4096 && t.len() > 4090 && t.ends_with('…'));
        let emoji = "👍".repeat(2000);
        assert!(truncate_bytes(&emoji, 4096).len() <= 4096);
    }

    #[test]
    fn into_one_line_agrees_with_one_line() {
        for s in [
            "",
            " ",
            "Movie added",
            " lead",
            "trail ",
            "two  spaces",
            "tab\there",
            "line\nbreak",
            "bell\u{7}",
            "nbsp\u{a0}x",
            "Plugin failing: tg",
            "千と千尋",
            "a",
            "a b c",
        ] {
            assert_eq!(into_one_line(s.to_owned()), one_line(s), "{s:?}");
        }
    }

    #[test]
    fn truncates_chars_with_an_ellipsis() {
        assert_eq!(truncate_chars("Amélie", 6), "Amélie");
        assert_eq!(truncate_chars("Amélie", 4), "Amé…");
        assert_eq!(truncate_chars("ab cd", 4), "ab…");
        assert_eq!(truncate_chars("abc", 0), "");
        assert_eq!(truncate_chars(&"千".repeat(300), 250).chars().count(), 250);
    }

    #[test]
    fn cuts_are_noted_in_a_preview_only() {
        let long = "é".repeat(300);
        let ((), notes) = crate::preview::notes::collect_sync(|| {
            assert_eq!(cut_chars("title", &long, 250).chars().count(), 250);
            assert_eq!(cut_bytes("message", "short", 10), "short");
            assert!(cut_bytes("message", &long, 100).len() <= 100);
        });
        let seen: Vec<_> = notes
            .iter()
            .map(|n| (n.field.as_deref(), n.from, n.to, n.unit))
            .collect();
        assert_eq!(
            seen,
            [
                (Some("title"), Some(300), Some(250), Some("characters")),
                (Some("message"), Some(600), Some(99), Some("bytes")),
            ]
        );
    }

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(human_size(512.0), "512 B");
        assert_eq!(human_size(1536.0), "1.5 KiB");
        assert_eq!(human_size(15_032_385_536.0), "14.0 GiB");
        assert_eq!(human_size(-3.0), "0 B");
    }
}
