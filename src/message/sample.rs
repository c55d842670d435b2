//! A sample event of each kind, with the data the catalog says it carries, for `check`'s
//! strict renders of message templates.

use serde_json::{json, Value};

use crate::event::{Event, EventName};

/// A sample `name` event: a movie for the library events, an episode of a series for
/// downloads and imports, the fields the built-in texts read.
pub fn event(name: EventName) -> Event {
    use EventName::*;
    let movie = json!({
        "id": 7, "type": "movie", "title": "Dune", "year": 2021, "tmdb_id": 438631,
        "imdb_id": "tt1160419", "poster_url": "https://image.tmdb.org/t/p/w500/dune.jpg",
        "overview": "Paul Atreides leads nomadic tribes in a battle for Arrakis.",
        "runtime": 155, "metadata": {},
    });
    let series = json!({
        "id": 9, "type": "tv_show", "title": "The Office", "year": 2005, "tmdb_id": 2316,
        "imdb_id": "tt0386676", "poster_url": "https://image.tmdb.org/t/p/w500/office.jpg",
        "overview": "A mockumentary on a group of typical office workers.", "metadata": {},
    });
    let episode = json!({"season_number": 2, "episode_number": 3, "title": "The Dundies"});
    let release = "The.Office.US.S02E03.1080p.WEB-DL";
    let download =
        json!({"id": "d1", "title": release, "indexer": "NZBgeek", "download_client": "SABnzbd"});
    let file = format!("/media/tv/The Office/Season 02/{release}.mkv");
    let media_file =
        json!({"path": file, "resolution": "1080p", "codec": "HEVC", "size": 1_288_490_189u64});
    let data = match name {
        BeforeMediaAdded | AfterMediaAdded | AfterMediaDeleted => json!({"media_item": movie}),
        AfterMediaUpdated => json!({"media_item": movie, "changes": {"year": [2020, 2021]}}),
        BeforeDownloadInitiated => json!({
            "media_item": series, "episode": episode,
            "release": {"title": release, "indexer": "NZBgeek", "size": 1_288_490_189u64, "quality": "1080p"},
        }),
        AfterDownloadInitiated => {
            json!({"media_item": series, "episode": episode, "download": download})
        }
        OnDownloadCompleted => json!({
            "media_item": series, "episode": episode, "download": download, "release_name": release,
        }),
        OnDownloadFailed => json!({
            "media_item": series, "episode": episode, "download": download, "release_name": release,
            "error_message": "the download client reported the files as missing",
        }),
        AfterImportCompleted => json!({
            "media_item": series, "episode": episode, "file_path": file, "media_file": media_file,
        }),
        OnImportFailed => json!({
            "media_item": series, "episode": episode, "file_path": file,
            "error_message": "not enough free space on /media",
        }),
        OnPlaybackStarted | OnPlaybackFinished => json!({
            "media_item": movie, "user": {"name": "alice"}, "position_seconds": 5520,
        }),
        OnPluginHealthChanged => json!({
            "plugin": "ntfy", "from": "closed", "to": "open", "reason": "5 failures in the last 20 calls",
        }),
    };
    let data = match data {
        Value::Object(data) => data,
        _ => Default::default(),
    };
    Event::new(name, data).with_id("sample")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_a_sample_the_built_in_texts_read() {
        for name in EventName::ALL {
            let e = event(*name);
            assert!(!e.data.is_empty(), "{name}");
            let notice = crate::plugins::notification::format::notice(&e);
            assert_ne!(
                notice.message,
                crate::plugins::notification::format::notice(&Event::new(
                    *name,
                    Default::default()
                ))
                .message,
                "{name}: the sample says more"
            );
        }
    }
}
