//! What a notification says when the user writes it: per-instance message templates in
//! minijinja (Jinja syntax), compiled when the config loads, rendered per event.
//!
//! Templates give text; the plugin still owns its message: rendering comes *before* the
//! plugin's one-line titles, escaping (Telegram HTML, Discord and Slack markdown and
//! mentions) and cutting to the service's limits, exactly as for the built-in texts, so a
//! template can never break a message or ping `@everyone`.
//!
//! - [`compile`]: `templates:` YAML → [`Templates`], with problems at their field paths
//!   (`fields` parses the `fields` part)
//! - [`templates`]: the compiled templates and rendering, with the fall-back to built-in text
//! - [`context`]: what a template sees (`media_item`, `event`, `plugin`, `data`, ...)
//! - [`filters`]: the environment and the `filesize`, `duration`, `truncate` filters
//! - [`check`]: strict renders against a sample event of each kind → warnings
//! - [`sample`]: those sample events; [`scan`]: the filter names a template uses

pub mod check;
pub mod compile;
pub mod context;
mod fields;
pub mod filters;
pub mod sample;
mod scan;
pub mod templates;
#[cfg(test)]
mod tests;

pub use compile::{compile, Target};
pub use templates::{MessageTemplate, Part, Rendered, RenderedField, Templates};

/// A minijinja error in words for a config problem or a log line: what went wrong, and
/// the line inside the template when there is one.
pub fn describe(err: &minijinja::Error) -> String {
    let mut text = err.kind().to_string();
    if let Some(detail) = err.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    if let Some(line) = err.line() {
        text.push_str(&format!(" (line {line} of the template)"));
    }
    text
}

/// Templates compiled from `yaml` (the value of `templates:`) for an instance `test`
/// receiving every event, for the plugins' unit tests.
#[cfg(test)]
pub(crate) fn for_tests(parts: &[Part], yaml: &str) -> std::sync::Arc<Templates> {
    let value = serde_yaml::from_str(yaml).expect("YAML");
    let target = Target {
        instance: "test",
        kind: "test",
        parts,
        events: crate::event::EventName::ALL,
    };
    let mut problems = crate::config::Problems::default();
    let mut warnings = crate::config::Problems::default();
    let t = compile(&target, "templates", value, &mut problems, &mut warnings);
    assert!(problems.is_empty(), "{problems:?}");
    std::sync::Arc::new(t.expect("compiled"))
}
