//! Fanart.tv: posters, backgrounds, logos and thumbnails for movies and series.
//!
//! Movies are looked up by TMDB (else IMDb) id, series by TheTVDB id; an event without
//! such an id gets an empty patch without a request. A 404 `{"status":"error"}` means
//! fanart.tv has no art for the id, an answer like any other (and cached), not a failure.
//! The API key travels only in the `api-key` header (marked sensitive), never in the URL,
//! and every text that leaves the plugin passes its redactor.

use std::cmp::Reverse;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{json, Value};

use crate::event::Event;
use crate::http::{self, Redactor, Reply, RetryPolicy};
use crate::plugins::enrichment::cache::TtlCache;
use crate::plugins::enrichment::patch::{numeric_id, MediaPatch};
use crate::plugins::notification::format::MediaKind;
use crate::plugins::{
    ConnectionReport, Enrichment, EnrichmentPlugin, Plugin, PluginContext, PluginError, PluginInfo,
};

mod config;

pub use config::FanartConfig;
use config::{config_schema, is_header_safe, is_language, MAX_RETRIES, NOT_A_KEY};

/// The movie `test_connection` looks up: TMDB 603, The Matrix, which has art.
const TEST_MOVIE: &str = "603";

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

/// The Fanart.tv enrichment plugin.
#[derive(Debug)]
pub struct Fanart {
    config: FanartConfig,
    base: reqwest::Url,
    /// `api-key` and `client-key`, marked sensitive so no `Debug` shows them.
    headers: HeaderMap,
    retry: RetryPolicy,
    redactor: Redactor,
    /// Lookup path → the art, or `None` for "no art".
    cache: TtlCache<String, Option<Art>>,
}

impl Fanart {
    /// A plugin for a validated config. Fails (`Misconfigured`) without a usable `api_key`,
    /// with a bad `client_key`, `language` or `api_url`; no error quotes a key.
    pub fn new(config: FanartConfig) -> Result<Self, PluginError> {
        let bad = |reason: String| PluginError::Misconfigured {
            status: None,
            reason,
        };
        let base = reqwest::Url::parse(&format!(
            "{}/",
            config.api_url.trim().trim_end_matches('/')
        ))
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or_else(|| {
            bad(
                "fanart `api_url` must be an http(s) URL, e.g. https://webservice.fanart.tv"
                    .to_owned(),
            )
        })?;
        if !is_language(&config.language) {
            return Err(bad(
                "fanart `language` must be two letters, e.g. en".to_owned()
            ));
        }
        let mut redactor = Redactor::new();
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let keys = [
            ("api-key", config.api_key.as_ref()),
            ("client-key", config.client_key.as_ref()),
        ];
        for (name, key) in keys {
            let Some(key) = key
                .map(|k| k.expose_secret().trim())
                .filter(|k| !k.is_empty())
            else {
                continue;
            };
            redactor.add(key);
            let mut value = HeaderValue::from_str(key)
                .ok()
                .filter(|_| is_header_safe(key))
                .ok_or_else(|| bad(format!("fanart `{}` {NOT_A_KEY}", name.replace('-', "_"))))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if !headers.contains_key("api-key") {
            return Err(bad(
                "fanart needs an `api_key`; get a project key at https://fanart.tv/get-an-api-key/"
                    .to_owned(),
            ));
        }
        let retry = RetryPolicy {
            max_attempts: config.retries.min(MAX_RETRIES) + 1,
            base: Duration::from_millis(250),
            max: Duration::from_secs(1),
        };
        let cache = TtlCache::new(Duration::from_secs(config.cache_ttl_secs));
        Ok(Fanart {
            config,
            base,
            headers,
            retry,
            redactor,
            cache,
        })
    }

    /// The same plugin with another retry policy (tests use tiny backoffs).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The same plugin with another cache lifetime (tests use a tiny one).
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache = TtlCache::new(ttl);
        self
    }

    /// GETs `target` and picks its art; `None` for "no art" (404 or nothing usable).
    async fn lookup(
        &self,
        cx: &PluginContext,
        target: &Target,
    ) -> Result<Option<Art>, PluginError> {
        let url = self
            .base
            .join(&target.path())
            .map_err(|e| PluginError::Misconfigured {
                status: None,
                reason: format!("fanart `api_url`: {e}"),
            })?;
        let body = http::retry(&self.retry, |_| async {
            let request = cx.http.get(url.clone()).headers(self.headers.clone());
            let reply = http::fetch(request, &self.redactor).await?;
            read_reply(&reply, &self.redactor)
        })
        .await?;
        let art = body
            .map(|b| self.pick_art(&b, target))
            .filter(|a| *a != Art::default());
        tracing::debug!(plugin = %cx.instance, path = %target.path(), found = art.is_some(), "looked up fanart");
        Ok(art)
    }

    /// The best image of each kind in a fanart.tv answer.
    fn pick_art(&self, body: &Value, target: &Target) -> Art {
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
                best_image(items, &self.config.language, &self.redactor)
            })
        });
        Art {
            poster,
            background,
            logo,
            thumb,
        }
    }
}

/// The answer's JSON, `None` for fanart.tv's "no art" 404, or the failure. A 404 without
/// fanart.tv's error body is a wrong `api_url`; 401 is a bad key.
fn read_reply(reply: &Reply, redactor: &Redactor) -> Result<Option<Value>, PluginError> {
    let body: Option<Value> = serde_json::from_str(&reply.body).ok();
    let service_error = body
        .as_ref()
        .and_then(|b| b.get("status"))
        .is_some_and(|s| s == "error");
    if reply.status == StatusCode::NOT_FOUND && service_error {
        return Ok(None);
    }
    if reply.status == StatusCode::UNAUTHORIZED {
        let said = http::service_error_text(&reply.body)
            .map(|t| format!(" (service said: {})", redactor.redact(&t)))
            .unwrap_or_default();
        return Err(PluginError::Misconfigured {
            status: Some(401),
            reason: format!(
                "401 Unauthorized: fanart.tv refused the api_key (or client_key); check it{said}"
            ),
        });
    }
    http::classify(reply.status, &reply.headers, &reply.body, redactor)?;
    match body {
        Some(b) if b.is_object() && !service_error => Ok(Some(b)),
        _ => Err(PluginError::Rejected {
            status: Some(reply.status.as_u16()),
            reason: redactor.redact(&format!(
                "{} but not fanart.tv's art JSON{}",
                reply.status,
                http::service_error_text(&reply.body)
                    .map(|t| format!(" (service said: {t})"))
                    .unwrap_or_default()
            )),
        }),
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

impl Plugin for Fanart {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: "Fanart.tv",
            description: "Add posters, backgrounds, logos and thumbnails from fanart.tv",
            version: env!("CARGO_PKG_VERSION"),
            config_schema: config_schema(),
        }
    }

    /// Looks up one movie (TMDB 603) with the configured key: proves the key is accepted.
    async fn test_connection(&self, cx: &PluginContext) -> Result<ConnectionReport, PluginError> {
        let art = self
            .lookup(cx, &Target::Movie(TEST_MOVIE.to_owned()))
            .await?;
        let found = if art.is_some() {
            "found its art"
        } else {
            "found no art for it"
        };
        Ok(ConnectionReport {
            detail: format!(
                "fanart.tv accepted the api_key: looked up movie {TEST_MOVIE} (TMDB id) and {found}; nothing was sent anywhere"
            ),
            sent_message: false,
        })
    }
}

impl EnrichmentPlugin for Fanart {
    /// An empty patch without an id to look up or when fanart.tv has no art; else
    /// `media_item.fanart {poster, background, logo, thumb}` (the kinds found), and the
    /// poster as `media_item.poster_url` when the event has none (or `replace_poster`).
    async fn enrich(&self, cx: &PluginContext, event: &Event) -> Result<Enrichment, PluginError> {
        let Some(target) = Target::for_event(event) else {
            return Ok(Enrichment::default());
        };
        let key = target.path();
        let art = match self.cache.get(&key) {
            Some(art) => art,
            None => {
                let art = self.lookup(cx, &target).await?;
                self.cache.insert(key, art.clone());
                art
            }
        };
        let Some(art) = art else {
            return Ok(Enrichment::default());
        };
        let mut patch = MediaPatch::new(event);
        patch.offer("poster_url", json!(art.poster), self.config.replace_poster);
        patch.set("fanart", json!(art));
        Ok(patch.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use secrecy::SecretString;

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

    fn plugin(config: FanartConfig) -> Fanart {
        Fanart::new(FanartConfig {
            api_key: Some(SecretString::from("k_test")),
            ..config
        })
        .expect("valid config")
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
        let p = plugin(FanartConfig::default());
        let movie = json!({
            "movieposter": [image("p", "en", "1")],
            "moviebackground": [image("b", "", "1")],
            "movielogo": [image("sd-logo", "en", "5")],
            "moviethumb": [image("t", "en", "1")],
            "tvposter": [image("wrong", "en", "100")],
        });
        let art = p.pick_art(&movie, &Target::Movie("603".into()));
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
        let art = p.pick_art(&tv, &Target::Tv("81189".into()));
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

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.into(),
        }
    }

    #[test]
    fn replies_are_classified() {
        let r = Redactor::new().with("k_test");
        assert_eq!(
            read_reply(
                &reply(404, r#"{"status":"error","error message":"Not found"}"#),
                &r
            ),
            Ok(None)
        );
        let wrong_url = read_reply(&reply(404, "<html>nope</html>"), &r).unwrap_err();
        assert!(
            matches!(
                wrong_url,
                PluginError::Misconfigured {
                    status: Some(404),
                    ..
                }
            ),
            "{wrong_url:?}"
        );
        let key = read_reply(
            &reply(
                401,
                r#"{"status":"error","error message":"Invalid API key k_test"}"#,
            ),
            &r,
        )
        .unwrap_err();
        assert!(
            matches!(
                key,
                PluginError::Misconfigured {
                    status: Some(401),
                    ..
                }
            ),
            "{key:?}"
        );
        assert!(
            key.to_string().contains("Invalid API key [redacted]"),
            "{key}"
        );
        assert!(read_reply(&reply(503, ""), &r).unwrap_err().is_transient());
        assert!(matches!(
            read_reply(&reply(400, "bad"), &r),
            Err(PluginError::Rejected { .. })
        ));
        assert!(matches!(
            read_reply(&reply(200, r#"{"status":"error"}"#), &r),
            Err(PluginError::Rejected { .. })
        ));
        assert!(matches!(
            read_reply(&reply(200, "<html>"), &r),
            Err(PluginError::Rejected { .. })
        ));
        assert_eq!(
            read_reply(&reply(200, r#"{"name":"x"}"#), &r),
            Ok(Some(json!({"name": "x"})))
        );
    }

    #[test]
    fn new_needs_a_usable_key_and_never_echoes_it() {
        let cases = [
            FanartConfig::default(),
            FanartConfig {
                api_key: Some(SecretString::from("  ")),
                ..FanartConfig::default()
            },
            FanartConfig {
                api_key: Some(SecretString::from("k_CANARY\r\nx")),
                ..FanartConfig::default()
            },
            FanartConfig {
                api_key: Some(SecretString::from("k_CANARY")),
                client_key: Some(SecretString::from("c_CANARY x")),
                ..FanartConfig::default()
            },
            FanartConfig {
                api_key: Some(SecretString::from("k_CANARY")),
                language: "eng".into(),
                ..FanartConfig::default()
            },
            FanartConfig {
                api_key: Some(SecretString::from("k_CANARY")),
                api_url: "webservice.fanart.tv".into(),
                ..FanartConfig::default()
            },
        ];
        for config in cases {
            let err = Fanart::new(config).unwrap_err();
            assert!(matches!(err, PluginError::Misconfigured { .. }), "{err:?}");
            assert!(!format!("{err} {err:?}").contains("CANARY"), "{err:?}");
        }
        let p = plugin(FanartConfig {
            client_key: Some(SecretString::from("c_CANARY")),
            ..FanartConfig::default()
        });
        let shown = format!("{p:?}");
        assert!(
            !shown.contains("k_test") && !shown.contains("c_CANARY"),
            "{shown}"
        );
        assert_eq!(p.base.as_str(), "https://webservice.fanart.tv/");
        assert_eq!(p.info().name, "Fanart.tv");
    }

    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let p = plugin(FanartConfig::default());
        let cx = PluginContext {
            instance: "fanart".into(),
            http: http::new_client(),
        };
        let ev = event(json!({}));
        assert_send(p.enrich(&cx, &ev));
        assert_send(p.test_connection(&cx));
    }
}
