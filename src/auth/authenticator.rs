//! The [`Authenticator`] trait: one way of turning a request into a
//! [`Principal`], and the built-in ones for the credential headers.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use http::request::Parts;

use super::jwt::JwtProvider;
use super::users::PasswordChecks;
use super::{Credentials, KeyStore, Principal, StoreError, UserDirectory, UserStore};
use crate::protocol::{ApiError, ErrorCode};

/// What an authenticator sees of a request: method, URI and headers (the
/// body is not read yet), and the credential headers already parsed.
///
/// Its `Debug` output shows the method, the path, the header names and the
/// credential kind — never a header value or the query string.
#[derive(Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The request head.
    pub parts: &'a Parts,
    /// The credential headers, when the request has any (never `Bearer`:
    /// bearer tokens are checked before any authenticator runs).
    pub credentials: Option<&'a Credentials>,
    /// The client app id the service is configured with.
    pub app_id: &'a str,
}

impl fmt::Debug for AuthRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self
            .parts
            .headers
            .keys()
            .map(|name| name.as_str())
            .collect();
        f.debug_struct("AuthRequest")
            .field("method", &self.parts.method)
            .field("path", &self.parts.uri.path())
            .field("headers", &headers)
            .field("credentials", &self.credentials)
            .field("app_id", &self.app_id)
            .finish()
    }
}

impl AuthRequest<'_> {
    /// A request header as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A way to authenticate Data API requests.
///
/// Authenticators are asked in order, after the bearer-token check and
/// before the built-in credential headers: the first `Ok(Some(principal))`
/// wins, `Ok(None)` means "not mine, ask the next one", and `Err` ends the
/// request with that error (use [`ApiError::invalid_session`] for wrong
/// credentials, so the answer matches the original service's).
///
/// ```
/// use async_trait::async_trait;
/// use tower_data_api::auth::{AuthRequest, Authenticator, Principal};
/// use tower_data_api::ApiError;
///
/// /// Trusts the user id set by our own gateway.
/// struct Gateway;
///
/// #[async_trait]
/// impl Authenticator for Gateway {
///     async fn authenticate(&self, request: &AuthRequest<'_>) -> Result<Option<Principal>, ApiError> {
///         Ok(request.header("x-gateway-user").map(|id| Principal::user(id, "gateway")))
///     }
/// }
/// ```
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// The principal for this request, `None` when the request is not for
    /// this authenticator, or the error to answer.
    async fn authenticate(&self, request: &AuthRequest<'_>) -> Result<Option<Principal>, ApiError>;
}

/// The `apiKey` / `api-key` headers, looked up in a [`KeyStore`].
pub(crate) struct ApiKeys(pub(crate) Arc<dyn KeyStore>);

#[async_trait]
impl Authenticator for ApiKeys {
    async fn authenticate(&self, request: &AuthRequest<'_>) -> Result<Option<Principal>, ApiError> {
        match request.credentials {
            Some(Credentials::ApiKey(key)) => self.0.find_key(key).await.map_err(store_unavailable),
            _ => Ok(None),
        }
    }
}

/// The `email` + `password` headers, checked by a [`UserStore`] within the
/// service's bound on password checks.
pub(crate) struct EmailPassword(pub(crate) Arc<dyn UserStore>, pub(crate) PasswordChecks);

#[async_trait]
impl Authenticator for EmailPassword {
    async fn authenticate(&self, request: &AuthRequest<'_>) -> Result<Option<Principal>, ApiError> {
        match request.credentials {
            Some(Credentials::EmailPassword { email, password }) => {
                self.1.verify(self.0.as_ref(), email, password).await
            }
            _ => Ok(None),
        }
    }
}

/// The `jwtTokenString` header, checked by the custom JWT provider; the
/// token's user gets its id from the directory, when there is one.
pub(crate) struct CustomJwt(
    pub(crate) Arc<JwtProvider>,
    pub(crate) Option<Arc<dyn UserDirectory>>,
);

#[async_trait]
impl Authenticator for CustomJwt {
    async fn authenticate(&self, request: &AuthRequest<'_>) -> Result<Option<Principal>, ApiError> {
        let Some(Credentials::CustomJwt(token)) = request.credentials else {
            return Ok(None);
        };
        match self.0.verify(token, request.app_id) {
            Some(principal) => resolve_user(self.1.as_deref(), principal).await.map(Some),
            None => Ok(None),
        }
    }
}

/// `principal` with the id `directory` issued for its identity; as it is
/// without a directory.
pub(crate) async fn resolve_user(
    directory: Option<&dyn UserDirectory>,
    principal: Principal,
) -> Result<Principal, ApiError> {
    match directory {
        Some(directory) => directory
            .resolve(principal)
            .await
            .map_err(store_unavailable),
        None => Ok(principal),
    }
}

/// A store failed: 503 with a generic message, the details in the log.
pub(crate) fn store_unavailable(err: StoreError) -> ApiError {
    tracing::warn!(error = %err, "credential store failed");
    ApiError::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServiceUnavailable,
        "authentication is temporarily unavailable; retry later",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Secret;

    #[test]
    fn debug_shows_no_header_value_or_query() {
        let (parts, ()) = http::Request::post("/x?secret=q-secret-value")
            .header("apiKey", "header-key-value")
            .header("x-gateway-secret", "gateway-value")
            .body(())
            .unwrap()
            .into_parts();
        let credentials = Credentials::ApiKey(Secret::new("header-key-value"));
        let request = AuthRequest {
            parts: &parts,
            credentials: Some(&credentials),
            app_id: "app",
        };
        let debug = format!("{request:?}");
        assert!(
            debug.contains("apikey") && debug.contains("x-gateway-secret"),
            "{debug}"
        );
        for secret in ["q-secret-value", "header-key-value", "gateway-value"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert_eq!(request.header("x-gateway-secret"), Some("gateway-value"));
    }
}
