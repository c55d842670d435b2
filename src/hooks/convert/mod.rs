//! JSON ↔ Luau conversion, with explicit rules where Lua alone cannot tell the cases apart.
//!
//! Rules (upstream Mydia lost data on each of these):
//! - Numbers: Luau has only doubles. On the way back a finite whole number becomes a JSON
//!   integer (2024 stays 2024, not 2024.0); NaN and ±inf become `null`. Integers beyond
//!   2^53 lose precision in Lua, as they would in JavaScript.
//! - `null` becomes the sentinel `json.null` (a null light userdata), so keys and array
//!   slots holding null survive; assigning `nil` removes a key, as Lua users expect.
//! - Arrays from JSON carry a shared read-only metatable (also set by `json.array(t)`), so
//!   an array emptied by a hook still comes back as `[]`.
//! - Any other table: keys exactly `1..n` → array; string keys → object; empty → `{}`.
//!   Mixed, sparse, boolean or fractional keys are an error for that hook, not a guess.
//! - Nesting is capped at [`MAX_DEPTH`]; a table that contains itself is an error; the
//!   result may not outgrow a byte budget (one table referenced a million times would
//!   otherwise become a million copies).
//!
//! `to_luau` builds the tables, `to_json` reads them back; the tests here cover both ways.

use std::borrow::Cow;
use std::fmt::Write as _;

mod to_json;
mod to_luau;

#[cfg(test)]
pub use to_luau::to_lua;
pub use {to_json::from_lua, to_luau::object_to_lua};

/// Deepest nesting accepted in either direction.
pub const MAX_DEPTH: usize = 64;

/// Why a value could not cross between JSON and Lua; `path` reads like `data.tags[2]`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConvertError {
    /// More than [`MAX_DEPTH`] levels of tables.
    #[error("nesting deeper than {MAX_DEPTH} levels at {path}")]
    TooDeep {
        /// Where.
        path: String,
    },
    /// A table reachable from itself.
    #[error("table at {path} contains itself")]
    Cycle {
        /// Where.
        path: String,
    },
    /// Keys that are neither all strings nor exactly `1..n`.
    #[error("table at {path} {reason}; use string keys (object) or 1..n (array)")]
    BadKeys {
        /// Where.
        path: String,
        /// What is wrong with the keys.
        reason: String,
    },
    /// A function, coroutine, userdata or the like.
    #[error("{kind} at {path} has no json form")]
    Unsupported {
        /// Where.
        path: String,
        /// The Lua type name.
        kind: &'static str,
    },
    /// A string that is not UTF-8 (e.g. cut in the middle of a character).
    #[error("string at {path} is not valid utf-8")]
    NotUtf8 {
        /// Where.
        path: String,
    },
    /// The result grew past the byte budget.
    #[error("result is larger than {max} bytes")]
    TooLarge {
        /// The budget.
        max: usize,
    },
    /// The VM failed (typically out of memory) while building tables.
    #[error(transparent)]
    Lua(#[from] mlua::Error),
}

/// Where we are inside the value, kept as segments and rendered only for error messages.
#[derive(Default)]
struct Path<'a>(Vec<Seg<'a>>);

/// One step of a path: an object key (borrowed from JSON, owned when read from Lua) or a
/// 1-based array index. Reading from Lua it doubles as the classified key of an entry.
enum Seg<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

impl<'a> Path<'a> {
    fn push(&mut self, seg: Seg<'a>) {
        self.0.push(seg);
    }

    fn pop(&mut self) -> Option<Seg<'a>> {
        self.0.pop()
    }

    fn render(&self) -> String {
        let mut out = String::from("data");
        for seg in &self.0 {
            let _ = match seg {
                Seg::Key(k) => write!(out, ".{k}"),
                Seg::Index(i) => write!(out, "[{i}]"),
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::{Lua, Table, Value as LuaValue};
    use serde_json::{json, Map, Value as Json};

    struct Vm {
        lua: Lua,
        mt: Table,
    }

    fn vm() -> Vm {
        let lua = Lua::new();
        let mt = lua.create_table().unwrap();
        Vm { lua, mt }
    }

    impl Vm {
        fn round_trip(&self, value: &Json) -> Json {
            let lua_value = to_lua(&self.lua, &self.mt, value).unwrap();
            from_lua(lua_value, &self.mt, 1 << 20).unwrap()
        }

        /// Evaluate `code` with `mt` (the array marker) in scope, then read the result back.
        fn eval(&self, code: &str) -> Result<Json, ConvertError> {
            self.lua.globals().set("mt", self.mt.clone()).unwrap();
            let value: LuaValue = self.lua.load(code).eval().unwrap();
            from_lua(value, &self.mt, 1 << 20)
        }
    }

    #[test]
    fn integers_stay_integers() {
        let vm = vm();
        for value in [
            json!(2024),
            json!(0),
            json!(-7),
            json!(9_007_199_254_740_992_i64),
            json!(4_000_000_000_u64),
        ] {
            let back = vm.round_trip(&value);
            assert_eq!(back, value);
            assert_eq!(back.to_string(), value.to_string(), "must not gain a .0");
        }
        assert_eq!(vm.eval("return 2023 + 1").unwrap().to_string(), "2024");
        assert_eq!(vm.eval("return 3.0").unwrap().to_string(), "3");
        assert_eq!(
            vm.eval("return 2^63").unwrap(),
            json!(9_223_372_036_854_775_808_u64)
        );
    }

    #[test]
    fn floats_survive_and_non_finite_becomes_null() {
        let vm = vm();
        for value in [json!(1.5), json!(-0.25), json!(1e300), json!(6.02e23)] {
            assert_eq!(vm.round_trip(&value), value);
        }
        assert_eq!(vm.eval("return 0/0").unwrap(), Json::Null);
        assert_eq!(vm.eval("return math.huge").unwrap(), Json::Null);
        assert_eq!(
            vm.eval("return {x = -math.huge}").unwrap(),
            json!({"x": null})
        );
    }

    #[test]
    fn nested_values_strings_and_nulls_round_trip() {
        let vm = vm();
        let value = json!({
            "media_item": {"title": "Amélie 🎬 日本語", "year": 2001, "tags": ["a", null, "b"], "rating": 8.3},
            "nothing": null,
            "flags": [true, false],
            "matrix": [[1, 2], [3, [4, {"deep": "yes"}]]],
            "1": "a string key that looks like an index",
        });
        assert_eq!(vm.round_trip(&value), value);
    }

    #[test]
    fn empty_arrays_and_objects_keep_their_kind() {
        let vm = vm();
        let value = json!({"tags": [], "meta": {}, "nested": [[], {}]});
        assert_eq!(vm.round_trip(&value), value);
        assert_eq!(vm.eval("return {}").unwrap(), json!({}));
        assert_eq!(vm.eval("return setmetatable({}, mt)").unwrap(), json!([]));
        // An array from JSON, emptied by a script, is still an array.
        let arr = to_lua(&vm.lua, &vm.mt, &json!([1, 2])).unwrap();
        vm.lua.globals().set("arr", arr).unwrap();
        assert_eq!(
            vm.eval("arr[2] = nil; arr[1] = nil; return arr").unwrap(),
            json!([])
        );
    }

    #[test]
    fn lua_tables_become_arrays_or_objects_by_their_keys() {
        let vm = vm();
        assert_eq!(vm.eval("return {'x', 'y'}").unwrap(), json!(["x", "y"]));
        assert_eq!(
            vm.eval("return {[2] = 'b', [1] = 'a'}").unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(
            vm.eval("return {a = 1, b = {c = true}}").unwrap(),
            json!({"a": 1, "b": {"c": true}})
        );
        let t = vm
            .eval("local t = {1, 2}; table.insert(t, 3); return t")
            .unwrap();
        assert_eq!(t, json!([1, 2, 3]));
    }

    #[test]
    fn ambiguous_keys_are_errors() {
        let vm = vm();
        for (code, wanted) in [
            ("return {1, 2, x = 3}", "mixes index and string keys"),
            ("return {[1] = 'a', [3] = 'c'}", "sparse array"),
            ("return {[true] = 1}", "boolean key"),
            ("return {[1.5] = 1}", "number key 1.5"),
            ("return {[0] = 1}", "number key 0"),
            (
                "return {inner = setmetatable({x = 1}, mt)}",
                "array with string keys",
            ),
        ] {
            let err = vm.eval(code).unwrap_err();
            assert!(
                matches!(err, ConvertError::BadKeys { .. }),
                "{code}: {err:?}"
            );
            assert!(err.to_string().contains(wanted), "{code}: {err}");
        }
        let err = vm.eval("return {a = {b = {1, x = 2}}}").unwrap_err();
        assert!(err.to_string().contains("data.a.b"), "{err}");
    }

    #[test]
    fn cycles_are_errors_but_shared_tables_are_copied() {
        let vm = vm();
        let err = vm.eval("local t = {}; t.self = t; return t").unwrap_err();
        assert!(
            matches!(err, ConvertError::Cycle { ref path } if path == "data.self"),
            "{err:?}"
        );
        let shared = vm.eval("local s = {v = 1}; return {a = s, b = s}").unwrap();
        assert_eq!(shared, json!({"a": {"v": 1}, "b": {"v": 1}}));
    }

    #[test]
    fn depth_is_capped_both_ways() {
        let vm = vm();
        let nest = |levels: usize| (0..levels).fold(json!("leaf"), |inner, _| json!([inner]));
        assert_eq!(vm.round_trip(&nest(MAX_DEPTH)), nest(MAX_DEPTH));
        let err = to_lua(&vm.lua, &vm.mt, &nest(MAX_DEPTH + 1)).unwrap_err();
        assert!(matches!(err, ConvertError::TooDeep { .. }), "{err:?}");

        let code = |levels: usize| {
            format!("local t = 'leaf'; for i = 1, {levels} do t = {{t}} end; return t")
        };
        assert!(vm.eval(&code(MAX_DEPTH)).is_ok());
        let err = vm.eval(&code(MAX_DEPTH + 1)).unwrap_err();
        assert!(matches!(err, ConvertError::TooDeep { .. }), "{err:?}");
    }

    #[test]
    fn building_tables_stops_at_the_memory_limit() {
        // Runs with the VM's own limit lifted, so it must keep the limit itself: data a
        // hook made huge may not balloon the VM on the way into the next hook.
        let vm = vm();
        let big: Map<String, Json> = (0..100_000)
            .map(|i| (format!("key{i}"), json!(format!("value {i}"))))
            .collect();
        let limit = vm.lua.used_memory() + 256 * 1024;
        let err = object_to_lua(&vm.lua, &vm.mt, &big, limit).unwrap_err();
        assert!(
            matches!(err, ConvertError::Lua(mlua::Error::MemoryError(_))),
            "{err:?}"
        );
        assert!(vm.lua.used_memory() <= limit, "stopped before the limit");
        vm.lua.gc_collect().unwrap();
        let small = json!({"a": [1, "two", {"three": null}]});
        let table = object_to_lua(&vm.lua, &vm.mt, small.as_object().unwrap(), limit).unwrap();
        assert_eq!(
            from_lua(LuaValue::Table(table), &vm.mt, 1 << 20).unwrap(),
            small
        );
    }

    #[test]
    fn shared_table_bomb_hits_the_budget() {
        let vm = vm();
        // 2^40 leaves if copied naively; the budget stops it after ~1 MiB of output.
        let err = vm
            .eval("local t = {'x'}; for i = 1, 40 do t = {t, t} end; return t")
            .unwrap_err();
        assert!(matches!(err, ConvertError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn functions_and_bad_strings_are_errors() {
        let vm = vm();
        let err = vm.eval("return {f = print}").unwrap_err();
        assert!(
            matches!(
                err,
                ConvertError::Unsupported {
                    kind: "function",
                    ..
                }
            ),
            "{err:?}"
        );
        let err = vm.eval("return {s = '\\xff\\xfe'}").unwrap_err();
        assert!(matches!(err, ConvertError::NotUtf8 { .. }), "{err:?}");
    }
}
