//! The one explicit registry: every plugin type, its settings, its default events.
//!
//! Adding a plugin type means one variant in [`PluginKind`], one in [`PluginSettings`],
//! and one arm in each `match` below and in [`crate::supervisor::InstanceSpec::from_config`]; the compiler
//! points at any arm that is missed.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Problems;
use crate::event::EventName;
use crate::message::{Part, Templates};
use crate::plugins::enrichment::anilist::AniListConfig;
use crate::plugins::enrichment::fanart::FanartConfig;
use crate::plugins::notification::log::LogConfig;
use crate::plugins::notification::ntfy::NtfyConfig;
use crate::plugins::notification::pushover::PushoverConfig;
use crate::plugins::notification::telegram::TelegramConfig;
use crate::plugins::webhook::discord::DiscordConfig;
use crate::plugins::webhook::generic::{self, WebhookConfig};
use crate::plugins::webhook::slack::SlackConfig;

/// A plugin type, as written in `type:` (or as the instance key when `type:` is absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginKind {
    /// ntfy.sh or a self-hosted ntfy server.
    Ntfy,
    /// Writes notifications to the service log (trying things out, debugging hooks).
    Log,
    /// A signed JSON POST of each event to any URL (Standard Webhooks).
    Webhook,
    /// A Telegram bot message to a chat, group or channel.
    Telegram,
    /// A Pushover push notification.
    Pushover,
    /// A Discord channel, through an incoming webhook.
    Discord,
    /// A Slack channel, through an incoming webhook.
    Slack,
    /// Anime metadata from AniList (enrichment).
    AniList,
    /// Posters, backgrounds and logos from Fanart.tv (enrichment).
    Fanart,
}

impl PluginKind {
    /// Every plugin type.
    pub const ALL: &'static [PluginKind] = &[
        PluginKind::Ntfy,
        PluginKind::Log,
        PluginKind::Webhook,
        PluginKind::Telegram,
        PluginKind::Pushover,
        PluginKind::Discord,
        PluginKind::Slack,
        PluginKind::AniList,
        PluginKind::Fanart,
    ];

    /// The name used in `type:`.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Ntfy => "ntfy",
            PluginKind::Log => "log",
            PluginKind::Webhook => "webhook",
            PluginKind::Telegram => "telegram",
            PluginKind::Pushover => "pushover",
            PluginKind::Discord => "discord",
            PluginKind::Slack => "slack",
            PluginKind::AniList => "anilist",
            PluginKind::Fanart => "fanart",
        }
    }

    /// `notification`, `webhook` or `enrichment`.
    pub fn role(self) -> &'static str {
        match self {
            PluginKind::Ntfy | PluginKind::Log | PluginKind::Telegram | PluginKind::Pushover => {
                "notification"
            }
            PluginKind::Webhook | PluginKind::Discord | PluginKind::Slack => "webhook",
            PluginKind::AniList | PluginKind::Fanart => "enrichment",
        }
    }

    /// Deliveries in flight at once unless the instance says (`max_in_flight`): people
    /// read notification and chat services in arrival order, so those send one at a time;
    /// the generic webhook (whose receivers sort by timestamp) and enrichment take
    /// `supervision.max_in_flight`.
    pub fn default_max_in_flight(self) -> Option<u32> {
        match self {
            PluginKind::Webhook | PluginKind::AniList | PluginKind::Fanart => None,
            _ => Some(1),
        }
    }

    /// The type named `s`, if there is one.
    pub fn parse(s: &str) -> Option<PluginKind> {
        PluginKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// The events an instance subscribes to when its config has no `events:` list.
    pub fn default_events(self) -> Vec<EventName> {
        match self {
            // The seed's ntfy defaults.
            PluginKind::Ntfy => vec![
                EventName::AfterMediaAdded,
                EventName::OnDownloadCompleted,
                EventName::AfterImportCompleted,
            ],
            PluginKind::Log => EventName::ALL.to_vec(),
            PluginKind::Webhook => generic::default_events(),
            // The notification defaults, so those messages get the art and metadata.
            PluginKind::AniList | PluginKind::Fanart => vec![
                EventName::AfterMediaAdded,
                EventName::OnDownloadCompleted,
                EventName::AfterImportCompleted,
            ],
            // The seed's Discord pair plus the failures a channel should see.
            PluginKind::Discord | PluginKind::Slack => vec![
                EventName::AfterMediaAdded,
                EventName::OnDownloadCompleted,
                EventName::OnDownloadFailed,
                EventName::OnImportFailed,
            ],
            // What a person wants on their phone: new media and what needs a look.
            PluginKind::Telegram | PluginKind::Pushover => vec![
                EventName::AfterMediaAdded,
                EventName::AfterImportCompleted,
                EventName::OnDownloadFailed,
                EventName::OnImportFailed,
            ],
        }
    }

    /// The parts a message template may give for this type (`templates:`), or `Err` with
    /// why the type takes no templates.
    pub fn template_parts(self) -> Result<&'static [Part], &'static str> {
        use Part::*;
        match self {
            PluginKind::Ntfy => Ok(&[Title, Message, Tags, Click]),
            PluginKind::Pushover => Ok(&[Title, Message, Url, UrlTitle]),
            PluginKind::Telegram | PluginKind::Log => Ok(&[Title, Message]),
            PluginKind::Discord => Ok(&[Title, Message, Color, Fields]),
            PluginKind::Slack => Ok(&[Title, Message, Fields]),
            PluginKind::Webhook => Err(
                "the generic webhook sends the event itself as signed JSON (its receivers parse \
                 it), so it has no message to template; use a notification or chat plugin, or \
                 a hook to change the data",
            ),
            PluginKind::AniList | PluginKind::Fanart => {
                Err("enrichment plugins send no message, so they take no templates")
            }
        }
    }

    /// The type's own fields that hold a secret (a token, a key, or a URL with one in it):
    /// shown as "set" or not, never their value.
    pub fn secret_fields(self) -> &'static [&'static str] {
        match self {
            PluginKind::Ntfy => &["auth_token", "password"],
            PluginKind::Pushover => &["user_key", "api_token"],
            PluginKind::Telegram => &["bot_token"],
            PluginKind::Discord | PluginKind::Slack => &["webhook_url"],
            PluginKind::Webhook => &["url", "headers", "secret"],
            PluginKind::Fanart => &["api_key", "client_key"],
            PluginKind::Log | PluginKind::AniList => &[],
        }
    }

    /// The type's config schema (field → type, default, meaning), as `GET /api/v1/plugins`
    /// shows it for a running instance.
    pub fn config_schema(self) -> serde_json::Value {
        use crate::plugins::{enrichment, notification, webhook};
        match self {
            PluginKind::Ntfy => notification::ntfy::config_schema(),
            PluginKind::Pushover => notification::pushover::config_schema(),
            PluginKind::Telegram => notification::telegram::config_schema(),
            PluginKind::Log => serde_json::json!({
                "type": "object",
                "properties": { "level": { "enum": ["info", "warn"], "default": "info" } }
            }),
            PluginKind::Discord => webhook::discord::config_schema(),
            PluginKind::Slack => webhook::slack::config_schema(),
            PluginKind::Webhook => webhook::generic::config_schema(),
            PluginKind::AniList => enrichment::anilist::config_schema(),
            PluginKind::Fanart => enrichment::fanart::config_schema(),
        }
    }

    /// Parse this type's own settings (`deny_unknown_fields` on each struct).
    pub fn parse_settings(
        self,
        value: serde_yaml::Value,
    ) -> Result<PluginSettings, serde_yaml::Error> {
        Ok(match self {
            PluginKind::Ntfy => PluginSettings::Ntfy(serde_yaml::from_value(value)?),
            PluginKind::Log => PluginSettings::Log(serde_yaml::from_value(value)?),
            PluginKind::Webhook => PluginSettings::Webhook(serde_yaml::from_value(value)?),
            PluginKind::Telegram => PluginSettings::Telegram(serde_yaml::from_value(value)?),
            PluginKind::Pushover => PluginSettings::Pushover(serde_yaml::from_value(value)?),
            PluginKind::Discord => PluginSettings::Discord(serde_yaml::from_value(value)?),
            PluginKind::Slack => PluginSettings::Slack(serde_yaml::from_value(value)?),
            PluginKind::AniList => PluginSettings::AniList(serde_yaml::from_value(value)?),
            PluginKind::Fanart => PluginSettings::Fanart(serde_yaml::from_value(value)?),
        })
    }

    /// Names of the type-specific fields, for "unknown field" help.
    pub fn known_type_names() -> String {
        PluginKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Fields every plugin instance has, whatever its type.
#[derive(Debug, Clone, PartialEq)]
pub struct CommonSettings {
    /// Deliver to this instance at all (default false, as in the seed).
    pub enabled: bool,
    /// Events this instance receives (default: the type's defaults).
    pub events: Vec<EventName>,
    /// Permit `http://` URLs (for a server on the LAN); logged as a warning at start.
    pub allow_insecure_http: bool,
    /// Let the instance connect to loopback, private (RFC 1918, fc00::/7), unspecified and
    /// CGNAT addresses (default false: public addresses only). Link-local and cloud
    /// metadata addresses stay refused.
    pub allow_private_network: bool,
    /// Per-delivery timeout; default `supervision.delivery_timeout`.
    pub timeout: Option<Duration>,
    /// Deliveries in flight at once; default [`PluginKind::default_max_in_flight`].
    pub max_in_flight: Option<u32>,
    /// Deliveries allowed per minute, with a burst (none: only the service's own signals).
    pub rate_limit: Option<RateLimit>,
    /// The instance's message templates, compiled (none: the built-in texts).
    pub templates: Option<Arc<Templates>>,
    /// Bursts of like events sent as one message (`digest:`).
    pub digest: Option<crate::config::digest::DigestSettings>,
    /// Deliveries deferred during a daily window (`quiet_hours:`).
    pub quiet_hours: Option<crate::config::digest::QuietHours>,
}

/// `rate_limit: {per_minute: N, burst: M}` on a plugin instance: deliveries beyond it
/// wait in order in the backlog instead of provoking a 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained deliveries per minute.
    pub per_minute: u32,
    /// Deliveries allowed at once before the rate applies (default 1).
    #[serde(default = "one")]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

/// The type-specific settings of one instance.
#[derive(Debug, Clone)]
pub enum PluginSettings {
    /// ntfy.
    Ntfy(NtfyConfig),
    /// log.
    Log(LogConfig),
    /// webhook.
    Webhook(WebhookConfig),
    /// telegram.
    Telegram(TelegramConfig),
    /// pushover.
    Pushover(PushoverConfig),
    /// discord.
    Discord(DiscordConfig),
    /// slack.
    Slack(SlackConfig),
    /// anilist.
    AniList(AniListConfig),
    /// fanart.
    Fanart(FanartConfig),
}

impl PluginSettings {
    /// Copies the instance's `allow_private_network` into the type's settings, which are
    /// what the plugin is built from.
    pub fn set_allow_private_network(&mut self, allow: bool) {
        match self {
            PluginSettings::Ntfy(c) => c.allow_private_network = allow,
            PluginSettings::Telegram(c) => c.allow_private_network = allow,
            PluginSettings::Pushover(c) => c.allow_private_network = allow,
            PluginSettings::Discord(c) => c.allow_private_network = allow,
            PluginSettings::Slack(c) => c.allow_private_network = allow,
            PluginSettings::Webhook(c) => c.allow_private_network = allow,
            PluginSettings::AniList(c) => c.allow_private_network = allow,
            PluginSettings::Fanart(c) => c.allow_private_network = allow,
            // Makes no requests.
            PluginSettings::Log(_) => {}
        }
    }

    /// Copies the instance's compiled templates into the type's settings (notification and
    /// chat types; the others refuse `templates` when the config loads).
    pub fn set_templates(&mut self, templates: Option<Arc<Templates>>) {
        match self {
            PluginSettings::Ntfy(c) => c.templates = templates,
            PluginSettings::Log(c) => c.templates = templates,
            PluginSettings::Telegram(c) => c.templates = templates,
            PluginSettings::Pushover(c) => c.templates = templates,
            PluginSettings::Discord(c) => c.templates = templates,
            PluginSettings::Slack(c) => c.templates = templates,
            PluginSettings::Webhook(_) | PluginSettings::AniList(_) | PluginSettings::Fanart(_) => {
            }
        }
    }

    /// Pure checks of the type's own fields; `path` is e.g. `plugins.ntfy`.
    pub fn validate(&self, path: &str, common: &CommonSettings, problems: &mut Problems) {
        match self {
            PluginSettings::Ntfy(c) => c.validate(path, common, problems),
            PluginSettings::Log(c) => c.validate(path, common, problems),
            PluginSettings::Webhook(c) => c.validate(path, common, problems),
            PluginSettings::Telegram(c) => c.validate(path, common, problems),
            PluginSettings::Pushover(c) => c.validate(path, common, problems),
            PluginSettings::Discord(c) => c.validate(path, common, problems),
            PluginSettings::Slack(c) => c.validate(path, common, problems),
            PluginSettings::AniList(c) => c.validate(path, common, problems),
            PluginSettings::Fanart(c) => c.validate(path, common, problems),
        }
    }
}

/// One configured plugin instance.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// The instance name: its key under `plugins:`. Names it everywhere (logs, API).
    pub name: String,
    /// Its type.
    pub kind: PluginKind,
    /// Fields every instance has.
    pub common: CommonSettings,
    /// The type's own fields.
    pub settings: PluginSettings,
    /// The type's own fields as written in the file (after `${VAR}` expansion), each
    /// secret replaced by `"set"`: what the settings view shows, never a secret.
    pub written: serde_json::Map<String, serde_json::Value>,
    /// The fields (own or common) whose value came from `overrides.yaml`, not the file.
    pub overridden: Vec<String>,
    /// Identifies what was written for it, `enabled` aside (secrets included, never
    /// shown): a reload rebuilds the instance when this differs.
    pub fingerprint: u64,
}

impl PluginConfig {
    /// Whether this instance receives `event` (enabled and subscribed).
    pub fn wants(&self, event: EventName) -> bool {
        self.common.enabled && self.common.events.contains(&event)
    }
}

/// Helpers for the plugins' config tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::CommonSettings;
    use crate::config::Problems;

    /// Common settings with no events, limits or timeout of their own.
    pub fn common(enabled: bool, allow_insecure_http: bool) -> CommonSettings {
        CommonSettings {
            enabled,
            events: vec![],
            allow_insecure_http,
            allow_private_network: false,
            timeout: None,
            rate_limit: None,
            max_in_flight: None,
            templates: None,
            digest: None,
            quiet_hours: None,
        }
    }

    /// What `validate` reports, as `path: message` lines.
    pub fn problem_lines(validate: impl FnOnce(&mut Problems)) -> Vec<String> {
        let mut p = Problems::default();
        validate(&mut p);
        p.into_vec()
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }
}
