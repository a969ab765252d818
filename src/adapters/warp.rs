//! Mounting the Data API in a warp app (feature `warp`).
//!
//! warp 0.4 cannot take a tower `Service` as a route, so [`filter`] rebuilds
//! an `http::Request` from the pieces warp extracts (method, the path left
//! after the mount prefix, query, headers, and the body as a stream, so
//! chunked uploads work and the size limit stays in the service) and hands it
//! to the service.
//!
//! ```no_run
//! use warp::Filter;
//! # fn run(data_api: tower_data_api::DataApiService) {
//! let routes = warp::path("data")
//!     .and(tower_data_api::adapters::warp::filter(data_api))
//!     .or(warp::path("hello").map(|| "hello"));
//! # let _ = routes;
//! # }
//! ```

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, Method, Request};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use warp::filters::path::Tail;
use warp::{Filter, Rejection};

use crate::DataApiService;

/// A warp filter answering the Data API routes under wherever it is mounted;
/// other paths are rejected as not found so later `.or(...)` routes still match.
pub fn filter(
    service: DataApiService,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let routed = {
        let service = service.clone();
        warp::path::tail().and_then(move |tail: Tail| {
            let path = format!("/{}", tail.as_str());
            let ours = service.handles_path(&path);
            async move {
                if ours {
                    Ok(path)
                } else {
                    Err(warp::reject::not_found())
                }
            }
        })
    };
    routed
        .and(warp::method())
        .and(raw_query)
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and_then(move |path, method, query, headers, body| {
            let service = service.clone();
            async move { Ok::<_, Rejection>(answer(service, path, method, query, headers, body).await) }
        })
}

async fn answer<S, B>(
    service: DataApiService,
    path: String,
    method: Method,
    query: String,
    headers: HeaderMap,
    body: S,
) -> warp::reply::Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let frames =
        body.map(|chunk| chunk.map(|mut buf| Frame::data(buf.copy_to_bytes(buf.remaining()))));
    let mut request = Request::new(StreamBody::new(frames));
    *request.method_mut() = method;
    *request.headers_mut() = headers;
    *request.uri_mut() = match uri.parse() {
        Ok(uri) => uri,
        Err(_) => http::Uri::from_static("/"),
    };
    let response = service.handle(request).await;
    let (parts, body) = response.into_parts();
    // The service's bodies are complete in memory: collecting cannot wait or fail.
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    http::Response::from_parts(parts, warp::reply::Response::new(bytes.into()).into_body())
}
