//! What the page shows of a plugin: its state in words a person can act on.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::supervisor::PluginStatus;

/// One row of the plugins table.
#[derive(Debug, Clone, Serialize)]
pub struct PluginRow {
    pub name: String,
    pub kind: String,
    pub role: &'static str,
    pub state: &'static str,
    /// The state as a short label ("healthy", "paused", "open", ...).
    pub state_label: &'static str,
    /// What is going on and what to do, in a sentence.
    pub words: String,
    /// When the current pause, cooldown or restart ends (RFC 3339), shown after `words`.
    pub until: Option<String>,
    pub delivered: u64,
    pub failed: u64,
    pub held: u64,
    pub dead: u64,
    pub last_delivered_at: Option<String>,
    /// Whether it comes from the config (so it has a settings view).
    pub configured: bool,
}

fn time(t: &Option<DateTime<Utc>>) -> Option<String> {
    t.as_ref().map(DateTime::to_rfc3339)
}

/// Why a pause is on, in words.
fn pause_words(paused: &str) -> &'static str {
    match paused {
        "rate_limited" => "the service asked us to slow down (429)",
        "rate_limit" => "waiting for its rate limit",
        "retry_backoff" => "waiting to retry after a failure",
        "restarting" => "its actor is restarting",
        "reloading" => "its new config applies once what is in flight is back",
        _ => "paused",
    }
}

impl From<&PluginStatus> for PluginRow {
    fn from(p: &PluginStatus) -> Self {
        let error = p.last_error.as_deref().unwrap_or("no error recorded");
        let mut until = time(&p.retry_at);
        let (state_label, words) = match (p.state, p.paused) {
            ("disabled", _) => (
                "disabled",
                "receives nothing; what it holds stays held until it is enabled".to_owned(),
            ),
            ("misconfigured", _) => (
                "misconfigured",
                format!(
                    "{}; deliveries are held until it is fixed and tested",
                    p.misconfigured_reason.as_deref().unwrap_or(error)
                ),
            ),
            ("open", _) => (
                "open",
                format!(
                    "sending stopped after {} failed attempts (last: {error}); next probe",
                    p.failed
                ),
            ),
            ("half_open", _) => (
                "probing",
                format!("one delivery is testing whether it recovered (last: {error})"),
            ),
            (_, Some(paused)) => ("paused", format!("{}; until", pause_words(paused))),
            _ => {
                until = None;
                let queued = match p.queued {
                    0 => String::new(),
                    n => format!("; {n} waiting their turn"),
                };
                ("healthy", format!("sending{queued}"))
            }
        };
        if until.is_none() {
            // "…; next probe" / "…; until" read only with a time after them.
            let words = words
                .trim_end_matches("; next probe")
                .trim_end_matches("; until")
                .to_owned();
            return PluginRow::with(p, state_label, words, None);
        }
        PluginRow::with(p, state_label, words, until)
    }
}

impl PluginRow {
    fn with(
        p: &PluginStatus,
        state_label: &'static str,
        words: String,
        until: Option<String>,
    ) -> Self {
        PluginRow {
            name: p.name.clone(),
            kind: p.kind.clone(),
            role: p.role,
            state: p.state,
            state_label,
            words,
            until,
            delivered: p.delivered,
            failed: p.failed,
            held: p.held,
            dead: p.dead,
            last_delivered_at: time(&p.last_delivered_at),
            configured: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &'static str) -> PluginStatus {
        PluginStatus {
            name: "ntfy".into(),
            kind: "ntfy".into(),
            role: "notification",
            enabled: state != "disabled",
            events: Vec::new(),
            state,
            paused: None,
            misconfigured_reason: None,
            restarts: 0,
            delivered: 3,
            digests: 0,
            digested: 0,
            dead_lettered: 0,
            durations: Default::default(),
            failed: 11,
            held: 2,
            dead: 0,
            queued: 0,
            in_flight: 0,
            last_error: Some("503 Service Unavailable".into()),
            last_error_at: None,
            last_delivered_at: None,
            retry_at: None,
        }
    }

    #[test]
    fn each_state_reads_as_what_is_happening() {
        let row = PluginRow::from(&status("closed"));
        assert_eq!(
            (row.state_label, row.words.as_str()),
            ("healthy", "sending")
        );
        let mut open = status("open");
        open.retry_at = Some(Utc::now());
        let row = PluginRow::from(&open);
        assert_eq!(row.state_label, "open");
        assert!(
            row.words
                .contains("after 11 failed attempts (last: 503 Service Unavailable); next probe"),
            "{}",
            row.words
        );
        assert!(row.until.is_some());
        let mut mis = status("misconfigured");
        mis.misconfigured_reason = Some("401 Unauthorized: check the token".into());
        let row = PluginRow::from(&mis);
        assert!(
            row.words
                .starts_with("401 Unauthorized: check the token; deliveries are held"),
            "{}",
            row.words
        );
        let mut paused = status("closed");
        paused.paused = Some("rate_limited");
        paused.retry_at = Some(Utc::now());
        let row = PluginRow::from(&paused);
        assert_eq!(row.state_label, "paused");
        assert!(row.words.contains("(429); until"), "{}", row.words);
        // Without a time, no dangling "until".
        paused.retry_at = None;
        assert!(!PluginRow::from(&paused).words.ends_with("until"));
        assert!(PluginRow::from(&status("disabled"))
            .words
            .contains("stays held"));
    }
}
