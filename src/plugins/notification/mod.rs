//! Notification plugins: one file per service, plus the message text and text limits they share.

pub mod format;
pub mod log;
pub mod ntfy;
pub mod pushover;
pub mod telegram;
pub mod text;
