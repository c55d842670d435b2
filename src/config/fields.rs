//! Deserialize YAML field by field, so one bad field never hides the next, and turn
//! serde's messages into ones that name the field and say what to write.
//!
//! serde stops at the first error in a struct. When a whole mapping fails to
//! deserialize we try each field alone (`{field: value}`), which attributes every type
//! error and every unknown field to its own path; then we parse what is left for the
//! problems that belong to the mapping as a whole (a missing required field).

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::env::WholeRefs;
use super::{join, key_label, Problems};

/// What the parse stage collects: errors, warnings and the `${VAR}` facts it needs.
#[derive(Debug, Default)]
pub struct Collector {
    /// Errors: the config is rejected if there is any.
    pub problems: Problems,
    /// Warnings: the config loads, and the caller shows these.
    pub warnings: Problems,
    /// Paths whose value was exactly one `${VAR}` (see [`WholeRefs`]).
    pub whole_refs: WholeRefs,
    /// Paths whose value came from the overrides file (`plugins.ntfy.priority`).
    pub overridden: Vec<String>,
}

impl Collector {
    /// Deserialize one value at `path`; `None` (with a problem recorded) when it does not fit.
    pub fn value<T: DeserializeOwned>(&mut self, path: &str, value: Value) -> Option<T> {
        let err = match serde_yaml::from_value::<T>(value.clone()) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        if let Some(retyped) = self.retyped(path, &value) {
            if let Ok(t) = serde_yaml::from_value::<T>(retyped) {
                return Some(t);
            }
        }
        let (field, message) = describe(&err, &[]);
        self.problems
            .push(join(path, field.as_deref().unwrap_or("")), message);
        None
    }

    /// Deserialize the mapping at `path` with `parse`, recording every bad field.
    /// `also_known` lists fields taken out before `parse` (for "unknown field" help).
    ///
    /// When some fields are bad, the answer is built from the good ones (defaults stand
    /// in for the bad), so validation can go on and find the problems behind them; the
    /// recorded problems already reject the config. `None` only when even that fails.
    pub fn mapping<T>(
        &mut self,
        path: &str,
        mut map: Mapping,
        also_known: &[&str],
        parse: impl Fn(Value) -> Result<T, serde_yaml::Error>,
    ) -> Option<T> {
        if let Ok(t) = parse(Value::Mapping(map.clone())) {
            return Some(t);
        }
        let mut bad = Vec::new();
        for (k, v) in map.iter_mut() {
            let field_path = join(path, &key_label(k));
            if !matches!(k, Value::String(_)) {
                self.problems.push(field_path, "field names must be text");
                bad.push(k.clone());
                continue;
            }
            let alone =
                |v: &Value| parse(Value::Mapping(Mapping::from_iter([(k.clone(), v.clone())])));
            let err = match alone(v) {
                Ok(_) => continue,
                Err(e) if is_missing_field(&e) => continue,
                Err(e) => e,
            };
            if let Some(retyped) = self.retyped(&field_path, v) {
                if alone(&retyped).map_or_else(|e| is_missing_field(&e), |_| true) {
                    *v = retyped;
                    continue;
                }
            }
            let (field, message) = describe(&err, also_known);
            // An unknown-field error names the field itself; others are about this value.
            let at = match field {
                Some(f) if is_unknown_field(&err) => join(path, &f),
                _ => field_path,
            };
            self.problems.push(at, message);
            bad.push(k.clone());
        }
        for k in &bad {
            map.shift_remove(k);
        }
        match parse(Value::Mapping(map)) {
            Ok(t) => Some(t),
            Err(e) => {
                let (field, message) = describe(&e, also_known);
                self.problems
                    .push(join(path, field.as_deref().unwrap_or("")), message);
                None
            }
        }
    }

    /// The value a `${VAR}`-only string would have had if written in place: a number or
    /// a boolean. Env values are always text; this lets `timeout_ms: ${T}` work.
    fn retyped(&self, path: &str, value: &Value) -> Option<Value> {
        let Value::String(s) = value else { return None };
        if !self.whole_refs.contains(path) {
            return None;
        }
        match serde_yaml::from_str::<Value>(s).ok()? {
            v @ (Value::Bool(_) | Value::Number(_)) => Some(v),
            _ => None,
        }
    }
}

fn is_missing_field(e: &serde_yaml::Error) -> bool {
    e.to_string().starts_with("missing field `")
}

fn is_unknown_field(e: &serde_yaml::Error) -> bool {
    e.to_string().starts_with("unknown field `")
}

/// The field a serde error is about (when it names one) and a message saying what to do.
pub fn describe(err: &serde_yaml::Error, also_known: &[&str]) -> (Option<String>, String) {
    let msg = err.to_string();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default().to_owned();
        let mut known = expected_fields(rest);
        known.extend(also_known.iter().map(|s| (*s).to_owned()));
        let hint = closest(&field, known.iter().map(String::as_str))
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        let list = if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        };
        return (
            Some(field.clone()),
            format!("unknown field `{field}`{hint}; known fields: {list}"),
        );
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default().to_owned();
        return (Some(field), "is required; add it".to_owned());
    }
    (None, humanise(&msg))
}

/// The field names after serde's "expected one of `a`, `b`" (or "expected `a`").
fn expected_fields(rest: &str) -> Vec<String> {
    let Some((_, list)) = rest.split_once("expected ") else {
        return Vec::new();
    };
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Rust type names in serde's messages, in words a config writer knows.
fn humanise(msg: &str) -> String {
    let mut out = msg.to_owned();
    for (rust, plain) in [
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
    ] {
        if let Some(head) = out.strip_suffix(rust) {
            out = format!("{head}{plain}");
        }
    }
    out
}

pub use crate::suggest::closest;

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: String,
        #[serde(default)]
        count: u32,
        #[serde(default)]
        on: bool,
    }

    fn map(yaml: &str) -> Mapping {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn run(c: &mut Collector, yaml: &str) -> Option<Sample> {
        c.mapping("s", map(yaml), &["extra"], serde_yaml::from_value::<Sample>)
    }

    fn paths(c: &Collector) -> Vec<(&str, &str)> {
        c.problems
            .items()
            .iter()
            .map(|p| (p.path.as_str(), p.message.as_str()))
            .collect()
    }

    #[test]
    fn a_good_mapping_parses() {
        let mut c = Collector::default();
        let s = run(&mut c, "name: x\ncount: 2").unwrap();
        assert_eq!(
            s,
            Sample {
                name: "x".into(),
                count: 2,
                on: false
            }
        );
        assert!(c.problems.is_empty());
    }

    #[test]
    fn every_bad_field_is_reported_at_its_own_path() {
        let mut c = Collector::default();
        // The good field survives, so validation can go on behind the bad ones.
        let partial = run(&mut c, "name: x\ncuont: 2\ncount: -1\non: maybe\n");
        assert_eq!(
            partial,
            Some(Sample {
                name: "x".into(),
                count: 0,
                on: false
            })
        );
        let got = paths(&c);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].0, "s.cuont");
        assert!(
            got[0]
                .1
                .contains("unknown field `cuont` (did you mean `count`?)"),
            "{}",
            got[0].1
        );
        assert!(
            got[0].1.contains("known fields: name, count, on, extra"),
            "{}",
            got[0].1
        );
        assert_eq!(got[1].0, "s.count");
        assert!(
            got[1].1.contains("expected a whole number, 0 or more"),
            "{}",
            got[1].1
        );
        assert_eq!(got[2].0, "s.on");
        assert!(got[2].1.contains("expected a boolean"), "{}", got[2].1);
    }

    #[test]
    fn missing_required_field_is_reported_with_the_others() {
        let mut c = Collector::default();
        assert_eq!(run(&mut c, "count: x"), None);
        let got = paths(&c);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, "s.count");
        assert_eq!(got[1], ("s.name", "is required; add it"));
    }

    #[test]
    fn whole_env_references_may_become_numbers_and_booleans() {
        let mut c = Collector::default();
        c.whole_refs.insert("s.count".into());
        c.whole_refs.insert("s.on".into());
        let s = run(&mut c, "name: '7'\ncount: '42'\non: 'true'").unwrap();
        assert_eq!(
            s,
            Sample {
                name: "7".into(),
                count: 42,
                on: true
            }
        );
        assert!(c.problems.is_empty());
        // Without the mark, a string stays a string and is an error for a number.
        let mut c = Collector::default();
        assert!(run(&mut c, "name: x\ncount: '42'").is_some());
        assert_eq!(paths(&c)[0].0, "s.count");
        // And a single value works the same way.
        let mut c = Collector::default();
        c.whole_refs.insert("t".into());
        assert_eq!(c.value::<u64>("t", Value::from("5000")), Some(5000));
    }

    #[test]
    fn suggests_only_near_names() {
        assert_eq!(closest("prority", ["topic", "priority"]), Some("priority"));
        assert_eq!(closest("zzz", ["topic", "priority"]), None);
        assert_eq!(closest("topic", ["topic"]), None);
    }
}
