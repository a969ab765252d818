//! Who a request runs as.

use bson::Document;

/// The kind of user, as App Services' `%%user.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The id within the provider (e.g. a JWT `sub`).
    pub id: String,
    /// The provider type, e.g. `api-key`, `local-userpass`, `custom-token`.
    pub provider_type: String,
}

/// The authenticated user a request runs as.
///
/// ```
/// use tower_data_api::auth::{Principal, PrincipalKind};
/// let p = Principal::new("64b0c0ffee0000000000beef", PrincipalKind::Server, "api-key")
///     .with_name("ci");
/// assert_eq!(p.name.as_deref(), Some("ci"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The user id (`%%user.id`).
    pub id: String,
    /// The user type (`%%user.type`).
    pub kind: PrincipalKind,
    /// The provider that authenticated this request, e.g. `api-key`.
    pub provider: String,
    /// A human name: the API key's name, the user's email. Logged; never a secret.
    pub name: Option<String>,
    /// Identities linked to the user.
    pub identities: Vec<Identity>,
    /// User data (`%%user.data`), e.g. JWT metadata fields.
    pub data: Document,
    /// Custom user data (`%%user.custom_data`).
    pub custom_data: Document,
}

impl Principal {
    /// A principal with one identity of `provider` and no data.
    pub fn new(id: impl Into<String>, kind: PrincipalKind, provider: impl Into<String>) -> Self {
        let id = id.into();
        let provider = provider.into();
        Self {
            identities: vec![Identity {
                id: id.clone(),
                provider_type: provider.clone(),
            }],
            id,
            kind,
            provider,
            name: None,
            data: Document::new(),
            custom_data: Document::new(),
        }
    }

    /// The system user, which bypasses rules.
    pub fn system() -> Self {
        Self::new("system", PrincipalKind::System, "system")
    }

    /// Sets the human name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}
