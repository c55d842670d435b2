//! Live reload of the hooks: read and compile the scripts again, swap the set whole, or refuse.
//!
//! A reload applies only what `mydia-plugins check` passes: a script that does not
//! compile (or an unknown event folder, a `.lua` file outside an event folder, an
//! unreadable file, a `hooks.directory` set in the config that does not exist) refuses
//! the whole reload, and the running set keeps running. Each problem is named with its
//! file and, for Lua, the line, so an operator editing a hook sees why, and never loses a
//! hook silently to a typo. (At start the service is lenient instead: it runs what
//! compiles, so a broken script cannot keep it from starting.)
//!
//! The new set starts before it is stored; from the store on, every new event runs on it.
//! Events already taken by the old set finish there (their answers are kept), and the old
//! workers stop when the last of them is answered. A hook whose file is unchanged (same
//! name, same text) keeps its counters and quarantine; a changed or new one starts fresh;
//! a removed one is gone from the stats.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, PoisonError};

use crate::config::HooksConfig;

use super::check::load_errors;
use super::discover::{discover, HookFile};
use super::error::HookProblem;
use super::handle::Hooks;
use super::set::HookSet;
use super::watch::Signal;

/// What a reload changed. Hook names are `<event_dir>/<file>`, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HooksReloaded {
    /// Scripts that are new.
    pub added: Vec<String>,
    /// Scripts whose text changed (their counters start over).
    pub changed: Vec<String>,
    /// Scripts that are gone (or all of them, when hooks were turned off).
    pub removed: Vec<String>,
    /// Scripts as they were (their counters and quarantine are kept).
    pub unchanged: Vec<String>,
    /// The `hooks:` settings differ from the running ones (limits, workers, ...).
    pub settings_changed: bool,
    /// Files in the directory that are never run (`notes.txt`, `hook.luau`): worth a warning.
    pub notices: Vec<HookProblem>,
}

/// Why a reload was not applied; the running hooks go on as they were.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HooksReloadError {
    /// What `check` would report: each script that does not compile (file, line, Lua
    /// message) and each folder or file that cannot be used.
    #[error("hooks not reloaded, the running ones stay: {}", list(problems))]
    Refused {
        /// Every problem found, by path.
        problems: Vec<HookProblem>,
    },
    /// New workers need a running actix `System` on the calling thread.
    #[error("hooks not reloaded: no actix system runs on this thread")]
    NoSystem,
}

impl HooksReloaded {
    /// Nothing changed: no script and no setting (the running set was kept as it was).
    pub fn is_unchanged(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.removed.is_empty()
            && !self.settings_changed
    }
}

impl fmt::Display for HooksReloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |v: &[String]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        write!(
            f,
            "added: {}; changed: {}; removed: {}; unchanged: {}",
            names(&self.added),
            names(&self.changed),
            names(&self.removed),
            self.unchanged.len()
        )?;
        if self.settings_changed {
            write!(f, "; settings changed")?;
        }
        Ok(())
    }
}

impl Hooks {
    /// Discover and compile the scripts under `config.directory` again, with `config`'s
    /// settings, and swap them in whole; or refuse, leaving the running set as it is.
    /// `config.enabled` false turns hooks off (every script `removed`); true turns them
    /// on from off. Blocks for the discovery and one compile of each script (milliseconds
    /// for ordinary hooks). Needs a running actix `System` (new workers get arbiters).
    pub fn reload(&self, config: &HooksConfig) -> Result<HooksReloaded, HooksReloadError> {
        let cell = &self.cell;
        let _one = cell
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if actix::System::try_current().is_none() {
            return Err(HooksReloadError::NoSystem);
        }
        let (files, notices) = if config.enabled {
            scripts(config)?
        } else {
            (Vec::new(), Vec::new())
        };
        let before = cell.current.load_full();
        let old_files = before.as_ref().map_or(&[][..], |set| &set.shared.files[..]);
        let mut changes = diff(old_files, &files);
        changes.notices = notices;
        let mut running = cell.config.lock().unwrap_or_else(PoisonError::into_inner);
        changes.settings_changed = *running != *config;
        if changes.is_unchanged() {
            return Ok(changes);
        }
        let next = (!files.is_empty()).then(|| {
            let none = vec![None; files.len()];
            Arc::new(HookSet::start(config, files, none, before.as_deref()))
        });
        cell.current.store(next);
        *running = config.clone();
        drop(running);
        // `before` is dropped here; its workers stop once its last event has its answer.
        self.settings_changed();
        Ok(changes)
    }

    /// Tell the watchers the settings changed (they may watch another directory now).
    fn settings_changed(&self) {
        let mut watchers = self
            .cell
            .watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        watchers.retain(|w| w.send(Signal::Settings).is_ok());
    }
}

/// Every script, each compiled once; or every problem `check` would report.
fn scripts(config: &HooksConfig) -> Result<(Vec<HookFile>, Vec<HookProblem>), HooksReloadError> {
    let found = discover(&config.directory, config.directory_explicit);
    let mut problems = found.problems;
    problems.extend(found.missing);
    let errors = load_errors(config, &found.files);
    for (file, err) in found.files.iter().zip(errors) {
        if let Some(message) = err {
            problems.push(HookProblem {
                path: file.path.clone(),
                message,
            });
        }
    }
    if problems.is_empty() {
        Ok((found.files, found.notices))
    } else {
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        Err(HooksReloadError::Refused { problems })
    }
}

/// Added, changed, removed and unchanged scripts between two sets, by name and text.
fn diff(before: &[HookFile], after: &[HookFile]) -> HooksReloaded {
    let old: BTreeMap<&str, &str> = before
        .iter()
        .map(|f| (f.name.as_str(), f.source.as_str()))
        .collect();
    let new: BTreeMap<&str, &str> = after
        .iter()
        .map(|f| (f.name.as_str(), f.source.as_str()))
        .collect();
    let mut out = HooksReloaded::default();
    for (name, source) in &new {
        let list = match old.get(name) {
            None => &mut out.added,
            Some(was) if was != source => &mut out.changed,
            Some(_) => &mut out.unchanged,
        };
        list.push((*name).to_owned());
    }
    out.removed = old
        .keys()
        .filter(|name| !new.contains_key(*name))
        .map(|name| (*name).to_owned())
        .collect();
    out
}

fn list(problems: &[HookProblem]) -> String {
    let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
    all.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;

    fn file(name: &str, source: &str) -> HookFile {
        HookFile {
            event: EventName::AfterMediaAdded,
            name: name.into(),
            file: name.rsplit('/').next().unwrap().into(),
            path: name.into(),
            priority: 1,
            source: source.into(),
        }
    }

    #[test]
    fn diff_sorts_scripts_by_name_and_text() {
        let before = [
            file("a/1.lua", "x"),
            file("a/2.lua", "y"),
            file("a/3.lua", "z"),
        ];
        let after = [
            file("a/2.lua", "y"),
            file("a/3.lua", "z2"),
            file("a/0.lua", "n"),
        ];
        let d = diff(&before, &after);
        assert_eq!(d.added, ["a/0.lua"]);
        assert_eq!(d.changed, ["a/3.lua"]);
        assert_eq!(d.removed, ["a/1.lua"]);
        assert_eq!(d.unchanged, ["a/2.lua"]);
        assert!(!d.is_unchanged());
        assert_eq!(
            d.to_string(),
            "added: a/0.lua; changed: a/3.lua; removed: a/1.lua; unchanged: 1"
        );
        assert!(diff(&before, &before).is_unchanged());
    }

    #[test]
    fn refusal_lists_each_problem() {
        let err = HooksReloadError::Refused {
            problems: vec![
                HookProblem {
                    path: "h/a.lua".into(),
                    message: "does not compile: a.lua:2: boom".into(),
                },
                HookProblem {
                    path: "h/b".into(),
                    message: "folder does not name an event".into(),
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            "hooks not reloaded, the running ones stay: h/a.lua: does not compile: a.lua:2: boom; h/b: folder does not name an event"
        );
    }
}
