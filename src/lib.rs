//! # tower-data-api
//!
//! A wire-exact, self-hosted **MongoDB Atlas Data API** as a tower
//! [`Service`](tower::Service) and [`Layer`](tower::Layer). MongoDB retired the
//! hosted Data API in September 2025; existing clients (edge functions, IoT
//! devices, browser apps, scripts) keep working against this crate by changing
//! only their base URL.
//!
//! ```no_run
//! use tower_data_api::{DataApi, MemoryBackend};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let data_api = DataApi::builder()
//!     .app_id("data-abcde")
//!     .data_source("mongodb-atlas", MemoryBackend::new())
//!     .api_key("ci", std::env::var("DATA_API_KEY")?)
//!     .build()?;
//! // axum: Router::new().nest_service("/data", data_api)
//! // poem: Route::new().nest("/data", data_api.compat())
//! # Ok(()) }
//! ```
//!
//! ## The request pipeline
//!
//! One request flows through [`DataApiService`] in this order: **CORS**
//! (preflights, when configured), **route** (URL → action; 404/405),
//! **limits** (concurrency → 429, body size → 413, deadline → 504),
//! **authenticate** (headers → [`auth::Principal`]), **validate** (`?secret=`
//! or `Endpoint-Signature`, when configured), **decode** (relaxed Extended JSON
//! → typed [`ActionRequest`]), **authorize** (the data source's
//! [`AccessLevel`], then its [`rules::Rules`], which rewrite the request and
//! strip unreadable fields from the reply; collection schemas checked on
//! inserts), **execute** (the data source's [`Backend`]; updates and
//! replacements that need schema or post-image rule checks run through
//! [`Backend::write_checked`], atomic with the write), **encode** (JSON or
//! canonical EJSON per `Accept`), **log** ([`log::LogSink`]).
//!
//! ## Features
//!
//! | feature   | what it adds |
//! |-----------|--------------|
//! | `memory`  | [`MemoryBackend`], the embedded engine, in memory or durable in a directory (redb) (default) |
//! | `mongodb` | `MongoBackend` over the official driver (default) |
//! | `config`  | `Config`, TOML configuration as the standalone binary reads it |
//! | `server`  | `server::serve` / `serve_with`, a ready HTTP/1.1 + HTTP/2 server loop with connection limits and a bounded shutdown |
//! | `warp`    | `adapters::warp`, mounting the service as a warp filter |
//! | `fuzzing` | entry points for the fuzz targets in `fuzz/`: not a stable API, for the fuzz targets |

pub mod action;
pub mod adapters;
pub mod auth;
pub mod backend;
mod builder;
#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "console")]
pub mod console;
mod cors;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod health;
mod layer;
mod limits;
pub mod log;
pub mod metrics;
mod openapi;
pub mod protocol;
#[cfg(feature = "memory")]
pub(crate) mod query;
mod rate_limit;
pub mod require_auth;
mod route;
pub mod rules;
#[cfg(feature = "server")]
pub mod server;
mod service;
pub mod state;

pub use action::{Action, ActionRequest, Command, Namespace, Reply};
#[cfg(feature = "memory")]
pub use backend::MemoryBackend;
pub use backend::{Backend, BackendError, BackendErrorKind, IndexSpec};
#[cfg(feature = "mongodb")]
pub use backend::{MongoBackend, MongoBackendOptions};
pub use builder::{BuildError, DataApi, DataApiBuilder};
pub use cors::AllowedOrigins;
pub use layer::{DataApiFuture, DataApiLayer, DataApiMiddleware, EitherBody};
pub use limits::Limits;
pub use protocol::{ApiError, ErrorCode, Format, ResponseBody};
pub use rate_limit::RateLimit;
pub use route::Version;
pub use rules::AccessLevel;
pub use service::DataApiService;
