//! The `storage:` section: where accepted events and their deliveries are kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::Problems;

/// Which delivery store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// A SQLite file (the default): nothing accepted is lost across crashes and restarts.
    Sqlite,
    /// In memory: lost on exit (for embedders and tests).
    Memory,
}

/// SQLite's `synchronous` setting for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// Every commit reaches the disk before the caller is answered (the default).
    Full,
    /// May lose the last acknowledged events on power loss, never on a crash.
    Normal,
}

/// `storage:`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// `sqlite` (default) or `memory`.
    pub backend: StorageBackend,
    /// The SQLite file; default `data/mydia-plugins.sqlite3` beside the config file.
    pub path: PathBuf,
    /// `full` (default) or `normal`.
    pub synchronous: Synchronous,
    /// Delivered deliveries (and the event ids that make a repeat a duplicate) are kept
    /// this long (default 7 days).
    pub retention: Duration,
    /// Deliveries waiting at most, over every instance (default 1,000,000); past it new
    /// events are refused (503) before anything is accepted.
    pub max_pending: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: StorageBackend::Sqlite,
            path: PathBuf::from("data/mydia-plugins.sqlite3"),
            synchronous: Synchronous::Full,
            retention: Duration::from_secs(7 * 24 * 3600),
            max_pending: 1_000_000,
        }
    }
}

/// `storage:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    synchronous: Option<String>,
    #[serde(default)]
    retention_days: Option<u64>,
    #[serde(default)]
    max_pending: Option<u64>,
}

impl RawStorage {
    /// Check and convert; a relative `path` resolves against the config file's directory.
    /// Text parsed without a file (embedders, tests) has no directory to keep a database
    /// in: unless `backend` says otherwise, it gets the in-memory store.
    pub fn validate(self, source: Option<&Path>, problems: &mut Problems) -> StorageConfig {
        let mut out = StorageConfig::default();
        match self.backend.as_deref().map(str::trim) {
            None if source.is_none() => out.backend = StorageBackend::Memory,
            None | Some("sqlite") => {}
            Some("memory") => out.backend = StorageBackend::Memory,
            Some(other) => problems.push(
                "storage.backend",
                format!("`{other}` is not a backend; write sqlite (kept on disk, the default) or memory (lost on exit)"),
            ),
        }
        if let Some(p) = self.path {
            if p.trim().is_empty() {
                problems.push(
                    "storage.path",
                    "is empty; write a file, e.g. data/mydia-plugins.sqlite3",
                );
            } else {
                out.path = PathBuf::from(p);
            }
        }
        if out.path.is_relative() {
            if let Some(base) = source.and_then(Path::parent) {
                out.path = base.join(&out.path);
            }
        }
        match self.synchronous.as_deref().map(str::trim) {
            None | Some("full") => {}
            Some("normal") => out.synchronous = Synchronous::Normal,
            Some(other) => problems.push(
                "storage.synchronous",
                format!("`{other}` is not a setting; write full (the default) or normal (may lose the last acknowledged events on power loss, never on a crash)"),
            ),
        }
        match self.retention_days {
            Some(0) => problems.push(
                "storage.retention_days",
                "must be at least 1 (delivered rows and event ids are kept this many days)",
            ),
            Some(d) if d > 36_500 => {
                problems.push("storage.retention_days", format!("{d} is too large"))
            }
            Some(d) => out.retention = Duration::from_secs(d * 24 * 3600),
            None => {}
        }
        match self.max_pending {
            Some(0) => problems.push(
                "storage.max_pending",
                "must be at least 1 (deliveries waiting over every plugin)",
            ),
            Some(n) => out.max_pending = n,
            None => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> (StorageConfig, Vec<String>) {
        let raw: RawStorage = serde_yaml::from_str(yaml).unwrap();
        let mut p = Problems::default();
        let c = raw.validate(Some(Path::new("/etc/mydia/config.yaml")), &mut p);
        (c, p.into_vec().into_iter().map(|p| p.path).collect())
    }

    #[test]
    fn text_without_a_file_keeps_deliveries_in_memory_unless_told() {
        let mut p = Problems::default();
        let raw: RawStorage = serde_yaml::from_str("{}").unwrap();
        assert_eq!(raw.validate(None, &mut p).backend, StorageBackend::Memory);
        let raw: RawStorage = serde_yaml::from_str("backend: sqlite").unwrap();
        assert_eq!(raw.validate(None, &mut p).backend, StorageBackend::Sqlite);
        assert!(p.is_empty());
    }

    #[test]
    fn defaults_sit_beside_the_config_file() {
        let (c, p) = check("{}");
        assert!(p.is_empty());
        assert_eq!(c.backend, StorageBackend::Sqlite);
        assert_eq!(c.synchronous, Synchronous::Full);
        assert_eq!(
            c.path,
            PathBuf::from("/etc/mydia/data/mydia-plugins.sqlite3")
        );
        assert_eq!(c.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(c.max_pending, 1_000_000);
    }

    #[test]
    fn every_field_is_read() {
        let (c, p) = check(
            "backend: memory\npath: /var/lib/x.db\nsynchronous: normal\nretention_days: 2\nmax_pending: 10",
        );
        assert!(p.is_empty());
        assert_eq!(c.backend, StorageBackend::Memory);
        assert_eq!(c.path, PathBuf::from("/var/lib/x.db"));
        assert_eq!(c.synchronous, Synchronous::Normal);
        assert_eq!(c.retention, Duration::from_secs(2 * 86_400));
        assert_eq!(c.max_pending, 10);
    }

    #[test]
    fn wrong_values_are_each_reported() {
        let (_, p) = check(
            "backend: postgres\npath: ' '\nsynchronous: off\nretention_days: 0\nmax_pending: 0",
        );
        assert_eq!(
            p,
            [
                "storage.backend",
                "storage.path",
                "storage.synchronous",
                "storage.retention_days",
                "storage.max_pending"
            ]
        );
    }
}
