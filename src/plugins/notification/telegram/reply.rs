//! What a Bot API reply means: the result, a chat migration to follow, or a classified error.
//!
//! The shared [`http::classify`] does most of the work (429 with `parameters.retry_after`,
//! 5xx, other 4xx). Telegram needs a look at the body first for three things: a group that
//! became a supergroup (400 with `parameters.migrate_to_chat_id`, to be followed rather than
//! failed), errors that are about the configuration rather than the message (a chat the
//! bot cannot see or post to: every later message would fail the same way), and hints
//! that name the Telegram fields to fix.

use serde_json::Value;

use crate::http::{self, Redactor, Reply};
use crate::plugins::PluginError;

/// A Bot API call that went through.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `ok: true`: the method's `result`.
    Done(Value),
    /// The group became a supergroup with this id; the request was not carried out.
    Migrated(i64),
}

/// 400 descriptions that mean the configured chat or topic is wrong for every message.
const CHAT_PROBLEMS: &[&str] = &[
    "chat not found",
    "message thread not found",
    "not enough rights",
    "need administrator rights",
    "topic_closed",
    "chat_write_forbidden",
];

/// Judges a Bot API reply: the result, a migration, or a classified, redacted error.
pub fn judge(reply: &Reply, redactor: &Redactor) -> Result<Answer, PluginError> {
    let body: Option<Value> = serde_json::from_str(&reply.body).ok();
    let status = reply.status.as_u16();
    let said = || {
        http::service_error_text(&reply.body)
            .map(|t| format!(" (Telegram said: {})", redactor.redact(&t)))
            .unwrap_or_default()
    };
    let misconfigured = |hint: &str| PluginError::Misconfigured {
        status: Some(status),
        reason: format!("{}: {hint}{}", reply.status, said()),
    };
    if reply.status.is_success() {
        return match &body {
            Some(v) if v.get("ok") == Some(&Value::Bool(true)) => Ok(Answer::Done(
                v.get("result").cloned().unwrap_or(Value::Null),
            )),
            Some(v) if v.get("ok") == Some(&Value::Bool(false)) => Err(PluginError::Rejected {
                status: Some(status),
                reason: format!("the Bot API answered ok: false{}", said()),
            }),
            _ => Err(misconfigured(
                "the reply is not a Bot API answer; check api_url",
            )),
        };
    }
    if let Some(to) = body
        .as_ref()
        .and_then(|v| v.pointer("/parameters/migrate_to_chat_id"))
        .and_then(Value::as_i64)
    {
        return Ok(Answer::Migrated(to));
    }
    let description = body
        .as_ref()
        .and_then(|v| v.get("description"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    match status {
        400 if CHAT_PROBLEMS.iter().any(|p| description.contains(p)) => Err(misconfigured(
            "the bot cannot post to this chat; check chat_id and message_thread_id, and that \
             the bot is a member (an admin, for a channel)",
        )),
        401 => Err(misconfigured(
            "the bot token was refused; check bot_token (revoked or mistyped? @BotFather shows it)",
        )),
        403 => Err(misconfigured(
            "the bot may not post to this chat (blocked by the user, removed from the group, \
             or not an admin of the channel); check chat_id and the bot's membership",
        )),
        404 => Err(misconfigured(
            "no such Bot API method: the bot token is malformed or api_url is not a Bot API server",
        )),
        // 2xx were handled above, so `classify` always has an error to give here.
        _ => http::classify(reply.status, &reply.headers, &reply.body, redactor).and_then(|()| {
            Err(PluginError::Rejected {
                status: Some(status),
                reason: format!("unexpected status {}{}", reply.status, said()),
            })
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;
    use reqwest::StatusCode;
    use serde_json::json;
    use std::time::Duration;

    fn reply(status: u16, body: Value) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.to_string(),
        }
    }

    fn error(code: u16, description: &str) -> Reply {
        reply(
            code,
            json!({"ok": false, "error_code": code, "description": description}),
        )
    }

    fn judge_plain(r: &Reply) -> Result<Answer, PluginError> {
        judge(r, &Redactor::new())
    }

    #[test]
    fn ok_replies_give_the_result() {
        let r = reply(200, json!({"ok": true, "result": {"message_id": 7}}));
        assert_eq!(judge_plain(&r), Ok(Answer::Done(json!({"message_id": 7}))));
        let odd = reply(200, json!({"ok": false, "description": "odd"}));
        assert!(matches!(
            judge_plain(&odd),
            Err(PluginError::Rejected { .. })
        ));
        let html = Reply {
            body: "<html>proxy login</html>".into(),
            ..reply(200, json!(null))
        };
        let err = judge_plain(&html).unwrap_err();
        assert!(err.to_string().contains("check api_url"), "{err}");
    }

    #[test]
    fn migration_is_an_answer_not_an_error() {
        let r = reply(
            400,
            json!({"ok": false, "error_code": 400,
                   "description": "Bad Request: group chat was upgraded to a supergroup chat",
                   "parameters": {"migrate_to_chat_id": -1001234567890i64}}),
        );
        assert_eq!(judge_plain(&r), Ok(Answer::Migrated(-1001234567890)));
    }

    #[test]
    fn statuses_map_to_telegram_hints() {
        let err = judge_plain(&error(401, "Unauthorized")).unwrap_err();
        assert!(matches!(
            err,
            PluginError::Misconfigured {
                status: Some(401),
                ..
            }
        ));
        assert!(err.to_string().contains("check bot_token"), "{err}");
        assert!(
            err.to_string()
                .contains("Telegram said: Unauthorized (code 401)"),
            "{err}"
        );

        let err = judge_plain(&error(403, "Forbidden: bot was blocked by the user")).unwrap_err();
        assert!(matches!(
            err,
            PluginError::Misconfigured {
                status: Some(403),
                ..
            }
        ));
        assert!(
            err.to_string().contains("bot was blocked by the user"),
            "{err}"
        );

        let err = judge_plain(&error(400, "Bad Request: chat not found")).unwrap_err();
        assert!(matches!(
            err,
            PluginError::Misconfigured {
                status: Some(400),
                ..
            }
        ));
        assert!(err.to_string().contains("check chat_id"), "{err}");

        let err = judge_plain(&error(404, "Not Found")).unwrap_err();
        assert!(err.to_string().contains("api_url"), "{err}");

        let err = judge_plain(&error(400, "Bad Request: can't parse entities: x")).unwrap_err();
        assert_eq!(
            err,
            PluginError::Rejected {
                status: Some(400),
                reason: "400 Bad Request (service said: Bad Request: can't parse entities: x (code 400))"
                    .into()
            }
        );

        let limited = reply(
            429,
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7",
                   "parameters": {"retry_after": 7}}),
        );
        assert_eq!(
            judge_plain(&limited),
            Err(PluginError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            })
        );
        assert!(judge_plain(&error(502, "Bad Gateway"))
            .unwrap_err()
            .is_transient());
    }

    #[test]
    fn echoed_secrets_are_redacted() {
        let r = Redactor::new().with("1:SECRET");
        let err = judge(&error(401, "token 1:SECRET refused"), &r).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("SECRET"), "{err}");
        let err = judge(&error(400, "odd 1:SECRET"), &r).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("SECRET"), "{err}");
    }
}
