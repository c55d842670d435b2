//! The `mydia-plugins` command: parse the CLI, start logging, run the service, check the
//! config or preview an event.
//!
//! Exit codes: 0 fine, 1 a runtime failure (cannot listen, a connection test failed),
//! 2 the config or a hook is invalid, or (`preview`) the event file or a plugin name is.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mydia_plugins::telemetry::{self, LogFormat};
use mydia_plugins::{api, Config};

mod cli;

use cli::{check, preview, signals};

/// See the `mimalloc` entry in Cargo.toml for why.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mydia-plugins",
    version,
    about = "Mydia's plugin system: Lua hooks and supervised notification plugins"
)]
struct Cli {
    /// The config file.
    #[arg(
        long,
        short,
        global = true,
        default_value = "config/config.yaml",
        env = "MYDIA_PLUGINS_CONFIG"
    )]
    config: PathBuf,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value = "pretty")]
    log_format: LogFormat,
    /// Log filter, RUST_LOG style (the RUST_LOG variable wins when set), e.g. `info,supervision=debug`.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: hooks, plugins and the HTTP API (the default).
    Serve,
    /// Validate the config and compile the hooks, then exit.
    Check {
        /// Also run every enabled plugin's connection test.
        #[arg(long)]
        test: bool,
    },
    /// Show what each plugin would send for an event, sending and storing nothing.
    Preview {
        /// A JSON file with the event, as `POST /api/v1/events` takes it:
        /// {"event": "after_media_added", "data": {...}}.
        #[arg(long, value_name = "FILE.json")]
        event: PathBuf,
        /// Preview only this instance (repeatable); default: every delivery instance.
        #[arg(long = "plugin", value_name = "NAME")]
        plugins: Vec<String>,
        /// Run the enrichment plugins first (they make their real, read-only lookups).
        #[arg(long)]
        enrich: bool,
        /// Print the JSON `POST /api/v1/preview` answers instead of the report.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format, &cli.log);
    let loaded = Config::load(&cli.config);
    if let Ok(config) = &loaded {
        for w in &config.warnings {
            tracing::warn!(target: "config", "{w}");
        }
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match loaded {
            Ok(config) => serve(config),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Check { test } => check::run(loaded, test),
        Command::Preview {
            event,
            plugins,
            enrich,
            json,
        } => preview::run(
            loaded,
            preview::Args {
                event: &event,
                plugins,
                enrich,
                json,
            },
        ),
    }
}

fn serve(config: Config) -> ExitCode {
    actix_rt::System::new().block_on(async move {
        // Installed first: from here on SIGHUP reloads instead of killing the process.
        let mut signals = signals::Signals::install();
        if config.enabled_plugins().next().is_none() {
            tracing::warn!(target: "config", "no plugin is enabled: events are accepted and hooks run, but nothing will be delivered; set `enabled: true` on a plugin in the config");
        }
        let readiness = api::Readiness::default();
        let handle = match mydia_plugins::start(&config) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "cannot open the delivery store");
                return ExitCode::from(1);
            }
        };
        let (server, addrs) = match api::serve(&config.server, handle.clone(), readiness.clone()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the HTTP API");
                handle.shutdown().await;
                return ExitCode::from(1);
            }
        };
        let server_handle = server.handle();
        actix_rt::spawn(server);
        // The supervisor answering means every instance was spawned.
        handle.status().await;
        readiness.set_ready();
        let listen = addrs[0];
        if addrs.len() > 1 {
            let all: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            tracing::info!(listen = %config.server.listen, addresses = %all.join(", "), "the listen name resolved to several addresses; serving on each");
        }
        tracing::info!(
            listen = %listen, plugins = config.enabled_plugins().count(), hooks_dir = %config.hooks.directory.display(),
            "mydia-plugins is running; send an event with: curl -X POST http://{listen}/api/v1/events -d '{{\"event\":\"after_media_added\",\"data\":{{\"media_item\":{{\"title\":\"Dune\",\"year\":2021,\"type\":\"movie\"}}}}}}'"
        );
        while signals.next().await == signals::Asked::Reload {
            tracing::info!(target: "supervision", signal = "SIGHUP", "reloading the config");
            // Reloads run one at a time; the result is logged by the reload itself.
            let handle = handle.clone();
            actix_rt::spawn(async move {
                let _ = handle.reload().await;
            });
        }
        // The API stays up while deliveries drain: callers get 503 (`/readyz` too), not a
        // refused connection, until the server stops.
        readiness.set_shutting_down();
        tracing::info!(grace_ms = config.supervision.shutdown_grace.as_millis() as u64, "shutting down: no new events; finishing deliveries in flight");
        let report = handle.shutdown().await;
        server_handle.stop(true).await;
        tracing::info!(kept = report.kept, abandoned_in_flight = report.abandoned_in_flight, "stopped");
        ExitCode::SUCCESS
    })
}
