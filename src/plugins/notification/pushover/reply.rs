//! What a Pushover reply means: success (`status: 1`), a used-up monthly quota, a refused
//! key, or a classified error in Pushover's own words (its `errors` array).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

use crate::http::{self, Redactor, Reply, MAX_RETRY_AFTER};
use crate::plugins::PluginError;

/// The shortest pause after a 429, so a reset time in the past (a skewed clock) cannot
/// turn into a tight loop of refused requests.
const MIN_QUOTA_WAIT: Duration = Duration::from_secs(60);

/// Pushover names the offending parameter with `"<name>": "invalid"`; these are config
/// fields, so every later message would fail the same way.
const CONFIG_PARAMS: &[(&str, &str)] = &[
    ("token", "api_token"),
    ("user", "user_key"),
    ("device", "device"),
    ("sound", "sound"),
];

/// Judges a Pushover reply: the JSON body on success, a classified, redacted error otherwise.
///
/// A 429 means the application's monthly message quota is used up. It is `RateLimited`,
/// not `Misconfigured`: nothing in the config is wrong, and a paused plugin resumes by
/// itself when the quota resets or is raised, where a misconfigured one would wait for a
/// person. The wait is `Retry-After`, else the time until `X-Limit-App-Reset`, capped at
/// [`MAX_RETRY_AFTER`] (one hour), so a paused plugin checks back hourly at the cost of
/// one refused request.
pub fn judge(reply: &Reply, redactor: &Redactor, now: SystemTime) -> Result<Value, PluginError> {
    let body: Option<Value> = serde_json::from_str(&reply.body).ok();
    let status = reply.status.as_u16();
    // Pushover's words are its `errors` array; other keys name the offending parameter
    // (`"message": "cannot be blank"`), which reads badly on its own.
    let words = body
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array)
        .map(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| reply.body.clone());
    let said = || {
        http::service_error_text(&words)
            .map(|t| format!(" (Pushover said: {})", redactor.redact(&t)))
            .unwrap_or_default()
    };
    if reply.status.is_success() {
        return match body {
            Some(v) if v.get("status").and_then(Value::as_i64) == Some(1) => Ok(v),
            Some(_) => Err(PluginError::Rejected {
                status: Some(status),
                reason: format!("{} without status 1{}", reply.status, said()),
            }),
            None => Err(PluginError::Misconfigured {
                status: Some(status),
                reason: format!(
                    "{}: the reply is not a Pushover API answer; check api_url",
                    reply.status
                ),
            }),
        };
    }
    if status == 429 {
        return Err(PluginError::RateLimited {
            retry_after: Some(quota_wait(&reply.headers, now)),
        });
    }
    let refused: Vec<&str> = CONFIG_PARAMS
        .iter()
        .filter(|(param, _)| {
            body.as_ref()
                .and_then(|v| v.get(*param))
                .and_then(Value::as_str)
                == Some("invalid")
        })
        .map(|(_, field)| *field)
        .collect();
    if (400..500).contains(&status) && !refused.is_empty() {
        return Err(PluginError::Misconfigured {
            status: Some(status),
            reason: format!(
                "{}: Pushover refused the configured {}{}",
                reply.status,
                refused.join(" and "),
                said()
            ),
        });
    }
    http::classify(reply.status, &reply.headers, &words, redactor)?;
    Err(PluginError::Rejected {
        status: Some(status),
        reason: format!("unexpected status {}", reply.status),
    })
}

/// How long to pause after a 429 (see [`judge`]).
fn quota_wait(headers: &HeaderMap, now: SystemTime) -> Duration {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let wait = header(RETRY_AFTER.as_str())
        .and_then(|v| http::parse_retry_after(v, now))
        .or_else(|| {
            let reset = header("x-limit-app-reset")?.trim().parse::<u64>().ok()?;
            let at = UNIX_EPOCH + Duration::from_secs(reset);
            Some(at.duration_since(now).unwrap_or(Duration::ZERO))
        })
        .unwrap_or(MAX_RETRY_AFTER);
    wait.clamp(MIN_QUOTA_WAIT, MAX_RETRY_AFTER)
}

/// `(remaining, limit)` of the application's monthly messages, from the reply headers.
pub fn quota(headers: &HeaderMap) -> Option<(u64, u64)> {
    let number = |name| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
    Some((
        number("x-limit-app-remaining")?,
        number("x-limit-app-limit")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use reqwest::StatusCode;
    use serde_json::json;

    fn reply(status: u16, body: Value, headers: &[(&'static str, &str)]) -> Reply {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: body.to_string(),
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn judge_plain(r: &Reply) -> Result<Value, PluginError> {
        judge(r, &Redactor::new(), now())
    }

    #[test]
    fn status_one_is_success() {
        let ok = reply(200, json!({"status": 1, "request": "abc"}), &[]);
        assert_eq!(judge_plain(&ok).unwrap()["request"], "abc");
        let odd = reply(200, json!({"status": 0, "errors": ["odd"]}), &[]);
        assert!(matches!(
            judge_plain(&odd),
            Err(PluginError::Rejected { .. })
        ));
        let html = Reply {
            body: "<html/>".into(),
            ..ok
        };
        assert!(judge_plain(&html)
            .unwrap_err()
            .to_string()
            .contains("check api_url"));
    }

    #[test]
    fn a_used_up_quota_pauses_until_the_reset_at_most_an_hour() {
        let limited = |headers: &[(&'static str, &str)]| {
            let r = reply(429, json!({"status": 0, "errors": ["quota"]}), headers);
            match judge_plain(&r) {
                Err(PluginError::RateLimited {
                    retry_after: Some(d),
                }) => d,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(limited(&[]), MAX_RETRY_AFTER);
        assert_eq!(
            limited(&[("x-limit-app-reset", "1700000600")]),
            Duration::from_secs(600)
        );
        assert_eq!(
            limited(&[("x-limit-app-reset", "1800000000")]),
            MAX_RETRY_AFTER
        );
        assert_eq!(
            limited(&[("x-limit-app-reset", "1600000000")]),
            MIN_QUOTA_WAIT
        );
        assert_eq!(
            limited(&[("retry-after", "120"), ("x-limit-app-reset", "1700000600")]),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn refused_keys_are_misconfigured_other_4xx_rejected() {
        let r = reply(
            400,
            json!({"user": "invalid", "errors": ["user identifier is not a valid user, group, or subscribed user key"], "status": 0}),
            &[],
        );
        let err = judge_plain(&r).unwrap_err();
        assert!(
            matches!(
                err,
                PluginError::Misconfigured {
                    status: Some(400),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(
                "refused the configured user_key (Pushover said: user identifier is not a valid"
            ),
            "{err}"
        );
        let r = reply(
            400,
            json!({"token": "invalid", "user": "invalid", "errors": ["application token is invalid"], "status": 0}),
            &[],
        );
        assert!(judge_plain(&r)
            .unwrap_err()
            .to_string()
            .contains("api_token and user_key"));

        let r = reply(
            400,
            json!({"message": "cannot be blank", "errors": ["message cannot be blank"], "status": 0}),
            &[],
        );
        let err = judge_plain(&r).unwrap_err();
        assert!(
            matches!(
                err,
                PluginError::Rejected {
                    status: Some(400),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("message cannot be blank"), "{err}");
        assert!(judge_plain(&reply(503, json!({}), &[]))
            .unwrap_err()
            .is_transient());
        assert!(matches!(
            judge_plain(&reply(401, json!({}), &[])),
            Err(PluginError::Misconfigured { .. })
        ));
    }

    #[test]
    fn reads_the_quota_headers() {
        let r = reply(
            200,
            json!({"status": 1}),
            &[
                ("x-limit-app-limit", "10000"),
                ("x-limit-app-remaining", "7496"),
            ],
        );
        assert_eq!(quota(&r.headers), Some((7496, 10000)));
        assert_eq!(quota(&HeaderMap::new()), None);
    }
}
