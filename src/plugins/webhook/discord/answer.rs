//! Discord's answers: status and body → `Ok` or a classified error that quotes Discord and says what to fix.

use serde_json::Value;

use crate::http::{self, Redactor, Reply};
use crate::plugins::notification::text::{one_line, truncate_chars};
use crate::plugins::PluginError;

/// How much of Discord's own error text goes into an error reason, in characters.
const MAX_SAID_CHARS: usize = 400;

/// Discord's answer → `Ok` or a classified error in Discord's own words. Builds on
/// [`http::classify`] (429 waits from `Retry-After` or the body's `retry_after`, 5xx
/// transient) and says what to fix for the statuses Discord uses.
pub(super) fn judge(reply: &Reply, redactor: &Redactor) -> Result<(), PluginError> {
    let Err(err) = http::classify(reply.status, &reply.headers, &reply.body, redactor) else {
        return Ok(());
    };
    let said = discord_said(&reply.body)
        .map(|t| format!(" (Discord said: {})", redactor.redact(&t)))
        .unwrap_or_default();
    let status = reply.status;
    Err(match err {
        PluginError::Misconfigured {
            status: Some(code @ (401 | 404)),
            ..
        } => PluginError::Misconfigured {
            status: Some(code),
            reason: format!(
                "{status}: Discord does not know this webhook: it was deleted, or webhook_url is \
                 mistyped or cut short; create a webhook in the channel's settings (Integrations → \
                 Webhooks) and set webhook_url to its URL{said}"
            ),
        },
        PluginError::Misconfigured {
            status: Some(403), ..
        } => PluginError::Misconfigured {
            status: Some(403),
            reason: format!(
                "{status}: Discord refused the webhook access to its channel or thread; check that \
                 the thread named by thread_id in webhook_url exists and is not archived or locked{said}"
            ),
        },
        PluginError::Rejected { status: code, .. } => PluginError::Rejected {
            status: code,
            reason: format!("{status}: Discord refused the message{said}"),
        },
        other => other,
    })
}

/// Discord's error text: `message (code N): path: problem; ...` from its JSON
/// `{code, message, errors}` (errors flattened to field paths such as `embeds.0.title`),
/// else the shared extraction. One line, shortened.
fn discord_said(body: &str) -> Option<String> {
    let text = match serde_json::from_str::<Value>(body) {
        Ok(v) if v.get("message").is_some_and(Value::is_string) => {
            let mut text = v["message"].as_str().unwrap_or_default().to_owned();
            if let Some(code) = v.get("code").and_then(Value::as_i64) {
                text.push_str(&format!(" (code {code})"));
            }
            let mut problems = Vec::new();
            if let Some(errors) = v.get("errors") {
                flatten_errors(errors, "", &mut problems);
            }
            if !problems.is_empty() {
                text.push_str(": ");
                text.push_str(&problems.join("; "));
            }
            text
        }
        _ => http::service_error_text(body)?,
    };
    let text = one_line(&text);
    (!text.is_empty()).then(|| truncate_chars(&text, MAX_SAID_CHARS).into_owned())
}

/// Discord nests errors by field: `{"embeds": {"0": {"title": {"_errors": [{message}]}}}}`.
fn flatten_errors(v: &Value, path: &str, out: &mut Vec<String>) {
    let Value::Object(map) = v else { return };
    for (key, child) in map {
        if key == "_errors" {
            let messages = child.as_array().into_iter().flatten();
            for message in messages.filter_map(|e| e.get("message")?.as_str()) {
                out.push(format!("{path}: {message}"));
            }
        } else if path.is_empty() {
            flatten_errors(child, key, out);
        } else {
            flatten_errors(child, &format!("{path}.{key}"), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;
    use reqwest::StatusCode;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.to_owned(),
        }
    }

    #[test]
    fn errors_quote_discord_with_field_paths() {
        let r = Redactor::new();
        let body = r#"{"code": 50035, "errors": {"embeds": {"0": {"title": {"_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 256 or fewer in length."}]}}},
            "username": {"_errors": [{"code": "USERNAME_INVALID_CONTAINS", "message": "Username cannot contain \"discord\""}]}},
            "message": "Invalid Form Body"}"#;
        let err = judge(&reply(400, body), &r).unwrap_err();
        assert_eq!(
            err,
            PluginError::Rejected {
                status: Some(400),
                reason:
                    "400 Bad Request: Discord refused the message (Discord said: Invalid Form Body \
                         (code 50035): embeds.0.title: Must be 256 or fewer in length.; username: \
                         Username cannot contain \"discord\")"
                        .into()
            }
        );
        for code in [401, 404] {
            let err = judge(
                &reply(code, r#"{"message": "Unknown Webhook", "code": 10015}"#),
                &r,
            )
            .unwrap_err();
            assert!(matches!(err, PluginError::Misconfigured { status: Some(c), .. } if c == code));
            assert!(
                err.to_string().contains("does not know this webhook"),
                "{err}"
            );
            assert!(
                err.to_string().contains("Unknown Webhook (code 10015)"),
                "{err}"
            );
        }
        let err = judge(
            &reply(403, r#"{"message": "Thread is locked", "code": 160005}"#),
            &r,
        )
        .unwrap_err();
        assert!(err.to_string().contains("thread_id"), "{err}");
        assert!(judge(&reply(502, "<html>bad gateway</html>"), &r)
            .unwrap_err()
            .is_transient());
        assert_eq!(judge(&reply(204, ""), &r), Ok(()));
        let leaky = Redactor::new().with("tok_X");
        let err = judge(&reply(400, r#"{"message": "bad tok_X"}"#), &leaky).unwrap_err();
        assert!(err.to_string().contains("bad [redacted]"), "{err}");
    }
}
