//! One plugin instance built fresh from its config and run once for a preview, outside
//! the supervisor: no actor, breaker, rate limit or backlog is touched.
//!
//! This `match` mirrors the spawning one in [`crate::supervisor::InstanceSpec::from_config`]
//! (the compiler points at both when a type is added).

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt as _;

use super::notes::{self, Note};
use crate::event::Event;
use crate::http::{self, Capture, Client};
use crate::plugins::enrichment::anilist::AniList;
use crate::plugins::enrichment::fanart::Fanart;
use crate::plugins::notification::log::Log;
use crate::plugins::notification::ntfy::Ntfy;
use crate::plugins::notification::pushover::Pushover;
use crate::plugins::notification::telegram::Telegram;
use crate::plugins::registry::PluginSettings;
use crate::plugins::webhook::discord::Discord;
use crate::plugins::webhook::generic::Webhook;
use crate::plugins::webhook::slack::Slack;
use crate::plugins::{
    AsEnrichment, AsNotification, AsWebhook, Outcome, PluginConfig, PluginContext, PluginError,
    Role,
};

/// How the instance's HTTP client behaves.
pub(super) enum Mode {
    /// Record the first request and stop (deliveries: nothing is sent).
    Capture(Capture),
    /// Send for real (enrichment lookups, when the preview asks for them).
    Live,
}

/// What one run produced: the plugin's result and the notes its text code reported.
pub(super) struct Ran {
    pub result: Result<Outcome, PluginError>,
    pub notes: Vec<Note>,
}

/// Builds `cfg`'s plugin and runs its main call on `event` once, within `timeout`, with a
/// panic caught as an error.
pub(super) async fn run(cfg: &PluginConfig, event: &Event, mode: Mode, timeout: Duration) -> Ran {
    let (e, m) = (event, mode);
    let work = notes::collect(async {
        match &cfg.settings {
            PluginSettings::Ntfy(c) => {
                call(Ntfy::new(c.clone()).map(AsNotification), cfg, e, m).await
            }
            PluginSettings::Telegram(c) => {
                call(Telegram::new(c.clone()).map(AsNotification), cfg, e, m).await
            }
            PluginSettings::Pushover(c) => {
                call(Pushover::new(c.clone()).map(AsNotification), cfg, e, m).await
            }
            PluginSettings::Log(c) => {
                call(Ok(AsNotification(Log::new(c.clone()))), cfg, e, m).await
            }
            PluginSettings::Discord(c) => {
                call(Discord::new(c.clone()).map(AsWebhook), cfg, e, m).await
            }
            PluginSettings::Slack(c) => call(Slack::new(c.clone()).map(AsWebhook), cfg, e, m).await,
            PluginSettings::Webhook(c) => {
                call(Webhook::new(c.clone()).map(AsWebhook), cfg, e, m).await
            }
            PluginSettings::AniList(c) => {
                call(AniList::new(c.clone()).map(AsEnrichment), cfg, e, m).await
            }
            PluginSettings::Fanart(c) => {
                call(Fanart::new(c.clone()).map(AsEnrichment), cfg, e, m).await
            }
        }
    });
    match tokio::time::timeout(timeout, work).await {
        Ok((result, notes)) => Ran { result, notes },
        Err(_) => Ran {
            result: Err(PluginError::Timeout { after: timeout }),
            notes: Vec::new(),
        },
    }
}

async fn call<R: Role>(
    role: Result<R, PluginError>,
    cfg: &PluginConfig,
    event: &Event,
    mode: Mode,
) -> Result<Outcome, PluginError> {
    let role = role?;
    let http: Client = match mode {
        Mode::Capture(capture) => http::new_capture_client(role.address_policy(), capture),
        Mode::Live => http::new_client(role.address_policy()),
    };
    let cx = PluginContext {
        instance: cfg.name.clone(),
        http,
    };
    AssertUnwindSafe(role.call(&cx, event))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Err(PluginError::Panicked { message })
        })
}
