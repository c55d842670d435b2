//! Lua hooks: discovery, the sandboxed Luau VM, JSON ↔ Luau conversion, and the `HookActor`.
//!
//! Hooks live in `<directory>/<event>/NN_name.lua`, compile once at start, and run in
//! order on every event of that name. Each call is bounded in time and memory; a hook
//! that fails leaves the data as it was before it and the chain goes on.

pub mod actor;

pub use actor::{ApplyHooks, HookActor, HookRejected};

// TEMPORARY until the hooks branch lands: a pass-through handle with the agreed API.
use crate::config::HooksConfig;
use crate::event::Event;

/// Runs the hook chain (temporary pass-through).
#[derive(Clone, Default)]
pub struct Hooks;

impl Hooks {
    /// No hooks at all.
    pub fn disabled() -> Self {
        Hooks
    }
    /// Start the hook actor.
    pub fn start(_: &HooksConfig) -> Self {
        Hooks
    }
    /// Run the hooks for `event`.
    pub async fn apply(&self, event: Event) -> Result<Event, HookRejected> {
        Ok(event)
    }
}
