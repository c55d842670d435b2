//! `templates:` of one plugin instance, from YAML to compiled [`Templates`], every problem
//! reported at its field path (the config turns paths into lines).

use std::collections::BTreeSet;

use minijinja::{Environment, UndefinedBehavior};
use serde_yaml::Value as Yaml;

use super::filters::{self, environment};
use super::scan::{names_used, Kind};
use super::templates::{Compiled, MessageTemplate, Part, Piece, Templates};
use super::{check, describe};
use crate::config::Problems;
use crate::event::EventName;
use crate::suggest::closest;

/// Who the templates are for.
pub struct Target<'a> {
    /// The instance name (`plugin` in the context).
    pub instance: &'a str,
    /// Its type, for messages (`ntfy`).
    pub kind: &'a str,
    /// Parts this type's messages have.
    pub parts: &'a [Part],
    /// Events it receives (a template for another event is never used).
    pub events: &'a [EventName],
}

/// Compile `value` (the `templates:` field at `path`); `None` with problems recorded when
/// anything is wrong. Undefined variables on a sample event are `warnings`.
pub fn compile(
    target: &Target<'_>,
    path: &str,
    value: Yaml,
    problems: &mut Problems,
    warnings: &mut Problems,
) -> Option<Templates> {
    let map = match value {
        Yaml::Null => return None,
        Yaml::Mapping(m) => m,
        _ => {
            problems.push(
                path,
                "must be a mapping of event name (or `default`, `digest`) to parts, \
                 e.g. `after_media_added: {title: \"{{ media_item.title }} added\"}`",
            );
            return None;
        }
    };
    let mut cx = Compiler {
        target,
        env: environment(UndefinedBehavior::Chainable),
        problems,
        sources: Vec::new(),
        ok: true,
    };
    let mut events: Vec<(EventName, MessageTemplate)> = Vec::new();
    let (mut default, mut digest) = (None, None);
    for (k, v) in map {
        let Yaml::String(key) = k else {
            cx.problem(
                path,
                "template keys must be event names, `default` or `digest`",
            );
            continue;
        };
        let at = format!("{path}.{key}");
        match key.as_str() {
            "default" => default = cx.message(&key, &at, v),
            "digest" => digest = cx.message(&key, &at, v),
            _ => match key.parse::<EventName>() {
                Ok(name) if events.iter().any(|(e, _)| *e == name) => cx.problem(
                    &at,
                    format!(
                        "the template for `{name}` is given twice (once by its alias); keep one"
                    ),
                ),
                Ok(name) => {
                    if !target.events.contains(&name) {
                        warnings.push(
                            at.clone(),
                            format!(
                                "instance `{}` does not receive `{name}` (not in its `events`), \
                                 so this template is never used",
                                target.instance
                            ),
                        );
                    }
                    if let Some(t) = cx.message(&key, &at, v) {
                        events.push((name, t));
                    }
                }
                Err(_) => {
                    let names = EventName::ALL
                        .iter()
                        .flat_map(|e| std::iter::once(e.as_str()).chain(e.alias()))
                        .chain(["default", "digest"]);
                    let hint = closest(&key, names)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    cx.problem(
                        &at,
                        format!(
                            "unknown template key `{key}`{hint}; use an event name, `default` \
                             (every other event) or `digest`; events: {}",
                            crate::event::known_names()
                        ),
                    );
                }
            },
        }
    }
    if !cx.ok {
        return None;
    }
    let templates = Templates {
        instance: target.instance.to_owned(),
        compiled: Compiled::build(cx.env, &cx.sources),
        events,
        default,
        digest,
        sources: cx.sources,
    };
    check::against_samples(&templates, path, target.events, warnings);
    Some(templates)
}

/// The state of one instance's compile; [`super::fields`] adds the `fields` part.
pub(super) struct Compiler<'a, 'p> {
    pub(super) target: &'a Target<'a>,
    pub(super) env: Environment<'static>,
    problems: &'p mut Problems,
    sources: Vec<(String, String)>,
    ok: bool,
}

impl Compiler<'_, '_> {
    pub(super) fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(path, message);
        self.ok = false;
    }

    /// One key's parts: `{title, message, ...}`.
    fn message(&mut self, key: &str, at: &str, value: Yaml) -> Option<MessageTemplate> {
        let Yaml::Mapping(map) = value else {
            let parts = self.part_names();
            self.problem(
                at,
                format!("must be a mapping of message parts ({parts}), e.g. `{{title: \"...\", message: \"...\"}}`"),
            );
            return None;
        };
        let mut t = MessageTemplate {
            key: key.to_owned(),
            pieces: Vec::new(),
            fields: Vec::new(),
            roots: Vec::new(),
        };
        let mut roots = BTreeSet::new();
        for (k, v) in map {
            let name = match &k {
                Yaml::String(s) => s.clone(),
                _ => {
                    self.problem(at, "part names must be text, e.g. `title`");
                    continue;
                }
            };
            let field_at = format!("{at}.{name}");
            let Some(part) = Part::parse(&name).filter(|p| self.target.parts.contains(p)) else {
                self.unknown_part(&name, &field_at);
                continue;
            };
            let piece_name = |suffix: &str| format!("{key}.{name}{suffix}");
            match (part, v) {
                (Part::Tags, Yaml::Sequence(items)) => {
                    for (i, item) in items.into_iter().enumerate() {
                        let n = piece_name(&format!("[{i}]"));
                        if let Some(p) =
                            self.piece(&n, &format!("{field_at}[{i}]"), item, &mut roots)
                        {
                            t.pieces.push((part, p));
                        }
                    }
                }
                (Part::Fields, v) => t.fields = self.fields(key, &field_at, v, &mut roots),
                (part, v) => {
                    if let Some(p) = self.piece(&piece_name(""), &field_at, v, &mut roots) {
                        t.pieces.push((part, p));
                    }
                }
            }
        }
        t.roots = roots.into_iter().collect();
        Some(t)
    }

    /// Compile one template string as `name`; its problems go to `at`.
    pub(super) fn piece(
        &mut self,
        name: &str,
        at: &str,
        value: Yaml,
        roots: &mut BTreeSet<String>,
    ) -> Option<Piece> {
        let source = match value {
            Yaml::String(s) => s,
            Yaml::Number(n) => n.to_string(),
            Yaml::Bool(b) => b.to_string(),
            _ => {
                self.problem(
                    at,
                    "must be a template string, e.g. \"{{ media_item.title }}\"",
                );
                return None;
            }
        };
        if let Err(err) = self.env.add_template_owned(name.to_owned(), source.clone()) {
            self.problem(at, format!("template does not compile: {}", describe(&err)));
            return None;
        }
        for (kind, used, line) in names_used(&source) {
            let (exists, noun): (fn(&Environment<'_>, &str) -> bool, _) = match kind {
                Kind::Filter => (filters::exists, "filter"),
                Kind::Test => (filters::test_exists, "test"),
            };
            if exists(&self.env, &used) {
                continue;
            }
            let known = match kind {
                Kind::Filter => filters::known(&self.env),
                Kind::Test => filters::known_tests(&self.env),
            };
            let hint = closest(&used, known.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            self.problem(
                at,
                format!(
                    "unknown {noun} `{used}`{hint} (line {line} of the template); {noun}s: {}",
                    known.join(", ")
                ),
            );
            self.env.remove_template(name);
            return None;
        }
        let template = self.env.get_template(name).ok()?;
        roots.extend(template.undeclared_variables(false));
        self.sources.push((name.to_owned(), source));
        Some(Piece::new(name.to_owned(), self.sources.len() - 1))
    }

    fn part_names(&self) -> String {
        let names: Vec<&str> = self.target.parts.iter().map(|p| p.as_str()).collect();
        names.join(", ")
    }

    fn unknown_part(&mut self, name: &str, at: &str) {
        let parts = self.part_names();
        let kind = self.target.kind;
        let message = if Part::parse(name).is_some() {
            format!("{kind} messages have no `{name}`; {kind} templates take: {parts}")
        } else {
            let hint = closest(name, self.target.parts.iter().map(|p| p.as_str()))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            format!("unknown field `{name}`{hint}; {kind} templates take: {parts}")
        };
        self.problem(at, message);
    }
}
