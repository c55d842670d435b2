//! `HookActor`: owns the Luau VM on its own arbiter and runs the hook chain for each event.

use actix::prelude::*;

use crate::config::HooksConfig;
use crate::event::Event;

/// Run the hooks of `event.name` on the event; answers with the final event or a rejection.
#[derive(Message)]
#[rtype(result = "Result<Event, HookRejected>")]
pub struct ApplyHooks(pub Event);

/// A hook called `reject("reason")`: the event goes no further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rejected by hook {hook}: {reason}")]
pub struct HookRejected {
    /// The hook's file, relative to the hooks directory (e.g. `after_media_added/10_tag.lua`).
    pub hook: String,
    /// The reason it gave.
    pub reason: String,
}

/// Owns the VM and the compiled hooks.
pub struct HookActor {
    _config: HooksConfig,
}

impl HookActor {
    /// Start the actor on a new arbiter of its own; the VM is created there.
    pub fn start_on_own_arbiter(config: HooksConfig) -> Addr<HookActor> {
        let _ = config;
        todo!("hook actor")
    }
}

impl Actor for HookActor {
    type Context = Context<Self>;
}

impl Handler<ApplyHooks> for HookActor {
    type Result = Result<Event, HookRejected>;

    fn handle(&mut self, msg: ApplyHooks, _: &mut Context<Self>) -> Self::Result {
        Ok(msg.0)
    }
}
