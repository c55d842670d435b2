//! Logging: pretty (default) or JSON lines, filtered `RUST_LOG`-style; panics go to the log too.
//!
//! Every logged value is made safe ([`safe`]): control characters escaped, long values cut.
//! Colours only when standard error is a terminal (and `NO_COLOR` is not set), so files and
//! pipes get plain text.

mod json;
mod safe;

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub use json::{JsonFields, JsonLines};
pub use safe::{safe, write_safe, SafeFields, MAX_VALUE_BYTES};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable, coloured when the output is a terminal.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Install the global subscriber, writing to standard error. `filter` is a `RUST_LOG`-style
/// directive string; the `RUST_LOG` environment variable wins when set.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    subscriber(format, filter, std::io::stderr, colour).init();
    // A plugin's panic is caught and becomes a restart; log it as one line instead of
    // letting the default hook print a bare message to stderr.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        tracing::error!(target: "panic", thread = %thread, location = %location, "panicked: {message}");
    }));
}

/// The subscriber [`init`] installs, writing to `writer`; `colour` turns on ANSI colours
/// (pretty format only).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    colour: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Pretty => Box::new(
            builder
                .with_ansi(colour)
                .with_target(true)
                .fmt_fields(SafeFields)
                .finish(),
        ),
        LogFormat::Json => Box::new(
            builder
                .with_ansi(false)
                .event_format(JsonLines)
                .fmt_fields(JsonFields)
                .finish(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

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

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    fn logged(format: LogFormat, colour: bool, emit: impl FnOnce()) -> String {
        let buf = Buf::default();
        let sub = subscriber(format, EnvFilter::new("trace"), buf.clone(), colour);
        tracing::subscriber::with_default(sub, emit);
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn forged() {
        let title = "Dune\n2024-01-01T00:00:00Z  INFO api: forged line\0";
        let span = tracing::info_span!("hook", hook = "a\nb.lua");
        let _e = span.enter();
        tracing::info!(target: "notifications", title = %title, plain = title, big = %"x".repeat(5000), n = 3, "sent: {title}");
    }

    #[test]
    fn pretty_lines_cannot_be_forged_and_have_no_colour_off_a_terminal() {
        let out = logged(LogFormat::Pretty, false, forged);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\0') && !out.contains('\x1b'), "{out:?}");
        assert!(
            out.contains(r"title=Dune\n2024-01-01T00:00:00Z  INFO api: forged line\u{0}"),
            "{out}"
        );
        assert!(out.contains(r#"plain="Dune\n2024"#), "{out}");
        assert!(out.contains(r#"hook{hook="a\nb.lua"}"#), "{out}");
        assert!(out.contains("… [cut: 5000 bytes in all] n=3"), "{out}");
        assert!(out.len() < 2000, "{}", out.len());
    }

    #[test]
    fn pretty_lines_on_a_terminal_are_coloured() {
        let out = logged(LogFormat::Pretty, true, forged);
        assert!(out.contains("\x1b["), "{out:?}");
        assert_eq!(out.lines().count(), 1, "{out}");
    }

    #[test]
    fn json_lines_are_cut_and_keep_their_shape() {
        let out = logged(LogFormat::Json, true, forged);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\x1b'), "{out:?}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "notifications");
        assert_eq!(v["n"], 3);
        assert_eq!(
            v["title"],
            r"Dune\n2024-01-01T00:00:00Z  INFO api: forged line\u{0}"
        );
        assert!(
            v["message"].as_str().unwrap().starts_with(r"sent: Dune\n"),
            "{v}"
        );
        assert!(
            v["big"]
                .as_str()
                .unwrap()
                .ends_with("… [cut: 5000 bytes in all]"),
            "{v}"
        );
        assert_eq!(v["spans"][0]["name"], "hook");
        assert_eq!(v["spans"][0]["hook"], r"a\nb.lua");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'), "{v}");
    }
}
