//! Finding hook scripts: `<directory>/<event>/NN_name.lua`, in a deterministic order.
//!
//! The folder names the event (canonical name or upstream alias); `NN` is the priority,
//! lower first, 999 without a prefix; ties break by file name, then by folder name (two
//! folders, a canonical name and its alias, may feed the same event). Sources are read
//! once here, so a VM rebuilt after a crash runs exactly what was checked at start.

use std::cmp::Ordering;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::event::EventName;

use super::error::HookProblem;

/// The priority of a script whose name has no `NN_` prefix.
pub const DEFAULT_PRIORITY: u32 = 999;

/// One script found on disk, not yet compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookFile {
    /// The event it runs on.
    pub event: EventName,
    /// `<event_dir>/<file>` as written on disk: the hook's name in logs, stats and rejections.
    pub name: String,
    /// The file name alone (`10_tag.lua`), the tie-breaker after the priority.
    pub file: String,
    /// Full path, for problems reported by `check`.
    pub path: PathBuf,
    /// Lower runs first.
    pub priority: u32,
    /// The script text.
    pub source: String,
}

/// Everything found under the hooks directory: scripts in run order, and what could not be used.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Ordered by event (catalog order), priority, file name, folder.
    pub files: Vec<HookFile>,
    /// Hooks that will not run: unknown event folders, `.lua` files outside an event
    /// folder, unreadable files or folders.
    pub problems: Vec<HookProblem>,
    /// Files that are not hooks and are never run (`notes.txt`, `hook.luau`): worth a
    /// word, since a misnamed hook looks just like one.
    pub notices: Vec<HookProblem>,
    /// The directory was set in the config and does not exist.
    pub missing: Option<HookProblem>,
}

/// Scan `dir`. A missing directory means "no hooks" (logged at info) when it is the
/// default; one set in the config (`explicit`) is reported in [`Discovery::missing`].
pub fn discover(dir: &Path, explicit: bool) -> Discovery {
    let mut found = Discovery::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound && explicit => {
            found.missing = Some(problem(
                dir,
                "the hooks directory set in hooks.directory does not exist; create it, or fix the path (a relative one is relative to the config file)".into(),
            ));
            return found;
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            tracing::info!(target: "hooks", directory = %dir.display(), "no hooks directory; running without hooks");
            return found;
        }
        Err(err) => {
            found.problems.push(problem(
                dir,
                format!("cannot read the hooks directory: {err}"),
            ));
            return found;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                found.problems.push(problem(
                    dir,
                    format!("cannot list the hooks directory: {err}"),
                ));
                continue;
            }
        };
        let path = entry.path();
        if is_hidden(&path) {
            continue;
        }
        if !path.is_dir() {
            stray_file(&path, &mut found);
            continue;
        }
        let Some(dir_name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            found
                .problems
                .push(problem(&path, "folder name is not valid utf-8".into()));
            continue;
        };
        match dir_name.parse::<EventName>() {
            Ok(event) => scan_event_dir(&path, &dir_name, event, &mut found),
            Err(err) => found.problems.push(problem(
                &path,
                format!("folder does not name an event: {err}"),
            )),
        }
    }
    found.files.sort_by(run_order);
    found
}

/// The priority encoded in a file stem: leading digits followed by `_` or nothing.
pub fn priority_of(stem: &str) -> u32 {
    let digits = stem.len() - stem.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let rest = &stem[digits..];
    if digits == 0 || !(rest.is_empty() || rest.starts_with('_')) {
        return DEFAULT_PRIORITY;
    }
    // An absurdly long number still sorts, last, rather than being an error.
    stem[..digits].parse().unwrap_or(u32::MAX)
}

/// Event, then priority, then file name, then folder: a total order, so runs are repeatable.
pub fn run_order(a: &HookFile, b: &HookFile) -> Ordering {
    (a.event, a.priority, &a.file, &a.name).cmp(&(b.event, b.priority, &b.file, &b.name))
}

fn scan_event_dir(path: &Path, dir_name: &str, event: EventName, found: &mut Discovery) {
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(err) => {
            found
                .problems
                .push(problem(path, format!("cannot read the folder: {err}")));
            return;
        }
    };
    for entry in entries.flatten() {
        let file_path = entry.path();
        if is_hidden(&file_path) {
            continue;
        }
        if !file_path.is_file() {
            found.notices.push(problem(
                &file_path,
                "is a folder inside an event folder; hooks there are never run (scripts go directly in the event folder)".into(),
            ));
            continue;
        }
        if file_path.extension().is_none_or(|e| e != "lua") {
            found.notices.push(problem(
                &file_path,
                "is not a .lua file, so it is never run; a hook is named NN_name.lua (rename it if it is one)".into(),
            ));
            continue;
        }
        let Some(file) = file_path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
        else {
            found
                .problems
                .push(problem(&file_path, "file name is not valid utf-8".into()));
            continue;
        };
        match fs::read_to_string(&file_path) {
            Ok(source) => found.files.push(HookFile {
                event,
                name: format!("{dir_name}/{file}"),
                priority: priority_of(file.trim_end_matches(".lua")),
                file,
                path: file_path,
                source,
            }),
            Err(err) => found.problems.push(problem(
                &file_path,
                format!("cannot read the script: {err}"),
            )),
        }
    }
}

/// A file directly in the hooks directory: a script there is a mistake (it names no
/// event), anything else a notice.
fn stray_file(path: &Path, found: &mut Discovery) {
    if path.extension().is_some_and(|e| e == "lua") {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        found.problems.push(problem(
            path,
            format!("is not in an event folder, so it is never run; move it to <hooks directory>/<event_name>/{file}, e.g. after_media_added/{file}"),
        ));
    } else {
        found.notices.push(problem(
            path,
            "is not a hook and is never run; hooks go in <hooks directory>/<event_name>/NN_name.lua".into(),
        ));
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn problem(path: &Path, message: String) -> HookProblem {
    HookProblem {
        path: path.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn priority_comes_from_the_numeric_prefix() {
        assert_eq!(priority_of("10_tag"), 10);
        assert_eq!(priority_of("007_x"), 7);
        assert_eq!(priority_of("5"), 5);
        assert_eq!(priority_of("tag"), DEFAULT_PRIORITY);
        assert_eq!(priority_of("10tag"), DEFAULT_PRIORITY);
        assert_eq!(priority_of("_10"), DEFAULT_PRIORITY);
        assert_eq!(priority_of("99999999999999_x"), u32::MAX);
    }

    #[test]
    fn orders_by_priority_then_file_name() {
        let tmp = tempfile::tempdir().unwrap();
        for name in [
            "50_b.lua",
            "50_a.lua",
            "plain.lua",
            "2_late_alpha.lua",
            "100_x.lua",
        ] {
            write(
                tmp.path(),
                &format!("after_media_added/{name}"),
                "function hook(e) end",
            );
        }
        let found = discover(tmp.path(), true);
        assert!(found.problems.is_empty(), "{:?}", found.problems);
        let order: Vec<_> = found.files.iter().map(|f| f.file.as_str()).collect();
        assert_eq!(
            order,
            [
                "2_late_alpha.lua",
                "50_a.lua",
                "50_b.lua",
                "100_x.lua",
                "plain.lua"
            ]
        );
        assert_eq!(found.files[0].name, "after_media_added/2_late_alpha.lua");
        assert_eq!(found.files[4].priority, DEFAULT_PRIORITY);
    }

    #[test]
    fn alias_folders_feed_the_same_event_in_a_fixed_order() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "media_item.added/10_same.lua", "");
        write(tmp.path(), "after_media_added/10_same.lua", "");
        write(tmp.path(), "download.completed/1_first.lua", "");
        let found = discover(tmp.path(), true);
        let names: Vec<_> = found.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "after_media_added/10_same.lua",
                "media_item.added/10_same.lua",
                "download.completed/1_first.lua"
            ]
        );
        assert!(found.files[..2]
            .iter()
            .all(|f| f.event == EventName::AfterMediaAdded));
        assert_eq!(found.files[2].event, EventName::OnDownloadCompleted);
    }

    #[test]
    fn unknown_folder_is_a_problem_and_other_entries_are_reported_never_run() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "after_media_aded/1_x.lua", "");
        write(tmp.path(), "README.md", "notes");
        write(tmp.path(), ".git/config", "");
        write(tmp.path(), ".hidden.lua", "");
        write(tmp.path(), "after_media_added/notes.txt", "");
        write(tmp.path(), "after_media_added/10_tag.luau", "");
        write(tmp.path(), "after_media_added/1_ok.lua", "");
        write(tmp.path(), "10_loose.lua", "");
        let found = discover(tmp.path(), true);
        assert_eq!(found.files.len(), 1);
        let mut problems: Vec<String> = found.problems.iter().map(ToString::to_string).collect();
        problems.sort();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("10_loose.lua") && problems[0].contains("not in an event folder"),
            "{problems:?}"
        );
        assert!(
            problems[0].contains("after_media_added/10_loose.lua"),
            "{problems:?}"
        );
        assert!(problems[1].contains("after_media_aded"), "{problems:?}");
        assert!(
            problems[1].contains("did you mean `after_media_added`"),
            "{problems:?}"
        );
        let mut notices: Vec<String> = found.notices.iter().map(ToString::to_string).collect();
        notices.sort();
        assert_eq!(notices.len(), 3, "{notices:?}");
        assert!(
            notices[0].contains("README.md") && notices[0].contains("never run"),
            "{notices:?}"
        );
        assert!(
            notices[1].contains("10_tag.luau") && notices[1].contains("not a .lua file"),
            "{notices:?}"
        );
        assert!(notices[2].contains("notes.txt"), "{notices:?}");
    }

    #[test]
    fn missing_directory_means_no_hooks_unless_it_was_set() {
        let tmp = tempfile::tempdir().unwrap();
        let found = discover(&tmp.path().join("nope"), false);
        assert!(found.files.is_empty() && found.problems.is_empty() && found.missing.is_none());
        let found = discover(&tmp.path().join("nope"), true);
        let missing = found.missing.expect("reported").to_string();
        assert!(
            missing.contains("nope") && missing.contains("does not exist"),
            "{missing}"
        );
    }
}
