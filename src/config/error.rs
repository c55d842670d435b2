//! Config problems: each with its field path and, where known, its line; all reported at once.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with the config.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Dotted field path, e.g. `plugins.ntfy.priority` (empty for the whole file).
    pub path: String,
    /// 1-based line in the file, where known.
    pub line: Option<usize>,
    /// What is wrong and what to do about it.
    pub message: String,
    /// The file the line is in, when it is not the config file itself (a value from
    /// `overrides.yaml`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

/// Collects problems during validation, so every one is reported in one go.
#[derive(Debug, Default)]
pub struct Problems {
    items: Vec<Problem>,
}

impl Problems {
    /// Record a problem at `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.items.push(Problem {
            path: path.into(),
            line: None,
            message: message.into(),
            file: None,
        });
    }

    /// Record a problem whose line is already known (e.g. from the YAML parser).
    pub fn push_at(
        &mut self,
        path: impl Into<String>,
        line: Option<usize>,
        message: impl Into<String>,
    ) {
        self.items.push(Problem {
            path: path.into(),
            line,
            message: message.into(),
            file: None,
        });
    }

    /// Record a problem as it is (its line and file kept).
    pub fn push_problem(&mut self, problem: Problem) {
        self.items.push(problem);
    }

    /// How many problems so far.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// In the problems recorded since the first `from`, whose field (the name after
    /// `prefix`, up to the next `.` or `[`) `secret` calls a secret, every value the
    /// message quotes in backticks is replaced: serde names a wrong value
    /// (``invalid type: integer `5` ``), and a secret is never shown, not even a wrong one.
    pub fn redact_quoted(&mut self, from: usize, prefix: &str, secret: impl Fn(&str) -> bool) {
        for p in self.items.iter_mut().skip(from) {
            let Some(rest) = p.path.strip_prefix(prefix) else {
                continue;
            };
            if secret(rest.split(['.', '[']).next().unwrap_or(rest)) {
                p.message = without_quoted(&p.message);
            }
        }
    }

    /// No problems so far.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The problems recorded so far.
    pub fn items(&self) -> &[Problem] {
        &self.items
    }

    /// Take the problems out.
    pub fn into_vec(self) -> Vec<Problem> {
        self.items
    }
}

/// `message` with every backtick-quoted part replaced by "(the value given)".
fn without_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('`');
    out.push_str(parts.next().unwrap_or(""));
    while let Some(_quoted) = parts.next() {
        out.push_str("(the value given)");
        // An unpaired backtick: what follows is the value's rest, so it goes too.
        match parts.next() {
            Some(after) => out.push_str(after),
            None => break,
        }
    }
    out
}

/// The config could not be loaded. Display lists every problem, one per line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}; pass --config PATH to choose another", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but is not valid.
    #[error("{}", render(file.as_ref(), problems))]
    Invalid {
        /// The file, when there is one.
        file: Option<PathBuf>,
        /// Every problem found.
        problems: Vec<Problem>,
        /// The `hooks:` section as far as it could be read (defaults where it is wrong),
        /// so `check` can still compile the hooks and report both in one run; `None` when
        /// the file is not YAML or not a mapping.
        hooks: Option<Box<super::HooksConfig>>,
    },
}

impl ConfigError {
    /// The problems, when the config was read but is invalid.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            ConfigError::Read { .. } => &[],
        }
    }
}

fn render(file: Option<&PathBuf>, problems: &[Problem]) -> String {
    let name = file
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "config".to_owned());
    let mut out = format!(
        "{name} has {} problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string_in(&name));
    }
    out
}

impl Problem {
    fn to_string_in(&self, file: &str) -> String {
        let own = self.file.as_ref().map(|f| f.display().to_string());
        let file = own.as_deref().unwrap_or(file);
        let loc = match (self.line, &own) {
            (Some(l), _) => format!("{file}:{l}: "),
            (None, Some(_)) => format!("{file}: "),
            (None, None) => String::new(),
        };
        if self.path.is_empty() {
            format!("{loc}{}", self.message)
        } else {
            format!("{loc}{}: {}", self.path, self.message)
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_in("config"))
    }
}
