//! `server::serve`: the client's address reaches the service, and shutdown is graceful.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use tokio::net::TcpListener;

#[tokio::test]
async fn requests_carry_the_peer_address_and_shutdown_waits() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = tower::service_fn(|request: http::Request<hyper::body::Incoming>| async move {
        let peer = request
            .extensions()
            .get::<SocketAddr>()
            .map(|peer| peer.ip().to_string())
            .unwrap_or_default();
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(peer))))
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tower_data_api::server::serve(listener, service, async {
        let _ = stopped.await;
    }));
    let body = reqwest::get(format!("http://{addr}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "127.0.0.1");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(
        reqwest::get(format!("http://{addr}/")).await.is_err(),
        "no longer accepting"
    );
}
