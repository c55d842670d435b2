//! mydia-plugins: the Mydia plugin system as a supervised service and an embeddable library.
//!
//! Events from the media manager pass through sandboxed Lua hooks ([`hooks`]), then an
//! [`bus::EventBus`] hands them to plugin actors ([`plugins`]) that run under a
//! [`supervisor::PluginSupervisor`] with restarts, circuit breakers and timeouts.
//! [`app`] builds the actor graph from a validated [`config::Config`] and hands back a
//! [`app::Handle`]; [`api`] serves it over HTTP.

#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod bus;
pub mod config;
pub mod event;
pub mod hooks;
pub mod http;
pub mod message;
pub mod metrics;
pub mod plugins;
pub mod preview;
pub mod store;
mod suggest;
pub mod supervisor;
pub mod telemetry;
pub mod ui;

pub use app::{start, start_with, start_with_store, Handle, ReloadError, ReloadReport};
pub use config::Config;
pub use event::{Event, EventData, EventName};
