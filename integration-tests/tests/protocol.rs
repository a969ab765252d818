//! The Data API protocol over real HTTP against the standalone server, on the
//! embedded engine and on the driver backend against the wire-protocol peer.

use integration_tests::{body, raw, standalone, unique_db, BackendKind, TestServer, KEY};
use serde_json::{json, Value};

/// Runs each scenario on both backends, and on the embedded engine's durable mode.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let server = super::standalone(super::BackendKind::Memory).await.unwrap();
                    super::$name(&server).await;
                }
            )*
        }
        mod peer {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(server) = super::standalone(super::BackendKind::Peer).await {
                        super::$name(&server).await;
                    }
                }
            )*
        }
        mod durable {
            $(
                #[tokio::test]
                async fn $name() {
                    let server = super::standalone(super::BackendKind::Durable).await.unwrap();
                    super::$name(&server).await;
                }
            )*
        }
    };
}

on_both_backends!(
    crud_round_trip,
    find_options,
    updates_and_upserts,
    aggregate_groups,
    ejson_in_and_out,
    json_mode_renders_every_type,
    request_errors_name_the_field,
    database_errors_are_400,
    access_levels,
    authentication,
    getting_started_requests_as_literal_bytes,
);

fn is_hex24(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == 24 && s.chars().all(|c| c.is_ascii_hexdigit()))
}

async fn crud_round_trip(server: &TestServer) {
    let db = unique_db("crud");
    let inserted = server
        .call(
            "insertOne",
            body(
                &db,
                "todo",
                json!({"document": {"text": "Do the dishes", "done": false}}),
            ),
        )
        .await;
    assert_eq!(inserted.status, 201, "{}", inserted.text);
    let id = inserted.json()["insertedId"].clone();
    assert!(is_hex24(&id), "{id}");
    assert_eq!(inserted.header("content-type"), Some("application/json"));

    let found = server
        .ok(
            "findOne",
            body(&db, "todo", json!({"filter": {"_id": {"$oid": id}}})),
        )
        .await;
    assert_eq!(
        found,
        json!({"document": {"_id": id, "text": "Do the dishes", "done": false}})
    );
    // Key order follows the stored document.
    let text = server
        .call(
            "findOne",
            body(&db, "todo", json!({"filter": {"_id": {"$oid": id}}})),
        )
        .await
        .text;
    assert_eq!(
        text,
        format!(r#"{{"document":{{"_id":{id},"text":"Do the dishes","done":false}}}}"#)
    );

    let many = server
        .call(
            "insertMany",
            body(
                &db,
                "todo",
                json!({"documents": [{"_id": 1, "n": 1}, {"_id": 2, "n": 2}, {"_id": 3, "n": 3}]}),
            ),
        )
        .await;
    assert_eq!(many.status, 201);
    assert_eq!(many.json(), json!({"insertedIds": [1, 2, 3]}));

    let none = server
        .ok("findOne", body(&db, "todo", json!({"filter": {"n": 99}})))
        .await;
    assert_eq!(none, json!({"document": null}));

    let deleted = server
        .ok(
            "deleteOne",
            body(&db, "todo", json!({"filter": {"n": {"$gte": 2}}})),
        )
        .await;
    assert_eq!(deleted, json!({"deletedCount": 1}));
    let deleted = server
        .ok("deleteMany", body(&db, "todo", json!({"filter": {}})))
        .await;
    assert_eq!(deleted, json!({"deletedCount": 3}));
    let empty = server.ok("find", body(&db, "todo", json!({}))).await;
    assert_eq!(empty, json!({"documents": []}));
}

async fn find_options(server: &TestServer) {
    let db = unique_db("find");
    let docs: Vec<Value> = (1..=12)
        .map(|i| json!({"_id": i, "group": i % 3, "score": (i * 7) % 10, "tags": ["a", format!("t{i}")]}))
        .collect();
    server
        .ok("insertMany", body(&db, "c", json!({"documents": docs})))
        .await;
    let page = server
        .ok(
            "find",
            body(
                &db,
                "c",
                json!({
                    "filter": {"group": {"$in": [0, 1]}},
                    "projection": {"score": 1},
                    "sort": {"score": -1, "_id": 1},
                    "skip": 1,
                    "limit": 3
                }),
            ),
        )
        .await;
    assert_eq!(page, expected_page());
    let tagged = server
        .ok(
            "find",
            body(
                &db,
                "c",
                json!({"filter": {"tags": "t5"}, "projection": {"_id": 1}}),
            ),
        )
        .await;
    assert_eq!(tagged, json!({"documents": [{"_id": 5}]}));
    let excluded = server
        .ok(
            "findOne",
            body(
                &db,
                "c",
                json!({"filter": {"_id": 2}, "projection": {"tags": 0, "group": 0}}),
            ),
        )
        .await;
    assert_eq!(excluded, json!({"document": {"_id": 2, "score": 4}}));
    // Default filter, default limit.
    let all = server.ok("find", body(&db, "c", json!({}))).await;
    assert_eq!(all["documents"].as_array().map(Vec::len), Some(12));
    let limited = server.ok("find", body(&db, "c", json!({"limit": 2}))).await;
    assert_eq!(limited["documents"].as_array().map(Vec::len), Some(2));
}

/// Documents with group 0 or 1 sorted by score descending then _id, skip 1, take 3.
fn expected_page() -> Value {
    let mut rows: Vec<(i64, i64)> = (1..=12i64)
        .filter(|i| i % 3 != 2)
        .map(|i| (i, (i * 7) % 10))
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let docs: Vec<Value> = rows
        .into_iter()
        .skip(1)
        .take(3)
        .map(|(id, score)| json!({"_id": id, "score": score}))
        .collect();
    json!({ "documents": docs })
}

async fn updates_and_upserts(server: &TestServer) {
    let db = unique_db("update");
    server
        .ok("insertMany", body(&db, "c", json!({"documents": [{"_id": 1, "n": 1, "tags": []}, {"_id": 2, "n": 2, "tags": ["x"]}]})))
        .await;
    let one = server
        .ok("updateOne", body(&db, "c", json!({"filter": {"_id": 1}, "update": {"$set": {"status": "done"}, "$inc": {"n": 10}, "$push": {"tags": "new"}}})))
        .await;
    assert_eq!(one, json!({"matchedCount": 1, "modifiedCount": 1}));
    let doc = server
        .ok("findOne", body(&db, "c", json!({"filter": {"_id": 1}})))
        .await;
    assert_eq!(
        doc,
        json!({"document": {"_id": 1, "n": 11, "tags": ["new"], "status": "done"}})
    );
    let same = server
        .ok(
            "updateOne",
            body(
                &db,
                "c",
                json!({"filter": {"_id": 1}, "update": {"$set": {"status": "done"}}}),
            ),
        )
        .await;
    assert_eq!(same, json!({"matchedCount": 1, "modifiedCount": 0}));
    let many = server
        .ok(
            "updateMany",
            body(
                &db,
                "c",
                json!({"filter": {}, "update": {"$unset": {"tags": ""}}}),
            ),
        )
        .await;
    assert_eq!(many, json!({"matchedCount": 2, "modifiedCount": 2}));
    let upsert = server
        .ok("updateOne", body(&db, "c", json!({"filter": {"_id": 7, "kind": "new"}, "update": {"$set": {"n": 70}}, "upsert": true})))
        .await;
    assert_eq!(
        upsert,
        json!({"matchedCount": 0, "modifiedCount": 0, "upsertedId": 7})
    );
    let upserted = server
        .ok("findOne", body(&db, "c", json!({"filter": {"_id": 7}})))
        .await;
    assert_eq!(
        upserted,
        json!({"document": {"_id": 7, "kind": "new", "n": 70}})
    );
    let generated = server
        .ok(
            "updateOne",
            body(
                &db,
                "c",
                json!({"filter": {"kind": "other"}, "update": {"$set": {"n": 1}}, "upsert": true}),
            ),
        )
        .await;
    assert!(is_hex24(&generated["upsertedId"]), "{generated}");
    let replaced = server
        .ok(
            "replaceOne",
            body(
                &db,
                "c",
                json!({"filter": {"_id": 2}, "replacement": {"whole": "new"}}),
            ),
        )
        .await;
    assert_eq!(replaced, json!({"matchedCount": 1, "modifiedCount": 1}));
    let doc = server
        .ok("findOne", body(&db, "c", json!({"filter": {"_id": 2}})))
        .await;
    assert_eq!(doc, json!({"document": {"_id": 2, "whole": "new"}}));
    let missing = server
        .ok(
            "replaceOne",
            body(
                &db,
                "c",
                json!({"filter": {"_id": 99}, "replacement": {"x": 1}}),
            ),
        )
        .await;
    assert_eq!(missing, json!({"matchedCount": 0, "modifiedCount": 0}));
    let upsert_replace = server
        .ok(
            "replaceOne",
            body(
                &db,
                "c",
                json!({"filter": {"_id": 99}, "replacement": {"x": 1}, "upsert": true}),
            ),
        )
        .await;
    assert_eq!(
        upsert_replace,
        json!({"matchedCount": 0, "modifiedCount": 0, "upsertedId": 99})
    );
}

async fn aggregate_groups(server: &TestServer) {
    let db = unique_db("agg");
    server
        .ok(
            "insertMany",
            body(
                &db,
                "sales",
                json!({"documents": [
                    {"_id": 1, "item": "a", "qty": 2, "price": 10},
                    {"_id": 2, "item": "b", "qty": 1, "price": 20},
                    {"_id": 3, "item": "a", "qty": 5, "price": 10},
                    {"_id": 4, "item": "c", "qty": 1, "price": 5, "tags": ["x", "y"]}
                ]}),
            ),
        )
        .await;
    let grouped = server
        .ok(
            "aggregate",
            body(
                &db,
                "sales",
                json!({"pipeline": [
                    {"$match": {"qty": {"$gte": 1}}},
                    {"$group": {"_id": "$item", "total": {"$sum": "$qty"}, "count": {"$sum": 1}}},
                    {"$sort": {"_id": 1}}
                ]}),
            ),
        )
        .await;
    assert_eq!(
        grouped,
        json!({"documents": [
            {"_id": "a", "total": 7, "count": 2},
            {"_id": "b", "total": 1, "count": 1},
            {"_id": "c", "total": 1, "count": 1}
        ]})
    );
    let counted = server
        .ok(
            "aggregate",
            body(
                &db,
                "sales",
                json!({"pipeline": [{"$match": {"item": "a"}}, {"$count": "n"}]}),
            ),
        )
        .await;
    assert_eq!(counted, json!({"documents": [{"n": 2}]}));
    let unwound = server
        .ok("aggregate", body(&db, "sales", json!({"pipeline": [
            {"$unwind": "$tags"}, {"$project": {"_id": 0, "tags": 1}}, {"$skip": 1}, {"$limit": 5}
        ]})))
        .await;
    assert_eq!(unwound, json!({"documents": [{"tags": "y"}]}));
}

async fn ejson_in_and_out(server: &TestServer) {
    let db = unique_db("ejson");
    let document = r#"{"_id": {"$oid": "64224f3cd79f54ad342dd9b1"},
        "when": {"$date": {"$numberLong": "1641954803067"}},
        "relaxedWhen": {"$date": "2022-01-12T02:33:23.067Z"},
        "price": {"$numberDecimal": "9823.1297"},
        "big": {"$numberLong": "8047923148"},
        "small": 2147483647,
        "ratio": {"$numberDouble": "10.5"},
        "bin": {"$binary": {"base64": "AQID", "subType": "05"}}}"#;
    let inserted = server
        .call_with(
            "insertOne",
            &format!(r#"{{"dataSource":"mongodb-atlas","database":"{db}","collection":"types","document":{document}}}"#),
            &[("Content-Type", "application/ejson"), ("Accept", "application/ejson")],
        )
        .await;
    assert_eq!(inserted.status, 201, "{}", inserted.text);
    assert_eq!(
        inserted.text,
        r#"{"insertedId":{"$oid":"64224f3cd79f54ad342dd9b1"}}"#
    );
    assert_eq!(inserted.header("content-type"), Some("application/ejson"));
    let canonical = server
        .call_with(
            "findOne",
            &format!(r#"{{"dataSource":"mongodb-atlas","database":"{db}","collection":"types","filter":{{}}}}"#),
            &[("Accept", "application/ejson")],
        )
        .await;
    assert_eq!(
        canonical.text,
        concat!(
            r#"{"document":{"_id":{"$oid":"64224f3cd79f54ad342dd9b1"},"#,
            r#""when":{"$date":{"$numberLong":"1641954803067"}},"#,
            r#""relaxedWhen":{"$date":{"$numberLong":"1641954803067"}},"#,
            r#""price":{"$numberDecimal":"9823.1297"},"#,
            r#""big":{"$numberLong":"8047923148"},"#,
            r#""small":{"$numberInt":"2147483647"},"#,
            r#""ratio":{"$numberDouble":"10.5"},"#,
            r#""bin":{"$binary":{"base64":"AQID","subType":"05"}}}}"#
        )
    );
    let plain = server
        .call_with(
            "findOne",
            &format!(r#"{{"dataSource":"mongodb-atlas","database":"{db}","collection":"types"}}"#),
            &[("Accept", "application/json")],
        )
        .await;
    assert_eq!(
        plain.text,
        concat!(
            r#"{"document":{"_id":"64224f3cd79f54ad342dd9b1","#,
            r#""when":"2022-01-12T02:33:23.067Z","relaxedWhen":"2022-01-12T02:33:23.067Z","#,
            r#""price":"9823.1297","big":8047923148,"small":2147483647,"ratio":10.5,"#,
            r#""bin":{"Subtype":5,"Data":"AQID"}}}"#
        )
    );
    // Counts are canonical in EJSON mode.
    let deleted = server
        .call_with(
            "deleteMany",
            &format!(r#"{{"dataSource":"mongodb-atlas","database":"{db}","collection":"types","filter":{{}}}}"#),
            &[("Accept", "application/ejson")],
        )
        .await;
    assert_eq!(deleted.text, r#"{"deletedCount":{"$numberInt":"1"}}"#);
}

async fn json_mode_renders_every_type(server: &TestServer) {
    let db = unique_db("types");
    let document = r#"{"_id": 1,
        "re": {"$regularExpression": {"pattern": "^H", "options": "i"}},
        "ts": {"$timestamp": {"t": 1565545664, "i": 1}},
        "min": {"$minKey": 1}, "max": {"$maxKey": 1},
        "nested": {"a": [1, {"b": null}]}}"#;
    let inserted = server
        .call_with(
            "insertOne",
            &format!(r#"{{"dataSource":"mongodb-atlas","database":"{db}","collection":"t","document":{document}}}"#),
            &[("Content-Type", "application/ejson")],
        )
        .await;
    assert_eq!(inserted.status, 201, "{}", inserted.text);
    let plain = server.ok("findOne", body(&db, "t", json!({}))).await;
    assert_eq!(
        plain,
        json!({"document": {"_id": 1, "re": {"Pattern": "^H", "Options": "i"},
            "ts": {"T": 1565545664, "I": 1}, "min": {}, "max": {}, "nested": {"a": [1, {"b": null}]}}})
    );
}

async fn request_errors_name_the_field(server: &TestServer) {
    let db = unique_db("errors");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "find",
            json!({"database": db, "collection": "c"}),
            "missing required field 'dataSource'",
        ),
        (
            "find",
            json!({"dataSource": "mongodb-atlas", "collection": "c"}),
            "missing required field 'database'",
        ),
        (
            "find",
            body(&db, "c", json!({"projection": null})),
            "'projection' must not be null: leave it out to use the default",
        ),
        (
            "find",
            body(&db, "c", json!({"limit": "ten"})),
            "'limit' must be a whole number, got string",
        ),
        (
            "find",
            body(&db, "c", json!({"filter": [1]})),
            "'filter' must be an object, got array",
        ),
        (
            "updateOne",
            body(
                &db,
                "c",
                json!({"filter": {}, "update": {"$set": {"a": 1}}, "upsert": null}),
            ),
            "'upsert' must not be null: leave it out to use the default",
        ),
        (
            "insertOne",
            body(&db, "c", json!({})),
            "missing required field 'document'",
        ),
        (
            "insertOne",
            body(&db, "c", json!({"document": [1, 2]})),
            "'document' must be an object, got array",
        ),
        (
            "insertMany",
            body(&db, "c", json!({"documents": []})),
            "'documents' must contain at least one document",
        ),
        (
            "insertMany",
            body(&db, "c", json!({"documents": {"a": 1}})),
            "'documents' must be an array of objects, got object",
        ),
        (
            "updateOne",
            body(&db, "c", json!({"filter": {}})),
            "missing required field 'update'",
        ),
        (
            "replaceOne",
            body(&db, "c", json!({"filter": {}, "replacement": "x"})),
            "'replacement' must be an object, got string",
        ),
        (
            "deleteOne",
            body(&db, "c", json!({})),
            "missing required field 'filter'",
        ),
        (
            "aggregate",
            body(&db, "c", json!({"pipeline": {"$match": {}}})),
            "'pipeline' must be an array of stage objects, got object",
        ),
    ];
    for (action, request, message) in cases {
        let answer = server.call(action, request.clone()).await;
        assert_eq!(answer.status, 400, "{action} {request}: {}", answer.text);
        let error = answer.json();
        assert_eq!(error["error"], message, "{action} {request}");
        assert!(error["error_code"].is_string() && error["link"].is_string());
    }
    let not_json = server
        .call_with("find", "{not json", &[("Content-Type", "application/json")])
        .await;
    assert_eq!(not_json.status, 400);
    assert_eq!(not_json.json()["error_code"], "InvalidParameter");
    let unknown_source = server
        .call(
            "find",
            json!({"dataSource": "nope", "database": db, "collection": "c"}),
        )
        .await;
    assert_eq!(unknown_source.status, 400);
    assert_eq!(
        unknown_source.json()["error"],
        "The data source 'nope' is disabled or does not exist"
    );
    // Unknown top-level fields are ignored.
    let extra = server
        .call("find", body(&db, "c", json!({"somethingElse": true})))
        .await;
    assert_eq!(extra.status, 200);
    // Routing.
    let unknown_action = server.call("findAll", body(&db, "c", json!({}))).await;
    assert_eq!(unknown_action.status, 404);
    let get = server
        .client
        .get(format!("{}/action/find", server.base))
        .header("apiKey", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    let other_app = server
        .client
        .post(server.base.replace("data-itest", "data-other") + "/action/find")
        .header("apiKey", KEY)
        .body(body(&db, "c", json!({})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(other_app.status().as_u16(), 404);
    let error: Value = serde_json::from_str(&other_app.text().await.unwrap()).unwrap();
    assert_eq!(
        error["error"],
        "cannot find app using Client App ID 'data-other'"
    );
    let beta = server
        .client
        .post(server.base.replace("/v1", "/beta") + "/action/find")
        .header("api-key", KEY)
        .body(body(&db, "c", json!({})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(beta.status().as_u16(), 200);
}

async fn database_errors_are_400(server: &TestServer) {
    let db = unique_db("dberr");
    server
        .ok("insertOne", body(&db, "c", json!({"document": {"_id": 1}})))
        .await;
    let duplicate = server
        .call("insertOne", body(&db, "c", json!({"document": {"_id": 1}})))
        .await;
    assert_eq!(duplicate.status, 400, "{}", duplicate.text);
    let message = duplicate.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("E11000 duplicate key error"), "{message}");
    let partial = server
        .call(
            "insertMany",
            body(
                &db,
                "c",
                json!({"documents": [{"_id": 2}, {"_id": 1}, {"_id": 3}]}),
            ),
        )
        .await;
    assert_eq!(partial.status, 400);
    assert!(
        partial.text.contains("1 of 3 documents were inserted"),
        "{}",
        partial.text
    );
    let count = server.ok("find", body(&db, "c", json!({}))).await;
    assert_eq!(
        count,
        json!({"documents": [{"_id": 1}, {"_id": 2}]}),
        "ordered insert keeps the documents before the failure"
    );
    let bad_operator = server
        .call(
            "find",
            body(&db, "c", json!({"filter": {"a": {"$bogus": 1}}})),
        )
        .await;
    assert_eq!(bad_operator.status, 400);
    assert!(
        bad_operator.text.contains("unknown operator: $bogus"),
        "{}",
        bad_operator.text
    );
    let bad_update = server
        .call(
            "updateOne",
            body(
                &db,
                "c",
                json!({"filter": {}, "update": {"$frobnicate": {"a": 1}}}),
            ),
        )
        .await;
    assert_eq!(bad_update.status, 400);
    let immutable = server
        .call(
            "updateOne",
            body(
                &db,
                "c",
                json!({"filter": {"_id": 1}, "update": {"$set": {"_id": 5}}}),
            ),
        )
        .await;
    assert_eq!(immutable.status, 400);
    let bad_stage = server
        .call(
            "aggregate",
            body(&db, "c", json!({"pipeline": [{"$bogus": {}}]})),
        )
        .await;
    assert_eq!(bad_stage.status, 400);
}

async fn access_levels(server: &TestServer) {
    let db = unique_db("access");
    let source = |name: &str, extra: Value| {
        let mut value = body(&db, "c", extra);
        value["dataSource"] = json!(name);
        value
    };
    let read = server.call("find", source("readonly", json!({}))).await;
    assert_eq!(read.status, 200);
    for (action, extra) in [
        ("insertOne", json!({"document": {}})),
        ("insertMany", json!({"documents": [{}]})),
        (
            "updateOne",
            json!({"filter": {}, "update": {"$set": {"a": 1}}}),
        ),
        (
            "updateMany",
            json!({"filter": {}, "update": {"$set": {"a": 1}}}),
        ),
        ("replaceOne", json!({"filter": {}, "replacement": {}})),
        ("deleteOne", json!({"filter": {}})),
        ("deleteMany", json!({"filter": {}})),
        ("aggregate", json!({"pipeline": [{"$out": "copy"}]})),
        (
            "aggregate",
            json!({"pipeline": [{"$merge": {"into": "copy"}}]}),
        ),
    ] {
        let answer = server.call(action, source("readonly", extra)).await;
        assert_eq!(answer.status, 403, "{action}: {}", answer.text);
    }
    let locked = server.call("find", source("locked", json!({}))).await;
    assert_eq!(locked.status, 403);
    assert_eq!(locked.json()["error_code"], "NoMatchingRuleFound");
}

async fn authentication(server: &TestServer) {
    let db = unique_db("auth");
    let request = body(&db, "c", json!({})).to_string();
    for header in ["apiKey", "api-key", "APIKEY", "Api-Key"] {
        let answer = server.call_with("find", &request, &[(header, KEY)]).await;
        assert_eq!(answer.status, 200, "{header}");
    }
    let none = server
        .call_with("find", &request, &[("x-no-auth", "1")])
        .await;
    assert_eq!(none.status, 400);
    assert_eq!(
        none.json()["error"],
        "no authentication methods were specified"
    );
    assert_eq!(none.json()["error_code"], "InvalidParameter");
    let wrong = server
        .call_with("find", &request, &[("apiKey", "wrong")])
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.json()["error"],
        "invalid session: error finding user for endpoint"
    );
    assert_eq!(wrong.json()["error_code"], "InvalidSession");
    let partial = server
        .call_with("find", &request, &[("email", "a@example.com")])
        .await;
    assert_eq!(partial.status, 400);
    assert_eq!(
        partial.json()["error"],
        "must specify some form of authentication (either email+password, api-key, or jwt) in the request header or body"
    );
    assert_eq!(partial.json()["error_code"], "MissingParameter");
    let bad_bearer = server
        .call_with(
            "find",
            &request,
            &[("Authorization", "Bearer nope"), ("apiKey", KEY)],
        )
        .await;
    assert_eq!(
        bad_bearer.status, 401,
        "an invalid bearer token never falls back"
    );
    let ignored = server
        .call_with(
            "find",
            &request,
            &[("Access-Control-Request-Headers", "*"), ("api-key", KEY)],
        )
        .await;
    assert_eq!(ignored.status, 200);
}

async fn getting_started_requests_as_literal_bytes(server: &TestServer) {
    let db = unique_db("hello");
    let path = "/app/data-itest/endpoint/data/v1/action/insertOne";
    let insert = raw::curl_post(
        server.addr,
        path,
        &[
            ("Content-Type", "application/json"),
            ("Access-Control-Request-Headers", "*"),
            ("api-key", KEY),
        ],
        &format!(
            r#"{{"dataSource": "mongodb-atlas", "database": "{db}", "collection": "hello", "document": {{"text": "Hello, world!"}}}}"#
        ),
    );
    let response = raw::send(server.addr, &insert).await;
    assert_eq!(response.status, 201, "{}", response.text());
    let id: Value = serde_json::from_slice(&response.body).unwrap();
    assert!(is_hex24(&id["insertedId"]));
    // No Content-Type at all from the caller: curl sends the form type.
    let find = raw::curl_post(
        server.addr,
        "/app/data-itest/endpoint/data/v1/action/findOne",
        &[("apiKey", KEY)],
        &format!(
            r#"{{"dataSource":"mongodb-atlas","database":"{db}","collection":"hello","filter":{{"text":"Hello, world!"}}}}"#
        ),
    );
    let response = raw::send(server.addr, &find).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.text(),
        format!(
            r#"{{"document":{{"_id":{},"text":"Hello, world!"}}}}"#,
            id["insertedId"]
        )
    );
    assert_eq!(response.header("content-type"), Some("application/json"));
    let ejson = raw::curl_post(
        server.addr,
        "/app/data-itest/endpoint/data/beta/action/find",
        &[
            ("Content-Type", "application/ejson"),
            ("Accept", "application/ejson"),
            ("apiKey", KEY),
        ],
        &format!(
            r#"{{"dataSource":"mongodb-atlas","database":"{db}","collection":"hello","filter":{{"_id":{{"$oid":{}}}}}}}"#,
            id["insertedId"]
        ),
    );
    let response = raw::send(server.addr, &ejson).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.text(),
        format!(
            r#"{{"documents":[{{"_id":{{"$oid":{}}},"text":"Hello, world!"}}]}}"#,
            id["insertedId"]
        )
    );
    assert_eq!(response.header("content-type"), Some("application/ejson"));
}

#[tokio::test]
async fn oversized_bodies_are_413_before_and_while_reading() {
    let server = integration_tests::standalone_with(
        &format!(
            "{}\n[limits]\nmax_body_bytes = 1000\n",
            integration_tests::default_config("data-itest")
        ),
        BackendKind::Memory,
    )
    .await
    .unwrap();
    let big = format!(
        r#"{{"dataSource":"mongodb-atlas","database":"d","collection":"c","document":{{"pad":"{}"}}}}"#,
        "x".repeat(2000)
    );
    let declared = server.call_with("insertOne", &big, &[]).await;
    assert_eq!(declared.status, 413);
    assert_eq!(declared.json()["error_code"], "PayloadTooLarge");
    // Chunked: no Content-Length, refused while reading.
    let request = format!(
        "POST /app/data-itest/endpoint/data/v1/action/insertOne HTTP/1.1\r\nHost: x\r\napiKey: {KEY}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    let response = raw::send(server.addr, request.as_bytes()).await;
    assert_eq!(response.status, 413);
    let after = server.call("find", body("d", "c", json!({}))).await;
    assert_eq!(
        after.json(),
        json!({"documents": []}),
        "nothing was written"
    );
}
