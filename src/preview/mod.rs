//! A dry run of a real event: what every plugin instance would send for it, and what the
//! user should know about that text, with nothing sent and nothing stored.
//!
//! The hooks run (without counting, see [`crate::hooks::Hooks::dry_run`]), then
//! optionally the enrichment plugins, then each delivery instance is built fresh from its
//! config with a capturing HTTP client ([`crate::http::capture`]): its real code builds the
//! real request and stops there. What its text code cut or escaped is reported through
//! [`notes`]. [`crate::app::Handle::preview`] is the entry point; the API and the CLI call it.

mod instance;
pub mod notes;
mod request;
mod run;
mod view;

use serde::Serialize;

pub use notes::{template_fell_back, Note};
pub use request::{InvalidRequest, PreviewRequest, Source};
pub use run::{run, Setup};
pub use view::RequestView;

use crate::event::{Event, EventData};
use crate::hooks::RejectKind;
use crate::store::StoreError;

/// What a dry run found.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// The event as the plugins get it: after the hooks (unless one rejected it) and,
    /// when asked, the enrichment.
    pub event: Event,
    /// The delivery whose stored event this is, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// What the hooks did.
    pub hooks: HooksOutcome,
    /// Each enrichment plugin that was asked, in order (empty unless `enrich`).
    pub enrichment: Vec<EnrichmentOutcome>,
    /// Each delivery instance previewed, in config order (or as named).
    pub instances: Vec<InstancePreview>,
    /// About the whole event: a rejection, nothing subscribed, enrichment not run.
    pub warnings: Vec<String>,
}

/// What the hooks did to the previewed event.
#[derive(Debug, Clone, Serialize)]
pub struct HooksOutcome {
    /// Whether any hook exists for this event (false also for a stored delivery's event,
    /// whose hooks ran when it was accepted).
    pub ran: bool,
    /// Whether they changed the data.
    pub changed: bool,
    /// The rejection, when a hook refused the event (then nothing would be sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Rejection>,
}

/// A hook refused the previewed event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// The hook's file (`after_media_added/10_check.lua`).
    pub hook: String,
    /// The reason it gave, or why it could not run.
    pub reason: String,
    /// `rejected`, `hook_failed` or `too_large`.
    pub kind: RejectKind,
}

/// One enrichment plugin's answer.
#[derive(Debug, Clone, Serialize)]
pub struct EnrichmentOutcome {
    /// The instance.
    pub plugin: String,
    /// What it added (merged into the event, objects key by key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<EventData>,
    /// Why it added nothing, when it failed (the real pipeline goes on without it too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One delivery instance in a preview.
#[derive(Debug, Clone, Serialize)]
pub struct InstancePreview {
    /// The instance name.
    pub plugin: String,
    /// Its type (`ntfy`, ...).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `notification` or `webhook`.
    pub role: &'static str,
    /// Whether a real emit of this event would deliver to it.
    pub would_receive: bool,
    /// The requests its code built, redacted (one for every type today; none for `log`,
    /// or when the instance was not run).
    pub requests: Vec<RequestView>,
    /// Why it would fail, when its code failed before or at the request (a bad config, an
    /// address it may not reach).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Text cut or escaped, not subscribed, disabled, misconfigured, ...
    pub warnings: Vec<Note>,
}

/// Why a preview could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PreviewError {
    /// The request was not a preview request.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    /// A name in `plugins` is no configured instance.
    #[error("no plugin instance named `{name}`{}; configured: {known}", hint(.suggestion))]
    UnknownPlugin {
        /// The name given.
        name: String,
        /// A configured name close to it.
        suggestion: Option<String>,
        /// Every configured instance.
        known: String,
    },
    /// A name in `plugins` is an enrichment instance, which delivers nothing.
    #[error("`{0}` is an enrichment plugin: it sends no message to preview; add \"enrich\": true (--enrich) to run it on the event")]
    Enrichment(String),
    /// No delivery has the id given in `delivery`.
    #[error("no delivery with id `{0}`")]
    UnknownDelivery(String),
    /// The store could not be read (only for `delivery`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn hint(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}
