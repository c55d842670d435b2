//! The JSON line format: `{"timestamp", "level", <fields>, "target", "spans"}` as
//! tracing-subscriber's flattened JSON writes it, with every string value made safe.
//!
//! tracing-subscriber's own JSON formatter records event fields with a visitor of its own,
//! past any field formatter, so it cannot cut a 1 MB title; this one can.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::safe::safe;

/// Formats each event as one JSON object per line.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

/// Span fields as a JSON object (kept in the span, read back by [`JsonLines`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonFields;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let meta = event.metadata();
        let mut out = Map::new();
        out.insert("timestamp".into(), timestamp.into());
        out.insert("level".into(), meta.level().as_str().into());
        let mut fields = Collect::default();
        event.record(&mut fields);
        // A record from the `log` crate names its real target in a field.
        let target = fields
            .log_target
            .take()
            .unwrap_or_else(|| meta.target().to_owned());
        out.extend(fields.map);
        out.insert("target".into(), target.into());
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<Value> = scope
                .from_root()
                .map(|span| {
                    let ext = span.extensions();
                    let mut obj = ext
                        .get::<FormattedFields<N>>()
                        .and_then(|f| serde_json::from_str::<Map<String, Value>>(&f.fields).ok())
                        .unwrap_or_default();
                    obj.insert("name".into(), span.name().into());
                    Value::Object(obj)
                })
                .collect();
            out.insert("spans".into(), spans.into());
        }
        let line = serde_json::to_string(&out).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut c = Collect::default();
        fields.record(&mut c);
        let text = serde_json::to_string(&c.map).map_err(|_| fmt::Error)?;
        write!(writer, "{text}")
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut c = Collect {
            map: serde_json::from_str(&current.fields).unwrap_or_default(),
            log_target: None,
        };
        fields.record(&mut c);
        current.fields = serde_json::to_string(&c.map).map_err(|_| fmt::Error)?;
        Ok(())
    }
}

/// Fields into a JSON map: strings made safe, numbers and booleans as they are.
#[derive(Default)]
struct Collect {
    map: Map<String, Value>,
    log_target: Option<String>,
}

impl Collect {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "log.target" {
            self.log_target = value.as_str().map(str::to_owned);
        } else if !name.starts_with("log.") {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.map.insert(name.to_owned(), value);
        }
    }
}

impl Visit for Collect {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value)
            .map_or_else(|| value.to_string().into(), Value::Number);
        self.put(field, v);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, safe(value).into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        self.put(field, safe(&text).into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, safe(&format!("{value:?}")).into());
    }
}
