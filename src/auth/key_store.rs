//! API keys: the [`KeyStore`] trait and the in-memory [`MemoryKeyStore`].

use std::fmt;

use async_trait::async_trait;
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::{Principal, PrincipalKind, Secret};

/// A store failed (for example its database is down). The client gets a 503
/// with a generic message; the text goes to the server log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// Looks up API keys.
///
/// Implement it to keep keys in your own database; [`MemoryKeyStore`] is the
/// ready default.
///
/// ```
/// use async_trait::async_trait;
/// use tower_data_api::auth::{KeyStore, Principal, PrincipalKind, Secret, StoreError};
///
/// struct OneKey;
///
/// #[async_trait]
/// impl KeyStore for OneKey {
///     async fn find_key(&self, key: &Secret) -> Result<Option<Principal>, StoreError> {
///         Ok((key.expose() == "letmein")
///             .then(|| Principal::new("user-1", PrincipalKind::Server, "api-key")))
///     }
/// }
/// ```
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// The principal `key` belongs to, or `None` when it is no known key.
    async fn find_key(&self, key: &Secret) -> Result<Option<Principal>, StoreError>;
}

/// API keys held in memory as SHA-256 digests, compared in constant time.
///
/// Each key becomes a `server` principal whose id is derived from the key's
/// name, so it stays the same across restarts.
///
/// ```
/// use tower_data_api::auth::MemoryKeyStore;
/// let store = MemoryKeyStore::new().with_key("ci", "a-long-random-key");
/// assert_eq!(store.len(), 1);
/// ```
#[derive(Clone, Default)]
pub struct MemoryKeyStore {
    keys: Vec<StoredKey>,
}

#[derive(Clone)]
struct StoredKey {
    digest: [u8; 32],
    principal: Principal,
}

/// A key digest given as hex is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDigest;

impl fmt::Display for InvalidDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SHA-256 key digest must be 64 hexadecimal digits")
    }
}

impl std::error::Error for InvalidDigest {}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key by its plain value (only its digest is kept).
    #[must_use]
    pub fn with_key(self, name: impl Into<String>, key: impl AsRef<str>) -> Self {
        let digest = Sha256::digest(key.as_ref().as_bytes()).into();
        self.with_digest(name.into(), digest)
    }

    /// Adds a key by the hex SHA-256 digest of its value, so the configuration
    /// never holds the key itself.
    pub fn with_key_sha256(
        self,
        name: impl Into<String>,
        hex_digest: &str,
    ) -> Result<Self, InvalidDigest> {
        let bytes = hex::decode(hex_digest.trim()).map_err(|_| InvalidDigest)?;
        let digest: [u8; 32] = bytes.try_into().map_err(|_| InvalidDigest)?;
        Ok(self.with_digest(name.into(), digest))
    }

    fn with_digest(mut self, name: String, digest: [u8; 32]) -> Self {
        let principal =
            Principal::new(key_user_id(&name), PrincipalKind::Server, "api-key").with_name(name);
        self.keys.push(StoredKey { digest, principal });
        self
    }

    /// How many keys the store holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The names of the keys, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys
            .iter()
            .filter_map(|key| key.principal.name.as_deref())
    }

    fn lookup(&self, key: &Secret) -> Option<&Principal> {
        let digest: [u8; 32] = Sha256::digest(key.expose().as_bytes()).into();
        // Compare against every key, whatever matches, and select without branching.
        let mut found = u32::MAX;
        for (index, stored) in self.keys.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            found.conditional_assign(&index, stored.digest.ct_eq(&digest));
        }
        self.keys
            .get(found as usize)
            .map(|stored| &stored.principal)
    }
}

impl fmt::Debug for MemoryKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryKeyStore")
            .field("names", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

#[async_trait]
impl KeyStore for MemoryKeyStore {
    async fn find_key(&self, key: &Secret) -> Result<Option<Principal>, StoreError> {
        Ok(self.lookup(key).cloned())
    }
}

/// A stable 24-hex-digit user id for the key called `name`.
pub(crate) fn key_user_id(name: &str) -> String {
    super::principal::derived_id("api-key", name)
}

/// A new random 64-character alphanumeric API key, like the ones Atlas issued.
///
/// ```
/// let key = tower_data_api::auth::generate_api_key();
/// assert_eq!(key.len(), 64);
/// assert!(key.chars().all(|c| c.is_ascii_alphanumeric()));
/// ```
pub fn generate_api_key() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 64)
}

/// The hex SHA-256 digest of a key, for `key_sha256` in configuration files.
pub fn api_key_sha256(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finds_keys_by_value_or_digest() {
        let store = MemoryKeyStore::new()
            .with_key("a", "key-a")
            .with_key_sha256("b", &api_key_sha256("key-b"))
            .unwrap();
        let a = store
            .find_key(&Secret::new("key-a"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.name.as_deref(), Some("a"));
        assert_eq!(a.kind, PrincipalKind::Server);
        assert_eq!(a.id.len(), 24);
        let b = store
            .find_key(&Secret::new("key-b"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.name.as_deref(), Some("b"));
        assert_ne!(a.id, b.id);
        assert!(store
            .find_key(&Secret::new("key-c"))
            .await
            .unwrap()
            .is_none());
        assert!(store.find_key(&Secret::new("")).await.unwrap().is_none());
    }

    #[test]
    fn bad_digests_and_debug_output() {
        assert_eq!(
            MemoryKeyStore::new()
                .with_key_sha256("x", "abc")
                .unwrap_err(),
            InvalidDigest
        );
        let store = MemoryKeyStore::new().with_key("ci", "super-secret-value");
        let debug = format!("{store:?}");
        assert!(debug.contains("ci") && !debug.contains("super-secret-value"));
    }
}
