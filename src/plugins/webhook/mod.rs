//! Webhook plugins: POST events to another system (Discord, Slack, any signed endpoint).

pub mod discord;
pub mod generic;
pub mod slack;
