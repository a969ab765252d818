//! [`BackendSessionStore`]: bearer sessions in the state database.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bson::{doc, Bson, Document};

use crate::action::{FindQuery, Namespace};
use crate::auth::{Session, SessionStore, StoreError};
use crate::backend::{Backend, IndexSpec};

use super::store_error;

/// The collection of the state database that holds sessions.
const SESSIONS: &str = "sessions";

/// Refresh sessions kept in the `sessions` collection of the state database
/// on a [`Backend`]; every instance over the same backend shares them.
///
/// One document per session: `_id` is the session id (never a token: the
/// tokens are signed, and name their session), with the user id, the times
/// and the principal. At most `max_per_user` sessions per user (100 by
/// default): a new login past it ends that user's oldest. Expired sessions
/// are deleted at each login (and refused anyway).
///
/// Instances sharing sessions must share the signing keys too
/// ([`SessionSettings::signing_key`](crate::auth::SessionSettings::signing_key)).
///
/// ```
/// use tower_data_api::state::BackendSessionStore;
/// use tower_data_api::{DataApi, MemoryBackend};
///
/// let state = MemoryBackend::new();
/// let service = DataApi::builder()
///     .data_source("mongodb-atlas", MemoryBackend::new())
///     .api_key("ci", "key")
///     .session_store(BackendSessionStore::new(state, "__data_api"))
///     .build();
/// assert!(service.is_ok());
/// ```
#[derive(Clone)]
pub struct BackendSessionStore {
    backend: Arc<dyn Backend>,
    namespace: Namespace,
    max_per_user: usize,
}

impl BackendSessionStore {
    /// Sessions in `state_database`'s `sessions` collection on `backend`.
    pub fn new(backend: impl Backend, state_database: &str) -> Self {
        Self::from_arc(Arc::new(backend), state_database)
    }

    /// [`new`](Self::new) over a shared backend.
    pub fn from_arc(backend: Arc<dyn Backend>, state_database: &str) -> Self {
        Self {
            backend,
            namespace: Namespace::new(state_database, SESSIONS),
            max_per_user: 100,
        }
    }

    /// Sessions one user may hold at once (at least 1; default 100).
    #[must_use]
    pub fn with_max_per_user(mut self, max_per_user: usize) -> Self {
        self.max_per_user = max_per_user.max(1);
        self
    }

    /// Creates the indexes its lookups use (by user, by expiry), where the
    /// backend has indexes; call once at start-up.
    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let specs = [
            IndexSpec::new([("user_id", 1)]).map_err(store_error_text)?,
            IndexSpec::new([("expires_at", 1)]).map_err(store_error_text)?,
            // On MongoDB, expired sessions also leave by themselves.
            IndexSpec::new([("expire_at", 1)])
                .and_then(|spec| spec.expire_after(std::time::Duration::ZERO))
                .map_err(store_error_text)?,
        ];
        self.backend
            .ensure_indexes(&self.namespace, &specs)
            .await
            .map_err(store_error)
    }

    /// Ends the user's oldest sessions so that one more fits.
    async fn make_room(&self, user_id: &str) -> Result<(), StoreError> {
        let query = FindQuery::new(doc! { "user_id": user_id })
            .with_sort(doc! { "created_at": 1, "_id": 1 })
            .with_projection(doc! { "_id": 1 });
        let held = self
            .backend
            .find(&self.namespace, query)
            .await
            .map_err(store_error)?;
        let excess = (held.len() + 1).saturating_sub(self.max_per_user);
        let oldest: Vec<Bson> = held
            .into_iter()
            .take(excess)
            .filter_map(|session| session.get("_id").cloned())
            .collect();
        if !oldest.is_empty() {
            self.backend
                .delete_many(&self.namespace, doc! { "_id": { "$in": oldest } })
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }
}

impl fmt::Debug for BackendSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendSessionStore")
            .field("namespace", &self.namespace.to_string())
            .field("max_per_user", &self.max_per_user)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionStore for BackendSessionStore {
    async fn create(&self, session: Session) -> Result<(), StoreError> {
        let now = i64::try_from(session.created_at).unwrap_or(i64::MAX);
        self.backend
            .delete_many(&self.namespace, doc! { "expires_at": { "$lte": now } })
            .await
            .map_err(store_error)?;
        self.make_room(&session.principal.id).await?;
        let principal = bson::to_document(&session.principal)
            .map_err(|e| StoreError(format!("a session could not be encoded: {e}")))?;
        let record = doc! {
            "_id": &session.id,
            "user_id": &session.principal.id,
            "device_id": &session.device_id,
            "created_at": i64::try_from(session.created_at).unwrap_or(i64::MAX),
            "expires_at": i64::try_from(session.expires_at).unwrap_or(i64::MAX),
            "expire_at": bson::DateTime::from_millis(
                i64::try_from(session.expires_at.saturating_mul(1000)).unwrap_or(i64::MAX),
            ),
            "principal": principal,
        };
        self.backend
            .insert_one(&self.namespace, record)
            .await
            .map(drop)
            .map_err(store_error)
    }

    async fn get(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let query = crate::action::FindOneQuery::new(doc! { "_id": id });
        let Some(record) = self
            .backend
            .find_one(&self.namespace, query)
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        decode(&record).map(Some)
    }

    async fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        self.backend
            .delete_one(&self.namespace, doc! { "_id": id })
            .await
            .map(|deleted| deleted > 0)
            .map_err(store_error)
    }

    async fn revoke_user(&self, user_id: &str) -> Result<usize, StoreError> {
        self.backend
            .delete_many(&self.namespace, doc! { "user_id": user_id })
            .await
            .map(|deleted| usize::try_from(deleted).unwrap_or(usize::MAX))
            .map_err(store_error)
    }
}

/// A session from its stored record.
fn decode(record: &Document) -> Result<Session, StoreError> {
    let broken = || StoreError("a stored session is malformed".into());
    let number = |field: &str| match record.get(field) {
        Some(Bson::Int64(n)) => u64::try_from(*n).ok(),
        Some(Bson::Int32(n)) => u64::try_from(*n).ok(),
        _ => None,
    };
    let principal = record.get_document("principal").map_err(|_| broken())?;
    Ok(Session {
        id: record.get_str("_id").map_err(|_| broken())?.to_owned(),
        principal: bson::from_document(principal.clone()).map_err(|_| broken())?,
        device_id: record
            .get_str("device_id")
            .map_err(|_| broken())?
            .to_owned(),
        created_at: number("created_at").ok_or_else(broken)?,
        expires_at: number("expires_at").ok_or_else(broken)?,
    })
}

fn store_error_text(error: impl fmt::Display) -> StoreError {
    StoreError(error.to_string())
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use super::*;
    use crate::auth::{Principal, PrincipalKind};
    use crate::MemoryBackend;

    fn now_secs() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn session(id: &str, user: &str, created_at: u64, expires_at: u64) -> Session {
        Session {
            id: id.into(),
            principal: Principal::new(user, PrincipalKind::Normal, "local-userpass")
                .with_name(format!("{user}@example.com")),
            device_id: "000000000000000000000000".into(),
            created_at,
            expires_at,
        }
    }

    #[tokio::test]
    async fn two_stores_over_one_backend_share_sessions() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let a = BackendSessionStore::from_arc(backend.clone(), "__data_api");
        let b = BackendSessionStore::from_arc(backend, "__data_api");
        a.ensure_indexes().await.unwrap();
        let now = now_secs();
        let one = session("65a000000000000000000001", "u1", now, now + 600);
        a.create(one.clone()).await.unwrap();
        assert_eq!(b.get(&one.id).await.unwrap(), Some(one.clone()));
        assert!(b.revoke(&one.id).await.unwrap());
        assert_eq!(a.get(&one.id).await.unwrap(), None);
        a.create(session("65a000000000000000000002", "u1", now, now + 600))
            .await
            .unwrap();
        a.create(session("65a000000000000000000003", "u2", now, now + 600))
            .await
            .unwrap();
        assert_eq!(b.revoke_user("u1").await.unwrap(), 1);
        assert!(a.get("65a000000000000000000003").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn the_oldest_sessions_make_room_and_expired_ones_go() {
        let store =
            BackendSessionStore::new(MemoryBackend::new(), "__data_api").with_max_per_user(2);
        let now = now_secs();
        store
            .create(session("65a000000000000000000001", "u", now - 30, now - 1))
            .await
            .unwrap();
        store
            .create(session("65a000000000000000000002", "u", now - 20, now + 60))
            .await
            .unwrap();
        store
            .create(session("65a000000000000000000003", "u", now - 10, now + 60))
            .await
            .unwrap();
        assert_eq!(
            store.get("65a000000000000000000001").await.unwrap(),
            None,
            "expired"
        );
        store
            .create(session("65a000000000000000000004", "u", now, now + 60))
            .await
            .unwrap();
        assert_eq!(
            store.get("65a000000000000000000002").await.unwrap(),
            None,
            "oldest"
        );
        assert!(store
            .get("65a000000000000000000003")
            .await
            .unwrap()
            .is_some());
        assert!(store
            .get("65a000000000000000000004")
            .await
            .unwrap()
            .is_some());
    }
}
