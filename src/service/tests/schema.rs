//! Schema validation through the whole service pipeline, on the embedded
//! engine: refused writes answer 400 `SchemaValidationFailedWrite` and leave
//! the collection unchanged.

use http::StatusCode;
use serde_json::{json, Value};

use super::test_support;
use crate::rules::{Role, Rule, Rules};
use crate::DataApiService;

const APP: &str = "data-schema";

fn schema() -> Value {
    json!({
        "bsonType": "object",
        "required": ["_id", "name"],
        "additionalProperties": false,
        "properties": {
            "_id": {"bsonType": ["objectId", "int"]},
            "name": {"bsonType": "string", "minLength": 1},
            "age": {"bsonType": ["int", "long"], "minimum": 18},
            "tags": {"bsonType": "array", "items": {"bsonType": "string"}, "uniqueItems": true}
        }
    })
}

fn rules() -> Rules {
    Rules::new()
        .default_rule(Rule::new().role(Role::read_write("all")))
        .schema("db", "c", schema())
}

fn service(rules: Rules) -> Result<DataApiService, String> {
    test_support::builder(APP)
        .rules("mongodb-atlas", rules)
        .build()
        .map_err(|e| e.to_string())
}

async fn call(
    service: &DataApiService,
    user: &str,
    action: &str,
    extra: Value,
) -> (StatusCode, Value) {
    test_support::call(service, APP, user, action, extra).await
}

async fn contents(service: &DataApiService) -> Value {
    let (status, body) = call(service, "system", "find", json!({"sort": {"_id": 1}})).await;
    assert_eq!(status, StatusCode::OK);
    body["documents"].clone()
}

fn assert_refused(answer: &(StatusCode, Value), needle: &str) {
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{}", answer.1);
    assert_eq!(
        answer.1["error_code"], "SchemaValidationFailedWrite",
        "{}",
        answer.1
    );
    let message = answer.1["error"].as_str().unwrap();
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}

#[tokio::test]
async fn inserts_are_validated_for_every_principal() {
    let svc = service(rules()).unwrap();
    for user in ["u1", "system"] {
        let refused = call(
            &svc,
            user,
            "insertOne",
            json!({"document": {"name": "Ada", "age": 17}}),
        )
        .await;
        assert_refused(&refused, "properties.age: 17 is less than the minimum 18");
        let refused = call(&svc, user, "insertOne", json!({"document": {"age": 30}})).await;
        assert_refused(&refused, "required field 'name' is missing");
    }
    let ok = call(
        &svc,
        "u1",
        "insertOne",
        json!({"document": {"name": "Ada", "age": 36}}),
    )
    .await;
    assert_eq!(ok.0, StatusCode::CREATED, "{}", ok.1);
    assert_eq!(contents(&svc).await.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn insert_many_is_all_or_nothing() {
    let svc = service(rules()).unwrap();
    let docs = json!([{"_id": 1, "name": "a"}, {"_id": 2, "name": "b", "tags": ["x", "x"]}]);
    let refused = call(&svc, "u1", "insertMany", json!({"documents": docs})).await;
    assert_refused(&refused, "document 1: properties.tags: item 1");
    assert_eq!(contents(&svc).await, json!([]));
    let docs = json!([{"_id": 1, "name": "a"}, {"_id": 2, "name": "b", "tags": ["x", "y"]}]);
    let ok = call(&svc, "u1", "insertMany", json!({"documents": docs})).await;
    assert_eq!(ok.0, StatusCode::CREATED, "{}", ok.1);
    assert_eq!(contents(&svc).await.as_array().unwrap().len(), 2);
}

async fn seeded() -> DataApiService {
    let svc = service(rules()).unwrap();
    let docs = json!([{"_id": 1, "name": "a", "age": 20}, {"_id": 2, "name": "b", "age": 30}]);
    let ok = call(&svc, "system", "insertMany", json!({"documents": docs})).await;
    assert_eq!(ok.0, StatusCode::CREATED, "{}", ok.1);
    svc
}

#[tokio::test]
async fn replace_is_validated_with_the_stored_id() {
    let svc = seeded().await;
    let before = contents(&svc).await;
    let refused = call(
        &svc,
        "u1",
        "replaceOne",
        json!({"filter": {"_id": 1}, "replacement": {"name": "a", "extra": 1}}),
    )
    .await;
    assert_refused(&refused, "additional property 'extra' is not allowed");
    assert_eq!(contents(&svc).await, before);
    // The replacement has no `_id`: it keeps the int `_id` of the document it replaces.
    let ok = call(
        &svc,
        "u1",
        "replaceOne",
        json!({"filter": {"_id": 1}, "replacement": {"name": "z"}}),
    )
    .await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
    assert_eq!(ok.1["modifiedCount"], 1);
    // No match, no upsert: nothing is written, nothing is refused.
    let none = call(
        &svc,
        "u1",
        "replaceOne",
        json!({"filter": {"_id": 9}, "replacement": {"bad": 1}}),
    )
    .await;
    assert_eq!(none.0, StatusCode::OK, "{}", none.1);
    let refused = call(
        &svc,
        "u1",
        "replaceOne",
        json!({"filter": {"_id": 9}, "replacement": {"bad": 1}, "upsert": true}),
    )
    .await;
    assert_refused(&refused, "required field 'name' is missing");
}

#[tokio::test]
async fn update_post_images_are_validated() {
    let svc = seeded().await;
    let before = contents(&svc).await;
    for user in ["u1", "system"] {
        let refused = call(
            &svc,
            user,
            "updateOne",
            json!({"filter": {"_id": 2}, "update": {"$inc": {"age": -20}}}),
        )
        .await;
        assert_refused(
            &refused,
            "with _id 2: properties.age: 10 is less than the minimum 18",
        );
        // Only the second document breaks the schema: neither changes.
        let refused = call(
            &svc,
            user,
            "updateMany",
            json!({"filter": {}, "update": {"$inc": {"age": -5}}}),
        )
        .await;
        assert_refused(
            &refused,
            "with _id 1: properties.age: 15 is less than the minimum 18",
        );
        let refused = call(
            &svc,
            user,
            "updateMany",
            json!({"filter": {}, "update": {"$unset": {"name": ""}}}),
        )
        .await;
        assert_refused(&refused, "required field 'name' is missing");
        let refused = call(
            &svc,
            user,
            "updateOne",
            json!({"filter": {"_id": 1}, "update": [{"$set": {"x": 1}}]}),
        )
        .await;
        assert_refused(&refused, "additional property 'x' is not allowed");
    }
    assert_eq!(contents(&svc).await, before);
    let ok = call(
        &svc,
        "u1",
        "updateMany",
        json!({"filter": {}, "update": {"$inc": {"age": 1}}}),
    )
    .await;
    assert_eq!(
        (ok.0, ok.1["modifiedCount"].clone()),
        (StatusCode::OK, json!(2)),
        "{}",
        ok.1
    );
}

#[tokio::test]
async fn upserts_are_validated() {
    let svc = seeded().await;
    let before = contents(&svc).await;
    let refused = call(
        &svc,
        "u1",
        "updateOne",
        json!({"filter": {"_id": 3}, "update": {"$set": {"age": 40}}, "upsert": true}),
    )
    .await;
    assert_refused(
        &refused,
        "upserted document: required field 'name' is missing",
    );
    assert_eq!(contents(&svc).await, before);
    let ok = call(
        &svc,
        "u1",
        "updateOne",
        json!({"filter": {"_id": 3, "name": "c"}, "update": {"$set": {"age": 40}}, "upsert": true}),
    )
    .await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
    assert_eq!(ok.1["upsertedId"], 3);
}

#[tokio::test]
async fn without_schema_nothing_changes_and_bad_schemas_fail_the_build() {
    let svc =
        service(Rules::new().default_rule(Rule::new().role(Role::read_write("all")))).unwrap();
    let ok = call(
        &svc,
        "u1",
        "insertOne",
        json!({"document": {"anything": true}}),
    )
    .await;
    assert_eq!(ok.0, StatusCode::CREATED, "{}", ok.1);
    let other = call(
        &svc,
        "u1",
        "insertOne",
        json!({"collection": "other", "document": {"age": 1}}),
    )
    .await;
    assert_eq!(other.0, StatusCode::CREATED, "{}", other.1);
    let err =
        service(Rules::new().schema("db", "c", json!({"properties": {"a": {"minLength": "x"}}})))
            .unwrap_err();
    assert!(
        err.contains("rules.collections[0] ('db.c').schema.properties.a.minLength: must be a non-negative integer"),
        "{err}"
    );
}

#[tokio::test]
async fn aggregation_writes_into_a_schema_collection_are_refused() {
    let svc = seeded().await;
    for (stage, target) in [
        (json!({"$out": "c"}), "db.c"),
        (json!({"$out": {"db": "db", "coll": "c"}}), "db.c"),
        (json!({"$merge": "c"}), "db.c"),
        (
            json!({"$merge": {"into": {"db": "db", "coll": "c"}}}),
            "db.c",
        ),
    ] {
        let name = stage.as_object().unwrap().keys().next().unwrap().clone();
        let refused = call(
            &svc,
            "system",
            "aggregate",
            json!({"pipeline": [{"$set": {"age": 1}}, stage]}),
        )
        .await;
        assert_refused(
            &refused,
            &format!("{name} into '{target}' is not permitted: the collection has a schema"),
        );
    }
    assert_eq!(contents(&svc).await.as_array().unwrap().len(), 2);
    assert_eq!(contents(&svc).await[0]["age"], 20);
    // Other targets are not concerned.
    let ok = call(
        &svc,
        "system",
        "aggregate",
        json!({"pipeline": [{"$out": "copy"}]}),
    )
    .await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
}
