//! `${VAR}` expansion in string values, so tokens need not sit in the file.
//!
//! Expansion walks the parsed YAML tree, never the raw text: a variable's value is
//! always one string and cannot inject YAML structure (a newline in a token stays in
//! the token). Keys are not expanded. A substituted value is not scanned again.

use std::collections::HashSet;

use serde_yaml::Value;

use super::Problems;

/// Paths whose whole string was exactly one `${VAR}`. Such a value may be read as a
/// number or a boolean when the field wants one (`timeout_ms: ${TIMEOUT}`), which a
/// value with other text around the reference never is.
pub type WholeRefs = HashSet<String>;

/// Expand every string value under `value`, whose path is `path`; each unset or
/// malformed reference is a problem at the field that holds it.
pub fn expand_tree(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
    whole_refs: &mut WholeRefs,
) {
    match value {
        Value::String(s) => match expand_str(s, env) {
            Ok(Some(expanded)) => {
                if is_whole_ref(s) {
                    whole_refs.insert(path.to_owned());
                }
                *s = expanded;
            }
            Ok(None) => {}
            Err(messages) => {
                for m in messages {
                    problems.push(path, m);
                }
            }
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_tree(item, &format!("{path}[{i}]"), env, problems, whole_refs);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                expand_tree(
                    v,
                    &super::join(path, &super::key_label(k)),
                    env,
                    problems,
                    whole_refs,
                );
            }
        }
        Value::Tagged(tagged) => expand_tree(&mut tagged.value, path, env, problems, whole_refs),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `s` with every `${NAME}` replaced and `$${` turned into `${`; `Ok(None)` when `s` has
/// nothing to expand. `Err` lists what is wrong, one message per bad reference.
pub fn expand_str(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, Vec<String>> {
    if !s.contains("${") {
        return Ok(None);
    }
    let mut out = String::with_capacity(s.len());
    let mut errors = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let at = &rest[i..];
        if let Some(after) = at.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = at.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                errors.push(
                    "has `${` without a closing `}`; write `$${` for a literal `${`".to_owned(),
                );
                out.push_str(at);
                rest = "";
                break;
            };
            let name = &after[..end];
            if !is_var_name(name) {
                errors.push(format!(
                    "`${{{name}}}` is not a variable reference: names use letters, digits and `_` \
                     and do not start with a digit; write `$${{` for a literal `${{`"
                ));
            } else if let Some(v) = env(name) {
                out.push_str(&v);
            } else {
                errors.push(format!(
                    "environment variable {name} is not set; export it or write the value"
                ));
            }
            rest = &after[end + 1..];
        } else {
            // A lone `$` (or `$$` not before `{`) is literal text.
            out.push('$');
            rest = &at[1..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(Some(out))
    } else {
        Err(errors)
    }
}

fn is_whole_ref(s: &str) -> bool {
    s.strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .is_some_and(is_var_name)
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("tk_secret".to_owned()),
            "EMPTY" => Some(String::new()),
            "TRICKY" => Some("${TOKEN}\nkey: injected".to_owned()),
            _ => None,
        }
    }

    fn expand(s: &str) -> Result<Option<String>, Vec<String>> {
        expand_str(s, &env)
    }

    #[test]
    fn replaces_references_anywhere_in_the_string() {
        assert_eq!(expand("${TOKEN}"), Ok(Some("tk_secret".into())));
        assert_eq!(
            expand("Bearer ${TOKEN}!"),
            Ok(Some("Bearer tk_secret!".into()))
        );
        assert_eq!(
            expand("${TOKEN}/${TOKEN}"),
            Ok(Some("tk_secret/tk_secret".into()))
        );
        assert_eq!(expand("a${EMPTY}b"), Ok(Some("ab".into())));
    }

    #[test]
    fn leaves_plain_strings_and_lone_dollars_alone() {
        assert_eq!(expand("no refs"), Ok(None));
        assert_eq!(expand("cost $5, $TOKEN, $$"), Ok(None));
        assert_eq!(
            expand("$5 and ${TOKEN}"),
            Ok(Some("$5 and tk_secret".into()))
        );
    }

    #[test]
    fn double_dollar_escapes_a_literal_reference() {
        assert_eq!(expand("$${TOKEN}"), Ok(Some("${TOKEN}".into())));
        assert_eq!(
            expand("$${NOT_SET} and ${TOKEN}"),
            Ok(Some("${NOT_SET} and tk_secret".into()))
        );
    }

    #[test]
    fn substituted_values_are_not_expanded_again() {
        assert_eq!(
            expand("${TRICKY}"),
            Ok(Some("${TOKEN}\nkey: injected".into()))
        );
    }

    #[test]
    fn unset_variable_says_how_to_fix_it() {
        let errs = expand("x ${NOT_SET} ${ALSO_NOT}").unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(
            errs[0],
            "environment variable NOT_SET is not set; export it or write the value"
        );
        assert!(errs[1].contains("ALSO_NOT"));
    }

    #[test]
    fn malformed_references_are_reported() {
        assert!(expand("${TOKEN").unwrap_err()[0].contains("without a closing `}`"));
        assert!(expand("${1X}").unwrap_err()[0].contains("not a variable reference"));
        assert!(expand("${}").unwrap_err()[0].contains("not a variable reference"));
        assert!(expand("${A B}").unwrap_err()[0].contains("not a variable reference"));
    }

    #[test]
    fn tree_walk_names_the_path_and_marks_whole_references() {
        let mut v: Value = serde_yaml::from_str(
            "a:\n  t: ${TOKEN}\n  n: [x, 'pre ${TOKEN}', '${NOPE}']\n  k: 5\n",
        )
        .unwrap();
        let mut problems = Problems::default();
        let mut whole = WholeRefs::new();
        expand_tree(&mut v, "", &env, &mut problems, &mut whole);
        assert_eq!(v["a"]["t"], Value::from("tk_secret"));
        assert_eq!(v["a"]["n"][1], Value::from("pre tk_secret"));
        assert_eq!(v["a"]["k"], Value::from(5));
        let items = problems.into_vec();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].path, "a.n[2]");
        assert!(items[0].message.contains("NOPE"));
        assert!(whole.contains("a.t"));
        assert!(!whole.contains("a.n[1]"));
    }
}
