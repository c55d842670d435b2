//! What a preview tells the user about the text it built: cut to a limit, escaped, left
//! out, a template that fell back. A task-local collector, a no-op outside a preview.
//!
//! The plugins' text code reports here as it works ([`truncated`], [`escaped`], ...), so
//! the notes describe exactly what the real code did; a delivery pays one thread-local
//! look-up per report, and reports only happen when text is cut or escaped.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

tokio::task_local! {
    static NOTES: Collector;
}

type Collector = Arc<Mutex<Vec<Raw>>>;

/// One thing the user should know about a previewed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// `truncated`, `escaped`, `omitted`, `template_fallback` or `log`.
    pub kind: &'static str,
    /// The field it is about, as named in the request (`message`, `embeds[0].description`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The size before (for `truncated`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<usize>,
    /// The size after (for `truncated`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<usize>,
    /// What `from` and `to` count: `characters`, `bytes` or `UTF-16 units`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
    /// The note in words.
    pub message: String,
}

impl Note {
    /// A note with only a kind and its words (`disabled`, `not_subscribed`, ...).
    pub fn new(kind: &'static str, message: impl Into<String>) -> Note {
        Note {
            kind,
            field: None,
            from: None,
            to: None,
            unit: None,
            message: message.into(),
        }
    }
}

/// As reported; turned into [`Note`]s once, when the preview ends (escapes of one target
/// merge into one note).
#[derive(Debug, Clone)]
enum Raw {
    Cut {
        field: String,
        from: usize,
        to: usize,
        unit: &'static str,
    },
    Escaped {
        target: &'static str,
        chars: BTreeSet<char>,
    },
    Omitted {
        field: String,
        reason: String,
    },
    Fallback {
        template: String,
        reason: String,
    },
    Log {
        line: String,
    },
}

/// Whether a preview is collecting notes on this task (cheap; lets a caller skip work
/// that only a note needs).
pub fn active() -> bool {
    NOTES.try_with(|_| ()).is_ok()
}

fn push(raw: Raw) {
    let _ = NOTES.try_with(|c| c.lock().unwrap_or_else(PoisonError::into_inner).push(raw));
}

/// `field` was cut from `from` to `to` `unit`s (`characters`, `bytes`, `UTF-16 units`) to
/// fit the service's limit. Nothing happens outside a preview.
pub fn truncated(field: &str, from: usize, to: usize, unit: &'static str) {
    if active() {
        push(Raw::Cut {
            field: field.to_owned(),
            from,
            to,
            unit,
        });
    }
}

/// Text was escaped for `target` (e.g. `Telegram HTML`); `chars` are the characters that
/// needed it. Nothing happens outside a preview.
pub fn escaped(target: &'static str, chars: impl IntoIterator<Item = char>) {
    if active() {
        push(Raw::Escaped {
            target,
            chars: chars.into_iter().collect(),
        });
    }
}

/// `field` was left out of the request, and why (e.g. a link over the service's limit).
pub fn omitted(field: &str, reason: &str) {
    if active() {
        push(Raw::Omitted {
            field: field.to_owned(),
            reason: reason.to_owned(),
        });
    }
}

/// A template failed at run time and the built-in text was used instead. For the template
/// engine to call; nothing happens outside a preview.
pub fn template_fell_back(template: &str, reason: &str) {
    if active() {
        push(Raw::Fallback {
            template: template.to_owned(),
            reason: reason.to_owned(),
        });
    }
}

/// In a preview, records the line the log plugin would write and answers true (the
/// caller then writes nothing); outside one, answers false.
pub fn log_line(line: impl FnOnce() -> String) -> bool {
    if !active() {
        return false;
    }
    push(Raw::Log { line: line() });
    true
}

/// Runs `fut` collecting the notes reported while it runs.
pub async fn collect<F: Future>(fut: F) -> (F::Output, Vec<Note>) {
    let collector = Collector::default();
    let out = NOTES.scope(Arc::clone(&collector), fut).await;
    (out, finish(&collector))
}

/// [`collect`] for synchronous code.
pub fn collect_sync<R>(f: impl FnOnce() -> R) -> (R, Vec<Note>) {
    let collector = Collector::default();
    let out = NOTES.sync_scope(Arc::clone(&collector), f);
    (out, finish(&collector))
}

fn finish(collector: &Collector) -> Vec<Note> {
    let raw = std::mem::take(&mut *collector.lock().unwrap_or_else(PoisonError::into_inner));
    let mut merged: Vec<Raw> = Vec::with_capacity(raw.len());
    for r in raw {
        match (&r, merged.iter_mut().find(|m| same(m, &r))) {
            (
                Raw::Escaped { chars, .. },
                Some(Raw::Escaped {
                    chars: existing, ..
                }),
            ) => existing.extend(chars.iter().copied()),
            (_, Some(_)) => {}
            (_, None) => merged.push(r),
        }
    }
    merged.into_iter().map(note).collect()
}

/// Reported twice (the same text built twice, or escaped in several pieces): one note.
fn same(a: &Raw, b: &Raw) -> bool {
    match (a, b) {
        (Raw::Escaped { target: x, .. }, Raw::Escaped { target: y, .. }) => x == y,
        (
            Raw::Cut {
                field: f1,
                from: a1,
                to: b1,
                ..
            },
            Raw::Cut {
                field: f2,
                from: a2,
                to: b2,
                ..
            },
        ) => (f1, a1, b1) == (f2, a2, b2),
        (Raw::Omitted { field: x, .. }, Raw::Omitted { field: y, .. }) => x == y,
        (Raw::Fallback { template: x, .. }, Raw::Fallback { template: y, .. }) => x == y,
        _ => false,
    }
}

fn note(raw: Raw) -> Note {
    let plain = |kind, field: Option<String>, message| Note {
        kind,
        field,
        from: None,
        to: None,
        unit: None,
        message,
    };
    match raw {
        Raw::Cut {
            field,
            from,
            to,
            unit,
        } => Note {
            kind: "truncated",
            message: format!("{field} cut from {from} to {to} {unit} to fit the service's limit"),
            field: Some(field),
            from: Some(from),
            to: Some(to),
            unit: Some(unit),
        },
        Raw::Escaped { target, chars } => {
            let chars: Vec<String> = chars.iter().map(|c| format!("`{c}`")).collect();
            plain(
                "escaped",
                None,
                format!(
                    "escaped for {target}: {} shown as written, not as markup",
                    chars.join(" ")
                ),
            )
        }
        Raw::Omitted { field, reason } => plain(
            "omitted",
            Some(field.clone()),
            format!("{field} left out: {reason}"),
        ),
        Raw::Fallback { template, reason } => plain(
            "template_fallback",
            None,
            format!("template `{template}` failed ({reason}); the built-in text was used"),
        ),
        Raw::Log { line } => plain(
            "log",
            None,
            format!("would write to the service log: {line}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_collected_outside_a_preview() {
        assert!(!active());
        truncated("message", 10, 5, "bytes");
        assert!(!log_line(|| unreachable!("not built outside a preview")));
        let ((), notes) = collect_sync(|| ());
        assert!(notes.is_empty());
    }

    #[test]
    fn cuts_and_escapes_are_collected_and_merged() {
        let ((), notes) = collect_sync(|| {
            assert!(active());
            truncated("message", 5000, 4096, "bytes");
            truncated("message", 5000, 4096, "bytes");
            escaped("Telegram HTML", ['<', '&']);
            escaped("Telegram HTML", ['>', '<']);
            template_fell_back("after_media_added.title", "undefined variable `x`");
        });
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert_eq!(notes[0].kind, "truncated");
        assert_eq!(
            (notes[0].from, notes[0].to, notes[0].unit),
            (Some(5000), Some(4096), Some("bytes"))
        );
        assert_eq!(
            notes[0].message,
            "message cut from 5000 to 4096 bytes to fit the service's limit"
        );
        assert_eq!(
            notes[1].message,
            "escaped for Telegram HTML: `&` `<` `>` shown as written, not as markup"
        );
        assert_eq!(notes[2].kind, "template_fallback");
    }

    #[tokio::test]
    async fn notes_follow_the_task_across_awaits() {
        let ((), notes) = collect(async {
            tokio::task::yield_now().await;
            omitted("url", "over 512 characters");
        })
        .await;
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].message, "url left out: over 512 characters");
    }
}
