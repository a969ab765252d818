//! Checks that run on what a write stores, atomically with it, over HTTP on
//! both backends: JSON schema validation under concurrent writers, roles
//! re-checked on update post-images, and `%%prevRoot`.
//!
//! Principals are API keys; rules tell them apart by `%%user.name`.

use integration_tests::{admin_role, BackendKind, RulesRig};
use serde_json::{json, Value};

const ADMIN: &str = "checks-admin-key-0123456789abcdefghijklmnopqrstuvwxyz";
const ALICE: &str = "checks-alice-key-0123456789abcdefghijklmnopqrstuvwxyz";

/// How many concurrent `$inc` requests race for the 10 increments the
/// schema allows.
const RACERS: usize = 24;

/// - `counter`: everybody reads and writes; `n` is an int of at most 10;
/// - `owned`: owners read and write their documents (`owner` = key name);
/// - `handoff`: owners may give a document away (`%%prevRoot.owner`) and
///   insert only their own;
/// - `tasks`: documents whose `status` is not `locked` are writable,
///   locked ones read-only.
fn rules(db: &str) -> Value {
    json!({
        "collections": [
            {
                "database": db, "collection": "counter",
                "roles": [{"name": "all", "read": true, "write": true}],
                "schema": {"bsonType": "object", "properties": {"n": {"bsonType": "int", "maximum": 10}}}
            },
            {
                "database": db, "collection": "owned",
                "roles": [admin_role(),
                          {"name": "owner", "apply_when": {"owner": "%%user.name"}, "read": true, "write": true}]
            },
            {
                "database": db, "collection": "handoff",
                "roles": [admin_role(), {
                    "name": "owner",
                    "apply_when": {"%or": [
                        {"%%prevRoot.owner": "%%user.name"},
                        {"%and": [{"%%prevRoot": {"%exists": false}}, {"owner": "%%user.name"}]}
                    ]},
                    "read": true, "write": true
                }]
            },
            {
                "database": db, "collection": "tasks",
                "roles": [admin_role(),
                          {"name": "editor", "apply_when": {"status": {"$ne": "locked"}}, "read": true, "write": true},
                          {"name": "viewer", "read": true}]
            }
        ]
    })
}

/// A server with [`rules`] and the keys of `admin` and `alice`.
async fn rig(kind: BackendKind) -> Option<RulesRig> {
    let keys = [("admin", ADMIN), ("alice", ALICE)];
    RulesRig::start("data-checks", rules, &keys, kind).await
}

fn updated(matched: u64, modified: u64) -> Value {
    json!({"matchedCount": matched, "modifiedCount": modified})
}

/// Concurrent increments never push `n` past the schema's maximum: the
/// check sees the document it writes.
async fn schema_checks_are_atomic(kind: BackendKind) {
    let Some(rig) = rig(kind).await else {
        return;
    };
    rig.expect(
        ALICE,
        "insertOne",
        "counter",
        json!({"document": {"_id": 1, "n": 0}}),
        201,
        json!({"insertedId": 1}),
    )
    .await;
    let rig = std::sync::Arc::new(rig);
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..RACERS {
        let rig = rig.clone();
        racers.spawn(async move {
            rig.call(
                ALICE,
                "updateOne",
                "counter",
                json!({"filter": {"_id": 1}, "update": {"$inc": {"n": 1}}}),
            )
            .await
        });
    }
    let (mut applied, mut refused) = (0, 0);
    while let Some(answer) = racers.join_next().await {
        let answer = answer.expect("racer finished");
        match answer.status {
            200 => {
                assert_eq!(answer.json(), updated(1, 1));
                applied += 1;
            }
            400 => {
                assert_eq!(answer.json()["error_code"], "SchemaValidationFailedWrite");
                refused += 1;
            }
            other => panic!("unexpected answer {other}: {}", answer.text),
        }
    }
    assert_eq!((applied, refused), (10, RACERS - 10));
    assert_eq!(rig.contents("counter").await, json!([{"_id": 1, "n": 10}]));

    // One invalid post-image refuses the whole updateMany.
    rig.expect(
        ALICE,
        "insertMany",
        "counter",
        json!({"documents": [{"_id": 2, "n": 5}, {"_id": 3, "n": 9}]}),
        201,
        json!({"insertedIds": [2, 3]}),
    )
    .await;
    rig.rejected(
        ALICE,
        "updateMany",
        "counter",
        json!({"filter": {"_id": {"$gte": 2}}, "update": {"$inc": {"n": 2}}}),
        (
            400,
            "SchemaValidationFailedWrite",
            "Failed to update documents: schema validation failed for the updated document \
             with _id 3: properties.n: 11 is greater than the maximum 10",
        ),
    )
    .await;
    rig.expect(
        ALICE,
        "updateMany",
        "counter",
        json!({"filter": {"_id": {"$gte": 2}}, "update": {"$inc": {"n": 1}}}),
        200,
        updated(2, 2),
    )
    .await;
    assert_eq!(
        rig.contents("counter").await,
        json!([{"_id": 1, "n": 10}, {"_id": 2, "n": 6}, {"_id": 3, "n": 10}])
    );
}

/// Roles are re-checked on the post-image when an update changes a field
/// they depend on.
async fn post_images_are_rechecked(kind: BackendKind) {
    let Some(rig) = rig(kind).await else {
        return;
    };
    let no_role =
        "update not permitted: after the update, the document with _id 1 would match no role";
    rig.expect(
        ALICE,
        "insertOne",
        "owned",
        json!({"document": {"_id": 1, "owner": "alice", "v": 1}}),
        201,
        json!({"insertedId": 1}),
    )
    .await;
    rig.expect(
        ALICE,
        "updateOne",
        "owned",
        json!({"filter": {"_id": 1}, "update": {"$set": {"v": 2}}}),
        200,
        updated(1, 1),
    )
    .await;
    for update in [
        json!({"$set": {"owner": "bob"}}),
        json!({"$rename": {"owner": "previous_owner"}}),
        json!({"$unset": {"owner": ""}}),
    ] {
        rig.rejected(
            ALICE,
            "updateOne",
            "owned",
            json!({"filter": {"_id": 1}, "update": update}),
            (403, "PermissionDenied", no_role),
        )
        .await;
    }
    rig.rejected(
        ALICE,
        "replaceOne",
        "owned",
        json!({"filter": {"_id": 1}, "replacement": {"owner": "bob", "v": 3}}),
        (403, "PermissionDenied", no_role),
    )
    .await;
    // Writing the field without leaving the role is fine.
    rig.expect(
        ALICE,
        "updateOne",
        "owned",
        json!({"filter": {"_id": 1}, "update": {"$set": {"owner": "alice"}}}),
        200,
        updated(1, 0),
    )
    .await;
    rig.expect(
        ALICE,
        "replaceOne",
        "owned",
        json!({"filter": {"_id": 1}, "replacement": {"owner": "alice", "v": 3}}),
        200,
        updated(1, 1),
    )
    .await;
    assert_eq!(
        rig.contents("owned").await,
        json!([{"_id": 1, "owner": "alice", "v": 3}])
    );

    // A role lost on one document refuses the whole updateMany.
    rig.expect(
        ADMIN,
        "insertMany",
        "tasks",
        json!({"documents": [{"_id": 1, "title": "a"}, {"_id": 2, "title": "b", "status": "open"}]}),
        201,
        json!({"insertedIds": [1, 2]}),
    )
    .await;
    rig.expect(
        ALICE,
        "updateMany",
        "tasks",
        json!({"filter": {}, "update": {"$set": {"status": "done"}}}),
        200,
        updated(2, 2),
    )
    .await;
    rig.rejected(
        ALICE,
        "updateMany",
        "tasks",
        json!({"filter": {}, "update": {"$set": {"status": "locked"}}}),
        (
            403,
            "PermissionDenied",
            "update not permitted: after the update, the document with _id 1 would not be \
             writable by this user",
        ),
    )
    .await;
    assert_eq!(
        rig.contents("tasks").await,
        json!([
            {"_id": 1, "title": "a", "status": "done"},
            {"_id": 2, "title": "b", "status": "done"}
        ])
    );
    // The admin locks one; it is read-only for alice from then on.
    rig.expect(
        ADMIN,
        "updateOne",
        "tasks",
        json!({"filter": {"_id": 2}, "update": {"$set": {"status": "locked"}}}),
        200,
        updated(1, 1),
    )
    .await;
    rig.expect(
        ALICE,
        "updateMany",
        "tasks",
        json!({"filter": {}, "update": {"$set": {"title": "t"}}}),
        200,
        updated(1, 1),
    )
    .await;
    assert_eq!(
        rig.contents("tasks").await,
        json!([
            {"_id": 1, "title": "t", "status": "done"},
            {"_id": 2, "title": "b", "status": "locked"}
        ])
    );
}

/// `%%prevRoot` is the stored version: an owner may hand a document over,
/// and a client cannot forge it.
async fn prev_root_hands_over(kind: BackendKind) {
    let Some(rig) = rig(kind).await else {
        return;
    };
    rig.expect(
        ALICE,
        "insertOne",
        "handoff",
        json!({"document": {"_id": 1, "owner": "alice"}}),
        201,
        json!({"insertedId": 1}),
    )
    .await;
    for document in [
        json!({"_id": 2, "owner": "bob"}),
        json!({"_id": 3, "owner": "bob", "%%prevRoot": {"owner": "alice"}}),
    ] {
        rig.rejected(
            ALICE,
            "insertOne",
            "handoff",
            json!({ "document": document }),
            (
                403,
                "PermissionDenied",
                "insert not permitted: no role applies to the document",
            ),
        )
        .await;
    }
    rig.expect(
        ALICE,
        "find",
        "handoff",
        json!({}),
        200,
        json!({"documents": [{"_id": 1, "owner": "alice"}]}),
    )
    .await;
    rig.expect(
        ALICE,
        "updateOne",
        "handoff",
        json!({"filter": {"_id": 1}, "update": {"$set": {"owner": "bob"}}}),
        200,
        updated(1, 1),
    )
    .await;
    // Handed over: no longer alice's to read or write.
    rig.expect(
        ALICE,
        "findOne",
        "handoff",
        json!({"filter": {"_id": 1}}),
        200,
        json!({"document": null}),
    )
    .await;
    rig.expect(
        ALICE,
        "updateOne",
        "handoff",
        json!({"filter": {"_id": 1}, "update": {"$set": {"owner": "alice"}}}),
        200,
        updated(0, 0),
    )
    .await;
    assert_eq!(
        rig.contents("handoff").await,
        json!([{"_id": 1, "owner": "bob"}])
    );
}

#[tokio::test]
async fn schema_checks_are_atomic_memory() {
    schema_checks_are_atomic(BackendKind::Memory).await;
}

#[tokio::test]
async fn schema_checks_are_atomic_durable() {
    schema_checks_are_atomic(BackendKind::Durable).await;
}

#[tokio::test]
async fn schema_checks_are_atomic_peer() {
    schema_checks_are_atomic(BackendKind::Peer).await;
}

#[tokio::test]
async fn post_images_are_rechecked_memory() {
    post_images_are_rechecked(BackendKind::Memory).await;
}

#[tokio::test]
async fn post_images_are_rechecked_durable() {
    post_images_are_rechecked(BackendKind::Durable).await;
}

#[tokio::test]
async fn post_images_are_rechecked_peer() {
    post_images_are_rechecked(BackendKind::Peer).await;
}

#[tokio::test]
async fn prev_root_hands_over_memory() {
    prev_root_hands_over(BackendKind::Memory).await;
}

#[tokio::test]
async fn prev_root_hands_over_durable() {
    prev_root_hands_over(BackendKind::Durable).await;
}

#[tokio::test]
async fn prev_root_hands_over_peer() {
    prev_root_hands_over(BackendKind::Peer).await;
}
