//! The durable mode of the embedded engine, measured:
//!
//! 1. HTTP throughput at 32 concurrent clients (in-process server, same
//!    loop as `benches/http.rs`): insertOne, updateOne `$inc` by `_id` and
//!    findOne by `_id`, in memory, durable with `sync = "always"` and durable
//!    with `sync = "periodic"`, with the storage's writes per transaction
//!    (group commit).
//! 2. A large collection (default 1,000,000 documents): load rate, file size
//!    per document after the inserts, after updating every document once and
//!    after deleting every document; start-up time and resident memory of a
//!    fresh process opening the directory (RAM per document).
//!
//! ```text
//! cargo bench -p integration-tests --bench durable [-- SECONDS DOCUMENTS]   # SECONDS 0: no HTTP part
//! ```
//!
//! Writes only to a temporary directory it removes; talks to 127.0.0.1 only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::doc;
use tokio::net::TcpListener;
use tower_data_api::backend::{IndexSpec, SyncMode, UpdateModifications, UpdateQuery};
use tower_data_api::{Backend, DataApi, MemoryBackend, Namespace};

/// Builds the body of a worker's i-th request.
type BodyFn = Arc<dyn Fn(usize, usize) -> String + Send + Sync>;

const KEY: &str = "bench-key-0123456789abcdefghijklmnopqrstuvwxyz";
const CLIENTS: usize = 32;
const SEED: i64 = 10_000;

/// Benchmarks measure the engine and the protocol, not a log subscriber.
struct NoLogs;

impl tower_data_api::log::LogSink for NoLogs {
    fn record(&self, _log: &tower_data_api::log::RequestLog) {}
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tda-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn serve(backend: MemoryBackend) -> SocketAddr {
    let service = DataApi::builder()
        .data_source("mongodb-atlas", backend)
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

fn url(addr: SocketAddr, action: &str) -> String {
    format!("http://{addr}/app/data-local/endpoint/data/v1/action/{action}")
}

/// `CLIENTS` workers for `duration`, each sending `body(worker, i)`; req/s
/// and p99 in milliseconds.
async fn load(url: String, duration: Duration, body: BodyFn) -> (f64, f64, usize) {
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|worker| {
            let url = url.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut latencies = Vec::new();
                let mut errors = 0;
                let mut i = 0;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    match client
                        .post(&url)
                        .header("apiKey", KEY)
                        .body(body(worker, i))
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                        }
                        _ => errors += 1,
                    }
                    latencies.push(sent.elapsed().as_micros() as u64);
                    i += 1;
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.expect("worker");
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let p99 = all
        .get(((all.len().saturating_sub(1)) as f64 * 0.99) as usize)
        .map_or(0.0, |us| *us as f64 / 1000.0);
    (
        all.len() as f64 / started.elapsed().as_secs_f64(),
        p99,
        errors,
    )
}

async fn http_figures(seconds: u64) {
    println!("HTTP, {CLIENTS} clients, {seconds} s per scenario, {SEED} documents seeded");
    println!(
        "{:<22} {:<26} {:>10} {:>10} {:>7} {:>18}",
        "mode", "scenario", "req/s", "p99 ms", "errors", "writes/commit"
    );
    let modes: [(&str, Option<SyncMode>); 3] = [
        ("memory", None),
        ("durable, sync always", Some(SyncMode::Always)),
        ("durable, sync periodic", Some(SyncMode::Periodic)),
    ];
    for (label, sync) in modes {
        let dir = temp_dir("http");
        let backend = match sync {
            None => MemoryBackend::new(),
            Some(sync) => MemoryBackend::open_with(&dir, sync).expect("open"),
        };
        let ns = Namespace::new("bench", "users");
        let docs: Vec<_> = (0..SEED)
            .map(|i| doc! {"_id": i, "name": format!("user{i}"), "n": 0})
            .collect();
        backend.insert_many(&ns, docs).await.expect("seed");
        let addr = serve(backend.clone()).await;
        let target = r#""dataSource":"mongodb-atlas","database":"bench","collection":"users""#;
        let scenarios: [(&str, &str, BodyFn); 3] = [
            (
                "insertOne",
                "insertOne",
                Arc::new(move |_, _| format!(r#"{{{target},"document":{{"name":"new","n":0}}}}"#)),
            ),
            (
                "updateOne $inc by _id",
                "updateOne",
                Arc::new(move |w, i| {
                    let id = ((w * 7919 + i * 31) as i64) % SEED;
                    format!(r#"{{{target},"filter":{{"_id":{id}}},"update":{{"$inc":{{"n":1}}}}}}"#)
                }),
            ),
            (
                "findOne by _id",
                "findOne",
                Arc::new(move |w, i| {
                    let id = ((w * 7919 + i * 31) as i64) % SEED;
                    format!(r#"{{{target},"filter":{{"_id":{id}}}}}"#)
                }),
            ),
        ];
        for (name, action, body) in scenarios {
            let before = backend.storage_stats();
            let (rate, p99, errors) =
                load(url(addr, action), Duration::from_secs(seconds), body).await;
            let ratio = match (before, backend.storage_stats()) {
                (Some(a), Some(b)) if b.transactions > a.transactions => format!(
                    "{:.1}",
                    (b.writes - a.writes) as f64 / (b.transactions - a.transactions) as f64
                ),
                _ => "-".into(),
            };
            println!("{label:<22} {name:<26} {rate:>10.0} {p99:>10.2} {errors:>7} {ratio:>18}");
        }
        drop(backend);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn file_size(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("data.redb")).map_or(0, |m| m.len())
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// In a fresh process: open the directory, print time and memory.
fn load_only(dir: &Path) {
    let before = rss_bytes();
    let started = Instant::now();
    let backend = MemoryBackend::open(dir).expect("open");
    let took = started.elapsed();
    let after = rss_bytes();
    let info = backend.storage_info().expect("durable").clone();
    println!(
        "LOADED {} {} {} {}",
        info.documents,
        took.as_millis(),
        before,
        after
    );
}

/// In a fresh process: the same documents in an in-memory backend, for
/// the RAM per document of the engine itself.
fn memory_only(documents: i64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let before = rss_bytes();
    let backend = MemoryBackend::new();
    runtime.block_on(async {
        for start in (0..documents).step_by(10_000) {
            backend
                .insert_many(&Namespace::new("bench", "docs"), docs(start, documents))
                .await
                .expect("insert");
        }
    });
    println!("MEMORY {documents} {before} {}", rss_bytes());
}

/// Documents `start..start + 10,000` (at most `end`).
fn docs(start: i64, end: i64) -> Vec<bson::Document> {
    (start..(start + 10_000).min(end))
        .map(|i| doc! {"_id": i, "k": i, "name": format!("user{i}"), "group": i % 100, "score": (i * 37) % 1000})
        .collect()
}

async fn large_figures(documents: i64) {
    const CHUNK: i64 = 10_000;
    let dir = temp_dir("large");
    let ns = Namespace::new("bench", "docs");
    println!(
        "\nLarge collection: {documents} documents (~90 bytes of BSON each), batches of {CHUNK}"
    );
    {
        let backend = MemoryBackend::open(&dir).expect("open").with_index(
            "bench",
            "docs",
            IndexSpec::new([("k", 1)]).expect("spec"),
        );
        let started = Instant::now();
        for start in (0..documents).step_by(CHUNK as usize) {
            backend
                .insert_many(&ns, docs(start, documents))
                .await
                .expect("insert");
        }
        let took = started.elapsed().as_secs_f64();
        let size = file_size(&dir);
        println!(
            "inserted {documents}: {:.1} s ({:.0} docs/s); file {:.1} MiB, {:.0} bytes/document",
            took,
            documents as f64 / took,
            mib(size),
            size as f64 / documents as f64
        );
    }
    // A fresh process, so the figure is what loading costs and nothing else.
    let exe = std::env::current_exe().expect("exe");
    let output = std::process::Command::new(exe)
        .arg("--load-only")
        .arg(&dir)
        .output()
        .expect("load process");
    let text = String::from_utf8_lossy(&output.stdout);
    if let Some(line) = text.lines().find(|l| l.starts_with("LOADED ")) {
        let v: Vec<u64> = line[7..]
            .split(' ')
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [docs, ms, before, after] = v[..] {
            println!(
                "start-up (fresh process, no secondary index): {docs} documents loaded in {:.2} s; \
                 RSS {:.0} MiB -> {:.0} MiB, {:.0} bytes of RAM per document",
                ms as f64 / 1000.0,
                mib(before),
                mib(after),
                (after - before) as f64 / docs as f64
            );
        }
    } else {
        println!(
            "start-up: the load process failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let output = std::process::Command::new(std::env::current_exe().expect("exe"))
        .arg("--memory-only")
        .arg(documents.to_string())
        .output()
        .expect("memory process");
    let text = String::from_utf8_lossy(&output.stdout);
    if let Some(line) = text.lines().find(|l| l.starts_with("MEMORY ")) {
        let v: Vec<u64> = line[7..]
            .split(' ')
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [docs, before, after] = v[..] {
            println!(
                "in-memory mode for comparison (fresh process, inserted, no secondary index): \
                 RSS {:.0} MiB -> {:.0} MiB, {:.0} bytes of RAM per document",
                mib(before),
                mib(after),
                (after - before) as f64 / docs as f64
            );
        }
    }
    let backend = MemoryBackend::open(&dir).expect("open").with_index(
        "bench",
        "docs",
        IndexSpec::new([("k", 1)]).expect("spec"),
    );
    let started = Instant::now();
    for start in (0..documents).step_by(CHUNK as usize) {
        let query = UpdateQuery::new(
            doc! {"k": {"$gte": start, "$lt": start + CHUNK}},
            UpdateModifications::Operators(doc! {"$set": {"name": "renamed user", "score": -1}}),
        );
        backend.update_many(&ns, query).await.expect("update");
    }
    let size = file_size(&dir);
    println!(
        "updated every document once: {:.1} s; file {:.1} MiB, {:.0} bytes/document",
        started.elapsed().as_secs_f64(),
        mib(size),
        size as f64 / documents as f64
    );
    let started = Instant::now();
    for start in (0..documents).step_by(CHUNK as usize) {
        backend
            .delete_many(&ns, doc! {"k": {"$gte": start, "$lt": start + CHUNK}})
            .await
            .expect("delete");
    }
    let size = file_size(&dir);
    println!(
        "deleted every document: {:.1} s; file {:.1} MiB",
        started.elapsed().as_secs_f64(),
        mib(size)
    );
    // Space freed by deletes is reused: the same inserts again.
    let started = Instant::now();
    for start in (0..documents).step_by(CHUNK as usize) {
        backend
            .insert_many(&ns, docs(start, documents))
            .await
            .expect("insert");
    }
    let size = file_size(&dir);
    println!(
        "inserted {documents} again: {:.1} s; file {:.1} MiB, {:.0} bytes/document",
        started.elapsed().as_secs_f64(),
        mib(size),
        size as f64 / documents as f64
    );
    drop(backend);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--load-only") {
        load_only(Path::new(&args[1]));
        return;
    }
    if args.first().map(String::as_str) == Some("--memory-only") {
        memory_only(args[1].parse().expect("documents"));
        return;
    }
    let seconds: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let documents: i64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        if seconds > 0 {
            http_figures(seconds).await;
        }
        large_figures(documents).await;
    });
}
