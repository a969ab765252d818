//! Request logs: one structured [`RequestLog`] per request, handed to a [`LogSink`].
//!
//! A log never holds a credential: keys, passwords and tokens are not part of
//! [`RequestLog`] at all, only the principal's id and name.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// What happened to one request.
///
/// Non-exhaustive: new fields may be added; build one with
/// [`RequestLog::new`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RequestLog {
    /// The request id (24 hex digits), also sent as `X-Request-Id` and in error links.
    pub request_id: String,
    /// When the request arrived.
    pub started_at: SystemTime,
    /// How long it took to answer.
    pub duration: Duration,
    /// The HTTP method.
    pub method: String,
    /// The action (`find`, `insertOne`, …), when the URL named a valid one.
    pub action: Option<&'static str>,
    /// The authenticated user's id.
    pub principal_id: Option<String>,
    /// The API key's (or user's) name — never the key.
    pub principal_name: Option<String>,
    /// The `dataSource` field.
    pub data_source: Option<String>,
    /// The `database` field.
    pub database: Option<String>,
    /// The `collection` field.
    pub collection: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// The `error_code` answered, for failures.
    pub error_code: Option<&'static str>,
    /// The error message answered, for failures.
    pub error: Option<String>,
    /// Documents returned (reads) or affected (writes).
    pub documents: Option<u64>,
    /// How the caller authenticated (`api-key`, `local-userpass`,
    /// `custom-token`, …), or the scheme it tried when authentication failed.
    pub auth_scheme: Option<String>,
    /// Request body bytes read.
    pub request_bytes: Option<u64>,
    /// Response body bytes sent.
    pub response_bytes: Option<u64>,
}

impl RequestLog {
    /// The entry of a request that just arrived: everything the pipeline
    /// learns later (action, principal, namespace, status, error, count)
    /// starts empty, with `duration` and `status` zero.
    pub fn new(
        request_id: impl Into<String>,
        method: impl Into<String>,
        started_at: SystemTime,
    ) -> Self {
        Self {
            request_id: request_id.into(),
            started_at,
            duration: Duration::ZERO,
            method: method.into(),
            action: None,
            principal_id: None,
            principal_name: None,
            data_source: None,
            database: None,
            collection: None,
            status: 0,
            error_code: None,
            error: None,
            documents: None,
            auth_scheme: None,
            request_bytes: None,
            response_bytes: None,
        }
    }

    /// The level the entry is logged at: `ERROR` for server errors (5xx),
    /// `WARN` for client errors (4xx), `INFO` otherwise.
    ///
    /// ```
    /// use tower_data_api::log::RequestLog;
    /// let mut log = RequestLog::new("6b16d414b0613069a6a79f56", "POST", std::time::SystemTime::now());
    /// log.status = 404;
    /// assert_eq!(log.level(), tracing::Level::WARN);
    /// ```
    pub fn level(&self) -> tracing::Level {
        match self.status {
            500.. => tracing::Level::ERROR,
            400..=499 => tracing::Level::WARN,
            _ => tracing::Level::INFO,
        }
    }
}

/// Receives request logs.
///
/// `record` is called once per request on the request's task, after the
/// response is built: keep it quick (queue the entry if it goes to I/O).
pub trait LogSink: Send + Sync + 'static {
    /// Records one request.
    fn record(&self, log: &RequestLog);
}

/// Writes each request as a `tracing` event (target `tower_data_api::request`)
/// at its [`RequestLog::level`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingLogSink;

impl LogSink for TracingLogSink {
    fn record(&self, log: &RequestLog) {
        macro_rules! event {
            ($level:expr) => {
                tracing::event!(
                    target: "tower_data_api::request",
                    $level,
                    request_id = %log.request_id,
                    method = %log.method,
                    action = log.action,
                    principal_id = log.principal_id.as_deref(),
                    principal_name = log.principal_name.as_deref(),
                    data_source = log.data_source.as_deref(),
                    database = log.database.as_deref(),
                    collection = log.collection.as_deref(),
                    status = log.status,
                    error_code = log.error_code,
                    error = log.error.as_deref(),
                    documents = log.documents,
                    auth_scheme = log.auth_scheme.as_deref(),
                    request_bytes = log.request_bytes,
                    response_bytes = log.response_bytes,
                    duration_ms = log.duration.as_secs_f64() * 1000.0,
                    "data api request"
                )
            };
        }
        match log.level() {
            tracing::Level::ERROR => event!(tracing::Level::ERROR),
            tracing::Level::WARN => event!(tracing::Level::WARN),
            _ => event!(tracing::Level::INFO),
        }
    }
}

/// Keeps the most recent logs in memory (a ring buffer): for tests and for
/// an admin page.
///
/// ```
/// use tower_data_api::log::MemoryLogSink;
/// let sink = MemoryLogSink::new(100);
/// assert!(sink.entries().is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct MemoryLogSink {
    capacity: usize,
    entries: Arc<Mutex<VecDeque<RequestLog>>>,
}

impl MemoryLogSink {
    /// A sink keeping at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Arc::default(),
        }
    }

    /// A copy of the kept entries, oldest first.
    pub fn entries(&self) -> Vec<RequestLog> {
        self.entries
            .lock()
            .map(|entries| entries.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl LogSink for MemoryLogSink {
    fn record(&self, log: &RequestLog) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() == self.capacity {
                entries.pop_front();
            }
            entries.push_back(log.clone());
        }
    }
}

/// Sends each log to several sinks.
impl LogSink for Vec<Arc<dyn LogSink>> {
    fn record(&self, log: &RequestLog) {
        for sink in self {
            sink.record(log);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(status: u16) -> RequestLog {
        RequestLog {
            action: Some("find"),
            status,
            ..RequestLog::new("r", "POST", SystemTime::UNIX_EPOCH)
        }
    }

    #[test]
    fn memory_sink_keeps_the_newest() {
        let sink = MemoryLogSink::new(2);
        for status in [200, 201, 400] {
            sink.record(&entry(status));
        }
        let statuses: Vec<u16> = sink.entries().iter().map(|e| e.status).collect();
        assert_eq!(statuses, vec![201, 400]);
    }
}
