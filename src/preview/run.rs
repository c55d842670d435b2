//! The dry run itself: hooks, enrichment, then every selected delivery instance once.

use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;

use super::instance::{self, Mode};
use super::{EnrichmentOutcome, HooksOutcome, Preview, PreviewError, Rejection};
use crate::event::{Event, EventData};
use crate::hooks::Hooks;
use crate::plugins::{Outcome, PluginConfig};
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
            instance::delivery(setup, cfg, event, rejected, explicit, status).await
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
