//! Schema validation over HTTP on both backends: the standalone server loads
//! an App Services export (`rules_dir`) whose collection has a `schema.json`
//! and no `rules.json`; refused writes answer 400 `SchemaValidationFailedWrite`
//! and the collection contents are compared afterwards.

use integration_tests::{standalone_with, unique_db, Answer, BackendKind, TestServer, KEY};
use serde_json::{json, Value};

struct Rig {
    server: TestServer,
    db: String,
}

impl Rig {
    async fn start(kind: BackendKind) -> Option<Rig> {
        let db = unique_db("schema");
        let dir = std::env::temp_dir().join(unique_db("tda-schema"));
        let coll_dir = dir.join(&db).join("people");
        std::fs::create_dir_all(&coll_dir).expect("temp dir");
        std::fs::write(
            dir.join("default_rule.json"),
            json!({"roles": [{"name": "all", "read": true, "write": true}]}).to_string(),
        )
        .expect("write default rule");
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
        std::fs::write(coll_dir.join("schema.json"), schema.to_string()).expect("write schema");
        let config = format!(
            "app_id = \"data-schema\"\n\
             [[data_sources]]\nname = \"mongodb-atlas\"\nrules_dir = '{}'\n\
             [[api_keys]]\nname = \"itest\"\nkey = \"{KEY}\"\n",
            dir.display()
        );
        let server = standalone_with(&config, kind).await?;
        Some(Rig { server, db })
    }

    async fn call(&self, action: &str, coll: &str, extra: Value) -> Answer {
        let mut body =
            json!({"dataSource": "mongodb-atlas", "database": self.db, "collection": coll});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        self.server
            .call_with(
                action,
                &body.to_string(),
                &[("apiKey", KEY), ("Content-Type", "application/json")],
            )
            .await
    }

    async fn expect(&self, action: &str, extra: Value, status: u16, body: Value) {
        let answer = self.call(action, "people", extra.clone()).await;
        assert_eq!(
            (answer.status, answer.json()),
            (status, body),
            "{action} {extra}"
        );
    }

    async fn refused(&self, action: &str, extra: Value, message: &str) {
        let answer = self.call(action, "people", extra.clone()).await;
        assert_eq!(answer.status, 400, "{action} {extra}: {}", answer.text);
        let body = answer.json();
        assert_eq!(
            body["error_code"], "SchemaValidationFailedWrite",
            "{action} {extra}: {body}"
        );
        assert_eq!(body["error"], message, "{action} {extra}: {body}");
    }

    async fn contents(&self) -> Value {
        let answer = self
            .call("find", "people", json!({"sort": {"_id": 1}}))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json()["documents"].clone()
    }
}

async fn schema_validated_writes(kind: BackendKind) {
    let Some(rig) = Rig::start(kind).await else {
        return;
    };
    let seed = json!([
        {"_id": 1, "name": "ada", "age": 36, "tags": ["a"]},
        {"_id": 2, "name": "bob", "age": 20}
    ]);
    rig.expect(
        "insertMany",
        json!({"documents": seed}),
        201,
        json!({"insertedIds": [1, 2]}),
    )
    .await;

    // Inserts.
    rig.refused(
        "insertOne",
        json!({"document": {"name": "cy", "age": 17}}),
        "Failed to insert document: schema validation failed: properties.age: 17 is less than the minimum 18",
    )
    .await;
    rig.refused(
        "insertMany",
        json!({"documents": [{"_id": 3, "name": "cy"}, {"_id": 4, "name": "dee", "email": "nope"}]}),
        "Failed to insert documents: schema validation failed for document 1: properties.email: \"nope\" does not match the pattern ^[^@]+@[^@]+$",
    )
    .await;
    assert_eq!(rig.contents().await, seed, "insertMany is all-or-nothing");

    // Replace: the replacement keeps the stored `_id`.
    rig.refused(
        "replaceOne",
        json!({"filter": {"_id": 1}, "replacement": {"name": "ada", "tags": ["z"]}}),
        "Failed to replace document: schema validation failed for the replacement: properties.tags.items[0]: \"z\" is not one of the enum values",
    )
    .await;

    // Updates: post-images.
    rig.refused(
        "updateOne",
        json!({"filter": {"_id": 2}, "update": {"$inc": {"age": -5}}}),
        "Failed to update document: schema validation failed for the updated document with _id 2: properties.age: 15 is less than the minimum 18",
    )
    .await;
    rig.refused(
        "updateMany",
        json!({"filter": {}, "update": {"$set": {"nick": "x"}}}),
        "Failed to update documents: schema validation failed for the updated document with _id 1: additional property 'nick' is not allowed",
    )
    .await;
    rig.refused(
        "updateOne",
        json!({"filter": {"_id": 1}, "update": {"$push": {"tags": {"$each": ["b", "c", "a"]}}}}),
        "Failed to update document: schema validation failed for the updated document with _id 1: properties.tags: array of 4 items has more than maxItems 3",
    )
    .await;
    rig.refused(
        "updateOne",
        json!({"filter": {"_id": 7}, "update": {"$set": {"age": 30}}, "upsert": true}),
        "Failed to update document: schema validation failed for the upserted document: required field 'name' is missing",
    )
    .await;
    assert_eq!(rig.contents().await, seed, "refused writes change nothing");

    // Valid writes pass.
    rig.expect(
        "updateMany",
        json!({"filter": {}, "update": {"$inc": {"age": 1}}}),
        200,
        json!({"matchedCount": 2, "modifiedCount": 2}),
    )
    .await;
    rig.expect(
        "replaceOne",
        json!({"filter": {"_id": 2}, "replacement": {"name": "bo", "email": "b@x"}}),
        200,
        json!({"matchedCount": 1, "modifiedCount": 1}),
    )
    .await;
    rig.expect(
        "updateOne",
        json!({"filter": {"_id": 7, "name": "eve"}, "update": {"$set": {"age": 30}}, "upsert": true}),
        200,
        json!({"matchedCount": 0, "modifiedCount": 0, "upsertedId": 7}),
    )
    .await;
    assert_eq!(
        rig.contents().await,
        json!([
            {"_id": 1, "name": "ada", "age": 37, "tags": ["a"]},
            {"_id": 2, "name": "bo", "email": "b@x"},
            {"_id": 7, "name": "eve", "age": 30}
        ])
    );

    // Other collections have no schema.
    let other = rig
        .call("insertOne", "other", json!({"document": {"anything": [1]}}))
        .await;
    assert_eq!(other.status, 201, "{}", other.text);
}

#[tokio::test]
async fn schema_validated_writes_memory() {
    schema_validated_writes(BackendKind::Memory).await;
}

#[tokio::test]
async fn schema_validated_writes_peer() {
    schema_validated_writes(BackendKind::Peer).await;
}
