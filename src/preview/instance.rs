//! One plugin instance built fresh from its config and run once for a preview, outside
//! the supervisor: no actor, breaker, rate limit or backlog is touched; and what a
//! delivery instance's preview says (would it get the event, its request, its warnings).
//!
//! This `match` mirrors the spawning one in [`crate::supervisor::InstanceSpec::from_config`]
//! (the compiler points at both when a type is added).

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt as _;

use super::notes::{self, Note};
use super::run::Setup;
use super::{InstancePreview, RequestView};
use crate::event::{Event, EventName};
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
use crate::supervisor::PluginStatus;

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

/// One delivery instance: whether it would get the event, and the request its code builds.
/// An instance that would not get it is run only when it was named.
pub(super) async fn delivery(
    setup: &Setup<'_>,
    cfg: &PluginConfig,
    event: &Event,
    rejected: bool,
    explicit: bool,
    status: Option<&PluginStatus>,
) -> InstancePreview {
    let mut warnings = Vec::new();
    let subscribed = cfg.common.events.contains(&event.name);
    if !cfg.common.enabled {
        warnings.push(Note::new(
            "disabled",
            "disabled in the config (`enabled: false`): it gets no events",
        ));
    } else if !subscribed {
        let events: Vec<&str> = cfg.common.events.iter().map(|e| e.as_str()).collect();
        let events = if events.is_empty() {
            "none".to_owned()
        } else {
            events.join(", ")
        };
        warnings.push(Note::new(
            "not_subscribed",
            format!(
                "not subscribed to {}: its `events` are {events}",
                event.name
            ),
        ));
    }
    // A health notice about an instance goes to the others only.
    let about_itself = event.name == EventName::OnPluginHealthChanged
        && event.str_at("plugin") == Some(cfg.name.as_str());
    if about_itself && cfg.wants(event.name) {
        warnings.push(Note::new(
            "not_subscribed",
            "this health notice is about the instance itself, so it goes to the others only",
        ));
    }
    let would_receive = cfg.wants(event.name) && !about_itself && !rejected;
    if let Some(s) = status.filter(|_| would_receive) {
        warnings.extend(state_warning(s));
    }
    let mut preview = InstancePreview {
        plugin: cfg.name.clone(),
        kind: cfg.kind.as_str(),
        role: cfg.kind.role(),
        would_receive,
        requests: Vec::new(),
        error: None,
        warnings,
    };
    if !(would_receive || explicit || rejected) {
        return preview;
    }
    let capture = Capture::new();
    let timeout = cfg.common.timeout.unwrap_or(setup.delivery_timeout);
    let ran = run(cfg, event, Mode::Capture(capture.clone()), timeout).await;
    preview.requests = capture
        .requests()
        .into_iter()
        .map(RequestView::from)
        .collect();
    preview.warnings.extend(ran.notes);
    if preview
        .requests
        .iter()
        .any(|r| r.headers.contains_key("webhook-id"))
    {
        preview.warnings.push(Note::new(
            "per_delivery",
            "webhook-id is derived from the event id here; a real delivery carries its own delivery id, and webhook-timestamp and webhook-signature are made when it is sent",
        ));
    }
    preview.error = match ran.result {
        Ok(_) | Err(PluginError::DryRun) => None,
        Err(e) => Some(match e {
            PluginError::Misconfigured { .. } if preview.requests.is_empty() => {
                format!("cannot be built from its config: {e}")
            }
            e => format!("would fail: {e}"),
        }),
    };
    preview
}

/// What the running instance's state means for this delivery, if anything.
fn state_warning(s: &PluginStatus) -> Option<Note> {
    let note = match s.state {
        "misconfigured" => format!(
            "misconfigured now: {}; deliveries to it are held until the config is fixed or a connection test passes",
            s.misconfigured_reason.as_deref().unwrap_or("no reason recorded")
        ),
        "open" | "half_open" => format!(
            "its circuit breaker is {} after repeated failures: this delivery would wait until it closes",
            s.state.replace('_', "-")
        ),
        _ => match s.paused {
            Some(why) => format!("sending is paused now ({why}): this delivery would wait its turn"),
            None => return None,
        },
    };
    Some(Note::new("state", note))
}
