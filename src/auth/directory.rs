//! [`UserDirectory`]: stable, server-issued user ids for identities whose
//! credentials the service does not hold (custom JWTs, anonymous logins).
//!
//! App Services gives every person a user record with a 24-hex id of its own
//! and links their identities to it (`{id, provider_type, provider_id}`):
//! `%%user.id` is that id, and `%%user.identities[0].id` the provider's id
//! (for a custom JWT, its `sub`). A service with a directory does the same;
//! without one, `%%user.id` is the provider's id as it comes (the JWT `sub`,
//! a fresh id per anonymous login) — see
//! [`DataApiBuilder::user_directory`](crate::DataApiBuilder::user_directory).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bson::oid::ObjectId;

use super::{Principal, StoreError};

/// Finds or creates the user an identity belongs to.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tower_data_api::auth::{MemoryUserDirectory, Principal, UserDirectory};
///
/// let directory = MemoryUserDirectory::new();
/// let first = directory.resolve(Principal::user("sub-1", "custom-token")).await.unwrap();
/// let again = directory.resolve(Principal::user("sub-1", "custom-token")).await.unwrap();
/// assert_eq!(first.id, again.id);
/// assert_eq!(first.id.len(), 24);
/// assert_eq!(first.identities[0].id, "sub-1");
/// # });
/// ```
#[async_trait]
pub trait UserDirectory: Send + Sync + 'static {
    /// `principal` with its `id` replaced by the id of the user that owns its
    /// first identity; the user is created, with a new 24-hex id, the first
    /// time the identity is seen. The identities and data stay as they are.
    async fn resolve(&self, principal: Principal) -> Result<Principal, StoreError>;
}

/// A [`UserDirectory`] in process memory: ids are stable while the process
/// runs. Use the state database's directory
/// ([`BackendUserDirectory`](crate::state::BackendUserDirectory)) for ids that
/// survive restarts and are shared by instances.
#[derive(Debug, Clone, Default)]
pub struct MemoryUserDirectory {
    users: Arc<Mutex<HashMap<String, String>>>,
}

impl MemoryUserDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl UserDirectory for MemoryUserDirectory {
    async fn resolve(&self, mut principal: Principal) -> Result<Principal, StoreError> {
        let key = identity_key(&principal);
        let id = self
            .users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key)
            .or_insert_with(|| ObjectId::new().to_hex())
            .clone();
        principal.id = id;
        Ok(principal)
    }
}

/// `<provider_type>:<identity id>` of the principal's first identity (its
/// provider and id when it has none): the key a directory files users under.
pub fn identity_key(principal: &Principal) -> String {
    match principal.identities.first() {
        Some(identity) => format!("{}:{}", identity.provider_type, identity.id),
        None => format!("{}:{}", principal.provider, principal.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn identities_get_one_stable_id_each() {
        let directory = MemoryUserDirectory::new();
        let a = directory
            .resolve(Principal::user("sub-a", "custom-token"))
            .await
            .unwrap();
        let b = directory
            .resolve(Principal::user("sub-b", "custom-token"))
            .await
            .unwrap();
        let a_again = directory
            .resolve(Principal::user("sub-a", "custom-token"))
            .await
            .unwrap();
        assert_eq!(a.id, a_again.id);
        assert_ne!(a.id, b.id);
        assert!(ObjectId::parse_str(&a.id).is_ok());
        assert_eq!(a.identities[0].id, "sub-a");
        // The same id under another provider is another person.
        let other = directory
            .resolve(Principal::user("sub-a", "anon-user"))
            .await
            .unwrap();
        assert_ne!(other.id, a.id);
    }
}
