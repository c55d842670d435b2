//! Which events are anime, what to ask AniList, and which search result is the one.
//!
//! Titles are not unique: a search for "Dororo" finds the 1969 series and the 2019 remake,
//! and a franchise's movie sits beside its TV series. So every candidate gets a score from
//! its best title similarity, its year and its format, and only a close enough best one
//! is used: a missing cover is better than the wrong show's.

use serde_json::{Map, Value};

use super::media::Media;
use crate::event::Event;
use crate::plugins::notification::format::MediaKind;

/// Weight of the title similarity in a candidate's score.
const TITLE_WEIGHT: f64 = 0.6;
/// Weight of the year agreement.
const YEAR_WEIGHT: f64 = 0.25;
/// Weight of the format agreement.
const FORMAT_WEIGHT: f64 = 0.15;
/// The title similarity a candidate needs whatever its year and format: a sequel or a
/// spin-off with the right year must not pass for the show itself ("Attack on Titan" vs
/// "Attack on Titan Season 2" is 0.63).
pub const MIN_TITLE_SIMILARITY: f64 = 0.75;

/// What to ask AniList for one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The event already names the AniList entry.
    ById(u64),
    /// Search by title and rank what comes back.
    Search(Wanted),
}

/// What the event says about the show we look for.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// The text searched for: the title as the event has it.
    pub search: String,
    /// Every title of the event (title, original title), normalised, for ranking.
    pub titles: Vec<String>,
    /// The year it came out, when known.
    pub year: Option<i32>,
    /// Movie or series, when known.
    pub kind: MediaKind,
}

impl Lookup {
    /// What to ask for `event`: `None` (ask nothing) unless its `media_item` is anime and
    /// has an AniList id or a title.
    pub fn for_event(event: &Event) -> Option<Lookup> {
        let item = event.value_at("media_item")?.as_object()?;
        if !is_anime(item) {
            return None;
        }
        if let Some(id) = anilist_id(item) {
            return Some(Lookup::ById(id));
        }
        let title_keys = ["title", "original_title", "original_name"];
        let titles: Vec<&str> = title_keys.iter().filter_map(|k| text(item, k)).collect();
        let search = titles.first()?.to_string();
        let mut normalised: Vec<String> = Vec::new();
        for t in titles.iter().map(|t| normalise(t)) {
            if !t.is_empty() && !normalised.contains(&t) {
                normalised.push(t);
            }
        }
        Some(Lookup::Search(Wanted {
            search,
            titles: normalised,
            year: year(item),
            kind: MediaKind::of(event),
        }))
    }

    /// The cache key: equal keys get the same answer.
    pub fn cache_key(&self) -> String {
        match self {
            Lookup::ById(id) => format!("id:{id}"),
            Lookup::Search(w) => format!(
                "search:{}:{}:{}",
                w.kind.noun(),
                w.year.map(|y| y.to_string()).unwrap_or_default(),
                w.titles.join("\u{1f}")
            ),
        }
    }
}

/// Whether a `media_item` is anime. An explicit flag decides (`is_anime`, or `anime` in
/// `metadata`); else an AniList id says yes; else the genres must say "Anime", or
/// "Animation" with Japanese as the original language (or Japan as origin country).
pub fn is_anime(item: &Map<String, Value>) -> bool {
    let flag = ["is_anime", "anime"]
        .iter()
        .find_map(|k| field(item, k).and_then(Value::as_bool));
    if let Some(flag) = flag {
        return flag;
    }
    if anilist_id(item).is_some() {
        return true;
    }
    let genres: Vec<String> = field(item, "genres")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().or_else(|| g.get("name")?.as_str()))
        .map(|g| g.trim().to_lowercase())
        .collect();
    let japanese = text(item, "original_language").is_some_and(|l| l.eq_ignore_ascii_case("ja"))
        || match field(item, "origin_country") {
            Some(Value::String(c)) => c.eq_ignore_ascii_case("jp"),
            Some(Value::Array(cs)) => cs
                .iter()
                .any(|c| c.as_str().is_some_and(|c| c.eq_ignore_ascii_case("jp"))),
            _ => false,
        };
    genres.iter().any(|g| g == "anime") || (japanese && genres.iter().any(|g| g == "animation"))
}

/// An AniList id in the item: `anilist_id` (here or in `metadata`) or `anilist.id` (what
/// this plugin adds, so a re-emitted event is looked up directly).
fn anilist_id(item: &Map<String, Value>) -> Option<u64> {
    let id = field(item, "anilist_id").or_else(|| item.get("anilist")?.get("id"))?;
    match id {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|id| *id > 0 && *id <= i32::MAX as u64)
}

/// The best candidate scoring at least `min_confidence` (and [`MIN_TITLE_SIMILARITY`]),
/// with its score. On equal scores AniList's own order (relevance) decides.
pub fn best(wanted: &Wanted, candidates: Vec<Media>, min_confidence: f64) -> Option<(Media, f64)> {
    let mut best: Option<(Media, f64)> = None;
    for media in candidates {
        let Some(score) = score(wanted, &media) else {
            continue;
        };
        if score >= min_confidence && best.as_ref().is_none_or(|(_, s)| score > *s) {
            best = Some((media, score));
        }
    }
    best
}

/// A candidate's score in 0..1: `0.6 * title + 0.25 * year + 0.15 * format`, or `None` when
/// no title of it is close enough to a title of the event.
pub fn score(wanted: &Wanted, media: &Media) -> Option<f64> {
    let title = media
        .names()
        .map(normalise)
        .flat_map(|name| wanted.titles.iter().map(move |t| similarity(t, &name)))
        .fold(0.0, f64::max);
    if title < MIN_TITLE_SIMILARITY {
        return None;
    }
    let year = match (wanted.year, media.year()) {
        (Some(a), Some(b)) => match (a - b).abs() {
            0 => 1.0,
            // A show that starts in late December is listed in the next year elsewhere.
            1 => 0.6,
            2 => 0.2,
            _ => 0.0,
        },
        _ => 0.5,
    };
    let format = match (wanted.kind, media.format.as_deref()) {
        (MediaKind::Unknown, _) | (_, None) => 0.5,
        (MediaKind::Movie, Some("MOVIE")) => 1.0,
        (MediaKind::Movie, Some("SPECIAL" | "OVA" | "ONA")) => 0.4,
        (MediaKind::Movie, Some(_)) => 0.0,
        (MediaKind::Series, Some("TV" | "TV_SHORT" | "ONA")) => 1.0,
        (MediaKind::Series, Some("OVA" | "SPECIAL")) => 0.4,
        (MediaKind::Series, Some("MOVIE")) => 0.0,
        (MediaKind::Series, Some(_)) => 0.2,
    };
    Some(TITLE_WEIGHT * title + YEAR_WEIGHT * year + FORMAT_WEIGHT * format)
}

/// Lowercase letters and digits (any script) separated by single spaces: case and
/// punctuation do not make titles differ, and apostrophes vanish ("Journey's" = "Journeys").
pub fn normalise(title: &str) -> String {
    let mapped: String = title
        .chars()
        .filter(|c| !matches!(c, '\'' | '’' | '‘' | 'ʼ' | '`'))
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `1 - edit distance / longer length`, over chars: 1 for equal strings, 0 for nothing alike.
pub fn similarity(a: &str, b: &str) -> f64 {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let longer = a.len().max(b.len());
    if longer == 0 {
        return 0.0;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    1.0 - prev[b.len()] as f64 / longer as f64
}

/// A field of the item, else of its `metadata` object.
fn field<'a>(item: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    item.get(key)
        .filter(|v| !v.is_null())
        .or_else(|| item.get("metadata")?.get(key).filter(|v| !v.is_null()))
}

/// Non-blank text at `key` (item, else metadata), trimmed.
fn text<'a>(item: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    field(item, key)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The year: `year` as a number or text, else the start of `release_date`/`first_air_date`.
fn year(item: &Map<String, Value>) -> Option<i32> {
    let from_text = |s: &str| s.trim().get(..4)?.parse::<i32>().ok();
    match field(item, "year") {
        Some(Value::Number(n)) => n.as_i64().and_then(|y| i32::try_from(y).ok()),
        Some(Value::String(s)) => from_text(s),
        _ => ["release_date", "first_air_date"]
            .iter()
            .find_map(|k| text(item, k).and_then(from_text)),
    }
    .filter(|y| (1900..=2200).contains(y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use serde_json::json;

    fn item(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn event(media_item: Value) -> Event {
        Event::new(
            EventName::AfterMediaAdded,
            item(json!({ "media_item": media_item })),
        )
    }

    fn media(id: u64, title: &str, format: &str, year: i32) -> Media {
        serde_json::from_value(json!({
            "id": id, "title": {"romaji": title}, "format": format, "seasonYear": year
        }))
        .unwrap()
    }

    fn wanted(event: &Event) -> Wanted {
        match Lookup::for_event(event) {
            Some(Lookup::Search(w)) => w,
            other => panic!("expected a search, got {other:?}"),
        }
    }

    #[test]
    fn recognises_anime_from_the_data() {
        let yes = [
            json!({"genres": ["Animation", "Drama"], "original_language": "ja"}),
            json!({"metadata": {"genres": [{"id": 16, "name": "Animation"}], "original_language": "ja"}}),
            json!({"genres": ["Animation"], "metadata": {"origin_country": ["JP"]}}),
            json!({"genres": ["Anime"]}),
            json!({"is_anime": true}),
            json!({"metadata": {"anime": true}}),
            json!({"anilist_id": 16498}),
            json!({"anilist": {"id": "16498"}}),
        ];
        for v in yes {
            assert!(is_anime(&item(v.clone())), "{v}");
        }
        let no = [
            json!({"genres": ["Animation", "Family"], "original_language": "en"}),
            json!({"genres": ["Drama"], "original_language": "ja"}),
            json!({"original_language": "ja"}),
            json!({"genres": ["Animation"]}),
            json!({"title": "Dune", "year": 2021}),
            json!({"is_anime": false, "genres": ["Anime"], "anilist_id": 1}),
            json!({"anilist_id": 0}),
            json!({}),
        ];
        for v in no {
            assert!(!is_anime(&item(v.clone())), "{v}");
        }
    }

    #[test]
    fn non_anime_or_untitled_events_ask_nothing() {
        assert_eq!(
            Lookup::for_event(&event(
                json!({"title": "Toy Story", "genres": ["Animation"]})
            )),
            None
        );
        assert_eq!(Lookup::for_event(&event(json!({"is_anime": true}))), None);
        let no_item = Event::new(EventName::AfterMediaAdded, Map::new());
        assert_eq!(Lookup::for_event(&no_item), None);
        assert_eq!(
            Lookup::for_event(&event(json!({"anilist_id": 21, "title": "One Piece"}))),
            Some(Lookup::ById(21))
        );
    }

    #[test]
    fn a_search_uses_the_titles_year_and_kind() {
        let w = wanted(&event(json!({
            "title": "Attack on Titan", "type": "tv_show", "is_anime": true,
            "metadata": {"original_name": "進撃の巨人", "first_air_date": "2013-04-07"}
        })));
        assert_eq!(w.search, "Attack on Titan");
        assert_eq!(w.titles, ["attack on titan", "進撃の巨人"]);
        assert_eq!((w.year, w.kind), (Some(2013), MediaKind::Series));
        let again = wanted(&event(
            json!({"title": "attack on TITAN!", "type": "series", "year": "2013", "is_anime": true}),
        ));
        assert_ne!(
            Lookup::Search(w).cache_key(),
            Lookup::Search(again.clone()).cache_key(),
            "titles differ"
        );
        assert_eq!(again.titles, ["attack on titan"]);
    }

    #[test]
    fn normalises_and_compares_titles() {
        assert_eq!(
            normalise("  Frieren: Beyond Journey’s End "),
            "frieren beyond journeys end"
        );
        assert_eq!(normalise("Kimi no Na wa."), "kimi no na wa");
        assert_eq!(similarity("dororo", "dororo"), 1.0);
        assert_eq!(similarity("", ""), 0.0);
        let sequel = similarity("attack on titan", "attack on titan season 2");
        assert!((0.6..MIN_TITLE_SIMILARITY).contains(&sequel), "{sequel}");
        assert!(similarity("進撃の巨人", "進撃の巨人 season 2") < MIN_TITLE_SIMILARITY);
    }

    #[test]
    fn the_right_candidate_wins_not_the_first() {
        // AniList's first answer is the same-name series from 1969; a 2019 recap film and
        // the 2019 series follow.
        let candidates = || {
            vec![
                media(1, "Dororo", "TV", 1969),
                media(2, "Dororo", "MOVIE", 2019),
                media(3, "Dororo", "TV", 2019),
            ]
        };
        let series = wanted(&event(
            json!({"title": "Dororo", "year": 2019, "type": "tv_show", "is_anime": true}),
        ));
        let (m, s) = best(&series, candidates(), 0.7).unwrap();
        assert_eq!(m.id, 3);
        assert!((s - 1.0).abs() < 1e-9, "{s}");
        let movie = wanted(&event(
            json!({"title": "Dororo", "year": 2019, "type": "movie", "is_anime": true}),
        ));
        assert_eq!(best(&movie, candidates(), 0.7).unwrap().0.id, 2);
        let classic = wanted(&event(
            json!({"title": "Dororo", "year": 1969, "type": "series", "is_anime": true}),
        ));
        assert_eq!(best(&classic, candidates(), 0.7).unwrap().0.id, 1);
    }

    #[test]
    fn a_sequel_does_not_pass_for_the_show() {
        let w = wanted(&event(
            json!({"title": "Attack on Titan", "year": 2013, "type": "tv", "is_anime": true}),
        ));
        let candidates = vec![
            media(20958, "Attack on Titan Season 2", "TV", 2017),
            media(16498, "Attack on Titan", "TV", 2013),
        ];
        assert_eq!(best(&w, candidates, 0.7).unwrap().0.id, 16498);
        let only_sequel = vec![media(20958, "Attack on Titan Season 2", "TV", 2013)];
        assert_eq!(
            best(&w, only_sequel, 0.0),
            None,
            "title gate, whatever the threshold"
        );
    }

    #[test]
    fn matches_through_any_of_its_names() {
        let w = wanted(&event(
            json!({"title": "Your Name.", "year": 2016, "type": "movie", "is_anime": true}),
        ));
        let m: Media = serde_json::from_value(json!({
            "id": 21519, "format": "MOVIE", "seasonYear": 2016,
            "title": {"romaji": "Kimi no Na wa.", "english": null, "native": "君の名は。"},
            "synonyms": ["Your Name."]
        }))
        .unwrap();
        assert!(score(&w, &m).is_some_and(|s| (s - 1.0).abs() < 1e-9));
    }

    #[test]
    fn nothing_close_means_no_match() {
        let w = wanted(&event(
            json!({"title": "Cowboy Bebop", "year": 1998, "type": "series", "is_anime": true}),
        ));
        let far = vec![
            media(1, "Space Dandy", "TV", 2014),
            media(2, "Cowboy Bebop: The Movie", "MOVIE", 2001),
        ];
        assert_eq!(best(&w, far, 0.7), None);
        // The right title, but 20 years off and the wrong format: too doubtful to use.
        let doubtful = vec![media(3, "Cowboy Bebop", "MOVIE", 2018)];
        assert_eq!(best(&w, doubtful.clone(), 0.7), None);
        assert_eq!(
            best(&w, doubtful, 0.5).map(|(m, _)| m.id),
            Some(3),
            "the threshold decides"
        );
    }

    #[test]
    fn unknown_year_and_kind_are_neutral() {
        let w = wanted(&event(json!({"title": "Cowboy Bebop", "is_anime": true})));
        let s = score(&w, &media(1, "Cowboy Bebop", "TV", 1998)).unwrap();
        assert!((s - 0.8).abs() < 1e-9, "{s}");
    }
}
