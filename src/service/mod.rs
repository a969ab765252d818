//! [`DataApiService`]: the request pipeline, readable top to bottom in
//! [`Inner::run`].

mod request_id;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use futures_util::FutureExt as _;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use tokio::sync::Semaphore;

use crate::action::{execute, Action, ActionRequest, Reply};
use crate::auth::{Authentication, ClientReply, Principal};
use crate::backend::{Backend, RequestContext};
use crate::cors::{Cors, CorsCheck};
use crate::health::{self, Probe, ProbeAnswer};
use crate::limits::{check_content_length, finish_by, read_body, TimedOut};
use crate::log::{LogSink, RequestLog};
use crate::metrics::Metrics;
use crate::protocol::{
    decode, empty_response, error_response, parse_body, response, ApiError, ErrorCode, FindLimits,
    Format, ResponseBody,
};
use crate::rate_limit::RateLimits;
use crate::route::{ClientRoute, Route, Version};
use crate::rules::{check_access, AccessLevel, Enforcer};
use crate::state::refuse_state_database;
use crate::Limits;
use request_id::RequestId;

/// The largest client API body: a custom-token login with the longest
/// accepted JWT, and room for the rest of the JSON.
const CLIENT_API_MAX_BODY: usize = crate::auth::MAX_TOKEN_LEN + 64 * 1024;

/// The Data API as a tower `Service`: answers every request itself (404 for
/// paths that are not Data API routes). Cheap to clone.
///
/// Build it with [`DataApi::builder()`](crate::DataApi::builder). It accepts
/// any request body type and never fails: every error, overload and time-out
/// included, is an HTTP response.
#[derive(Clone)]
pub struct DataApiService {
    inner: Arc<Inner>,
}

/// One configured data source.
pub(crate) struct DataSource {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) access: AccessLevel,
    /// App Services-style rules, when configured.
    pub(crate) rules: Enforcer,
}

/// Everything the builder validated, shared by all clones of the service.
pub(crate) struct Inner {
    pub(crate) app_id: String,
    pub(crate) versions: Vec<Version>,
    pub(crate) default_format: Format,
    pub(crate) data_sources: HashMap<String, DataSource>,
    pub(crate) auth: Authentication,
    pub(crate) limits: Limits,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) log_sink: Arc<dyn LogSink>,
    pub(crate) insert_status: StatusCode,
    pub(crate) error_link_base: String,
    pub(crate) cors: Option<Cors>,
    /// Whether `/health` and `/ready` are answered (see [`crate::health`]).
    pub(crate) health_endpoints: bool,
    /// Where requests are counted, when metrics are on.
    pub(crate) metrics: Option<Metrics>,
    /// Buckets per principal and for failed authentication.
    pub(crate) rate_limits: RateLimits,
    /// The database the service's own state may live in: never reachable
    /// through the actions.
    pub(crate) state_database: String,
    /// Data sources' access levels and on/off switches set at run time.
    pub(crate) source_settings: Option<crate::state::BackendSourceSettings>,
    /// The admin console, when served.
    #[cfg(feature = "console")]
    pub(crate) console: Option<crate::console::Console>,
}

impl DataApiService {
    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The validated configuration this service runs on.
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Whether this service answers `path`: a Data API route or a client API
    /// route (`/api/client/v2.0/...`) under its mount point.
    pub fn handles_path(&self, path: &str) -> bool {
        #[cfg(feature = "console")]
        if self.inner.console.is_some() && crate::console::is_console_path(path) {
            return true;
        }
        Route::recognize(path).is_some()
            || (self.inner.health_endpoints && Probe::at(path).is_some())
    }

    /// Answers one request.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.inner.clone().handle(request).await
    }
}

impl std::fmt::Debug for DataApiService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataApiService")
            .field("app_id", &self.inner.app_id)
            .finish_non_exhaustive()
    }
}

impl<B> tower::Service<Request<B>> for DataApiService
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Overload is answered with 429 inside `call`, never by back-pressure.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.handle(request).await) })
    }
}

/// What a request asks for: a Data API action, a client API endpoint or a
/// health probe.
enum Target<'a> {
    Action(Action),
    Client(ClientRoute<'a>),
    Probe(Probe),
    OpenApi(Version),
}

impl Target<'_> {
    fn name(&self) -> &'static str {
        match self {
            Target::Action(action) => action.name(),
            Target::Client(route) => route.name(),
            Target::Probe(probe) => probe.name(),
            Target::OpenApi(_) => "openapi",
        }
    }
}

/// A successful outcome: a Data API reply or a client API answer.
enum Answer {
    Data(Reply),
    Client(Box<ClientReply>),
    /// A CORS preflight, answered 204 with these headers.
    Preflight(http::HeaderMap),
    /// A JSON answer of the service's own: a health probe, the OpenAPI document.
    Json(ProbeAnswer),
}

/// What the pipeline learnt about a request, for its log entry.
struct Trace {
    log: RequestLog,
    format: Format,
}

impl Inner {
    /// Runs the pipeline, turns its outcome into a response and logs it.
    async fn handle<B>(self: Arc<Self>, request: Request<B>) -> Response<ResponseBody>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // The console's pages are not Data API requests: not logged or counted as such.
        #[cfg(feature = "console")]
        if let Some(console) = &self.console {
            if crate::console::is_console_path(request.uri().path()) {
                return console.handle(&self, request).await;
            }
        }
        let started = Instant::now();
        let _in_flight = self.metrics.as_ref().map(Metrics::begin);
        let arrived = SystemTime::now();
        let id = RequestId::new(arrived);
        let request_id = id.as_str();
        let mut trace = Trace {
            log: RequestLog::new(request_id, request.method().as_str(), arrived),
            format: self.response_format(request.headers()),
        };
        // What the caller tried; the principal's provider replaces it once
        // authentication succeeds.
        trace.log.auth_scheme = crate::auth::credential_scheme(request.headers()).map(Into::into);
        let origin = request.headers().get(http::header::ORIGIN).cloned();
        // A panic is a bug, never the client's fault: answer 500 and keep serving.
        let outcome = AssertUnwindSafe(self.run(request, started, &mut trace))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(request_id = %request_id, "panic while handling a Data API request");
                Err(ApiError::internal())
            });
        let mut response = self.respond(outcome, &mut trace, request_id);
        if let Some(cors) = &self.cors {
            cors.decorate(origin.as_ref(), response.headers_mut());
        }
        trace.log.status = response.status().as_u16();
        trace.log.response_bytes = http_body::Body::size_hint(response.body()).exact();
        trace.log.duration = started.elapsed();
        self.log_sink.record(&trace.log);
        if let Some(metrics) = &self.metrics {
            metrics.record(&trace.log);
        }
        response
    }

    /// Turns the pipeline's outcome into the HTTP response, noting it in the trace.
    fn respond(
        &self,
        outcome: Result<Answer, ApiError>,
        trace: &mut Trace,
        request_id: &str,
    ) -> Response<ResponseBody> {
        match outcome {
            Ok(Answer::Preflight(headers)) => {
                let mut answer = empty_response(StatusCode::NO_CONTENT, request_id);
                answer.headers_mut().extend(headers);
                answer
            }
            Ok(Answer::Json(answer)) => {
                let body = serde_json::to_vec(&answer.body).unwrap_or_default();
                response(answer.status, "application/json", body, request_id)
            }
            Ok(Answer::Client(reply)) => {
                if let Some(principal) = &reply.principal {
                    trace.record_principal(principal);
                }
                match reply.body {
                    Some(body) => {
                        let body = serde_json::to_vec(&body).unwrap_or_default();
                        response(reply.status, "application/json", body, request_id)
                    }
                    None => empty_response(reply.status, request_id),
                }
            }
            Ok(Answer::Data(reply)) => {
                let status = if reply.is_insert() {
                    self.insert_status
                } else {
                    StatusCode::OK
                };
                let documents = reply.document_count();
                match reply.render(trace.format, self.limits.max_response_bytes) {
                    Ok(body) => {
                        trace.log.documents = Some(documents);
                        response(status, trace.format.content_type(), body, request_id)
                    }
                    Err(error) => self.respond(Err(error), trace, request_id),
                }
            }
            Err(error) => {
                trace.log.error_code = Some(error.code().as_str());
                trace.log.error = Some(error.message().to_owned());
                let link = format!("{}?co_id={request_id}", self.error_link_base);
                error_response(&error, &link, request_id)
            }
        }
    }

    /// The pipeline: route → authenticate (from the head) → take a
    /// concurrency slot → read the body (size and time limits) → validate →
    /// decode → authorize (access level, then rules: the request is
    /// rewritten, a guard strips unreadable fields from the reply, inserts
    /// are checked against the collection's schema, and updates get the
    /// checks their backend runs atomically with the write) → execute.
    /// Client API requests (login, sessions) read their body, then take a
    /// slot and leave the pipeline.
    async fn run<B>(
        &self,
        request: Request<B>,
        started: Instant,
        trace: &mut Trace,
    ) -> Result<Answer, ApiError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = request.into_parts();
        if let Some(cors) = &self.cors {
            if let CorsCheck::Preflight(headers) = cors.check(&parts.method, &parts.headers)? {
                // Only the service's own routes are preflighted; others are 404s below.
                if Route::recognize(parts.uri.path()).is_some() {
                    return Ok(Answer::Preflight(headers));
                }
            }
        }
        let target = self.route(&parts)?;
        trace.log.action = Some(target.name());
        let deadline = started.checked_add(self.limits.request_timeout);
        let work = Box::pin(async {
            let action = match target {
                Target::Action(action) => action,
                Target::Probe(probe) => return Ok(Answer::Json(self.probe(probe).await)),
                Target::OpenApi(version) => {
                    return Ok(Answer::Json(ProbeAnswer {
                        status: StatusCode::OK,
                        body: self.openapi(version),
                    }))
                }
                Target::Client(route) => {
                    // A login's credentials are in its body, so client API
                    // bodies (small) are read before a concurrency slot is
                    // taken: a client trickling one holds no slot.
                    let limit = self.limits.max_body_bytes.min(CLIENT_API_MAX_BODY);
                    check_content_length(&parts.headers, limit)?;
                    let body = read_body(body, limit, self.limits.body_read_timeout).await?;
                    trace.log.request_bytes = Some(body.len() as u64);
                    let email = login_email(route, &body);
                    self.rate_limits.refuse_blocked(&parts, email.as_deref())?;
                    let _permit = self.permit()?;
                    let reply = self
                        .auth
                        .client_api(route, &parts, &body)
                        .await
                        .inspect_err(|err| self.note_auth_failure(err, &parts, email.as_deref()))?;
                    return Ok(Answer::Client(Box::new(reply)));
                }
            };
            check_content_length(&parts.headers, self.limits.max_body_bytes)?;
            // Authentication reads the head only (password checks have their
            // own bounded pool): requests without valid credentials are
            // refused before they take a slot.
            self.rate_limits.refuse_blocked(&parts, None)?;
            let principal = self
                .auth
                .authenticate(&parts)
                .await
                .inspect_err(|err| self.note_auth_failure(err, &parts, None))?;
            trace.record_principal(&principal);
            self.rate_limits.check(&principal)?;
            let _permit = self.permit()?;
            let body = read_body(
                body,
                self.limits.max_body_bytes,
                self.limits.body_read_timeout,
            )
            .await?;
            trace.log.request_bytes = Some(body.len() as u64);
            self.auth.validate_request(&parts, &body)?;
            let mut request = decode(action, parse_body(&body)?, self.find_limits())?;
            trace.record_request(&request);
            refuse_state_database(&request, &self.state_database)?;
            let source = self.data_source(&request.data_source)?;
            let access = self.access_of(&request.data_source, source).await?;
            check_access(access, &request.namespace, &request.command)?;
            let authorization = source.rules.authorize(&principal, &parts, &mut request)?;
            let reply = execute(
                source.backend.as_ref(),
                request,
                authorization.check.as_deref(),
            )
            .await
            .map_err(|err| ApiError::from_backend(err, action.verb()))?;
            authorization.guard.finish(reply).map(Answer::Data)
        });
        // Backends see the deadline; dropping this future (the client left)
        // or the deadline passing marks the request abandoned, so engine
        // work still running for it stops at its next check.
        let context = deadline
            .map_or_else(RequestContext::default, RequestContext::with_deadline)
            .with_response_limit(self.limits.max_response_bytes);
        let abandon = context.abandon_on_drop();
        let outcome = finish_by(context.scope(work), || deadline)
            .await
            .map_err(|TimedOut| ApiError::timeout())?;
        abandon.disarm();
        outcome
    }

    /// Counts a refused credential (401) against the request's address
    /// and email, for the failed-authentication limit.
    fn note_auth_failure(&self, err: &ApiError, parts: &Parts, login_email: Option<&str>) {
        if err.status() == StatusCode::UNAUTHORIZED {
            self.rate_limits.record_failure(parts, login_email);
        }
    }

    /// A concurrency slot, or 429 when all are taken.
    fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::too_many_requests(1))
    }

    /// Answers a health probe (no credentials, no concurrency slot).
    async fn probe(&self, probe: Probe) -> ProbeAnswer {
        match probe {
            Probe::Live => health::live(),
            Probe::Ready => {
                let sources = self
                    .data_sources
                    .iter()
                    .map(|(name, source)| (name.as_str(), source.backend.as_ref()));
                health::ready(sources, self.auth.sessions.store.as_ref()).await
            }
        }
    }

    /// The action a request's URL and method name, or the 404/405 to answer.
    fn route<'a>(&self, parts: &'a Parts) -> Result<Target<'a>, ApiError> {
        let (app_id, version, action) = match Route::recognize(parts.uri.path()) {
            Some(Route::Action {
                app_id,
                version,
                action,
            }) => (app_id, version, action),
            Some(Route::Client(route)) => return Ok(Target::Client(route)),
            Some(Route::OpenApi { app_id, version }) => {
                return self.openapi_route(parts, app_id, version)
            }
            None => match Probe::at(parts.uri.path()).filter(|_| self.health_endpoints) {
                Some(probe) if parts.method == Method::GET || parts.method == Method::HEAD => {
                    return Ok(Target::Probe(probe))
                }
                Some(_) => return Err(ApiError::method_not_allowed(&parts.method)),
                None => return Err(ApiError::not_found()),
            },
        };
        if app_id != self.app_id {
            return Err(ApiError::app_not_found(app_id));
        }
        let version_enabled = version
            .parse::<Version>()
            .is_ok_and(|version| self.versions.contains(&version));
        let action: Action = match action.parse() {
            Ok(action) if version_enabled => action,
            _ => return Err(ApiError::not_found()),
        };
        if parts.method != Method::POST {
            return Err(ApiError::method_not_allowed(&parts.method));
        }
        Ok(Target::Action(action))
    }

    /// The OpenAPI description of `version` as this service serves it.
    fn openapi(&self, version: Version) -> serde_json::Value {
        let mut data_sources: Vec<&str> = self.data_sources.keys().map(String::as_str).collect();
        data_sources.sort_unstable();
        crate::openapi::document(&crate::openapi::Served {
            app_id: &self.app_id,
            version,
            data_sources,
            insert_status: self.insert_status.as_u16(),
            auth: &self.auth,
        })
    }

    /// The version whose OpenAPI document a GET asks for, or the 404/405.
    fn openapi_route<'a>(
        &self,
        parts: &Parts,
        app_id: &str,
        version: &str,
    ) -> Result<Target<'a>, ApiError> {
        if app_id != self.app_id {
            return Err(ApiError::app_not_found(app_id));
        }
        let version = version
            .parse::<Version>()
            .ok()
            .filter(|version| self.versions.contains(version))
            .ok_or_else(ApiError::not_found)?;
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return Err(ApiError::method_not_allowed(&parts.method));
        }
        Ok(Target::OpenApi(version))
    }

    fn data_source(&self, name: &str) -> Result<&DataSource, ApiError> {
        self.data_sources
            .get(name)
            .ok_or_else(|| source_not_found(name))
    }

    /// The access level data source `name` has now: the run-time setting
    /// (state database) over the configured one. A switched-off source is
    /// answered as missing; when the settings cannot be read and none were
    /// read before, the request is refused (503) rather than run with a
    /// level that may have been lowered.
    async fn access_of(&self, name: &str, source: &DataSource) -> Result<AccessLevel, ApiError> {
        let Some(settings) = &self.source_settings else {
            return Ok(source.access);
        };
        let setting = settings.get(name).await.map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ServiceUnavailable,
                "the data source settings cannot be read now; retry later",
            )
        })?;
        if setting.disabled {
            return Err(source_not_found(name));
        }
        Ok(setting.access.unwrap_or(source.access))
    }

    fn find_limits(&self) -> FindLimits {
        FindLimits {
            default: self.limits.default_find_limit,
            max: self.limits.max_find_limit,
        }
    }

    fn response_format(&self, headers: &http::HeaderMap) -> Format {
        headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|accept| accept.to_str().ok())
            .find_map(Format::from_accept)
            .unwrap_or(self.default_format)
    }
}

/// The answer for a data source that is not configured or switched off.
fn source_not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::ServiceNotFound,
        format!("The data source '{name}' is disabled or does not exist"),
    )
}

/// The `username` of a password login's body, for the failed-login brake.
fn login_email(route: ClientRoute<'_>, body: &[u8]) -> Option<String> {
    let ClientRoute::Login { provider, .. } = route else {
        return None;
    };
    if provider != crate::auth::LOCAL_USERPASS {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    body.get("username")?.as_str().map(str::to_owned)
}

impl Trace {
    fn record_principal(&mut self, principal: &Principal) {
        self.log.auth_scheme = Some(principal.provider.clone());
        self.log.principal_id = Some(principal.id.clone());
        self.log.principal_name = principal.name.clone();
    }

    fn record_request(&mut self, request: &ActionRequest) {
        self.log.data_source = Some(request.data_source.clone());
        self.log.database = Some(request.namespace.database.clone());
        self.log.collection = Some(request.namespace.collection.clone());
    }
}

#[cfg(test)]
pub(crate) mod tests;
