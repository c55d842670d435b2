//! (6) One message template rendered for one event: what a template adds per message.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use mydia_plugins::config::Config;
use mydia_plugins::event::{Event, EventName};
use mydia_plugins::plugins::notification::format;

/// The template bench (3) uses too: title and message from the data, a filter.
pub const TEMPLATES: &str = "    templates:\n      after_media_added:\n        title: \"{{ media_item.title }} ({{ media_item.year }}) added\"\n        message: \"New {{ media_item.type }}: {{ media_item.title|truncate(80) }}\"\n";

/// Nanoseconds per render of the title and message (best of `rounds`): as a delivery
/// renders them (the event shared with the pipeline, read in place), as a preview does
/// (from a plain `&Event`, copied once per render), and the built-in text for comparison.
pub fn render_cost(rounds: usize) -> Cost {
    let yaml = format!("plugins:\n  ntfy:\n    topic: bench\n{TEMPLATES}");
    let config = Config::parse(&yaml, None).expect("bench config");
    let templates = config.plugins[0]
        .common
        .templates
        .clone()
        .expect("compiled");
    let data = serde_json::json!({"media_item": {"title": "Dune", "year": 2021, "type": "movie",
        "tmdb_id": 438631, "overview": "Paul Atreides, a brilliant and gifted young man…"}});
    let event = Arc::new(Event::new(
        EventName::AfterMediaAdded,
        data.as_object().cloned().unwrap(),
    ));
    let n = 100_000u32;
    let mut cost = Cost {
        shared: f64::MAX,
        copied: f64::MAX,
        builtin: f64::MAX,
    };
    let per = |start: Instant| start.elapsed().as_nanos() as f64 / f64::from(n);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..n {
            black_box(templates.render_shared(black_box(&event)));
        }
        cost.shared = cost.shared.min(per(start));
        let start = Instant::now();
        for _ in 0..n {
            black_box(templates.render(black_box(&*event)));
        }
        cost.copied = cost.copied.min(per(start));
        let start = Instant::now();
        for _ in 0..n {
            black_box(format::notice(black_box(&event)));
        }
        cost.builtin = cost.builtin.min(per(start));
    }
    cost
}

/// What [`render_cost`] measured, in nanoseconds.
pub struct Cost {
    pub shared: f64,
    pub copied: f64,
    pub builtin: f64,
}
