//! Fanart.tv: posters, backgrounds, logos and thumbnails for movies and series.
//!
//! Movies are looked up by TMDB (else IMDb) id, series by TheTVDB id; an event without
//! such an id gets an empty patch without a request. A 404 `{"status":"error"}` means
//! fanart.tv has no art for the id, an answer like any other (and cached), not a failure.
//! The API key travels only in the `api-key` header (marked sensitive), never in the URL,
//! and every text that leaves the plugin passes its redactor.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::event::Event;
use crate::http::{self, AddressPolicy, Redactor, Reply, RetryPolicy};
use crate::plugins::enrichment::cache::TtlCache;
use crate::plugins::enrichment::patch::MediaPatch;
use crate::plugins::{
    ConnectionReport, Enrichment, EnrichmentPlugin, Plugin, PluginContext, PluginError, PluginInfo,
};

mod art;
mod config;

pub use art::{best_image, Art, Target};
pub(crate) use config::config_schema;
pub use config::FanartConfig;
use config::{is_header_safe, is_language, MAX_RETRIES, NOT_A_KEY};

/// The movie `test_connection` looks up: TMDB 603, The Matrix, which has art.
const TEST_MOVIE: &str = "603";

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
        let base =
            reqwest::Url::parse(&format!("{}/", config.api_url.trim().trim_end_matches('/')))
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
        // Credentials in the URL go out as `Authorization: Basic`, which a server may echo.
        let mut redactor = Redactor::new();
        redactor.add_url_credentials(&base);
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
            let reply = cx.http.fetch(request, &self.redactor).await?;
            read_reply(&reply, &self.redactor)
        })
        .await?;
        let art = body
            .map(|b| art::pick(&b, target, &self.config.language, &self.redactor))
            .filter(|a| *a != Art::default());
        tracing::debug!(plugin = %cx.instance, path = %target.path(), found = art.is_some(), "looked up fanart");
        Ok(art)
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
        let said = service_text(body.as_ref(), &reply.body)
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
                service_text(body.as_ref(), &reply.body)
                    .map(|t| format!(" (service said: {t})"))
                    .unwrap_or_default()
            )),
        }),
    }
}

/// fanart.tv's own words: its `error message` field, else whatever the body says.
fn service_text(json: Option<&Value>, body: &str) -> Option<String> {
    json.and_then(|b| b.get("error message")?.as_str())
        .and_then(http::service_error_text)
        .or_else(|| http::service_error_text(body))
}

impl Plugin for Fanart {
    fn address_policy(&self) -> AddressPolicy {
        AddressPolicy::from_allow_private(self.config.allow_private_network)
    }

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

    fn plugin(config: FanartConfig) -> Fanart {
        Fanart::new(FanartConfig {
            api_key: Some(SecretString::from("k_test")),
            ..config
        })
        .expect("valid config")
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
            http: http::new_client(http::AddressPolicy::AllowPrivate),
        };
        let ev = event(json!({}));
        assert_send(p.enrich(&cx, &ev));
        assert_send(p.test_connection(&cx));
    }
}
