//! JSON → Luau: the event data as tables, arrays marked with the shared metatable.

use std::borrow::Cow;

use mlua::{IntoLua, Lua, Table, Value as LuaValue};
use serde_json::{Map, Value as Json};

use super::{ConvertError, Path, Seg, MAX_DEPTH};

/// Build the Lua value for `value`; arrays get `array_mt` (the event path uses `object_to_lua`).
#[cfg(test)]
pub fn to_lua(lua: &Lua, array_mt: &Table, value: &Json) -> Result<LuaValue, ConvertError> {
    ToLua::new(lua, array_mt, usize::MAX).value(value, 0)
}

/// Build the table for a JSON object (the event data) without wrapping it in a `Value` first.
///
/// Meant to run with the VM's memory limit lifted (see `Sandbox::unmetered`), so it keeps
/// `memory_limit` itself: it stops with a memory error before an allocation that would
/// take the VM past it, instead of building data a previous hook made huge.
pub fn object_to_lua(
    lua: &Lua,
    array_mt: &Table,
    map: &Map<String, Json>,
    memory_limit: usize,
) -> Result<Table, ConvertError> {
    ToLua::new(lua, array_mt, memory_limit).object(map, 0)
}

struct ToLua<'a> {
    lua: &'a Lua,
    array_mt: &'a Table,
    /// Borrows the keys of the JSON being converted: no copies unless an error names them.
    path: Path<'a>,
    memory_limit: usize,
    /// Memory still free under the limit, counted down by generous estimates of what
    /// each value costs; looked up for real only when the estimates run out.
    room: usize,
}

/// Estimated bytes of a Luau string beyond its text, and of a table beyond its slots.
const STRING_OVERHEAD: usize = 32;
const TABLE_OVERHEAD: usize = 64;
/// Estimated bytes per table slot (a key and a value).
const SLOT: usize = 32;

impl<'a> ToLua<'a> {
    fn new(lua: &'a Lua, array_mt: &'a Table, memory_limit: usize) -> ToLua<'a> {
        ToLua {
            lua,
            array_mt,
            path: Path::default(),
            memory_limit,
            room: 0,
        }
    }

    /// Only tables go through a `Value` (a registry reference); scalars are pushed straight
    /// into their slot by [`ToLua::set`].
    fn value(&mut self, value: &'a Json, depth: usize) -> Result<LuaValue, ConvertError> {
        Ok(match value {
            Json::Null => LuaValue::NULL,
            Json::Bool(b) => LuaValue::Boolean(*b),
            // Always a double: Luau's own number type, whatever serde_json held.
            Json::Number(n) => LuaValue::Number(n.as_f64().unwrap_or(f64::NAN)),
            Json::String(s) => {
                self.reserve(s.len() + STRING_OVERHEAD)?;
                LuaValue::String(self.lua.create_string(s)?)
            }
            Json::Array(items) => {
                self.enter(depth)?;
                self.reserve(table_cost(items.len()))?;
                let table = self.lua.create_table_with_capacity(items.len(), 0)?;
                for (i, item) in items.iter().enumerate() {
                    self.path.push(Seg::Index(i + 1));
                    self.set(&table, i + 1, 0, item, depth + 1)?;
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
        self.reserve(table_cost(map.len()))?;
        let table = self.lua.create_table_with_capacity(0, map.len())?;
        for (key, item) in map {
            self.path.push(Seg::Key(Cow::Borrowed(key)));
            self.set(
                &table,
                key.as_str(),
                key.len() + STRING_OVERHEAD,
                item,
                depth + 1,
            )?;
            self.path.pop();
        }
        Ok(table)
    }

    /// `table[key] = value`, the same values [`ToLua::value`] makes; `key_cost` is what the
    /// key may allocate.
    fn set(
        &mut self,
        table: &Table,
        key: impl IntoLua,
        key_cost: usize,
        value: &'a Json,
        depth: usize,
    ) -> Result<(), ConvertError> {
        match value {
            Json::Bool(b) => table.raw_set(key, *b)?,
            Json::Number(n) => table.raw_set(key, n.as_f64().unwrap_or(f64::NAN))?,
            Json::String(s) => {
                self.reserve(key_cost + s.len() + STRING_OVERHEAD)?;
                table.raw_set(key, s.as_str())?
            }
            Json::Null | Json::Array(_) | Json::Object(_) => {
                self.reserve(key_cost)?;
                table.raw_set(key, self.value(value, depth)?)?
            }
        }
        Ok(())
    }

    /// Fail, as the VM's own limit would, if `bytes` more may not fit under it.
    fn reserve(&mut self, bytes: usize) -> Result<(), ConvertError> {
        if bytes > self.room {
            // The estimates ran out: look at what is really in use before giving up.
            self.room = self.memory_limit.saturating_sub(self.lua.used_memory());
            if bytes > self.room {
                return Err(ConvertError::Lua(mlua::Error::MemoryError(
                    "not enough memory".into(),
                )));
            }
        }
        self.room -= bytes;
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

/// Estimated bytes of a table with `slots` slots (Luau rounds the hash part up to a power of two).
fn table_cost(slots: usize) -> usize {
    slots
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX)
        .saturating_mul(SLOT)
        .saturating_add(TABLE_OVERHEAD)
}
