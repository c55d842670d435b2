//! The config loader against fixture files: the seed's YAML, defaults, and each kind of mistake.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mydia_plugins::config::{Config, ConfigError, Problem, SupervisionConfig};
use mydia_plugins::event::EventName;
use mydia_plugins::plugins::registry::PluginSettings;
use mydia_plugins::plugins::PluginKind;
use secrecy::ExposeSecret;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

/// Load a fixture with `${VAR}` answered by `vars` (never the process environment).
fn load_with(name: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let path = fixture(name);
    let text = std::fs::read_to_string(&path).unwrap();
    Config::parse_with_env(&text, Some(&path), |k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    })
}

fn load(name: &str) -> Config {
    load_with(name, &[]).unwrap_or_else(|e| panic!("{name} should load:\n{e}"))
}

fn problems(name: &str) -> Vec<Problem> {
    match load_with(name, &[]) {
        Ok(_) => panic!("{name} should not load"),
        Err(e) => e.problems().to_vec(),
    }
}

/// The one problem in `name`, checked for path and line.
fn only_problem(name: &str, path: &str, line: usize) -> Problem {
    let ps = problems(name);
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert_eq!(ps[0].path, path, "{ps:#?}");
    assert_eq!(ps[0].line, Some(line), "{ps:#?}");
    ps[0].clone()
}

fn ntfy(config: &Config, instance: &str) -> mydia_plugins::plugins::notification::ntfy::NtfyConfig {
    let p = config
        .plugins
        .iter()
        .find(|p| p.name == instance)
        .expect(instance);
    assert_eq!(p.kind, PluginKind::Ntfy);
    match &p.settings {
        PluginSettings::Ntfy(c) => c.clone(),
        other => panic!("{instance} is not ntfy: {other:?}"),
    }
}

#[test]
fn seed_yaml_loads_verbatim_with_every_plugin_built() {
    let c = load("seed.yaml");
    let names: Vec<&str> = c.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["ntfy", "discord", "anilist"]);
    let p = &c.plugins[0];
    assert_eq!(p.name, "ntfy");
    assert!(p.common.enabled);
    assert_eq!(
        p.common.events,
        [
            EventName::AfterMediaAdded,
            EventName::OnDownloadCompleted,
            EventName::AfterImportCompleted,
            EventName::OnImportFailed
        ]
    );
    let n = ntfy(&c, "ntfy");
    assert_eq!(n.server_url, "https://ntfy.sh");
    assert_eq!(n.topic.as_deref(), Some("mydia-notifications"));
    assert_eq!(n.priority, 3);
    assert_eq!(n.tags, ["tv", "movie"]);
    assert!(n.auth_token.is_none());

    // discord loads as it is (disabled, the seed's username and events).
    let d = &c.plugins[1];
    assert_eq!((d.kind, d.common.enabled), (PluginKind::Discord, false));
    assert_eq!(
        d.common.events,
        [EventName::AfterMediaAdded, EventName::OnDownloadCompleted]
    );
    match &d.settings {
        PluginSettings::Discord(cfg) => assert_eq!(cfg.username, "Mydia"),
        other => panic!("{other:?}"),
    }
    // anilist loads as it is too (enabled, the seed's prefer_over_tmdb: false).
    let a = &c.plugins[2];
    assert_eq!((a.kind, a.common.enabled), (PluginKind::AniList, true));
    match &a.settings {
        PluginSettings::AniList(cfg) => assert!(!cfg.prefer_over_tmdb),
        other => panic!("{other:?}"),
    }
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn seed_dev_guide_and_ntfy_example_load_verbatim() {
    // The seed's Pushover block (from its developer guide) loads verbatim as a real instance.
    let c = load("seed_pushover.yaml");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let p = &c.plugins[0];
    assert_eq!(
        (p.name.as_str(), p.kind, p.common.enabled),
        ("pushover", PluginKind::Pushover, true)
    );
    assert_eq!(p.common.events, [EventName::AfterMediaAdded]);
    match &p.settings {
        PluginSettings::Pushover(s) => assert_eq!(s.priority, 0),
        other => panic!("{other:?}"),
    }

    let c = load("seed_ntfy_example.yaml");
    let n = ntfy(&c, "ntfy");
    assert_eq!(n.topic.as_deref(), Some("mydia-alerts"));
    assert_eq!(n.tags, ["movie", "tv"]);
    assert_eq!(c.plugins[0].common.events.len(), 4);
    assert!(c.warnings.is_empty());
}

#[test]
fn absent_fields_take_the_seed_defaults() {
    let c = load("ntfy_defaults.yaml");
    let p = &c.plugins[0];
    assert_eq!(
        p.common.events,
        [
            EventName::AfterMediaAdded,
            EventName::OnDownloadCompleted,
            EventName::AfterImportCompleted
        ]
    );
    assert!(!p.common.allow_insecure_http);
    assert_eq!(p.common.timeout, None);
    let n = ntfy(&c, "ntfy");
    assert_eq!(n.server_url, "https://ntfy.sh");
    assert_eq!(n.priority, 3);
    assert!(n.tags.is_empty());
    assert_eq!(c.supervision, SupervisionConfig::default());
    assert_eq!(c.server.listen, "127.0.0.1:8787".parse().unwrap());
    assert_eq!(c.hooks.directory, fixture("hooks"));
}

#[test]
fn an_empty_file_is_all_defaults() {
    let c = Config::parse_with_env("# nothing here\n", None, |_| None).unwrap();
    assert!(c.plugins.is_empty() && c.warnings.is_empty());
    assert_eq!(c.hooks.directory, PathBuf::from("hooks"));
}

#[test]
fn two_instances_of_one_type_with_common_fields() {
    let c = load_with("full.yaml", &[("NTFY_TOKEN", "tk_lan")]).unwrap();
    assert_eq!(
        c.plugins
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["ntfy", "ntfy_alerts"]
    );
    let main = &c.plugins[0];
    // Aliases are canonicalised.
    assert_eq!(
        main.common.events,
        [EventName::AfterMediaAdded, EventName::OnDownloadCompleted]
    );
    let alerts = &c.plugins[1];
    assert_eq!(alerts.kind, PluginKind::Ntfy);
    assert!(alerts.common.allow_insecure_http);
    assert!(alerts.common.allow_private_network);
    assert!(!main.common.allow_private_network);
    assert_eq!(alerts.common.timeout, Some(Duration::from_millis(5000)));
    // The repeated on_download_failed is dropped, with a warning at its line.
    assert_eq!(
        alerts.common.events,
        [EventName::OnDownloadFailed, EventName::OnImportFailed]
    );
    assert_eq!(c.warnings.len(), 1, "{:#?}", c.warnings);
    assert_eq!(c.warnings[0].path, "plugins.ntfy_alerts.events[2]");
    assert_eq!(c.warnings[0].line, Some(43));
    let n = ntfy(&c, "ntfy_alerts");
    assert_eq!(n.server_url, "http://192.168.1.5:8080");
    assert_eq!(
        n.auth_token.as_ref().map(|t| t.expose_secret().to_owned()),
        Some("tk_lan".into())
    );
    assert_eq!(c.enabled_plugins().count(), 2);
    assert_eq!(c.hooks.directory, fixture("hooks"));
    assert_eq!(c.supervision, SupervisionConfig::default());
}

#[test]
fn rejects_unknown_field_with_did_you_mean() {
    let p = only_problem("typo_field.yaml", "plugins.ntfy.prority", 5);
    assert!(
        p.message
            .contains("unknown field `prority` (did you mean `priority`?)"),
        "{}",
        p.message
    );
    // The known list includes the common fields too.
    assert!(
        p.message.contains("server_url") && p.message.contains("allow_insecure_http"),
        "{}",
        p.message
    );
}

#[test]
fn rejects_unknown_event_with_did_you_mean_and_the_list() {
    let p = only_problem("typo_event.yaml", "plugins.ntfy.events[1]", 7);
    assert!(
        p.message.contains("did you mean `on_download_completed`"),
        "{}",
        p.message
    );
    assert!(p.message.contains("known events:"), "{}", p.message);
}

#[test]
fn rejects_priority_out_of_range() {
    let p = only_problem("bad_priority.yaml", "plugins.ntfy.priority", 5);
    assert!(
        p.message.contains("between 1 (min) and 5 (max), got 7"),
        "{}",
        p.message
    );
}

#[test]
fn rejects_enabled_ntfy_without_topic_at_the_instance_line() {
    let p = only_problem("missing_topic.yaml", "plugins.ntfy.topic", 2);
    assert!(
        p.message.contains("is required when the plugin is enabled"),
        "{}",
        p.message
    );
}

#[test]
fn rejects_http_without_opt_in() {
    let p = only_problem("insecure_http.yaml", "plugins.ntfy.server_url", 4);
    assert!(
        p.message.contains("allow_insecure_http: true"),
        "{}",
        p.message
    );
}

#[test]
fn reports_yaml_syntax_errors_with_their_line() {
    let err = load_with("bad_syntax.yaml", &[]).unwrap_err();
    let ps = err.problems();
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].line, Some(6), "{ps:#?}");
    assert!(
        ps[0].message.starts_with("invalid YAML"),
        "{}",
        ps[0].message
    );
    // Display names the file and the line.
    assert!(
        err.to_string().contains("bad_syntax.yaml:6: invalid YAML"),
        "{err}"
    );
}

#[test]
fn tabs_get_their_own_advice() {
    let err = Config::parse_with_env("plugins:\n\tntfy:\n", None, |_| None).unwrap_err();
    assert_eq!(err.problems()[0].line, Some(2));
    assert!(
        err.problems()[0].message.contains("spaces, not tabs"),
        "{err}"
    );
}

#[test]
fn rejects_unset_variable_at_its_field() {
    let p = only_problem("unset_var.yaml", "plugins.ntfy.auth_token", 5);
    assert_eq!(
        p.message,
        "environment variable NTFY_TOKEN is not set; export it or write the value"
    );
    let c = load_with("unset_var.yaml", &[("NTFY_TOKEN", "tk_abc")]).unwrap();
    let token = ntfy(&c, "ntfy").auth_token.unwrap();
    assert_eq!(token.expose_secret(), "tk_abc");
}

#[test]
fn rejects_unknown_plugin_types() {
    let ps = problems("unknown_type.yaml");
    assert_eq!(ps.len(), 2, "{ps:#?}");
    assert_eq!(
        (ps[0].path.as_str(), ps[0].line),
        ("plugins.ntfyy", Some(2))
    );
    assert!(
        ps[0]
            .message
            .contains("unknown plugin type `ntfyy` (did you mean `ntfy`?)"),
        "{}",
        ps[0].message
    );
    assert!(
        ps[0].message.contains("add e.g. `type: ntfy`"),
        "{}",
        ps[0].message
    );
    assert_eq!(
        (ps[1].path.as_str(), ps[1].line),
        ("plugins.alerts.type", Some(6))
    );
    assert!(
        ps[1].message.contains("built types: ntfy"),
        "{}",
        ps[1].message
    );
}

#[test]
fn reports_every_mistake_at_once() {
    let ps = problems("several_mistakes.yaml");
    let got: Vec<(&str, Option<usize>)> = ps.iter().map(|p| (p.path.as_str(), p.line)).collect();
    assert_eq!(
        got,
        [
            ("server.listen", Some(2)),
            ("hooks.timeout_ms", Some(4)),
            ("supervision.breaker_failure_rate", Some(6)),
            ("supervision.max_restart", Some(7)),
            ("plugins.ntfy.topic", Some(9)),
            ("plugins.ntfy.prority", Some(11)),
            ("plugins.ntfy.priority", Some(12)),
            ("plugins.ntfy.events[0]", Some(14)),
            ("plugins.ntfy_lan.server_url", Some(19)),
            ("plugins.ntfy_lan.auth_token", Some(21)),
        ],
        "{ps:#?}"
    );
    assert!(
        ps[3].message.contains("did you mean `max_restarts`"),
        "{}",
        ps[3].message
    );
    assert!(
        ps[7].message.contains("did you mean `after_media_added`"),
        "{}",
        ps[7].message
    );
    let text = load_with("several_mistakes.yaml", &[])
        .unwrap_err()
        .to_string();
    assert!(text.contains("has 10 problems:"), "{text}");
}

#[test]
fn a_whole_env_reference_can_fill_a_number_or_boolean() {
    let yaml = "plugins:\n  ntfy:\n    enabled: ${ON}\n    timeout_ms: ${T}\n    topic: ${TOPIC}\n    priority: ${P}\n";
    let vars = |k: &str| match k {
        "ON" => Some("true".to_owned()),
        "T" => Some("2500".to_owned()),
        "TOPIC" => Some("12345".to_owned()),
        "P" => Some("5".to_owned()),
        _ => None,
    };
    let c = Config::parse_with_env(yaml, None, vars).unwrap();
    assert!(c.plugins[0].common.enabled);
    assert_eq!(
        c.plugins[0].common.timeout,
        Some(Duration::from_millis(2500))
    );
    let n = ntfy(&c, "ntfy");
    // A text field keeps the text, even when it looks like a number.
    assert_eq!(n.topic.as_deref(), Some("12345"));
    assert_eq!(n.priority, 5);
}

#[test]
fn never_panics_on_hostile_input() {
    let deep_flow = format!("plugins: {}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_block: String = (0..300)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i * 2)))
        .collect();
    let inputs: Vec<String> = [
        "",
        "plugins: 5",
        "plugins:\n  ntfy: [1,2]",
        "plugins:\n  ntfy: 7\n  5: {}\n  ? [a]\n  : b",
        "plugins:\n  ntfy:\n    type: [x]\n    events: {a: b}\n    enabled: maybe\n    timeout_ms: -1",
        "plugins:\n  ntfy:\n    events: [1, ~, [a]]\n    tags: 5\n    1: 2",
        "- a\n- b",
        "just a string",
        "~",
        "server: []\nhooks: 5\nsupervision: x\nextra: 1",
        "server:\n  listen: {a: 1}",
        "supervision:\n  breaker_failure_rate: .nan\n  backlog: 99999999999999999999",
        "a: &x [*x]",
        "a: *nope",
        "<<: 5",
        "---\na: 1\n---\nb: 2",
        "\u{0}\u{1}\u{2}\u{7f}",
        "\u{feff}plugins: {}",
        "plugins:\n  ntfy:\n    topic: ${",
        "plugins:\n  ntfy:\n    topic: '${A}${B'",
        "ключ: значение",
        "\t\t\t",
        ":::",
        "{{{{",
        "'",
    ]
    .into_iter()
    .map(String::from)
    .chain([deep_flow, deep_block])
    .chain((0u8..=255).map(|b| String::from_utf8_lossy(&[b'a', b':', b' ', b, b'\n', b]).into_owned()))
    .collect();
    for input in &inputs {
        let result = std::panic::catch_unwind(|| Config::parse_with_env(input, None, |_| None));
        assert!(result.is_ok(), "panicked on {input:?}");
        if let Ok(Err(ConfigError::Invalid { problems, .. })) = result {
            assert!(
                !problems.is_empty(),
                "an error with no problems for {input:?}"
            );
        }
    }
}

#[test]
fn the_old_backlog_setting_loads_with_a_warning_to_remove_it() {
    let c = mydia_plugins::Config::parse("supervision:\n  backlog: 1000\n", None).unwrap();
    assert_eq!(c.warnings.len(), 1, "{:#?}", c.warnings);
    assert_eq!(c.warnings[0].path, "supervision.backlog");
    assert!(c.warnings[0].message.contains("storage.max_pending"));
}
