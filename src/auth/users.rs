//! Email/password users: the [`UserStore`] trait and the in-memory
//! [`MemoryUserStore`], keeping argon2 hashes.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use async_trait::async_trait;
use subtle::ConstantTimeEq as _;

use super::principal::derived_id;
use super::{Principal, Secret, StoreError};
use crate::protocol::{ApiError, ErrorCode};

/// The provider type of email/password users.
pub const LOCAL_USERPASS: &str = "local-userpass";

/// Checks email/password credentials (provider `local-userpass`).
///
/// Implementations must take the same time whether the user exists or not
/// (verify against a dummy hash when it does not), so that response times do
/// not reveal which emails are registered, and should run CPU-heavy hashing
/// on the blocking pool (`tokio::task::spawn_blocking`). The service runs at
/// most [`Limits::max_concurrent_password_checks`](crate::Limits) of them at
/// once and answers 429 past that.
///
/// ```
/// use async_trait::async_trait;
/// use tower_data_api::auth::{Principal, Secret, StoreError, UserStore};
///
/// struct Nobody;
///
/// #[async_trait]
/// impl UserStore for Nobody {
///     async fn verify_password(&self, _email: &str, _password: &Secret)
///         -> Result<Option<Principal>, StoreError> {
///         Ok(None)
///     }
/// }
/// ```
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// The user with this email and password, or `None` when the email is
    /// unknown or the password wrong (indistinguishably).
    async fn verify_password(
        &self,
        email: &str,
        password: &Secret,
    ) -> Result<Option<Principal>, StoreError>;

    /// Creates a user with this email and password, for App Services'
    /// `local-userpass/register` when the service allows registration
    /// ([`DataApiBuilder::user_registration`](crate::DataApiBuilder::user_registration)).
    /// The email is lower-cased and the password long enough by then. The
    /// default answers [`Registration::Unsupported`]: a store that cannot
    /// create users keeps it.
    async fn register(&self, email: &str, password: &Secret) -> Result<Registration, StoreError> {
        let _ = (email, password);
        Ok(Registration::Unsupported)
    }
}

/// What [`UserStore::register`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// The user was created (and confirmed: confirmation is automatic).
    Created,
    /// A user with that email exists already.
    Exists,
    /// This store cannot create users.
    Unsupported,
}

/// A password or hash that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPassword(pub String);

impl fmt::Display for InvalidPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidPassword {}

/// Users held in memory with argon2id password hashes. Clones share the same
/// users, so a handle kept by the application can add users or change
/// passwords while the service runs.
///
/// ```
/// use tower_data_api::auth::MemoryUserStore;
/// let users = MemoryUserStore::new();
/// users.add_user("ada@example.com", "correct horse battery staple").unwrap();
/// assert!(users.contains("ADA@example.com"));
/// users.set_password("ada@example.com", "a new long password").unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryUserStore {
    inner: Arc<Inner>,
}

struct Inner {
    users: RwLock<HashMap<String, StoredUser>>,
    passwords: Arc<Passwords>,
}

/// argon2id hashing and verification shared by the user stores: checks run
/// on the blocking pool, a bounded number at once, in reused memory, and
/// unknown users cost one full verification too (against a dummy hash).
pub(crate) struct Passwords {
    hasher: Argon2<'static>,
    dummy: OnceLock<String>,
    /// Bounds the verifications running at once: each takes argon2's memory
    /// (19 MiB by default), so a login flood must queue, not allocate. A
    /// permit lives as long as its blocking task, even when the request
    /// that asked for it is gone.
    running: Arc<tokio::sync::Semaphore>,
    /// argon2's working memory, reused: allocating it afresh for every
    /// verification lets the allocator keep hundreds of MiB after a flood.
    memory: WorkingMemory,
}

impl Passwords {
    /// Hashing and checks with these argon2id parameters.
    pub(crate) fn new(params: Params) -> Self {
        Self {
            hasher: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            dummy: OnceLock::new(),
            running: Arc::new(tokio::sync::Semaphore::new(parallel_verifications())),
            memory: WorkingMemory::default(),
        }
    }

    /// The PHC hash of a new password (at least [`MIN_PASSWORD_LEN`] characters).
    pub(crate) fn hash(&self, password: &Secret) -> Result<String, InvalidPassword> {
        if password.expose().chars().count() < MIN_PASSWORD_LEN {
            return Err(InvalidPassword(format!(
                "a password needs at least {MIN_PASSWORD_LEN} characters"
            )));
        }
        hash_with(&self.hasher, password)
    }

    /// [`hash`](Self::hash) on the blocking pool, within the bound on
    /// argon2 runs in flight: for hashes made while serving requests.
    pub(crate) async fn hash_off_reactor(
        self: &Arc<Self>,
        password: &Secret,
    ) -> Result<Result<String, InvalidPassword>, StoreError> {
        let password = password.clone();
        self.on_blocking_pool(move |passwords| passwords.hash(&password))
            .await
    }

    /// Runs `work` (argon2: CPU-bound for tens of milliseconds) on the
    /// blocking pool, once one of the bounded permits is free; the permit
    /// lives as long as the work, even when the caller is gone.
    async fn on_blocking_pool<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Passwords) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let passwords = self.clone();
        let permit = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError("password checks are shut down".into()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&passwords)
        })
        .await
        .map_err(|_| StoreError("a password task failed".into()))
    }

    /// A hash nobody's password matches, with these parameters, so that
    /// unknown emails cost one full verification too.
    pub(crate) fn dummy_hash(&self) -> &str {
        self.dummy.get_or_init(|| {
            let random = super::generate_api_key();
            hash_with(&self.hasher, &Secret::new(random)).unwrap_or_default()
        })
    }

    /// Whether `password` matches `hash` (`None`: an unknown user, checked
    /// against the dummy hash and never matching), on the blocking pool.
    pub(crate) async fn verify(
        self: &Arc<Self>,
        hash: Option<String>,
        password: &Secret,
    ) -> Result<bool, StoreError> {
        let password = password.clone();
        self.on_blocking_pool(move |passwords| {
            let known = hash.is_some();
            let hash = hash.unwrap_or_else(|| passwords.dummy_hash().to_owned());
            // Always one full verification, whether the user exists or not.
            let matches = passwords.matches(&hash, password.expose().as_bytes());
            known && matches
        })
        .await
    }

    /// Whether `password` hashes to the PHC string `hash`, computed in
    /// working memory from the pool.
    fn matches(&self, hash: &str, password: &[u8]) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from).transpose() {
            Ok(version) => version.unwrap_or_default(),
            Err(_) => return false,
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        let mut memory = self.memory.take(params.block_count());
        let mut output = vec![0u8; expected.len()];
        let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password,
            salt.as_ref(),
            &mut output,
            &mut memory[..],
        );
        self.memory.give(memory);
        hashed.is_ok() && bool::from(output.ct_eq(expected.as_ref()))
    }
}

/// Reusable argon2 memory buffers: at most one per verification running at
/// once (the `running` bound), kept between verifications.
#[derive(Default)]
struct WorkingMemory(std::sync::Mutex<Vec<Vec<Block>>>);

impl WorkingMemory {
    /// A buffer of at least `blocks` blocks, from the pool when one fits.
    fn take(&self, blocks: usize) -> Vec<Block> {
        let mut pool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match pool.iter().position(|buffer| buffer.len() >= blocks) {
            Some(at) => pool.swap_remove(at),
            None => {
                drop(pool);
                vec![Block::default(); blocks]
            }
        }
    }

    fn give(&self, buffer: Vec<Block>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(buffer);
    }
}

#[derive(Clone)]
struct StoredUser {
    hash: String,
    principal: Principal,
}

/// The shortest password accepted by [`MemoryUserStore`] (App Services' minimum).
pub const MIN_PASSWORD_LEN: usize = 6;

impl Default for MemoryUserStore {
    fn default() -> Self {
        Self::with_params(Params::DEFAULT)
    }
}

impl MemoryUserStore {
    /// An empty store hashing with argon2id's recommended parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store hashing with custom argon2id parameters (e.g. cheaper
    /// ones in tests).
    pub fn with_params(params: Params) -> Self {
        Self {
            inner: Arc::new(Inner {
                users: RwLock::new(HashMap::new()),
                passwords: Arc::new(Passwords::new(params)),
            }),
        }
    }

    /// Adds (or replaces) a user with a plain password; only its hash is kept.
    pub fn add_user(
        &self,
        email: &str,
        password: impl Into<Secret>,
    ) -> Result<(), InvalidPassword> {
        let hash = self.hash(&password.into())?;
        self.insert(email, hash)
    }

    /// Adds (or replaces) a user by an argon2 PHC hash string
    /// (`$argon2id$v=19$...`), so configuration never holds the password.
    pub fn add_user_with_hash(&self, email: &str, phc_hash: &str) -> Result<(), InvalidPassword> {
        PasswordHash::new(phc_hash)
            .map_err(|_| InvalidPassword(format!("user '{email}': not an argon2 PHC hash")))?;
        self.insert(email, phc_hash.to_owned())
    }

    /// Changes an existing user's password.
    pub fn set_password(
        &self,
        email: &str,
        password: impl Into<Secret>,
    ) -> Result<(), InvalidPassword> {
        let hash = self.hash(&password.into())?;
        let mut users = self.write();
        let user = users
            .get_mut(&normalize(email))
            .ok_or_else(|| InvalidPassword(format!("no user '{email}'")))?;
        user.hash = hash;
        Ok(())
    }

    /// Removes a user; whether it existed. Their bearer sessions live on
    /// until revoked with [`SessionStore::revoke_user`](super::SessionStore::revoke_user).
    pub fn remove_user(&self, email: &str) -> bool {
        self.write().remove(&normalize(email)).is_some()
    }

    /// Whether a user with this email exists (emails compare case-insensitively).
    pub fn contains(&self, email: &str) -> bool {
        self.read().contains_key(&normalize(email))
    }

    /// How many users the store holds.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the store holds no user.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The user id an email gets: stable, 24 hex digits.
    pub fn user_id(email: &str) -> String {
        derived_id("local-userpass", &normalize(email))
    }

    fn insert(&self, email: &str, hash: String) -> Result<(), InvalidPassword> {
        let email = normalize(email);
        if email.is_empty() || !email.contains('@') {
            return Err(InvalidPassword(format!(
                "user '{email}': not an email address"
            )));
        }
        // Make the dummy hash now, so the first unknown email costs no more
        // than the ones after it.
        self.dummy_hash();
        let principal = Principal::user(Self::user_id(&email), LOCAL_USERPASS)
            .with_name(email.clone())
            .with_data(bson::doc! {"email": email.clone()});
        self.write().insert(email, StoredUser { hash, principal });
        Ok(())
    }

    fn hash(&self, password: &Secret) -> Result<String, InvalidPassword> {
        self.inner.passwords.hash(password)
    }

    fn dummy_hash(&self) -> &str {
        self.inner.passwords.dummy_hash()
    }

    /// [`UserStore::verify_password`] in place, for tests that time it.
    #[cfg(test)]
    fn verify(&self, email: &str, password: &Secret) -> Option<Principal> {
        let stored = self.read().get(&normalize(email)).cloned();
        let hash = stored
            .as_ref()
            .map_or_else(|| self.dummy_hash().to_owned(), |user| user.hash.clone());
        let matches = self
            .inner
            .passwords
            .matches(&hash, password.expose().as_bytes());
        stored.filter(|_| matches).map(|user| user.principal)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, StoredUser>> {
        self.inner
            .users
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, StoredUser>> {
        self.inner
            .users
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for MemoryUserStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryUserStore")
            .field("users", &self.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl UserStore for MemoryUserStore {
    async fn verify_password(
        &self,
        email: &str,
        password: &Secret,
    ) -> Result<Option<Principal>, StoreError> {
        let stored = self.read().get(&normalize(email)).cloned();
        let hash = stored.as_ref().map(|user| user.hash.clone());
        let matches = self.inner.passwords.verify(hash, password).await?;
        Ok(stored.filter(|_| matches).map(|user| user.principal))
    }

    async fn register(&self, email: &str, password: &Secret) -> Result<Registration, StoreError> {
        if self.contains(email) {
            return Ok(Registration::Exists);
        }
        let hash = self
            .inner
            .passwords
            .hash_off_reactor(password)
            .await?
            .map_err(|e| StoreError(e.0))?;
        match self.add_user_with_hash(email, &hash) {
            Ok(()) => Ok(Registration::Created),
            Err(error) => Err(StoreError(error.0)),
        }
    }
}

/// The service-wide bound on password checks in flight, shared by the
/// `email`/`password` headers and the client API's login.
#[derive(Clone)]
pub(crate) struct PasswordChecks(Arc<tokio::sync::Semaphore>);

impl PasswordChecks {
    pub(crate) fn new(at_once: usize) -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(at_once)))
    }

    /// `store`'s verdict, or 429 with `Retry-After` when as many checks as
    /// allowed are already running.
    pub(crate) async fn verify(
        &self,
        store: &dyn UserStore,
        email: &str,
        password: &Secret,
    ) -> Result<Option<Principal>, ApiError> {
        let _permit = self.0.try_acquire().map_err(|_| too_many_checks())?;
        store
            .verify_password(email, password)
            .await
            .map_err(super::authenticator::store_unavailable)
    }

    /// `store`'s registration of a new user, within the same bound (hashing
    /// costs as much as a check).
    pub(crate) async fn register(
        &self,
        store: &dyn UserStore,
        email: &str,
        password: &Secret,
    ) -> Result<Registration, ApiError> {
        let _permit = self.0.try_acquire().map_err(|_| too_many_checks())?;
        store
            .register(email, password)
            .await
            .map_err(super::authenticator::store_unavailable)
    }
}

/// 429 with `Retry-After` when as many password checks as allowed are running.
fn too_many_checks() -> ApiError {
    ApiError::new(
        http::StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyRequests,
        "too many password checks in progress; retry later",
    )
    .with_header(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    )
}

/// The argon2id PHC hash of `password` with the recommended parameters, for
/// `password_hash` in configuration files.
///
/// ```
/// let hash = tower_data_api::auth::hash_password("correct horse").unwrap();
/// assert!(hash.starts_with("$argon2id$"));
/// ```
pub fn hash_password(password: &str) -> Result<String, InvalidPassword> {
    hash_with(&Argon2::default(), &Secret::new(password))
}

fn hash_with(hasher: &Argon2<'_>, password: &Secret) -> Result<String, InvalidPassword> {
    hasher
        .hash_password(password.expose().as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|_| InvalidPassword("the password cannot be hashed".into()))
}

/// Two verifications per core: enough to keep the cores busy.
fn parallel_verifications() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

fn normalize(email: &str) -> String {
    email.trim().to_lowercase()
}

#[cfg(test)]
pub(crate) fn cheap_params() -> Params {
    Params::new(Params::MIN_M_COST.max(64), 1, 1, None).expect("valid argon2 parameters")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_passwords_and_hides_which_part_failed() {
        let users = MemoryUserStore::with_params(cheap_params());
        users.add_user("Ada@Example.com", "correct horse").unwrap();
        let ok = users
            .verify_password("ada@example.com", &Secret::new("correct horse"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ok.provider, LOCAL_USERPASS);
        assert_eq!(ok.id, MemoryUserStore::user_id("ADA@example.com"));
        assert_eq!(ok.data.get_str("email").unwrap(), "ada@example.com");
        for (email, password) in [
            ("ada@example.com", "wrong horse"),
            ("bob@example.com", "correct horse"),
        ] {
            assert!(users
                .verify_password(email, &Secret::new(password))
                .await
                .unwrap()
                .is_none());
        }
        users
            .set_password("ada@example.com", "battery staple")
            .unwrap();
        assert!(users
            .verify("ada@example.com", &Secret::new("correct horse"))
            .is_none());
        assert!(users
            .verify("ada@example.com", &Secret::new("battery staple"))
            .is_some());
        assert!(users.remove_user("ada@example.com"));
        assert!(users
            .verify("ada@example.com", &Secret::new("battery staple"))
            .is_none());
    }

    #[test]
    fn unknown_emails_cost_as_much_as_wrong_passwords() {
        use std::time::{Duration, Instant};
        let users = MemoryUserStore::new();
        users
            .add_user("known@example.com", "the right password")
            .unwrap();
        let once = |email: &str| {
            let started = Instant::now();
            assert!(users
                .verify(email, &Secret::new("a wrong password"))
                .is_none());
            started.elapsed()
        };
        // Alternate and keep the fastest of each: other tests running on the
        // same cores only ever add time.
        let (mut known, mut unknown) = (Duration::MAX, Duration::MAX);
        for _ in 0..8 {
            known = known.min(once("known@example.com"));
            unknown = unknown.min(once("nobody@example.com"));
        }
        let ratio = known.as_secs_f64() / unknown.as_secs_f64();
        assert!(
            (0.5..2.0).contains(&ratio),
            "known {known:?} vs unknown {unknown:?}"
        );
    }

    #[test]
    fn reused_working_memory_gives_the_same_verdicts() {
        let users = MemoryUserStore::with_params(cheap_params());
        users.add_user("a@b.c", "first password").unwrap();
        let default_hash = hash_password("hashed with defaults").unwrap();
        users.add_user_with_hash("d@e.f", &default_hash).unwrap();
        for _ in 0..3 {
            assert!(users
                .verify("a@b.c", &Secret::new("first password"))
                .is_some());
            assert!(users
                .verify("a@b.c", &Secret::new("first passworD"))
                .is_none());
            assert!(users
                .verify("d@e.f", &Secret::new("hashed with defaults"))
                .is_some());
            assert!(users
                .verify("d@e.f", &Secret::new("first password"))
                .is_none());
        }
        // One buffer per parameter set serves sequential verifications.
        let pooled = users.inner.passwords.memory.0.lock().unwrap().len();
        assert_eq!(pooled, 2);
    }

    #[test]
    fn hashes_from_configuration_and_refusals() {
        let users = MemoryUserStore::with_params(cheap_params());
        let hash = hash_with(
            &Argon2::new(Algorithm::Argon2id, Version::V0x13, cheap_params()),
            &Secret::new("pa55word"),
        )
        .unwrap();
        users.add_user_with_hash("c@d.e", &hash).unwrap();
        assert!(users.verify("c@d.e", &Secret::new("pa55word")).is_some());
        assert!(users.add_user_with_hash("c@d.e", "plain").is_err());
        assert!(users.add_user("e@f.g", "short").is_err());
        assert!(users.add_user("not-an-email", "long enough").is_err());
        assert!(users.set_password("nobody@x.y", "long enough").is_err());
        let debug = format!("{users:?}");
        assert!(
            !debug.contains("argon2") && !debug.contains("pa55word"),
            "{debug}"
        );
    }
}
