//! The loader's pipeline: YAML text → tree → `${VAR}` expansion → sections → validated
//! [`Config`], with every problem collected and given its line at the end.

use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::env::expand_tree;
use super::fields::{closest, Collector};
use super::sections::{RawHooks, RawServer, RawSupervision};
use super::{key_label, locate, plugins, Config, ConfigError, Problem, Problems};

const SECTIONS: &[&str] = &["server", "hooks", "supervision", "plugins"];

/// Parse and validate `text`; `env` answers `${VAR}` lookups.
pub fn parse(
    text: &str,
    source: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        file: source.map(Path::to_path_buf),
        problems,
    };
    let mut root: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => return Err(invalid(vec![syntax_problem(text, &e)])),
    };
    if let Err(e) = root.apply_merge() {
        return Err(invalid(vec![syntax_problem(text, &e)]));
    }

    let mut cx = Collector::default();
    expand_tree(&mut root, "", env, &mut cx.problems, &mut cx.whole_refs);
    let mut sections = match root {
        Value::Null => Mapping::new(),
        Value::Mapping(m) => m,
        _ => {
            let line = text.lines().position(is_content).map(|i| i + 1);
            let message =
                "the file must be a mapping with the sections server, hooks, supervision \
                           and plugins (each optional), e.g. `plugins:` on the first line";
            return Err(invalid(vec![Problem {
                path: String::new(),
                line,
                message: message.into(),
            }]));
        }
    };

    let server = section(
        &mut cx,
        &mut sections,
        "server",
        serde_yaml::from_value::<RawServer>,
    );
    let hooks = section(
        &mut cx,
        &mut sections,
        "hooks",
        serde_yaml::from_value::<RawHooks>,
    );
    let supervision = section(
        &mut cx,
        &mut sections,
        "supervision",
        serde_yaml::from_value::<RawSupervision>,
    );
    let plugin_section = sections.shift_remove("plugins").unwrap_or(Value::Null);
    for (k, _) in sections {
        let name = key_label(&k);
        let hint = closest(&name, SECTIONS.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        cx.problems.push(
            name,
            format!(
                "unknown section{hint}; known sections: {}",
                SECTIONS.join(", ")
            ),
        );
    }

    let server = server.validate(&mut cx.problems);
    let hooks = hooks.validate(source, &mut cx.problems);
    let supervision = supervision.validate(&mut cx.problems);
    let plugins = plugins::parse(plugin_section, &mut cx);

    let problems = with_lines(text, cx.problems);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    Ok(Config {
        source: source.map(Path::to_path_buf),
        server,
        hooks,
        supervision,
        plugins,
        warnings: with_lines(text, cx.warnings),
    })
}

/// Take section `name` out of the top level and deserialize it (defaults when absent).
fn section<T: Default>(
    cx: &mut Collector,
    sections: &mut Mapping,
    name: &str,
    parse: impl Fn(Value) -> Result<T, serde_yaml::Error>,
) -> T {
    match sections.shift_remove(name) {
        None | Some(Value::Null) => T::default(),
        Some(Value::Mapping(m)) => cx.mapping(name, m, &[], parse).unwrap_or_default(),
        Some(_) => {
            cx.problems.push(
                name,
                "must be a mapping of settings (`field: value` lines, indented)",
            );
            T::default()
        }
    }
}

/// A YAML syntax error as a problem at its line, with advice for the common cases.
fn syntax_problem(text: &str, e: &serde_yaml::Error) -> Problem {
    let line = e.location().map(|l| l.line());
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

/// The problems, each with the line of its path where the locator finds one.
fn with_lines(text: &str, problems: Problems) -> Vec<Problem> {
    problems
        .into_vec()
        .into_iter()
        .map(|mut p| {
            if p.line.is_none() {
                p.line = locate::line_of(text, &p.path);
            }
            p
        })
        .collect()
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !(t.is_empty() || t.starts_with('#') || t.starts_with("---") || t.starts_with('%'))
}
