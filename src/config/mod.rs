//! TOML configuration (feature `config`), as the standalone binary reads it.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! app_id = "data-local"
//! default_format = "json"            # or "ejson"
//!
//! [[data_sources]]
//! name = "mongodb-atlas"
//! uri = "memory"                     # or "file:<dir>" (durable embedded engine),
//!                                    # or a mongodb:// or mongodb+srv:// URI
//! # sync = "always"                   # file: sources; or "periodic"
//! access = "read-write"              # "read-only" | "no-access"
//! # App Services-style rules (optional; at most one of the three):
//! # rules_file = "rules.json"         # JSON in the `Rules` shape
//! # rules_dir = "data_sources/mongodb-atlas"   # an App Services export
//! [data_sources.rules.default_rule]
//! roles = [{ name = "owner", document_filters = { read = { owner_id = "%%user.id" }, write = { owner_id = "%%user.id" } }, read = true, write = true }]
//!
//! [state]                            # sessions, keys, users, logs, user ids
//! uri = "file:data"                  # or "memory", or a mongodb:// URI
//! database = "__data_api"
//! log_retention_days = 30
//! user_ids = "issued"                # or "provider": %%user.id is the JWT sub
//!
//! [[api_keys]]
//! name = "ci"
//! key = "..."                        # or key_sha256 = "<hex>"
//!
//! [[users]]                          # email/password users (local-userpass)
//! email = "ada@example.com"
//! password_hash = "$argon2id$v=19$..."   # or password = "..."
//!
//! [custom_jwt]                       # jwtTokenString and custom-token login
//! hs256_secrets = ["..."]            # and/or rs256_public_keys, jwks
//! audience = ["my-app"]              # default: the app id
//! require_all_audiences = false
//! metadata_fields = [{ path = "user.email", field_name = "email" }]
//!
//! [sessions]                         # bearer tokens of the client API
//! signing_keys = [{ kid = "2026-11", key = "..." }]
//! access_token_lifetime_secs = 1800
//! refresh_token_lifetime_secs = 5184000
//!
//! anonymous_users = false
//! user_registration = false          # local-userpass/register creates users
//! run_as_user_id = "..."             # or run_as_system = true
//! validation_method = "NO_VALIDATION"  # SECRET_AS_QUERY_PARAM | VERIFY_PAYLOAD
//! validation_secret = "..."
//! client_base_url = "https://api.example.com/data"
//!
//! [limits]                           # absent fields keep `Limits::default()`
//! request_timeout_secs = 90
//! body_read_timeout_secs = 30        # a body not received in time → 408
//! max_concurrent_password_checks = 4 # default: the number of cores
//!
//! [server]                           # the standalone server's connections
//! header_read_timeout_secs = 10
//! idle_timeout_secs = 60
//! max_connections = 10000            # default: 10,000 or the open-file limit less 64
//! max_http2_streams = 200
//! shutdown_grace_secs = 30
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::auth::{JwtProvider, RequestValidation, RunAs, Secret, SessionSettings};
use crate::backend::Backend;
use crate::rules::Rules;
use crate::{AccessLevel, DataApi, DataApiBuilder, Format, Limits, Version};

/// A configuration file's contents.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// The client app id in URLs (default `data-local`).
    pub app_id: Option<String>,
    /// `json` (default) or `ejson`.
    pub default_format: Option<String>,
    /// Enabled URL versions (default `["beta", "v1"]`).
    pub versions: Option<Vec<String>>,
    /// 201 (default) or 200 for successful inserts.
    pub insert_status: Option<u16>,
    /// Base of the `link` in error bodies.
    pub error_link_base: Option<String>,
    /// Origins browsers may call from (CORS); `["*"]` for any. Absent: CORS off.
    pub cors_allowed_origins: Option<Vec<String>>,
    /// Where the service keeps its own state (bearer sessions), shared by
    /// every instance using the same `[state]`; absent: in process memory.
    pub state: Option<StateConfig>,
    /// Rate limits per API key / user and for failed authentication.
    #[serde(default)]
    pub rate_limits: RateLimitsConfig,
    /// Address of a separate listener serving `GET /metrics` (Prometheus /
    /// OpenMetrics text) for the standalone server; absent: no metrics.
    pub metrics_listen: Option<String>,
    /// Whether `/health` and `/ready` are answered (default true here; see
    /// [`DataApiBuilder::health_endpoints`](crate::DataApiBuilder::health_endpoints)).
    pub health_endpoints: Option<bool>,
    /// Whether preflights from those origins may also allow the credential
    /// headers (`apiKey`, `api-key`, `email`, `password`, `jwtTokenString`).
    /// Default `false`: browsers log in and send bearer tokens. Refused without
    /// `cors_allowed_origins`.
    pub cors_allow_credential_headers: Option<bool>,
    /// Data sources, by the name clients send as `dataSource`.
    #[serde(default)]
    pub data_sources: Vec<DataSourceConfig>,
    /// Accepted API keys.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// Email/password users.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// The custom JWT provider.
    pub custom_jwt: Option<CustomJwtConfig>,
    /// Bearer-session signing keys and lifetimes.
    pub sessions: Option<SessionsConfig>,
    /// Enables the `anon-user` login provider.
    pub anonymous_users: Option<bool>,
    /// Lets `POST .../auth/providers/local-userpass/register` create users
    /// (default false).
    pub user_registration: Option<bool>,
    /// Requests without credentials run as this user id.
    pub run_as_user_id: Option<String>,
    /// Requests without credentials run as the system user.
    pub run_as_system: Option<bool>,
    /// `NO_VALIDATION`, `SECRET_AS_QUERY_PARAM` or `VERIFY_PAYLOAD`.
    pub validation_method: Option<String>,
    /// The secret of the validation method.
    pub validation_secret: Option<Secret>,
    /// The public base URL of the mount point, for the client API's location.
    pub client_base_url: Option<String>,
    /// The admin console (feature `console`); absent or `enabled = false`: off.
    pub console: Option<ConsoleTable>,
    /// Request limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Connection handling of the ready server (feature `server`).
    #[serde(default)]
    pub server: ServerConfig,
    /// Budgets of the embedded engine's data sources.
    #[serde(default)]
    pub engine: EngineConfig,
    /// The directory relative `file:` data directories are resolved
    /// against: set by [`Config::load`] to the file's directory; `None`:
    /// the working directory.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

/// The `[engine]` table: what one request may spend in an embedded-engine
/// data source (`uri = "memory"`); absent fields keep
/// [`MemoryBackend`](crate::MemoryBackend)'s defaults.
///
/// ```toml
/// [engine]
/// max_request_memory_bytes = 104857600   # 100 MiB; 0: unbounded
/// max_concurrent_jobs = 2                # long operations at once (default: CPUs)
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// The memory one request may hold in the engine; over it: 400
    /// `ExceededMemoryLimit`. `0` means unbounded.
    pub max_request_memory_bytes: Option<usize>,
    /// Long operations (scans, sorts, pipelines, multi-document writes)
    /// running at once per data source; others wait within their deadline.
    pub max_concurrent_jobs: Option<usize>,
}

/// One `[[users]]` entry: an email and exactly one of `password` and
/// `password_hash` (an argon2 PHC string).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The login email.
    pub email: String,
    /// The password itself.
    pub password: Option<Secret>,
    /// The argon2 PHC hash of the password, to keep the password out of the file.
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for UserConfig {
    /// The password and its hash are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("email", &self.email)
            .field("password", &self.password)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// The `[custom_jwt]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomJwtConfig {
    /// HS256 shared secrets.
    #[serde(default)]
    pub hs256_secrets: Vec<Secret>,
    /// RS256 public keys in PEM form.
    #[serde(default)]
    pub rs256_public_keys: Vec<PublicKeyConfig>,
    /// A JWK set as JSON text.
    pub jwks: Option<String>,
    /// Accepted audiences (default: the app id).
    #[serde(default)]
    pub audience: Vec<String>,
    /// With `audience`: require every listed audience instead of any one.
    pub require_all_audiences: Option<bool>,
    /// Clock-skew allowance in seconds (default 30).
    pub leeway_secs: Option<u64>,
    /// JWT fields copied into the user's data.
    #[serde(default)]
    pub metadata_fields: Vec<MetadataFieldConfig>,
}

/// One RS256 public key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyConfig {
    /// The key id tokens name in their header (optional).
    pub kid: Option<String>,
    /// The public key in PEM form.
    pub pem: String,
}

/// One metadata field mapping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataFieldConfig {
    /// Dot-notation path in the JWT payload.
    pub path: String,
    /// Name in the user's data (default: the path's last segment).
    #[serde(default)]
    pub field_name: String,
    /// Whether tokens without it are refused.
    #[serde(default)]
    pub required: bool,
}

/// The `[sessions]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// Signing keys; the first signs, all verify.
    #[serde(default)]
    pub signing_keys: Vec<SigningKeyConfig>,
    /// Access-token lifetime in seconds (default 1800).
    pub access_token_lifetime_secs: Option<u64>,
    /// Refresh-token lifetime in seconds (default 60 days).
    pub refresh_token_lifetime_secs: Option<u64>,
}

/// One session signing key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyConfig {
    /// The key id.
    pub kid: String,
    /// The key, at least 32 bytes.
    pub key: Secret,
}

/// One `[[data_sources]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSourceConfig {
    /// The name clients send as `dataSource`.
    pub name: String,
    /// `memory`, `file:<dir>` (the embedded engine, durable in `<dir>`;
    /// a relative path is relative to the configuration file), or a
    /// `mongodb://` / `mongodb+srv://` URI. When absent, the `MONGODB_URI`
    /// environment variable if set, else `memory`.
    pub uri: Option<String>,
    /// For `file:` data sources: `always` (default: every write is on disk
    /// before it is acknowledged) or `periodic` (writes reach the disk
    /// within a second, a crash may lose that second; see
    /// [`SyncMode`](crate::backend::SyncMode)).
    pub sync: Option<String>,
    /// `read-write` (default), `read-only` or `no-access`.
    pub access: Option<String>,
    /// App Services-style rules as a TOML table (the [`Rules`] shape).
    pub rules: Option<Rules>,
    /// A JSON file in the [`Rules`] shape (relative to the working directory).
    pub rules_file: Option<PathBuf>,
    /// An App Services export of the data source's rules: a directory with
    /// `default_rule.json` and `<db>/<coll>/rules.json`.
    pub rules_dir: Option<PathBuf>,
    /// Secondary indexes (`[[data_sources.indexes]]`): kept by the embedded
    /// engine, created on MongoDB at start-up.
    #[serde(default)]
    pub indexes: Vec<IndexConfig>,
}

/// One `[[data_sources.indexes]]` entry:
///
/// ```toml
/// [[data_sources.indexes]]
/// database = "shop"
/// collection = "orders"
/// keys = { owner_id = 1, created = -1 }   # in order; 1 or -1
/// unique = false
/// name = "by_owner"                       # default: owner_id_1_created_-1
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexConfig {
    /// The database.
    pub database: String,
    /// The collection.
    pub collection: String,
    /// The fields and directions, in the order written.
    pub keys: IndexKeys,
    /// Whether no two documents may share a key.
    #[serde(default)]
    pub unique: bool,
    /// The index's name; MongoDB's generated name when absent.
    pub name: Option<String>,
}

/// An index's key pattern as written in TOML, order kept.
#[derive(Debug, Clone, Default)]
pub struct IndexKeys(pub Vec<(String, i64)>);

impl<'de> Deserialize<'de> for IndexKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pattern;
        impl<'de> serde::de::Visitor<'de> for Pattern {
            type Value = IndexKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of field = 1 or -1")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<IndexKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some((field, direction)) = map.next_entry::<String, i64>()? {
                    keys.push((field, direction));
                }
                Ok(IndexKeys(keys))
            }
        }
        deserializer.deserialize_map(Pattern)
    }
}

impl IndexConfig {
    /// The index this entry declares.
    pub fn spec(&self) -> Result<crate::backend::IndexSpec, String> {
        let spec = crate::backend::IndexSpec::new(self.keys.0.iter().cloned())
            .map_err(|e| format!("keys: {e}"))?
            .unique(self.unique);
        match &self.name {
            Some(name) => spec.named(name).map_err(|e| format!("name: {e}")),
            None => Ok(spec),
        }
    }
}

impl DataSourceConfig {
    /// A data source called `name` with every other field left out: its URI
    /// then comes from `MONGODB_URI` or the embedded engine, read-write.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            uri: None,
            sync: None,
            access: None,
            rules: None,
            rules_file: None,
            rules_dir: None,
            indexes: Vec::new(),
        }
    }

    /// The data source's rules, from whichever of `rules`, `rules_file` and
    /// `rules_dir` is set.
    fn load_rules(&self) -> Result<Option<Rules>, String> {
        match (&self.rules, &self.rules_file, &self.rules_dir) {
            (None, None, None) => Ok(None),
            (Some(rules), None, None) => Ok(Some(rules.clone())),
            (None, Some(file), None) => Rules::from_json_file(file)
                .map(Some)
                .map_err(|e| format!("rules_file: {e}")),
            (None, None, Some(dir)) => Rules::from_app_services_dir(dir)
                .map(Some)
                .map_err(|e| format!("rules_dir: {e}")),
            _ => Err("give at most one of rules, rules_file and rules_dir".into()),
        }
    }
}

impl fmt::Debug for DataSourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A URI may carry a password: show only its scheme.
        let scheme = self
            .uri
            .as_deref()
            .map(|uri| uri.split("://").next().unwrap_or("memory"));
        f.debug_struct("DataSourceConfig")
            .field("name", &self.name)
            .field("uri_scheme", &scheme)
            .field("sync", &self.sync)
            .field("access", &self.access)
            .field("rules", &self.rules.is_some())
            .field("rules_file", &self.rules_file)
            .field("rules_dir", &self.rules_dir)
            .field("indexes", &self.indexes)
            .finish()
    }
}

/// One `[[api_keys]]` entry: exactly one of `key` and `key_sha256`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The name logs show for requests with this key.
    pub name: String,
    /// The key itself.
    pub key: Option<String>,
    /// The hex SHA-256 digest of the key, to keep the key out of the file.
    pub key_sha256: Option<String>,
}

impl fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyConfig")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The `[console]` table: the admin console under `<mount>/console/`
/// (feature `console`; needs a `[state]` table).
///
/// ```toml
/// [console]
/// enabled = true
/// admins = ["ops@example.com"]   # users of the user store who may log in
/// # public_url = "https://api.example.com/data"  # default: client_base_url, else the request's host
/// # secure_cookie = true                          # default: when the request came over TLS
/// # session_lifetime_hours = 8
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleTable {
    /// Serve the console (default false).
    #[serde(default)]
    pub enabled: bool,
    /// Emails of the users who may log in.
    #[serde(default)]
    pub admins: Vec<String>,
    /// The public URL of the mount point (error links, base URLs shown).
    pub public_url: Option<String>,
    /// Whether the session cookie is `Secure` (default: over TLS only).
    pub secure_cookie: Option<bool>,
    /// How long a console login lasts (default 8).
    pub session_lifetime_hours: Option<f64>,
}

/// The `[state]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The backend of the state database: `memory`, `file:<dir>` (a data
    /// source's directory is shared with it) or a MongoDB URI.
    pub uri: String,
    /// The state database's name (default `__data_api`); no request may use it.
    pub database: Option<String>,
    /// Days request logs are kept in the state database (default 30).
    pub log_retention_days: Option<f64>,
    /// What `%%user.id` is for custom-token and anonymous users: `issued`
    /// (default: a server-issued 24-hex id, as App Services) or `provider`
    /// (the JWT `sub` as it comes).
    pub user_ids: Option<String>,
}

impl ApiKeyConfig {
    /// The SHA-256 digest of the key (given as `key` or `key_sha256`).
    fn digest(&self) -> Result<[u8; 32], String> {
        use sha2::Digest as _;
        match (&self.key, &self.key_sha256) {
            (Some(value), None) => Ok(sha2::Sha256::digest(value.as_bytes()).into()),
            (None, Some(hex_digest)) => hex::decode(hex_digest.trim())
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| "key_sha256 must be 64 hexadecimal digits".to_owned()),
            _ => Err("give exactly one of key and key_sha256".to_owned()),
        }
    }
}

/// The `[rate_limits]` table: all limits off unless set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Requests per second for every API key and user.
    pub requests_per_second: Option<f64>,
    /// Requests at once (default: one second's worth).
    pub burst: Option<u32>,
    /// Buckets of named keys and users (`[rate_limits.keys.<name>]`).
    #[serde(default)]
    pub keys: std::collections::BTreeMap<String, RateLimitConfig>,
    /// Failed authentication attempts per minute per client address (and
    /// per email); absent: not limited.
    pub failed_auth_per_minute: Option<f64>,
    /// Failures at once before the address or email is slowed (default 20).
    pub failed_auth_burst: Option<u32>,
}

/// One named bucket of `[rate_limits.keys]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per second.
    pub requests_per_second: f64,
    /// Requests at once (default: one second's worth).
    pub burst: Option<u32>,
}

impl RateLimitsConfig {
    fn apply(&self, mut builder: DataApiBuilder) -> Result<DataApiBuilder, ConfigError> {
        let bucket = |rate: f64, burst: Option<u32>| {
            let limit = crate::RateLimit::per_second(rate);
            burst.map_or(limit, |burst| limit.burst(burst))
        };
        match (self.requests_per_second, self.burst) {
            (Some(rate), burst) => builder = builder.rate_limit(bucket(rate, burst)),
            (None, Some(_)) => {
                return Err(ConfigError(
                    "rate_limits.burst needs rate_limits.requests_per_second".into(),
                ))
            }
            (None, None) => {}
        }
        for (name, limit) in &self.keys {
            builder = builder.rate_limit_for(name, bucket(limit.requests_per_second, limit.burst));
        }
        match (self.failed_auth_per_minute, self.failed_auth_burst) {
            (Some(rate), burst) => {
                let limit = crate::RateLimit::per_minute(rate).burst(burst.unwrap_or(20));
                builder = builder.failed_auth_limit(Some(limit));
            }
            (None, Some(_)) => {
                return Err(ConfigError(
                    "rate_limits.failed_auth_burst needs rate_limits.failed_auth_per_minute".into(),
                ))
            }
            (None, None) => {}
        }
        Ok(builder)
    }
}

/// The `[limits]` table; absent fields keep [`Limits::default`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body in bytes.
    pub max_body_bytes: Option<usize>,
    /// Requests handled at once.
    pub max_concurrent_requests: Option<usize>,
    /// Request deadline in seconds.
    pub request_timeout_secs: Option<f64>,
    /// Time a request body may take to arrive, in seconds.
    pub body_read_timeout_secs: Option<f64>,
    /// Password checks running at once.
    pub max_concurrent_password_checks: Option<usize>,
    /// `find`'s default `limit`.
    pub default_find_limit: Option<u64>,
    /// `find`'s largest `limit`.
    pub max_find_limit: Option<u64>,
    /// Largest encoded response in bytes.
    pub max_response_bytes: Option<usize>,
}

/// The `[server]` table; absent fields keep the server's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Time a request head may take to arrive, in seconds.
    pub header_read_timeout_secs: Option<f64>,
    /// Time a connection may sit idle between requests, in seconds.
    pub idle_timeout_secs: Option<f64>,
    /// Connections open at once.
    pub max_connections: Option<usize>,
    /// Concurrent streams per HTTP/2 connection.
    pub max_http2_streams: Option<u32>,
    /// Time requests in flight get to finish after shutdown begins, in seconds.
    pub shutdown_grace_secs: Option<f64>,
}

#[cfg(feature = "server")]
impl ServerConfig {
    /// The server options this table sets, over [`ServerOptions::default`](crate::server::ServerOptions).
    pub fn options(&self) -> Result<crate::server::ServerOptions, ConfigError> {
        let mut options = crate::server::ServerOptions::default();
        if let Some(secs) = self.header_read_timeout_secs {
            options.header_read_timeout = seconds("server.header_read_timeout_secs", secs)?;
        }
        if let Some(secs) = self.idle_timeout_secs {
            options.idle_timeout = seconds("server.idle_timeout_secs", secs)?;
        }
        if let Some(v) = self.max_connections {
            options.max_connections = v;
        }
        if let Some(v) = self.max_http2_streams {
            options.max_http2_streams = v;
        }
        if let Some(secs) = self.shutdown_grace_secs {
            options.shutdown_grace = seconds("server.shutdown_grace_secs", secs)?;
        }
        options
            .validate()
            .map_err(|e| ConfigError(format!("server: {e}")))?;
        Ok(options)
    }
}

/// A duration in seconds from the file, or the error naming `field`.
fn seconds(field: &str, secs: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(secs).map_err(|_| ConfigError(format!("{field}: not a duration")))
}

/// A configuration problem, naming the file and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        let mut config = Self::from_toml(&text)
            .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))?;
        config.base_dir = Some(
            path.parent()
                .filter(|dir| !dir.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        );
        Ok(config)
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string().trim_end().to_owned()))
    }

    /// A builder configured from this file: data sources connected (MongoDB
    /// URIs are parsed and, for `mongodb+srv`, resolved here), keys added.
    /// `mongodb_uri` stands in for data sources without a `uri`.
    pub async fn builder(&self, mongodb_uri: Option<&str>) -> Result<DataApiBuilder, ConfigError> {
        self.builder_and_state(mongodb_uri)
            .await
            .map(|(builder, _)| builder)
    }

    /// [`builder`](Self::builder), and the `[state]` stores it installed
    /// (`None` without a `[state]` table), for managing keys and users of the
    /// running service from the same process.
    pub async fn builder_and_state(
        &self,
        mongodb_uri: Option<&str>,
    ) -> Result<(DataApiBuilder, Option<crate::state::StateStores>), ConfigError> {
        let mut builder = DataApi::builder();
        if let Some(app_id) = &self.app_id {
            builder = builder.app_id(app_id);
        }
        if let Some(format) = &self.default_format {
            builder = builder.default_format(match format.to_ascii_lowercase().as_str() {
                "json" => Format::Json,
                "ejson" => Format::Ejson,
                other => {
                    return Err(ConfigError(format!(
                        "default_format: unknown format '{other}', expected \"json\" or \"ejson\""
                    )))
                }
            });
        }
        if let Some(versions) = &self.versions {
            let parsed: Result<Vec<Version>, _> = versions
                .iter()
                .map(|v| {
                    v.parse::<Version>().map_err(|_| {
                        ConfigError(format!(
                            "versions: unknown version '{v}', expected \"beta\" or \"v1\""
                        ))
                    })
                })
                .collect();
            builder = builder.versions(parsed?);
        }
        if let Some(status) = self.insert_status {
            let status = http::StatusCode::from_u16(status)
                .ok()
                .filter(|s| *s == http::StatusCode::OK || *s == http::StatusCode::CREATED)
                .ok_or_else(|| ConfigError("insert_status: expected 200 or 201".into()))?;
            builder = builder.insert_status(status);
        }
        if let Some(base) = &self.error_link_base {
            builder = builder.error_link_base(base);
        }
        if let Some(origins) = &self.cors_allowed_origins {
            builder = builder.cors(if origins.iter().any(|o| o == "*") {
                crate::AllowedOrigins::Any
            } else {
                crate::AllowedOrigins::List(origins.clone())
            });
        }
        if self.cors_allow_credential_headers == Some(true) {
            if self.cors_allowed_origins.as_ref().is_none_or(Vec::is_empty) {
                return Err(ConfigError(
                    "cors_allow_credential_headers: allows nothing without an origin; \
                     set cors_allowed_origins too (or remove this setting)"
                        .into(),
                ));
            }
            builder = builder.cors_allow_credential_headers(true);
        }
        builder = builder.health_endpoints(self.health_endpoints.unwrap_or(true));
        builder = self.rate_limits.apply(builder)?;
        let mut opened: Vec<(String, Arc<dyn Backend>)> = Vec::new();
        for (i, source) in self.data_sources.iter().enumerate() {
            let field = format!("data_sources[{i}] ('{}')", source.name);
            let access: AccessLevel = match &source.access {
                None => AccessLevel::ReadWrite,
                Some(text) => text
                    .parse()
                    .map_err(|e| ConfigError(format!("{field}.access: {e}")))?,
            };
            let uri = source.uri.as_deref().or(mongodb_uri).unwrap_or("memory");
            let target = Target {
                uri,
                sync: source.sync.as_deref(),
                base_dir: self.base_dir.as_deref(),
            };
            let backend = connect(target, &self.engine)
                .await
                .map_err(|e| ConfigError(format!("{field}.uri: {e}")))?;
            opened.push((uri.to_owned(), backend.clone()));
            for (j, index) in source.indexes.iter().enumerate() {
                let field = format!("{field}.indexes[{j}]");
                let spec = index
                    .spec()
                    .map_err(|e| ConfigError(format!("{field}.{e}")))?;
                let ns = crate::Namespace::new(&index.database, &index.collection);
                backend
                    .ensure_indexes(&ns, &[spec])
                    .await
                    .map_err(|e| ConfigError(format!("{field}: {}", e.message)))?;
            }
            builder = builder.data_source_with_access(&source.name, backend, access);
            if let Some(rules) = source
                .load_rules()
                .map_err(|e| ConfigError(format!("{field}.{e}")))?
            {
                builder = builder.rules(&source.name, rules);
            }
        }
        let state = self.open_state(&opened).await?;
        if let Some(state) = &state {
            builder = state.install(builder);
        }
        let state_keys = state.as_ref().map(|state| &state.keys);
        let state_users = state.as_ref().map(|state| &state.users);
        for (i, key) in self.api_keys.iter().enumerate() {
            let field = format!("api_keys[{i}] ('{}')", key.name);
            if let Some(store) = state_keys {
                // Seeded into the shared store, where run-time changes apply.
                let digest = key
                    .digest()
                    .map_err(|e| ConfigError(format!("{field}: {e}")))?;
                store
                    .seed(&key.name, digest)
                    .await
                    .map_err(|e| ConfigError(format!("{field}: {e}")))?;
                continue;
            }
            builder = match (&key.key, &key.key_sha256) {
                (Some(value), None) => builder.api_key(&key.name, value.as_str()),
                (None, Some(digest)) => builder.api_key_sha256(&key.name, digest),
                _ => {
                    return Err(ConfigError(format!(
                        "{field}: give exactly one of key and key_sha256"
                    )))
                }
            };
        }
        if let Some(store) = state_users {
            // Seeded into the shared store, where run-time changes apply.
            self.seed_users(store).await?;
        }
        builder = self.apply_console(builder, state.as_ref()).await?;
        builder = self.apply_auth(builder, state_users.is_none())?;
        let configured_keys = self
            .sessions
            .as_ref()
            .is_some_and(|sessions| !sessions.signing_keys.is_empty());
        if let (Some(state), false) = (&state, configured_keys) {
            // Instances over this state sign alike, and tokens outlive restarts.
            let key = state
                .session_signing_key()
                .await
                .map_err(|e| ConfigError(format!("state: {e}")))?;
            builder = builder.signing_key("state", key);
        }
        builder = builder.limits(self.limits.apply(Limits::default())?);
        Ok((builder, state))
    }

    /// Adds the `[console]`, when enabled.
    #[cfg_attr(not(feature = "console"), allow(clippy::unused_async))]
    async fn apply_console(
        &self,
        builder: DataApiBuilder,
        state: Option<&crate::state::StateStores>,
    ) -> Result<DataApiBuilder, ConfigError> {
        let Some(table) = self.console.as_ref().filter(|table| table.enabled) else {
            return Ok(builder);
        };
        let Some(state) = state else {
            return Err(ConfigError(
                "console: the console manages the state database: add a [state] table".into(),
            ));
        };
        #[cfg(feature = "console")]
        {
            if table.admins.is_empty() {
                return Err(ConfigError(
                    "console.admins: name at least one administrator (a user's email)".into(),
                ));
            }
            let mut config = crate::console::ConsoleConfig::new(table.admins.iter().cloned());
            if let Some(url) = table.public_url.as_ref().or(self.client_base_url.as_ref()) {
                config = config.public_url(url);
            }
            if let Some(secure) = table.secure_cookie {
                config = config.secure_cookie(secure);
            }
            if let Some(hours) = table.session_lifetime_hours {
                config = config
                    .session_lifetime(seconds("console.session_lifetime_hours", hours * 3600.0)?);
            }
            let console = crate::console::Console::new(state, config);
            console
                .ensure_indexes()
                .await
                .map_err(|e| ConfigError(format!("console: {e}")))?;
            Ok(builder.console(console))
        }
        #[cfg(not(feature = "console"))]
        {
            let _ = (builder, state, table);
            Err(ConfigError(
                "console: this build has no console (cargo feature `console`)".into(),
            ))
        }
    }

    /// The stores of the `[state]` table (`None` without one), on their own
    /// backend: for tools that manage keys, users and logs beside a server
    /// (a `file:` state directory can be open in one process at a time).
    pub async fn state_stores(&self) -> Result<Option<crate::state::StateStores>, ConfigError> {
        self.open_state(&[]).await
    }

    /// Opens the `[state]` stores; a data source already opened on the same
    /// URI (one `file:` directory can be opened once) lends its backend.
    async fn open_state(
        &self,
        opened: &[(String, Arc<dyn Backend>)],
    ) -> Result<Option<crate::state::StateStores>, ConfigError> {
        let Some(state) = &self.state else {
            return Ok(None);
        };
        let database = state
            .database
            .as_deref()
            .unwrap_or(crate::state::DEFAULT_STATE_DATABASE);
        let backend = match opened.iter().find(|(uri, _)| *uri == state.uri) {
            Some((_, backend)) => backend.clone(),
            None => {
                let target = Target {
                    uri: &state.uri,
                    sync: None,
                    base_dir: self.base_dir.as_deref(),
                };
                connect(target, &self.engine)
                    .await
                    .map_err(|e| ConfigError(format!("state.uri: {e}")))?
            }
        };
        let retention = seconds(
            "state.log_retention_days",
            state.log_retention_days.unwrap_or(30.0) * 86_400.0,
        )?;
        let stores = crate::state::StateStores::open(backend, database, retention)
            .await
            .map_err(|e| ConfigError(format!("state: {e}")))?;
        match state.user_ids.as_deref() {
            None | Some("issued") => Ok(Some(stores)),
            Some("provider") => Ok(Some(stores.provider_user_ids())),
            Some(other) => Err(ConfigError(format!(
                "state.user_ids: '{other}' is neither 'issued' nor 'provider'"
            ))),
        }
    }

    /// Seeds the file's users into the state database's user store.
    async fn seed_users(&self, store: &crate::state::BackendUserStore) -> Result<(), ConfigError> {
        for (i, user) in self.users.iter().enumerate() {
            let field = format!("users[{i}] ('{}')", user.email);
            let hash = match (&user.password, &user.password_hash) {
                (Some(password), None) => crate::auth::hash_password(password.expose())
                    .map_err(|e| ConfigError(format!("{field}: {e}")))?,
                (None, Some(hash)) => hash.clone(),
                _ => {
                    return Err(ConfigError(format!(
                        "{field}: give exactly one of password and password_hash"
                    )))
                }
            };
            store
                .seed(&user.email, &hash)
                .await
                .map_err(|e| ConfigError(format!("{field}: {e}")))?;
        }
        Ok(())
    }

    /// Users (unless they live in the state database), custom JWT,
    /// sessions, run-as and request validation.
    fn apply_auth(
        &self,
        mut builder: DataApiBuilder,
        with_users: bool,
    ) -> Result<DataApiBuilder, ConfigError> {
        let users = if with_users { &self.users[..] } else { &[] };
        for (i, user) in users.iter().enumerate() {
            builder = match (&user.password, &user.password_hash) {
                (Some(password), None) => builder.user(&user.email, password.clone()),
                (None, Some(hash)) => builder.user_password_hash(&user.email, hash),
                _ => {
                    return Err(ConfigError(format!(
                        "users[{i}] ('{}'): give exactly one of password and password_hash",
                        user.email
                    )))
                }
            };
        }
        if let Some(jwt) = &self.custom_jwt {
            builder = builder.custom_jwt(jwt.provider());
        }
        if let Some(sessions) = &self.sessions {
            let mut settings = SessionSettings::default();
            for key in &sessions.signing_keys {
                settings = settings.signing_key(&key.kid, key.key.clone());
            }
            if let Some(secs) = sessions.access_token_lifetime_secs {
                settings = settings.access_token_lifetime(Duration::from_secs(secs));
            }
            if let Some(secs) = sessions.refresh_token_lifetime_secs {
                settings = settings.refresh_token_lifetime(Duration::from_secs(secs));
            }
            settings
                .validate()
                .map_err(|e| ConfigError(format!("sessions: {e}")))?;
            builder = builder.session_settings(settings);
        }
        if let Some(enabled) = self.anonymous_users {
            builder = builder.anonymous_users(enabled);
        }
        if let Some(enabled) = self.user_registration {
            builder = builder.user_registration(enabled);
        }
        match (&self.run_as_user_id, self.run_as_system.unwrap_or(false)) {
            (Some(_), true) => {
                return Err(ConfigError(
                    "run_as_user_id and run_as_system exclude each other".into(),
                ))
            }
            (Some(id), false) => builder = builder.run_as(RunAs::User(id.clone())),
            (None, true) => builder = builder.run_as(RunAs::System),
            (None, false) => {}
        }
        if let Some(method) = &self.validation_method {
            let validation = RequestValidation::from_config(method, self.validation_secret.clone())
                .map_err(|e| ConfigError(format!("validation_method: {e}")))?;
            builder = builder.request_validation(validation);
        }
        if let Some(url) = &self.client_base_url {
            builder = builder.client_base_url(url);
        }
        Ok(builder)
    }
}

impl CustomJwtConfig {
    fn provider(&self) -> JwtProvider {
        let mut provider = JwtProvider::new();
        for secret in &self.hs256_secrets {
            provider = provider.hs256_secret(secret.clone());
        }
        for key in &self.rs256_public_keys {
            provider = provider.rs256_public_key_pem(key.kid.as_deref(), &key.pem);
        }
        if let Some(jwks) = &self.jwks {
            provider = provider.jwk_set(jwks);
        }
        if !self.audience.is_empty() {
            provider = provider.audience(self.audience.iter().cloned());
        }
        if let Some(all) = self.require_all_audiences {
            provider = provider.require_all_audiences(all);
        }
        if let Some(secs) = self.leeway_secs {
            provider = provider.leeway_secs(secs);
        }
        for field in &self.metadata_fields {
            provider = provider.metadata_field(&field.path, &field.field_name, field.required);
        }
        provider
    }
}

impl LimitsConfig {
    fn apply(&self, mut limits: Limits) -> Result<Limits, ConfigError> {
        if let Some(v) = self.max_body_bytes {
            limits.max_body_bytes = v;
        }
        if let Some(v) = self.max_concurrent_requests {
            limits.max_concurrent_requests = v;
        }
        if let Some(secs) = self.request_timeout_secs {
            limits.request_timeout = seconds("limits.request_timeout_secs", secs)?;
        }
        if let Some(secs) = self.body_read_timeout_secs {
            limits.body_read_timeout = seconds("limits.body_read_timeout_secs", secs)?;
        }
        if let Some(v) = self.max_concurrent_password_checks {
            limits.max_concurrent_password_checks = v;
        }
        if let Some(v) = self.default_find_limit {
            limits.default_find_limit = v;
        }
        if let Some(v) = self.max_find_limit {
            limits.max_find_limit = v;
        }
        if let Some(v) = self.max_response_bytes {
            limits.max_response_bytes = v;
        }
        limits
            .validate()
            .map_err(|e| ConfigError(format!("limits: {e}")))?;
        Ok(limits)
    }
}

impl EngineConfig {
    /// `backend` with these budgets.
    #[cfg(feature = "memory")]
    fn apply(&self, mut backend: crate::MemoryBackend) -> crate::MemoryBackend {
        if let Some(bytes) = self.max_request_memory_bytes {
            backend = backend.with_max_request_memory((bytes > 0).then_some(bytes));
        }
        if let Some(jobs) = self.max_concurrent_jobs {
            backend = backend.with_max_concurrent_jobs(jobs);
        }
        backend
    }
}

/// What a data source connects to.
struct Target<'a> {
    uri: &'a str,
    sync: Option<&'a str>,
    base_dir: Option<&'a Path>,
}

/// The backend a data source URI names.
async fn connect(target: Target<'_>, engine: &EngineConfig) -> Result<Arc<dyn Backend>, String> {
    let uri = target.uri;
    if let Some(dir) = uri.strip_prefix("file:") {
        return open_file(dir, &target, engine).await;
    }
    if target.sync.is_some() {
        return Err("sync applies to file: data sources only".into());
    }
    if uri == "memory" {
        #[cfg(feature = "memory")]
        return Ok(Arc::new(engine.apply(crate::MemoryBackend::new())));
        #[cfg(not(feature = "memory"))]
        return Err("the embedded engine needs the `memory` feature".into());
    }
    if uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://") {
        #[cfg(feature = "mongodb")]
        return crate::MongoBackend::connect(uri, crate::MongoBackendOptions::default())
            .await
            .map(|backend| Arc::new(backend) as Arc<dyn Backend>)
            .map_err(|e| e.message);
        #[cfg(not(feature = "mongodb"))]
        return Err("MongoDB URIs need the `mongodb` feature".into());
    }
    Err("expected \"memory\", \"file:<dir>\" or a mongodb:// or mongodb+srv:// URI".into())
}

/// The durable embedded engine in `dir` (`file:<dir>`).
#[cfg_attr(not(feature = "memory"), allow(unused_variables))]
async fn open_file(
    dir: &str,
    target: &Target<'_>,
    engine: &EngineConfig,
) -> Result<Arc<dyn Backend>, String> {
    #[cfg(feature = "memory")]
    {
        use crate::backend::SyncMode;
        if dir.is_empty() {
            return Err("file: needs a directory, e.g. \"file:./data-api-data\"".into());
        }
        let sync = match target.sync {
            None | Some("always") => SyncMode::Always,
            Some("periodic") => SyncMode::Periodic,
            Some(other) => {
                return Err(format!(
                    "unknown sync '{other}', expected \"always\" or \"periodic\""
                ))
            }
        };
        let path = Path::new(dir);
        let path = match target.base_dir {
            Some(base) if path.is_relative() => base.join(path),
            _ => path.to_path_buf(),
        };
        // Loading reads the whole directory: not on an async worker.
        let opened =
            tokio::task::spawn_blocking(move || crate::MemoryBackend::open_with(&path, sync))
                .await
                .map_err(|_| "loading stopped".to_owned())?;
        let backend = opened.map_err(|e| e.0)?;
        Ok(Arc::new(engine.apply(backend)))
    }
    #[cfg(not(feature = "memory"))]
    Err("the embedded engine needs the `memory` feature".into())
}

#[cfg(test)]
mod tests;
