//! Log output for a busy server: standard error written in batches.
//!
//! Request threads append each formatted line to a shared buffer and go on:
//! they never wait for the terminal or pipe, and they do not wake another
//! thread per line (a channel to a writer thread costs a wake-up and a
//! context switch per request, which showed as several per cent of the
//! CPU under load). A writer thread sleeps until the buffer gets its first
//! line, lets lines gather for [`LINGER`], then writes them all with one
//! call. When the output falls [`MAX_BUFFERED`] bytes behind, new lines are
//! dropped, not requests slowed, and a line reports how many.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer thread lets lines gather once one has arrived.
const LINGER: Duration = Duration::from_millis(5);

/// How far (in bytes) the output may fall behind before lines are dropped.
pub(crate) const MAX_BUFFERED: usize = 8 << 20;

/// Lines waiting for the writer thread.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    dropped: u64,
    closing: bool,
}

#[derive(Default)]
struct Shared {
    max_buffered: usize,
    pending: Mutex<Pending>,
    /// Signalled when the first line lands in an empty buffer, and at close.
    arrived: Condvar,
}

/// A `tracing_subscriber` writer appending to the shared buffer.
#[derive(Clone)]
pub(crate) struct BatchedStderr {
    shared: Arc<Shared>,
}

/// Keeps the writer thread; dropping it writes what is still buffered.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

/// A writer for `tracing_subscriber::fmt().with_writer(…)` sending lines
/// to `out` (standard error, for the standalone), dropping lines past
/// `max_buffered`, and the guard that flushes it at exit.
pub(crate) fn batched(
    mut out: impl Write + Send + 'static,
    max_buffered: usize,
) -> (BatchedStderr, Guard) {
    let shared = Arc::new(Shared {
        max_buffered,
        ..Shared::default()
    });
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_batches(&shared, &mut out))
            .expect("a thread for the log writer")
    };
    (
        BatchedStderr {
            shared: shared.clone(),
        },
        Guard {
            shared,
            thread: Some(thread),
        },
    )
}

/// The writer thread: waits for lines, lets more gather, writes them.
fn write_batches(shared: &Shared, out: &mut impl Write) {
    let mut batch = Vec::new();
    loop {
        let (dropped, closing) = {
            let mut pending = shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            while pending.bytes.is_empty() && pending.dropped == 0 && !pending.closing {
                pending = shared
                    .arrived
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if !pending.closing {
                drop(pending);
                std::thread::sleep(LINGER);
                pending = shared
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
            }
            // The emptied buffer keeps its capacity for the next batch.
            std::mem::swap(&mut batch, &mut pending.bytes);
            (std::mem::take(&mut pending.dropped), pending.closing)
        };
        // A closed or broken standard error loses the lines; nothing else to do.
        let _ = out.write_all(&batch);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "{dropped} log lines dropped: the log output fell behind"
            );
        }
        let _ = out.flush();
        batch.clear();
        if closing {
            return;
        }
    }
}

impl BatchedStderr {
    /// Queues `line` for the writer thread, or counts it as dropped when
    /// the output is too far behind.
    pub(crate) fn append(&self, line: &[u8]) {
        let first = {
            let mut pending = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if pending.bytes.len() + line.len() > self.shared.max_buffered {
                pending.dropped += 1;
                return;
            }
            let first = pending.bytes.is_empty() && pending.dropped == 0;
            pending.bytes.extend_from_slice(line);
            first
        };
        if first {
            self.shared.arrived.notify_one();
        }
    }
}

impl Write for BatchedStderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedStderr {
    type Writer = BatchedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closing = true;
        self.shared.arrived.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether `Debug` writes `value` as itself between quotes: printable
/// ASCII without quotes or backslashes.
pub(crate) fn debug_is_verbatim(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// The fields of a text log line without colours, written as
/// `tracing_subscriber`'s default formatter writes them (`name=value`, string
/// values quoted and escaped as `Debug` does, the message as it is) but
/// with less work per field: plain strings, integers and booleans are
/// written directly. Messages, `r#` names, `log.` fields of the `log` crate
/// and errors go to the default formatter.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PlainFields;

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for PlainFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: tracing_subscriber::fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'w> {
    writer: tracing_subscriber::fmt::format::Writer<'w>,
    empty: bool,
    result: std::fmt::Result,
}

impl PlainVisitor<'_> {
    /// Whether the default formatter writes `name=value` for this field.
    fn is_plain(name: &str) -> bool {
        name != "message" && !name.starts_with("r#") && !name.starts_with("log.")
    }

    /// Writes the separator and `name=`.
    fn start(&mut self, name: &str) -> std::fmt::Result {
        if !std::mem::take(&mut self.empty) {
            self.writer.write_char(' ')?;
        }
        self.writer.write_str(name)?;
        self.writer.write_char('=')
    }

    /// Hands the field to the default formatter.
    fn delegate(&mut self, record: impl FnOnce(&mut dyn tracing::field::Visit)) {
        use tracing_subscriber::field::VisitOutput as _;
        if self.result.is_err() {
            return;
        }
        let mut default =
            tracing_subscriber::fmt::format::DefaultVisitor::new(self.writer.by_ref(), self.empty);
        record(&mut default);
        self.result = default.finish();
        self.empty = false;
    }
}

impl tracing::field::Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let name = field.name();
        if !Self::is_plain(name) {
            return self.delegate(|v| v.record_str(field, value));
        }
        if self.result.is_err() {
            return;
        }
        self.result = self.start(name).and_then(|()| {
            if debug_is_verbatim(value) {
                self.writer.write_char('"')?;
                self.writer.write_str(value)?;
                self.writer.write_char('"')
            } else {
                write!(self.writer, "{value:?}")
            }
        });
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.record_debug(field, &value);
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.record_debug(field, &value);
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.record_debug(field, &value);
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.record_debug(field, &value);
    }

    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        self.delegate(|v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        if !Self::is_plain(name) {
            return self.delegate(|v| v.record_debug(field, value));
        }
        if self.result.is_err() {
            return;
        }
        self.result = self
            .start(name)
            .and_then(|()| write!(self.writer, "{value:?}"));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Whether [`Gated`] accepts writes, and its signal.
    type Gate = Arc<(Mutex<bool>, Condvar)>;

    /// An output that hands each write to the test, which may hold it.
    struct Gated {
        written: mpsc::Sender<Vec<u8>>,
        open: Gate,
    }

    impl Write for Gated {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (open, changed) = &*self.open;
            let mut open = open.lock().unwrap();
            while !*open {
                open = changed.wait(open).unwrap();
            }
            self.written.send(bytes.to_vec()).unwrap();
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn gated(
        open: bool,
        max_buffered: usize,
    ) -> (BatchedStderr, Guard, Gate, mpsc::Receiver<Vec<u8>>) {
        let (written, output) = mpsc::channel();
        let gate = Arc::new((Mutex::new(open), Condvar::new()));
        let (writer, guard) = batched(
            Gated {
                written,
                open: gate.clone(),
            },
            max_buffered,
        );
        (writer, guard, gate, output)
    }

    fn text(output: &mpsc::Receiver<Vec<u8>>) -> String {
        String::from_utf8(output.try_iter().flatten().collect()).unwrap()
    }

    #[test]
    fn lines_leave_in_order_and_the_guard_writes_the_rest() {
        let (mut writer, guard, _gate, output) = gated(true, MAX_BUFFERED);
        for i in 0..1000 {
            writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        drop(guard);
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text(&output), expected);
    }

    #[test]
    fn lines_past_the_cap_are_dropped_and_counted_not_waited_for() {
        let (mut writer, guard, gate, output) = gated(false, 100);
        // The first line wakes the writer thread, which takes it and then
        // blocks on the closed output; wait until it has taken it.
        writer.write_all(b"first\n").unwrap();
        while !writer.shared.pending.lock().unwrap().bytes.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        // 90 bytes fit under the cap; the next three lines do not, and
        // writing them returns at once.
        writer.write_all(&[b'x'; 89]).unwrap();
        writer.write_all(b"\n").unwrap();
        for _ in 0..3 {
            writer.write_all(b"0123456789\n").unwrap();
        }
        let (open, changed) = &*gate;
        *open.lock().unwrap() = true;
        changed.notify_all();
        drop(guard);
        let expected = format!(
            "first\n{}\n3 log lines dropped: the log output fell behind\n",
            "x".repeat(89)
        );
        assert_eq!(text(&output), expected);
    }

    /// The lines `fields` formats for a few events: a request log with
    /// awkward values, a message, an error, a raw name.
    fn formatted<F>(fields: F) -> String
    where
        F: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        use tower_data_api::log::{LogSink as _, RequestLog, TracingLogSink};
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields)
            .with_writer(move || Capture(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let mut log = RequestLog::new(
                "6b16d414b0613069a6a79f56",
                "POST",
                std::time::SystemTime::UNIX_EPOCH,
            );
            log.action = Some("findOne");
            log.principal_name = Some("a \"quoted\" name \\ with a backslash".into());
            log.database = Some("caf\u{e9} \u{1b}[31m".into());
            log.collection = Some(String::new());
            log.status = 400;
            log.error = Some("line one\nline two\ttab".into());
            log.documents = Some(0);
            log.duration = Duration::from_micros(4871);
            TracingLogSink.record(&log);
            log.status = 200;
            log.error = None;
            TracingLogSink.record(&log);
            tracing::info!("plain message with \"quotes\"");
            let err = std::io::Error::other("disk full");
            tracing::warn!(
                error = &err as &(dyn std::error::Error + 'static),
                r#type = "raw",
                n = -3_i64,
                ok = true,
                ratio = 0.5,
                "it failed"
            );
            tracing::info!(count = 7_u64, text = "x");
        });
        let bytes = out.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// An output keeping what is written to it.
    pub(crate) struct Capture(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_fields_write_what_the_default_formatter_writes() {
        let default = formatted(tracing_subscriber::fmt::format::DefaultFields::new());
        let plain = formatted(PlainFields);
        assert_eq!(default.lines().count(), 5, "{default}");
        for escaped in [
            r#"principal_name="a \"quoted\" name \\ with a backslash""#,
            r#"database="café \u{1b}[31m""#,
            r#"collection="""#,
            r#"error="line one\nline two\ttab""#,
        ] {
            assert!(default.contains(escaped), "{escaped} in {default}");
        }
        assert!(default.contains(" type=\"raw\""), "{default}");
        assert_eq!(plain, default);
    }
}
