//! The dry run itself: hooks, enrichment, then every selected delivery instance once.

use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;

use super::instance::{self, Mode};
use super::{
    EnrichmentOutcome, HooksOutcome, InstancePreview, Note, Preview, PreviewError, Rejection,
    RequestView,
};
use crate::event::{Event, EventData, EventName};
use crate::hooks::Hooks;
use crate::http::Capture;
use crate::plugins::{Outcome, PluginConfig, PluginError};
use crate::supervisor::PluginStatus;

/// What a preview runs against: the configured instances and the hooks, plus, in a running
/// service, each instance's state (a misconfigured or open instance is worth a warning).
pub struct Setup<'a> {
    /// Every configured instance, in config order.
    pub plugins: &'a [PluginConfig],
    /// The hooks to run (their workers).
    pub hooks: &'a Hooks,
    /// `supervision.delivery_timeout`: the bound on an instance without its own `timeout`.
    pub delivery_timeout: Duration,
    /// The running instances' states (empty outside a service).
    pub status: &'a [PluginStatus],
}

/// Previews `event` for the instances `names` (empty: every delivery instance), running
/// the enrichment plugins when `enrich`. `stored` is the delivery id when the event is a
/// stored one: its hooks ran when it was accepted, so they do not run again.
pub async fn run(
    setup: &Setup<'_>,
    event: Event,
    names: &[String],
    enrich: bool,
    stored: Option<String>,
) -> Result<Preview, PreviewError> {
    let chosen = choose(setup.plugins, names)?;
    let mut warnings = Vec::new();

    let (mut event, hooks) = if stored.is_some() {
        warnings.push("this is the stored event of the delivery, as it was accepted: its hooks ran then and do not run again".to_owned());
        let outcome = HooksOutcome {
            ran: false,
            changed: false,
            rejected: None,
        };
        (event, outcome)
    } else {
        hooks(setup.hooks, event, &mut warnings).await
    };

    let enrichers: Vec<&PluginConfig> = setup
        .plugins
        .iter()
        .filter(|p| p.kind.role() == "enrichment" && p.wants(event.name))
        .collect();
    let mut enrichment = Vec::new();
    if enrich {
        enrichment = enriched(setup, &mut event, &enrichers).await;
    } else if !enrichers.is_empty() {
        let names: Vec<&str> = enrichers.iter().map(|p| p.name.as_str()).collect();
        warnings.push(format!(
            "enrichment not run: {} would add fields to this event first; add \"enrich\": true (--enrich) to include them",
            names.join(", ")
        ));
    }

    let rejected = hooks.rejected.is_some();
    let explicit = !names.is_empty();
    let instances = join_all(chosen.iter().map(|cfg| {
        let event = &event;
        async move {
            let status = setup.status.iter().find(|s| s.name == cfg.name);
            instance(setup, cfg, event, rejected, explicit, status).await
        }
    }))
    .await;

    if !rejected && !instances.iter().any(|i| i.would_receive) {
        warnings.push(if explicit {
            format!(
                "nothing subscribed: none of the instances named receives {}",
                event.name
            )
        } else {
            format!(
                "nothing subscribed: no enabled instance receives {}, so nothing would be sent",
                event.name
            )
        });
    }
    Ok(Preview {
        event,
        delivery: stored,
        hooks,
        enrichment,
        instances,
        warnings,
    })
}

/// The delivery instances to preview: those named (checked), or every one in config order.
fn choose<'a>(
    plugins: &'a [PluginConfig],
    names: &[String],
) -> Result<Vec<&'a PluginConfig>, PreviewError> {
    if names.is_empty() {
        return Ok(plugins
            .iter()
            .filter(|p| p.kind.role() != "enrichment")
            .collect());
    }
    names
        .iter()
        .map(|name| {
            let Some(cfg) = plugins.iter().find(|p| &p.name == name) else {
                let known: Vec<&str> = plugins.iter().map(|p| p.name.as_str()).collect();
                return Err(PreviewError::UnknownPlugin {
                    name: name.clone(),
                    suggestion: crate::suggest::closest(name, known.iter().copied())
                        .map(str::to_owned),
                    known: if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    },
                });
            };
            if cfg.kind.role() == "enrichment" {
                return Err(PreviewError::Enrichment(name.clone()));
            }
            Ok(cfg)
        })
        .collect()
}

/// The hooks on `event`, counting nothing. A rejection is reported and not applied: the
/// preview goes on with the event as it came, so the user still sees what would be sent.
async fn hooks(hooks: &Hooks, event: Event, warnings: &mut Vec<String>) -> (Event, HooksOutcome) {
    if !hooks.has_hooks(event.name) {
        let outcome = HooksOutcome {
            ran: false,
            changed: false,
            rejected: None,
        };
        return (event, outcome);
    }
    let original = event.clone();
    match hooks.dry_run(event).await {
        Ok(after) => {
            let changed = after.data != original.data;
            let outcome = HooksOutcome {
                ran: true,
                changed,
                rejected: None,
            };
            (after, outcome)
        }
        Err(r) => {
            warnings.push(format!(
                "hook `{}` rejected the event ({}): nothing would be sent; shown below is what each instance would get without the rejection (the event as sent, before hooks)",
                r.hook, r.reason
            ));
            let outcome = HooksOutcome {
                ran: true,
                changed: false,
                rejected: Some(Rejection {
                    hook: r.hook,
                    reason: r.reason,
                    kind: r.kind,
                }),
            };
            (original, outcome)
        }
    }
}

/// Asks every enricher at once (real, read-only lookups, each within its timeout) and
/// merges their patches in config order, as the pipeline does; a failure adds nothing.
async fn enriched(
    setup: &Setup<'_>,
    event: &mut Event,
    enrichers: &[&PluginConfig],
) -> Vec<EnrichmentOutcome> {
    let asked = &*event;
    let runs = join_all(enrichers.iter().map(|cfg| async move {
        let timeout = cfg.common.timeout.unwrap_or(setup.delivery_timeout);
        instance::run(cfg, asked, Mode::Live, timeout).await
    }))
    .await;
    let mut outcomes = Vec::with_capacity(runs.len());
    for (cfg, ran) in enrichers.iter().zip(runs) {
        let (patch, error) = match ran.result {
            Ok(Outcome::Enriched(e)) => (Some(e.patch), None),
            Ok(Outcome::Delivered(_)) => (None, None),
            Err(e) => (None, Some(e.to_string())),
        };
        if let Some(patch) = &patch {
            merge(&mut event.data, patch.clone());
        }
        outcomes.push(EnrichmentOutcome {
            plugin: cfg.name.clone(),
            patch,
            error,
        });
    }
    outcomes
}

/// Merge `patch` into `data`: objects merge key by key, anything else replaces (the rule
/// of the supervisor's enrichment merge).
fn merge(data: &mut EventData, patch: EventData) {
    for (key, value) in patch {
        match (data.get_mut(&key), value) {
            (Some(Value::Object(old)), Value::Object(new)) => merge(old, new),
            (_, value) => {
                data.insert(key, value);
            }
        }
    }
}

/// One delivery instance: whether it would get the event, and the request its code builds.
/// An instance that would not get it is run only when it was named.
async fn instance(
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
    let ran = instance::run(cfg, event, Mode::Capture(capture.clone()), timeout).await;
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
