//! Who a request runs as.

use bson::Document;
use serde::{Deserialize, Serialize};

/// The kind of user, as App Services' `%%user.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// An application user (email/password, custom JWT, …).
    Normal,
    /// A server API key.
    Server,
    /// The system user: bypasses every rule.
    System,
}

impl PrincipalKind {
    /// `"normal"`, `"server"` or `"system"`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Normal => "normal",
            PrincipalKind::Server => "server",
            PrincipalKind::System => "system",
        }
    }
}

/// One way the user has authenticated (`%%user.identities`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The id within the provider (e.g. a JWT `sub`).
    pub id: String,
    /// The provider type, e.g. `api-key`, `local-userpass`, `custom-token`.
    pub provider_type: String,
    /// The configured provider's id; this crate uses the provider type.
    #[serde(default)]
    pub provider_id: String,
}

impl Identity {
    /// An identity `id` of provider `provider_type`.
    pub fn new(id: impl Into<String>, provider_type: impl Into<String>) -> Self {
        let provider_type = provider_type.into();
        Self {
            id: id.into(),
            provider_id: provider_type.clone(),
            provider_type,
        }
    }
}

/// The authenticated user a request runs as.
///
/// ```
/// use tower_data_api::auth::{Principal, PrincipalKind};
/// let p = Principal::new("64b0c0ffee0000000000beef", PrincipalKind::Server, "api-key")
///     .with_name("ci");
/// assert_eq!(p.name.as_deref(), Some("ci"));
/// assert_eq!(p.identities[0].provider_type, "api-key");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    /// The user id (`%%user.id`).
    pub id: String,
    /// The user type (`%%user.type`).
    pub kind: PrincipalKind,
    /// The provider that authenticated this request, e.g. `api-key`.
    pub provider: String,
    /// A human name: the API key's name, the user's email. Logged; never a secret.
    #[serde(default)]
    pub name: Option<String>,
    /// Identities linked to the user.
    #[serde(default)]
    pub identities: Vec<Identity>,
    /// User data (`%%user.data`), e.g. JWT metadata fields.
    #[serde(default)]
    pub data: Document,
    /// Custom user data (`%%user.custom_data`).
    #[serde(default)]
    pub custom_data: Document,
}

impl Principal {
    /// A principal with one identity of `provider` and no data.
    pub fn new(id: impl Into<String>, kind: PrincipalKind, provider: impl Into<String>) -> Self {
        let id = id.into();
        let provider = provider.into();
        Self {
            identities: vec![Identity::new(id.clone(), provider.clone())],
            id,
            kind,
            provider,
            name: None,
            data: Document::new(),
            custom_data: Document::new(),
        }
    }

    /// A `normal` application user authenticated by `provider`.
    pub fn user(id: impl Into<String>, provider: impl Into<String>) -> Self {
        Self::new(id, PrincipalKind::Normal, provider)
    }

    /// The system user, which bypasses rules.
    pub fn system() -> Self {
        Self::new("system", PrincipalKind::System, "system")
    }

    /// Sets the human name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the user data (`%%user.data`).
    #[must_use]
    pub fn with_data(mut self, data: Document) -> Self {
        self.data = data;
        self
    }

    /// Sets the custom user data (`%%user.custom_data`).
    #[must_use]
    pub fn with_custom_data(mut self, custom_data: Document) -> Self {
        self.custom_data = custom_data;
        self
    }

    /// Replaces the identities with one identity `id` of `provider_type`.
    #[must_use]
    pub fn with_identity(
        mut self,
        id: impl Into<String>,
        provider_type: impl Into<String>,
    ) -> Self {
        self.identities = vec![Identity::new(id, provider_type)];
        self
    }

    /// Whether this is the system user.
    pub fn is_system(&self) -> bool {
        self.kind == PrincipalKind::System
    }
}

/// A stable 24-hex-digit id derived from `scope` and `name` (API keys, users).
pub(crate) fn derived_id(scope: &str, name: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("tower-data-api/{scope}/{name}").as_bytes());
    hex::encode(&digest[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_round_trip_and_kind_names() {
        let p = Principal::user("u1", "custom-token")
            .with_data(bson::doc! {"email": "a@b.c"})
            .with_identity("sub-1", "custom-token");
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"kind\":\"normal\""), "{json}");
        let back: Principal = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        assert!(Principal::system().is_system());
        assert_eq!(derived_id("x", "y").len(), 24);
    }
}
