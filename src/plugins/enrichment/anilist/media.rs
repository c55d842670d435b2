//! AniList's `Media` as we query and read it, and the patch a chosen match becomes.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::event::Event;
use crate::plugins::enrichment::patch::MediaPatch;
use crate::plugins::Enrichment;

/// The fields we ask for, the same for a search and a lookup by id. Beyond WIRE.md's list:
/// `synonyms` and `startDate` help ranking, `description` fills the overview.
macro_rules! media_fields {
    () => {
        "id idMal title { romaji english native } synonyms format episodes seasonYear \
         startDate { year } coverImage { large } bannerImage genres averageScore siteUrl \
         description"
    };
}

/// Search by title: `$search` and `$perPage` (the candidates to rank).
pub const SEARCH_QUERY: &str = concat!(
    "query ($search: String!, $perPage: Int!) { Page(perPage: $perPage) { ",
    "media(search: $search, type: ANIME) { ",
    media_fields!(),
    " } } }"
);

/// Look up an id the event already carries. A `Page` query answers an unknown id with an
/// empty list, where `Media(id:)` would answer 404 with an error.
pub const BY_ID_QUERY: &str = concat!(
    "query ($id: Int!) { Page(perPage: 1) { media(id: $id, type: ANIME) { ",
    media_fields!(),
    " } } }"
);

/// The cheapest real query, for `test_connection`: id 1 exists (Cowboy Bebop).
pub const PING_QUERY: &str = "query { Media(id: 1) { id } }";

/// One AniList anime entry. AniList answers `null` for anything it does not know.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Media {
    /// AniList id.
    pub id: u64,
    /// MyAnimeList id.
    pub id_mal: Option<u64>,
    /// Its titles.
    #[serde(default)]
    pub title: Titles,
    /// Other names it is known by.
    pub synonyms: Option<Vec<String>>,
    /// `TV`, `TV_SHORT`, `MOVIE`, `SPECIAL`, `OVA`, `ONA`, `MUSIC`.
    pub format: Option<String>,
    /// Episode count.
    pub episodes: Option<u32>,
    /// Year of the season it started in.
    pub season_year: Option<i32>,
    /// When it started (only the year is asked for).
    pub start_date: Option<FuzzyDate>,
    /// Cover art.
    pub cover_image: Option<CoverImage>,
    /// Wide banner image URL.
    pub banner_image: Option<String>,
    /// Genre names.
    pub genres: Option<Vec<String>>,
    /// Weighted average score, 0..100.
    pub average_score: Option<u32>,
    /// The entry's page on anilist.co.
    pub site_url: Option<String>,
    /// Synopsis, with some HTML (`<br>`, `<i>`) and entities.
    pub description: Option<String>,
}

/// AniList's titles of one entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Titles {
    /// Japanese in Latin letters, e.g. "Shingeki no Kyojin".
    pub romaji: Option<String>,
    /// The official English title, when there is one.
    pub english: Option<String>,
    /// The title in its own script, e.g. "進撃の巨人".
    pub native: Option<String>,
}

/// A date whose parts may be unknown.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FuzzyDate {
    /// The year.
    pub year: Option<i32>,
}

/// Cover image URLs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CoverImage {
    /// The large size (about 230 px wide), what notifications show.
    pub large: Option<String>,
}

impl Media {
    /// The year it started: `seasonYear`, else `startDate.year`.
    pub fn year(&self) -> Option<i32> {
        self.season_year
            .or_else(|| self.start_date.as_ref().and_then(|d| d.year))
    }

    /// Every name it goes by: romaji, English, native, then synonyms.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let t = &self.title;
        [&t.romaji, &t.english, &t.native]
            .into_iter()
            .flatten()
            .chain(self.synonyms.iter().flatten())
            .map(String::as_str)
    }
}

/// The `media` list of a `Page` answer's `data`; entries that do not parse are skipped.
pub fn page_media(data: &Value) -> Vec<Media> {
    data.pointer("/Page/media")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|m| serde_json::from_value(m.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The patch for a chosen match. Title (English, else romaji), overview, poster, banner,
/// genres and score replace the event's values when `prefer` is set and only fill gaps
/// otherwise; `media_item.anilist` always carries AniList's own fields.
pub fn patch(event: &Event, media: &Media, confidence: f64, prefer: bool) -> Enrichment {
    let mut p = MediaPatch::new(event);
    let title = media.title.english.clone().or(media.title.romaji.clone());
    let cover = media.cover_image.as_ref().and_then(|c| c.large.clone());
    p.offer("title", json!(title), prefer);
    p.offer(
        "overview",
        json!(media.description.as_deref().map(strip_html)),
        prefer,
    );
    p.offer("poster_url", json!(cover), prefer);
    p.offer("banner_url", json!(media.banner_image), prefer);
    p.offer("genres", json!(media.genres), prefer);
    p.offer("score", json!(media.average_score), prefer);
    p.set(
        "anilist",
        json!({
            "id": media.id,
            "id_mal": media.id_mal,
            "url": media.site_url,
            "score": media.average_score,
            "format": media.format,
            "episodes": media.episodes,
            "season_year": media.year(),
            "title": {
                "romaji": media.title.romaji,
                "english": media.title.english,
                "native": media.title.native,
            },
            "cover_url": cover,
            "banner_url": media.banner_image,
            "confidence": (confidence * 100.0).round() / 100.0,
        }),
    );
    p.finish()
}

/// Plain text from AniList's description HTML: tags dropped (`<br>` and `</p>` become line
/// breaks), entities decoded, blank runs collapsed. Entities are decoded after tags are
/// dropped, so `&lt;b&gt;` stays the text `<b>`; each notifier escapes for its service.
pub fn strip_html(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        text.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let is_tag = after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '!');
        match after.find('>').filter(|_| is_tag) {
            Some(end) => {
                let name = after[..end]
                    .trim_start_matches('/')
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if matches!(name.as_str(), "br" | "p" | "div" | "li") {
                    text.push('\n');
                }
                rest = &after[end + 1..];
            }
            None => {
                text.push('<');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    tidy(&decode_entities(&text))
}

/// `&amp;`, `&#39;`, `&#x2014;` and the named entities AniList uses, decoded.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest[1..]
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| Some((entity(&rest[1..=end])?, end + 2)));
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).filter(|c| !c.is_control() || *c == '\n');
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "mdash" => '—',
        "ndash" => '–',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        _ => return None,
    })
}

/// Lines trimmed, spaces collapsed, at most one blank line in a row, none at the ends.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0;
    for line in s.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        out.push_str(&line);
        blank_run = 0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;

    #[test]
    fn strips_anilist_description_html() {
        let html = "Centuries ago, mankind was slaughtered by <i>Titans</i>.<br>\n<br>\n\
                    After his hometown is destroyed, young <b>Eren Yeager</b> vows &mdash; \
                    &quot;I&#039;ll kill them all!&quot;<br><br><br>(Source: Kodansha &amp; Co)";
        assert_eq!(
            strip_html(html),
            "Centuries ago, mankind was slaughtered by Titans.\n\n\
             After his hometown is destroyed, young Eren Yeager vows — \"I'll kill them all!\"\n\n\
             (Source: Kodansha & Co)"
        );
    }

    #[test]
    fn html_stripping_keeps_text_that_only_looks_like_markup() {
        assert_eq!(strip_html("a < b and c<3"), "a < b and c<3");
        assert_eq!(
            strip_html("&lt;script&gt;x&lt;/script&gt; &unknown; & &#x41;"),
            "<script>x</script> &unknown; & A"
        );
        assert_eq!(strip_html("<p>one</p><p>two</p>"), "one\n\ntwo");
        assert_eq!(strip_html("<!-- c -->x<br/>y"), "x\ny");
        assert_eq!(strip_html("unclosed <i"), "unclosed <i");
    }

    #[test]
    fn queries_ask_for_what_wire_md_lists() {
        for field in [
            "id idMal",
            "title { romaji english native }",
            "format",
            "episodes",
            "seasonYear",
            "coverImage { large }",
            "bannerImage",
            "genres",
            "averageScore",
            "siteUrl",
        ] {
            assert!(SEARCH_QUERY.contains(field), "{field}");
            assert!(BY_ID_QUERY.contains(field), "{field}");
        }
        assert!(SEARCH_QUERY.contains("Page(perPage: $perPage)"));
        assert!(SEARCH_QUERY.contains("media(search: $search, type: ANIME)"));
    }

    #[test]
    fn page_media_skips_what_does_not_parse() {
        let data = json!({"Page": {"media": [
            {"id": 1, "title": {"romaji": "A"}, "genres": null},
            {"id": "not a number"},
            {"id": 2, "seasonYear": null, "startDate": {"year": 1998}}
        ]}});
        let media = page_media(&data);
        assert_eq!(media.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(media[1].year(), Some(1998));
        assert!(page_media(&json!({})).is_empty());
    }

    fn attack_on_titan() -> Media {
        serde_json::from_value(json!({
            "id": 16498, "idMal": 16498,
            "title": {"romaji": "Shingeki no Kyojin", "english": "Attack on Titan", "native": "進撃の巨人"},
            "format": "TV", "episodes": 25, "seasonYear": 2013,
            "coverImage": {"large": "https://s4.anilist.co/cover/16498.jpg"},
            "bannerImage": "https://s4.anilist.co/banner/16498.jpg",
            "genres": ["Action", "Drama"], "averageScore": 85,
            "siteUrl": "https://anilist.co/anime/16498",
            "description": "Centuries ago, <i>Titans</i>.<br>"
        }))
        .unwrap()
    }

    fn event(item: Value) -> Event {
        Event::new(
            EventName::AfterMediaAdded,
            json!({ "media_item": item }).as_object().cloned().unwrap(),
        )
    }

    #[test]
    fn prefer_over_tmdb_replaces_otherwise_fills_gaps() {
        let ev = event(json!({
            "title": "Attack on Titan (TMDB)", "overview": "TMDB's overview",
            "poster_url": "https://image.tmdb.org/p.jpg", "genres": [], "year": 2013
        }));
        let fill = Value::Object(patch(&ev, &attack_on_titan(), 0.931, false).patch);
        let item = &fill["media_item"];
        assert!(item.get("title").is_none() && item.get("overview").is_none());
        assert!(item.get("poster_url").is_none(), "TMDB's poster stays");
        assert_eq!(
            item["genres"],
            json!(["Action", "Drama"]),
            "an empty list is a gap"
        );
        assert_eq!(item["banner_url"], "https://s4.anilist.co/banner/16498.jpg");
        assert_eq!(item["score"], 85);

        let replace = Value::Object(patch(&ev, &attack_on_titan(), 0.931, true).patch);
        let item = &replace["media_item"];
        assert_eq!(item["title"], "Attack on Titan");
        assert_eq!(item["overview"], "Centuries ago, Titans.");
        assert_eq!(item["poster_url"], "https://s4.anilist.co/cover/16498.jpg");

        for p in [&fill, &replace] {
            assert_eq!(
                p["media_item"]["anilist"],
                json!({
                    "id": 16498, "id_mal": 16498, "url": "https://anilist.co/anime/16498",
                    "score": 85, "format": "TV", "episodes": 25, "season_year": 2013,
                    "title": {"romaji": "Shingeki no Kyojin", "english": "Attack on Titan", "native": "進撃の巨人"},
                    "cover_url": "https://s4.anilist.co/cover/16498.jpg",
                    "banner_url": "https://s4.anilist.co/banner/16498.jpg",
                    "confidence": 0.93,
                })
            );
        }
    }

    #[test]
    fn romaji_stands_in_for_a_missing_english_title() {
        let mut m = attack_on_titan();
        m.title.english = None;
        let p = Value::Object(patch(&event(json!({})), &m, 1.0, false).patch);
        assert_eq!(p["media_item"]["title"], "Shingeki no Kyojin");
    }
}
