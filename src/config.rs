//! TOML configuration (feature `config`), as the standalone binary reads it.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! app_id = "data-local"
//! default_format = "json"            # or "ejson"
//!
//! [[data_sources]]
//! name = "mongodb-atlas"
//! uri = "memory"                     # or a mongodb:// or mongodb+srv:// URI
//! access = "read-write"              # "read-only" | "no-access"
//!
//! [[api_keys]]
//! name = "ci"
//! key = "..."                        # or key_sha256 = "<hex>"
//! ```

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::backend::Backend;
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
    /// Data sources, by the name clients send as `dataSource`.
    #[serde(default)]
    pub data_sources: Vec<DataSourceConfig>,
    /// Accepted API keys.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// Request limits.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// One `[[data_sources]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSourceConfig {
    /// The name clients send as `dataSource`.
    pub name: String,
    /// `memory`, or a `mongodb://` / `mongodb+srv://` URI. When absent, the
    /// `MONGODB_URI` environment variable if set, else `memory`.
    pub uri: Option<String>,
    /// `read-write` (default), `read-only` or `no-access`.
    pub access: Option<String>,
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
            .field("access", &self.access)
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
    /// `find`'s default `limit`.
    pub default_find_limit: Option<u64>,
    /// `find`'s largest `limit`.
    pub max_find_limit: Option<u64>,
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
        Self::from_toml(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string().trim_end().to_owned()))
    }

    /// A builder configured from this file: data sources connected (MongoDB
    /// URIs are parsed and, for `mongodb+srv`, resolved here), keys added.
    /// `mongodb_uri` stands in for data sources without a `uri`.
    pub async fn builder(&self, mongodb_uri: Option<&str>) -> Result<DataApiBuilder, ConfigError> {
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
        for (i, source) in self.data_sources.iter().enumerate() {
            let field = format!("data_sources[{i}] ('{}')", source.name);
            let access: AccessLevel = match &source.access {
                None => AccessLevel::ReadWrite,
                Some(text) => text
                    .parse()
                    .map_err(|e| ConfigError(format!("{field}.access: {e}")))?,
            };
            let uri = source.uri.as_deref().or(mongodb_uri).unwrap_or("memory");
            let backend = connect(uri)
                .await
                .map_err(|e| ConfigError(format!("{field}.uri: {e}")))?;
            builder = builder.data_source_with_access(&source.name, backend, access);
        }
        for (i, key) in self.api_keys.iter().enumerate() {
            let field = format!("api_keys[{i}] ('{}')", key.name);
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
        builder = builder.limits(self.limits.apply(Limits::default())?);
        Ok(builder)
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
            limits.request_timeout = Duration::try_from_secs_f64(secs)
                .map_err(|_| ConfigError("limits.request_timeout_secs: not a duration".into()))?;
        }
        if let Some(v) = self.default_find_limit {
            limits.default_find_limit = v;
        }
        if let Some(v) = self.max_find_limit {
            limits.max_find_limit = v;
        }
        limits
            .validate()
            .map_err(|e| ConfigError(format!("limits: {e}")))?;
        Ok(limits)
    }
}

/// The backend a data source URI names.
async fn connect(uri: &str) -> Result<Arc<dyn Backend>, String> {
    if uri == "memory" {
        #[cfg(feature = "memory")]
        return Ok(Arc::new(crate::MemoryBackend::new()));
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
    Err("expected \"memory\" or a mongodb:// or mongodb+srv:// URI".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let config = Config::from_toml(
            r#"
            listen = "127.0.0.1:8080"
            app_id = "data-local"
            default_format = "ejson"
            [[data_sources]]
            name = "mongodb-atlas"
            uri = "memory"
            access = "read-only"
            [[api_keys]]
            name = "ci"
            key = "abc"
            "#,
        )
        .unwrap();
        assert_eq!(config.listen.as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(config.data_sources[0].access.as_deref(), Some("read-only"));
        assert!(!format!("{config:?}").contains("abc"));
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = Config::from_toml("listen = \"x\"\nport = 3\n").unwrap_err();
        assert!(err.0.contains("port"), "{err}");
    }

    #[tokio::test]
    async fn field_errors_name_the_field() {
        let err = |text: &str| async move {
            Config::from_toml(text)
                .unwrap()
                .builder(None)
                .await
                .err()
                .unwrap()
                .0
        };
        assert!(err("default_format = \"xml\"").await.contains("default_format"));
        assert!(err("[[data_sources]]\nname = \"a\"\naccess = \"all\"")
            .await
            .contains("data_sources[0] ('a').access"));
        assert!(err("[[data_sources]]\nname = \"a\"\nuri = \"postgres://x\"")
            .await
            .contains("data_sources[0] ('a').uri"));
        assert!(err("[[api_keys]]\nname = \"k\"").await.contains("api_keys[0] ('k')"));
        assert!(err("[limits]\nmax_find_limit = 0").await.contains("limits"));
    }
}
