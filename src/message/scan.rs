//! The filters and tests a template names, found in its source: minijinja looks them up
//! only when it runs them, so an unknown one in a branch not taken would otherwise
//! surface on some later event instead of when the config loads.

/// A filter or a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `x|name`, `{% filter name %}`.
    Filter,
    /// `x is name`, `x is not name`.
    Test,
}

/// Each filter and test named in `source`, with its 1-based line in the template. Text
/// outside `{{ }}` / `{% %}`, comments, string literals and `{% raw %}` blocks are
/// skipped.
pub fn names_used(source: &str) -> Vec<(Kind, String, usize)> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        let opener = (bytes[i], bytes[i + 1]);
        let close: &[u8] = match opener {
            (b'{', b'{') => b"}}",
            (b'{', b'%') => b"%}",
            (b'{', b'#') => {
                i = find(bytes, i + 2, b"#}").map_or(bytes.len(), |j| j + 2);
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let block = opener.1 == b'%';
        let mut j = i + 2;
        if matches!(bytes.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        if block {
            let (word, after) = ident(bytes, skip_space(bytes, j));
            if word == "raw" {
                i = find(bytes, after, b"endraw").map_or(bytes.len(), |k| k + 6);
                continue;
            }
            if word == "filter" {
                let start = skip_space(bytes, after);
                let (name, _) = ident(bytes, start);
                if !name.is_empty() {
                    out.push((Kind::Filter, name.to_owned(), line_at(source, start)));
                }
            }
        }
        // Inside the expression: strings skipped, `|name` recorded, until the closer.
        while j < bytes.len() {
            match bytes[j] {
                q @ (b'"' | b'\'') => {
                    j += 1;
                    while j < bytes.len() && bytes[j] != q {
                        j += if bytes[j] == b'\\' { 2 } else { 1 };
                    }
                    j += 1;
                }
                b'|' => {
                    let start = skip_space(bytes, j + 1);
                    let (name, after) = ident(bytes, start);
                    if !name.is_empty() {
                        out.push((Kind::Filter, name.to_owned(), line_at(source, start)));
                    }
                    j = after.max(j + 1);
                }
                b if is_ident_start(b) && (j == 0 || !is_ident(bytes[j - 1])) => {
                    let (word, after) = ident(bytes, j);
                    j = after;
                    if word == "is" {
                        let mut start = skip_space(bytes, after);
                        let (mut name, mut end) = ident(bytes, start);
                        if name == "not" {
                            start = skip_space(bytes, end);
                            (name, end) = ident(bytes, start);
                        }
                        if !name.is_empty() {
                            out.push((Kind::Test, name.to_owned(), line_at(source, start)));
                        }
                        j = end.max(j);
                    }
                }
                _ if bytes[j..].starts_with(close) => break,
                _ => j += 1,
            }
        }
        i = j + close.len();
    }
    out
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    (from..bytes.len()).find(|&k| bytes[k..].starts_with(needle))
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The identifier at `i` (empty when there is none) and the index after it.
fn ident(bytes: &[u8], i: usize) -> (&str, usize) {
    let mut end = i;
    while bytes.get(end).copied().is_some_and(is_ident) {
        end += 1;
    }
    let word = std::str::from_utf8(&bytes[i..end]).unwrap_or_default();
    if word.starts_with(|c: char| c.is_ascii_digit()) {
        return ("", end);
    }
    (word, end)
}

fn line_at(source: &str, i: usize) -> usize {
    source.as_bytes()[..i]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(source: &str) -> Vec<(String, usize)> {
        names_used(source)
            .into_iter()
            .filter(|(k, _, _)| *k == Kind::Filter)
            .map(|(_, n, l)| (n, l))
            .collect()
    }

    #[test]
    fn finds_tests_after_is_and_is_not() {
        let tests: Vec<(Kind, String, usize)> =
            names_used("{% if x is defined and this is not nmber %}{{ 'is odd' }}{% endif %}\n{{ y is\n  even }}");
        assert_eq!(
            tests,
            [
                (Kind::Test, "defined".into(), 1),
                (Kind::Test, "nmber".into(), 1),
                (Kind::Test, "even".into(), 3)
            ]
        );
    }

    #[test]
    fn finds_filters_in_expressions_and_filter_blocks() {
        assert_eq!(
            names("{{ a|upper }} x|nope {{ b | truncate(3) | filesize }}"),
            [
                ("upper".into(), 1),
                ("truncate".into(), 1),
                ("filesize".into(), 1)
            ]
        );
        assert_eq!(
            names("line\n{%- filter upper %}x{% endfilter %}\n{% if a|lenght %}{% endif %}"),
            [("upper".into(), 2), ("lenght".into(), 3)]
        );
    }

    #[test]
    fn skips_strings_comments_and_raw_blocks() {
        assert_eq!(names("{{ 'a|b' ~ \"c|d\" }}{# x|y #}"), []);
        assert_eq!(
            names("{% raw %}{{ x|y }}{% endraw %}{{ z|w }}"),
            [("w".into(), 1)]
        );
        assert_eq!(names("{{ 'it\\'s|x' }}"), []);
        assert_eq!(names("{{ unclosed |"), []);
    }
}
