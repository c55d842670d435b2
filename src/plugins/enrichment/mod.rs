//! Enrichment plugins: one file per service, plus the answer cache and patch builder they share.

pub mod anilist;
pub mod cache;
pub mod fanart;
pub mod patch;
