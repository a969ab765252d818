//! A custom authenticator next to the built-in schemes.
//!
//! ```text
//! cargo run --example custom_auth
//! ```
//!
//! `GatewayAuth` implements `tower_data_api::auth::Authenticator` two ways an
//! adopter typically needs:
//!
//! * **Trust the gateway**: requests that carry the gateway's shared secret in
//!   `X-Gateway-Secret` (compared in constant time) run as the user named in
//!   `X-Gateway-User`. Without the secret, the header is ignored.
//! * **Own key table**: `X-Tenant-Token` is looked up in the application's own
//!   table (here a `HashMap`; in real life a database), and the tenant becomes
//!   the user's custom data.
//!
//! API keys (`apiKey`) keep working alongside, and so do the login and
//! bearer-token endpoints. The authenticator answers `Ok(None)` for requests
//! that are not its own, so the built-in schemes get their turn.

use std::collections::HashMap;
use std::error::Error;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tower_data_api::auth::{async_trait, AuthRequest, Authenticator, Principal, Secret};
use tower_data_api::{ApiError, DataApi, DataApiService, MemoryBackend};

/// Trusts our own gateway and our own tenant tokens.
pub struct GatewayAuth {
    /// The secret only the gateway knows.
    pub gateway_secret: Secret,
    /// Tenant token → tenant name.
    pub tenants: HashMap<String, String>,
}

// Debug output must not show credentials: the gateway secret prints redacted,
// and the tenant tokens (the map's keys) are left out.
impl std::fmt::Debug for GatewayAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayAuth")
            .field("gateway_secret", &self.gateway_secret)
            .field("tenants", &self.tenants.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Authenticator for GatewayAuth {
    async fn authenticate(&self, request: &AuthRequest<'_>) -> Result<Option<Principal>, ApiError> {
        if let Some(user) = request.header("x-gateway-user") {
            let proven = request
                .header("x-gateway-secret")
                .is_some_and(|given| self.gateway_secret.matches(given));
            if !proven {
                // Someone tried to impersonate the gateway: refuse outright
                // rather than letting another scheme decide.
                return Err(ApiError::invalid_session());
            }
            return Ok(Some(Principal::user(user, "gateway").with_name(user)));
        }
        if let Some(token) = request.header("x-tenant-token") {
            // A real application would look the token up in its database
            // (comparing digests, not plain tokens).
            let Some(tenant) = self.tenants.get(token) else {
                return Err(ApiError::invalid_session());
            };
            let mut custom = bson::Document::new();
            custom.insert("tenant", tenant.clone());
            let principal = Principal::user(format!("tenant-{tenant}"), "tenant-token")
                .with_name(tenant.clone())
                .with_custom_data(custom);
            return Ok(Some(principal));
        }
        Ok(None)
    }
}

/// The Data API with the custom authenticator and one API key.
pub fn data_api(gateway_secret: &str, api_key: &str) -> DataApiService {
    let tenants = HashMap::from([("tenant-token-acme".to_owned(), "acme".to_owned())]);
    DataApi::builder()
        .app_id("data-custom")
        .data_source("mongodb-atlas", MemoryBackend::new())
        .authenticator(GatewayAuth {
            gateway_secret: Secret::new(gateway_secret),
            tenants,
        })
        .api_key("ops", api_key)
        .build()
        .expect("valid configuration")
}

/// Serves `service` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    service: DataApiService,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    tower_data_api::server::serve(listener, service, shutdown).await
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let gateway_secret = std::env::var("GATEWAY_SECRET")
        .unwrap_or_else(|_| tower_data_api::auth::generate_api_key());
    let api_key = tower_data_api::auth::generate_api_key();
    let service = data_api(&gateway_secret, &api_key);
    let addr: SocketAddr = "127.0.0.1:8080".parse()?;
    let listener = TcpListener::bind(addr).await?;
    println!(
        "custom_auth listening on http://{addr}/app/data-custom/endpoint/data/v1\n\
         try: curl -s http://{addr}/app/data-custom/endpoint/data/v1/action/find \\\n  \
         -H 'X-Tenant-Token: tenant-token-acme' \\\n  \
         -d '{{\"dataSource\":\"mongodb-atlas\",\"database\":\"db\",\"collection\":\"c\"}}'"
    );
    serve(listener, service, tower_data_api::server::shutdown_signal()).await?;
    Ok(())
}
