//! Templates from YAML to rendered text: compile problems, rendering, fall-back, check warnings.

use std::io;
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::*;
use crate::config::Problems;
use crate::event::{Event, EventName};

const ALL_PARTS: &[Part] = &[Part::Title, Part::Message, Part::Tags, Part::Click];

struct Compiled {
    templates: Option<Templates>,
    problems: Vec<String>,
    warnings: Vec<String>,
}

fn lines(p: Problems) -> Vec<String> {
    p.into_vec()
        .into_iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect()
}

fn compile_for(yaml: &str, parts: &[Part], events: &[EventName]) -> Compiled {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    let (mut problems, mut warnings) = (Problems::default(), Problems::default());
    let target = Target {
        instance: "ntfy_home",
        kind: "ntfy",
        parts,
        events,
    };
    let templates = compile(
        &target,
        "plugins.ntfy_home.templates",
        value,
        &mut problems,
        &mut warnings,
    );
    Compiled {
        templates,
        problems: lines(problems),
        warnings: lines(warnings),
    }
}

fn compiled(yaml: &str) -> Templates {
    let c = compile_for(yaml, ALL_PARTS, EventName::ALL);
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    c.templates.expect("compiled")
}

fn event(name: EventName, data: serde_json::Value) -> Event {
    Event::new(name, data.as_object().cloned().unwrap_or_default()).with_id("ev-1")
}

fn dune() -> Event {
    event(
        EventName::AfterMediaAdded,
        json!({"media_item": {"title": "Dune", "year": 2021, "runtime": 155}, "size": 15_032_385_536u64}),
    )
}

#[test]
fn renders_data_fields_event_and_plugin_context_and_filters() {
    let t = compiled(
        r#"
after_media_added:
  title: "{{ media_item.title }} ({{ media_item.year }}) added"
  message: "{{ media_item.runtime|duration('min') }} · {{ size|filesize }} · {{ event.name }} {{ event.id }} via {{ plugin }} · {{ media_item.title|truncate(3) }}"
  tags: ["movie", "{{ media_item.year }}"]
"#,
    );
    let r = t.render(&dune()).expect("a template applies");
    assert_eq!(r.get(Part::Title), Some("Dune (2021) added"));
    assert_eq!(
        r.get(Part::Message),
        Some("2 h 35 min · 14.0 GiB · after_media_added ev-1 via ntfy_home · Du…")
    );
    assert_eq!(r.all(Part::Tags).collect::<Vec<_>>(), ["movie", "2021"]);
    assert_eq!(r.get(Part::Click), None, "not templated");
}

#[test]
fn own_template_first_then_default_and_aliases_name_events() {
    let t =
        compiled("media_item.added: {title: 'own'}\ndefault: {title: 'default {{ event.name }}'}");
    assert_eq!(t.render(&dune()).unwrap().get(Part::Title), Some("own"));
    let failed = event(EventName::OnDownloadFailed, json!({}));
    assert_eq!(
        t.render(&failed).unwrap().get(Part::Title),
        Some("default on_download_failed")
    );
    let only_own = compiled("after_media_added: {title: x}");
    assert!(
        only_own.render(&failed).is_none(),
        "no template: the built-in text"
    );
}

#[test]
fn missing_data_renders_empty_and_an_empty_part_keeps_the_built_in_text() {
    let t = compiled(
        "default: {title: '{{ nothing.here.at_all }}', message: 'by {{ user.name }}!{{ media_item.title }}'}",
    );
    let r = t
        .render(&event(EventName::OnPlaybackStarted, json!({})))
        .unwrap();
    assert_eq!(r.get(Part::Title), None, "empty: built-in title");
    assert_eq!(r.get(Part::Message), Some("by !"));
}

#[test]
fn data_fields_named_like_ours_stay_reachable_under_data() {
    let t = compiled("default: {title: '{{ plugin }} / {{ data.plugin }}'}");
    let health = event(
        EventName::OnPluginHealthChanged,
        json!({"plugin": "discord"}),
    );
    assert_eq!(
        t.render(&health).unwrap().get(Part::Title),
        Some("ntfy_home / discord")
    );
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn logged(f: impl FnOnce()) -> String {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // A second live dispatcher, so a callsite another test hit first (with no subscriber
    // on its thread) is not cached as "never" (see tests/integration/support/logs.rs).
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
    tracing::callsite::rebuild_interest_cache();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buf.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_template_failing_at_run_time_falls_back_and_is_logged_once() {
    let t = compiled(
        r#"
default:
  title: "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
  message: "{{ media_item.title }} {{ 1 + media_item.title }}"
after_media_added:
  title: "fine {{ media_item.title }}"
"#,
    );
    let failed = event(
        EventName::OnDownloadFailed,
        json!({"media_item": {"title": "Dune"}}),
    );
    let log = logged(|| {
        for _ in 0..3 {
            let r = t.render(&failed).unwrap();
            assert_eq!(r.get(Part::Title), None, "out of fuel: built-in title");
            assert_eq!(r.get(Part::Message), None, "a type error: built-in message");
            let failed: Vec<&str> = r.failed.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(
                failed,
                ["default.title", "default.message"],
                "every render says so"
            );
            assert_eq!(
                t.render(&dune()).unwrap().get(Part::Title),
                Some("fine Dune")
            );
        }
    });
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 2, "once per template, not per event: {log}");
    assert!(
        warnings[0].contains("template=default.title")
            && warnings[0].contains("plugin=ntfy_home")
            && warnings[0].contains("fuel"),
        "{log}"
    );
    assert!(warnings[1].contains("template=default.message"), "{log}");
}

#[test]
fn syntax_errors_and_unknown_filters_are_problems_at_their_path_with_the_template_line() {
    let c = compile_for(
        "after_media_added:\n  title: \"{{ media_item.title \"\n  message: \"a\\nb {{ x|filesise }}\"\ndefault: {message: '{% if a|lenght %}{% endif %}', title: '{% if a is not defnied %}{% endif %}'}",
        ALL_PARTS,
        EventName::ALL,
    );
    assert!(c.templates.is_none());
    assert_eq!(c.problems.len(), 4, "{:?}", c.problems);
    assert!(
        c.problems[3].contains("default.title: unknown test `defnied` (did you mean `defined`?)"),
        "{}",
        c.problems[3]
    );
    assert!(
        c.problems[0].starts_with("plugins.ntfy_home.templates.after_media_added.title: template does not compile: syntax error")
            && c.problems[0].contains("(line 1 of the template)"),
        "{}",
        c.problems[0]
    );
    assert!(
        c.problems[1].starts_with("plugins.ntfy_home.templates.after_media_added.message: unknown filter `filesise` (did you mean `filesize`?) (line 2 of the template)"),
        "{}",
        c.problems[1]
    );
    assert!(
        c.problems[2].contains("unknown filter `lenght` (did you mean `length`?)"),
        "{}",
        c.problems[2]
    );
}

#[test]
fn unknown_keys_and_parts_are_problems_that_suggest_a_near_name() {
    let c = compile_for(
        "after_media_aded: {title: x}\ndefault: {titel: x, color: x}\ndigest: [x]",
        ALL_PARTS,
        EventName::ALL,
    );
    assert_eq!(c.problems.len(), 4, "{:?}", c.problems);
    assert!(
        c.problems[0].starts_with("plugins.ntfy_home.templates.after_media_aded: unknown template key `after_media_aded` (did you mean `after_media_added`?)"),
        "{}",
        c.problems[0]
    );
    assert!(
        c.problems[1].starts_with("plugins.ntfy_home.templates.default.titel: unknown field `titel` (did you mean `title`?); ntfy templates take: title, message, tags, click"),
        "{}",
        c.problems[1]
    );
    assert!(
        c.problems[2].starts_with(
            "plugins.ntfy_home.templates.default.color: ntfy messages have no `color`"
        ),
        "{}",
        c.problems[2]
    );
    assert!(
        c.problems[3].starts_with("plugins.ntfy_home.templates.digest: must be a mapping"),
        "{}",
        c.problems[3]
    );
    let twice = compile_for(
        "after_media_added: {title: a}\nmedia_item.added: {title: b}",
        ALL_PARTS,
        EventName::ALL,
    );
    assert!(
        twice.problems[0].contains("given twice"),
        "{:?}",
        twice.problems
    );
}

#[test]
fn fields_are_checked_and_rendered() {
    let parts = &[Part::Title, Part::Message, Part::Fields];
    let c = compile_for(
        "default:\n  fields:\n    - {name: Size, value: '{{ size|filesize }}', inline: true}\n    - {name: Gone, value: '{{ nothing }}'}\n    - {name: x, valeu: y}\n    - {value: y}",
        parts,
        EventName::ALL,
    );
    assert_eq!(c.problems.len(), 3, "{:?}", c.problems);
    assert!(
        c.problems[0]
            .contains("default.fields[2].valeu: unknown field `valeu` (did you mean `value`?)"),
        "{:?}",
        c.problems
    );
    let t = compile_for(
        "default:\n  fields:\n    - {name: Size, value: '{{ size|filesize }}', inline: true}\n    - {name: Gone, value: '{{ nothing }}'}",
        parts,
        EventName::ALL,
    )
    .templates
    .unwrap();
    let r = t.render(&dune()).unwrap();
    assert_eq!(
        r.fields,
        [RenderedField {
            name: "Size".into(),
            value: "14.0 GiB".into(),
            inline: true
        }],
        "a field whose value renders empty is left out"
    );
}

#[test]
fn digest_is_compiled_and_rendered_with_a_given_context() {
    let t = compiled("digest: {title: '{{ count }} imports of {{ series }}'}");
    assert!(
        t.for_event(EventName::AfterMediaAdded).is_none(),
        "digest is not a default"
    );
    let digest = t.digest().expect("kept");
    let ctx = minijinja::Value::from_pairs([
        ("count", minijinja::Value::from(13)),
        ("series", minijinja::Value::from("Breaking Bad S02")),
    ]);
    assert_eq!(
        t.render_with(digest, ctx).get(Part::Title),
        Some("13 imports of Breaking Bad S02")
    );
}

#[test]
fn check_warns_about_variables_a_sample_event_lacks() {
    let c = compile_for(
        r#"
after_media_added:
  title: "{{ media_item.titel }} {{ media_item.title }} {{ media_item.title|upper }}"
  message: "{% if media_item.tmdb_id %}{{ release_name }}{% endif %} {{ range(3)|list|length }}"
default:
  title: "{{ release_name }}"
on_download_completed:
  title: "{{ event.name }} {{ plugin }} {{ data.release_name }} {{ media_item.year|string }}"
"#,
        ALL_PARTS,
        &[
            EventName::AfterMediaAdded,
            EventName::OnDownloadCompleted,
            EventName::OnDownloadFailed,
            EventName::OnImportFailed,
        ],
    );
    assert!(
        c.problems.is_empty(),
        "undefined variables are warnings: {:?}",
        c.problems
    );
    assert!(c.templates.is_some());
    assert_eq!(c.warnings.len(), 3, "{:#?}", c.warnings);
    assert!(
        c.warnings[0].starts_with("plugins.ntfy_home.templates.after_media_added.title: `media_item.titel` is undefined (did you mean `title`?)")
            && c.warnings[0].contains("sample after_media_added event"),
        "{}",
        c.warnings[0]
    );
    assert!(
        c.warnings[1].starts_with(
            "plugins.ntfy_home.templates.after_media_added.message: `release_name` is undefined"
        ),
        "{}",
        c.warnings[1]
    );
    assert!(
        c.warnings[2]
            .starts_with("plugins.ntfy_home.templates.default.title: `release_name` is undefined")
            && c.warnings[2].contains("sample on_import_failed event;"),
        "default is checked against the events without their own: {}",
        c.warnings[2]
    );
}

#[test]
fn a_template_for_an_event_not_received_is_a_warning() {
    let c = compile_for(
        "on_import_failed: {title: x}",
        ALL_PARTS,
        &[EventName::AfterMediaAdded],
    );
    assert!(c.problems.is_empty());
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0].contains("does not receive `on_import_failed`"),
        "{}",
        c.warnings[0]
    );
}

#[test]
fn equal_sources_make_equal_templates() {
    assert_eq!(
        compiled("default: {title: a}"),
        compiled("default: {title: a}")
    );
    assert_ne!(
        compiled("default: {title: a}"),
        compiled("default: {title: b}")
    );
}

#[test]
fn the_readme_example_compiles_and_reads_well_on_its_sample() {
    let yaml = r#"
after_import_completed:
  title: "{{ media_item.title }} {{ episode.season_number }}x{{ episode.episode_number }} is ready"
  message: |
    {{ episode.title }}{% if media_file.resolution %} · {{ media_file.resolution }}{% endif %} · {{ media_file.size|filesize }}
    {{ media_item.overview|truncate(120) }}
  tags: "tv, {{ media_file.resolution }}"
  click: "https://www.themoviedb.org/tv/{{ media_item.tmdb_id }}"
on_download_failed:
  title: "Download failed: {{ media_item.title }}"
  message: "{{ release_name }}: {{ error_message }}"
default:
  title: "{{ event.name }}"
"#;
    let c = compile_for(yaml, ALL_PARTS, EventName::ALL);
    assert!(
        c.problems.is_empty() && c.warnings.is_empty(),
        "{:?} {:?}",
        c.problems,
        c.warnings
    );
    let t = c.templates.unwrap();
    let r = t
        .render(&sample::event(EventName::AfterImportCompleted))
        .unwrap();
    assert_eq!(r.get(Part::Title), Some("The Office 2x3 is ready"));
    assert_eq!(
        r.get(Part::Message),
        Some("The Dundies · 1080p · 1.2 GiB\nA mockumentary on a group of typical office workers.")
    );
    assert_eq!(r.get(Part::Tags), Some("tv, 1080p"));
    assert_eq!(
        r.get(Part::Click),
        Some("https://www.themoviedb.org/tv/2316")
    );
}

#[test]
fn check_warns_about_a_template_that_fails_on_its_sample() {
    let c = compile_for(
        "after_media_added: {title: \"{{ media_item.title + 1 }}\"}",
        ALL_PARTS,
        &[EventName::AfterMediaAdded],
    );
    assert!(c.problems.is_empty() && c.templates.is_some());
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].starts_with("plugins.ntfy_home.templates.after_media_added.title: fails: ")
            && c.warnings[0].ends_with("with the sample after_media_added event; the built-in text is sent whenever it fails"),
        "{}",
        c.warnings[0]
    );
}

#[test]
fn check_renders_the_digest_template_against_a_sample_digest() {
    let c = compile_for(
        r#"
digest:
  title: "{{ digest.count }} new: {{ digest.title }}"
  message: "{{ digest.cont }} {% for e in digest.events %}{{ e.data.media_item.title }} {% endfor %}"
"#,
        ALL_PARTS,
        &[EventName::AfterImportCompleted],
    );
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert_eq!(c.warnings.len(), 1, "{:#?}", c.warnings);
    assert!(
        c.warnings[0].starts_with("plugins.ntfy_home.templates.digest.message: `digest.cont` is undefined (did you mean `count`?)")
            && c.warnings[0].contains("sample digest"),
        "{}",
        c.warnings[0]
    );
}
