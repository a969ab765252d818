use super::*;
use bson::{bson, doc};

fn eval(expr: Bson, doc: Document) -> Result<Option<Bson>, QueryError> {
    Expr::parse(&expr)?.eval_doc(&doc)
}

#[test]
fn evaluates() {
    let d = doc! {"a": 5, "b": 2.5, "s": "Hello", "arr": [1, 2, 3], "n": null, "o": {"x": [{"y": 1}, {"y": 2}]},
    "big": i32::MAX, "d": bson::DateTime::from_millis(1_709_214_330_123)};
    let cases: Vec<(Bson, Option<Bson>)> = vec![
        (bson!("$a"), Some(bson!(5))),
        (bson!("$o.x.y"), Some(bson!([1, 2]))),
        (bson!("$missing"), None),
        (bson!("$$ROOT.a"), Some(bson!(5))),
        (bson!({"$literal": "$a"}), Some(bson!("$a"))),
        (bson!({"$add": ["$a", 1]}), Some(bson!(6))),
        (bson!({"$add": ["$a", "$b"]}), Some(bson!(7.5))),
        (
            bson!({"$add": ["$big", 1]}),
            Some(bson!(i64::from(i32::MAX) + 1)),
        ),
        (bson!({"$add": ["$a", "$missing"]}), Some(Bson::Null)),
        (bson!({"$subtract": ["$a", 7]}), Some(bson!(-2))),
        (bson!({"$multiply": ["$a", 2, 2]}), Some(bson!(20))),
        (bson!({"$divide": ["$a", 2]}), Some(bson!(2.5))),
        (bson!({"$mod": ["$a", 3]}), Some(bson!(2))),
        (bson!({"$abs": -3}), Some(bson!(3))),
        (bson!({"$eq": ["$a", 5.0]}), Some(bson!(true))),
        (bson!({"$gt": ["$s", 1]}), Some(bson!(true))),
        (bson!({"$eq": ["$missing", null]}), Some(bson!(false))),
        (bson!({"$cmp": [1, 2]}), Some(bson!(-1))),
        (bson!({"$and": [1, "$a"]}), Some(bson!(true))),
        (bson!({"$or": [0, "$n"]}), Some(bson!(false))),
        (bson!({"$not": [[]]}), Some(bson!(false))),
        (
            bson!({"$cond": [{"$gt": ["$a", 1]}, "big", "small"]}),
            Some(bson!("big")),
        ),
        (
            bson!({"$cond": {"if": false, "then": 1, "else": 2}}),
            Some(bson!(2)),
        ),
        (
            bson!({"$ifNull": ["$n", "$missing", "x"]}),
            Some(bson!("x")),
        ),
        (bson!({"$concat": ["$s", " ", "W"]}), Some(bson!("Hello W"))),
        (bson!({"$concat": ["$s", "$n"]}), Some(Bson::Null)),
        (bson!({"$size": "$arr"}), Some(bson!(3))),
        (bson!({"$toUpper": "$s"}), Some(bson!("HELLO"))),
        (bson!({"$toLower": "$n"}), Some(bson!(""))),
        // Only ASCII letters change case, as in MongoDB.
        (bson!({"$toUpper": "éclair ß"}), Some(bson!("éCLAIR ß"))),
        (bson!({"$toLower": "ÉCLAIR"}), Some(bson!("Éclair"))),
        (bson!({"$strcasecmp": ["É", "é"]}), Some(bson!(-1))),
        (bson!({"$in": [2, "$arr"]}), Some(bson!(true))),
        (bson!({"$arrayElemAt": ["$arr", -1]}), Some(bson!(3))),
        (bson!({"$arrayElemAt": ["$arr", 9]}), None),
        (
            bson!({"$filter": {"input": "$arr", "cond": {"$gt": ["$$this", 1]}}}),
            Some(bson!([2, 3])),
        ),
        (
            bson!({"$map": {"input": "$arr", "as": "x", "in": {"$multiply": ["$$x", 10]}}}),
            Some(bson!([10, 20, 30])),
        ),
        (
            bson!({"$reduce": {"input": "$arr", "initialValue": 0, "in": {"$add": ["$$value", "$$this"]}}}),
            Some(bson!(6)),
        ),
        (
            bson!({"$concatArrays": ["$arr", [4]]}),
            Some(bson!([1, 2, 3, 4])),
        ),
        (bson!({"$substrCP": ["$s", 1, 3]}), Some(bson!("ell"))),
        (bson!({"$split": ["a,b", ","]}), Some(bson!(["a", "b"]))),
        (bson!({"$toString": 2.5}), Some(bson!("2.5"))),
        (
            bson!({"$toString": "$d"}),
            Some(bson!("2024-02-29T13:45:30.123Z")),
        ),
        (bson!({"$year": "$d"}), Some(bson!(2024))),
        (bson!({"$month": "$d"}), Some(bson!(2))),
        (bson!({"$dayOfMonth": "$d"}), Some(bson!(29))),
        (bson!({"$hour": "$d"}), Some(bson!(13))),
        (bson!({"$minute": "$d"}), Some(bson!(45))),
        (bson!({"$second": "$d"}), Some(bson!(30))),
        (
            bson!({"$dateToString": {"date": "$d", "format": "%Y-%m-%d"}}),
            Some(bson!("2024-02-29")),
        ),
        (
            bson!({"$let": {"vars": {"x": 2}, "in": {"$add": ["$$x", "$a"]}}}),
            Some(bson!(7)),
        ),
        (bson!({"$sum": "$arr"}), Some(bson!(6))),
        (bson!({"$max": [1, 5, 3]}), Some(bson!(5))),
        (
            bson!({"$switch": {"branches": [{"case": false, "then": 1}], "default": 2}}),
            Some(bson!(2)),
        ),
        (bson!({"$type": "$a"}), Some(bson!("int"))),
        (bson!({"x": "$a", "y": "$missing"}), Some(bson!({"x": 5}))),
        (
            bson!({"$mergeObjects": [{"a": 1}, {"b": 2}]}),
            Some(bson!({"a": 1, "b": 2})),
        ),
        (bson!({"$round": [2.5]}), Some(bson!(2.0))),
        (bson!({"$toInt": "42"}), Some(bson!(42))),
    ];
    for (e, want) in cases {
        assert_eq!(
            eval(e.clone(), d.clone()).unwrap_or_else(|err| panic!("{e}: {err}")),
            want,
            "{e}"
        );
    }
}

#[test]
fn errors() {
    let cases = [
        (bson!({"$foo": 1}), 168, "Unrecognized expression '$foo'"),
        (bson!({"$divide": [1, 0]}), 16608, "can't $divide by zero"),
        (bson!({"$mod": [1, 0]}), 16610, "can't $mod by zero"),
        (bson!({"$size": "x"}), 17124, "The argument to $size must be an array. Type of argument was: string"),
        (bson!({"$size": "$missing"}), 17124, "The argument to $size must be an array. Type of argument was: missing"),
        (bson!({"$concat": ["a", 1]}), 16702, "$concat only supports strings, not int"),
        (bson!({"$add": ["a", 1]}), 16554, "$add only supports numeric or date types, not string"),
        (bson!({"$eq": [1]}), 16020, "Expression $eq takes exactly 2 arguments. 1 were passed in."),
        (bson!({"$in": [1, 2]}), 40081, "$in requires an array as a second argument, found: int"),
        (bson!("$$nope"), 17276, "Use of undefined variable: nope"),
        (bson!({"$add": 1, "$sub": 2}), 15983, "an expression specification must contain exactly one field, the name of the expression. Found 2 fields in { $add: 1, $sub: 2 }"),
    ];
    for (e, code, msg) in cases {
        let err = eval(e.clone(), doc! {}).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (code, msg), "{e}");
    }
}

#[test]
fn named_argument_operators() {
    let d = doc! {"d": bson::DateTime::from_millis(1_709_214_330_123), "s": "a-b-a", "arr": [3, 1, 2], "o": {"x": 1}};
    let date = |ms: i64| Some(Bson::DateTime(bson::DateTime::from_millis(ms)));
    let day = 86_400_000i64;
    let cases: Vec<(Bson, Option<Bson>)> = vec![
        (
            bson!({"$dateAdd": {"startDate": "$d", "unit": "day", "amount": 1}}),
            date(1_709_214_330_123 + day),
        ),
        // 2024-02-29 + 1 year clamps to 2025-02-28.
        (
            bson!({"$dateAdd": {"startDate": "$d", "unit": "year", "amount": 1}}),
            date(1_709_214_330_123 + 365 * day),
        ),
        (
            bson!({"$dateSubtract": {"startDate": "$d", "unit": "hour", "amount": 2}}),
            date(1_709_214_330_123 - 7_200_000),
        ),
        (
            bson!({"$dateDiff": {"startDate": "$d", "endDate": {"$dateAdd": {"startDate": "$d", "unit": "month", "amount": 3}}, "unit": "month"}}),
            Some(bson!(3i64)),
        ),
        (
            bson!({"$dateDiff": {"startDate": "$d", "endDate": "$d", "unit": "day"}}),
            Some(bson!(0i64)),
        ),
        (
            bson!({"$dateTrunc": {"date": "$d", "unit": "day"}}),
            date(1_709_164_800_000),
        ),
        (
            bson!({"$dateTrunc": {"date": "$d", "unit": "month"}}),
            date(1_706_745_600_000),
        ),
        (
            bson!({"$dateFromParts": {"year": 2024, "month": 2, "day": 29}}),
            date(1_709_164_800_000),
        ),
        (
            bson!({"$dateFromParts": {"year": 2024, "month": 14}}),
            date(1_738_368_000_000),
        ),
        (
            bson!({"$dateFromString": {"dateString": "2024-02-29T13:45:30.123Z"}}),
            date(1_709_214_330_123),
        ),
        (
            bson!({"$dateFromString": {"dateString": "bad", "onError": "x"}}),
            Some(bson!("x")),
        ),
        (
            bson!({"$dateToParts": {"date": "$d"}}),
            Some(
                bson!({"year": 2024, "month": 2, "day": 29, "hour": 13, "minute": 45, "second": 30, "millisecond": 123}),
            ),
        ),
        (
            bson!({"$replaceOne": {"input": "$s", "find": "a", "replacement": "z"}}),
            Some(bson!("z-b-a")),
        ),
        (
            bson!({"$replaceAll": {"input": "$s", "find": "a", "replacement": "z"}}),
            Some(bson!("z-b-z")),
        ),
        (
            bson!({"$sortArray": {"input": "$arr", "sortBy": -1}}),
            Some(bson!([3, 2, 1])),
        ),
        (
            bson!({"$zip": {"inputs": [[1, 2], ["a"]], "useLongestLength": true, "defaults": [0, "z"]}}),
            Some(bson!([[1, "a"], [2, "z"]])),
        ),
        (
            bson!({"$firstN": {"n": 2, "input": "$arr"}}),
            Some(bson!([3, 1])),
        ),
        (
            bson!({"$maxN": {"n": 2, "input": "$arr"}}),
            Some(bson!([3, 2])),
        ),
        (
            bson!({"$setField": {"field": "y", "input": "$o", "value": 2}}),
            Some(bson!({"x": 1, "y": 2})),
        ),
        (
            bson!({"$unsetField": {"field": "x", "input": "$o"}}),
            Some(bson!({})),
        ),
    ];
    for (e, want) in cases {
        assert_eq!(
            eval(e.clone(), d.clone()).unwrap_or_else(|err| panic!("{e}: {err}")),
            want,
            "{e}"
        );
    }
    let err = eval(
        bson!({"$dateAdd": {"startDate": "$d", "unit": "fortnight", "amount": 1}}),
        d.clone(),
    )
    .unwrap_err();
    assert_eq!(err.code, 9);
    let err = eval(bson!({"$dateAdd": {"startDate": "$d", "unit": "day"}}), d).unwrap_err();
    assert_eq!(err.message, "Missing 'amount' parameter to $dateAdd");
}

#[test]
fn reduce_bounds_nesting_and_size() {
    // Each step wraps the accumulator: unbounded, the result would nest
    // 100 000 levels deep and overflow the stack when cloned or dropped.
    let deep = bson!({"$reduce": {
        "input": {"$range": [0, 100_000]},
        "initialValue": {},
        "in": {"a": "$$value"},
    }});
    assert_eq!(eval(deep, doc! {}).unwrap_err().code, 15);
    let arrays = bson!({"$reduce": {
        "input": {"$range": [0, 100_000]},
        "initialValue": [],
        "in": ["$$value"],
    }});
    assert_eq!(eval(arrays, doc! {}).unwrap_err().code, 15);
    // Doubling a string each step would need 2^64 bytes.
    let doubling = bson!({"$reduce": {
        "input": {"$range": [0, 64]},
        "initialValue": "ab",
        "in": {"$concat": ["$$value", "$$value"]},
    }});
    assert_eq!(eval(doubling, doc! {}).unwrap_err().code, 292);
    let doubling = bson!({"$reduce": {
        "input": {"$range": [0, 64]},
        "initialValue": [1],
        "in": {"$concatArrays": ["$$value", "$$value"]},
    }});
    assert_eq!(eval(doubling, doc! {}).unwrap_err().code, 292);
    // Shallow, small accumulators are untouched.
    let nested = bson!({"$reduce": {
        "input": [1, 2, 3],
        "initialValue": {},
        "in": {"a": "$$value"},
    }});
    assert_eq!(
        eval(nested, doc! {}).unwrap(),
        Some(bson!({"a": {"a": {"a": {}}}}))
    );
}

#[test]
fn concat_bounds_result_size() {
    let big = "x".repeat(1 << 20);
    let d = doc! {"s": big.as_str(), "arr": (0..(1 << 16)).map(Bson::Int32).collect::<Vec<_>>()};
    let many = |op: &str, arg: &str| {
        let args: Vec<Bson> = (0..200).map(|_| Bson::String(arg.into())).collect();
        bson!({op: args})
    };
    assert_eq!(
        eval(many("$concat", "$s"), d.clone()).unwrap_err().code,
        292
    );
    assert_eq!(
        eval(many("$concatArrays", "$arr"), d.clone())
            .unwrap_err()
            .code,
        292
    );
    let few = bson!({"$strLenBytes": {"$concat": ["$s", "$s"]}});
    assert_eq!(eval(few, d).unwrap(), Some(bson!(2 << 20)));
}

#[test]
fn date_arithmetic_overflow_is_an_error() {
    let (min, max) = (i64::MIN, i64::MAX);
    let cases = [
        bson!({"$dateTrunc": {"date": {"$toDate": 0}, "unit": "year", "binSize": max}}),
        bson!({"$dateTrunc": {"date": {"$toDate": min}, "unit": "millisecond", "binSize": max}}),
        bson!({"$dateTrunc": {"date": {"$toDate": min}, "unit": "hour"}}),
        bson!({"$dateTrunc": {"date": {"$toDate": -1}, "unit": "month", "binSize": max}}),
        bson!({"$dateTrunc": {"date": {"$toDate": min}, "unit": "week", "binSize": max}}),
        bson!({"$dateFromParts": {"year": max}}),
        bson!({"$dateFromParts": {"year": 2000, "month": max}}),
        bson!({"$dateFromParts": {"year": 2000, "day": min}}),
    ];
    for e in cases {
        let err = eval(e.clone(), doc! {}).unwrap_err();
        assert_eq!(err.code, QueryError::BAD_VALUE, "{e}: {err}");
        assert!(
            err.message.contains("out of the supported range"),
            "{e}: {err}"
        );
    }
    // In range, the parts still carry over into the larger units.
    assert_eq!(
        eval(
            bson!({"$dateFromParts": {"year": 2000, "month": 13, "day": 0}}),
            doc! {}
        )
        .unwrap(),
        Some(Bson::DateTime(bson::DateTime::from_millis(978_220_800_000)))
    );
}

#[test]
fn element_variables_shadow_and_restore() {
    let d = doc! {"arr": [1, 2, 3]};
    let cases: Vec<(Bson, Bson)> = vec![
        // `as` shadows an outer variable of the same name only inside.
        (
            bson!({"$let": {"vars": {"x": 100}, "in": [
                {"$map": {"input": "$arr", "as": "x", "in": {"$add": ["$$x", 10]}}},
                "$$x",
            ]}}),
            bson!([[11, 12, 13], 100]),
        ),
        // Nested: the inner `$$this` of `$map` inside `$reduce`'s `in`.
        (
            bson!({"$reduce": {"input": "$arr", "initialValue": [], "in": {"$concatArrays": [
                "$$value",
                {"$map": {"input": [10], "in": {"$add": ["$$this", 1]}}},
                ["$$this"],
            ]}}}),
            bson!([11, 1, 11, 2, 11, 3]),
        ),
        (
            bson!({"$filter": {"input": "$arr", "as": "v", "cond": {"$in": ["$$v", {"$map": {"input": "$arr", "as": "v", "in": {"$multiply": ["$$v", 1]}}}]}, "limit": 2}}),
            bson!([1, 2]),
        ),
        // `as: "CURRENT"` rebinds `$$CURRENT`, so field paths read the element.
        (
            bson!({"$map": {"input": [{"a": 1}, {"a": 2}], "as": "CURRENT", "in": "$a"}}),
            bson!([1, 2]),
        ),
    ];
    for (e, want) in cases {
        assert_eq!(
            eval(e.clone(), d.clone()).unwrap_or_else(|err| panic!("{e}: {err}")),
            Some(want),
            "{e}"
        );
    }
}

#[test]
fn constant_regexes_are_compiled_when_parsed() {
    let d = doc! {"s": "Hello World", "n": null, "re": "o"};
    let compiled = |e: Bson| {
        matches!(
            Expr::parse(&e).unwrap(),
            Expr::Special(s) if matches!(*s, Special::Regex { .. })
        )
    };
    let cases: Vec<(Bson, bool, Option<Bson>)> = vec![
        (
            bson!({"$regexMatch": {"input": "$s", "regex": "world", "options": "i"}}),
            true,
            Some(bson!(true)),
        ),
        (
            bson!({"$regexMatch": {"input": "$s", "regex": "world"}}),
            true,
            Some(bson!(false)),
        ),
        (
            bson!({"$regexMatch": {"input": "$s", "regex": Bson::RegularExpression(bson::Regex { pattern: "^h".into(), options: "i".into() })}}),
            true,
            Some(bson!(true)),
        ),
        (
            bson!({"$regexMatch": {"input": "$n", "regex": "x"}}),
            true,
            Some(bson!(false)),
        ),
        (
            bson!({"$regexFind": {"input": "$missing", "regex": "x"}}),
            true,
            Some(Bson::Null),
        ),
        (
            bson!({"$regexFind": {"input": "$s", "regex": "(o)r"}}),
            true,
            Some(bson!({"match": "or", "idx": 7, "captures": ["o"]})),
        ),
        (
            bson!({"$regexFindAll": {"input": "$s", "regex": "o"}}),
            true,
            Some(bson!([
                {"match": "o", "idx": 4, "captures": []},
                {"match": "o", "idx": 7, "captures": []},
            ])),
        ),
        // A regex from the document is compiled per evaluation, as before.
        (
            bson!({"$regexMatch": {"input": "$s", "regex": "$re"}}),
            false,
            Some(bson!(true)),
        ),
    ];
    for (e, precompiled, want) in cases {
        assert_eq!(compiled(e.clone()), precompiled, "{e}");
        assert_eq!(eval(e.clone(), d.clone()).unwrap(), want, "{e}");
    }
    // A constant that does not compile fails when evaluated on a string, as before.
    let bad = bson!({"$regexMatch": {"input": "$s", "regex": "(a"}});
    assert!(!compiled(bad.clone()));
    assert_eq!(eval(bad.clone(), d.clone()).unwrap_err().code, 51091);
    assert_eq!(eval(bad, doc! {}).unwrap(), Some(bson!(false)));
    let err = eval(bson!({"$regexMatch": {"input": 5, "regex": "x"}}), d).unwrap_err();
    assert_eq!(
        err,
        QueryError::new(
            51104,
            "$regexMatch needs 'input' to be of type string, found int"
        )
    );
}
