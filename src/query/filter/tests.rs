use super::*;
use bson::{doc, Regex};

fn check(filter: Document, docs: &[(Document, bool)]) {
    let f = Filter::parse(&filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    for (d, want) in docs {
        assert_eq!(f.matches(d), *want, "filter {filter} on {d}");
    }
}

/// Regression (differential tests): an `$elemMatch` projection sees an
/// array element as a whole, while `$pull` looks into it.
#[test]
fn element_conditions_do_not_descend_into_nested_arrays() {
    let nested = Bson::Array(vec![Bson::Null, Bson::Int32(6)]);
    let f = Filter::parse_value_condition(&doc! {"$gte": 5}).unwrap();
    assert!(!f.matches_element(&nested));
    assert!(f.matches_element(&Bson::Int32(6)));
    assert!(f.matches_value(&nested));
    let f = Filter::parse_value_condition(&doc! {"$eq": null}).unwrap();
    assert!(!f.matches_element(&nested));
    assert!(f.matches_value(&nested));
    let f = Filter::parse_value_condition(&doc! {"$size": 2}).unwrap();
    assert!(f.matches_element(&nested));
}

#[test]
fn equality_and_arrays() {
    check(
        doc! {"a": 1},
        &[
            (doc! {"a": 1}, true),
            (doc! {"a": 1.0}, true),
            (doc! {"a": [2, 1]}, true),
            (doc! {"a": [[1]]}, false),
            (doc! {"a": "1"}, false),
            (doc! {}, false),
        ],
    );
    check(
        doc! {"a": [1, 2]},
        &[
            (doc! {"a": [1, 2]}, true),
            (doc! {"a": [2, 1]}, false),
            (doc! {"a": [[1, 2], 3]}, true),
        ],
    );
    check(
        doc! {"a.b": 2},
        &[
            (doc! {"a": [{"b": 1}, {"b": 2}]}, true),
            (doc! {"a": {"b": [5, 2]}}, true),
            (doc! {"a": [{"b": 1}]}, false),
        ],
    );
    check(
        doc! {"a.1": "x"},
        &[
            (doc! {"a": ["w", "x"]}, true),
            (doc! {"a": {"1": "x"}}, true),
        ],
    );
    check(
        doc! {"a": {"b": 1}},
        &[
            (doc! {"a": {"b": 1}}, true),
            (doc! {"a": {"b": 1, "c": 2}}, false),
        ],
    );
}

#[test]
fn null_semantics() {
    let docs = [
        (doc! {"a": null}, true, false, true),
        (doc! {}, true, false, false),
        (doc! {"a": [1, null]}, true, false, true),
        (doc! {"a": 4}, false, true, true),
        (doc! {"a": bson::Bson::Undefined}, false, true, true),
        (doc! {"a": []}, false, true, true),
    ];
    let eq = Filter::parse(&doc! {"a": null}).unwrap();
    let ne = Filter::parse(&doc! {"a": {"$ne": null}}).unwrap();
    let exists = Filter::parse(&doc! {"a": {"$exists": true}}).unwrap();
    for (d, e, n, x) in docs {
        assert_eq!(eq.matches(&d), e, "eq null {d}");
        assert_eq!(ne.matches(&d), n, "ne null {d}");
        assert_eq!(exists.matches(&d), x, "exists {d}");
    }
    let dotted = [
        (doc! {"a": 4}, true),
        (doc! {"a": {}}, true),
        (doc! {"a": {"b": "hi"}}, false),
        (doc! {"a": [1, 2]}, false),
        (doc! {"a": [{"b": 3}, {}]}, true),
        (doc! {"a": []}, false),
        (doc! {"a": [null, null]}, false),
    ];
    check(doc! {"a.b": null}, &dotted);
    check(
        doc! {"a.b": {"$exists": false}},
        &[(doc! {"a": [{"b": 3}, {}]}, false), (doc! {"a": 4}, true)],
    );
}

/// The document set and expectations of MongoDB 8's `null_query_semantics` behaviour.
#[test]
fn null_semantics_matrix() {
    use bson::Bson::Undefined;
    let docs = vec![
        doc! {"_id": "a_empty_subobject", "a": {}},
        doc! {"_id": "a_null", "a": null},
        doc! {"_id": "a_number", "a": 4},
        doc! {"_id": "a_subobject_b_not_null", "a": {"b": "hi"}},
        doc! {"_id": "a_subobject_b_null", "a": {"b": null}},
        doc! {"_id": "a_subobject_b_undefined", "a": {"b": Undefined}},
        doc! {"_id": "a_undefined", "a": Undefined},
        doc! {"_id": "no_a"},
        doc! {"_id": "a_double_array", "a": [[]]},
        doc! {"_id": "a_empty_array", "a": []},
        doc! {"_id": "a_object_array_b_mix", "a": [{"b": null}, {"b": Undefined}, {"b": null}, {}]},
        doc! {"_id": "a_object_array_no_b_nulls", "a": [{"b": 1}, {"b": 3}, {"b": "string"}]},
        doc! {"_id": "a_object_array_some_b_nulls", "a": [{"b": null}, {"b": 3}, {"b": null}]},
        doc! {"_id": "a_object_array_some_b_undefined", "a": [{"b": Undefined}, {"b": 3}]},
        doc! {"_id": "a_object_array_some_b_missing", "a": [{"b": 3}, {}]},
        doc! {"_id": "a_value_array_all_nulls", "a": [null, null]},
        doc! {"_id": "a_value_array_no_nulls", "a": [1, "string", 4]},
        doc! {"_id": "a_value_array_with_null", "a": [1, "string", null, 4]},
        doc! {"_id": "a_value_array_with_undefined", "a": [1, "string", Undefined, 4]},
    ];
    let matching = |filter: Document| -> Vec<String> {
        let f = Filter::parse(&filter).unwrap();
        docs.iter()
            .filter(|d| f.matches(d))
            .map(|d| d.get_str("_id").unwrap().to_string())
            .collect()
    };
    let cases: Vec<(Document, Vec<&str>)> = vec![
        (
            doc! {"a": {"$eq": null}},
            vec![
                "a_null",
                "no_a",
                "a_value_array_all_nulls",
                "a_value_array_with_null",
            ],
        ),
        (
            doc! {"a": {"$in": [null, []]}},
            vec![
                "a_null",
                "no_a",
                "a_double_array",
                "a_empty_array",
                "a_value_array_all_nulls",
                "a_value_array_with_null",
            ],
        ),
        (
            doc! {"a.b": {"$eq": null}},
            vec![
                "a_empty_subobject",
                "a_null",
                "a_number",
                "a_subobject_b_null",
                "a_undefined",
                "no_a",
                "a_object_array_b_mix",
                "a_object_array_some_b_nulls",
                "a_object_array_some_b_missing",
            ],
        ),
        (
            doc! {"a.b": {"$exists": false}},
            vec![
                "a_empty_subobject",
                "a_null",
                "a_number",
                "a_undefined",
                "no_a",
                "a_double_array",
                "a_empty_array",
                "a_value_array_all_nulls",
                "a_value_array_no_nulls",
                "a_value_array_with_null",
                "a_value_array_with_undefined",
            ],
        ),
        (
            doc! {"a": {"$elemMatch": {"$eq": null}}},
            vec!["a_value_array_all_nulls", "a_value_array_with_null"],
        ),
        (
            doc! {"a": {"$elemMatch": {"b": {"$eq": null}}}},
            vec![
                "a_double_array",
                "a_object_array_b_mix",
                "a_object_array_some_b_nulls",
                "a_object_array_some_b_missing",
            ],
        ),
        (doc! {"a": {"$exists": false}}, vec!["no_a"]),
    ];
    for (filter, want) in cases {
        assert_eq!(matching(filter.clone()), want, "{filter}");
    }
}

#[test]
fn comparisons() {
    check(
        doc! {"a": {"$gt": 5}},
        &[
            (doc! {"a": 6}, true),
            (doc! {"a": 5.5}, true),
            (doc! {"a": "z"}, false),
            (doc! {"a": [1, 9]}, true),
            (doc! {"a": [1, 2]}, false),
            (doc! {}, false),
        ],
    );
    check(
        doc! {"a": {"$gt": 1, "$lt": 3}},
        &[(doc! {"a": [0, 5]}, true), (doc! {"a": 4}, false)],
    );
    check(
        doc! {"a": {"$gte": null}},
        &[
            (doc! {}, true),
            (doc! {"a": null}, true),
            (doc! {"a": 1}, false),
        ],
    );
    check(
        doc! {"a": {"$gt": bson::Bson::MinKey}},
        &[(doc! {"a": "x"}, true), (doc! {}, true)],
    );
    check(
        doc! {"a": {"$lt": "b"}},
        &[(doc! {"a": "a"}, true), (doc! {"a": 1}, false)],
    );
    check(
        doc! {"a": {"$elemMatch": {"$gt": 1, "$lt": 3}}},
        &[(doc! {"a": [0, 5]}, false), (doc! {"a": [2]}, true)],
    );
    check(
        doc! {"a": {"$lte": f64::NAN}},
        &[(doc! {"a": f64::NAN}, true), (doc! {"a": 1}, false)],
    );
}

#[test]
fn set_operators() {
    check(
        doc! {"a": {"$in": [1, Regex { pattern: "^x".into(), options: "".into() }, null]}},
        &[
            (doc! {"a": "xy"}, true),
            (doc! {"a": [3, 1]}, true),
            (doc! {}, true),
            (doc! {"a": 2}, false),
        ],
    );
    check(
        doc! {"a": {"$nin": [1, 2]}},
        &[
            (doc! {"a": [3, 1]}, false),
            (doc! {}, true),
            (doc! {"a": 3}, true),
        ],
    );
    check(
        doc! {"a": {"$all": [1, 2]}},
        &[(doc! {"a": [2, 3, 1]}, true), (doc! {"a": [1]}, false)],
    );
    check(doc! {"a": {"$all": []}}, &[(doc! {"a": []}, false)]);
    check(
        doc! {"a": {"$size": 2}},
        &[
            (doc! {"a": [1, [2, 3]]}, true),
            (doc! {"a": [1]}, false),
            (doc! {"a": 2}, false),
        ],
    );
    check(
        doc! {"a": {"$elemMatch": {"b": 1, "c": {"$gt": 1}}}},
        &[
            (doc! {"a": [{"b": 1, "c": 2}]}, true),
            (doc! {"a": [{"b": 1}, {"c": 2}]}, false),
        ],
    );
    check(
        doc! {"a": {"$elemMatch": {"b": null}}},
        &[(doc! {"a": [[]]}, true), (doc! {"a": [1]}, false)],
    );
}

#[test]
fn logical_and_misc() {
    check(
        doc! {"$or": [{"a": 1}, {"b": 1}]},
        &[(doc! {"b": 1}, true), (doc! {"c": 1}, false)],
    );
    check(
        doc! {"$nor": [{"a": 1}]},
        &[(doc! {"a": 2}, true), (doc! {"a": 1}, false)],
    );
    check(
        doc! {"$and": [{"a": 1}, {"b": 2}]},
        &[(doc! {"a": 1, "b": 2}, true), (doc! {"a": 1}, false)],
    );
    check(
        doc! {"a": {"$not": {"$gt": 5}}},
        &[
            (doc! {"a": [3, 7]}, false),
            (doc! {"a": 3}, true),
            (doc! {}, true),
        ],
    );
    check(
        doc! {"a": {"$regex": "^AB", "$options": "i"}},
        &[(doc! {"a": "abc"}, true), (doc! {"a": ["x", "ab"]}, true)],
    );
    check(
        doc! {"a": {"$type": "number"}},
        &[(doc! {"a": 1i64}, true), (doc! {"a": "1"}, false)],
    );
    check(
        doc! {"a": {"$type": ["string", 16]}},
        &[(doc! {"a": 1}, true), (doc! {"a": 1.0}, false)],
    );
    check(
        doc! {"a": {"$type": "array"}},
        &[(doc! {"a": []}, true), (doc! {"a": 1}, false)],
    );
    check(
        doc! {"a": {"$mod": [4, 1]}},
        &[
            (doc! {"a": 5}, true),
            (doc! {"a": 5.9}, true),
            (doc! {"a": -3}, false),
        ],
    );
    check(
        doc! {"a": {"$bitsAllSet": [0, 2]}},
        &[(doc! {"a": 5}, true), (doc! {"a": 4}, false)],
    );
    check(
        doc! {"a": {"$bitsAnyClear": 6}},
        &[(doc! {"a": 6}, false), (doc! {"a": 2}, true)],
    );
    check(
        doc! {"$expr": {"$gt": ["$a", "$b"]}},
        &[
            (doc! {"a": 2, "b": 1}, true),
            (doc! {"a": 1, "b": 1}, false),
        ],
    );
}

#[test]
fn errors() {
    let cases = [
        (doc! {"a": {"$foo": 1}}, 2, "unknown operator: $foo"),
        (doc! {"$foo": 1}, 2, "unknown top level operator: $foo. If you have a field name that starts with a '$' symbol, consider using $getField or $setField."),
        (doc! {"$or": []}, 2, "$and/$or/$nor must be a nonempty array"),
        (doc! {"$and": 1}, 2, "$and/$or/$nor must be a nonempty array"),
        (doc! {"a": {"$in": 1}}, 2, "$in needs an array"),
        (doc! {"a": {"$nin": 1}}, 2, "$nin needs an array"),
        (doc! {"a": {"$size": -1}}, 2, "$size may not be negative"),
        (doc! {"a": {"$mod": [0, 1]}}, 2, "divisor cannot be 0"),
        (doc! {"a": {"$type": "foo"}}, 2, "Unknown type name alias: foo"),
        (doc! {"a": {"$elemMatch": 1}}, 2, "$elemMatch needs an Object"),
        (doc! {"$where": "1"}, 238, "$where is not supported by the embedded engine"),
        (doc! {"$text": {"$search": "x"}}, 238, "$text is not supported by the embedded engine"),
        (doc! {"a": {"$near": [0, 0]}}, 238, "$near is not supported by the embedded engine"),
        (doc! {"a": {"$options": "i"}}, 2, "$options needs a $regex"),
    ];
    for (f, code, msg) in cases {
        let err = Filter::parse(&f).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (code, msg), "{f}");
    }
}

#[test]
fn json_schema_filters_validate_each_document() {
    let filter = Filter::parse(&doc! {"$jsonSchema": {
        "bsonType": "object",
        "required": ["name"],
        "properties": {"age": {"bsonType": "int", "minimum": 18}, "name": {"bsonType": "string"}}
    }})
    .unwrap();
    assert!(filter.matches(&doc! {"name": "ada", "age": 36}));
    assert!(filter.matches(&doc! {"name": "ada"}));
    assert!(!filter.matches(&doc! {"name": "kid", "age": 9}));
    assert!(!filter.matches(&doc! {"age": 40}));
    assert!(!filter.matches(&doc! {"name": 5}));
    let combined =
        Filter::parse(&doc! {"age": {"$gt": 20}, "$jsonSchema": {"required": ["name"]}}).unwrap();
    assert!(combined.matches(&doc! {"name": "x", "age": 21}));
    assert!(!combined.matches(&doc! {"age": 21}));
    for bad in [doc! {"$jsonSchema": 1}, doc! {"$jsonSchema": {"oneOf": []}}] {
        assert!(Filter::parse(&bad).is_err(), "{bad}");
    }
}

#[test]
fn id_equality_and_position() {
    assert_eq!(
        Filter::parse(&doc! {"_id": 5, "x": 1})
            .unwrap()
            .id_equality(),
        Some(&bson::Bson::Int32(5))
    );
    assert_eq!(
        Filter::parse(&doc! {"_id": {"$eq": 5}})
            .unwrap()
            .id_equality(),
        Some(&bson::Bson::Int32(5))
    );
    assert!(Filter::parse(&doc! {"_id": {"$gt": 5}})
        .unwrap()
        .id_equality()
        .is_none());
    let f = Filter::parse(&doc! {"a.b": 3}).unwrap();
    assert_eq!(
        f.matched_array_index(&doc! {"a": [{"b": 1}, {"b": 3}]}),
        Some(1)
    );
    let f = Filter::parse(&doc! {"a": {"$gte": 3}}).unwrap();
    assert_eq!(f.matched_array_index(&doc! {"a": [1, 2, 4]}), Some(2));
}
