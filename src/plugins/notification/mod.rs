//! Notification plugins: one file per service, and the message text they share.

pub mod format;
pub mod ntfy;
