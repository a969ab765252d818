//! Mounting the Data API under `/data` in a poem app, beside the app's own route.
//!
//! ```text
//! cargo run --example poem
//! ```

use poem::endpoint::TowerCompatExt;
use poem::{get, handler, Route};
use tower_data_api::{DataApi, DataApiService, MemoryBackend};

#[handler]
fn hello() -> &'static str {
    "hello from the app's own route"
}

/// The app: its own `/hello` route, and the Data API under `/data`.
pub fn app(data_api: DataApiService) -> Route {
    Route::new()
        .at("/hello", get(hello))
        .nest("/data", data_api.compat())
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
    println!("poem app on http://127.0.0.1:3000");
    println!("Data API base URL: http://127.0.0.1:3000/data/app/data-local/endpoint/data/v1");
    println!("API key: {key}");
    poem::Server::new(poem::listener::TcpListener::bind("127.0.0.1:3000"))
        .run(app(data_api(&key)))
        .await
}
