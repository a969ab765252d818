//! `server::serve`: the client's address reaches the service, and shutdown is graceful and bounded.

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

#[tokio::test]
async fn shutdown_drops_what_outlasts_the_grace_period() {
    use std::time::Duration;
    use tower_data_api::server::{serve_with, ServerOptions};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // A service that never answers.
    let service = tower::service_fn(|_: http::Request<hyper::body::Incoming>| {
        std::future::pending::<Result<http::Response<Full<Bytes>>, Infallible>>()
    });
    let options = ServerOptions {
        shutdown_grace: Duration::from_millis(200),
        ..ServerOptions::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with(
        listener,
        service,
        async {
            let _ = stopped.await;
        },
        options,
    ));
    let request = tokio::spawn(reqwest::get(format!("http://{addr}/")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve_with returns after the grace period")
        .unwrap()
        .unwrap();
    assert!(
        request.await.unwrap().is_err(),
        "the unanswered request is dropped"
    );

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let zero = ServerOptions {
        max_connections: 0,
        ..ServerOptions::default()
    };
    let service = tower::service_fn(|_: http::Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
    });
    let err = serve_with(listener, service, std::future::pending(), zero)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max_connections"), "{err}");
}
