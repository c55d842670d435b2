//! ntfy: publish to a topic on ntfy.sh or a self-hosted server (JSON publishing to the root URL).

use secrecy::SecretString;
use serde::Deserialize;

use crate::config::Problems;
use crate::plugins::registry::CommonSettings;

/// `type: ntfy` settings (the seed's fields and defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtfyConfig {
    /// Server base URL (default `https://ntfy.sh`).
    #[serde(default = "default_server_url")]
    pub server_url: String,
    /// Topic to publish to; required when enabled. `[-_A-Za-z0-9]{1,64}`.
    #[serde(default)]
    pub topic: Option<String>,
    /// Message priority 1..5 (default 3).
    #[serde(default = "default_priority")]
    pub priority: i64,
    /// Tags (emoji short codes) added to every message; the event's own default tags are added too.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Access token (`tk_...`) for protected topics; sent as `Authorization: Bearer`.
    #[serde(default)]
    pub auth_token: Option<SecretString>,
}

fn default_server_url() -> String {
    "https://ntfy.sh".to_owned()
}

fn default_priority() -> i64 {
    3
}

impl NtfyConfig {
    /// Pure checks of the ntfy fields.
    pub fn validate(&self, path: &str, common: &CommonSettings, problems: &mut Problems) {
        crate::config::validate::check_url(
            problems,
            &format!("{path}.server_url"),
            &self.server_url,
            common.allow_insecure_http,
        );
        match self.topic.as_deref() {
            None | Some("") if common.enabled => problems.push(
                format!("{path}.topic"),
                "is required when the plugin is enabled; pick a hard-to-guess topic name, e.g. mydia-7f3k2",
            ),
            Some(t) if !is_valid_topic(t) => problems.push(
                format!("{path}.topic"),
                format!("`{t}` is not a valid ntfy topic: use 1 to 64 letters, digits, `-` or `_`"),
            ),
            _ => {}
        }
        if !(1..=5).contains(&self.priority) {
            problems.push(
                format!("{path}.priority"),
                format!("must be between 1 (min) and 5 (max), got {}", self.priority),
            );
        }
        for (i, tag) in self.tags.iter().enumerate() {
            if tag.trim().is_empty() || tag.contains(',') {
                problems.push(
                    format!("{path}.tags[{i}]"),
                    format!(
                        "`{tag}` is not a usable tag: tags are non-empty and contain no commas"
                    ),
                );
            }
        }
    }
}

/// ntfy topic names: `[-_A-Za-z0-9]{1,64}`.
pub fn is_valid_topic(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

// TEMPORARY until the ntfy branch lands.
/// The ntfy plugin (temporary stub).
pub struct Ntfy(#[allow(dead_code)] NtfyConfig);
impl Ntfy {
    /// Build from config.
    pub fn new(c: NtfyConfig) -> Self {
        Ntfy(c)
    }
}
impl crate::plugins::Plugin for Ntfy {
    fn info(&self) -> crate::plugins::PluginInfo {
        todo!()
    }
    async fn test_connection(
        &self,
        _: &crate::plugins::PluginContext,
    ) -> Result<crate::plugins::ConnectionReport, crate::plugins::PluginError> {
        todo!()
    }
}
impl crate::plugins::NotificationPlugin for Ntfy {
    async fn notify(
        &self,
        _: &crate::plugins::PluginContext,
        _: &crate::event::Event,
    ) -> Result<crate::plugins::Delivered, crate::plugins::PluginError> {
        todo!()
    }
}
