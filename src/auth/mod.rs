//! Authentication: who a request runs as.
//!
//! The Data API evaluates credentials in a fixed order (spec §5.1): an
//! `Authorization: Bearer` token first, with no fallback when it is invalid;
//! otherwise the credential headers (`apiKey`/`api-key`, `email` + `password`,
//! `jwtTokenString`). This module reads those headers ([`Credentials`]) and
//! turns them into a [`Principal`] through the configured stores.

mod credentials;
mod key_store;
mod principal;
mod secret;

use std::sync::Arc;

use http::HeaderMap;

pub use credentials::{extract as extract_credentials, Credentials};
pub use key_store::{
    api_key_sha256, generate_api_key, InvalidDigest, KeyStore, MemoryKeyStore, StoreError,
};
pub use principal::{Identity, Principal, PrincipalKind};
pub use secret::Secret;

use crate::protocol::{ApiError, ErrorCode};

/// The authentication step of the pipeline, built once by the builder.
#[derive(Clone)]
pub(crate) struct Authentication {
    pub(crate) key_store: Option<Arc<dyn KeyStore>>,
}

impl Authentication {
    /// The principal for a request's headers, or the Data API's error.
    pub(crate) async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let credentials = extract_credentials(headers)?.ok_or_else(ApiError::no_credentials)?;
        let found = match &credentials {
            Credentials::ApiKey(key) => match &self.key_store {
                Some(store) => store.find_key(key).await.map_err(store_unavailable)?,
                None => None,
            },
            // Bearer tokens, email/password and custom JWTs need providers that
            // are not configured: they identify nobody.
            Credentials::Bearer(_)
            | Credentials::EmailPassword { .. }
            | Credentials::CustomJwt(_) => None,
        };
        found.ok_or_else(ApiError::invalid_session)
    }
}

fn store_unavailable(err: StoreError) -> ApiError {
    tracing::warn!(error = %err, "credential store failed");
    ApiError::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServiceUnavailable,
        "authentication is temporarily unavailable; retry later",
    )
}
