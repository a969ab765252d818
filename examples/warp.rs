//! Mounting the Data API under `/data` in a warp app, beside the app's own
//! route, through the crate's warp adapter (feature `warp`).
//!
//! ```text
//! cargo run --example warp
//! ```

use tower_data_api::{DataApi, DataApiService, MemoryBackend};
use warp::Filter;

/// The app: its own `/hello` route, and the Data API under `/data`.
pub fn routes(
    data_api: DataApiService,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let hello = warp::path("hello")
        .and(warp::path::end())
        .map(|| "hello from the app's own route");
    let data = warp::path("data").and(tower_data_api::adapters::warp::filter(data_api));
    hello.or(data)
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
async fn main() {
    let key = tower_data_api::auth::generate_api_key();
    println!("warp app on http://127.0.0.1:3000");
    println!("Data API base URL: http://127.0.0.1:3000/data/app/data-local/endpoint/data/v1");
    println!("API key: {key}");
    warp::serve(routes(data_api(&key)))
        .run(([127, 0, 0, 1], 3000))
        .await;
}
