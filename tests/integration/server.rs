//! The real binary under slow clients, signals and hostile text: promises about bad input
//! kept by the service as shipped, checked over raw TCP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::service::{request, shipped_hooks, Service};

/// A config with the console plugin (it logs every notification) and the shipped hooks.
fn console_config(server: &str) -> String {
    format!(
        "server: {{listen: 127.0.0.1:0{server}}}\nhooks: {{directory: {}}}\nplugins:\n  console: {{type: log, enabled: true}}\n",
        shipped_hooks().display()
    )
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
}

/// A POST whose head promises 1000 bytes of body, followed by one.
const SLOW_POST: &str =
    "POST /api/v1/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";

#[test]
fn a_body_that_never_arrives_gets_408_and_the_connection_is_closed() {
    let service = Service::start(&console_config(", request_timeout_secs: 1"));
    let mut s = TcpStream::connect(service.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    s.write_all(SLOW_POST.as_bytes()).unwrap();
    let mut answer = Vec::new();
    // Ends only when the server closes the connection (a read timeout fails the test).
    s.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("server.request_timeout_secs"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );
    assert!(service
        .request(&get("/healthz"))
        .starts_with("HTTP/1.1 200"));
}

#[test]
fn a_half_sent_second_request_cannot_hold_the_connection() {
    // actix-web times only the first request head of a connection; so the connection
    // closes after each answer instead of waiting for a second request.
    let service = Service::start(&console_config(", request_timeout_secs: 1"));
    let mut s = TcpStream::connect(service.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /hea")
        .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
}

#[test]
fn healthz_answers_at_once_beside_slow_connections_still_open() {
    let service = Service::start(&console_config(", request_timeout_secs: 60"));
    let slow: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(service.addr).unwrap();
            s.write_all(SLOW_POST.as_bytes()).unwrap();
            s
        })
        .collect();
    let answer = request(service.addr, &get("/healthz"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for mut s in slow {
        // Still waiting for their bodies: nothing to read yet, the connection open.
        s.set_nonblocking(true).unwrap();
        let err = s.read(&mut [0; 16]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    }
}

#[test]
fn healthz_answers_while_many_slow_connections_are_open() {
    // 60 descriptors for the whole process (it uses about 30 itself): without a cap on
    // connections, 70 slow clients take the rest and nothing (not even /healthz) is
    // accepted again; with the cap, the ones over it wait in the kernel's queue.
    let service = Service::start_with(
        &console_config(", request_timeout_secs: 1, max_connections: 16"),
        |c| {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg("ulimit -n 60 && exec \"$@\"")
                .arg("sh")
                .arg(c.get_program())
                .args(c.get_args());
            sh.env_remove("RUST_LOG");
            sh
        },
    );
    let slow: Vec<TcpStream> = (0..70)
        .map(|_| {
            let mut s = TcpStream::connect(service.addr).unwrap();
            s.write_all(SLOW_POST.as_bytes()).unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    let answer = request(service.addr, &get("/healthz"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // The slow ones were answered 408 and closed, not left hanging.
    for mut s in slow.into_iter().take(3) {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert!(
            out.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
}

#[test]
fn logged_text_cannot_forge_lines_and_has_no_colour_in_a_pipe() {
    let mut service = Service::start(&console_config(""));
    // The shipped anime hook logs the title as it came: the way in for a forged line.
    let title = format!(
        "Dune\n2024-01-01T00:00:00.000000Z  INFO forged: a line that never happened\u{0}{}",
        "x".repeat(5_000)
    );
    let body = serde_json::json!({"event": "after_media_added", "data": {
        "media_item": {"title": title, "original_language": "ja", "genres": ["Animation"]}}})
    .to_string();
    let raw = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = service.request(&raw);
    assert!(
        answer.starts_with("HTTP/1.1 202"),
        "{}",
        &answer[..200.min(answer.len())]
    );
    let line = service.wait_for(|l| l.contains("tagged as anime"));
    assert!(
        line.contains(r"tagged as anime: Dune\n2024-01-01"),
        "{line}"
    );
    assert!(line.contains(r"never happened\u{0}xxx"), "{line}");
    assert!(
        line.contains("bytes in all]"),
        "cut, with the length noted: {line}"
    );

    // A rejection is told at INFO with the hook and the reason.
    let rejected =
        r#"{"event":"before_download_initiated","data":{"release":{"title":"Dune.2024.HDCAM"}}}"#;
    let raw = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{rejected}",
        rejected.len()
    );
    assert!(service.request(&raw).starts_with("HTTP/1.1 422"));
    let line = service.wait_for(|l| l.contains("rejected"));
    assert!(line.contains("INFO"), "{line}");
    assert!(
        line.contains("before_download_initiated/10_reject_cam.lua"),
        "{line}"
    );
    assert!(line.contains("camera rip (HDCAM)"), "{line}");

    let log = service.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("forged:") && !l.contains("Dune")),
        "{log}"
    );
    assert!(!log.contains('\0'), "no NUL reaches the log");
    assert!(!log.contains('\x1b'), "no colour codes in a pipe");
    assert!(log.lines().all(|l| l.len() < 4096), "long values are cut");
}

#[test]
fn a_host_name_in_listen_is_resolved_and_served() {
    let mut service = Service::start(
        "server: {listen: 'localhost:0'}\nplugins:\n  console: {type: log, enabled: true}\n",
    );
    assert!(service.addr.ip().is_loopback(), "{}", service.addr);
    assert!(service.request(&get("/readyz")).starts_with("HTTP/1.1 200"));
    service.signal("TERM");
    service.wait_for(|l| l.contains("stopped"));
}

#[test]
fn a_config_without_an_enabled_plugin_says_nothing_will_be_delivered() {
    for config in ["", "plugins:\n  ntfy: {enabled: false, topic: t}\n"] {
        let config = format!("server: {{listen: 127.0.0.1:0}}\n{config}");
        let mut service = Service::start(&config);
        assert!(
            service
                .log()
                .lines()
                .any(|l| l.contains("WARN") && l.contains("nothing will be delivered")),
            "{config:?}:\n{}",
            service.log()
        );
        service.signal("TERM");
        service.wait_for(|l| l.contains("stopped"));
    }
}

#[test]
fn check_reports_config_and_hook_problems_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks/after_media_added");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(
        hooks.join("10_broken.lua"),
        "function hook(e) return e end end",
    )
    .unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "server: {listen: 'localhost'}\nhooks: {directory: hooks}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mydia-plugins"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.listen"), "{stderr}");
    assert!(stderr.contains("10_broken.lua"), "{stderr}");
}

const TOKEN: &str = "test-token-0123456789abcdef";

/// A GET with an `Authorization` header.
fn get_with(path: &str, authorization: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n"
    )
}

#[test]
fn with_an_api_token_every_call_but_the_probes_needs_it() {
    let service = Service::start_with(
        &console_config(", api_token: \"${MYDIA_TEST_API_TOKEN}\""),
        |mut c| {
            c.env("MYDIA_TEST_API_TOKEN", TOKEN);
            c
        },
    );
    for path in [
        "/api/v1/plugins",
        "/api/v1/events",
        "/api/v1/deliveries",
        "/metrics",
        "/nowhere",
    ] {
        for answer in [
            service.request(&get(path)),
            service.request(&get_with(path, "Bearer wrong-token-0123456789abc")),
            service.request(&get_with(path, &format!("Basic {TOKEN}"))),
        ] {
            assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
            assert!(
                answer.contains("www-authenticate: Bearer")
                    && answer.contains("Authorization: Bearer <token>"),
                "{path}: {answer}"
            );
            assert!(
                !answer.contains("routes:"),
                "the 401 lists no routes: {answer}"
            );
        }
    }
    // An event sent without the token is not accepted.
    let post = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        30, r#"{"event": "after_media_added"}"#
    );
    assert!(service.request(&post).starts_with("HTTP/1.1 401"));
    let ok = service.request(&get_with("/api/v1/plugins", &format!("Bearer {TOKEN}")));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("\"console\""), "{ok}");
    for probe in ["/healthz", "/readyz"] {
        let answer = service.request(&get(probe));
        assert!(answer.starts_with("HTTP/1.1 200"), "{probe}: {answer}");
    }
    assert!(!service.log().contains(TOKEN), "the token is never logged");
}

#[test]
fn listening_beyond_loopback_without_a_token_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "server:\n  listen: 0.0.0.0:0\nplugins:\n  console: {type: log, enabled: true}\n",
    )
    .unwrap();
    let out = crate::support::service::command(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config.yaml:2:")
            && stderr.contains("server.listen")
            && stderr.contains("server.api_token: ${MYDIA_PLUGINS_TOKEN}"),
        "{stderr}"
    );
    assert!(!stderr.contains("is running"), "{stderr}");
}
