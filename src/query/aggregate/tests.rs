use std::cell::RefCell;
use std::collections::HashMap;

use super::*;
use crate::query::limits::MEMORY_LIMIT_EXCEEDED;
use bson::{bson, doc};

struct Ctx(RefCell<HashMap<String, Vec<Document>>>);

impl AggregateContext for Ctx {
    fn collection(&self, name: &str) -> Vec<Document> {
        self.0.borrow().get(name).cloned().unwrap_or_default()
    }
    fn write_collection(&self, name: &str, docs: Vec<Document>) -> Result<(), QueryError> {
        self.0.borrow_mut().insert(name.to_string(), docs);
        Ok(())
    }
}

fn ctx() -> Ctx {
    let mut m = HashMap::new();
    m.insert(
        "people".to_string(),
        vec![
            doc! {"_id": 1, "name": "ann", "boss": null},
            doc! {"_id": 2, "name": "bob", "boss": "ann"},
            doc! {"_id": 3, "name": "cat", "boss": "bob"},
            doc! {"_id": 4, "name": "dan", "boss": "cat"},
        ],
    );
    m.insert(
        "inventory".to_string(),
        vec![
            doc! {"_id": 1, "sku": "a", "qty": 10},
            doc! {"_id": 2, "sku": "b", "qty": 0},
            doc! {"_id": 3, "sku": "c"},
        ],
    );
    Ctx(RefCell::new(m))
}

fn input() -> Vec<Document> {
    vec![
        doc! {"_id": 1, "item": "a", "price": 10, "qty": 2, "tags": ["x", "y"]},
        doc! {"_id": 2, "item": "b", "price": 20, "qty": 1, "tags": []},
        doc! {"_id": 3, "item": "a", "price": 5.5, "qty": 10},
        doc! {"_id": 4, "item": "c", "price": i32::MAX, "qty": 1, "tags": "z"},
    ]
}

fn run(stages: Vec<Document>) -> Vec<Document> {
    let p = Pipeline::parse(&stages).unwrap_or_else(|e| panic!("{e}"));
    p.run(input(), &ctx()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn stages() {
    let cases: Vec<(Vec<Document>, Vec<Document>)> = vec![
        (
            vec![
                doc! {"$match": {"item": "a"}},
                doc! {"$project": {"_id": 0, "price": 1}},
            ],
            vec![doc! {"price": 10}, doc! {"price": 5.5}],
        ),
        (
            vec![
                doc! {"$group": {"_id": "$item", "total": {"$sum": "$price"}, "n": {"$count": {}}, "avg": {"$avg": "$qty"}}},
                doc! {"$sort": {"_id": 1}},
            ],
            vec![
                doc! {"_id": "a", "total": 15.5, "n": 2, "avg": 6.0},
                doc! {"_id": "b", "total": 20, "n": 1, "avg": 1.0},
                doc! {"_id": "c", "total": i32::MAX, "n": 1, "avg": 1.0},
            ],
        ),
        (
            vec![
                doc! {"$group": {"_id": null, "s": {"$sum": "$price"}, "ints": {"$sum": {"$toInt": "$qty"}}}},
            ],
            vec![doc! {"_id": null, "s": f64::from(i32::MAX) + 35.5, "ints": 14}],
        ),
        (
            vec![
                doc! {"$match": {"item": {"$ne": "a"}}},
                doc! {"$group": {"_id": null, "s": {"$sum": "$price"}}},
            ],
            vec![doc! {"_id": null, "s": i64::from(i32::MAX) + 20}],
        ),
        (
            vec![
                doc! {"$group": {"_id": "$item", "first": {"$first": "$_id"}, "last": {"$last": "$_id"}, "ids": {"$push": "$_id"}, "set": {"$addToSet": "$qty"}, "mx": {"$max": "$tags"}, "mn": {"$min": "$nope"}}},
                doc! {"$limit": 1},
            ],
            vec![
                doc! {"_id": "a", "first": 1, "last": 3, "ids": [1, 3], "set": [2, 10], "mx": ["x", "y"], "mn": null},
            ],
        ),
        (vec![doc! {"$count": "n"}], vec![doc! {"n": 4}]),
        (
            vec![doc! {"$match": {"nope": 1}}, doc! {"$count": "n"}],
            vec![],
        ),
        (
            vec![doc! {"$unwind": "$tags"}, doc! {"$project": {"tags": 1}}],
            vec![
                doc! {"_id": 1, "tags": "x"},
                doc! {"_id": 1, "tags": "y"},
                doc! {"_id": 4, "tags": "z"},
            ],
        ),
        (
            vec![
                doc! {"$unwind": {"path": "$tags", "includeArrayIndex": "i", "preserveNullAndEmptyArrays": true}},
                doc! {"$project": {"tags": 1, "i": 1}},
            ],
            vec![
                doc! {"_id": 1, "tags": "x", "i": 0i64},
                doc! {"_id": 1, "tags": "y", "i": 1i64},
                doc! {"_id": 2, "i": null},
                doc! {"_id": 3, "i": null},
                doc! {"_id": 4, "tags": "z", "i": null},
            ],
        ),
        (
            vec![
                doc! {"$match": {"_id": 1}},
                doc! {"$addFields": {"total": {"$multiply": ["$price", "$qty"]}, "sub.x": 1}},
                doc! {"$unset": ["tags", "item"]},
            ],
            vec![doc! {"_id": 1, "price": 10, "qty": 2, "total": 20, "sub": {"x": 1}}],
        ),
        (
            vec![
                doc! {"$match": {"_id": 2}},
                doc! {"$replaceRoot": {"newRoot": {"i": "$item"}}},
            ],
            vec![doc! {"i": "b"}],
        ),
        (
            vec![
                doc! {"$match": {"_id": 2}},
                doc! {"$replaceWith": {"$mergeObjects": [{"z": 0}, {"i": "$item"}]}},
            ],
            vec![doc! {"z": 0, "i": "b"}],
        ),
        (
            vec![doc! {"$sortByCount": "$item"}, doc! {"$limit": 1}],
            vec![doc! {"_id": "a", "count": 2}],
        ),
        (
            vec![
                doc! {"$sort": {"price": -1}},
                doc! {"$skip": 1},
                doc! {"$limit": 1},
                doc! {"$project": {"_id": 1}},
            ],
            vec![doc! {"_id": 2}],
        ),
        (
            vec![
                doc! {"$match": {"_id": {"$lte": 2}}},
                doc! {"$lookup": {"from": "inventory", "localField": "item", "foreignField": "sku", "as": "inv"}},
                doc! {"$project": {"inv.qty": 1}},
            ],
            vec![
                doc! {"_id": 1, "inv": [{"qty": 10}]},
                doc! {"_id": 2, "inv": [{"qty": 0}]},
            ],
        ),
        (
            vec![
                doc! {"$match": {"_id": 1}},
                doc! {"$lookup": {"from": "inventory", "let": {"q": "$qty"}, "pipeline": [{"$match": {"$expr": {"$gt": ["$qty", "$$q"]}}}, {"$project": {"_id": 1}}], "as": "more"}},
                doc! {"$project": {"more": 1}},
            ],
            vec![doc! {"_id": 1, "more": [{"_id": 1}]}],
        ),
        (
            vec![
                doc! {"$match": {"_id": 1}},
                doc! {"$project": {"_id": 1}},
                doc! {"$unionWith": {"coll": "inventory", "pipeline": [{"$project": {"_id": 1}}]}},
            ],
            vec![
                doc! {"_id": 1},
                doc! {"_id": 1},
                doc! {"_id": 2},
                doc! {"_id": 3},
            ],
        ),
        (
            vec![
                doc! {"$facet": {"n": [{"$count": "c"}], "items": [{"$group": {"_id": "$item"}}, {"$sort": {"_id": -1}}, {"$limit": 1}]}},
            ],
            vec![doc! {"n": [{"c": 4}], "items": [{"_id": "c"}]}],
        ),
        (
            vec![
                doc! {"$bucket": {"groupBy": "$price", "boundaries": [0, 10, 100], "default": "other"}},
            ],
            vec![
                doc! {"_id": 0, "count": 1},
                doc! {"_id": 10, "count": 2},
                doc! {"_id": "other", "count": 1},
            ],
        ),
        (
            vec![doc! {"$sample": {"size": 2}}, doc! {"$count": "n"}],
            vec![doc! {"n": 2}],
        ),
        (
            vec![
                doc! {"$group": {
                    "_id": "$item",
                    "f": {"$firstN": {"n": 2, "input": "$_id"}},
                    "l": {"$lastN": {"n": 1, "input": "$_id"}},
                    "mx": {"$maxN": {"n": 2, "input": "$price"}},
                    "top": {"$top": {"sortBy": {"price": 1}, "output": "$_id"}},
                    "bottom": {"$bottomN": {"n": 1, "sortBy": {"price": 1}, "output": ["$_id", "$qty"]}},
                }},
                doc! {"$limit": 1},
            ],
            vec![
                doc! {"_id": "a", "f": [1, 3], "l": [3], "mx": [10, 5.5], "top": 3, "bottom": [[1, 2]]},
            ],
        ),
    ];
    for (stages, want) in cases {
        let got = run(stages.clone());
        assert_eq!(got, want, "{stages:?}");
    }
}

#[test]
fn set_window_fields() {
    let input = vec![
        doc! {"_id": 1, "g": "x", "t": 1, "v": 10},
        doc! {"_id": 2, "g": "y", "t": 1, "v": 5},
        doc! {"_id": 3, "g": "x", "t": 3, "v": 20},
        doc! {"_id": 4, "g": "x", "t": 2, "v": 20},
    ];
    let p = Pipeline::parse(&[
        doc! {"$setWindowFields": {
            "partitionBy": "$g",
            "sortBy": {"t": 1},
            "output": {
                "running": {"$sum": "$v", "window": {"documents": ["unbounded", "current"]}},
                "near": {"$sum": "$v", "window": {"range": [-1, 0]}},
                "total": {"$sum": "$v"},
                "rank": {"$rank": {}},
                "dense": {"$denseRank": {}},
                "prev": {"$shift": {"output": "$v", "by": -1, "default": 0}},
            },
        }},
        doc! {"$project": {"g": 0, "t": 0, "v": 0}},
    ])
    .unwrap();
    let out = p.run(input, &NoCollections).unwrap();
    assert_eq!(
        out,
        vec![
            doc! {"_id": 1, "running": 10, "near": 10, "total": 50, "rank": 1, "dense": 1, "prev": 0},
            doc! {"_id": 4, "running": 30, "near": 30, "total": 50, "rank": 2, "dense": 2, "prev": 10},
            doc! {"_id": 3, "running": 50, "near": 40, "total": 50, "rank": 3, "dense": 3, "prev": 20},
            doc! {"_id": 2, "running": 5, "near": 5, "total": 5, "rank": 1, "dense": 1, "prev": 0},
        ]
    );
    let err = Pipeline::parse(&[doc! {"$setWindowFields": {"output": {"r": {"$rank": {}}}}}])
        .unwrap_err();
    assert_eq!(err.code, 9);
}

#[test]
fn redact() {
    let p = Pipeline::parse(&[doc! {"$redact": {"$cond": [{"$eq": [{"$ifNull": ["$level", 0]}, 5]}, "$$PRUNE", "$$DESCEND"]}}]).unwrap();
    let input =
        vec![doc! {"_id": 1, "sub": {"level": 5, "x": 1}, "list": [{"level": 1}, {"level": 5}, 3]}];
    assert_eq!(
        p.run(input, &NoCollections).unwrap(),
        vec![doc! {"_id": 1, "list": [{"level": 1}, 3]}]
    );
}

#[test]
fn graph_lookup() {
    let c = ctx();
    let p = Pipeline::parse(&[
        doc! {"$match": {"_id": 4}},
        doc! {"$graphLookup": {"from": "people", "startWith": "$boss", "connectFromField": "boss", "connectToField": "name", "as": "chain", "maxDepth": 1, "depthField": "d"}},
        doc! {"$project": {"chain.name": 1, "chain.d": 1}},
    ])
    .unwrap();
    let input = c.collection("people");
    let out = p.run(input, &c).unwrap();
    assert_eq!(
        out,
        vec![doc! {"_id": 4, "chain": [{"name": "cat", "d": 0i64}, {"name": "bob", "d": 1i64}]}]
    );
}

#[test]
fn out_and_merge() {
    let c = ctx();
    let p = Pipeline::parse(&[
        doc! {"$match": {"item": "a"}},
        doc! {"$project": {"item": 1}},
        doc! {"$out": "copy"},
    ])
    .unwrap();
    assert!(p.writes());
    assert_eq!(p.run(input(), &c).unwrap(), vec![]);
    assert_eq!(
        c.collection("copy"),
        vec![doc! {"_id": 1, "item": "a"}, doc! {"_id": 3, "item": "a"}]
    );
    let p = Pipeline::parse(&[
        doc! {"$project": {"qty": 1}},
        doc! {"$merge": {"into": "inventory", "whenNotMatched": "discard"}},
    ])
    .unwrap();
    p.run(input(), &c).unwrap();
    assert_eq!(
        c.collection("inventory"),
        vec![
            doc! {"_id": 1, "sku": "a", "qty": 2},
            doc! {"_id": 2, "sku": "b", "qty": 1},
            doc! {"_id": 3, "sku": "c", "qty": 10}
        ]
    );
    let p = Pipeline::parse(&[
        doc! {"$project": {"_id": 0, "x": "$item"}},
        doc! {"$merge": "fresh"},
    ])
    .unwrap();
    p.run(input(), &c).unwrap();
    let fresh = c.collection("fresh");
    assert_eq!(fresh.len(), 4);
    assert!(matches!(fresh[0].get("_id"), Some(Bson::ObjectId(_))));
    assert_eq!(fresh[0].keys().next().map(String::as_str), Some("_id"));
}

#[test]
fn errors() {
    let cases = [
        (
            vec![doc! {"$foo": 1}],
            40324,
            "Unrecognized pipeline stage name: '$foo'",
        ),
        (
            vec![doc! {"$match": {}, "$limit": 1}],
            40323,
            "A pipeline stage specification object must contain exactly one field.",
        ),
        (
            vec![doc! {"$project": {"a": {"$foo": 1}}}],
            168,
            "Invalid $project :: caused by :: Unrecognized expression '$foo'",
        ),
        (
            vec![doc! {"$group": {"x": {"$sum": 1}}}],
            15955,
            "a group specification must include an _id",
        ),
        (
            vec![doc! {"$group": {"_id": null, "x": {"$foo": 1}}}],
            15952,
            "unknown group operator '$foo'",
        ),
        (
            vec![doc! {"$group": {"_id": null, "x": 1}}],
            40234,
            "The field 'x' must be an accumulator object",
        ),
        (
            vec![doc! {"$limit": 0}],
            15958,
            "the limit must be positive",
        ),
        (
            vec![doc! {"$sort": {}}],
            15976,
            "$sort stage must have at least one sort key",
        ),
        (
            vec![doc! {"$sort": {"a": 2}}],
            15975,
            "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
        ),
        (
            vec![doc! {"$unwind": "tags"}],
            28818,
            "path option to $unwind stage should be prefixed with a '$': tags",
        ),
        (
            vec![doc! {"$out": "x"}, doc! {"$match": {}}],
            40601,
            "$out can only be the final stage in the pipeline",
        ),
        (
            vec![doc! {"$geoNear": {}}],
            238,
            "$geoNear is not supported by the embedded engine",
        ),
        (
            vec![doc! {"$count": "$x"}],
            40158,
            "the count field cannot be a $-prefixed path",
        ),
    ];
    for (stages, code, msg) in cases {
        let err = Pipeline::parse(&stages).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (code, msg), "{stages:?}");
    }
    let p = Pipeline::parse(&[doc! {"$replaceWith": "$item"}]).unwrap();
    let err = p.run(input(), &NoCollections).unwrap_err();
    assert_eq!(err.code, 40228);
    // MongoDB words $replaceWith's error after its argument, two spaces included.
    assert!(err.message.starts_with("'replacement document'  must evaluate to an object, but resulting value was: \"a\". Type of resulting value: 'string'."), "{}", err.message);
    let p = Pipeline::parse(&[doc! {"$replaceRoot": {"newRoot": "$item"}}]).unwrap();
    let err = p.run(input(), &NoCollections).unwrap_err();
    assert!(
        err.message
            .starts_with("'newRoot' expression must evaluate"),
        "{}",
        err.message
    );
    // $skip, $limit and $sample arguments, with MongoDB's messages.
    let arg_cases: &[(Document, i32, &str)] = &[
        (
            doc! {"$limit": -1},
            5107201,
            "invalid argument to $limit stage: Expected a non-negative number in: $limit: -1",
        ),
        (
            doc! {"$limit": "x"},
            5107201,
            "invalid argument to $limit stage: Expected a number in: $limit: \"x\"",
        ),
        (doc! {"$limit": 0}, 15958, "the limit must be positive"),
        (
            doc! {"$skip": -1},
            5107200,
            "invalid argument to $skip stage: Expected a non-negative number in: $skip: -1",
        ),
        (
            doc! {"$skip": 1.5},
            5107200,
            "invalid argument to $skip stage: Expected an integer in: $skip: 1.5",
        ),
        (
            doc! {"$sample": {"size": -1}},
            28747,
            "size argument to $sample must not be negative",
        ),
        (
            doc! {"$sample": {"size": "1"}},
            28746,
            "size argument to $sample must be a number",
        ),
    ];
    for (stage, code, msg) in arg_cases {
        let err = Pipeline::parse(std::slice::from_ref(stage)).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (*code, *msg), "{stage}");
    }
    let p = Pipeline::parse(&[doc! {"$project": {"r": {"$divide": [1, 0]}}}]).unwrap();
    assert_eq!(
        p.run(input(), &NoCollections).unwrap_err().message,
        "can't $divide by zero"
    );
    let _ = bson!(1);
}

fn run_err(stages: Vec<Document>) -> QueryError {
    Pipeline::parse(&stages)
        .and_then(|p| p.run(input(), &ctx()))
        .expect_err("the pipeline should fail")
}

#[test]
fn bucket_auto_cuts_sorted_values_into_even_buckets() {
    let docs: Vec<Document> = (1..=10).map(|i| doc! {"_id": i, "v": i}).collect();
    let p = Pipeline::parse(&[doc! {"$bucketAuto": {"groupBy": "$v", "buckets": 3}}]).unwrap();
    let out = p.run(docs.clone(), &ctx()).unwrap();
    assert_eq!(
        out,
        vec![
            doc! {"_id": {"min": 1, "max": 4}, "count": 3},
            doc! {"_id": {"min": 4, "max": 7}, "count": 3},
            doc! {"_id": {"min": 7, "max": 10}, "count": 4},
        ]
    );
    // Equal values stay together; more buckets than documents; output accumulators.
    let docs = vec![
        doc! {"v": 1},
        doc! {"v": 1},
        doc! {"v": 1},
        doc! {"v": 2},
        doc! {},
    ];
    let p = Pipeline::parse(&[
        doc! {"$bucketAuto": {"groupBy": "$v", "buckets": 10, "output": {"n": {"$sum": 1}, "vs": {"$push": "$v"}}}},
    ])
    .unwrap();
    assert_eq!(
        p.run(docs, &ctx()).unwrap(),
        vec![
            doc! {"_id": {"min": null, "max": 1}, "n": 1, "vs": []},
            doc! {"_id": {"min": 1, "max": 2}, "n": 3, "vs": [1, 1, 1]},
            doc! {"_id": {"min": 2, "max": 2}, "n": 1, "vs": [2]},
        ]
    );
    let cases: &[(Document, i32)] = &[
        (doc! {"$bucketAuto": 1}, 40240),
        (doc! {"$bucketAuto": {"groupBy": "v", "buckets": 2}}, 40239),
        (
            doc! {"$bucketAuto": {"groupBy": "$v", "buckets": "2"}},
            40241,
        ),
        (
            doc! {"$bucketAuto": {"groupBy": "$v", "buckets": 2.5}},
            40242,
        ),
        (doc! {"$bucketAuto": {"groupBy": "$v", "buckets": 0}}, 40243),
        (
            doc! {"$bucketAuto": {"groupBy": "$v", "buckets": 2, "output": 1}},
            40244,
        ),
        (
            doc! {"$bucketAuto": {"groupBy": "$v", "buckets": 2, "x": 1}},
            40245,
        ),
        (doc! {"$bucketAuto": {"groupBy": "$v"}}, 40246),
    ];
    for (stage, code) in cases {
        assert_eq!(run_err(vec![stage.clone()]).code, *code, "{stage}");
    }
}

#[test]
fn documents_stage_replaces_the_input() {
    let out = run(vec![
        doc! {"$documents": [{"x": 1}, {"x": 2}]},
        doc! {"$match": {"x": 2}},
    ]);
    assert_eq!(out, vec![doc! {"x": 2}]);
    let out = run(vec![
        doc! {"$documents": {"$map": {"input": {"$range": [0, 3]}, "in": {"i": "$$this"}}}},
    ]);
    assert_eq!(out, vec![doc! {"i": 0}, doc! {"i": 1}, doc! {"i": 2}]);
    assert_eq!(run_err(vec![doc! {"$documents": 1}]).code, 5858203);
    // In sub-pipelines, without a collection to read.
    let out = run(vec![
        doc! {"$limit": 1},
        doc! {"$unionWith": {"pipeline": [{"$documents": [{"u": 1}, {"u": 2}]}]}},
        doc! {"$lookup": {"let": {"i": "$item"}, "pipeline": [{"$documents": [{"x": "$$i"}]}], "as": "l"}},
        doc! {"$project": {"_id": 0, "u": 1, "l": 1}},
    ]);
    assert_eq!(
        out,
        vec![
            doc! {"l": [{"x": "a"}]},
            doc! {"u": 1, "l": [{"x": null}]},
            doc! {"u": 2, "l": [{"x": null}]},
        ]
    );
    assert_eq!(
        run_err(vec![doc! {"$unionWith": {"pipeline": [{"$match": {}}]}}]).code,
        40414
    );
    assert_eq!(run_err(vec![doc! {"$documents": [1]}]).code, 40228);
    assert_eq!(
        run_err(vec![doc! {"$match": {}}, doc! {"$documents": []}]).code,
        40602
    );
}

struct StatsCtx;

impl AggregateContext for StatsCtx {
    fn collection(&self, _: &str) -> Vec<Document> {
        Vec::new()
    }
    fn stats(&self) -> Option<CollectionStats> {
        Some(CollectionStats::of("db.c".into(), &input()))
    }
}

#[test]
fn coll_stats_reports_the_count() {
    let p = Pipeline::parse(&[doc! {"$collStats": {"count": {}, "storageStats": {}}}]).unwrap();
    assert!(!p.reads_input());
    let out = p.run(Vec::new(), &StatsCtx).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].get_str("ns").unwrap(), "db.c");
    assert_eq!(out[0].get_i32("count").unwrap(), 4);
    let storage = out[0].get_document("storageStats").unwrap();
    assert_eq!(storage.get_i32("count").unwrap(), 4);
    assert!(storage.get_i32("size").unwrap() > 0);
    assert_eq!(
        run_err(vec![doc! {"$collStats": {"bogus": {}}}]).code,
        40415
    );
    assert_eq!(run_err(vec![doc! {"$collStats": {"count": 1}}]).code, 14);
    assert_eq!(
        run_err(vec![doc! {"$skip": 0}, doc! {"$collStats": {"count": {}}}]).code,
        40602
    );
}

struct LimitedCtx(Limits);

impl AggregateContext for LimitedCtx {
    fn collection(&self, _: &str) -> Vec<Document> {
        Vec::new()
    }
    fn limits(&self) -> Limits {
        self.0
    }
}

#[test]
fn blocking_stages_respect_the_memory_budget() {
    let docs: Vec<Document> = (0..1000)
        .map(|i| doc! {"_id": i, "s": "x".repeat(100)})
        .collect();
    let ctx = LimitedCtx(Limits {
        max_bytes: 50_000,
        deadline: None,
    });
    let stages = [
        doc! {"$sort": {"s": 1}},
        doc! {"$group": {"_id": "$_id", "s": {"$push": "$s"}}},
        doc! {"$bucketAuto": {"groupBy": "$_id", "buckets": 2}},
        doc! {"$setWindowFields": {"output": {"n": {"$count": {}}}}},
        doc! {"$facet": {"all": []}},
    ];
    for stage in stages {
        let p = Pipeline::parse(std::slice::from_ref(&stage)).unwrap();
        let code = p
            .run(docs.clone(), &ctx)
            .map(|d| d.len())
            .map_err(|e| e.code);
        assert_eq!(code, Err(MEMORY_LIMIT_EXCEEDED), "{stage}");
    }
    // Streaming stages hold nothing.
    let p =
        Pipeline::parse(&[doc! {"$match": {"_id": {"$gte": 0}}}, doc! {"$count": "n"}]).unwrap();
    assert_eq!(p.run(docs, &ctx).unwrap(), vec![doc! {"n": 1000}]);
}

#[test]
fn an_expired_deadline_stops_the_pipeline() {
    let ctx = LimitedCtx(Limits {
        max_bytes: DEFAULT_MAX_PIPELINE_BYTES,
        deadline: Some(std::time::Instant::now()),
    });
    let p = Pipeline::parse(&[doc! {"$match": {}}]).unwrap();
    assert_eq!(p.run(input(), &ctx).unwrap_err().code, MAX_TIME_EXPIRED);
}

#[test]
fn named_time_zones_in_date_expressions() {
    // 2024-07-01T00:30:00Z is 02:30 in Paris (summer time), 20:30 the day
    // before in New York; 2024-01-15T00:30:00Z is 01:30 in Paris (winter).
    let docs = vec![
        doc! {"d": bson::DateTime::from_millis(1_719_793_800_000)},
        doc! {"d": bson::DateTime::from_millis(1_705_278_600_000)},
    ];
    let p = Pipeline::parse(&[doc! {"$project": {
        "_id": 0,
        "paris": {"$dateToString": {"date": "$d", "format": "%Y-%m-%d %H:%M %z", "timezone": "Europe/Paris"}},
        "hour": {"$hour": {"date": "$d", "timezone": "Europe/Paris"}},
        "nyDay": {"$dayOfMonth": {"date": "$d", "timezone": "America/New_York"}},
        "day": {"$dateTrunc": {"date": "$d", "unit": "day", "timezone": "Europe/Paris"}},
    }}])
    .unwrap();
    let out = p.run(docs, &NoCollections).unwrap();
    assert_eq!(
        out,
        vec![
            doc! {"paris": "2024-07-01 02:30 +0200", "hour": 2, "nyDay": 30,
            "day": bson::DateTime::from_millis(1_719_784_800_000)},
            doc! {"paris": "2024-01-15 01:30 +0100", "hour": 1, "nyDay": 14,
            "day": bson::DateTime::from_millis(1_705_273_200_000)},
        ]
    );
    let p = Pipeline::parse(&[
        doc! {"$project": {"h": {"$hour": {"date": "$$NOW", "timezone": "Nowhere/City"}}}},
    ])
    .unwrap();
    assert_eq!(
        p.run(vec![doc! {}], &NoCollections).unwrap_err().code,
        40485
    );
}

#[test]
fn date_diff_in_hours_ignores_a_change_of_offset() {
    // 2024-03-30T12:00Z → 2024-03-31T12:00Z spans the switch to summer time
    // in Paris: 24 hours elapsed, one calendar day.
    let docs = vec![doc! {
        "s": bson::DateTime::from_millis(1_711_800_000_000),
        "e": bson::DateTime::from_millis(1_711_886_400_000),
    }];
    let p = Pipeline::parse(&[doc! {"$project": {
        "_id": 0,
        "h": {"$dateDiff": {"startDate": "$s", "endDate": "$e", "unit": "hour", "timezone": "Europe/Paris"}},
        "m": {"$dateDiff": {"startDate": "$s", "endDate": "$e", "unit": "minute", "timezone": "Europe/Paris"}},
        "d": {"$dateDiff": {"startDate": "$s", "endDate": "$e", "unit": "day", "timezone": "Europe/Paris"}},
    }}])
    .unwrap();
    assert_eq!(
        p.run(docs, &NoCollections).unwrap(),
        vec![doc! {"h": 24_i64, "m": 1440_i64, "d": 1_i64}]
    );
}

fn coffee() -> Vec<Document> {
    vec![
        doc! {"altitude": 600, "variety": "Arabica Typica", "score": 68.3},
        doc! {"altitude": 750, "variety": "Arabica Typica", "score": 69.5},
        doc! {"altitude": 950, "variety": "Arabica Typica", "score": 70.5},
        doc! {"altitude": 1250, "variety": "Gesha", "score": 88.15},
        doc! {"altitude": 1700, "variety": "Gesha", "score": 95.5, "price": 1029},
    ]
}

fn altitudes(out: &[Document]) -> Vec<(String, i32)> {
    out.iter()
        .map(|d| {
            (
                d.get_str("variety").unwrap_or("-").to_string(),
                d.get_i32("altitude").unwrap_or(-1),
            )
        })
        .collect()
}

#[test]
fn densify_fills_numeric_gaps_per_partition() {
    let run = |bounds: Bson| {
        let p = Pipeline::parse(&[doc! {"$densify": {
            "field": "altitude", "partitionByFields": ["variety"],
            "range": {"bounds": bounds, "step": 200}
        }}])
        .unwrap();
        p.run(coffee(), &NoCollections).unwrap()
    };
    let a = |n: i32| ("Arabica Typica".to_string(), n);
    let g = |n: i32| ("Gesha".to_string(), n);
    let full = run(Bson::String("full".into()));
    assert_eq!(
        altitudes(&full),
        vec![
            a(600),
            a(750),
            a(800),
            a(950),
            a(1000),
            a(1200),
            a(1400),
            a(1600),
            g(600),
            g(800),
            g(1000),
            g(1200),
            g(1250),
            g(1400),
            g(1600),
            g(1700),
        ]
    );
    // Generated documents hold only the field and the partition fields.
    assert_eq!(full[2], doc! {"altitude": 800, "variety": "Arabica Typica"});
    let partition = run(Bson::String("partition".into()));
    assert_eq!(
        altitudes(&partition),
        vec![
            a(600),
            a(750),
            a(800),
            a(950),
            g(1250),
            g(1450),
            g(1650),
            g(1700)
        ]
    );
    // Explicit bounds are [lower, upper); documents outside pass through.
    let explicit = run(bson!([700, 1000]));
    assert_eq!(
        altitudes(&explicit),
        vec![
            a(600),
            a(700),
            a(750),
            a(900),
            a(950),
            g(700),
            g(900),
            g(1250),
            g(1700)
        ]
    );
}

#[test]
fn densify_dates_and_guards() {
    let t = |h: i64| bson::DateTime::from_millis(1_621_296_000_000 + h * 3_600_000);
    let docs = vec![
        doc! {"ts": t(0), "temp": 12},
        doc! {"ts": t(4), "temp": 11},
        doc! {"ts": t(8), "temp": 11},
        doc! {"ts": t(12), "temp": 12},
        doc! {"temp": 0},
    ];
    let p = Pipeline::parse(&[doc! {"$densify": {"field": "ts",
    "range": {"step": 1, "unit": "hour", "bounds": [t(0), t(8)]}}}])
    .unwrap();
    let out = p.run(docs.clone(), &NoCollections).unwrap();
    let hours: Vec<Option<i64>> = out
        .iter()
        .map(|d| {
            d.get_datetime("ts")
                .ok()
                .map(|x| (x.timestamp_millis() - t(0).timestamp_millis()) / 3_600_000)
        })
        .collect();
    assert_eq!(
        hours,
        vec![
            None,
            Some(0),
            Some(1),
            Some(2),
            Some(3),
            Some(4),
            Some(5),
            Some(6),
            Some(7),
            Some(8),
            Some(12)
        ]
    );
    let errors: &[(Document, i32)] = &[
        (
            doc! {"$densify": {"range": {"step": 1, "bounds": "full"}}},
            40414,
        ),
        (
            doc! {"$densify": {"field": "a", "range": {"step": 0, "bounds": "full"}}},
            5733401,
        ),
        (
            doc! {"$densify": {"field": "a", "range": {"step": 1, "bounds": [5, 1]}}},
            5733402,
        ),
        (
            doc! {"$densify": {"field": "a", "range": {"step": 1, "bounds": [1]}}},
            5733403,
        ),
        (
            doc! {"$densify": {"field": "a", "range": {"step": 1.5, "unit": "day", "bounds": "full"}}},
            5733412,
        ),
        (
            doc! {"$densify": {"field": "a", "range": {"step": 1, "bounds": "full"}, "x": 1}},
            40415,
        ),
    ];
    for (stage, code) in errors {
        assert_eq!(
            Pipeline::parse(std::slice::from_ref(stage))
                .map(|_| ())
                .map_err(|e| e.code),
            Err(*code),
            "{stage}"
        );
    }
    // A date field without a unit is a type error.
    let p = Pipeline::parse(&[
        doc! {"$densify": {"field": "ts", "range": {"step": 1, "bounds": "full"}}},
    ])
    .unwrap();
    assert_eq!(p.run(docs, &NoCollections).unwrap_err().code, 5733201);
    // A runaway range stops at the memory budget.
    let ctx = LimitedCtx(Limits {
        max_bytes: 1_000_000,
        deadline: None,
    });
    let p = Pipeline::parse(&[doc! {"$densify": {"field": "a", "range": {"step": 1, "bounds": [0, 1_000_000_000_000_i64]}}}]).unwrap();
    assert_eq!(
        p.run(vec![doc! {"a": 0}], &ctx).unwrap_err().code,
        MEMORY_LIMIT_EXCEEDED
    );
    // A step too small to move a large double.
    let p = Pipeline::parse(&[
        doc! {"$densify": {"field": "a", "range": {"step": 1, "bounds": "full"}}},
    ])
    .unwrap();
    assert_eq!(
        p.run(vec![doc! {"a": 1e300}, doc! {"a": 2e300}], &NoCollections)
            .unwrap_err()
            .code,
        5733405
    );
}

#[test]
fn fill_with_values_locf_and_linear() {
    let docs = vec![
        doc! {"t": 1, "p": "a", "v": 10, "s": "x"},
        doc! {"t": 2, "p": "a", "v": null},
        doc! {"t": 4, "p": "a", "v": 40, "s": null},
        doc! {"t": 5, "p": "a"},
        doc! {"t": 0, "p": "b", "v": null},
    ];
    let p = Pipeline::parse(&[doc! {"$fill": {"output": {"s": {"value": "none"}}}}]).unwrap();
    let out = p.run(docs.clone(), &NoCollections).unwrap();
    let s: Vec<&str> = out.iter().map(|d| d.get_str("s").unwrap()).collect();
    assert_eq!(s, ["x", "none", "none", "none", "none"]);
    let p = Pipeline::parse(&[
        doc! {"$fill": {"partitionByFields": ["p"], "sortBy": {"t": 1},
        "output": {"v": {"method": "linear"}, "s": {"method": "locf"}}}},
    ])
    .unwrap();
    let out = p.run(docs.clone(), &NoCollections).unwrap();
    assert_eq!(
        out,
        vec![
            doc! {"t": 1, "p": "a", "v": 10, "s": "x"},
            doc! {"t": 2, "p": "a", "v": 20.0, "s": "x"},
            doc! {"t": 4, "p": "a", "v": 40, "s": "x"},
            doc! {"t": 5, "p": "a", "v": null, "s": "x"},
            doc! {"t": 0, "p": "b", "v": null, "s": null},
        ]
    );
    let errors: &[(Document, i32)] = &[
        (doc! {"$fill": {"output": {"v": {"method": "locf"}}}}, 9),
        (
            doc! {"$fill": {"sortBy": {"a": 1, "b": 1}, "output": {"v": {"method": "linear"}}}},
            605001,
        ),
        (
            doc! {"$fill": {"output": {"v": {"method": "cubic"}}, "sortBy": {"a": 1}}},
            9,
        ),
        (doc! {"$fill": {"sortBy": {"a": 1}}}, 40414),
        (
            doc! {"$fill": {"output": {"v": {"value": 1}}, "bogus": 1}},
            40415,
        ),
    ];
    for (stage, code) in errors {
        assert_eq!(
            Pipeline::parse(std::slice::from_ref(stage))
                .map(|_| ())
                .map_err(|e| e.code),
            Err(*code),
            "{stage}"
        );
    }
}

#[test]
fn window_calculus_moving_average_and_time_ranges() {
    let t = |h: i64| bson::DateTime::from_millis(1_700_000_000_000 + h * 3_600_000);
    let docs = vec![
        doc! {"_id": 3, "p": "b", "t": t(0), "v": 5},
        doc! {"_id": 2, "p": "a", "t": t(2), "v": 30},
        doc! {"_id": 0, "p": "a", "t": t(0), "v": 0},
        doc! {"_id": 1, "p": "a", "t": t(1), "v": 10},
    ];
    let p = Pipeline::parse(&[doc! {"$setWindowFields": {
        "partitionBy": "$p",
        "sortBy": {"t": 1},
        "output": {
            "d": {"$derivative": {"input": "$v", "unit": "hour"}, "window": {"documents": [-1, 0]}},
            "i": {"$integral": {"input": "$v", "unit": "hour"}, "window": {"documents": ["unbounded", "current"]}},
            "e": {"$expMovingAvg": {"input": "$v", "N": 3}},
            "r": {"$sum": "$v", "window": {"range": [-1, 0], "unit": "hour"}},
        }
    }}])
    .unwrap();
    let out = p.run(docs, &NoCollections).unwrap();
    let row = |d: &Document| {
        (
            d.get_i32("_id").unwrap(),
            d.get("d").cloned().unwrap(),
            d.get("i").cloned().unwrap(),
            d.get("e").cloned().unwrap(),
            d.get("r").cloned().unwrap(),
        )
    };
    // Partitions come out in key order ("a" before "b").
    assert_eq!(
        out.iter().map(row).collect::<Vec<_>>(),
        vec![
            (0, Bson::Null, bson!(0.0), bson!(0.0), bson!(0)),
            (1, bson!(10.0), bson!(5.0), bson!(5.0), bson!(10)),
            (2, bson!(20.0), bson!(25.0), bson!(17.5), bson!(40)),
            (3, Bson::Null, bson!(0.0), bson!(5.0), bson!(5)),
        ]
    );
    let errors = [
        doc! {"$setWindowFields": {"output": {"d": {"$derivative": {"input": "$v"}}}}},
        doc! {"$setWindowFields": {"sortBy": {"t": 1}, "output": {"e": {"$expMovingAvg": {"input": "$v"}}}}},
        doc! {"$setWindowFields": {"sortBy": {"t": 1}, "output": {"e": {"$expMovingAvg": {"input": "$v", "alpha": 2}}}}},
        doc! {"$setWindowFields": {"sortBy": {"t": 1, "v": 1}, "output": {"d": {"$integral": {"input": "$v"}}}}},
        doc! {"$setWindowFields": {"sortBy": {"t": 1}, "output": {"s": {"$sum": "$v", "window": {"documents": [0, 1], "unit": "day"}}}}},
    ];
    for stage in errors {
        assert_eq!(
            Pipeline::parse(std::slice::from_ref(&stage))
                .map(|_| ())
                .map_err(|e| e.code),
            Err(QueryError::FAILED_TO_PARSE),
            "{stage}"
        );
    }
    // A time range over numbers is a type error.
    let p = Pipeline::parse(&[doc! {"$setWindowFields": {"sortBy": {"v": 1},
    "output": {"s": {"$sum": "$v", "window": {"range": [-1, 0], "unit": "hour"}}}}}])
    .unwrap();
    assert_eq!(
        p.run(vec![doc! {"v": 1}], &NoCollections).unwrap_err().code,
        5429513
    );
}

#[test]
fn merge_with_let_variables() {
    let c = ctx();
    let p = Pipeline::parse(&[
        doc! {"$match": {"sku": "a"}},
        doc! {"$project": {"_id": 1, "add": {"$literal": 5}}},
        doc! {"$merge": {
            "into": "inventory",
            "let": {"extra": "$add", "factor": 2},
            "whenMatched": [{"$set": {"qty": {"$add": ["$qty", {"$multiply": ["$$extra", "$$factor"]}]}, "src": "$$new._id"}}],
        }},
    ])
    .unwrap();
    // Run over the inventory itself: document 1 (sku a, qty 10) gains 10.
    p.run(c.collection("inventory"), &c).unwrap();
    assert_eq!(
        c.collection("inventory")[0],
        doc! {"_id": 1, "sku": "a", "qty": 20, "src": 1}
    );
    let err =
        Pipeline::parse(&[doc! {"$merge": {"into": "x", "let": {"a": 1}, "whenMatched": "merge"}}])
            .unwrap_err();
    assert_eq!(err.code, 51199);
}

#[test]
fn deeply_nested_pipelines_are_refused() {
    let mut e = bson!(1);
    for _ in 0..500 {
        e = bson!({"$add": [e, 1]});
    }
    let err = Pipeline::parse(&[doc! {"$project": {"x": e}}]).unwrap_err();
    assert_eq!(err.code, 15);
    let mut e = bson!(1);
    for _ in 0..40 {
        e = bson!({"$add": [e, 1]});
    }
    let out = run(vec![
        doc! {"$project": {"_id": 0, "x": e}},
        doc! {"$limit": 1},
    ]);
    assert_eq!(out, vec![doc! {"x": 41}]);
}

#[test]
fn group_stops_growing_at_the_budget() {
    // Many groups, or one group collecting large values: both stop early.
    let docs: Vec<Document> = (0..5000)
        .map(|i| doc! {"_id": i, "s": "x".repeat(50)})
        .collect();
    let ctx = LimitedCtx(Limits {
        max_bytes: 100_000,
        deadline: None,
    });
    for stage in [
        doc! {"$group": {"_id": "$_id"}},
        doc! {"$group": {"_id": null, "all": {"$push": "$s"}}},
    ] {
        let p = Pipeline::parse(std::slice::from_ref(&stage)).unwrap();
        let code = p
            .run(docs.clone(), &ctx)
            .map(|d| d.len())
            .map_err(|e| e.code);
        assert_eq!(code, Err(MEMORY_LIMIT_EXCEEDED), "{stage}");
    }
    let p = Pipeline::parse(&[doc! {"$group": {"_id": null, "n": {"$sum": 1}}}]).unwrap();
    assert_eq!(
        p.run(docs, &ctx).unwrap(),
        vec![doc! {"_id": null, "n": 5000}]
    );
}

#[test]
fn group_object_keys_with_missing_fields() {
    // One field: missing is null. Several fields: missing ones are left out.
    let out = run(vec![
        doc! {"$match": {"_id": 1}},
        doc! {"$group": {"_id": {"x": "$nope"}}},
    ]);
    assert_eq!(out, vec![doc! {"_id": {"x": null}}]);
    let out = run(vec![
        doc! {"$match": {"_id": 1}},
        doc! {"$group": {"_id": {"x": "$nope", "i": "$item"}}},
    ]);
    assert_eq!(out, vec![doc! {"_id": {"i": "a"}}]);
}

/// An unknown expression operator fails the parse of the pipeline, wherever
/// the expression sits, before any document is read: running the pipeline
/// over no documents is never reached.
#[test]
fn unknown_expression_operator_is_refused_at_parse_time() {
    let bogus = bson!({"$bogusOp": ["$a", 1]});
    let stages: Vec<Document> = vec![
        doc! {"$project": {"x": bogus.clone()}},
        doc! {"$addFields": {"x": {"$add": [1, bogus.clone()]}}},
        doc! {"$set": {"x": {"$cond": [true, 1, bogus.clone()]}}},
        doc! {"$match": {"$expr": {"$and": [true, bogus.clone()]}}},
        doc! {"$group": {"_id": bogus.clone()}},
        doc! {"$group": {"_id": null, "n": {"$sum": bogus.clone()}}},
        doc! {"$replaceRoot": {"newRoot": {"$mergeObjects": [bogus.clone()]}}},
        doc! {"$redact": {"$cond": [bogus.clone(), "$$KEEP", "$$PRUNE"]}},
        doc! {"$sortByCount": bogus.clone()},
        doc! {"$bucket": {"groupBy": bogus.clone(), "boundaries": [0, 10]}},
        doc! {"$facet": {"f": [{"$project": {"x": bogus.clone()}}]}},
        doc! {"$lookup": {"from": "people", "pipeline": [{"$project": {"x": bogus.clone()}}], "as": "p"}},
        doc! {"$unionWith": {"coll": "people", "pipeline": [{"$set": {"x": bogus.clone()}}]}},
        doc! {"$setWindowFields": {"output": {"s": {"$sum": bogus.clone()}}}},
        doc! {"$project": {"x": {"$map": {"input": "$a", "in": {"$let": {"vars": {"v": 1}, "in": bogus.clone()}}}}}},
    ];
    for stage in stages {
        let err = Pipeline::parse(std::slice::from_ref(&stage))
            .err()
            .unwrap_or_else(|| panic!("{stage} parsed"));
        // (`$project` prefixes "Invalid $project :: caused by :: ", as MongoDB does.)
        assert_eq!(err.code, 168, "{stage}: {err}");
        assert!(
            err.message.ends_with("Unrecognized expression '$bogusOp'"),
            "{stage}: {err}"
        );
    }
    // A known operator with the wrong number of arguments is refused too.
    let err = Pipeline::parse(&[doc! {"$project": {"x": {"$size": [1, 2]}}}]).unwrap_err();
    assert_eq!(err.code, 16020);
    assert_eq!(
        err.message,
        "Invalid $project :: caused by :: Expression $size takes exactly 1 arguments. 2 were passed in."
    );
}
