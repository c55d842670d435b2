//! Merging `overrides.yaml` into the config's tree before validation, and telling which
//! problems are about an overridden value.

use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::super::fields::Collector;
use super::super::{join, key_label, locate, Problem};
use super::{Overrides, FILE_NAME};

impl Overrides {
    /// Merge into the config's tree (`root`, after its `${VAR}` expansion), field by field.
    /// Returns the paths overridden (`plugins.ntfy.priority`); an instance the config no
    /// longer has is a warning at `file`, and its overrides are ignored.
    pub(in crate::config) fn merge_into(
        &self,
        root: &mut Value,
        file: &Path,
        text: &str,
        cx: &mut Collector,
    ) -> Vec<String> {
        let mut done = Vec::new();
        let Value::Mapping(top) = root else {
            return done;
        };
        let plugins = match top.get_mut("plugins") {
            Some(Value::Mapping(m)) => m,
            _ => {
                for (name, _) in &self.plugins {
                    gone(cx, file, text, &key_label(name));
                }
                return done;
            }
        };
        for (name, fields) in &self.plugins {
            let label = key_label(name);
            let Some(instance) = plugins.get_mut(name) else {
                gone(cx, file, text, &label);
                continue;
            };
            if instance.is_null() {
                *instance = Value::Mapping(Mapping::new());
            }
            let (Value::Mapping(target), Value::Mapping(fields)) = (instance, fields) else {
                continue; // the config's own problem at this instance says why
            };
            for (field, value) in fields {
                target.insert(field.clone(), value.clone());
                done.push(join(&join("plugins", &label), &key_label(field)));
            }
        }
        done
    }
}

fn gone(cx: &mut Collector, file: &Path, text: &str, instance: &str) {
    let path = join("plugins", instance);
    cx.warnings.push_problem(Problem {
        line: locate::line_of(text, &path),
        path,
        message: format!(
            "instance `{instance}` is no longer in the config, so these overrides are \
             ignored; remove them from {FILE_NAME}"
        ),
        file: Some(file.to_owned()),
    });
}

/// Whether a problem at `path` is about the overridden value at `overridden` (the value
/// itself, or something inside it such as `events[1]`).
pub(in crate::config) fn is_within(path: &str, overridden: &str) -> bool {
    path.strip_prefix(overridden)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}
