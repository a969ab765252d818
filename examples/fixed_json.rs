//! The load benchmark's baseline: the project's own server loop
//! (`server::serve_with`, default options) answering every request with the
//! same small JSON body a findOne returns, without parsing, authentication
//! or storage. `integration-tests/load/wrk.sh` measures the Data API
//! against it in the same run.
//!
//! `cargo run --release --example fixed_json -- [ADDR]` (default 127.0.0.1:8090).

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, Request, Response};
use http_body_util::Full;
use tower_data_api::server;

const BODY: &[u8] = br#"{"document":{"_id":1,"text":"Do the dishes","done":false}}"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("fixed JSON handler on http://{}", listener.local_addr()?);
    let service = tower::service_fn(|_request: Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from_static(BODY)))
                .expect("a valid response"),
        )
    });
    server::serve_with(
        listener,
        service,
        server::shutdown_signal(),
        server::ServerOptions::default(),
    )
    .await
}
