//! Webhook plugins: chat services that take a JSON POST on a secret URL (Discord, Slack).

pub mod discord;
pub mod slack;
