//! The integration tests: one binary, one module per area.

mod support;

mod anilist;
mod api;
mod canary;
mod config;
mod contract;
mod discord;
mod enrichment;
mod fanart;
mod fanout;
mod hooks;
mod hooks_service;
mod ntfy;
mod pushover;
mod shipped;
mod slack;
mod supervision;
mod telegram;
mod webhook;
