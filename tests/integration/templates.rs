//! Message templates through the real config loader and the running service: what each
//! service receives on the wire, and `check` against the real binary.
//!
//! The hostile text is `<b>@everyone *x*</b>`, in the template itself and in the data a
//! template shows: it must reach every service as literal text, never as markup, a
//! mention or a link.

use std::process::Command;

use mydia_plugins::event::EventName;
use mydia_plugins::Config;
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::data;

const EVIL: &str = "<b>@everyone *x*</b>";

/// A running service with one instance `chat` (its YAML after `{url}` is replaced) that
/// receives `after_media_added`, and the mock it talks to.
async fn deliver(instance: &str, answer: ResponseTemplate) -> Request {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer)
        .mount(&mock)
        .await;
    let instance = instance.replace("{url}", &mock.uri());
    let indented: String = instance.lines().map(|l| format!("    {l}\n")).collect();
    let yaml = format!(
        "hooks: {{enabled: false}}\nplugins:\n  chat:\n{indented}    enabled: true\n    allow_insecure_http: true\n    allow_private_network: true\n    events: [after_media_added]\n"
    );
    let config = Config::parse(&yaml, None).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    // `size` is not in the sample event `check` renders against, and a runaway loop runs
    // out of fuel there too: warnings, not problems.
    assert!(
        config
            .warnings
            .iter()
            .all(|w| w.message.contains("`size` is undefined")
                || w.message.contains("fails: engine ran out of fuel")),
        "{:?}",
        config.warnings
    );
    let handle = mydia_plugins::start(&config).expect("start");
    let data = data!({"media_item": {"title": EVIL, "year": 2021, "type": "movie", "tmdb_id": 438631,
        "overview": EVIL}, "size": 1_288_490_189u64});
    let done = handle
        .emit_sync(EventName::AfterMediaAdded, data)
        .await
        .unwrap();
    let report = done.deliveries.unwrap().remove(0);
    assert_eq!(report.status, "delivered", "{report:?}");
    handle.shutdown().await;
    let mut requests = mock.received_requests().await.expect("recording");
    assert_eq!(requests.len(), 1);
    requests.remove(0)
}

/// The template every plugin gets: the hostile text written in it and shown from the data.
fn templates(extra: &str) -> String {
    format!(
        "templates:\n  after_media_added:\n    title: \"{EVIL} {{{{ media_item.title }}}}\"\n    message: \"{EVIL}\\n{{{{ media_item.title }}}} · {{{{ size|filesize }}}}\"\n{extra}"
    )
}

fn json(request: &Request) -> Value {
    serde_json::from_slice(&request.body).expect("a JSON body")
}

#[actix_rt::test]
async fn ntfy_publishes_the_templated_text_as_plain_text_with_its_tags_and_click() {
    let extra = "    tags: \"{{ media_item.type }}, new\"\n    click: \"https://example.org/m/{{ media_item.tmdb_id }}\"\n";
    let yaml = format!(
        "type: ntfy\nserver_url: {{url}}\ntopic: t\n{}",
        templates(extra)
    );
    let body = json(&deliver(&yaml, ResponseTemplate::new(200).set_body_string("{}")).await);
    assert_eq!(body["title"], format!("{EVIL} {EVIL}"));
    assert_eq!(body["message"], format!("{EVIL}\n{EVIL} · 1.2 GiB"));
    assert_eq!(
        body["tags"],
        serde_json::json!(["movie", "new"]),
        "template tags replace the built-in emoji"
    );
    assert_eq!(body["click"], "https://example.org/m/438631");
    assert!(
        body.get("markdown").is_none(),
        "plain text: nothing is markup"
    );
}

#[actix_rt::test]
async fn telegram_escapes_template_and_data_for_its_html() {
    let yaml = format!(
        "type: telegram\napi_url: {{url}}\nbot_token: \"123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghi\"\nchat_id: 42\n{}",
        templates("")
    );
    let answer = ResponseTemplate::new(200)
        .set_body_json(serde_json::json!({"ok": true, "result": {"message_id": 7}}));
    let body = json(&deliver(&yaml, answer).await);
    assert_eq!(body["parse_mode"], "HTML");
    let text = body["text"].as_str().unwrap();
    let escaped = "&lt;b&gt;@everyone *x*&lt;/b&gt;";
    assert!(
        text.contains(&format!(
            "<b>{escaped} {escaped}</b>\n{escaped}\n{escaped} · 1.2 GiB"
        )),
        "{text}"
    );
    assert!(!text.contains("<b>@everyone"), "{text}");
}

#[actix_rt::test]
async fn pushover_sends_the_templated_text_plain_with_its_url() {
    let extra = "    url: \"https://example.org/m/{{ media_item.tmdb_id }}\"\n    url_title: \"Open {{ media_item.title }}\"\n";
    let yaml = format!(
        "type: pushover\napi_url: {{url}}\nuser_key: uQiRzpo4DXghDmr9QzzfQu27cmVRsG\napi_token: azGDORePK8gMaC0QOYAMyEEuzJnyUi\n{}",
        templates(extra)
    );
    let answer =
        ResponseTemplate::new(200).set_body_json(serde_json::json!({"status": 1, "request": "r"}));
    let request = deliver(&yaml, answer).await;
    let body = String::from_utf8(request.body.clone()).unwrap();
    let form: Vec<(String, String)> = reqwest::Url::parse(&format!("http://x/?{body}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(field("title"), Some(format!("{EVIL} {EVIL}").as_str()));
    assert_eq!(
        field("message"),
        Some(format!("{EVIL}\n{EVIL} · 1.2 GiB").as_str())
    );
    assert_eq!(
        field("html"),
        None,
        "plain text: Pushover shows the tags as written"
    );
    assert_eq!(field("url"), Some("https://example.org/m/438631"));
    assert_eq!(field("url_title"), Some(format!("Open {EVIL}").as_str()));
}

#[actix_rt::test]
async fn discord_escapes_markdown_and_pings_no_one() {
    let extra = "    color: \"#FF0000\"\n    fields:\n      - {name: \"{{ media_item.title }}\", value: \"{{ media_item.title }}\", inline: true}\n";
    let yaml = format!(
        "type: discord\nwebhook_url: {{url}}/api/webhooks/1234/abcdefghijklmnop\n{}",
        templates(extra)
    );
    let answer = ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": "99"}));
    let body = json(&deliver(&yaml, answer).await);
    assert_eq!(body["allowed_mentions"], serde_json::json!({"parse": []}));
    assert!(
        body.get("content").is_none(),
        "embeds never ping; no content is sent"
    );
    let embed = &body["embeds"][0];
    let escaped = r"\<b\>@everyone \*x\*\</b\>";
    assert_eq!(embed["title"], format!("{escaped} {escaped}"));
    assert_eq!(
        embed["description"],
        format!("{escaped}\n{escaped} · 1.2 GiB"),
        "no overview after a templated message"
    );
    assert_eq!(embed["color"], 0xFF0000);
    assert_eq!(
        embed["fields"],
        serde_json::json!([{"name": escaped, "value": escaped, "inline": true}])
    );
}

#[actix_rt::test]
async fn slack_escapes_entities_so_no_mention_or_link_can_be_written() {
    let extra =
        "    fields:\n      - {name: \"Title\", value: \"<!everyone> {{ media_item.title }}\"}\n";
    let yaml = format!(
        "type: slack\nwebhook_url: {{url}}/services/T000/B000/abcdefghijklmnop\n{}",
        templates(extra)
    );
    let body = json(&deliver(&yaml, ResponseTemplate::new(200).set_body_string("ok")).await);
    let escaped = "&lt;b&gt;@everyone *x*&lt;/b&gt;";
    assert_eq!(
        body["text"],
        format!("{escaped} {escaped}: {escaped} · {escaped} · 1.2 GiB")
    );
    assert_eq!(
        body["blocks"][0]["text"],
        serde_json::json!({"type": "plain_text", "text": format!("{EVIL} {EVIL}"), "emoji": true}),
        "a plain-text header shows tags as written"
    );
    assert_eq!(
        body["blocks"][1]["text"]["text"],
        format!("{escaped}\n{escaped} · 1.2 GiB")
    );
    assert_eq!(
        body["blocks"][2]["fields"],
        serde_json::json!([{"type": "mrkdwn", "text": format!("*Title*\n&lt;!everyone&gt; {escaped}"), "verbatim": true}])
    );
    // Beyond the plain-text header, no `<` of the data or the template reaches Slack.
    let mut mrkdwn = body.clone();
    mrkdwn["blocks"].as_array_mut().unwrap().remove(0);
    let wire = mrkdwn.to_string();
    assert!(
        !wire.contains("<!everyone") && !wire.contains("<b>"),
        "{wire}"
    );
}

#[actix_rt::test]
async fn without_templates_the_built_in_text_is_sent() {
    let body = json(
        &deliver(
            "type: ntfy\nserver_url: {url}\ntopic: t\n",
            ResponseTemplate::new(200).set_body_string("{}"),
        )
        .await,
    );
    assert_eq!(body["title"], "Movie added");
    assert_eq!(body["message"], format!("{EVIL} (2021)"));
    assert_eq!(body["tags"], serde_json::json!(["movie_camera"]));
}

#[actix_rt::test]
async fn a_template_that_fails_at_run_time_sends_the_built_in_text() {
    let yaml = "type: ntfy\nserver_url: {url}\ntopic: t\ntemplates:\n  after_media_added:\n    title: \"{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}\"\n    message: \"{{ media_item.title|upper }}\"\n";
    let body = json(&deliver(yaml, ResponseTemplate::new(200).set_body_string("{}")).await);
    assert_eq!(
        body["title"], "Movie added",
        "out of fuel: the built-in title"
    );
    assert_eq!(
        body["message"],
        EVIL.to_uppercase(),
        "the part that worked is kept"
    );
}

fn check(config: &str) -> (Option<i32>, String) {
    let (code, _, stderr) = check_output(config);
    (code, stderr)
}

fn check_output(config: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mydia-plugins"))
        .arg("--config")
        .arg(&path)
        .arg("check")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), stdout, stderr)
}

#[test]
fn check_reports_template_errors_with_the_file_line_and_the_template_line() {
    let (code, stderr) = check(
        "hooks: {enabled: false}\nplugins:\n  ntfy:\n    topic: t\n    templates:\n      after_media_added:\n        title: \"{{ media_item.title\"\n        message: \"{{ size|filesise }}\"\n      after_media_aded:\n        title: x\n      default:\n        colour: red\n  hook:\n    type: webhook\n    url: https://example.org/h\n    templates: {default: {title: x}}\n",
    );
    assert_eq!(code, Some(2), "{stderr}");
    for expected in [
        "config.yaml:7: plugins.ntfy.templates.after_media_added.title: template does not compile: syntax error",
        "(line 1 of the template)",
        "config.yaml:8: plugins.ntfy.templates.after_media_added.message: unknown filter `filesise` (did you mean `filesize`?)",
        "config.yaml:9: plugins.ntfy.templates.after_media_aded: unknown template key `after_media_aded` (did you mean `after_media_added`?)",
        "config.yaml:12: plugins.ntfy.templates.default.colour: unknown field `colour`",
        "plugins.hook.templates: is not taken by `webhook`",
    ] {
        assert!(stderr.contains(expected), "{expected:?} missing from:\n{stderr}");
    }
}

#[test]
fn check_warns_about_undefined_variables_and_passes() {
    let (code, stdout, stderr) = check_output(
        "hooks: {enabled: false}\nplugins:\n  ntfy:\n    topic: t\n    events: [after_media_added]\n    templates:\n      after_media_added:\n        title: \"{{ media_item.titel }} added\"\n",
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(":8: plugins.ntfy.templates.after_media_added.title: `media_item.titel` is undefined (did you mean `title`?)"),
        "{stderr}"
    );
    assert!(
        stdout.contains("  plugin ntfy (type ntfy, disabled): after_media_added\n    message templates: after_media_added\n"),
        "{stdout}"
    );
}
