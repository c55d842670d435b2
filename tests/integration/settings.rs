//! Changing settings through the API: `PATCH /api/v1/plugins/{name}/settings` refuses bad
//! values with every problem at once and writes nothing, applies a valid change live (the
//! next delivery uses it), never shows a secret; Enable/Disable are kept in
//! `overrides.yaml`, so the real binary restarted after a Disable starts it disabled.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use mydia_plugins::config::Config;
use mydia_plugins::event::EventName;
use mydia_plugins::Handle;

use crate::support::daemon::{free_port, Service};
use crate::support::wait_until;

const LONG: Duration = Duration::from_secs(30);

/// A config in `dir` with an ntfy instance publishing to `ntfy_url` and a log instance.
fn write_config(dir: &Path, ntfy_url: &str, extra: &str) -> PathBuf {
    let text = format!(
        "{extra}hooks: {{enabled: false}}\nstorage: {{path: store.sqlite3}}\nplugins:\n  \
         ntfy:\n    enabled: true\n    server_url: {ntfy_url}\n    topic: media\n    \
         priority: 3\n    allow_insecure_http: true\n    allow_private_network: true\n    \
         events: [after_media_added]\n  console:\n    type: log\n    enabled: true\n"
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

struct Served {
    base: String,
    handle: Handle,
    http: reqwest::Client,
}

async fn serve(config: &Config) -> Served {
    let handle = mydia_plugins::start(config).expect("start");
    Served {
        base: crate::support::serve_api(&handle),
        handle,
        http: reqwest::Client::new(),
    }
}

impl Served {
    async fn send(&self, m: reqwest::Method, path: &str, body: Option<Value>) -> (u16, String) {
        let mut r = self.http.request(m, format!("{}{path}", self.base));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
    async fn patch(&self, name: &str, body: Value) -> (u16, Value) {
        let path = format!("/api/v1/plugins/{name}/settings");
        let (status, text) = self.send(reqwest::Method::PATCH, &path, Some(body)).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

async fn ntfy_receiver() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "x"})))
        .mount(&server)
        .await;
    server
}

/// Each request `server` got, as (JSON body, Authorization header).
async fn published(server: &MockServer) -> Vec<(Value, Option<String>)> {
    let auth = |r: &wiremock::Request| {
        r.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                serde_json::from_slice(&r.body).unwrap_or(Value::Null),
                auth(r),
            )
        })
        .collect()
}

async fn publish_one(s: &Served, server: &MockServer, title: &str) -> (Value, Option<String>) {
    let before = published(server).await.len();
    let data = crate::data!({"media_item": {"title": title, "year": 2021}});
    s.handle
        .emit(EventName::AfterMediaAdded, data)
        .await
        .expect("accepted");
    assert!(
        wait_until(LONG, || async { published(server).await.len() > before }).await,
        "ntfy got nothing for {title}"
    );
    published(server).await.pop().unwrap()
}

fn field<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["fields"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("{name} in {view:#}"))
}

#[actix_rt::test]
async fn a_bad_change_is_400_with_every_problem_and_nothing_written() {
    let receiver = ntfy_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &receiver.uri(), "");
    let s = serve(&Config::load(&path).unwrap()).await;
    let (status, v) = s
        .patch(
            "ntfy",
            json!({"priority": 9, "retries": "often", "prority": 1, "enabled": "yes",
                   "templates": {}, "events": ["after_media_aded"]}),
        )
        .await;
    assert_eq!(status, 400, "{v:#}");
    let mut fields: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap_or("?"))
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "enabled",
            "events",
            "priority",
            "prority",
            "retries",
            "templates"
        ],
        "{v:#}"
    );
    let message = |f: &str| {
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["field"] == f)
            .unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        message("prority").contains("did you mean `priority`?"),
        "{v:#}"
    );
    assert!(message("priority").contains("between 1"), "{v:#}");
    assert!(message("enabled").contains("expected a boolean"), "{v:#}");
    assert!(
        !dir.path().join("overrides.yaml").exists(),
        "nothing is written"
    );
    let (_, now) = s
        .send(reqwest::Method::GET, "/api/v1/plugins/ntfy/settings", None)
        .await;
    let now: Value = serde_json::from_str(&now).unwrap();
    assert_eq!(field(&now, "priority")["value"], 3);
    let (status, v) = s.patch("ntfy", json!([1])).await;
    assert_eq!(status, 400, "{v:#}");
    let (status, _) = s.patch("nobody", json!({"priority": 1})).await;
    assert_eq!(status, 404);
}

#[actix_rt::test]
async fn a_valid_change_is_written_and_the_next_delivery_uses_it_without_a_restart() {
    let receiver = ntfy_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &receiver.uri(), "");
    let s = serve(&Config::load(&path).unwrap()).await;
    let (first, auth) = publish_one(&s, &receiver, "Dune").await;
    assert_eq!((first["priority"].clone(), auth), (json!(3), None));

    let (status, v) = s
        .patch(
            "ntfy",
            json!({"priority": 5, "auth_token": "tk_SECRETabc123"}),
        )
        .await;
    assert_eq!(status, 200, "{v:#}");
    assert_eq!(field(&v, "priority")["value"], 5);
    assert_eq!(field(&v, "priority")["source"], "overrides");
    assert_eq!(field(&v, "auth_token")["value"], "set");
    assert_eq!(v["applied"]["changed"], json!(["ntfy"]), "{v:#}");
    let written = std::fs::read_to_string(dir.path().join("overrides.yaml")).unwrap();
    assert!(written.contains("priority: 5"), "{written}");

    let (next, auth) = publish_one(&s, &receiver, "Arrival").await;
    assert_eq!(next["priority"], 5, "{next:#}");
    assert_eq!(auth.as_deref(), Some("Bearer tk_SECRETabc123"));

    // null goes back to the file's value and drops the line.
    let (status, v) = s.patch("ntfy", json!({"priority": null})).await;
    assert_eq!(status, 200, "{v:#}");
    assert_eq!(field(&v, "priority")["source"], "file");
    let written = std::fs::read_to_string(dir.path().join("overrides.yaml")).unwrap();
    assert!(!written.contains("priority"), "{written}");
    let (next, _) = publish_one(&s, &receiver, "Heat").await;
    assert_eq!(next["priority"], 3);
}

#[actix_rt::test]
async fn a_secret_set_through_the_api_is_never_shown() {
    let receiver = ntfy_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &receiver.uri(), "");
    let s = serve(&Config::load(&path).unwrap()).await;
    let secret = "tk_NEVERSHOWN9876";
    let (status, v) = s.patch("ntfy", json!({"auth_token": secret})).await;
    assert_eq!(status, 200, "{v:#}");
    let (_, api) = s
        .send(reqwest::Method::GET, "/api/v1/plugins/ntfy/settings", None)
        .await;
    let (_, html) = s.send(reqwest::Method::GET, "/plugins/ntfy", None).await;
    for (what, text) in [
        ("PATCH", v.to_string()),
        ("GET", api),
        ("page", html.clone()),
    ] {
        assert!(!text.contains(secret), "{what} shows the secret: {text}");
    }
    assert!(html.contains("changed here"), "{html}");
    // A bad value for a secret field is refused without echoing it.
    for bad in [
        json!({"password": 12345678, "auth_token": 5}),
        json!({"auth_token": ["tk_INALIST4242"]}),
        json!({"auth_token": {"token": "tk_INAMAP4343"}}),
        json!({"password": true, "username": "me"}),
    ] {
        let (status, v) = s.patch("ntfy", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {v:#}");
        let text = v.to_string();
        assert!(
            text.contains("auth_token") || text.contains("password"),
            "{text}"
        );
        for shown in ["12345678", "tk_INALIST4242", "tk_INAMAP4343", "true"] {
            assert!(
                !text.contains(shown),
                "{bad}: the 400 echoes {shown}: {text}"
            );
        }
    }
}

#[actix_rt::test]
async fn without_a_config_file_a_change_is_409_and_enable_is_not_kept() {
    let text = "hooks: {enabled: false}\nstorage: {backend: memory}\nplugins:\n  console: {type: log, enabled: true}\n";
    let config = Config::parse(text, None).unwrap_or_else(|e| panic!("{e}"));
    let s = serve(&config).await;
    let (status, v) = s.patch("console", json!({"level": "warn"})).await;
    assert_eq!(status, 409, "{v:#}");
    assert!(
        v["error"].as_str().unwrap().contains("config file"),
        "{v:#}"
    );
    let (status, body) = s
        .send(
            reqwest::Method::POST,
            "/api/v1/plugins/console/disable",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"kept\":false"), "{body}");
}

#[actix_rt::test]
async fn an_enable_the_config_would_refuse_is_400_and_not_kept() {
    let receiver = ntfy_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &receiver.uri(), "");
    // An instance that may be off without its required topic, but not on.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("  spare:\n    type: ntfy\n    enabled: false\n");
    std::fs::write(&path, text).unwrap();
    let s = serve(&Config::load(&path).unwrap_or_else(|e| panic!("{e}"))).await;
    let (status, body) = s
        .send(reqwest::Method::POST, "/api/v1/plugins/spare/enable", None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"field\":\"topic\""), "{body}");
    assert!(!dir.path().join("overrides.yaml").exists());
}

#[actix_rt::test]
async fn the_binary_restarted_after_a_disable_starts_it_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = write_config(
        dir.path(),
        "https://ntfy.sh",
        &format!("server: {{listen: '127.0.0.1:{port}'}}\n"),
    );
    let http = reqwest::Client::new();
    let enabled = |base: String| {
        let http = http.clone();
        async move {
            let v: Value = http
                .get(format!("{base}/api/v1/plugins/console"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["enabled"].clone()
        }
    };
    let mut first = Service::spawn(&path, port);
    assert!(first.ready().await, "{:#?}", first.logs());
    assert_eq!(enabled(first.base.clone()).await, true);
    let r = http
        .post(format!("{}/api/v1/plugins/console/disable", first.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(first.terminate().success());

    let second = Service::spawn(&path, port);
    assert!(second.ready().await, "{:#?}", second.logs());
    assert_eq!(
        enabled(second.base.clone()).await,
        false,
        "kept across the restart"
    );
    let overrides = std::fs::read_to_string(dir.path().join("overrides.yaml")).unwrap();
    assert!(
        overrides.contains("console:\n    enabled: false"),
        "{overrides}"
    );
    // `check` shows the merged result and where it came from.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mydia-plugins"))
        .arg("--config")
        .arg(&path)
        .arg("check")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("plugins.console.enabled = false (overrides.yaml)"),
        "{stdout}"
    );
    // Enabled again, as config.yaml says: the override goes, nothing shows "changed here".
    let r = http
        .post(format!("{}/api/v1/plugins/console/enable", second.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let overrides = std::fs::read_to_string(dir.path().join("overrides.yaml")).unwrap();
    assert!(!overrides.contains("enabled"), "{overrides}");
}

#[test]
fn the_binary_s_check_names_a_wrong_secret_without_quoting_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "hooks: {enabled: false}
plugins:
  ntfy:
    enabled: true
    topic: media
    password: 87654321
    auth_token: [tk_INALIST4242]
  pushover:
    enabled: true
    user_key: 31415926535
    api_token: azGDORePK8gMaC0QOYAMyEEuzJnyUi
",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mydia-plugins"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    for named in [
        "plugins.ntfy.password",
        "plugins.ntfy.auth_token",
        "plugins.pushover.user_key",
    ] {
        assert!(text.contains(named), "{named} not named: {text}");
    }
    for shown in ["87654321", "tk_INALIST4242", "31415926535"] {
        assert!(!text.contains(shown), "check prints {shown}: {text}");
    }
}
