//! One contract, every plugin: the same scenarios through the real config loader and the
//! running service, against a mock of each service on 127.0.0.1.
//!
//! Each plugin type is one [`Contract`] row: how to configure an instance against the
//! mock (with a canary secret), and what its service answers on success. The scenarios
//! check what users rely on whatever the plugin: success is delivered, a 4xx is reported
//! and not retried, a 5xx is retried and then held (not lost), a 429 pauses without
//! counting as a failure, a 401 marks the instance misconfigured, a slow service times
//! out, and the secret appears in no report and no status.

use std::time::Duration;

use mydia_plugins::event::EventName;
use mydia_plugins::{Config, Handle};
use serde_json::{json, Value};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::data;

/// How to run one plugin type against a mock.
struct Contract {
    kind: &'static str,
    /// The instance's YAML; `{url}` becomes the mock's base URL, `{secret}` the canary.
    yaml: &'static str,
    method: &'static str,
    /// A regex for the path the plugin calls (may contain the secret, e.g. Telegram).
    path: &'static str,
    /// What the service answers on success.
    ok: fn() -> ResponseTemplate,
    /// The instance's `timeout_ms` (Pushover waits 5 s before a retry, so it needs more).
    timeout_ms: u64,
}

const CONTRACTS: &[Contract] = &[Contract {
    kind: "ntfy",
    yaml: "type: ntfy\nenabled: true\nserver_url: {url}\nallow_insecure_http: true\nallow_private_network: true\ntopic: contract\nauth_token: {secret}\nretries: 1",
    method: "POST",
    path: "^/$",
    ok: || ResponseTemplate::new(200).set_body_json(json!({"id": "m1", "event": "message"})),
    timeout_ms: 1500,
}, Contract {
    kind: "webhook",
    yaml: "type: webhook\nenabled: true\nurl: {url}/hooks/mydia?token={secret}\nallow_insecure_http: true\nallow_private_network: true\nsecret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\nretries: 1",
    method: "POST",
    path: "^/hooks/mydia$",
    ok: || ResponseTemplate::new(204),
    timeout_ms: 1500,
}, Contract {
    kind: "telegram",
    yaml: "type: telegram\nenabled: true\napi_url: {url}\nallow_insecure_http: true\nallow_private_network: true\nbot_token: \"123456:{secret}\"\nchat_id: 42\nretries: 1",
    method: "POST",
    path: "^/bot[^/]+/sendMessage$",
    ok: || ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {"message_id": 7}})),
    timeout_ms: 1500,
}, Contract {
    kind: "pushover",
    yaml: "type: pushover\nenabled: true\napi_url: {url}\nallow_insecure_http: true\nallow_private_network: true\nuser_key: u{secret}\napi_token: a{secret}",
    method: "POST",
    path: "^/1/messages.json$",
    ok: || ResponseTemplate::new(200).set_body_json(json!({"status": 1, "request": "r1"})),
    timeout_ms: 9000,
}, Contract {
    kind: "discord",
    yaml: "type: discord\nenabled: true\nwebhook_url: {url}/api/webhooks/1234/{secret}\nallow_insecure_http: true\nallow_private_network: true\nretries: 1",
    method: "POST",
    path: "^/api/webhooks/1234/[^/]+$",
    ok: || ResponseTemplate::new(200).set_body_json(json!({"id": "99", "channel_id": "42"})),
    timeout_ms: 1500,
}, Contract {
    kind: "slack",
    yaml: "type: slack\nenabled: true\nwebhook_url: {url}/services/T000/B000/{secret}\nallow_insecure_http: true\nallow_private_network: true\nretries: 1",
    method: "POST",
    path: "^/services/T000/B000/[^/]+$",
    ok: || ResponseTemplate::new(200).set_body_string("ok"),
    timeout_ms: 1500,
}];

struct Run {
    handle: Handle,
    mock: MockServer,
    secret: String,
}

async fn start(c: &Contract, answer: ResponseTemplate) -> Run {
    start_with(c, answer, "").await
}

/// Like [`start`], with more YAML lines for the instance (each indented as a field).
async fn start_with(c: &Contract, answer: ResponseTemplate, extra: &str) -> Run {
    let mock = MockServer::start().await;
    let secret = format!("CANARY{}", uuid::Uuid::new_v4().simple());
    Mock::given(method(c.method))
        .and(path_regex(c.path))
        .respond_with(answer)
        .mount(&mock)
        .await;
    let instance = c
        .yaml
        .replace("{url}", &mock.uri())
        .replace("{secret}", &secret);
    let indented: String = instance.lines().map(|l| format!("    {l}\n")).collect();
    let yaml = format!(
        "hooks: {{enabled: false}}\nsupervision: {{breaker_window: 50, breaker_min_calls: 50, open_cooldown_secs: 60}}\nplugins:\n  under_test:\n{indented}    timeout_ms: {}\n    events: [on_import_failed]\n{extra}",
        c.timeout_ms
    );
    let config = Config::parse(&yaml, None).unwrap_or_else(|e| panic!("{}: {e}", c.kind));
    Run {
        handle: mydia_plugins::start(&config).expect("start"),
        mock,
        secret,
    }
}

impl Run {
    async fn emit(&self) -> mydia_plugins::supervisor::DeliveryReport {
        let data = data!({"file_path": "/media/Dune (2021).mkv", "error_message": "disk full",
            "media_item": {"title": "Dune", "year": 2021, "type": "movie", "tmdb_id": 438631}});
        let done = self
            .handle
            .emit_sync(EventName::OnImportFailed, data)
            .await
            .unwrap();
        done.deliveries.unwrap().remove(0)
    }

    async fn requests(&self) -> usize {
        self.mock.received_requests().await.unwrap().len()
    }

    /// Nothing the user can see carries the secret.
    async fn assert_no_secret(
        &self,
        report: &mydia_plugins::supervisor::DeliveryReport,
        kind: &str,
    ) {
        let shown = format!(
            "{} {:?} {}",
            serde_json::to_string(report).unwrap(),
            report,
            serde_json::to_string(&self.handle.status().await).unwrap()
        );
        assert!(
            !shown.contains(&self.secret),
            "{kind}: the secret leaked: {shown}"
        );
    }

    async fn state(&self) -> mydia_plugins::supervisor::PluginStatus {
        self.handle.status().await.remove(0)
    }
}

fn error_body(status: u16) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": "contract says no", "description": "contract says no", "message": "contract says no"}))
}

#[actix_rt::test]
async fn success_is_delivered_once_with_the_secret_sent_to_the_service() {
    for c in CONTRACTS {
        let run = start(c, (c.ok)()).await;
        let r = run.emit().await;
        assert_eq!(r.status, "delivered", "{}: {r:?}", c.kind);
        assert_eq!(run.requests().await, 1, "{}", c.kind);
        let req = &run.mock.received_requests().await.unwrap()[0];
        let sent = format!(
            "{} {:?} {}",
            req.url,
            req.headers,
            String::from_utf8_lossy(&req.body)
        );
        assert!(
            sent.contains(&run.secret),
            "{}: the credential reaches the service",
            c.kind
        );
        run.assert_no_secret(&r, c.kind).await;
        run.handle.shutdown().await;
    }
}

#[actix_rt::test]
async fn a_digest_is_one_message_with_its_title_for_every_notification_and_chat_plugin() {
    for c in CONTRACTS.iter().filter(|c| c.kind != "webhook") {
        let run = start_with(
            c,
            (c.ok)(),
            "    digest: {wait_secs: 1, max_wait_secs: 1, min_events: 2}\n",
        )
        .await;
        for _ in 0..3 {
            run.emit().await;
        }
        assert!(
            crate::support::wait_until(Duration::from_secs(20), || async {
                run.requests().await == 1
            })
            .await,
            "{}: one request for the three",
            c.kind
        );
        let req = &run.mock.received_requests().await.unwrap()[0];
        let body = percent_decoded(&req.body);
        assert!(
            body.contains("Dune: 3 imports failed")
                && body.contains("Dune (2021) · Error: disk full"),
            "{}: {body}",
            c.kind
        );
        run.handle.shutdown().await;
    }
}

/// A form body (Pushover) as text; JSON bodies pass through.
fn percent_decoded(body: &[u8]) -> String {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'%' if i + 2 < body.len() => {
                let hex = std::str::from_utf8(&body[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[actix_rt::test]
async fn a_client_error_is_reported_and_not_retried() {
    for c in CONTRACTS {
        let run = start(c, error_body(400)).await;
        let r = run.emit().await;
        assert_eq!(
            (r.status, r.error_kind),
            ("failed", Some("rejected")),
            "{}: {r:?}",
            c.kind
        );
        assert!(
            r.error
                .as_deref()
                .unwrap_or("")
                .contains("contract says no"),
            "{}: the service's own text: {r:?}",
            c.kind
        );
        assert_eq!(run.requests().await, 1, "{}: no retry", c.kind);
        assert_eq!(run.state().await.state, "closed", "{}", c.kind);
        run.assert_no_secret(&r, c.kind).await;
        run.handle.shutdown().await;
    }
}

#[actix_rt::test]
async fn a_server_error_is_retried_then_held_for_later() {
    for c in CONTRACTS {
        let run = start(c, error_body(503)).await;
        let r = run.emit().await;
        assert_eq!(
            (r.status, r.error_kind),
            ("queued", Some("transient")),
            "{}: {r:?}",
            c.kind
        );
        assert!(run.requests().await >= 2, "{}: retried", c.kind);
        let s = run.state().await;
        assert_eq!(s.queued, 1, "{}: held, not lost: {s:?}", c.kind);
        run.assert_no_secret(&r, c.kind).await;
        run.handle.shutdown().await;
    }
}

#[actix_rt::test]
async fn a_rate_limit_pauses_without_a_failure_and_holds_the_message() {
    for c in CONTRACTS {
        let answer = error_body(429).insert_header("retry-after", "30");
        let run = start(c, answer).await;
        let r = run.emit().await;
        assert_eq!(
            (r.status, r.error_kind),
            ("queued", Some("rate_limited")),
            "{}: {r:?}",
            c.kind
        );
        assert_eq!(run.requests().await, 1, "{}: no hammering", c.kind);
        let s = run.state().await;
        assert_eq!(
            (s.state, s.paused, s.queued),
            ("closed", Some("rate_limited"), 1),
            "{}: {s:?}",
            c.kind
        );
        let retry_at = s.retry_at.expect("a resume time");
        let wait = (retry_at - chrono::Utc::now()).num_seconds();
        // At least what Retry-After asked (Pushover waits longer: its 429 means the
        // monthly quota is spent), and never forever.
        assert!(
            (25..=3600).contains(&wait),
            "{}: Retry-After honoured, resumes in {wait}s",
            c.kind
        );
        run.handle.shutdown().await;
    }
}

#[actix_rt::test]
async fn unauthorized_marks_the_instance_misconfigured() {
    for c in CONTRACTS {
        let run = start(c, error_body(401)).await;
        let r = run.emit().await;
        assert_eq!(
            (r.status, r.error_kind),
            ("failed", Some("misconfigured")),
            "{}: {r:?}",
            c.kind
        );
        let s = run.state().await;
        assert_eq!(s.state, "misconfigured", "{}: {s:?}", c.kind);
        assert!(s.misconfigured_reason.is_some(), "{}", c.kind);
        // Held (in the store) until the config is fixed, not sent and not dropped.
        let again = run.emit().await;
        assert_eq!(again.status, "queued", "{}: {again:?}", c.kind);
        assert_eq!(run.requests().await, 1, "{}: no retry storm", c.kind);
        run.assert_no_secret(&r, c.kind).await;
        run.handle.shutdown().await;
    }
}

#[actix_rt::test]
async fn a_slow_service_times_out_and_the_message_is_held() {
    for c in CONTRACTS {
        let timeout = Duration::from_millis(c.timeout_ms);
        let run = start(c, (c.ok)().set_delay(timeout * 3)).await;
        let started = std::time::Instant::now();
        let r = run.emit().await;
        let took = started.elapsed();
        assert!(
            took < timeout * 2,
            "{}: bounded by timeout_ms, took {took:?}",
            c.kind
        );
        assert_eq!(
            (r.status, r.error_kind),
            ("queued", Some("timeout")),
            "{}: {r:?}",
            c.kind
        );
        run.handle.shutdown().await;
    }
}

#[test]
fn every_plugin_type_with_a_service_has_a_contract_row() {
    let covered: Vec<&str> = CONTRACTS.iter().map(|c| c.kind).collect();
    for kind in mydia_plugins::plugins::PluginKind::ALL {
        if *kind == mydia_plugins::plugins::PluginKind::Log {
            continue; // writes to the log; no service to mock
        }
        if kind.role() == "enrichment" {
            // Enrichers are asked once and never held for a retry, so this delivery
            // contract does not apply; tests/integration/{anilist,fanart,enrichment}.rs
            // cover their errors, caching and fail-soft merging.
            continue;
        }
        assert!(
            covered.contains(&kind.as_str()),
            "no contract row for {}",
            kind.as_str()
        );
    }
    let _ = Value::Null;
}
