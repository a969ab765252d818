//! Mounting the Data API under `/data` in an axum app, beside the app's own
//! route and a custom endpoint (`/me`) behind the Data API's authentication.
//!
//! ```text
//! cargo run --example axum
//! curl -s localhost:3000/hello
//! curl -s localhost:3000/me -H "apiKey: $KEY"
//! curl -s localhost:3000/data/app/data-local/endpoint/data/v1/action/find \
//!   -H "apiKey: $KEY" -d '{"dataSource":"mongodb-atlas","database":"db","collection":"c"}'
//! ```

use axum::routing::get;
use axum::{Extension, Json, Router};
use tower_data_api::auth::Principal;
use tower_data_api::{DataApi, DataApiService, MemoryBackend};

/// The app: its own `/hello` route, `/me` for callers the Data API
/// authenticates (same credentials, same errors), and the Data API under
/// `/data`.
pub fn app(data_api: DataApiService) -> Router {
    let custom = Router::new()
        .route("/me", get(me))
        .route_layer(data_api.require_auth());
    Router::new()
        .route("/hello", get(|| async { "hello from the app's own route" }))
        .merge(custom)
        .nest_service("/data", data_api)
}

/// A custom endpoint: who is calling, as the Data API sees them.
async fn me(Extension(principal): Extension<Principal>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "id": principal.id,
        "name": principal.name,
        "provider": principal.provider,
    }))
}

/// A Data API on the embedded engine accepting `key`.
pub fn data_api(key: &str) -> DataApiService {
    DataApi::builder()
        .data_source("mongodb-atlas", MemoryBackend::new())
        .api_key("demo", key)
        .build()
        .expect("a valid Data API configuration")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let key = tower_data_api::auth::generate_api_key();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("axum app on http://{}", listener.local_addr()?);
    println!(
        "Data API base URL: http://{}/data/app/data-local/endpoint/data/v1",
        listener.local_addr()?
    );
    println!("API key: {key}");
    axum::serve(listener, app(data_api(&key))).await
}
