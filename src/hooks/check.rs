//! `check` for the CLI: discover and compile every script as `serve` would, and say
//! what will not run; and the same check `serve` makes once at start.

use std::path::PathBuf;

use crate::config::HooksConfig;
use crate::event::EventName;

use super::discover::{discover, Discovery, HookFile};
use super::error::HookProblem;
use super::sandbox::Sandbox;

/// A hook that `check` compiled successfully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSummary {
    /// The event it runs on.
    pub event: EventName,
    /// `<event_dir>/<file>`.
    pub hook: String,
    /// Where it lives.
    pub path: PathBuf,
    /// Lower runs first.
    pub priority: u32,
}

/// Everything `check` found: the hooks that compiled, what will not run, and files that
/// are not hooks at all.
#[derive(Debug, Default)]
pub struct HookCheck {
    /// Compiled, in run order.
    pub hooks: Vec<HookSummary>,
    /// Hooks that will not run (a missing `hooks.directory` among them); `check` fails on these.
    pub problems: Vec<HookProblem>,
    /// Files in the hooks directory that are never run; worth a warning, not a failure.
    pub notices: Vec<HookProblem>,
}

/// Discover and compile every script, as `serve` would, and report everything at once:
/// the hooks that compiled, the problems (file path and Lua error message; a missing
/// `hooks.directory` that was set explicitly) and the files that are never run. With
/// hooks disabled there is nothing to check.
pub fn check_all(config: &HooksConfig) -> HookCheck {
    let mut out = HookCheck::default();
    if !config.enabled {
        return out;
    }
    let found = discover(&config.directory, config.directory_explicit);
    out.problems = found.problems;
    out.problems.extend(found.missing);
    out.notices = found.notices;
    if !found.files.is_empty() {
        match Sandbox::new(config) {
            Ok(sandbox) => {
                for file in &found.files {
                    match sandbox.compile(file) {
                        Ok(_) => out.hooks.push(HookSummary {
                            event: file.event,
                            hook: file.name.clone(),
                            path: file.path.clone(),
                            priority: file.priority,
                        }),
                        Err(err) => out.problems.push(HookProblem {
                            path: file.path.clone(),
                            message: err.to_string(),
                        }),
                    }
                }
            }
            Err(err) => out.problems.push(HookProblem {
                path: config.directory.clone(),
                message: err.to_string(),
            }),
        }
    }
    out.problems.sort_by(|a, b| a.path.cmp(&b.path));
    out.notices.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// [`check_all`] as a result: the compiled hooks, or every problem (notices aside).
pub fn check(config: &HooksConfig) -> Result<Vec<HookSummary>, Vec<HookProblem>> {
    let all = check_all(config);
    if all.problems.is_empty() {
        Ok(all.hooks)
    } else {
        Err(all.problems)
    }
}

/// Why each file does not compile (`None`: it does), in one VM made for the purpose: the
/// workers then load only what loads, and a broken script is reported once, not per worker.
pub(super) fn load_errors(config: &HooksConfig, files: &[HookFile]) -> Vec<Option<String>> {
    match Sandbox::new(config) {
        Ok(sandbox) => files
            .iter()
            .map(|file| sandbox.compile(file).err().map(|e| e.to_string()))
            .collect(),
        Err(err) => vec![Some(err.to_string()); files.len()],
    }
}

pub(super) fn log_discovery(found: &Discovery) {
    if let Some(missing) = &found.missing {
        tracing::warn!(target: "hooks", path = %missing.path.display(), "{}; running without hooks", missing.message);
    }
    for problem in &found.problems {
        tracing::error!(target: "hooks", path = %problem.path.display(), error = %problem.message, "hook not loaded; skipping it");
    }
    for notice in &found.notices {
        tracing::warn!(target: "hooks", path = %notice.path.display(), "{}", notice.message);
    }
}
