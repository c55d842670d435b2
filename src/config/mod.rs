//! Configuration: read → expand `${VAR}` → parse → validate, reporting every problem at once.
//!
//! Relative paths in the file (the hooks directory) resolve against the directory of the
//! config file, so the service behaves the same wherever it is started from.
//!
//! Every problem carries its field path and, where known, its line; problems that do not
//! stop loading (an instance of a plugin type that is planned but not built yet) come
//! back as [`Config::warnings`]. Nothing here does I/O beyond reading the one file.

pub mod digest; // `digest:` and `quiet_hours:` on a plugin instance
mod env; // `${VAR}` expansion on the parsed tree
pub mod error; // `Problem`, `Problems`, `ConfigError`
mod fields; // field-by-field deserialization and serde message rewriting
mod listen; // `server.listen`: IP or host name, resolved when the API binds
mod locate; // field path → line in the text
pub mod overrides; // `overrides.yaml`: settings changed from the page, merged before validation
mod parse; // the pipeline
mod plugins; // `plugins:`: common fields, the type's own settings, planned types
mod sections; // `server:`, `hooks:`, `supervision:`
mod storage; // `storage:`
mod token; // `server.api_token`
pub mod validate; // shared pure checks (URLs)

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, Problem, Problems};
pub use listen::{BadListen, ListenAddr};
pub use storage::{StorageBackend, StorageConfig, Synchronous};
pub use token::{ApiToken, BadToken, MIN_TOKEN_CHARS};

use crate::event::EventName;
use crate::plugins::PluginConfig;

/// The validated configuration the service is built from.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, when there is one.
    pub source: Option<PathBuf>,
    /// The HTTP API.
    pub server: ServerConfig,
    /// Lua hooks.
    pub hooks: HooksConfig,
    /// Restarts, breaker and delivery defaults.
    pub supervision: SupervisionConfig,
    /// The delivery store.
    pub storage: StorageConfig,
    /// Every configured plugin instance of a built type, in file order (enabled or not).
    /// Instances of planned types (see `warnings`) are not here.
    pub plugins: Vec<PluginConfig>,
    /// Things worth telling the user that do not stop the config from loading, each with
    /// its path and line: an instance of a plugin type that is planned but not built yet
    /// (skipped), an event listed twice, an enabled instance with an empty `events` list.
    /// `check` prints them; `serve` logs them at WARN.
    pub warnings: Vec<Problem>,
    /// The overrides file merged over `source` (see [`overrides`]), when there was one.
    pub overrides: Option<PathBuf>,
}

/// `server:`: where the HTTP API listens and what one request or client may take.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Address to bind; default `127.0.0.1:8787`. A host name binds every address it resolves to.
    pub listen: ListenAddr,
    /// Largest request body (default 1 MiB); larger ones are answered 413.
    pub max_body_bytes: usize,
    /// A request's head and body must arrive within this (default 10 s), else 408 and the
    /// connection is closed, so a slow client cannot hold a connection forever.
    pub request_timeout: Duration,
    /// Connections served at once (default 256); more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// When set, every API call but `/healthz` and `/readyz` needs
    /// `Authorization: Bearer <token>`. Required when `listen` is not a loopback address.
    pub api_token: Option<ApiToken>,
    /// `/metrics`, from the `metrics:` section.
    pub metrics: MetricsConfig,
}

/// `metrics:`: the Prometheus endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Serve `/metrics` at all (default true).
    pub enabled: bool,
    /// Serve it without the API token (default false), for a scraper that cannot send one.
    pub public: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            public: false,
        }
    }
}

/// `hooks:`: where the Lua hooks live and what each call may use.
#[derive(Debug, Clone, PartialEq)]
pub struct HooksConfig {
    /// Run hooks at all (default true).
    pub enabled: bool,
    /// `<directory>/<event>/NN_name.lua`; default `hooks` beside the config file.
    pub directory: PathBuf,
    /// Whether `directory` was written in the config: then a missing directory is a
    /// mistake to report, not "no hooks".
    pub directory_explicit: bool,
    /// Wall-clock budget per hook call (default 100 ms).
    pub timeout: Duration,
    /// Memory limit of each Lua VM (default 16 MiB).
    pub memory_limit_bytes: usize,
    /// Largest event data (as JSON) handed to hooks, and taken back from one (default
    /// 1 MiB). A larger event skips hooks, or is refused at a fail-closed event.
    pub max_input_bytes: usize,
    /// Events whose hooks fail closed (default: every `before_*` event): a hook that
    /// cannot run refuses the event instead of letting it through unchecked.
    pub fail_closed: Vec<EventName>,
    /// Hook VMs running events side by side, each with its own copy of the scripts
    /// (default: the number of cores, at least 1).
    pub workers: usize,
    /// A hook that fails this many calls in a row is quarantined (default 5; 0: never).
    pub quarantine_after: u32,
    /// Reload the hooks when a file under `directory` changes (default true).
    pub watch: bool,
}

/// `supervision:`: restart policy, circuit breaker and delivery defaults (DESIGN.md's numbers).
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisionConfig {
    /// First restart backoff (default 500 ms); doubles per restart, full jitter.
    pub restart_backoff_base: Duration,
    /// Largest restart backoff (default 60 s).
    pub restart_backoff_max: Duration,
    /// Healthy this long and the backoff starts over (default 60 s).
    pub restart_reset_after: Duration,
    /// More than this many restarts within `restart_window` trips the plugin open (default 5).
    pub max_restarts: u32,
    /// The window for `max_restarts` (default 60 s).
    pub restart_window: Duration,
    /// How long an open plugin rests before a probe (default 30 s, so a server that is back
    /// is used again soon), doubling per reopen.
    pub open_cooldown: Duration,
    /// The cooldown's cap (default 10 min).
    pub open_cooldown_max: Duration,
    /// Breaker window: the last N calls (default 20).
    pub breaker_window: u32,
    /// The breaker judges only with at least this many calls in the window (default 5).
    pub breaker_min_calls: u32,
    /// Failure rate (0..1) over the window that opens the breaker (default 0.5).
    pub breaker_failure_rate: f64,
    /// Default per-delivery timeout (default 10 s, the seed's); a plugin may set its own.
    pub delivery_timeout: Duration,
    /// Deliveries a plugin may have in flight at once (default 8).
    pub max_in_flight: u32,
    /// A delivery not delivered within this is a dead letter, "too old" (default 24 h:
    /// an outage of an afternoon must not dead-letter everything).
    pub backlog_max_age: Duration,
    /// How long shutdown waits for in-flight work (default 10 s).
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8787)).into(),
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            max_connections: 256,
            api_token: None,
            metrics: MetricsConfig::default(),
        }
    }
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            enabled: true,
            directory: PathBuf::from("hooks"),
            directory_explicit: false,
            timeout: Duration::from_millis(100),
            memory_limit_bytes: 16 * 1024 * 1024,
            max_input_bytes: 1024 * 1024,
            fail_closed: HooksConfig::default_fail_closed(),
            workers: HooksConfig::default_workers(),
            quarantine_after: 5,
            watch: true,
        }
    }
}

impl HooksConfig {
    /// Every `before_*` event: the ones a hook validates before Mydia acts.
    pub fn default_fail_closed() -> Vec<EventName> {
        EventName::ALL
            .iter()
            .copied()
            .filter(|e| e.as_str().starts_with("before_"))
            .collect()
    }

    /// The number of cores, at least 1.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }

    /// Whether hooks of `event` fail closed.
    pub fn fails_closed(&self, event: EventName) -> bool {
        self.fail_closed.contains(&event)
    }
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        SupervisionConfig {
            restart_backoff_base: Duration::from_millis(500),
            restart_backoff_max: Duration::from_secs(60),
            restart_reset_after: Duration::from_secs(60),
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            open_cooldown: Duration::from_secs(30),
            open_cooldown_max: Duration::from_secs(600),
            breaker_window: 20,
            breaker_min_calls: 5,
            breaker_failure_rate: 0.5,
            delivery_timeout: Duration::from_secs(10),
            max_in_flight: 8,
            backlog_max_age: Duration::from_secs(24 * 3600),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// A config with defaults and no plugins (for embedding and tests).
    pub fn empty() -> Self {
        Config {
            source: None,
            server: ServerConfig::default(),
            hooks: HooksConfig::default(),
            supervision: SupervisionConfig::default(),
            storage: StorageConfig::memory(),
            plugins: Vec::new(),
            warnings: Vec::new(),
            overrides: None,
        }
    }

    /// Read, expand, parse and validate the file at `path`, with the overrides file
    /// beside it (`overrides.yaml`, when there is one) merged over it before validation.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = overrides::path_for(path);
        let text = overrides::read(&file).map_err(|p| ConfigError::Invalid {
            file: Some(path.to_owned()),
            problems: vec![p],
            hooks: None,
        })?;
        Config::load_with_overrides(path, text.as_deref())
    }

    /// [`Config::load`] with `overrides` as the overrides file's text (`None`: no
    /// overrides), read from nowhere: what a change would load as, before it is written.
    pub fn load_with_overrides(
        path: &Path,
        overrides: Option<&str>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file = overrides::path_for(path);
        let env = |name: &str| std::env::var(name).ok();
        parse::parse(
            &text,
            Some(path),
            overrides.map(|o| (file.as_path(), o)),
            &env,
        )
    }

    /// Parse and validate YAML text; `source` names the file and anchors relative paths.
    /// `${VAR}` references read the process environment.
    pub fn parse(text: &str, source: Option<&Path>) -> Result<Config, ConfigError> {
        Config::parse_with_env(text, source, |name| std::env::var(name).ok())
    }

    /// [`Config::parse`] with `${VAR}` references answered by `env` (`None`: not set), so
    /// tests and embedders need not touch the process environment.
    pub fn parse_with_env(
        text: &str,
        source: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        parse::parse(text, source, None, &env)
    }

    /// The enabled plugin instances.
    pub fn enabled_plugins(&self) -> impl Iterator<Item = &PluginConfig> {
        self.plugins.iter().filter(|p| p.common.enabled)
    }
}

/// `parent.child`, or `child` at the top.
fn join(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (_, true) => parent.to_owned(),
        (true, false) => child.to_owned(),
        (false, false) => format!("{parent}.{child}"),
    }
}

/// A mapping key as it appears in a field path (keys are normally strings).
fn key_label(key: &serde_yaml::Value) -> String {
    use serde_yaml::Value;
    match key {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "~".to_owned(),
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => "?".to_owned(),
    }
}
