//! Luau → JSON: whatever the script left in `event.data`, by the rules in `convert`.

use std::borrow::Cow;
use std::ffi::c_void;

use mlua::{Table, Value as LuaValue};
use serde_json::{Map, Number, Value as Json};

use super::{ConvertError, Path, Seg, MAX_DEPTH};

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
        // Sorted by key kind as they come; `assemble` decides what the table was.
        let mut names = Map::new();
        let mut indices: Vec<(usize, Json)> = Vec::new();
        // Raw iteration: no `__pairs`/`__index` metamethods run outside the time budget.
        table
            .for_each(|k: LuaValue, v: LuaValue| {
                let key = self.key(k)?;
                self.path.push(key);
                let value = self.value(v, depth + 1);
                let key = self.path.pop().expect("the key pushed just above");
                let value = value.map_err(mlua::Error::external)?;
                match key {
                    Seg::Key(name) => {
                        names.insert(name.into_owned(), value);
                    }
                    Seg::Index(i) => indices.push((i, value)),
                }
                Ok(())
            })
            .map_err(unwrap_external)?;
        self.open.pop();
        self.assemble(names, indices, marked_array)
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
        names: Map<String, Json>,
        indices: Vec<(usize, Json)>,
        marked_array: bool,
    ) -> Result<Json, ConvertError> {
        let n = names.len() + indices.len();
        if n == 0 {
            return Ok(if marked_array {
                Json::Array(Vec::new())
            } else {
                Json::Object(Map::new())
            });
        }
        if names.is_empty() {
            // Lua keys are unique, so n keys all within 1..=n fill every slot exactly once.
            let mut slots: Vec<Json> = vec![Json::Null; n];
            for (i, value) in indices {
                match slots.get_mut(i.wrapping_sub(1)) {
                    Some(slot) => *slot = value,
                    None => {
                        return Err(self.bad_keys("is a sparse array (indices are not 1..n)".into()))
                    }
                }
            }
            return Ok(Json::Array(slots));
        }
        if marked_array {
            return Err(self.bad_keys("is an array with string keys".into()));
        }
        if !indices.is_empty() {
            return Err(self.bad_keys("mixes index and string keys".into()));
        }
        Ok(Json::Object(names))
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
