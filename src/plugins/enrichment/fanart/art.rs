//! What to look up (a movie's or a series' id) and which of fanart.tv's images to keep.

use std::cmp::Reverse;

use serde::Serialize;
use serde_json::Value;

use crate::event::Event;
use crate::http::Redactor;
use crate::plugins::enrichment::patch::numeric_id;
use crate::plugins::notification::format::MediaKind;

/// The best image of each kind for one movie or series.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Art {
    /// Poster (`movieposter` / `tvposter`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poster: Option<String>,
    /// Wide background (`moviebackground` / `showbackground`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    /// Transparent logo (`hdmovielogo`, else `movielogo` / `hdtvlogo`, else `clearlogo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo: Option<String>,
    /// Landscape thumbnail (`moviethumb` / `tvthumb`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumb: Option<String>,
}

/// What to look up: `v3/movies/<tmdb or imdb id>` or `v3/tv/<tvdb id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A movie by TMDB id (digits) or IMDb id (`tt` and digits).
    Movie(String),
    /// A series by TheTVDB id (digits).
    Tv(String),
}

impl Target {
    /// The target named by `event`'s `media_item` (its fields, else `metadata`'s): a movie
    /// by `tmdb_id` else `imdb_id`; a series by `tvdb_id`. A TMDB id alone does not say
    /// whether it is a movie or a series id, so an item of unknown type needs a `tvdb_id`
    /// or an `imdb_id`.
    pub fn for_event(event: &Event) -> Option<Target> {
        let tvdb = numeric_id(
            event,
            &[
                "media_item.tvdb_id",
                "media_item.metadata.tvdb_id",
                "media_item.metadata.external_ids.tvdb_id",
            ],
        );
        let imdb = ["media_item.imdb_id", "media_item.metadata.imdb_id"]
            .iter()
            .find_map(|p| event.str_at(p).map(str::trim).filter(|id| is_imdb_id(id)))
            .map(str::to_owned);
        match MediaKind::of(event) {
            MediaKind::Movie => numeric_id(
                event,
                &["media_item.tmdb_id", "media_item.metadata.tmdb_id"],
            )
            .or(imdb)
            .map(Target::Movie),
            MediaKind::Series => tvdb.map(Target::Tv),
            MediaKind::Unknown => tvdb.map(Target::Tv).or(imdb.map(Target::Movie)),
        }
    }

    /// The path under the API base, e.g. `v3/movies/603`.
    pub fn path(&self) -> String {
        match self {
            Target::Movie(id) => format!("v3/movies/{id}"),
            Target::Tv(id) => format!("v3/tv/{id}"),
        }
    }
}

/// `tt` and 1 to 12 digits.
fn is_imdb_id(id: &str) -> bool {
    id.strip_prefix("tt")
        .is_some_and(|d| (1..=12).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}
/// The best image of each kind in a fanart.tv answer for `target`.
pub fn pick(body: &Value, target: &Target, language: &str, redactor: &Redactor) -> Art {
    let kinds: [&[&str]; 4] = match target {
        Target::Movie(_) => [
            &["movieposter"],
            &["moviebackground"],
            &["hdmovielogo", "movielogo"],
            &["moviethumb"],
        ],
        Target::Tv(_) => [
            &["tvposter"],
            &["showbackground"],
            &["hdtvlogo", "clearlogo"],
            &["tvthumb"],
        ],
    };
    let [poster, background, logo, thumb] = kinds.map(|keys| {
        keys.iter().find_map(|k| {
            let items = body.get(*k)?.as_array()?;
            best_image(items, language, redactor)
        })
    });
    Art {
        poster,
        background,
        logo,
        thumb,
    }
}

/// The URL of the best image: by language (`preferred`, then `en`, then none / `00`, then
/// any other), then most likes (a string in the API), then the service's order. Items
/// without an http(s) URL, or whose URL holds a secret, are skipped.
pub fn best_image(items: &[Value], preferred: &str, redactor: &Redactor) -> Option<String> {
    let lang_rank = |lang: &str| match lang.trim() {
        l if l.eq_ignore_ascii_case(preferred) => 0,
        l if l.eq_ignore_ascii_case("en") => 1,
        "" | "00" => 2,
        _ => 3,
    };
    items
        .iter()
        .filter_map(|item| {
            let url = item.get("url")?.as_str()?.trim();
            let usable =
                reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !usable || redactor.redact(url) != url {
                return None;
            }
            let lang = item.get("lang").and_then(Value::as_str).unwrap_or("");
            let likes = match item.get("likes") {
                Some(Value::String(s)) => s.trim().parse::<u64>().unwrap_or(0),
                Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
                _ => 0,
            };
            Some(((lang_rank(lang), Reverse(likes)), url))
        })
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, url)| url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use serde_json::json;

    fn event(media_item: Value) -> Event {
        Event::new(
            EventName::AfterMediaAdded,
            json!({ "media_item": media_item })
                .as_object()
                .cloned()
                .unwrap(),
        )
    }

    fn image(id: &str, lang: &str, likes: &str) -> Value {
        json!({"id": id, "url": format!("https://assets.fanart.tv/{id}.jpg"), "lang": lang, "likes": likes})
    }

    #[test]
    fn picks_by_language_then_likes_as_numbers() {
        let r = Redactor::new();
        let items = [
            image("ja-popular", "ja", "90"),
            image("textless", "00", "50"),
            image("en-9", "en", "9"),
            image("en-10", "en", "10"),
            image("de-2", "de", "2"),
        ];
        let url = |id: &str| Some(format!("https://assets.fanart.tv/{id}.jpg"));
        // "10" beats "9": likes are compared as numbers, not as strings.
        assert_eq!(best_image(&items, "en", &r), url("en-10"));
        assert_eq!(
            best_image(&items, "de", &r),
            url("de-2"),
            "the preferred language first"
        );
        assert_eq!(best_image(&items, "fr", &r), url("en-10"), "then English");
        assert_eq!(
            best_image(&items[..2], "fr", &r),
            url("textless"),
            "then no language"
        );
        assert_eq!(
            best_image(&items[..1], "fr", &r),
            url("ja-popular"),
            "then any"
        );
        let odd = [
            json!({"url": "https://a/no-likes.jpg", "lang": "en"}),
            json!({"url": "https://a/bad-likes.jpg", "lang": "en", "likes": "many"}),
            json!({"url": "https://a/num-likes.jpg", "lang": "en", "likes": 3}),
            json!({"url": "javascript:alert(1)", "lang": "en", "likes": "99"}),
            json!({"lang": "en", "likes": "99"}),
        ];
        assert_eq!(
            best_image(&odd, "en", &r).as_deref(),
            Some("https://a/num-likes.jpg")
        );
        assert_eq!(
            best_image(&odd[..2], "en", &r).as_deref(),
            Some("https://a/no-likes.jpg"),
            "ties keep the service's order"
        );
        assert_eq!(best_image(&[], "en", &r), None);
        let secret = [
            json!({"url": "https://a/x.jpg?k=k_test", "lang": "en", "likes": "9"}),
            image("ok", "00", "0"),
        ];
        assert_eq!(
            best_image(&secret, "en", &Redactor::new().with("k_test")),
            url("ok")
        );
    }

    #[test]
    fn picks_each_kind_from_its_own_arrays() {
        let r = Redactor::new();
        let movie = json!({
            "movieposter": [image("p", "en", "1")],
            "moviebackground": [image("b", "", "1")],
            "movielogo": [image("sd-logo", "en", "5")],
            "moviethumb": [image("t", "en", "1")],
            "tvposter": [image("wrong", "en", "100")],
        });
        let art = pick(&movie, &Target::Movie("603".into()), "en", &r);
        assert_eq!(
            art.poster.as_deref(),
            Some("https://assets.fanart.tv/p.jpg")
        );
        assert_eq!(
            art.background.as_deref(),
            Some("https://assets.fanart.tv/b.jpg")
        );
        assert_eq!(
            art.logo.as_deref(),
            Some("https://assets.fanart.tv/sd-logo.jpg"),
            "movielogo when no HD logo"
        );
        assert_eq!(art.thumb.as_deref(), Some("https://assets.fanart.tv/t.jpg"));
        let tv = json!({"hdtvlogo": [image("hd", "en", "0")], "clearlogo": [image("sd", "en", "9")], "showbackground": []});
        let art = pick(&tv, &Target::Tv("81189".into()), "en", &r);
        assert_eq!(
            art,
            Art {
                logo: Some("https://assets.fanart.tv/hd.jpg".into()),
                ..Art::default()
            }
        );
    }

    #[test]
    fn targets_come_from_the_ids_the_event_carries() {
        let t = |v: Value| Target::for_event(&event(v));
        assert_eq!(
            t(json!({"type": "movie", "tmdb_id": 603, "imdb_id": "tt0133093"})),
            Some(Target::Movie("603".into()))
        );
        assert_eq!(
            t(json!({"type": "movie", "imdb_id": "tt0133093"})),
            Some(Target::Movie("tt0133093".into()))
        );
        assert_eq!(
            t(json!({"type": "movie", "metadata": {"tmdb_id": "603"}})),
            Some(Target::Movie("603".into()))
        );
        assert_eq!(
            t(json!({"type": "tv_show", "tvdb_id": 81189, "tmdb_id": 1396})),
            Some(Target::Tv("81189".into()))
        );
        assert_eq!(
            t(json!({"type": "series", "metadata": {"external_ids": {"tvdb_id": 81189}}})),
            Some(Target::Tv("81189".into()))
        );
        assert_eq!(
            t(json!({"tvdb_id": "81189"})),
            Some(Target::Tv("81189".into()))
        );
        assert_eq!(
            t(json!({"imdb_id": "tt0133093"})),
            Some(Target::Movie("tt0133093".into()))
        );
        for none in [
            json!({"type": "tv_show", "tmdb_id": 1396}),
            json!({"tmdb_id": 603}),
            json!({"type": "movie", "imdb_id": "tt../../x", "tmdb_id": "6/03"}),
            json!({"type": "movie", "title": "Dune"}),
        ] {
            assert_eq!(t(none.clone()), None, "{none}");
        }
        assert_eq!(Target::Tv("81189".into()).path(), "v3/tv/81189");
    }
}
