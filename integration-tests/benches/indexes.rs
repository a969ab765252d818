//! Secondary indexes of the embedded engine over 1,000,000 documents,
//! in-process through the [`Backend`] trait: finds by an indexed field
//! against findOne by `_id` (the target: within 2×), index-ordered sorted
//! finds and scans against the same queries on an unindexed copy, and the
//! cost of keeping indexes on inserts and updates. All figures come from
//! one process and one run; ratios are what to compare.
//!
//! Run with `cargo bench -p integration-tests --bench indexes`
//! (about a minute and 3 GiB of memory: two copies of the collection).
//! `-- N` sets the number of documents (default 1,000,000).

use std::hint::black_box;
use std::time::Instant;

use bson::{doc, Document};
use tower_data_api::backend::{
    Backend, FindOneQuery, FindQuery, IndexSpec, MemoryBackend, Namespace, UpdateModifications,
    UpdateQuery,
};

/// A small deterministic PRNG (64-bit LCG) for the lookup keys.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: i64) -> i64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as i64
    }
}

fn document(i: i64) -> Document {
    doc! {
        "_id": i,
        "email": format!("user{i}@example.com"),
        "age": i % 100,
        "group": i % 1000,
        "score": (i * 7919) % 100_000,
        "name": format!("User {i}"),
    }
}

/// Operations per second of `ops` awaits of `f`.
fn rate<F, Fut>(rt: &tokio::runtime::Runtime, ops: u64, mut f: F) -> f64
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..ops {
            f(i).await;
        }
        ops as f64 / start.elapsed().as_secs_f64().max(1e-9)
    })
}

fn line(name: &str, per_second: f64) {
    println!("{name:<58} {per_second:>12.0} ops/s");
}

fn ratio(name: &str, value: f64) {
    println!("  -> {name}: {value:.2}");
}

fn main() {
    let n: i64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let ns = Namespace::new("bench", "users");
    let specs = [
        IndexSpec::new([("email", 1)]).unwrap().unique(true),
        IndexSpec::new([("age", 1)]).unwrap(),
        IndexSpec::new([("group", 1), ("score", -1)]).unwrap(),
    ];
    let mut indexed = MemoryBackend::new();
    for spec in &specs {
        indexed = indexed.with_index("bench", "users", spec.clone());
    }
    let plain = MemoryBackend::new();
    for (label, backend) in [("3 indexes", &indexed), ("no index", &plain)] {
        let start = Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
            let docs: Vec<Document> = chunk.iter().map(|i| document(*i)).collect();
            rt.block_on(backend.insert_many(&ns, docs)).expect("load");
        }
        println!(
            "loaded {n} documents ({label}) in {:.2}s",
            start.elapsed().as_secs_f64()
        );
    }
    let (indexed, plain, ns) = (&indexed, &plain, &ns);

    let lookups = 200_000;
    let mut rng = Lcg(42);
    let by_id = rate(&rt, lookups, |_| {
        let id = rng.below(n);
        async move {
            let found = indexed
                .find_one(ns, FindOneQuery::new(doc! {"_id": id}))
                .await
                .expect("findOne");
            black_box(found.expect("present"));
        }
    });
    line("findOne {_id: k}", by_id);
    let mut rng = Lcg(42);
    let by_email = rate(&rt, lookups, |_| {
        let email = format!("user{}@example.com", rng.below(n));
        async move {
            let found = indexed
                .find_one(ns, FindOneQuery::new(doc! {"email": email}))
                .await
                .expect("findOne");
            black_box(found.expect("present"));
        }
    });
    line("findOne {email: e} (unique index)", by_email);
    ratio(
        "findOne by _id / by indexed email (target <= 2)",
        by_id / by_email,
    );
    let mut rng = Lcg(42);
    let find_email = rate(&rt, lookups, |_| {
        let email = format!("user{}@example.com", rng.below(n));
        async move {
            let found = indexed
                .find(ns, FindQuery::new(doc! {"email": email}))
                .await
                .expect("find");
            assert_eq!(found.len(), 1);
        }
    });
    line("find {email: e} (unique index, limit 1000)", find_email);
    ratio("findOne by _id / find by indexed email", by_id / find_email);

    // 1% of the collection matches; the first 10 are wanted.
    let mut rng = Lcg(3);
    let age = rate(&rt, 20_000, |_| {
        let a = rng.below(100);
        async move {
            let found = indexed
                .find(ns, FindQuery::new(doc! {"age": a}).with_limit(10))
                .await
                .expect("find");
            assert_eq!(found.len(), 10);
        }
    });
    line("find {age: a} limit 10 (index on age)", age);
    let plain_age = rate(&rt, 5, |i| async move {
        let found = plain
            .find(
                ns,
                FindQuery::new(doc! {"age": 101 + i as i64}).with_limit(10),
            )
            .await
            .expect("find");
        black_box(found);
    });
    line("find {age: none} limit 10 (no index: full scan)", plain_age);

    // Top 10 of a group by score: the compound index gives the order.
    let mut rng = Lcg(9);
    let top = rate(&rt, 20_000, |_| {
        let g = rng.below(1000);
        async move {
            let found = indexed
                .find(
                    ns,
                    FindQuery::new(doc! {"group": g})
                        .with_sort(doc! {"score": -1})
                        .with_limit(10),
                )
                .await
                .expect("find");
            assert_eq!(found.len(), 10);
        }
    });
    line("find {group: g} sort {score: -1} limit 10 (index)", top);
    let mut rng = Lcg(9);
    let plain_top = rate(&rt, 5, |_| {
        let g = rng.below(1000);
        async move {
            let found = plain
                .find(
                    ns,
                    FindQuery::new(doc! {"group": g})
                        .with_sort(doc! {"score": -1})
                        .with_limit(10),
                )
                .await
                .expect("find");
            assert_eq!(found.len(), 10);
        }
    });
    line(
        "find {group: g} sort {score: -1} limit 10 (no index)",
        plain_top,
    );
    ratio("indexed / unindexed", top / plain_top);

    // Range: 10 consecutive ages (10% of the collection), counted.
    let range = rate(&rt, 5, |i| async move {
        let lo = (i as i64 * 10) % 90;
        let found = indexed
            .find(
                ns,
                FindQuery::new(doc! {"age": {"$gte": lo, "$lt": lo + 10}}).with_limit(50_000),
            )
            .await
            .expect("find");
        black_box(found);
    });
    line("find {age: {$gte, $lt}} (10%, limit 50,000, index)", range);
    let plain_range = rate(&rt, 5, |i| async move {
        let lo = (i as i64 * 10) % 90;
        let found = plain
            .find(
                ns,
                FindQuery::new(doc! {"age": {"$gte": lo, "$lt": lo + 10}}).with_limit(50_000),
            )
            .await
            .expect("find");
        black_box(found);
    });
    line(
        "find {age: {$gte, $lt}} (10%, limit 50,000, scan)",
        plain_range,
    );

    // Keeping the indexes: inserts and updates of an indexed field.
    let inserts = 50_000;
    let ins_indexed = rate(&rt, inserts, |i| async move {
        let id = indexed
            .insert_one(ns, document(n + i as i64))
            .await
            .expect("insert");
        black_box(id);
    });
    let ins_plain = rate(&rt, inserts, |i| async move {
        let id = plain
            .insert_one(ns, document(n + i as i64))
            .await
            .expect("insert");
        black_box(id);
    });
    line("insertOne (3 indexes)", ins_indexed);
    line("insertOne (no index)", ins_plain);
    ratio("with / without indexes", ins_indexed / ins_plain);
    let updates = 50_000;
    let mut rng = Lcg(5);
    let upd_indexed = rate(&rt, updates, |_| {
        let id = rng.below(n);
        async move {
            indexed
                .update_one(
                    ns,
                    UpdateQuery::new(
                        doc! {"_id": id},
                        UpdateModifications::Operators(doc! {"$inc": {"score": 1}}),
                    ),
                )
                .await
                .expect("update");
        }
    });
    let mut rng = Lcg(5);
    let upd_plain = rate(&rt, updates, |_| {
        let id = rng.below(n);
        async move {
            plain
                .update_one(
                    ns,
                    UpdateQuery::new(
                        doc! {"_id": id},
                        UpdateModifications::Operators(doc! {"$inc": {"score": 1}}),
                    ),
                )
                .await
                .expect("update");
        }
    });
    line(
        "updateOne {_id} {$inc: {score}} (indexed field)",
        upd_indexed,
    );
    line("updateOne {_id} {$inc: {score}} (no index)", upd_plain);
    ratio("with / without indexes", upd_indexed / upd_plain);
}
