//! Live reload: re-read the config file, refuse it with every problem when it is not
//! valid (the running one goes on), else swap the hooks (refused too when a script does
//! not compile: nothing is applied then) and apply the plugins as a difference (see
//! `supervisor/reconfigure.rs` for what an instance keeps). One `supervision` event per
//! reload says what changed. Sections that cannot change while running (`server`,
//! `storage`, `supervision`) are named as applying at the next start.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use super::Handle;
use crate::config::{Config, ConfigError, Problem};
use crate::hooks::{HooksReloadError, HooksReloaded};
use crate::supervisor::{InstanceSpec, Reconfigure};

/// What a reload changed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadReport {
    /// Instances started.
    pub added: Vec<String>,
    /// Instances rebuilt with their new config (what waits for them kept).
    pub changed: Vec<String>,
    /// Instances gone (what waited for them is dead: "instance removed").
    pub removed: Vec<String>,
    /// Instances kept as they were.
    pub unchanged: Vec<String>,
    /// Instances the new config turned on or off.
    pub toggled: Vec<String>,
    /// What the hooks reload did (scripts added, changed, removed, unchanged).
    pub hooks: HooksReloaded,
    /// Sections that changed but apply only at the next start.
    pub restart_needed: Vec<&'static str>,
    /// The new config's warnings (as `check` shows them).
    pub warnings: Vec<Problem>,
}

impl ReloadReport {
    /// Nothing changed at all.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.removed.is_empty()
            && self.toggled.is_empty()
            && self.restart_needed.is_empty()
            && self.hooks.is_unchanged()
    }
}

/// Why a reload was not applied; the running config goes on unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Started without a config file (embedded, or from text).
    #[error("there is no config file to reload: the service was started from a config given in code; restart it with `serve --config <file>` to reload")]
    NoFile,
    /// The file has problems; each is listed.
    #[error("the config was not reloaded, the running one goes on. {0}")]
    Invalid(ConfigError),
    /// A hook does not compile (or its folder names no event); nothing was applied.
    #[error("the config was not reloaded, the running one goes on: {0}")]
    Hooks(HooksReloadError),
    /// The service is stopping.
    #[error("the service is shutting down")]
    ShuttingDown,
}

impl ReloadError {
    /// Every problem, with its file or field and line where known.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ReloadError::Invalid(e) => e.problems().to_vec(),
            ReloadError::Hooks(HooksReloadError::Refused { problems }) => problems
                .iter()
                .map(|p| Problem {
                    path: p.path.display().to_string(),
                    line: None,
                    message: p.message.clone(),
                    file: Some(p.path.clone()),
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl Handle {
    /// Re-read the config file (and what it refers to) and apply what changed. A config
    /// with problems is refused, logged, and answered with them.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let path = self.inner.source.clone().ok_or(ReloadError::NoFile)?;
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .map_err(|_| ReloadError::ShuttingDown)?;
        match loaded {
            Ok(config) => self.apply_config(config).await,
            Err(e) => {
                tracing::warn!(target: "supervision", problems = e.problems().len(), error = %e, "config reload refused; still running the previous config");
                Err(ReloadError::Invalid(e))
            }
        }
    }

    /// Apply `config` (validated already) as a difference from the running one.
    pub async fn apply_config(&self, config: Config) -> Result<ReloadReport, ReloadError> {
        if self.is_closed() {
            return Err(ReloadError::ShuttingDown);
        }
        // One reload at a time: each diffs against what the one before applied.
        let mut running = self.inner.running.lock().await;
        // Hooks first: a script that does not compile refuses the whole reload.
        let hooks = match self.inner.hooks.reload(&config.hooks) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(target: "supervision", error = %e, "config reload refused; still running the previous config");
                return Err(ReloadError::Hooks(e));
            }
        };
        // By name: what the running config wrote for each instance (`enabled` aside).
        let old: HashMap<&str, u64> = running
            .plugins
            .iter()
            .map(|p| (p.name.as_str(), p.fingerprint))
            .collect();
        let changed: HashSet<String> = config
            .plugins
            .iter()
            .filter(|p| {
                old.get(p.name.as_str())
                    .is_some_and(|f| *f != p.fingerprint)
            })
            .map(|p| p.name.clone())
            .collect();
        let kept: HashSet<&str> = config.plugins.iter().map(|p| p.name.as_str()).collect();
        let removed: HashSet<String> = old
            .keys()
            .filter(|name| !kept.contains(*name))
            .map(|name| name.to_string())
            .collect();
        let specs: Vec<InstanceSpec> = config
            .plugins
            .iter()
            .map(InstanceSpec::from_config)
            .collect();
        let done = self
            .inner
            .supervisor
            .send(Reconfigure {
                specs,
                changed,
                removed,
            })
            .await
            .map_err(|_| ReloadError::ShuttingDown)?;
        if let Some(table) = done.table {
            self.inner.subscriptions.replace(table);
        }
        *self
            .inner
            .plugins
            .write()
            .unwrap_or_else(|e| e.into_inner()) = config.plugins.clone().into();
        let mut restart_needed = Vec::new();
        if config.server != running.server {
            restart_needed.push("server");
        }
        if config.storage != running.storage {
            restart_needed.push("storage");
        }
        if config.supervision != running.supervision {
            restart_needed.push("supervision");
        }
        let report = ReloadReport {
            added: done.added,
            changed: done.changed,
            removed: done.removed,
            unchanged: done.unchanged,
            toggled: done.toggled,
            hooks,
            restart_needed,
            warnings: config.warnings.clone(),
        };
        tracing::info!(
            target: "supervision",
            added = ?report.added, changed = ?report.changed, removed = ?report.removed,
            toggled = ?report.toggled, unchanged = report.unchanged.len(), hooks = %report.hooks,
            restart_needed = ?report.restart_needed, warnings = report.warnings.len(),
            "config reloaded{}",
            if report.is_empty() { ": nothing changed" } else { "" }
        );
        for w in &report.warnings {
            tracing::warn!(target: "config", path = %w.path, line = ?w.line, "{}", w.message);
        }
        *running = Arc::new(config);
        Ok(report)
    }
}
