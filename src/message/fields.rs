//! The `fields` part of a template (Discord embed fields, Slack section fields): a list
//! of `{name, value, inline}`, each name and value a template.

use std::collections::BTreeSet;

use serde_yaml::Value as Yaml;

use super::compile::Compiler;
use super::templates::FieldPiece;
use crate::suggest::closest;

impl Compiler<'_, '_> {
    /// `fields: [{name, value, inline}]`.
    pub(super) fn fields(
        &mut self,
        key: &str,
        at: &str,
        value: Yaml,
        roots: &mut BTreeSet<String>,
    ) -> Vec<FieldPiece> {
        const SHAPE: &str = "must be a list of `{name: \"...\", value: \"...\", inline: true}`";
        let Yaml::Sequence(items) = value else {
            self.problem(at, SHAPE);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let item_at = format!("{at}[{i}]");
            let Yaml::Mapping(mut m) = item else {
                self.problem(&item_at, SHAPE);
                continue;
            };
            let name = m.shift_remove("name");
            let value = m.shift_remove("value");
            let inline = match m.shift_remove("inline") {
                None | Some(Yaml::Null) => false,
                Some(Yaml::Bool(b)) => b,
                Some(_) => {
                    self.problem(&format!("{item_at}.inline"), "must be true or false");
                    false
                }
            };
            for (k, _) in m {
                let k = match &k {
                    Yaml::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                let hint = closest(&k, ["name", "value", "inline"])
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                self.problem(
                    &format!("{item_at}.{k}"),
                    format!("unknown field `{k}`{hint}; known fields: name, value, inline"),
                );
            }
            let (Some(name), Some(value)) = (name, value) else {
                self.problem(&item_at, "needs both `name` and `value`");
                continue;
            };
            let base = format!("{key}.fields[{i}]");
            let name = self.piece(
                &format!("{base}.name"),
                &format!("{item_at}.name"),
                name,
                roots,
            );
            let value = self.piece(
                &format!("{base}.value"),
                &format!("{item_at}.value"),
                value,
                roots,
            );
            if let (Some(name), Some(value)) = (name, value) {
                out.push(FieldPiece {
                    name,
                    value,
                    inline,
                });
            }
        }
        out
    }
}
