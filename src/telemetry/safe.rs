//! Logged values made safe to read: control characters escaped, long values cut.
//!
//! Event data reaches the log (a title, a hook's `log.info`, a service's error text). Left
//! raw, a `\n` in a title forges a whole log line in the pretty format, a NUL or an ANSI
//! escape reaches the terminal, and a 1 MB title becomes a 1 MB line. Every field of every
//! event and span passes through [`write_safe`], in both formats.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// Longest value written, in bytes of the escaped text; the rest is replaced by a note.
pub const MAX_VALUE_BYTES: usize = 512;

/// Append `value` to `out` with control characters escaped (`\n`, `\t`, `\u{1b}`, ...),
/// cut after [`MAX_VALUE_BYTES`] with the value's full length noted.
pub fn write_safe(out: &mut String, value: &str) {
    let start = out.len();
    for c in value.chars() {
        let before = out.len();
        escape_char(out, c);
        if out.len() - start > MAX_VALUE_BYTES {
            out.truncate(before);
            let _ = write!(out, "… [cut: {} bytes in all]", value.len());
            return;
        }
    }
}

/// `value` made safe, as a new string.
pub fn safe(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(MAX_VALUE_BYTES + 32));
    write_safe(&mut out, value);
    out
}

fn escape_char(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        // C0, DEL and C1 controls; line and paragraph separators (line breaks to some
        // viewers); bidi overrides and isolates (they reorder what a reader sees).
        c if c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
        {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// The pretty format's field formatter: `message key=value ...` like tracing's default,
/// every value passed through [`write_safe`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SafeFields;

impl<'writer> FormatFields<'writer> for SafeFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut v = PrettyVisitor {
            writer,
            first: true,
            buf: String::new(),
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct PrettyVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    buf: String,
    result: fmt::Result,
}

impl PrettyVisitor<'_> {
    fn field(&mut self, field: &Field, raw: &str) {
        let name = field.name();
        // Metadata of records from the `log` crate, shown by the formatter already.
        if name.starts_with("log.") || self.result.is_err() {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.buf.clear();
        write_safe(&mut self.buf, raw);
        let pad = if self.first { "" } else { " " };
        self.first = false;
        self.result = if name == "message" {
            write!(self.writer, "{pad}{}", self.buf)
        } else if self.writer.has_ansi_escapes() {
            write!(
                self.writer,
                "{pad}\x1b[3m{name}\x1b[23m\x1b[2m=\x1b[22m{}",
                self.buf
            )
        } else {
            write!(self.writer, "{pad}{name}={}", self.buf)
        };
    }
}

impl Visit for PrettyVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, value);
        } else {
            // Quoted, as tracing's default shows plain strings.
            self.field(field, &format!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(s) = source {
            let _ = write!(text, ": {s}");
            source = s.source();
        }
        self.field(field, &text);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(safe("a\nINFO forged"), "a\\nINFO forged");
        assert_eq!(
            safe("nul\0 esc\x1b[31m del\x7f"),
            "nul\\u{0} esc\\u{1b}[31m del\\u{7f}"
        );
        assert_eq!(safe("tab\tcr\r"), "tab\\tcr\\r");
        assert_eq!(safe("ls\u{2028}rlo\u{202e}"), "ls\\u{2028}rlo\\u{202e}");
        assert_eq!(
            safe("Amélie 東京 ✓"),
            "Amélie 東京 ✓",
            "printable text is kept"
        );
    }

    #[test]
    fn long_values_are_cut_with_their_length() {
        let long = "é".repeat(300_000);
        let out = safe(&long);
        assert!(out.len() <= MAX_VALUE_BYTES + 40, "{}", out.len());
        assert!(out.ends_with("… [cut: 600000 bytes in all]"), "{out}");
        assert!(out.starts_with("éé"));
        let exact = "x".repeat(MAX_VALUE_BYTES);
        assert_eq!(safe(&exact), exact, "a value at the limit is whole");
        // Escapes count towards the limit and are never split.
        let nuls = safe(&"\0".repeat(1000));
        assert!(nuls.starts_with("\\u{0}\\u{0}"));
        let kept = nuls.split('…').next().unwrap();
        assert!(kept.ends_with("\\u{0}"), "{kept}");
    }
}
