//! Assembling [`Authentication`] from the settings the builder collected:
//! the stores are chained and the credential chain is put together in the
//! order of spec §5.1 (see the [module docs](super)), in one place.

use std::sync::Arc;

use async_trait::async_trait;

use super::authenticator::{ApiKeys, CustomJwt, EmailPassword};
use super::{
    Authentication, Authenticator, JwtProvider, KeyStore, Location, MemoryKeyStore,
    MemorySessionStore, MemoryUserStore, PasswordChecks, Principal, Registration,
    RequestValidation, RunAsMode, Secret, SessionSettings, SessionStore, Sessions, StoreError,
    UserDirectory, UserStore,
};

/// Everything about authentication the builder's setters collect; checked by
/// [`validate`](Self::validate), turned into the pipeline's step by
/// [`assemble`](Self::assemble).
pub(crate) struct AuthSettings {
    pub(crate) keys: MemoryKeyStore,
    /// Problems found while adding keys, reported by `validate`.
    pub(crate) key_errors: Vec<String>,
    pub(crate) key_store: Option<Arc<dyn KeyStore>>,
    pub(crate) users: Option<MemoryUserStore>,
    /// Problems found while adding users, reported by `validate`.
    pub(crate) user_errors: Vec<String>,
    pub(crate) user_store: Option<Arc<dyn UserStore>>,
    pub(crate) jwt: Option<JwtProvider>,
    pub(crate) directory: Option<Arc<dyn UserDirectory>>,
    /// The adopter's own authenticators, in the order they were added.
    pub(crate) authenticators: Vec<Arc<dyn Authenticator>>,
    pub(crate) sessions: SessionSettings,
    pub(crate) session_store: Option<Arc<dyn SessionStore>>,
    pub(crate) anonymous: bool,
    /// Whether `local-userpass/register` creates users.
    pub(crate) registration: bool,
    pub(crate) run_as: Option<RunAsMode>,
    pub(crate) validation: RequestValidation,
    pub(crate) location: Location,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            keys: MemoryKeyStore::new(),
            key_errors: Vec::new(),
            key_store: None,
            users: None,
            user_errors: Vec::new(),
            user_store: None,
            jwt: None,
            directory: None,
            authenticators: Vec::new(),
            sessions: SessionSettings::default(),
            session_store: None,
            anonymous: false,
            registration: false,
            run_as: None,
            validation: RequestValidation::None,
            location: Location {
                base_url: None,
                location: "US-VA".to_owned(),
                deployment_model: "GLOBAL".to_owned(),
            },
        }
    }
}

impl AuthSettings {
    /// Checks each setting on its own: keys, users, the custom JWT provider,
    /// the session settings and the request validation. The message says
    /// what to fix.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if let Some(message) = self.key_errors.first() {
            return Err(message.clone());
        }
        if let Some(message) = self.user_errors.first() {
            return Err(message.clone());
        }
        if let Some(jwt) = &self.jwt {
            jwt.validate().map_err(|err| err.to_string())?;
        }
        self.sessions.validate()?;
        if !self.validation.is_valid() {
            return Err("request validation needs a non-empty secret".into());
        }
        Ok(())
    }

    /// Checks the settings as a whole (no duplicate key names, at least one
    /// way to authenticate) and builds the credential chain in spec §5.1
    /// order: the adopter's authenticators, then API keys, email/password
    /// and custom JWTs. Bearer tokens (checked before the chain) and run-as
    /// (after it) are part of [`Authentication::authenticate`].
    pub(crate) fn assemble(
        self,
        app_id: &str,
        max_concurrent_password_checks: usize,
    ) -> Result<Authentication, String> {
        let mut names: Vec<&str> = self.keys.names().collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(format!("API key name '{}' is used twice", pair[0]));
        }
        let key_store: Option<Arc<dyn KeyStore>> = match (self.keys.is_empty(), self.key_store) {
            (true, None) => None,
            (true, Some(store)) => Some(store),
            (false, None) => Some(Arc::new(self.keys)),
            (false, Some(store)) => Some(Arc::new(ChainedKeys(self.keys, store))),
        };
        let user_store: Option<Arc<dyn UserStore>> = match (self.users, self.user_store) {
            (None, store) => store,
            (Some(users), None) => Some(Arc::new(users)),
            (Some(users), Some(store)) => Some(Arc::new(ChainedUsers(users, store))),
        };
        let jwt = self.jwt.map(Arc::new);
        let mut authenticators = self.authenticators;
        if authenticators.is_empty()
            && key_store.is_none()
            && user_store.is_none()
            && jwt.is_none()
            && self.run_as.is_none()
            && !self.anonymous
        {
            return Err(
                "no way to authenticate: add an API key (api_key), a key store, users, \
                 a custom JWT provider, an authenticator, anonymous users or a run-as mode"
                    .into(),
            );
        }
        if let Some(store) = &key_store {
            authenticators.push(Arc::new(ApiKeys(store.clone())));
        }
        let password_checks = PasswordChecks::new(max_concurrent_password_checks);
        if let Some(store) = &user_store {
            authenticators.push(Arc::new(EmailPassword(
                store.clone(),
                password_checks.clone(),
            )));
        }
        if let Some(provider) = &jwt {
            authenticators.push(Arc::new(CustomJwt(
                provider.clone(),
                self.directory.clone(),
            )));
        }
        let session_store = self
            .session_store
            .unwrap_or_else(|| Arc::new(MemorySessionStore::new()));
        let sessions = Sessions::new(self.sessions, session_store, app_id)?;
        Ok(Authentication {
            app_id: app_id.to_owned(),
            sessions,
            authenticators,
            key_store,
            user_store,
            password_checks,
            jwt,
            directory: self.directory,
            anonymous: self.anonymous,
            registration: self.registration,
            run_as: self.run_as,
            validation: self.validation,
            location: self.location,
        })
    }
}

/// The builder's in-memory keys first, then the adopter's store.
struct ChainedKeys(MemoryKeyStore, Arc<dyn KeyStore>);

#[async_trait]
impl KeyStore for ChainedKeys {
    async fn find_key(&self, key: &Secret) -> Result<Option<Principal>, StoreError> {
        match self.0.find_key(key).await? {
            Some(principal) => Ok(Some(principal)),
            None => self.1.find_key(key).await,
        }
    }
}

/// The builder's in-memory users first, then the adopter's store.
struct ChainedUsers(MemoryUserStore, Arc<dyn UserStore>);

#[async_trait]
impl UserStore for ChainedUsers {
    async fn verify_password(
        &self,
        email: &str,
        password: &Secret,
    ) -> Result<Option<Principal>, StoreError> {
        match self.0.verify_password(email, password).await? {
            Some(principal) => Ok(Some(principal)),
            None => self.1.verify_password(email, password).await,
        }
    }

    async fn register(&self, email: &str, password: &Secret) -> Result<Registration, StoreError> {
        if self.0.contains(email) {
            return Ok(Registration::Exists);
        }
        self.1.register(email, password).await
    }
}
