//! [`MongoBackend`]: the ten Data API actions over the official MongoDB driver.
//!
//! One [`mongodb::Client`] serves one data source. The driver connects lazily
//! and keeps its own connection pool, so a backend is cheap to clone and to
//! share. Driver errors are mapped by the `errors` module: a client only ever
//! sees the server's message about its own request, or a generic one.

mod checked;
mod encodable;
mod errors;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bson::{oid::ObjectId, Bson, Document};
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, UpdateModifications as DriverUpdate};
use mongodb::{Client, Collection, Cursor};

use crate::backend::{
    Backend, BackendError, BackendErrorKind, CheckedWrite, FindOneQuery, FindQuery, Namespace,
    ReplaceQuery, UpdateModifications, UpdateOutcome, UpdateQuery, WriteCheck,
};

use errors::log_and_map;

/// Settings for [`MongoBackend::connect`].
///
/// They override the same settings in the connection string. Build one from
/// [`Default`] and the `with_*` methods:
///
/// ```
/// use std::time::Duration;
/// use tower_data_api::backend::MongoBackendOptions;
///
/// let options = MongoBackendOptions::default()
///     .with_server_selection_timeout(Duration::from_secs(2))
///     .with_max_time(Some(Duration::from_secs(10)))
///     .with_app_name("orders-api");
/// assert_eq!(options.server_selection_timeout, Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MongoBackendOptions {
    /// How long an operation waits for a suitable server before it fails with
    /// [`BackendErrorKind::Unavailable`](crate::backend::BackendErrorKind::Unavailable).
    /// Default: 5 seconds.
    pub server_selection_timeout: Duration,
    /// How long opening one connection may take; `None` keeps the connection
    /// string's `connectTimeoutMS` or the driver's default (10 seconds).
    pub connect_timeout: Option<Duration>,
    /// Server-side time limit (`maxTimeMS`) for `find`, `findOne` and
    /// `aggregate`; past it the action fails with
    /// [`BackendErrorKind::Timeout`](crate::backend::BackendErrorKind::Timeout).
    /// Reads always get at most the time left before the request's deadline
    /// ([`RequestContext`](crate::backend::RequestContext)), so the server
    /// stops working for a request the service has already answered 504.
    /// Writes are not limited here (the driver sends no `maxTimeMS` with them);
    /// the service's request deadline bounds them. Default: none.
    pub max_time: Option<Duration>,
    /// The name the driver reports to the server (`appName`, visible in server
    /// logs and `currentOp`); `None` keeps the connection string's.
    pub app_name: Option<String>,
    /// Most documents one checked `updateMany` (a JSON schema or post-image
    /// rules, see [`Backend::write_checked`]) may change: each one's old and
    /// new version is held in memory for the check. More → 400. Default:
    /// 100,000.
    pub max_checked_documents: usize,
}

impl Default for MongoBackendOptions {
    fn default() -> Self {
        Self {
            server_selection_timeout: Duration::from_secs(5),
            connect_timeout: None,
            max_time: None,
            app_name: None,
            max_checked_documents: 100_000,
        }
    }
}

impl MongoBackendOptions {
    /// Sets [`server_selection_timeout`](Self::server_selection_timeout).
    #[must_use]
    pub fn with_server_selection_timeout(mut self, timeout: Duration) -> Self {
        self.server_selection_timeout = timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`max_time`](Self::max_time).
    #[must_use]
    pub fn with_max_time(mut self, max_time: Option<Duration>) -> Self {
        self.max_time = max_time;
        self
    }

    /// Sets [`max_checked_documents`](Self::max_checked_documents).
    #[must_use]
    pub fn with_max_checked_documents(mut self, documents: usize) -> Self {
        self.max_checked_documents = documents;
        self
    }

    /// Sets [`app_name`](Self::app_name).
    #[must_use]
    pub fn with_app_name(mut self, app_name: impl Into<String>) -> Self {
        self.app_name = Some(app_name.into());
        self
    }

    /// Writes these settings into the driver's options.
    fn apply(&self, options: &mut ClientOptions) {
        options.server_selection_timeout = Some(self.server_selection_timeout);
        if let Some(timeout) = self.connect_timeout {
            options.connect_timeout = Some(timeout);
        }
        if let Some(name) = &self.app_name {
            options.app_name = Some(name.clone());
        }
    }
}

/// A data source backed by a MongoDB deployment (Atlas, replica set, sharded
/// cluster) through the official driver.
///
/// Cloning is cheap: clones share the driver's client and connection pool.
///
/// # Errors
///
/// Each action maps the driver's error to a [`BackendError`] whose message is
/// safe to show a client:
///
/// - duplicate key (E11000) → `DuplicateKey`, document validation →
///   `DocumentValidation`, a request the server or the driver refuses (bad
///   operator, bad pipeline stage, immutable `_id`, wrong type, …) →
///   `InvalidRequest`, a command the server lacks → `Unsupported`: all with the
///   server's (or driver's) own message, which describes the request;
/// - no reachable server, network or authentication failure → `Unavailable`,
///   `maxTimeMS` or a socket time-out exceeded → `Timeout`, anything else →
///   `Internal`: all with a fixed message (the driver's text names hosts).
///
/// The driver's full error is logged with `tracing` (`warn` for the second group,
/// `debug` for the first).
///
/// ```no_run
/// # async fn example() -> Result<(), tower_data_api::backend::BackendError> {
/// use tower_data_api::backend::{MongoBackend, MongoBackendOptions};
///
/// let backend = MongoBackend::connect(
///     "mongodb+srv://user:password@cluster0.example.mongodb.net/",
///     MongoBackendOptions::default(),
/// )
/// .await?;
/// # let _ = backend;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MongoBackend {
    client: Client,
    max_time: Option<Duration>,
    max_checked_documents: usize,
}

impl fmt::Debug for MongoBackend {
    // The client's options hold credentials: print none of them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoBackend")
            .field("max_time", &self.max_time)
            .field("max_checked_documents", &self.max_checked_documents)
            .finish_non_exhaustive()
    }
}

impl MongoBackend {
    /// `maxTimeMS` for a read: the configured limit or the time left before
    /// the request's deadline, whichever is shorter (never zero, which the
    /// server reads as "no limit").
    fn read_time_limit(&self) -> Option<Duration> {
        let left = crate::backend::RequestContext::current().remaining();
        let limit = match (self.max_time, left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        limit.map(|t| t.max(Duration::from_millis(1)))
    }

    /// Parses `uri` and creates the driver's client; for `mongodb+srv` URIs the
    /// DNS look-up happens here. No connection is opened yet: a server that is
    /// down shows up on the first action, as
    /// [`BackendErrorKind::Unavailable`](crate::backend::BackendErrorKind::Unavailable)
    /// after [`MongoBackendOptions::server_selection_timeout`].
    ///
    /// A malformed URI gives an error whose message quotes nothing of it.
    pub async fn connect(uri: &str, options: MongoBackendOptions) -> Result<Self, BackendError> {
        let mut client_options = ClientOptions::parse(uri)
            .await
            .map_err(|e| errors::connection_string_error(&e, uri))?;
        options.apply(&mut client_options);
        let client = Client::with_options(client_options)
            .map_err(|e| errors::connection_string_error(&e, uri))?;
        Ok(Self {
            client,
            max_time: options.max_time,
            max_checked_documents: options.max_checked_documents,
        })
    }

    /// Wraps a driver client configured by the caller (no `maxTimeMS`; see
    /// [`with_max_time`](Self::with_max_time)).
    ///
    /// ```no_run
    /// # async fn example() -> mongodb::error::Result<()> {
    /// use tower_data_api::backend::MongoBackend;
    ///
    /// let client = mongodb::Client::with_uri_str("mongodb://localhost:27017").await?;
    /// let backend = MongoBackend::from_client(client);
    /// # let _ = backend;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_client(client: mongodb::Client) -> Self {
        Self {
            client,
            max_time: None,
            max_checked_documents: MongoBackendOptions::default().max_checked_documents,
        }
    }

    /// Sets the server-side time limit of reads and aggregations
    /// (see [`MongoBackendOptions::max_time`]).
    #[must_use]
    pub fn with_max_time(mut self, max_time: Option<Duration>) -> Self {
        self.max_time = max_time;
        self
    }

    /// The driver client this backend runs on.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn collection(&self, ns: &Namespace) -> Collection<Document> {
        self.client
            .database(&ns.database)
            .collection::<Document>(&ns.collection)
    }

    /// Runs an update (`multi` for `updateMany`).
    async fn update(
        &self,
        ns: &Namespace,
        query: UpdateQuery,
        multi: bool,
    ) -> Result<UpdateOutcome, BackendError> {
        let operation = if multi { "updateMany" } else { "updateOne" };
        encodable::check(&query.filter)?;
        match &query.update {
            UpdateModifications::Operators(doc) => encodable::check(doc)?,
            UpdateModifications::Pipeline(stages) => encodable::check_all(stages)?,
        }
        if let Some(filters) = &query.array_filters {
            encodable::check_all(filters)?;
        }
        let update = match query.update {
            UpdateModifications::Operators(doc) => DriverUpdate::Document(doc),
            UpdateModifications::Pipeline(stages) => DriverUpdate::Pipeline(stages),
        };
        let coll = self.collection(ns);
        let mut action = if multi {
            coll.update_many(query.filter, update)
        } else {
            coll.update_one(query.filter, update)
        };
        action = action.upsert(query.upsert);
        if let Some(filters) = query.array_filters {
            action = action.array_filters(filters);
        }
        let result = action.await.map_err(|e| log_and_map(&e, operation))?;
        Ok(UpdateOutcome {
            matched_count: result.matched_count,
            modified_count: result.modified_count,
            upserted_id: result.upserted_id,
        })
    }
}

/// Checks the documents of a `find` or `findOne` (see [`encodable`]).
fn check_query(
    filter: &Document,
    projection: &Option<Document>,
    sort: &Option<Document>,
) -> Result<(), BackendError> {
    encodable::check(filter)?;
    projection.iter().chain(sort).try_for_each(encodable::check)
}

/// How many BSON bytes of results a read may hold per byte of the response
/// limit before it stops: no encoded value is more than this many times
/// smaller in JSON than in BSON (the worst case, a double in an array, is
/// 11 bytes of BSON for 2 of JSON), so a read stopped here could never have
/// been sent, and the exact check stays the encoder's.
const BSON_BYTES_PER_RESPONSE_BYTE: usize = 8;

/// Reads every document of a cursor, stopping with
/// [`BackendErrorKind::ResponseTooLarge`] once the documents read could
/// never fit in the request's response limit.
async fn collect(mut cursor: Cursor<Document>) -> Result<Vec<Document>, CollectError> {
    let budget = crate::backend::RequestContext::current()
        .response_limit()
        .map(|limit| limit.saturating_mul(BSON_BYTES_PER_RESPONSE_BYTE));
    let mut documents = Vec::new();
    let mut bytes = 0usize;
    while cursor.advance().await? {
        bytes = bytes.saturating_add(cursor.current().as_bytes().len());
        if let Some(budget) = budget.filter(|budget| bytes > *budget) {
            let limit = budget / BSON_BYTES_PER_RESPONSE_BYTE;
            return Err(CollectError::TooLarge(BackendError::new(
                BackendErrorKind::ResponseTooLarge,
                crate::protocol::response_too_large_message(limit),
            )));
        }
        documents.push(cursor.deserialize_current()?);
    }
    Ok(documents)
}

/// Why [`collect`] stopped.
enum CollectError {
    Driver(mongodb::error::Error),
    TooLarge(BackendError),
}

impl From<mongodb::error::Error> for CollectError {
    fn from(error: mongodb::error::Error) -> Self {
        CollectError::Driver(error)
    }
}

impl CollectError {
    fn into_backend(self, operation: &'static str) -> BackendError {
        match self {
            CollectError::Driver(error) => log_and_map(&error, operation),
            CollectError::TooLarge(error) => error,
        }
    }
}

/// Gives `document` an ObjectId `_id` (as its first field) when it has none,
/// and returns its `_id`. Doing it here, not in the driver, keeps the returned
/// `_id`s known even when an ordered insert fails part-way.
fn ensure_id(document: Document) -> (Bson, Document) {
    if let Some(id) = document.get("_id") {
        return (id.clone(), document);
    }
    let id = Bson::ObjectId(ObjectId::new());
    let mut with_id = Document::new();
    with_id.insert("_id", id.clone());
    with_id.extend(document);
    (id, with_id)
}

/// How many documents of an ordered insert went in before `error`: the index
/// of the first failing document, when the server reported one.
fn inserted_before(error: &mongodb::error::Error) -> Option<usize> {
    match error.kind.as_ref() {
        ErrorKind::InsertMany(e) => e
            .write_errors
            .as_ref()
            .and_then(|errors| errors.iter().map(|w| w.index).min()),
        _ => None,
    }
}

#[async_trait]
impl Backend for MongoBackend {
    fn kind(&self) -> &'static str {
        "MongoDB"
    }

    async fn find_one(
        &self,
        ns: &Namespace,
        query: FindOneQuery,
    ) -> Result<Option<Document>, BackendError> {
        check_query(&query.filter, &query.projection, &query.sort)?;
        let coll = self.collection(ns);
        let mut action = coll.find_one(query.filter);
        if let Some(projection) = query.projection {
            action = action.projection(projection);
        }
        if let Some(sort) = query.sort {
            action = action.sort(sort);
        }
        if let Some(max_time) = self.read_time_limit() {
            action = action.max_time(max_time);
        }
        action.await.map_err(|e| log_and_map(&e, "findOne"))
    }

    async fn find(&self, ns: &Namespace, query: FindQuery) -> Result<Vec<Document>, BackendError> {
        check_query(&query.filter, &query.projection, &query.sort)?;
        let coll = self.collection(ns);
        let mut action = coll.find(query.filter);
        if let Some(projection) = query.projection {
            action = action.projection(projection);
        }
        if let Some(sort) = query.sort {
            action = action.sort(sort);
        }
        if query.skip > 0 {
            // The server reads skip as a signed 64-bit number.
            action = action.skip(query.skip.min(i64::MAX as u64));
        }
        // 0 means "no limit", as in MongoDB; a positive limit keeps the cursor
        // open across batches (a negative one would mean "one batch only").
        if query.limit > 0 {
            action = action.limit(i64::try_from(query.limit).unwrap_or(i64::MAX));
        }
        if let Some(max_time) = self.read_time_limit() {
            action = action.max_time(max_time);
        }
        let cursor = action.await.map_err(|e| log_and_map(&e, "find"))?;
        collect(cursor).await.map_err(|e| e.into_backend("find"))
    }

    async fn insert_one(&self, ns: &Namespace, document: Document) -> Result<Bson, BackendError> {
        encodable::check(&document)?;
        let (id, document) = ensure_id(document);
        self.collection(ns)
            .insert_one(document)
            .await
            .map_err(|e| log_and_map(&e, "insertOne"))?;
        Ok(id)
    }

    async fn insert_many(
        &self,
        ns: &Namespace,
        documents: Vec<Document>,
    ) -> Result<Vec<Bson>, BackendError> {
        if documents.is_empty() {
            return Ok(Vec::new());
        }
        encodable::check_all(&documents)?;
        let total = documents.len();
        let (ids, documents): (Vec<Bson>, Vec<Document>) =
            documents.into_iter().map(ensure_id).unzip();
        match self
            .collection(ns)
            .insert_many(documents)
            .ordered(true)
            .await
        {
            Ok(_) => Ok(ids),
            Err(e) => {
                let mut mapped = log_and_map(&e, "insertMany");
                if let Some(inserted) = inserted_before(&e) {
                    mapped.message = format!(
                        "{} ({inserted} of {total} documents were inserted before the error)",
                        mapped.message
                    );
                }
                Err(mapped)
            }
        }
    }

    async fn update_one(
        &self,
        ns: &Namespace,
        query: UpdateQuery,
    ) -> Result<UpdateOutcome, BackendError> {
        self.update(ns, query, false).await
    }

    async fn update_many(
        &self,
        ns: &Namespace,
        query: UpdateQuery,
    ) -> Result<UpdateOutcome, BackendError> {
        self.update(ns, query, true).await
    }

    async fn replace_one(
        &self,
        ns: &Namespace,
        query: ReplaceQuery,
    ) -> Result<UpdateOutcome, BackendError> {
        encodable::check(&query.filter)?;
        encodable::check(&query.replacement)?;
        let result = self
            .collection(ns)
            .replace_one(query.filter, query.replacement)
            .upsert(query.upsert)
            .await
            .map_err(|e| log_and_map(&e, "replaceOne"))?;
        Ok(UpdateOutcome {
            matched_count: result.matched_count,
            modified_count: result.modified_count,
            upserted_id: result.upserted_id,
        })
    }

    async fn delete_one(&self, ns: &Namespace, filter: Document) -> Result<u64, BackendError> {
        encodable::check(&filter)?;
        let result = self
            .collection(ns)
            .delete_one(filter)
            .await
            .map_err(|e| log_and_map(&e, "deleteOne"))?;
        Ok(result.deleted_count)
    }

    /// Creates the indexes with one `createIndexes` command; the server
    /// keeps an existing index with the same keys and options as it is.
    async fn ensure_indexes(
        &self,
        ns: &Namespace,
        indexes: &[crate::backend::IndexSpec],
    ) -> Result<(), BackendError> {
        if indexes.is_empty() {
            return Ok(());
        }
        let models = indexes.iter().map(|spec| {
            mongodb::IndexModel::builder()
                .keys(spec.key_document())
                .options(
                    mongodb::options::IndexOptions::builder()
                        .name(spec.name().to_string())
                        .unique(spec.is_unique())
                        .expire_after(spec.expires_after())
                        .build(),
                )
                .build()
        });
        self.collection(ns)
            .create_indexes(models)
            .await
            .map_err(|e| log_and_map(&e, "createIndexes"))?;
        Ok(())
    }

    async fn delete_many(&self, ns: &Namespace, filter: Document) -> Result<u64, BackendError> {
        encodable::check(&filter)?;
        let result = self
            .collection(ns)
            .delete_many(filter)
            .await
            .map_err(|e| log_and_map(&e, "deleteMany"))?;
        Ok(result.deleted_count)
    }

    async fn aggregate(
        &self,
        ns: &Namespace,
        pipeline: Vec<Document>,
    ) -> Result<Vec<Document>, BackendError> {
        encodable::check_all(&pipeline)?;
        let coll = self.collection(ns);
        let mut action = coll.aggregate(pipeline);
        if let Some(max_time) = self.read_time_limit() {
            action = action.max_time(max_time);
        }
        let cursor = action.await.map_err(|e| log_and_map(&e, "aggregate"))?;
        collect(cursor)
            .await
            .map_err(|e| e.into_backend("aggregate"))
    }

    /// Runs the `ping` command on the `admin` database.
    async fn ping(&self) -> Result<(), BackendError> {
        self.client
            .database("admin")
            .run_command(bson::doc! { "ping": 1 })
            .await
            .map(drop)
            .map_err(|e| log_and_map(&e, "ping"))
    }

    /// One transaction per attempt, retried on write conflicts; needs a
    /// replica set or sharded cluster (see the `checked` module).
    async fn write_checked(
        &self,
        ns: &Namespace,
        write: CheckedWrite,
        check: &dyn WriteCheck,
    ) -> Result<UpdateOutcome, BackendError> {
        checked::write_checked(self, ns, write, check).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn ensure_id_keeps_an_existing_id() {
        let (id, doc) = ensure_id(doc! { "a": 1, "_id": 7 });
        assert_eq!(id, Bson::Int32(7));
        assert_eq!(doc, doc! { "a": 1, "_id": 7 });
    }

    #[test]
    fn ensure_id_prepends_an_object_id() {
        let (id, doc) = ensure_id(doc! { "a": 1 });
        assert!(matches!(id, Bson::ObjectId(_)));
        assert_eq!(doc.keys().next().map(String::as_str), Some("_id"));
        assert_eq!(doc.get("_id"), Some(&id));
        assert_eq!(doc.get("a"), Some(&Bson::Int32(1)));
    }

    #[test]
    fn options_default_and_apply() {
        let options = MongoBackendOptions::default();
        assert_eq!(options.server_selection_timeout, Duration::from_secs(5));
        let options = options
            .with_connect_timeout(Some(Duration::from_secs(1)))
            .with_app_name("x");
        let mut driver = ClientOptions::default();
        driver.app_name = Some("from-uri".into());
        options.apply(&mut driver);
        assert_eq!(
            driver.server_selection_timeout,
            Some(Duration::from_secs(5))
        );
        assert_eq!(driver.connect_timeout, Some(Duration::from_secs(1)));
        assert_eq!(driver.app_name.as_deref(), Some("x"));
    }
}
