//! The globals the sandbox takes away from scripts and the ones it adds: `reject`, `log`, `json`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use mlua::{Function, Lua, Table, Value, Variadic};

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

/// Longest text accepted from `log.*` or `reject`, so one script cannot flood the logs.
pub const MAX_MESSAGE_CHARS: usize = 2000;

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
    globals.raw_set("os", safe_os)?;

    globals.raw_set("json", json_table(lua, array_mt)?)?;
    globals.raw_set("reject", reject_function(lua, calls)?)?;
    let log = lua.create_table()?;
    for level in ["info", "warn", "error"] {
        log.raw_set(level, log_function(lua, calls, level)?)?;
    }
    globals.raw_set("log", log)?;
    // Users reach for `print` first; it goes where `log.info` goes, never to stdout.
    globals.raw_set("print", log_function(lua, calls, "info")?)?;
    Ok(())
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
            Some(_) => render(&args),
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
