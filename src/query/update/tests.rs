use super::*;
use bson::{bson, doc};

fn upd(update: Document, d: Document) -> Result<(Document, bool), QueryError> {
    let u = UpdateDoc::parse(&update, None)?;
    let mut d = d;
    let changed = u.apply(&mut d, false)?;
    Ok((d, changed))
}

#[test]
fn modifiers() {
    let base = doc! {"_id": 1, "a": 1, "arr": [1, 2, 3], "o": {"x": 1}, "s": "str"};
    let cases: Vec<(Document, Document, bool)> = vec![
        (
            doc! {"$set": {"a": 2}},
            doc! {"_id": 1, "a": 2, "arr": [1, 2, 3], "o": {"x": 1}, "s": "str"},
            true,
        ),
        (doc! {"$set": {"a": 1}}, base.clone(), false),
        (
            doc! {"$set": {"o.y.z": 5}},
            doc! {"_id": 1, "a": 1, "arr": [1, 2, 3], "o": {"x": 1, "y": {"z": 5}}, "s": "str"},
            true,
        ),
        (
            doc! {"$set": {"arr.5": 9}},
            doc! {"_id": 1, "a": 1, "arr": [1, 2, 3, null, null, 9], "o": {"x": 1}, "s": "str"},
            true,
        ),
        (
            doc! {"$unset": {"a": "", "zz": 1}},
            doc! {"_id": 1, "arr": [1, 2, 3], "o": {"x": 1}, "s": "str"},
            true,
        ),
        (
            doc! {"$unset": {"arr.0": 1}},
            doc! {"_id": 1, "a": 1, "arr": [null, 2, 3], "o": {"x": 1}, "s": "str"},
            true,
        ),
        (
            doc! {"$inc": {"a": 2, "n": 1.5}},
            doc! {"_id": 1, "a": 3, "arr": [1, 2, 3], "n": 1.5, "o": {"x": 1}, "s": "str"},
            true,
        ),
        (doc! {"$inc": {"a": 0}}, base.clone(), false),
        (
            doc! {"$mul": {"a": 3i64, "m": 2}},
            doc! {"_id": 1, "a": 3i64, "arr": [1, 2, 3], "m": 0, "o": {"x": 1}, "s": "str"},
            true,
        ),
        (
            doc! {"$min": {"a": 0}},
            doc! {"_id": 1, "a": 0, "arr": [1, 2, 3], "o": {"x": 1}, "s": "str"},
            true,
        ),
        (doc! {"$max": {"a": 0}}, base.clone(), false),
        (
            doc! {"$rename": {"a": "b"}},
            doc! {"_id": 1, "arr": [1, 2, 3], "o": {"x": 1}, "s": "str", "b": 1},
            true,
        ),
        (
            doc! {"$push": {"arr": 4}},
            doc! {"_id": 1, "a": 1, "arr": [1, 2, 3, 4], "o": {"x": 1}, "s": "str"},
            true,
        ),
        (
            doc! {"$push": {"arr": {"$each": [0, 9], "$position": 0, "$sort": -1, "$slice": 3}}},
            doc! {"_id": 1, "a": 1, "arr": [9, 3, 2], "o": {"x": 1}, "s": "str"},
            true,
        ),
        (
            doc! {"$push": {"new": {"$each": [2, 1], "$slice": -1}}},
            doc! {"_id": 1, "a": 1, "arr": [1, 2, 3], "new": [1], "o": {"x": 1}, "s": "str"},
            true,
        ),
        (doc! {"$addToSet": {"arr": 2.0}}, base.clone(), false),
        (
            doc! {"$addToSet": {"arr": {"$each": [3, 4, 4]}}},
            doc! {"_id": 1, "a": 1, "arr": [1, 2, 3, 4], "o": {"x": 1}, "s": "str"},
            true,
        ),
        (
            doc! {"$pop": {"arr": -1}},
            doc! {"_id": 1, "a": 1, "arr": [2, 3], "o": {"x": 1}, "s": "str"},
            true,
        ),
        (
            doc! {"$pull": {"arr": {"$gte": 2}}},
            doc! {"_id": 1, "a": 1, "arr": [1], "o": {"x": 1}, "s": "str"},
            true,
        ),
        (doc! {"$pull": {"arr": 7}}, base.clone(), false),
        (
            doc! {"$pullAll": {"arr": [1, 3]}},
            doc! {"_id": 1, "a": 1, "arr": [2], "o": {"x": 1}, "s": "str"},
            true,
        ),
        (
            doc! {"$bit": {"a": {"or": 6}}},
            doc! {"_id": 1, "a": 7, "arr": [1, 2, 3], "o": {"x": 1}, "s": "str"},
            true,
        ),
        (
            doc! {"$set": {"arr.$[]": 0}},
            doc! {"_id": 1, "a": 1, "arr": [0, 0, 0], "o": {"x": 1}, "s": "str"},
            true,
        ),
        (doc! {"$setOnInsert": {"a": 5}}, base.clone(), false),
        (
            doc! {"$set": {"z": 1, "b": 1}},
            doc! {"_id": 1, "a": 1, "arr": [1, 2, 3], "o": {"x": 1}, "s": "str", "b": 1, "z": 1},
            true,
        ),
        (doc! {"$set": {"_id": 1}}, base.clone(), false),
    ];
    for (u, want, changed) in cases {
        let got = upd(u.clone(), base.clone()).unwrap_or_else(|e| panic!("{u}: {e}"));
        assert_eq!(got, (want, changed), "{u}");
    }
}

#[test]
fn pull_documents_and_positional() {
    let d = doc! {"_id": 1, "items": [{"k": 1, "v": "a"}, {"k": 2, "v": "b"}]};
    let (out, _) = upd(doc! {"$pull": {"items": {"k": 2}}}, d.clone()).unwrap();
    assert_eq!(out, doc! {"_id": 1, "items": [{"k": 1, "v": "a"}]});
    let u = UpdateDoc::parse(&doc! {"$set": {"items.$.v": "z"}}, None).unwrap();
    assert!(u.uses_positional());
    let filter = Filter::parse(&doc! {"items.k": 2}).unwrap();
    let mut m = d.clone();
    let idx = filter.matched_array_index(&m);
    u.apply_with_match(&mut m, false, idx).unwrap();
    assert_eq!(
        m,
        doc! {"_id": 1, "items": [{"k": 1, "v": "a"}, {"k": 2, "v": "z"}]}
    );
    let u = UpdateDoc::parse(
        &doc! {"$inc": {"items.$[e].k": 10}},
        Some(&[doc! {"e.k": {"$gt": 1}}]),
    )
    .unwrap();
    let mut m = d.clone();
    u.apply(&mut m, false).unwrap();
    assert_eq!(
        m,
        doc! {"_id": 1, "items": [{"k": 1, "v": "a"}, {"k": 12, "v": "b"}]}
    );
}

#[test]
fn errors() {
    let base = doc! {"_id": 1, "a": 1, "s": "str", "arr": [1]};
    let cases = [
        (doc! {"$set": {"_id": 2}}, 66, "Performing an update on the path '_id' would modify the immutable field '_id'"),
        (doc! {"$unset": {"_id": 1}}, 66, "Performing an update on the path '_id' would modify the immutable field '_id'"),
        (doc! {"$set": {"a": 1}, "$inc": {"a": 1}}, 40, "Updating the path 'a' would create a conflict at 'a'"),
        (doc! {"$set": {"a": 1}, "$inc": {"a.b": 1}}, 40, "Updating the path 'a.b' would create a conflict at 'a'"),
        (doc! {"$inc": {"s": 1}}, 14, "Cannot apply $inc to a value of non-numeric type. {_id: 1} has the field 's' of non-numeric type string"),
        (doc! {"$inc": {"a": "x"}}, 14, "Cannot increment with non-numeric argument: {a: \"x\"}"),
        (doc! {"$set": {}}, 9, "'$set' is empty. You must specify a field like so: {$set: {<field>: ...}}"),
        (doc! {"$foo": {"a": 1}}, 9, "Unknown modifier: $foo. Expected a valid update modifier or pipeline-style update specified as an array"),
        (doc! {"a": 1}, 9, "Update document requires atomic operators"),
        (doc! {"$set": {"a.b": 1}}, 28, "Cannot create field 'b' in element {a: 1}"),
        (doc! {"$push": {"a": 1}}, 2, "The field 'a' must be an array but is of type int in document {_id: 1}"),
        (doc! {"$pop": {"arr": 2}}, 9, "$pop expects 1 or -1, found: 2"),
        (doc! {"$set": {"arr.$": 1}}, 2, "The positional operator did not find the match needed from the query."),
        (doc! {"$set": {"a..b": 1}}, 56, "The update path 'a..b' contains an empty field name, which is not allowed."),
        (doc! {"$rename": {"a": 1}}, 2, "The 'to' field for $rename must be a string: a: 1"),
        (doc! {"$inc": {"big": 1}, "$set": {"x": 1}}, 0, ""),
    ];
    for (u, code, msg) in cases {
        let start = if u.contains_key("$inc") && code == 0 {
            doc! {"_id": 1, "big": i64::MAX}
        } else {
            base.clone()
        };
        let res = upd(u.clone(), start);
        if code == 0 {
            let err = res.unwrap_err();
            assert_eq!(err.code, 2, "{u}");
            assert!(
                err.message
                    .starts_with("Failed to apply $inc operations to current value"),
                "{}",
                err.message
            );
            continue;
        }
        let err = res.unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (code, msg), "{u}");
    }
}

#[test]
fn seeds_and_pipelines() {
    let cases = [
        (
            doc! {"_id": 5, "a": {"$gt": 1}, "b.c": 2},
            doc! {"_id": 5, "b": {"c": 2}},
        ),
        (
            doc! {"$and": [{"x": 1}, {"y": {"$eq": 2}}], "$or": [{"z": 3}]},
            doc! {"x": 1, "y": 2, "z": 3},
        ),
        (
            doc! {"$or": [{"z": 3}, {"w": 1}], "r": {"$in": [4]}},
            doc! {"r": 4},
        ),
    ];
    for (f, want) in cases {
        assert_eq!(upsert_seed(&f).unwrap(), want, "{f}");
    }
    assert_eq!(upsert_seed(&doc! {"a": 1, "a.b": 1}).unwrap_err().code, 54);
    // Regression (differential tests): the seed's fields come in path order,
    // as MongoDB builds them, not in filter order.
    let seed = upsert_seed(&doc! {"_id": 1000, "f.g": 1, "b": "ba", "d.y": 2, "d.x": 7}).unwrap();
    assert_eq!(
        seed.keys().collect::<Vec<_>>(),
        ["_id", "b", "d", "f"],
        "{seed}"
    );
    assert_eq!(seed.get_document("d").unwrap(), &doc! {"x": 7, "y": 2});
    // …and a one-element `$all` is an equality, as a one-element `$in` is.
    assert_eq!(
        upsert_seed(&doc! {"_id": 1304, "d.y": {"$all": [false]}, "f.g": 10}).unwrap(),
        doc! {"_id": 1304, "d": {"y": false}, "f": {"g": 10}}
    );
    assert_eq!(
        upsert_seed(&doc! {
            "a": {"$all": [{"$elemMatch": {"x": 1}}]},
            "b": {"$all": [Bson::RegularExpression(bson::Regex { pattern: "x".into(), options: String::new() })]},
        })
        .unwrap(),
        doc! {}
    );
    // Two elements: the path is matched twice, which MongoDB refuses.
    assert_eq!(
        upsert_seed(&doc! {"b": {"$all": [[3, true], 0]}})
            .unwrap_err()
            .code,
        54
    );
    let out = apply_pipeline_update(
        &[
            doc! {"$set": {"b": {"$add": ["$a", 1]}}},
            doc! {"$unset": "a"},
        ],
        &doc! {"_id": 1, "a": 1},
    )
    .unwrap();
    assert_eq!(out, doc! {"_id": 1, "b": 2});
    let out = apply_pipeline_update(&[doc! {"$replaceWith": {"x": 1}}], &doc! {"_id": 1, "a": 1})
        .unwrap();
    assert_eq!(out, doc! {"_id": 1, "x": 1});
    assert_eq!(
        apply_pipeline_update(&[doc! {"$match": {}}], &doc! {})
            .unwrap_err()
            .code,
        72
    );
    assert_eq!(
        validate_replacement(&doc! {"$set": {"a": 1}})
            .unwrap_err()
            .code,
        52
    );
    assert_eq!(
        validate_id(&bson!([1])).unwrap_err().message,
        "The '_id' value cannot be of type array"
    );
    let u = UpdateDoc::parse(&doc! {"$set": {"a": 1}, "$setOnInsert": {"b": 2}}, None).unwrap();
    let mut d = doc! {"_id": 1};
    assert!(u.apply(&mut d, true).unwrap());
    assert_eq!(d, doc! {"_id": 1, "a": 1, "b": 2});
}

/// Regressions found by the differential property tests
/// (integration-tests/tests/differential_properties.rs).
#[test]
fn differential_regressions() {
    // `c.$[]` makes `c` an array node, `c.3` an object node: MongoDB rejects
    // the pair when it parses the update, whatever the document holds.
    for update in [
        doc! {"$inc": {"c.$[]": 1, "c.3": 1}},
        doc! {"$set": {"c.3": 1}, "$push": {"c.$[].x": 1}},
    ] {
        let err = UpdateDoc::parse(&update, None).unwrap_err();
        assert_eq!(err.code, 40, "{update}: {err:?}");
        assert!(
            err.message.contains("would create a conflict at 'c'"),
            "{}",
            err.message
        );
    }
    // Different array-filter segments under the same field do not conflict.
    assert!(UpdateDoc::parse(
        &doc! {"$set": {"c.$[].x": 1, "c.$[e].y": 2}},
        Some(&[doc! {"e": 1}])
    )
    .is_ok());
    // $pull conditions look into array elements that are arrays (MongoDB
    // matches {"": element}), unlike the $elemMatch projection.
    assert_eq!(
        upd(
            doc! {"$pull": {"a": {"$eq": null}}},
            doc! {"_id": 13, "a": [[1, 2], [null, 3]]}
        )
        .unwrap(),
        (doc! {"_id": 13, "a": [[1, 2]]}, true)
    );
    assert_eq!(
        upd(
            doc! {"$pull": {"a": {"$gte": 5}}},
            doc! {"_id": 1, "a": [[6], 4, 7]}
        )
        .unwrap(),
        (doc! {"_id": 1, "a": [4]}, true)
    );
    // A $rename source running through a scalar is PathNotViable, not a no-op.
    let err = upd(
        doc! {"$rename": {"d.y": "a.x"}},
        doc! {"_id": 12, "a": "abc", "d": 1},
    )
    .unwrap_err();
    assert_eq!(err.code, 28);
    assert_eq!(
        err.message,
        "cannot use the part (d of d.y) to traverse the element ({d: 1})"
    );
    // …while a missing source (or missing parent) still is a no-op.
    assert_eq!(
        upd(doc! {"$rename": {"d.y": "f"}}, doc! {"_id": 1, "d": {}}).unwrap(),
        (doc! {"_id": 1, "d": {}}, false)
    );
    assert_eq!(
        upd(doc! {"$rename": {"q.y": "f"}}, doc! {"_id": 1}).unwrap(),
        (doc! {"_id": 1}, false)
    );
}
