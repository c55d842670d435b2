//! The watching thread: which path the OS watches (the hooks directory, or the nearest
//! folder above it while it does not exist), which file events count, and the debounced
//! reload.

use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{PoisonError, Weak};
use std::time::Instant;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::super::handle::{Cell, Hooks};
use super::{Signal, QUIET, RETRY};

/// The watching thread's state.
pub(super) struct Watching {
    /// Weak: an embedder that drops every `Hooks` but keeps the guard keeps no workers alive.
    pub(super) cell: Weak<Cell>,
    pub(super) tx: Sender<Signal>,
    pub(super) watcher: Option<RecommendedWatcher>,
    /// The path given to the OS, and whether it is the hooks directory itself (watched
    /// recursively) or a folder above it waiting for it to appear.
    pub(super) registered: Option<(PathBuf, bool)>,
    /// The last registration failed: try again every [`RETRY`].
    pub(super) failed: bool,
}

impl Watching {
    pub(super) fn run(&mut self, rx: &Receiver<Signal>) {
        let mut due: Option<Instant> = None;
        loop {
            let wait = match (due, self.failed) {
                (Some(at), _) => Some(at.saturating_duration_since(Instant::now())),
                (None, true) => Some(RETRY),
                (None, false) => None,
            };
            let signal = match wait {
                Some(wait) => rx.recv_timeout(wait),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match signal {
                Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Signal::Settings) => {
                    // The reload that sent this has read the directory already.
                    self.retarget_logged();
                }
                Ok(Signal::Fs(Ok(event))) => {
                    let appeared = self.retarget_logged();
                    if appeared || self.relevant(&event) {
                        due = Some(Instant::now() + QUIET);
                    }
                }
                Ok(Signal::Fs(Err(err))) => {
                    // Events may have been lost (a full queue): reading it all again is safe.
                    tracing::warn!(target: "hooks", error = %err, "hooks directory watch reported an error; reloading to be sure");
                    due = Some(Instant::now() + QUIET);
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.failed && self.retarget_logged() {
                        due = Some(Instant::now() + QUIET);
                    }
                    if due.is_some_and(|at| at <= Instant::now()) {
                        due = None;
                        if !self.reload() {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// The directory to watch now: `None` while hooks or watching are off.
    fn wanted(&self) -> Option<PathBuf> {
        let cell = self.cell.upgrade()?;
        let config = cell.config.lock().unwrap_or_else(PoisonError::into_inner);
        (config.enabled && config.watch)
            .then(|| std::path::absolute(&config.directory).unwrap_or(config.directory.clone()))
    }

    /// [`Watching::retarget`], a failure logged (and retried later).
    fn retarget_logged(&mut self) -> bool {
        match self.retarget() {
            Ok(appeared) => appeared,
            Err((path, err)) => {
                tracing::warn!(target: "hooks", path = %path.display(), error = %err, "cannot watch the hooks directory; trying again in {} s", RETRY.as_secs());
                false
            }
        }
    }

    /// Watch what [`Watching::wanted`] says, if that changed; `Ok(true)` when the hooks
    /// directory itself is watched now and was not before (it appeared, or moved).
    /// A folder above it is looked at again once watched: what was created below it
    /// before the watch was in place sent no event (`mkdir -p` outruns us).
    pub(super) fn retarget(&mut self) -> Result<bool, (PathBuf, notify::Error)> {
        loop {
            match self.retarget_once()? {
                None => return Ok(false),
                Some(true) => return Ok(true),
                Some(false) => continue,
            }
        }
    }

    /// One step of [`Watching::retarget`]: `None` if nothing changed, else whether the
    /// directory itself is watched now.
    fn retarget_once(&mut self) -> Result<Option<bool>, (PathBuf, notify::Error)> {
        let target = self.wanted().map(|dir| match nearest_existing(&dir) {
            Some(found) if found == dir => (dir, true),
            Some(above) => (above, false),
            None => (dir, false),
        });
        if target == self.registered && !self.failed {
            return Ok(None);
        }
        if let (Some(watcher), Some((old, _))) = (self.watcher.as_mut(), self.registered.take()) {
            // Fails when the OS dropped the watch already (the folder was removed).
            let _ = watcher.unwatch(&old);
        }
        self.failed = false;
        let Some((path, is_dir)) = target else {
            self.watcher = None;
            return Ok(Some(false));
        };
        let watcher = match self.watcher.as_mut() {
            Some(watcher) => watcher,
            None => {
                let tx = self.tx.clone();
                let handler = move |event| {
                    let _ = tx.send(Signal::Fs(event));
                };
                match notify::recommended_watcher(handler) {
                    Ok(watcher) => self.watcher.insert(watcher),
                    Err(err) => {
                        self.failed = true;
                        return Err((path, err));
                    }
                }
            }
        };
        let mode = if is_dir {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        if let Err(err) = watcher.watch(&path, mode) {
            self.failed = true;
            return Err((path, err));
        }
        self.registered = Some((path, is_dir));
        Ok(Some(is_dir))
    }

    /// Whether `event` may change what the hooks directory holds.
    fn relevant(&self, event: &notify::Event) -> bool {
        self.wanted().is_some_and(|dir| changes(&dir, event))
    }

    /// Reload with the latest settings and log the outcome; false once the hooks are gone.
    fn reload(&self) -> bool {
        let Some(cell) = self.cell.upgrade() else {
            return false;
        };
        let hooks = Hooks { cell };
        let config = hooks.config();
        if !(config.enabled && config.watch) {
            return true;
        }
        let directory = config.directory.display();
        match hooks.reload(&config) {
            Ok(done) => {
                for notice in &done.notices {
                    tracing::warn!(target: "hooks", path = %notice.path.display(), "{}", notice.message);
                }
                if done.is_unchanged() {
                    tracing::debug!(target: "hooks", directory = %directory, "hooks directory changed; no script did");
                } else {
                    tracing::info!(target: "supervision", directory = %directory, added = ?done.added, changed = ?done.changed, removed = ?done.removed, unchanged = done.unchanged.len(), "hooks reloaded: the hooks directory changed");
                }
            }
            Err(err) => {
                tracing::warn!(target: "supervision", directory = %directory, error = %err, "hooks directory changed, but the hooks were not reloaded; the running ones stay until it is fixed");
            }
        }
        true
    }
}

/// Whether `event` may change what `dir` holds. Opening and reading files (the reload's
/// own reads among them) and hidden files (never run) do not.
fn changes(dir: &Path, event: &notify::Event) -> bool {
    if let EventKind::Access(kind) = event.kind {
        if kind != AccessKind::Close(AccessMode::Write) {
            return false;
        }
    }
    event.paths.iter().any(|p| {
        p.strip_prefix(dir).is_ok_and(|rel| {
            !rel.components().any(|c| match c {
                Component::Normal(name) => name.to_string_lossy().starts_with('.'),
                _ => false,
            })
        })
    })
}

/// `dir` or the nearest folder above it that exists.
fn nearest_existing(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().find(|p| p.is_dir()).map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_writes_under_the_directory_not_reads_or_hidden_files() {
        use notify::event::{CreateKind, ModifyKind, RenameMode};
        let dir = Path::new("/srv/hooks");
        let at = |kind, path: &str| notify::Event::new(kind).add_path(PathBuf::from(path));
        let script = "/srv/hooks/after_media_added/10_a.lua";
        assert!(changes(
            dir,
            &at(EventKind::Create(CreateKind::File), script)
        ));
        let renamed = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert!(changes(dir, &at(renamed, script)));
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert!(changes(dir, &at(closed, script)));
        assert!(changes(
            dir,
            &at(
                EventKind::Remove(notify::event::RemoveKind::Folder),
                "/srv/hooks"
            )
        ));
        let opened = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(!changes(dir, &at(opened, script)), "the reload's own reads");
        let swap = "/srv/hooks/after_media_added/.10_a.lua.swp";
        assert!(!changes(
            dir,
            &at(EventKind::Create(CreateKind::File), swap)
        ));
        let beside = "/srv/config.yaml";
        assert!(!changes(
            dir,
            &at(EventKind::Create(CreateKind::File), beside)
        ));
    }

    #[test]
    fn a_missing_directory_is_waited_for_from_the_nearest_folder_above() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/hooks");
        assert_eq!(nearest_existing(&dir).as_deref(), Some(tmp.path()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(nearest_existing(&dir), Some(dir));
    }
}
