//! Why a hook could not load or run (`HookError`), a load problem tied to its file
//! (`HookProblem`), and why an event went no further (`HookRejected`).
//!
//! Also the helpers that turn an mlua error into what a user reads in a log line.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::globals::MAX_MESSAGE_CHARS;

/// The hooks stopped an event: a hook rejected it, or (at a fail-closed event) a hook
/// could not run or the event was too large for them. `kind` says which, so the API can
/// answer 422 or 413.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRejected {
    /// The hook's file, relative to the hooks directory (e.g. `after_media_added/10_tag.lua`).
    pub hook: String,
    /// The reason it gave, or why it could not run (at most [`MAX_REASON_BYTES`] from `reject`).
    pub reason: String,
    /// Which of the three it was.
    pub kind: RejectKind,
}

/// Why an event was stopped by its hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// The hook called `reject(reason)`.
    Rejected,
    /// The event fails closed (`hooks.fail_closed`) and this hook could not run: an error,
    /// a timeout, a limit, data it cannot be given, or quarantine.
    HookFailed,
    /// The event fails closed and its data is larger than `hooks.max_input_kb`.
    TooLarge,
}

/// Longest `reject()` reason kept, in bytes: it is echoed to the caller and logged.
pub const MAX_REASON_BYTES: usize = 1024;

impl HookRejected {
    /// `hook` called `reject(reason)`.
    pub fn rejected(hook: impl Into<String>, reason: impl Into<String>) -> HookRejected {
        HookRejected {
            hook: hook.into(),
            reason: reason.into(),
            kind: RejectKind::Rejected,
        }
    }

    /// `hook` could not run at a fail-closed event, for `reason`.
    pub fn failed(hook: impl Into<String>, reason: impl Into<String>) -> HookRejected {
        HookRejected {
            hook: hook.into(),
            reason: reason.into(),
            kind: RejectKind::HookFailed,
        }
    }

    /// The event's data is over `max` bytes, so `hook` (the first to run) cannot check it.
    pub fn too_large(hook: impl Into<String>, max: usize) -> HookRejected {
        HookRejected {
            hook: hook.into(),
            reason: format!(
                "the event data is larger than hooks.max_input_kb ({} KiB), so its validation hooks cannot check it; \
                 raise hooks.max_input_kb or send less data",
                max / 1024
            ),
            kind: RejectKind::TooLarge,
        }
    }
}

impl fmt::Display for HookRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (hook, reason) = (&self.hook, &self.reason);
        match self.kind {
            RejectKind::Rejected => write!(f, "rejected by hook {hook}: {reason}"),
            RejectKind::HookFailed => write!(
                f,
                "refused: hook {hook} could not run ({reason}); this event's hooks fail closed (hooks.fail_closed)"
            ),
            RejectKind::TooLarge => write!(f, "refused: {reason}"),
        }
    }
}

impl std::error::Error for HookRejected {}

/// Why one hook could not load, or why one call of it was abandoned.
///
/// A call that ends in any of these leaves the event data as it was before that hook
/// (fail-soft); only `reject("reason")` stops the chain, and that is not an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The script does not parse (or is not text: bytecode is refused).
    #[error("does not compile: {0}")]
    Compile(String),
    /// The script ran but left no global `function hook(event)` behind.
    #[error("defines no global `function hook(event)`")]
    NoHookFunction,
    /// The script raised an error.
    #[error("runtime error: {0}")]
    Runtime(String),
    /// The call used up its wall-clock budget (`hooks.timeout`).
    #[error("timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The VM reached `hooks.memory_limit_bytes`.
    #[error("memory limit of {limit} bytes exceeded")]
    Memory {
        /// The configured limit.
        limit: usize,
    },
    /// The hook returned something other than the event or `nil`, or data JSON cannot hold.
    #[error("bad return value: {0}")]
    BadReturn(String),
    /// The event data, as JSON, is larger than `hooks.max_input_kb`; hooks are skipped.
    #[error("event data is larger than hooks.max_input_kb ({max} bytes)")]
    InputTooLarge {
        /// The configured cap.
        max: usize,
    },
    /// The hook's result is larger than the input may be (`hooks.max_input_kb`); dropped.
    #[error(
        "the hook's result is larger than hooks.max_input_kb ({max} bytes); its change is dropped"
    )]
    OutputTooLarge {
        /// The configured cap.
        max: usize,
    },
    /// The event data cannot be handed to Lua (nested too deeply).
    #[error("event data cannot be passed to lua: {0}")]
    BadInput(String),
    /// The Luau VM itself could not be set up.
    #[error("cannot set up the lua vm: {0}")]
    Vm(String),
}

/// A hook that cannot be loaded, with the file (or folder) it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{}: {message}", path.display())]
pub struct HookProblem {
    /// The script or folder at fault.
    pub path: PathBuf,
    /// What is wrong, including the Lua error message where there is one.
    pub message: String,
}

pub(super) fn is_memory_error(err: &mlua::Error) -> bool {
    match err {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => {
            is_memory_error(cause)
        }
        _ => false,
    }
}

/// The innermost, first-line message: what a user needs in a log line, without the traceback.
pub(super) fn message(err: &mlua::Error) -> String {
    let text = match err {
        mlua::Error::CallbackError { cause, .. } => return message(cause),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(msg) | mlua::Error::MemoryError(msg) => msg.clone(),
        other => other.to_string(),
    };
    let first = text
        .split("\nstack traceback:")
        .next()
        .unwrap_or_default()
        .trim_end();
    let mut out: String = first.chars().take(MAX_MESSAGE_CHARS).collect();
    if out.len() < first.len() {
        out.push('…');
    }
    out
}

impl HookError {
    /// Every [`HookError::kind`], in the order of the variants.
    pub const KINDS: [&'static str; 10] = [
        "compile",
        "no_hook_function",
        "runtime",
        "timeout",
        "memory",
        "bad_return",
        "input_too_large",
        "output_too_large",
        "bad_input",
        "vm",
    ];

    /// A short name for the kind of failure, for metrics labels (never the message).
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    /// The index of [`HookError::kind`] in [`HookError::KINDS`].
    pub fn kind_index(&self) -> usize {
        match self {
            HookError::Compile(_) => 0,
            HookError::NoHookFunction => 1,
            HookError::Runtime(_) => 2,
            HookError::Timeout(_) => 3,
            HookError::Memory { .. } => 4,
            HookError::BadReturn(_) => 5,
            HookError::InputTooLarge { .. } => 6,
            HookError::OutputTooLarge { .. } => 7,
            HookError::BadInput(_) => 8,
            HookError::Vm(_) => 9,
        }
    }

    /// Whether this failure says something about the hook, so it counts towards its
    /// quarantine; data it cannot even be given is the event's doing, not the hook's.
    pub fn counts_against_hook(&self) -> bool {
        !matches!(
            self,
            HookError::BadInput(_) | HookError::InputTooLarge { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_say_what_happened_and_what_to_change() {
        let r = HookRejected::rejected("a/1.lua", "no cams");
        assert_eq!(r.to_string(), "rejected by hook a/1.lua: no cams");
        let r = HookRejected::failed("a/1.lua", "timed out after 100 ms");
        assert!(r
            .to_string()
            .contains("hook a/1.lua could not run (timed out after 100 ms)"));
        let r = HookRejected::too_large("a/1.lua", 1024 * 1024);
        assert_eq!(r.kind, RejectKind::TooLarge);
        assert!(r.to_string().contains("raise hooks.max_input_kb"), "{r}");
        assert!(r.to_string().contains("1024 KiB"), "{r}");
    }

    #[test]
    fn display_is_lowercase_without_trailing_period() {
        let all = [
            HookError::Compile("x.lua:1: oops".into()),
            HookError::NoHookFunction,
            HookError::Runtime("boom".into()),
            HookError::Timeout(Duration::from_millis(100)),
            HookError::Memory { limit: 1024 },
            HookError::BadReturn("a number".into()),
            HookError::InputTooLarge { max: 10 },
            HookError::OutputTooLarge { max: 10 },
            HookError::BadInput("too deep".into()),
            HookError::Vm("no".into()),
        ];
        for err in all {
            let text = err.to_string();
            assert!(!text.ends_with('.'), "{text}");
            assert!(text.chars().next().unwrap().is_lowercase(), "{text}");
        }
        assert_eq!(
            HookError::Timeout(Duration::from_millis(100)).to_string(),
            "timed out after 100 ms"
        );
    }
}
