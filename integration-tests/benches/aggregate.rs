//! Throughput of the embedded engine's aggregation: `$match` + `$group` over
//! 100,000 documents on `MemoryBackend` through the `Backend` trait, against a
//! baseline in the same process (a hand-written loop doing the same filtering
//! and grouping over the same `Vec<Document>` with a `HashMap`), so the ratio
//! shows what the pipeline engine costs over the bare work.
//!
//! ```text
//! cargo bench -p integration-tests --bench aggregate [-- SECONDS]
//! ```

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};
use tower_data_api::backend::{Backend, Namespace};
use tower_data_api::MemoryBackend;

const DOCUMENTS: i64 = 100_000;
const CATEGORIES: i64 = 50;
const MAX_ROUNDS: usize = 10_000;

/// The documents: a category, a status, an amount of mixed numeric types.
fn documents() -> Vec<Document> {
    (0..DOCUMENTS)
        .map(|i| {
            let amount = match i % 3 {
                0 => Bson::Int32((i % 1000) as i32),
                1 => Bson::Int64(i % 1000),
                _ => Bson::Double((i % 1000) as f64 / 2.0),
            };
            doc! {
                "_id": i,
                "category": format!("c{}", i % CATEGORIES),
                "status": if i % 4 == 0 { "closed" } else { "open" },
                "amount": amount,
                "note": "some text to make the document a realistic size",
            }
        })
        .collect()
}

/// `{$match: {status: "open"}}, {$group: {_id: "$category", total: {$sum: "$amount"}, n: {$sum: 1}}}`.
fn pipeline() -> Vec<Document> {
    vec![
        doc! {"$match": {"status": "open"}},
        doc! {"$group": {"_id": "$category", "total": {"$sum": "$amount"}, "n": {"$sum": 1}}},
    ]
}

/// The same work by hand: filter, then sum per category in a `HashMap`.
fn baseline(docs: &[Document]) -> usize {
    let mut groups: HashMap<&str, (f64, i64)> = HashMap::new();
    for d in docs {
        if d.get_str("status") != Ok("open") {
            continue;
        }
        let Ok(category) = d.get_str("category") else {
            continue;
        };
        let amount = match d.get("amount") {
            Some(Bson::Int32(v)) => f64::from(*v),
            Some(Bson::Int64(v)) => *v as f64,
            Some(Bson::Double(v)) => *v,
            _ => 0.0,
        };
        let slot = groups.entry(category).or_insert((0.0, 0));
        slot.0 += amount;
        slot.1 += 1;
    }
    groups.len()
}

/// Runs `f` repeatedly for about `seconds` (at least 3 times); returns rounds and time.
fn measure(seconds: f64, mut f: impl FnMut() -> usize) -> (usize, Duration) {
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut rounds = 0;
    while rounds < MAX_ROUNDS && (rounds < 3 || start.elapsed() < budget) {
        black_box(f());
        rounds += 1;
    }
    (rounds, start.elapsed())
}

fn main() {
    let seconds: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5.0);
    let docs = documents();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let backend = MemoryBackend::new();
    let ns = Namespace::new("bench", "orders");
    runtime
        .block_on(backend.insert_many(&ns, docs.clone()))
        .expect("seed");

    // Both must find the same groups.
    let groups = runtime
        .block_on(backend.aggregate(&ns, pipeline()))
        .expect("aggregate");
    assert_eq!(groups.len(), baseline(&docs));

    let (engine_rounds, engine_time) = measure(seconds, || {
        runtime
            .block_on(backend.aggregate(&ns, pipeline()))
            .map(|g| g.len())
            .unwrap_or(0)
    });
    let (base_rounds, base_time) = measure(seconds, || baseline(&docs));

    let report = |name: &str, rounds: usize, time: Duration| {
        let per_second = rounds as f64 / time.as_secs_f64();
        println!(
            "{name:<28} {rounds:>6} runs in {:>6.2} s: {per_second:>9.2} pipelines/s, {:>12.0} documents/s",
            time.as_secs_f64(),
            per_second * DOCUMENTS as f64
        );
        per_second
    };
    println!(
        "$match + $group over {DOCUMENTS} documents ({CATEGORIES} groups, 75% match), {seconds} s per side"
    );
    let engine = report("MemoryBackend::aggregate", engine_rounds, engine_time);
    let base = report("hand-written HashMap loop", base_rounds, base_time);
    println!(
        "ratio: the engine runs at {:.2}x the baseline's pipelines/s",
        engine / base
    );
}
