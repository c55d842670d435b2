//! Notification plugins: one file per service.

pub mod ntfy;
