//! `AniListConfig`: the AniList settings, their defaults, pure validation and the schema shown to users.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Problems;
use crate::plugins::registry::CommonSettings;

/// The most retries a config may ask for: enrichment holds up every notification of the
/// event, so a long retry burst costs more than a missing cover.
pub(super) const MAX_RETRIES: u32 = 3;
/// AniList's own page size limit.
pub(super) const MAX_CANDIDATES: u32 = 50;

/// `type: anilist` settings (the seed's `prefer_over_tmdb`, plus what a search needs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AniListConfig {
    /// Let AniList's title, description, cover, banner, genres and score replace the
    /// event's (TMDB's) values; when false (the default) they only fill gaps.
    #[serde(default)]
    pub prefer_over_tmdb: bool,
    /// GraphQL endpoint (default `https://graphql.anilist.co`).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// How long an answer, "no match" included, is reused for the same title, in seconds
    /// (default 86400, one day; 0 turns the cache off).
    #[serde(default = "default_cache_ttl_secs")]
    pub cache_ttl_secs: u64,
    /// How many search results are fetched and ranked (default 10, 1..50).
    #[serde(default = "default_candidates")]
    pub candidates: u32,
    /// The lowest ranking score, 0..1, a result needs to be used (default 0.7); below it the
    /// event is left alone rather than decorated with the wrong show.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f64,
    /// Retries after a network error or 5xx (default 1, at most 3); never after 4xx or 429.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The instance's common `allow_private_network` setting, copied here when the config
    /// is loaded (it is written beside `enabled`, not among this type's own fields): lets
    /// the plugin's HTTP client reach loopback, private and CGNAT addresses.
    #[serde(skip)]
    pub allow_private_network: bool,
}

fn default_api_url() -> String {
    "https://graphql.anilist.co".to_owned()
}

fn default_cache_ttl_secs() -> u64 {
    24 * 3600
}

fn default_candidates() -> u32 {
    10
}

fn default_min_confidence() -> f64 {
    0.7
}

fn default_retries() -> u32 {
    1
}

impl Default for AniListConfig {
    fn default() -> Self {
        AniListConfig {
            prefer_over_tmdb: false,
            api_url: default_api_url(),
            cache_ttl_secs: default_cache_ttl_secs(),
            candidates: default_candidates(),
            min_confidence: default_min_confidence(),
            retries: default_retries(),
            allow_private_network: false,
        }
    }
}

impl AniListConfig {
    /// Pure checks of the AniList fields.
    pub fn validate(&self, path: &str, common: &CommonSettings, problems: &mut Problems) {
        crate::config::validate::check_url(
            problems,
            &format!("{path}.api_url"),
            &self.api_url,
            common.allow_insecure_http,
        );
        if !(1..=MAX_CANDIDATES).contains(&self.candidates) {
            problems.push(
                format!("{path}.candidates"),
                format!(
                    "must be between 1 and {MAX_CANDIDATES} (AniList's page size), got {}",
                    self.candidates
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.min_confidence) {
            problems.push(
                format!("{path}.min_confidence"),
                format!(
                    "must be between 0 and 1, got {}; 0.7 accepts a close title with the right year or format",
                    self.min_confidence
                ),
            );
        }
        if self.retries > MAX_RETRIES {
            problems.push(
                format!("{path}.retries"),
                format!(
                    "must be at most {MAX_RETRIES}, got {}; enrichment delays every notification of the event",
                    self.retries
                ),
            );
        }
    }
}

/// The config's JSON schema, for the API and docs.
/// The config schema: field name → type, default and meaning.
pub(crate) fn config_schema() -> Value {
    json!({
        "type": "object",
        "required": [],
        "properties": {
            "prefer_over_tmdb": {"type": "boolean", "default": false, "description": "AniList's title, description, cover, banner, genres and score replace the event's values instead of only filling gaps"},
            "api_url": {"type": "string", "default": "https://graphql.anilist.co", "description": "GraphQL endpoint; http:// needs allow_insecure_http"},
            "cache_ttl_secs": {"type": "integer", "minimum": 0, "default": 86400, "description": "seconds an answer (no match included) is reused; 0 turns the cache off"},
            "candidates": {"type": "integer", "minimum": 1, "maximum": MAX_CANDIDATES, "default": 10, "description": "search results fetched and ranked"},
            "min_confidence": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.7, "description": "lowest ranking score a result needs to be used"},
            "retries": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES, "default": 1, "description": "retries after network errors and 5xx"},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(insecure: bool) -> CommonSettings {
        CommonSettings {
            enabled: true,
            events: vec![],
            allow_insecure_http: insecure,
            allow_private_network: false,
            timeout: None,
            rate_limit: None,
            max_in_flight: None,
            templates: None,
            digest: None,
            quiet_hours: None,
        }
    }

    fn problems(yaml: &str, insecure: bool) -> Vec<String> {
        let config: AniListConfig = serde_yaml::from_str(yaml).expect("parses");
        let mut p = Problems::default();
        config.validate("plugins.anilist", &common(insecure), &mut p);
        p.into_vec()
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn seed_config_loads_with_its_defaults() {
        let config: AniListConfig = serde_yaml::from_str("prefer_over_tmdb: false").unwrap();
        assert!(!config.prefer_over_tmdb);
        assert_eq!(config.api_url, "https://graphql.anilist.co");
        assert_eq!(
            (config.cache_ttl_secs, config.candidates, config.retries),
            (86400, 10, 1)
        );
        assert!(problems("{}", false).is_empty());
    }

    #[test]
    fn rejects_unknown_field() {
        let err = serde_yaml::from_str::<AniListConfig>("prefer_over_tmbd: true").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `prefer_over_tmbd`"),
            "{err}"
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let got = problems(
            "api_url: http://127.0.0.1:9\ncandidates: 0\nmin_confidence: 1.5\nretries: 9",
            false,
        );
        let expect = [
            "plugins.anilist.api_url: uses http://",
            "plugins.anilist.candidates",
            "plugins.anilist.min_confidence",
            "plugins.anilist.retries",
        ];
        assert_eq!(got.len(), expect.len(), "{got:#?}");
        for e in expect {
            assert!(
                got.iter().any(|g| g.starts_with(e)),
                "missing {e}: {got:#?}"
            );
        }
        assert!(problems("api_url: http://127.0.0.1:9", true).is_empty());
    }

    #[test]
    fn schema_lists_every_field() {
        let yaml = "prefer_over_tmdb: true\napi_url: https://a\ncache_ttl_secs: 1\ncandidates: 2\n\
                    min_confidence: 0.5\nretries: 0\n";
        serde_yaml::from_str::<AniListConfig>(yaml).expect("every listed field exists");
        let fields: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        let schema = config_schema();
        let props = schema["properties"].as_object().unwrap();
        assert_eq!(props.len(), fields.len());
        for key in fields.keys() {
            assert!(props.contains_key(key.as_str().unwrap()), "{key:?}");
        }
    }
}
