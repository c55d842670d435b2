//! Hooks through the real service binary: validation that cannot be bypassed, quarantine
//! and release over the API, and what `check` and `serve` say about the hooks directory.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::support::hook_service::{binary, field, message, write_config, write_files, Service};

const REJECT_CAM: &str = "before_download_initiated/10_reject_cam.lua";

/// Write `(path under hooks/, source)` scripts into `dir/hooks`.
fn write_hooks(dir: &std::path::Path, scripts: &[(&str, &str)]) {
    let scripts: Vec<(String, &str)> = scripts
        .iter()
        .map(|(rel, src)| (format!("hooks/{rel}"), *src))
        .collect();
    let scripts: Vec<(&str, &str)> = scripts
        .iter()
        .map(|(rel, src)| (rel.as_str(), *src))
        .collect();
    write_files(dir, &scripts);
}

fn shipped_reject_cam() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("config/hooks")
        .join(REJECT_CAM);
    std::fs::read_to_string(path).unwrap()
}

/// An answer for an assertion message: the start of it (answers may echo 100 KB of data).
fn short(v: &Value) -> String {
    v.to_string().chars().take(300).collect()
}

/// `levels` objects nested in each other.
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!("leaf"), |inner, _| json!({ "x": inner }))
}

fn cam_release(extra: Value) -> Value {
    let mut data = json!({"release": {"title": "Dune.Part.Two.2024.HDCAM.x264"}});
    data.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    data
}

#[test]
fn a_rejecting_hook_cannot_be_bypassed_by_a_large_or_deep_event() {
    let dir = tempfile::tempdir().unwrap();
    write_hooks(
        dir.path(),
        &[
            (REJECT_CAM, &shipped_reject_cam()),
            (
                "before_media_added/10_slow.lua",
                "function hook(e) if e.data.slow then while true do end end end",
            ),
            (
                "before_media_added/20_boom.lua",
                "function hook(e) if e.data.boom then error('no title') end end",
            ),
            (
                "before_media_added/30_long_reason.lua",
                "function hook(e) if e.data.long then reject(string.rep('x', 5e6)) end end",
            ),
            (
                "after_media_added/10_boom.lua",
                "function hook(e) error('always') end",
            ),
        ],
    );
    // A budget that a loaded machine cannot use up on the hooks that finish (a 5 MB
    // reason takes a while to build): only the endless loop may time out.
    let s = Service::start(
        dir.path(),
        "hooks: {directory: hooks, max_input_kb: 64, timeout_ms: 1000}\n",
    );

    // The plain case still works: 422 naming the hook and its reason.
    let (status, v) = s.emit("before_download_initiated", cam_release(json!({})));
    assert_eq!(status, 422, "{}", short(&v));
    assert_eq!(
        (v["hook"].as_str(), v["kind"].as_str()),
        (Some(REJECT_CAM), Some("rejected"))
    );

    // Padded past max_input_kb: refused with 413, saying which limit to raise.
    let pad = "p".repeat(100 * 1024);
    let (status, v) = s.emit(
        "before_download_initiated",
        cam_release(json!({"pad": pad})),
    );
    assert_eq!(
        status,
        413,
        "a padded camera rip must not be accepted: {}",
        short(&v)
    );
    assert_eq!(v["kind"], "too_large", "{}", short(&v));
    assert!(
        v["error"].as_str().unwrap().contains("hooks.max_input_kb"),
        "{}",
        short(&v)
    );
    assert_eq!(v["hook"], REJECT_CAM);

    // Nested 70 levels deep: the hook cannot be given the event, so it is refused.
    let (status, v) = s.emit(
        "before_download_initiated",
        cam_release(json!({"deep": nested(70)})),
    );
    assert_eq!(
        status,
        422,
        "a deeply nested camera rip must not be accepted: {}",
        short(&v)
    );
    assert_eq!(
        (v["hook"].as_str(), v["kind"].as_str()),
        (Some(REJECT_CAM), Some("hook_failed"))
    );
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("nesting deeper than 64"),
        "{}",
        short(&v)
    );

    // A timeout and a runtime error refuse the event too, naming the hook and why.
    let (status, v) = s.emit("before_media_added", json!({"slow": true}));
    assert_eq!(status, 422, "{}", short(&v));
    assert_eq!(v["hook"], "before_media_added/10_slow.lua");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("timed out after 1000 ms"),
        "{}",
        short(&v)
    );
    let (status, v) = s.emit("before_media_added", json!({"boom": true}));
    assert_eq!(status, 422, "{}", short(&v));
    assert_eq!(v["hook"], "before_media_added/20_boom.lua");
    assert!(
        v["reason"].as_str().unwrap().contains("no title"),
        "{}",
        short(&v)
    );
    assert!(
        v["error"].as_str().unwrap().contains("hooks.fail_closed"),
        "{}",
        short(&v)
    );

    // A 5 MB reason is cut to 1 KB.
    let (status, v) = s.emit("before_media_added", json!({"long": true}));
    assert_eq!(status, 422, "{}", short(&v));
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.len() <= 1024 && reason.starts_with("xxxx"),
        "{}",
        reason.len()
    );

    // Good events pass; other events stay fail-soft.
    let (status, v) = s.emit("before_media_added", json!({"title": "Dune"}));
    assert_eq!(status, 202, "{}", short(&v));
    let (status, v) = s.emit("after_media_added", json!({"pad": "p".repeat(100 * 1024)}));
    assert_eq!(status, 202, "{}", short(&v));
    let (status, v) = s.emit("after_media_added", json!({"deep": nested(70)}));
    assert_eq!(status, 202, "{}", short(&v));
    let (status, v) = s.emit("after_media_added", json!({"title": "Dune"}));
    assert_eq!((status, &v["data"]), (202, &json!({"title": "Dune"})));
    let (_, hooks) = s.get("/api/v1/hooks");
    assert_eq!(hooks["refused_too_large"], 1, "{hooks}");
    assert_eq!(hooks["skipped_too_large"], 1, "{hooks}");
}

#[test]
fn fail_closed_is_the_users_choice() {
    let dir = tempfile::tempdir().unwrap();
    write_hooks(
        dir.path(),
        &[
            (REJECT_CAM, &shipped_reject_cam()),
            (
                "after_media_added/10_boom.lua",
                "function hook(e) error('always') end",
            ),
        ],
    );
    let s = Service::start(
        dir.path(),
        "hooks: {directory: hooks, max_input_kb: 64, fail_closed: [after_media_added]}\n",
    );
    let pad = "p".repeat(100 * 1024);
    let (status, v) = s.emit(
        "before_download_initiated",
        cam_release(json!({"pad": pad})),
    );
    assert_eq!(status, 202, "not fail-closed any more: {}", short(&v));
    let (status, v) = s.emit("after_media_added", json!({"title": "Dune"}));
    assert_eq!(status, 422, "{}", short(&v));
    assert_eq!(v["hook"], "after_media_added/10_boom.lua");
}

#[test]
fn a_hook_that_keeps_failing_is_quarantined_shown_and_released() {
    let dir = tempfile::tempdir().unwrap();
    write_hooks(
        dir.path(),
        &[
            (
                "after_media_added/10_slow.lua",
                "function hook(e) if e.data.slow then while true do end end e.data.slow_ran = true return e end",
            ),
            (
                "after_media_added/20_marker.lua",
                "function hook(e) if e.data.marker then log.info('marker ' .. e.data.marker) end end",
            ),
            (
                "before_download_initiated/10_check.lua",
                "function hook(e) if e.data.boom then error('boom') end e.data.checked = true return e end",
            ),
        ],
    );
    let mut s = Service::start(
        dir.path(),
        "hooks: {directory: hooks, timeout_ms: 50, quarantine_after: 3}\n",
    );
    const SLOW: &str = "after_media_added/10_slow.lua";
    const CHECK: &str = "before_download_initiated/10_check.lua";

    for _ in 0..3 {
        let (status, v) = s.emit("after_media_added", json!({"slow": true}));
        assert_eq!(status, 202, "fail-soft: {}", short(&v));
    }
    let (_, v) = s.emit("after_media_added", json!({"slow": true, "marker": 1}));
    assert!(v["data"].get("slow_ran").is_none(), "{}", short(&v));
    let (_, v) = s.emit("after_media_added", json!({"marker": 2}));
    assert!(
        v["data"].get("slow_ran").is_none(),
        "a quarantined hook is skipped, even for good events: {}",
        short(&v)
    );
    let quarantined = |v: &Value| message(v).starts_with("hook quarantined");
    let logs = s.logs_until(|v| message(v) == "marker 2");
    let warned: Vec<&Value> = logs.iter().filter(|v| quarantined(v)).collect();
    assert_eq!(warned.len(), 1, "logged once: {logs:#?}");
    assert_eq!(warned[0]["level"], "WARN");
    assert_eq!(field(warned[0], "hook"), SLOW);

    let (status, v) = s.get("/api/v1/hooks");
    assert_eq!(status, 200);
    let slow = v["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["file"] == SLOW)
        .unwrap()
        .clone();
    assert_eq!(slow["state"], "quarantined", "{}", short(&v));
    let reason = slow["quarantined_reason"].as_str().unwrap();
    assert!(
        reason.contains("failed 3 calls in a row") && reason.contains("timed out"),
        "{reason}"
    );
    assert_eq!(slow["skipped"], 2, "{}", short(&v));

    // At a fail-closed event, a quarantined hook refuses the event with that reason.
    for _ in 0..3 {
        let (status, v) = s.emit("before_download_initiated", json!({"boom": true}));
        assert_eq!(
            (status, v["hook"].as_str()),
            (422, Some(CHECK)),
            "{}",
            short(&v)
        );
    }
    let (status, v) = s.emit(
        "before_download_initiated",
        json!({"release": {"title": "ok"}}),
    );
    assert_eq!(status, 422, "{}", short(&v));
    let why = v["reason"].as_str().unwrap();
    assert!(
        why.starts_with("quarantined: failed 3 calls in a row"),
        "{why}"
    );
    assert!(why.contains("/release"), "says how to release it: {why}");

    // Released, both run again.
    for hook in [SLOW, CHECK] {
        let (status, v) = s.post(&format!("/api/v1/hooks/{hook}/release"), &json!({}));
        assert_eq!(status, 200, "{}", short(&v));
        assert_eq!(v["was_quarantined"], true, "{}", short(&v));
    }
    let (_, v) = s.get("/api/v1/hooks");
    assert!(
        v["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["state"] == "active"),
        "{}",
        short(&v)
    );
    let (status, v) = s.emit("after_media_added", json!({}));
    assert_eq!(
        (status, &v["data"]["slow_ran"]),
        (202, &json!(true)),
        "{}",
        short(&v)
    );
    let (status, v) = s.emit("before_download_initiated", json!({}));
    assert_eq!(
        (status, &v["data"]["checked"]),
        (202, &json!(true)),
        "{}",
        short(&v)
    );

    let (status, v) = s.post(
        "/api/v1/hooks/after_media_added/10_slw.lua/release",
        &json!({}),
    );
    assert_eq!(status, 404, "{}", short(&v));
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("10_slw.lua") && error.contains(SLOW) && error.contains(CHECK),
        "{error}"
    );
}

#[test]
fn hooks_started_counts_only_what_loaded_and_names_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("hooks/after_media_added/10_ok.lua", "function hook(e) end"),
            (
                "hooks/after_media_added/20_broken.lua",
                "function hook(e) return e end end",
            ),
            ("hooks/before_media_added/10_broken.lua", "function hook(e)"),
            ("hooks/after_media_added/notes.txt", "not a hook"),
        ],
    );
    let s = Service::start(dir.path(), "hooks: {directory: hooks, workers: 2}\n");
    let started = s
        .startup
        .iter()
        .find(|v| message(v).starts_with("hooks started"))
        .unwrap_or_else(|| panic!("{:#?}", s.startup));
    assert_eq!(field(started, "scripts"), 1, "{started}");
    assert_eq!(field(started, "workers"), 2, "{started}");
    let not_loaded = field(started, "not_loaded").as_str().unwrap();
    assert!(
        not_loaded.contains("after_media_added/20_broken.lua")
            && not_loaded.contains("before_media_added/10_broken.lua"),
        "{started}"
    );
    let errors = s
        .startup
        .iter()
        .filter(|v| v["level"] == "ERROR" && message(v).starts_with("hook not loaded"))
        .count();
    assert_eq!(
        errors, 2,
        "each broken script is logged once, not once per worker: {:#?}",
        s.startup
    );
    assert!(
        s.startup
            .iter()
            .any(|v| v["level"] == "WARN" && message(v).contains("is not a .lua file")),
        "{:#?}",
        s.startup
    );

    let (status, v) = s.emit("before_media_added", json!({}));
    assert_eq!(
        status,
        422,
        "a validation hook that did not load refuses its event: {}",
        short(&v)
    );
    assert_eq!(v["hook"], "before_media_added/10_broken.lua");
    assert!(
        v["reason"].as_str().unwrap().contains("did not load"),
        "{}",
        short(&v)
    );
    let (status, _) = s.emit("after_media_added", json!({}));
    assert_eq!(status, 202);
}

#[test]
fn check_and_serve_report_the_hooks_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "hooks: {directory: no_such_dir}\n");
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no_such_dir") && stderr.contains("does not exist"),
        "{stderr}"
    );

    let s = Service::start(dir.path(), "hooks: {directory: no_such_dir}\n");
    let warned = s
        .startup
        .iter()
        .find(|v| message(v).contains("does not exist"))
        .unwrap_or_else(|| panic!("{:#?}", s.startup));
    assert_eq!(warned["level"], "WARN", "serve goes on: {warned}");
    let (status, _) = s.emit("after_media_added", json!({}));
    assert_eq!(status, 202);
    drop(s);

    write_files(
        dir.path(),
        &[
            ("hooks/10_loose.lua", "function hook(e) end"),
            ("hooks/after_media_aded/1_x.lua", "function hook(e) end"),
            ("hooks/after_media_added/notes.txt", ""),
            ("hooks/after_media_added/1_ok.lua", "function hook(e) end"),
        ],
    );
    let config = write_config(dir.path(), "hooks: {directory: hooks}\n");
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for expected in [
        "10_loose.lua: is not in an event folder",
        "did you mean `after_media_added`",
        "warning: ",
        "notes.txt: is not a .lua file",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing from:\n{stderr}"
        );
    }

    for value in ["-5", "0"] {
        let config = write_config(
            dir.path(),
            &format!("hooks: {{memory_limit_mb: {value}}}\n"),
        );
        let out = Command::new(binary())
            .args(["check", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "hooks.memory_limit_mb: must be at least 1, got {value}"
            )),
            "{stderr}"
        );
    }
}
