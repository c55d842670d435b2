//! AniList: cover, banner, description, genres and score for anime, from AniList's GraphQL API.
//!
//! Only anime is looked up (see [`rank::is_anime`]); anything else gets an empty patch
//! without a request. A search returns several entries with similar titles, so they are
//! ranked ([`rank::best`]) instead of taking the first. GraphQL reports failures in an
//! `errors` list that can come with HTTP 200, so every answer is checked for one.

use std::time::Duration;

use serde_json::{json, Value};

use crate::event::Event;
use crate::http::{self, AddressPolicy, Redactor, Reply, RetryPolicy};
use crate::plugins::enrichment::cache::TtlCache;
use crate::plugins::{
    ConnectionReport, Enrichment, EnrichmentPlugin, Plugin, PluginContext, PluginError, PluginInfo,
};

mod config;
pub mod media;
pub mod rank;

pub(crate) use config::config_schema;
pub use config::AniListConfig;
use config::{MAX_CANDIDATES, MAX_RETRIES};
use media::Media;
use rank::Lookup;

/// A chosen entry and how sure the ranking was (1.0 for a lookup by id).
#[derive(Debug, Clone)]
struct Found {
    media: Media,
    confidence: f64,
}

/// The AniList enrichment plugin.
#[derive(Debug)]
pub struct AniList {
    config: AniListConfig,
    api_url: reqwest::Url,
    retry: RetryPolicy,
    redactor: Redactor,
    /// Lookup key → the match, or `None` for "no anime close enough".
    cache: TtlCache<String, Option<Found>>,
}

impl AniList {
    /// A plugin for a validated config. Fails (`Misconfigured`) only on an `api_url` that
    /// is not an http(s) URL.
    pub fn new(config: AniListConfig) -> Result<Self, PluginError> {
        let api_url = reqwest::Url::parse(config.api_url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| PluginError::Misconfigured {
                status: None,
                reason: "anilist `api_url` must be an http(s) URL, e.g. https://graphql.anilist.co"
                    .to_owned(),
            })?;
        // Short: every notification of the event waits for the enrichers, and the
        // supervisor's timeout bounds the call anyway.
        let retry = RetryPolicy {
            max_attempts: config.retries.min(MAX_RETRIES) + 1,
            base: Duration::from_millis(250),
            max: Duration::from_secs(1),
        };
        let cache = TtlCache::new(Duration::from_secs(config.cache_ttl_secs));
        // Credentials in the URL go out as `Authorization: Basic`, which a server may echo.
        let mut redactor = Redactor::new();
        redactor.add_url_credentials(&api_url);
        Ok(AniList {
            config,
            api_url,
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

    /// Asks AniList what `lookup` names; `None` when nothing is close enough.
    async fn find(
        &self,
        cx: &PluginContext,
        lookup: &Lookup,
    ) -> Result<Option<Found>, PluginError> {
        match lookup {
            Lookup::ById(id) => {
                let data = self
                    .query(cx, media::BY_ID_QUERY, json!({ "id": id }))
                    .await?;
                Ok(media::page_media(&data)
                    .into_iter()
                    .next()
                    .map(|media| Found {
                        media,
                        confidence: 1.0,
                    }))
            }
            Lookup::Search(wanted) => {
                let per_page = self.config.candidates.clamp(1, MAX_CANDIDATES);
                let variables = json!({ "search": wanted.search, "perPage": per_page });
                let data = self.query(cx, media::SEARCH_QUERY, variables).await?;
                let candidates = media::page_media(&data);
                let count = candidates.len();
                let best = rank::best(wanted, candidates, self.config.min_confidence);
                tracing::debug!(
                    plugin = %cx.instance,
                    candidates = count,
                    anilist_id = best.as_ref().map(|(m, _)| m.id),
                    confidence = best.as_ref().map(|(_, s)| *s),
                    "ranked anilist search results"
                );
                Ok(best.map(|(media, confidence)| Found { media, confidence }))
            }
        }
    }

    /// POSTs one GraphQL query and returns its `data`, retrying network errors and 5xx.
    async fn query(
        &self,
        cx: &PluginContext,
        query: &str,
        variables: Value,
    ) -> Result<Value, PluginError> {
        let body = json!({ "query": query, "variables": variables });
        http::retry(&self.retry, |_| async {
            let request = cx
                .http
                .post(self.api_url.clone())
                .header(reqwest::header::ACCEPT, "application/json")
                .json(&body);
            let reply = cx.http.fetch(request, &self.redactor).await?;
            read_reply(&reply, &self.redactor)
        })
        .await
    }

    /// `scheme://host[:port]` of the endpoint, for reports.
    fn endpoint_label(&self) -> String {
        let url = &self.api_url;
        let host = url.host_str().unwrap_or("?");
        match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        }
    }
}

/// An answer's `data`, or the failure it reports. A 429 is a rate limit whatever the body;
/// an `errors` list is a failure even with HTTP 200; other non-2xx go through
/// [`http::classify`]; a 2xx without a `data` object is not AniList talking.
fn read_reply(reply: &Reply, redactor: &Redactor) -> Result<Value, PluginError> {
    if reply.status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        http::classify(reply.status, &reply.headers, &reply.body, redactor)?;
    }
    let body: Option<Value> = serde_json::from_str(&reply.body).ok();
    let errors = body
        .as_ref()
        .and_then(|b| b.get("errors"))
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty());
    if let Some(errors) = errors {
        return Err(graphql_error(reply, errors, redactor));
    }
    http::classify(reply.status, &reply.headers, &reply.body, redactor)?;
    match body.and_then(|mut b| b.get_mut("data").map(Value::take)) {
        Some(data @ Value::Object(_)) => Ok(data),
        _ => Err(PluginError::Transient {
            status: Some(reply.status.as_u16()),
            reason: format!(
                "{} without a GraphQL `data` object; is api_url AniList's GraphQL endpoint?",
                reply.status
            ),
        }),
    }
}

/// Classifies a GraphQL `errors` list by the status it carries (each error has one on
/// AniList), else by the HTTP status: 429 rate limited, 5xx transient, 401/403
/// misconfigured, anything else (a bad query, validation) rejected.
fn graphql_error(reply: &Reply, errors: &[Value], redactor: &Redactor) -> PluginError {
    let status = errors
        .iter()
        .find_map(|e| e.get("status")?.as_u64())
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(reply.status.as_u16());
    let said: Vec<&str> = errors
        .iter()
        .filter_map(|e| e.get("message")?.as_str())
        .collect();
    // Whitespace collapsed and shortened like any service text.
    let said =
        http::service_error_text(&said.join("; ")).unwrap_or_else(|| "no message".to_owned());
    let reason = redactor.redact(&format!(
        "AniList answered {} with GraphQL errors (status {status}): {said}",
        reply.status.as_u16()
    ));
    let status_opt = Some(status);
    match status {
        429 => {
            let retry_after = reply
                .headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| http::parse_retry_after(v, std::time::SystemTime::now()))
                .map(|d| d.min(http::MAX_RETRY_AFTER));
            PluginError::RateLimited { retry_after }
        }
        500..=599 => PluginError::Transient {
            status: status_opt,
            reason,
        },
        401 | 403 => PluginError::Misconfigured {
            status: status_opt,
            reason,
        },
        _ => PluginError::Rejected {
            status: status_opt,
            reason,
        },
    }
}

impl Plugin for AniList {
    fn address_policy(&self) -> AddressPolicy {
        AddressPolicy::from_allow_private(self.config.allow_private_network)
    }

    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: "AniList",
            description: "Enrich anime metadata using AniList GraphQL API",
            version: env!("CARGO_PKG_VERSION"),
            config_schema: config_schema(),
        }
    }

    /// Looks up one known entry (`Media(id: 1) { id }`): proves the endpoint answers
    /// GraphQL; AniList's public data needs no key, so a search needs nothing more.
    async fn test_connection(&self, cx: &PluginContext) -> Result<ConnectionReport, PluginError> {
        let endpoint = self.endpoint_label();
        let data = self.query(cx, media::PING_QUERY, json!({})).await?;
        if data.pointer("/Media/id").and_then(Value::as_u64) != Some(1) {
            return Err(PluginError::Misconfigured {
                status: None,
                reason: format!(
                    "{endpoint} did not answer a Media(id: 1) lookup like AniList's GraphQL API; check api_url"
                ),
            });
        }
        Ok(ConnectionReport {
            detail: format!(
                "AniList GraphQL API at {endpoint} answered a lookup of entry 1; public data needs no key, \
                 so searches will work the same way (nothing was sent anywhere)"
            ),
            sent_message: false,
        })
    }
}

impl EnrichmentPlugin for AniList {
    /// An empty patch for anything but anime, or when no entry is close enough; else the
    /// match's fields (see [`media::patch`]). Answers are cached, "no match" included.
    async fn enrich(&self, cx: &PluginContext, event: &Event) -> Result<Enrichment, PluginError> {
        let Some(lookup) = Lookup::for_event(event) else {
            return Ok(Enrichment::default());
        };
        let key = lookup.cache_key();
        let found = match self.cache.get(&key) {
            Some(found) => found,
            None => {
                let found = self.find(cx, &lookup).await?;
                self.cache.insert(key, found.clone());
                found
            }
        };
        Ok(match found {
            Some(f) => media::patch(event, &f.media, f.confidence, self.config.prefer_over_tmdb),
            None => Enrichment::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use reqwest::header::HeaderMap;
    use reqwest::StatusCode;

    fn reply(status: u16, body: Value, headers: &[(&'static str, &str)]) -> Reply {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: body.to_string(),
        }
    }

    #[test]
    fn errors_in_the_body_fail_even_with_200() {
        let r = Redactor::new();
        let bad_query = reply(
            200,
            json!({"data": null, "errors": [{"message": "Unknown argument \"serch\"", "status": 400}]}),
            &[],
        );
        let err = read_reply(&bad_query, &r).unwrap_err();
        assert!(
            matches!(
                err,
                PluginError::Rejected {
                    status: Some(400),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("Unknown argument"), "{err}");

        let down = reply(
            200,
            json!({"errors": [{"message": "Internal Server Error", "status": 500}]}),
            &[],
        );
        assert!(read_reply(&down, &r).unwrap_err().is_transient());

        let limited = reply(
            200,
            json!({"errors": [{"message": "Too Many Requests.", "status": 429}]}),
            &[("retry-after", "60")],
        );
        assert_eq!(
            read_reply(&limited, &r),
            Err(PluginError::RateLimited {
                retry_after: Some(Duration::from_secs(60))
            })
        );
        let no_status = reply(
            200,
            json!({"errors": [{"message": "x"}], "data": {"Page": {}}}),
            &[],
        );
        assert!(matches!(
            read_reply(&no_status, &r),
            Err(PluginError::Rejected {
                status: Some(200),
                ..
            })
        ));
    }

    #[test]
    fn http_statuses_and_odd_answers_are_classified() {
        let r = Redactor::new();
        let limited = reply(
            429,
            json!({"errors": [{"message": "Too Many Requests.", "status": 429}]}),
            &[("retry-after", "30")],
        );
        assert_eq!(
            read_reply(&limited, &r),
            Err(PluginError::RateLimited {
                retry_after: Some(Duration::from_secs(30))
            })
        );
        let gateway = reply(502, json!("bad gateway"), &[]);
        assert!(read_reply(&gateway, &r).unwrap_err().is_transient());
        let html = Reply {
            body: "<html>hi</html>".into(),
            ..reply(200, json!(null), &[])
        };
        assert!(read_reply(&html, &r).unwrap_err().is_transient());
        let ok = reply(200, json!({"data": {"Page": {"media": []}}}), &[]);
        assert_eq!(read_reply(&ok, &r), Ok(json!({"Page": {"media": []}})));
    }

    #[test]
    fn new_refuses_a_bad_api_url_and_caps_retries() {
        for url in ["graphql.anilist.co", "ftp://x", ""] {
            let config = AniListConfig {
                api_url: url.into(),
                ..AniListConfig::default()
            };
            assert!(matches!(
                AniList::new(config),
                Err(PluginError::Misconfigured { .. })
            ));
        }
        let plugin = AniList::new(AniListConfig {
            retries: 99,
            ..AniListConfig::default()
        })
        .unwrap();
        assert_eq!(plugin.retry.max_attempts, MAX_RETRIES + 1);
        assert_eq!(plugin.endpoint_label(), "https://graphql.anilist.co");
        assert_eq!(plugin.info().name, "AniList");
    }

    #[tokio::test]
    async fn non_anime_gets_an_empty_patch_without_a_request() {
        // An unroutable endpoint: any request would fail the call.
        let plugin = AniList::new(AniListConfig {
            api_url: "http://127.0.0.1:9".into(),
            ..AniListConfig::default()
        })
        .unwrap();
        let cx = PluginContext {
            instance: "anilist".into(),
            http: http::new_client(http::AddressPolicy::AllowPrivate),
        };
        let dune = Event::new(
            EventName::AfterMediaAdded,
            json!({"media_item": {"title": "Dune", "genres": ["Science Fiction"]}})
                .as_object()
                .cloned()
                .unwrap(),
        );
        assert_eq!(plugin.enrich(&cx, &dune).await, Ok(Enrichment::default()));
        assert!(plugin.cache.is_empty());
    }

    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let plugin = AniList::new(AniListConfig::default()).unwrap();
        let cx = PluginContext {
            instance: "anilist".into(),
            http: http::new_client(http::AddressPolicy::AllowPrivate),
        };
        let ev = Event::new(EventName::AfterMediaAdded, Default::default());
        assert_send(plugin.enrich(&cx, &ev));
        assert_send(plugin.test_connection(&cx));
    }
}
