//! Data sources: the [`Backend`] trait and its two implementations.
//!
//! A backend executes the ten Data API actions for one data source. The service
//! has already decoded, authenticated and authorized the request; a backend only
//! runs it. Backends are object-safe so one service can mix data sources of
//! different kinds (`Arc<dyn Backend>`).
//!
//! - [`MongoBackend`] (feature `mongodb`) runs each action through the official
//!   MongoDB driver: Atlas, replica sets, sharded clusters.
//! - [`MemoryBackend`] (feature `memory`) is the embedded engine: MongoDB's query
//!   semantics evaluated in-process, for tests, local development and the
//!   standalone binary.

use std::fmt;

use async_trait::async_trait;
use bson::{Bson, Document};

mod context;
mod index;
#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "mongodb")]
mod mongo;

pub use crate::action::{
    FindOneQuery, FindQuery, Namespace, ReplaceQuery, UpdateModifications, UpdateOutcome,
    UpdateQuery,
};
pub use context::RequestContext;
pub use index::{IndexDirection, IndexSpec, IndexSpecError};
#[cfg(feature = "memory")]
pub use memory::{MemoryBackend, OpenError, StorageInfo, StorageStats, SyncMode};
#[cfg(feature = "mongodb")]
pub use mongo::{MongoBackend, MongoBackendOptions};

/// What went wrong inside a backend; the service turns it into an HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    /// The class of failure, which decides the HTTP status.
    pub kind: BackendErrorKind,
    /// A message safe to show to the client (never hosts, URIs or credentials).
    pub message: String,
}

/// Classes of backend failure.
///
/// Non-exhaustive: new classes may be added, so a `match` needs a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The request is wrong for MongoDB: bad operator, bad update, bad pipeline,
    /// immutable `_id`, a value of the wrong type (HTTP 400).
    InvalidRequest,
    /// A unique index refused the write (HTTP 400).
    DuplicateKey,
    /// The request uses a feature this backend does not support (HTTP 400).
    Unsupported,
    /// A document failed the collection's validation (HTTP 400).
    DocumentValidation,
    /// The data source cannot be reached (HTTP 503).
    Unavailable,
    /// The data source did not answer in time (HTTP 504).
    Timeout,
    /// A [`WriteCheck`] refused a document on permission grounds (HTTP 403);
    /// the message is shown as it is.
    PermissionDenied,
    /// The result is too large to send (HTTP 400 `ReadSizeLimitExceeded`);
    /// the message is shown as it is.
    ResponseTooLarge,
    /// Anything else (HTTP 500); the message is generic.
    Internal,
}

impl BackendError {
    /// A new error of `kind` with a client-safe `message`.
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Shorthand for [`BackendErrorKind::InvalidRequest`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(BackendErrorKind::InvalidRequest, message)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BackendError {}

/// An update or replacement whose every written document must pass a
/// [`WriteCheck`]: see [`Backend::write_checked`].
#[derive(Debug, Clone, PartialEq)]
pub enum CheckedWrite {
    /// `updateOne`.
    UpdateOne(UpdateQuery),
    /// `updateMany`.
    UpdateMany(UpdateQuery),
    /// `replaceOne`.
    ReplaceOne(ReplaceQuery),
}

/// Approves or refuses each document a write is about to store, atomically
/// with the write (see [`Backend::write_checked`]).
///
/// The service builds one from the collection's JSON schema and from rules
/// whose roles depend on the fields an update changes.
///
/// A check runs inside the write: on the embedded engine a short write
/// holds the collection while it runs, and readers of that collection wait.
/// Keep checks quick and never call back into the backend from one.
///
/// ```
/// use bson::Document;
/// use tower_data_api::backend::{BackendError, BackendErrorKind, WriteCheck};
///
/// /// Refuses documents with a negative `stock`.
/// struct NonNegativeStock;
///
/// impl WriteCheck for NonNegativeStock {
///     fn check(&self, _before: Option<&Document>, after: &Document) -> Result<(), BackendError> {
///         match after.get_i32("stock") {
///             Ok(n) if n < 0 => Err(BackendError::new(
///                 BackendErrorKind::DocumentValidation,
///                 "stock cannot be negative",
///             )),
///             _ => Ok(()),
///         }
///     }
/// }
/// ```
pub trait WriteCheck: Send + Sync {
    /// Checks one document: `before` is the stored version (`None` when an
    /// upsert inserts it), `after` the version about to be stored, `_id`
    /// included. An error refuses the whole write, which then changes
    /// nothing; the backend returns that error unchanged.
    fn check(&self, before: Option<&Document>, after: &Document) -> Result<(), BackendError>;
}

/// Executes the ten Data API actions against one data source.
///
/// Implementations must be cheap to share (`Arc<dyn Backend>`); every method may
/// be called concurrently. The service enforces the request deadline by dropping
/// the returned future, so a backend should not leave half-applied writes when
/// it is dropped between two awaits of a multi-document write.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// `findOne`: the first matching document, or `None`.
    async fn find_one(
        &self,
        ns: &Namespace,
        query: FindOneQuery,
    ) -> Result<Option<Document>, BackendError>;

    /// `find`: matching documents after sort, skip and limit.
    async fn find(&self, ns: &Namespace, query: FindQuery) -> Result<Vec<Document>, BackendError>;

    /// `insertOne`: stores the document (adding an ObjectId `_id` when it has
    /// none) and returns its `_id`.
    async fn insert_one(&self, ns: &Namespace, document: Document) -> Result<Bson, BackendError>;

    /// `insertMany`: an ordered insert; returns the `_id`s in input order. On the
    /// first failure the documents before it stay inserted and the error names
    /// how many were.
    async fn insert_many(
        &self,
        ns: &Namespace,
        documents: Vec<Document>,
    ) -> Result<Vec<Bson>, BackendError>;

    /// `updateOne`.
    async fn update_one(
        &self,
        ns: &Namespace,
        query: UpdateQuery,
    ) -> Result<UpdateOutcome, BackendError>;

    /// `updateMany`.
    async fn update_many(
        &self,
        ns: &Namespace,
        query: UpdateQuery,
    ) -> Result<UpdateOutcome, BackendError>;

    /// `replaceOne`.
    async fn replace_one(
        &self,
        ns: &Namespace,
        query: ReplaceQuery,
    ) -> Result<UpdateOutcome, BackendError>;

    /// `deleteOne`: returns the number of documents deleted (0 or 1).
    async fn delete_one(&self, ns: &Namespace, filter: Document) -> Result<u64, BackendError>;

    /// `deleteMany`: returns the number of documents deleted.
    async fn delete_many(&self, ns: &Namespace, filter: Document) -> Result<u64, BackendError>;

    /// `aggregate`: the documents the pipeline's last stage produces.
    async fn aggregate(
        &self,
        ns: &Namespace,
        pipeline: Vec<Document>,
    ) -> Result<Vec<Document>, BackendError>;

    /// What kind of backend this is, as the admin console shows it
    /// (`embedded`, `MongoDB`); default `custom`.
    fn kind(&self) -> &'static str {
        "custom"
    }

    /// Checks that the data source answers, for the readiness probe
    /// (`GET <mount>/ready`). The default answers at once: a backend in
    /// the process is as ready as the process. The error's message is
    /// shown to the caller of the probe: no hosts or URIs.
    async fn ping(&self) -> Result<(), BackendError> {
        Ok(())
    }

    /// Makes sure the collection has these secondary indexes (creating the
    /// missing ones), as set up at start-up from the configuration. The
    /// default refuses (400): a backend without indexes says so.
    async fn ensure_indexes(
        &self,
        ns: &Namespace,
        indexes: &[IndexSpec],
    ) -> Result<(), BackendError> {
        let _ = (ns, indexes);
        Err(BackendError::new(
            BackendErrorKind::Unsupported,
            "this data source does not support declared indexes",
        ))
    }

    /// Runs `write` like [`update_one`](Backend::update_one),
    /// [`update_many`](Backend::update_many) or
    /// [`replace_one`](Backend::replace_one), calling `check` on every
    /// document it changes or inserts, **atomically** with the write: the
    /// document checked is the document stored, no other writer can change
    /// it in between, and one refusal leaves every document as it was.
    /// Documents the write leaves unchanged are not checked.
    ///
    /// The service calls this instead of the plain methods when the
    /// collection has a JSON schema or rules must re-check updated documents.
    /// The default refuses (400): a backend that cannot make the check
    /// atomic must not pretend to.
    async fn write_checked(
        &self,
        ns: &Namespace,
        write: CheckedWrite,
        check: &dyn WriteCheck,
    ) -> Result<UpdateOutcome, BackendError> {
        let _ = (ns, write, check);
        Err(BackendError::new(
            BackendErrorKind::Unsupported,
            "this data source cannot check updated documents atomically \
             (needed for JSON schema validation and rules that re-check updated documents)",
        ))
    }
}
