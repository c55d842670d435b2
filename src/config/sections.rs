//! The `server`, `hooks` and `supervision` sections: as written (every field optional,
//! unknown fields rejected), then checked and turned into their typed configs.
//!
//! The raw structs use the file's units (`_ms`, `_secs`, `_mb`, `_kb`); the typed
//! configs use `Duration` and bytes, so no other module converts units.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

use super::{
    ApiToken, HooksConfig, ListenAddr, MetricsConfig, Problems, ServerConfig, SupervisionConfig,
    MIN_TOKEN_CHARS,
};
use crate::event::EventName;

/// `server:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Kept as a YAML value so `listen: 8787` gets the host:port advice, not a type error.
    #[serde(default)]
    listen: Option<Value>,
    #[serde(default)]
    max_body_kb: Option<u64>,
    #[serde(default)]
    request_timeout_secs: Option<u64>,
    #[serde(default)]
    max_connections: Option<u64>,
    #[serde(default)]
    api_token: Option<String>,
}

/// `hooks:` as written. Numbers are read signed, so `-5` and `0` get the same
/// "must be at least" message instead of a type error for one and a range error for the other.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHooks {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    directory: Option<String>,
    #[serde(default)]
    timeout_ms: Option<i64>,
    #[serde(default)]
    memory_limit_mb: Option<i64>,
    #[serde(default)]
    max_input_kb: Option<i64>,
    /// Kept as a YAML value so each bad entry is reported at its own index.
    #[serde(default)]
    fail_closed: Option<Value>,
    #[serde(default)]
    workers: Option<i64>,
    #[serde(default)]
    quarantine_after: Option<i64>,
    #[serde(default)]
    watch: Option<bool>,
}

/// More hook VMs than this is a typo, not a plan: each is a thread and a VM of its own.
const MAX_WORKERS: i64 = 64;

/// `metrics:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    public: Option<bool>,
}

impl RawMetrics {
    /// Defaults for what is absent (both fields are plain booleans, checked by serde).
    pub fn validate(self) -> MetricsConfig {
        let d = MetricsConfig::default();
        MetricsConfig {
            enabled: self.enabled.unwrap_or(d.enabled),
            public: self.public.unwrap_or(d.public),
        }
    }
}

/// `supervision:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSupervision {
    #[serde(default)]
    restart_backoff_base_ms: Option<u64>,
    #[serde(default)]
    restart_backoff_max_ms: Option<u64>,
    #[serde(default)]
    restart_reset_after_secs: Option<u64>,
    #[serde(default)]
    max_restarts: Option<u32>,
    #[serde(default)]
    restart_window_secs: Option<u64>,
    #[serde(default)]
    open_cooldown_secs: Option<u64>,
    #[serde(default)]
    open_cooldown_max_secs: Option<u64>,
    #[serde(default)]
    breaker_window: Option<u32>,
    #[serde(default)]
    breaker_min_calls: Option<u32>,
    #[serde(default)]
    breaker_failure_rate: Option<f64>,
    #[serde(default)]
    delivery_timeout_ms: Option<u64>,
    #[serde(default)]
    max_in_flight: Option<u32>,
    #[serde(default)]
    backlog: Option<u32>,
    #[serde(default)]
    backlog_max_age_secs: Option<u64>,
    #[serde(default)]
    shutdown_grace_ms: Option<u64>,
}

impl RawServer {
    /// Check and convert; problems go to `problems`, defaults fill what is absent or bad.
    pub fn validate(self, problems: &mut Problems) -> ServerConfig {
        let mut out = ServerConfig::default();
        match self.listen {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => match s.parse::<ListenAddr>() {
                Ok(addr) => out.listen = addr,
                Err(e) => problems.push("server.listen", e.to_string()),
            },
            Some(Value::Number(n)) => problems.push(
                "server.listen",
                format!("`{n}` is only a port; write host:port, e.g. 127.0.0.1:{n}"),
            ),
            Some(_) => problems.push(
                "server.listen",
                "is not an address; write host:port, e.g. 127.0.0.1:8787 or localhost:8787",
            ),
        }
        if let Some(kb) = at_least(problems, "server.max_body_kb", self.max_body_kb, 1) {
            match bytes(kb, 1024) {
                Some(b) => out.max_body_bytes = b,
                None => problems.push("server.max_body_kb", format!("{kb} is too large")),
            }
        }
        let timeout = at_least(
            problems,
            "server.request_timeout_secs",
            self.request_timeout_secs,
            1,
        );
        if let Some(secs) = timeout {
            out.request_timeout = Duration::from_secs(secs);
        }
        let max = at_least(problems, "server.max_connections", self.max_connections, 1);
        if let Some(n) = max {
            out.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
        }
        let token_given = self.api_token.is_some();
        if let Some(text) = self.api_token {
            match ApiToken::new(&text) {
                Ok(token) => out.api_token = Some(token),
                Err(e) => problems.push("server.api_token", e.to_string()),
            }
        }
        if !token_given && !out.listen.is_loopback() {
            problems.push(
                "server.listen",
                format!(
                    "{} can be reached from other machines, so the API needs a token: set \
                     `server.api_token: ${{MYDIA_PLUGINS_TOKEN}}` (at least {MIN_TOKEN_CHARS} \
                     characters, e.g. from `openssl rand -hex 32`), or listen on 127.0.0.1",
                    out.listen
                ),
            );
        }
        out
    }
}

impl RawHooks {
    /// Check and convert; a relative `directory` resolves against the config file's
    /// directory when there is a file (else it stays relative to the working directory).
    pub fn validate(self, source: Option<&Path>, problems: &mut Problems) -> HooksConfig {
        let mut out = HooksConfig::default();
        if let Some(enabled) = self.enabled {
            out.enabled = enabled;
        }
        if let Some(watch) = self.watch {
            out.watch = watch;
        }
        if let Some(dir) = self.directory {
            if dir.trim().is_empty() {
                problems.push("hooks.directory", "is empty; write a directory, e.g. hooks");
            } else {
                out.directory = PathBuf::from(dir);
                out.directory_explicit = true;
            }
        }
        if out.directory.is_relative() {
            if let Some(base) = source.and_then(Path::parent) {
                out.directory = base.join(&out.directory);
            }
        }
        if let Some(ms) = at_least(problems, "hooks.timeout_ms", self.timeout_ms, 1) {
            out.timeout = Duration::from_millis(ms.unsigned_abs());
        }
        let p = problems;
        if let Some(b) = sized(
            p,
            "hooks.memory_limit_mb",
            self.memory_limit_mb,
            1024 * 1024,
        ) {
            out.memory_limit_bytes = b;
        }
        if let Some(b) = sized(p, "hooks.max_input_kb", self.max_input_kb, 1024) {
            out.max_input_bytes = b;
        }
        if let Some(n) = at_least(p, "hooks.workers", self.workers, 1) {
            if n > MAX_WORKERS {
                p.push(
                    "hooks.workers",
                    format!("must be at most {MAX_WORKERS}, got {n}; the number of cores is a good start"),
                );
            } else {
                out.workers = n as usize;
            }
        }
        if let Some(n) = at_least(p, "hooks.quarantine_after", self.quarantine_after, 0) {
            out.quarantine_after = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(list) = self.fail_closed {
            if let Some(events) = event_names(p, "hooks.fail_closed", list) {
                out.fail_closed = events;
            }
        }
        out
    }
}

/// A size in `unit`s, at least 1, as bytes.
fn sized(problems: &mut Problems, path: &str, value: Option<i64>, unit: u64) -> Option<usize> {
    let n = at_least(problems, path, value, 1)?;
    let b = bytes(n.unsigned_abs(), unit);
    if b.is_none() {
        problems.push(path, format!("{n} is too large"));
    }
    b
}

/// A list of event names (canonical or alias), each bad entry reported at its index.
fn event_names(problems: &mut Problems, path: &str, list: Value) -> Option<Vec<EventName>> {
    let Value::Sequence(items) = list else {
        problems.push(
            path,
            "must be a list of event names, e.g. `[before_download_initiated]` (`[]` for none)",
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("{path}[{i}]");
        let parsed = match &item {
            Value::String(s) => s.parse::<EventName>().map_err(|e| e.to_string()),
            _ => Err("must be an event name, e.g. before_download_initiated".to_owned()),
        };
        match parsed {
            Ok(e) if !out.contains(&e) => out.push(e),
            Ok(_) => {}
            Err(message) => {
                problems.push(at, message);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

impl RawSupervision {
    /// Check ranges and the relations between fields (a cap at least its base); fields
    /// that no longer do anything are `warnings`.
    pub fn validate(self, problems: &mut Problems, warnings: &mut Problems) -> SupervisionConfig {
        let mut out = SupervisionConfig::default();
        let raw = self;
        let (ms, secs, same) = (
            Duration::from_millis,
            Duration::from_secs,
            std::convert::identity,
        );
        // `field` must be at least 1 when written; it lands in `slot` converted by `unit`.
        macro_rules! positive {
            ($field:ident => $slot:expr, $unit:expr) => {
                let path = concat!("supervision.", stringify!($field));
                if let Some(v) = at_least(problems, path, raw.$field, 1) {
                    $slot = $unit(v);
                }
            };
        }
        positive!(restart_backoff_base_ms => out.restart_backoff_base, ms);
        positive!(restart_backoff_max_ms => out.restart_backoff_max, ms);
        positive!(restart_reset_after_secs => out.restart_reset_after, secs);
        positive!(restart_window_secs => out.restart_window, secs);
        positive!(open_cooldown_secs => out.open_cooldown, secs);
        positive!(open_cooldown_max_secs => out.open_cooldown_max, secs);
        positive!(breaker_window => out.breaker_window, same);
        positive!(breaker_min_calls => out.breaker_min_calls, same);
        positive!(delivery_timeout_ms => out.delivery_timeout, ms);
        positive!(max_in_flight => out.max_in_flight, same);
        positive!(backlog_max_age_secs => out.backlog_max_age, secs);
        // Zero is meaningful for these: trip on the first restart, wait for nothing.
        set(&mut out.max_restarts, raw.max_restarts);
        if raw.backlog.is_some() {
            warnings.push(
                "supervision.backlog",
                "no longer limits anything and can be removed: waiting deliveries live in the delivery store (see storage.max_pending)",
            );
        }
        set(&mut out.shutdown_grace, raw.shutdown_grace_ms.map(ms));
        let p = problems;
        if let Some(rate) = raw.breaker_failure_rate {
            if rate > 0.0 && rate <= 1.0 {
                out.breaker_failure_rate = rate;
            } else {
                p.push(
                    "supervision.breaker_failure_rate",
                    format!("must be more than 0 and at most 1 (e.g. 0.5 for half the calls), got {rate}"),
                );
            }
        }
        // Relations, judged on the values in effect (written or default).
        if out.restart_backoff_max < out.restart_backoff_base {
            p.push(
                "supervision.restart_backoff_max_ms",
                format!(
                    "must be at least restart_backoff_base_ms ({} ms)",
                    out.restart_backoff_base.as_millis()
                ),
            );
        }
        if out.open_cooldown_max < out.open_cooldown {
            p.push(
                "supervision.open_cooldown_max_secs",
                format!(
                    "must be at least open_cooldown_secs ({} s)",
                    out.open_cooldown.as_secs()
                ),
            );
        }
        if out.breaker_min_calls > out.breaker_window {
            p.push(
                "supervision.breaker_min_calls",
                format!(
                    "must be at most breaker_window ({}): the breaker could never judge",
                    out.breaker_window
                ),
            );
        }
        out
    }
}

/// `value` when it is at least `min`; otherwise a problem at `path` and `None`.
fn at_least<T: PartialOrd + std::fmt::Display + Copy>(
    problems: &mut Problems,
    path: &str,
    value: Option<T>,
    min: T,
) -> Option<T> {
    let v = value?;
    if v < min {
        problems.push(path, format!("must be at least {min}, got {v}"));
        return None;
    }
    Some(v)
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn bytes(n: u64, unit: u64) -> Option<usize> {
    usize::try_from(n.checked_mul(unit)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn messages(p: Problems) -> Vec<(String, String)> {
        p.into_vec()
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect()
    }

    #[test]
    fn absent_fields_keep_the_design_defaults() {
        let mut p = Problems::default();
        assert_eq!(
            RawServer::default().validate(&mut p),
            ServerConfig::default()
        );
        assert_eq!(
            RawHooks::default().validate(None, &mut p),
            HooksConfig::default()
        );
        assert_eq!(
            RawSupervision::default().validate(&mut p, &mut Problems::default()),
            SupervisionConfig::default()
        );
        assert!(p.is_empty());
        let d = SupervisionConfig::default();
        assert_eq!(d.restart_backoff_base, Duration::from_millis(500));
        assert_eq!(d.open_cooldown, Duration::from_secs(30));
        assert_eq!(d.open_cooldown_max, Duration::from_secs(600));
        assert_eq!(d.breaker_failure_rate, 0.5);
    }

    #[test]
    fn units_are_converted() {
        let mut p = Problems::default();
        let h = raw::<RawHooks>("timeout_ms: 250\nmemory_limit_mb: 2\nmax_input_kb: 3")
            .validate(None, &mut p);
        assert_eq!(h.timeout, Duration::from_millis(250));
        assert_eq!(h.memory_limit_bytes, 2 * 1024 * 1024);
        assert_eq!(h.max_input_bytes, 3 * 1024);
        let s = raw::<RawSupervision>("restart_window_secs: 30\nshutdown_grace_ms: 0")
            .validate(&mut p, &mut Problems::default());
        assert_eq!(s.restart_window, Duration::from_secs(30));
        assert_eq!(s.shutdown_grace, Duration::ZERO);
        assert!(p.is_empty());
    }

    #[test]
    fn hooks_directory_resolves_against_the_config_file() {
        let mut p = Problems::default();
        let h = RawHooks::default().validate(Some(Path::new("/etc/mydia/config.yaml")), &mut p);
        assert_eq!(h.directory, PathBuf::from("/etc/mydia/hooks"));
        let h = raw::<RawHooks>("directory: /srv/hooks")
            .validate(Some(Path::new("/etc/x.yaml")), &mut p);
        assert_eq!(h.directory, PathBuf::from("/srv/hooks"));
        let h = raw::<RawHooks>("directory: lua").validate(None, &mut p);
        assert_eq!(h.directory, PathBuf::from("lua"));
    }

    #[test]
    fn listening_beyond_loopback_needs_a_usable_token() {
        for listen in [
            "0.0.0.0:8787",
            "[::]:8787",
            "192.168.1.5:8787",
            "media-box:8787",
        ] {
            let mut p = Problems::default();
            let s = raw::<RawServer>(&format!("listen: '{listen}'")).validate(&mut p);
            assert!(s.api_token.is_none());
            let got: Vec<_> = p
                .items()
                .iter()
                .map(|x| (x.path.clone(), x.message.clone()))
                .collect();
            assert!(
                got.len() == 1
                    && got[0].0 == "server.listen"
                    && got[0]
                        .1
                        .contains("server.api_token: ${MYDIA_PLUGINS_TOKEN}")
                    && got[0].1.contains("or listen on 127.0.0.1"),
                "{listen}: {got:?}"
            );
        }
        for listen in [
            "127.0.0.1:8787",
            "127.0.0.2:1",
            "[::1]:8787",
            "LocalHost:8787",
        ] {
            let mut p = Problems::default();
            raw::<RawServer>(&format!("listen: '{listen}'")).validate(&mut p);
            assert!(p.is_empty(), "{listen}: {p:?}");
        }
        let mut p = Problems::default();
        let s =
            raw::<RawServer>("listen: 0.0.0.0:8787\napi_token: 0123456789abcdef").validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        assert!(s.api_token.unwrap().matches(b"0123456789abcdef"));
        // A weak token is its own problem, not a second "needs a token".
        let mut p = Problems::default();
        raw::<RawServer>("listen: 0.0.0.0:8787\napi_token: abc").validate(&mut p);
        let got: Vec<_> = p.items().iter().map(|x| x.path.clone()).collect();
        assert_eq!(got, ["server.api_token"]);
    }

    #[test]
    fn listen_must_be_host_and_port() {
        let mut p = Problems::default();
        let s =
            raw::<RawServer>("listen: 0.0.0.0:9000\napi_token: 0123456789abcdef").validate(&mut p);
        assert_eq!(s.listen, "0.0.0.0:9000".parse().unwrap());
        let s = raw::<RawServer>("listen: localhost:8795").validate(&mut p);
        assert_eq!(
            s.listen.to_string(),
            "localhost:8795",
            "a host name is kept, resolved at start"
        );
        assert!(p.is_empty());
        raw::<RawServer>("listen: localhost").validate(&mut p);
        raw::<RawServer>("listen: 8787").validate(&mut p);
        let got = messages(p);
        assert_eq!(got.len(), 2);
        assert!(
            got.iter().all(|(path, m)| path == "server.listen"
                && m.contains("write host:port, e.g. 127.0.0.1:8787")),
            "{got:?}"
        );
        assert!(got[1].1.contains("is only a port"), "{got:?}");
    }

    #[test]
    fn server_limits_are_converted_and_checked() {
        let mut p = Problems::default();
        let s = raw::<RawServer>("max_body_kb: 64\nrequest_timeout_secs: 3\nmax_connections: 20")
            .validate(&mut p);
        assert_eq!(s.max_body_bytes, 64 * 1024);
        assert_eq!(s.request_timeout, Duration::from_secs(3));
        assert_eq!(s.max_connections, 20);
        assert!(p.is_empty());
        let d = ServerConfig::default();
        assert_eq!(
            (
                d.max_body_bytes,
                d.request_timeout.as_secs(),
                d.max_connections
            ),
            (1 << 20, 10, 256)
        );
        raw::<RawServer>("max_body_kb: 0\nrequest_timeout_secs: 0\nmax_connections: 0")
            .validate(&mut p);
        let paths: Vec<String> = messages(p).into_iter().map(|(path, _)| path).collect();
        assert_eq!(
            paths,
            [
                "server.max_body_kb",
                "server.request_timeout_secs",
                "server.max_connections"
            ]
        );
    }

    #[test]
    fn out_of_range_values_are_each_reported() {
        let mut p = Problems::default();
        raw::<RawHooks>("timeout_ms: 0\nmemory_limit_mb: 0").validate(None, &mut p);
        raw::<RawSupervision>(
            "breaker_failure_rate: 1.5\nbreaker_window: 4\nbreaker_min_calls: 5\n\
             restart_backoff_base_ms: 1000\nrestart_backoff_max_ms: 10\nopen_cooldown_max_secs: 1",
        )
        .validate(&mut p, &mut Problems::default());
        let paths: Vec<String> = messages(p).into_iter().map(|(path, _)| path).collect();
        assert_eq!(
            paths,
            [
                "hooks.timeout_ms",
                "hooks.memory_limit_mb",
                "supervision.breaker_failure_rate",
                "supervision.restart_backoff_max_ms",
                "supervision.open_cooldown_max_secs",
                "supervision.breaker_min_calls",
            ]
        );
    }

    #[test]
    fn negative_and_zero_sizes_get_one_message() {
        for field in ["memory_limit_mb", "max_input_kb", "timeout_ms", "workers"] {
            let mut got = Vec::new();
            for v in ["-5", "0"] {
                let mut p = Problems::default();
                raw::<RawHooks>(&format!("{field}: {v}")).validate(None, &mut p);
                got.push(messages(p));
            }
            let path = format!("hooks.{field}");
            assert_eq!(
                got[0],
                [(path.clone(), "must be at least 1, got -5".to_owned())]
            );
            assert_eq!(got[1], [(path, "must be at least 1, got 0".to_owned())]);
        }
    }

    #[test]
    fn fail_closed_defaults_to_every_before_event_and_takes_names_or_aliases() {
        let d = HooksConfig::default();
        assert_eq!(
            d.fail_closed,
            [
                EventName::BeforeMediaAdded,
                EventName::BeforeDownloadInitiated
            ]
        );
        assert!(d.fails_closed(EventName::BeforeDownloadInitiated));
        assert!(!d.fails_closed(EventName::AfterMediaAdded));
        let mut p = Problems::default();
        let h = raw::<RawHooks>("fail_closed: [before_media_added, media_item.added]")
            .validate(None, &mut p);
        assert!(p.is_empty());
        assert_eq!(
            h.fail_closed,
            [EventName::BeforeMediaAdded, EventName::AfterMediaAdded]
        );
        let h = raw::<RawHooks>("fail_closed: []").validate(None, &mut p);
        assert!(p.is_empty() && h.fail_closed.is_empty());
    }

    #[test]
    fn fail_closed_typos_are_reported_with_a_near_name() {
        let mut p = Problems::default();
        let h = raw::<RawHooks>("fail_closed: [before_download_initated, 3, before_media_added]")
            .validate(None, &mut p);
        assert_eq!(h.fail_closed, HooksConfig::default_fail_closed());
        let got = messages(p);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, "hooks.fail_closed[0]");
        assert!(
            got[0]
                .1
                .contains("did you mean `before_download_initiated`"),
            "{got:?}"
        );
        assert_eq!(got[1].0, "hooks.fail_closed[1]");
        let mut p = Problems::default();
        raw::<RawHooks>("fail_closed: before_media_added").validate(None, &mut p);
        assert!(messages(p)[0].1.contains("must be a list"));
    }

    #[test]
    fn workers_and_quarantine_bounds() {
        let mut p = Problems::default();
        let h = raw::<RawHooks>("workers: 3\nquarantine_after: 0").validate(None, &mut p);
        assert!(p.is_empty());
        assert_eq!((h.workers, h.quarantine_after), (3, 0));
        assert!(HooksConfig::default().workers >= 1);
        assert_eq!(HooksConfig::default().quarantine_after, 5);
        raw::<RawHooks>("workers: 1000\nquarantine_after: -1").validate(None, &mut p);
        let got = messages(p);
        assert_eq!(got[0].0, "hooks.workers");
        assert!(got[0].1.contains("at most 64"), "{got:?}");
        assert_eq!(
            got[1],
            (
                "hooks.quarantine_after".to_owned(),
                "must be at least 0, got -1".to_owned()
            )
        );
    }

    #[test]
    fn hooks_watch_their_directory_unless_told_not_to() {
        let mut p = Problems::default();
        assert!(RawHooks::default().validate(None, &mut p).watch);
        assert!(!raw::<RawHooks>("watch: false").validate(None, &mut p).watch);
        assert!(p.is_empty());
    }

    #[test]
    fn a_written_directory_is_marked_explicit() {
        let mut p = Problems::default();
        assert!(
            !RawHooks::default()
                .validate(None, &mut p)
                .directory_explicit
        );
        assert!(
            raw::<RawHooks>("directory: hooks")
                .validate(None, &mut p)
                .directory_explicit
        );
    }

    #[test]
    fn failure_rate_bounds() {
        for (rate, ok) in [
            (0.0, false),
            (0.01, true),
            (1.0, true),
            (-0.5, false),
            (f64::NAN, false),
        ] {
            let mut p = Problems::default();
            RawSupervision {
                breaker_failure_rate: Some(rate),
                ..Default::default()
            }
            .validate(&mut p, &mut Problems::default());
            assert_eq!(p.is_empty(), ok, "rate {rate}");
        }
    }
}
