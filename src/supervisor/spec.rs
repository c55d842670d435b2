//! `InstanceSpec`: what the supervisor needs to run one plugin instance, built from the
//! registry (the one `match` that spawns each plugin type) or by tests and embedders.

use std::sync::Arc;
use std::time::Duration;

use crate::config::digest::{DigestSettings, QuietHours};
use crate::event::EventName;
use crate::plugins::actor::{self, ActorSetup, PluginHandle};
use crate::plugins::enrichment::anilist::AniList;
use crate::plugins::enrichment::fanart::Fanart;
use crate::plugins::notification::log::Log;
use crate::plugins::notification::ntfy::Ntfy;
use crate::plugins::notification::pushover::Pushover;
use crate::plugins::notification::telegram::Telegram;
use crate::plugins::registry::{PluginSettings, RateLimit};
use crate::plugins::webhook::discord::Discord;
use crate::plugins::webhook::generic::Webhook;
use crate::plugins::webhook::slack::Slack;
use crate::plugins::{AsEnrichment, AsNotification, AsWebhook, PluginConfig, PluginError, Role};

/// Builds a fresh instance of the plugin on a new arbiter; called at start and on every
/// restart. An error means the plugin cannot be built from its config (misconfigured).
pub type Factory = Arc<dyn Fn(ActorSetup) -> Result<PluginHandle, PluginError> + Send + Sync>;

/// One plugin instance as the supervisor sees it.
#[derive(Clone)]
pub struct InstanceSpec {
    /// Instance name (the key under `plugins:`).
    pub name: String,
    /// Plugin type (`ntfy`, ...).
    pub kind: String,
    /// `notification`, `webhook` or `enrichment`.
    pub role: &'static str,
    /// Whether it receives events.
    pub enabled: bool,
    /// Events it receives.
    pub events: Vec<EventName>,
    /// Per-delivery timeout; `None` takes `supervision.delivery_timeout`.
    pub timeout: Option<Duration>,
    /// Deliveries in flight at once; `None` takes `supervision.max_in_flight`.
    pub max_in_flight: Option<u32>,
    /// Deliveries per minute (with a burst); `None` for no limit of our own.
    pub rate_limit: Option<RateLimit>,
    /// Bursts of like events sent as one message.
    pub digest: Option<DigestSettings>,
    /// Deliveries deferred during a daily window.
    pub quiet_hours: Option<QuietHours>,
    /// The wall clock digests and quiet hours read (tests inject one; see [`Clock`]).
    pub clock: Clock,
    /// Makes a fresh instance.
    pub factory: Factory,
}

/// Milliseconds since the Unix epoch, now. The supervisor re-reads it at least every
/// half second while it holds anything, so an injected clock that jumps (a test crossing
/// midnight or a daylight-saving change) is noticed at once.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The real clock.
pub fn system_clock() -> Clock {
    Arc::new(crate::store::now_ms)
}

impl InstanceSpec {
    /// A spec for any [`Role`], built fresh by `make` at every (re)start.
    pub fn new<R, F>(name: &str, kind: &str, role: &'static str, make: F) -> Self
    where
        R: Role,
        F: Fn() -> R + Send + Sync + 'static,
    {
        Self::try_new(name, kind, role, move || Ok(make()))
    }

    /// Like [`InstanceSpec::new`] for a plugin whose construction can fail.
    pub fn try_new<R, F>(name: &str, kind: &str, role: &'static str, make: F) -> Self
    where
        R: Role,
        F: Fn() -> Result<R, PluginError> + Send + Sync + 'static,
    {
        let instance = name.to_owned();
        InstanceSpec {
            name: name.to_owned(),
            kind: kind.to_owned(),
            role,
            enabled: true,
            events: EventName::ALL.to_vec(),
            timeout: None,
            max_in_flight: None,
            rate_limit: None,
            digest: None,
            quiet_hours: None,
            clock: system_clock(),
            factory: Arc::new(move |setup| Ok(actor::spawn(instance.clone(), make()?, setup))),
        }
    }

    /// Subscribe to these events only.
    pub fn with_events(mut self, events: impl Into<Vec<EventName>>) -> Self {
        self.events = events.into();
        self
    }

    /// Set the per-delivery timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Limit deliveries to `per_minute`, allowing bursts of `burst`.
    pub fn with_rate_limit(mut self, per_minute: u32, burst: u32) -> Self {
        self.rate_limit = Some(RateLimit { per_minute, burst });
        self
    }

    /// Send bursts of like events as one message.
    pub fn with_digest(mut self, digest: DigestSettings) -> Self {
        self.digest = Some(digest);
        self
    }

    /// Hold deliveries during a daily window.
    pub fn with_quiet_hours(mut self, quiet: QuietHours) -> Self {
        self.quiet_hours = Some(quiet);
        self
    }

    /// Read this clock instead of the system's (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Enable or disable.
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Whether this instance receives `event`.
    pub fn wants(&self, event: EventName) -> bool {
        self.enabled && self.events.contains(&event)
    }

    /// The spec for a configured instance: the one registry `match` that spawns plugins.
    pub fn from_config(cfg: &PluginConfig) -> Self {
        let spec = match &cfg.settings {
            PluginSettings::Ntfy(c) => {
                let c = c.clone();
                InstanceSpec::try_new(&cfg.name, cfg.kind.as_str(), cfg.kind.role(), move || {
                    Ok(AsNotification(Ntfy::new(c.clone())?))
                })
            }
            PluginSettings::Telegram(c) => {
                let c = c.clone();
                InstanceSpec::try_new(&cfg.name, cfg.kind.as_str(), cfg.kind.role(), move || {
                    Ok(AsNotification(Telegram::new(c.clone())?))
                })
            }
            PluginSettings::Pushover(c) => {
                let c = c.clone();
                InstanceSpec::try_new(&cfg.name, cfg.kind.as_str(), cfg.kind.role(), move || {
                    Ok(AsNotification(Pushover::new(c.clone())?))
                })
            }
            PluginSettings::AniList(c) => {
                let c = c.clone();
                InstanceSpec::try_new(&cfg.name, cfg.kind.as_str(), cfg.kind.role(), move || {
                    Ok(AsEnrichment(AniList::new(c.clone())?))
                })
            }
            PluginSettings::Fanart(c) => {
                let c = c.clone();
                InstanceSpec::try_new(&cfg.name, cfg.kind.as_str(), cfg.kind.role(), move || {
                    Ok(AsEnrichment(Fanart::new(c.clone())?))
                })
            }
            PluginSettings::Discord(c) => {
                let c = c.clone();
                InstanceSpec::try_new(&cfg.name, cfg.kind.as_str(), cfg.kind.role(), move || {
                    Ok(AsWebhook(Discord::new(c.clone())?))
                })
            }
            PluginSettings::Slack(c) => {
                let c = c.clone();
                InstanceSpec::try_new(&cfg.name, cfg.kind.as_str(), cfg.kind.role(), move || {
                    Ok(AsWebhook(Slack::new(c.clone())?))
                })
            }
            PluginSettings::Webhook(c) => {
                let c = c.clone();
                InstanceSpec::try_new(&cfg.name, cfg.kind.as_str(), cfg.kind.role(), move || {
                    Ok(AsWebhook(Webhook::new(c.clone())?))
                })
            }
            PluginSettings::Log(c) => {
                let c = c.clone();
                InstanceSpec::new(&cfg.name, cfg.kind.as_str(), cfg.kind.role(), move || {
                    AsNotification(Log::new(c.clone()))
                })
            }
        };
        InstanceSpec {
            enabled: cfg.common.enabled,
            events: cfg.common.events.clone(),
            timeout: cfg.common.timeout,
            rate_limit: cfg.common.rate_limit,
            digest: cfg.common.digest.clone(),
            quiet_hours: cfg.common.quiet_hours.clone(),
            max_in_flight: cfg
                .common
                .max_in_flight
                .or(cfg.kind.default_max_in_flight()),
            ..spec
        }
    }
}
