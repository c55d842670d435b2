//! Watching the hooks directory (`hooks.watch`): a change on disk reloads the hooks, debounced.
//!
//! A thread of its own takes the OS's file events (`notify`'s recommended watcher:
//! inotify on Linux), waits until the directory has been quiet for [`QUIET`], then calls
//! [`Hooks::reload`] with the settings of the latest start or reload, and logs what
//! changed (INFO, target `hooks`) or why the reload was refused (WARN; the running hooks
//! stay). Editors that save through a temporary file and a rename, new event folders and
//! removed scripts are all just "something changed": the reload reads the whole directory
//! again, so no event needs to be understood on its own, and a burst of them is one reload.
//!
//! A directory that does not exist (yet) is not an error: the nearest folder above it that
//! exists is watched instead, and when the directory appears it is watched and its scripts
//! loaded. If the directory is removed, the same happens the other way round.

mod watching;

use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::handle::Hooks;
use watching::Watching;

/// How long the directory must stay quiet before a reload: an editor's save (write a
/// temporary file, rename it over the script) or a `cp -r` of a folder is one reload.
pub const QUIET: Duration = Duration::from_millis(300);

/// How often a watch that could not be set up (an inotify limit, say) is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// Watches the hooks directory while it lives; dropping it stops the watching thread.
pub struct HookWatcher {
    tx: Sender<Signal>,
    thread: Option<JoinHandle<()>>,
}

/// Why the directory cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Reloads start workers, which needs the actix `System` of the caller.
    #[error("cannot watch the hooks directory: no actix system runs on this thread")]
    NoSystem,
    /// The OS refused the watch (for example `fs.inotify.max_user_instances` reached).
    #[error("cannot watch the hooks directory {}: {source}; raise the limit, or set hooks.watch: false and reload by hand", path.display())]
    Notify {
        /// What was to be watched.
        path: PathBuf,
        /// The OS's answer.
        source: notify::Error,
    },
    /// The watching thread could not be started.
    #[error("cannot start the hooks directory watcher: {0}")]
    Thread(std::io::Error),
}

/// What the watching thread hears.
pub(super) enum Signal {
    Fs(notify::Result<notify::Event>),
    /// A reload stored new settings: the directory or `watch` may have changed.
    Settings,
    Stop,
}

impl Hooks {
    /// Watch the hooks directory and reload on changes (see [`HookWatcher`]) while the
    /// guard lives. Uses the settings of the latest start or reload: with `hooks.watch`
    /// or `hooks.enabled` false nothing is watched until a reload turns them on, and a
    /// reload that moves `hooks.directory` moves the watch with it. Needs a running
    /// actix `System` (a reload starts workers).
    pub fn watch(&self) -> Result<HookWatcher, WatchError> {
        let system = actix::System::try_current().ok_or(WatchError::NoSystem)?;
        let (tx, rx) = channel();
        let mut watching = Watching {
            cell: Arc::downgrade(&self.cell),
            tx: tx.clone(),
            watcher: None,
            registered: None,
            failed: false,
        };
        if let Err((path, source)) = watching.retarget() {
            return Err(WatchError::Notify { path, source });
        }
        self.cell
            .watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tx.clone());
        let thread = std::thread::Builder::new()
            .name("hooks-watch".into())
            .spawn(move || {
                actix::System::set_current(system);
                watching.run(&rx);
            })
            .map_err(WatchError::Thread)?;
        Ok(HookWatcher {
            tx,
            thread: Some(thread),
        })
    }
}

impl Drop for HookWatcher {
    fn drop(&mut self) {
        let _ = self.tx.send(Signal::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
