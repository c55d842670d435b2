//! Lua hooks: discovery, the sandboxed Luau VM, JSON ↔ Luau conversion, and the `HookActor`.
//!
//! Hooks live in `<directory>/<event>/NN_name.lua`, compile once at start, and run in
//! order on every event of that name. Each call is bounded in time and memory; a hook
//! that fails leaves the data as it was before it and the chain goes on.

pub mod actor;

pub use actor::{ApplyHooks, HookActor, HookRejected};
