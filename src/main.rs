//! The `mydia-plugins` command: parse the CLI, start logging, run the service or check the config.
//!
//! Exit codes: 0 fine, 1 a runtime failure (cannot listen, a connection test failed),
//! 2 the config or a hook is invalid.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mydia_plugins::telemetry::{self, LogFormat};
use mydia_plugins::{api, Config};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format, &cli.log);
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for w in &config.warnings {
        tracing::warn!(target: "config", "{w}");
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::Check { test } => check(config, test),
    }
}

fn serve(config: Config) -> ExitCode {
    actix_rt::System::new().block_on(async move {
        let handle = mydia_plugins::start(&config);
        let (server, listen) = match api::server(config.server.listen, handle.clone()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the HTTP API");
                handle.shutdown().await;
                return ExitCode::from(1);
            }
        };
        let server_handle = server.handle();
        actix_rt::spawn(server);
        let enabled = config.enabled_plugins().count();
        tracing::info!(
            listen = %listen, plugins = enabled, hooks_dir = %config.hooks.directory.display(),
            "mydia-plugins is running; send an event with: curl -X POST http://{listen}/api/v1/events -d '{{\"event\":\"after_media_added\",\"data\":{{\"media_item\":{{\"title\":\"Dune\",\"year\":2021,\"type\":\"movie\"}}}}}}'"
        );
        wait_for_signal().await;
        tracing::info!(grace_ms = config.supervision.shutdown_grace.as_millis() as u64, "shutting down: no new events; finishing deliveries in flight");
        server_handle.stop(true).await;
        let report = handle.shutdown().await;
        tracing::info!(undelivered = report.undelivered, abandoned_in_flight = report.abandoned_in_flight, "stopped");
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn check(config: Config, test: bool) -> ExitCode {
    let report = mydia_plugins::hooks::check_all(&config.hooks);
    for notice in &report.notices {
        eprintln!("warning: {notice}");
    }
    let hooks = match report.problems {
        problems if problems.is_empty() => report.hooks,
        problems => {
            eprintln!(
                "error: {} hook problem{}:",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            );
            for p in &problems {
                eprintln!("  {p}");
            }
            return ExitCode::from(2);
        }
    };
    let source = config
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "config".into());
    println!("{source}: ok");
    for p in &config.plugins {
        let events: Vec<&str> = p.common.events.iter().map(|e| e.as_str()).collect();
        let state = if p.common.enabled {
            "enabled"
        } else {
            "disabled"
        };
        println!(
            "  plugin {} (type {}, {state}): {}",
            p.name,
            p.kind.as_str(),
            events.join(", ")
        );
    }
    for h in &hooks {
        println!(
            "  hook {} (on {}, priority {})",
            h.hook, h.event, h.priority
        );
    }
    if !test {
        return ExitCode::SUCCESS;
    }
    actix_rt::System::new().block_on(async move {
        let handle = mydia_plugins::start(&config);
        let mut failed = 0;
        for p in config.enabled_plugins() {
            match handle.test_connection(&p.name).await {
                Ok(r) => println!("  test {}: ok: {}", p.name, r.detail),
                Err(e) => {
                    failed += 1;
                    println!("  test {}: FAILED: {e}", p.name);
                }
            }
        }
        handle.shutdown().await;
        if failed > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    })
}
