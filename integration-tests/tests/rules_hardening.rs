//! Hardening of rules and checked writes against attempts to slip past
//! them: upserts whose filter is not deterministic, joins on hidden fields,
//! schema refusals quoting hidden values, `%%prevRoot` where it cannot
//! apply, upserts whose filter repeats what the rules require, field names
//! given to expressions as strings (`$getField`), and owner fields written
//! as arrays or documents that hand a document to other users.
//!
//! Peer tests need DATA_API_TEST_MONGODB_URI (the wire-protocol peer).

use bson::doc;
use integration_tests::{
    admin_role, launch, rules_config, unique_db, BackendKind, RulesRig, RulesSource,
};
use serde_json::{json, Value};
use tower_data_api::backend::{Backend, MongoBackend, MongoBackendOptions, Namespace};

const ADMIN: &str = "review-admin-key-0123456789abcdefghijklmnopqrstuvwxyz";
const ALICE: &str = "review-alice-key-0123456789abcdefghijklmnopqrstuvwxyz";
const BOB: &str = "review-bob-key-0123456789abcdefghijklmnopqrstuvwxyz01";

/// - `counter`: everybody reads and writes; `n` is an int of at most 10;
/// - `levels`: documents with `level < 3` are writable, the others
///   read-only (so nobody but the admin may raise a level to 3 or more);
/// - `staff`: alice reads every document but not `salary`;
/// - `guesses`: everybody reads and writes;
/// - `profiles`: alice reads `owner` and `name` and writes `name` of her own
///   documents; `ssn` is hidden from her; the schema constrains `ssn`;
/// - `payroll`: alice reads and writes every field but `salary`, which she
///   can neither read nor write;
/// - `notes`: App Services' owner pattern, document filters
///   `{"owner_id": "%%user.name"}` for reads and writes.
fn rules(db: &str) -> Value {
    json!({
        "collections": [
            {
                "database": db, "collection": "counter",
                "roles": [{"name": "all", "read": true, "write": true}],
                "schema": {"bsonType": "object", "properties": {"n": {"bsonType": "int", "maximum": 10}}}
            },
            {
                "database": db, "collection": "levels",
                "roles": [admin_role(),
                          {"name": "editor", "apply_when": {"level": {"$lt": 3}}, "read": true, "write": true},
                          {"name": "viewer", "read": true}]
            },
            {
                "database": db, "collection": "staff",
                "roles": [admin_role(),
                          {"name": "colleague", "fields": {"salary": {}},
                           "additional_fields": {"read": true}}]
            },
            {
                "database": db, "collection": "guesses",
                "roles": [{"name": "all", "read": true, "write": true}]
            },
            {
                "database": db, "collection": "profiles",
                "roles": [admin_role(),
                          {"name": "self", "apply_when": {"owner": "%%user.name"},
                           "fields": {"owner": {"read": true}, "name": {"write": true}}}],
                "schema": {"bsonType": "object", "properties": {
                    "ssn": {"bsonType": "string", "pattern": "^[0-9]{9}$"}}}
            },
            {
                "database": db, "collection": "payroll",
                "roles": [admin_role(),
                          {"name": "clerk", "fields": {"salary": {}},
                           "additional_fields": {"read": true, "write": true}}]
            },
            {
                "database": db, "collection": "notes",
                "roles": [admin_role(),
                          {"name": "owner",
                           "document_filters": {"read": {"owner_id": "%%user.name"},
                                                "write": {"owner_id": "%%user.name"}},
                           "read": true, "write": true}]
            }
        ]
    })
}

/// A server with [`rules`] and the keys of `admin` and `alice`.
async fn rig(kind: BackendKind) -> Option<RulesRig> {
    let keys = [("admin", ADMIN), ("alice", ALICE), ("bob", BOB)];
    RulesRig::start("data-review", rules, &keys, kind).await
}

/// A filter that MongoDB evaluates differently each time: true for about
/// half of the documents, independently for the `find` that reads the
/// pre-images and for the upserting update that follows it.
fn coin_flip(id: i32) -> Value {
    json!({"_id": id, "$expr": {"$lt": [{"$rand": {}}, 0.5]}})
}

/// Sends `action` on `coll` with `extra` as alice forty times; each answer
/// must be refused with one of `statuses` (schema or rules after the pinned
/// write, a filter that is not deterministic, a duplicate `_id` from an
/// insert), or be a 200 that changed nothing (the pinned write's own coin
/// flip missed). Returns the statuses seen.
async fn forty_coin_flips(
    rig: &RulesRig,
    action: &str,
    coll: &str,
    extra: &Value,
    statuses: &[u16],
) -> Vec<u16> {
    let mut seen = Vec::new();
    for _ in 0..40 {
        let answer = rig.call(ALICE, action, coll, extra.clone()).await;
        assert!(
            statuses.contains(&answer.status)
                || answer.status == 200
                    && answer.json() == json!({"matchedCount": 0, "modifiedCount": 0}),
            "{action} {extra}: {} {}",
            answer.status,
            answer.text
        );
        seen.push(answer.status);
    }
    seen
}

/// A checked upsert on MongoDB whose filter matched nothing when read but
/// matches an existing document when the update runs (`$rand` in `$expr`
/// makes that happen about one time in four) is refused and rolled back:
/// `n` never goes past the schema's maximum.
#[tokio::test]
async fn nondeterministic_upserts_cannot_skip_the_schema_check_peer() {
    let Some(rig) = rig(BackendKind::Peer).await else {
        return;
    };
    rig.ok(
        ALICE,
        "insertOne",
        "counter",
        json!({"document": {"_id": 1, "n": 10}}),
    )
    .await;
    let upsert =
        json!({"filter": coin_flip(1), "update": {"$set": {"n": "not an int"}}, "upsert": true});
    let statuses = forty_coin_flips(&rig, "updateOne", "counter", &upsert, &[400]).await;
    assert_eq!(
        rig.contents("counter").await,
        json!([{"_id": 1, "n": 10}]),
        "statuses: {statuses:?}"
    );
}

/// The same through `replaceOne` with `upsert`.
#[tokio::test]
async fn nondeterministic_replace_upserts_cannot_skip_the_schema_check_peer() {
    let Some(rig) = rig(BackendKind::Peer).await else {
        return;
    };
    rig.ok(
        ALICE,
        "insertOne",
        "counter",
        json!({"document": {"_id": 1, "n": 10}}),
    )
    .await;
    let upsert = json!({"filter": coin_flip(1), "replacement": {"n": 1000}, "upsert": true});
    let statuses = forty_coin_flips(&rig, "replaceOne", "counter", &upsert, &[400]).await;
    assert_eq!(
        rig.contents("counter").await,
        json!([{"_id": 1, "n": 10}]),
        "statuses: {statuses:?}"
    );
}

/// The same for the post-image role check: alice may edit documents whose
/// `level` is below 3 but must not raise a level to 3 (the document would
/// leave her role), neither with a plain update nor with a coin-flip
/// upsert (whose pre-check only sees the document an insert would create).
#[tokio::test]
async fn nondeterministic_upserts_cannot_skip_the_post_image_rules_peer() {
    let Some(rig) = rig(BackendKind::Peer).await else {
        return;
    };
    rig.ok(
        ADMIN,
        "insertOne",
        "levels",
        json!({"document": {"_id": 1, "level": 2}}),
    )
    .await;
    let plain = rig
        .call(
            ALICE,
            "updateOne",
            "levels",
            json!({"filter": {"_id": 1}, "update": {"$inc": {"level": 1}}}),
        )
        .await;
    assert_eq!(plain.status, 403, "{}", plain.text);
    let upsert = json!({"filter": coin_flip(1), "update": {"$inc": {"level": 1}}, "upsert": true});
    let statuses = forty_coin_flips(&rig, "updateOne", "levels", &upsert, &[400, 403]).await;
    assert_eq!(
        rig.contents("levels").await,
        json!([{"_id": 1, "level": 2}]),
        "statuses: {statuses:?}"
    );
}

/// Hidden values cannot be probed: `$lookup` with `localField` /
/// `foreignField` matches `foreignField` on the stored documents before the
/// joined collection's read rules run, so joining on a hidden field is
/// refused (403), as are filters and sorts naming hidden fields (which
/// documents match, and in what order, would tell the values apart).
async fn hidden_fields_cannot_be_probed(kind: BackendKind) {
    let Some(rig) = rig(kind).await else {
        return;
    };
    rig.ok(
        ADMIN,
        "insertMany",
        "staff",
        json!({"documents": [
            {"_id": 1, "name": "ann", "salary": 4200},
            {"_id": 2, "name": "bob", "salary": 9100}
        ]}),
    )
    .await;
    // Alice cannot see salaries directly.
    let direct = rig.ok(ALICE, "find", "staff", json!({})).await;
    assert_eq!(
        direct["documents"],
        json!([{"_id": 1, "name": "ann"}, {"_id": 2, "name": "bob"}])
    );
    rig.ok(
        ALICE,
        "insertMany",
        "guesses",
        json!({"documents": [{"_id": 4000, "g": 4000}, {"_id": 4200, "g": 4200}, {"_id": 9100, "g": 9100}]}),
    )
    .await;
    let answer = rig
        .call(
            ALICE,
            "aggregate",
            "guesses",
            json!({"pipeline": [
                {"$lookup": {"from": "staff", "localField": "g", "foreignField": "salary", "as": "m"}},
                {"$match": {"m.0": {"$exists": true}}},
                {"$project": {"g": 1, "who": "$m.name"}},
                {"$sort": {"_id": 1}}
            ]}),
        )
        .await;
    assert_eq!(
        (answer.status, answer.json()["error"].clone()),
        (
            403,
            json!("$lookup not permitted: field 'salary' of collection 'staff' is not readable")
        ),
        "{}",
        answer.text
    );
    // Nor can a filter or a sort on the hidden field tell salaries apart.
    let probes = [
        (
            "find",
            json!({"filter": {"salary": {"$gt": 5000}}}),
            "find not permitted: the filter reads field 'salary', which is not readable",
        ),
        (
            "find",
            json!({"filter": {"$or": [{"name": "x"}, {"$expr": {"$gt": ["$salary", 5000]}}]}}),
            "find not permitted: the filter reads field 'salary', which is not readable",
        ),
        (
            "find",
            json!({"sort": {"salary": -1}, "limit": 1}),
            "find not permitted: the sort reads field 'salary', which is not readable",
        ),
        (
            "findOne",
            json!({"filter": {"$jsonSchema": {"required": ["salary"]}}}),
            "find not permitted: the filter reads the whole document, which is not readable",
        ),
        (
            "updateMany",
            json!({"filter": {"salary": {"$gt": 5000}}, "update": {"$set": {"name": "rich"}}}),
            "update not permitted: the filter reads field 'salary', which is not readable",
        ),
    ];
    for (action, extra, message) in probes {
        rig.rejected(
            ALICE,
            action,
            "staff",
            extra,
            (403, "PermissionDenied", message),
        )
        .await;
    }
    // Inside a pipeline the read rules run first: the field is gone.
    rig.expect(
        ALICE,
        "aggregate",
        "staff",
        json!({"pipeline": [{"$match": {"salary": {"$gt": 5000}}}]}),
        200,
        json!({"documents": []}),
    )
    .await;
    // Readable fields filter and sort as usual.
    rig.expect(
        ALICE,
        "find",
        "staff",
        json!({"filter": {"name": {"$gt": "a"}}, "sort": {"name": -1}}),
        200,
        json!({"documents": [{"_id": 2, "name": "bob"}, {"_id": 1, "name": "ann"}]}),
    )
    .await;
}

#[tokio::test]
async fn hidden_fields_cannot_be_probed_memory() {
    hidden_fields_cannot_be_probed(BackendKind::Memory).await;
}

#[tokio::test]
async fn hidden_fields_cannot_be_probed_durable() {
    hidden_fields_cannot_be_probed(BackendKind::Durable).await;
}

#[tokio::test]
async fn hidden_fields_cannot_be_probed_peer() {
    hidden_fields_cannot_be_probed(BackendKind::Peer).await;
}

/// Schema refusals of update post-images do not quote values to a user the
/// rules hide fields from: an update of a field she may write must not
/// reveal a hidden field of a stored document that predates the schema
/// (seeded here straight into MongoDB).
#[tokio::test]
async fn schema_refusals_do_not_quote_hidden_fields_peer() {
    let Some(uri) = integration_tests::peer_uri() else {
        return;
    };
    let Some(rig) = rig(BackendKind::Peer).await else {
        return;
    };
    let backend = MongoBackend::connect(&uri, MongoBackendOptions::default())
        .await
        .expect("peer");
    // Straight into MongoDB: stored before the schema could check it.
    backend
        .insert_one(
            &Namespace::new(rig.db.clone(), "profiles"),
            doc! {"_id": 1, "owner": "alice", "name": "Alice", "ssn": "123-45-6789"},
        )
        .await
        .expect("seeded");
    let read = rig
        .ok(ALICE, "findOne", "profiles", json!({"filter": {"_id": 1}}))
        .await;
    assert_eq!(
        read["document"],
        json!({"_id": 1, "owner": "alice", "name": "Alice"}),
        "ssn is hidden from alice"
    );
    let answer = rig
        .call(
            ALICE,
            "updateOne",
            "profiles",
            json!({"filter": {"_id": 1}, "update": {"$set": {"name": "Al"}}}),
        )
        .await;
    assert_eq!(
        (answer.status, answer.json()["error_code"].as_str()),
        (400, Some("SchemaValidationFailedWrite")),
        "the stored ssn fails the schema: {}",
        answer.text
    );
    assert!(
        !answer.text.contains("123-45-6789"),
        "the refusal reveals the hidden ssn: {} {}",
        answer.status,
        answer.text
    );
}

/// A filter's `apply_when` may not use the document, `%%prevRoot` alone
/// included: such rules fail to load instead of loading a filter that would
/// never apply.
#[tokio::test]
async fn prev_root_alone_is_refused_in_a_filters_apply_when_memory() {
    let db = unique_db("review_filter");
    let rules = json!({
        "collections": [{
            "database": db, "collection": "notes",
            "roles": [admin_role(), {"name": "reader", "read": true}],
            "filters": [{
                "name": "no-drafts",
                "apply_when": {"%%prevRoot": {"%exists": true}},
                "query": {"draft": false}
            }]
        }]
    });
    let keys = [("admin", ADMIN), ("alice", ALICE)];
    let config = rules_config("data-review", RulesSource::File(&rules), &keys);
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let error = launch(&config, None, stopped)
        .await
        .expect_err("rules with %%prevRoot in a filter's apply_when must not load");
    assert!(
        error
            .to_string()
            .contains("a filter's apply_when cannot use document fields"),
        "{error}"
    );
}

/// A `replaceOne` upsert is judged with the `_id` it takes from the filter,
/// and a filter repeating the equality the rules require (`_id` here) still
/// upserts: the document the role allows is created.
async fn replace_upserts_take_the_filter_id(kind: BackendKind) {
    let rules = |db: &str| {
        json!({
            "collections": [{
                "database": db, "collection": "me",
                "roles": [admin_role(),
                          {"name": "self", "apply_when": {"_id": "%%user.name"}, "read": true, "write": true}]
            }]
        })
    };
    let keys = [("admin", ADMIN), ("alice", ALICE)];
    let Some(rig) = RulesRig::start("data-review", rules, &keys, kind).await else {
        return;
    };
    rig.expect(
        ALICE,
        "replaceOne",
        "me",
        json!({"filter": {"_id": "alice"}, "replacement": {"bio": "hi"}, "upsert": true}),
        200,
        json!({"matchedCount": 0, "modifiedCount": 0, "upsertedId": "alice"}),
    )
    .await;
    // updateOne upserts with the same filter: an update when the document
    // exists, an insert when it does not.
    let upsert =
        json!({"filter": {"_id": "alice"}, "update": {"$set": {"bio": "again"}}, "upsert": true});
    rig.expect(
        ALICE,
        "updateOne",
        "me",
        upsert.clone(),
        200,
        json!({"matchedCount": 1, "modifiedCount": 1}),
    )
    .await;
    rig.expect(
        ALICE,
        "deleteOne",
        "me",
        json!({"filter": {"_id": "alice"}}),
        200,
        json!({"deletedCount": 1}),
    )
    .await;
    rig.expect(
        ALICE,
        "updateOne",
        "me",
        upsert,
        200,
        json!({"matchedCount": 0, "modifiedCount": 0, "upsertedId": "alice"}),
    )
    .await;
    // A filter asking for another `_id` matches nothing and may not insert.
    rig.rejected(
        ALICE,
        "updateOne",
        "me",
        json!({"filter": {"_id": "bob"}, "update": {"$set": {"bio": "x"}}, "upsert": true}),
        (
            403,
            "PermissionDenied",
            "upsert not permitted: no role applies to the document",
        ),
    )
    .await;
    assert_eq!(
        rig.contents("me").await,
        json!([{"_id": "alice", "bio": "again"}])
    );
}

#[tokio::test]
async fn replace_upserts_take_the_filter_id_memory() {
    replace_upserts_take_the_filter_id(BackendKind::Memory).await;
}

#[tokio::test]
async fn replace_upserts_take_the_filter_id_durable() {
    replace_upserts_take_the_filter_id(BackendKind::Durable).await;
}

#[tokio::test]
async fn replace_upserts_take_the_filter_id_peer() {
    replace_upserts_take_the_filter_id(BackendKind::Peer).await;
}

/// Every way an expression names a field counts as reading it: `$getField`
/// with the name as a string, as `{"field": ...}`, as a `$literal`, or
/// computed (the whole document), and `$setField`, `$unsetField`,
/// `$objectToArray` over `$$ROOT`/`$$CURRENT` (the whole document). Each
/// probe below would otherwise let a binary search recover a salary, from
/// the documents a read returns or from the counts a write answers with.
async fn expression_field_names_are_reads(kind: BackendKind) {
    let Some(rig) = rig(kind).await else {
        return;
    };
    rig.ok(
        ADMIN,
        "insertMany",
        "payroll",
        json!({"documents": [
            {"_id": 1, "name": "ann", "salary": 4200},
            {"_id": 2, "name": "bob", "salary": 9100}
        ]}),
    )
    .await;
    let salary = "the filter reads field 'salary', which is not readable";
    let whole = "the filter reads the whole document, which is not readable";
    let over = |e: Value| json!({"$expr": {"$gt": [e, 5000]}});
    let probes = [
        (over(json!({"$getField": "salary"})), salary),
        (over(json!({"$getField": {"field": "salary"}})), salary),
        (
            over(json!({"$getField": {"field": {"$literal": "salary"}}})),
            salary,
        ),
        (over(json!({"$getField": {"$literal": "salary"}})), salary),
        (
            over(json!({"$getField": {"field": "salary", "input": "$$CURRENT"}})),
            salary,
        ),
        (
            over(json!({"$getField": {"$concat": ["sal", "ary"]}})),
            whole,
        ),
        (
            over(json!({"$getField": {"field": "salary",
                "input": {"$setField": {"field": "x", "input": "$$ROOT", "value": 1}}}})),
            whole,
        ),
        (
            over(json!({"$getField": {"field": "salary",
                "input": {"$unsetField": {"field": "name", "input": "$$ROOT"}}}})),
            whole,
        ),
        (
            json!({"$expr": {"$in": [{"k": "salary", "v": 9100}, {"$objectToArray": "$$CURRENT"}]}}),
            whole,
        ),
    ];
    for (filter, reads) in probes {
        for (action, verb, extra) in [
            ("find", "find", json!({"filter": filter})),
            ("findOne", "find", json!({"filter": filter})),
            (
                "updateOne",
                "update",
                json!({"filter": filter, "update": {"$set": {"seen": 1}}}),
            ),
            (
                "updateMany",
                "update",
                json!({"filter": filter, "update": {"$set": {"seen": 1}}}),
            ),
            (
                "replaceOne",
                "update",
                json!({"filter": filter, "replacement": {"name": "x"}}),
            ),
            ("deleteOne", "delete", json!({"filter": filter})),
            ("deleteMany", "delete", json!({"filter": filter})),
        ] {
            let message = format!("{verb} not permitted: {reads}");
            rig.rejected(
                ALICE,
                action,
                "payroll",
                extra,
                (403, "PermissionDenied", &message),
            )
            .await;
        }
    }
    // A name the filter can read stays usable.
    rig.expect(
        ALICE,
        "find",
        "payroll",
        json!({"filter": {"$expr": {"$eq": [{"$getField": "name"}, "bob"]}}}),
        200,
        json!({"documents": [{"_id": 2, "name": "bob"}]}),
    )
    .await;
    assert_eq!(
        rig.contents("payroll").await,
        json!([
            {"_id": 1, "name": "ann", "salary": 4200},
            {"_id": 2, "name": "bob", "salary": 9100}
        ])
    );
}

#[tokio::test]
async fn expression_field_names_are_reads_memory() {
    expression_field_names_are_reads(BackendKind::Memory).await;
}

#[tokio::test]
async fn expression_field_names_are_reads_durable() {
    expression_field_names_are_reads(BackendKind::Durable).await;
}

#[tokio::test]
async fn expression_field_names_are_reads_peer() {
    expression_field_names_are_reads(BackendKind::Peer).await;
}

/// With the owner pattern `{"owner_id": "%%user.name"}`, MongoDB's equality
/// also matches an array holding the name: a document bob writes with
/// `owner_id: ["bob", "alice"]` would show in alice's finds and let her
/// update or delete it. A write whose new `owner_id` matches anyone but the
/// writer, or anyone the stored version did not already match (an array
/// with other names, a document), is refused; an array of the writer alone,
/// and writes leaving a shared document's owners as they were, are not.
async fn owner_fields_cannot_name_other_users(kind: BackendKind) {
    let Some(rig) = rig(kind).await else {
        return;
    };
    let insert = "insert not permitted: field 'owner_id' would make the document match \
                  the rules of users other than you";
    for document in [
        json!({"_id": 1, "owner_id": ["bob", "alice"], "t": "planted"}),
        json!({"_id": 1, "owner_id": ["bob", {"id": "alice"}], "t": "planted"}),
        json!({"_id": 1, "owner_id": ["bob", ["alice"]], "t": "planted"}),
    ] {
        rig.rejected(
            BOB,
            "insertOne",
            "notes",
            json!({ "document": document }),
            (403, "PermissionDenied", insert),
        )
        .await;
    }
    // A document alone matches nobody's `owner_id` equality: the write
    // filter refuses it already.
    rig.rejected(
        BOB,
        "insertOne",
        "notes",
        json!({"document": {"_id": 1, "owner_id": {"id": "bob"}}}),
        (
            403,
            "PermissionDenied",
            "insert not permitted: the document does not match the role's write filter",
        ),
    )
    .await;
    rig.rejected(
        BOB,
        "insertMany",
        "notes",
        json!({"documents": [{"_id": 1, "owner_id": "bob"}, {"_id": 2, "owner_id": ["alice", "bob"]}]}),
        (403, "PermissionDenied", insert),
    )
    .await;
    assert_eq!(rig.contents("notes").await, json!([]));
    rig.ok(
        BOB,
        "insertMany",
        "notes",
        json!({"documents": [{"_id": 1, "owner_id": "bob"}, {"_id": 2, "owner_id": ["bob"]}]}),
    )
    .await;
    let update = |id: i32| {
        format!(
            "update not permitted: after the update, the document with _id {id} would match \
             the rules of users other than you through field 'owner_id'"
        )
    };
    for (id, change) in [
        (1, json!({"$set": {"owner_id": ["bob", "alice"]}})),
        (1, json!({"$set": {"owner_id": ["bob", {"id": "alice"}]}})),
        (2, json!({"$push": {"owner_id": "alice"}})),
        (2, json!({"$addToSet": {"owner_id": {"$each": ["alice"]}}})),
    ] {
        rig.rejected(
            BOB,
            "updateOne",
            "notes",
            json!({"filter": {"_id": id}, "update": change}),
            (403, "PermissionDenied", &update(id)),
        )
        .await;
    }
    rig.rejected(
        BOB,
        "updateMany",
        "notes",
        json!({"filter": {"_id": 1}, "update": [{"$set": {"owner_id": ["bob", "alice"]}}]}),
        (403, "PermissionDenied", &update(1)),
    )
    .await;
    rig.rejected(
        BOB,
        "replaceOne",
        "notes",
        json!({"filter": {"_id": 1}, "replacement": {"owner_id": ["alice", "bob"]}}),
        (403, "PermissionDenied", &update(1)),
    )
    .await;
    rig.rejected(
        BOB,
        "updateOne",
        "notes",
        json!({"filter": {"_id": 3}, "update": {"$set": {"owner_id": ["bob", "alice"]}},
               "upsert": true}),
        (
            403,
            "PermissionDenied",
            "upsert not permitted: field 'owner_id' would make the document match \
             the rules of users other than you",
        ),
    )
    .await;
    // Alice sees and changes nothing of bob's.
    rig.expect(
        ALICE,
        "find",
        "notes",
        json!({}),
        200,
        json!({"documents": []}),
    )
    .await;
    rig.expect(
        ALICE,
        "deleteMany",
        "notes",
        json!({"filter": {}}),
        200,
        json!({"deletedCount": 0}),
    )
    .await;
    assert_eq!(
        rig.contents("notes").await,
        json!([{"_id": 1, "owner_id": "bob"}, {"_id": 2, "owner_id": ["bob"]}])
    );
    // A document the admin shared stays shared: its owners may change other
    // fields and drop names, not add any.
    rig.ok(
        ADMIN,
        "insertOne",
        "notes",
        json!({"document": {"_id": 5, "owner_id": ["alice", "bob"]}}),
    )
    .await;
    rig.expect(
        BOB,
        "updateOne",
        "notes",
        json!({"filter": {"_id": 5}, "update": {"$set": {"t": "hi"}}}),
        200,
        json!({"matchedCount": 1, "modifiedCount": 1}),
    )
    .await;
    rig.rejected(
        BOB,
        "updateOne",
        "notes",
        json!({"filter": {"_id": 5}, "update": {"$push": {"owner_id": "carol"}}}),
        (403, "PermissionDenied", &update(5)),
    )
    .await;
    rig.expect(
        ALICE,
        "updateOne",
        "notes",
        json!({"filter": {"_id": 5}, "update": {"$pull": {"owner_id": "bob"}}}),
        200,
        json!({"matchedCount": 1, "modifiedCount": 1}),
    )
    .await;
    rig.expect(
        BOB,
        "find",
        "notes",
        json!({"filter": {"_id": 5}}),
        200,
        json!({"documents": []}),
    )
    .await;
}

#[tokio::test]
async fn owner_fields_cannot_name_other_users_memory() {
    owner_fields_cannot_name_other_users(BackendKind::Memory).await;
}

#[tokio::test]
async fn owner_fields_cannot_name_other_users_durable() {
    owner_fields_cannot_name_other_users(BackendKind::Durable).await;
}

#[tokio::test]
async fn owner_fields_cannot_name_other_users_peer() {
    owner_fields_cannot_name_other_users(BackendKind::Peer).await;
}
