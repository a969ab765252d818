//! [`DataApi::builder()`]: configure a Data API once, validate it, get a
//! [`DataApiService`] or a [`DataApiLayer`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::sync::Semaphore;

use crate::auth::{
    AuthSettings, Authenticator, JwtProvider, KeyStore, MemoryUserStore, RequestValidation, RunAs,
    RunAsMode, Secret, SessionSettings, SessionStore, UserDirectory, UserStore,
};
use crate::backend::Backend;
use crate::cors::{AllowedOrigins, Cors};
use crate::layer::DataApiLayer;
use crate::log::{LogSink, TracingLogSink};
use crate::metrics::Metrics;
use crate::protocol::Format;
use crate::rate_limit::{RateLimit, RateLimitSettings, RateLimits, DEFAULT_FAILED_AUTH_LIMIT};
use crate::route::Version;
use crate::rules::{AccessLevel, Enforcer, Functions, Rules};
use crate::service::{DataApiService, DataSource, Inner};
use crate::Limits;

/// Compiles rules with the embedded engine.
#[cfg(feature = "memory")]
fn compile_rules(rules: &Rules, functions: &Functions) -> Result<Enforcer, String> {
    crate::rules::compile(rules, functions.clone())
}

/// Without the embedded engine, rules cannot be evaluated: refuse them.
#[cfg(not(feature = "memory"))]
fn compile_rules(_rules: &Rules, _functions: &Functions) -> Result<Enforcer, String> {
    Err("rules need the `memory` feature (the embedded query engine evaluates them)".into())
}

/// Entry point: `DataApi::builder()`.
///
/// ```
/// use tower_data_api::{DataApi, MemoryBackend};
///
/// let service = DataApi::builder()
///     .app_id("data-abcde")
///     .data_source("mongodb-atlas", MemoryBackend::new())
///     .api_key("ci", "a-long-random-key")
///     .build()
///     .expect("valid configuration");
/// # let _ = service;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DataApi;

impl DataApi {
    /// A builder with the original service's defaults: app id `data-local`,
    /// versions `beta` and `v1`, JSON responses, the limits of [`Limits::default`].
    pub fn builder() -> DataApiBuilder {
        DataApiBuilder::default()
    }
}

/// The configuration is not usable; the message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// Configures a Data API. Every setter takes and returns the builder;
/// [`build`](Self::build) checks the whole configuration.
#[must_use = "a builder does nothing until `build` is called"]
pub struct DataApiBuilder {
    app_id: String,
    versions: Vec<Version>,
    default_format: Format,
    data_sources: Vec<(String, Arc<dyn Backend>, AccessLevel)>,
    /// Keys, users, JWT, sessions, run-as, request validation: `auth`
    /// assembles them into the credential chain.
    auth: AuthSettings,
    limits: Limits,
    log_sink: Arc<dyn LogSink>,
    insert_status: StatusCode,
    error_link_base: Option<String>,
    cors: Option<AllowedOrigins>,
    health_endpoints: bool,
    metrics: Option<Metrics>,
    rate_limits: RateLimitSettings,
    state_database: String,
    source_settings: Option<crate::state::BackendSourceSettings>,
    #[cfg(feature = "console")]
    console: Option<crate::console::Console>,
    cors_credential_headers: bool,
    rules: Vec<(String, Rules)>,
    rule_functions: Functions,
}

impl Default for DataApiBuilder {
    fn default() -> Self {
        Self {
            app_id: "data-local".to_owned(),
            versions: vec![Version::Beta, Version::V1],
            default_format: Format::Json,
            data_sources: Vec::new(),
            auth: AuthSettings::default(),
            limits: Limits::default(),
            log_sink: Arc::new(TracingLogSink),
            insert_status: StatusCode::CREATED,
            error_link_base: None,
            cors: None,
            health_endpoints: false,
            metrics: None,
            rate_limits: RateLimitSettings::default(),
            state_database: crate::state::DEFAULT_STATE_DATABASE.to_owned(),
            source_settings: None,
            #[cfg(feature = "console")]
            console: None,
            cors_credential_headers: false,
            rules: Vec::new(),
            rule_functions: Functions::default(),
        }
    }
}

impl fmt::Debug for DataApiBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataApiBuilder")
            .field("app_id", &self.app_id)
            .field("versions", &self.versions)
            .field("default_format", &self.default_format)
            .field(
                "data_sources",
                &self
                    .data_sources
                    .iter()
                    .map(|(name, _, access)| (name, access))
                    .collect::<Vec<_>>(),
            )
            .field("keys", &self.auth.keys)
            .field("users", &self.auth.users)
            .field("custom_jwt", &self.auth.jwt)
            .field("authenticators", &self.auth.authenticators.len())
            .field("sessions", &self.auth.sessions)
            .field("anonymous", &self.auth.anonymous)
            .field("run_as", &self.auth.run_as)
            .field("validation", &self.auth.validation)
            .field("limits", &self.limits)
            .field(
                "rules",
                &self.rules.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("rule_functions", &self.rule_functions)
            .finish_non_exhaustive()
    }
}

impl DataApiBuilder {
    /// The client app id in URLs (`/app/<app_id>/endpoint/data/...`).
    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = app_id.into();
        self
    }

    /// The URL versions served (default both `beta` and `v1`).
    pub fn versions(mut self, versions: impl IntoIterator<Item = Version>) -> Self {
        self.versions = versions.into_iter().collect();
        self
    }

    /// The response format when `Accept` names neither JSON nor EJSON (default JSON).
    pub fn default_format(mut self, format: Format) -> Self {
        self.default_format = format;
        self
    }

    /// Adds a read-write data source, the name clients send as `dataSource`.
    pub fn data_source(self, name: impl Into<String>, backend: impl Backend) -> Self {
        self.data_source_with_access(name, Arc::new(backend), AccessLevel::ReadWrite)
    }

    /// Adds a data source with an access level; takes a shared backend so one
    /// backend can serve under several names.
    pub fn data_source_with_access(
        mut self,
        name: impl Into<String>,
        backend: Arc<dyn Backend>,
        access: AccessLevel,
    ) -> Self {
        self.data_sources.push((name.into(), backend, access));
        self
    }

    /// Enforces App Services-style [`Rules`] on data source `data_source`
    /// for every non-system principal (feature `memory`: the embedded query
    /// engine evaluates them). The data source's access level still applies
    /// first. Without rules a data source has its access level only.
    ///
    /// ```
    /// use tower_data_api::rules::{Rule, Rules};
    /// use tower_data_api::{DataApi, MemoryBackend};
    ///
    /// let service = DataApi::builder()
    ///     .data_source("mongodb-atlas", MemoryBackend::new())
    ///     .rules("mongodb-atlas", Rules::new().default_rule(Rule::owner("owner_id")))
    ///     .api_key("ci", "a-long-random-key")
    ///     .build()
    ///     .expect("valid rules");
    /// # let _ = service;
    /// ```
    pub fn rules(mut self, data_source: impl Into<String>, rules: Rules) -> Self {
        self.rules.push((data_source.into(), rules));
        self
    }

    /// Registers a `%function` rule expressions call as
    /// `{"%function": {"name": "<name>", "arguments": [...]}}`.
    ///
    /// ```
    /// use bson::Bson;
    /// use tower_data_api::DataApi;
    ///
    /// let builder = DataApi::builder().rule_function("isWeekday", |_call| Bson::Boolean(true));
    /// # let _ = builder;
    /// ```
    pub fn rule_function(
        mut self,
        name: impl Into<String>,
        function: impl Fn(&crate::rules::FunctionCall<'_>) -> bson::Bson + Send + Sync + 'static,
    ) -> Self {
        self.rule_functions = self.rule_functions.with(name, function);
        self
    }

    /// Accepts the API key `key`, logged under `name`. Only its SHA-256 digest is kept.
    pub fn api_key(mut self, name: impl Into<String>, key: impl Into<Secret>) -> Self {
        let key = key.into();
        let name = name.into();
        if key.expose().is_empty() {
            self.auth
                .key_errors
                .push(format!("API key '{name}' is empty"));
        } else {
            self.auth.keys = self.auth.keys.with_key(name, key.expose());
        }
        self
    }

    /// Accepts the API key whose hex SHA-256 digest is `hex_digest`.
    pub fn api_key_sha256(mut self, name: impl Into<String>, hex_digest: &str) -> Self {
        let name = name.into();
        match self
            .auth
            .keys
            .clone()
            .with_key_sha256(name.clone(), hex_digest)
        {
            Ok(keys) => self.auth.keys = keys,
            Err(err) => self
                .auth
                .key_errors
                .push(format!("API key '{name}': {err}")),
        }
        self
    }

    /// Looks API keys up in your own store (after the keys added with
    /// [`api_key`](Self::api_key), if any).
    pub fn key_store(mut self, store: impl KeyStore) -> Self {
        self.auth.key_store = Some(Arc::new(store));
        self
    }

    /// Adds an email/password user (provider `local-userpass`); only an
    /// argon2id hash of the password is kept.
    pub fn user(mut self, email: &str, password: impl Into<Secret>) -> Self {
        let users = self.auth.users.get_or_insert_with(MemoryUserStore::new);
        if let Err(err) = users.add_user(email, password) {
            self.auth.user_errors.push(format!("user '{email}': {err}"));
        }
        self
    }

    /// Adds an email/password user by the argon2 PHC hash of the password
    /// (see [`hash_password`](crate::auth::hash_password)).
    pub fn user_password_hash(mut self, email: &str, phc_hash: &str) -> Self {
        let users = self.auth.users.get_or_insert_with(MemoryUserStore::new);
        if let Err(err) = users.add_user_with_hash(email, phc_hash) {
            self.auth.user_errors.push(err.to_string());
        }
        self
    }

    /// Checks email/password credentials with your own store (after the
    /// users added with [`user`](Self::user), if any). A [`MemoryUserStore`]
    /// handle kept by the application can add users and change passwords
    /// while the service runs.
    pub fn user_store(mut self, store: impl UserStore) -> Self {
        self.auth.user_store = Some(Arc::new(store));
        self
    }

    /// Accepts custom JWTs (`jwtTokenString` header, `custom-token` login).
    pub fn custom_jwt(mut self, provider: JwtProvider) -> Self {
        self.auth.jwt = Some(provider);
        self
    }

    /// Gives custom-token and anonymous users a server-issued 24-hex id of
    /// their own, kept in `directory`, as App Services does: `%%user.id` is
    /// then that id and `%%user.identities[0].id` the JWT `sub`. Without a
    /// directory (the default), `%%user.id` is the provider's id as it comes:
    /// the JWT `sub`, or a fresh id per anonymous login.
    /// [`StateStores::install`](crate::state::StateStores::install) sets the
    /// state database's directory.
    ///
    /// ```
    /// use tower_data_api::auth::MemoryUserDirectory;
    /// use tower_data_api::DataApi;
    /// let builder = DataApi::builder().user_directory(MemoryUserDirectory::new());
    /// ```
    pub fn user_directory(mut self, directory: impl UserDirectory) -> Self {
        self.auth.directory = Some(Arc::new(directory));
        self
    }

    /// Adds your own [`Authenticator`]; authenticators run in the order they
    /// were added, after the bearer-token check and before the built-in
    /// credential headers.
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.auth.authenticators.push(Arc::new(authenticator));
        self
    }

    /// How bearer sessions are signed and how long their tokens live.
    pub fn session_settings(mut self, settings: SessionSettings) -> Self {
        self.auth.sessions = settings;
        self
    }

    /// Adds a session signing key (see [`SessionSettings::signing_key`]).
    pub fn signing_key(mut self, kid: impl Into<String>, key: impl Into<Secret>) -> Self {
        self.auth.sessions = self.auth.sessions.signing_key(kid, key);
        self
    }

    /// Where refresh sessions are kept (default: in memory, per process).
    pub fn session_store(mut self, store: impl SessionStore) -> Self {
        self.auth.session_store = Some(Arc::new(store));
        self
    }

    /// Lets anyone create an email/password user through App Services'
    /// `POST .../auth/providers/local-userpass/register` (what realm-web's
    /// `emailPasswordAuth.registerUser` calls); default off, when that path
    /// answers 404. Users are confirmed at once (the only mode for now) and
    /// kept in the user store ([`user_store`](Self::user_store) or the
    /// [`user`](Self::user) list), which must support
    /// [`UserStore::register`].
    pub fn user_registration(mut self, enabled: bool) -> Self {
        self.auth.registration = enabled;
        self
    }

    /// Enables the `anon-user` login provider (default off).
    pub fn anonymous_users(mut self, enabled: bool) -> Self {
        self.auth.anonymous = enabled;
        self
    }

    /// Requests without credentials run as this user or as the system user
    /// instead of failing with 400 (spec §5.4).
    pub fn run_as(mut self, run_as: RunAs) -> Self {
        self.auth.run_as = Some(RunAsMode::Fixed(run_as));
        self
    }

    /// Requests without credentials run as the user `choose` picks from the
    /// request head — the Rust counterpart of `run_as_user_id_script_source`.
    ///
    /// ```
    /// use tower_data_api::{auth::RunAs, DataApi, MemoryBackend};
    /// let service = DataApi::builder()
    ///     .data_source("mongodb-atlas", MemoryBackend::new())
    ///     .run_as_fn(|parts| match parts.headers.get("x-tenant") {
    ///         Some(_) => RunAs::User("tenant-user".into()),
    ///         None => RunAs::Nobody,
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # let _ = service;
    /// ```
    pub fn run_as_fn(
        mut self,
        choose: impl Fn(&http::request::Parts) -> RunAs + Send + Sync + 'static,
    ) -> Self {
        self.auth.run_as = Some(RunAsMode::Function(Arc::new(choose)));
        self
    }

    /// What requests must prove after authentication (spec §5.5): a
    /// `?secret=` parameter or an `Endpoint-Signature` (default none).
    pub fn request_validation(mut self, validation: RequestValidation) -> Self {
        self.auth.validation = validation;
        self
    }

    /// The public base URL of the mount point (e.g. `https://api.example.com/data`),
    /// answered as `hostname` by `GET /api/client/v2.0/app/<id>/location`.
    /// Default: `http://` plus the request's `Host`.
    pub fn client_base_url(mut self, url: impl Into<String>) -> Self {
        self.auth.location.base_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Replaces all limits at once.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Largest accepted request body in bytes (default 18 MiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_body_bytes = bytes;
        self
    }

    /// Requests handled at once before answering 429 (default 10,000).
    pub fn max_concurrent_requests(mut self, requests: usize) -> Self {
        self.limits.max_concurrent_requests = requests;
        self
    }

    /// Deadline for one request before answering 504 (default 90 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.limits.request_timeout = timeout;
        self
    }

    /// Time a request body may take to arrive before answering 408 (default 30 s).
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.body_read_timeout = timeout;
        self
    }

    /// Largest encoded response before answering 400
    /// `ReadSizeLimitExceeded` (default 16 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_response_bytes = bytes;
        self
    }

    /// Password checks running at once before answering 429 (default: the
    /// number of cores).
    pub fn max_concurrent_password_checks(mut self, checks: usize) -> Self {
        self.limits.max_concurrent_password_checks = checks;
        self
    }

    /// Where request logs go (default [`TracingLogSink`]).
    pub fn log_sink(mut self, sink: impl LogSink) -> Self {
        self.log_sink = Arc::new(sink);
        self
    }

    /// The status of successful `insertOne`/`insertMany` answers: 201 (the
    /// default, as the original service answered) or 200 (as its OpenAPI
    /// document claims).
    pub fn insert_status(mut self, status: StatusCode) -> Self {
        self.insert_status = status;
        self
    }

    /// Lets browsers call the service from `origins` (CORS): preflights for the
    /// service's routes are answered, answers carry
    /// `Access-Control-Allow-Origin`, and requests from other origins get 403.
    /// Off by default.
    ///
    /// ```
    /// use tower_data_api::{AllowedOrigins, DataApi, MemoryBackend};
    /// let service = DataApi::builder()
    ///     .data_source("mongodb-atlas", MemoryBackend::new())
    ///     .api_key("ci", "key")
    ///     .cors(AllowedOrigins::List(vec!["https://app.example.com".into()]))
    ///     .build();
    /// assert!(service.is_ok());
    /// ```
    pub fn cors(mut self, origins: AllowedOrigins) -> Self {
        self.cors = Some(origins);
        self
    }

    /// Whether the service answers the health probes under its mount point:
    /// `GET /health` (liveness: 200 without credentials or backend calls)
    /// and `GET /ready` (readiness: 200 when every data source and the
    /// session store answer within 2 s, 503 naming the one that did not).
    /// Off by default, so an application behind a
    /// [`DataApiLayer`](crate::DataApiLayer) keeps its own `/health`; the
    /// TOML configuration (and so the standalone server) turns them on
    /// unless `health_endpoints = false`.
    ///
    /// ```
    /// use tower_data_api::{DataApi, MemoryBackend};
    /// let service = DataApi::builder()
    ///     .data_source("mongodb-atlas", MemoryBackend::new())
    ///     .api_key("ci", "key")
    ///     .health_endpoints(true)
    ///     .build()
    ///     .unwrap();
    /// assert!(service.handles_path("/health"));
    /// ```
    pub fn health_endpoints(mut self, enabled: bool) -> Self {
        self.health_endpoints = enabled;
        self
    }

    /// Counts every request in `metrics` (off by default). Keep a clone to
    /// expose them: [`Metrics::encode`] for a `/metrics` endpoint, or
    /// [`Metrics::register`] into the application's own registry.
    ///
    /// ```
    /// use tower_data_api::{metrics::Metrics, DataApi, MemoryBackend};
    /// let metrics = Metrics::new();
    /// let service = DataApi::builder()
    ///     .data_source("mongodb-atlas", MemoryBackend::new())
    ///     .api_key("ci", "key")
    ///     .metrics(metrics.clone())
    ///     .build();
    /// assert!(service.is_ok());
    /// ```
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// A token bucket for every API key and user (off by default): past it,
    /// 429 `TooManyRequests` with `Retry-After`. Keys and users named in
    /// [`rate_limit_for`](Self::rate_limit_for) use their own bucket instead.
    ///
    /// ```
    /// use tower_data_api::{DataApi, MemoryBackend, RateLimit};
    /// let service = DataApi::builder()
    ///     .data_source("mongodb-atlas", MemoryBackend::new())
    ///     .api_key("ci", "key")
    ///     .rate_limit(RateLimit::per_second(50.0).burst(100))
    ///     .rate_limit_for("ci", RateLimit::per_second(500.0))
    ///     .build();
    /// assert!(service.is_ok());
    /// ```
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limits.default = Some(limit);
        self
    }

    /// The bucket of the API key or user called `name` (the key's name, the
    /// user's email), instead of [`rate_limit`](Self::rate_limit)'s.
    pub fn rate_limit_for(mut self, name: impl Into<String>, limit: RateLimit) -> Self {
        self.rate_limits.by_name.push((name.into(), limit));
        self
    }

    /// Slows brute force (off by default): each refused credential takes a
    /// token from its client address's bucket and, for email/password
    /// headers, from the email's; a failure that finds its bucket empty
    /// blocks the address or email, and requests with credentials from it
    /// get 429 until a token returns. `None` takes the default policy: 20
    /// failures at once, then one every 3 s.
    /// See the policy in the crate's README (Operations).
    pub fn failed_auth_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limits.failed_auth = Some(limit.unwrap_or(DEFAULT_FAILED_AUTH_LIMIT));
        self
    }

    /// The name of the state database (default `__data_api`): where
    /// [`state`](crate::state) stores keep the service's own state, and a
    /// name no request may use, as its `database` or in a pipeline (403).
    pub fn state_database(mut self, name: impl Into<String>) -> Self {
        self.state_database = name.into();
        self
    }

    /// Data sources' access levels and on/off switches changed at run time
    /// (the console's Data sources page), read from the state database:
    /// they replace the configured access level within
    /// [`SOURCE_SETTINGS_TTL`](crate::state::SOURCE_SETTINGS_TTL) on every
    /// instance. [`StateStores::install`](crate::state::StateStores::install)
    /// sets them.
    pub fn source_settings(mut self, settings: crate::state::BackendSourceSettings) -> Self {
        self.source_settings = Some(settings);
        self
    }

    /// Serves the admin [`Console`](crate::console::Console) under
    /// `<mount>/console/` (feature `console`). Setting one also points the
    /// error `link` at its Logs page unless
    /// [`error_link_base`](Self::error_link_base) is set.
    #[cfg(feature = "console")]
    pub fn console(mut self, console: crate::console::Console) -> Self {
        self.console = Some(console);
        self
    }

    /// Lets preflights from the [`cors`](Self::cors) origins allow the
    /// credential headers too (`apiKey`, `api-key`, `email`, `password`,
    /// `jwtTokenString`), so a page can send an API key or a password with
    /// every request. Off by default: a secret in a page is readable by anyone
    /// who loads it, and browsers should log in and send bearer tokens. Other
    /// headers a client asks for (e.g. `x-realm-op-name`) are always allowed.
    /// [`build`](Self::build) refuses this without any allowed origin.
    ///
    /// ```
    /// use tower_data_api::{AllowedOrigins, DataApi, MemoryBackend};
    /// let service = DataApi::builder()
    ///     .data_source("mongodb-atlas", MemoryBackend::new())
    ///     .api_key("ci", "key")
    ///     .cors(AllowedOrigins::List(vec!["https://admin.example.com".into()]))
    ///     .cors_allow_credential_headers(true)
    ///     .build();
    /// assert!(service.is_ok());
    /// ```
    pub fn cors_allow_credential_headers(mut self, allow: bool) -> Self {
        self.cors_credential_headers = allow;
        self
    }

    /// The base of the `link` in error bodies; the request id is appended as
    /// `?co_id=<id>`. Point it at your log viewer. Default `/logs`.
    pub fn error_link_base(mut self, base: impl Into<String>) -> Self {
        self.error_link_base = Some(base.into());
        self
    }

    /// Checks the configuration and builds the service.
    pub fn build(self) -> Result<DataApiService, BuildError> {
        check_app_id(&self.app_id)?;
        let error_link_base = self.link_base();
        if self.versions.is_empty() {
            return Err(BuildError(
                "enable at least one version (beta or v1)".into(),
            ));
        }
        self.auth.validate().map_err(BuildError)?;
        let data_sources = data_sources(self.data_sources, &self.rules, &self.rule_functions)?;
        self.limits.validate().map_err(BuildError)?;
        let rate_limits = RateLimits::new(&self.rate_limits).map_err(BuildError)?;
        if !self.insert_status.is_success() {
            return Err(BuildError(format!(
                "insert status {} is not a success status",
                self.insert_status
            )));
        }
        if self.cors_credential_headers {
            match &self.cors {
                None => {
                    return Err(BuildError(
                        "cors_allow_credential_headers needs allowed origins: configure cors too"
                            .into(),
                    ))
                }
                Some(AllowedOrigins::List(list)) if list.is_empty() => {
                    return Err(BuildError(
                        "cors_allow_credential_headers needs at least one allowed origin".into(),
                    ))
                }
                Some(_) => {}
            }
        }
        let auth = self
            .auth
            .assemble(&self.app_id, self.limits.max_concurrent_password_checks)
            .map_err(BuildError)?;
        Ok(DataApiService::from_inner(Inner {
            app_id: self.app_id,
            versions: self.versions,
            default_format: self.default_format,
            data_sources,
            auth,
            permits: Arc::new(Semaphore::new(self.limits.max_concurrent_requests)),
            limits: self.limits,
            log_sink: self.log_sink,
            insert_status: self.insert_status,
            error_link_base,
            cors: self
                .cors
                .map(|origins| Cors::new(origins, self.cors_credential_headers)),
            health_endpoints: self.health_endpoints,
            metrics: self.metrics,
            rate_limits,
            state_database: self.state_database,
            source_settings: self.source_settings,
            #[cfg(feature = "console")]
            console: self.console,
        }))
    }

    /// The error links' base: as set, else the console's Logs page, else `/logs`.
    fn link_base(&self) -> String {
        if let Some(base) = &self.error_link_base {
            return base.clone();
        }
        #[cfg(feature = "console")]
        if let Some(console) = &self.console {
            return console.logs_url();
        }
        "/logs".to_owned()
    }

    /// Checks the configuration and builds a layer that serves the Data API
    /// routes and passes every other request to the service it wraps.
    pub fn build_layer(self) -> Result<DataApiLayer, BuildError> {
        self.build().map(DataApiLayer::new)
    }
}

/// The app id is non-empty and URL-safe.
fn check_app_id(app_id: &str) -> Result<(), BuildError> {
    if app_id.is_empty()
        || !app_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(BuildError(format!(
            "app id '{app_id}' must be non-empty and use only letters, digits, '-' and '_'"
        )));
    }
    Ok(())
}

/// The data sources by name, each with its compiled rules: at least one,
/// named, none twice, and rules only for configured data sources.
fn data_sources(
    configured: Vec<(String, Arc<dyn Backend>, AccessLevel)>,
    rules: &[(String, Rules)],
    functions: &Functions,
) -> Result<HashMap<String, DataSource>, BuildError> {
    let fail = |message: String| Err(BuildError(message));
    if configured.is_empty() {
        return fail("add at least one data source".into());
    }
    let mut enforcers: HashMap<String, Enforcer> = HashMap::new();
    for (name, rules) in rules {
        if !configured.iter().any(|(source, _, _)| source == name) {
            return fail(format!(
                "rules for data source '{name}', which is not configured"
            ));
        }
        let enforcer = compile_rules(rules, functions)
            .map_err(|e| BuildError(format!("data source '{name}': {e}")))?;
        if enforcers.insert(name.clone(), enforcer).is_some() {
            return fail(format!(
                "rules for data source '{name}' are configured twice"
            ));
        }
    }
    let mut data_sources = HashMap::new();
    for (name, backend, access) in configured {
        if name.is_empty() {
            return fail("a data source name must not be empty".into());
        }
        let rules = enforcers.remove(&name).unwrap_or_default();
        if data_sources
            .insert(
                name.clone(),
                DataSource {
                    backend,
                    access,
                    rules,
                },
            )
            .is_some()
        {
            return fail(format!("data source '{name}' is configured twice"));
        }
    }
    Ok(data_sources)
}
