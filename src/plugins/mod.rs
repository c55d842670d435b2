//! The plugin contract: the seed's three traits, the outcome types and the one registry.
//!
//! A plugin is plain async code that turns an [`Event`] into one service call. It knows
//! nothing of actors, retries across deliveries, breakers or restarts: the generic
//! [`actor::PluginActor`] and the [`crate::supervisor`] add all of that around it.

pub mod actor;
pub mod enrichment;
pub mod error;
pub mod notification;
pub mod registry;
pub mod settings;
pub mod webhook;

use std::future::Future;

use serde::Serialize;
use serde_json::Value;

pub use error::PluginError;
pub use registry::{PluginConfig, PluginKind};

use crate::event::{Event, EventData};
use crate::http::AddressPolicy;

/// What every plugin says about itself (seed: `plugin_info`).
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    /// Human name, e.g. "Ntfy".
    pub name: &'static str,
    /// One line on what it does.
    pub description: &'static str,
    /// The plugin's own version.
    pub version: &'static str,
    /// Field name → type and meaning, for the API and docs.
    pub config_schema: Value,
}

/// What a plugin call can use: its instance name and the HTTP client of its own arbiter.
#[derive(Clone)]
pub struct PluginContext {
    /// The instance name (the key under `plugins:`), for logs.
    pub instance: String,
    /// One client per arbiter: a client shared across arbiters stalls when its owner is busy.
    /// Built for the instance's [`Plugin::address_policy`].
    pub http: crate::http::Client,
}

/// A successful delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivered {
    /// What the service answered, briefly (e.g. "200 OK, message id abc").
    pub detail: String,
}

/// What `test_connection` proved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionReport {
    /// What was checked, in plain words (e.g. "server healthy; publishing not tried").
    pub detail: String,
    /// Whether the check sent a real message the user will see.
    pub sent_message: bool,
}

/// Fields an enrichment plugin adds to an event's data.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Enrichment {
    /// Merged into the event data, key by key (objects merge recursively).
    pub patch: EventData,
}

/// Shared by the three plugin traits.
pub trait Plugin: Send + Sync + 'static {
    /// Name, description, version and config schema.
    fn info(&self) -> PluginInfo;

    /// Where this instance's HTTP client may connect: public addresses only, unless its
    /// config says `allow_private_network: true`.
    fn address_policy(&self) -> AddressPolicy {
        AddressPolicy::PublicOnly
    }

    /// Check the plugin can reach and use its service; without side effects where the
    /// service allows it.
    fn test_connection(
        &self,
        cx: &PluginContext,
    ) -> impl Future<Output = Result<ConnectionReport, PluginError>>;
}

/// Sends alerts to a person (ntfy, Pushover, Telegram).
pub trait NotificationPlugin: Plugin {
    /// Send one notification for `event`.
    fn notify(
        &self,
        cx: &PluginContext,
        event: &Event,
    ) -> impl Future<Output = Result<Delivered, PluginError>>;
}

/// Posts events to another system (Discord, Slack, a generic webhook).
pub trait WebhookPlugin: Plugin {
    /// Send one webhook call for `event`.
    fn send_webhook(
        &self,
        cx: &PluginContext,
        event: &Event,
    ) -> impl Future<Output = Result<Delivered, PluginError>>;
}

/// Adds metadata to an event before delivery (AniList, Fanart.tv).
pub trait EnrichmentPlugin: Plugin {
    /// Fields to merge into the event's data; an empty patch when there is nothing to add.
    fn enrich(
        &self,
        cx: &PluginContext,
        event: &Event,
    ) -> impl Future<Output = Result<Enrichment, PluginError>>;
}

/// The one shape the generic actor drives: any of the three traits, seen as a call that
/// produces an [`Outcome`]. Implemented by the role adapters below, so the actor needs
/// no knowledge of which trait a plugin implements.
pub trait Role: Send + Sync + 'static {
    /// The wrapped plugin's info.
    fn info(&self) -> PluginInfo;
    /// Where the instance's HTTP client may connect (public addresses only by default).
    fn address_policy(&self) -> AddressPolicy {
        AddressPolicy::PublicOnly
    }
    /// Run the plugin's main call for `event`.
    fn call(
        &self,
        cx: &PluginContext,
        event: &Event,
    ) -> impl Future<Output = Result<Outcome, PluginError>>;
    /// Run the plugin's `test_connection`.
    fn test(
        &self,
        cx: &PluginContext,
    ) -> impl Future<Output = Result<ConnectionReport, PluginError>>;
}

/// The result of one successful plugin call, whatever its role.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// A notification or webhook went out.
    Delivered(Delivered),
    /// An enrichment plugin answered with fields to merge.
    Enriched(Enrichment),
}

macro_rules! role_adapter {
    ($name:ident, $bound:ident, $method:ident, $wrap:expr) => {
        /// Adapts a plugin of one trait to [`Role`].
        pub struct $name<P>(pub P);

        impl<P: $bound> Role for $name<P> {
            fn info(&self) -> PluginInfo {
                self.0.info()
            }
            fn address_policy(&self) -> AddressPolicy {
                self.0.address_policy()
            }
            async fn call(
                &self,
                cx: &PluginContext,
                event: &Event,
            ) -> Result<Outcome, PluginError> {
                self.0.$method(cx, event).await.map($wrap)
            }
            async fn test(&self, cx: &PluginContext) -> Result<ConnectionReport, PluginError> {
                self.0.test_connection(cx).await
            }
        }
    };
}

role_adapter!(
    AsNotification,
    NotificationPlugin,
    notify,
    Outcome::Delivered
);
role_adapter!(AsWebhook, WebhookPlugin, send_webhook, Outcome::Delivered);
role_adapter!(AsEnrichment, EnrichmentPlugin, enrich, Outcome::Enriched);
