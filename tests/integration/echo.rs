//! Secrets never show, in any form: a hostile receiver echoes the request's `Authorization`
//! header (`Basic base64(user:password)`, from ntfy's `username`/`password` and from a
//! webhook URL's userinfo) into its error body, and logs, `last_error`, `/test` answers and
//! `check --test` are searched for every form of the secret; `check` refuses a token with
//! a control character without quoting it.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::wait_until;

/// Answers with the `Authorization` header it was sent, as a service's error text.
struct EchoAuthorization(u16);

impl Respond for EchoAuthorization {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)");
        let status = self.0;
        ResponseTemplate::new(status).set_body_json(json!({
            "code": u32::from(status) * 100 + 1, "http": status,
            "error": format!("refused; you sent Authorization: {auth}"),
        }))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every form a leak of `user:password` could take in text.
fn leak_forms(user: &str, password: &str) -> Vec<String> {
    let pair = format!("{user}:{password}");
    let mut forms = vec![password.to_owned()];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        forms.push(engine.encode(&pair));
        forms.push(engine.encode(password));
    }
    // `mydia:` and `hooks:` are 6 bytes, so the password's letters start at letter 8: the
    // middle of them is what any partial leak of the encoded pair shows.
    let encoded = STANDARD_NO_PAD.encode(&pair);
    forms.push(encoded[8..encoded.len() - 3].to_owned());
    forms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_basic_credentials_never_show_in_any_form() {
    // `??>>` makes standard and URL-safe base64 differ (`+/` against `-_`).
    let password = format!("pw??>>{}", uuid::Uuid::new_v4().simple());
    let receiver = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/health"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"healthy": true})))
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(EchoAuthorization(401))
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(EchoAuthorization(400))
        .mount(&receiver)
        .await;

    let port = free_port();
    let addr = receiver.address();
    let userinfo_password: String = password
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "server: {{listen: 127.0.0.1:{port}}}\nhooks: {{enabled: false}}\nplugins:\n  \
         ntfy:\n    enabled: true\n    server_url: http://{addr}\n    allow_insecure_http: true\n    \
         allow_private_network: true\n    topic: echo\n    username: mydia\n    password: ${{ECHO_PASSWORD}}\n    \
         test_publishes: true\n    events: [after_media_added]\n  \
         webhook:\n    enabled: true\n    url: http://hooks:{userinfo_password}@{addr}/hook\n    \
         allow_insecure_http: true\n    allow_private_network: true\n    retries: 0\n    events: [after_media_added]\n"
    );
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config).unwrap();
    let bin = env!("CARGO_BIN_EXE_mydia-plugins");
    let mut child = Command::new(bin)
        .args(["--log-format", "json", "--log", "debug", "--config"])
        .arg(&config_path)
        .env("ECHO_PASSWORD", &password)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        wait_until(Duration::from_secs(20), || async {
            http.get(format!("{base}/healthz")).send().await.is_ok()
        })
        .await
    );
    let text = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().text().await.unwrap()
    };
    let mut seen = vec![
        text(http.post(format!("{base}/api/v1/events")).json(&json!({
            "event": "after_media_added", "mode": "sync", "data": {"media_item": {"title": "Dune"}}
        })))
        .await,
    ];
    seen.push(text(http.get(format!("{base}/api/v1/plugins"))).await);
    seen.push(text(http.post(format!("{base}/api/v1/plugins/ntfy/test"))).await);
    seen.push(text(http.post(format!("{base}/api/v1/plugins/webhook/test"))).await);
    seen.push(text(http.get(format!("{base}/api/v1/plugins"))).await);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child.wait().unwrap();
    let check = Command::new(bin)
        .args(["check", "--test", "--config"])
        .arg(&config_path)
        .env("ECHO_PASSWORD", &password)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let check_out = String::from_utf8_lossy(&check.stdout).into_owned();

    // The receiver really got both Basic headers, and echoed them.
    let requests = receiver.received_requests().await.unwrap();
    for pair in [format!("mydia:{password}"), format!("hooks:{password}")] {
        let sent = format!("Basic {}", STANDARD.encode(&pair));
        assert!(
            requests.iter().any(|r| r
                .headers
                .get("authorization")
                .is_some_and(|h| h.to_str().unwrap() == sent)),
            "{pair} was not sent"
        );
    }
    assert!(
        check_out.contains("test ntfy: FAILED") && check_out.contains("test webhook: FAILED"),
        "{check_out}"
    );
    assert!(
        check_out.contains("Authorization: Basic [redacted]"),
        "the echo was scrubbed, not just absent: {check_out}"
    );
    assert!(seen[1].contains("[redacted]"), "{}", seen[1]);
    let everything = [
        stderr,
        stdout,
        seen.join("\n"),
        check_out,
        String::from_utf8_lossy(&check.stderr).into_owned(),
    ];
    let mut forms = leak_forms("mydia", &password);
    forms.extend(leak_forms("hooks", &password));
    forms.push(userinfo_password);
    for (i, text) in everything.iter().enumerate() {
        for form in &forms {
            assert!(
                !text.contains(form.as_str()),
                "{form} leaked in capture {i}:\n{text}"
            );
        }
    }
}

#[test]
fn check_refuses_control_characters_in_tokens_without_echoing_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    // YAML escapes put a line break, a bell and an escape inside the values.
    let yaml = r#"
hooks: {enabled: false}
plugins:
  ntfy:
    enabled: true
    topic: t1
    auth_token: "tk_CANARY1\nX-Injected: yes"
  pushover:
    enabled: true
    user_key: "u_CANARY2\u0007"
    api_token: " a_CANARY3\u001b[31m "
  webhook:
    enabled: true
    url: "https://example.com/hook?token=w_CANARY4\u0001"
"#;
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mydia-plugins"))
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for field in [
        "plugins.ntfy.auth_token",
        "plugins.pushover.user_key",
        "plugins.pushover.api_token",
        "plugins.webhook.url",
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("{field}: contains a control character"))),
            "{field} missing from:\n{stderr}"
        );
    }
    let all = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        !all.contains("CANARY"),
        "a refused token was echoed:\n{all}"
    );
}
