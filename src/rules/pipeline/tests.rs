use super::*;
use bson::doc;

fn prefix_for(coll: &str) -> Result<Vec<Document>, ApiError> {
    match coll {
        "open" => Ok(Vec::new()),
        "hidden" => Ok(vec![
            doc! {"$match": {"ok": true}},
            doc! {"$project": {"s": 0}},
        ]),
        "people" => Ok(vec![
            doc! {"$match": {"owner": "u"}},
            doc! {"$project": {"salary": 0, "level": 0}},
        ]),
        "cards" => Ok(vec![
            doc! {"$match": {"a": 1}},
            doc! {"$project": {"name": 1, "next": 1, "rank": 1}},
            doc! {"$project": {"_id": 0, "rank": false}},
        ]),
        "filtered" => Ok(vec![doc! {"$match": {"a": 1}}]),
        "nested" => Ok(vec![doc! {"$project": {"a.b": 0}}]),
        "computed" => Ok(vec![doc! {"$project": {"x": "$y"}}]),
        _ => Err(forbidden(format!("no rule for {coll}"))),
    }
}

#[test]
fn joins_get_the_joined_collections_rules() {
    let out = rewrite(
        vec![
            doc! {"$lookup": {"from": "hidden", "localField": "a", "foreignField": "b", "as": "j"}},
            doc! {"$lookup": {"from": "open", "localField": "a", "foreignField": "b", "as": "k"}},
            doc! {"$unionWith": "hidden"},
            doc! {"$facet": {"x": [{"$unionWith": {"coll": "hidden", "pipeline": [{"$limit": 1}]}}]}},
        ],
        &prefix_for,
        false,
    )
    .unwrap();
    assert_eq!(
        out,
        vec![
            doc! {"$lookup": {"from": "hidden", "localField": "a", "foreignField": "b", "as": "j",
            "pipeline": [{"$match": {"ok": true}}, {"$project": {"s": 0}}]}},
            doc! {"$lookup": {"from": "open", "localField": "a", "foreignField": "b", "as": "k"}},
            doc! {"$unionWith": {"coll": "hidden",
            "pipeline": [{"$match": {"ok": true}}, {"$project": {"s": 0}}]}},
            doc! {"$facet": {"x": [{"$unionWith": {"coll": "hidden", "pipeline": [
            {"$match": {"ok": true}}, {"$project": {"s": 0}}, {"$limit": 1}]}}]}},
        ]
    );
}

#[test]
fn lookup_on_a_hidden_foreign_field_is_refused() {
    let lookup = |field: &str| {
        rewrite(
            vec![doc! {"$lookup": {"from": "hidden", "localField": "a",
            "foreignField": field, "as": "j"}}],
            &prefix_for,
            false,
        )
    };
    assert_eq!(
        lookup("s").unwrap_err().message(),
        "$lookup not permitted: field 's' of collection 'hidden' is not readable"
    );
    assert!(lookup("s.t").is_err());
    assert!(lookup("b").is_ok());
    let keeps =
        |projection: Document, path: &str| projections_keep(&[doc! {"$project": projection}], path);
    assert!(keeps(doc! {"name": 1}, "name"));
    assert!(keeps(doc! {"name": 1}, "name.first"));
    assert!(keeps(doc! {"name": 1}, "_id"));
    assert!(!keeps(doc! {"name": 1, "_id": 0}, "_id"));
    assert!(!keeps(doc! {"name.first": 1}, "name"));
    assert!(!keeps(doc! {"name": 1}, "salary"));
    assert!(!keeps(doc! {"a.b": 0}, "a"));
    assert!(keeps(doc! {"a.b": 0}, "a.c"));
    assert!(!keeps(doc! {"x": "$y"}, "x"));
}

#[test]
fn refusals_at_any_depth() {
    let err = |pipeline: Vec<Document>| rewrite(pipeline, &prefix_for, false).unwrap_err();
    assert_eq!(
        err(vec![doc! {"$unionWith": "secret"}]).message(),
        "no rule for secret"
    );
    assert!(err(vec![
        doc! {"$facet": {"a": [{"$lookup": {"from": "secret", "as": "x", "pipeline": []}}]}}
    ])
    .message()
    .contains("secret"));
    assert!(err(vec![
        doc! {"$lookup": {"from": "open", "as": "x", "pipeline": [{"$out": "y"}]}}
    ])
    .message()
    .starts_with("$out not permitted"));
    assert!(err(vec![
        doc! {"$lookup": {"from": {"db": "other", "coll": "c"}, "as": "x", "pipeline": []}}
    ])
    .message()
    .contains("same database"));
    assert_eq!(
        err(vec![doc! {"$facet": {"a": 1}}]).status(),
        http::StatusCode::BAD_REQUEST
    );
    let mut deep = doc! {"$match": {}};
    for _ in 0..20 {
        deep = doc! {"$facet": {"a": [deep]}};
    }
    assert!(err(vec![deep]).message().contains("too deeply"));
}

/// The stage rebuilding every document of `chain` with `cond` on each
/// field `k`.
fn strip(cond: Document) -> Document {
    doc! {"$set": {"chain": {"$map": {"input": "$chain", "as": "node", "in": {
    "$arrayToObject": {"$filter": {
        "input": {"$objectToArray": "$$node"}, "as": "field", "cond": cond}}}}}}}
}

#[test]
fn graph_lookup_searches_readable_documents_and_strips_them() {
    let out = rewrite(
        vec![
            doc! {"$graphLookup": {"from": "people", "startWith": "$boss",
            "connectFromField": "boss", "connectToField": "name", "as": "chain",
            "depthField": "level", "restrictSearchWithMatch": {"kind": "x"}, "maxDepth": 3}},
            doc! {"$limit": 1},
        ],
        &prefix_for,
        false,
    )
    .unwrap();
    assert_eq!(
        out,
        vec![
            doc! {"$graphLookup": {"from": "people", "startWith": "$boss",
            "connectFromField": "boss", "connectToField": "name", "as": "chain",
            "depthField": "level",
            "restrictSearchWithMatch": {"$and": [{"kind": "x"}, {"owner": "u"}]},
            "maxDepth": 3}},
            // `level` is the depth the search wrote: not hidden.
            strip(doc! {"$not": [{"$in": ["$$field.k", {"$literal": ["salary"]}]}]}),
            doc! {"$limit": 1},
        ]
    );

    // Inclusion projections keep `_id` (unless excluded) and the depth.
    let out = rewrite(
        vec![doc! {"$graphLookup": {"from": "cards", "startWith": "$x",
        "connectFromField": "next", "connectToField": "name.first", "as": "chain",
        "depthField": "d", "restrictSearchWithMatch": {}}}],
        &prefix_for,
        false,
    )
    .unwrap();
    assert_eq!(
        out,
        vec![
            doc! {"$graphLookup": {"from": "cards", "startWith": "$x",
            "connectFromField": "next", "connectToField": "name.first", "as": "chain",
            "depthField": "d", "restrictSearchWithMatch": {"a": 1}}},
            strip(doc! {"$in": ["$$field.k",
            {"$literal": ["_id", "name", "next", "rank", "d"]}]}),
            strip(doc! {"$not": [{"$in": ["$$field.k", {"$literal": ["_id", "rank"]}]}]}),
        ]
    );

    // Nothing hidden: the restriction only; nothing filtered: unchanged;
    // at any depth.
    let stage = |from: &str| {
        doc! {"$graphLookup": {"from": from, "startWith": "$x",
        "connectFromField": "a", "connectToField": "b", "as": "g"}}
    };
    let mut restricted = stage("filtered");
    restricted
        .get_document_mut("$graphLookup")
        .unwrap()
        .insert("restrictSearchWithMatch", doc! {"a": 1});
    let out = rewrite(
        vec![doc! {"$facet": {"f": [stage("filtered"), stage("open")]}}],
        &prefix_for,
        false,
    )
    .unwrap();
    assert_eq!(
        out,
        vec![doc! {"$facet": {"f": [restricted, stage("open")]}}]
    );
}

#[test]
fn stages_follow_the_table_at_any_depth() {
    let refused = |pipeline: Vec<Document>, unrestricted: bool| {
        let e = rewrite(pipeline, &prefix_for, unrestricted).unwrap_err();
        assert_eq!(e.status(), http::StatusCode::FORBIDDEN);
        e.message().to_owned()
    };
    let unknown =
        "$fooBar not permitted in aggregation pipelines: the rules do not know this stage";
    for pipeline in [
        vec![doc! {"$fooBar": {}}],
        vec![doc! {"$match": {}, "$fooBar": {}}],
        vec![doc! {"$facet": {"f": [{"$fooBar": {}}]}}],
        vec![doc! {"$lookup": {"from": "open", "as": "j", "pipeline": [{"$fooBar": {}}]}}],
        vec![doc! {"$unionWith": {"coll": "hidden", "pipeline": [{"$fooBar": {}}]}}],
    ] {
        assert_eq!(refused(pipeline, true), unknown);
    }
    assert_eq!(
        refused(vec![doc! {"$queryStats": {}}], true),
        "$queryStats not permitted in aggregation pipelines"
    );
    assert_eq!(
        refused(vec![doc! {"$facet": {"f": [{"$merge": "x"}]}}], true),
        "$merge not permitted in aggregation pipelines"
    );
    // Stages reading the collection itself: first, and unrestricted, only.
    assert_eq!(
        refused(vec![doc! {"$search": {}}], false),
        "$search not permitted: the rules restrict this collection's documents or fields"
    );
    assert_eq!(
        refused(vec![doc! {"$match": {}}, doc! {"$collStats": {}}], true),
        "$collStats not permitted: only as the first stage of a pipeline"
    );
    assert_eq!(
        refused(
            vec![doc! {"$unionWith": {"coll": "filtered", "pipeline": [{"$vectorSearch": {}}]}}],
            true
        ),
        "$vectorSearch not permitted: the rules restrict this collection's documents or fields"
    );
    assert_eq!(
        refused(vec![doc! {"$facet": {"f": [{"$geoNear": {}}]}}], true),
        "$geoNear not permitted: the rules restrict this collection's documents or fields"
    );
    let open = vec![
        doc! {"$search": {"text": {}}},
        doc! {"$unionWith": {"coll": "open", "pipeline": [{"$searchMeta": {}}]}},
    ];
    assert_eq!(rewrite(open.clone(), &prefix_for, true).unwrap(), open);
}

#[test]
fn graph_lookup_refusals() {
    let err = |stage: Document| rewrite(vec![stage], &prefix_for, false).unwrap_err();
    let people = |extra: Document| {
        let mut spec = doc! {"from": "people", "startWith": "$boss",
        "connectFromField": "boss", "connectToField": "name", "as": "chain"};
        spec.extend(extra);
        doc! {"$graphLookup": spec}
    };
    let denied = |stage: Document, message: &str| {
        let e = err(stage);
        assert_eq!(
            (e.status(), e.message()),
            (http::StatusCode::FORBIDDEN, message)
        );
    };
    let hidden = |path: &str, coll: &str| {
        format!("$graphLookup not permitted: field '{path}' of collection '{coll}' is not readable")
    };
    denied(
        people(doc! {"connectFromField": "salary"}),
        &hidden("salary", "people"),
    );
    denied(
        people(doc! {"connectToField": "level.x"}),
        &hidden("level.x", "people"),
    );
    denied(
        people(doc! {"restrictSearchWithMatch": {"$or": [{"a": 1}, {"salary": {"$gt": 5}}]}}),
        &hidden("salary", "people"),
    );
    denied(
        people(doc! {"restrictSearchWithMatch": {"$expr": {"$gt": ["$salary", 5]}}}),
        &hidden("salary", "people"),
    );
    denied(
        people(doc! {"restrictSearchWithMatch": {"$jsonSchema": {}}}),
        "$graphLookup not permitted: restrictSearchWithMatch reads the whole document \
         while the rules of collection 'people' hide fields",
    );
    denied(
        people(doc! {"as": "a.b"}),
        "$graphLookup not permitted: 'as' must be a top-level field name when the rules \
         of collection 'people' hide fields",
    );
    denied(
        doc! {"$graphLookup": {"from": "people", "as": "g"}},
        "$graphLookup not permitted: 'connectFromField' must name a field of collection 'people'",
    );
    denied(
        doc! {"$graphLookup": {"from": "cards", "startWith": "$x",
        "connectFromField": "rank", "connectToField": "name", "as": "g"}},
        &hidden("rank", "cards"),
    );
    denied(
        doc! {"$graphLookup": {"from": "cards", "startWith": "$x",
        "connectFromField": "next", "connectToField": "_id", "as": "g"}},
        &hidden("_id", "cards"),
    );
    denied(
        doc! {"$graphLookup": {"from": "nested", "startWith": "$x",
        "connectFromField": "c", "connectToField": "d", "as": "g"}},
        "$graphLookup not permitted: the read permissions of field 'a.b' of collection \
         'nested' cannot be applied to the documents it returns",
    );
    denied(
        doc! {"$graphLookup": {"from": "computed", "startWith": "$x",
        "connectFromField": "c", "connectToField": "d", "as": "g"}},
        "$graphLookup not permitted: the read rules of collection 'computed' cannot be \
         applied to the documents it returns",
    );
    denied(
        doc! {"$graphLookup": {"from": {"db": "other", "coll": "people"}, "startWith": "$x",
        "connectFromField": "c", "connectToField": "d", "as": "g"}},
        "$graphLookup not permitted: only collections of the same database can be joined",
    );
    denied(
        doc! {"$lookup": {"from": "open", "as": "x", "pipeline": [
        {"$graphLookup": {"from": "secret", "startWith": "$x",
        "connectFromField": "c", "connectToField": "d", "as": "g"}}]}},
        "no rule for secret",
    );
    for stage in [
        doc! {"$graphLookup": 1},
        doc! {"$graphLookup": {"startWith": "$x", "as": "g"}},
        people(doc! {"restrictSearchWithMatch": 1}),
    ] {
        assert_eq!(err(stage).status(), http::StatusCode::BAD_REQUEST);
    }
}
