//! Status classification: a response's status, headers and body → `Ok` or a classified, redacted [`PluginError`].

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;

use super::Redactor;
use crate::plugins::PluginError;

/// The longest `Retry-After` we honour; a service asking for more gets this much, so a
/// bogus header cannot silence a plugin for days (Pushover's monthly quota still gets an
/// hourly check).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How much of a service's own error text goes into an error reason, in characters.
const MAX_SERVICE_TEXT_CHARS: usize = 300;

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
            let to = redactor.redact(&clip(&location_shown(to), 200));
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

/// A `Location` as we show it: no query (sign-in redirects put tokens there), no fragment,
/// no userinfo; scheme, host and path are what a person needs to fix the URL.
fn location_shown(location: &str) -> String {
    let location = location.split('#').next().unwrap_or_default();
    let (base, query) = match location.split_once('?') {
        Some((base, _)) => (base, "?[redacted]"),
        None => (location, ""),
    };
    let base = match reqwest::Url::parse(base) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => base.to_owned(),
    };
    format!("{base}{query}")
}

/// At most `max` characters of `s`, with `…` when shortened.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
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
    fn a_redirect_target_is_shown_without_query_fragment_or_userinfo() {
        let r = Redactor::new();
        for (location, shown) in [
            (
                "https://login.example.com/sso?session=tok_LEAK&next=/x#frag",
                "redirects to https://login.example.com/sso?[redacted], and",
            ),
            (
                "/signin?token=tok_LEAK",
                "redirects to /signin?[redacted], and",
            ),
            (
                "https://bob:pw_LEAK@ntfy.example.com/base/",
                "redirects to https://ntfy.example.com/base/, and",
            ),
        ] {
            let h = headers(&[("location", location)]);
            let err = classify(status(302), &h, "", &r).unwrap_err().to_string();
            assert!(err.contains(shown), "{err}");
            assert!(!err.contains("LEAK") && !err.contains("frag"), "{err}");
        }
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
}
