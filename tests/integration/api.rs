//! The HTTP API against the real server, started by the test on 127.0.0.1 with a free port.

use mydia_plugins::plugins::PluginError;
use mydia_plugins::supervisor::InstanceSpec;
use mydia_plugins::{api, start_with, Handle};
use serde_json::{json, Value};

use crate::support::scripted::{Mode, Script};
use crate::support::{fast_config, wait_until};

struct Served {
    base: String,
    handle: Handle,
    http: reqwest::Client,
}

async fn serve(specs: Vec<InstanceSpec>) -> Served {
    let handle = start_with(&fast_config(), specs).expect("start");
    Served {
        base: crate::support::serve_api(&handle),
        handle,
        http: reqwest::Client::new(),
    }
}

impl Served {
    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

#[actix_rt::test]
async fn post_event_returns_202_with_id_and_data_and_delivers() {
    let script = Script::new(Mode::Ok);
    let s = serve(vec![script.spec("sink")]).await;
    let body = json!({"event": "after_media_added", "data": {"media_item": {"title": "Dune", "year": 2021}}});
    let (status, v) = s.post("/api/v1/events", &body.to_string()).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["event"], "after_media_added");
    assert_eq!(v["data"]["media_item"]["year"], 2021);
    assert_eq!(v["plugins"], 1);
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a generated uuid: {id}");
    assert!(
        wait_until(std::time::Duration::from_secs(5), || async {
            script.delivered_count() == 1
        })
        .await
    );
    assert_eq!(script.delivered_ids(), vec![id]);
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn caller_id_and_upstream_alias_are_kept() {
    let s = serve(vec![]).await;
    let (status, v) = s
        .post(
            "/api/v1/events",
            r#"{"event": "download.completed", "id": "evt-42", "data": {}}"#,
        )
        .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["id"], "evt-42");
    assert_eq!(v["event"], "on_download_completed");
    assert_eq!(v["plugins"], 0);
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn sync_mode_returns_200_with_each_plugin_outcome() {
    let ok = Script::new(Mode::Ok);
    let bad = Script::new(Mode::Fail(PluginError::Rejected {
        status: Some(400),
        reason: "400: message too long".into(),
    }));
    let s = serve(vec![ok.spec("ok"), bad.spec("bad")]).await;
    let (status, v) = s.post("/api/v1/events", r#"{"event": "on_import_failed", "mode": "sync", "data": {"error_message": "disk full"}}"#).await;
    assert_eq!(status, 200, "{v}");
    let mut d = v["deliveries"].as_array().unwrap().clone();
    d.sort_by_key(|r| r["plugin"].as_str().unwrap().to_owned());
    assert_eq!(d[0]["plugin"], "bad");
    assert_eq!(d[0]["status"], "failed");
    assert_eq!(d[0]["error_kind"], "rejected");
    assert_eq!(
        d[0]["error"],
        "rejected by the service: 400: message too long"
    );
    assert_eq!(d[1]["plugin"], "ok");
    assert_eq!(d[1]["status"], "delivered");
    assert_eq!(d[1]["detail"], "ok");
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn bad_requests_get_400_saying_what_is_wrong() {
    let s = serve(vec![]).await;
    let cases = [
        ("{not json", "invalid request body"),
        ("", "invalid request body"),
        (r#"{"data": {}}"#, "missing field `event`"),
        (
            r#"{"event": "after_media_aded"}"#,
            "did you mean `after_media_added`",
        ),
        (r#"{"event": "nope"}"#, "known events: before_media_added"),
        (
            r#"{"event": "after_media_added", "data": [1]}"#,
            "`data` must be a JSON object, got an array",
        ),
        (
            r#"{"event": "after_media_added", "data": "x"}"#,
            "got a string",
        ),
        (
            r#"{"event": "after_media_added", "mode": "later"}"#,
            "`mode` must be \"async\"",
        ),
        (
            r#"{"event": "after_media_added", "evnet": 1}"#,
            "unknown field `evnet`",
        ),
        (
            r#"{"event": "after_media_added", "id": ""}"#,
            "`id` must be a non-empty string",
        ),
    ];
    for (body, expect) in cases {
        let (status, v) = s.post("/api/v1/events", body).await;
        assert_eq!(status, 400, "{body} -> {v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains(expect),
            "{body}: {msg:?} should contain {expect:?}"
        );
    }
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn plugins_list_shows_state_and_counters() {
    let ok = Script::new(Mode::Ok);
    let off = Script::new(Mode::Ok);
    let s = serve(vec![
        ok.spec("ok")
            .with_events([mydia_plugins::EventName::AfterMediaAdded]),
        off.spec("off").with_enabled(false),
    ])
    .await;
    s.post(
        "/api/v1/events",
        r#"{"event": "after_media_added", "mode": "sync"}"#,
    )
    .await;
    let (status, v) = s.get("/api/v1/plugins").await;
    assert_eq!(status, 200);
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let ok_v = &list[0];
    for field in [
        "name",
        "type",
        "enabled",
        "events",
        "state",
        "restarts",
        "delivered",
        "failed",
        "last_error",
    ] {
        assert!(ok_v.get(field).is_some(), "missing {field}: {ok_v}");
    }
    assert_eq!(ok_v["name"], "ok");
    assert_eq!(ok_v["state"], "closed");
    assert_eq!(ok_v["delivered"], 1);
    assert_eq!(ok_v["events"], json!(["after_media_added"]));
    assert_eq!(list[1]["state"], "disabled");
    assert_eq!(list[1]["enabled"], false);

    let (status, one) = s.get("/api/v1/plugins/ok").await;
    assert_eq!((status, &one["name"]), (200, &json!("ok")));
    let (status, missing) = s.get("/api/v1/plugins/nope").await;
    assert_eq!(status, 404);
    assert!(
        missing["error"]
            .as_str()
            .unwrap()
            .contains("configured: ok, off"),
        "{missing}"
    );
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn test_endpoint_reports_pass_fail_and_unknown() {
    let ok = Script::new(Mode::Ok);
    let bad = Script::new(Mode::Fail(PluginError::Misconfigured {
        status: Some(401),
        reason: "401 Unauthorized: check auth_token".into(),
    }));
    let s = serve(vec![ok.spec("ok"), bad.spec("bad")]).await;
    let (status, v) = s.post("/api/v1/plugins/ok/test", "").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!({"plugin": "ok", "ok": true, "detail": "scripted ok", "sent_message": false})
    );
    let (status, v) = s.post("/api/v1/plugins/bad/test", "").await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["error_kind"], "misconfigured");
    assert_eq!(
        v["error"],
        "misconfigured: 401 Unauthorized: check auth_token"
    );
    let (status, v) = s.post("/api/v1/plugins/ghost/test", "").await;
    assert_eq!(status, 404);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("no plugin instance named `ghost`"));
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn healthz_catalog_unknown_routes_and_shutdown() {
    let s = serve(vec![Script::new(Mode::Ok).spec("ok")]).await;
    let (status, v) = s.get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["plugins"]["closed"], 1);
    let (status, v) = s.get("/api/v1/events").await;
    assert_eq!(status, 200);
    let names: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), mydia_plugins::EventName::ALL.len());
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["alias"] == "media_item.added"));
    let (status, v) = s.get("/api/v2/nothing").await;
    assert_eq!(status, 404);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("no route for GET /api/v2/nothing"));
    s.handle.shutdown().await;
    let (status, v) = s
        .post("/api/v1/events", r#"{"event": "after_media_added"}"#)
        .await;
    assert_eq!(status, 503, "{v}");
    assert!(v["error"].as_str().unwrap().contains("shutting down"));
}

#[actix_rt::test]
async fn only_a_json_object_is_an_event_and_health_events_are_the_services_own() {
    let s = serve(vec![]).await;
    for (body, expect) in [
        (
            r#"["after_media_added", {"media_item": {}}]"#,
            "the body must be a JSON object, got an array",
        ),
        (r#""after_media_added""#, "got a string"),
        ("42", "got a number"),
        ("null", "got null"),
        (
            r#"{"event": "on_plugin_health_changed", "data": {"plugin": "ntfy", "healthy": false}}"#,
            "sent by this service itself",
        ),
    ] {
        let (status, v) = s.post("/api/v1/events", body).await;
        assert_eq!(status, 400, "{body} -> {v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains(expect),
            "{body}: {msg:?} should contain {expect:?}"
        );
    }
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn a_body_over_the_limit_gets_413_as_json() {
    let s = serve(vec![]).await;
    let event = |pad: usize| {
        json!({"event": "after_media_added", "data": {"pad": "x".repeat(pad)}}).to_string()
    };
    let r = s
        .http
        .post(format!("{}/api/v1/events", s.base))
        .body(event(1024 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "the default limit is 1 MiB");
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(ct, "application/json");
    let v: Value = r.json().await.unwrap();
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("1024 KiB") && msg.contains("server.max_body_kb"),
        "{msg}"
    );
    let (status, v) = s.post("/api/v1/events", &event(1000 * 1000)).await;
    assert_eq!(status, 202, "just under the limit: {v}");
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn a_wrong_method_gets_405_with_allow_and_head_works_where_get_does() {
    let s = serve(vec![Script::new(Mode::Ok).spec("ok")]).await;
    for (method, path, allow) in [
        ("DELETE", "/api/v1/events", "GET, HEAD, POST"),
        ("POST", "/healthz", "GET, HEAD"),
        ("GET", "/api/v1/plugins/ok/test", "POST"),
        ("PUT", "/api/v1/plugins/ok", "GET, HEAD"),
    ] {
        let r = s
            .http
            .request(method.parse().unwrap(), format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains(&format!("allowed: {allow}")),
            "{v}"
        );
    }
    for path in [
        "/healthz",
        "/readyz",
        "/api/v1/plugins",
        "/api/v1/plugins/ok",
        "/api/v1/events",
        "/api/v1/hooks",
    ] {
        let r = s
            .http
            .head(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "HEAD {path}");
        assert_eq!(r.bytes().await.unwrap().len(), 0, "HEAD {path} has no body");
    }
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn the_404_names_every_route() {
    let s = serve(vec![]).await;
    let (status, v) = s.post("/api/v1/nothing", "").await;
    assert_eq!(status, 404);
    let msg = v["error"].as_str().unwrap();
    for route in [
        "GET /healthz",
        "GET /readyz",
        "GET /api/v1/events",
        "POST /api/v1/events",
        "GET /api/v1/hooks",
        "GET /api/v1/plugins",
        "GET /api/v1/plugins/{name}",
        "POST /api/v1/plugins/{name}/test",
    ] {
        assert!(msg.contains(route), "{route} missing from {msg}");
    }
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn healthz_stays_200_and_says_degraded_when_a_plugin_is_not_healthy() {
    let bad = Script::new(Mode::Fail(PluginError::Misconfigured {
        status: Some(401),
        reason: "401 Unauthorized".into(),
    }));
    let s = serve(vec![Script::new(Mode::Ok).spec("ok"), bad.spec("bad")]).await;
    let (status, v) = s.get("/healthz").await;
    assert_eq!((status, &v["status"]), (200, &json!("ok")), "{v}");
    s.post(
        "/api/v1/events",
        r#"{"event": "on_import_failed", "mode": "sync"}"#,
    )
    .await;
    assert!(
        wait_until(std::time::Duration::from_secs(5), || async {
            s.get("/healthz").await.1["status"] == "degraded"
        })
        .await
    );
    let (status, v) = s.get("/healthz").await;
    assert_eq!(status, 200, "liveness: the service itself runs");
    assert_eq!(v["plugins"]["misconfigured"], 1, "{v}");
    assert_eq!(v["plugins"]["closed"], 1, "{v}");
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn readyz_is_503_while_starting_and_shutting_down() {
    let handle = start_with(&fast_config(), vec![]).expect("start");
    let readiness = api::Readiness::default();
    let mut config = fast_config().server;
    config.listen = "127.0.0.1:0".parse().unwrap();
    let (server, addrs) = api::serve(&config, handle.clone(), readiness.clone()).unwrap();
    actix_rt::spawn(server);
    let http = reqwest::Client::new();
    let readyz = || async {
        let r = http
            .get(format!("http://{}/readyz", addrs[0]))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };
    let (status, v) = readyz().await;
    assert_eq!((status, &v["status"]), (503, &json!("starting")), "{v}");
    assert!(v["error"].is_string(), "{v}");
    readiness.set_ready();
    assert_eq!(readyz().await.0, 200);
    readiness.set_shutting_down();
    let (status, v) = readyz().await;
    assert_eq!(
        (status, &v["status"]),
        (503, &json!("shutting_down")),
        "{v}"
    );
    handle.shutdown().await;
}

#[actix_rt::test]
async fn settings_show_values_and_their_source_and_never_a_secret() {
    let yaml = "plugins:\n  ntfy: {enabled: true, topic: media, priority: 4, auth_token: tk_SETTINGSSECRET}\n  tg: {type: telegram, bot_token: '1:TGSETTINGSSECRET', chat_id: 5}\n";
    let config = mydia_plugins::Config::parse(yaml, None).unwrap();
    let handle = mydia_plugins::start(&config).expect("start");
    let s = Served {
        base: crate::support::serve_api(&handle),
        handle,
        http: reqwest::Client::new(),
    };
    let (status, v) = s.get("/api/v1/plugins/ntfy/settings").await;
    assert_eq!(status, 200, "{v}");
    let field = |name: &str| {
        v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(field("priority")["value"], 4);
    assert_eq!(field("priority")["source"], "file");
    assert_eq!(field("server_url")["source"], "default");
    assert_eq!(field("auth_token")["value"], "set");
    assert_eq!(field("password")["value"], Value::Null);
    let (_, tg) = s.get("/api/v1/plugins/tg/settings").await;
    for text in [v.to_string(), tg.to_string()] {
        assert!(!text.contains("SETTINGSSECRET"), "{text}");
    }
    assert_eq!(tg["common"]["enabled"], false);
    let (status, v) = s.get("/api/v1/plugins/nope/settings").await;
    assert_eq!(status, 404);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("configured: ntfy, tg"),
        "{v}"
    );
    s.handle.shutdown().await;
}
