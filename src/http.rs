//! The HTTP client builder every plugin uses, and the one mapping from responses and
//! `reqwest` errors to a classified, redacted [`PluginError`], with retries for the
//! transient ones.
//!
//! A plugin builds its request; this module sends it, reads a bounded body, classifies the
//! status and retries network errors and 5xx with exponential backoff and full jitter.
//! Everything that leaves this module as error text has passed through a [`Redactor`], and
//! every `reqwest::Error` through [`map_reqwest_error`], which drops the URL (reqwest prints
//! full URLs, and Telegram, Discord and Slack put their tokens in them).

use std::error::Error as _;
use std::fmt;
use std::future::Future;
use std::time::{Duration, SystemTime};

use rand::Rng as _;
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::plugins::PluginError;

/// What replaces a secret in any text we show.
pub const REDACTED: &str = "[redacted]";

/// The longest `Retry-After` we honour; a service asking for more gets this much. One hour
/// is the supervisor's longest cooldown, so a bogus header cannot silence a plugin for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How much of a response body we read: enough for any error message, bounded so a
/// misbehaving server cannot make us buffer gigabytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How much of a service's own error text goes into an error reason, in characters.
const MAX_SERVICE_TEXT_CHARS: usize = 300;

/// A client for one arbiter: no redirects followed, bounded connect time, our user agent.
pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("mydia-plugins/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with static settings builds")
}

/// Secrets to scrub from any text before it reaches an error or a log line.
///
/// Also scrubs each secret's percent-encoded form, as it appears inside URLs. Its `Debug`
/// shows only how many secrets it holds.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret containing another is replaced whole.
    secrets: Vec<SecretString>,
}

impl Redactor {
    /// A redactor with no secrets yet.
    pub fn new() -> Self {
        Redactor::default()
    }

    /// Adds a secret (and its percent-encoded form), trimmed; blank secrets are ignored.
    pub fn add(&mut self, secret: &str) {
        let secret = secret.trim();
        if secret.is_empty() {
            return;
        }
        for form in [secret.to_owned(), percent_encode(secret)] {
            if !self.secrets.iter().any(|s| s.expose_secret() == form) {
                self.secrets.push(SecretString::from(form));
            }
        }
        self.secrets
            .sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
    }

    /// The same redactor with one more secret.
    pub fn with(mut self, secret: &str) -> Self {
        self.add(secret);
        self
    }

    /// `text` with every occurrence of every secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.expose_secret()) {
                out = out.replace(s.expose_secret(), REDACTED);
            }
        }
        out
    }

    /// `err` with its free-text fields redacted.
    pub fn redact_error(&self, err: PluginError) -> PluginError {
        use PluginError::*;
        match err {
            Transient { status, reason } => Transient {
                status,
                reason: self.redact(&reason),
            },
            Misconfigured { status, reason } => Misconfigured {
                status,
                reason: self.redact(&reason),
            },
            Rejected { status, reason } => Rejected {
                status,
                reason: self.redact(&reason),
            },
            Panicked { message } => Panicked {
                message: self.redact(&message),
            },
            Unavailable { state } => Unavailable {
                state: self.redact(&state),
            },
            other @ (Timeout { .. } | RateLimited { .. } | Unresponsive) => other,
        }
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

/// Every byte outside RFC 3986's unreserved set as `%XX` (how a secret looks inside a URL).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The one mapping from a `reqwest` error to a [`PluginError`]. Always drops the URL first.
///
/// Connect errors, timeouts and failures while sending or reading are `Transient`; an
/// error building the request (a bad URL or header value) is `Misconfigured`.
pub fn map_reqwest_error(err: reqwest::Error) -> PluginError {
    let err = err.without_url();
    let chain = error_chain(&err);
    if err.is_builder() {
        return PluginError::Misconfigured {
            status: None,
            reason: format!("could not build the request ({chain}); check the URL and credentials"),
        };
    }
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_body() || err.is_decode() {
        "failed reading the response"
    } else {
        "request failed"
    };
    PluginError::Transient {
        status: err.status().map(|s| s.as_u16()),
        reason: format!("{what}: {chain}"),
    }
}

/// The error and its sources, `: `-joined, skipping repeats (hyper nests similar messages).
fn error_chain(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

/// Classifies a response status for the retry and supervision policy.
///
/// 2xx is success. 429 is [`PluginError::RateLimited`] with the wait from `Retry-After`
/// (seconds or an HTTP date) or, failing that, a `retry_after` number in a JSON body
/// (Discord, Telegram's `parameters.retry_after`), capped at [`MAX_RETRY_AFTER`]. 401, 403,
/// 404 and 410 are `Misconfigured`, 3xx too (redirects are not followed, so the configured
/// URL is wrong), other 4xx `Rejected`, 5xx `Transient`. Reasons quote the service's own
/// error text, shortened and redacted.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    redactor: &Redactor,
) -> Result<(), PluginError> {
    if status.is_success() {
        return Ok(());
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
            .or_else(|| body_retry_after(body))
            .map(|d| d.min(MAX_RETRY_AFTER));
        return Err(PluginError::RateLimited { retry_after });
    }
    let code = Some(status.as_u16());
    let said = service_error_text(body)
        .map(|t| format!(" (service said: {})", redactor.redact(&t)))
        .unwrap_or_default();
    let status_text = status.to_string();
    let hint = match status.as_u16() {
        300..=399 => {
            let to = headers
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("elsewhere");
            let to = redactor.redact(&clip(to, 200));
            format!("the server redirects to {to}, and redirects are not followed; configure the final URL")
        }
        401 => "the credentials were refused; check the token or password".to_owned(),
        403 => {
            "the credentials lack permission for this; check the token's access rights".to_owned()
        }
        404 => "not found; check the URL and the topic, chat or webhook it names".to_owned(),
        410 => "gone for good (deleted, archived or revoked); configure a new target".to_owned(),
        400..=499 => {
            return Err(PluginError::Rejected {
                status: code,
                reason: format!("{status_text}{said}"),
            })
        }
        500..=599 => {
            return Err(PluginError::Transient {
                status: code,
                reason: format!("{status_text}{said}"),
            })
        }
        _ => {
            return Err(PluginError::Rejected {
                status: code,
                reason: format!("unexpected status {status_text}{said}"),
            })
        }
    };
    Err(PluginError::Misconfigured {
        status: code,
        reason: format!("{status_text}: {hint}{said}"),
    })
}

/// `Retry-After` as delta-seconds (fractions tolerated) or an HTTP date relative to `now`;
/// a date in the past means "now". `None` when the value is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A `retry_after` number in a JSON body, top level or under `parameters`.
fn body_retry_after(body: &str) -> Option<Duration> {
    let v: Value = serde_json::from_str(body).ok()?;
    let secs = v
        .get("retry_after")
        .or_else(|| v.pointer("/parameters/retry_after"))
        .and_then(Value::as_f64)?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)))
}

/// The service's own words from an error body: the usual JSON fields (`error`,
/// `description`, `message`, `errors`, with a numeric `code`), else the plain text,
/// whitespace collapsed and shortened. `None` for an empty body.
pub fn service_error_text(body: &str) -> Option<String> {
    let text = match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(obj)) => {
            let msg = [
                "error",
                "description",
                "message",
                "error_description",
                "errors",
            ]
            .iter()
            .find_map(|k| obj.get(*k).and_then(json_text));
            let code = obj
                .get("code")
                .or_else(|| obj.get("error_code"))
                .and_then(Value::as_i64);
            match (msg, code) {
                (Some(m), Some(c)) => format!("{m} (code {c})"),
                (Some(m), None) => m,
                (None, _) => body.to_owned(),
            }
        }
        _ => body.to_owned(),
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then(|| clip(&text, MAX_SERVICE_TEXT_CHARS))
}

fn json_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(json_text).collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        Value::Object(o) => o.get("message").and_then(json_text),
        _ => None,
    }
}

/// At most `max` characters of `s`, with `…` when shortened.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// How often and how patiently to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 counts as 1).
    pub max_attempts: u32,
    /// The backoff ceiling before the first retry; it doubles per retry.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts, 500 ms base, 10 s cap: a short burst that fits the default 10 s
    /// delivery timeout. Longer outages are the supervisor's business (breaker, restarts).
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(500),
            max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn no_retry() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The ceiling of the backoff before retry number `retry` (0 for the first retry):
    /// `min(max, base * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The backoff before retry number `retry`: full jitter, uniform in `[0, ceiling]`, so
    /// many plugins failing together do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = u64::try_from(self.ceiling(retry).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=ceiling))
    }
}

/// Runs `op` until it succeeds, fails with a non-transient error, or `policy` runs out of
/// attempts, sleeping [`RetryPolicy::backoff`] between tries (`tokio::time::sleep`, so tests
/// may pause time). Only [`PluginError::is_transient`] errors are retried: a 4xx will fail
/// the same way again, and a 429 goes straight back so the supervisor can pause the plugin.
/// `op` receives the attempt number, starting at 1.
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, mut op: F) -> Result<T, PluginError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, PluginError>>,
{
    let max_attempts = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        match op(attempt).await {
            Err(err) if err.is_transient() && attempt < max_attempts => {
                let backoff = policy.backoff(attempt - 1);
                // Debug, not warn: the final outcome is logged by the supervisor, and a
                // retry that then succeeds needs no one's attention.
                tracing::debug!(
                    attempt,
                    max_attempts,
                    backoff_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                    error = %err,
                    "transient failure, retrying"
                );
                tokio::time::sleep(backoff).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// A response read in full: status, headers and a body of at most [`MAX_BODY_BYTES`]
/// (decoded lossily as UTF-8).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body text, cut at [`MAX_BODY_BYTES`].
    pub body: String,
}

/// Sends `request` and reads the reply, without judging its status. For plugins whose
/// service needs a look at the body before [`classify`] (e.g. Telegram's chat migration).
/// Transport errors are mapped by [`map_reqwest_error`] and redacted.
pub async fn fetch(
    request: reqwest::RequestBuilder,
    redactor: &Redactor,
) -> Result<Reply, PluginError> {
    let fail = |e| redactor.redact_error(map_reqwest_error(e));
    let mut response = request.send().await.map_err(fail)?;
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(fail)? {
        let room = MAX_BODY_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// [`fetch`] then [`classify`]: the reply on a 2xx, a classified, redacted error otherwise.
pub async fn send(
    request: reqwest::RequestBuilder,
    redactor: &Redactor,
) -> Result<Reply, PluginError> {
    let reply = fetch(request, redactor).await?;
    classify(reply.status, &reply.headers, &reply.body, redactor)?;
    Ok(reply)
}

/// [`send`] under [`retry`]: `make_request` builds a fresh request for every attempt.
pub async fn send_with_retry<F>(
    policy: &RetryPolicy,
    redactor: &Redactor,
    mut make_request: F,
) -> Result<Reply, PluginError>
where
    F: FnMut() -> reqwest::RequestBuilder,
{
    retry(policy, |_| send(make_request(), redactor)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    #[test]
    fn redactor_scrubs_every_occurrence_and_encoded_forms() {
        let r = Redactor::new()
            .with("tk_secret")
            .with("bot123:AB/C")
            .with("  ");
        let text = "tk_secret then tk_secret; url /bot123%3AAB%2FC/x and bot123:AB/C";
        let out = r.redact(text);
        assert_eq!(
            out,
            "[redacted] then [redacted]; url /[redacted]/x and [redacted]"
        );
        assert_eq!(r.redact("nothing here"), "nothing here");
        assert_eq!(format!("{r:?}"), "Redactor { secrets: 3 }");
    }

    #[test]
    fn redactor_replaces_the_longest_secret_whole() {
        let r = Redactor::new().with("abc").with("abcdef");
        assert_eq!(r.redact("xabcdefx abc"), "x[redacted]x [redacted]");
    }

    #[test]
    fn redactor_cleans_error_reasons() {
        let r = Redactor::new().with("tk_x1");
        let err = r.redact_error(PluginError::Rejected {
            status: Some(400),
            reason: "bad tk_x1".into(),
        });
        assert_eq!(err.to_string(), "rejected by the service: bad [redacted]");
    }

    #[test]
    fn success_statuses_pass() {
        for code in [200, 201, 202, 204] {
            assert_eq!(
                classify(status(code), &HeaderMap::new(), "", &Redactor::new()),
                Ok(())
            );
        }
    }

    #[test]
    fn rate_limits_read_retry_after_in_both_forms() {
        let r = Redactor::new();
        let secs = classify(status(429), &headers(&[("retry-after", "7")]), "", &r);
        assert_eq!(
            secs,
            Err(PluginError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            })
        );

        let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let Err(PluginError::RateLimited {
            retry_after: Some(d),
        }) = classify(status(429), &headers(&[("retry-after", &at)]), "", &r)
        else {
            panic!("expected a rate limit with a wait")
        };
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );

        let none = classify(
            status(429),
            &HeaderMap::new(),
            r#"{"code":42901,"http":429,"error":"limit reached"}"#,
            &r,
        );
        assert_eq!(none, Err(PluginError::RateLimited { retry_after: None }));
    }

    #[test]
    fn rate_limit_falls_back_to_body_and_is_capped() {
        let r = Redactor::new();
        let discord = classify(
            status(429),
            &HeaderMap::new(),
            r#"{"retry_after": 1.5, "global": false}"#,
            &r,
        );
        assert_eq!(
            discord,
            Err(PluginError::RateLimited {
                retry_after: Some(Duration::from_millis(1500))
            })
        );
        let telegram = classify(
            status(429),
            &HeaderMap::new(),
            r#"{"ok":false,"parameters":{"retry_after":3}}"#,
            &r,
        );
        assert_eq!(
            telegram,
            Err(PluginError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            })
        );
        let huge = classify(
            status(429),
            &headers(&[("retry-after", "99999999")]),
            "",
            &r,
        );
        assert_eq!(
            huge,
            Err(PluginError::RateLimited {
                retry_after: Some(MAX_RETRY_AFTER)
            })
        );
    }

    #[test]
    fn retry_after_parsing() {
        let now = SystemTime::now();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("0.25", now),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
        let future = httpdate::fmt_http_date(now + Duration::from_secs(60));
        let d = parse_retry_after(&future, now).unwrap();
        assert!(
            d > Duration::from_secs(58) && d <= Duration::from_secs(60),
            "{d:?}"
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(60));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn auth_and_missing_targets_are_misconfigured_with_the_service_text() {
        let r = Redactor::new().with("tk_leak");
        let body = r#"{"code":40101,"http":401,"error":"unauthorized: token tk_leak invalid"}"#;
        let Err(PluginError::Misconfigured {
            status: Some(401),
            reason,
        }) = classify(status(401), &HeaderMap::new(), body, &r)
        else {
            panic!("401 must be misconfigured")
        };
        assert!(reason.contains("401 Unauthorized"), "{reason}");
        assert!(
            reason.contains("unauthorized: token [redacted] invalid (code 40101)"),
            "{reason}"
        );
        assert!(!reason.contains("tk_leak"));
        for code in [403, 404, 410] {
            let err = classify(status(code), &HeaderMap::new(), "", &r).unwrap_err();
            assert!(
                matches!(err, PluginError::Misconfigured { status: Some(c), .. } if c == code),
                "{err:?}"
            );
        }
    }

    #[test]
    fn redirects_are_misconfigured_and_name_the_target() {
        let h = headers(&[("location", "https://ntfy.example.com/")]);
        let err = classify(status(301), &h, "", &Redactor::new()).unwrap_err();
        assert!(matches!(
            err,
            PluginError::Misconfigured {
                status: Some(301),
                ..
            }
        ));
        assert!(
            err.to_string()
                .contains("redirects to https://ntfy.example.com/"),
            "{err}"
        );
    }

    #[test]
    fn other_client_errors_are_rejected_and_server_errors_transient() {
        let r = Redactor::new();
        let body = r#"{"code":40009,"http":400,"error":"invalid request: topic invalid"}"#;
        let err = classify(status(400), &HeaderMap::new(), body, &r).unwrap_err();
        assert_eq!(
            err,
            PluginError::Rejected {
                status: Some(400),
                reason:
                    "400 Bad Request (service said: invalid request: topic invalid (code 40009))"
                        .into()
            }
        );
        let err = classify(status(413), &HeaderMap::new(), "too big", &r).unwrap_err();
        assert!(matches!(
            err,
            PluginError::Rejected {
                status: Some(413),
                ..
            }
        ));
        for code in [500, 502, 503, 504] {
            let err = classify(
                status(code),
                &HeaderMap::new(),
                "<html>\n  <body>oops</body>\n</html>",
                &r,
            )
            .unwrap_err();
            assert!(err.is_transient(), "{err:?}");
            assert!(
                err.to_string().contains("<html> <body>oops</body> </html>"),
                "{err}"
            );
        }
    }

    #[test]
    fn service_text_is_extracted_and_shortened() {
        assert_eq!(service_error_text(""), None);
        assert_eq!(service_error_text("  \n "), None);
        assert_eq!(
            service_error_text("invalid_payload").as_deref(),
            Some("invalid_payload")
        );
        assert_eq!(
            service_error_text(
                r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#
            )
            .as_deref(),
            Some("Bad Request: chat not found (code 400)")
        );
        assert_eq!(
            service_error_text(r#"{"status":0,"errors":["user is invalid","token is invalid"]}"#)
                .as_deref(),
            Some("user is invalid; token is invalid")
        );
        assert_eq!(
            service_error_text(r#"{"message":"Invalid Form Body","code":50035}"#).as_deref(),
            Some("Invalid Form Body (code 50035)")
        );
        let long = "é".repeat(1000);
        let text = service_error_text(&long).unwrap();
        assert_eq!(text.chars().count(), MAX_SERVICE_TEXT_CHARS + 1);
        assert!(text.ends_with('…'));
    }

    #[test]
    fn backoff_ceilings_double_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(0), Duration::from_millis(500));
        assert_eq!(p.ceiling(1), Duration::from_secs(1));
        assert_eq!(p.ceiling(3), Duration::from_secs(4));
        assert_eq!(p.ceiling(5), Duration::from_secs(10));
        assert_eq!(p.ceiling(200), Duration::from_secs(10));
    }

    #[test]
    fn full_jitter_stays_within_bounds_and_varies() {
        let p = RetryPolicy::default();
        for retry in 0..6 {
            let samples: Vec<Duration> = (0..200).map(|_| p.backoff(retry)).collect();
            assert!(
                samples.iter().all(|d| *d <= p.ceiling(retry)),
                "retry {retry}"
            );
            let distinct: std::collections::HashSet<_> = samples.iter().collect();
            assert!(
                distinct.len() > 100,
                "full jitter should spread, got {} distinct",
                distinct.len()
            );
            // Full jitter reaches into the lower half, unlike "equal jitter".
            assert!(samples.iter().any(|d| *d < p.ceiling(retry) / 2));
        }
        let zero = RetryPolicy {
            base: Duration::ZERO,
            ..p
        };
        assert_eq!(zero.backoff(3), Duration::ZERO);
    }

    fn transient() -> PluginError {
        PluginError::Transient {
            status: Some(503),
            reason: "503 Service Unavailable".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_failures_then_succeeds() {
        let start = tokio::time::Instant::now();
        let mut calls = 0;
        let result = retry(&RetryPolicy::default(), |attempt| {
            calls += 1;
            assert_eq!(attempt, calls);
            async move {
                if attempt < 3 {
                    Err(transient())
                } else {
                    Ok("sent")
                }
            }
        })
        .await;
        assert_eq!(result, Ok("sent"));
        assert_eq!(calls, 3);
        let p = RetryPolicy::default();
        assert!(start.elapsed() <= p.ceiling(0) + p.ceiling(1));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_with_the_last_error() {
        let mut calls = 0;
        let result: Result<(), _> = retry(&RetryPolicy::default(), |_| {
            calls += 1;
            async { Err(transient()) }
        })
        .await;
        assert_eq!(result, Err(transient()));
        assert_eq!(calls, 3);
        let mut calls = 0;
        let once = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        let _ = retry(&once, |_| {
            calls += 1;
            async { Err::<(), _>(transient()) }
        })
        .await;
        assert_eq!(calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn never_retries_client_errors_or_rate_limits() {
        for err in [
            PluginError::Rejected {
                status: Some(400),
                reason: "bad".into(),
            },
            PluginError::Misconfigured {
                status: Some(401),
                reason: "token".into(),
            },
            PluginError::RateLimited { retry_after: None },
        ] {
            let mut calls = 0;
            let result: Result<(), _> = retry(&RetryPolicy::default(), |_| {
                calls += 1;
                let err = err.clone();
                async move { Err(err) }
            })
            .await;
            assert_eq!(result, Err(err));
            assert_eq!(calls, 1);
        }
    }

    #[tokio::test]
    async fn connection_errors_are_transient_and_carry_no_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/botSECRET123/sendMessage?token=SECRET123");
        let err = new_client().get(&url).send().await.unwrap_err();
        let mapped = map_reqwest_error(err);
        assert!(mapped.is_transient(), "{mapped:?}");
        let shown = format!("{mapped} {mapped:?}");
        assert!(shown.contains("could not connect"), "{shown}");
        assert!(
            !shown.contains("SECRET123") && !shown.contains("127.0.0.1"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn request_build_errors_are_misconfigured_and_redacted() {
        let err = new_client()
            .get("http://127.0.0.1:9/")
            .header("authorization", "Bearer tk_bad\nvalue")
            .send()
            .await
            .unwrap_err();
        let mapped = map_reqwest_error(err);
        assert!(
            matches!(mapped, PluginError::Misconfigured { status: None, .. }),
            "{mapped:?}"
        );
        assert!(!format!("{mapped:?}").contains("tk_bad"));
    }
}
