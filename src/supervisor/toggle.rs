//! Turning an instance on or off while the service runs.
//!
//! Off: nothing more is sent, what waits stays (the store shows it held, "disabled"), and
//! new events are no longer routed to it. On: its actor starts if it has none, what was
//! kept in the store while it was off is read back in order, and sending resumes.

use actix::prelude::*;

use super::window::Spill;
use super::{PluginSupervisor, TestError};
use crate::bus::Subscriptions;
use crate::supervisor::InstanceSpec;

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
        let Some(idx) = self.slots.iter().position(|s| s.spec.name == msg.plugin) else {
            let known: Vec<&str> = self.slots.iter().map(|s| s.spec.name.as_str()).collect();
            return Err(TestError::UnknownPlugin {
                name: msg.plugin,
                known: if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                },
            });
        };
        let slot = &mut self.slots[idx];
        if slot.spec.enabled != msg.enabled {
            slot.spec.enabled = msg.enabled;
            let (to, from) = if msg.enabled {
                ("closed", "disabled")
            } else {
                ("disabled", "closed")
            };
            tracing::info!(target: "supervision", plugin = %slot.spec.name, from = %from, to = %to, reason = %"asked through the API", "plugin {}", if msg.enabled { "enabled" } else { "disabled" });
            if msg.enabled {
                // Disabled since the start: its actor never ran, and what waits for it was
                // left in the store. Read that back, oldest first, through the window.
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
            self.drain(idx, ctx);
        }
        let specs: Vec<InstanceSpec> = self.slots.iter().map(|s| s.spec.clone()).collect();
        Ok(Subscriptions::new(&specs))
    }
}
