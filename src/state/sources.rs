//! [`BackendSourceSettings`]: data sources' access level and on/off switch,
//! changed at run time and kept in the state database.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::{doc, Document};

use crate::action::{FindQuery, Namespace, UpdateModifications, UpdateQuery};
use crate::auth::StoreError;
use crate::backend::Backend;
use crate::AccessLevel;

use super::{store_error, unix_now, StateError};

/// The collection of the state database that holds data-source settings.
const SOURCES: &str = "data_sources";

/// How long the settings read from the store are remembered: a change made
/// on one instance takes effect on every other within this long (at once on
/// the instance that made it).
pub const SOURCE_SETTINGS_TTL: Duration = Duration::from_secs(1);

/// A data source's run-time setting; absent fields keep the configuration's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SourceSetting {
    /// The access level that replaces the configured one.
    pub access: Option<AccessLevel>,
    /// Whether the data source is switched off (requests get the Data API's
    /// "disabled or does not exist" answer).
    pub disabled: bool,
}

/// Access levels and on/off switches of data sources in the `data_sources`
/// collection of the state database: every instance over the same state
/// backend enforces them. Reads are remembered for [`SOURCE_SETTINGS_TTL`]
/// (1 s); a change through this store clears its own memory at once.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tower_data_api::state::BackendSourceSettings;
/// use tower_data_api::{AccessLevel, MemoryBackend};
///
/// let settings = BackendSourceSettings::new(MemoryBackend::new(), "__data_api");
/// settings.set_access("mongodb-atlas", AccessLevel::ReadOnly).await.unwrap();
/// let setting = settings.get("mongodb-atlas").await.unwrap();
/// assert_eq!(setting.access, Some(AccessLevel::ReadOnly));
/// # });
/// ```
#[derive(Clone)]
pub struct BackendSourceSettings {
    backend: Arc<dyn Backend>,
    namespace: Namespace,
    cache: Arc<Mutex<Option<(Instant, Settings)>>>,
}

/// Every stored setting, by data source name.
type Settings = Arc<HashMap<String, SourceSetting>>;

impl BackendSourceSettings {
    /// Settings in `state_database`'s `data_sources` collection on `backend`.
    pub fn new(backend: impl Backend, state_database: &str) -> Self {
        Self::from_arc(Arc::new(backend), state_database)
    }

    /// [`new`](Self::new) over a shared backend.
    pub fn from_arc(backend: Arc<dyn Backend>, state_database: &str) -> Self {
        Self {
            backend,
            namespace: Namespace::new(state_database, SOURCES),
            cache: Arc::default(),
        }
    }

    /// The setting of data source `name` (the default when none is stored).
    pub async fn get(&self, name: &str) -> Result<SourceSetting, StoreError> {
        Ok(self.all().await?.get(name).copied().unwrap_or_default())
    }

    /// Every stored setting, by data source name (remembered for
    /// [`SOURCE_SETTINGS_TTL`]; while the store fails, the last settings
    /// read are kept, and without any the error is returned).
    pub async fn all(&self) -> Result<Settings, StoreError> {
        if let Some((at, settings)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            if at.elapsed() < SOURCE_SETTINGS_TTL {
                return Ok(settings.clone());
            }
        }
        let records = match self
            .backend
            .find(&self.namespace, FindQuery::new(doc! {}))
            .await
        {
            Ok(records) => records,
            Err(error) => {
                // The last settings read stay in force while the store fails.
                let cached = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                return match cached.as_ref() {
                    Some((_, settings)) => Ok(settings.clone()),
                    None => Err(store_error(error)),
                };
            }
        };
        let settings: HashMap<String, SourceSetting> = records.iter().filter_map(setting).collect();
        let settings = Arc::new(settings);
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), settings.clone()));
        Ok(settings)
    }

    /// Replaces the access level of data source `name`.
    pub async fn set_access(&self, name: &str, access: AccessLevel) -> Result<(), StateError> {
        self.upsert(name, doc! { "access": access_name(access) })
            .await
    }

    /// Switches data source `name` off (`true`) or on again (`false`).
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), StateError> {
        self.upsert(name, doc! { "disabled": disabled }).await
    }

    async fn upsert(&self, name: &str, mut set: Document) -> Result<(), StateError> {
        set.insert("updated_at", unix_now());
        let mut query = UpdateQuery::new(
            doc! { "_id": name },
            UpdateModifications::Operators(doc! { "$set": set }),
        );
        query.upsert = true;
        self.backend
            .update_one(&self.namespace, query)
            .await
            .map_err(store_error)?;
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }
}

impl fmt::Debug for BackendSourceSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendSourceSettings")
            .field("namespace", &self.namespace.to_string())
            .finish_non_exhaustive()
    }
}

/// The stored name of an access level.
pub(crate) fn access_name(access: AccessLevel) -> &'static str {
    match access {
        AccessLevel::ReadWrite => "read-write",
        AccessLevel::ReadOnly => "read-only",
        AccessLevel::NoAccess => "no-access",
    }
}

fn setting(record: &Document) -> Option<(String, SourceSetting)> {
    let name = record.get_str("_id").ok()?.to_owned();
    let access = record
        .get_str("access")
        .ok()
        .and_then(|text| text.parse().ok());
    let disabled = record.get_bool("disabled").unwrap_or(false);
    Some((name, SourceSetting { access, disabled }))
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;
    use bson::Bson;

    use super::*;
    use crate::action::{FindOneQuery, ReplaceQuery};
    use crate::backend::{BackendError, BackendErrorKind, UpdateOutcome};
    use crate::MemoryBackend;

    /// Finds and updates on an embedded engine, failing while `down`.
    struct Flaky {
        inner: MemoryBackend,
        down: Arc<AtomicBool>,
    }

    impl Flaky {
        fn up(&self) -> Result<(), BackendError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(BackendError::new(BackendErrorKind::Unavailable, "down"));
            }
            Ok(())
        }
    }

    fn unused<T>() -> Result<T, BackendError> {
        Err(BackendError::new(
            BackendErrorKind::Unsupported,
            "not used here",
        ))
    }

    #[async_trait]
    impl Backend for Flaky {
        async fn find_one(
            &self,
            _: &Namespace,
            _: FindOneQuery,
        ) -> Result<Option<Document>, BackendError> {
            unused()
        }
        async fn find(
            &self,
            ns: &Namespace,
            query: FindQuery,
        ) -> Result<Vec<Document>, BackendError> {
            self.up()?;
            self.inner.find(ns, query).await
        }
        async fn insert_one(&self, _: &Namespace, _: Document) -> Result<Bson, BackendError> {
            unused()
        }
        async fn insert_many(
            &self,
            _: &Namespace,
            _: Vec<Document>,
        ) -> Result<Vec<Bson>, BackendError> {
            unused()
        }
        async fn update_one(
            &self,
            ns: &Namespace,
            query: UpdateQuery,
        ) -> Result<UpdateOutcome, BackendError> {
            self.up()?;
            self.inner.update_one(ns, query).await
        }
        async fn update_many(
            &self,
            _: &Namespace,
            _: UpdateQuery,
        ) -> Result<UpdateOutcome, BackendError> {
            unused()
        }
        async fn replace_one(
            &self,
            _: &Namespace,
            _: ReplaceQuery,
        ) -> Result<UpdateOutcome, BackendError> {
            unused()
        }
        async fn delete_one(&self, _: &Namespace, _: Document) -> Result<u64, BackendError> {
            unused()
        }
        async fn delete_many(&self, _: &Namespace, _: Document) -> Result<u64, BackendError> {
            unused()
        }
        async fn aggregate(
            &self,
            _: &Namespace,
            _: Vec<Document>,
        ) -> Result<Vec<Document>, BackendError> {
            unused()
        }
    }

    #[tokio::test]
    async fn while_the_store_fails_the_last_settings_stay_and_none_is_an_error() {
        let down = Arc::new(AtomicBool::new(false));
        let flaky = Flaky {
            inner: MemoryBackend::new(),
            down: down.clone(),
        };
        let settings = BackendSourceSettings::new(flaky, "__data_api");
        down.store(true, Ordering::Relaxed);
        assert!(
            settings.get("a").await.is_err(),
            "nothing read yet: an error"
        );
        down.store(false, Ordering::Relaxed);
        settings
            .set_access("a", AccessLevel::ReadOnly)
            .await
            .unwrap();
        assert_eq!(
            settings.get("a").await.unwrap().access,
            Some(AccessLevel::ReadOnly)
        );
        down.store(true, Ordering::Relaxed);
        tokio::time::sleep(SOURCE_SETTINGS_TTL + Duration::from_millis(50)).await;
        assert_eq!(
            settings.get("a").await.unwrap().access,
            Some(AccessLevel::ReadOnly),
            "the last settings read stay in force"
        );
    }

    #[tokio::test]
    async fn settings_are_stored_and_changes_are_seen_at_once_here() {
        let settings = BackendSourceSettings::new(MemoryBackend::new(), "__data_api");
        assert_eq!(settings.get("a").await.unwrap(), SourceSetting::default());
        settings
            .set_access("a", AccessLevel::ReadOnly)
            .await
            .unwrap();
        settings.set_disabled("a", true).await.unwrap();
        let a = settings.get("a").await.unwrap();
        assert_eq!(a.access, Some(AccessLevel::ReadOnly));
        assert!(a.disabled);
        settings.set_disabled("a", false).await.unwrap();
        assert!(!settings.get("a").await.unwrap().disabled);
        assert_eq!(settings.get("b").await.unwrap(), SourceSetting::default());
    }
}
