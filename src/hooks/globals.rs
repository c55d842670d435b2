//! The globals the sandbox takes away from scripts and the ones it adds: `reject`, `log`, `json`.
//!
//! What is taken away is not simply missing: reading `io`, `require` or `os.execute` raises
//! "`os.execute` is not available in hooks" with the list of what is, at the script's
//! line, where plain Lua would say "attempt to call a nil value".

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use mlua::{Function, Lua, Table, Value, Variadic};

use super::error::MAX_REASON_BYTES;
use super::limits::cut;

/// Globals a hook must not reach: code loading, file access, environment tampering.
const REMOVED_GLOBALS: &[&str] = &[
    "require",
    "load",
    "loadstring",
    "dofile",
    "loadfile",
    "getfenv",
    "setfenv",
    "debug",
    "io",
    "package",
];

/// The only `os` functions kept: none of them reaches outside the process.
const KEPT_OS: &[&str] = &["clock", "time", "date"];

/// Longest text accepted from `log.*`, so one script cannot flood the logs.
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// The `__index` of the globals and of `os`: raises for a name the sandbox took away
/// (`error(..., 2)` points at the script's line), and is nil for any other missing name.
const UNAVAILABLE_INDEX: &str = r#"
local messages, prefix, suffix = ...
return function(_, key)
    local message = messages[key]
    if message == nil and prefix ~= nil then
        message = prefix .. tostring(key) .. suffix
    end
    if message ~= nil then
        error(message, 2)
    end
    return nil
end
"#;

/// What the Rust callbacks and the interrupt need to know about the call in progress.
#[derive(Default)]
pub struct CallState {
    /// When the running call must stop; `None` between calls.
    pub deadline: Cell<Option<Instant>>,
    /// The interrupt fired for this call (even if the script caught the error).
    pub timed_out: Cell<bool>,
    /// The reason given to `reject`, if it was called.
    pub rejection: RefCell<Option<String>>,
    /// The running script's name, for `log`.
    pub hook: RefCell<Rc<str>>,
    /// When the interrupt should call `on_due` (answers held by the worker must go out).
    pub due: Cell<Option<Instant>>,
    /// What the interrupt calls once `due` has passed.
    pub on_due: RefCell<Option<Box<dyn Fn()>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("event rejected")]
struct RejectSignal;

/// Remove what scripts must not reach and add the hook API, before the globals go read-only.
pub fn install(
    lua: &Lua,
    globals: &Table,
    array_mt: &Table,
    calls: &Rc<CallState>,
) -> mlua::Result<()> {
    for name in REMOVED_GLOBALS {
        globals.raw_set(*name, Value::Nil)?;
    }
    let os: Table = globals.raw_get("os")?;
    let safe_os = lua.create_table()?;
    for name in KEPT_OS {
        safe_os.raw_set(*name, os.raw_get::<Value>(*name)?)?;
    }
    globals.raw_set("os", safe_os.clone())?;

    globals.raw_set("json", json_table(lua, array_mt)?)?;
    globals.raw_set("reject", reject_function(lua, calls)?)?;
    let log = lua.create_table()?;
    for level in ["info", "warn", "error"] {
        log.raw_set(level, log_function(lua, calls, level)?)?;
    }
    globals.raw_set("log", log)?;
    // Users reach for `print` first; it goes where `log.info` goes, never to stdout.
    globals.raw_set("print", log_function(lua, calls, "info")?)?;
    explain_removed(lua, globals, &safe_os)
}

/// Make reading a removed global, or a removed `os` function, an error that says so.
fn explain_removed(lua: &Lua, globals: &Table, safe_os: &Table) -> mlua::Result<()> {
    let available = available(globals)?;
    let why = format!(
        "` is not available in hooks (they run sandboxed: no files, processes, environment or code loading); available: {available}"
    );
    let index: Function = lua
        .load(UNAVAILABLE_INDEX)
        .set_name("=sandbox")
        .into_function()?;
    let messages = lua.create_table()?;
    for name in REMOVED_GLOBALS {
        messages.raw_set(*name, format!("`{name}{why}"))?;
    }
    let global_index: Function = index.call((messages, Value::Nil, Value::Nil))?;
    let os_index: Function = index.call((lua.create_table()?, "`os.", why.as_str()))?;
    for (table, index) in [(globals, global_index), (safe_os, os_index)] {
        let meta = lua.create_table()?;
        meta.raw_set("__index", index)?;
        meta.set_readonly(true);
        table.set_metatable(Some(meta))?;
    }
    Ok(())
}

/// What a script can use, by name, for the "not available" message.
fn available(globals: &Table) -> mlua::Result<String> {
    let (mut libraries, mut functions) = (Vec::new(), Vec::new());
    globals.for_each(|key: Value, value: Value| {
        let Ok(name) = key.to_string() else {
            return Ok(());
        };
        if name.starts_with('_') {
            return Ok(());
        }
        match value {
            Value::Table(_) if name == "os" => {
                libraries.push(format!("os ({})", KEPT_OS.join(", ")))
            }
            Value::Table(_) => libraries.push(name),
            Value::Function(_) => functions.push(name),
            _ => {}
        }
        Ok(())
    })?;
    libraries.sort();
    functions.sort();
    Ok(format!(
        "the libraries {} and the functions {}",
        libraries.join(", "),
        functions.join(", ")
    ))
}

/// `json.null` (the null sentinel) and `json.array(t)` (marks `t`, or a new table, as an array).
fn json_table(lua: &Lua, array_mt: &Table) -> mlua::Result<Table> {
    let json = lua.create_table()?;
    json.raw_set("null", Value::NULL)?;
    let mt = array_mt.clone();
    let array = lua.create_function(move |lua, table: Option<Table>| {
        let table = match table {
            Some(table) => table,
            None => lua.create_table()?,
        };
        table.set_metatable(Some(mt.clone()))?;
        Ok(table)
    })?;
    json.raw_set("array", array)?;
    Ok(json)
}

/// `reject(reason)`: records the reason (first call wins) and unwinds the script.
fn reject_function(lua: &Lua, calls: &Rc<CallState>) -> mlua::Result<Function> {
    let calls = Rc::clone(calls);
    lua.create_function(move |_, args: Variadic<Value>| {
        let reason = match args.first() {
            None | Some(Value::Nil) => "no reason given".to_owned(),
            // Echoed to the caller and logged: a 5 MB reason must not be.
            Some(_) => cut(render(&args), MAX_REASON_BYTES),
        };
        calls.rejection.borrow_mut().get_or_insert(reason);
        // Raised so the script stops here; `call` reports the rejection, not this error.
        Err::<(), _>(mlua::Error::external(RejectSignal))
    })
}

/// `log.<level>(...)`: one tracing event, target `hooks`, field `hook` = the running script.
fn log_function(lua: &Lua, calls: &Rc<CallState>, level: &'static str) -> mlua::Result<Function> {
    let calls = Rc::clone(calls);
    lua.create_function(move |_, args: Variadic<Value>| {
        let text = render(&args);
        let hook = calls.hook.borrow();
        match level {
            "error" => tracing::error!(target: "hooks", hook = %hook, "{text}"),
            "warn" => tracing::warn!(target: "hooks", hook = %hook, "{text}"),
            _ => tracing::info!(target: "hooks", hook = %hook, "{text}"),
        }
        Ok(())
    })
}

/// Arguments joined by spaces, as `tostring` would show them, capped in length.
fn render(args: &[Value]) -> String {
    let mut text = args
        .iter()
        .map(|v| v.to_string().unwrap_or_else(|_| v.type_name().to_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    if let Some((cut, _)) = text.char_indices().nth(MAX_MESSAGE_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}
