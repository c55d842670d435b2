//! No secret leaks anywhere: a unique canary token, set through `${VAR}`, is pushed
//! through every error path of the running binary, and every log line, API response
//! and CLI output is searched for it.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::wait_until;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_token_never_appears_in_logs_errors_or_api_responses() {
    let canary = format!("tk_CANARY{}", uuid::Uuid::new_v4().simple());
    let echo = |status: u16, text: &str| {
        // The mock server is hostile: it echoes the token back in every error.
        ResponseTemplate::new(status).set_body_json(
            json!({"code": status * 100 + 1, "http": status, "error": format!("{text}: {canary}")}),
        )
    };
    let ntfy = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(echo(401, "unauthorized token"))
        .up_to_n_times(1)
        .mount(&ntfy)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(echo(500, "database on fire"))
        .up_to_n_times(3)
        .mount(&ntfy)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(echo(400, "bad message").insert_header("x-token", canary.as_str()))
        .up_to_n_times(1)
        .mount(&ntfy)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(echo(429, "slow down").insert_header("retry-after", "1"))
        .mount(&ntfy)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/health"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"healthy": true})))
        .mount(&ntfy)
        .await;

    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "server: {{listen: 127.0.0.1:{port}}}\nhooks: {{enabled: false}}\nplugins:\n  ntfy:\n    enabled: true\n    \
         server_url: {}\n    allow_insecure_http: true\n    allow_private_network: true\n    topic: canary\n    auth_token: ${{NTFY_TOKEN}}\n    \
         events: [after_media_added, on_import_failed]\n",
        ntfy.uri()
    );
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config).unwrap();
    let bin = env!("CARGO_BIN_EXE_mydia-plugins");
    let mut child = Command::new(bin)
        .args(["--log-format", "json", "--log", "debug", "--config"])
        .arg(&config_path)
        .env("NTFY_TOKEN", &canary)
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
    let mut seen = Vec::new();
    let text = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().text().await.unwrap()
    };
    let event = |n: &str| json!({"event": n, "mode": "sync", "data": {"media_item": {"title": "Dune", "year": 2021}}});

    // 401: misconfigured.
    seen.push(
        text(
            http.post(format!("{base}/api/v1/events"))
                .json(&event("after_media_added")),
        )
        .await,
    );
    seen.push(text(http.get(format!("{base}/api/v1/plugins"))).await);
    // The test button clears it (health check only: no message published).
    seen.push(text(http.post(format!("{base}/api/v1/plugins/ntfy/test"))).await);
    // 500 three times (retried), then 400 with the token in a header, then 429.
    seen.push(
        text(
            http.post(format!("{base}/api/v1/events"))
                .json(&event("on_import_failed")),
        )
        .await,
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    seen.push(
        text(
            http.post(format!("{base}/api/v1/events"))
                .json(&event("after_media_added")),
        )
        .await,
    );
    seen.push(
        text(
            http.post(format!("{base}/api/v1/events"))
                .json(&event("after_media_added")),
        )
        .await,
    );
    seen.push(text(http.get(format!("{base}/api/v1/plugins"))).await);
    seen.push(text(http.get(format!("{base}/api/v1/plugins/ntfy"))).await);

    // The service really talked to the hostile server with the token.
    let requests = ntfy.received_requests().await.unwrap();
    let posts = requests
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert!(posts >= 4, "only {posts} publishes reached the mock");
    assert!(requests.iter().any(|r| r
        .headers
        .get("authorization")
        .is_some_and(|h| h.to_str().unwrap() == format!("Bearer {canary}"))));
    let plugins: Value = serde_json::from_str(&seen[6]).unwrap();
    assert!(
        plugins[0]["last_error"].as_str().is_some(),
        "an error was recorded: {plugins}"
    );

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
        .args(["check", "--config"])
        .arg(&config_path)
        .env("NTFY_TOKEN", &canary)
        .output()
        .unwrap();

    assert!(
        stderr.contains("misconfigured"),
        "the 401 was logged: {stderr}"
    );
    assert!(
        stderr.contains("[redacted]"),
        "the echoed token was scrubbed, not just absent: {stderr}"
    );
    let everything = [
        stderr,
        stdout,
        seen.join("\n"),
        String::from_utf8_lossy(&check.stdout).into(),
        String::from_utf8_lossy(&check.stderr).into(),
    ];
    for (i, text) in everything.iter().enumerate() {
        assert!(
            !text.contains(&canary),
            "canary leaked in capture {i}:\n{text}"
        );
        assert!(
            !text.contains(&canary[3..]),
            "canary (without its prefix) leaked in capture {i}"
        );
    }
}
