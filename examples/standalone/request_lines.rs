//! Request log lines written straight from each [`RequestLog`].
//!
//! [`TracingLogSink`](tower_data_api::log::TracingLogSink) turns every
//! request into a `tracing` event, which the subscriber then takes apart
//! field by field through dynamic visitors and `fmt` machinery: a JSON line
//! cost 2.5–3 µs per request, half of what the service spends on a findOne
//! (`integration-tests/benches/request_cost.rs`). This sink
//! writes the same line, byte for byte (text without colours, or JSON), from
//! the entry's fields into the batched standard error, copying bytes rather
//! than formatting where it can: 0.2–0.4 µs per line. Other events still
//! go through `tracing`, and `RUST_LOG` still decides which request lines
//! are written: a line is written when its level is enabled for the target
//! `tower_data_api::request` (filters on field values are not applied).

use std::cell::RefCell;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tower_data_api::log::{LogSink, RequestLog};

use super::log_output::{debug_is_verbatim, BatchedStderr};
use super::LogFormat;

/// The target and message request events carry.
const TARGET: &str = "tower_data_api::request";
const MESSAGE: &str = "data api request";

/// Writes request log lines in `format` to the batched standard error.
#[derive(Clone)]
pub struct RequestLines {
    format: LogFormat,
    out: BatchedStderr,
}

impl RequestLines {
    /// Lines in `format` (text without colours, or JSON) to `out`.
    pub(crate) fn new(format: LogFormat, out: BatchedStderr) -> Self {
        RequestLines { format, out }
    }
}

impl std::fmt::Debug for RequestLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLines")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// Whether `tracing` would write an event at `level` for the target.
fn enabled(level: tracing::Level) -> bool {
    match level {
        tracing::Level::ERROR => tracing::enabled!(target: TARGET, tracing::Level::ERROR),
        tracing::Level::WARN => tracing::enabled!(target: TARGET, tracing::Level::WARN),
        _ => tracing::enabled!(target: TARGET, tracing::Level::INFO),
    }
}

thread_local! {
    /// Each thread's line buffer, reused.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The last second a timestamp was written for, and its text up to
    /// the seconds (`2026-12-07T21:51:03`).
    static SECOND: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

impl LogSink for RequestLines {
    fn record(&self, log: &RequestLog) {
        let level = log.level();
        if !enabled(level) {
            return;
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            match self.format {
                LogFormat::Text => text_line(line, SystemTime::now(), level, log),
                LogFormat::Json => json_line(line, SystemTime::now(), level, log),
            }
            line.push(b'\n');
            self.out.append(line);
        });
    }
}

/// `now` as `tracing_subscriber` writes it: RFC 3339 in UTC with
/// microseconds (truncated), `2026-12-07T21:51:03.446315Z`.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let second = since_epoch.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            text.clear();
            let at = i64::try_from(second)
                .ok()
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            let _ = write!(text, "{at:.0}");
            text.pop(); // The `Z`, written after the fraction.
            *cached = second;
        }
        out.extend_from_slice(text);
    });
    // `.` and the microseconds in six digits, zero-padded.
    push_integer(out, since_epoch.subsec_micros() + 1_000_000);
    let dot = out.len() - 7;
    out[dot] = b'.';
    out.push(b'Z');
}

/// `value` in decimal, without `fmt`.
fn push_integer(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// The fields of a request's line, in the order `TracingLogSink` records
/// them; absent values are left out.
fn write_fields(fields: &mut impl LineFields, log: &RequestLog) {
    fields.display("request_id", &log.request_id);
    fields.display("method", &log.method);
    fields.string("action", log.action);
    fields.string("principal_id", log.principal_id.as_deref());
    fields.string("principal_name", log.principal_name.as_deref());
    fields.string("data_source", log.data_source.as_deref());
    fields.string("database", log.database.as_deref());
    fields.string("collection", log.collection.as_deref());
    fields.number("status", Some(u64::from(log.status)));
    fields.string("error_code", log.error_code);
    fields.string("error", log.error.as_deref());
    fields.number("documents", log.documents);
    fields.string("auth_scheme", log.auth_scheme.as_deref());
    fields.number("request_bytes", log.request_bytes);
    fields.number("response_bytes", log.response_bytes);
    fields.float("duration_ms", log.duration.as_secs_f64() * 1000.0);
}

/// How one line format writes each kind of field.
trait LineFields {
    /// A value recorded with `Display` (a `%` field).
    fn display(&mut self, name: &str, value: &str);
    fn string(&mut self, name: &str, value: Option<&str>);
    fn number(&mut self, name: &str, value: Option<u64>);
    fn float(&mut self, name: &str, value: f64);
}

/// The line `tracing_subscriber`'s default format writes without colours,
/// with the fields written as `log_output::PlainFields` writes them.
fn text_line(out: &mut Vec<u8>, now: SystemTime, level: tracing::Level, log: &RequestLog) {
    timestamp(out, now);
    // The level right-aligned in five columns, as `{:>5}` pads it.
    let level = level.as_str();
    out.extend_from_slice(&b"      "[..6usize.saturating_sub(level.len())]);
    out.extend_from_slice(level.as_bytes());
    out.push(b' ');
    out.extend_from_slice(TARGET.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(MESSAGE.as_bytes());
    write_fields(&mut TextFields(out), log);
}

/// ` name=value` pairs of a text line.
struct TextFields<'a>(&'a mut Vec<u8>);

impl TextFields<'_> {
    /// ` name=`: bytes copied, not formatted (most of a line's cost was
    /// `fmt` machinery).
    fn name(&mut self, name: &str) {
        self.0.push(b' ');
        self.0.extend_from_slice(name.as_bytes());
        self.0.push(b'=');
    }
}

impl LineFields for TextFields<'_> {
    fn display(&mut self, name: &str, value: &str) {
        self.name(name);
        self.0.extend_from_slice(value.as_bytes());
    }

    /// Quoted, and escaped as `Debug` does.
    fn string(&mut self, name: &str, value: Option<&str>) {
        let Some(value) = value else { return };
        self.name(name);
        if debug_is_verbatim(value) {
            self.0.push(b'"');
            self.0.extend_from_slice(value.as_bytes());
            self.0.push(b'"');
        } else {
            let _ = write!(self.0, "{value:?}");
        }
    }

    fn number(&mut self, name: &str, value: Option<u64>) {
        if let Some(value) = value {
            self.name(name);
            push_integer(self.0, value);
        }
    }

    fn float(&mut self, name: &str, value: f64) {
        self.name(name);
        let _ = write!(self.0, "{value:?}");
    }
}

/// The object `tracing_subscriber`'s JSON format writes with flattened
/// fields and no spans.
fn json_line(out: &mut Vec<u8>, now: SystemTime, level: tracing::Level, log: &RequestLog) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(out, now);
    out.extend_from_slice(b"\",\"level\":\"");
    out.extend_from_slice(level.as_str().as_bytes());
    out.extend_from_slice(b"\",\"message\":\"");
    out.extend_from_slice(MESSAGE.as_bytes());
    out.push(b'"');
    let mut fields = JsonFields(out);
    write_fields(&mut fields, log);
    fields.string("target", Some(TARGET));
    out.push(b'}');
}

/// `,"name":value` members of a JSON line, each value as `serde_json`
/// writes it (the escaping and number format `tracing_subscriber` uses).
struct JsonFields<'a>(&'a mut Vec<u8>);

impl JsonFields<'_> {
    /// `,"name":` (the field names need no escaping).
    fn name(&mut self, name: &str) {
        self.0.extend_from_slice(b",\"");
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b"\":");
    }

    fn member(&mut self, name: &str, value: &(impl serde::Serialize + ?Sized)) {
        self.name(name);
        let _ = serde_json::to_writer(&mut *self.0, value);
    }
}

impl LineFields for JsonFields<'_> {
    fn display(&mut self, name: &str, value: &str) {
        self.member(name, value);
    }

    fn string(&mut self, name: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.member(name, value);
        }
    }

    fn number(&mut self, name: &str, value: Option<u64>) {
        if let Some(value) = value {
            self.name(name);
            push_integer(self.0, value);
        }
    }

    fn float(&mut self, name: &str, value: f64) {
        self.member(name, &value);
    }
}

#[cfg(test)]
mod tests {
    use super::super::log_output::tests::Capture;
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tower_data_api::log::TracingLogSink;

    /// Entries with awkward values: quotes, backslashes, control and
    /// non-ASCII characters, empty strings, every level.
    fn entries() -> Vec<RequestLog> {
        let mut failed = RequestLog::new("6b16d414b0613069a6a79f56", "POST", UNIX_EPOCH);
        failed.action = Some("findOne");
        failed.principal_name = Some("a \"quoted\" name \\ with a backslash".into());
        failed.database = Some("caf\u{e9} \u{1b}[31m".into());
        failed.collection = Some(String::new());
        failed.status = 400;
        failed.error_code = Some("InvalidParameter");
        failed.error = Some("line one\nline two\ttab".into());
        failed.auth_scheme = Some("api-key".into());
        failed.response_bytes = Some(120);
        failed.duration = Duration::from_micros(4871);
        let mut found = RequestLog::new("6b16d414b0613069a6a79f57", "POST", UNIX_EPOCH);
        found.action = Some("find");
        found.principal_id = Some("6afad95a9d5e99109301d028".into());
        found.principal_name = Some("load".into());
        found.data_source = Some("mongodb-atlas".into());
        found.database = Some("load".into());
        found.collection = Some("tasks".into());
        found.status = 200;
        found.documents = Some(0);
        found.request_bytes = Some(88);
        found.response_bytes = Some(17);
        found.duration = Duration::from_nanos(204_705);
        let mut broken = RequestLog::new("6b16d414b0613069a6a79f58", "GET", UNIX_EPOCH);
        broken.status = 500;
        broken.error = Some("internal server error".into());
        broken.duration = Duration::from_secs(2);
        vec![failed, found, broken]
    }

    /// What the standalone's `tracing` subscriber writes for `entries`.
    fn through_tracing(format: LogFormat) -> Vec<String> {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let subscriber = super::super::log_subscriber(
            format,
            tracing_subscriber::EnvFilter::new("info"),
            move || Capture(sink.clone()),
            false,
        );
        tracing::subscriber::with_default(subscriber, || {
            for entry in entries() {
                TracingLogSink.record(&entry);
            }
        });
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    fn written_here(format: LogFormat, now: SystemTime) -> Vec<String> {
        entries()
            .iter()
            .map(|entry| {
                let mut line = Vec::new();
                match format {
                    LogFormat::Text => text_line(&mut line, now, entry.level(), entry),
                    LogFormat::Json => json_line(&mut line, now, entry.level(), entry),
                }
                String::from_utf8(line).unwrap()
            })
            .collect()
    }

    #[test]
    fn text_lines_are_the_tracing_lines() {
        let expected = through_tracing(LogFormat::Text);
        let written = written_here(LogFormat::Text, SystemTime::now());
        assert_eq!(expected.len(), 3, "{expected:?}");
        // Everything after the timestamp is the same.
        let after_time = |line: &String| line.split_once(' ').unwrap().1.to_owned();
        for (ours, theirs) in written.iter().zip(&expected) {
            assert_eq!(after_time(ours), after_time(theirs));
        }
        assert!(expected[0].contains(r#"error="line one\nline two\ttab""#));
        assert!(
            expected[1].contains(" duration_ms=0.204705"),
            "{}",
            expected[1]
        );
        assert!(expected[2].contains(" ERROR tower_data_api::request: "));
    }

    #[test]
    fn json_lines_are_the_tracing_lines() {
        let expected = through_tracing(LogFormat::Json);
        let written = written_here(LogFormat::Json, SystemTime::now());
        assert_eq!(expected.len(), 3, "{expected:?}");
        let without_time = |line: &String| {
            let (head, rest) = line.split_once("\"timestamp\":\"").unwrap();
            let (_, tail) = rest.split_once('"').unwrap();
            format!("{head}{tail}")
        };
        for (ours, theirs) in written.iter().zip(&expected) {
            assert_eq!(without_time(ours), without_time(theirs));
            serde_json::from_str::<serde_json::Value>(ours).expect("one JSON object");
        }
    }

    /// The lines `RequestLines` writes for `entries` under the
    /// standalone's subscriber with `filter`.
    fn recorded(filter: &str) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let (lines, guard) = super::super::request_lines_to(LogFormat::Text, Capture(out.clone()));
        let subscriber = super::super::log_subscriber(
            LogFormat::Text,
            tracing_subscriber::EnvFilter::new(filter),
            std::io::sink,
            false,
        );
        tracing::subscriber::with_default(subscriber, || {
            for entry in entries() {
                lines.record(&entry);
            }
        });
        drop(guard);
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn lines_are_written_at_the_levels_the_filter_enables() {
        let levels = |text: String| -> Vec<String> {
            text.lines()
                .map(|line| line.split_whitespace().nth(1).unwrap().to_owned())
                .collect()
        };
        assert_eq!(levels(recorded("info")), ["WARN", "INFO", "ERROR"]);
        assert_eq!(levels(recorded("warn")), ["WARN", "ERROR"]);
        assert_eq!(
            levels(recorded("info,tower_data_api::request=error")),
            ["ERROR"]
        );
        assert!(recorded("off").is_empty());
    }

    #[test]
    fn timestamps_are_rfc_3339_with_microseconds() {
        let mut out = Vec::new();
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        timestamp(&mut out, at);
        timestamp(&mut out, at + Duration::from_micros(1));
        timestamp(&mut out, at + Duration::from_secs(86_400));
        timestamp(&mut out, UNIX_EPOCH);
        timestamp(&mut out, UNIX_EPOCH + Duration::from_nanos(42_999));
        timestamp(&mut out, UNIX_EPOCH + Duration::from_nanos(999_999_999));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2023-11-14T22:13:20.123456Z2023-11-14T22:13:20.123457Z\
             2023-11-15T22:13:20.123456Z1970-01-01T00:00:00.000000Z\
             1970-01-01T00:00:00.000042Z1970-01-01T00:00:00.999999Z"
        );
    }
}
