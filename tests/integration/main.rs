//! The integration tests: one binary, one module per area.

mod support;

mod anilist;
mod api;
mod browser;
mod canary;
mod config;
mod contract;
mod crash;
mod digest;
mod discord;
mod durable;
mod echo;
mod enrichment;
mod fanart;
mod fanout;
mod hooks;
mod hooks_reload;
mod hooks_service;
mod metrics;
mod ntfy;
mod outbound;
mod preview;
mod pushover;
mod reload;
mod server;
mod settings;
mod shipped;
mod slack;
mod supervision;
mod telegram;
mod templates;
mod webhook;
