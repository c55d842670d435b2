//! `mydia-plugins preview --event FILE.json [--plugin NAME]... [--enrich] [--json]`: the
//! dry run of `POST /api/v1/preview`, in-process and for a person reading a terminal.
//!
//! No service needs to run: the config's hooks and instances are started here with the
//! memory store and no plugin actors, so nothing is sent and no file is written.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

use mydia_plugins::config::ConfigError;
use mydia_plugins::config::StorageConfig;
use mydia_plugins::preview::{Preview, PreviewRequest, RequestView, Source};
use mydia_plugins::store::Store;
use mydia_plugins::Config;

/// What the command line asked for.
pub struct Args<'a> {
    /// The JSON file with the event (the body `POST /api/v1/preview` takes).
    pub event: &'a Path,
    /// `--plugin` names, added to the file's `plugins`.
    pub plugins: Vec<String>,
    /// `--enrich`.
    pub enrich: bool,
    /// `--json`: print the API's answer instead of the report.
    pub json: bool,
}

/// Runs the preview; exit 2 on bad input (config, file, event, plugin names), 1 when the
/// preview itself could not run.
pub fn run(loaded: Result<Config, ConfigError>, args: Args<'_>) -> ExitCode {
    let config = match loaded {
        Ok(c) => c,
        Err(e) => return fail(2, &e.to_string()),
    };
    let bytes = match std::fs::read(args.event) {
        Ok(b) => b,
        Err(e) => {
            return fail(
                2,
                &format!(
                    "cannot read the event file {}: {e}; give a JSON file like {{\"event\": \"after_media_added\", \"data\": {{...}}}}",
                    args.event.display()
                ),
            )
        }
    };
    let mut request = match PreviewRequest::from_json(&bytes) {
        Ok(r) => r,
        Err(e) => return fail(2, &format!("{}: {e}", args.event.display())),
    };
    if let Source::Delivery(id) = &request.source {
        return fail(
            2,
            &format!("a stored delivery ({id}) is previewed by the running service: POST /api/v1/preview with {{\"delivery\": \"{id}\"}}"),
        );
    }
    for p in args.plugins {
        if !request.plugins.contains(&p) {
            request.plugins.push(p);
        }
    }
    request.enrich |= args.enrich;
    let json = args.json;
    actix_rt::System::new().block_on(async move {
        let store = match Store::open(&StorageConfig::memory()) {
            Ok(s) => s,
            Err(e) => return fail(1, &e.to_string()),
        };
        // No specs: no plugin actors. The preview builds each instance from the config.
        let handle = mydia_plugins::start_with_store(&config, Vec::new(), store, Vec::new());
        let result = handle.preview(request).await;
        handle.shutdown().await;
        match result {
            Ok(preview) if json => {
                let text = serde_json::to_string_pretty(&preview).unwrap_or_default();
                println!("{text}");
                ExitCode::SUCCESS
            }
            Ok(preview) => {
                print!("{}", render(&preview));
                ExitCode::SUCCESS
            }
            Err(e) => fail(2, &e.to_string()),
        }
    })
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

/// The report: the event and what the hooks did, then each instance's request and warnings.
pub fn render(p: &Preview) -> String {
    let mut out = String::new();
    let receiving = p.instances.iter().filter(|i| i.would_receive).count();
    let hooks = match (&p.hooks.rejected, p.hooks.ran, p.hooks.changed) {
        (Some(r), _, _) => format!("rejected by hook {}", r.hook),
        (None, true, true) => "hooks changed the data".to_owned(),
        (None, true, false) => "hooks left the data as it was".to_owned(),
        (None, false, _) => "no hooks ran".to_owned(),
    };
    let _ = writeln!(
        out,
        "Preview of {} (id {}): {hooks}; {receiving} of {} instance(s) would receive it. Nothing was sent.",
        p.event.name,
        p.event.id,
        p.instances.len()
    );
    for w in &p.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    for e in &p.enrichment {
        match (&e.patch, &e.error) {
            (_, Some(err)) => {
                let _ = writeln!(out, "enrichment {}: failed, added nothing: {err}", e.plugin);
            }
            (Some(patch), None) => {
                let keys: Vec<String> = patch
                    .iter()
                    .flat_map(|(k, v)| match v {
                        Value::Object(m) => m.keys().map(|f| format!("{k}.{f}")).collect(),
                        _ => vec![k.clone()],
                    })
                    .collect();
                let _ = writeln!(out, "enrichment {}: added {}", e.plugin, keys.join(", "));
            }
            (None, None) => {
                let _ = writeln!(out, "enrichment {}: added nothing", e.plugin);
            }
        }
    }
    for i in &p.instances {
        let state = if i.would_receive {
            "would receive it"
        } else {
            "would not receive it"
        };
        let _ = writeln!(out, "\n== {} ({}): {state}", i.plugin, i.kind);
        for r in &i.requests {
            out.push_str(&request(r));
        }
        if let Some(e) = &i.error {
            let _ = writeln!(out, "  error: {e}");
        }
        for w in &i.warnings {
            let _ = writeln!(out, "  ! {}", w.message);
        }
    }
    out
}

fn request(r: &RequestView) -> String {
    let mut out = format!("{} {}\n", r.method, r.url);
    for (name, value) in &r.headers {
        let _ = writeln!(out, "{name}: {value}");
    }
    let body = match (&r.body, r.body_format) {
        (Value::Null, _) => return out,
        (Value::Object(fields), "form") => fields
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        (Value::String(s), _) => s.clone(),
        (json, _) => serde_json::to_string_pretty(json).unwrap_or_default(),
    };
    let _ = writeln!(out, "\n{body}");
    out
}
