//! Prometheus / OpenMetrics metrics of the service, and usage per principal.
//!
//! [`Metrics`] is built on `prometheus-client` (the Prometheus project's own
//! Rust client: OpenMetrics text, no global registry, so embedders register
//! the families in their own [`Registry`]). Hand one to
//! [`DataApiBuilder::metrics`](crate::DataApiBuilder::metrics); the service
//! records every request in it. Usage (requests, time, bytes returned) is
//! kept per principal, as the original service billed it, with a bounded
//! label set: the first [`Metrics::with_max_principals`] principals seen get
//! their own series, later ones share `principal="_other"`.
//!
//! | family | labels |
//! |---|---|
//! | `data_api_requests_total` | `action`, `data_source`, `status`, `auth_scheme` |
//! | `data_api_request_duration_seconds` (histogram) | `action` |
//! | `data_api_requests_in_flight` (gauge) | |
//! | `data_api_request_bytes_total`, `data_api_response_bytes_total` | `action` |
//! | `data_api_errors_total` | `error_code` (backend errors: `MongoDBError`, `ServiceUnavailable`, …) |
//! | `data_api_rule_denials_total` | `data_source` |
//! | `data_api_auth_failures_total` | `scheme` |
//! | `data_api_rejected_total` (429s) | `reason` (`concurrency`, `rate_limit`, `failed_auth`, `password_checks`) |
//! | `data_api_usage_requests_total`, `data_api_usage_seconds_total`, `data_api_usage_response_bytes_total` | `principal` |
//!
//! ```
//! use tower_data_api::{metrics::Metrics, DataApi, MemoryBackend};
//!
//! let metrics = Metrics::new();
//! let service = DataApi::builder()
//!     .data_source("mongodb-atlas", MemoryBackend::new())
//!     .api_key("ci", "key")
//!     .metrics(metrics.clone())
//!     .build()
//!     .unwrap();
//! assert!(metrics.encode().contains("# TYPE data_api_requests_in_flight gauge"));
//! # let _ = service;
//! ```

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
pub use prometheus_client::registry::Registry;

use crate::log::RequestLog;

/// The principal label of the principals past the cap.
const OTHER_PRINCIPALS: &str = "_other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    action: String,
    data_source: String,
    status: u16,
    auth_scheme: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    error_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DataSourceLabel {
    data_source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SchemeLabel {
    scheme: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PrincipalLabel {
    principal: String,
}

/// Request latencies from 0.5 ms to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The metric families one service records into. Cheap to clone: clones
/// share the families.
#[derive(Clone)]
pub struct Metrics {
    families: Arc<Families>,
}

struct Families {
    requests: Family<RequestLabels, Counter>,
    duration: Family<ActionLabel, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    request_bytes: Family<ActionLabel, Counter>,
    response_bytes: Family<ActionLabel, Counter>,
    errors: Family<ErrorLabel, Counter>,
    rule_denials: Family<DataSourceLabel, Counter>,
    auth_failures: Family<SchemeLabel, Counter>,
    rejected: Family<ReasonLabel, Counter>,
    usage_requests: Family<PrincipalLabel, Counter>,
    usage_seconds: Family<PrincipalLabel, Counter<f64, AtomicU64>>,
    usage_bytes: Family<PrincipalLabel, Counter>,
    /// Principals with series of their own.
    principals: Mutex<HashSet<String>>,
    max_principals: usize,
    /// The families registered alone, for [`Metrics::encode`].
    own_registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::with_max_principals(100)
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("max_principals", &self.families.max_principals)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics with usage series for up to 100 principals.
    pub fn new() -> Self {
        Self::default()
    }

    /// Metrics with usage series for up to `max_principals` principals (0:
    /// usage is kept only in total, under `principal="_other"`).
    pub fn with_max_principals(max_principals: usize) -> Self {
        let duration: Family<ActionLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let mut families = Families {
            requests: Family::default(),
            duration,
            in_flight: Gauge::default(),
            request_bytes: Family::default(),
            response_bytes: Family::default(),
            errors: Family::default(),
            rule_denials: Family::default(),
            auth_failures: Family::default(),
            rejected: Family::default(),
            usage_requests: Family::default(),
            usage_seconds: Family::default(),
            usage_bytes: Family::default(),
            principals: Mutex::default(),
            max_principals,
            own_registry: Registry::default(),
        };
        let mut registry = Registry::default();
        families.register_into(&mut registry);
        families.own_registry = registry;
        Metrics {
            families: Arc::new(families),
        }
    }

    /// Registers every family in `registry` (the embedder's own), so one
    /// scrape shows them beside the application's metrics.
    ///
    /// ```
    /// use tower_data_api::metrics::{Metrics, Registry};
    /// let mut registry = Registry::default();
    /// Metrics::new().register(&mut registry);
    /// ```
    pub fn register(&self, registry: &mut Registry) {
        self.families.register_into(registry);
    }

    /// The OpenMetrics text exposition of these families alone, as served
    /// at `/metrics` (content type [`Metrics::CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.families.own_registry);
        text
    }

    /// The content type of [`Metrics::encode`]'s output.
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// A request began; the returned guard marks its end when dropped
    /// (also when the request is abandoned).
    pub(crate) fn begin(&self) -> InFlight {
        self.families.in_flight.inc();
        InFlight(self.families.clone())
    }

    /// Records a finished request.
    pub(crate) fn record(&self, log: &RequestLog) {
        let f = &self.families;
        let action = log.action.unwrap_or("unknown").to_owned();
        let scheme = log.auth_scheme.clone().unwrap_or_else(|| "none".into());
        f.requests
            .get_or_create(&RequestLabels {
                action: action.clone(),
                data_source: log.data_source.clone().unwrap_or_default(),
                status: log.status,
                auth_scheme: scheme.clone(),
            })
            .inc();
        let by_action = ActionLabel { action };
        f.duration
            .get_or_create(&by_action)
            .observe(log.duration.as_secs_f64());
        f.request_bytes
            .get_or_create(&by_action)
            .inc_by(log.request_bytes.unwrap_or(0));
        f.response_bytes
            .get_or_create(&by_action)
            .inc_by(log.response_bytes.unwrap_or(0));
        if let Some(code) = log.error_code {
            self.record_error(log, code, scheme);
        }
        if let Some(principal) = self.principal_label(log) {
            let label = PrincipalLabel { principal };
            f.usage_requests.get_or_create(&label).inc();
            f.usage_seconds
                .get_or_create(&label)
                .inc_by(log.duration.as_secs_f64());
            f.usage_bytes
                .get_or_create(&label)
                .inc_by(log.response_bytes.unwrap_or(0));
        }
    }

    fn record_error(&self, log: &RequestLog, code: &str, scheme: String) {
        let f = &self.families;
        f.errors
            .get_or_create(&ErrorLabel {
                error_code: code.to_owned(),
            })
            .inc();
        match code {
            "PermissionDenied" | "NoMatchingRuleFound" => {
                f.rule_denials
                    .get_or_create(&DataSourceLabel {
                        data_source: log.data_source.clone().unwrap_or_default(),
                    })
                    .inc();
            }
            "TooManyRequests" => {
                let message = log.error.as_deref().unwrap_or_default();
                let reason = if message.contains("password checks") {
                    "password_checks"
                } else if message.contains("failed authentication") {
                    "failed_auth"
                } else if message.contains("rate limit") {
                    "rate_limit"
                } else {
                    "concurrency"
                };
                f.rejected
                    .get_or_create(&ReasonLabel {
                        reason: reason.to_owned(),
                    })
                    .inc();
            }
            _ => {}
        }
        let auth_failed = log.principal_id.is_none()
            && (log.status == 401
                || log.error.as_deref().is_some_and(|e| {
                    e == crate::protocol::NO_AUTH_METHODS || e == crate::protocol::INCOMPLETE_AUTH
                }));
        if auth_failed {
            f.auth_failures.get_or_create(&SchemeLabel { scheme }).inc();
        }
    }

    /// The usage label of the request's principal: the key's name for API
    /// keys, the user id otherwise; `_other` past the cap.
    fn principal_label(&self, log: &RequestLog) -> Option<String> {
        let id = log.principal_id.as_ref()?;
        let who = match (log.auth_scheme.as_deref(), &log.principal_name) {
            (Some("api-key"), Some(name)) => name.clone(),
            _ => id.clone(),
        };
        let f = &self.families;
        let mut known = f.principals.lock().unwrap_or_else(|e| e.into_inner());
        if known.contains(&who) {
            return Some(who);
        }
        if known.len() < f.max_principals {
            known.insert(who.clone());
            return Some(who);
        }
        Some(OTHER_PRINCIPALS.to_owned())
    }
}

impl Families {
    fn register_into(&self, registry: &mut Registry) {
        let data_api = registry.sub_registry_with_prefix("data_api");
        data_api.register(
            "requests",
            "Requests answered, by action, data source, status and auth scheme",
            self.requests.clone(),
        );
        data_api.register(
            "request_duration_seconds",
            "Time to answer a request",
            self.duration.clone(),
        );
        data_api.register(
            "requests_in_flight",
            "Requests being handled",
            self.in_flight.clone(),
        );
        data_api.register(
            "request_bytes",
            "Request body bytes read",
            self.request_bytes.clone(),
        );
        data_api.register(
            "response_bytes",
            "Response body bytes sent",
            self.response_bytes.clone(),
        );
        data_api.register(
            "errors",
            "Error answers, by error code",
            self.errors.clone(),
        );
        data_api.register(
            "rule_denials",
            "Requests refused by access levels or rules",
            self.rule_denials.clone(),
        );
        data_api.register(
            "auth_failures",
            "Requests whose credentials were missing or refused, by scheme",
            self.auth_failures.clone(),
        );
        data_api.register(
            "rejected",
            "Requests refused with 429, by reason",
            self.rejected.clone(),
        );
        data_api.register(
            "usage_requests",
            "Requests per principal",
            self.usage_requests.clone(),
        );
        data_api.register(
            "usage_seconds",
            "Time spent answering each principal",
            self.usage_seconds.clone(),
        );
        data_api.register(
            "usage_response_bytes",
            "Response bytes sent to each principal",
            self.usage_bytes.clone(),
        );
    }
}

/// Decrements the in-flight gauge when dropped (see [`Metrics::begin`]).
pub(crate) struct InFlight(Arc<Families>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}
