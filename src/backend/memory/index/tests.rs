//! Secondary indexes: the planner never changes an answer (a seeded
//! property test against the same engine without indexes), unique indexes
//! refuse duplicates on every write path, and plans use the indexes.

use bson::{doc, Bson, Document};

use crate::backend::memory::MemoryBackend;
use crate::backend::{
    Backend, BackendErrorKind, FindQuery, IndexSpec, Namespace, ReplaceQuery, UpdateModifications,
    UpdateQuery,
};

thread_local! {
    /// Whether the current round keeps arrays out of most values.
    static SCALAR_ROUNDS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn ns() -> Namespace {
    Namespace::new("db", "items")
}

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

/// Values of mixed types, as MongoDB's order must handle them; arrays in
/// some rounds only (without them, indexes give sorts their order).
fn value(rng: &mut Rng) -> Bson {
    let arrays = !SCALAR_ROUNDS.with(|s| s.get());
    match rng.below(16) {
        6..=8 if !arrays => Bson::Int32(rng.below(3) as i32),
        0 => Bson::Null,
        1 => Bson::Double(2.5),
        2 => Bson::Int64(2),
        3 => Bson::Double(1.0),
        4 => Bson::String("x".into()),
        5 => Bson::String("y".into()),
        6 => Bson::Array(vec![Bson::Int32(1), Bson::Int32(2)]),
        7 => Bson::Array(vec![]),
        8 => Bson::Array(vec![Bson::String("x".into()), Bson::Int32(3)]),
        9 => Bson::Document(doc! {"d": 1}),
        10 => Bson::Boolean(true),
        11 => Bson::DateTime(bson::DateTime::from_millis(1_000)),
        _ => Bson::Int32(rng.below(5) as i32 - 1),
    }
}

/// A scalar a condition compares with.
fn operand(rng: &mut Rng) -> Bson {
    match rng.below(10) {
        0 => Bson::String("x".into()),
        1 => Bson::Double(2.5),
        2 => Bson::Int64(1),
        3 => Bson::Null,
        4 => Bson::Document(doc! {"d": 1}),
        5 => Bson::Boolean(true),
        _ => Bson::Int32(rng.below(5) as i32 - 1),
    }
}

fn document(rng: &mut Rng, id: i32) -> Document {
    let mut d = doc! {"_id": id};
    for field in ["a", "b"] {
        if rng.below(6) != 0 {
            d.insert(field, value(rng));
        }
    }
    match rng.below(4) {
        0 => {}
        1 => {
            d.insert("c", doc! {"d": value(rng)});
        }
        2 => {
            d.insert("c", vec![doc! {"d": value(rng)}, doc! {"d": value(rng)}]);
        }
        _ => {
            d.insert("c", value(rng));
        }
    }
    d
}

fn condition(rng: &mut Rng) -> (String, Bson) {
    let path = rng.pick(&["a", "b", "c.d", "a", "b"]).to_string();
    let cond = match rng.below(9) {
        0 | 1 => operand(rng),
        2 => Bson::Document(doc! {"$in": [operand(rng), operand(rng)]}),
        3 => Bson::Document(doc! {"$gt": operand(rng)}),
        4 => Bson::Document(doc! {"$lte": operand(rng)}),
        5 => Bson::Document(doc! {"$gte": operand(rng), "$lt": operand(rng)}),
        6 => Bson::Document(doc! {"$ne": operand(rng)}),
        7 => Bson::Document(doc! {"$exists": rng.below(2) == 0}),
        _ => Bson::Document(doc! {"$all": [operand(rng)]}),
    };
    (path, cond)
}

fn filter(rng: &mut Rng) -> Document {
    let mut f = Document::new();
    match rng.below(8) {
        0 => {}
        1 => {
            let (p1, c1) = condition(rng);
            let (p2, c2) = condition(rng);
            f.insert("$and", vec![doc! {p1: c1}, doc! {p2: c2}]);
        }
        2 => {
            let (p1, c1) = condition(rng);
            let (p2, c2) = condition(rng);
            f.insert("$or", vec![doc! {p1: c1}, doc! {p2: c2}]);
        }
        _ => {
            for _ in 0..=rng.below(3) {
                let (p, c) = condition(rng);
                f.insert(p, c);
            }
        }
    }
    f
}

fn sort(rng: &mut Rng) -> Option<Document> {
    rng.pick(&[
        None,
        None,
        Some(doc! {"a": 1}),
        Some(doc! {"a": -1}),
        Some(doc! {"b": -1}),
        Some(doc! {"a": 1, "b": 1}),
        Some(doc! {"a": -1, "b": -1}),
        Some(doc! {"b": 1, "a": -1}),
        Some(doc! {"c.d": 1}),
    ])
}

fn index_set(rng: &mut Rng) -> Vec<IndexSpec> {
    let all = [
        IndexSpec::new([("a", 1)]).unwrap(),
        IndexSpec::new([("b", -1)]).unwrap(),
        IndexSpec::new([("a", 1), ("b", 1)]).unwrap(),
        IndexSpec::new([("b", 1), ("a", -1)]).unwrap(),
        IndexSpec::new([("c.d", 1)]).unwrap(),
        IndexSpec::new([("a", -1), ("c.d", 1)]).unwrap(),
    ];
    all.into_iter().filter(|_| rng.below(2) == 0).collect()
}

fn find(filter: Document, sort: Option<Document>, skip: u64, limit: u64) -> FindQuery {
    FindQuery {
        filter,
        projection: None,
        sort,
        skip,
        limit,
    }
}

/// Every document, in natural order.
async fn contents(backend: &MemoryBackend) -> Vec<Document> {
    backend
        .find(&ns(), find(doc! {}, None, 0, 0))
        .await
        .unwrap()
}

#[tokio::test]
async fn answers_with_indexes_equal_answers_without() {
    // INDEX_PROPERTY_SEED=<hex> replays another seed.
    let seed = std::env::var("INDEX_PROPERTY_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0x1d3c_5eed);
    let mut rng = Rng(seed);
    let mut queries = 0;
    for round in 0..60 {
        SCALAR_ROUNDS.with(|s| s.set(round % 2 == 1));
        let specs = index_set(&mut rng);
        let mut indexed = MemoryBackend::new();
        for spec in &specs {
            indexed = indexed.with_index("db", "items", spec.clone());
        }
        let plain = MemoryBackend::new();
        for id in 0..(20 + rng.below(60) as i32) {
            let doc = document(&mut rng, id);
            // Parallel arrays are refused by a compound index: keep both sides equal.
            if indexed.insert_one(&ns(), doc.clone()).await.is_ok() {
                plain.insert_one(&ns(), doc).await.unwrap();
            }
        }
        for _ in 0..40 {
            let f = filter(&mut rng);
            let s = sort(&mut rng);
            let skip = rng.below(3) as u64;
            let limit = rng.pick(&[0, 1, 3, 10]);
            let q = find(f.clone(), s.clone(), skip, limit);
            let want = plain.find(&ns(), q.clone()).await;
            let got = indexed.find(&ns(), q).await;
            assert_eq!(
                got, want,
                "seed {seed:#x} round {round}: indexes {specs:?} filter {f} sort {s:?} skip {skip} limit {limit}"
            );
            let pipeline = vec![doc! {"$match": f.clone()}, doc! {"$count": "n"}];
            assert_eq!(
                indexed.aggregate(&ns(), pipeline.clone()).await,
                plain.aggregate(&ns(), pipeline).await,
                "seed {seed:#x} round {round}: $match {f}"
            );
            queries += 1;
        }
        // Writes keep the indexes in step: updates, deletes, then queries again.
        for _ in 0..10 {
            let f = filter(&mut rng);
            let field = rng.pick(&["a", "b", "c.d"]);
            let update = UpdateQuery::new(
                f.clone(),
                UpdateModifications::Operators(doc! {"$set": {field: value(&mut rng)}}),
            );
            let (got, want) = (
                indexed.update_many(&ns(), update.clone()).await,
                plain.update_many(&ns(), update).await,
            );
            match (&got, &want) {
                // Parallel arrays: the indexed side refuses the whole update.
                (Err(e), Ok(_)) if e.message.contains("parallel arrays") => {
                    let replay = contents(&indexed).await;
                    let fresh = MemoryBackend::new();
                    fresh.insert_many(&ns(), replay).await.unwrap();
                    assert_eq!(contents(&fresh).await, contents(&indexed).await);
                    // Bring the plain side back to the same documents.
                    plain.delete_many(&ns(), doc! {}).await.unwrap();
                    plain
                        .insert_many(&ns(), contents(&indexed).await)
                        .await
                        .unwrap();
                }
                _ => assert_eq!(got, want, "seed {seed:#x} round {round}: update {f}"),
            }
            let f = filter(&mut rng);
            if rng.below(3) == 0 {
                assert_eq!(
                    indexed.delete_one(&ns(), f.clone()).await,
                    plain.delete_one(&ns(), f).await
                );
            }
            let q = find(filter(&mut rng), sort(&mut rng), 0, 0);
            assert_eq!(
                indexed.find(&ns(), q.clone()).await,
                plain.find(&ns(), q.clone()).await,
                "seed {seed:#x} round {round} after writes: {q:?}"
            );
            queries += 1;
        }
        // The natural order of the collection is untouched by indexes.
        assert_eq!(contents(&indexed).await, contents(&plain).await);
    }
    assert!(queries >= 3_000);
    let used = super::PLANS_USED.with(|p| p.get());
    assert!(
        used.iter().all(|n| *n > 100),
        "every plan kind was exercised (scan, ranges, ordered): {used:?}"
    );
}

#[tokio::test]
async fn unique_indexes_refuse_duplicates_on_every_write_path() {
    let backend = MemoryBackend::new().with_index(
        "db",
        "items",
        IndexSpec::new([("email", 1)]).unwrap().unique(true),
    );
    backend
        .insert_many(
            &ns(),
            vec![doc! {"_id": 1, "email": "a"}, doc! {"_id": 2, "email": "b"}],
        )
        .await
        .unwrap();
    let dup =
        "E11000 duplicate key error collection: db.items index: email_1 dup key: { email: \"a\" }";

    let err = backend
        .insert_one(&ns(), doc! {"_id": 3, "email": "a"})
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::DuplicateKey);
    assert_eq!(err.message, dup);

    let err = backend
        .insert_many(
            &ns(),
            vec![doc! {"_id": 4, "email": "c"}, doc! {"_id": 5, "email": "a"}],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        format!("{dup} (1 of 2 documents were inserted before the error)")
    );

    let set_a = |filter: Document| {
        UpdateQuery::new(
            filter,
            UpdateModifications::Operators(doc! {"$set": {"email": "a"}}),
        )
    };
    let err = backend
        .update_one(&ns(), set_a(doc! {"_id": 2}))
        .await
        .unwrap_err();
    assert_eq!(err.message, dup);
    let err = backend
        .update_many(&ns(), set_a(doc! {}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::DuplicateKey);
    let mut upsert = set_a(doc! {"_id": 9});
    upsert.upsert = true;
    let err = backend.update_one(&ns(), upsert).await.unwrap_err();
    assert_eq!(err.message, dup);
    let err = backend
        .replace_one(
            &ns(),
            ReplaceQuery::new(doc! {"_id": 2}, doc! {"email": "a"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.message, dup);
    // A pipeline update and an expression filter take the same path.
    let err = backend
        .update_one(
            &ns(),
            UpdateQuery::new(
                doc! {"$expr": {"$eq": ["$_id", 2]}},
                UpdateModifications::Pipeline(vec![doc! {"$set": {"email": "a"}}]),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(err.message, dup);
    // $out into the collection refuses duplicates and keeps the index.
    let err = backend
        .aggregate(
            &ns(),
            vec![doc! {"$set": {"email": "same"}}, doc! {"$out": "items"}],
        )
        .await
        .unwrap_err();
    assert!(
        err.message.contains("index: email_1 dup key"),
        "{}",
        err.message
    );

    // Nothing above changed a document.
    assert_eq!(
        contents(&backend).await,
        vec![
            doc! {"_id": 1, "email": "a"},
            doc! {"_id": 2, "email": "b"},
            doc! {"_id": 4, "email": "c"},
        ]
    );
    // Changing a document's own key, and freeing a key, work.
    backend
        .update_one(
            &ns(),
            UpdateQuery::new(
                doc! {"_id": 1},
                UpdateModifications::Operators(doc! {"$set": {"email": "z"}}),
            ),
        )
        .await
        .unwrap();
    backend
        .update_one(&ns(), set_a(doc! {"_id": 2}))
        .await
        .unwrap();
    // A missing field counts as null: one document may lack it.
    backend.insert_one(&ns(), doc! {"_id": 10}).await.unwrap();
    let err = backend
        .insert_one(&ns(), doc! {"_id": 11})
        .await
        .unwrap_err();
    assert!(
        err.message.ends_with("dup key: { email: null }"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn compound_unique_keys_and_numbers_compare_as_mongodb() {
    let backend = MemoryBackend::new().with_index(
        "db",
        "items",
        IndexSpec::new([("a", 1), ("b", -1)]).unwrap().unique(true),
    );
    backend
        .insert_one(&ns(), doc! {"_id": 1, "a": 1, "b": "x"})
        .await
        .unwrap();
    backend
        .insert_one(&ns(), doc! {"_id": 2, "a": 1, "b": "y"})
        .await
        .unwrap();
    // 1.0 and 1 are the same key.
    let err = backend
        .insert_one(&ns(), doc! {"_id": 3, "a": 1.0, "b": "x"})
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "E11000 duplicate key error collection: db.items index: a_1_b_-1 dup key: { a: 1.0, b: \"x\" }"
    );
    // An array element is a key too.
    let err = backend
        .insert_one(&ns(), doc! {"_id": 4, "a": [5, 1], "b": "y"})
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::DuplicateKey);
    let err = backend
        .insert_one(&ns(), doc! {"_id": 5, "a": [1], "b": ["p", "q"]})
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::InvalidRequest);
    assert_eq!(err.message, "cannot index parallel arrays [a] [b]");
}

#[tokio::test]
async fn creating_an_index_checks_the_documents_and_names() {
    let backend = MemoryBackend::new();
    backend
        .insert_many(
            &ns(),
            vec![doc! {"_id": 1, "k": 1}, doc! {"_id": 2, "k": 1}],
        )
        .await
        .unwrap();
    let unique = IndexSpec::new([("k", 1)]).unwrap().unique(true);
    let err = backend.create_index(&ns(), unique).unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::DuplicateKey);
    assert!(backend.index_specs(&ns()).is_empty(), "nothing was created");
    // A plain index builds; the same again is a no-op; another under its name is refused.
    backend
        .create_index(&ns(), IndexSpec::new([("k", 1)]).unwrap())
        .unwrap();
    backend
        .create_index(&ns(), IndexSpec::new([("k", 1)]).unwrap())
        .unwrap();
    let clash = IndexSpec::new([("j", 1)]).unwrap().named("k_1").unwrap();
    let err = backend.create_index(&ns(), clash).unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::InvalidRequest);
    assert_eq!(backend.index_specs(&ns()).len(), 1);
    // The index answers queries over the documents that were there before.
    let got = backend
        .find(&ns(), find(doc! {"k": 1}, Some(doc! {"k": -1}), 0, 0))
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    // A dropped and re-created collection keeps its declared indexes.
    backend.drop_collection(&ns()).expect("dropped");
    backend
        .insert_one(&ns(), doc! {"_id": 1, "k": 1})
        .await
        .unwrap();
    assert_eq!(backend.index_specs(&ns()).len(), 1);
}

#[tokio::test]
async fn plans_use_the_index_that_pins_most_fields() {
    use crate::backend::memory::collection::Collection;
    use crate::backend::memory::index::Plan;
    use crate::query::{Filter, SortSpec};

    let specs = [
        IndexSpec::new([("a", 1)]).unwrap(),
        IndexSpec::new([("a", 1), ("b", 1)]).unwrap(),
        IndexSpec::new([("t", -1)]).unwrap(),
    ];
    let mut coll = Collection::with_indexes(&specs);
    for i in 0..5_000 {
        coll.insert(doc! {"_id": i, "a": i % 100, "b": i % 7, "t": i})
            .unwrap();
    }
    let plan = |f: Document, s: Option<Document>| {
        let filter = Filter::parse(&f).unwrap();
        let sort = s.map(|s| SortSpec::parse(&s).unwrap());
        coll_plan(&coll, &filter, sort.as_ref())
    };
    fn coll_plan(coll: &Collection, filter: &Filter, sort: Option<&SortSpec>) -> String {
        match coll.plan(filter, sort) {
            Plan::Id => "id".into(),
            Plan::Scan => "scan".into(),
            Plan::Ranges { index, ranges } => format!("ranges {index} x{}", ranges.len()),
            Plan::Ordered { index, reverse, .. } => format!("ordered {index} reverse={reverse}"),
        }
    }
    assert_eq!(plan(doc! {"a": 5}, None), "ranges 0 x1");
    assert_eq!(plan(doc! {"a": 5, "b": 3}, None), "ranges 1 x1");
    assert_eq!(
        plan(doc! {"a": {"$in": [1, 2, 3]}, "b": {"$gt": 2}}, None),
        "ranges 1 x3"
    );
    assert_eq!(
        plan(doc! {"t": {"$gte": 10, "$lt": 20}}, None),
        "ranges 2 x1"
    );
    assert_eq!(plan(doc! {"a": null}, None), "scan");
    assert_eq!(plan(doc! {"$or": [{"a": 1}, {"b": 2}]}, None), "scan");
    assert_eq!(plan(doc! {}, Some(doc! {"t": 1})), "ordered 2 reverse=true");
    assert_eq!(
        plan(doc! {"a": 5}, Some(doc! {"b": -1})),
        "ordered 1 reverse=true"
    );
    assert_eq!(
        plan(doc! {"a": {"$in": [1, 2]}}, Some(doc! {"b": 1})),
        "ranges 0 x2"
    );
    assert_eq!(plan(doc! {"_id": 7, "a": 5}, None), "id");
    // Narrow ranges are cheap enough to run inline; wide ones are not.
    let cheap = |f: Document| {
        let filter = Filter::parse(&f).unwrap();
        coll.reads_at_most(&coll.plan(&filter, None), 1_000)
    };
    assert!(cheap(doc! {"a": 5, "b": 3}));
    assert!(cheap(doc! {"_id": 5}));
    assert!(!cheap(doc! {"t": {"$gt": 0}}));
    assert!(!cheap(doc! {"x": 1}));
}
