//! The operator's page in a real headless browser (chromium through chromedriver): sign in
//! with the API token, see the plugins and their states, press Test against a mock
//! server, retry a dead letter, look at the hooks, and change a setting (an invalid value
//! shows its error beside the field; a valid one applies at once), and reload the config
//! (a broken file refused with its line, a fixed one applied). A screenshot of each page
//! is saved under `target/screenshots/`.

use std::net::SocketAddr;

use mydia_plugins::api::{self, Readiness};
use mydia_plugins::config::Config;
use mydia_plugins::event::EventName;
use mydia_plugins::plugins::PluginError;
use mydia_plugins::supervisor::InstanceSpec;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::data;
use crate::support::browser::{Browser, PAGE_WAIT};
use crate::support::scripted::{Mode, Script};
use crate::support::{fast_supervision, state, wait_until};

const TOKEN: &str = "browser-test-token-0123456789";

#[actix_rt::test]
async fn the_page_shows_plugins_tests_one_and_retries_a_dead_letter() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let ntfy = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/health"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"healthy": true})),
        )
        .mount(&ntfy)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": "m1"})))
        .mount(&ntfy)
        .await;
    let yaml = format!(
        "server: {{listen: 127.0.0.1:0, api_token: {TOKEN}}}\nhooks: {{enabled: false}}\nplugins:\n  ntfy: {{enabled: true, server_url: '{}', topic: mydia, allow_insecure_http: true, allow_private_network: true, events: [on_download_failed]}}\n",
        ntfy.uri()
    );
    // From a file, so the settings form can keep a change (in overrides.yaml beside it).
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, &yaml).unwrap();
    let mut config = Config::load(&config_path).expect("the test config");
    config.supervision = fast_supervision();
    let picky = Script::new(Mode::Fail(PluginError::Rejected {
        status: Some(400),
        reason: "400 Bad Request: message too long".into(),
    }));
    let sink = Script::new(Mode::Ok);
    let only = || vec![EventName::AfterMediaAdded];
    let specs = vec![
        InstanceSpec::from_config(&config.plugins[0]),
        sink.spec("sink").with_events(only()),
        picky.spec("picky").with_events(only()),
    ];
    let handle = mydia_plugins::start_with(&config, specs).expect("start");
    let readiness = Readiness::default();
    readiness.set_ready();
    let (server, addrs): (_, Vec<SocketAddr>) =
        api::serve(&config.server, handle.clone(), readiness).unwrap();
    actix_rt::spawn(server);
    let base = format!("http://{}", addrs[0]);
    handle
        .emit(
            EventName::AfterMediaAdded,
            data!({"media_item": {"title": "Dune", "year": 2021}}),
        )
        .await
        .unwrap();
    assert!(
        wait_until(PAGE_WAIT, || async {
            state(&handle, "picky").await.dead == 1
        })
        .await
    );

    // Without the session the page asks for the token; a wrong one is refused.
    let b = &browser;
    b.client.goto(&format!("{base}/")).await.unwrap();
    b.text_when("h1", |t| t == "Sign in").await;
    b.screenshot("sign-in").await;
    let token_field = b
        .client
        .find(fantoccini::Locator::Css("input[name=token]"))
        .await
        .unwrap();
    token_field.send_keys("not-the-token-at-all").await.unwrap();
    b.click("form.login button[type=submit]").await;
    b.text_when("p.error", |t| t.contains("not the token"))
        .await;
    let token_field = b
        .client
        .find(fantoccini::Locator::Css("input[name=token]"))
        .await
        .unwrap();
    token_field.send_keys(TOKEN).await.unwrap();
    b.click("form.login button[type=submit]").await;

    // The plugins, each with its state in words.
    b.text_when("h1", |t| t == "Plugins").await;
    let sink_row = b
        .text_when("tr[data-plugin=sink]", |t| t.contains("healthy"))
        .await;
    assert!(sink_row.contains("sink"), "{sink_row}");
    let picky_row = b
        .text_when("tr[data-plugin=picky]", |t| t.contains("picky"))
        .await;
    assert!(
        picky_row.contains("healthy"),
        "a 400 is the message's fault, not the plugin's: {picky_row}"
    );
    b.text_when("tr[data-plugin=picky] td.dead", |t| t == "1")
        .await;
    b.text_when("tr[data-plugin=ntfy]", |t| t.contains("healthy"))
        .await;

    // Test proves the connection against the mock server, and says what it proved.
    b.click("tr[data-plugin=ntfy] button[data-post]").await;
    let said = b
        .text_when("#test-ntfy", |t| {
            t.starts_with("ok:") || t.starts_with("failed")
        })
        .await;
    assert!(said.starts_with("ok:"), "{said}");
    let health_checks = ntfy.received_requests().await.unwrap();
    assert!(
        health_checks.iter().any(|r| r.url.path() == "/v1/health"),
        "{health_checks:?}"
    );
    b.screenshot("plugins").await;

    // Disable and enable at once, from the page.
    b.click("tr[data-plugin=sink] button.toggle").await;
    b.text_when("tr[data-plugin=sink] .badge", |t| t == "disabled")
        .await;
    assert_eq!(state(&handle, "sink").await.state, "disabled");
    b.click("tr[data-plugin=sink] button.toggle").await;
    b.text_when("tr[data-plugin=sink] .badge", |t| t == "healthy")
        .await;
    assert_eq!(state(&handle, "sink").await.state, "closed");

    // ntfy's settings: the file's values, the defaults, and secrets only as set or not.
    b.click("tr[data-plugin=ntfy] a[href='/plugins/ntfy']")
        .await;
    b.text_when("h1", |t| t.starts_with("Settings: ntfy")).await;
    b.text_when("tr[data-field=topic] td.source", |t| {
        t == "from config.yaml"
    })
    .await;
    let value_of = |css: &'static str| async move {
        let input = b.client.find(fantoccini::Locator::Css(css)).await.unwrap();
        input.prop("value").await.unwrap().unwrap_or_default()
    };
    assert_eq!(value_of("input[name=topic]").await, "mydia");
    assert_eq!(
        value_of("input[name=auth_token]").await,
        "",
        "a secret's input is empty"
    );
    b.text_when("tr[data-field=priority]", |t| t.contains("default"))
        .await;
    b.text_when("tr[data-field=auth_token] td.value", |t| {
        t.contains("not set")
    })
    .await;
    b.client.goto(&format!("{base}/")).await.unwrap();

    // The dead letter, retried from the activity page once the plugin would take it.
    b.click("tr[data-plugin=picky] a[href^='/activity']").await;
    b.text_when("h1", |t| t == "Activity: picky").await;
    let row = b.text_when("tbody tr", |t| t.contains("dead")).await;
    assert!(
        row.contains("400 Bad Request"),
        "the reason is shown: {row}"
    );
    picky.set(Mode::Ok);
    b.click("tbody tr button[data-post$='/retry']").await;
    // The retry went through the page's session and its CSRF token.
    let said = b
        .text_when("tbody tr output", |t| !t.is_empty() && t != "working…")
        .await;
    assert_eq!(said, "now pending");
    assert!(wait_until(PAGE_WAIT, || async { picky.delivered_count() == 1 }).await);
    b.text_when("tbody tr", |t| t.contains("delivered")).await;
    b.screenshot("activity").await;

    b.click("nav a[href='/hooks']").await;
    b.text_when("main", |t| t.contains("No hooks are loaded"))
        .await;
    b.screenshot("hooks").await;

    // Try an event: its preview shows ntfy's request and sends nothing; Send sends it.
    b.click("nav a[href='/try']").await;
    b.text_when("h1", |t| t == "Try an event").await;
    b.click("select[name=event] option[value=on_download_failed]")
        .await;
    b.text_when("textarea[name=data]", |t| t.contains("error_message"))
        .await;
    b.click("form[data-try] button[value=preview]").await;
    let request = b
        .text_when("#try-result section[data-instance=ntfy] pre.request", |t| {
            t.starts_with("POST")
        })
        .await;
    assert!(request.contains("\"topic\": \"mydia\""), "{request}");
    let posts =
        |reqs: &[wiremock::Request]| reqs.iter().filter(|r| r.method.as_str() == "POST").count();
    assert_eq!(
        posts(&ntfy.received_requests().await.unwrap()),
        0,
        "a preview sends nothing"
    );
    b.screenshot("try").await;
    b.click("form[data-try] button[value=send]").await;
    b.text_when("#try-result", |t| t.starts_with("Sent: accepted as"))
        .await;
    assert!(
        wait_until(PAGE_WAIT, || async {
            posts(&ntfy.received_requests().await.unwrap()) == 1
        })
        .await
    );
    // The delivery's own preview, from its activity row.
    b.client
        .goto(&format!("{base}/activity?plugin=ntfy"))
        .await
        .unwrap();
    b.text_when("tbody tr", |t| t.contains("delivered")).await;
    b.click("tbody tr button[data-preview]").await;
    b.text_when("tbody tr .try-result pre.request", |t| {
        t.starts_with("POST")
    })
    .await;

    // A phone-sized window still shows every plugin.
    b.client.set_window_size(390, 844).await.unwrap();
    b.client.goto(&format!("{base}/")).await.unwrap();
    b.text_when("tr[data-plugin=ntfy]", |t| t.contains("healthy"))
        .await;
    b.screenshot("plugins-phone").await;

    // Change a setting: an invalid value shows its error beside the field and changes
    // nothing; a valid one is kept in overrides.yaml and applies without a restart.
    b.client.set_window_size(1280, 900).await.unwrap();
    b.client
        .goto(&format!("{base}/plugins/ntfy"))
        .await
        .unwrap();
    b.text_when("h1", |t| t.starts_with("Settings: ntfy")).await;
    let set_priority = |value: &'static str| async move {
        let input = b
            .client
            .find(fantoccini::Locator::Css("input[name=priority]"))
            .await
            .unwrap();
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
        b.click("form[data-settings] button[type=submit]").await;
    };
    set_priority("9").await;
    let beside = b
        .text_when("tr[data-field=priority] .problem", |t| !t.is_empty())
        .await;
    assert!(beside.contains("between 1"), "{beside}");
    b.text_when("#settings-result", |t| t.contains("nothing was changed"))
        .await;
    assert!(!dir.path().join("overrides.yaml").exists());
    set_priority("5").await;
    b.text_when("#settings-result", |t| t.starts_with("applied"))
        .await;
    b.text_when("tr[data-field=priority] td.source", |t| {
        t.contains("changed here")
    })
    .await;
    assert_eq!(value_of("input[name=priority]").await, "5");
    b.screenshot("settings").await;
    let before = posts(&ntfy.received_requests().await.unwrap());
    handle
        .emit(
            EventName::OnDownloadFailed,
            data!({"download": {"title": "x"}, "error_message": "disk full"}),
        )
        .await
        .unwrap();
    assert!(
        wait_until(PAGE_WAIT, || async {
            posts(&ntfy.received_requests().await.unwrap()) > before
        })
        .await
    );
    let last = ntfy.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(
        &last
            .iter()
            .rfind(|r| r.method.as_str() == "POST")
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(body["priority"], 5, "the next delivery uses it: {body}");

    // Reload config: a broken file is refused with its problem and line; a fixed one
    // applies (ntfy's topic changed: rebuilt; the others as they were).
    b.client.goto(&format!("{base}/")).await.unwrap();
    b.text_when("tr[data-plugin=ntfy]", |t| t.contains("healthy"))
        .await;
    std::fs::write(&config_path, yaml.replace("topic: mydia", "topic: [mydia]")).unwrap();
    b.click("button[data-post='/api/v1/reload']").await;
    b.text_when("#reload-result", |t| t.starts_with("not reloaded"))
        .await;
    let refused = b.text_when("#reload-result", |_| true).await;
    assert!(refused.contains("plugins.ntfy.topic (line 4)"), "{refused}");
    std::fs::write(&config_path, yaml.replace("topic: mydia", "topic: media2")).unwrap();
    b.click("button[data-post='/api/v1/reload']").await;
    let done = b
        .text_when("#reload-result", |t| t.starts_with("reloaded"))
        .await;
    assert!(done.contains("changed: ntfy"), "{done}");
    assert_eq!(state(&handle, "sink").await.state, "closed");
    b.screenshot("reloaded").await;

    browser.close().await;
    handle.shutdown().await;
}
