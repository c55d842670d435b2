//! Webhook plugins: POST events to another system (one file per target).

pub mod generic;
