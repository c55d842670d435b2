//! Which digest group an event belongs to.

use serde_json::Value;

use crate::event::Event;

/// The group of `event`: by default its name, its series or media item and its season
/// (so a season pack is one group, another season another); with `group_by`, the values
/// at those dotted data paths (`event` stands for the event's name).
pub fn group_key(event: &Event, group_by: &[String]) -> String {
    let mut key = String::new();
    if group_by.is_empty() {
        key.push_str(event.name.as_str());
        let item = first(
            event,
            &[
                "media_item.id",
                "media_item.tmdb_id",
                "media_item.title",
                "media_item.name",
            ],
        );
        let season = first(
            event,
            &[
                "episode.season_number",
                "episode.season",
                "media_item.season_number",
            ],
        );
        for part in [item, season] {
            key.push('\u{1f}');
            key.push_str(&part);
        }
        return key;
    }
    for path in group_by {
        let part = if path == "event" {
            event.name.as_str().to_owned()
        } else {
            event.value_at(path).map_or_else(String::new, canonical)
        };
        key.push_str(&part);
        key.push('\u{1f}');
    }
    key
}

/// The first value present at one of `paths`, as text (`""` when none is).
fn first(event: &Event, paths: &[&str]) -> String {
    paths
        .iter()
        .find_map(|p| event.value_at(p).filter(|v| !v.is_null()))
        .map_or_else(String::new, canonical)
}

/// A value as key text: a string without quotes (so `2` and `"2"` group together), the
/// rest as JSON.
fn canonical(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_owned(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use serde_json::json;

    fn ev(name: EventName, data: Value) -> Event {
        Event::new(name, data.as_object().cloned().unwrap())
    }

    fn import(series: &str, season: Value, episode: u32) -> Event {
        ev(
            EventName::AfterImportCompleted,
            json!({"media_item": {"title": series, "type": "tv_show"},
                   "episode": {"season_number": season, "episode_number": episode}}),
        )
    }

    #[test]
    fn one_season_of_one_series_is_one_group() {
        let k = |e: &Event| group_key(e, &[]);
        assert_eq!(
            k(&import("Breaking Bad", json!(2), 1)),
            k(&import("Breaking Bad", json!("2"), 9))
        );
        assert_ne!(
            k(&import("Breaking Bad", json!(2), 1)),
            k(&import("Breaking Bad", json!(3), 1))
        );
        assert_ne!(
            k(&import("Breaking Bad", json!(2), 1)),
            k(&import("Better Call Saul", json!(2), 1))
        );
        let failed = ev(
            EventName::OnImportFailed,
            json!({"media_item": {"title": "Breaking Bad"}, "episode": {"season_number": 2}}),
        );
        assert_ne!(
            k(&import("Breaking Bad", json!(2), 1)),
            k(&failed),
            "the event name counts"
        );
    }

    #[test]
    fn group_by_uses_the_paths_given() {
        let by_title = ["media_item.title".to_owned()];
        assert_eq!(
            group_key(&import("Breaking Bad", json!(2), 1), &by_title),
            group_key(&import("Breaking Bad", json!(3), 1), &by_title)
        );
        let by_event = ["event".to_owned()];
        assert_eq!(
            group_key(&import("A", json!(1), 1), &by_event),
            group_key(&import("B", json!(2), 1), &by_event)
        );
    }
}
