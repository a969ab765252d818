//! [`BackendLogSink`]: request logs kept in the state database for a while.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bson::{doc, Bson, Document};
use tokio::sync::mpsc;

use crate::action::{FindQuery, Namespace};
use crate::auth::StoreError;
use crate::backend::{Backend, IndexSpec};
use crate::log::{LogSink, RequestLog};

/// The collection of the state database that holds request logs.
const LOGS: &str = "request_logs";

/// Entries waiting to be written; past it new ones are dropped (and counted).
const QUEUE: usize = 10_000;

/// Entries written in one `insertMany`.
const BATCH: usize = 500;

/// How often entries older than the retention are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Request logs written to the `request_logs` collection of the state
/// database, kept `retention` (30 days by default, as the original kept
/// them), and read back with [`find`](Self::find) (the error `link`'s
/// `co_id` is the entry's request id).
///
/// Writing never delays a request: [`LogSink::record`] puts the entry on a
/// bounded queue that a background task writes in batches; when the store
/// is slow or down and the queue is full, entries are dropped and counted
/// ([`dropped`](Self::dropped)). Build it inside a tokio runtime.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tower_data_api::state::BackendLogSink;
/// use tower_data_api::MemoryBackend;
/// let logs = BackendLogSink::new(MemoryBackend::new(), "__data_api");
/// assert_eq!(logs.dropped(), 0);
/// # });
/// ```
#[derive(Clone)]
pub struct BackendLogSink {
    backend: Arc<dyn Backend>,
    namespace: Namespace,
    queue: mpsc::Sender<Document>,
    dropped: Arc<AtomicU64>,
    retention: Duration,
}

/// Which entries [`BackendLogSink::find`] returns; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogFilter {
    /// Entries at or after this Unix time (seconds).
    pub since: Option<i64>,
    /// Entries before this Unix time (seconds).
    pub until: Option<i64>,
    /// Entries answered with this status.
    pub status: Option<u16>,
    /// Entries of this action (`find`, `auth/login`, …).
    pub action: Option<String>,
    /// Entries of this principal name (the API key's name, the user's email).
    pub principal_name: Option<String>,
    /// The entry of this request id (`co_id`).
    pub request_id: Option<String>,
    /// Entries whose status is in this class (`4` for 4xx); ignored when
    /// `status` is set.
    pub status_class: Option<u16>,
    /// Entries of this data source.
    pub data_source: Option<String>,
    /// Entries skipped, newest first, before the first returned (paging).
    pub skip: u64,
    /// The most entries returned, newest first (default 100).
    pub limit: Option<u64>,
}

impl BackendLogSink {
    /// Logs in `state_database`'s `request_logs` collection on `backend`,
    /// kept 30 days.
    pub fn new(backend: impl Backend, state_database: &str) -> Self {
        Self::from_arc(
            Arc::new(backend),
            state_database,
            Duration::from_secs(30 * 86_400),
        )
    }

    /// Logs on a shared backend, kept `retention`.
    pub fn from_arc(backend: Arc<dyn Backend>, state_database: &str, retention: Duration) -> Self {
        let namespace = Namespace::new(state_database, LOGS);
        let (queue, entries) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            backend: backend.clone(),
            namespace: namespace.clone(),
            retention,
            dropped: dropped.clone(),
        };
        tokio::spawn(writer.run(entries));
        Self {
            backend,
            namespace,
            queue,
            dropped,
            retention,
        }
    }

    /// Creates the indexes its queries use (time, request id) and, on
    /// MongoDB, a TTL index that deletes entries past the retention; call once.
    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let specs = [
            IndexSpec::new([("at", -1)]),
            IndexSpec::new([("request_id", 1)]),
            IndexSpec::new([("at", 1)]).and_then(|spec| spec.expire_after(self.retention)),
        ]
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError(e.to_string()))?;
        self.backend
            .ensure_indexes(&self.namespace, &specs)
            .await
            .map_err(super::store_error)
    }

    /// Entries lost because the queue was full (the store slow or down).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The entries `filter` selects, newest first, as stored documents
    /// (`request_id`, `at`, `duration_ms`, `method`, `action`,
    /// `principal_id`, `principal_name`, `data_source`, `database`,
    /// `collection`, `status`, `error_code`, `error`, `documents`,
    /// `auth_scheme`, `request_bytes`, `response_bytes`).
    pub async fn find(&self, filter: &LogFilter) -> Result<Vec<Document>, StoreError> {
        let mut find = FindQuery::new(filter.query())
            .with_sort(doc! { "at": -1 })
            .with_projection(doc! { "_id": 0 });
        find.skip = filter.skip;
        find.limit = filter.limit.unwrap_or(100).max(1);
        self.backend
            .find(&self.namespace, find)
            .await
            .map_err(super::store_error)
    }

    /// Runs `pipeline` over the entries `filter` selects (for usage
    /// figures: counts, bytes and latencies grouped by hour or day).
    pub async fn aggregate(
        &self,
        filter: &LogFilter,
        pipeline: Vec<Document>,
    ) -> Result<Vec<Document>, StoreError> {
        let mut stages = vec![doc! { "$match": filter.query() }];
        stages.extend(pipeline);
        self.backend
            .aggregate(&self.namespace, stages)
            .await
            .map_err(super::store_error)
    }
}

impl LogFilter {
    /// The query document of this filter (paging and limit aside).
    fn query(&self) -> Document {
        let filter = self;
        let mut query = Document::new();
        let mut at = Document::new();
        if let Some(since) = filter.since {
            at.insert(
                "$gte",
                bson::DateTime::from_millis(since.saturating_mul(1000)),
            );
        }
        if let Some(until) = filter.until {
            at.insert(
                "$lt",
                bson::DateTime::from_millis(until.saturating_mul(1000)),
            );
        }
        if !at.is_empty() {
            query.insert("at", at);
        }
        if let Some(status) = filter.status {
            query.insert("status", i32::from(status));
        }
        if let Some(action) = &filter.action {
            query.insert("action", action);
        }
        if let Some(name) = &filter.principal_name {
            query.insert("principal_name", name);
        }
        if let Some(id) = &filter.request_id {
            query.insert("request_id", id);
        }
        if let (Some(class), None) = (filter.status_class, filter.status) {
            let low = i32::from(class) * 100;
            query.insert("status", doc! { "$gte": low, "$lt": low + 100 });
        }
        if let Some(source) = &filter.data_source {
            query.insert("data_source", source);
        }
        query
    }
}

impl fmt::Debug for BackendLogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendLogSink")
            .field("namespace", &self.namespace.to_string())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl LogSink for BackendLogSink {
    fn record(&self, log: &RequestLog) {
        if self.queue.try_send(entry(log)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The background task that writes queued entries.
struct Writer {
    backend: Arc<dyn Backend>,
    namespace: Namespace,
    retention: Duration,
    dropped: Arc<AtomicU64>,
}

impl Writer {
    async fn run(self, mut entries: mpsc::Receiver<Document>) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut last_sweep: Option<std::time::Instant> = None;
        while entries.recv_many(&mut batch, BATCH).await > 0 {
            let written = batch.len() as u64;
            let documents = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if self
                .backend
                .insert_many(&self.namespace, documents)
                .await
                .is_err()
            {
                self.dropped.fetch_add(written, Ordering::Relaxed);
            }
            if last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
                last_sweep = Some(std::time::Instant::now());
                self.sweep().await;
            }
        }
    }

    /// Deletes entries older than the retention.
    async fn sweep(&self) {
        let cutoff = SystemTime::now()
            .checked_sub(self.retention)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let filter = doc! { "at": { "$lt": bson::DateTime::from_millis(cutoff) } };
        let _ = self.backend.delete_many(&self.namespace, filter).await;
    }
}

/// The stored form of one entry.
fn entry(log: &RequestLog) -> Document {
    let optional = |value: Option<&str>| value.map_or(Bson::Null, |v| Bson::String(v.to_owned()));
    let count = |value: Option<u64>| {
        value.map_or(Bson::Null, |n| {
            Bson::Int64(i64::try_from(n).unwrap_or(i64::MAX))
        })
    };
    doc! {
        "request_id": &log.request_id,
        "at": bson::DateTime::from_system_time(log.started_at),
        "duration_ms": log.duration.as_secs_f64() * 1000.0,
        "method": &log.method,
        "action": optional(log.action),
        "principal_id": optional(log.principal_id.as_deref()),
        "principal_name": optional(log.principal_name.as_deref()),
        "data_source": optional(log.data_source.as_deref()),
        "database": optional(log.database.as_deref()),
        "collection": optional(log.collection.as_deref()),
        "status": i32::from(log.status),
        "error_code": optional(log.error_code),
        "error": optional(log.error.as_deref()),
        "documents": count(log.documents),
        "auth_scheme": optional(log.auth_scheme.as_deref()),
        "request_bytes": count(log.request_bytes),
        "response_bytes": count(log.response_bytes),
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use super::*;
    use crate::MemoryBackend;

    fn log(request_id: &str, status: u16, action: &'static str) -> RequestLog {
        let mut log = RequestLog::new(request_id, "POST", SystemTime::now());
        log.status = status;
        log.action = Some(action);
        log.principal_name = Some("ci".into());
        log
    }

    #[tokio::test]
    async fn entries_are_written_off_the_request_path_and_found_by_filter() {
        let sink = BackendLogSink::new(MemoryBackend::new(), "__data_api");
        sink.ensure_indexes().await.unwrap();
        sink.record(&log("65a000000000000000000001", 200, "find"));
        sink.record(&log("65a000000000000000000002", 401, "find"));
        sink.record(&log("65a000000000000000000003", 201, "insertOne"));
        let mut found = Vec::new();
        for _ in 0..100 {
            found = sink.find(&LogFilter::default()).await.unwrap();
            if found.len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(found.len(), 3);
        let refused = sink
            .find(&LogFilter {
                status: Some(401),
                ..LogFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(refused.len(), 1);
        assert_eq!(
            refused[0].get_str("request_id"),
            Ok("65a000000000000000000002")
        );
        let by_id = sink
            .find(&LogFilter {
                request_id: Some("65a000000000000000000003".into()),
                ..LogFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(by_id[0].get_str("action"), Ok("insertOne"));
        assert_eq!(sink.dropped(), 0);
    }
}
