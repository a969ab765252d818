//! In-process throughput of the embedded engine ([`MemoryBackend`]) through
//! the [`Backend`] trait: `_id` point lookups, filtered scans over 100,000
//! documents, sorted finds with a limit, `updateOne` by `_id`, `updateMany`
//! over a filter, `insertOne` and `insertMany`. Each figure is printed next
//! to a baseline measured in the same process — plain Rust doing the same
//! work on a `HashMap`/`Vec` of the same documents — and the ratio between
//! the two.
//!
//! Run with `cargo bench -p integration-tests --bench engine`. Every loop is
//! bounded (a fixed number of operations), so the whole run takes seconds.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bson::{doc, Document};
use tower_data_api::backend::{
    Backend, FindOneQuery, FindQuery, MemoryBackend, Namespace, UpdateModifications, UpdateQuery,
};

/// Documents in the benchmark collection.
const DOCS: i32 = 100_000;
const CITIES: &[&str] = &[
    "London", "Paris", "Berlin", "Madrid", "Rome", "Oslo", "Vienna",
];

/// A small deterministic PRNG (64-bit LCG) for the lookup keys.
struct Lcg(u64);

impl Lcg {
    fn next_below(&mut self, n: i32) -> i32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as i32
    }
}

fn document(i: i32) -> Document {
    doc! {
        "_id": i,
        "name": format!("user{i}"),
        "age": i % 100,
        "group": i % 10,
        "score": f64::from(i % 1000) / 10.0,
        "tags": [format!("t{}", i % 5), format!("t{}", i % 3)],
        "address": { "city": CITIES[(i as usize) % CITIES.len()], "zip": format!("{:05}", i % 99_991) },
    }
}

/// One measured figure.
struct Figure {
    name: String,
    ops: u64,
    elapsed: Duration,
}

impl Figure {
    fn per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

fn report(engine: &Figure, baseline: Option<&Figure>) {
    let line = format!(
        "{:<48} {:>12.0} ops/s  ({} ops in {:.3}s)",
        engine.name,
        engine.per_second(),
        engine.ops,
        engine.elapsed.as_secs_f64()
    );
    match baseline {
        Some(b) => println!(
            "{line}\n  baseline: {:<38} {:>12.0} ops/s  -> baseline is {:.1}x faster",
            b.name,
            b.per_second(),
            b.per_second() / engine.per_second()
        ),
        None => println!("{line}"),
    }
}

/// Times `ops` calls of `f`.
fn time(name: &str, ops: u64, mut f: impl FnMut(u64)) -> Figure {
    let start = Instant::now();
    for i in 0..ops {
        f(i);
    }
    Figure {
        name: name.to_owned(),
        ops,
        elapsed: start.elapsed(),
    }
}

/// Times `ops` awaits of `f` inside one runtime entry.
fn time_async<F, Fut>(rt: &tokio::runtime::Runtime, name: &str, ops: u64, mut f: F) -> Figure
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..ops {
            f(i).await;
        }
        Figure {
            name: name.to_owned(),
            ops,
            elapsed: start.elapsed(),
        }
    })
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let backend = MemoryBackend::new();
    let ns = Namespace::new("bench", "people");
    let docs: Vec<Document> = (0..DOCS).map(document).collect();
    let loaded = Instant::now();
    rt.block_on(backend.insert_many(&ns, docs.clone()))
        .expect("load");
    println!(
        "loaded {DOCS} documents with insertMany in {:.3}s",
        loaded.elapsed().as_secs_f64()
    );
    let by_id: HashMap<i32, Document> = docs
        .iter()
        .map(|d| (d.get_i32("_id").unwrap(), d.clone()))
        .collect();
    // References are `Copy`: every `async move` below takes its own.
    let (backend, ns) = (&backend, &ns);

    // _id point lookups.
    let lookups = 200_000;
    let mut rng = Lcg(42);
    let engine = time_async(&rt, "findOne {_id: k}", lookups, |_| {
        let id = rng.next_below(DOCS);
        async move {
            let found = backend
                .find_one(ns, FindOneQuery::new(doc! { "_id": id }))
                .await
                .expect("findOne");
            black_box(found.expect("present"));
        }
    });
    let mut rng = Lcg(42);
    let baseline = time("HashMap get + clone", lookups, |_| {
        let id = rng.next_below(DOCS);
        black_box(by_id.get(&id).cloned().expect("present"));
    });
    report(&engine, Some(&baseline));

    // Filtered scans over the whole collection, three selectivities.
    for (label, filter, keep) in [
        (
            "find {age: 42} (1%)",
            doc! { "age": 42 },
            (|d: &Document| d.get_i32("age") == Ok(42)) as fn(&Document) -> bool,
        ),
        (
            "find {address.city: \"Oslo\"} (14%)",
            doc! { "address.city": "Oslo" },
            |d: &Document| d.get_document("address").and_then(|a| a.get_str("city")) == Ok("Oslo"),
        ),
        (
            "find {age: {$lt: 50}} (50%)",
            doc! { "age": { "$lt": 50 } },
            |d: &Document| d.get_i32("age").is_ok_and(|a| a < 50),
        ),
    ] {
        let scans = 20;
        let engine = time_async(&rt, label, scans, |_| {
            let filter = filter.clone();
            async move {
                let out = backend
                    .find(ns, FindQuery::new(filter).with_limit(50_000))
                    .await
                    .expect("find");
                black_box(out);
            }
        });
        let baseline = time("Vec scan + predicate + clone", scans, |_| {
            let out: Vec<Document> = docs
                .iter()
                .filter(|d| keep(d))
                .take(50_000)
                .cloned()
                .collect();
            black_box(out);
        });
        report(&engine, Some(&baseline));
        println!(
            "  = {:.1} million documents scanned per second",
            engine.per_second() * f64::from(DOCS) / 1e6
        );
    }

    // Sorted finds with a limit.
    for (label, filter, sort) in [
        (
            "find {group: 3} sort {score: -1} limit 10",
            doc! { "group": 3 },
            doc! { "score": -1, "_id": 1 },
        ),
        (
            "find {} sort {age: 1, _id: -1} limit 10",
            doc! {},
            doc! { "age": 1, "_id": -1 },
        ),
    ] {
        let engine = time_async(&rt, label, 20, |_| {
            let (filter, sort) = (filter.clone(), sort.clone());
            async move {
                let out = backend
                    .find(ns, FindQuery::new(filter).with_sort(sort).with_limit(10))
                    .await
                    .expect("sorted find");
                assert_eq!(out.len(), 10);
                black_box(out);
            }
        });
        report(&engine, None);
    }
    let baseline = time("Vec filter + sort_by + take 10", 20, |_| {
        let mut hits: Vec<&Document> = docs
            .iter()
            .filter(|d| d.get_i32("group") == Ok(3))
            .collect();
        hits.sort_by(|a, b| {
            b.get_f64("score")
                .unwrap_or(0.0)
                .total_cmp(&a.get_f64("score").unwrap_or(0.0))
                .then(a.get_i32("_id").ok().cmp(&b.get_i32("_id").ok()))
        });
        let out: Vec<Document> = hits.into_iter().take(10).cloned().collect();
        black_box(out);
    });
    report(&baseline, None);

    // updateOne by _id.
    let updates = 100_000;
    let mut rng = Lcg(7);
    let engine = time_async(
        &rt,
        "updateOne {_id: k} {$inc: {visits: 1}}",
        updates,
        |_| {
            let id = rng.next_below(DOCS);
            async move {
                let outcome = backend
                    .update_one(
                        ns,
                        UpdateQuery::new(
                            doc! { "_id": id },
                            UpdateModifications::Operators(doc! { "$inc": { "visits": 1 } }),
                        ),
                    )
                    .await
                    .expect("updateOne");
                assert_eq!(outcome.modified_count, 1);
            }
        },
    );
    let mut copy = by_id.clone();
    let mut rng = Lcg(7);
    let baseline = time("HashMap get_mut + field increment", updates, |_| {
        let id = rng.next_below(DOCS);
        let d = copy.get_mut(&id).expect("present");
        let visits = d.get_i32("visits").unwrap_or(0);
        d.insert("visits", visits + 1);
    });
    report(&engine, Some(&baseline));

    // updateMany over a filter (10% of the collection each time).
    let engine = time_async(
        &rt,
        "updateMany {group: g} {$inc: {n: 1}} (10%)",
        10,
        |i| async move {
            let outcome = backend
                .update_many(
                    ns,
                    UpdateQuery::new(
                        doc! { "group": (i % 10) as i32 },
                        UpdateModifications::Operators(doc! { "$inc": { "n": 1 } }),
                    ),
                )
                .await
                .expect("updateMany");
            assert_eq!(outcome.modified_count, u64::from(DOCS as u32 / 10));
        },
    );
    let baseline = time("HashMap values_mut filter + increment", 10, |i| {
        for d in copy.values_mut() {
            if d.get_i32("group") == Ok((i % 10) as i32) {
                let n = d.get_i32("n").unwrap_or(0);
                d.insert("n", n + 1);
            }
        }
    });
    report(&engine, Some(&baseline));
    println!(
        "  = {:.0} documents updated per second",
        engine.per_second() * f64::from(DOCS / 10)
    );

    // insertOne into a fresh collection.
    let inserts = 100_000;
    let fresh = &Namespace::new("bench", "inserts");
    let engine = time_async(&rt, "insertOne", inserts, |i| async move {
        let id = backend
            .insert_one(fresh, document(i as i32))
            .await
            .expect("insertOne");
        black_box(id);
    });
    let mut table: HashMap<i32, Document> = HashMap::new();
    let baseline = time("HashMap insert (build doc + key)", inserts, |i| {
        let d = document(i as i32);
        table.insert(d.get_i32("_id").unwrap_or(-1), d);
    });
    report(&engine, Some(&baseline));

    // insertMany of 1,000 documents into the 100,000-document collection
    // (and growing): batches this size are made in place.
    let batches = 50;
    let batch = 1_000;
    let engine = time_async(
        &rt,
        "insertMany (1,000 documents)",
        batches,
        |b| async move {
            let first = DOCS + (b * batch) as i32;
            let docs: Vec<Document> = (first..first + batch as i32).map(document).collect();
            let ids = backend.insert_many(ns, docs).await.expect("insertMany");
            black_box(ids);
        },
    );
    let baseline = time("HashMap extend (build docs + keys)", batches, |b| {
        let first = DOCS + (b * batch) as i32;
        table.extend((first..first + batch as i32).map(|i| (i, document(i))));
    });
    report(&engine, Some(&baseline));
    black_box(table.len());
}
