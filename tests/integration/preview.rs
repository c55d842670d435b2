//! `POST /api/v1/preview` and `mydia-plugins preview`: every plugin type previewed against
//! a mock server that must see zero requests, with nothing stored, secrets redacted, hooks
//! applied (a rejection shown), limits and subscriptions explained.

use std::path::Path;
use std::process::Command;

use mydia_plugins::{Config, Handle};
use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use std::time::Duration;

use crate::support::hook_service::write_files;
use crate::support::wait_until;

const SECRETS: &[&str] = &[
    "tk_NTFYSECRET",
    "TGSECRETTOKEN",
    "POAPITOKEN123",
    "POUSERKEY456",
    "DISCORDTOKEN123",
    "SLACKSECRET123",
    "WHQUERYSECRET",
    "WHHEADERSECRET",
];

/// Every delivery type, each with a secret of its own, pointed at `url`.
fn plugins_yaml(url: &str) -> String {
    format!(
        r#"
plugins:
  ntfy: {{enabled: true, server_url: "{url}/ntfy", allow_insecure_http: true, allow_private_network: true, topic: media, auth_token: tk_NTFYSECRET, events: [after_media_added, before_media_added]}}
  telegram: {{enabled: true, api_url: "{url}/tg", allow_insecure_http: true, allow_private_network: true, bot_token: "12345:TGSECRETTOKEN", chat_id: 7, events: [after_media_added]}}
  pushover: {{enabled: true, api_url: "{url}/po", allow_insecure_http: true, allow_private_network: true, user_key: POUSERKEY456, api_token: POAPITOKEN123, events: [after_media_added]}}
  discord: {{enabled: true, webhook_url: "{url}/api/webhooks/1/DISCORDTOKEN123", allow_insecure_http: true, allow_private_network: true, events: [after_media_added]}}
  slack: {{enabled: true, webhook_url: "{url}/services/T0/B0/SLACKSECRET123", allow_insecure_http: true, allow_private_network: true, events: [after_media_added]}}
  webhook: {{enabled: true, url: "{url}/hook?token=WHQUERYSECRET", headers: {{X-Key: WHHEADERSECRET}}, secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", allow_insecure_http: true, allow_private_network: true, events: [after_media_added]}}
  quiet: {{type: ntfy, enabled: true, server_url: "{url}/ntfy", allow_insecure_http: true, allow_private_network: true, topic: quiet, events: [on_download_failed]}}
"#
    )
}

async fn mock_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(400).set_body_string("no"))
        .mount(&server)
        .await;
    server
}

struct Served {
    base: String,
    handle: Handle,
    http: reqwest::Client,
}

async fn serve(yaml: &str) -> Served {
    let config = Config::parse(yaml, None).unwrap_or_else(|e| panic!("{e}"));
    let handle = mydia_plugins::start(&config).expect("start");
    Served {
        base: crate::support::serve_api(&handle),
        handle,
        http: reqwest::Client::new(),
    }
}

impl Served {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .body(body.to_string())
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

fn instance<'a>(preview: &'a Value, name: &str) -> &'a Value {
    preview["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["plugin"] == name)
        .unwrap_or_else(|| panic!("no instance {name} in {preview:#}"))
}

fn kinds(instance: &Value) -> Vec<&str> {
    instance["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["kind"].as_str().unwrap())
        .collect()
}

fn added(title: &str) -> Value {
    json!({"event": "after_media_added", "id": "preview-1", "data": {"media_item": {"title": title, "year": 2021, "type": "movie", "tmdb_id": 438631}}})
}

#[actix_rt::test]
async fn every_plugin_type_is_previewed_with_nothing_sent_or_stored_and_secrets_redacted() {
    let server = mock_server().await;
    let s = serve(&plugins_yaml(&server.uri())).await;
    let (status, v) = s.post("/api/v1/preview", &added("Dune")).await;
    assert_eq!(status, 200, "{v:#}");

    let url = server.uri();
    let expect = [
        ("ntfy", format!("{url}/ntfy/")),
        ("telegram", format!("{url}/tg/bot[redacted]/sendMessage")),
        ("pushover", format!("{url}/po/1/messages.json")),
        (
            "discord",
            format!("{url}/api/webhooks/1/[redacted]?wait=true"),
        ),
        ("slack", format!("{url}/[redacted]")),
        ("webhook", format!("{url}/hook?token=[redacted]")),
    ];
    for (name, want) in &expect {
        let i = instance(&v, name);
        assert_eq!(i["would_receive"], true, "{i:#}");
        let requests = i["requests"].as_array().unwrap();
        assert_eq!(requests.len(), 1, "{name}: {i:#}");
        assert_eq!(requests[0]["method"], "POST", "{name}");
        assert_eq!(requests[0]["url"], *want, "{name}: {i:#}");
        assert!(i.get("error").is_none(), "{name}: {i:#}");
    }
    // Bodies as the services get them: JSON as JSON, Pushover's form as its fields.
    let ntfy = &instance(&v, "ntfy")["requests"][0];
    assert_eq!(ntfy["body_format"], "json");
    assert_eq!(ntfy["body"]["topic"], "media");
    assert_eq!(ntfy["body"]["message"], "Dune (2021)");
    assert_eq!(ntfy["headers"]["authorization"], "Bearer [redacted]");
    let pushover = &instance(&v, "pushover")["requests"][0];
    assert_eq!(pushover["body_format"], "form");
    assert_eq!(pushover["body"]["token"], "[redacted]");
    assert_eq!(pushover["body"]["user"], "[redacted]");
    assert_eq!(pushover["body"]["title"], "Movie added");
    let webhook = &instance(&v, "webhook")["requests"][0];
    assert_eq!(webhook["headers"]["webhook-signature"], "[redacted]");
    assert_eq!(webhook["headers"]["x-key"], "[redacted]");
    assert_eq!(webhook["headers"]["webhook-id"], "preview-1");
    assert!(kinds(instance(&v, "webhook")).contains(&"per_delivery"));
    assert_eq!(webhook["body"]["data"]["media_item"]["title"], "Dune");
    assert_eq!(
        instance(&v, "discord")["requests"][0]["body"]["embeds"][0]["title"],
        "Movie added"
    );
    let text = v.to_string();
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} shows in {v:#}");
    }
    // Not subscribed: listed, not run.
    let quiet = instance(&v, "quiet");
    assert_eq!(quiet["would_receive"], false);
    assert_eq!(quiet["requests"], json!([]));
    assert_eq!(kinds(quiet), ["not_subscribed"]);

    // Nothing reached the server; nothing was stored: no delivery, and the event id is new.
    assert!(server.received_requests().await.unwrap().is_empty());
    let (_, listed) = s.get("/api/v1/deliveries").await;
    assert_eq!(listed["deliveries"], json!([]), "{listed:#}");
    let (status, emitted) = s.post("/api/v1/events", &added("Dune")).await;
    assert_eq!(status, 202, "{emitted:#}");
    assert_eq!(emitted["duplicate"], false, "the preview stored no event");
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn cut_text_and_escaping_are_explained_per_field() {
    let server = mock_server().await;
    let s = serve(&plugins_yaml(&server.uri())).await;
    let long = "x".repeat(5000);
    let (status, v) = s.post("/api/v1/preview", &added(&long)).await;
    assert_eq!(status, 200, "{v:#}");
    let ntfy = instance(&v, "ntfy");
    let cut = ntfy["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["kind"] == "truncated" && w["field"] == "message")
        .unwrap_or_else(|| panic!("{ntfy:#}"));
    assert_eq!(cut["from"], 5007, "{cut:#}");
    assert_eq!(cut["to"], 4096);
    assert_eq!(cut["unit"], "bytes");
    let pushover = instance(&v, "pushover");
    assert!(pushover["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["field"] == "message" && w["from"] == 5007 && w["to"] == 1024));

    let (_, v) = s
        .post("/api/v1/preview", &added("<b>@everyone *x*</b>"))
        .await;
    let telegram = instance(&v, "telegram");
    let text = telegram["requests"][0]["body"]["text"].as_str().unwrap();
    assert!(text.contains("&lt;b&gt;@everyone *x*&lt;/b&gt;"), "{text}");
    assert!(kinds(telegram).contains(&"escaped"), "{telegram:#}");
    for name in ["discord", "slack"] {
        assert!(kinds(instance(&v, name)).contains(&"escaped"), "{name}");
    }
    assert!(
        !kinds(instance(&v, "ntfy")).contains(&"escaped"),
        "plain text"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn hooks_change_what_is_previewed_and_a_rejection_is_shown_not_applied() {
    let server = mock_server().await;
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            (
                "after_media_added/10_title.lua",
                "function hook(e) e.data.media_item.title = 'Changed by hook'; return e end",
            ),
            (
                "before_media_added/10_no.lua",
                "function hook(e) reject('no cams') end",
            ),
        ],
    );
    let yaml = format!(
        "hooks: {{directory: {}}}\n{}",
        dir.path().display(),
        plugins_yaml(&server.uri())
    );
    let s = serve(&yaml).await;

    let (status, v) = s.post("/api/v1/preview", &added("Dune")).await;
    assert_eq!(status, 200, "{v:#}");
    assert_eq!(v["hooks"]["ran"], true);
    assert_eq!(v["hooks"]["changed"], true);
    assert_eq!(v["event"]["data"]["media_item"]["title"], "Changed by hook");
    let ntfy = instance(&v, "ntfy");
    assert_eq!(
        ntfy["requests"][0]["body"]["message"],
        "Changed by hook (2021)"
    );

    let body = json!({"event": "before_media_added", "data": {"media_item": {"title": "Cam rip"}}, "plugins": ["ntfy"]});
    let (status, v) = s.post("/api/v1/preview", &body).await;
    assert_eq!(status, 200, "{v:#}");
    assert_eq!(
        v["hooks"]["rejected"]["hook"],
        "before_media_added/10_no.lua"
    );
    assert_eq!(v["hooks"]["rejected"]["reason"], "no cams");
    assert!(
        v["warnings"][0].as_str().unwrap().contains("rejected"),
        "{v:#}"
    );
    let ntfy = instance(&v, "ntfy");
    assert_eq!(ntfy["would_receive"], false);
    assert_eq!(ntfy["requests"].as_array().unwrap().len(), 1, "still shown");

    // The dry runs counted nothing against the hooks.
    let (_, hooks) = s.get("/api/v1/hooks").await;
    for h in hooks["hooks"].as_array().unwrap() {
        assert_eq!(
            (h["runs"].as_u64(), h["rejections"].as_u64()),
            (Some(0), Some(0)),
            "{h:#}"
        );
    }
    assert!(server.received_requests().await.unwrap().is_empty());
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn a_stored_delivery_is_previewed_by_its_id_for_its_own_instance() {
    let server = mock_server().await;
    let s = serve(&plugins_yaml(&server.uri())).await;
    // A real event: the mock answers 400, so its deliveries die.
    let body = json!({"event": "on_download_failed", "id": "real-1", "data": {"media_item": {"title": "Dune"}, "error_message": "no seeds"}});
    let (status, _) = s.post("/api/v1/events", &body).await;
    assert_eq!(status, 202);
    let dead = "/api/v1/deliveries?plugin=quiet&state=dead";
    let died = wait_until(Duration::from_secs(20), || async {
        let (_, listed) = s.get(dead).await;
        listed["deliveries"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    })
    .await;
    assert!(died, "the delivery died");
    let (_, listed) = s.get(dead).await;
    let id = listed["deliveries"][0]["id"].as_str().unwrap().to_owned();
    let sent = server.received_requests().await.unwrap().len();

    let (status, v) = s.post("/api/v1/preview", &json!({"delivery": id})).await;
    assert_eq!(status, 200, "{v:#}");
    assert_eq!(v["delivery"], id);
    assert_eq!(v["event"]["id"], "real-1");
    let names: Vec<&str> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["plugin"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["quiet"]);
    let quiet = instance(&v, "quiet");
    assert!(quiet["requests"][0]["body"]["message"]
        .as_str()
        .unwrap()
        .contains("no seeds"));
    assert_eq!(server.received_requests().await.unwrap().len(), sent);

    let (status, v) = s
        .post("/api/v1/preview", &json!({"delivery": "00000000-999"}))
        .await;
    assert_eq!(status, 404, "{v:#}");
    assert!(v["error"].as_str().unwrap().contains("no delivery"));
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn bad_requests_are_400_with_what_to_fix() {
    let server = mock_server().await;
    let s = serve(&plugins_yaml(&server.uri())).await;
    let cases = [
        (json!({"event": "after_media_aded"}), "after_media_added"),
        (
            json!({"event": "after_media_added", "plugins": ["ntfyy"]}),
            "did you mean `ntfy`",
        ),
        (
            json!({"event": "after_media_added", "data": [1]}),
            "`data` must be a JSON object",
        ),
        (
            json!({"event": "after_media_added", "delivery": "x"}),
            "not both",
        ),
        (
            json!({"evnet": "after_media_added"}),
            "unknown field `evnet`",
        ),
        (json!([1]), "must be a JSON object"),
    ];
    for (body, says) in cases {
        let (status, v) = s.post("/api/v1/preview", &body).await;
        assert_eq!(status, 400, "{body}: {v:#}");
        let error = v["error"].as_str().unwrap();
        assert!(error.contains(says), "{body}: {error}");
    }
    // Naming only instances that do not get the event: "nothing subscribed".
    let (status, v) = s
        .post(
            "/api/v1/preview",
            &json!({"event": "on_playback_started", "plugins": ["ntfy"]}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("nothing subscribed"),
        "{v:#}"
    );
    assert_eq!(
        instance(&v, "ntfy")["requests"].as_array().unwrap().len(),
        1
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    s.handle.shutdown().await;
}

fn cli(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mydia-plugins"))
        .args(["--log", "warn", "--config"])
        .arg(config)
        .arg("preview")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[actix_rt::test]
async fn the_cli_prints_a_report_sends_nothing_and_writes_no_store() {
    let server = mock_server().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, plugins_yaml(&server.uri())).unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(&event, added("Dune").to_string()).unwrap();
    let event = event.to_str().unwrap();

    let (code, out, err) = cli(&config, &["--event", event, "--plugin", "telegram"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Nothing was sent"), "{out}");
    assert!(
        out.contains("== telegram (telegram): would receive it"),
        "{out}"
    );
    assert!(out.contains("/tg/bot[redacted]/sendMessage"), "{out}");
    assert!(
        out.contains("\"parse_mode\": \"HTML\""),
        "pretty JSON body: {out}"
    );
    assert!(!out.contains("== ntfy"), "only the named instance: {out}");
    assert!(!out.contains("TGSECRETTOKEN"), "{out}");

    let (code, out, err) = cli(&config, &["--event", event, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["instances"].as_array().unwrap().len(), 7);

    assert!(server.received_requests().await.unwrap().is_empty());
    assert!(
        !dir.path().join("data").exists(),
        "no store file was created"
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let typo = dir.path().join("typo.json");
    std::fs::write(&typo, r#"{"event": "after_media_aded"}"#).unwrap();
    let missing = dir.path().join("missing.json");
    let cases: [(&Path, &[&str], &str); 4] = [
        (&missing, &[], "cannot read the event file"),
        (&bad, &[], "invalid request body"),
        (&typo, &[], "did you mean `after_media_added`"),
        (
            Path::new(event),
            &["--plugin", "telegran"],
            "did you mean `telegram`",
        ),
    ];
    for (file, extra, says) in cases {
        let mut args = vec!["--event", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, out, err) = cli(&config, &args);
        assert_eq!(code, 2, "{file:?} {extra:?}: {out}\n{err}");
        assert!(err.contains(says), "{file:?} {extra:?}: {err}");
    }
}

#[actix_rt::test]
async fn enrichment_runs_only_when_asked_and_its_fields_are_previewed() {
    const COVER: &str = "https://s4.anilist.co/cover/199.jpg";
    let server = mock_server().await;
    let anilist = MockServer::start().await;
    let page = json!({"data": {"Page": {"media": [{
        "id": 199, "idMal": 199, "title": {"romaji": "Sen to Chihiro no Kamikakushi", "english": "Spirited Away", "native": "千と千尋の神隠し"},
        "synonyms": [], "format": "MOVIE", "episodes": 1, "seasonYear": 2001, "startDate": {"year": 2001},
        "coverImage": {"large": COVER}, "bannerImage": null, "genres": ["Adventure"],
        "averageScore": 86, "siteUrl": "https://anilist.co/anime/199", "description": "A girl."
    }]}}});
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(page))
        .mount(&anilist)
        .await;
    let yaml = format!(
        "{}  anilist: {{enabled: true, api_url: \"{}/anilist\", allow_insecure_http: true, allow_private_network: true, events: [after_media_added]}}\n",
        plugins_yaml(&server.uri()),
        anilist.uri()
    );
    let s = serve(&yaml).await;
    let mut body = json!({"event": "after_media_added", "data": {"media_item": {"title": "Spirited Away", "year": 2001,
        "type": "movie", "tmdb_id": 129, "genres": ["Animation"], "original_language": "ja"}}, "plugins": ["discord"]});

    let (status, v) = s.post("/api/v1/preview", &body).await;
    assert_eq!(status, 200, "{v:#}");
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap()
            .contains("enrichment not run: anilist"),
        "{v:#}"
    );
    assert!(anilist.received_requests().await.unwrap().is_empty());

    body["enrich"] = json!(true);
    let (status, v) = s.post("/api/v1/preview", &body).await;
    assert_eq!(status, 200, "{v:#}");
    assert_eq!(v["enrichment"][0]["plugin"], "anilist", "{v:#}");
    assert_eq!(
        v["event"]["data"]["media_item"]["poster_url"], COVER,
        "{v:#}"
    );
    let embed = &instance(&v, "discord")["requests"][0]["body"]["embeds"][0];
    assert_eq!(embed["thumbnail"]["url"], COVER, "{embed:#}");
    assert!(!anilist.received_requests().await.unwrap().is_empty());

    let (status, v) = s
        .post(
            "/api/v1/preview",
            &json!({"event": "after_media_added", "plugins": ["anilist"]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        v["error"].as_str().unwrap().contains("enrichment plugin"),
        "{v:#}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    s.handle.shutdown().await;
}

#[actix_rt::test]
async fn a_template_that_fails_is_shown_falling_back_to_the_built_in_text() {
    let server = mock_server().await;
    let yaml = format!(
        r#"
plugins:
  ntfy:
    enabled: true
    server_url: "{}/ntfy"
    allow_insecure_http: true
    allow_private_network: true
    topic: media
    events: [after_media_added]
    templates:
      after_media_added:
        title: "{{% for i in range(100000) %}}{{% for j in range(100000) %}}x{{% endfor %}}{{% endfor %}}"
        message: "{{{{ media_item.title }}}} is in"
"#,
        server.uri()
    );
    let s = serve(&yaml).await;
    let (status, v) = s.post("/api/v1/preview", &added("Dune")).await;
    assert_eq!(status, 200, "{v:#}");
    let ntfy = instance(&v, "ntfy");
    let fell_back = ntfy["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["kind"] == "template_fallback")
        .unwrap_or_else(|| panic!("{ntfy:#}"));
    assert!(
        fell_back["message"]
            .as_str()
            .unwrap()
            .contains("after_media_added.title"),
        "{fell_back:#}"
    );
    let body = &ntfy["requests"][0]["body"];
    assert_eq!(body["title"], "Movie added", "the built-in title: {body:#}");
    assert_eq!(
        body["message"], "Dune is in",
        "the part that worked: {body:#}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    s.handle.shutdown().await;
}
