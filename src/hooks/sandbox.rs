//! The sandboxed Luau VM: read-only libraries, one environment per script, limits on every call.
//!
//! What a script can reach: Luau's base library minus code loading and environment access;
//! `string`, `table`, `math`, `utf8`, `bit32`, `coroutine`, `buffer`; `os` cut down to
//! `clock`, `time` and `date`; no `io`, `debug` or `package` (the list is in `globals.rs`).
//! Chunks load in text mode only, so no bytecode. After `Lua::sandbox(true)`
//! every library table and the global table are read-only, so `string.upper = nil` fails
//! instead of breaking the next script. Each script gets its own environment whose reads
//! fall through to the globals, so two scripts' globals never clash.
//!
//! Limits: the wall-clock budget is enforced in Luau's interrupt, which fires at calls,
//! loop back-edges and inside the pattern matcher (so a runaway `string.find` stops too,
//! which PUC Lua's instruction hooks cannot do). Memory is capped for the whole VM while
//! script code runs; our own conversion of the event in and out runs unmetered and is
//! checked right after (see `Sandbox::unmetered` for why).
//!
//! Added globals (`globals.rs`): `reject(reason)`, `log.info/warn/error(...)` (and `print`,
//! as info), `json.null` and `json.array(t)`; `convert` says what they become in JSON.

use std::rc::Rc;
use std::time::{Duration, Instant};

use chrono::SecondsFormat;
use mlua::chunk::ChunkMode;
use mlua::{Function, Lua, LuaOptions, StdLib, Table, Value, VmState};

use crate::config::HooksConfig;
use crate::event::{Event, EventData};

use super::convert::{self, ConvertError};
use super::discover::HookFile;
use super::error::{is_memory_error, message, HookError};
use super::globals::{self, CallState};
pub use super::returned::Outcome;
use super::returned::{self, Limits};

#[derive(Debug, thiserror::Error)]
#[error("time budget exceeded")]
struct OutOfTime;

/// One Luau VM with the hook globals installed and the limits armed.
pub struct Sandbox {
    lua: Lua,
    calls: Rc<CallState>,
    /// The real (read-only) global table, which every script environment reads through.
    globals: Table,
    array_mt: Table,
    timeout: Duration,
    memory_limit: usize,
    /// A result larger than this (as JSON) fails the hook, as input larger is not given one.
    max_output: usize,
}

/// A script compiled into its own environment; `func` is its global `hook`.
#[derive(Debug)]
pub struct CompiledHook {
    name: Rc<str>,
    func: Function,
}

/// The read-only fields of an event as scripts see them, made once per event for all
/// of its hooks (the timestamp is formatted here, not on every call).
pub struct Header<'a> {
    pub name: &'static str,
    pub id: &'a str,
    pub timestamp: String,
}

impl<'a> Header<'a> {
    pub fn of(event: &'a Event) -> Header<'a> {
        Header {
            name: event.name.as_str(),
            id: &event.id,
            timestamp: event.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        }
    }
}

impl Sandbox {
    /// A fresh VM with `config`'s time and memory limits.
    pub fn new(config: &HooksConfig) -> Result<Sandbox, HookError> {
        Sandbox::build(config).map_err(|e| HookError::Vm(message(&e)))
    }

    fn build(config: &HooksConfig) -> mlua::Result<Sandbox> {
        let libs = StdLib::STRING
            | StdLib::TABLE
            | StdLib::MATH
            | StdLib::UTF8
            | StdLib::BIT
            | StdLib::OS
            | StdLib::COROUTINE
            | StdLib::BUFFER;
        // Without this a script's `pcall` would swallow a Rust panic; we want panics to
        // reach the actor, which rebuilds the VM.
        let lua = Lua::new_with(libs, LuaOptions::new().catch_rust_panics(false))?;
        let calls = Rc::new(CallState::default());
        let globals = lua.globals();
        let array_mt = lua.create_table()?;
        globals::install(&lua, &globals, &array_mt, &calls)?;

        // Makes the globals and every library table in them read-only.
        lua.sandbox(true)?;
        array_mt.set_readonly(true);
        lua.set_memory_limit(config.memory_limit_bytes)?;
        let state = Rc::clone(&calls);
        lua.set_interrupt(move |_| {
            let Some(deadline) = state.deadline.get() else {
                return Ok(VmState::Continue);
            };
            let now = Instant::now();
            if state.due.get().is_some_and(|due| now >= due) {
                state.due.set(None);
                if let Some(on_due) = state.on_due.borrow().as_ref() {
                    on_due();
                }
            }
            if now >= deadline {
                state.timed_out.set(true);
                return Err(mlua::Error::external(OutOfTime));
            }
            Ok(VmState::Continue)
        });
        Ok(Sandbox {
            lua,
            calls,
            globals,
            array_mt,
            timeout: config.timeout,
            memory_limit: config.memory_limit_bytes,
            max_output: config.max_input_bytes,
        })
    }

    /// Compile `file` into its own environment and run its top level (under the same limits).
    pub fn compile(&self, file: &HookFile) -> Result<CompiledHook, HookError> {
        let name: Rc<str> = Rc::from(file.name.as_str());
        let env = self.script_env().map_err(|e| self.classify(e))?;
        let chunk = self
            .lua
            .load(file.source.as_str())
            .set_name(format!("={}", file.name))
            .set_mode(ChunkMode::Text)
            .set_environment(env.clone())
            .into_function()
            .map_err(|e| match e {
                mlua::Error::SyntaxError { .. } => HookError::Compile(message(&e)),
                other => self.classify(other),
            })?;
        self.begin(&name);
        let ran = chunk.call::<()>(());
        self.end();
        // `reject` at the top level has no event to reject.
        self.calls.rejection.take();
        ran.map_err(|e| self.classify(e))?;
        match env.raw_get::<Value>("hook") {
            Ok(Value::Function(func)) => Ok(CompiledHook { name, func }),
            _ => Err(HookError::NoHookFunction),
        }
    }

    /// Call `hook(event)` with `data` as the event's data.
    pub fn call(
        &self,
        hook: &CompiledHook,
        header: &Header<'_>,
        data: &EventData,
    ) -> Result<Outcome, HookError> {
        self.begin(&hook.name);
        let result = self.invoke(hook, header, data);
        self.end();
        // `reject` wins even if the script caught the error it raised.
        if let Some(reason) = self.calls.rejection.take() {
            return Ok(Outcome::Rejected(reason));
        }
        let value = result?;
        if self.calls.timed_out.get() {
            // It caught the timeout error and returned anyway: still over budget.
            return Err(HookError::Timeout(self.timeout));
        }
        let limits = Limits {
            array_mt: &self.array_mt,
            max_output: self.max_output,
            memory_limit: self.memory_limit,
        };
        self.unmetered(|| returned::read(value, &limits, |e| self.classify(e)))
    }

    /// Have the interrupt call `on_due` once `due` passes while a script runs: how a worker
    /// busy with a slow hook still sends the answers it holds on time.
    pub fn set_on_due(&self, on_due: Box<dyn Fn()>) {
        *self.calls.on_due.borrow_mut() = Some(on_due);
    }

    /// When `on_due` should next run (`None`: not at all).
    pub fn set_due(&self, due: Option<Instant>) {
        self.calls.due.set(due);
    }

    /// True when, after a collection, most of the memory limit is still in use: some
    /// script is hoarding data in its globals and only a fresh VM will free it.
    pub fn memory_exhausted(&self) -> bool {
        let _ = self.lua.gc_collect();
        self.lua.used_memory() > self.memory_limit / 4 * 3
    }

    fn invoke(
        &self,
        hook: &CompiledHook,
        header: &Header<'_>,
        data: &EventData,
    ) -> Result<Value, HookError> {
        let table = self
            .unmetered(|| self.event_table(header, data))
            .map_err(|e| match e {
                ConvertError::Lua(e) => self.classify(e),
                other => HookError::BadInput(other.to_string()),
            })?;
        if self.lua.used_memory() > self.memory_limit {
            // Where a metered build would have failed: same error, same clean-up.
            return Err(self.classify(mlua::Error::MemoryError(String::new())));
        }
        hook.func.call::<Value>(table).map_err(|e| self.classify(e))
    }

    fn event_table(&self, header: &Header<'_>, data: &EventData) -> Result<Table, ConvertError> {
        let table = self.lua.create_table_with_capacity(0, 4)?;
        table.raw_set("name", header.name)?;
        table.raw_set("id", header.id)?;
        table.raw_set("timestamp", header.timestamp.as_str())?;
        table.raw_set(
            "data",
            convert::object_to_lua(&self.lua, &self.array_mt, data, self.memory_limit)?,
        )?;
        Ok(table)
    }

    /// Run host-side work (building the event table, reading the result back) with the
    /// memory limit lifted. Under a limit mlua wraps every table write and string push in
    /// a protected call of its own (two new C closures and a `pcall` each), which cost
    /// more than the conversion itself. No script code runs meanwhile and the input is
    /// capped by `max_input_bytes`; `invoke` checks the limit right after, so a VM over
    /// it still fails the hook with a memory error.
    fn unmetered<R>(&self, work: impl FnOnce() -> R) -> R {
        struct Restore<'a>(&'a Lua, usize);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                let _ = self.0.set_memory_limit(self.1);
            }
        }
        let _ = self.lua.set_memory_limit(0);
        let _restore = Restore(&self.lua, self.memory_limit);
        work()
    }

    /// Writes stay in the script's own table; reads fall through to the read-only globals.
    fn script_env(&self) -> mlua::Result<Table> {
        let env = self.lua.create_table()?;
        let meta = self.lua.create_table()?;
        meta.raw_set("__index", self.globals.clone())?;
        meta.set_readonly(true);
        env.set_metatable(Some(meta))?;
        // As Luau's own sandboxed threads do: lets the compiler resolve builtins fast.
        env.set_safeenv(true);
        Ok(env)
    }

    fn begin(&self, hook: &Rc<str>) {
        self.calls.deadline.set(Some(Instant::now() + self.timeout));
        self.calls.timed_out.set(false);
        self.calls.rejection.take();
        *self.calls.hook.borrow_mut() = Rc::clone(hook);
    }

    fn end(&self) {
        self.calls.deadline.set(None);
    }

    fn classify(&self, err: mlua::Error) -> HookError {
        if is_memory_error(&err) {
            // Free what the failed call left behind before the next hook needs the room.
            let _ = self.lua.gc_collect();
            return HookError::Memory {
                limit: self.memory_limit,
            };
        }
        if self.calls.timed_out.get() {
            return HookError::Timeout(self.timeout);
        }
        HookError::Runtime(message(&err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use crate::hooks::error::MAX_REASON_BYTES;
    use serde_json::json;

    fn config(timeout_ms: u64) -> HooksConfig {
        HooksConfig {
            timeout: Duration::from_millis(timeout_ms),
            ..HooksConfig::default()
        }
    }

    fn file(name: &str, source: &str) -> HookFile {
        HookFile {
            event: EventName::AfterMediaAdded,
            name: format!("after_media_added/{name}"),
            file: name.to_owned(),
            path: name.into(),
            priority: 999,
            source: source.to_owned(),
        }
    }

    fn event(data: serde_json::Value) -> Event {
        Event::new(
            EventName::AfterMediaAdded,
            data.as_object().unwrap().clone(),
        )
    }

    fn run(sandbox: &Sandbox, source: &str, data: serde_json::Value) -> Result<Outcome, HookError> {
        let hook = sandbox.compile(&file("t.lua", source))?;
        let ev = event(data);
        sandbox.call(&hook, &Header::of(&ev), &ev.data)
    }

    fn changed(outcome: Result<Outcome, HookError>) -> serde_json::Value {
        match outcome {
            Ok(Outcome::Changed(map)) => serde_json::Value::Object(map),
            other => panic!("expected changed data, got {other:?}"),
        }
    }

    #[test]
    fn dangerous_globals_are_gone() {
        let sandbox = Sandbox::new(&config(100)).unwrap();
        let probe = r#"
            function hook(event)
                local seen = {}
                for _, name in ipairs({"require", "load", "loadstring", "dofile", "loadfile",
                        "getfenv", "setfenv", "debug", "io", "package"}) do
                    seen[name] = type(rawget(_G, name))
                end
                local os_names = {}
                for k in pairs(os) do table.insert(os_names, k) end
                table.sort(os_names)
                event.data.seen = seen
                event.data.os = os_names
                event.data.unknown = type(no_such_global)
                return event
            end"#;
        let out = changed(run(&sandbox, probe, json!({})));
        for (name, kind) in out["seen"].as_object().unwrap() {
            assert_eq!(kind, "nil", "{name} is reachable");
        }
        assert_eq!(out["os"], json!(["clock", "date", "time"]));
        assert_eq!(out["unknown"], "nil", "other missing names stay plain nil");
    }

    #[test]
    fn reaching_for_what_was_removed_says_so_and_lists_what_is_there() {
        let sandbox = Sandbox::new(&config(100)).unwrap();
        for (code, name) in [
            ("os.execute('true')", "`os.execute`"),
            ("local home = os.getenv('HOME')", "`os.getenv`"),
            ("require('socket')", "`require`"),
            ("io.open('x')", "`io`"),
            ("load('return 1')()", "`load`"),
            ("dofile('x')", "`dofile`"),
            ("debug.traceback()", "`debug`"),
            ("local p = _G.package", "`package`"),
        ] {
            let source = format!("function hook(event)\n  {code}\nend");
            let Err(HookError::Runtime(msg)) = run(&sandbox, &source, json!({})) else {
                panic!("{code}: not an error");
            };
            assert!(
                msg.starts_with(&format!(
                    "after_media_added/t.lua:2: {name} is not available in hooks"
                )),
                "{code}: {msg}"
            );
            for there in [
                "string",
                "table",
                "os (clock, time, date)",
                "json",
                "reject",
                "pairs",
            ] {
                assert!(msg.contains(there), "{code}: {there} not listed in {msg}");
            }
            assert!(!msg.contains("nil value"), "{msg}");
        }
    }

    #[test]
    fn a_result_over_the_input_limit_fails_the_hook() {
        let sandbox = Sandbox::new(&HooksConfig {
            max_input_bytes: 1024,
            ..config(1000)
        })
        .unwrap();
        let err = run(
            &sandbox,
            "function hook(e) e.data.big = string.rep('x', 2000); return e end",
            json!({}),
        )
        .unwrap_err();
        assert_eq!(err, HookError::OutputTooLarge { max: 1024 });
        // Far over: stopped by the estimate before the copy is made.
        let err = run(
            &sandbox,
            "function hook(e) e.data.big = string.rep('x', 1e6); return e end",
            json!({}),
        )
        .unwrap_err();
        assert_eq!(err, HookError::OutputTooLarge { max: 1024 });
        let out = changed(run(
            &sandbox,
            "function hook(e) e.data.ok = string.rep('x', 900); return e end",
            json!({}),
        ));
        assert_eq!(out["ok"].as_str().unwrap().len(), 900);
        let deep = "function hook(e) local t = {} e.data.deep = t for i = 1, 70 do t.x = {} t = t.x end return e end";
        match run(&sandbox, deep, json!({})) {
            Err(HookError::BadReturn(msg)) => assert!(msg.contains("nesting deeper"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_long_reject_reason_is_cut_to_a_kilobyte() {
        let sandbox = Sandbox::new(&config(1000)).unwrap();
        let out = run(
            &sandbox,
            "function hook(e) reject(string.rep('é', 1e6)) end",
            json!({}),
        );
        let Ok(Outcome::Rejected(reason)) = out else {
            panic!("{out:?}")
        };
        assert!(
            reason.len() <= MAX_REASON_BYTES && reason.len() > 1000,
            "{}",
            reason.len()
        );
        assert!(reason.ends_with('…'));
    }

    #[test]
    fn libraries_and_globals_are_read_only() {
        let sandbox = Sandbox::new(&config(100)).unwrap();
        for code in [
            "string.upper = nil",
            "string.x = 1",
            "_G.x = 1",
            "json.null = 1",
            "log.info = print",
        ] {
            let source = format!("function hook(event) {code} end");
            match run(&sandbox, &source, json!({})) {
                Err(HookError::Runtime(msg)) => assert!(msg.contains("readonly"), "{code}: {msg}"),
                other => panic!("{code}: {other:?}"),
            }
        }
        let out = changed(run(
            &sandbox,
            "function hook(e) e.data.t = string.upper('ok'); return e end",
            json!({}),
        ));
        assert_eq!(out["t"], "OK");
    }

    #[test]
    fn scripts_have_separate_globals() {
        let sandbox = Sandbox::new(&config(100)).unwrap();
        let a = sandbox
            .compile(&file(
                "a.lua",
                "counter = 'a'; function hook(e) e.data.a = counter; return e end",
            ))
            .unwrap();
        let b = sandbox
            .compile(&file(
                "b.lua",
                "counter = 'b'; function hook(e) e.data.b = counter; return e end",
            ))
            .unwrap();
        let ev = event(json!({}));
        let Ok(Outcome::Changed(after_a)) = sandbox.call(&a, &Header::of(&ev), &ev.data) else {
            panic!()
        };
        let Ok(Outcome::Changed(after_b)) = sandbox.call(&b, &Header::of(&ev), &after_a) else {
            panic!()
        };
        assert_eq!(
            serde_json::Value::Object(after_b),
            json!({"a": "a", "b": "b"})
        );
    }

    #[test]
    fn bytecode_and_missing_hook_are_load_errors() {
        let sandbox = Sandbox::new(&config(100)).unwrap();
        let err = sandbox
            .compile(&file("bin.lua", "\u{6}\u{3}\0\0garbage"))
            .unwrap_err();
        assert!(
            matches!(err, HookError::Compile(ref m) if m.contains("binary chunk")),
            "{err:?}"
        );
        let err = sandbox
            .compile(&file("none.lua", "local function hook(e) end"))
            .unwrap_err();
        assert_eq!(err, HookError::NoHookFunction);
        let err = sandbox
            .compile(&file("syntax.lua", "function hook(e)"))
            .unwrap_err();
        assert!(
            matches!(err, HookError::Compile(ref m) if m.contains("syntax.lua")),
            "{err:?}"
        );
    }

    #[test]
    fn endless_top_level_code_times_out_at_load() {
        let sandbox = Sandbox::new(&config(50)).unwrap();
        let err = sandbox
            .compile(&file("loop.lua", "while true do end"))
            .unwrap_err();
        assert_eq!(err, HookError::Timeout(Duration::from_millis(50)));
    }

    #[test]
    fn pathological_pattern_is_really_slow_and_still_interrupted() {
        // With a budget of 1 s the match is still running when time is up: without the
        // interrupt inside the matcher it would block the VM far longer than any budget.
        let sandbox = Sandbox::new(&config(1000)).unwrap();
        let source =
            r#"function hook(e) string.find(string.rep("a", 1e5), ".-.-.-.-.-.-.-.-b") end"#;
        let started = Instant::now();
        let err = run(&sandbox, source, json!({})).unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(err, HookError::Timeout(Duration::from_secs(1)));
        assert!(
            elapsed >= Duration::from_secs(1) && elapsed < Duration::from_millis(1300),
            "{elapsed:?}"
        );
    }

    #[test]
    fn caught_timeout_still_counts_as_timeout() {
        let sandbox = Sandbox::new(&config(50)).unwrap();
        let source =
            "function hook(e) pcall(function() while true do end end); e.data.x = 1; return e end";
        assert_eq!(
            run(&sandbox, source, json!({})),
            Err(HookError::Timeout(Duration::from_millis(50)))
        );
    }

    #[test]
    fn memory_error_is_classified_and_the_vm_recovers() {
        let sandbox = Sandbox::new(&config(1000)).unwrap();
        let err = run(
            &sandbox,
            "function hook(e) local s = string.rep('x', 1e9) end",
            json!({}),
        )
        .unwrap_err();
        assert!(matches!(err, HookError::Memory { .. }), "{err:?}");
        assert!(!sandbox.memory_exhausted());
        let out = changed(run(
            &sandbox,
            "function hook(e) e.data.ok = true; return e end",
            json!({}),
        ));
        assert_eq!(out, json!({"ok": true}));
    }

    #[test]
    fn input_that_does_not_fit_in_memory_is_a_memory_error() {
        // The event table is built with the limit lifted; the check right after must
        // still fail the hook, as a failed allocation did, and leave the VM usable.
        let sandbox = Sandbox::new(&HooksConfig {
            memory_limit_bytes: 2 * 1024 * 1024,
            ..config(1000)
        })
        .unwrap();
        let hook = "function hook(e) e.data.ok = true; return e end";
        let big = json!({"blob": "x".repeat(3 * 1024 * 1024)});
        let err = run(&sandbox, hook, big).unwrap_err();
        assert_eq!(
            err,
            HookError::Memory {
                limit: 2 * 1024 * 1024
            }
        );
        assert!(!sandbox.memory_exhausted());
        assert_eq!(changed(run(&sandbox, hook, json!({}))), json!({"ok": true}));
    }

    #[test]
    fn reject_cannot_be_swallowed_by_pcall() {
        let sandbox = Sandbox::new(&config(100)).unwrap();
        let out = run(
            &sandbox,
            "function hook(e) pcall(reject, 'no thanks'); return e end",
            json!({}),
        );
        assert_eq!(out, Ok(Outcome::Rejected("no thanks".into())));
        let out = run(&sandbox, "function hook(e) reject() end", json!({}));
        assert_eq!(out, Ok(Outcome::Rejected("no reason given".into())));
    }

    #[test]
    fn garbage_returns_are_bad_returns() {
        let sandbox = Sandbox::new(&config(100)).unwrap();
        for (source, wanted) in [
            ("function hook(e) return 42 end", "returned a number"),
            (
                "function hook(e) e.data = 'x'; return e end",
                "event.data is a string",
            ),
            (
                "function hook(e) e.data = {1, 2}; return e end",
                "became an array",
            ),
            (
                "function hook(e) e.data.f = print; return e end",
                "function at data.f",
            ),
        ] {
            match run(&sandbox, source, json!({"a": 1})) {
                Err(HookError::BadReturn(msg)) => assert!(msg.contains(wanted), "{source}: {msg}"),
                other => panic!("{source}: {other:?}"),
            }
        }
    }

    #[test]
    fn json_helpers_make_nulls_and_empty_arrays() {
        let sandbox = Sandbox::new(&config(100)).unwrap();
        let source = r#"function hook(e)
            e.data.tags = json.array()
            e.data.gone = json.null
            e.data.was_null = e.data.maybe == json.null
            return e
        end"#;
        let out = changed(run(&sandbox, source, json!({"maybe": null})));
        assert_eq!(
            out,
            json!({"maybe": null, "tags": [], "gone": null, "was_null": true})
        );
    }

    #[test]
    fn log_writes_to_tracing_under_the_hook_name() {
        use std::sync::{Arc, Mutex};

        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let out = tracing::subscriber::with_default(subscriber, || {
            let sandbox = Sandbox::new(&config(100)).unwrap();
            let source = "function hook(e) log.warn('seen', 42, e.data.t); print('printed') end";
            run(&sandbox, source, json!({"t": "x"}))
        });
        assert_eq!(out, Ok(Outcome::Unchanged));
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let warn = text.lines().find(|l| l.contains("seen 42 x")).expect(&text);
        assert!(
            warn.contains("WARN")
                && warn.contains("hooks")
                && warn.contains("hook=after_media_added/t.lua"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.contains("INFO") && l.contains("printed")),
            "{text}"
        );
    }
}
