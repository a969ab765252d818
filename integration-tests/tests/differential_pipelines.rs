//! Differential test of the aggregation pipeline: generated pipelines run
//! through the `Backend` trait on `MemoryBackend` and on `MongoBackend` (the
//! wire-protocol peer), and their answers must agree.
//!
//! Generation is seeded and reproducible: the seed is printed, and
//! `DIFF_PIPELINE_SEED=<n>` replays a run. `DIFF_PIPELINE_CASES=<n>` changes
//! the number of pipelines per collection.
//!
//! Agreement means:
//! - both fail (any error on both sides), or
//! - both succeed with the same documents: in the same order when the
//!   pipeline ends with a total sort, as multisets otherwise. Values compare
//!   by BSON type *and* value (an int32 never equals an int64 or a double);
//!   doubles compare with a relative tolerance of 1e-9, because summation
//!   order may differ in the last bits.
//!
//! Known peer deviations from MongoDB 8 are listed in [`PEER_EXCEPTIONS`]:
//! the generator avoids them, except the last, which the comparison
//! recognizes and counts. A second test runs invalid pipelines on both sides:
//! both must fail, with the same message (see [`MESSAGE_EXCEPTIONS`]).

use bson::{bson, doc, Bson, DateTime, Document};
use integration_tests::{peer_uri, rng::Rng, unique_db};
use tower_data_api::backend::{Backend, MongoBackendOptions, Namespace};
use tower_data_api::{MemoryBackend, MongoBackend};

/// Peer behaviours that differ from MongoDB 8's documented behaviour:
/// (construct, reason).
const PEER_EXCEPTIONS: &[(&str, &str)] = &[
    (
        "$count accumulator; $count stage inside a $lookup sub-pipeline",
        "the peer answers \"Unrecognized expression '$count'\" (MongoDB 5.0+ has both)",
    ),
    (
        "$count stage on an empty input",
        "the peer outputs {n: 0}; MongoDB outputs no document",
    ),
    (
        "$maxN / $top accumulators with a constant input or output",
        "the peer fails (\"Input must be an array\", \"Unrecognized expression '$top'\")",
    ),
    (
        "field paths through arrays of documents (\"$j._id\") as expression arguments",
        "the peer evaluates them to null; MongoDB gives the array of the values",
    ),
    (
        "$bucketAuto when the bucket count does not divide the input",
        "the peer sizes each bucket from the documents left; MongoDB fills every bucket \
         but the last with round(n / buckets) documents (plus equal values)",
    ),
    (
        "$project with a non-zero number other than 1 ({e: 2})",
        "the peer projects the literal; MongoDB treats non-zero numbers as inclusion",
    ),
    (
        "$fill with method locf or linear on a missing field",
        "the peer leaves the field missing; MongoDB sets it to null when it cannot fill it",
    ),
    (
        "$densify output order; bounds \"full\" with partitionByFields",
        "the peer neither sorts the output by partition and field nor extends each \
         partition to the full range; MongoDB does both. Generated documents list the \
         partition fields before the field on the peer, after it in MongoDB's examples. \
         The peer keeps generated values int32 where MongoDB's addition of an int64 step \
         or bound widens them to int64",
    ),
    (
        "$let with a variable bound to a missing value",
        "the peer evaluates the variable to an object",
    ),
    (
        "$documents first in a $unionWith or $lookup sub-pipeline without coll/from",
        "the peer refuses it; MongoDB 6.0+ runs it (the embedded engine does, unit-tested)",
    ),
    (
        "an unknown field in $collStats ({bogus: {}}); $collStats after another stage",
        "the peer accepts both; MongoDB refuses them (40415, 40602)",
    ),
    (
        "$unwind's includeArrayIndex",
        "the peer stores the index as an int32; MongoDB as an int64 (NumberLong)",
    ),
    (
        "$group with a single-field object _id whose field is missing ({_id: {x: \"$nope\"}})",
        "the peer omits the field ({}); MongoDB sets it to null (with several fields, both omit \
         the missing ones)",
    ),
    (
        "arithmetic with a non-numeric operand before a null one ({$multiply: [\"str\", null]})",
        "the peer returns null; MongoDB checks operands in order and fails (16554/16555)",
    ),
];

const WORDS: &[&str] = &[
    "apple", "Banana", "cherry", "date", "", "éclair", "fig tree",
];
const CATEGORIES: &[&str] = &["x", "y", "z"];
const ZONES: &[&str] = &[
    "UTC",
    "+02:00",
    "-05:30",
    "Europe/Paris",
    "America/New_York",
    "Asia/Tokyo",
];

/// A numeric value of a random BSON type.
fn number(r: &mut Rng) -> Bson {
    match r.below(4) {
        0 => Bson::Int32(r.int(-50, 50) as i32),
        1 => Bson::Int64(r.int(-1000, 1000)),
        2 => Bson::Double(r.int(-400, 400) as f64 / 4.0),
        _ => Bson::Int32(r.int(0, 9) as i32),
    }
}

/// One generated document; fields may be missing, null or of another type.
fn document(r: &mut Rng, id: i64) -> Document {
    let mut d = doc! {"_id": id};
    if !r.chance(10) {
        let a = match r.below(10) {
            0 => Bson::Null,
            1 => Bson::String(r.pick(WORDS).to_string()),
            _ => number(r),
        };
        d.insert("a", a);
    }
    d.insert("b", number(r));
    if !r.chance(10) {
        d.insert("s", r.pick(WORDS));
    }
    d.insert("g", r.pick(CATEGORIES));
    match r.below(5) {
        0 => {}
        1 => {
            d.insert("c", Bson::Array(vec![]));
        }
        2 => {
            d.insert("c", number(r));
        }
        _ => {
            let n = r.int(1, 4);
            let items: Vec<Bson> = (0..n).map(|_| Bson::Int32(r.int(0, 5) as i32)).collect();
            d.insert("c", items);
        }
    }
    if !r.chance(15) {
        // 2019 .. 2025, at any millisecond (dates near DST changes included).
        let ms = r.int(1_546_300_800_000, 1_767_225_600_000);
        d.insert("t", DateTime::from_millis(ms));
    }
    if r.chance(70) {
        d.insert("n", doc! {"x": number(r), "y": r.pick(CATEGORIES)});
    }
    d.insert("k", r.int(0, 3) as i32);
    d
}

/// Field paths that hold numbers (or sometimes other types, or nothing).
const NUM_FIELDS: &[&str] = &["$a", "$b", "$n.x", "$k", "$missing"];

/// A field path of the raw documents.
fn num_field(r: &mut Rng) -> &'static str {
    r.pick::<&str>(NUM_FIELDS)
}

/// A numeric-ish expression of depth at most `depth`.
fn num_expr(r: &mut Rng, depth: u32) -> Bson {
    if depth == 0 || r.chance(35) {
        return match r.below(5) {
            0 => number(r),
            _ => Bson::String(num_field(r).to_string()),
        };
    }
    let mut sub = || num_expr(r, depth - 1);
    let (x, y) = (sub(), sub());
    match r.below(12) {
        0 => bson!({"$add": [x, y]}),
        1 => bson!({"$subtract": [x, y]}),
        2 => bson!({"$multiply": [x, y]}),
        3 => bson!({"$abs": x}),
        4 => bson!({"$cond": [{"$gt": [x.clone(), y.clone()]}, x, y]}),
        5 => bson!({"$ifNull": [x, y]}),
        6 => bson!({"$max": [x, y]}),
        7 => bson!({"$min": [x, y]}),
        8 => bson!({"$trunc": [x]}),
        9 => bson!({"$floor": x}),
        10 => bson!({"$size": {"$ifNull": [{"$cond": [{"$isArray": "$c"}, "$c", []]}, []]}}),
        _ => bson!({"$sum": ["$c", x]}),
    }
}

/// A string expression.
fn str_expr(r: &mut Rng) -> Bson {
    match r.below(9) {
        0 => bson!({"$toUpper": "$s"}),
        1 => bson!({"$toLower": "$g"}),
        2 => bson!({"$concat": ["$g", "-", {"$ifNull": ["$s", "none"]}]}),
        3 => bson!({"$substrCP": [{"$ifNull": ["$s", ""]}, 1, 3]}),
        4 => bson!({"$strLenCP": {"$ifNull": ["$s", ""]}}),
        5 => bson!({"$type": "$a"}),
        6 => bson!({"$split": [{"$ifNull": ["$s", ""]}, "a"]}),
        7 => bson!({"$trim": {"input": {"$concat": [" ", "$g", " "]}}}),
        _ => bson!({"$indexOfCP": [{"$ifNull": ["$s", ""]}, "e"]}),
    }
}

/// A date expression (null when `t` is missing).
fn date_expr(r: &mut Rng) -> Bson {
    let tz = r.pick(ZONES);
    match r.below(8) {
        0 => bson!({"$year": {"date": "$t", "timezone": tz}}),
        1 => bson!({"$hour": {"date": "$t", "timezone": tz}}),
        2 => bson!({"$dayOfWeek": {"date": "$t", "timezone": tz}}),
        3 => {
            bson!({"$dateToString": {"date": "$t", "format": "%Y-%m-%d %H:%M:%S", "timezone": tz}})
        }
        4 => {
            let unit = r.pick(&["year", "month", "week", "day", "hour"]);
            bson!({"$dateTrunc": {"date": "$t", "unit": unit, "timezone": tz}})
        }
        5 => {
            let unit = r.pick(&["month", "day", "hour", "minute"]);
            bson!({"$dateAdd": {"startDate": "$t", "unit": unit, "amount": r.int(-40, 40), "timezone": tz}})
        }
        6 => {
            let unit = r.pick(&["year", "month", "week", "day", "hour"]);
            bson!({"$dateDiff": {"startDate": "$t", "endDate": {"$literal": DateTime::from_millis(1_700_000_000_000)}, "unit": unit, "timezone": tz}})
        }
        _ => bson!({"$month": {"date": "$t", "timezone": tz}}),
    }
}

/// An array expression.
fn array_expr(r: &mut Rng) -> Bson {
    let arr = bson!({"$cond": [{"$isArray": "$c"}, "$c", []]});
    match r.below(7) {
        0 => bson!({"$filter": {"input": arr, "cond": {"$gte": ["$$this", r.int(0, 4)]}}}),
        1 => bson!({"$map": {"input": arr, "in": {"$multiply": ["$$this", 2]}}}),
        2 => bson!({"$reverseArray": arr}),
        3 => bson!({"$arrayElemAt": [arr, r.int(-2, 2)]}),
        4 => bson!({"$in": [r.int(0, 5), arr]}),
        5 => {
            bson!({"$reduce": {"input": arr, "initialValue": 0, "in": {"$add": ["$$value", "$$this"]}}})
        }
        _ => bson!({"$concatArrays": [arr.clone(), [1, 2]]}),
    }
}

/// Conversions, objects, variables and other operators.
fn misc_expr(r: &mut Rng) -> Bson {
    match r.below(12) {
        0 => bson!({"$toString": num_expr(r, 1)}),
        1 => {
            bson!({"$convert": {"input": "$a", "to": r.pick(&["int", "long", "double", "string", "bool"]), "onError": "bad", "onNull": "nil"}})
        }
        2 => bson!({"$switch": {"branches": [
                {"case": {"$eq": ["$g", "x"]}, "then": 1},
                {"case": {"$gt": ["$b", 0]}, "then": {"$multiply": ["$b", 2]}}
            ], "default": "other"}}),
        // The variable is never missing (see PEER_EXCEPTIONS).
        3 => {
            bson!({"$let": {"vars": {"v": {"$ifNull": [num_expr(r, 1), 0]}}, "in": {"$add": ["$$v", 1]}}})
        }
        4 => bson!({"$objectToArray": {"$ifNull": ["$n", {}]}}),
        5 => bson!({"$arrayToObject": [[["k", "$g"], ["v", "$k"]]]}),
        // Set results have no defined order: sort them.
        6 => {
            bson!({"$sortArray": {"input": {"$setUnion": [{"$cond": [{"$isArray": "$c"}, "$c", []]}, [1, 2]]}, "sortBy": 1}})
        }
        7 => bson!({"$mergeObjects": ["$n", {"z": "$k"}]}),
        8 => bson!({"$isNumber": "$a"}),
        9 => {
            bson!({"$dateFromString": {"dateString": {"$dateToString": {"date": "$t", "format": "%Y-%m-%dT%H:%M:%S"}},
                "timezone": r.pick(ZONES), "onNull": "none"}})
        }
        10 => bson!({"$round": [num_expr(r, 1), r.int(0, 2)]}),
        _ => bson!({"$getField": {"field": "x", "input": {"$ifNull": ["$n", {}]}}}),
    }
}

fn any_expr(r: &mut Rng) -> Bson {
    match r.below(5) {
        0 => num_expr(r, 2),
        1 => str_expr(r),
        2 => date_expr(r),
        3 => misc_expr(r),
        _ => array_expr(r),
    }
}

/// A `$match` filter over the raw fields.
fn filter(r: &mut Rng) -> Document {
    match r.below(8) {
        0 => doc! {"g": r.pick(CATEGORIES)},
        1 => doc! {"a": {"$gt": number(r)}},
        2 => doc! {"b": {"$lte": number(r)}},
        3 => doc! {"c": {"$in": [r.int(0, 5), r.int(0, 5)]}},
        4 => doc! {"$or": [{"k": r.int(0, 3)}, {"s": {"$exists": false}}]},
        5 => doc! {"$expr": {"$gt": [num_expr(r, 1), num_expr(r, 1)]}},
        6 => doc! {"n.y": {"$ne": r.pick(CATEGORIES)}},
        _ => {
            doc! {"t": {"$gte": DateTime::from_millis(r.int(1_546_300_800_000, 1_767_225_600_000))}}
        }
    }
}

/// A group accumulator.
fn accumulator(r: &mut Rng) -> (Bson, bool) {
    let e = num_expr(r, 1);
    match r.below(12) {
        0 => (bson!({"$sum": e}), false),
        1 => (bson!({"$avg": e}), false),
        2 => (bson!({"$min": e}), false),
        3 => (bson!({"$max": e}), false),
        // The peer lacks the `$count` accumulator (see PEER_EXCEPTIONS).
        4 => (bson!({"$sum": {"$cond": [{"$gt": [e, 0]}, 1, 0]}}), false),
        5 => (bson!({"$sum": 1}), false),
        6 => (bson!({"$addToSet": "$g"}), true),
        7 => (bson!({"$stdDevPop": e}), false),
        // Field paths only: the peer mishandles constant inputs here.
        8 => (bson!({"$maxN": {"input": "$b", "n": 2}}), false),
        9 => (
            bson!({"$top": {"sortBy": {"_id": 1}, "output": "$b"}}),
            false,
        ),
        10 => (
            bson!({"$bottomN": {"sortBy": {"_id": 1}, "output": "$_id", "n": 2}}),
            false,
        ),
        _ => (bson!({"$mergeObjects": {"$ifNull": ["$n", {}]}}), false),
    }
}

/// A `$group` stage and the set-valued fields to sort afterwards.
fn group(r: &mut Rng) -> (Document, Vec<String>) {
    let id = match r.below(6) {
        0 => Bson::String("$g".into()),
        1 => Bson::Null,
        // Several fields (a single missing field: see PEER_EXCEPTIONS).
        2 => bson!({"g": "$g", "k": "$k"}),
        3 => Bson::String("$a".into()),
        4 => date_expr(r),
        _ => bson!({"$mod": ["$k", 2]}),
    };
    let mut spec = doc! {"_id": id};
    let mut sets = Vec::new();
    for i in 0..r.int(1, 3) {
        let (acc, is_set) = accumulator(r);
        let name = format!("f{i}");
        if is_set {
            sets.push(name.clone());
        }
        spec.insert(name, acc);
    }
    (doc! {"$group": spec}, sets)
}

/// `{key: value}`.
fn one(key: &str, value: impl Into<Bson>) -> Document {
    let mut d = Document::new();
    d.insert(key, value);
    d
}

/// A generated pipeline and whether its output order is defined.
struct Case {
    pipeline: Vec<Document>,
    ordered: bool,
}

fn pipeline(r: &mut Rng, other: &str, size: i64) -> Case {
    let mut p = Vec::new();
    if r.chance(50) {
        p.push(doc! {"$match": filter(r)});
    }
    let mut unwound = false;
    if r.chance(20) {
        unwound = true;
        if r.chance(50) {
            p.push(doc! {"$unwind": "$c"});
        } else {
            p.push(doc! {"$unwind": {"path": "$c", "includeArrayIndex": "i", "preserveNullAndEmptyArrays": true}});
            // The index is an int64 in MongoDB, an int32 on the peer (see PEER_EXCEPTIONS).
            p.push(doc! {"$set": {"i": {"$toLong": "$i"}}});
        }
    }
    if r.chance(50) {
        let mut fields = Document::new();
        let stage = if r.chance(30) { "$project" } else { "$set" };
        for i in 0..r.int(1, 3) {
            let mut e = any_expr(r);
            if stage == "$project" && !matches!(e, Bson::Document(_) | Bson::String(_)) {
                // A bare number in $project means inclusion in MongoDB; the
                // peer takes it as a literal (see PEER_EXCEPTIONS).
                e = bson!({"$literal": e});
            }
            fields.insert(format!("e{i}"), e);
        }
        p.push(one(stage, fields));
    }
    let ordered = match r.below(19) {
        0..=2 => {
            let (g, sets) = group(r);
            p.push(g);
            for s in sets {
                let sorted = bson!({"$sortArray": {"input": format!("${s}"), "sortBy": 1}});
                p.push(one("$set", one(&s, sorted)));
            }
            p.push(doc! {"$sort": {"_id": 1}});
            true
        }
        // `$count` only over the whole collection: on an empty input the
        // peer outputs `{total: 0}` (see PEER_EXCEPTIONS).
        3 if p.is_empty() => {
            p.push(doc! {"$count": "total"});
            true
        }
        4 => {
            p.push(doc! {"$sortByCount": "$g"});
            p.push(doc! {"$sort": {"_id": 1}});
            true
        }
        5 => {
            p.push(
                doc! {"$bucket": {"groupBy": "$k", "boundaries": [0, 1, 3], "default": "other",
                "output": {"n": {"$sum": 1}, "ids": {"$push": "$_id"}}}},
            );
            p.push(doc! {"$set": {"ids": {"$sortArray": {"input": "$ids", "sortBy": 1}}}});
            true
        }
        // Over the whole collection by a unique key, with a bucket count
        // that divides it: the peer sizes buckets differently otherwise
        // (see PEER_EXCEPTIONS).
        6 if p.is_empty() => {
            let divisors: Vec<i64> = (1..=8).filter(|b| size % b == 0).collect();
            let buckets = r.pick(&divisors);
            let output = if r.chance(50) {
                doc! {"count": {"$sum": 1}}
            } else {
                doc! {"n": {"$sum": 1}, "ids": {"$push": "$_id"}, "lo": {"$min": "$b"}}
            };
            p.push(doc! {"$bucketAuto": {"groupBy": "$_id", "buckets": buckets, "output": output}});
            true
        }
        7 => {
            p.push(doc! {"$facet": {
                "byG": [{"$sortByCount": "$g"}, {"$sort": {"_id": 1}}],
                "top": [{"$sort": {"_id": -1}}, {"$limit": 2}, {"$project": {"_id": 1}}],
            }});
            !unwound
        }
        8 => {
            p.push(doc! {"$lookup": {"from": other, "localField": "k", "foreignField": "k", "as": "j"}});
            p.push(doc! {"$project": {"_id": 1, "nj": {"$size": "$j"}, "ids": {"$sortArray": {"input": {"$map": {"input": "$j", "in": "$$this._id"}}, "sortBy": 1}}}});
            false
        }
        9 => {
            p.push(doc! {"$lookup": {"from": other, "let": {"kk": "$k"},
                "pipeline": [{"$match": {"$expr": {"$eq": ["$k", "$$kk"]}}}, {"$project": {"_id": 1}}], "as": "j"}});
            p.push(doc! {"$set": {"j": {"$sortArray": {"input": "$j", "sortBy": {"_id": 1}}}}});
            p.push(doc! {"$project": {"j": 1}});
            false
        }
        10 => {
            p.push(doc! {"$unionWith": {"coll": other, "pipeline": [{"$project": {"_id": 1, "g": 1}}]}});
            p.push(doc! {"$group": {"_id": "$g", "n": {"$sum": 1}}});
            p.push(doc! {"$sort": {"_id": 1}});
            true
        }
        12 => {
            // Window functions over a total order within each partition.
            let func = match r.below(6) {
                0 => bson!({"$sum": "$b", "window": {"documents": ["unbounded", "current"]}}),
                1 => bson!({"$avg": "$b", "window": {"documents": [-1, 1]}}),
                2 => bson!({"$rank": {}}),
                3 => bson!({"$documentNumber": {}}),
                4 => bson!({"$shift": {"output": "$b", "by": r.int(-2, 2), "default": "none"}}),
                _ => bson!({"$max": "$k", "window": {"range": [-1, 0]}}),
            };
            let sort_key = if matches!(&func, Bson::Document(d) if d.get("window").is_some_and(|w| matches!(w, Bson::Document(w) if w.contains_key("range"))))
            {
                "k"
            } else {
                "_id"
            };
            let sort_by = if sort_key == "k" {
                doc! {"k": 1}
            } else {
                doc! {"_id": 1}
            };
            p.push(doc! {"$setWindowFields": {"partitionBy": "$g", "sortBy": sort_by, "output": {"w": func}}});
            p.push(doc! {"$sort": {"_id": 1}});
            !unwound
        }
        13 if p.is_empty() => {
            let bounds = match r.below(3) {
                0 => Bson::String("full".into()),
                1 => Bson::String("partition".into()),
                _ => bson!([r.int(-3, 0) as i32, r.int(1, 5) as i32]),
            };
            let full = matches!(&bounds, Bson::String(b) if b == "full");
            // int32 steps and bounds: see PEER_EXCEPTIONS.
            let mut spec =
                doc! {"field": "k", "range": {"step": r.int(1, 2) as i32, "bounds": bounds}};
            // "full" with partitions: see PEER_EXCEPTIONS.
            if !full && r.chance(50) {
                spec.insert("partitionByFields", vec!["g"]);
            }
            p.push(doc! {"$densify": spec});
            // Fields in a fixed order: generated documents may list them in
            // another order than MongoDB's (see PEER_EXCEPTIONS).
            p.push(doc! {"$replaceWith": {"g": "$g", "k": "$k"}});
            false
        }
        14 => {
            let output = match r.below(3) {
                0 => doc! {"a": {"value": "filled"}},
                1 => doc! {"a": {"method": "locf"}, "s": {"method": "locf"}},
                _ => doc! {"n.x": {"method": "linear"}},
            };
            // Missing fields made null first: see PEER_EXCEPTIONS.
            p.push(
                doc! {"$set": {"a": {"$ifNull": ["$a", null]}, "s": {"$ifNull": ["$s", null]},
                "n": {"$ifNull": ["$n", {"x": null}]}}},
            );
            p.push(doc! {"$set": {"n.x": {"$ifNull": ["$n.x", null]}}});
            p.push(doc! {"$fill": {"partitionBy": "$g", "sortBy": {"_id": 1}, "output": output}});
            p.push(doc! {"$sort": {"_id": 1}});
            !unwound
        }
        15 => {
            p.push(
                doc! {"$replaceWith": {"$mergeObjects": [{"id": "$_id"}, {"$ifNull": ["$n", {}]}]}},
            );
            false
        }
        16 => {
            p.push(doc! {"$redact": {"$cond": [{"$eq": ["$y", "x"]}, "$$PRUNE", "$$DESCEND"]}});
            false
        }
        // Estimated counts as atlas_sdk asks for them (ns and count only:
        // host and localTime differ by nature).
        17 if p.is_empty() => {
            p.push(doc! {"$collStats": {"count": {}}});
            p.push(doc! {"$project": {"_id": 0, "ns": 1, "count": 1}});
            true
        }
        // Refused by both: Data API aggregates name a collection.
        18 if p.is_empty() => {
            p.push(doc! {"$documents": [{"a": 1}]});
            false
        }
        11 => {
            let total = !unwound;
            p.push(doc! {"$sort": {"b": 1, "_id": 1}});
            p.push(doc! {"$skip": r.int(0, 3)});
            p.push(doc! {"$limit": r.int(1, 10)});
            total
        }
        _ => false,
    };
    Case {
        pipeline: p,
        ordered,
    }
}

/// Same BSON type and value (doubles within a relative 1e-9), recursively.
fn same(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => {
            (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (Bson::Document(x), Bson::Document(y)) => same_doc(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        _ => a == b,
    }
}

fn same_doc(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
}

/// A canonical text of a document for multiset comparison (doubles rounded).
fn canonical(d: &Document) -> String {
    fn value(v: &Bson) -> String {
        match v {
            Bson::Double(x) => format!("double({:.6e})", x),
            Bson::Document(d) => canonical(d),
            Bson::Array(items) => {
                format!(
                    "[{}]",
                    items.iter().map(value).collect::<Vec<_>>().join(",")
                )
            }
            other => format!("{other:?}"),
        }
    }
    format!(
        "{{{}}}",
        d.iter()
            .map(|(k, v)| format!("{k}:{}", value(v)))
            .collect::<Vec<_>>()
            .join(",")
    )
}

fn agree(case: &Case, mem: &[Document], peer: &[Document]) -> bool {
    if mem.len() != peer.len() {
        return false;
    }
    if case.ordered {
        return mem.iter().zip(peer).all(|(a, b)| same_doc(a, b));
    }
    let mut a: Vec<(String, &Document)> = mem.iter().map(|d| (canonical(d), d)).collect();
    let mut b: Vec<(String, &Document)> = peer.iter().map(|d| (canonical(d), d)).collect();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    a.iter().zip(&b).all(|(x, y)| same_doc(x.1, y.1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_pipelines_agree_with_the_peer() {
    let Some(uri) = peer_uri() else {
        return;
    };
    let seed: u64 = std::env::var("DIFF_PIPELINE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_128);
    let per_collection: usize = std::env::var("DIFF_PIPELINE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(420);
    eprintln!(
        "differential pipelines: seed {seed} (DIFF_PIPELINE_SEED to replay), {per_collection} pipelines per collection; {} documented peer exceptions",
        PEER_EXCEPTIONS.len()
    );
    let peer = MongoBackend::connect(&uri, MongoBackendOptions::default())
        .await
        .expect("connect to the peer");
    let memory = MemoryBackend::new();
    let db = unique_db("diffpipe");
    let mut r = Rng::new(seed);
    let collections = ["c0", "c1", "c2", "c3", "c4"];
    let mut sizes = Vec::new();
    for (ci, name) in collections.iter().enumerate() {
        let n = r.int(8, 40);
        sizes.push(n);
        let docs: Vec<Document> = (0..n)
            .map(|i| document(&mut r, ci as i64 * 1000 + i))
            .collect();
        let ns = Namespace::new(&db, *name);
        memory
            .insert_many(&ns, docs.clone())
            .await
            .expect("memory insert");
        peer.insert_many(&ns, docs).await.expect("peer insert");
    }
    let mut cases = 0usize;
    let mut both_failed = 0usize;
    let mut peer_exceptions = 0usize;
    let mut failure_reasons = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for (ci, name) in collections.iter().enumerate() {
        let ns = Namespace::new(&db, *name);
        let other = collections[(ci + 1) % collections.len()];
        for _ in 0..per_collection {
            let case = pipeline(&mut r, other, sizes[ci]);
            cases += 1;
            let m = memory.aggregate(&ns, case.pipeline.clone()).await;
            let p = peer.aggregate(&ns, case.pipeline.clone()).await;
            let ok = match (&m, &p) {
                (Ok(a), Ok(b)) => agree(&case, a, b),
                (Err(e), Ok(_)) if arithmetic_order_exception(&e.message) => {
                    peer_exceptions += 1;
                    true
                }
                (Err(e), Err(_)) => {
                    both_failed += 1;
                    let reason: String = e.message.chars().take(60).collect();
                    *failure_reasons.entry(reason).or_insert(0usize) += 1;
                    true
                }
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "collection {name}\n  pipeline: {}\n  memory:   {}\n  peer:     {}\n  first difference: {}",
                    Bson::Array(case.pipeline.iter().cloned().map(Bson::Document).collect()),
                    show(&m),
                    show(&p),
                    first_difference(&case, &m, &p)
                ));
            }
        }
    }
    eprintln!(
        "differential pipelines: {cases} pipelines, {both_failed} failed on both sides, \
         {peer_exceptions} hit a documented peer exception, {} disagreements",
        failures.len()
    );
    for (reason, n) in &failure_reasons {
        eprintln!("  both failed {n}x: {reason}…");
    }
    let show_max: usize = std::env::var("DIFF_PIPELINE_SHOW")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    for f in failures.iter().take(show_max) {
        eprintln!("DISAGREEMENT {f}");
    }
    assert!(cases >= 2000, "too few cases: {cases}");
    assert!(
        failures.is_empty(),
        "{} of {cases} pipelines disagree (seed {seed})",
        failures.len()
    );
}

/// Whether the embedded engine failed where the peer answered because an
/// arithmetic operator met a non-numeric operand before a null one: MongoDB
/// fails there too (see [`PEER_EXCEPTIONS`]). The generator cannot avoid it
/// cheaply, since `a` is sometimes a string and `$missing` is null.
fn arithmetic_order_exception(message: &str) -> bool {
    message.starts_with("$add only supports numeric or date types, not ")
        || message.starts_with("$multiply only supports numeric types, not ")
        || message.starts_with("$subtract")
}

/// The first pair of documents that differ, for the report.
fn first_difference(
    case: &Case,
    m: &Result<Vec<Document>, tower_data_api::BackendError>,
    p: &Result<Vec<Document>, tower_data_api::BackendError>,
) -> String {
    let (Ok(m), Ok(p)) = (m, p) else {
        return "one side failed".into();
    };
    let order = |docs: &[Document]| {
        let mut v: Vec<Document> = docs.to_vec();
        if !case.ordered {
            v.sort_by_key(canonical);
        }
        v
    };
    let (m, p) = (order(m), order(p));
    for (a, b) in m.iter().zip(&p) {
        if !same_doc(a, b) {
            return format!("memory {a} / peer {b}");
        }
    }
    format!("{} documents / {} documents", m.len(), p.len())
}

fn show(r: &Result<Vec<Document>, tower_data_api::BackendError>) -> String {
    match r {
        Ok(docs) => Bson::Array(docs.iter().cloned().map(Bson::Document).collect()).to_string(),
        Err(e) => format!("error {:?}: {}", e.kind, e.message),
    }
}

/// Invalid pipelines: both backends must refuse them, with the same message
/// (the peer's, which is MongoDB's, may carry an "… :: caused by :: " prefix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_pipelines_fail_alike() {
    let Some(uri) = peer_uri() else {
        return;
    };
    let peer = MongoBackend::connect(&uri, MongoBackendOptions::default())
        .await
        .expect("connect to the peer");
    let memory = MemoryBackend::new();
    let db = unique_db("diffpipe_err");
    let ns = Namespace::new(&db, "c");
    let docs = vec![
        doc! {"_id": 1, "a": "text", "n": 5},
        doc! {"_id": 2, "a": 2},
    ];
    memory.insert_many(&ns, docs.clone()).await.expect("insert");
    peer.insert_many(&ns, docs).await.expect("insert");
    let cases: Vec<Vec<Document>> = vec![
        vec![doc! {"$unknownStage": {}}],
        vec![doc! {"$project": {"x": {"$foo": 1}}}],
        vec![doc! {"$match": {}, "$limit": 1}],
        vec![doc! {"$limit": -1}],
        vec![doc! {"$limit": "x"}],
        vec![doc! {"$skip": -1}],
        vec![doc! {"$sort": {}}],
        vec![doc! {"$group": {"total": {"$sum": 1}}}],
        vec![doc! {"$count": ""}],
        vec![doc! {"$unwind": 5}],
        vec![doc! {"$project": {"x": {"$add": ["$a", 1]}}}],
        vec![doc! {"$project": {"x": {"$multiply": ["$a", 2]}}}],
        vec![doc! {"$project": {"x": {"$toUpper": ["$a", "$a"]}}}],
        vec![doc! {"$project": {"x": {"$year": "$a"}}}],
        vec![doc! {"$replaceWith": "$n"}],
        vec![doc! {"$out": "x"}, doc! {"$match": {}}],
        vec![doc! {"$bucketAuto": {"groupBy": "$n", "buckets": 0}}],
        vec![doc! {"$bucketAuto": {"groupBy": "$n"}}],
        vec![doc! {"$densify": {"field": "n", "range": {"step": -1, "bounds": "full"}}}],
        // (An unknown $collStats field, or $collStats after another stage,
        // is refused by MongoDB and by the embedded engine; the peer accepts
        // both: see PEER_EXCEPTIONS.)
        vec![doc! {"$documents": [{"a": 1}]}],
    ];
    let mut differing = Vec::new();
    for pipeline in &cases {
        let m = memory.aggregate(&ns, pipeline.clone()).await;
        let p = peer.aggregate(&ns, pipeline.clone()).await;
        let shown = Bson::Array(pipeline.iter().cloned().map(Bson::Document).collect());
        let (Err(m), Err(p)) = (&m, &p) else {
            panic!(
                "{shown}: both must fail; memory {}, peer {}",
                show(&m),
                show(&p)
            );
        };
        // The document shown after "Input document:" is the peer's own view.
        let text = |m: &str| {
            let tail = m
                .rsplit(" :: caused by :: ")
                .next()
                .unwrap_or("")
                .to_string();
            tail.split(" Input document: ")
                .next()
                .unwrap_or("")
                .to_string()
        };
        let known = MESSAGE_EXCEPTIONS
            .iter()
            .any(|(stage, _)| shown.to_string().contains(stage));
        if text(&m.message) != text(&p.message) && !known {
            differing.push(format!(
                "{shown}\n  memory: {}\n  peer:   {}",
                m.message, p.message
            ));
        }
    }
    for d in &differing {
        eprintln!("MESSAGE DIFFERS {d}");
    }
    eprintln!(
        "invalid pipelines: {} cases, {} with another message",
        cases.len(),
        differing.len()
    );
    assert!(differing.is_empty(), "{} messages differ", differing.len());
}

/// Error messages that differ on purpose: (pipeline text, reason).
const MESSAGE_EXCEPTIONS: &[(&str, &str)] = &[(
    "$foo",
    "an unknown operator in $project: the embedded engine answers MongoDB's \
     \"Unrecognized expression '$foo'\" (code 168) everywhere; the peer says \
     \"Unknown expression $foo\" inside $project",
)];

/// Counts the way `atlas_sdk` asks for them, over HTTP through the standalone
/// server: the embedded engine and the peer must answer the same JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atlas_sdk_counts_over_http_agree() {
    use integration_tests::{body, standalone, BackendKind};
    use serde_json::json;

    let Some(peer) = standalone(BackendKind::Peer).await else {
        return;
    };
    let Some(memory) = standalone(BackendKind::Memory).await else {
        return;
    };
    let db = unique_db("diffpipe_http");
    let docs: Vec<serde_json::Value> = (0..25)
        .map(|i| json!({"_id": i, "status": if i % 3 == 0 { "closed" } else { "open" }}))
        .collect();
    for server in [&memory, &peer] {
        server
            .ok(
                "insertMany",
                body(&db, "orders", json!({"documents": docs})),
            )
            .await;
    }
    let pipelines = [
        // countDocuments: $match + $group by null with $sum 1.
        json!([{"$match": {"status": "open"}}, {"$group": {"_id": 1, "n": {"$sum": 1}}}]),
        json!([{"$match": {}}, {"$skip": 2}, {"$limit": 10}, {"$group": {"_id": 1, "n": {"$sum": 1}}}]),
        json!([{"$match": {"status": "none"}}, {"$group": {"_id": 1, "n": {"$sum": 1}}}]),
        json!([{"$match": {"status": "closed"}}, {"$count": "n"}]),
        // estimatedDocumentCount.
        json!([{"$collStats": {"count": {}}}, {"$group": {"_id": 1, "n": {"$sum": "$count"}}}]),
    ];
    for pipeline in pipelines {
        let request = body(&db, "orders", json!({"pipeline": pipeline}));
        let m = memory.ok("aggregate", request.clone()).await;
        let p = peer.ok("aggregate", request).await;
        assert_eq!(m, p, "{pipeline}");
    }
}
