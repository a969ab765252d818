//! What the shared-state stores cost, in-process through the service
//! (`tower::ServiceExt::oneshot`, no HTTP), every figure beside a baseline
//! measured in the same process:
//!
//! 1. `findOne` by `_id` on the embedded engine, authenticated by an API key
//!    and by a bearer access token: the in-process stores (`MemoryKeyStore`,
//!    `MemorySessionStore`, logs to `tracing` only: the baseline) vs. the
//!    state stores (`state::StateStores`: keys, sessions, users, request
//!    logs) on the in-memory embedded engine and on the durable one
//!    (`file:`, every write committed to disk);
//! 2. when `DATA_API_TEST_MONGODB_URI` is set: the same with the state
//!    stores on that peer through the MongoDB driver. The peer used by this
//!    project's tests is SecantusDB, a wire-protocol server written in
//!    Python: its figures describe that peer, not MongoDB;
//! 3. request-log write throughput of `state::BackendLogSink` on each of
//!    those backends: entries offered in bursts of 5,000 (half the queue),
//!    each burst waited for until stored.
//!
//! Requests of the variants compared are interleaved (each round sends one
//! request of every variant, the first variant rotating); a warm-up (a
//! tenth of the rounds) is discarded.
//!
//! ```text
//! cargo bench -p integration-tests --bench state [-- ROUNDS [PEER_ROUNDS]]
//! ```
//!
//! `ROUNDS` defaults to 20,000, `PEER_ROUNDS` to 300.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bson::doc;
use bytes::Bytes;
use http_body_util::Full;
use integration_tests::bench::{load_average, print_comparison, timed_call};
use serde_json::{json, Value};
use tower_data_api::log::{LogSink, RequestLog};
use tower_data_api::state::{BackendLogSink, StateStores};
use tower_data_api::{
    AccessLevel, Backend, DataApi, DataApiService, MemoryBackend, MongoBackend,
    MongoBackendOptions, Namespace,
};

const APP: &str = "state-bench";
const SOURCE: &str = "mongodb-atlas";
const KEY: &str = "state-bench-key-0123456789abcdefghijklmnopqrstuvwxyz0123456789";
const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "a-bench-password";
const DOCS: usize = 1_000;
const RETENTION: Duration = Duration::from_secs(30 * 86_400);
const PEER_URI_VAR: &str = "DATA_API_TEST_MONGODB_URI";

/// A service over `data`: with `state`'s stores, or the in-process ones.
fn service(data: &Arc<dyn Backend>, state: Option<&StateStores>) -> DataApiService {
    let builder = DataApi::builder()
        .app_id(APP)
        .data_source_with_access(SOURCE, data.clone(), AccessLevel::ReadWrite)
        .signing_key("bench-1", "a-signing-key-for-the-state-benchmark");
    let builder = match state {
        Some(state) => state.install(builder),
        None => builder.api_key("bench", KEY).user(EMAIL, PASSWORD),
    };
    builder.build().expect("service")
}

/// The API key and an access token of a service (the state variants get a
/// key and a user of their own).
async fn credentials(service: &DataApiService, state: Option<&StateStores>) -> (String, String) {
    let key = match state {
        Some(state) => {
            state.users.add(EMAIL, PASSWORD).await.expect("user");
            state.keys.create("bench").await.expect("key")
        }
        None => KEY.to_owned(),
    };
    let login = http::Request::post(format!(
        "/api/client/v2.0/app/{APP}/auth/providers/local-userpass/login"
    ))
    .header("content-type", "application/json")
    .body(Full::new(Bytes::from(
        json!({"username": EMAIL, "password": PASSWORD}).to_string(),
    )))
    .expect("request");
    let (_, status, body) = timed_call(service, login).await;
    assert_eq!(status, 200, "login: {body:?}");
    let body: Value = serde_json::from_slice(&body).expect("JSON");
    let access = body["access_token"].as_str().expect("token").to_owned();
    (key, access)
}

/// How a variant authenticates.
#[derive(Clone, Copy)]
enum Credential {
    ApiKey,
    Bearer,
}

struct Variant {
    label: String,
    service: DataApiService,
    header: (&'static str, String),
}

impl Variant {
    async fn new(
        label: &str,
        data: &Arc<dyn Backend>,
        state: Option<&StateStores>,
        credential: Credential,
    ) -> Variant {
        let service = service(data, state);
        let (key, access) = credentials(&service, state).await;
        let header = match credential {
            Credential::ApiKey => ("apiKey", key),
            Credential::Bearer => ("authorization", format!("Bearer {access}")),
        };
        Variant {
            label: label.to_owned(),
            service,
            header,
        }
    }

    fn request(&self, i: usize) -> http::Request<Full<Bytes>> {
        let body = json!({"dataSource": SOURCE, "database": "bench", "collection": "docs",
                          "filter": {"_id": i % DOCS}});
        http::Request::post(format!("/app/{APP}/endpoint/data/v1/action/findOne"))
            .header(self.header.0, self.header.1.as_str())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request")
    }
}

async fn compare(title: &str, variants: &[Variant], rounds: usize) {
    let warm_up = (rounds / 10).max(1);
    let mut samples: Vec<Vec<u64>> = variants
        .iter()
        .map(|_| Vec::with_capacity(rounds))
        .collect();
    let started = Instant::now();
    for i in 0..warm_up + rounds {
        for k in 0..variants.len() {
            let v = (i + k) % variants.len();
            let (elapsed, status, body) =
                timed_call(&variants[v].service, variants[v].request(i)).await;
            assert_eq!(status, 200, "{title} / {}: {body:?}", variants[v].label);
            if i >= warm_up {
                samples[v].push(elapsed.as_nanos() as u64);
            }
        }
    }
    let labels: Vec<&str> = variants.iter().map(|v| v.label.as_str()).collect();
    print_comparison(title, &labels, samples, warm_up, rounds, started.elapsed());
}

async fn seeded_data() -> Arc<dyn Backend> {
    let data: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let documents = (0..DOCS)
        .map(|i| doc! {"_id": i as i64, "n": i as i64})
        .collect();
    data.insert_many(&Namespace::new("bench", "docs"), documents)
        .await
        .expect("seed");
    data
}

async fn stores(backend: Arc<dyn Backend>, database: &str) -> StateStores {
    StateStores::open(backend, database, RETENTION)
        .await
        .expect("state stores")
}

/// Offers `total` entries in bursts, waiting for each burst to be stored;
/// prints entries stored per second and how many were dropped.
async fn log_throughput(label: &str, backend: Arc<dyn Backend>, database: &str, total: usize) {
    const BURST: usize = 5_000;
    let sink = BackendLogSink::from_arc(backend.clone(), database, RETENTION);
    sink.ensure_indexes().await.expect("indexes");
    let namespace = Namespace::new(database, "request_logs");
    let mut entry = RequestLog::new("000000000000000000000000", "POST", SystemTime::now());
    entry.action = Some("findOne");
    entry.status = 200;
    entry.principal_name = Some("bench".into());
    entry.data_source = Some(SOURCE.into());
    let started = Instant::now();
    let mut offered = 0;
    while offered < total {
        for _ in 0..BURST.min(total - offered) {
            entry.request_id = format!("{offered:024x}");
            sink.record(&entry);
            offered += 1;
        }
        let expected = offered as u64 - sink.dropped();
        loop {
            let counted = backend
                .aggregate(&namespace, vec![doc! {"$count": "n"}])
                .await
                .expect("count");
            let stored = counted
                .first()
                .and_then(|d| d.get_i32("n").ok().map(i64::from).or(d.get_i64("n").ok()))
                .unwrap_or(0) as u64;
            if stored >= expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "  {label:<50} {:>9.0} entries/s stored   {total} offered, {} dropped, {:.3} s",
        total as f64 / elapsed.as_secs_f64(),
        sink.dropped(),
        elapsed.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let peer_rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    println!("state stores benchmark; load average {}", load_average());

    let data = seeded_data().await;
    let in_memory = stores(Arc::new(MemoryBackend::new()), "__data_api").await;
    let dir = integration_tests::temp_dir();
    let durable_backend: Arc<dyn Backend> =
        Arc::new(MemoryBackend::open(dir.join("state")).expect("durable state"));
    let durable = stores(durable_backend.clone(), "__data_api").await;

    for (credential, name) in [
        (Credential::ApiKey, "API key"),
        (Credential::Bearer, "bearer token"),
    ] {
        let mut variants = Vec::new();
        variants.push(Variant::new("in-process stores (baseline)", &data, None, credential).await);
        variants.push(
            Variant::new(
                "state stores, embedded engine in memory",
                &data,
                Some(&in_memory),
                credential,
            )
            .await,
        );
        variants.push(
            Variant::new(
                "state stores, durable embedded engine (file:)",
                &data,
                Some(&durable),
                credential,
            )
            .await,
        );
        compare(
            &format!("1. findOne by _id ({DOCS} documents, embedded engine), {name}"),
            &variants,
            rounds,
        )
        .await;
        // The next part's stores need a fresh user and key.
        for state in [&in_memory, &durable] {
            let _ = state.users.remove(EMAIL).await;
            let _ = state.keys.delete("bench").await;
        }
    }

    let peer = std::env::var(PEER_URI_VAR)
        .ok()
        .filter(|uri| !uri.is_empty());
    let peer_backend: Option<Arc<dyn Backend>> = match &peer {
        Some(uri) => Some(Arc::new(
            MongoBackend::connect(uri, MongoBackendOptions::default())
                .await
                .expect("the peer"),
        )),
        None => None,
    };
    match &peer_backend {
        Some(backend) => {
            let database = integration_tests::unique_db("state_bench");
            let on_peer = stores(backend.clone(), &database).await;
            for (credential, name) in [
                (Credential::ApiKey, "API key"),
                (Credential::Bearer, "bearer token"),
            ] {
                let mut variants = Vec::new();
                variants.push(
                    Variant::new("in-process stores (baseline)", &data, None, credential).await,
                );
                variants.push(
                    Variant::new(
                        "state stores on the peer (MongoDB driver)",
                        &data,
                        Some(&on_peer),
                        credential,
                    )
                    .await,
                );
                compare(
                    &format!("2. findOne by _id, {name}, state stores on the peer"),
                    &variants,
                    peer_rounds,
                )
                .await;
                let _ = on_peer.users.remove(EMAIL).await;
                let _ = on_peer.keys.delete("bench").await;
            }
        }
        None => {
            println!("\n2. skipped: set {PEER_URI_VAR} to measure the state stores on the peer")
        }
    }

    println!("\n3. request-log writes (BackendLogSink, batches of up to 500 per insertMany)");
    log_throughput(
        "embedded engine in memory",
        Arc::new(MemoryBackend::new()),
        "__data_api",
        100_000,
    )
    .await;
    log_throughput(
        "durable embedded engine (file:)",
        durable_backend.clone(),
        "__logs_bench",
        100_000,
    )
    .await;
    if let Some(backend) = peer_backend {
        let database = integration_tests::unique_db("log_bench");
        log_throughput("the peer (MongoDB driver)", backend, &database, 10_000).await;
    }
    drop((durable, durable_backend));
    let _ = std::fs::remove_dir_all(dir);
}
