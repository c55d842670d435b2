//! Why a hook could not load or run (`HookError`), and a load problem tied to its file (`HookProblem`).
//!
//! Also the helpers that turn an mlua error into what a user reads in a log line.

use std::path::PathBuf;
use std::time::Duration;

use super::globals::MAX_MESSAGE_CHARS;

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
    /// The event data, as JSON, is larger than `hooks.max_input_bytes`; hooks are skipped.
    #[error("event data is larger than max_input_bytes ({max} bytes)")]
    InputTooLarge {
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

#[cfg(test)]
mod tests {
    use super::*;

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
