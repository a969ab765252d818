//! [`BackendUserStore`]: email/password users in the state database.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bson::{doc, Bson, Document};

use crate::action::{FindOneQuery, FindQuery, Namespace};
use crate::auth::{
    MemoryUserStore, Passwords, Principal, Registration, Secret, SessionStore, StoreError,
    UserStore, LOCAL_USERPASS,
};
use crate::backend::{Backend, IndexSpec};

use super::{find_record, insert_record, store_error, unix_now, update_record, StateError};

/// The collection of the state database that holds users.
const USERS: &str = "users";

/// One user as [`BackendUserStore::list`] shows it: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserInfo {
    /// The user id (`%%user.id`).
    pub id: String,
    /// The email, lower-cased.
    pub email: String,
    /// Unix seconds of its creation.
    pub created_at: i64,
    /// Whether the user is refused for now.
    pub disabled: bool,
    /// Where the user came from: `"file"` (the configuration file), `"api"`
    /// (added at run time), `"register"` (`local-userpass/register`) or
    /// `"import"` (an App Services users export).
    pub source: String,
}

/// Email/password users kept in the `users` collection of the state
/// database on a [`Backend`], shared by every instance over the same backend
/// and managed while the service runs: add, list, set a password, disable,
/// remove. Passwords are stored as argon2id hashes only; checks run on the
/// blocking pool, bounded, and unknown emails cost a full check too.
///
/// A user's id is the one [`MemoryUserStore::user_id`] gives its email, so
/// users moved from the configuration file keep their `%%user.id`.
/// Disabling or removing a user ends their sessions at once when the store
/// knows the session store ([`with_sessions`](Self::with_sessions)).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tower_data_api::auth::{Secret, UserStore};
/// use tower_data_api::state::BackendUserStore;
/// use tower_data_api::MemoryBackend;
///
/// let users = BackendUserStore::new(MemoryBackend::new(), "__data_api");
/// users.add("ada@example.com", "correct horse").await.unwrap();
/// let ada = users.verify_password("ada@example.com", &Secret::new("correct horse")).await;
/// assert!(ada.unwrap().is_some());
/// # });
/// ```
#[derive(Clone)]
pub struct BackendUserStore {
    backend: Arc<dyn Backend>,
    namespace: Namespace,
    passwords: Arc<Passwords>,
    sessions: Option<Arc<dyn SessionStore>>,
}

impl BackendUserStore {
    /// Users in `state_database`'s `users` collection on `backend`.
    pub fn new(backend: impl Backend, state_database: &str) -> Self {
        Self::from_arc(Arc::new(backend), state_database)
    }

    /// [`new`](Self::new) over a shared backend.
    pub fn from_arc(backend: Arc<dyn Backend>, state_database: &str) -> Self {
        Self {
            backend,
            namespace: Namespace::new(state_database, USERS),
            passwords: Arc::new(Passwords::new(argon2::Params::DEFAULT)),
            sessions: None,
        }
    }

    /// Ends a user's sessions in `sessions` when the user is disabled or
    /// removed.
    #[must_use]
    pub fn with_sessions(mut self, sessions: impl SessionStore) -> Self {
        self.sessions = Some(Arc::new(sessions));
        self
    }

    /// Creates the unique index on emails; call once at start-up.
    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let spec = IndexSpec::new([("email", 1)])
            .map_err(|e| StoreError(e.to_string()))?
            .unique(true);
        self.backend
            .ensure_indexes(&self.namespace, &[spec])
            .await
            .map_err(store_error)
    }

    /// Adds a user; their id.
    pub async fn add(
        &self,
        email: &str,
        password: impl Into<Secret>,
    ) -> Result<String, StateError> {
        let hash = self.passwords.hash(&password.into())?;
        self.insert(email, hash, "api").await
    }

    /// Adds the configuration file's user by password hash, or updates the
    /// hash of the file's user with that email (users added at run time are
    /// left alone and reported as existing).
    pub async fn seed(&self, email: &str, phc_hash: &str) -> Result<(), StateError> {
        let email = normalize(email);
        match self.record(&email).await? {
            None => self
                .insert(&email, phc_hash.to_owned(), "file")
                .await
                .map(drop),
            Some(record) if record.get_str("source") == Ok("file") => self
                .update(&email, doc! { "$set": { "password_hash": phc_hash } })
                .await
                .map(drop),
            Some(_) => Err(StateError::Exists(format!("user '{email}'"))),
        }
    }

    /// Every user, by email: never the password hashes.
    pub async fn list(&self) -> Result<Vec<UserInfo>, StateError> {
        let query = FindQuery::new(doc! {})
            .with_sort(doc! { "email": 1 })
            .with_projection(doc! { "password_hash": 0 });
        let records = self
            .backend
            .find(&self.namespace, query)
            .await
            .map_err(store_error)?;
        Ok(records.iter().map(info).collect())
    }

    /// Changes a user's password.
    pub async fn set_password(
        &self,
        email: &str,
        password: impl Into<Secret>,
    ) -> Result<(), StateError> {
        let hash = self.passwords.hash(&password.into())?;
        self.update_existing(email, doc! { "$set": { "password_hash": hash } })
            .await
    }

    /// Refuses (`true`) or accepts again (`false`) a user; disabling ends
    /// their sessions.
    pub async fn set_disabled(&self, email: &str, disabled: bool) -> Result<(), StateError> {
        self.update_existing(email, doc! { "$set": { "disabled": disabled } })
            .await?;
        if disabled {
            let id = self.id_of(&normalize(email)).await?;
            self.end_sessions(&id).await?;
        }
        Ok(())
    }

    /// Removes a user and ends their sessions.
    pub async fn remove(&self, email: &str) -> Result<(), StateError> {
        let email = normalize(email);
        let id = self.id_of(&email).await?;
        self.backend
            .delete_one(&self.namespace, doc! { "email": &email })
            .await
            .map_err(store_error)?;
        self.end_sessions(&id).await
    }

    /// Ends every bearer session of the user with this email.
    pub async fn revoke_sessions(&self, email: &str) -> Result<(), StateError> {
        let id = self.id_of(&normalize(email)).await?;
        self.end_sessions(&id).await
    }

    /// Adds a user from an App Services users export under the id they had
    /// there, without a password: they can log in once one is set
    /// ([`set_password`](Self::set_password)). `false` when that user exists
    /// already with that id.
    pub async fn import(&self, id: &str, email: &str) -> Result<bool, StateError> {
        let email = normalize(email);
        check_email(&email)?;
        let record = doc! {
            "_id": id,
            "email": &email,
            "created_at": unix_now(),
            "disabled": false,
            "source": "import",
        };
        match insert_record(self.backend.as_ref(), &self.namespace, record, || {
            format!("user '{email}'")
        })
        .await
        {
            Ok(()) => Ok(true),
            Err(StateError::Exists(what)) => match self.record(&email).await? {
                Some(existing) if existing.get_str("_id") == Ok(id) => Ok(false),
                _ => Err(StateError::Exists(what)),
            },
            Err(error) => Err(error),
        }
    }

    /// The id of the user with `email` (normalized).
    async fn id_of(&self, email: &str) -> Result<String, StateError> {
        self.record(email)
            .await?
            .and_then(|record| record.get_str("_id").ok().map(str::to_owned))
            .ok_or_else(|| StateError::NotFound(format!("user '{email}'")))
    }

    async fn end_sessions(&self, user_id: &str) -> Result<(), StateError> {
        if let Some(sessions) = &self.sessions {
            sessions.revoke_user(user_id).await?;
        }
        Ok(())
    }

    async fn insert(&self, email: &str, hash: String, source: &str) -> Result<String, StateError> {
        let email = normalize(email);
        check_email(&email)?;
        let id = MemoryUserStore::user_id(&email);
        let record = doc! {
            "_id": &id,
            "email": &email,
            "password_hash": hash,
            "created_at": unix_now(),
            "disabled": false,
            "source": source,
        };
        insert_record(self.backend.as_ref(), &self.namespace, record, || {
            format!("user '{email}'")
        })
        .await?;
        Ok(id)
    }

    async fn record(&self, email: &str) -> Result<Option<Document>, StateError> {
        find_record(
            self.backend.as_ref(),
            &self.namespace,
            doc! { "email": email },
        )
        .await
    }

    async fn update(&self, email: &str, update: Document) -> Result<u64, StateError> {
        update_record(
            self.backend.as_ref(),
            &self.namespace,
            doc! { "email": email },
            update,
        )
        .await
    }

    async fn update_existing(&self, email: &str, update: Document) -> Result<(), StateError> {
        let email = normalize(email);
        match self.update(&email, update).await? {
            0 => Err(StateError::NotFound(format!("user '{email}'"))),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for BackendUserStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendUserStore")
            .field("namespace", &self.namespace.to_string())
            .field("ends_sessions", &self.sessions.is_some())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl UserStore for BackendUserStore {
    async fn verify_password(
        &self,
        email: &str,
        password: &Secret,
    ) -> Result<Option<Principal>, StoreError> {
        let email = normalize(email);
        let query = FindOneQuery::new(doc! { "email": &email, "disabled": false });
        let record = self
            .backend
            .find_one(&self.namespace, query)
            .await
            .map_err(store_error)?;
        let hash = record
            .as_ref()
            .and_then(|r| r.get_str("password_hash").ok())
            .map(str::to_owned);
        let matches = self.passwords.verify(hash, password).await?;
        let id = record.as_ref().and_then(|r| r.get_str("_id").ok());
        Ok(id.filter(|_| matches).map(|id| {
            Principal::user(id, LOCAL_USERPASS)
                .with_name(email.clone())
                .with_data(doc! { "email": &email })
        }))
    }

    async fn register(&self, email: &str, password: &Secret) -> Result<Registration, StoreError> {
        let hash = match self.passwords.hash_off_reactor(password).await? {
            Ok(hash) => hash,
            Err(invalid) => return Err(StoreError(invalid.0)),
        };
        match self.insert(email, hash, "register").await {
            Ok(_) => Ok(Registration::Created),
            Err(StateError::Exists(_)) => Ok(Registration::Exists),
            Err(StateError::Store(error)) => Err(error),
            Err(other) => Err(StoreError(other.to_string())),
        }
    }
}

fn info(record: &Document) -> UserInfo {
    UserInfo {
        id: record.get_str("_id").unwrap_or_default().to_owned(),
        email: record.get_str("email").unwrap_or_default().to_owned(),
        created_at: match record.get("created_at") {
            Some(Bson::Int64(n)) => *n,
            Some(Bson::Int32(n)) => i64::from(*n),
            _ => 0,
        },
        disabled: record.get_bool("disabled").unwrap_or(false),
        source: record.get_str("source").unwrap_or("api").to_owned(),
    }
}

fn check_email(email: &str) -> Result<(), StateError> {
    if email.is_empty() || !email.contains('@') {
        return Err(StateError::Invalid(format!(
            "'{email}' is not an email address"
        )));
    }
    Ok(())
}

fn normalize(email: &str) -> String {
    email.trim().to_lowercase()
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use super::*;
    use crate::auth::Session;
    use crate::state::BackendSessionStore;
    use crate::MemoryBackend;

    #[tokio::test]
    async fn users_are_added_checked_disabled_and_removed_at_run_time() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let sessions = BackendSessionStore::from_arc(backend.clone(), "__data_api");
        let users = BackendUserStore::from_arc(backend.clone(), "__data_api")
            .with_sessions(sessions.clone());
        let other = BackendUserStore::from_arc(backend, "__data_api");
        users.ensure_indexes().await.unwrap();
        let id = users.add("Ada@Example.com", "correct horse").await.unwrap();
        assert_eq!(id, MemoryUserStore::user_id("ada@example.com"));
        assert_eq!(
            users.add("ada@example.com", "another one").await,
            Err(StateError::Exists("user 'ada@example.com'".into()))
        );
        assert!(matches!(
            users.add("bob@example.com", "short").await,
            Err(StateError::Invalid(_))
        ));
        let ada = other
            .verify_password("ADA@example.com", &Secret::new("correct horse"))
            .await
            .unwrap()
            .expect("shared");
        assert_eq!(ada.id, id);
        assert_eq!(ada.name.as_deref(), Some("ada@example.com"));
        assert!(other
            .verify_password("ada@example.com", &Secret::new("wrong horse"))
            .await
            .unwrap()
            .is_none());
        assert!(other
            .verify_password("nobody@example.com", &Secret::new("correct horse"))
            .await
            .unwrap()
            .is_none());
        let listed = users.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(!format!("{listed:?}").contains("argon2"), "never the hash");

        users
            .set_password("ada@example.com", "battery staple")
            .await
            .unwrap();
        assert!(other
            .verify_password("ada@example.com", &Secret::new("battery staple"))
            .await
            .unwrap()
            .is_some());

        let session = Session {
            id: "65a000000000000000000009".into(),
            principal: ada.clone(),
            device_id: "000000000000000000000000".into(),
            created_at: 1,
            expires_at: u64::MAX / 2,
        };
        sessions.create(session.clone()).await.unwrap();
        users.set_disabled("ada@example.com", true).await.unwrap();
        assert_eq!(
            sessions.get(&session.id).await.unwrap(),
            None,
            "sessions ended"
        );
        assert!(other
            .verify_password("ada@example.com", &Secret::new("battery staple"))
            .await
            .unwrap()
            .is_none());
        users.set_disabled("ada@example.com", false).await.unwrap();
        users.remove("ada@example.com").await.unwrap();
        assert_eq!(
            users.remove("ada@example.com").await,
            Err(StateError::NotFound("user 'ada@example.com'".into()))
        );
    }
}
