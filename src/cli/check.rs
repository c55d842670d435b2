//! `mydia-plugins check [--test]`: the config's problems and the hooks' problems in one
//! report, then (with `--test`) every enabled plugin's connection test.

use std::process::ExitCode;

use mydia_plugins::config::{ConfigError, HooksConfig};
use mydia_plugins::hooks::HookSummary;
use mydia_plugins::Config;

/// Report on `loaded` and its hooks; exit 2 on any problem, 1 when a connection test fails.
pub fn run(loaded: Result<Config, ConfigError>, test: bool) -> ExitCode {
    // Hooks are checked even when the rest of the config is wrong, so one run shows all.
    let hooks_config: Option<HooksConfig> = match &loaded {
        Ok(c) => Some(c.hooks.clone()),
        Err(ConfigError::Invalid { hooks, .. }) => hooks.as_deref().cloned(),
        Err(_) => None,
    };
    if let Err(e) = &loaded {
        eprintln!("error: {e}");
    }
    let hooks = match hooks_config.map(|h| mydia_plugins::hooks::check_all(&h)) {
        Some(report) => {
            // Files that are never run (wrong place, other extensions) are worth a word.
            for notice in &report.notices {
                eprintln!("warning: {notice}");
            }
            if report.problems.is_empty() {
                Some(report.hooks)
            } else {
                let problems = &report.problems;
                let s = if problems.len() == 1 { "" } else { "s" };
                eprintln!("error: {} hook problem{s}:", problems.len());
                for p in problems {
                    eprintln!("  {p}");
                }
                None
            }
        }
        None => None,
    };
    let (Ok(config), Some(hooks)) = (loaded, hooks) else {
        return ExitCode::from(2);
    };
    report(&config, &hooks);
    if !test {
        return ExitCode::SUCCESS;
    }
    connection_tests(&config)
}

fn report(config: &Config, hooks: &[HookSummary]) {
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
        let from = config
            .overrides
            .as_ref()
            .and_then(|f| f.file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (field, value) in mydia_plugins::plugins::settings::overridden(p) {
            println!("    plugins.{}.{field} = {value} ({from})", p.name);
        }
        if let Some(templates) = &p.common.templates {
            println!("    message templates: {}", templates.keys().join(", "));
        }
    }
    if config.enabled_plugins().next().is_none() {
        println!("  note: no plugin is enabled, so nothing will be delivered");
    }
    for h in hooks {
        println!(
            "  hook {} (on {}, priority {})",
            h.hook, h.event, h.priority
        );
    }
}

fn connection_tests(config: &Config) -> ExitCode {
    actix_rt::System::new().block_on(async move {
        // Only the connection tests: the delivery store is left alone (its pending
        // deliveries are the service's to send).
        let mut config = config.clone();
        config.storage = mydia_plugins::config::StorageConfig::memory();
        let handle = match mydia_plugins::start(&config) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
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
