//! The service's own state kept in a database of a backend (the *state
//! database*), shared by every instance that uses the same backend, and the
//! guard that keeps that database out of the Data API's reach.
//!
//! [`BackendSessionStore`], [`BackendKeyStore`], [`BackendUserStore`] and
//! [`BackendLogSink`] keep bearer sessions, API keys, email/password users
//! and request logs there: two instances over
//! one state backend honour each other's logins, refreshes and logouts, and
//! sessions outlive a restart when the backend does (MongoDB, or the
//! durable embedded engine). It works on any [`Backend`],
//! through the same ten actions the Data API serves, so one implementation
//! covers MongoDB and the embedded engine.
//!
//! Whatever holds state, the state database's name (default
//! [`DEFAULT_STATE_DATABASE`], see
//! [`DataApiBuilder::state_database`](crate::DataApiBuilder::state_database))
//! is refused with 403 as a request's `database` and as a `db` anywhere in
//! a pipeline (`$lookup`, `$unionWith`, `$out`, `$merge`), so a data source
//! on the same cluster cannot read or write it.

mod directory;
mod import;
mod keys;
mod logs;
mod sessions;
mod sources;
mod users;

use std::sync::Arc;
use std::time::Duration;

use bson::{Bson, Document};
use http::StatusCode;

use crate::action::{ActionRequest, Command};
use crate::auth::StoreError;
use crate::backend::Backend;
use crate::log::{LogSink, TracingLogSink};
use crate::protocol::{ApiError, ErrorCode};
use crate::DataApiBuilder;

pub use directory::{BackendUserDirectory, IdentityInfo, ANONYMOUS_USER_LIFETIME_SECS};
pub use import::ImportReport;
pub use keys::{BackendKeyStore, KeyInfo, KEY_CACHE_TTL};
pub use logs::{BackendLogSink, LogFilter};
pub use sessions::BackendSessionStore;
pub use sources::{BackendSourceSettings, SourceSetting, SOURCE_SETTINGS_TTL};
pub use users::{BackendUserStore, UserInfo};

/// What went wrong managing keys or users in the state database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// It exists already (`key 'reports'`, `user 'ada@example.com'`).
    Exists(String),
    /// It does not exist.
    NotFound(String),
    /// The store already holds the most allowed of them.
    TooMany(usize),
    /// A value cannot be used (an email, a password).
    Invalid(String),
    /// The state database failed.
    Store(StoreError),
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::Exists(what) => write!(f, "{what} exists already"),
            StateError::NotFound(what) => write!(f, "{what} does not exist"),
            StateError::TooMany(cap) => write!(f, "at most {cap} may exist"),
            StateError::Invalid(why) => f.write_str(why),
            StateError::Store(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for StateError {}

impl From<StoreError> for StateError {
    fn from(error: StoreError) -> Self {
        StateError::Store(error)
    }
}

impl From<crate::auth::InvalidPassword> for StateError {
    fn from(error: crate::auth::InvalidPassword) -> Self {
        StateError::Invalid(error.0)
    }
}

/// A backend failure as the stores report it.
fn store_error(error: crate::backend::BackendError) -> StoreError {
    StoreError(format!("the state database failed: {error}"))
}

/// Inserts `record`; a unique index refusing it is [`StateError::Exists`]
/// of `what` (`key 'reports'`).
async fn insert_record(
    backend: &dyn Backend,
    namespace: &crate::action::Namespace,
    record: Document,
    what: impl FnOnce() -> String,
) -> Result<(), StateError> {
    match backend.insert_one(namespace, record).await {
        Ok(_) => Ok(()),
        Err(error) if error.kind == crate::backend::BackendErrorKind::DuplicateKey => {
            Err(StateError::Exists(what()))
        }
        Err(error) => Err(store_error(error).into()),
    }
}

/// The first record `filter` matches.
async fn find_record(
    backend: &dyn Backend,
    namespace: &crate::action::Namespace,
    filter: Document,
) -> Result<Option<Document>, StateError> {
    backend
        .find_one(namespace, crate::action::FindOneQuery::new(filter))
        .await
        .map_err(|e| store_error(e).into())
}

/// Applies update operators to the first record `filter` matches; how many matched.
async fn update_record(
    backend: &dyn Backend,
    namespace: &crate::action::Namespace,
    filter: Document,
    update: Document,
) -> Result<u64, StateError> {
    let query = crate::action::UpdateQuery::new(
        filter,
        crate::action::UpdateModifications::Operators(update),
    );
    backend
        .update_one(namespace, query)
        .await
        .map(|outcome| outcome.matched_count)
        .map_err(|e| store_error(e).into())
}

/// Now, in Unix seconds.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The state database's default name.
pub const DEFAULT_STATE_DATABASE: &str = "__data_api";

/// The four stores over one state database, with their indexes made.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tower_data_api::state::StateStores;
/// use tower_data_api::{DataApi, MemoryBackend};
///
/// let state = StateStores::open(Arc::new(MemoryBackend::new()), "__data_api", Duration::from_secs(30 * 86_400))
///     .await
///     .unwrap();
/// let service = state
///     .install(DataApi::builder().data_source("mongodb-atlas", MemoryBackend::new()))
///     .build();
/// assert!(service.is_ok());
/// # });
/// ```
#[derive(Clone)]
pub struct StateStores {
    /// The state database's name.
    pub database: String,
    /// Bearer sessions.
    pub sessions: BackendSessionStore,
    /// API keys.
    pub keys: BackendKeyStore,
    /// Email/password users (ending their sessions when disabled or removed).
    pub users: BackendUserStore,
    /// Request logs, kept for the retention given to [`open`](Self::open).
    pub logs: BackendLogSink,
    /// Server-issued user ids of custom-token and anonymous identities.
    pub directory: BackendUserDirectory,
    /// Whether [`install`](Self::install) makes `%%user.id` the issued id
    /// (default) rather than the provider's (the JWT `sub`); see
    /// [`provider_user_ids`](Self::provider_user_ids).
    pub issue_user_ids: bool,
    /// Data sources' run-time access levels and on/off switches.
    pub sources: BackendSourceSettings,
    /// The backend the state database lives on.
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for StateStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStores")
            .field("database", &self.database)
            .field("sessions", &self.sessions)
            .field("keys", &self.keys)
            .field("users", &self.users)
            .field("logs", &self.logs)
            .field("sources", &self.sources)
            .field("directory", &self.directory)
            .field("issue_user_ids", &self.issue_user_ids)
            .finish_non_exhaustive()
    }
}

impl StateStores {
    /// Opens the stores in `database` on `backend` and makes their indexes;
    /// request logs are kept `log_retention`. Call inside a tokio runtime
    /// (the log writer is a task).
    pub async fn open(
        backend: Arc<dyn Backend>,
        database: &str,
        log_retention: Duration,
    ) -> Result<Self, StoreError> {
        let sessions = BackendSessionStore::from_arc(backend.clone(), database);
        let keys = BackendKeyStore::from_arc(backend.clone(), database);
        let users =
            BackendUserStore::from_arc(backend.clone(), database).with_sessions(sessions.clone());
        let sources = BackendSourceSettings::from_arc(backend.clone(), database);
        let logs = BackendLogSink::from_arc(backend.clone(), database, log_retention);
        let directory = BackendUserDirectory::from_arc(backend.clone(), database);
        sessions.ensure_indexes().await?;
        directory.ensure_indexes().await?;
        keys.ensure_indexes().await?;
        users.ensure_indexes().await?;
        logs.ensure_indexes().await?;
        Ok(Self {
            database: database.to_owned(),
            sessions,
            keys,
            users,
            logs,
            sources,
            backend,
            directory,
            issue_user_ids: true,
        })
    }

    /// The backend the state database lives on.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The service's session-signing key kept in the state database (the
    /// `settings` collection), made at random the first time: every
    /// instance over this state signs and verifies bearer tokens with it,
    /// and tokens outlive restarts, without a key in each configuration.
    /// Whoever can read the state database can read it: configure
    /// `signing_keys` explicitly where that matters.
    pub async fn session_signing_key(&self) -> Result<crate::auth::Secret, StoreError> {
        const ID: &str = "session-signing-key";
        let namespace = crate::action::Namespace::new(&self.database, "settings");
        let backend = self.backend.as_ref();
        let stored = |record: Option<Document>| {
            record.and_then(|r| r.get_str("value").ok().map(crate::auth::Secret::new))
        };
        let query = crate::action::FindOneQuery::new(bson::doc! { "_id": ID });
        if let Some(key) = stored(
            backend
                .find_one(&namespace, query.clone())
                .await
                .map_err(store_error)?,
        ) {
            return Ok(key);
        }
        let key = crate::auth::generate_api_key();
        match backend
            .insert_one(
                &namespace,
                bson::doc! { "_id": ID, "value": &key, "created_at": unix_now() },
            )
            .await
        {
            Ok(_) => Ok(crate::auth::Secret::new(key)),
            // Another instance made it first: theirs it is.
            Err(error) if error.kind == crate::backend::BackendErrorKind::DuplicateKey => stored(
                backend
                    .find_one(&namespace, query)
                    .await
                    .map_err(store_error)?,
            )
            .ok_or_else(|| StoreError("the session-signing key vanished".into())),
            Err(error) => Err(store_error(error)),
        }
    }

    /// Keeps `%%user.id` the provider's own id for custom-token and
    /// anonymous users (the JWT `sub`), as before user records existed,
    /// instead of a server-issued id.
    #[must_use]
    pub fn provider_user_ids(mut self) -> Self {
        self.issue_user_ids = false;
        self
    }

    /// `builder` with these stores: sessions, keys, users and issued user
    /// ids from here, request logs to `tracing` and here, data-source
    /// settings from here, and the state database refused to requests.
    pub fn install(&self, builder: DataApiBuilder) -> DataApiBuilder {
        let sinks: Vec<Arc<dyn LogSink>> =
            vec![Arc::new(TracingLogSink), Arc::new(self.logs.clone())];
        let builder = if self.issue_user_ids {
            builder.user_directory(self.directory.clone())
        } else {
            builder
        };
        builder
            .session_store(self.sessions.clone())
            .key_store(self.keys.clone())
            .user_store(self.users.clone())
            .log_sink(sinks)
            .source_settings(self.sources.clone())
            .state_database(&self.database)
    }
}

/// 403 when `request` names the state database, as its `database` or as a
/// `db` in its pipeline or update pipeline.
pub(crate) fn refuse_state_database(
    request: &ActionRequest,
    state_database: &str,
) -> Result<(), ApiError> {
    let named = request
        .namespace
        .database
        .eq_ignore_ascii_case(state_database)
        || pipeline(&request.command).is_some_and(|stages| {
            stages
                .iter()
                .any(|stage| names_database(stage, state_database, 0))
        });
    if named {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::PermissionDenied,
            format!(
                "the database '{state_database}' holds the service's own state and cannot be \
                 used through the Data API"
            ),
        ));
    }
    Ok(())
}

fn pipeline(command: &Command) -> Option<&[Document]> {
    match command {
        Command::Aggregate(stages) => Some(stages),
        _ => None,
    }
}

/// Deep enough for any pipeline the decoder accepts; deeper is refused too.
const MAX_DEPTH: usize = 200;

/// Whether `document` holds `db: <name>` at any depth (`$lookup` and
/// `$unionWith` sub-pipelines, `$facet`, `$out`, `$merge.into`).
fn names_database(document: &Document, name: &str, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return true;
    }
    document.iter().any(|(key, value)| {
        (key == "db" && matches!(value, Bson::String(db) if db.eq_ignore_ascii_case(name)))
            || value_names_database(value, name, depth + 1)
    })
}

fn value_names_database(value: &Bson, name: &str, depth: usize) -> bool {
    match value {
        Bson::Document(inner) => names_database(inner, name, depth),
        Bson::Array(items) => items
            .iter()
            .any(|item| value_names_database(item, name, depth + 1)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use bson::doc;

    use super::*;
    use crate::action::{
        FindOneQuery, FindQuery, Namespace, ReplaceQuery, UpdateOutcome, UpdateQuery,
    };
    use crate::backend::{BackendError, BackendErrorKind};

    fn request(database: &str, command: Command) -> ActionRequest {
        ActionRequest {
            data_source: "s".into(),
            namespace: Namespace::new(database, "c"),
            command,
        }
    }

    #[test]
    fn the_state_database_is_refused_by_name_and_in_pipelines() {
        let find = Command::FindOne(FindOneQuery::new(doc! {}));
        let err =
            refuse_state_database(&request("__data_api", find.clone()), "__data_api").unwrap_err();
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        assert!(err.message().contains("'__data_api'"), "{}", err.message());
        assert!(refuse_state_database(&request("__DATA_API", find.clone()), "__data_api").is_err());
        assert!(refuse_state_database(&request("app", find), "__data_api").is_ok());
        for stage in [
            doc! {"$lookup": {"from": {"db": "__data_api", "coll": "sessions"}, "as": "x", "pipeline": []}},
            doc! {"$unionWith": {"coll": "sessions", "db": "__data_api"}},
            doc! {"$out": {"db": "__data_api", "coll": "keys"}},
            doc! {"$merge": {"into": {"db": "__data_api", "coll": "keys"}}},
            doc! {"$facet": {"a": [{"$unionWith": {"db": "__data_api", "coll": "x"}}]}},
        ] {
            let aggregate = Command::Aggregate(vec![doc! {"$match": {}}, stage.clone()]);
            assert!(
                refuse_state_database(&request("app", aggregate), "__data_api").is_err(),
                "{stage}"
            );
        }
        let coarse = Command::Aggregate(vec![doc! {"$match": {"db": "__data_api"}}]);
        // A field called `db` in a filter is refused too: the check is
        // deliberately coarse, and such a filter on the state name is rare.
        assert!(refuse_state_database(&request("app", coarse), "__data_api").is_err());
    }

    /// A state database that cannot be reached: every call fails at once.
    struct Unreachable;

    fn down<T>() -> Result<T, BackendError> {
        Err(BackendError::new(
            BackendErrorKind::Unavailable,
            "connection refused",
        ))
    }

    #[async_trait::async_trait]
    impl Backend for Unreachable {
        async fn find_one(
            &self,
            _: &Namespace,
            _: FindOneQuery,
        ) -> Result<Option<Document>, BackendError> {
            down()
        }
        async fn find(&self, _: &Namespace, _: FindQuery) -> Result<Vec<Document>, BackendError> {
            down()
        }
        async fn insert_one(&self, _: &Namespace, _: Document) -> Result<Bson, BackendError> {
            down()
        }
        async fn insert_many(
            &self,
            _: &Namespace,
            _: Vec<Document>,
        ) -> Result<Vec<Bson>, BackendError> {
            down()
        }
        async fn update_one(
            &self,
            _: &Namespace,
            _: UpdateQuery,
        ) -> Result<UpdateOutcome, BackendError> {
            down()
        }
        async fn update_many(
            &self,
            _: &Namespace,
            _: UpdateQuery,
        ) -> Result<UpdateOutcome, BackendError> {
            down()
        }
        async fn replace_one(
            &self,
            _: &Namespace,
            _: ReplaceQuery,
        ) -> Result<UpdateOutcome, BackendError> {
            down()
        }
        async fn delete_one(&self, _: &Namespace, _: Document) -> Result<u64, BackendError> {
            down()
        }
        async fn delete_many(&self, _: &Namespace, _: Document) -> Result<u64, BackendError> {
            down()
        }
        async fn aggregate(
            &self,
            _: &Namespace,
            _: Vec<Document>,
        ) -> Result<Vec<Document>, BackendError> {
            down()
        }
    }

    #[cfg(feature = "memory")]
    #[tokio::test]
    async fn an_unreachable_state_store_is_503_for_what_needs_it_and_nothing_else() {
        use http_body_util::BodyExt;
        use tower::ServiceExt;

        let state: Arc<dyn Backend> = Arc::new(Unreachable);
        let logs = BackendLogSink::from_arc(state.clone(), "__data_api", Duration::from_secs(60));
        let service = crate::DataApi::builder()
            .app_id("data-test")
            .data_source("mongodb-atlas", crate::MemoryBackend::new())
            .api_key("file-key", "a-key-from-the-builder-0123456789")
            .key_store(BackendKeyStore::from_arc(state.clone(), "__data_api"))
            .session_store(BackendSessionStore::from_arc(state, "__data_api"))
            .log_sink(logs.clone())
            .build()
            .unwrap();
        let call = |header: (&'static str, &'static str)| {
            let request = http::Request::post("/app/data-test/endpoint/data/v1/action/findOne")
                .header(header.0, header.1)
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(
                    r#"{"dataSource":"mongodb-atlas","database":"d","collection":"c","filter":{}}"#,
                )))
                .unwrap();
            let service = service.clone();
            async move {
                let response = service.oneshot(request).await.unwrap();
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                (
                    status,
                    serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
                )
            }
        };
        // A key the store must look up, a bearer token: 503 in the Data API's shape.
        let (status, body) = call(("apiKey", "a-key-only-the-state-store-could-know")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error_code"], "ServiceUnavailable");
        assert!(
            !body["error"]
                .as_str()
                .unwrap()
                .contains("connection refused"),
            "{body}"
        );
        let (status, body) = call(("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x")).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "a malformed token needs no lookup: {body}"
        );
        // A login needs the session store: 503 too.
        let login =
            http::Request::post("/api/client/v2.0/app/data-test/auth/providers/api-key/login")
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(
                    r#"{"key":"a-key-from-the-builder-0123456789"}"#,
                )))
                .unwrap();
        let response = service.clone().oneshot(login).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        // A key found without the store keeps working, and the log sink being
        // down neither fails nor delays it: its entries are counted as dropped.
        let started = std::time::Instant::now();
        let (status, body) = call(("apiKey", "a-key-from-the-builder-0123456789")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(started.elapsed() < Duration::from_secs(1));
        for _ in 0..100 {
            if logs.dropped() >= 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(logs.dropped(), 4, "every entry, counted");
    }
}
