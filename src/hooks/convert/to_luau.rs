//! JSON → Luau: the event data as tables, arrays marked with the shared metatable.

use std::borrow::Cow;

use mlua::{IntoLua, Lua, Table, Value as LuaValue};
use serde_json::{Map, Value as Json};

use super::{ConvertError, Path, Seg, MAX_DEPTH};

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
