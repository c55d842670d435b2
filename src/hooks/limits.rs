//! The size limit that holds both ways (the event handed to hooks and what a hook hands
//! back), and cutting text to a byte length.

use std::io;

use serde_json::Value as Json;

use crate::event::EventData;

/// Whether `data`, as JSON, is at most `max` bytes. A cheap upper bound settles the usual
/// case (data far below the cap) without serialising; otherwise the data is serialised,
/// stopping as soon as it is too large.
pub fn fits(data: &EventData, max: usize) -> bool {
    object_bound(data, max).is_some() || serialises_within(data, max)
}

/// An upper bound of the JSON size of `value`, or `None` once it passes `left`.
fn bound(value: &Json, left: usize) -> Option<usize> {
    let size = match value {
        Json::Null | Json::Bool(_) => 5,
        // serde_json prints integers in at most 20 bytes and floats (shortest round trip)
        // in at most 24; the `arbitrary_precision` feature, which would print more, is off.
        Json::Number(_) => 24,
        Json::String(s) => string_bound(s),
        Json::Array(items) => {
            let mut size = 2;
            for item in items {
                size += 1 + bound(item, left.checked_sub(size)?)?;
            }
            size
        }
        Json::Object(map) => object_bound(map, left)?,
    };
    (size <= left).then_some(size)
}

fn object_bound(map: &EventData, left: usize) -> Option<usize> {
    let mut size = 2;
    for (key, value) in map {
        size += string_bound(key) + 2;
        size += bound(value, left.checked_sub(size)?)?;
    }
    (size <= left).then_some(size)
}

/// Quotes, and every byte escaped as `\u00XX` at worst.
fn string_bound(s: &str) -> usize {
    s.len().saturating_mul(6).saturating_add(2)
}

fn serialises_within(data: &EventData, max: usize) -> bool {
    struct Counter {
        left: usize,
    }
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.left = self
                .left
                .checked_sub(buf.len())
                .ok_or_else(|| io::Error::other("too large"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(&mut Counter { left: max }, data).is_ok()
}

/// `text` cut to at most `max` bytes at a character boundary, with `…` when cut.
pub fn cut(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let ellipsis = '…'.len_utf8();
    let mut end = max.saturating_sub(ellipsis);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cut_keeps_whole_characters_within_the_limit() {
        assert_eq!(cut("short".into(), 10), "short");
        let long = "é".repeat(1000);
        let out = cut(long, 1024);
        assert!(out.len() <= 1024 && out.ends_with('…'), "{}", out.len());
        assert_eq!(cut("x".repeat(2000), 1024).len(), 1024);
    }

    #[test]
    fn fits_counts_serialised_bytes() {
        let data = json!({"a": "xxxx"}).as_object().unwrap().clone();
        let len = serde_json::to_vec(&data).unwrap().len();
        assert!(fits(&data, len));
        assert!(!fits(&data, len - 1));
    }

    #[test]
    fn the_size_bound_is_never_below_the_real_size() {
        let data = json!({
            "plain": "Spirited Away", "escaped": "quote \" backslash \\ tab \t nul \u{0} bell \u{7}",
            "unicode": "Amélie 🎬 日本語", "": "",
            "numbers": [0, -1, i64::MIN, u64::MAX, 1.5, -2.2250738585072014e-308, f64::MAX, 1e300],
            "nested": {"a": [null, true, false, [], {}], "b": {"c": {"d": [[["deep"]]]}}},
        });
        let data = data.as_object().unwrap().clone();
        let len = serde_json::to_vec(&data).unwrap().len();
        let total = object_bound(&data, usize::MAX).unwrap();
        assert!(total >= len, "{total} < {len}");
        assert!(object_bound(&data, len - 1).is_none());
        for (key, value) in &data {
            let one = serde_json::to_vec(value).unwrap().len();
            assert!(bound(value, usize::MAX).unwrap() >= one, "{key}");
        }
    }
}
