//! Turning an instance on or off while the service runs.
//!
//! Off: nothing more is sent, what waits stays (the store shows it held, "disabled"), and
//! new events are no longer routed to it. On: its actor starts if it has none, what was
//! kept in the store while it was off is read back in order, and sending resumes.

use actix::prelude::*;

use super::window::Spill;
use super::{PluginSupervisor, TestError};
use crate::bus::Subscriptions;

/// Turn instance `plugin` on or off; answers the routing table to use from now on.
#[derive(Message)]
#[rtype(result = "Result<Subscriptions, TestError>")]
pub struct SetEnabled {
    /// Instance name.
    pub plugin: String,
    /// On or off.
    pub enabled: bool,
}

impl Handler<SetEnabled> for PluginSupervisor {
    type Result = Result<Subscriptions, TestError>;

    fn handle(&mut self, msg: SetEnabled, ctx: &mut Context<Self>) -> Self::Result {
        let idx = self.find(&msg.plugin)?;
        if self.slots[idx].spec.enabled != msg.enabled {
            self.switch(idx, msg.enabled, "asked through the API", ctx);
        }
        Ok(self.routing())
    }
}

impl PluginSupervisor {
    /// Turn instance `idx` on or off now, for `why`, and send what may go.
    pub(super) fn switch(&mut self, idx: usize, enabled: bool, why: &str, ctx: &mut Context<Self>) {
        self.switch_state(idx, enabled, why);
        self.drain(idx, ctx);
    }

    /// Turn instance `idx` on or off (the caller drains it).
    pub(super) fn switch_state(&mut self, idx: usize, enabled: bool, why: &str) {
        let slot = &mut self.slots[idx];
        slot.spec.enabled = enabled;
        let (to, from) = if enabled {
            ("closed", "disabled")
        } else {
            ("disabled", "closed")
        };
        tracing::info!(target: "supervision", plugin = %slot.spec.name, from = %from, to = %to, reason = %why, "plugin {}", if enabled { "enabled" } else { "disabled" });
        if !enabled {
            return;
        }
        // Disabled since the start: its actor never ran, and what waits for it was left
        // in the store. Read that back, oldest first, through the window.
        let never_ran = slot.handle.is_none() && slot.backlog.is_empty();
        if never_ran && slot.spill.is_none() && self.window.is_some() {
            slot.spill = Some(Spill {
                after: 0,
                newest: 0,
                loading: false,
                reread: false,
            });
        }
        if self.slots[idx].handle.is_none() {
            self.spawn_actor(idx);
        }
    }
}
