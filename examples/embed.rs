//! Embedding mydia-plugins in another program: start the actor system from a config,
//! emit events through the handle, read plugin states, shut down.
//!
//! Run with `cargo run --example embed`; it uses the shipped `config/config.yaml`
//! (whose `console` plugin logs each notification) and needs no network.

use mydia_plugins::{Config, EventName};

fn main() {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let config = Config::load("config/config.yaml".as_ref()).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    actix_rt::System::new().block_on(async move {
        // Opens the delivery store the config names (config/data/ for the shipped one).
        let handle = match mydia_plugins::start(&config) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };

        // emit: returns after the hooks ran, with the data as the plugins will see it.
        let data = serde_json::json!({"media_item": {
            "title": "spirited.away.2001", "year": 2001, "type": "movie",
            "genres": ["Animation"], "original_language": "ja", "tmdb_id": 129
        }});
        let done = handle
            .emit(
                EventName::AfterMediaAdded,
                data.as_object().cloned().unwrap_or_default(),
            )
            .await
            .expect("not rejected");
        println!(
            "after hooks: {}",
            serde_json::Value::Object(done.event.data.clone())
        );

        // emit_sync: also waits for every plugin's outcome.
        let sync = handle
            .emit_sync(EventName::OnDownloadCompleted, serde_json::Map::new())
            .await
            .expect("not rejected");
        for report in sync.deliveries.unwrap_or_default() {
            println!(
                "{}: {} {}",
                report.plugin,
                report.status,
                report.detail.unwrap_or_default()
            );
        }

        // A hook can refuse an event; the caller learns which hook and why.
        let release = serde_json::json!({"release": {"title": "Some.Movie.2024.CAM.x264"}});
        match handle
            .emit(
                EventName::BeforeDownloadInitiated,
                release.as_object().cloned().unwrap_or_default(),
            )
            .await
        {
            Err(e) => println!("refused: {e}"),
            Ok(_) => println!("accepted"),
        }

        for p in handle.status().await {
            println!(
                "plugin {} ({}): {}, delivered {}",
                p.name, p.kind, p.state, p.delivered
            );
        }
        handle.shutdown().await;
    });
}
