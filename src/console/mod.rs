//! The admin console (feature `console`): server-rendered pages under
//! `<mount>/console/`, served by the same [`DataApiService`](crate::DataApiService),
//! over the [`state`](crate::state) stores.
//!
//! Pages: Overview, Data sources (access level and on/off at run time),
//! API keys (a new key is shown once), Users, Logs (30 days, filters,
//! one request by its id: the page an error's `link` points to) and Usage
//! (SVG charts drawn server-side). Every action is a plain HTML form; the
//! one script (`static/console.js`) only adds copy buttons.
//!
//! Who may enter: users of the user store whose email
//! [`ConsoleConfig`] names as administrators, after a password login.
//! The session is a random id in an `HttpOnly; SameSite=Strict` cookie
//! (`Secure` over TLS), kept server-side as its SHA-256 digest in the state
//! database; every form carries the session's CSRF token; failed logins
//! are rate-limited per address and per email; responses carry a strict
//! Content-Security-Policy and `Cache-Control: no-store`. Data API
//! credentials (keys, bearer tokens) open nothing here.
//!
//! Links inside the console are relative, so it works wherever the service
//! is mounted; only the error `link` and the Overview's base URLs need the
//! public URL ([`ConsoleConfig::public_url`]) when the mount is not `/`.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower_data_api::console::{Console, ConsoleConfig};
//! use tower_data_api::state::StateStores;
//! use tower_data_api::{DataApi, MemoryBackend};
//!
//! let state = StateStores::open(Arc::new(MemoryBackend::new()), "__data_api", Duration::from_secs(30 * 86_400))
//!     .await
//!     .unwrap();
//! let console = Console::new(&state, ConsoleConfig::new(["ops@example.com"]));
//! let service = state
//!     .install(DataApi::builder().data_source("mongodb-atlas", MemoryBackend::new()))
//!     .console(console)
//!     .build();
//! assert!(service.is_ok());
//! # });
//! ```

mod charts;
mod csrf;
mod http;
mod pages;
mod session;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::http::{Method, Request, Response};
use http_body::Body;

use crate::protocol::ResponseBody;
use crate::rate_limit::{RateLimitSettings, RateLimits, DEFAULT_FAILED_AUTH_LIMIT};
use crate::service::Inner;
use crate::state::StateStores;
use crate::RateLimit;

use self::http::{Failure, Reply};
use self::session::{Session, Sessions};

/// Who may enter the console, and how its cookie and links are made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConsoleConfig {
    /// Emails of the users who may log in (compared case-insensitively).
    pub admins: Vec<String>,
    /// Whether the session cookie is `Secure`: `None` (default) sets it
    /// when the request came over TLS (an `https` URI or
    /// `X-Forwarded-Proto: https`).
    pub secure_cookie: Option<bool>,
    /// The public URL of the service's mount point (`https://api.example.com/data`),
    /// for the error `link` and the Overview's base URLs. `None`: the mount
    /// is `/` on the host the browser used.
    pub public_url: Option<String>,
    /// How long a console login lasts (default 8 hours).
    pub session_lifetime: Duration,
    /// The failed-login brake: per address and per email (default 20
    /// failures at once, then one every 3 s).
    pub failed_login_limit: RateLimit,
}

impl ConsoleConfig {
    /// A console these emails may log in to.
    pub fn new<S: Into<String>>(admins: impl IntoIterator<Item = S>) -> Self {
        Self {
            admins: admins
                .into_iter()
                .map(|email| email.into().trim().to_ascii_lowercase())
                .collect(),
            secure_cookie: None,
            public_url: None,
            session_lifetime: Duration::from_secs(8 * 3600),
            failed_login_limit: DEFAULT_FAILED_AUTH_LIMIT,
        }
    }

    /// Sets [`public_url`](Self::public_url).
    #[must_use]
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Sets [`secure_cookie`](Self::secure_cookie).
    #[must_use]
    pub fn secure_cookie(mut self, secure: bool) -> Self {
        self.secure_cookie = Some(secure);
        self
    }

    /// Sets [`session_lifetime`](Self::session_lifetime).
    #[must_use]
    pub fn session_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_lifetime = lifetime;
        self
    }

    /// Sets [`failed_login_limit`](Self::failed_login_limit).
    #[must_use]
    pub fn failed_login_limit(mut self, limit: RateLimit) -> Self {
        self.failed_login_limit = limit;
        self
    }

    fn is_admin(&self, email: &str) -> bool {
        self.admins
            .iter()
            .any(|admin| admin.eq_ignore_ascii_case(email))
    }
}

/// The admin console: give it to
/// [`DataApiBuilder::console`](crate::DataApiBuilder::console). Cheap to clone.
#[derive(Clone)]
pub struct Console {
    inner: Arc<ConsoleInner>,
}

struct ConsoleInner {
    config: ConsoleConfig,
    state: StateStores,
    sessions: Sessions,
    failed_logins: RateLimits,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// A console over `state`'s stores. Call
    /// [`ensure_indexes`](Self::ensure_indexes) once at start-up.
    pub fn new(state: &StateStores, config: ConsoleConfig) -> Self {
        let settings = RateLimitSettings {
            failed_auth: Some(config.failed_login_limit),
            ..RateLimitSettings::default()
        };
        let failed_logins = RateLimits::new(&settings).unwrap_or_else(|_| {
            let default = RateLimitSettings {
                failed_auth: Some(DEFAULT_FAILED_AUTH_LIMIT),
                ..RateLimitSettings::default()
            };
            RateLimits::new(&default).expect("the default failed-login limit is valid")
        });
        Self {
            inner: Arc::new(ConsoleInner {
                sessions: Sessions::new(state.backend().clone(), &state.database),
                state: state.clone(),
                config,
                failed_logins,
            }),
        }
    }

    /// Creates the index of the console's sessions; call once.
    pub async fn ensure_indexes(&self) -> Result<(), crate::auth::StoreError> {
        self.inner.sessions.ensure_indexes().await
    }

    /// The error `link`'s base: the Logs page.
    pub(crate) fn logs_url(&self) -> String {
        format!(
            "{}/console/logs",
            self.inner.config.public_url.as_deref().unwrap_or("")
        )
    }

    /// Answers a request under `/console`.
    pub(crate) async fn handle<B>(
        &self,
        service: &Inner,
        request: Request<B>,
    ) -> Response<ResponseBody>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = request.into_parts();
        let secure = self.secure(&parts);
        let outcome = self.route(service, &parts, body).await;
        let reply = outcome.unwrap_or_else(|failure| failure.reply());
        reply.into_response(secure)
    }

    fn secure(&self, parts: &::http::request::Parts) -> bool {
        self.inner.config.secure_cookie.unwrap_or_else(|| {
            parts.uri.scheme_str() == Some("https")
                || parts
                    .headers
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.eq_ignore_ascii_case("https"))
        })
    }

    async fn route<B>(
        &self,
        service: &Inner,
        parts: &::http::request::Parts,
        body: B,
    ) -> Result<Reply, Failure>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = parts
            .uri
            .path()
            .strip_prefix("/console")
            .unwrap_or_default();
        let method = &parts.method;
        let is_get = *method == Method::GET || *method == Method::HEAD;
        match path {
            "" => return Ok(Reply::redirect("console/")),
            "/static/console.css" if is_get => return Ok(Reply::asset("text/css", CSS)),
            "/static/console.js" if is_get => {
                return Ok(Reply::asset("text/javascript", JS));
            }
            "/login" if is_get => return Ok(pages::login::form(None)),
            "/login" if *method == Method::POST => {
                let form = http::read_form(service, body).await?;
                return pages::login::submit(self, parts, &form).await;
            }
            _ => {}
        }
        let session = self
            .inner
            .sessions
            .find(parts, &self.inner.state, &self.inner.config)
            .await?;
        let Some(session) = session else {
            return if is_get {
                Ok(Reply::redirect("login"))
            } else {
                Err(Failure::Forbidden("log in to the console first".into()))
            };
        };
        if *method == Method::POST {
            let form = http::read_form(service, body).await?;
            csrf::check(&session, &form)?;
            return self.post(service, &session, parts, &form).await;
        }
        if !is_get {
            return Err(Failure::MethodNotAllowed);
        }
        let query = parts.uri.query().unwrap_or_default();
        let page = pages::Context {
            console: self,
            service,
            session: &session,
            parts,
        };
        match path {
            "/" => pages::overview::page(&page).await,
            "/sources" => pages::sources::page(&page, None).await,
            "/keys" => pages::keys::page(&page, None, None).await,
            "/users" => pages::users::page(&page, None).await,
            "/logs" => pages::logs::page(&page, query).await,
            "/usage" => pages::usage::page(&page, query).await,
            "/usage.svg" => pages::usage::chart(&page, query).await,
            _ => Err(Failure::NotFound),
        }
    }

    async fn post(
        &self,
        service: &Inner,
        session: &Session,
        parts: &::http::request::Parts,
        form: &http::Form,
    ) -> Result<Reply, Failure> {
        let page = pages::Context {
            console: self,
            service,
            session,
            parts,
        };
        let path = parts
            .uri
            .path()
            .strip_prefix("/console")
            .unwrap_or_default();
        match path {
            "/logout" => {
                self.inner.sessions.end(session).await?;
                Ok(Reply::redirect("login").clear_session())
            }
            "/sources" => pages::sources::submit(&page, form).await,
            "/keys" => pages::keys::submit(&page, form).await,
            "/users" => pages::users::submit(&page, form).await,
            _ => Err(Failure::NotFound),
        }
    }
}

/// Whether `path` (relative to the mount point) belongs to the console.
pub(crate) fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// The console's style sheet, served from the binary.
const CSS: &str = include_str!("static/console.css");

/// The console's one script: copy buttons. Progressive: every action works without it.
const JS: &str = include_str!("static/console.js");
