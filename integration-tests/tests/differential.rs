//! Differential test: the same Data API requests, in the same order, against
//! the embedded engine and against the driver backend on the wire-protocol
//! peer, must give byte-identical answers (status and body).

use integration_tests::{body, standalone, unique_db, BackendKind, TestServer};
use serde_json::{json, Value};

/// One request of a scenario: the action and the body (without the common fields).
type Step = (&'static str, Value);

fn scenario() -> Vec<Step> {
    vec![
        (
            "insertMany",
            json!({"documents": [
                {"_id": 1, "name": "ada", "age": 36, "tags": ["math", "code"], "address": {"city": "London"}},
                {"_id": 2, "name": "grace", "age": 85, "tags": ["navy", "code"], "address": {"city": "Arlington"}},
                {"_id": 3, "name": "alan", "age": 41, "tags": [], "address": null},
                {"_id": 4, "name": "edsger", "age": 72, "score": 1.5},
                {"_id": 5, "name": "barbara", "age": null, "tags": ["code", null]}
            ]}),
        ),
        (
            "find",
            json!({"filter": {"tags": "code"}, "sort": {"_id": 1}}),
        ),
        (
            "find",
            json!({"filter": {"age": {"$gt": 40}}, "sort": {"age": -1}, "projection": {"name": 1, "_id": 0}}),
        ),
        ("find", json!({"filter": {"age": null}, "sort": {"_id": 1}})),
        ("find", json!({"filter": {"address.city": "London"}})),
        (
            "find",
            json!({"filter": {"$or": [{"age": {"$lt": 40}}, {"score": {"$exists": true}}]}, "sort": {"_id": -1}}),
        ),
        ("find", json!({"filter": {"tags": {"$size": 0}}})),
        (
            "find",
            json!({"filter": {"name": {"$in": ["ada", "alan"]}}, "sort": {"name": 1}, "skip": 1}),
        ),
        (
            "find",
            json!({"filter": {"age": {"$not": {"$gte": 50}}}, "sort": {"_id": 1}, "limit": 2}),
        ),
        (
            "find",
            json!({"sort": {"tags": 1, "_id": 1}, "projection": {"tags": 1}}),
        ),
        (
            "find",
            json!({"filter": {"$jsonSchema": {"required": ["tags"], "properties": {"age": {"bsonType": "int", "minimum": 40}}}}, "sort": {"_id": 1}}),
        ),
        (
            "find",
            json!({"filter": {"$jsonSchema": {"properties": {"address": {"bsonType": "object", "required": ["city"]}}}}, "sort": {"_id": 1}}),
        ),
        ("findOne", json!({"filter": {"name": "nobody"}})),
        (
            "findOne",
            json!({"filter": {"_id": 4}, "projection": {"score": 1}}),
        ),
        (
            "updateOne",
            json!({"filter": {"_id": 1}, "update": {"$set": {"address.zip": "N1"}, "$inc": {"age": 1}}}),
        ),
        (
            "updateMany",
            json!({"filter": {"tags": "code"}, "update": {"$addToSet": {"tags": "pioneer"}}}),
        ),
        (
            "updateMany",
            json!({"filter": {"tags": "code"}, "update": {"$addToSet": {"tags": "pioneer"}}}),
        ),
        (
            "updateOne",
            json!({"filter": {"_id": 3}, "update": {"$push": {"tags": {"$each": ["b", "a"], "$sort": 1}}}}),
        ),
        (
            "updateOne",
            json!({"filter": {"_id": 2}, "update": {"$pull": {"tags": "navy"}, "$unset": {"address": ""}}}),
        ),
        (
            "updateOne",
            json!({"filter": {"_id": 4}, "update": {"$mul": {"score": 2}, "$max": {"age": 80}, "$rename": {"name": "fullName"}}}),
        ),
        (
            "updateOne",
            json!({"filter": {"_id": 10}, "update": {"$set": {"n": 1}, "$setOnInsert": {"created": true}}, "upsert": true}),
        ),
        (
            "updateOne",
            json!({"filter": {"_id": 10}, "update": {"$set": {"n": 2}, "$setOnInsert": {"created": false}}, "upsert": true}),
        ),
        (
            "replaceOne",
            json!({"filter": {"_id": 5}, "replacement": {"name": "barbara", "replaced": true}}),
        ),
        (
            "replaceOne",
            json!({"filter": {"_id": 11}, "replacement": {"fresh": 1}, "upsert": true}),
        ),
        ("find", json!({"sort": {"_id": 1}})),
        (
            "aggregate",
            json!({"pipeline": [
                {"$unwind": "$tags"},
                {"$group": {"_id": "$tags", "n": {"$sum": 1}}},
                {"$sort": {"n": -1, "_id": 1}}
            ]}),
        ),
        (
            "aggregate",
            json!({"pipeline": [{"$match": {"age": {"$gte": 40}}}, {"$count": "older"}]}),
        ),
        (
            "aggregate",
            json!({"pipeline": [{"$project": {"name": 1, "decade": {"$multiply": [10, 2]}}}, {"$sort": {"_id": 1}}, {"$limit": 2}]}),
        ),
        ("deleteOne", json!({"filter": {"tags": "pioneer"}})),
        ("deleteMany", json!({"filter": {"age": {"$gte": 40}}})),
        ("insertOne", json!({"document": {"_id": 1}})),
        (
            "updateOne",
            json!({"filter": {"_id": 10}, "update": {"$set": {"_id": 12}}}),
        ),
        ("find", json!({"sort": {"_id": 1}})),
    ]
}

/// Runs the scenario and returns each answer as "status body".
async fn run(server: &TestServer, db: &str) -> Vec<String> {
    let mut answers = Vec::new();
    for (action, extra) in scenario() {
        let answer = server
            .call_with(
                action,
                &body(db, "people", extra).to_string(),
                &[("Accept", "application/ejson")],
            )
            .await;
        let shown = if answer.status >= 400 {
            // Error messages may word things differently; the status and code must agree.
            answer.json()["error_code"].to_string()
        } else {
            answer.text
        };
        answers.push(format!("{action} {} {shown}", answer.status));
    }
    answers
}

#[tokio::test]
async fn memory_and_driver_backends_answer_alike() {
    let memory = standalone(BackendKind::Memory).await.unwrap();
    let Some(peer) = standalone(BackendKind::Peer).await else {
        return;
    };
    let db = unique_db("diff");
    let expected = run(&peer, &db).await;
    let actual = run(&memory, &db).await;
    assert_eq!(expected.len(), actual.len(), "both ran the whole scenario");
    let mut mismatches = Vec::new();
    for (i, (peer_answer, memory_answer)) in expected.iter().zip(&actual).enumerate() {
        if peer_answer != memory_answer {
            mismatches.push(format!(
                "step {i}:\n  peer:   {peer_answer}\n  memory: {memory_answer}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} steps differ:\n{}",
        mismatches.len(),
        expected.len(),
        mismatches.join("\n")
    );
}

/// The durable mode answers exactly as the in-memory mode: same scenario,
/// same statuses and bodies.
#[tokio::test]
async fn durable_and_memory_modes_answer_alike() {
    let memory = standalone(BackendKind::Memory).await.unwrap();
    let durable = standalone(BackendKind::Durable).await.unwrap();
    let db = unique_db("diff_durable");
    let expected = run(&memory, &db).await;
    let actual = run(&durable, &db).await;
    assert_eq!(expected, actual);
}
