//! Authentication: who a request runs as.
//!
//! The Data API evaluates credentials in a fixed order (spec §5.1):
//!
//! 1. `Authorization: Bearer <access token>` — a session token issued by the
//!    client API ([`endpoints`](self#client-api)); when it is invalid the
//!    request fails, with no fallback to other headers.
//! 2. Your own [`Authenticator`]s, in the order they were added.
//! 3. The credential headers: `apiKey`/`api-key` ([`KeyStore`]),
//!    `email` + `password` ([`UserStore`]), `jwtTokenString` ([`JwtProvider`]).
//! 4. Without any credentials, the configured run-as mode ([`RunAs`]).
//!
//! After authentication, an optional [`RequestValidation`] (§5.5) checks the
//! `?secret=` parameter or the `Endpoint-Signature` of the body.
//!
//! # Client API
//!
//! Bearer-token clients log in through the App Services client API, served
//! relative to the mount point: `POST /api/client/v2.0/app/<appId>/auth/providers/<provider>/login`,
//! `POST`/`DELETE /api/client/v2.0/auth/session`, `GET /api/client/v2.0/auth/profile`
//! and `GET /api/client/v2.0/app/<appId>/location`. Sessions are kept in a
//! [`SessionStore`] and signed as configured by [`SessionSettings`].
//!
//! Credentials are wrapped in [`Secret`], whose `Debug` output is redacted.

mod assembly;
mod authenticator;
mod credentials;
mod directory;
mod endpoints;
mod jwt;
mod key_store;
mod principal;
mod run_as;
mod secret;
mod sessions;
mod signature;
mod users;

use std::sync::Arc;

use http::request::Parts;

/// The attribute for implementing [`Authenticator`] (re-exported from the
/// `async-trait` crate, so adopters need no extra dependency).
pub use async_trait::async_trait;
pub use authenticator::{AuthRequest, Authenticator};
pub(crate) use credentials::scheme as credential_scheme;
pub use credentials::{extract as extract_credentials, Credentials};
pub use directory::{identity_key, MemoryUserDirectory, UserDirectory};
pub use jwt::{JwtConfigError, JwtProvider, MetadataField, CUSTOM_TOKEN, MAX_TOKEN_LEN};
pub use key_store::{
    api_key_sha256, generate_api_key, InvalidDigest, KeyStore, MemoryKeyStore, StoreError,
};
pub use principal::{Identity, Principal, PrincipalKind};
pub use run_as::{RunAs, RunAsFn, RUN_AS};
pub use secret::Secret;
pub use sessions::{
    MemorySessionStore, Session, SessionSettings, SessionStore, MIN_SIGNING_KEY_LEN,
};
pub use signature::{payload_signature, RequestValidation, SIGNATURE_HEADER};
pub use users::{
    hash_password, InvalidPassword, MemoryUserStore, Registration, UserStore, LOCAL_USERPASS,
    MIN_PASSWORD_LEN,
};

pub(crate) use assembly::AuthSettings;
pub(crate) use endpoints::{ClientReply, Location};
pub(crate) use key_store::key_user_id;
pub(crate) use run_as::RunAsMode;
pub(crate) use sessions::Sessions;
pub(crate) use users::{PasswordChecks, Passwords};

use crate::protocol::ApiError;

/// The authentication step of the pipeline, assembled once from the
/// builder's settings by [`AuthSettings::assemble`].
pub(crate) struct Authentication {
    pub(crate) app_id: String,
    pub(crate) sessions: Sessions,
    /// The adopter's authenticators, then the built-in credential headers.
    pub(crate) authenticators: Vec<Arc<dyn Authenticator>>,
    pub(crate) key_store: Option<Arc<dyn KeyStore>>,
    pub(crate) user_store: Option<Arc<dyn UserStore>>,
    /// Bounds the password checks of `user_store` running at once.
    pub(crate) password_checks: PasswordChecks,
    pub(crate) jwt: Option<Arc<JwtProvider>>,
    /// Issues user ids for custom-token and anonymous identities; without
    /// one, `%%user.id` is the provider's id.
    pub(crate) directory: Option<Arc<dyn UserDirectory>>,
    pub(crate) anonymous: bool,
    /// Whether `local-userpass/register` creates users (off by default).
    pub(crate) registration: bool,
    pub(crate) run_as: Option<RunAsMode>,
    pub(crate) validation: RequestValidation,
    pub(crate) location: Location,
}

impl Authentication {
    /// The principal for a request, or the Data API's error (§5.1 order).
    pub(crate) async fn authenticate(&self, parts: &Parts) -> Result<Principal, ApiError> {
        let credentials = extract_credentials(&parts.headers);
        if let Ok(Some(Credentials::Bearer(token))) = &credentials {
            return self.bearer(token).await;
        }
        let request = AuthRequest {
            parts,
            credentials: credentials.as_ref().ok().and_then(Option::as_ref),
            app_id: &self.app_id,
        };
        for authenticator in &self.authenticators {
            if let Some(principal) = authenticator.authenticate(&request).await? {
                return Ok(principal);
            }
        }
        match credentials {
            Err(incomplete) => Err(incomplete),
            Ok(Some(_)) => Err(ApiError::invalid_session()),
            Ok(None) => self
                .run_as
                .as_ref()
                .and_then(|mode| mode.principal(parts))
                .ok_or_else(ApiError::no_credentials),
        }
    }

    /// The user of a bearer access token; 401 for any invalid one.
    pub(crate) async fn bearer(&self, token: &Secret) -> Result<Principal, ApiError> {
        self.sessions
            .check_access(token)
            .await
            .map_err(authenticator::store_unavailable)?
            .map(|session| session.principal)
            .ok_or_else(ApiError::invalid_session)
    }

    /// Whether [`validate_request`](Self::validate_request) needs the body
    /// (`VERIFY_PAYLOAD`).
    pub(crate) fn validates_body(&self) -> bool {
        matches!(self.validation, RequestValidation::VerifyPayload(_))
    }

    /// §5.5: the secret or payload signature, once the body has been read.
    pub(crate) fn validate_request(&self, parts: &Parts, body: &[u8]) -> Result<(), ApiError> {
        self.validation.check(parts, body)
    }
}

#[cfg(test)]
mod tests;
