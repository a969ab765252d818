//! [`DataApiLayer`]: serves the Data API routes and passes every other request
//! to the wrapped service unchanged.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project::pin_project;
use tower::{Layer, Service};

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
#[derive(Debug, Clone)]
pub struct DataApiMiddleware<S> {
    data_api: DataApiService,
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for DataApiMiddleware<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<EitherBody<ResBody>>;
    type Error = S::Error;
    type Future = DataApiFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if self.data_api.handles_path(request.uri().path()) {
            let data_api = self.data_api.clone();
            DataApiFuture::DataApi {
                future: Box::pin(async move { data_api.handle(request).await }),
            }
        } else {
            DataApiFuture::Inner {
                future: self.inner.call(request),
            }
        }
    }
}

/// The response future of [`DataApiMiddleware`].
#[pin_project(project = DataApiFutureProj)]
pub enum DataApiFuture<F> {
    /// The Data API is answering.
    DataApi {
        /// The Data API's answer.
        #[pin]
        future: Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>,
    },
    /// The inner service is answering.
    Inner {
        /// The inner service's answer.
        #[pin]
        future: F,
    },
}

impl<F, ResBody, E> Future for DataApiFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<EitherBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            DataApiFutureProj::DataApi { future } => future
                .poll(cx)
                .map(|response| Ok(response.map(|body| EitherBody::DataApi { body }))),
            DataApiFutureProj::Inner { future } => future.poll(cx).map(|result| {
                result.map(|response| response.map(|body| EitherBody::Inner { body }))
            }),
        }
    }
}

/// A response body from either the Data API or the inner service.
#[pin_project(project = EitherBodyProj)]
pub enum EitherBody<B> {
    /// The Data API's body.
    DataApi {
        /// The body.
        #[pin]
        body: ResponseBody,
    },
    /// The inner service's body.
    Inner {
        /// The body.
        #[pin]
        body: B,
    },
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
        match self.project() {
            EitherBodyProj::DataApi { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|result| result.map_err(|never| match never {}))),
            EitherBodyProj::Inner { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EitherBody::DataApi { body } => body.is_end_stream(),
            EitherBody::Inner { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EitherBody::DataApi { body } => body.size_hint(),
            EitherBody::Inner { body } => body.size_hint(),
        }
    }
}
