//! log: writes each notification to the service's own log instead of sending it anywhere.
//!
//! For trying the service out with no account anywhere, and for seeing exactly what a
//! hook did to an event: the same title, message and link the real services get.

use serde::Deserialize;

use super::format::notice;
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
}

impl Log {
    /// Build from its config.
    pub fn new(config: LogConfig) -> Self {
        Log {
            warn: config.level == "warn",
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
        let n = notice(event);
        let link = n.link.as_deref().unwrap_or("");
        let message = n.message.replace('\n', " | ");
        if self.warn {
            tracing::warn!(target: "notifications", plugin = %cx.instance, event = %event.name, event_id = %event.id, title = %n.title, link, "{message}");
        } else {
            tracing::info!(target: "notifications", plugin = %cx.instance, event = %event.name, event_id = %event.id, title = %n.title, link, "{message}");
        }
        Ok(Delivered {
            detail: format!("logged: {}", n.title),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            digest: None,
            quiet_hours: None,
        };
        let mut p = Problems::default();
        LogConfig {
            level: "debug".into(),
        }
        .validate("plugins.console", &common, &mut p);
        assert_eq!(p.items()[0].path, "plugins.console.level");
        let mut ok = Problems::default();
        LogConfig {
            level: "warn".into(),
        }
        .validate("plugins.console", &common, &mut ok);
        assert!(ok.is_empty());
    }
}
