//! Live reload of the hooks (issue 12 §3): a swap keeps unchanged hooks' counters, is atomic
//! between events under load, refuses a broken script, and follows the directory on disk.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mydia_plugins::config::HooksConfig;
use mydia_plugins::event::{Event, EventName};
use mydia_plugins::hooks::{Hooks, HooksReloadError};
use mydia_plugins::Handle;
use serde_json::{json, Value};

use crate::data;
use crate::support::hook_service::{field, message, write_files, Service};
use crate::support::{fast_config, wait_until};

/// Generous: a loaded 2-core machine, a debounce, a compile.
const PATIENCE: Duration = Duration::from_secs(30);

fn config(dir: &Path) -> HooksConfig {
    HooksConfig {
        directory: dir.to_owned(),
        directory_explicit: true,
        timeout: Duration::from_secs(1),
        workers: 2,
        ..HooksConfig::default()
    }
}

/// A hook that sets `data[key] = value`.
fn stamp(key: &str, value: &str) -> String {
    format!("function hook(e) e.data[\"{key}\"] = \"{value}\"; return e end")
}

fn added() -> Event {
    Event::new(EventName::AfterMediaAdded, data!({"title": "Dune"}))
}

async fn applied(hooks: &Hooks) -> Value {
    Value::Object(hooks.apply(added()).await.expect("not rejected").data)
}

fn runs(hooks: &Hooks, name: &str) -> u64 {
    let stats = hooks.stats();
    let hook = stats.hooks.iter().find(|h| h.file == name);
    hook.unwrap_or_else(|| panic!("{name} in {stats:?}")).runs
}

#[actix_rt::test]
async fn reload_swaps_a_changed_hook_and_keeps_the_counters_of_an_unchanged_one() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("after_media_added/10_tag.lua", &stamp("tag", "v1")),
            ("after_media_added/20_keep.lua", &stamp("kept", "yes")),
            ("after_media_added/30_gone.lua", &stamp("gone", "no")),
        ],
    );
    let hooks = Hooks::start(&config(dir.path()));
    for _ in 0..3 {
        assert_eq!(applied(&hooks).await["tag"], "v1");
    }
    write_files(
        dir.path(),
        &[
            ("after_media_added/10_tag.lua", &stamp("tag", "v2")),
            ("after_media_added/40_new.lua", &stamp("new", "here")),
        ],
    );
    std::fs::remove_file(dir.path().join("after_media_added/30_gone.lua")).unwrap();
    let done = hooks.reload(&config(dir.path())).expect("reloaded");
    assert_eq!(done.added, ["after_media_added/40_new.lua"]);
    assert_eq!(done.changed, ["after_media_added/10_tag.lua"]);
    assert_eq!(done.removed, ["after_media_added/30_gone.lua"]);
    assert_eq!(done.unchanged, ["after_media_added/20_keep.lua"]);
    assert!(!done.settings_changed);

    let out = applied(&hooks).await;
    assert_eq!(
        (&out["tag"], &out["kept"], &out["new"], &out["gone"]),
        (&json!("v2"), &json!("yes"), &json!("here"), &Value::Null)
    );
    assert_eq!(runs(&hooks, "after_media_added/20_keep.lua"), 4, "kept");
    assert_eq!(runs(&hooks, "after_media_added/10_tag.lua"), 1, "fresh");
    assert_eq!(runs(&hooks, "after_media_added/40_new.lua"), 1);
    assert_eq!(hooks.stats().hooks.len(), 3, "the removed one is gone");

    let again = hooks.reload(&config(dir.path())).expect("reloaded");
    assert!(again.is_unchanged(), "{again}");
    assert_eq!(runs(&hooks, "after_media_added/20_keep.lua"), 4);
}

#[actix_rt::test]
async fn reload_turns_hooks_off_and_on_again() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[("after_media_added/10_tag.lua", &stamp("tag", "on"))],
    );
    let off = HooksConfig {
        enabled: false,
        ..config(dir.path())
    };
    let hooks = Hooks::start(&off);
    assert!(!hooks.has_hooks(EventName::AfterMediaAdded));
    assert_eq!(applied(&hooks).await["tag"], Value::Null);

    let on = hooks.reload(&config(dir.path())).expect("on");
    assert_eq!(on.added, ["after_media_added/10_tag.lua"]);
    assert!(on.settings_changed);
    assert!(hooks.has_hooks(EventName::AfterMediaAdded));
    assert_eq!(applied(&hooks).await["tag"], "on");

    let done = hooks.reload(&off).expect("off");
    assert_eq!(done.removed, ["after_media_added/10_tag.lua"]);
    assert!(!hooks.is_enabled());
    assert_eq!(applied(&hooks).await["tag"], Value::Null);
}

#[actix_rt::test]
async fn a_reload_with_a_broken_script_is_refused_and_the_old_hooks_keep_running() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[("after_media_added/10_tag.lua", &stamp("tag", "old"))],
    );
    let hooks = Hooks::start(&config(dir.path()));
    assert_eq!(applied(&hooks).await["tag"], "old");
    write_files(
        dir.path(),
        &[
            ("after_media_added/10_tag.lua", &stamp("tag", "new")),
            (
                "after_media_added/20_broken.lua",
                "function hook(e)\n  local x = 1\n  if x then return e\nend\n",
            ),
            ("after_media_aded/1_typo.lua", &stamp("typo", "x")),
        ],
    );
    let err = hooks.reload(&config(dir.path())).expect_err("refused");
    let HooksReloadError::Refused { problems } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(problems.len(), 2, "{problems:?}");
    let broken = problems
        .iter()
        .find(|p| p.path.ends_with("after_media_added/20_broken.lua"))
        .unwrap_or_else(|| panic!("{problems:?}"));
    assert!(
        broken.message.contains("20_broken.lua:5:"),
        "names the line: {}",
        broken.message
    );
    assert!(err.to_string().contains("after_media_aded"), "{err}");
    assert_eq!(applied(&hooks).await["tag"], "old", "the old set runs on");

    std::fs::remove_dir_all(dir.path().join("after_media_aded")).unwrap();
    write_files(
        dir.path(),
        &[("after_media_added/20_broken.lua", &stamp("fixed", "yes"))],
    );
    hooks.reload(&config(dir.path())).expect("fixed");
    let out = applied(&hooks).await;
    assert_eq!((&out["tag"], &out["fixed"]), (&json!("new"), &json!("yes")));
}

/// The two scripts of set `version`: both stamp it, so an event run half on one set and
/// half on another shows two different versions.
fn write_set(dir: &Path, version: usize) {
    let v = format!("v{version}");
    write_files(
        dir,
        &[
            ("after_media_added/10_first.lua", &stamp("first", &v)),
            ("after_media_added/20_second.lua", &stamp("second", &v)),
        ],
    );
}

/// What the emitters share with the test: stop, events answered, the newest set stored.
#[derive(Clone, Default)]
struct Load {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    stored: Arc<AtomicUsize>,
}

/// Emit until `stop`, asserting each event is accepted and shows one whole set; the
/// versions seen, in order, and how many events finished on a set older than the one
/// stored when they were answered (they were in flight across a swap).
async fn emit_until(handle: Handle, load: Load) -> (Vec<usize>, usize) {
    let Load {
        stop,
        count,
        stored,
    } = load;
    let mut seen = Vec::new();
    let mut across = 0;
    while !stop.load(Ordering::Relaxed) {
        let done = handle
            .emit(EventName::AfterMediaAdded, data!({"title": "Dune"}))
            .await
            .expect("every event is accepted");
        let (first, second) = (&done.event.data["first"], &done.event.data["second"]);
        assert!(first.is_string(), "hooks ran: {:?}", done.event.data);
        assert_eq!(first, second, "one whole set per event");
        let version: usize = first.as_str().unwrap()[1..].parse().unwrap();
        if version < stored.load(Ordering::Relaxed) {
            across += 1;
        }
        seen.push(version);
        count.fetch_add(1, Ordering::Relaxed);
    }
    (seen, across)
}

#[actix_rt::test]
async fn hooks_swapped_under_load_with_no_event_failing() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 0);
    let mut config = fast_config();
    config.hooks = HooksConfig {
        watch: false,
        ..self::config(dir.path())
    };
    let handle = mydia_plugins::start(&config).expect("start");
    let load = Load::default();
    let emitters: Vec<_> = (0..4)
        .map(|_| actix_rt::spawn(emit_until(handle.clone(), load.clone())))
        .collect();
    let count = &load.count;
    let flowing = || async {
        let before = count.load(Ordering::Relaxed);
        wait_until(PATIENCE, || async {
            count.load(Ordering::Relaxed) >= before + 20
        })
        .await
    };
    let reloads = 6;
    for version in 1..=reloads {
        // Let the emitters get some events of this set in flight first.
        assert!(flowing().await, "events keep flowing");
        write_set(dir.path(), version);
        let done = handle.hooks().reload(&config.hooks).expect("reloaded");
        assert_eq!(done.changed.len(), 2, "{done}");
        load.stored.store(version, Ordering::Relaxed);
    }
    assert!(flowing().await, "events keep flowing");
    load.stop.store(true, Ordering::Relaxed);
    let mut across = 0;
    for emitter in emitters {
        let (seen, crossed) = emitter.await.expect("no emitter panicked");
        across += crossed;
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "an emitter never goes back to an older set: {seen:?}"
        );
        assert_eq!(seen.last(), Some(&reloads), "ends on the last set");
    }
    // The emitters wait on their answers while the test reloads (one thread runs them
    // all), so events are in flight at each swap: they finished, whole, on the old set.
    assert!(across > 0, "some events were in flight across a swap");
}

/// Emit until the event's `key` is `want`, polling; false if it never is.
async fn shows(handle: &Handle, key: &str, want: &str) -> bool {
    wait_until(PATIENCE, || async {
        let done = handle
            .emit(EventName::AfterMediaAdded, data!({"title": "Dune"}))
            .await
            .expect("accepted");
        done.event.data.get(key).and_then(Value::as_str) == Some(want)
    })
    .await
}

#[actix_rt::test]
async fn the_watcher_loads_a_new_script_and_one_saved_through_a_rename() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = fast_config();
    config.hooks = self::config(dir.path());
    let handle = mydia_plugins::start(&config).expect("start");
    assert!(!handle.hooks().is_enabled(), "no script yet");

    write_files(
        dir.path(),
        &[("after_media_added/10_new.lua", &stamp("tag", "created"))],
    );
    assert!(
        shows(&handle, "tag", "created").await,
        "a new script is loaded"
    );

    // What editors do: write a temporary file beside it, rename it over the script.
    let tmp = dir.path().join("after_media_added/.10_new.lua.swp");
    std::fs::write(&tmp, stamp("tag", "renamed")).unwrap();
    std::fs::rename(&tmp, dir.path().join("after_media_added/10_new.lua")).unwrap();
    assert!(
        shows(&handle, "tag", "renamed").await,
        "a save through a rename is loaded"
    );
}

#[actix_rt::test]
async fn the_watcher_waits_for_a_missing_directory_to_appear() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("later/hooks");
    let mut config = fast_config();
    config.hooks = self::config(&dir);
    let handle = mydia_plugins::start(&config).expect("a missing directory is not fatal");
    write_files(
        &dir,
        &[("after_media_added/10_new.lua", &stamp("tag", "appeared"))],
    );
    assert!(shows(&handle, "tag", "appeared").await);
}

#[test]
fn the_service_logs_each_reload_and_each_refusal() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[("hooks/after_media_added/10_tag.lua", &stamp("tag", "v1"))],
    );
    let mut s = Service::start(dir.path(), "hooks: {directory: hooks}\n");
    let (status, v) = s.emit("after_media_added", json!({"title": "Dune"}));
    assert_eq!((status, &v["data"]["tag"]), (202, &json!("v1")), "{v}");

    write_files(
        dir.path(),
        &[("hooks/after_media_added/20_more.lua", &stamp("more", "yes"))],
    );
    let seen = s.logs_until(|l| message(l).starts_with("hooks reloaded"));
    let line = seen.last().unwrap();
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["target"], "supervision", "{line}");
    assert!(
        field(line, "added")
            .to_string()
            .contains("after_media_added/20_more.lua"),
        "{line}"
    );
    let (_, v) = s.emit("after_media_added", json!({"title": "Dune"}));
    assert_eq!(
        (&v["data"]["tag"], &v["data"]["more"]),
        (&json!("v1"), &json!("yes"))
    );

    write_files(
        dir.path(),
        &[(
            "hooks/after_media_added/10_tag.lua",
            "function hook(e)\n  return e +\nend\n",
        )],
    );
    let seen = s.logs_until(|l| message(l).contains("not reloaded"));
    let line = seen.last().unwrap();
    assert_eq!(line["level"], "WARN", "{line}");
    let error = field(line, "error").as_str().unwrap_or_default();
    assert!(
        error.contains("10_tag.lua:3:"),
        "names file and line: {line}"
    );
    let (status, v) = s.emit("after_media_added", json!({"title": "Dune"}));
    assert_eq!(
        (status, &v["data"]["tag"]),
        (202, &json!("v1")),
        "the old hooks run on: {v}"
    );
}
