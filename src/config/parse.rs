//! The loader's pipeline: YAML text → tree → `${VAR}` expansion → sections → validated
//! [`Config`], with every problem collected and given its line at the end.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::env::expand_tree;
use super::fields::{closest, Collector};
use super::overrides::{is_within, Overrides};
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

/// Parse and validate `text`; `env` answers `${VAR}` lookups. `overrides` (an overrides
/// file and its text) is merged over the tree after expansion and before validation.
pub fn parse(
    text: &str,
    source: Option<&Path>,
    overrides: Option<(&Path, &str)>,
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
    let mut file_problems = Vec::new();
    if let Some((file, o_text)) = overrides {
        match Overrides::parse(o_text) {
            Ok(o) => cx.overridden = o.merge_into(&mut root, file, o_text, &mut cx),
            Err(problems) => {
                file_problems = problems;
                for p in &mut file_problems {
                    p.file = Some(file.to_owned());
                }
            }
        }
    }
    // An overridden value replaced what the file wrote, `${VAR}` and all.
    let replaced = |path: &str| cx.overridden.iter().any(|o| is_within(path, o));
    let env_problems = keep(env_problems, |p| !replaced(&p.path));
    let whole_refs = std::mem::take(&mut cx.whole_refs);
    cx.whole_refs = whole_refs.into_iter().filter(|p| !replaced(p)).collect();
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

    let overridden = std::mem::take(&mut cx.overridden);
    let at_overrides = |ps: Problems| match overrides {
        Some((file, o_text)) => attribute(ps, &overridden, file, o_text),
        None => ps,
    };
    let mut problems = with_lines(
        text,
        without_echoes(env_problems, at_overrides(cx.problems)),
    );
    problems.extend(file_problems);
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
        warnings: with_lines(text, at_overrides(cx.warnings)),
        overrides: overrides.map(|(file, _)| file.to_owned()),
    })
}

/// `problems` with only those `keep` says yes to.
fn keep(problems: Problems, keep: impl Fn(&Problem) -> bool) -> Problems {
    let mut out = Problems::default();
    for p in problems.into_vec().into_iter().filter(|p| keep(p)) {
        out.push_problem(p);
    }
    out
}

/// Problems about an overridden value point at the overrides file and its line, where
/// the value was written, not at the config file.
fn attribute(problems: Problems, overridden: &[String], file: &Path, text: &str) -> Problems {
    let mut out = Problems::default();
    for mut p in problems.into_vec() {
        if p.file.is_none() && overridden.iter().any(|o| is_within(&p.path, o)) {
            p.file = Some(file.to_owned());
            p.line = locate::line_of(text, &p.path);
        }
        out.push_problem(p);
    }
    out
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
            file: None,
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
            out.push_problem(p);
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
        file: None,
    }
}

/// The problems, each with the line of its path where the locator finds one, in file
/// order (those without a line first; the sort is stable within a line).
fn with_lines(text: &str, problems: Problems) -> Vec<Problem> {
    let mut out: Vec<Problem> = problems
        .into_vec()
        .into_iter()
        .map(|mut p| {
            if p.line.is_none() && p.file.is_none() {
                p.line = locate::line_of(text, &p.path);
            }
            p
        })
        .collect();
    // The config file's problems first, then the overrides file's, each in line order.
    out.sort_by_key(|p| (p.file.is_some(), p.line));
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
        parse(text, None, None, &|_| None)
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

    fn with_overrides(
        text: &str,
        overrides: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = Path::new("/etc/mydia/overrides.yaml");
        parse(text, None, Some((file, overrides)), env)
    }

    const MAIN: &str = "plugins:\n  ntfy:\n    enabled: true\n    topic: media\n    priority: 3\n  console: {type: log, enabled: true}\n";

    #[test]
    fn overrides_win_field_by_field_and_say_so() {
        let c = with_overrides(
            MAIN,
            "plugins:\n  ntfy:\n    priority: 5\n    enabled: false\n",
            &|_| None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ntfy = &c.plugins[0];
        assert_eq!(ntfy.written["priority"], 5);
        assert_eq!(
            ntfy.written["topic"], "media",
            "the file's other fields stay"
        );
        assert!(!ntfy.common.enabled);
        assert_eq!(ntfy.overridden, ["priority", "enabled"]);
        assert!(c.plugins[1].overridden.is_empty());
        assert_eq!(
            c.overrides.as_deref(),
            Some(Path::new("/etc/mydia/overrides.yaml"))
        );
        let view = crate::plugins::settings::view(ntfy);
        let source = |name: &str| {
            view["fields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == name)
                .unwrap()["source"]
                .clone()
        };
        assert_eq!(source("priority"), "overrides");
        assert_eq!(source("topic"), "file");
        assert_eq!(source("server_url"), "default");
    }

    #[test]
    fn a_problem_in_an_overridden_value_names_the_overrides_file_and_its_line() {
        let err = with_overrides(
            &format!("{MAIN}server:\n  listen: nowhere\n"),
            "plugins:\n  ntfy:\n    priority: 9\n    prority: 1\n    events: [after_media_added, nope]\n",
            &|_| None,
        )
        .unwrap_err();
        let got: Vec<(&str, Option<usize>, bool)> = err
            .problems()
            .iter()
            .map(|p| (p.path.as_str(), p.line, p.file.is_some()))
            .collect();
        assert_eq!(
            got,
            [
                ("server.listen", Some(8), false),
                ("plugins.ntfy.priority", Some(3), true),
                ("plugins.ntfy.prority", Some(4), true),
                ("plugins.ntfy.events[1]", Some(5), true),
            ],
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("/etc/mydia/overrides.yaml:3: plugins.ntfy.priority:"),
            "{text}"
        );
        assert!(text.contains("did you mean `priority`?"), "{text}");
    }

    #[test]
    fn overrides_of_a_gone_instance_are_a_warning_and_ignored() {
        let c = with_overrides(MAIN, "plugins:\n  old:\n    priority: 5\n", &|_| None).unwrap();
        assert_eq!(c.plugins.len(), 2);
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        let w = &c.warnings[0];
        assert_eq!((w.path.as_str(), w.line), ("plugins.old", Some(2)));
        assert!(w.file.is_some() && w.message.contains("no longer in the config"));
    }

    #[test]
    fn a_broken_overrides_file_is_a_problem_in_that_file() {
        let err = with_overrides(MAIN, "plugins:\n  ntfy: [\n", &|_| None).unwrap_err();
        let p = &err.problems()[0];
        assert!(
            p.file.is_some() && p.message.starts_with("invalid YAML"),
            "{err}"
        );
        let err = with_overrides(MAIN, "hooks:\n  enabled: false\n", &|_| None).unwrap_err();
        assert!(
            err.to_string()
                .contains("overrides.yaml:1: hooks: is not a plugin setting"),
            "{err}"
        );
    }

    #[test]
    fn overrides_are_not_expanded_and_replace_a_failed_reference() {
        let env = |name: &str| (name == "T").then(|| "boom".to_owned());
        let main = "plugins:\n  ntfy:\n    enabled: true\n    topic: ${TOPIC}\n";
        let c = with_overrides(
            main,
            "plugins:\n  ntfy:\n    topic: media\n    tags: ['${T}']\n",
            &env,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.plugins[0].written["topic"], "media");
        assert_eq!(c.plugins[0].written["tags"], serde_json::json!(["${T}"]));
    }

    #[test]
    fn load_reads_the_overrides_file_beside_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, MAIN).unwrap();
        assert!(
            Config::load(&path).unwrap().overrides.is_none(),
            "none is normal"
        );
        let mut o = super::super::overrides::Overrides::default();
        o.set("ntfy", "priority", Some(4.into()));
        o.write(&dir.path().join("overrides.yaml")).unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.plugins[0].written["priority"], 4);
        assert_eq!(c.overrides, Some(dir.path().join("overrides.yaml")));
    }
}
