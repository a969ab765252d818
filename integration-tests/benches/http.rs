//! HTTP throughput and latency of the Data API on the embedded engine, against
//! a baseline server in the same process (same server loop, a handler that
//! returns a fixed JSON body), so the ratio shows what the Data API itself costs.
//!
//! Also: what handing long work to the blocking pool costs (a findOne with
//! `$expr` on a one-document collection, which goes to the pool, beside a
//! findOne by `_id`, which runs inline), and how findOne latency holds up while two CPU-heavy
//! aggregations keep the engine's job slots busy.
//!
//! ```text
//! cargo bench -p integration-tests --bench http [-- SECONDS CONCURRENCY]
//! ```
//!
//! Loops are bounded in time and count and talk to 127.0.0.1 only.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;
use tokio::net::TcpListener;
use tower_data_api::{DataApi, MemoryBackend};

const KEY: &str = "bench-key-0123456789abcdefghijklmnopqrstuvwxyz";
const SEED_DOCUMENTS: i64 = 10_000;
const MAX_REQUESTS_PER_WORKER: usize = 200_000;

struct Figures {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[index] as f64 / 1000.0
    }
}

async fn serve_baseline() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let service = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
        let mut response = http::Response::new(Full::new(Bytes::from_static(
            br#"{"document":{"_id":1,"name":"baseline"}}"#,
        )));
        response.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
        Ok::<_, Infallible>(response)
    });
    tokio::spawn(tower_data_api::server::serve(
        listener,
        service,
        std::future::pending(),
    ));
    addr
}

async fn serve_data_api() -> SocketAddr {
    let backend = MemoryBackend::new();
    let service = DataApi::builder()
        .data_source_with_access(
            "mongodb-atlas",
            Arc::new(backend),
            tower_data_api::AccessLevel::ReadWrite,
        )
        .api_key("bench", KEY)
        .log_sink(NoLogs)
        .build()
        .expect("configuration");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(tower_data_api::server::serve(
        listener,
        service,
        std::future::pending(),
    ));
    addr
}

/// Benchmarks measure the engine and the protocol, not a log subscriber.
struct NoLogs;

impl tower_data_api::log::LogSink for NoLogs {
    fn record(&self, _log: &tower_data_api::log::RequestLog) {}
}

/// The body of the i-th findOne by `_id` over the seeded users.
fn find_one_by_id(i: usize) -> String {
    json!({"dataSource": "mongodb-atlas", "database": "bench", "collection": "users",
           "filter": {"_id": (i as i64) % SEED_DOCUMENTS}})
    .to_string()
}

fn action_url(addr: SocketAddr, action: &str) -> String {
    format!("http://{addr}/app/data-local/endpoint/data/v1/action/{action}")
}

async fn seed(addr: SocketAddr) {
    let client = reqwest::Client::new();
    for chunk in 0..(SEED_DOCUMENTS / 1000) {
        let documents: Vec<_> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| json!({"_id": i, "name": format!("user{i}"), "group": i % 100, "score": (i * 37) % 1000}))
            .collect();
        let body = json!({"dataSource": "mongodb-atlas", "database": "bench", "collection": "users", "documents": documents});
        let response = client
            .post(action_url(addr, "insertMany"))
            .header("apiKey", KEY)
            .body(body.to_string())
            .send()
            .await
            .expect("seed request");
        assert!(response.status().is_success(), "seeding failed");
    }
}

/// Runs `concurrency` workers for `duration`, each sending requests built by `body(i)`.
async fn load(
    url: String,
    duration: Duration,
    concurrency: usize,
    body: Arc<dyn Fn(usize) -> String + Send + Sync>,
) -> Figures {
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let url = url.clone();
        let body = body.clone();
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut i = worker * MAX_REQUESTS_PER_WORKER;
            while Instant::now() < deadline && latencies.len() < MAX_REQUESTS_PER_WORKER {
                let sent = Instant::now();
                let result = client
                    .post(&url)
                    .header("apiKey", KEY)
                    .body(body(i))
                    .send()
                    .await;
                match result {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                    }
                    _ => errors += 1,
                }
                latencies.push(sent.elapsed().as_micros() as u64);
                i += 1;
            }
            (latencies, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (latencies, worker_errors) = worker.await.expect("worker");
        latencies_us.extend(latencies);
        errors += worker_errors;
    }
    latencies_us.sort_unstable();
    Figures {
        requests: latencies_us.len(),
        errors,
        elapsed: started.elapsed(),
        latencies_us,
    }
}

fn print_row(name: &str, figures: &Figures, baseline: Option<f64>) {
    let ratio = baseline
        .map(|rate| format!("{:>6.2}", figures.rate() / rate))
        .unwrap_or_else(|| "  1.00".into());
    println!(
        "{name:<28} {:>10.0} req/s  p50 {:>7.3} ms  p90 {:>7.3} ms  p99 {:>7.3} ms  errors {:>4}  vs baseline {ratio}",
        figures.rate(),
        figures.percentile(0.50),
        figures.percentile(0.90),
        figures.percentile(0.99),
        figures.errors,
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    let concurrency: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(32);
    let duration = Duration::from_secs(seconds);
    println!(
        "HTTP benchmark: {seconds} s per scenario, {concurrency} concurrent keep-alive clients, \
         {SEED_DOCUMENTS} documents, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    let baseline_addr = serve_baseline().await;
    let api = serve_data_api().await;
    seed(api).await;

    let baseline = load(
        format!("http://{baseline_addr}/"),
        duration,
        concurrency,
        Arc::new(|_| String::from("{}")),
    )
    .await;
    print_row("baseline (fixed JSON)", &baseline, None);
    let base_rate = Some(baseline.rate());

    let by_id = load(
        action_url(api, "findOne"),
        duration,
        concurrency,
        Arc::new(find_one_by_id),
    )
    .await;
    print_row("findOne by _id", &by_id, base_rate);

    let scan = load(
        action_url(api, "find"),
        duration,
        concurrency,
        Arc::new(|i| {
            json!({"dataSource": "mongodb-atlas", "database": "bench", "collection": "users",
                   "filter": {"group": (i % 100) as i64, "score": {"$gte": 500}}, "limit": 10})
            .to_string()
        }),
    )
    .await;
    print_row("find filtered (10k scan)", &scan, base_rate);

    let insert = load(
        action_url(api, "insertOne"),
        duration,
        concurrency,
        Arc::new(|i| {
            json!({"dataSource": "mongodb-atlas", "database": "bench", "collection": "writes",
                   "document": {"n": i as i64, "text": "hello"}})
            .to_string()
        }),
    )
    .await;
    print_row("insertOne", &insert, base_rate);

    let update = load(
        action_url(api, "updateOne"),
        duration,
        concurrency,
        Arc::new(|i| {
            json!({"dataSource": "mongodb-atlas", "database": "bench", "collection": "users",
                   "filter": {"_id": (i as i64) % SEED_DOCUMENTS}, "update": {"$inc": {"score": 1}}})
            .to_string()
        }),
    )
    .await;
    print_row("updateOne by _id ($inc)", &update, base_rate);

    // The hand-off: the same one-document collection, read inline (by _id)
    // and through the blocking pool (a scan).
    let client = reqwest::Client::new();
    let tiny = json!({"dataSource": "mongodb-atlas", "database": "bench", "collection": "tiny",
                      "document": {"_id": 1, "name": "only"}});
    let seeded = client
        .post(action_url(api, "insertOne"))
        .header("apiKey", KEY)
        .body(tiny.to_string())
        .send()
        .await
        .expect("seed tiny");
    assert!(seeded.status().is_success(), "seeding tiny failed");
    let inline = load(
        action_url(api, "findOne"),
        duration,
        concurrency,
        Arc::new(|_| {
            json!({"dataSource": "mongodb-atlas", "database": "bench", "collection": "tiny",
                   "filter": {"_id": 1}})
            .to_string()
        }),
    )
    .await;
    print_row("tiny: findOne by _id (inline)", &inline, base_rate);
    let pooled = load(
        action_url(api, "findOne"),
        duration,
        concurrency,
        Arc::new(|_| {
            json!({"dataSource": "mongodb-atlas", "database": "bench", "collection": "tiny",
                   "filter": {"$expr": {"$eq": ["$name", "only"]}}})
            .to_string()
        }),
    )
    .await;
    print_row("tiny: findOne by $expr (pool)", &pooled, base_rate);

    // Responsiveness: findOne by _id alone, then while two heavy
    // aggregations run back to back for the whole scenario.
    let quiet = load(
        action_url(api, "findOne"),
        duration,
        concurrency,
        Arc::new(find_one_by_id),
    )
    .await;
    print_row("findOne by _id, quiet", &quiet, base_rate);
    let stop_at = Instant::now() + duration + Duration::from_secs(1);
    let mut heavy = Vec::new();
    for _ in 0..2 {
        let url = action_url(api, "aggregate");
        heavy.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let pipeline = json!([{"$project": {"x": {"$reduce": {
                "input": {"$range": [0, 2000]}, "initialValue": 0,
                "in": {"$add": ["$$value", {"$reduce": {"input": {"$range": [0, 200]},
                        "initialValue": 0, "in": {"$add": ["$$value", "$$this"]}}}]}}}}}]);
            let body = json!({"dataSource": "mongodb-atlas", "database": "bench",
                              "collection": "users", "pipeline": pipeline})
            .to_string();
            let mut runs = 0u32;
            while Instant::now() < stop_at && runs < 1000 {
                let _ = client
                    .post(&url)
                    .header("apiKey", KEY)
                    .timeout(Duration::from_secs(120))
                    .body(body.clone())
                    .send()
                    .await;
                runs += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = load(
        action_url(api, "findOne"),
        duration,
        concurrency,
        Arc::new(find_one_by_id),
    )
    .await;
    print_row("findOne by _id, 2 heavy aggs", &busy, base_rate);
    println!(
        "responsiveness: findOne p99 with two heavy aggregations / without: {:.2}",
        busy.percentile(0.99) / quiet.percentile(0.99).max(0.001)
    );
    for task in heavy {
        task.abort();
    }
}
