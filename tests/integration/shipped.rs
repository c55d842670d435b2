//! The shipped config and hooks, through the real HTTP API, and the real binary end to end.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use mydia_plugins::{api, Config};
use serde_json::{json, Value};

fn shipped_config_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/config.yaml")
}

#[test]
fn shipped_config_loads_and_its_hooks_compile() {
    let config = Config::load(&shipped_config_path()).expect("shipped config is valid");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let console = config.plugins.iter().find(|p| p.name == "console").unwrap();
    assert!(
        console.common.enabled,
        "the shipped config shows something without internet"
    );
    let ntfy = config.plugins.iter().find(|p| p.name == "ntfy").unwrap();
    assert!(
        !ntfy.common.enabled,
        "ntfy waits to be pointed at the user's server"
    );
    let hooks = mydia_plugins::hooks::check(&config.hooks).expect("shipped hooks compile");
    assert_eq!(hooks.len(), 3);
}

#[actix_rt::test]
async fn shipped_hooks_tag_fix_and_reject_through_the_api() {
    let mut config = Config::load(&shipped_config_path()).unwrap();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    // The shipped store lives in the repo's config/data: a test keeps its own.
    let dir = tempfile::tempdir().unwrap();
    assert!(config
        .storage
        .path
        .ends_with("config/data/mydia-plugins.sqlite3"));
    config.storage.path = dir.path().join("store.sqlite3");
    let handle = mydia_plugins::start(&config).expect("start");
    let (server, addr) = api::server(config.server.listen, handle.clone()).unwrap();
    actix_rt::spawn(server);
    let http = reqwest::Client::new();
    let post = |body: Value| {
        http.post(format!("http://{addr}/api/v1/events"))
            .json(&body)
            .send()
    };

    let r = post(json!({"event": "media_item.added", "data": {"media_item": {
        "title": "spirited.away.2001", "year": 2001, "type": "movie",
        "genres": ["Animation", "Fantasy"], "original_language": "ja"}}}))
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    let item = &v["data"]["media_item"];
    assert_eq!(item["title"], "Spirited Away");
    assert_eq!(item["is_anime"], true);
    assert_eq!(item["tags"], json!(["anime"]));
    assert_eq!(
        item["year"], 2001,
        "whole numbers stay integers through Lua"
    );

    let r = post(json!({"event": "after_media_added", "data": {"media_item": {"title": "Heat", "year": 1995, "genres": ["Crime"]}}}))
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["data"]["media_item"],
        json!({"title": "Heat", "year": 1995, "genres": ["Crime"]}),
        "untouched"
    );

    let r = post(json!({"event": "before_download_initiated", "id": "grab-1", "data": {"release": {"title": "Dune.Part.Two.2024.HDCAM.x264"}}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["hook"], "before_download_initiated/10_reject_cam.lua");
    assert_eq!(
        v["reason"],
        "camera rip (HDCAM): Dune.Part.Two.2024.HDCAM.x264"
    );
    assert_eq!(v["id"], "grab-1");

    let r = post(json!({"event": "before_download_initiated", "data": {"release": {"title": "Dune.Part.Two.2024.2160p.WEB-DL"}}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "a good release passes");

    let v: Value = http
        .get(format!("http://{addr}/api/v1/hooks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reject = v["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["file"] == "before_download_initiated/10_reject_cam.lua")
        .unwrap();
    assert_eq!(
        (reject["runs"].as_u64(), reject["rejections"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    handle.shutdown().await;
}

/// The README's first command, for real: the binary starts with a config, serves the
/// API, logs what the plugins do, and stops cleanly on SIGTERM.
#[test]
fn the_binary_serves_logs_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(shipped_config_path()).unwrap();
    let config = shipped
        .replace("listen: 127.0.0.1:8787", "listen: 127.0.0.1:0")
        .replace(
            "directory: hooks",
            &format!(
                "directory: {}",
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("config/hooks")
                    .display()
            ),
        );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mydia-plugins"))
        .args(["--log-format", "json", "--config"])
        .arg(&path)
        .arg("serve")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v = serde_json::from_str(&line).unwrap_or_else(|_| json!({"unparsed": line}));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let next_matching = |pred: &dyn Fn(&Value) -> bool| -> Value {
        loop {
            let v = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("log line in time");
            assert!(v.get("unparsed").is_none(), "every log line is JSON: {v}");
            if pred(&v) {
                return v;
            }
        }
    };
    let running = next_matching(&|v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("mydia-plugins is running"))
    });
    let listen = running["listen"].as_str().unwrap().to_owned();

    let body = json!({"event": "on_download_completed", "data": {"release_name": "Dune.2021.2160p", "media_item": {"title": "Dune", "year": 2021}}});
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer: Value = rt.block_on(async {
        let url = format!("http://{listen}/api/v1/events");
        let r = reqwest::Client::new()
            .post(url)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    });
    assert_eq!(answer["event"], "on_download_completed");
    let logged = next_matching(&|v| v["target"] == "notifications");
    assert_eq!(logged["title"], "Download completed");
    assert_eq!(logged["plugin"], "console");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    next_matching(&|v| v["message"] == "stopped");
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// A bad config (or hook) makes `check` and `serve` exit 2 with every problem listed,
/// never a panic; a good one exits 0.
#[test]
fn check_exits_nonzero_with_every_problem_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "server:\n  listen: nowhere\nplugins:\n  ntfy:\n    enabled: true\n    prority: 3\n    priority: 9\n    server_url: http://10.0.0.2\n    events: [after_media_aded]\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_mydia-plugins");
    for command in ["check", "serve"] {
        let out = Command::new(bin)
            .args(["--config"])
            .arg(&bad)
            .arg(command)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        for expected in [
            "server.listen",
            "plugins.ntfy.prority",
            "plugins.ntfy.priority",
            "plugins.ntfy.topic",
            "allow_insecure_http: true",
            "did you mean `after_media_added`",
            "bad.yaml:6:",
        ] {
            assert!(
                stderr.contains(expected),
                "{command}: {expected:?} missing from:\n{stderr}"
            );
        }
    }

    let hooks = dir.path().join("hooks/after_media_added");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(
        hooks.join("10_broken.lua"),
        "function hook(event) return event end end",
    )
    .unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "hooks: {directory: hooks}\n").unwrap();
    let out = Command::new(bin)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a hook that does not compile fails check: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("10_broken.lua"),
        "{out:?}"
    );

    std::fs::remove_file(hooks.join("10_broken.lua")).unwrap();
    let out = Command::new(bin)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let missing = Command::new(bin)
        .args(["check", "--config", "/nonexistent/config.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("--config PATH"),
        "{missing:?}"
    );
}
