//! Mounting the Data API under `/data` in an axum app, beside the app's own route.
//!
//! ```text
//! cargo run --example axum
//! curl -s localhost:3000/hello
//! curl -s localhost:3000/data/app/data-local/endpoint/data/v1/action/find \
//!   -H "apiKey: $KEY" -d '{"dataSource":"mongodb-atlas","database":"db","collection":"c"}'
//! ```

use axum::routing::get;
use axum::Router;
use tower_data_api::{DataApi, DataApiService, MemoryBackend};

/// The app: its own `/hello` route, and the Data API under `/data`.
pub fn app(data_api: DataApiService) -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello from the app's own route" }))
        .nest_service("/data", data_api)
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
