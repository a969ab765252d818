//! [`BackendUserDirectory`]: server-issued user ids for custom-token and
//! anonymous identities, in the state database.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bson::oid::ObjectId;
use bson::{doc, Bson, Document};

use crate::action::{FindOneQuery, FindQuery, Namespace};
use crate::auth::{identity_key, Principal, StoreError, UserDirectory};
use crate::backend::{Backend, BackendErrorKind, IndexSpec};

use super::{store_error, unix_now};

/// The collection of the state database that links identities to users.
const IDENTITIES: &str = "identities";

/// Anonymous users are forgotten this long after they were created, as App
/// Services deletes anonymous users after 90 days.
pub const ANONYMOUS_USER_LIFETIME_SECS: i64 = 90 * 86_400;

/// Identities remembered per process; ids never change once issued.
const CACHE_CAP: usize = 10_000;

/// One identity as [`BackendUserDirectory::list`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdentityInfo {
    /// The user id it belongs to (`%%user.id`).
    pub user_id: String,
    /// The provider type, e.g. `custom-token`.
    pub provider_type: String,
    /// The id within the provider, e.g. the JWT `sub`.
    pub identity_id: String,
    /// Unix seconds of its creation.
    pub created_at: i64,
    /// `"login"` for identities created by a first login, `"import"` for
    /// ones from an App Services users export.
    pub source: String,
}

/// Links identities the service holds no credentials for (custom JWTs,
/// anonymous logins) to users with a server-issued 24-hex id, in the
/// `identities` collection of the state database: `%%user.id` is the issued
/// id, stable across restarts and the same on every instance over the same
/// state backend. The first login of an identity creates its user; two
/// instances racing on it agree, because the identity is the record's `_id`.
///
/// Lookups are cached in process (ids never change once issued); anonymous
/// users are forgotten [`ANONYMOUS_USER_LIFETIME_SECS`] after their login.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tower_data_api::auth::{Principal, UserDirectory};
/// use tower_data_api::state::BackendUserDirectory;
/// use tower_data_api::MemoryBackend;
///
/// let directory = BackendUserDirectory::new(MemoryBackend::new(), "__data_api");
/// let user = directory.resolve(Principal::user("sub-1", "custom-token")).await.unwrap();
/// assert_eq!(user.id.len(), 24);
/// assert_eq!(user.identities[0].id, "sub-1");
/// # });
/// ```
#[derive(Clone)]
pub struct BackendUserDirectory {
    backend: Arc<dyn Backend>,
    namespace: Namespace,
    cache: Arc<Mutex<HashMap<String, String>>>,
}

impl BackendUserDirectory {
    /// Identities in `state_database`'s `identities` collection on `backend`.
    pub fn new(backend: impl Backend, state_database: &str) -> Self {
        Self::from_arc(Arc::new(backend), state_database)
    }

    /// [`new`](Self::new) over a shared backend.
    pub fn from_arc(backend: Arc<dyn Backend>, state_database: &str) -> Self {
        Self {
            backend,
            namespace: Namespace::new(state_database, IDENTITIES),
            cache: Arc::default(),
        }
    }

    /// Creates the indexes its lookups use (by user, by expiry); call once
    /// at start-up.
    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let text = |e: crate::backend::IndexSpecError| StoreError(e.to_string());
        let specs = [
            IndexSpec::new([("user_id", 1)]).map_err(text)?,
            IndexSpec::new([("expires_at", 1)]).map_err(text)?,
            // On MongoDB, expired anonymous users also leave by themselves.
            IndexSpec::new([("expire_at", 1)])
                .and_then(|spec| spec.expire_after(std::time::Duration::ZERO))
                .map_err(text)?,
        ];
        self.backend
            .ensure_indexes(&self.namespace, &specs)
            .await
            .map_err(store_error)
    }

    /// Every identity, by provider and id.
    pub async fn list(&self) -> Result<Vec<IdentityInfo>, StoreError> {
        let query = FindQuery::new(doc! {}).with_sort(doc! { "_id": 1 });
        let records = self
            .backend
            .find(&self.namespace, query)
            .await
            .map_err(store_error)?;
        Ok(records.iter().map(info).collect())
    }

    /// Links `provider_type`'s identity `identity_id` to the existing user
    /// `user_id` (an import); `false` when it was linked to that user
    /// already. An identity linked to another user is an error.
    pub async fn link(
        &self,
        provider_type: &str,
        identity_id: &str,
        user_id: &str,
    ) -> Result<bool, super::StateError> {
        let key = format!("{provider_type}:{identity_id}");
        let record = doc! {
            "_id": &key,
            "user_id": user_id,
            "provider_type": provider_type,
            "identity_id": identity_id,
            "created_at": unix_now(),
            "source": "import",
        };
        match self.backend.insert_one(&self.namespace, record).await {
            Ok(_) => Ok(true),
            Err(error) if error.kind == BackendErrorKind::DuplicateKey => {
                match self.stored(&key).await? {
                    Some(existing) if existing == user_id => Ok(false),
                    _ => Err(super::StateError::Exists(format!(
                        "identity '{key}' of another user"
                    ))),
                }
            }
            Err(error) => Err(store_error(error).into()),
        }
    }

    /// The user id stored for identity `key`.
    async fn stored(&self, key: &str) -> Result<Option<String>, StoreError> {
        let query = FindOneQuery::new(doc! { "_id": key }).with_projection(doc! { "user_id": 1 });
        let record = self
            .backend
            .find_one(&self.namespace, query)
            .await
            .map_err(store_error)?;
        Ok(record.and_then(|r| r.get_str("user_id").ok().map(str::to_owned)))
    }

    /// Creates the user of identity `key`; the id that won when another
    /// instance created it at the same moment.
    async fn create(&self, key: &str, principal: &Principal) -> Result<String, StoreError> {
        let (provider_type, identity_id) = key.split_once(':').unwrap_or((key, ""));
        let now = unix_now();
        let user_id = ObjectId::new().to_hex();
        let mut record = doc! {
            "_id": key,
            "user_id": &user_id,
            "type": principal.kind.as_str(),
            "provider_type": provider_type,
            "identity_id": identity_id,
            "created_at": now,
            "source": "login",
        };
        if provider_type == "anon-user" {
            // Anonymous users come and go: the expired ones leave as new ones arrive.
            let expires = now + ANONYMOUS_USER_LIFETIME_SECS;
            record.insert("expires_at", expires);
            record.insert(
                "expire_at",
                bson::DateTime::from_millis(expires.saturating_mul(1000)),
            );
            self.backend
                .delete_many(&self.namespace, doc! { "expires_at": { "$lte": now } })
                .await
                .map_err(store_error)?;
        }
        match self.backend.insert_one(&self.namespace, record).await {
            Ok(_) => Ok(user_id),
            Err(error) if error.kind == BackendErrorKind::DuplicateKey => self
                .stored(key)
                .await?
                .ok_or_else(|| StoreError("an identity vanished while it was created".into())),
            Err(error) => Err(store_error(error)),
        }
    }

    fn cached(&self, key: &str) -> Option<String> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(key)
            .cloned()
    }

    fn remember(&self, key: String, user_id: &str) {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= CACHE_CAP {
            cache.clear();
        }
        cache.insert(key, user_id.to_owned());
    }
}

impl fmt::Debug for BackendUserDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendUserDirectory")
            .field("namespace", &self.namespace.to_string())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl UserDirectory for BackendUserDirectory {
    async fn resolve(&self, mut principal: Principal) -> Result<Principal, StoreError> {
        let key = identity_key(&principal);
        let user_id = match self.cached(&key) {
            Some(id) => id,
            None => {
                let id = match self.stored(&key).await? {
                    Some(id) => id,
                    None => self.create(&key, &principal).await?,
                };
                self.remember(key, &id);
                id
            }
        };
        principal.id = user_id;
        Ok(principal)
    }
}

fn info(record: &Document) -> IdentityInfo {
    let text = |field: &str| record.get_str(field).unwrap_or_default().to_owned();
    IdentityInfo {
        user_id: text("user_id"),
        provider_type: text("provider_type"),
        identity_id: text("identity_id"),
        created_at: match record.get("created_at") {
            Some(Bson::Int64(n)) => *n,
            Some(Bson::Int32(n)) => i64::from(*n),
            _ => 0,
        },
        source: record.get_str("source").unwrap_or("login").to_owned(),
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use super::*;
    use crate::MemoryBackend;

    #[tokio::test]
    async fn two_directories_over_one_backend_issue_one_id_per_identity() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let a = BackendUserDirectory::from_arc(backend.clone(), "__data_api");
        let b = BackendUserDirectory::from_arc(backend, "__data_api");
        a.ensure_indexes().await.unwrap();
        let on_a = a
            .resolve(Principal::user("sub-1", "custom-token"))
            .await
            .unwrap();
        let on_b = b
            .resolve(Principal::user("sub-1", "custom-token"))
            .await
            .unwrap();
        assert_eq!(on_a.id, on_b.id);
        assert!(ObjectId::parse_str(&on_a.id).is_ok());
        assert_eq!(on_b.identities[0].id, "sub-1");
        let listed = a.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].user_id, on_a.id);
        assert_eq!(listed[0].source, "login");
    }

    #[tokio::test]
    async fn imported_links_keep_their_user_and_refuse_another() {
        let directory = BackendUserDirectory::new(MemoryBackend::new(), "__data_api");
        let owner = "5f1e2d3c4b5a697887766554";
        assert!(directory
            .link("custom-token", "sub-9", owner)
            .await
            .unwrap());
        assert!(!directory
            .link("custom-token", "sub-9", owner)
            .await
            .unwrap());
        let other = "65a1b2c3d4e5f60718293a4b";
        assert!(directory
            .link("custom-token", "sub-9", other)
            .await
            .is_err());
        let user = directory
            .resolve(Principal::user("sub-9", "custom-token"))
            .await
            .unwrap();
        assert_eq!(user.id, owner);
    }

    #[tokio::test]
    async fn anonymous_users_expire() {
        let directory = BackendUserDirectory::new(MemoryBackend::new(), "__data_api");
        let anon = directory
            .resolve(Principal::user(ObjectId::new().to_hex(), "anon-user"))
            .await
            .unwrap();
        let record = directory
            .backend
            .find_one(
                &directory.namespace,
                FindOneQuery::new(doc! { "user_id": &anon.id }),
            )
            .await
            .unwrap()
            .unwrap();
        let expires = record.get_i64("expires_at").unwrap();
        assert!(expires > unix_now() + ANONYMOUS_USER_LIFETIME_SECS - 60);
    }
}
