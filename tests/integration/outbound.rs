//! Outbound requests go only where they should: with `allow_insecure_http` alone, no
//! spelling of a local address reaches a local server; `allow_private_network: true` is the
//! opt-in for a LAN server; metadata addresses are never contacted; a refused address is a
//! misconfiguration, not a retry storm. Through the running service and the real binary.

use std::process::Command;
use std::time::Duration;

use mydia_plugins::event::EventName;
use mydia_plugins::Config;
use serde_json::json;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::data;
use crate::support::{fast_supervision, wait_until};

/// A local "service" that answers everything, like an ntfy server (or a Redis) on the box.
async fn local_service() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"healthy": true, "id": "x"})))
        .mount(&server)
        .await;
    server
}

fn ntfy_yaml(server_url: &str, private: bool) -> String {
    format!(
        "hooks: {{enabled: false}}\nplugins:\n  ntfy:\n    enabled: true\n    server_url: {server_url}\n    \
         allow_insecure_http: true\n    allow_private_network: {private}\n    topic: t1\n    retries: 3\n"
    )
}

#[actix_rt::test]
async fn local_addresses_need_the_private_network_opt_in_and_are_refused_once() {
    let server = local_service().await;
    let port = server.address().port();
    let yaml = ntfy_yaml(&format!("http://0x7f000001:{port}"), false);
    let mut config = Config::parse(&yaml, None).unwrap_or_else(|e| panic!("{e}"));
    config.supervision = fast_supervision();
    let handle = mydia_plugins::start(&config).expect("start");
    for _ in 0..5 {
        handle
            .emit(
                EventName::AfterMediaAdded,
                data!({"media_item": {"title": "Dune"}}),
            )
            .await
            .unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(10), || async {
            handle.status().await[0].state == "misconfigured"
        })
        .await,
        "{:?}",
        handle.status().await
    );
    let status = &handle.status().await[0];
    let reason = status.misconfigured_reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("127.0.0.1 is a loopback address")
            && reason.contains("allow_private_network: true"),
        "{reason}"
    );
    // Each delivery that was already in flight is refused once (no retries), and later
    // events are not tried at all: no retry storm.
    assert!(status.failed <= 5 && status.restarts == 0, "{status:?}");
    let failed = status.failed;
    // Waits for the plugin's answer, so an attempt would have happened by now.
    handle
        .emit_sync(
            EventName::AfterMediaAdded,
            data!({"media_item": {"title": "Dune"}}),
        )
        .await
        .unwrap();
    assert_eq!(handle.status().await[0].failed, failed);
    let report = handle
        .test_connection("ntfy")
        .await
        .unwrap_err()
        .to_string();
    assert!(report.contains("allow_private_network"), "{report}");
    handle.shutdown().await;
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "nothing reached the local service"
    );

    // The opt-in reaches the same server.
    let yaml = ntfy_yaml(&format!("http://127.1:{port}"), true);
    let mut config = Config::parse(&yaml, None).unwrap_or_else(|e| panic!("{e}"));
    config.supervision = fast_supervision();
    let handle = mydia_plugins::start(&config).expect("start");
    handle
        .emit(
            EventName::AfterMediaAdded,
            data!({"media_item": {"title": "Dune"}}),
        )
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || async {
            handle.status().await[0].delivered == 1
        })
        .await,
        "{:?}",
        handle.status().await
    );
    handle.shutdown().await;
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// `check --test` on the real binary: every loopback spelling is refused with the reason,
/// metadata is refused even with both opt-ins, and the LAN opt-in passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_test_names_the_refused_address_and_the_field_to_set() {
    let server = local_service().await;
    let port = server.address().port();
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_mydia-plugins");
    let run = |yaml: String| {
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, yaml).unwrap();
        let out = Command::new(bin)
            .args(["check", "--test", "--config"])
            .arg(&path)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    for host in [
        "localhost",
        "[::ffff:127.0.0.1]",
        "0x7f000001",
        "2130706433",
        "127.1",
        "0.0.0.0",
    ] {
        let (code, stdout) = run(ntfy_yaml(&format!("http://{host}:{port}"), false));
        assert_eq!(code, Some(1), "{host}: {stdout}");
        assert!(
            stdout.contains("test ntfy: FAILED: misconfigured:")
                && stdout.contains("allow_private_network: true"),
            "{host}: {stdout}"
        );
    }
    let (code, stdout) = run(ntfy_yaml("http://169.254.169.254", true));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("169.254.169.254 is a link-local address")
            && stdout.contains("never contacted"),
        "{stdout}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    let (code, stdout) = run(ntfy_yaml(&format!("http://localhost:{port}"), true));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("test ntfy: ok"), "{stdout}");
}
