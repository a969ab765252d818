use std::cell::RefCell;
use std::collections::HashMap;

use super::*;
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
    assert!(err.message.starts_with("'newRoot' expression must evaluate to an object, but resulting value was: \"a\". Type of resulting value: 'string'."), "{}", err.message);
    let p = Pipeline::parse(&[doc! {"$project": {"r": {"$divide": [1, 0]}}}]).unwrap();
    assert_eq!(
        p.run(input(), &NoCollections).unwrap_err().message,
        "can't $divide by zero"
    );
    let _ = bson!(1);
}
