//! `overrides.yaml` beside the config file: plugin settings changed from the page or the
//! API (`PATCH /api/v1/plugins/{name}/settings`, Enable/Disable), so `config.yaml` stays
//! the user's own text, comments and all.
//!
//! Shape: `plugins: {<instance>: {<field>: <value>, ...}}` and nothing else. The loader
//! merges it over the config's tree field by field *before* validation, so the merged
//! result passes the very checks a hand-written file does, and a problem in an overridden
//! value names this file and its line. `${VAR}` is not expanded here: the values come from
//! the API as they are meant, and a literal `${` in one stays literal.
//!
//! The service writes it atomically (a temporary file in the same directory, then a
//! rename), readable only by its owner where the platform allows: a secret set from the
//! page is kept here in plain text, as it would be in `config.yaml`.

mod merge;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::{join, key_label, locate, Problem, Problems};
pub(super) use merge::is_within;

/// The file's name, in the config file's directory.
pub const FILE_NAME: &str = "overrides.yaml";

/// The fields every instance has that an override may set (beside the type's own). The
/// others stay in `config.yaml`: `type` names what the instance is, the `allow_*` opt-ins
/// are security decisions, and templates, digests, quiet hours and rate limits are
/// structures better edited as text.
pub const COMMON_FIELDS: &[&str] = &["enabled", "events", "timeout_ms", "max_in_flight"];

/// What the file starts with each time the service writes it.
const HEADER: &str = "\
# Written by mydia-plugins: plugin settings changed from the web page or the API
# (PATCH /api/v1/plugins/{name}/settings, Enable/Disable). Each value here wins over
# the same field in config.yaml; remove a line (or the whole file) to go back to it.
# Values are taken as written (no ${VAR} expansion). Hand edits are kept, comments not.
";

/// Where the overrides of the config file at `config` live.
pub fn path_for(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or_else(|| Path::new(""))
        .join(FILE_NAME)
}

/// The overrides file's text; `None` when there is none (the normal case), a problem
/// naming the file when it cannot be read.
pub fn read(path: &Path) -> Result<Option<String>, Problem> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Problem {
            path: String::new(),
            line: None,
            message: format!(
                "cannot read it: {e}; fix its permissions or remove it (the settings changed \
                 from the page are kept there)"
            ),
            file: Some(path.to_owned()),
        }),
    }
}

/// Why `field` cannot be overridden, or `None` when it may be (the type's own fields are
/// checked by the loader like any other value).
pub fn refusal(field: &str) -> Option<String> {
    if field == "type" {
        return Some("cannot be changed here: an instance's type is set in config.yaml".to_owned());
    }
    let common = super::plugins::COMMON_FIELDS.contains(&field);
    (common && !COMMON_FIELDS.contains(&field)).then(|| {
        format!(
            "cannot be changed here; set it in config.yaml (the fields every instance has \
             that can be changed here: {})",
            COMMON_FIELDS.join(", ")
        )
    })
}

/// The overrides: instance → field → value, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    plugins: Mapping,
}

impl Overrides {
    /// Parse the file's text; every problem comes with its path and line (the caller sets
    /// the file). A `null` value means "no override" and is dropped.
    pub fn parse(text: &str) -> Result<Overrides, Vec<Problem>> {
        let mut problems = Problems::default();
        let root: Value = match serde_yaml::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let message = format!(
                    "invalid YAML: {e}; fix it or remove the file (it holds the settings \
                     changed from the page)"
                );
                return Err(vec![Problem {
                    path: String::new(),
                    line: e.location().map(|l| l.line()),
                    message,
                    file: None,
                }]);
            }
        };
        let mut plugins = Mapping::new();
        let top = match root {
            Value::Null => Mapping::new(),
            Value::Mapping(m) => m,
            _ => {
                problems.push("", SHAPE);
                Mapping::new()
            }
        };
        for (k, v) in top {
            let name = key_label(&k);
            if name != "plugins" {
                problems.push(
                    name.clone(),
                    format!("is not a plugin setting; {SHAPE}; change `{name}` in config.yaml"),
                );
                continue;
            }
            match v {
                Value::Null => {}
                Value::Mapping(m) => instances(m, &mut plugins, &mut problems),
                _ => problems.push("plugins", SHAPE),
            }
        }
        if problems.is_empty() {
            return Ok(Overrides { plugins });
        }
        Err(problems
            .into_vec()
            .into_iter()
            .map(|mut p| {
                p.line = locate::line_of(text, &p.path);
                p
            })
            .collect())
    }

    /// No override at all.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// The overridden value of `field` of `instance`.
    pub fn get(&self, instance: &str, field: &str) -> Option<&Value> {
        self.plugins.get(instance)?.as_mapping()?.get(field)
    }

    /// Override `field` of `instance` with `value`, or remove its override (`None`).
    pub fn set(&mut self, instance: &str, field: &str, value: Option<Value>) {
        let key = Value::from(instance);
        match value {
            Some(v) if !v.is_null() => {
                let entry = self
                    .plugins
                    .entry(key)
                    .or_insert_with(|| Value::Mapping(Mapping::new()));
                if let Value::Mapping(fields) = entry {
                    fields.insert(Value::from(field), v);
                }
            }
            _ => {
                let now_empty = match self.plugins.get_mut(&key) {
                    Some(Value::Mapping(fields)) => {
                        fields.shift_remove(field);
                        fields.is_empty()
                    }
                    _ => false,
                };
                if now_empty {
                    self.plugins.shift_remove(&key);
                }
            }
        }
    }

    /// The file's text: the header, then the overrides as YAML.
    pub fn to_yaml(&self) -> String {
        let mut top = Mapping::new();
        top.insert("plugins".into(), Value::Mapping(self.plugins.clone()));
        let body = serde_yaml::to_string(&top).unwrap_or_default();
        format!("{HEADER}{body}")
    }

    /// Write the file at `path` atomically: the whole old file or the whole new one is
    /// there at any moment, even across a crash.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let tmp = dir.join(format!(".{FILE_NAME}.{}.{stamp}.tmp", std::process::id()));
        let written =
            write_new(&tmp, self.to_yaml().as_bytes()).and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        // The rename is durable once the directory is synced (best effort: not everywhere).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

const SHAPE: &str =
    "overrides.yaml holds only plugin settings: `plugins: {<instance>: {<field>: <value>}}`";

fn instances(map: Mapping, out: &mut Mapping, problems: &mut Problems) {
    for (k, v) in map {
        let name = key_label(&k);
        let path = join("plugins", &name);
        let fields = match v {
            Value::Null => continue,
            Value::Mapping(m) => m,
            _ => {
                problems.push(
                    path,
                    format!("must be a mapping of field to value; {SHAPE}"),
                );
                continue;
            }
        };
        let mut kept = Mapping::new();
        for (f, value) in fields {
            let field = key_label(&f);
            if !matches!(f, Value::String(_)) {
                problems.push(join(&path, &field), "field names must be text");
            } else if let Some(why) = refusal(&field) {
                problems.push(join(&path, &field), why);
            } else if !value.is_null() {
                kept.insert(f, value);
            }
        }
        if !kept.is_empty() {
            out.insert(Value::from(name), Value::Mapping(kept));
        }
    }
}

/// A new file at `path` with `bytes`, synced; on Unix readable by its owner alone, as
/// secrets may be in it.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Overrides {
        Overrides::parse(text).unwrap_or_else(|p| panic!("{p:?}"))
    }

    #[test]
    fn set_and_remove_keep_the_file_tidy() {
        let mut o = Overrides::default();
        o.set("ntfy", "priority", Some(5.into()));
        o.set("ntfy", "enabled", Some(false.into()));
        assert_eq!(o.get("ntfy", "priority"), Some(&Value::from(5)));
        o.set("ntfy", "priority", None);
        o.set("ntfy", "enabled", Some(Value::Null));
        assert!(o.is_empty(), "an instance with nothing left goes: {o:?}");
    }

    #[test]
    fn the_written_text_reads_back_the_same_with_a_header() {
        let mut o = Overrides::default();
        o.set("ntfy", "priority", Some(5.into()));
        o.set("ntfy", "topic", Some("a: b #c".into()));
        o.set(
            "hook",
            "events",
            Some(serde_yaml::from_str("[a, b]").unwrap()),
        );
        let text = o.to_yaml();
        assert!(text.starts_with("# Written by mydia-plugins"), "{text}");
        assert!(text.contains("  ntfy:\n    priority: 5\n"), "{text}");
        assert_eq!(parse(&text), o);
    }

    #[test]
    fn writing_is_atomic_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut o = Overrides::default();
        o.set("ntfy", "priority", Some(4.into()));
        o.write(&path).unwrap();
        o.set("ntfy", "priority", Some(5.into()));
        o.write(&path).unwrap();
        let read = read(&path).unwrap().unwrap();
        assert_eq!(parse(&read), o);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME], "only the file itself");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "owner only: {mode:o}");
        }
    }

    #[test]
    fn a_missing_file_is_none_and_a_directory_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&dir.path().join(FILE_NAME)).unwrap(), None);
        let p = read(dir.path()).unwrap_err();
        assert_eq!(p.file.as_deref(), Some(dir.path()));
    }

    #[test]
    fn anything_but_plugin_fields_is_refused_with_its_line() {
        let text = "server:\n  listen: 0.0.0.0:1\nplugins:\n  ntfy:\n    type: log\n    templates: {}\n    priority: 5\n  other: 3\n";
        let got = Overrides::parse(text).unwrap_err();
        let at: Vec<(&str, Option<usize>)> =
            got.iter().map(|p| (p.path.as_str(), p.line)).collect();
        assert_eq!(
            at,
            [
                ("server", Some(1)),
                ("plugins.ntfy.type", Some(5)),
                ("plugins.ntfy.templates", Some(6)),
                ("plugins.other", Some(8)),
            ],
            "{got:#?}"
        );
        assert!(got[0].message.contains("only plugin settings"), "{got:#?}");
        assert!(got[2].message.contains("set it in config.yaml"), "{got:#?}");
        let bad = Overrides::parse("plugins: [\n").unwrap_err();
        assert!(bad[0].message.starts_with("invalid YAML"), "{bad:#?}");
        assert!(parse("").is_empty() && parse("plugins:\n").is_empty());
    }

    #[test]
    fn within_means_the_value_or_inside_it() {
        assert!(is_within("plugins.a.events", "plugins.a.events"));
        assert!(is_within("plugins.a.events[1]", "plugins.a.events"));
        assert!(!is_within("plugins.a.events_x", "plugins.a.events"));
        assert!(!is_within("plugins.a", "plugins.a.events"));
    }
}
