//! Maps a field path such as `plugins.ntfy.events[1]` to its line in the YAML text.
//!
//! serde_yaml's `Value` keeps no positions, so after parsing we find lines with a small
//! indentation-aware scan of block-style YAML: `key:` lines and `- item` lines, each
//! with its column. It is best effort: when a segment cannot be found (a required field
//! that is absent, a value written in flow style `[a, b]` or `{k: v}`, a key brought in
//! by a `<<` merge) the answer is the line of the deepest ancestor that was found, which
//! is where the user has to look anyway.

/// The 1-based line of `path` in `text`, or of its deepest ancestor found there.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let segments = segments(path)?;
    let nodes = scan(text);
    let mut parent: Option<usize> = None;
    let mut found = None;
    for seg in segments {
        let children = children(&nodes, parent);
        let hit = match seg {
            Segment::Key(name) => children
                .into_iter()
                .find(|&i| matches!(&nodes[i].kind, Kind::Key(k) if k == name)),
            Segment::Index(n) => children
                .into_iter()
                .filter(|&i| nodes[i].kind == Kind::Item)
                .nth(n),
        };
        match hit {
            Some(i) => {
                found = Some(nodes[i].line);
                parent = Some(i);
            }
            None => break,
        }
    }
    found
}

/// The line where `key` appears a second time in one mapping, at or after `from_line`
/// (the start of the mapping serde_yaml reports for a duplicate key).
pub fn duplicate_key_line(text: &str, key: &str, from_line: usize) -> Option<usize> {
    let nodes = scan(text);
    let first = nodes.iter().position(|n| n.line >= from_line)?;
    for (i, a) in nodes.iter().enumerate().skip(first) {
        if !matches!(&a.kind, Kind::Key(k) if k == key) {
            continue;
        }
        // Siblings of `a` are the nodes after it at its column, until the mapping ends.
        let repeat = nodes[i + 1..]
            .iter()
            .take_while(|n| n.col >= a.col)
            .filter(|n| n.col == a.col)
            .find(|n| n.kind == a.kind);
        if let Some(n) = repeat {
            return Some(n.line);
        }
    }
    None
}

#[derive(Debug, PartialEq)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[2].c` → `a`, `b`, `[2]`, `c`; `None` for an empty or malformed path.
fn segments(path: &str) -> Option<Vec<Segment<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            out.push(Segment::Index(r[..end].parse().ok()?));
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

#[derive(Debug, PartialEq)]
enum Kind {
    Key(String),
    Item,
}

#[derive(Debug)]
struct Node {
    line: usize,
    col: usize,
    kind: Kind,
}

/// Every `key:` and `- ` in the text, in order, skipping comments and block scalars.
fn scan(text: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    // While inside a `|` or `>` block scalar: the column of the node that owns it.
    let mut block_owner: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.trim_start_matches(' ');
        let indent = raw.len() - content.len();
        if let Some(owner) = block_owner {
            if content.trim().is_empty() || indent > owner {
                continue;
            }
            block_owner = None;
        }
        if content.is_empty()
            || content.starts_with('#')
            || content.starts_with("---")
            || content.starts_with("...")
            || content.starts_with('%')
        {
            continue;
        }
        let mut col = indent;
        let mut rest = content;
        while rest == "-" || rest.starts_with("- ") {
            nodes.push(Node {
                line,
                col,
                kind: Kind::Item,
            });
            let after = &rest[1..];
            let value = after.trim_start_matches(' ');
            if is_block_scalar_header(value) {
                block_owner = Some(col);
            }
            col += 1 + after.len() - value.len();
            rest = value;
        }
        if let Some((key, value)) = split_key(rest) {
            if is_block_scalar_header(value) {
                block_owner = Some(col);
            }
            nodes.push(Node {
                line,
                col,
                kind: Kind::Key(key),
            });
        }
    }
    nodes
}

/// The direct children of `parent` (of the whole document when `None`).
fn children(nodes: &[Node], parent: Option<usize>) -> Vec<usize> {
    let (start, end) = match parent {
        None => (0, nodes.len()),
        Some(p) => {
            let pc = nodes[p].col;
            let is_key = matches!(nodes[p].kind, Kind::Key(_));
            let end = (p + 1..nodes.len())
                .find(|&j| {
                    let n = &nodes[j];
                    // A key's sequence may sit at the key's own column (`key:\n- a`).
                    n.col < pc || (n.col == pc && !(is_key && n.kind == Kind::Item))
                })
                .unwrap_or(nodes.len());
            (p + 1, end)
        }
    };
    let Some(first) = nodes.get(start..end).and_then(|s| s.first()) else {
        return Vec::new();
    };
    (start..end)
        .filter(|&j| nodes[j].col == first.col)
        .collect()
}

/// `key: value` → (`key`, `value`); quoted keys are unquoted. `None` when `s` is not a
/// block mapping entry (a plain scalar, a flow collection, a complex `?` key).
fn split_key(s: &str) -> Option<(String, &str)> {
    let (key, after) = match s.chars().next()? {
        q @ ('"' | '\'') => {
            let close = s[1..].find(q)? + 1;
            let after = s[close + 1..].trim_start_matches(' ');
            (s[1..close].to_owned(), after.strip_prefix(':')?)
        }
        '[' | '{' | '?' | '!' | '&' | '*' | '|' | '>' | '#' => return None,
        _ => {
            let colon = s
                .char_indices()
                .find(|&(i, c)| c == ':' && s[i + 1..].chars().next().is_none_or(|n| n == ' '))?
                .0;
            let key = s[..colon].trim_end();
            if key.contains(" #") {
                return None;
            }
            (key.to_owned(), &s[colon + 1..])
        }
    };
    if !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    Some((key, after.trim_start_matches(' ')))
}

/// `|`, `>-`, `|+2` … (before any comment): the value continues on the lines below.
fn is_block_scalar_header(value: &str) -> bool {
    let v = value.split(" #").next().unwrap_or("").trim();
    let mut chars = v.chars();
    matches!(chars.next(), Some('|' | '>'))
        && chars.all(|c| c == '+' || c == '-' || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# leading comment
server:
  listen: 127.0.0.1:8787   # trailing comment

plugins:
  ntfy:
    enabled: true
    note: |
      topic: not-a-key
      - not an item
    topic: mydia
    events:
      - after_media_added
      - download.completed
    tags: [a, b]
  \"ntfy_alerts\":
    type: ntfy
    events:
    - on_download_failed
    - on_import_failed
    topic: alerts
  list_of_maps:
    - name: first
      value: 1
    - name: second
      value: 2
";

    #[test]
    fn finds_nested_keys() {
        assert_eq!(line_of(TEXT, "server"), Some(2));
        assert_eq!(line_of(TEXT, "server.listen"), Some(3));
        assert_eq!(line_of(TEXT, "plugins.ntfy.enabled"), Some(7));
        assert_eq!(line_of(TEXT, "plugins.ntfy.topic"), Some(11));
        assert_eq!(line_of(TEXT, "plugins.ntfy_alerts.topic"), Some(21));
    }

    #[test]
    fn finds_sequence_items_indented_or_not() {
        assert_eq!(line_of(TEXT, "plugins.ntfy.events[0]"), Some(13));
        assert_eq!(line_of(TEXT, "plugins.ntfy.events[1]"), Some(14));
        assert_eq!(line_of(TEXT, "plugins.ntfy_alerts.events[1]"), Some(20));
    }

    #[test]
    fn finds_keys_inside_sequence_items() {
        assert_eq!(line_of(TEXT, "plugins.list_of_maps[1]"), Some(25));
        assert_eq!(line_of(TEXT, "plugins.list_of_maps[1].value"), Some(26));
        assert_eq!(line_of(TEXT, "plugins.list_of_maps[0].value"), Some(24));
    }

    #[test]
    fn block_scalars_hide_their_content() {
        // `topic: not-a-key` (line 9) is text inside `note: |`, not the real topic.
        assert_eq!(line_of(TEXT, "plugins.ntfy.note"), Some(8));
        assert_eq!(line_of(TEXT, "plugins.ntfy.topic"), Some(11));
    }

    #[test]
    fn missing_segments_fall_back_to_the_deepest_ancestor() {
        assert_eq!(line_of(TEXT, "plugins.ntfy.priority"), Some(6));
        assert_eq!(line_of(TEXT, "plugins.ntfy.tags[1]"), Some(15));
        assert_eq!(line_of(TEXT, "plugins.ntfy.events[7]"), Some(12));
        assert_eq!(line_of(TEXT, "hooks.directory"), None);
        assert_eq!(line_of(TEXT, ""), None);
    }

    #[test]
    fn siblings_do_not_leak_into_each_other() {
        // `type` exists only under ntfy_alerts; ntfy must not find it.
        assert_eq!(line_of(TEXT, "plugins.ntfy.type"), Some(6));
        assert_eq!(line_of(TEXT, "plugins.ntfy_alerts.type"), Some(17));
        // A key deeper in the tree is not a child of the root.
        assert_eq!(line_of(TEXT, "topic"), None);
    }

    #[test]
    fn finds_the_repeat_of_a_duplicate_key() {
        let text =
            "plugins:\n  ntfy:\n    topic: a\n  other:\n    topic: b\n  ntfy:\n    topic: c\n";
        assert_eq!(duplicate_key_line(text, "ntfy", 2), Some(6));
        // `topic` under two different instances is not a duplicate.
        assert_eq!(duplicate_key_line(text, "topic", 3), None);
        assert_eq!(
            duplicate_key_line("a: 1\nb:\n  a: 2\na: 3\n", "a", 1),
            Some(4)
        );
    }

    #[test]
    fn parses_paths() {
        assert_eq!(
            segments("a.b[2][0].c"),
            Some(vec![
                Segment::Key("a"),
                Segment::Key("b"),
                Segment::Index(2),
                Segment::Index(0),
                Segment::Key("c")
            ])
        );
        assert_eq!(segments("a[x]"), None);
        assert_eq!(segments("a[1"), None);
    }

    #[test]
    fn never_panics_on_odd_text() {
        for text in [
            "",
            "-",
            "- - -",
            ":",
            "\"unterminated: x",
            "'a':b",
            "ключ: значение\n  - ü",
            "a:\n\t- b",
        ] {
            let _ = line_of(text, "a.b[0]");
            let _ = line_of(text, "ключ");
        }
        assert_eq!(line_of("ключ: значение", "ключ"), Some(1));
    }
}
