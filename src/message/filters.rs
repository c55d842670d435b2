//! The template environment: the builtin Jinja filters plus `filesize`, `duration` and `truncate`.
//!
//! Every filter is lenient like the rest of rendering: event data is optional and may have
//! been changed by hooks, so a value of the wrong type is shown as it is (an undefined
//! value as nothing) instead of failing the message.

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};

use crate::plugins::notification::text::{human_size, truncate_chars};

/// Fuel for one render: about 50,000 instructions or 3 MB of data (minijinja's own
/// measure). A message template needs a few hundred; a loop over a season of episodes a
/// few thousand. A runaway loop stops here and the message falls back to the built-in text.
pub const FUEL: u64 = 50_000;

/// `truncate` without a length keeps this many characters.
const DEFAULT_TRUNCATE_CHARS: usize = 255;

/// The environment templates are compiled in: no loader (a template is one config string,
/// never a file), our filters, the fuel limit and the given undefined behaviour.
pub fn environment(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    env.set_fuel(Some(FUEL));
    // Plain text: the plugin escapes for its service afterwards, so no HTML escaping here
    // (it would show `&amp;` in a push notification).
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("filesize", filesize);
    env.add_filter("duration", duration);
    env.add_filter("truncate", truncate);
    env
}

/// Whether `env` has a filter `name`: minijinja looks filters up only when it runs them,
/// so a one-filter expression is run, and any failure but "unknown filter" found it.
pub fn exists(env: &Environment<'_>, name: &str) -> bool {
    let Ok(expr) = env.compile_expression_owned(format!("__probe|{name}")) else {
        return false;
    };
    let ctx = Value::from_pairs([("__probe", Value::from(""))]);
    !matches!(expr.eval(ctx), Err(e) if e.kind() == ErrorKind::UnknownFilter)
}

/// Whether `env` has a test `name` (as [`exists`] does for filters).
pub fn test_exists(env: &Environment<'_>, name: &str) -> bool {
    let Ok(expr) = env.compile_expression_owned(format!("__probe is {name}")) else {
        return false;
    };
    let ctx = Value::from_pairs([("__probe", Value::from(""))]);
    !matches!(expr.eval(ctx), Err(e) if e.kind() == ErrorKind::UnknownTest)
}

/// Jinja's usual tests that `env` has, for "did you mean".
pub fn known_tests(env: &Environment<'_>) -> Vec<&'static str> {
    const TESTS: &[&str] = &[
        "defined",
        "undefined",
        "none",
        "true",
        "false",
        "number",
        "integer",
        "float",
        "string",
        "sequence",
        "mapping",
        "iterable",
        "odd",
        "even",
        "divisibleby",
        "in",
        "startingwith",
        "endingwith",
        "lower",
        "upper",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
    ];
    TESTS
        .iter()
        .copied()
        .filter(|t| test_exists(env, t))
        .collect()
}

/// Ours, then the builtins of [`BUILTIN_FILTERS`] that `env` has: the names offered when
/// a template names an unknown one.
pub fn known(env: &Environment<'_>) -> Vec<&'static str> {
    ["filesize", "duration", "truncate"]
        .into_iter()
        .chain(BUILTIN_FILTERS.iter().copied().filter(|f| exists(env, f)))
        .collect()
}

/// Jinja's usual filters, offered as "did you mean" (only those this minijinja has).
const BUILTIN_FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "default",
    "dictsort",
    "escape",
    "first",
    "float",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "trim",
    "unique",
    "upper",
    "wordcount",
];

/// Bytes as the built-in texts show them: `15032385536|filesize` → "14.0 GiB". A
/// numeric string works too; anything else is shown as it is.
pub fn filesize(value: Value) -> Value {
    match number(&value) {
        Some(bytes) => Value::from(human_size(bytes)),
        None => value,
    }
}

/// A length of time in words: `5520|duration` → "1 h 32 min". Seconds by default (as
/// `position_seconds`); `duration("min")` reads minutes (as TMDB's `runtime`). Hours and
/// minutes from one hour up, minutes and seconds below; anything not a number is shown
/// as it is.
pub fn duration(value: Value, unit: Option<String>) -> Result<Value, minijinja::Error> {
    let scale = match unit.as_deref().map(str::trim) {
        None | Some("s" | "sec" | "secs" | "seconds") => 1.0,
        Some("m" | "min" | "mins" | "minutes") => 60.0,
        Some("h" | "hours") => 3600.0,
        Some(other) => {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("duration unit `{other}` is not one of \"s\", \"min\", \"h\""),
            ))
        }
    };
    let Some(n) = number(&value) else {
        return Ok(value);
    };
    let total = (n * scale).max(0.0).round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    let text = match (h, m, s) {
        (0, 0, s) => format!("{s} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    };
    Ok(Value::from(text))
}

/// At most `length` characters (default 255), ending in "…" when cut.
pub fn truncate(value: Value, length: Option<usize>) -> Value {
    let length = length.unwrap_or(DEFAULT_TRUNCATE_CHARS);
    let text = match value.as_str() {
        Some(s) => truncate_chars(s, length).into_owned(),
        None if value.is_undefined() || value.is_none() => return value,
        None => truncate_chars(&value.to_string(), length).into_owned(),
    };
    Value::from(text)
}

/// A number, or a string holding one.
fn number(value: &Value) -> Option<f64> {
    if let Some(s) = value.as_str() {
        return s.trim().parse::<f64>().ok().filter(|f| f.is_finite());
    }
    f64::try_from(value.clone()).ok().filter(|f| f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str) -> String {
        environment(UndefinedBehavior::Chainable)
            .render_str(source, Value::from(()))
            .unwrap()
    }

    #[test]
    fn filesize_reads_numbers_and_numeric_strings() {
        assert_eq!(render("{{ 15032385536|filesize }}"), "14.0 GiB");
        assert_eq!(render("{{ '1536'|filesize }}"), "1.5 KiB");
        assert_eq!(render("{{ 512|filesize }}"), "512 B");
        assert_eq!(render("{{ 'big'|filesize }}"), "big");
        assert_eq!(render("{{ missing|filesize }}"), "");
    }

    #[test]
    fn duration_reads_seconds_or_minutes() {
        assert_eq!(render("{{ 5520|duration }}"), "1 h 32 min");
        assert_eq!(render("{{ 92|duration('min') }}"), "1 h 32 min");
        assert_eq!(render("{{ 7200|duration }}"), "2 h");
        assert_eq!(render("{{ 200|duration }}"), "3 min 20 s");
        assert_eq!(render("{{ 180|duration }}"), "3 min");
        assert_eq!(render("{{ 42.4|duration }}"), "42 s");
        assert_eq!(render("{{ -5|duration }}"), "0 s");
        assert_eq!(render("{{ 'soon'|duration }}"), "soon");
        let err = environment(UndefinedBehavior::Chainable)
            .render_str("{{ 5|duration('days') }}", Value::from(()))
            .unwrap_err();
        assert!(err.to_string().contains("duration unit"), "{err}");
    }

    #[test]
    fn truncate_counts_characters_and_ends_in_an_ellipsis() {
        assert_eq!(render("{{ 'Breaking Bad'|truncate(8) }}"), "Breakin…");
        assert_eq!(render("{{ 'Dune'|truncate(8) }}"), "Dune");
        assert_eq!(render("{{ '千と千尋の神隠し'|truncate(4) }}"), "千と千…");
        assert_eq!(render("{{ 20212021|truncate(3) }}"), "20…");
        assert_eq!(render("{{ missing|truncate(3) }}"), "");
        assert_eq!(render("{{ ('x' * 300)|truncate }}").chars().count(), 255);
    }

    #[test]
    fn output_is_not_html_escaped() {
        assert_eq!(render("{{ '<b>&' }}"), "<b>&");
    }
}
