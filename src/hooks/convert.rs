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

use std::borrow::Cow;
use std::ffi::c_void;
use std::fmt::Write as _;

use mlua::{IntoLua, Lua, Table, Value as LuaValue};
use serde_json::{Map, Number, Value as Json};

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

/// Build the Lua value for `value`; arrays get `array_mt` (the event path uses `object_to_lua`).
#[cfg(test)]
pub fn to_lua(lua: &Lua, array_mt: &Table, value: &Json) -> Result<LuaValue, ConvertError> {
    let mut conv = ToLua {
        lua,
        array_mt,
        path: Path::default(),
    };
    conv.value(value, 0)
}

/// Build the table for a JSON object (the event data) without wrapping it in a `Value` first.
pub fn object_to_lua(
    lua: &Lua,
    array_mt: &Table,
    map: &Map<String, Json>,
) -> Result<Table, ConvertError> {
    let mut conv = ToLua {
        lua,
        array_mt,
        path: Path::default(),
    };
    conv.object(map, 0)
}

/// Read a Lua value back as JSON, spending at most `budget` (estimated) bytes.
pub fn from_lua(value: LuaValue, array_mt: &Table, budget: usize) -> Result<Json, ConvertError> {
    let mut conv = FromLua {
        array_mt: array_mt.to_pointer(),
        budget,
        max: budget,
        open: Vec::new(),
        path: Path::default(),
    };
    conv.value(value, 0)
}

struct ToLua<'a> {
    lua: &'a Lua,
    array_mt: &'a Table,
    /// Borrows the keys of the JSON being converted: no copies unless an error names them.
    path: Path<'a>,
}

impl<'a> ToLua<'a> {
    /// Only tables go through a `Value` (a registry reference); scalars are pushed straight
    /// into their slot by [`ToLua::set`].
    fn value(&mut self, value: &'a Json, depth: usize) -> Result<LuaValue, ConvertError> {
        Ok(match value {
            Json::Null => LuaValue::NULL,
            Json::Bool(b) => LuaValue::Boolean(*b),
            // Always a double: Luau's own number type, whatever serde_json held.
            Json::Number(n) => LuaValue::Number(n.as_f64().unwrap_or(f64::NAN)),
            Json::String(s) => LuaValue::String(self.lua.create_string(s)?),
            Json::Array(items) => {
                self.enter(depth)?;
                let table = self.lua.create_table_with_capacity(items.len(), 0)?;
                for (i, item) in items.iter().enumerate() {
                    self.path.push(Seg::Index(i + 1));
                    self.set(&table, i + 1, item, depth + 1)?;
                    self.path.pop();
                }
                table.set_metatable(Some(self.array_mt.clone()))?;
                LuaValue::Table(table)
            }
            Json::Object(map) => {
                self.enter(depth)?;
                LuaValue::Table(self.object(map, depth)?)
            }
        })
    }

    fn object(&mut self, map: &'a Map<String, Json>, depth: usize) -> Result<Table, ConvertError> {
        let table = self.lua.create_table_with_capacity(0, map.len())?;
        for (key, item) in map {
            self.path.push(Seg::Key(Cow::Borrowed(key)));
            self.set(&table, key.as_str(), item, depth + 1)?;
            self.path.pop();
        }
        Ok(table)
    }

    /// `table[key] = value`, the same values [`ToLua::value`] makes.
    fn set(
        &mut self,
        table: &Table,
        key: impl IntoLua,
        value: &'a Json,
        depth: usize,
    ) -> Result<(), ConvertError> {
        match value {
            Json::Bool(b) => table.raw_set(key, *b)?,
            Json::Number(n) => table.raw_set(key, n.as_f64().unwrap_or(f64::NAN))?,
            Json::String(s) => table.raw_set(key, s.as_str())?,
            Json::Null | Json::Array(_) | Json::Object(_) => {
                table.raw_set(key, self.value(value, depth)?)?
            }
        }
        Ok(())
    }

    fn enter(&self, depth: usize) -> Result<(), ConvertError> {
        if depth >= MAX_DEPTH {
            return Err(ConvertError::TooDeep {
                path: self.path.render(),
            });
        }
        Ok(())
    }
}

struct FromLua {
    array_mt: *const c_void,
    budget: usize,
    max: usize,
    /// Tables on the current path, for cycle detection (at most `MAX_DEPTH` long).
    open: Vec<*const c_void>,
    /// Owns the keys read so far on the way down; each is moved back out, not copied.
    path: Path<'static>,
}

impl FromLua {
    fn value(&mut self, value: LuaValue, depth: usize) -> Result<Json, ConvertError> {
        self.spend(8)?;
        Ok(match value {
            LuaValue::Nil => Json::Null,
            LuaValue::Boolean(b) => Json::Bool(b),
            v if v.is_null() => Json::Null,
            LuaValue::Integer(i) => Json::from(i),
            LuaValue::Number(n) => number(n),
            LuaValue::String(s) => {
                let text = s.to_str().map_err(|_| ConvertError::NotUtf8 {
                    path: self.path.render(),
                })?;
                self.spend(text.len())?;
                Json::String(text.to_owned())
            }
            LuaValue::Table(t) => self.table(t, depth)?,
            other => {
                return Err(ConvertError::Unsupported {
                    path: self.path.render(),
                    kind: other.type_name(),
                })
            }
        })
    }

    fn table(&mut self, table: Table, depth: usize) -> Result<Json, ConvertError> {
        let ptr = table.to_pointer();
        if depth >= MAX_DEPTH {
            return Err(ConvertError::TooDeep {
                path: self.path.render(),
            });
        }
        if self.open.contains(&ptr) {
            return Err(ConvertError::Cycle {
                path: self.path.render(),
            });
        }
        let marked_array = table
            .metatable()
            .is_some_and(|mt| mt.to_pointer() == self.array_mt);
        self.open.push(ptr);
        let mut entries: Vec<(Seg<'static>, Json)> = Vec::new();
        // Raw iteration: no `__pairs`/`__index` metamethods run outside the time budget.
        table
            .for_each(|k: LuaValue, v: LuaValue| {
                let key = self.key(k)?;
                self.path.push(key);
                let value = self.value(v, depth + 1);
                let key = self.path.pop().expect("the key pushed just above");
                entries.push((key, value.map_err(mlua::Error::external)?));
                Ok(())
            })
            .map_err(unwrap_external)?;
        self.open.pop();
        self.assemble(entries, marked_array)
    }

    /// A key seen while reading a table, classified as it comes.
    fn key(&mut self, key: LuaValue) -> mlua::Result<Seg<'static>> {
        let reason = match key {
            LuaValue::String(s) => match s.to_str() {
                Ok(text) => {
                    self.spend(text.len()).map_err(mlua::Error::external)?;
                    return Ok(Seg::Key(Cow::Owned(text.to_owned())));
                }
                Err(_) => "has a key that is not valid utf-8".to_owned(),
            },
            LuaValue::Integer(i) if i >= 1 => return Ok(Seg::Index(i as usize)),
            LuaValue::Number(n) if n >= 1.0 && n.fract() == 0.0 && n < u32::MAX as f64 => {
                return Ok(Seg::Index(n as usize))
            }
            LuaValue::Integer(i) => format!("has the number key {i}"),
            LuaValue::Number(n) => format!("has the number key {n}"),
            other => format!("has a {} key", other.type_name()),
        };
        Err(mlua::Error::external(self.bad_keys(reason)))
    }

    fn assemble(
        &self,
        entries: Vec<(Seg<'static>, Json)>,
        marked_array: bool,
    ) -> Result<Json, ConvertError> {
        let n = entries.len();
        if n == 0 {
            return Ok(if marked_array {
                Json::Array(Vec::new())
            } else {
                Json::Object(Map::new())
            });
        }
        let indices = entries
            .iter()
            .filter(|(k, _)| matches!(k, Seg::Index(_)))
            .count();
        if indices == n {
            // Lua keys are unique, so n keys all within 1..=n fill every slot exactly once.
            let mut slots: Vec<Json> = vec![Json::Null; n];
            for (key, value) in entries {
                match key {
                    Seg::Index(i) if i <= n => slots[i - 1] = value,
                    _ => {
                        return Err(self.bad_keys("is a sparse array (indices are not 1..n)".into()))
                    }
                }
            }
            return Ok(Json::Array(slots));
        }
        if marked_array {
            return Err(self.bad_keys("is an array with string keys".into()));
        }
        if indices > 0 {
            return Err(self.bad_keys("mixes index and string keys".into()));
        }
        let map = entries
            .into_iter()
            .filter_map(|(k, v)| match k {
                Seg::Key(name) => Some((name.into_owned(), v)),
                Seg::Index(_) => None,
            })
            .collect();
        Ok(Json::Object(map))
    }

    fn spend(&mut self, bytes: usize) -> Result<(), ConvertError> {
        self.budget = self
            .budget
            .checked_sub(bytes)
            .ok_or(ConvertError::TooLarge { max: self.max })?;
        Ok(())
    }

    fn bad_keys(&self, reason: String) -> ConvertError {
        ConvertError::BadKeys {
            path: self.path.render(),
            reason,
        }
    }
}

/// A finite whole number becomes a JSON integer; non-finite becomes null.
fn number(n: f64) -> Json {
    if !n.is_finite() {
        return Json::Null;
    }
    if n.fract() == 0.0 {
        // `i64::MAX as f64` is exactly 2^63, so the comparison is exact.
        if n >= i64::MIN as f64 && n < i64::MAX as f64 {
            return Json::from(n as i64);
        }
        if n >= 0.0 && n < u64::MAX as f64 {
            return Json::from(n as u64);
        }
    }
    Number::from_f64(n).map_or(Json::Null, Json::Number)
}

/// Errors raised inside `for_each` come back wrapped; give callers the original.
fn unwrap_external(err: mlua::Error) -> ConvertError {
    if let mlua::Error::ExternalError(inner) = &err {
        if let Some(conv) = inner.downcast_ref::<ConvertError>() {
            return conv.clone();
        }
    }
    ConvertError::Lua(err)
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
    use serde_json::json;

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
