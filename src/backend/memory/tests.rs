use bson::{doc, Bson, Document};

use super::*;
use crate::backend::{BackendErrorKind, UpdateModifications};
use crate::query::compare::canonical_key;

fn ns() -> Namespace {
    Namespace::new("db", "items")
}

fn upd(filter: Document, update: Document, upsert: bool) -> UpdateQuery {
    UpdateQuery {
        filter,
        update: UpdateModifications::Operators(update),
        upsert,
        array_filters: None,
    }
}

async fn seeded() -> MemoryBackend {
    let b = MemoryBackend::new();
    b.insert_many(
        &ns(),
        vec![
            doc! {"_id": 1, "name": "a", "n": 5, "tags": ["x"]},
            doc! {"_id": 2, "name": "b", "n": 1},
            doc! {"_id": 3, "name": "c", "n": 3, "tags": ["x", "y"]},
        ],
    )
    .await
    .unwrap();
    b
}

fn find(filter: Document) -> FindQuery {
    FindQuery {
        filter,
        projection: None,
        sort: None,
        skip: 0,
        limit: 1000,
    }
}

#[tokio::test]
async fn inserts_and_finds() {
    let b = seeded().await;
    let id = b.insert_one(&ns(), doc! {"x": 1}).await.unwrap();
    assert!(matches!(id, Bson::ObjectId(_)));
    let got = b
        .find_one(
            &ns(),
            FindOneQuery {
                filter: doc! {"x": 1},
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.keys().next().map(String::as_str), Some("_id"));
    let q = FindQuery {
        filter: doc! {"tags": "x"},
        projection: Some(doc! {"name": 1, "_id": 0}),
        sort: Some(doc! {"n": 1}),
        skip: 0,
        limit: 10,
    };
    assert_eq!(
        b.find(&ns(), q).await.unwrap(),
        vec![doc! {"name": "c"}, doc! {"name": "a"}]
    );
    let q = FindQuery {
        filter: doc! {},
        projection: None,
        sort: None,
        skip: 1,
        limit: 1,
    };
    assert_eq!(
        b.find(&ns(), q).await.unwrap()[0].get_i32("_id").unwrap(),
        2
    );
    assert_eq!(b.find(&ns(), find(doc! {"_id": 2})).await.unwrap().len(), 1);
    let q = FindQuery {
        filter: doc! {"_id": {"$lte": 3}},
        projection: Some(doc! {"_id": 1}),
        sort: Some(doc! {"$natural": -1}),
        skip: 1,
        limit: 1,
    };
    assert_eq!(b.find(&ns(), q).await.unwrap(), vec![doc! {"_id": 2}]);
    assert_eq!(
        b.find(&Namespace::new("nope", "nope"), find(doc! {}))
            .await
            .unwrap(),
        vec![]
    );
    let err = b
        .find(&ns(), find(doc! {"a": {"$foo": 1}}))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (BackendErrorKind::InvalidRequest, "unknown operator: $foo")
    );
    let err = b.find(&ns(), find(doc! {"$where": "1"})).await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Unsupported);
}

#[tokio::test]
async fn duplicate_keys() {
    let b = seeded().await;
    let err = b.insert_one(&ns(), doc! {"_id": 2}).await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::DuplicateKey);
    assert_eq!(
        err.message,
        "E11000 duplicate key error collection: db.items index: _id_ dup key: { _id: 2 }"
    );
    let err = b
        .insert_many(
            &ns(),
            vec![doc! {"_id": 10}, doc! {"_id": 1.0}, doc! {"_id": 11}],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "E11000 duplicate key error collection: db.items index: _id_ dup key: { _id: 1.0 } (1 of 3 documents were inserted before the error)"
    );
    assert_eq!(b.count(&ns()), 4);
    let err = b.insert_one(&ns(), doc! {"_id": [1]}).await.unwrap_err();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (
            BackendErrorKind::InvalidRequest,
            "The '_id' value cannot be of type array"
        )
    );
}

#[tokio::test]
async fn updates() {
    let b = seeded().await;
    let out = b
        .update_one(
            &ns(),
            upd(doc! {"n": {"$gt": 2}}, doc! {"$inc": {"n": 1}}, false),
        )
        .await
        .unwrap();
    assert_eq!(
        (out.matched_count, out.modified_count, out.upserted_id),
        (1, 1, None)
    );
    let out = b
        .update_many(&ns(), upd(doc! {}, doc! {"$set": {"name": "b"}}, false))
        .await
        .unwrap();
    assert_eq!((out.matched_count, out.modified_count), (3, 2));
    let out = b
        .update_one(
            &ns(),
            upd(
                doc! {"_id": 9, "k": "v"},
                doc! {"$set": {"z": 1}, "$setOnInsert": {"new": true}},
                true,
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        (out.matched_count, out.modified_count, out.upserted_id),
        (0, 0, Some(Bson::Int32(9)))
    );
    let got = b
        .find_one(
            &ns(),
            FindOneQuery {
                filter: doc! {"_id": 9},
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(got, Some(doc! {"_id": 9, "k": "v", "new": true, "z": 1}));
    let out = b
        .update_one(
            &ns(),
            upd(
                doc! {"_id": 9},
                doc! {"$set": {"z": 2}, "$setOnInsert": {"new": false}},
                true,
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        (out.matched_count, out.modified_count, out.upserted_id),
        (1, 1, None)
    );
    // Positional update through the filter's matched element.
    b.update_one(
        &ns(),
        upd(
            doc! {"_id": 3, "tags": "y"},
            doc! {"$set": {"tags.$": "Y"}},
            false,
        ),
    )
    .await
    .unwrap();
    let got = b
        .find_one(
            &ns(),
            FindOneQuery {
                filter: doc! {"_id": 3},
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.get_array("tags").unwrap(),
        &vec![Bson::from("x"), Bson::from("Y")]
    );
    // Pipeline update.
    let q = UpdateQuery {
        filter: doc! {"_id": 2},
        update: UpdateModifications::Pipeline(vec![
            doc! {"$set": {"double": {"$multiply": ["$n", 2]}}},
        ]),
        upsert: false,
        array_filters: None,
    };
    b.update_one(&ns(), q).await.unwrap();
    let got = b
        .find_one(
            &ns(),
            FindOneQuery {
                filter: doc! {"_id": 2},
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.get_i32("double").unwrap(), 2);
}

#[tokio::test]
async fn failing_update_many_changes_nothing() {
    let b = seeded().await;
    b.insert_one(&ns(), doc! {"_id": 4, "n": "text"})
        .await
        .unwrap();
    let before = b.find(&ns(), find(doc! {})).await.unwrap();
    let err = b
        .update_many(&ns(), upd(doc! {}, doc! {"$inc": {"n": 1}}, false))
        .await
        .unwrap_err();
    assert_eq!(err.message, "Cannot apply $inc to a value of non-numeric type. {_id: 4} has the field 'n' of non-numeric type string");
    assert_eq!(b.find(&ns(), find(doc! {})).await.unwrap(), before);
    let err = b
        .update_one(
            &ns(),
            upd(doc! {"_id": 1}, doc! {"$set": {"_id": 5}}, false),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "Performing an update on the path '_id' would modify the immutable field '_id'"
    );
    let err = b
        .update_one(&ns(), upd(doc! {}, doc! {"n": 1}, false))
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::InvalidRequest);
}

#[tokio::test]
async fn replaces_and_deletes() {
    let b = seeded().await;
    let q = ReplaceQuery {
        filter: doc! {"name": "b"},
        replacement: doc! {"name": "B"},
        upsert: false,
    };
    let out = b.replace_one(&ns(), q).await.unwrap();
    assert_eq!((out.matched_count, out.modified_count), (1, 1));
    let got = b
        .find_one(
            &ns(),
            FindOneQuery {
                filter: doc! {"_id": 2},
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(got, Some(doc! {"_id": 2, "name": "B"}));
    let q = ReplaceQuery {
        filter: doc! {"_id": 2},
        replacement: doc! {"_id": 7, "name": "B"},
        upsert: false,
    };
    let err = b.replace_one(&ns(), q).await.unwrap_err();
    assert_eq!(err.message, "After applying the update, the (immutable) field '_id' was found to have been altered to _id: 7");
    let q = ReplaceQuery {
        filter: doc! {"_id": "new"},
        replacement: doc! {"v": 1},
        upsert: true,
    };
    let out = b.replace_one(&ns(), q).await.unwrap();
    assert_eq!(out.upserted_id, Some(Bson::from("new")));
    assert_eq!(
        b.delete_one(&ns(), doc! {"n": {"$exists": true}})
            .await
            .unwrap(),
        1
    );
    assert_eq!(b.delete_many(&ns(), doc! {}).await.unwrap(), 3);
    assert_eq!(
        b.delete_many(&Namespace::new("x", "y"), doc! {})
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn aggregates_with_lookup_and_out() {
    let b = seeded().await;
    b.insert_one(
        &Namespace::new("db", "names"),
        doc! {"_id": "a", "full": "Alpha"},
    )
    .await
    .unwrap();
    let out = b
        .aggregate(
            &ns(),
            vec![
                doc! {"$match": {"_id": 1}},
                doc! {"$lookup": {"from": "names", "localField": "name", "foreignField": "_id", "as": "n"}},
                doc! {"$project": {"full": {"$first": "$n.full"}}},
            ],
        )
        .await
        .unwrap();
    assert_eq!(out, vec![doc! {"_id": 1, "full": "Alpha"}]);
    let out = b
        .aggregate(
            &ns(),
            vec![doc! {"$match": {"n": {"$gte": 3}}}, doc! {"$out": "big"}],
        )
        .await
        .unwrap();
    assert!(out.is_empty());
    assert_eq!(b.count(&Namespace::new("db", "big")), 2);
    assert_eq!(b.collection_names("db"), vec!["big", "items", "names"]);
    assert_eq!(b.drop_collection(&Namespace::new("db", "big")), Ok(true));
    assert_eq!(b.drop_collection(&Namespace::new("db", "big")), Ok(false));
    assert_eq!(b.count(&Namespace::new("db", "big")), 0);
    let err = b
        .aggregate(&ns(), vec![doc! {"$bogus": 1}])
        .await
        .unwrap_err();
    assert_eq!(err.message, "Unrecognized pipeline stage name: '$bogus'");
}

#[tokio::test]
async fn concurrent_writers_are_atomic() {
    let b = MemoryBackend::new();
    b.insert_one(&ns(), doc! {"_id": 1, "n": 0}).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                b.update_one(&ns(), upd(doc! {"_id": 1}, doc! {"$inc": {"n": 1}}, false))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = b
        .find_one(
            &ns(),
            FindOneQuery {
                filter: doc! {"_id": 1},
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.get_i32("n").unwrap(), 400);
}

#[tokio::test]
async fn positional_projection_and_expr_errors() {
    let b = seeded().await;
    let q = FindQuery {
        filter: doc! {"tags": "y"},
        projection: Some(doc! {"tags.$": 1}),
        sort: None,
        skip: 0,
        limit: 10,
    };
    assert_eq!(
        b.find(&ns(), q).await.unwrap(),
        vec![doc! {"_id": 3, "tags": ["y"]}]
    );
    let err = b
        .find(
            &ns(),
            find(doc! {"$expr": {"$gt": [{"$divide": ["$n", 0]}, 1]}}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (BackendErrorKind::InvalidRequest, "can't $divide by zero")
    );
    let found = b
        .find(&ns(), find(doc! {"$expr": {"$lt": ["$n", 3]}}))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let err = b
        .delete_many(&ns(), doc! {"$expr": {"$size": "$n"}})
        .await
        .unwrap_err();
    assert!(err
        .message
        .starts_with("The argument to $size must be an array"));
    assert_eq!(b.count(&ns()), 3);
}

#[tokio::test]
async fn document_size_limit() {
    let b = MemoryBackend::new();
    let big = "x".repeat(9 * 1024 * 1024);
    b.insert_one(&ns(), doc! {"_id": 1, "s": big.clone()})
        .await
        .unwrap();
    let err = b
        .update_one(
            &ns(),
            upd(doc! {"_id": 1}, doc! {"$set": {"t": big.clone()}}, false),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "Resulting document after update is larger than 16777216"
    );
    let err = b
        .insert_one(&ns(), doc! {"a": big.clone(), "b": big})
        .await
        .unwrap_err();
    assert!(
        err.message
            .starts_with("object to insert too large. size in bytes: "),
        "{}",
        err.message
    );
    assert_eq!(b.count(&ns()), 1);
}

#[tokio::test]
async fn aggregate_limits_and_coll_stats() {
    let b = seeded().await;
    // $collStats reports the collection's size without reading it.
    let out = b
        .aggregate(&ns(), vec![doc! {"$collStats": {"count": {}}}])
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].get_str("ns").unwrap(), "db.items");
    assert_eq!(out[0].get_i32("count").unwrap(), 3);
    let missing = Namespace::new("db", "nothing");
    let out = b
        .aggregate(&missing, vec![doc! {"$collStats": {"count": {}}}])
        .await
        .unwrap();
    assert_eq!(out[0].get_i32("count").unwrap(), 0);
    // A Data API aggregate names a collection: $documents is refused there, as by MongoDB.
    let err = b
        .aggregate(&ns(), vec![doc! {"$documents": [{"a": 1}]}])
        .await
        .unwrap_err();
    assert!(err.message.contains("{aggregate: 1}"), "{}", err.message);
    // $match + $group and $match + $count read the collection in place.
    let out = b
        .aggregate(
            &ns(),
            vec![
                doc! {"$match": {"n": {"$gte": 3}}},
                doc! {"$group": {"_id": null, "total": {"$sum": "$n"}}},
            ],
        )
        .await
        .unwrap();
    assert_eq!(out, vec![doc! {"_id": null, "total": 8}]);
    let out = b
        .aggregate(&ns(), vec![doc! {"$match": {}}, doc! {"$count": "n"}])
        .await
        .unwrap();
    assert_eq!(out, vec![doc! {"n": 3}]);
    // A tiny memory budget stops a blocking stage.
    let small = b.clone().with_max_pipeline_bytes(10);
    let err = small
        .aggregate(&ns(), vec![doc! {"$sort": {"n": 1}}])
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::InvalidRequest);
    assert!(
        err.message.contains("Exceeded memory limit for $sort"),
        "{}",
        err.message
    );
    // An exhausted time budget is a timeout (504 at the service).
    let hurried = b.clone().with_max_time(Some(std::time::Duration::ZERO));
    let err = hurried
        .aggregate(&ns(), vec![doc! {"$match": {}}])
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Timeout);
    // No budget at all still runs.
    let unbounded = b.with_max_time(None);
    assert_eq!(
        unbounded
            .aggregate(&ns(), vec![doc! {"$match": {}}])
            .await
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn paths_and_documents_deeper_than_180_levels_are_refused() {
    let b = seeded().await;
    let deep = vec!["a"; 100_000].join(".");
    let refused = |result: Result<UpdateOutcome, BackendError>| {
        let err = result.expect_err("refused");
        assert_eq!(err.kind, BackendErrorKind::InvalidRequest, "{err}");
        assert!(err.message.contains("180"), "{err}");
    };
    // Dotted update paths, an upsert seeded from a dotted filter, $rename.
    for (filter, update, upsert) in [
        (doc! {"_id": 1}, doc! {"$set": {deep.clone(): 1}}, false),
        (doc! {"_id": 9}, doc! {"$set": {deep.clone(): 1}}, true),
        (doc! {deep.clone(): 1}, doc! {"$set": {"x": 1}}, true),
        (
            doc! {"_id": 2},
            doc! {"$rename": {"name": deep.clone()}},
            false,
        ),
    ] {
        refused(b.update_one(&ns(), upd(filter, update, upsert)).await);
    }
    // A short path building a document deeper than 180 levels.
    let nested = vec!["b"; 179].join(".");
    let update = doc! {"$set": {nested: {"c": {"d": 1}}}};
    refused(
        b.update_one(&ns(), upd(doc! {"_id": 1}, update, false))
            .await,
    );
    let at_limit = vec!["a"; 170].join(".");
    let update = doc! {"$set": {at_limit: 1}};
    let outcome = b
        .update_one(&ns(), upd(doc! {"_id": 1}, update, false))
        .await;
    assert_eq!(outcome.map(|o| o.modified_count), Ok(1));
    assert_eq!(b.count(&ns()), 3, "nothing was inserted");
    // Reads with very deep paths find nothing and never crash.
    assert_eq!(
        b.find(&ns(), find(doc! {deep.clone(): 1}))
            .await
            .map(|d| d.len()),
        Ok(0)
    );
    let mut sorted = find(doc! {});
    sorted.sort = Some(doc! {deep.clone(): 1});
    assert_eq!(b.find(&ns(), sorted).await.map(|d| d.len()), Ok(3));
    let mut projected = find(doc! {});
    projected.projection = Some(doc! {deep.clone(): 1});
    assert!(b.find(&ns(), projected).await.is_err());
    // Pipelines: dotted keys and strings count as the nesting they build.
    for stage in [
        doc! {"$addFields": {deep.clone(): 1}},
        doc! {"$project": {"x": format!("${deep}")}},
        doc! {"$lookup": {"from": "items", "localField": "_id", "foreignField": "_id", "as": deep.clone()}},
        doc! {"$unwind": {"path": "$tags", "includeArrayIndex": deep.clone()}},
    ] {
        let err = b.aggregate(&ns(), vec![stage]).await.expect_err("refused");
        assert!(err.message.contains("nested more than 180"), "{err}");
    }
}

#[tokio::test]
async fn unknown_expression_operator_fails_over_an_empty_collection() {
    let b = MemoryBackend::new();
    let empty = Namespace::new("db", "nothing");
    for (pipeline, message) in [
        (
            vec![doc! {"$project": {"x": {"$bogusOp": 1}}}],
            "Invalid $project :: caused by :: Unrecognized expression '$bogusOp'",
        ),
        (
            vec![
                doc! {"$match": {"a": 1}},
                doc! {"$group": {"_id": {"$bogusOp": "$a"}}},
            ],
            "Unrecognized expression '$bogusOp'",
        ),
    ] {
        let err = b.aggregate(&empty, pipeline).await.unwrap_err();
        assert_eq!(err.kind, BackendErrorKind::InvalidRequest);
        assert_eq!(err.message, message);
    }
}

#[tokio::test]
async fn leading_match_streams_into_group_and_count() {
    let b = MemoryBackend::new();
    b.insert_many(
        &ns(),
        vec![
            doc! {"_id": 1, "k": "a", "n": 2, "arr": [{"b": 1}], "d": 1},
            doc! {"_id": 2, "k": "b", "n": 3.5, "arr": [{"b": 1}], "d": 0},
            doc! {"_id": 3, "k": "a", "n": "x", "arr": [{"b": 2}], "d": 1},
            doc! {"_id": 4, "n": 1, "d": 1},
        ],
    )
    .await
    .unwrap();
    // Keys and values read in place, a missing key grouping as null.
    let out = b
        .aggregate(
            &ns(),
            vec![
                doc! {"$match": {"_id": {"$gte": 1}}},
                doc! {"$group": {"_id": "$k", "s": {"$sum": "$n"}, "c": {"$sum": 1}, "f": {"$first": "$n"}}},
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            doc! {"_id": "a", "s": 2, "c": 2, "f": 2},
            doc! {"_id": "b", "s": 3.5, "c": 1, "f": 3.5},
            doc! {"_id": null, "s": 1, "c": 1, "f": 1},
        ]
    );
    // A path through an array is evaluated, not read in place.
    let out = b
        .aggregate(
            &ns(),
            vec![
                doc! {"$match": {"d": 1}},
                doc! {"$group": {"_id": "$arr.b", "c": {"$count": {}}}},
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            doc! {"_id": [1], "c": 1},
            doc! {"_id": [2], "c": 1},
            doc! {"_id": null, "c": 1},
        ]
    );
    let out = b
        .aggregate(&ns(), vec![doc! {"$match": {"d": 1}}, doc! {"$count": "n"}])
        .await
        .unwrap();
    assert_eq!(out, vec![doc! {"n": 3}]);
    // An error while matching fails the pipeline.
    let err = b
        .aggregate(
            &ns(),
            vec![
                doc! {"$match": {"$expr": {"$gt": [{"$divide": [1, "$d"]}, 0]}}},
                doc! {"$group": {"_id": null, "c": {"$sum": 1}}},
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::InvalidRequest);
    assert_eq!(err.message, "can't $divide by zero");
}

#[tokio::test]
async fn inserted_documents_have_id_first() {
    let b = MemoryBackend::new();
    b.insert_many(
        &ns(),
        vec![
            doc! {"_id": 1, "a": 1},
            doc! {"a": 2, "_id": 2},
            doc! {"a": 3},
        ],
    )
    .await
    .unwrap();
    let docs = b.find(&ns(), find(doc! {})).await.unwrap();
    assert_eq!(docs.len(), 3);
    for d in &docs {
        assert_eq!(d.keys().next().map(String::as_str), Some("_id"), "{d}");
    }
    assert_eq!(docs[1], doc! {"_id": 2, "a": 2});
    // An invalid `_id` is refused whether it comes first or not.
    for bad in [doc! {"_id": [1], "a": 1}, doc! {"a": 1, "_id": [1]}] {
        let err = b.insert_one(&ns(), bad).await.unwrap_err();
        assert_eq!(
            err.kind,
            BackendErrorKind::InvalidRequest,
            "{}",
            err.message
        );
    }
}

#[tokio::test]
async fn find_one_by_plain_id_agrees_with_the_general_path() {
    let b = MemoryBackend::new();
    let oid = bson::oid::ObjectId::new();
    let when = bson::DateTime::from_millis(1_700_000_000_000);
    let ids = [
        Bson::Int32(1),
        Bson::Double(2.0),
        Bson::Int64(3),
        Bson::String("four".into()),
        Bson::ObjectId(oid),
        Bson::Boolean(true),
        Bson::DateTime(when),
        Bson::Double(-0.0),
        Bson::Double(f64::NAN),
    ];
    for (n, id) in ids.iter().enumerate() {
        b.insert_one(&ns(), doc! {"_id": id.clone(), "n": n as i32})
            .await
            .unwrap();
    }
    // Same values, other types where MongoDB compares them equal, and misses.
    let probes = [
        Bson::Int32(1),
        Bson::Int64(1),
        Bson::Double(1.0),
        Bson::Int32(2),
        Bson::Double(3.0),
        Bson::String("four".into()),
        Bson::String("Four".into()),
        Bson::ObjectId(oid),
        Bson::ObjectId(bson::oid::ObjectId::new()),
        Bson::Boolean(true),
        Bson::Boolean(false),
        Bson::DateTime(when),
        Bson::Int32(0),
        Bson::Double(f64::NAN),
        Bson::Int32(99),
    ];
    for probe in probes {
        let quick = b
            .find_one(&ns(), FindOneQuery::new(doc! {"_id": probe.clone()}))
            .await
            .unwrap();
        let general = b
            .find_one(
                &ns(),
                FindOneQuery::new(doc! {"_id": {"$eq": probe.clone()}}),
            )
            .await
            .unwrap();
        // Compared as text: a document holding NaN is not `==` to itself.
        assert_eq!(format!("{quick:?}"), format!("{general:?}"), "{probe:?}");
    }
    let one = b
        .find_one(&ns(), FindOneQuery::new(doc! {"_id": 1_i64}))
        .await
        .unwrap();
    assert_eq!(one, Some(doc! {"_id": 1, "n": 0}));
    // Plain projections take the quick path too; others, and errors, agree.
    let projections = [
        doc! {"n": 1},
        doc! {"n": 0},
        doc! {"_id": 0, "n": true},
        doc! {"missing": 1.0},
        doc! {"n": 1, "_id": 1_i64},
        doc! {"n": 1, "other": 0},
        doc! {"n": {"$add": [1, 2]}},
        doc! {"n.$": 1},
    ];
    for projection in projections {
        let with = |filter: Document| FindOneQuery {
            filter,
            projection: Some(projection.clone()),
            ..Default::default()
        };
        let quick = b.find_one(&ns(), with(doc! {"_id": 1})).await;
        let general = b.find_one(&ns(), with(doc! {"_id": {"$eq": 1}})).await;
        assert_eq!(format!("{quick:?}"), format!("{general:?}"), "{projection}");
    }
    // A collection that does not exist.
    let other = Namespace::new("db", "nothing");
    let none = b
        .find_one(&other, FindOneQuery::new(doc! {"_id": 1}))
        .await
        .unwrap();
    assert_eq!(none, None);
}

#[tokio::test]
async fn single_document_writes_in_place_keep_snapshots_and_fail_cleanly() {
    let b = seeded().await;
    let slot = b.existing("db", "items").unwrap();
    let before = slot.snapshot();
    b.insert_one(&ns(), doc! {"_id": 4, "n": 0}).await.unwrap();
    b.update_one(&ns(), upd(doc! {"_id": 1}, doc! {"$inc": {"n": 1}}, false))
        .await
        .unwrap();
    b.delete_one(&ns(), doc! {"_id": 2}).await.unwrap();
    // An ordered batch that fails keeps what it inserted before, in place too.
    let err = b
        .insert_many(&ns(), vec![doc! {"_id": 6, "n": 0}, doc! {"_id": 4}])
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::DuplicateKey);
    b.delete_one(&ns(), doc! {"_id": 6}).await.unwrap();
    // A batch larger than one in-place chunk, failing in its second chunk.
    let mut batch: Vec<Document> = (100..300).map(|i| doc! {"_id": i}).collect();
    batch[130] = doc! {"_id": 4};
    let err = b.insert_many(&ns(), batch).await.unwrap_err();
    assert!(
        err.message
            .ends_with("(130 of 200 documents were inserted before the error)"),
        "{}",
        err.message
    );
    assert_eq!(b.count(&ns()), 3 + 130);
    b.delete_many(&ns(), doc! {"_id": {"$gte": 100}})
        .await
        .unwrap();
    // A snapshot taken before the writes still reads what it read.
    assert_eq!(before.len(), 3);
    assert_eq!(
        before
            .by_id(&canonical_key(&Bson::Int32(1)))
            .unwrap()
            .get_i32("n"),
        Ok(5)
    );
    assert!(before.by_id(&canonical_key(&Bson::Int32(2))).is_some());
    let after = slot.snapshot();
    assert_eq!(after.len(), 3);
    assert_eq!(
        after
            .by_id(&canonical_key(&Bson::Int32(1)))
            .unwrap()
            .get_i32("n"),
        Ok(6)
    );
    assert!(after.by_id(&canonical_key(&Bson::Int32(2))).is_none());
    // A refused insert and a refused update change nothing.
    b.create_index(&ns(), IndexSpec::new([("n", 1)]).unwrap().unique(true))
        .unwrap();
    let dup = b.insert_one(&ns(), doc! {"_id": 5, "n": 6}).await;
    assert_eq!(dup.unwrap_err().kind, BackendErrorKind::DuplicateKey);
    let dup = b
        .update_one(&ns(), upd(doc! {"_id": 3}, doc! {"$set": {"n": 0}}, false))
        .await;
    assert_eq!(dup.unwrap_err().kind, BackendErrorKind::DuplicateKey);
    let now = slot.snapshot();
    assert_eq!(now.len(), 3);
    assert!(now.by_id(&canonical_key(&Bson::Int32(5))).is_none());
    assert_eq!(
        now.by_id(&canonical_key(&Bson::Int32(3)))
            .unwrap()
            .get_i32("n"),
        Ok(3)
    );
    let found = b.find(&ns(), find(doc! {"n": {"$gte": 0}})).await.unwrap();
    assert_eq!(found.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_place_and_copying_writers_lose_nothing_under_concurrent_readers() {
    let b = MemoryBackend::new();
    let seed: Vec<Document> = (0..200).map(|i| doc! {"_id": i, "n": 0, "v": 0}).collect();
    b.insert_many(&ns(), seed).await.unwrap();
    let mut writers = Vec::new();
    for w in 0..2 {
        let b = b.clone();
        writers.push(tokio::spawn(async move {
            for k in 0..300 {
                // In place: one document each.
                b.insert_one(&ns(), doc! {"_id": 1000 + w * 1000 + k, "n": 0, "v": 0})
                    .await
                    .unwrap();
                let inc = doc! {"$inc": {"n": 1, "v": 1}};
                b.update_one(&ns(), upd(doc! {"_id": k % 200}, inc, false))
                    .await
                    .unwrap();
            }
        }));
    }
    // Copying: every document, publishing a whole new version.
    let copier = {
        let b = b.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                b.update_many(&ns(), upd(doc! {}, doc! {"$inc": {"m": 1}}, false))
                    .await
                    .unwrap();
            }
        })
    };
    let mut readers = Vec::new();
    for _ in 0..2 {
        let b = b.clone();
        readers.push(tokio::spawn(async move {
            let mut seen = 0;
            for _ in 0..50 {
                let docs = b.find(&ns(), find(doc! {})).await.unwrap();
                assert!(docs.len() >= seen, "a reader saw documents disappear");
                seen = docs.len();
                for d in &docs {
                    assert_eq!(d.get_i32("n"), d.get_i32("v"), "a half-applied update: {d}");
                }
            }
        }));
    }
    for task in writers.into_iter().chain(readers).chain([copier]) {
        task.await.unwrap();
    }
    let docs = b
        .find(
            &ns(),
            FindQuery {
                limit: 0,
                ..find(doc! {})
            },
        )
        .await
        .unwrap();
    assert_eq!(docs.len(), 200 + 2 * 300);
    let total: i32 = docs.iter().map(|d| d.get_i32("n").unwrap()).sum();
    assert_eq!(total, 2 * 300, "every in-place update is kept");
    let seeded_m: Vec<i32> = docs
        .iter()
        .filter(|d| d.get_i32("_id").unwrap() < 200)
        .map(|d| d.get_i32("m").unwrap())
        .collect();
    assert!(
        seeded_m.iter().all(|m| *m == 20),
        "every copying update is kept"
    );
}

/// Reads classed for the pool (a scan of more than a small collection)
/// that end early are answered inline: in the first poll, with no hand-off.
/// Those that do not move to the pool and give the same answer.
#[tokio::test]
async fn reads_that_end_early_stay_inline_and_the_others_move_to_the_pool() {
    use futures_util::FutureExt as _;
    let b = MemoryBackend::new();
    let docs = (0..5_000)
        .map(|i| doc! {"_id": i, "late": i >= 4_990})
        .collect();
    b.insert_many(&ns(), docs).await.unwrap();
    let pool_jobs = || b.pool_jobs.load(Ordering::Relaxed);
    let before = pool_jobs();
    let ids = |docs: Vec<Document>| -> Vec<i32> {
        docs.iter().map(|d| d.get_i32("_id").unwrap()).collect()
    };
    let early = FindQuery {
        limit: 10,
        ..find(doc! {"late": false})
    };
    let answered = b
        .find(&ns(), early)
        .now_or_never()
        .expect("answered inline");
    assert_eq!(ids(answered.unwrap()), (0..10).collect::<Vec<_>>());
    let one = b
        .find_one(&ns(), FindOneQuery::new(doc! {"late": false}))
        .now_or_never()
        .expect("answered inline");
    assert_eq!(one.unwrap().unwrap().get_i32("_id"), Ok(0));
    assert_eq!(pool_jobs(), before, "nothing went to the pool");

    // Matches only past the inline allowance: handed to the pool, and the
    // answer is the whole one.
    let late = FindQuery {
        limit: 5,
        ..find(doc! {"late": true})
    };
    assert_eq!(
        ids(b.find(&ns(), late).await.unwrap()),
        (4_990..4_995).collect::<Vec<_>>()
    );
    assert_eq!(pool_jobs(), before + 1);
    let last = FindOneQuery::new(doc! {"late": true, "_id": {"$gte": 4_999}});
    assert_eq!(
        b.find_one(&ns(), last)
            .await
            .unwrap()
            .unwrap()
            .get_i32("_id"),
        Ok(4_999)
    );
    assert_eq!(pool_jobs(), before + 2);
    // Reads that cannot end early go to the pool at once: no limit, or a
    // sort made in memory.
    let all = FindQuery {
        limit: 0,
        ..find(doc! {"late": false})
    };
    assert_eq!(b.find(&ns(), all).await.unwrap().len(), 4_990);
    assert_eq!(pool_jobs(), before + 3);
    let sorted = FindQuery {
        limit: 1,
        sort: Some(doc! {"_id": -1}),
        ..find(doc! {})
    };
    assert_eq!(ids(b.find(&ns(), sorted).await.unwrap()), vec![4_999]);
    assert_eq!(pool_jobs(), before + 4);
}

thread_local! {
    static FAULT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Panics once after [`arm_fault`]: stands for a bug that stops an insert
/// half-way (the `_id` index has the document, the documents do not yet).
pub(super) fn fault_point() {
    if FAULT.with(|armed| armed.replace(false)) {
        panic!("injected fault");
    }
}

fn arm_fault() {
    FAULT.with(|armed| armed.set(true));
}

/// A panic in the middle of an in-place write leaves the indexes rebuilt
/// from the documents: no phantom `_id`, no stale secondary key.
#[tokio::test]
async fn a_panic_half_way_through_an_in_place_write_leaves_the_indexes_whole() {
    use futures_util::FutureExt as _;
    let b = MemoryBackend::new().with_index(
        "db",
        "items",
        IndexSpec::new([("n", 1)]).unwrap().unique(true),
    );
    b.insert_one(&ns(), doc! {"_id": 1, "n": 1}).await.unwrap();
    arm_fault();
    let outcome = std::panic::AssertUnwindSafe(b.insert_one(&ns(), doc! {"_id": 2, "n": 2}))
        .catch_unwind()
        .await;
    assert!(outcome.is_err(), "the injected panic goes on to the caller");
    let by_id = |id: i32| FindOneQuery::new(doc! {"_id": id});
    assert_eq!(b.find_one(&ns(), by_id(2)).await.unwrap(), None);
    assert_eq!(b.count(&ns()), 1);
    // The `_id` and the unique key the half-made insert held are free.
    b.insert_one(&ns(), doc! {"_id": 2, "n": 2}).await.unwrap();
    assert_eq!(
        b.find_one(&ns(), FindOneQuery::new(doc! {"n": 2}))
            .await
            .unwrap(),
        Some(doc! {"_id": 2, "n": 2})
    );
    // Both indexes still refuse duplicates.
    assert!(b.insert_one(&ns(), doc! {"_id": 1, "n": 9}).await.is_err());
    assert!(b.insert_one(&ns(), doc! {"_id": 3, "n": 1}).await.is_err());
    assert_eq!(
        b.find_one(&ns(), by_id(1)).await.unwrap(),
        Some(doc! {"_id": 1, "n": 1})
    );
}
