//! Schema validation over HTTP on both backends: the standalone server loads
//! an App Services export (`rules_dir`) whose collection has a `schema.json`
//! and no `rules.json`; refused writes answer 400 `SchemaValidationFailedWrite`
//! and the collection contents are compared afterwards.

use std::path::PathBuf;

use integration_tests::{temp_dir, BackendKind, RulesRig, KEY};
use serde_json::{json, Value};

/// The export: a default rule (everybody reads and writes) and the
/// `people` collection's `schema.json`.
fn export(db: &str) -> PathBuf {
    let schema = json!({
        "title": "person",
        "bsonType": "object",
        "required": ["_id", "name"],
        "additionalProperties": false,
        "properties": {
            "_id": {"bsonType": ["int", "objectId"]},
            "name": {"bsonType": "string", "minLength": 1, "maxLength": 20},
            "age": {"bsonType": ["int", "long", "double"], "minimum": 18},
            "email": {"bsonType": "string", "pattern": "^[^@]+@[^@]+$"},
            "tags": {"bsonType": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3}
        }
    });
    let default_rule = json!({"roles": [{"name": "all", "read": true, "write": true}]});
    let dir = temp_dir();
    std::fs::write(dir.join("default_rule.json"), default_rule.to_string())
        .expect("write default rule");
    let coll_dir = dir.join(db).join("people");
    std::fs::create_dir_all(&coll_dir).expect("collection dir");
    std::fs::write(coll_dir.join("schema.json"), schema.to_string()).expect("write schema");
    dir
}

/// A server whose one key (named `admin`, read by [`RulesRig::contents`])
/// is [`KEY`].
async fn rig(kind: BackendKind) -> Option<RulesRig> {
    RulesRig::start_with_export("data-schema", export, &[("admin", KEY)], kind).await
}

/// Asserts an action on `people` answers `status` with exactly `body`.
async fn expect(rig: &RulesRig, action: &str, extra: Value, status: u16, body: Value) {
    rig.expect(KEY, action, "people", extra, status, body).await;
}

/// Asserts an action on `people` is refused with 400
/// `SchemaValidationFailedWrite` and exactly `message`.
async fn refused(rig: &RulesRig, action: &str, extra: Value, message: &str) {
    let want = (400, "SchemaValidationFailedWrite", message);
    rig.rejected(KEY, action, "people", extra, want).await;
}

async fn schema_validated_writes(kind: BackendKind) {
    let Some(rig) = rig(kind).await else {
        return;
    };
    let seed = json!([
        {"_id": 1, "name": "ada", "age": 36, "tags": ["a"]},
        {"_id": 2, "name": "bob", "age": 20}
    ]);
    expect(
        &rig,
        "insertMany",
        json!({"documents": seed}),
        201,
        json!({"insertedIds": [1, 2]}),
    )
    .await;

    // Inserts.
    refused(
        &rig,
        "insertOne",
        json!({"document": {"name": "cy", "age": 17}}),
        "Failed to insert document: schema validation failed: properties.age: 17 is less than the minimum 18",
    )
    .await;
    refused(
        &rig,
        "insertMany",
        json!({"documents": [{"_id": 3, "name": "cy"}, {"_id": 4, "name": "dee", "email": "nope"}]}),
        "Failed to insert documents: schema validation failed for document 1: properties.email: \"nope\" does not match the pattern ^[^@]+@[^@]+$",
    )
    .await;
    assert_eq!(
        rig.contents("people").await,
        seed,
        "insertMany is all-or-nothing"
    );

    // Replace: the replacement keeps the stored `_id`.
    refused(
        &rig,
        "replaceOne",
        json!({"filter": {"_id": 1}, "replacement": {"name": "ada", "tags": ["z"]}}),
        "Failed to replace document: schema validation failed for the replacement: properties.tags.items[0]: \"z\" is not one of the enum values",
    )
    .await;

    // Updates: post-images.
    refused(
        &rig,
        "updateOne",
        json!({"filter": {"_id": 2}, "update": {"$inc": {"age": -5}}}),
        "Failed to update document: schema validation failed for the updated document with _id 2: properties.age: 15 is less than the minimum 18",
    )
    .await;
    refused(
        &rig,
        "updateMany",
        json!({"filter": {}, "update": {"$set": {"nick": "x"}}}),
        "Failed to update documents: schema validation failed for the updated document with _id 1: additional property 'nick' is not allowed",
    )
    .await;
    refused(
        &rig,
        "updateOne",
        json!({"filter": {"_id": 1}, "update": {"$push": {"tags": {"$each": ["b", "c", "a"]}}}}),
        "Failed to update document: schema validation failed for the updated document with _id 1: properties.tags: array of 4 items has more than maxItems 3",
    )
    .await;
    refused(
        &rig,
        "updateOne",
        json!({"filter": {"_id": 7}, "update": {"$set": {"age": 30}}, "upsert": true}),
        "Failed to update document: schema validation failed for the upserted document: required field 'name' is missing",
    )
    .await;
    assert_eq!(
        rig.contents("people").await,
        seed,
        "refused writes change nothing"
    );

    // Valid writes pass.
    expect(
        &rig,
        "updateMany",
        json!({"filter": {}, "update": {"$inc": {"age": 1}}}),
        200,
        json!({"matchedCount": 2, "modifiedCount": 2}),
    )
    .await;
    expect(
        &rig,
        "replaceOne",
        json!({"filter": {"_id": 2}, "replacement": {"name": "bo", "email": "b@x"}}),
        200,
        json!({"matchedCount": 1, "modifiedCount": 1}),
    )
    .await;
    expect(
        &rig,
        "updateOne",
        json!({"filter": {"_id": 7, "name": "eve"}, "update": {"$set": {"age": 30}}, "upsert": true}),
        200,
        json!({"matchedCount": 0, "modifiedCount": 0, "upsertedId": 7}),
    )
    .await;
    assert_eq!(
        rig.contents("people").await,
        json!([
            {"_id": 1, "name": "ada", "age": 37, "tags": ["a"]},
            {"_id": 2, "name": "bo", "email": "b@x"},
            {"_id": 7, "name": "eve", "age": 30}
        ])
    );

    // Other collections have no schema.
    rig.expect(
        KEY,
        "insertOne",
        "other",
        json!({"document": {"_id": 1, "anything": [1]}}),
        201,
        json!({"insertedId": 1}),
    )
    .await;
}

#[tokio::test]
async fn schema_validated_writes_memory() {
    schema_validated_writes(BackendKind::Memory).await;
}

#[tokio::test]
async fn schema_validated_writes_durable() {
    schema_validated_writes(BackendKind::Durable).await;
}

#[tokio::test]
async fn schema_validated_writes_peer() {
    schema_validated_writes(BackendKind::Peer).await;
}
