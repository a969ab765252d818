//! [`MemoryBackend`]: the embedded engine serving the Data API from memory.
//!
//! Databases and collections spring into existence on first write; reading a
//! missing collection gives empty results.
//!
//! **Concurrency.** A collection is a persistent map ([`Collection`]) behind
//! a lock held only for an O(1) snapshot or for publishing a new version.
//! Readers (finds, aggregations) work on a snapshot without any lock, so a
//! findOne never waits behind a long aggregation. Writers of one collection
//! take turns (a per-collection writer mutex), build the next version from a
//! snapshot and publish it with one swap: other requests see either none or
//! all of a write, and a failed write publishes nothing.
//!
//! **Where the work runs.** Point operations (a filter that pins `_id`,
//! single inserts) run inline; everything that can take long (scans, sorts,
//! pipelines, multi-document writes) runs on tokio's blocking pool, at most
//! [`MemoryBackend::with_max_concurrent_jobs`] at a time, so the async
//! workers keep serving other requests.
//!
//! **Durability.** [`MemoryBackend::open`] keeps the data in a directory
//! (module `storage`, on redb): loaded into memory at start-up, every write
//! committed (with concurrent ones: group commit) before it is published
//! to readers or acknowledged; such writes wait for the disk on the
//! blocking pool. [`MemoryBackend::new`] keeps everything in memory only.
//!
//! **Budgets.** Each operation runs under a meter (`query::budget`): the
//! request's deadline and abandonment flag (from
//! [`RequestContext`](crate::backend::RequestContext)) and a memory budget
//! ([`MemoryBackend::with_max_request_memory`]), checked every few thousand
//! steps of work. Past the deadline the work ends with `MaxTimeMSExpired`;
//! over the memory budget with `ExceededMemoryLimit` (code 146, HTTP 400).

mod collection;
mod id_key;
mod index;
mod storage;
mod write;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bson::{Bson, Document};
use tokio::sync::Semaphore;

use crate::backend::{
    Backend, BackendError, BackendErrorKind, CheckedWrite, FindOneQuery, FindQuery, IndexSpec,
    Namespace, ReplaceQuery, RequestContext, UpdateOutcome, UpdateQuery, WriteCheck,
};
use crate::query::aggregate::{
    doc_size, AggregateContext, CollectionStats, Limits, DEFAULT_MAX_PIPELINE_BYTES,
};
use crate::query::budget::{self, Meter};
use crate::query::compare::with_canonical_key;
use crate::query::{Filter, Pipeline, Projection, QueryError, SortSpec};

use collection::Collection;
use index::Plan;
use storage::Storage;
pub use storage::{OpenError, SyncMode};
use write::{to_backend, ParsedUpdate, WriteSpec};

type Shared<T> = Arc<RwLock<T>>;

/// Databases or collections by name. Names come from clients, so the
/// hasher is keyed at random (as std's is); ahash is that and quicker on
/// short names, which every request by `_id` looks up twice.
type ByName<T> = HashMap<String, T, ahash::RandomState>;

/// One collection: its current version and the turn of its writers.
///
/// In memory, a long write builds the next version from a snapshot and
/// publishes it; a short one changes the current version in place under
/// its lock ([`Slot::write_one`]). On a durable backend a write goes to
/// the disk before readers see it: the writer builds the next version from
/// the latest one (`pending`, which may hold writes still on their way to
/// the disk), hands the changes to the committer ([`storage`]) and waits;
/// the committer publishes versions in the order they were handed over. A
/// failed commit drops the pending versions and moves to a new `epoch`:
/// batches built on them are refused.
#[derive(Debug)]
struct Slot {
    database: String,
    collection: String,
    current: RwLock<Collection>,
    writer: Mutex<Pending>,
    /// Bumped (under `writer`) when a failed commit discards pending versions.
    epoch: AtomicU64,
    /// Batches handed to the committer and not yet answered.
    in_flight: AtomicUsize,
    storage: Option<Storage>,
}

/// The writers' side of a [`Slot`].
#[derive(Debug, Default)]
struct Pending {
    /// The latest version, including writes not yet on disk (`None`: the
    /// current version).
    version: Option<Collection>,
    /// The collection was dropped: writes must not reach its table.
    dropped: bool,
}

impl Slot {
    fn new(database: &str, collection: &str, coll: Collection, storage: Option<Storage>) -> Self {
        Slot {
            database: database.to_owned(),
            collection: collection.to_owned(),
            current: RwLock::new(coll),
            writer: Mutex::default(),
            epoch: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            storage,
        }
    }

    /// The current version, O(1); the lock is held only for the copy.
    fn snapshot(&self) -> Collection {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `write` on the next version and publishes it when `write`
    /// succeeds (on a durable backend, once it is on disk); writers of this
    /// collection take turns.
    fn write<T>(
        self: &Arc<Self>,
        write: impl FnOnce(&mut Collection) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        self.publish(write, false, false)
    }

    /// [`Slot::write`] for a change to one document that is short (a point
    /// lookup or a small scan, no expressions) when `short`, and leaves the
    /// collection as it was when it fails. Without storage such a change is
    /// made to the current version in place, under its lock: no tree node
    /// is copied unless a reader still holds a snapshot sharing it. Readers
    /// wait for the change, hence `short`; other writes copy.
    fn write_one<T>(
        self: &Arc<Self>,
        short: bool,
        write: impl FnOnce(&mut Collection) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        if self.storage.is_some() || !short {
            return self.write(write);
        }
        self.change_in_place(write)
    }

    /// Runs `write` on the current version itself, under its write lock
    /// (readers of the collection wait); whatever `write` changed stays,
    /// even when it fails. A panic in `write` (a bug) may stop a change
    /// half-way: the indexes are then rebuilt from the documents before
    /// the panic goes on, so no reader sees them disagree.
    fn change_in_place<T>(
        self: &Arc<Self>,
        write: impl FnOnce(&mut Collection) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        // Writers take turns: a copying writer must not publish over this.
        let _turn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        match std::panic::catch_unwind(AssertUnwindSafe(|| write(&mut current))) {
            Ok(out) => out,
            Err(panic) => {
                current.rebuild_indexes();
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// [`Slot::write`] for writes that keep what they did before failing
    /// (ordered `insertMany`): the next version is published either way.
    fn write_partial<T>(
        self: &Arc<Self>,
        write: impl FnOnce(&mut Collection) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        self.publish(write, true, false)
    }

    /// [`Slot::write`] for changes that store nothing but must be published
    /// (a new index).
    fn write_structure<T>(
        self: &Arc<Self>,
        write: impl FnOnce(&mut Collection) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        self.publish(write, false, true)
    }

    fn publish<T>(
        self: &Arc<Self>,
        write: impl FnOnce(&mut Collection) -> Result<T, BackendError>,
        keep_on_error: bool,
        structure: bool,
    ) -> Result<T, BackendError> {
        let mut pending = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(storage) = &self.storage else {
            let mut next = self.snapshot();
            let out = write(&mut next);
            if out.is_ok() || keep_on_error {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
            }
            return out;
        };
        if pending.dropped {
            return Err(BackendError::new(
                BackendErrorKind::Unavailable,
                "the collection was being dropped",
            ));
        }
        let idle = self.in_flight.load(Ordering::Acquire) == 0;
        let mut next = match (&pending.version, idle) {
            (Some(version), false) => version.clone(),
            _ => self.snapshot(),
        };
        next.start_journal();
        let out = write(&mut next);
        let changes = next.take_journal();
        if !(out.is_ok() || keep_on_error) {
            return out;
        }
        if changes.is_empty() {
            if structure && idle {
                // Nothing on its way to the disk: publish at once.
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
                pending.version = None;
                return out;
            }
            if !structure {
                return out;
            }
        }
        let ops = storage::encode(changes)?;
        let (reply, answer) = std::sync::mpsc::channel();
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let sent = storage.submit(storage::Batch {
            slot: self.clone(),
            epoch: self.epoch.load(Ordering::Acquire),
            ops,
            version: Some(next.clone()),
            reply,
        });
        if let Err(err) = sent {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(err);
        }
        pending.version = Some(next);
        drop(pending);
        // Off the async workers (durable writes run on the blocking pool).
        match answer.recv() {
            Ok(Ok(())) => out,
            Ok(Err(err)) => Err(err),
            Err(_) => Err(storage::storage_error()),
        }
    }

    /// The committer's publication of a committed version.
    fn publish_committed(&self, version: Collection) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = version;
    }

    /// The committer's answer to a batch, committed or not.
    fn answered(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// After a failed commit: pending versions are dropped, batches built
    /// on them will be refused.
    fn discard_pending(&self) {
        let mut pending = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        pending.version = None;
    }
}

/// An in-memory data source with MongoDB query semantics. Cloning is cheap
/// and clones share the same data.
///
/// Every operation runs under a memory budget
/// ([`MemoryBackend::with_max_request_memory`]) and a time budget
/// ([`MemoryBackend::with_max_time`], and the request's deadline); pipeline
/// stages that hold documents also keep MongoDB's per-stage limit
/// ([`MemoryBackend::with_max_pipeline_bytes`]).
///
/// Known differences from MongoDB: no collation (strings compare by bytes);
/// Decimal128 division goes through `f64`; regexes are those of the `regex`
/// crate (no backreferences or lookaround); `$text`, `$where`, geo operators,
/// `$function` and a few stages (`$geoNear`, `$search`, …) are not
/// implemented (they fail with code 238, `NotImplemented`); `$bucketAuto` has
/// no `granularity`; `$collStats` reports `count` and `storageStats` only.
/// Time zones are UTC, fixed offsets or the IANA zones of the bundled time
/// zone database.
///
/// ```
/// use std::time::Duration;
/// use tower_data_api::MemoryBackend;
///
/// let backend = MemoryBackend::new()
///     .with_max_request_memory(Some(256 * 1024 * 1024))
///     .with_max_concurrent_jobs(4)
///     .with_max_time(Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    databases: Shared<ByName<ByName<Arc<Slot>>>>,
    /// Secondary indexes per `(database, collection)`, applied whenever the
    /// collection exists.
    indexes: Shared<HashMap<(String, String), Vec<IndexSpec>>>,
    max_pipeline_bytes: usize,
    max_request_memory: Option<usize>,
    max_time: Option<Duration>,
    jobs: Arc<Semaphore>,
    /// Durable mode: the committer's handle (dropped before `closer`).
    storage: Option<Storage>,
    /// What start-up loaded, in durable mode.
    info: Option<Arc<StorageInfo>>,
    /// Waits for the committer thread when the last clone goes.
    closer: Option<Arc<storage::Closer>>,
    /// Operations handed to the blocking pool, for tests to see where work ran.
    #[cfg(test)]
    pool_jobs: Arc<AtomicUsize>,
}

/// How a durable [`MemoryBackend`]'s writes were committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageStats {
    /// Storage transactions committed.
    pub transactions: u64,
    /// Writes (requests that changed documents, index creations, drops)
    /// they held: more writes than transactions is group commit at work.
    pub writes: u64,
}

/// Where a durable [`MemoryBackend`] keeps its data and what it loaded at
/// start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageInfo {
    /// The data directory.
    pub directory: PathBuf,
    /// Collections loaded.
    pub collections: usize,
    /// Documents loaded.
    pub documents: u64,
    /// How long opening and loading took.
    pub load_time: Duration,
    /// When writes reach the disk.
    pub sync: SyncMode,
}

/// The default time budget of one operation: the service's default request deadline.
const DEFAULT_MAX_TIME: Duration = Duration::from_secs(90);

/// Where one operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// On the caller's task: bounded and short (one document, a small scan).
    Inline,
    /// On the blocking pool: bounded by the collection's size (scans,
    /// multi-document writes without expressions, large inserts).
    Pool,
    /// On the blocking pool once one of the backend's job slots is free:
    /// cost not bounded by the data (pipelines, expressions, pipeline updates).
    Heavy,
}

/// Inserts of more documents than this run on the blocking pool; smaller
/// batches are made in place, [`IN_PLACE_INSERT_CHUNK`] documents at a time.
const INLINE_INSERTS: usize = 1000;

/// Documents an in-place `insertMany` inserts per turn of the collection's
/// lock (a fraction of a millisecond of work).
const IN_PLACE_INSERT_CHUNK: usize = 128;

/// Scans of collections up to this size run inline: they take less than
/// a few hundred microseconds, about what the hand-off to the pool costs.
const INLINE_SCAN_DOCUMENTS: usize = 1000;

/// Steps (a document scanned is one) a read classed for the pool may take
/// inline before it moves there (see [`MemoryBackend::run_read`]): as many
/// as a small scan that runs inline anyway ([`INLINE_SCAN_DOCUMENTS`]), so
/// an async worker is held no longer, and a read that does not end early
/// repeats at most that much work.
const INLINE_READ_STEPS: u32 = 1024;

/// Whether a read in `read`'s plan can stop before it has read every
/// candidate: it has a limit and needs no sort in memory (none, or the
/// order an index gives).
fn may_end_early(read: Option<&(Collection, Plan)>, sort: Option<&SortSpec>, limit: u64) -> bool {
    let sorted_in_memory = sort.is_some_and(|spec| !spec.is_empty())
        && !matches!(read, Some((_, Plan::Ordered { .. })));
    limit != 0 && !sorted_in_memory
}

/// `v` when `filter` is exactly `{_id: v}` for a scalar `v` whose equality
/// is that of its `_id` index key
/// ([`canonical_key`](crate::query::compare::canonical_key)): a 32- or
/// 64-bit integer, a double other than NaN, a string, an ObjectId, a
/// boolean, a date, a timestamp or binary data. Such a filter matches exactly the
/// document the index finds, so it needs no parsing or matching. Other
/// values (documents, arrays, regexes, null) may mean more than equality
/// and take the general path.
fn plain_id_equality(filter: &Document) -> Option<&Bson> {
    // Read in order rather than hashed: the filter has one field.
    let mut fields = filter.iter();
    let id = match (fields.next(), fields.next()) {
        (Some((field, id)), None) if field == "_id" => id,
        _ => return None,
    };
    match id {
        Bson::Double(x) if x.is_nan() => None,
        Bson::Int32(_)
        | Bson::Int64(_)
        | Bson::Double(_)
        | Bson::String(_)
        | Bson::ObjectId(_)
        | Bson::Boolean(_)
        | Bson::DateTime(_)
        | Bson::Timestamp(_)
        | Bson::Binary(_) => Some(id),
        _ => None,
    }
}

/// Whether a projection only includes or excludes fields (`{a: 1, b: true}`,
/// `{c: 0}`): no operators, no positional `$`, nothing evaluated.
fn plain_projection(projection: &Document) -> bool {
    projection.iter().all(|(field, value)| {
        !field.contains('$')
            && matches!(
                value,
                Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Boolean(_)
            )
    })
}

/// Whether a filter uses an operator whose cost per document is unbounded.
fn mentions_expressions(filter: &Document, depth: usize) -> bool {
    if depth > 200 {
        return true;
    }
    filter.iter().any(|(key, value)| {
        matches!(
            key.as_str(),
            "$expr" | "$jsonSchema" | "$where" | "$function"
        ) || match value {
            Bson::Document(inner) => mentions_expressions(inner, depth + 1),
            Bson::Array(items) => items.iter().any(|item| match item {
                Bson::Document(inner) => mentions_expressions(inner, depth + 1),
                _ => false,
            }),
            _ => false,
        }
    })
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend {
            databases: Shared::default(),
            indexes: Shared::default(),
            max_pipeline_bytes: DEFAULT_MAX_PIPELINE_BYTES,
            max_request_memory: Some(MemoryBackend::DEFAULT_MAX_REQUEST_MEMORY),
            max_time: Some(DEFAULT_MAX_TIME),
            jobs: Arc::new(Semaphore::new(default_jobs())),
            storage: None,
            info: None,
            closer: None,
            #[cfg(test)]
            pool_jobs: Arc::default(),
        }
    }
}

impl MemoryBackend {
    /// The default memory budget of one operation: 100 MiB.
    pub const DEFAULT_MAX_REQUEST_MEMORY: usize = 100 * 1024 * 1024;

    /// An empty backend that keeps its data in memory only: everything is
    /// lost when the process ends.
    pub fn new() -> Self {
        Self::default()
    }

    /// A durable backend keeping its data in the directory `dir` (created
    /// when missing), with [`SyncMode::Always`]: see
    /// [`MemoryBackend::open_with`].
    ///
    /// ```no_run
    /// use tower_data_api::MemoryBackend;
    ///
    /// let backend = MemoryBackend::open("./data-api-data")?;
    /// # Ok::<(), tower_data_api::backend::OpenError>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(dir, SyncMode::Always)
    }

    /// A durable backend keeping its data in the directory `dir` (created
    /// when missing) in a [redb](https://www.redb.org) database: every
    /// collection is loaded into memory now (the dataset must fit in RAM),
    /// reads are served from memory as with [`MemoryBackend::new`], and every
    /// write is on disk before it is visible or acknowledged (`sync`
    /// decides whether that includes an `fsync`; see [`SyncMode`]).
    ///
    /// Blocks while loading. Fails, naming the path, when the directory
    /// cannot be created or read, another process has it open, or the file
    /// is corrupt or written by a newer release.
    pub fn open_with(dir: impl AsRef<Path>, sync: SyncMode) -> Result<Self, OpenError> {
        let started = Instant::now();
        let dir = dir.as_ref();
        let (loaded, closer) = storage::open(dir, sync)?;
        let mut backend = MemoryBackend::default();
        let info = StorageInfo {
            directory: dir.to_path_buf(),
            collections: loaded.collections.len(),
            documents: loaded.documents,
            load_time: started.elapsed(),
            sync,
        };
        tracing::info!(
            directory = %dir.display(),
            collections = info.collections,
            documents = info.documents,
            millis = info.load_time.as_millis() as u64,
            "embedded engine: data loaded"
        );
        {
            let mut dbs = backend
                .databases
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for (database, collection, coll) in loaded.collections {
                let slot = Slot::new(&database, &collection, coll, Some(loaded.storage.clone()));
                dbs.entry(database)
                    .or_default()
                    .insert(collection, Arc::new(slot));
            }
        }
        backend.storage = Some(loaded.storage);
        backend.info = Some(Arc::new(info));
        backend.closer = Some(Arc::new(closer));
        Ok(backend)
    }

    /// Where a durable backend keeps its data and what it loaded at
    /// start-up (`None` in memory-only mode).
    pub fn storage_info(&self) -> Option<&StorageInfo> {
        self.info.as_deref()
    }

    /// A durable backend's commits so far (`None` in memory-only mode).
    pub fn storage_stats(&self) -> Option<StorageStats> {
        self.storage.as_ref().map(|storage| StorageStats {
            transactions: storage.shared.commits.load(Ordering::Relaxed),
            writes: storage.shared.batches.load(Ordering::Relaxed),
        })
    }

    /// Test hook: makes every commit fail (as a full disk would) while set.
    #[cfg(test)]
    fn fail_commits(&self, fail: bool) {
        if let Some(storage) = &self.storage {
            storage.shared.fail.store(fail, Ordering::Relaxed);
        }
    }

    /// Sets MongoDB's per-stage limit of an aggregation pipeline: the most
    /// bytes (BSON size) that one blocking stage (`$group`, `$sort`,
    /// `$bucketAuto`, `$facet`, `$setWindowFields`, `$lookup`, …) may hold.
    /// A pipeline that needs more fails with error code 292, as MongoDB does
    /// without `allowDiskUse`. The default is 100 MiB, MongoDB's per-stage limit.
    #[must_use]
    pub fn with_max_pipeline_bytes(mut self, bytes: usize) -> Self {
        self.max_pipeline_bytes = bytes;
        self
    }

    /// Sets the memory budget of one operation (`None`: unbounded; default
    /// [`MemoryBackend::DEFAULT_MAX_REQUEST_MEMORY`], 100 MiB): the most memory, estimated
    /// close to what the allocator hands out, that one request may hold at
    /// once in the engine — expression temporaries (`$range`, `$map`,
    /// `$reduce`, string and array builders), documents passed between
    /// stages, `$lookup` results, `$unwind` and `$densify` output, `$group`
    /// and window accumulators. Over it the request fails with
    /// `ExceededMemoryLimit` (code 146, HTTP 400) instead of exhausting the
    /// process's memory.
    #[must_use]
    pub fn with_max_request_memory(mut self, bytes: Option<usize>) -> Self {
        self.max_request_memory = bytes;
        self
    }

    /// Sets how many long operations (scans, sorts, pipelines,
    /// multi-document writes) run at once (default: the number of CPUs;
    /// at least 1). Others wait for a turn, within their deadline; point
    /// operations never wait.
    #[must_use]
    pub fn with_max_concurrent_jobs(mut self, jobs: usize) -> Self {
        self.jobs = Arc::new(Semaphore::new(jobs.max(1)));
        self
    }

    /// Sets the time budget of one operation (`None`: only the request's
    /// deadline; default 90 s, the service's default request deadline). The
    /// engine checks it, the request's deadline and whether the client is
    /// still waiting every few thousand steps of work and fails with a
    /// [`BackendErrorKind::Timeout`] error (MongoDB's `MaxTimeMSExpired`)
    /// when time runs out.
    #[must_use]
    pub fn with_max_time(mut self, max_time: Option<Duration>) -> Self {
        self.max_time = max_time;
        self
    }

    /// Declares a secondary index on `database.collection` (see
    /// [`IndexSpec`]), for a backend being set up: the collection gets it
    /// whenever it exists, and every write keeps it up to date. On a backend
    /// that already holds data use [`MemoryBackend::create_index`], which
    /// checks the documents.
    ///
    /// ```
    /// use tower_data_api::{backend::IndexSpec, MemoryBackend};
    ///
    /// let backend = MemoryBackend::new()
    ///     .with_index("shop", "orders", IndexSpec::new([("owner_id", 1), ("created", -1)])?)
    ///     .with_index("shop", "users", IndexSpec::new([("email", 1)])?.unique(true));
    /// # Ok::<(), tower_data_api::backend::IndexSpecError>(())
    /// ```
    #[must_use]
    pub fn with_index(self, database: &str, collection: &str, spec: IndexSpec) -> Self {
        let ns = Namespace::new(database, collection);
        if let Err(err) = self.add_index(&ns, spec) {
            // Only a conflicting name can fail on an empty collection.
            tracing::warn!(error = %err.message, "index not declared");
        }
        self
    }

    /// Creates a secondary index on a collection, building it over the
    /// documents it holds (the collection gets it whenever it exists).
    /// Creating an index that exists with the same keys is a no-op; fails
    /// when another index has the name (400) or a document breaks the index
    /// (a duplicate key in a unique index, parallel arrays: 400, nothing
    /// created).
    pub fn create_index(&self, ns: &Namespace, spec: IndexSpec) -> Result<(), BackendError> {
        self.add_index(ns, spec)
    }

    /// The secondary indexes declared on a collection.
    pub fn index_specs(&self, ns: &Namespace) -> Vec<IndexSpec> {
        self.indexes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(ns.database.clone(), ns.collection.clone()))
            .cloned()
            .unwrap_or_default()
    }

    fn add_index(&self, ns: &Namespace, spec: IndexSpec) -> Result<(), BackendError> {
        let key = (ns.database.clone(), ns.collection.clone());
        // Declarations change under the catalogue's lock, so a collection
        // created meanwhile starts with the right indexes.
        let mut indexes = self.indexes.write().unwrap_or_else(PoisonError::into_inner);
        let declared = indexes.entry(key).or_default();
        if let Some(existing) = declared.iter().find(|s| s.name() == spec.name()) {
            if existing.same_index(&spec) {
                return Ok(());
            }
            return Err(BackendError::new(
                BackendErrorKind::InvalidRequest,
                format!(
                    "An existing index has the same name as the requested index: {}",
                    spec.name()
                ),
            ));
        }
        if declared.iter().any(|s| s.same_index(&spec)) {
            return Ok(());
        }
        if let Some(slot) = self.existing(&ns.database, &ns.collection) {
            let name = ns.to_string();
            slot.write_structure(|coll| {
                coll.add_index(spec.clone())
                    .map_err(|v| write::refused(&name, v))
            })?;
        }
        declared.push(spec);
        Ok(())
    }

    /// The collection if it exists.
    fn existing(&self, database: &str, collection: &str) -> Option<Arc<Slot>> {
        let dbs = self
            .databases
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        dbs.get(database).and_then(|db| db.get(collection)).cloned()
    }

    /// The document whose `_id` equals `id`: one lookup in the `_id` index
    /// of the current version, under its read lock, and a copy made after.
    fn find_by_id(&self, ns: &Namespace, id: &Bson) -> Option<Document> {
        let found = {
            let dbs = self
                .databases
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let slot = dbs.get(&ns.database)?.get(&ns.collection)?;
            let current = slot.current.read().unwrap_or_else(PoisonError::into_inner);
            with_canonical_key(id, |key| current.by_id(key))
        };
        found.map(|doc| Document::clone(&doc))
    }

    /// The collection, created when missing.
    fn create(&self, database: &str, collection: &str) -> Arc<Slot> {
        if let Some(c) = self.existing(database, collection) {
            return c;
        }
        let indexes = self.indexes.read().unwrap_or_else(PoisonError::into_inner);
        let mut dbs = self
            .databases
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        dbs.entry(database.to_string())
            .or_default()
            .entry(collection.to_string())
            .or_insert_with(|| {
                let specs = indexes
                    .get(&(database.to_string(), collection.to_string()))
                    .map_or(&[][..], Vec::as_slice);
                Arc::new(Slot::new(
                    database,
                    collection,
                    Collection::with_indexes(specs),
                    self.storage.clone(),
                ))
            })
            .clone()
    }

    /// A snapshot of a collection, if it exists (O(1), no lock kept).
    fn snapshot(&self, database: &str, collection: &str) -> Option<Collection> {
        self.existing(database, collection)
            .map(|slot| slot.snapshot())
    }

    /// Names of the collections of `database` that exist, sorted.
    pub fn collection_names(&self, database: &str) -> Vec<String> {
        let dbs = self
            .databases
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<String> = dbs
            .get(database)
            .map(|db| db.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Removes a collection and its documents; returns whether it existed.
    /// On a durable backend the collection's table goes in the same way as
    /// a write (this blocks until it is on disk: call it off the async
    /// workers); fails with [`BackendErrorKind::Unavailable`] when that
    /// commit fails, the collection then stays.
    pub fn drop_collection(&self, ns: &Namespace) -> Result<bool, BackendError> {
        let (slot, answer) = {
            let mut dbs = self
                .databases
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(db) = dbs.get_mut(&ns.database) else {
                return Ok(false);
            };
            let Some(slot) = db.remove(&ns.collection) else {
                return Ok(false);
            };
            if db.is_empty() {
                dbs.remove(&ns.database);
            }
            let Some(storage) = &self.storage else {
                return Ok(true);
            };
            let mut pending = slot.writer.lock().unwrap_or_else(PoisonError::into_inner);
            pending.dropped = true;
            let (reply, answer) = std::sync::mpsc::channel();
            slot.in_flight.fetch_add(1, Ordering::AcqRel);
            let sent = storage.submit(storage::Batch {
                slot: slot.clone(),
                epoch: slot.epoch.load(Ordering::Acquire),
                ops: vec![storage::Op::Drop],
                version: None,
                reply,
            });
            if sent.is_err() {
                slot.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
            drop(pending);
            (slot, sent.map(|()| answer))
        };
        let outcome = match answer {
            Ok(answer) => answer
                .recv()
                .unwrap_or_else(|_| Err(storage::storage_error())),
            Err(err) => Err(err),
        };
        if let Err(err) = outcome {
            // Still on disk: put it back unless a new one took its place.
            slot.writer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .dropped = false;
            let mut dbs = self
                .databases
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            dbs.entry(ns.database.clone())
                .or_default()
                .entry(ns.collection.clone())
                .or_insert(slot);
            return Err(err);
        }
        Ok(true)
    }

    /// Number of documents in a collection (0 when it does not exist).
    pub fn count(&self, ns: &Namespace) -> usize {
        self.snapshot(&ns.database, &ns.collection)
            .map_or(0, |c| c.len())
    }

    /// A read's snapshot and plan, and where it runs: like
    /// [`MemoryBackend::work_for`], planned once on the snapshot it reads.
    fn plan_read(
        &self,
        ns: &Namespace,
        filter: &Filter,
        raw: &Document,
        sort: Option<&SortSpec>,
    ) -> (Work, Option<(Collection, Plan)>) {
        let Some(coll) = self.snapshot(&ns.database, &ns.collection) else {
            return (Work::Inline, None);
        };
        let plan = coll.plan(filter, sort);
        let class = if mentions_expressions(raw, 0) {
            Work::Heavy
        } else if coll.reads_at_most(&plan, INLINE_SCAN_DOCUMENTS) {
            Work::Inline
        } else {
            Work::Pool
        };
        (class, Some((coll, plan)))
    }

    fn run_aggregate(
        &self,
        ns: &Namespace,
        parsed: &Pipeline,
    ) -> Result<Vec<Document>, BackendError> {
        let ctx = DatabaseContext {
            backend: self,
            database: &ns.database,
            collection: &ns.collection,
            limits: Limits::with_max_time(self.max_pipeline_bytes, self.max_time),
        };
        if !parsed.reads_input() {
            return parsed.run(Vec::new(), &ctx).map_err(to_backend);
        }
        let start = usize::from(parsed.leading_match().is_some());
        // The leading `$match` (and a `$group` or `$count` right after it)
        // read the snapshot's documents in place, one pass over them; the
        // other stages get copies.
        let (next, input) = match self.snapshot(&ns.database, &ns.collection) {
            None => (start, Vec::new()),
            Some(coll) => {
                let docs = match parsed.leading_match() {
                    Some(filter) => coll.matching_docs(filter).map_err(to_backend)?,
                    None => Box::new(coll.iter().map(|(_, d)| Ok(d))),
                };
                parsed.run_prefix(start, docs, &ctx).map_err(to_backend)?
            }
        };
        parsed.run_from(next, input, &ctx).map_err(to_backend)
    }
}

/// The documents of a find: `filter`'s matches in `plan`'s snapshot, after
/// `sort`, `skip` and `limit` (0: no limit).
fn read_matches(
    read: Option<&(Collection, Plan)>,
    filter: &Filter,
    sort: Option<&SortSpec>,
    skip: u64,
    limit: u64,
) -> Result<Vec<Document>, BackendError> {
    let Some((coll, plan)) = read else {
        return Ok(Vec::new());
    };
    let skip = usize::try_from(skip).unwrap_or(usize::MAX);
    let limit = if limit == 0 {
        usize::MAX
    } else {
        usize::try_from(limit).unwrap_or(usize::MAX)
    };
    let copies = |seqs: Vec<u64>| -> Vec<Document> {
        seqs.into_iter()
            .filter_map(|s| coll.get(s).cloned())
            .collect()
    };
    if sort.and_then(SortSpec::natural) == Some(false) {
        let seqs = coll
            .matching_planned(plan, filter, None)
            .map_err(to_backend)?;
        return Ok(copies(
            seqs.into_iter().rev().skip(skip).take(limit).collect(),
        ));
    }
    match sort.filter(|s| !s.is_empty()) {
        None => {
            let seqs = coll
                .matching_planned(plan, filter, Some(skip.saturating_add(limit)))
                .map_err(to_backend)?;
            Ok(copies(seqs.into_iter().skip(skip).collect()))
        }
        Some(spec) => {
            if let Some(seqs) = coll
                .sorted_planned(plan, filter, skip, limit)
                .map_err(to_backend)?
            {
                return Ok(copies(seqs));
            }
            // Sort references and copy only the documents returned.
            let matched: Vec<&Document> = coll
                .matching_planned(plan, filter, None)
                .map_err(to_backend)?
                .into_iter()
                .filter_map(|s| coll.get(s))
                .collect();
            Ok(spec
                .top(matched.iter().copied(), skip, limit)
                .into_iter()
                .map(|i| matched[i].clone())
                .collect())
        }
    }
}

fn parse_filter(filter: &Document) -> Result<Filter, BackendError> {
    Filter::parse(filter).map_err(to_backend)
}

fn parse_projection(p: Option<&Document>) -> Result<Option<Projection>, BackendError> {
    p.filter(|p| !p.is_empty())
        .map(Projection::parse)
        .transpose()
        .map_err(to_backend)
}

fn parse_sort(s: Option<&Document>) -> Result<Option<SortSpec>, BackendError> {
    s.map(SortSpec::parse).transpose().map_err(to_backend)
}

/// Applies a `find` projection, resolving `"a.$"` through the filter's matched element.
fn project(
    docs: Vec<Document>,
    projection: Option<&Projection>,
    filter: &Filter,
) -> Result<Vec<Document>, BackendError> {
    let Some(p) = projection else {
        return Ok(docs);
    };
    docs.iter()
        .map(|d| {
            let matched = if p.uses_positional() {
                filter.matched_array_index(d)
            } else {
                None
            };
            p.apply_with_match(d, matched)
        })
        .collect::<Result<_, _>>()
        .map_err(to_backend)
}

/// The database a pipeline runs in, for `$lookup`, `$unionWith`, `$out` and
/// `$merge`, with the collection it reads (`$collStats`) and its limits.
struct DatabaseContext<'a> {
    backend: &'a MemoryBackend,
    database: &'a str,
    collection: &'a str,
    limits: Limits,
}

impl AggregateContext for DatabaseContext<'_> {
    fn limits(&self) -> Limits {
        self.limits
    }

    fn stats(&self) -> Option<CollectionStats> {
        let ns = format!("{}.{}", self.database, self.collection);
        let Some(coll) = self.backend.snapshot(self.database, self.collection) else {
            return Some(CollectionStats {
                ns,
                count: 0,
                size: 0,
            });
        };
        Some(CollectionStats {
            ns,
            count: coll.len() as u64,
            size: coll.iter().map(|(_, d)| doc_size(d) as u64).sum(),
        })
    }

    fn collection(&self, name: &str) -> Vec<Document> {
        self.backend
            .snapshot(self.database, name)
            .map(|coll| coll.iter().map(|(_, d)| d.clone()).collect())
            .unwrap_or_default()
    }

    fn write_collection(&self, name: &str, docs: Vec<Document>) -> Result<(), QueryError> {
        let ns = format!("{}.{name}", self.database);
        self.backend
            .create(self.database, name)
            .write(|coll| coll.reset(docs).map_err(|v| write::refused(&ns, v)))
            .map_err(|err| match err.kind {
                BackendErrorKind::DuplicateKey => {
                    QueryError::new(QueryError::DUPLICATE_KEY, err.message)
                }
                _ => QueryError::new(171, err.message),
            })
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn find_one(
        &self,
        ns: &Namespace,
        query: FindOneQuery,
    ) -> Result<Option<Document>, BackendError> {
        if query.sort.is_none() && query.projection.as_ref().is_none_or(plain_projection) {
            if let Some(id) = plain_id_equality(&query.filter) {
                let projection = parse_projection(query.projection.as_ref())?;
                return match (self.find_by_id(ns, id), projection) {
                    (Some(doc), Some(p)) => p.apply(&doc).map(Some).map_err(to_backend),
                    (found, _) => Ok(found),
                };
            }
        }
        // Boxed: its state is large, and the quick path above would
        // otherwise move all of it to the heap on every call.
        Box::pin(self.find_one_planned(ns, query)).await
    }

    async fn find(&self, ns: &Namespace, query: FindQuery) -> Result<Vec<Document>, BackendError> {
        let filter = parse_filter(&query.filter)?;
        let projection = parse_projection(query.projection.as_ref())?;
        let sort = parse_sort(query.sort.as_ref())?;
        let (class, read) = self.plan_read(ns, &filter, &query.filter, sort.as_ref());
        let early = may_end_early(read.as_ref(), sort.as_ref(), query.limit);
        self.run_read(class, early, move || {
            let docs = read_matches(
                read.as_ref(),
                &filter,
                sort.as_ref(),
                query.skip,
                query.limit,
            )?;
            project(docs, projection.as_ref(), &filter)
        })
        .await
    }

    async fn insert_one(&self, ns: &Namespace, document: Document) -> Result<Bson, BackendError> {
        let ns = ns.clone();
        self.run(self.write_work(Work::Inline), move |backend| {
            let document = write::prepare_insert(document, None).map_err(to_backend)?;
            backend
                .create(&ns.database, &ns.collection)
                .write_one(true, |coll| write::insert_prepared(coll, &ns, document))
        })
        .await
    }

    async fn insert_many(
        &self,
        ns: &Namespace,
        documents: Vec<Document>,
    ) -> Result<Vec<Bson>, BackendError> {
        let ns = ns.clone();
        let class = self.write_work(if documents.len() > INLINE_INSERTS {
            Work::Pool
        } else {
            Work::Inline
        });
        self.run(class, move |backend| {
            let name = ns.to_string();
            let slot = backend.create(&ns.database, &ns.collection);
            if class != Work::Inline || slot.storage.is_some() {
                return slot.write_partial(|coll| write::insert_many(coll, &name, documents));
            }
            // In place, a chunk at a time: readers of the collection wait
            // for one chunk at most, never for the whole batch.
            let total = documents.len();
            let mut ids = Vec::with_capacity(total);
            let mut rest = documents.into_iter();
            while rest.len() > 0 {
                slot.change_in_place(|coll| {
                    let chunk = rest.by_ref().take(IN_PLACE_INSERT_CHUNK);
                    write::insert_ordered(coll, &name, chunk, &mut ids, total)
                })?;
            }
            Ok(ids)
        })
        .await
    }

    async fn update_one(
        &self,
        ns: &Namespace,
        query: UpdateQuery,
    ) -> Result<UpdateOutcome, BackendError> {
        self.update(ns, query, false, None).await
    }

    async fn update_many(
        &self,
        ns: &Namespace,
        query: UpdateQuery,
    ) -> Result<UpdateOutcome, BackendError> {
        self.update(ns, query, true, None).await
    }

    async fn replace_one(
        &self,
        ns: &Namespace,
        query: ReplaceQuery,
    ) -> Result<UpdateOutcome, BackendError> {
        self.replace(ns, query, None).await
    }

    async fn delete_one(&self, ns: &Namespace, filter: Document) -> Result<u64, BackendError> {
        self.delete(ns, &filter, false).await
    }

    async fn delete_many(&self, ns: &Namespace, filter: Document) -> Result<u64, BackendError> {
        self.delete(ns, &filter, true).await
    }

    async fn aggregate(
        &self,
        ns: &Namespace,
        pipeline: Vec<Document>,
    ) -> Result<Vec<Document>, BackendError> {
        let parsed = Pipeline::parse(&pipeline).map_err(to_backend)?;
        // Data API aggregates always name a collection.
        if parsed.starts_with_documents() {
            return Err(to_backend(QueryError::new(
                73,
                "'$documents' can only be run with {aggregate: 1}",
            )));
        }
        let ns = ns.clone();
        self.run(Work::Heavy, move |backend| {
            backend.run_aggregate(&ns, &parsed)
        })
        .await
    }

    /// Creates each index with [`MemoryBackend::create_index`].
    async fn ensure_indexes(
        &self,
        ns: &Namespace,
        indexes: &[IndexSpec],
    ) -> Result<(), BackendError> {
        let backend = self.clone();
        let ns = ns.clone();
        let indexes = indexes.to_vec();
        // Building over a large collection takes a while: not on a worker.
        tokio::task::spawn_blocking(move || {
            indexes
                .into_iter()
                .try_for_each(|spec| backend.create_index(&ns, spec))
        })
        .await
        .unwrap_or_else(|_| {
            Err(BackendError::new(
                BackendErrorKind::Unavailable,
                "index creation stopped",
            ))
        })
    }

    /// Atomic: the new version of the collection, with every checked
    /// document, is published at once or not at all.
    async fn write_checked(
        &self,
        ns: &Namespace,
        write: CheckedWrite,
        check: &dyn WriteCheck,
    ) -> Result<UpdateOutcome, BackendError> {
        match write {
            CheckedWrite::UpdateOne(query) => self.update(ns, query, false, Some(check)).await,
            CheckedWrite::UpdateMany(query) => self.update(ns, query, true, Some(check)).await,
            CheckedWrite::ReplaceOne(query) => self.replace(ns, query, Some(check)).await,
        }
    }
}

impl MemoryBackend {
    /// The meter of one operation: the request's deadline (or the backend's
    /// own time budget, whichever comes first), its abandonment flag and
    /// the memory budget.
    fn meter(&self) -> Meter {
        let context = RequestContext::current();
        let own_deadline = self.max_time.and_then(|t| Instant::now().checked_add(t));
        Meter {
            deadline: match (context.deadline(), own_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            abandoned: Some(context.abandoned_flag()),
            max_bytes: self.max_request_memory,
            inline_steps: None,
        }
    }

    /// Where an operation with this filter runs: filters with expressions
    /// (`$expr`, `$jsonSchema`: unbounded cost per document) are heavy;
    /// reads of more than [`INLINE_SCAN_DOCUMENTS`] documents (scans of
    /// larger collections, wide index ranges) go to the pool; a filter
    /// pinning `_id`, narrow index ranges and small scans run inline.
    fn work_for(&self, ns: &Namespace, filter: &Filter, raw: &Document) -> Work {
        if mentions_expressions(raw, 0) {
            return Work::Heavy;
        }
        // A point lookup, whatever the collection's size: no snapshot needed.
        if filter.id_equality().is_some() {
            return Work::Inline;
        }
        let cheap = self
            .snapshot(&ns.database, &ns.collection)
            .is_none_or(|coll| coll.reads_at_most(&coll.plan(filter, None), INLINE_SCAN_DOCUMENTS));
        if cheap {
            Work::Inline
        } else {
            Work::Pool
        }
    }

    /// Where a write of `class` runs: a durable backend's writes wait for
    /// the disk, so they never run inline on an async worker.
    fn write_work(&self, class: Work) -> Work {
        if self.storage.is_some() && class == Work::Inline {
            Work::Pool
        } else {
            class
        }
    }

    /// A turn among the backend's heavy operations (`None` for the other
    /// classes, which need none).
    async fn job_turn(
        &self,
        class: Work,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, BackendError> {
        if class != Work::Heavy {
            return Ok(None);
        }
        self.jobs
            .clone()
            .acquire_owned()
            .await
            .map(Some)
            .map_err(|_| BackendError::new(BackendErrorKind::Unavailable, "the engine is closed"))
    }

    /// findOne through the planner: any filter, sort and projection.
    async fn find_one_planned(
        &self,
        ns: &Namespace,
        query: FindOneQuery,
    ) -> Result<Option<Document>, BackendError> {
        let filter = parse_filter(&query.filter)?;
        let projection = parse_projection(query.projection.as_ref())?;
        let sort = parse_sort(query.sort.as_ref())?;
        let (class, read) = self.plan_read(ns, &filter, &query.filter, sort.as_ref());
        let early = may_end_early(read.as_ref(), sort.as_ref(), 1);
        self.run_read(class, early, move || {
            let docs = read_matches(read.as_ref(), &filter, sort.as_ref(), 0, 1)?;
            Ok(project(docs, projection.as_ref(), &filter)?
                .into_iter()
                .next())
        })
        .await
    }

    /// Runs `work` under the request's meter, where `class` says (see [`Work`]).
    async fn run<T, W>(&self, class: Work, work: W) -> Result<T, BackendError>
    where
        T: Send + 'static,
        W: FnOnce(&MemoryBackend) -> Result<T, BackendError> + Send + 'static,
    {
        let meter = self.meter();
        if class == Work::Inline {
            return budget::metered(meter, || work(self)).0;
        }
        let turn = self.job_turn(class).await?;
        let backend = self.clone();
        #[cfg(test)]
        self.pool_jobs.fetch_add(1, Ordering::Relaxed);
        let job = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            budget::metered(meter, || work(&backend)).0
        });
        match job.await {
            Ok(out) => out,
            // A panic is a bug: let the service's handler see it as its own.
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => Err(BackendError::new(
                BackendErrorKind::Unavailable,
                "the engine stopped before the operation finished",
            )),
        }
    }

    /// [`MemoryBackend::run`] for a read that may end early, when `early`
    /// (a limit met near the start of a scan, see [`may_end_early`]): a
    /// read classed for the pool first runs here, for up to
    /// [`INLINE_READ_STEPS`], and moves to the pool, starting again on the
    /// same snapshot, only when it has not finished by then. The hand-off
    /// costs more than most such reads: a `find` with `limit: 10` over a
    /// large collection took 32 µs of server CPU this way against 51.
    async fn run_read<T, R>(&self, class: Work, early: bool, read: R) -> Result<T, BackendError>
    where
        T: Send + 'static,
        R: Fn() -> Result<T, BackendError> + Send + 'static,
    {
        if class == Work::Pool && early {
            let meter = Meter {
                inline_steps: Some(INLINE_READ_STEPS),
                ..self.meter()
            };
            let (out, usage) = budget::metered(meter, &read);
            if !usage.over_allowance {
                return out;
            }
        }
        self.run(class, move |_| read()).await
    }

    /// [`MemoryBackend::run`] for work that borrows from the caller (a
    /// [`WriteCheck`]): long work runs in place of this async worker
    /// (`block_in_place`, the runtime moves its other tasks to a fresh
    /// worker) on a multi-threaded runtime, inline on others.
    async fn run_borrowed<T>(
        &self,
        class: Work,
        work: impl FnOnce(&MemoryBackend) -> Result<T, BackendError> + Send,
    ) -> Result<T, BackendError> {
        let meter = self.meter();
        if class == Work::Inline {
            return budget::metered(meter, || work(self)).0;
        }
        let _turn = self.job_turn(class).await?;
        let multi_threaded = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_threaded {
            tokio::task::block_in_place(|| budget::metered(meter, || work(self)).0)
        } else {
            budget::metered(meter, || work(self)).0
        }
    }

    async fn update(
        &self,
        ns: &Namespace,
        query: UpdateQuery,
        multi: bool,
        check: Option<&dyn WriteCheck>,
    ) -> Result<UpdateOutcome, BackendError> {
        let filter = parse_filter(&query.filter)?;
        let update = ParsedUpdate::parse(&query.update, query.array_filters.as_deref())
            .map_err(to_backend)?;
        let class = self.write_work(match update {
            ParsedUpdate::Pipeline(_) => Work::Heavy,
            ParsedUpdate::Operators(_) => self.work_for(ns, &filter, &query.filter),
        });
        match check {
            None => {
                let ns = ns.clone();
                self.run(class, move |backend| {
                    backend.run_update(&ns, &query, &filter, &update, multi, class, None)
                })
                .await
            }
            Some(check) => {
                self.run_borrowed(class, |backend| {
                    backend.run_update(ns, &query, &filter, &update, multi, class, Some(check))
                })
                .await
            }
        }
    }

    // The parsed forms travel beside the query they come from.
    #[allow(clippy::too_many_arguments)]
    fn run_update(
        &self,
        ns: &Namespace,
        query: &UpdateQuery,
        filter: &Filter,
        update: &ParsedUpdate,
        multi: bool,
        class: Work,
        check: Option<&dyn WriteCheck>,
    ) -> Result<UpdateOutcome, BackendError> {
        let Some(slot) = self.write_target(ns, query.upsert) else {
            return Ok(UpdateOutcome::default());
        };
        let spec = WriteSpec {
            ns: &ns.to_string(),
            filter,
            raw_filter: &query.filter,
            upsert: query.upsert,
            check,
        };
        slot.write_one(!multi && class == Work::Inline, |coll| {
            write::update(coll, &spec, update, multi)
        })
    }

    /// The collection an update writes to: created for an upsert, `None`
    /// when it does not exist otherwise (nothing to update).
    fn write_target(&self, ns: &Namespace, upsert: bool) -> Option<Arc<Slot>> {
        if upsert {
            Some(self.create(&ns.database, &ns.collection))
        } else {
            self.existing(&ns.database, &ns.collection)
        }
    }

    async fn replace(
        &self,
        ns: &Namespace,
        query: ReplaceQuery,
        check: Option<&dyn WriteCheck>,
    ) -> Result<UpdateOutcome, BackendError> {
        let filter = parse_filter(&query.filter)?;
        let class = self.write_work(self.work_for(ns, &filter, &query.filter));
        match check {
            None => {
                let ns = ns.clone();
                self.run(class, move |backend| {
                    backend.run_replace(&ns, query, &filter, class, None)
                })
                .await
            }
            Some(check) => {
                self.run_borrowed(class, |backend| {
                    backend.run_replace(ns, query, &filter, class, Some(check))
                })
                .await
            }
        }
    }

    fn run_replace(
        &self,
        ns: &Namespace,
        query: ReplaceQuery,
        filter: &Filter,
        class: Work,
        check: Option<&dyn WriteCheck>,
    ) -> Result<UpdateOutcome, BackendError> {
        let Some(slot) = self.write_target(ns, query.upsert) else {
            crate::query::update::validate_replacement(&query.replacement).map_err(to_backend)?;
            return Ok(UpdateOutcome::default());
        };
        let spec = WriteSpec {
            ns: &ns.to_string(),
            filter,
            raw_filter: &query.filter,
            upsert: query.upsert,
            check,
        };
        slot.write_one(class == Work::Inline, |coll| {
            write::replace(coll, &spec, query.replacement)
        })
    }

    async fn delete(
        &self,
        ns: &Namespace,
        raw_filter: &Document,
        multi: bool,
    ) -> Result<u64, BackendError> {
        let filter = parse_filter(raw_filter)?;
        let class = self.write_work(self.work_for(ns, &filter, raw_filter));
        let ns = ns.clone();
        self.run(class, move |backend| {
            let Some(slot) = backend.existing(&ns.database, &ns.collection) else {
                return Ok(0);
            };
            slot.write_one(!multi && class == Work::Inline, |coll| {
                write::delete(coll, &filter, multi)
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests;
