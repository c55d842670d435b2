//! What a hook hands back, read by the contract (the event or `nil`; only `event.data`
//! is taken) and held to the input's limits: its size and its depth.

use mlua::{Table, Value};
use serde_json::Value as Json;

use crate::event::EventData;

use super::convert::{self, ConvertError};
use super::error::HookError;
use super::limits::fits;

/// What one successful call decided.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// `nil` returned: keep the data as it was.
    Unchanged,
    /// The event came back; this is its new data.
    Changed(EventData),
    /// `reject(reason)` was called.
    Rejected(String),
}

/// The result estimate `convert::from_lua` counts (8 bytes a value plus the text) is at
/// most this many times the JSON size, so a budget of this many times the cap never stops
/// a result that fits, and stops a huge one long before it is built.
const ESTIMATE_PER_JSON_BYTE: usize = 8;

/// What reading a result needs from the sandbox.
pub struct Limits<'a> {
    /// The array marker (see `convert`).
    pub array_mt: &'a Table,
    /// The size cap, as JSON (`hooks.max_input_kb`).
    pub max_output: usize,
    /// The VM's memory limit: the estimate may not exceed what the VM could hold.
    pub memory_limit: usize,
}

/// Read the value a hook returned; `classify` turns a VM error into a hook error.
/// Only `event.data` is read back: name, id and timestamp are read-only by construction.
pub fn read(
    value: Value,
    limits: &Limits<'_>,
    classify: impl Fn(mlua::Error) -> HookError,
) -> Result<Outcome, HookError> {
    let table = match value {
        Value::Nil => return Ok(Outcome::Unchanged),
        Value::Table(table) => table,
        other => {
            return Err(HookError::BadReturn(format!(
                "the hook returned a {}; return the event or nil",
                type_of(&other)
            )))
        }
    };
    let data = match table.raw_get::<Value>("data").map_err(&classify)? {
        Value::Table(data) => data,
        other => {
            return Err(HookError::BadReturn(format!(
                "event.data is a {}, not a table",
                type_of(&other)
            )))
        }
    };
    // Size: estimated on the way, then exactly; depth: `convert::MAX_DEPTH`, as on the way in.
    let budget = limits
        .max_output
        .saturating_mul(ESTIMATE_PER_JSON_BYTE)
        .min(limits.memory_limit);
    let too_large = HookError::OutputTooLarge {
        max: limits.max_output,
    };
    match convert::from_lua(Value::Table(data), limits.array_mt, budget) {
        Ok(Json::Object(map)) if fits(&map, limits.max_output) => Ok(Outcome::Changed(map)),
        Ok(Json::Object(_)) | Err(ConvertError::TooLarge { .. }) => Err(too_large),
        Ok(_) => Err(HookError::BadReturn(
            "event.data became an array; it must stay an object".into(),
        )),
        Err(ConvertError::Lua(e)) => Err(classify(e)),
        Err(e) => Err(HookError::BadReturn(e.to_string())),
    }
}

/// The type name a Lua user knows: mlua calls whole numbers "integer", Luau does not.
fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) => "number",
        other => other.type_name(),
    }
}
