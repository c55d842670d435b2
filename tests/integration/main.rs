//! The integration tests: one binary, one module per area.

mod support;

mod anilist;
mod api;
mod canary;
mod config;
mod enrichment;
mod fanart;
mod hooks;
mod ntfy;
mod shipped;
mod supervision;
