//! CPU time per request inside the service, without a network: `findOne`
//! by `_id` and `insertOne` on the embedded engine, authenticated by an API
//! key, called through `tower::ServiceExt::oneshot` on one thread, without
//! request logs (the baseline) and with the request log written, text or
//! JSON, to a discarding output: by the standalone's own sink
//! (`request_lines`, what it ships) and as a `tracing` event formatted by
//! its subscriber (`TracingLogSink`, the library's default). Load from outside (`integration-tests/load/wrk.sh`) also pays
//! for the kernel's TCP and for wrk itself; this isolates what the pipeline
//! costs, with less noise, so a change to it can be measured.
//!
//! Variants are interleaved: each round runs a batch of every variant, the
//! first variant rotating; the first round is a discarded warm-up.
//!
//! ```text
//! cargo bench -p integration-tests --bench request_cost [-- ROUNDS]
//! ```
//!
//! `ROUNDS` defaults to 20 (5,000 requests per variant and round).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use integration_tests::bench::load_average;
use integration_tests::standalone::{log_subscriber, request_lines_to, LogFormat};
use tower::ServiceExt;
use tower_data_api::{DataApi, DataApiService, MemoryBackend};

const APP: &str = "cost-bench";
const KEY: &str = "cost-bench-key-0123456789abcdefghijklmnopqrstuvwxyz0123456789";
const PER_BATCH: usize = 5_000;
const NS: &str = r#""dataSource":"mongodb-atlas","database":"bench","collection":"tasks""#;

/// Makes the `i`-th request of a batch.
type MakeRequest<'a> = &'a dyn Fn(usize) -> http::Request<Full<Bytes>>;

/// A discarding output that counts the bytes written to it.
#[derive(Clone, Default)]
struct Written(Arc<AtomicUsize>);

impl std::io::Write for Written {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(bytes.len(), Ordering::Relaxed);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How a variant's request logs are written.
#[derive(Clone, Copy)]
enum Logs {
    Off,
    /// The standalone's request lines.
    Lines(LogFormat),
    /// `tracing` events through the standalone's subscriber.
    Tracing(LogFormat),
}

impl Logs {
    fn name(self) -> &'static str {
        match self {
            Logs::Off => "no request logs (baseline)",
            Logs::Lines(LogFormat::Text) => "text request lines",
            Logs::Lines(LogFormat::Json) => "JSON request lines",
            Logs::Tracing(LogFormat::Text) => "text tracing events",
            Logs::Tracing(LogFormat::Json) => "JSON tracing events",
        }
    }

    /// The subscriber the variant runs under: the standalone's, which
    /// also decides which request lines are written.
    fn subscriber(self) -> Option<Box<dyn tracing::Subscriber + Send + Sync>> {
        match self {
            Logs::Off => None,
            Logs::Lines(format) | Logs::Tracing(format) => Some(log_subscriber(
                format,
                tracing_subscriber::EnvFilter::new("info"),
                std::io::sink,
                false,
            )),
        }
    }
}

fn request(action: &str, body: String) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("/app/{APP}/endpoint/data/v1/action/{action}"))
        .header("content-type", "application/json")
        .header("apiKey", KEY)
        .body(Full::new(Bytes::from(body)))
        .expect("a request")
}

/// Sends `count` requests made by `make`, one after another; every answer
/// must have `status`.
async fn batch(
    service: &DataApiService,
    count: usize,
    status: u16,
    make: MakeRequest<'_>,
) -> Duration {
    let started = Instant::now();
    for i in 0..count {
        let response = service.clone().oneshot(make(i)).await.expect("infallible");
        assert_eq!(response.status().as_u16(), status);
        let body = response.into_body().collect().await.expect("infallible");
        std::hint::black_box(body.to_bytes());
    }
    started.elapsed()
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // One engine behind every variant's service.
    let backend = MemoryBackend::new();
    let builder = || {
        DataApi::builder()
            .app_id(APP)
            .data_source("mongodb-atlas", backend.clone())
            .api_key("bench", KEY)
    };
    let service = builder().build().expect("a service");
    let text_written = Written::default();
    let json_written = Written::default();
    let (text_lines, text_guard) = request_lines_to(LogFormat::Text, text_written.clone());
    let (json_lines, json_guard) = request_lines_to(LogFormat::Json, json_written.clone());
    let text_service = builder().log_sink(text_lines).build().expect("a service");
    let json_service = builder().log_sink(json_lines).build().expect("a service");
    let documents: Vec<String> = (0..1_000)
        .map(|i| format!(r#"{{"_id":{i},"text":"task {i}","done":false,"n":0}}"#))
        .collect();
    runtime.block_on(async {
        let seed = request(
            "insertMany",
            format!(r#"{{{NS},"documents":[{}]}}"#, documents.join(",")),
        );
        let response = service.clone().oneshot(seed).await.expect("infallible");
        assert_eq!(response.status(), 201);
    });

    let find_one = |i: usize| {
        request(
            "findOne",
            format!(r#"{{{NS},"filter":{{"_id":{}}}}}"#, i % 1_000),
        )
    };
    let insert_one = |_: usize| {
        request(
            "insertOne",
            format!(r#"{{{NS},"document":{{"text":"new task","done":false}}}}"#),
        )
    };
    let actions: [(&str, u16, MakeRequest<'_>); 2] = [
        ("findOne by _id", 200, &find_one),
        ("insertOne", 201, &insert_one),
    ];
    let variants = [
        Logs::Off,
        Logs::Lines(LogFormat::Text),
        Logs::Lines(LogFormat::Json),
        Logs::Tracing(LogFormat::Text),
        Logs::Tracing(LogFormat::Json),
    ];

    println!(
        "CPU time per request in the service (one thread, no network), {rounds} rounds of \
         {PER_BATCH} per variant; load average {} at start",
        load_average()
    );
    for (action, status, make) in actions {
        let mut totals = vec![Duration::ZERO; variants.len()];
        for round in 0..=rounds {
            for k in 0..variants.len() {
                let v = (k + round) % variants.len();
                let service = match variants[v] {
                    Logs::Lines(LogFormat::Text) => &text_service,
                    Logs::Lines(LogFormat::Json) => &json_service,
                    Logs::Off | Logs::Tracing(_) => &service,
                };
                let elapsed = match variants[v].subscriber() {
                    None => runtime.block_on(batch(service, PER_BATCH, status, make)),
                    Some(subscriber) => tracing::subscriber::with_default(subscriber, || {
                        runtime.block_on(batch(service, PER_BATCH, status, make))
                    }),
                };
                if round > 0 {
                    totals[v] += elapsed;
                }
            }
        }
        println!("\n{action}");
        let per_request = |total: Duration| total.as_secs_f64() * 1e6 / (rounds * PER_BATCH) as f64;
        let baseline = per_request(totals[0]);
        for (variant, total) in variants.iter().zip(&totals) {
            let us = per_request(*total);
            println!(
                "  {:<30} {us:>7.2} µs/request  {:>5.2}× the baseline  (+{:.2} µs)",
                variant.name(),
                us / baseline,
                us - baseline
            );
        }
    }
    drop((text_guard, json_guard));
    for (format, written) in [("text", &text_written), ("JSON", &json_written)] {
        // Every measured request wrote a line of 100 bytes or more.
        let bytes = written.0.load(Ordering::Relaxed);
        let lines = 2 * rounds * PER_BATCH;
        assert!(
            bytes >= 100 * lines,
            "{format} request lines: {bytes} bytes"
        );
    }
}
