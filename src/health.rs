//! Health probes under the mount point: `GET /health` (liveness: the process
//! answers; no credentials, no backend call) and `GET /ready` (readiness:
//! every data source and the session store answer within
//! [`READY_TIMEOUT`]).
//!
//! Readiness answers 503 naming the data source or store that failed, never
//! its host or URI. Turned on by
//! [`DataApiBuilder::health_endpoints`](crate::DataApiBuilder::health_endpoints)
//! (and by default in the TOML configuration).

use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::backend::Backend;

/// How long one readiness check may take before it counts as failed.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Which probe a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// `/health`.
    Live,
    /// `/ready`.
    Ready,
}

impl Probe {
    /// The probe at `path` (relative to the mount point), if any.
    pub(crate) fn at(path: &str) -> Option<Probe> {
        match path {
            "/health" => Some(Probe::Live),
            "/ready" => Some(Probe::Ready),
            _ => None,
        }
    }

    /// The name request logs show in their `action` field.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Probe::Live => "health",
            Probe::Ready => "ready",
        }
    }
}

/// A probe's answer: its status and JSON body.
#[derive(Debug)]
pub(crate) struct ProbeAnswer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

/// Liveness: the process is serving requests.
pub(crate) fn live() -> ProbeAnswer {
    ProbeAnswer {
        status: StatusCode::OK,
        body: json!({ "status": "ok" }),
    }
}

/// Readiness: pings every data source and reads from the session store, all
/// at once, each within [`READY_TIMEOUT`].
pub(crate) async fn ready<'a>(
    data_sources: impl IntoIterator<Item = (&'a str, &'a dyn Backend)>,
    sessions: &dyn crate::auth::SessionStore,
) -> ProbeAnswer {
    let pings = data_sources
        .into_iter()
        .map(|(name, backend)| async move { (name.to_owned(), check(ping(backend)).await) });
    let (sources, store) = futures_util::future::join(
        futures_util::future::join_all(pings),
        check(async {
            sessions
                .get("readiness-probe")
                .await
                .map(drop)
                .map_err(|_| "the store failed".to_owned())
        }),
    )
    .await;
    let mut failed = Vec::new();
    let mut source_checks = Map::new();
    for (name, outcome) in sources {
        if outcome.is_err() {
            failed.push(format!("data source '{name}'"));
        }
        source_checks.insert(name, verdict(outcome));
    }
    if store.is_err() {
        failed.push("the session store".to_owned());
    }
    let checks = json!({ "data_sources": source_checks, "sessions": verdict(store) });
    if failed.is_empty() {
        return ProbeAnswer {
            status: StatusCode::OK,
            body: json!({ "status": "ready", "checks": checks }),
        };
    }
    ProbeAnswer {
        status: StatusCode::SERVICE_UNAVAILABLE,
        body: json!({
            "status": "unavailable",
            "error": format!("not ready: {} did not answer", failed.join(", ")),
            "error_code": "ServiceUnavailable",
            "checks": checks,
        }),
    }
}

async fn ping(backend: &dyn Backend) -> Result<(), String> {
    backend.ping().await.map_err(|err| err.message)
}

/// `check` bounded by [`READY_TIMEOUT`].
async fn check(work: impl std::future::Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::time::timeout(READY_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer within {} s",
                READY_TIMEOUT.as_secs_f64()
            ))
        })
}

fn verdict(outcome: Result<(), String>) -> Value {
    match outcome {
        Ok(()) => Value::from("ok"),
        Err(message) => Value::from(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_live_at_two_paths() {
        assert_eq!(Probe::at("/health"), Some(Probe::Live));
        assert_eq!(Probe::at("/ready"), Some(Probe::Ready));
        for other in ["/", "/healthz", "/health/", "/app/x/health"] {
            assert_eq!(Probe::at(other), None, "{other}");
        }
    }
}
