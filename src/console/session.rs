//! Console logins: random ids in a cookie, kept server-side (as SHA-256
//! digests) in the `console_sessions` collection of the state database, so
//! every instance over the same state honours them and a logout ends them
//! everywhere.

use std::sync::Arc;

use bson::{doc, DateTime};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::action::{FindOneQuery, Namespace};
use crate::auth::StoreError;
use crate::backend::{Backend, IndexSpec};
use crate::state::StateStores;

use super::http::{cookie, Failure, SESSION_COOKIE};
use super::ConsoleConfig;

/// The collection of console sessions.
const SESSIONS: &str = "console_sessions";

/// A logged-in administrator.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The digest of the cookie's id (the record's `_id`).
    digest: String,
    /// The administrator's email.
    pub(crate) email: String,
    /// The token every form of this session carries.
    pub(crate) csrf: String,
}

/// The console's session records.
#[derive(Clone)]
pub(crate) struct Sessions {
    backend: Arc<dyn Backend>,
    namespace: Namespace,
}

impl Sessions {
    pub(crate) fn new(backend: Arc<dyn Backend>, state_database: &str) -> Self {
        Self {
            backend,
            namespace: Namespace::new(state_database, SESSIONS),
        }
    }

    pub(crate) async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let spec = IndexSpec::new([("email", 1)]).map_err(|e| StoreError(e.to_string()))?;
        self.backend
            .ensure_indexes(&self.namespace, &[spec])
            .await
            .map_err(store_error)
    }

    /// Starts a session for `email`; the cookie value (shown once, to the browser).
    pub(crate) async fn start(
        &self,
        email: &str,
        lifetime: std::time::Duration,
    ) -> Result<String, StoreError> {
        let now = DateTime::now();
        // Expired records go when a new one comes.
        let _ = self
            .backend
            .delete_many(&self.namespace, doc! { "expires_at": { "$lt": now } })
            .await;
        let id = random_token();
        let expires = now
            .timestamp_millis()
            .saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX / 2));
        let record = doc! {
            "_id": digest(&id),
            "email": email,
            "csrf": random_token(),
            "expires_at": DateTime::from_millis(expires),
        };
        self.backend
            .insert_one(&self.namespace, record)
            .await
            .map_err(store_error)?;
        Ok(id)
    }

    /// The session of the request's cookie, if it is live and its user is
    /// still an enabled administrator.
    pub(crate) async fn find(
        &self,
        parts: &http::request::Parts,
        state: &StateStores,
        config: &ConsoleConfig,
    ) -> Result<Option<Session>, Failure> {
        let Some(id) = cookie(parts, SESSION_COOKIE).filter(|id| id.len() == 64) else {
            return Ok(None);
        };
        let digest = digest(id);
        let record = self
            .backend
            .find_one(&self.namespace, FindOneQuery::new(doc! { "_id": &digest }))
            .await
            .map_err(store_error)?;
        let Some(record) = record else {
            return Ok(None);
        };
        let live = record
            .get_datetime("expires_at")
            .is_ok_and(|expires| *expires > DateTime::now());
        let (Ok(email), Ok(csrf)) = (record.get_str("email"), record.get_str("csrf")) else {
            return Ok(None);
        };
        if !live || !config.is_admin(email) {
            return Ok(None);
        }
        let users = state.users.list().await.map_err(|e| match e {
            crate::state::StateError::Store(error) => Failure::from(error),
            other => Failure::BadRequest(other.to_string()),
        })?;
        if !users
            .iter()
            .any(|user| user.email == email && !user.disabled)
        {
            return Ok(None);
        }
        Ok(Some(Session {
            digest,
            email: email.to_owned(),
            csrf: csrf.to_owned(),
        }))
    }

    /// Ends one session (logout).
    pub(crate) async fn end(&self, session: &Session) -> Result<(), StoreError> {
        self.backend
            .delete_one(&self.namespace, doc! { "_id": &session.digest })
            .await
            .map(drop)
            .map_err(store_error)
    }

    /// Ends every console session of `email`.
    pub(crate) async fn end_all(&self, email: &str) -> Result<(), StoreError> {
        self.backend
            .delete_many(&self.namespace, doc! { "email": email })
            .await
            .map(drop)
            .map_err(store_error)
    }
}

/// 32 random bytes as 64 hex digits.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn digest(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

fn store_error(error: crate::backend::BackendError) -> StoreError {
    StoreError(format!("the state database failed: {error}"))
}
