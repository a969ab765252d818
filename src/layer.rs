//! [`DataApiLayer`]: serves the Data API routes and passes every other request
//! to the wrapped service unchanged.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project::pin_project;
use tower::util::Oneshot;
use tower::{Layer, Service, ServiceExt as _};

use crate::protocol::ResponseBody;
use crate::service::DataApiService;

/// A tower `Layer` that puts the Data API in front of another service.
///
/// Requests whose path is a Data API route (`/app/<id>/endpoint/data/...`)
/// are answered by the Data API; all others go to the inner service.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_data_api::{DataApi, MemoryBackend};
///
/// let layer = DataApi::builder()
///     .data_source("mongodb-atlas", MemoryBackend::new())
///     .api_key("ci", "key")
///     .build_layer()
///     .unwrap();
/// let app = ServiceBuilder::new()
///     .layer(layer)
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("mine")))
///     });
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
pub struct DataApiLayer {
    service: DataApiService,
}

impl DataApiLayer {
    /// A layer answering with `service`.
    pub fn new(service: DataApiService) -> Self {
        Self { service }
    }
}

impl<S> Layer<S> for DataApiLayer {
    type Service = DataApiMiddleware<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DataApiMiddleware {
            data_api: self.service.clone(),
            inner,
        }
    }
}

/// The service [`DataApiLayer`] produces.
///
/// It is always ready: Data API requests never wait for the inner service,
/// and every other request drives a clone of the inner service (ready, then
/// call) inside its response future, so the inner service must be `Clone`.
#[derive(Debug, Clone)]
pub struct DataApiMiddleware<S> {
    data_api: DataApiService,
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for DataApiMiddleware<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<EitherBody<ResBody>>;
    type Error = S::Error;
    type Future = DataApiFuture<S, Request<B>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness of the inner service is awaited per request, in the
        // future, and only by requests it answers.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let kind = if self.data_api.handles_path(request.uri().path()) {
            let data_api = self.data_api.clone();
            FutureKind::DataApi {
                future: Box::pin(async move { data_api.handle(request).await }),
            }
        } else {
            FutureKind::Inner {
                future: self.inner.clone().oneshot(request),
            }
        };
        DataApiFuture { kind }
    }
}

/// The response future of [`DataApiMiddleware`].
#[pin_project]
pub struct DataApiFuture<S, R>
where
    S: Service<R>,
{
    #[pin]
    kind: FutureKind<S, R>,
}

#[pin_project(project = FutureKindProj)]
enum FutureKind<S, R>
where
    S: Service<R>,
{
    /// The Data API is answering.
    DataApi {
        #[pin]
        future: Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>,
    },
    /// The inner service is answering (ready, then call).
    Inner {
        #[pin]
        future: Oneshot<S, R>,
    },
}

impl<S, R, ResBody> Future for DataApiFuture<S, R>
where
    S: Service<R, Response = Response<ResBody>>,
{
    type Output = Result<Response<EitherBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            FutureKindProj::DataApi { future } => future
                .poll(cx)
                .map(|response| Ok(response.map(EitherBody::data_api))),
            FutureKindProj::Inner { future } => future
                .poll(cx)
                .map(|result| result.map(|response| response.map(EitherBody::inner))),
        }
    }
}

impl<S, R> std::fmt::Debug for DataApiFuture<S, R>
where
    S: Service<R>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let answering = match self.kind {
            FutureKind::DataApi { .. } => "data api",
            FutureKind::Inner { .. } => "inner service",
        };
        f.debug_struct("DataApiFuture")
            .field("answering", &answering)
            .finish()
    }
}

/// A response body from either the Data API or the inner service.
#[pin_project]
#[derive(Debug)]
pub struct EitherBody<B> {
    #[pin]
    kind: BodyKind<B>,
}

#[pin_project(project = BodyKindProj)]
#[derive(Debug)]
enum BodyKind<B> {
    /// The Data API's body.
    DataApi {
        #[pin]
        body: ResponseBody,
    },
    /// The inner service's body.
    Inner {
        #[pin]
        body: B,
    },
}

impl<B> EitherBody<B> {
    pub(crate) fn data_api(body: ResponseBody) -> Self {
        Self {
            kind: BodyKind::DataApi { body },
        }
    }

    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: BodyKind::Inner { body },
        }
    }
}

impl<B> Body for EitherBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            BodyKindProj::DataApi { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|result| result.map_err(|never| match never {}))),
            BodyKindProj::Inner { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::DataApi { body } => body.is_end_stream(),
            BodyKind::Inner { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::DataApi { body } => body.size_hint(),
            BodyKind::Inner { body } => body.size_hint(),
        }
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use std::convert::Infallible;
    use std::future::Future as _;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body_util::{BodyExt, Full};
    use tower::{Layer, Service, ServiceExt};

    use crate::{DataApi, MemoryBackend};

    /// An inner service that is never ready (and fails if called anyway).
    #[derive(Clone)]
    struct NeverReady;

    impl Service<Request<Full<Bytes>>> for NeverReady {
        type Response = Response<Full<Bytes>>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Pending
        }

        fn call(&mut self, _request: Request<Full<Bytes>>) -> Self::Future {
            panic!("the inner service was called without being ready")
        }
    }

    #[tokio::test]
    async fn data_api_requests_do_not_wait_for_the_inner_service() {
        let layer = DataApi::builder()
            .app_id("data-layer")
            .data_source("mongodb-atlas", MemoryBackend::new())
            .api_key("ci", "layer-test-key")
            .build_layer()
            .unwrap();
        let mut app = layer.layer(NeverReady);
        let request = Request::post("/app/data-layer/endpoint/data/v1/action/insertOne")
            .header("apiKey", "layer-test-key")
            .body(Full::new(Bytes::from_static(
                br#"{"dataSource":"mongodb-atlas","database":"db","collection":"c","document":{"_id":1}}"#,
            )))
            .unwrap();
        // Bounded: were readiness the inner service's, `ready` would never finish.
        let answer = async { app.ready().await.unwrap().call(request).await.unwrap() };
        let response = tokio::time::timeout(std::time::Duration::from_secs(30), answer)
            .await
            .expect("the Data API request waited for the inner service");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"insertedId":1}"#);
    }

    #[tokio::test]
    async fn other_requests_wait_for_the_inner_service() {
        let layer = DataApi::builder()
            .data_source("mongodb-atlas", MemoryBackend::new())
            .api_key("ci", "layer-test-key")
            .build_layer()
            .unwrap();
        let mut app = layer.layer(NeverReady);
        let request = Request::get("/elsewhere")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let mut future = app.ready().await.unwrap().call(request);
        // Polled once: still waiting for the inner service, which was not called.
        let pending = std::future::poll_fn(|cx| {
            Poll::Ready(std::pin::Pin::new(&mut future).poll(cx).is_pending())
        })
        .await;
        assert!(pending);
    }
}
