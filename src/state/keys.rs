//! [`BackendKeyStore`]: API keys in the state database, managed at run time.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bson::{doc, Bson, Document};
use sha2::{Digest, Sha256};

use crate::action::{FindOneQuery, FindQuery, Namespace};
use crate::auth::{generate_api_key, KeyStore, Principal, PrincipalKind, Secret, StoreError};
use crate::backend::{Backend, IndexSpec};

use super::{find_record, insert_record, store_error, unix_now, update_record, StateError};

/// The collection of the state database that holds API keys.
const KEYS: &str = "api_keys";

/// How long a lookup is remembered: a key deleted or disabled on any
/// instance stops working everywhere within this long.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// How often a key's `last_used` is written at most.
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// Lookups remembered at once; past it the cache starts again empty.
const CACHE_CAP: usize = 10_000;

/// One key as [`BackendKeyStore::list`] shows it: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The key's name.
    pub name: String,
    /// Unix seconds of its creation.
    pub created_at: i64,
    /// Unix seconds of its last use (written at most once a minute).
    pub last_used: Option<i64>,
    /// Whether it is refused for now.
    pub disabled: bool,
    /// `"file"` for keys from the configuration file, `"api"` otherwise.
    pub source: String,
}

/// API keys kept in the `api_keys` collection of the state database on a
/// [`Backend`]: every instance over the same backend accepts the same keys,
/// and keys are created, listed, disabled and deleted while the service
/// runs. Only the SHA-256 digest of a key is stored; a new key is shown once,
/// by [`create`](Self::create).
///
/// Lookups are remembered for [`KEY_CACHE_TTL`] (1 s): a deleted or disabled
/// key is refused everywhere within a second. At most 100 keys by default,
/// as the original service allowed.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tower_data_api::auth::{KeyStore, Secret};
/// use tower_data_api::state::BackendKeyStore;
/// use tower_data_api::MemoryBackend;
///
/// let keys = BackendKeyStore::new(MemoryBackend::new(), "__data_api");
/// let key = keys.create("reports").await.unwrap();
/// let principal = keys.find_key(&Secret::new(key)).await.unwrap().unwrap();
/// assert_eq!(principal.name.as_deref(), Some("reports"));
/// # });
/// ```
#[derive(Clone)]
pub struct BackendKeyStore {
    backend: Arc<dyn Backend>,
    namespace: Namespace,
    max_keys: usize,
    cache: Arc<Mutex<HashMap<[u8; 32], Cached>>>,
}

#[derive(Clone)]
struct Cached {
    at: Instant,
    principal: Option<Principal>,
}

impl BackendKeyStore {
    /// Keys in `state_database`'s `api_keys` collection on `backend`.
    pub fn new(backend: impl Backend, state_database: &str) -> Self {
        Self::from_arc(Arc::new(backend), state_database)
    }

    /// [`new`](Self::new) over a shared backend.
    pub fn from_arc(backend: Arc<dyn Backend>, state_database: &str) -> Self {
        Self {
            backend,
            namespace: Namespace::new(state_database, KEYS),
            max_keys: 100,
            cache: Arc::default(),
        }
    }

    /// The most keys that may exist (at least 1; default 100).
    #[must_use]
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(1);
        self
    }

    /// The most keys that may exist.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Creates the unique index on digests its lookups use; call once at
    /// start-up.
    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let spec = IndexSpec::new([("digest", 1)])
            .map_err(|e| StoreError(e.to_string()))?
            .unique(true);
        self.backend
            .ensure_indexes(&self.namespace, &[spec])
            .await
            .map_err(store_error)
    }

    /// Creates a key called `name` and returns it: the only time it is shown.
    pub async fn create(&self, name: &str) -> Result<String, StateError> {
        let key = generate_api_key();
        self.insert(name, digest_of(&key), "api").await?;
        Ok(key)
    }

    /// Adds a key from the configuration file by its digest, or updates the
    /// digest of the file's key of that name (keys made at run time with
    /// that name are left alone and reported as existing).
    pub async fn seed(&self, name: &str, digest: [u8; 32]) -> Result<(), StateError> {
        let existing = self.record(name).await?;
        match existing {
            None => self.insert(name, digest, "file").await,
            Some(record) if record.get_str("source") == Ok("file") => {
                let update = doc! { "$set": { "digest": hex::encode(digest) } };
                self.update(name, update).await.map(drop)
            }
            Some(_) => Err(StateError::Exists(format!("key '{name}'"))),
        }
    }

    /// Every key, by name: never the keys themselves.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, StateError> {
        let query = FindQuery::new(doc! {}).with_sort(doc! { "_id": 1 });
        let records = self
            .backend
            .find(&self.namespace, query)
            .await
            .map_err(store_error)?;
        Ok(records.iter().map(info).collect())
    }

    /// Refuses (`true`) or accepts again (`false`) the key called `name`.
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), StateError> {
        let matched = self
            .update(name, doc! { "$set": { "disabled": disabled } })
            .await?;
        self.forget();
        if matched == 0 {
            return Err(StateError::NotFound(format!("key '{name}'")));
        }
        Ok(())
    }

    /// Deletes the key called `name`.
    pub async fn delete(&self, name: &str) -> Result<(), StateError> {
        let deleted = self
            .backend
            .delete_one(&self.namespace, doc! { "_id": name })
            .await
            .map_err(store_error)?;
        self.forget();
        if deleted == 0 {
            return Err(StateError::NotFound(format!("key '{name}'")));
        }
        Ok(())
    }

    async fn insert(&self, name: &str, digest: [u8; 32], source: &str) -> Result<(), StateError> {
        let held = self
            .backend
            .find(
                &self.namespace,
                FindQuery::new(doc! {}).with_projection(doc! { "_id": 1 }),
            )
            .await
            .map_err(store_error)?;
        if held.len() >= self.max_keys {
            return Err(StateError::TooMany(self.max_keys));
        }
        let record = doc! {
            "_id": name,
            "digest": hex::encode(digest),
            "user_id": key_user_id(name),
            "created_at": unix_now(),
            "disabled": false,
            "source": source,
        };
        insert_record(self.backend.as_ref(), &self.namespace, record, || {
            format!("key '{name}'")
        })
        .await
    }

    async fn record(&self, name: &str) -> Result<Option<Document>, StateError> {
        find_record(self.backend.as_ref(), &self.namespace, doc! { "_id": name }).await
    }

    async fn update(&self, name: &str, update: Document) -> Result<u64, StateError> {
        update_record(
            self.backend.as_ref(),
            &self.namespace,
            doc! { "_id": name },
            update,
        )
        .await
    }

    /// Drops every remembered lookup (after a change made here).
    fn forget(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Notes a use of `name`, at most once a minute, off the request path.
    fn touch(&self, name: &str, previous: Option<&Cached>) {
        let due = previous.is_none_or(|cached| cached.at.elapsed() >= LAST_USED_EVERY);
        if !due {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.clone();
        let name = name.to_owned();
        runtime.spawn(async move {
            let _ = store
                .update(&name, doc! { "$set": { "last_used": unix_now() } })
                .await;
        });
    }
}

impl fmt::Debug for BackendKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendKeyStore")
            .field("namespace", &self.namespace.to_string())
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KeyStore for BackendKeyStore {
    async fn find_key(&self, key: &Secret) -> Result<Option<Principal>, StoreError> {
        let digest = digest_of(key.expose());
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
            .cloned();
        if let Some(cached) = cached.as_ref().filter(|c| c.at.elapsed() < KEY_CACHE_TTL) {
            return Ok(cached.principal.clone());
        }
        let query = FindOneQuery::new(doc! { "digest": hex::encode(digest), "disabled": false });
        let record = self
            .backend
            .find_one(&self.namespace, query)
            .await
            .map_err(store_error)?;
        let principal = record.as_ref().and_then(|record| {
            let name = record.get_str("_id").ok()?;
            let id = record.get_str("user_id").ok()?;
            Some(Principal::new(id, PrincipalKind::Server, "api-key").with_name(name))
        });
        if let Some(name) = principal.as_ref().and_then(|p| p.name.as_deref()) {
            // `last_used` follows the previous write, not the cache's age.
            let last_write = cached.filter(|c| c.principal.is_some());
            self.touch(name, last_write.as_ref());
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAP {
            cache.clear();
        }
        cache.insert(
            digest,
            Cached {
                at: Instant::now(),
                principal: principal.clone(),
            },
        );
        Ok(principal)
    }
}

fn info(record: &Document) -> KeyInfo {
    let number = |field: &str| match record.get(field) {
        Some(Bson::Int64(n)) => Some(*n),
        Some(Bson::Int32(n)) => Some(i64::from(*n)),
        _ => None,
    };
    KeyInfo {
        name: record.get_str("_id").unwrap_or_default().to_owned(),
        created_at: number("created_at").unwrap_or(0),
        last_used: number("last_used"),
        disabled: record.get_bool("disabled").unwrap_or(false),
        source: record.get_str("source").unwrap_or("api").to_owned(),
    }
}

/// The SHA-256 digest of a key.
fn digest_of(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The same user id [`MemoryKeyStore`](crate::auth::MemoryKeyStore) gives a
/// key of this name, so rules and data keyed by it keep working.
fn key_user_id(name: &str) -> String {
    crate::auth::key_user_id(name)
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use super::*;
    use crate::MemoryBackend;

    #[tokio::test]
    async fn keys_are_created_listed_disabled_and_deleted_at_run_time() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let a = BackendKeyStore::from_arc(backend.clone(), "__data_api").with_max_keys(3);
        let b = BackendKeyStore::from_arc(backend, "__data_api");
        a.ensure_indexes().await.unwrap();
        let key = a.create("reports").await.unwrap();
        assert_eq!(key.len(), 64);
        assert_eq!(
            a.create("reports").await,
            Err(StateError::Exists("key 'reports'".into()))
        );
        let found = b
            .find_key(&Secret::new(key.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.name.as_deref(), Some("reports"));
        assert_eq!(found.id, crate::auth::key_user_id("reports"));
        assert_eq!(b.find_key(&Secret::new("nope")).await.unwrap(), None);

        let listed = a.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "reports");
        assert_eq!(listed[0].source, "api");
        assert!(!format!("{listed:?}").contains(&key), "never the key");

        a.set_disabled("reports", true).await.unwrap();
        tokio::time::sleep(KEY_CACHE_TTL + Duration::from_millis(50)).await;
        assert_eq!(
            b.find_key(&Secret::new(key.clone())).await.unwrap(),
            None,
            "disabled on b"
        );
        a.set_disabled("reports", false).await.unwrap();
        tokio::time::sleep(KEY_CACHE_TTL + Duration::from_millis(50)).await;
        assert!(b
            .find_key(&Secret::new(key.clone()))
            .await
            .unwrap()
            .is_some());
        a.delete("reports").await.unwrap();
        tokio::time::sleep(KEY_CACHE_TTL + Duration::from_millis(50)).await;
        assert_eq!(
            b.find_key(&Secret::new(key)).await.unwrap(),
            None,
            "deleted on b"
        );
        assert_eq!(
            a.delete("reports").await,
            Err(StateError::NotFound("key 'reports'".into()))
        );

        for name in ["k1", "k2", "k3"] {
            a.create(name).await.unwrap();
        }
        assert_eq!(a.create("k4").await, Err(StateError::TooMany(3)));
    }

    #[tokio::test]
    async fn file_keys_are_seeded_by_digest() {
        let keys = BackendKeyStore::new(MemoryBackend::new(), "__data_api");
        keys.seed("ci", digest_of("first")).await.unwrap();
        keys.seed("ci", digest_of("second")).await.unwrap();
        assert!(keys
            .find_key(&Secret::new("second"))
            .await
            .unwrap()
            .is_some());
        assert_eq!(keys.find_key(&Secret::new("first")).await.unwrap(), None);
        assert_eq!(keys.list().await.unwrap()[0].source, "file");
        keys.create("made").await.unwrap();
        assert_eq!(
            keys.seed("made", digest_of("x")).await,
            Err(StateError::Exists("key 'made'".into()))
        );
    }
}
