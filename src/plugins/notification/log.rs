//! log: writes each notification to the service's own log instead of sending it anywhere.
//!
//! For trying the service out with no account anywhere, and for seeing exactly what a
//! hook did to an event: the same title, message and link the real services get.

use serde::Deserialize;

use super::format::templated;
use super::text::one_line;
use crate::config::Problems;
use crate::event::Event;
use crate::plugins::registry::CommonSettings;
use crate::plugins::{
    ConnectionReport, Delivered, NotificationPlugin, Plugin, PluginContext, PluginError, PluginInfo,
};

/// `type: log` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Log level of each notification line: `info` (default) or `warn`.
    #[serde(default = "default_level")]
    pub level: String,
    /// The instance's compiled `templates:` (a common field, copied here when the config
    /// is loaded); `None`: the built-in texts.
    #[serde(skip)]
    pub templates: Option<std::sync::Arc<crate::message::Templates>>,
}

fn default_level() -> String {
    "info".to_owned()
}

impl LogConfig {
    /// Pure checks.
    pub fn validate(&self, path: &str, _: &CommonSettings, problems: &mut Problems) {
        if !matches!(self.level.as_str(), "info" | "warn") {
            problems.push(
                format!("{path}.level"),
                format!("must be `info` or `warn`, got `{}`", self.level),
            );
        }
    }
}

/// The log plugin.
pub struct Log {
    warn: bool,
    templates: Option<std::sync::Arc<crate::message::Templates>>,
}

impl Log {
    /// Build from its config.
    pub fn new(config: LogConfig) -> Self {
        Log {
            warn: config.level == "warn",
            templates: config.templates,
        }
    }
}

impl Plugin for Log {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: "Log",
            description: "Write each notification to the service log (target `notifications`)",
            version: env!("CARGO_PKG_VERSION"),
            config_schema: serde_json::json!({
                "type": "object",
                "properties": { "level": { "enum": ["info", "warn"], "default": "info" } }
            }),
        }
    }

    async fn test_connection(&self, _: &PluginContext) -> Result<ConnectionReport, PluginError> {
        Ok(ConnectionReport {
            detail: "the log is always reachable".into(),
            sent_message: false,
        })
    }
}

impl NotificationPlugin for Log {
    async fn notify(&self, cx: &PluginContext, event: &Event) -> Result<Delivered, PluginError> {
        let (n, _) = templated(event, self.templates.as_deref());
        let title = one_line(&n.title);
        let link = n.link.as_deref().unwrap_or("");
        let message = n.message.replace('\n', " | ");
        let level = if self.warn { "warn" } else { "info" };
        if crate::preview::notes::log_line(|| format!("{level} {}: {message} {link}", n.title)) {
            return Ok(Delivered {
                detail: format!("previewed: {}", n.title),
            });
        }
        if self.warn {
            tracing::warn!(target: "notifications", plugin = %cx.instance, event = %event.name, event_id = %event.id, title = %title, link, "{message}");
        } else {
            tracing::info!(target: "notifications", plugin = %cx.instance, event = %event.name, event_id = %event.id, title = %title, link, "{message}");
        }
        Ok(Delivered {
            detail: format!("logged: {title}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use crate::message::{for_tests, Part};

    #[actix_rt::test]
    async fn a_templated_title_is_logged_on_one_line() {
        let templates = for_tests(
            &[Part::Title, Part::Message],
            "default: {title: \"{{ media_item.title }}\\nforged line\", message: '{{ event.name }}'}",
        );
        let log = Log::new(LogConfig {
            level: "info".into(),
            templates: Some(templates),
        });
        let cx = PluginContext {
            instance: "console".into(),
            http: crate::http::new_client(crate::http::AddressPolicy::PublicOnly),
        };
        let data = serde_json::json!({"media_item": {"title": "Dune\r\nINFO fake"}});
        let event = Event::new(
            EventName::AfterMediaAdded,
            data.as_object().cloned().unwrap(),
        );
        let done = log.notify(&cx, &event).await.unwrap();
        assert_eq!(done.detail, "logged: Dune INFO fake forged line");
    }

    #[test]
    fn level_is_checked() {
        let common = CommonSettings {
            enabled: true,
            events: vec![],
            allow_insecure_http: false,
            allow_private_network: false,
            timeout: None,
            rate_limit: None,
            max_in_flight: None,
            templates: None,
            digest: None,
            quiet_hours: None,
        };
        let mut p = Problems::default();
        LogConfig {
            level: "debug".into(),
            templates: None,
        }
        .validate("plugins.console", &common, &mut p);
        assert_eq!(p.items()[0].path, "plugins.console.level");
        let mut ok = Problems::default();
        LogConfig {
            level: "warn".into(),
            templates: None,
        }
        .validate("plugins.console", &common, &mut ok);
        assert!(ok.is_empty());
    }
}
