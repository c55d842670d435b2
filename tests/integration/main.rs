//! The integration tests: one binary, one module per area.

mod support;

mod api;
mod canary;
mod config;
mod discord;
mod hooks;
mod ntfy;
mod shipped;
mod slack;
mod supervision;
