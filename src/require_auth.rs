//! Custom endpoints behind the Data API's authentication (spec §10).
//!
//! [`DataApiService::require_auth`] gives a tower layer for the
//! application's own routes: it authenticates each request exactly as the
//! Data API does (bearer token first, then the credential headers and
//! custom [`Authenticator`](crate::auth::Authenticator)s, then the run-as
//! mode; the same errors; the configured `?secret=` or
//! `Endpoint-Signature` validation; the failed-authentication brake and
//! the per-principal rate limits), puts the [`Principal`] in the request's
//! extensions and calls the route. In axum the handler takes it with
//! `axum::Extension<Principal>`:
//!
//! ```
//! use axum::{routing::get, Extension, Router};
//! use tower_data_api::{auth::Principal, DataApi, MemoryBackend};
//!
//! let data_api = DataApi::builder()
//!     .data_source("mongodb-atlas", MemoryBackend::new())
//!     .api_key("demo", "demo-key")
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new()
//!     .route(
//!         "/me",
//!         get(|Extension(me): Extension<Principal>| async move { me.id }),
//!     )
//!     .route_layer(data_api.require_auth())
//!     .nest_service("/data", data_api);
//! # let _ = app;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bson::oid::ObjectId;
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::{Layer, Service, ServiceExt as _};

use crate::auth::Principal;
use crate::layer::EitherBody;
use crate::limits::read_body;
use crate::protocol::{error_response, ApiError, ResponseBody};
use crate::service::DataApiService;

impl DataApiService {
    /// A layer that admits only requests the Data API would authenticate,
    /// with the [`Principal`] in their extensions (see the
    /// [module](crate::require_auth) docs).
    pub fn require_auth(&self) -> RequireAuthLayer {
        RequireAuthLayer {
            data_api: self.clone(),
        }
    }

    /// Authenticates `request` as the Data API does: the request comes back
    /// with the [`Principal`] in its extensions, or the error response the
    /// Data API would have given (`{"error", "error_code", "link"}`).
    ///
    /// With `VERIFY_PAYLOAD` request validation the body is read (up to the
    /// body limit) to check its signature, and handed on from memory.
    pub async fn authenticate<B>(
        &self,
        request: Request<B>,
    ) -> Result<Request<B>, Response<ResponseBody>>
    where
        B: Body + From<Bytes> + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let inner = self.inner();
        let (mut parts, body) = request.into_parts();
        let outcome: Result<(Principal, B), ApiError> = async {
            inner.rate_limits.refuse_blocked(&parts, None)?;
            let principal = inner.auth.authenticate(&parts).await.inspect_err(|err| {
                if err.status() == http::StatusCode::UNAUTHORIZED {
                    inner.rate_limits.record_failure(&parts, None);
                }
            })?;
            inner.rate_limits.check(&principal)?;
            let body = if inner.auth.validates_body() {
                let limits = &inner.limits;
                let bytes =
                    read_body(body, limits.max_body_bytes, limits.body_read_timeout).await?;
                inner.auth.validate_request(&parts, &bytes)?;
                B::from(bytes)
            } else {
                inner.auth.validate_request(&parts, &[])?;
                body
            };
            Ok((principal, body))
        }
        .await;
        match outcome {
            Ok((principal, body)) => {
                parts.extensions.insert(principal);
                Ok(Request::from_parts(parts, body))
            }
            Err(error) => {
                let request_id = ObjectId::new().to_hex();
                let link = format!("{}?co_id={request_id}", inner.error_link_base);
                Err(error_response(&error, &link, &request_id))
            }
        }
    }
}

/// The layer of [`DataApiService::require_auth`].
#[derive(Debug, Clone)]
pub struct RequireAuthLayer {
    data_api: DataApiService,
}

impl<S> Layer<S> for RequireAuthLayer {
    type Service = RequireAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireAuth {
            data_api: self.data_api.clone(),
            inner,
        }
    }
}

/// The service [`RequireAuthLayer`] produces: authenticates, then calls a
/// clone of the inner service (ready, then call) with the [`Principal`] in
/// the request's extensions.
#[derive(Debug, Clone)]
pub struct RequireAuth<S> {
    data_api: DataApiService,
    inner: S,
}

/// The response future of [`RequireAuth`].
pub type RequireAuthFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, ResBody> Service<Request<B>> for RequireAuth<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: Body + From<Bytes> + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<EitherBody<ResBody>>;
    type Error = S::Error;
    type Future = RequireAuthFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The inner service's readiness is awaited in the future, by the
        // requests that pass.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let data_api = self.data_api.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            match data_api.authenticate(request).await {
                Ok(request) => inner
                    .oneshot(request)
                    .await
                    .map(|response| response.map(EitherBody::inner)),
                Err(refusal) => Ok(refusal.map(EitherBody::data_api)),
            }
        })
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body_util::{BodyExt, Full};
    use tower::{Layer, ServiceExt};

    use crate::auth::{Principal, RequestValidation};
    use crate::{DataApi, MemoryBackend};

    async fn call(
        validation: Option<RequestValidation>,
        request: Request<Full<Bytes>>,
    ) -> (StatusCode, String) {
        let mut builder = DataApi::builder()
            .data_source("mongodb-atlas", MemoryBackend::new())
            .api_key("reports", "reports-key");
        if let Some(validation) = validation {
            builder = builder.request_validation(validation);
        }
        let data_api = builder.build().unwrap();
        let route = tower::service_fn(|request: Request<Full<Bytes>>| async move {
            let principal = request.extensions().get::<Principal>().cloned();
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let who = principal
                .map(|p| p.name.unwrap_or_default())
                .unwrap_or_default();
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(format!(
                "{who}:{}",
                String::from_utf8_lossy(&body)
            )))))
        });
        let response = data_api
            .require_auth()
            .layer(route)
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn get(key: Option<&str>) -> Request<Full<Bytes>> {
        let mut builder = Request::post("/reports").header("content-type", "application/json");
        if let Some(key) = key {
            builder = builder.header("apiKey", key);
        }
        builder.body(Full::new(Bytes::from_static(b"{}"))).unwrap()
    }

    #[tokio::test]
    async fn the_route_sees_the_principal() {
        assert_eq!(
            call(None, get(Some("reports-key"))).await,
            (StatusCode::OK, "reports:{}".into())
        );
    }

    #[tokio::test]
    async fn refusals_are_the_data_apis() {
        let (status, body) = call(None, get(Some("wrong"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body["error"],
            "invalid session: error finding user for endpoint"
        );
        assert_eq!(body["error_code"], "InvalidSession");
        let (status, body) = call(None, get(None)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.contains("no authentication methods were specified"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn signed_bodies_are_checked_and_handed_on() {
        let validation = RequestValidation::VerifyPayload("sign-secret".into());
        let (status, _) = call(Some(validation.clone()), get(Some("reports-key"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "unsigned");
        let signature = crate::auth::payload_signature("sign-secret", b"{}");
        let mut request = get(Some("reports-key"));
        request
            .headers_mut()
            .insert("endpoint-signature", signature.parse().unwrap());
        assert_eq!(
            call(Some(validation), request).await,
            (StatusCode::OK, "reports:{}".into())
        );
    }
}
