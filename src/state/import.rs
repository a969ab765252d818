//! Importing an App Services users export, keeping every user's id, so that
//! data written with `owner_id: "%%user.id"` under the hosted service keeps
//! its owners.

use bson::oid::ObjectId;
use serde_json::Value;

use super::{StateError, StateStores};
use crate::auth::LOCAL_USERPASS;

/// What [`StateStores::import_users`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Users in the export.
    pub users: usize,
    /// Email/password users added (without a password: set one before they
    /// can log in).
    pub email_users: usize,
    /// Other identities (custom-token, anonymous, …) linked to their user.
    pub identities: usize,
    /// Users and identities that were there already, unchanged.
    pub unchanged: usize,
    /// What could not be imported, and why (one line each; never a secret).
    pub skipped: Vec<String>,
}

impl StateStores {
    /// Imports `export`, a JSON array of App Services users (`_id`,
    /// `identities: [{id, provider_type, provider_data}]`, `data`, `type`,
    /// `disabled`), keeping their ids: `local-userpass` identities become
    /// email users without a password, every other identity is linked to
    /// its user in the directory. Importing the same export again changes
    /// nothing. API-key identities are skipped (an export holds no key).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use tower_data_api::auth::{Principal, UserDirectory};
    /// use tower_data_api::state::StateStores;
    /// use tower_data_api::MemoryBackend;
    ///
    /// let state = StateStores::open(Arc::new(MemoryBackend::new()), "__data_api", Duration::from_secs(86_400))
    ///     .await
    ///     .unwrap();
    /// let export = r#"[{"_id": "5f1e2d3c4b5a697887766554", "type": "normal", "data": {},
    ///   "identities": [{"id": "sub-1", "provider_type": "custom-token"}]}]"#;
    /// let report = state.import_users(export).await.unwrap();
    /// assert_eq!(report.identities, 1);
    /// let user = state.directory.resolve(Principal::user("sub-1", "custom-token")).await.unwrap();
    /// assert_eq!(user.id, "5f1e2d3c4b5a697887766554");
    /// # });
    /// ```
    pub async fn import_users(&self, export: &str) -> Result<ImportReport, StateError> {
        let users: Vec<Value> = match serde_json::from_str(export) {
            Ok(Value::Array(users)) => users,
            Ok(_) => {
                return Err(StateError::Invalid(
                    "an App Services users export is a JSON array of users".into(),
                ))
            }
            Err(error) => {
                return Err(StateError::Invalid(format!(
                    "the export is not JSON: {error}"
                )))
            }
        };
        let mut report = ImportReport {
            users: users.len(),
            ..ImportReport::default()
        };
        for (index, user) in users.iter().enumerate() {
            let Some(id) = user.get("_id").and_then(user_id) else {
                report
                    .skipped
                    .push(format!("user #{index}: `_id` is not a 24-hex id"));
                continue;
            };
            let identities = user
                .get("identities")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if identities.is_empty() {
                report
                    .skipped
                    .push(format!("user {id}: no identities to log in with"));
            }
            for identity in identities {
                self.import_identity(&id, user, identity, &mut report)
                    .await?;
            }
        }
        Ok(report)
    }

    async fn import_identity(
        &self,
        id: &str,
        user: &Value,
        identity: &Value,
        report: &mut ImportReport,
    ) -> Result<(), StateError> {
        let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
        let provider = text(identity.get("provider_type")).unwrap_or_default();
        let identity_id = text(identity.get("id")).unwrap_or_default();
        let outcome = match provider.as_str() {
            "" => Err(StateError::Invalid(
                "an identity without provider_type".into(),
            )),
            LOCAL_USERPASS => {
                let email = text(identity.pointer("/provider_data/email"))
                    .or_else(|| text(user.pointer("/data/email")));
                match email {
                    Some(email) => self.import_email_user(id, &email, user).await,
                    None => Err(StateError::Invalid(
                        "a local-userpass identity without an email".into(),
                    )),
                }
            }
            "api-key" => Err(StateError::Invalid(
                "API keys cannot be imported (an export holds no key): create new ones".into(),
            )),
            _ if identity_id.is_empty() => Err(StateError::Invalid(format!(
                "a {provider} identity without an id"
            ))),
            _ => self.directory.link(&provider, &identity_id, id).await,
        };
        match outcome {
            Ok(true) if provider == LOCAL_USERPASS => report.email_users += 1,
            Ok(true) => report.identities += 1,
            Ok(false) => report.unchanged += 1,
            Err(StateError::Store(error)) => return Err(StateError::Store(error)),
            Err(other) => report
                .skipped
                .push(format!("user {id}, {provider} identity: {other}")),
        }
        Ok(())
    }

    async fn import_email_user(
        &self,
        id: &str,
        email: &str,
        user: &Value,
    ) -> Result<bool, StateError> {
        let added = self.users.import(id, email).await?;
        if added && user.get("disabled").and_then(Value::as_bool) == Some(true) {
            self.users.set_disabled(email, true).await?;
        }
        Ok(added)
    }
}

/// A user's `_id`: 24 hex digits, plain or as `{"$oid": …}`.
fn user_id(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(text) => text.as_str(),
        Value::Object(ejson) if ejson.len() == 1 => ejson.get("$oid")?.as_str()?,
        _ => return None,
    };
    ObjectId::parse_str(text).ok().map(|id| id.to_hex())
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::auth::{Principal, Secret, UserDirectory, UserStore};
    use crate::MemoryBackend;

    const EXPORT: &str = r#"[
      {"_id": "5f1e2d3c4b5a697887766554", "type": "normal", "data": {"email": "ada@example.com"},
       "identities": [{"id": "64b0c0ffee0000000000aaaa", "provider_type": "local-userpass",
                       "provider_id": "p1", "provider_data": {"email": "ada@example.com"}}]},
      {"_id": {"$oid": "65a1b2c3d4e5f60718293a4b"}, "type": "normal", "data": {},
       "identities": [{"id": "sub-42", "provider_type": "custom-token", "provider_id": "p2"}]},
      {"_id": "65a1b2c3d4e5f60718293a4c", "type": "server",
       "identities": [{"id": "k1", "provider_type": "api-key"}]},
      {"_id": "not-an-id", "identities": []}
    ]"#;

    async fn stores() -> StateStores {
        StateStores::open(
            Arc::new(MemoryBackend::new()),
            "__data_api",
            Duration::from_secs(86_400),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn an_export_keeps_its_ids_and_imports_once() {
        let state = stores().await;
        let report = state.import_users(EXPORT).await.unwrap();
        assert_eq!(report.users, 4);
        assert_eq!(report.email_users, 1);
        assert_eq!(report.identities, 1);
        assert_eq!(report.unchanged, 0);
        assert_eq!(report.skipped.len(), 2, "{:?}", report.skipped);
        assert!(report.skipped.iter().any(|s| s.contains("API keys")));

        let jwt_user = state
            .directory
            .resolve(Principal::user("sub-42", "custom-token"))
            .await
            .unwrap();
        assert_eq!(jwt_user.id, "65a1b2c3d4e5f60718293a4b");

        // The email user exists without a password until one is set.
        let password = Secret::new("correct horse");
        assert!(state
            .users
            .verify_password("ada@example.com", &password)
            .await
            .unwrap()
            .is_none());
        state
            .users
            .set_password("ada@example.com", "correct horse")
            .await
            .unwrap();
        let ada = state
            .users
            .verify_password("ada@example.com", &password)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ada.id, "5f1e2d3c4b5a697887766554");

        let again = state.import_users(EXPORT).await.unwrap();
        assert_eq!(
            (again.email_users, again.identities, again.unchanged),
            (0, 0, 2)
        );
    }

    #[tokio::test]
    async fn what_is_not_an_export_is_refused() {
        let state = stores().await;
        for bad in ["{}", "nope", "42"] {
            assert!(matches!(
                state.import_users(bad).await,
                Err(StateError::Invalid(_))
            ));
        }
    }
}
