//! The loader's pipeline: YAML text → tree → `${VAR}` expansion → sections → validated
//! [`Config`], with every problem collected and given its line at the end.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::env::expand_tree;
use super::fields::{closest, Collector};
use super::sections::{RawHooks, RawMetrics, RawServer, RawSupervision};
use super::storage::RawStorage;
use super::{key_label, locate, plugins, Config, ConfigError, Problem, Problems};

const SECTIONS: &[&str] = &[
    "server",
    "hooks",
    "supervision",
    "storage",
    "metrics",
    "plugins",
];

/// Parse and validate `text`; `env` answers `${VAR}` lookups.
pub fn parse(
    text: &str,
    source: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let invalid = |problems, hooks| ConfigError::Invalid {
        file: source.map(Path::to_path_buf),
        problems,
        hooks,
    };
    let mut root = tree(text).map_err(|p| invalid(vec![p], None))?;
    let mut cx = Collector::default();
    let mut env_problems = Problems::default();
    expand_tree(&mut root, "", env, &mut env_problems, &mut cx.whole_refs);
    let mut top = top_level(text, root).map_err(|p| invalid(vec![p], None))?;

    let server: RawServer = section(&mut cx, &mut top, "server");
    let hooks: RawHooks = section(&mut cx, &mut top, "hooks");
    let supervision: RawSupervision = section(&mut cx, &mut top, "supervision");
    let storage: RawStorage = section(&mut cx, &mut top, "storage");
    let metrics: RawMetrics = section(&mut cx, &mut top, "metrics");
    let plugin_section = top.shift_remove("plugins").unwrap_or(Value::Null);
    unknown_sections(&mut cx, top);

    let mut server = server.validate(&mut cx.problems);
    let hooks = hooks.validate(source, &mut cx.problems);
    let supervision = supervision.validate(&mut cx.problems, &mut cx.warnings);
    let storage = storage.validate(source, &mut cx.problems);
    server.metrics = metrics.validate();
    let plugins = plugins::parse(plugin_section, &mut cx);

    let problems = with_lines(text, without_echoes(env_problems, cx.problems));
    if !problems.is_empty() {
        return Err(invalid(problems, Some(Box::new(hooks))));
    }
    Ok(Config {
        source: source.map(Path::to_path_buf),
        server,
        hooks,
        supervision,
        storage,
        plugins,
        warnings: with_lines(text, cx.warnings),
    })
}

/// The YAML tree, with `<<` merge keys applied.
fn tree(text: &str) -> Result<Value, Problem> {
    let mut root: Value = serde_yaml::from_str(text).map_err(|e| syntax_problem(text, &e))?;
    root.apply_merge().map_err(|e| syntax_problem(text, &e))?;
    Ok(root)
}

/// The top-level mapping (empty for an empty file).
fn top_level(text: &str, root: Value) -> Result<Mapping, Problem> {
    match root {
        Value::Null => Ok(Mapping::new()),
        Value::Mapping(m) => Ok(m),
        _ => Err(Problem {
            path: String::new(),
            line: text.lines().position(is_content).map(|i| i + 1),
            message: "the file must be a mapping with the sections server, hooks, supervision, \
                      storage, metrics and plugins (each optional), e.g. `plugins:` on the first line"
                .to_owned(),
        }),
    }
}

/// Take section `name` out of the top level and deserialize it (defaults when absent).
fn section<T: DeserializeOwned + Default>(cx: &mut Collector, top: &mut Mapping, name: &str) -> T {
    match top.shift_remove(name) {
        None | Some(Value::Null) => T::default(),
        Some(Value::Mapping(m)) => cx
            .mapping(name, m, &[], serde_yaml::from_value::<T>)
            .unwrap_or_default(),
        Some(_) => {
            cx.problems.push(
                name,
                "must be a mapping of settings (`field: value` lines, indented)",
            );
            T::default()
        }
    }
}

/// Whatever is left at the top level after the known sections were taken out.
fn unknown_sections(cx: &mut Collector, rest: Mapping) {
    for (k, _) in rest {
        let name = key_label(&k);
        let hint = closest(&name, SECTIONS.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        let known = SECTIONS.join(", ");
        cx.problems.push(
            name,
            format!("unknown section{hint}; known sections: {known}"),
        );
    }
}

/// The env problems, then the others except checks of a value whose `${VAR}` failed:
/// that value still holds the reference text, and checks on it would only repeat the
/// env problem in other words. An unknown field is about the key, so it stays.
fn without_echoes(env_problems: Problems, others: Problems) -> Problems {
    let failed: Vec<String> = env_problems
        .items()
        .iter()
        .map(|p| p.path.clone())
        .collect();
    let mut out = env_problems;
    for p in others.into_vec() {
        if !failed.contains(&p.path) || p.message.starts_with("unknown field") {
            out.push_at(p.path, p.line, p.message);
        }
    }
    out
}

/// A YAML syntax error as a problem at its line, with advice for the common cases.
fn syntax_problem(text: &str, e: &serde_yaml::Error) -> Problem {
    let mut line = e.location().map(|l| l.line());
    // serde_yaml points a duplicate key at the start of its mapping; find the repeat.
    let text_of_error = e.to_string();
    if let Some(key) = text_of_error
        .split_once("duplicate entry with key \"")
        .and_then(|(_, r)| r.split('"').next())
    {
        line = locate::duplicate_key_line(text, key, line.unwrap_or(1)).or(line);
    }
    let mut message = format!("invalid YAML: {e}");
    let has_tab = line
        .and_then(|l| text.lines().nth(l.saturating_sub(1)))
        .is_some_and(|l| {
            l.chars()
                .take_while(|c| c.is_whitespace())
                .any(|c| c == '\t')
        });
    if has_tab || (line.is_none() && text.contains('\t')) {
        message.push_str("; YAML indentation must use spaces, not tabs");
    }
    Problem {
        path: String::new(),
        line,
        message,
    }
}

/// The problems, each with the line of its path where the locator finds one, in file
/// order (those without a line first; the sort is stable within a line).
fn with_lines(text: &str, problems: Problems) -> Vec<Problem> {
    let mut out: Vec<Problem> = problems
        .into_vec()
        .into_iter()
        .map(|mut p| {
            if p.line.is_none() {
                p.line = locate::line_of(text, &p.path);
            }
            p
        })
        .collect();
    out.sort_by_key(|p| p.line);
    out
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !(t.is_empty() || t.starts_with('#') || t.starts_with("---") || t.starts_with('%'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(text, None, &|_| None)
    }

    fn problems(text: &str) -> Vec<(String, Option<usize>, String)> {
        parse_str(text)
            .unwrap_err()
            .problems()
            .iter()
            .map(|p| (p.path.clone(), p.line, p.message.clone()))
            .collect()
    }

    #[test]
    fn empty_text_and_empty_sections_are_defaults() {
        for text in [
            "",
            "\n# only a comment\n",
            "server:\nhooks:\nsupervision:\nplugins:\n",
        ] {
            let c = parse_str(text).unwrap();
            assert_eq!(c.server, super::super::ServerConfig::default());
            assert_eq!(c.supervision, super::super::SupervisionConfig::default());
            assert!(c.plugins.is_empty() && c.warnings.is_empty());
        }
    }

    #[test]
    fn a_duplicate_key_points_at_the_repeat() {
        let got = problems("plugins:\n  ntfy:\n    topic: a\n  ntfy:\n    topic: b\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, Some(4), "{got:?}");
        assert!(
            got[0].2.contains("duplicate entry with key \"ntfy\""),
            "{got:?}"
        );
    }

    #[test]
    fn an_unset_variable_is_reported_once_not_again_by_the_field_checks() {
        let got = problems("plugins:\n  ntfy:\n    enabled: ${ON}\n    topic: ${TOPIC}\n");
        let paths: Vec<&str> = got.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            ["plugins.ntfy.enabled", "plugins.ntfy.topic"],
            "{got:?}"
        );
        assert!(
            got.iter().all(|(_, _, m)| m.contains("is not set")),
            "{got:?}"
        );
    }

    #[test]
    fn an_unknown_field_holding_an_unset_variable_gets_both_problems() {
        let got = problems("plugins:\n  ntfy:\n    prority: ${P}\n");
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].2.contains("P is not set"), "{got:?}");
        assert!(got[1].2.contains("unknown field `prority`"), "{got:?}");
    }

    #[test]
    fn merge_keys_share_settings_between_instances() {
        let text = "plugins:\n  ntfy: &base\n    enabled: true\n    topic: a\n    priority: 4\n  \
                    ntfy_b:\n    <<: *base\n    type: ntfy\n    topic: b\n";
        let c = parse_str(text).unwrap();
        assert_eq!(c.plugins.len(), 2);
        assert!(c.plugins[1].common.enabled);
    }

    #[test]
    fn unknown_sections_suggest_the_near_one() {
        let got = problems("plugin:\n  ntfy: {}\n");
        assert_eq!(got[0].0, "plugin");
        assert_eq!(got[0].1, Some(1));
        assert!(got[0].2.contains("did you mean `plugins`?"), "{got:?}");
    }

    #[test]
    fn problems_come_in_file_order() {
        let got = problems("plugins:\n  ntfy:\n    priority: 9\nserver:\n  listen: x\n");
        let lines: Vec<Option<usize>> = got.iter().map(|p| p.1).collect();
        assert_eq!(lines, [Some(3), Some(5)], "{got:?}");
    }
}
