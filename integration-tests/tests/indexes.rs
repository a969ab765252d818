//! Declared indexes (`[[data_sources.indexes]]`) over HTTP on both
//! backends: the embedded engine keeps them, MongoBackend creates them on
//! the peer at start-up, and a unique index refuses the same writes with
//! the same answer on both.

use integration_tests::{standalone_with, unique_db, BackendKind, TestServer, KEY};
use serde_json::{json, Value};

fn config(database: &str) -> String {
    format!(
        "app_id = \"data-indexes\"\n\
         [[data_sources]]\nname = \"mongodb-atlas\"\n\
         [[data_sources.indexes]]\ndatabase = \"{database}\"\ncollection = \"users\"\n\
         keys = {{ email = 1 }}\nunique = true\n\
         [[data_sources.indexes]]\ndatabase = \"{database}\"\ncollection = \"orders\"\n\
         keys = {{ owner = 1, placed = -1 }}\nname = \"by_owner\"\n\
         [[api_keys]]\nname = \"itest\"\nkey = \"{KEY}\"\n"
    )
}

/// What each step answered: status and body, for comparing backends.
async fn unique_scenario(server: &TestServer, db: &str) -> Vec<(u16, Value)> {
    let mut answers = Vec::new();
    let steps: Vec<(&str, &str, Value)> = vec![
        (
            "insertMany",
            "users",
            json!({"documents": [{"_id": 1, "email": "a@x"}, {"_id": 2, "email": "b@x"}]}),
        ),
        (
            "insertOne",
            "users",
            json!({"document": {"_id": 3, "email": "a@x"}}),
        ),
        (
            "updateOne",
            "users",
            json!({"filter": {"_id": 2}, "update": {"$set": {"email": "a@x"}}}),
        ),
        (
            "replaceOne",
            "users",
            json!({"filter": {"_id": 2}, "replacement": {"email": "a@x"}}),
        ),
        (
            "updateOne",
            "users",
            json!({"filter": {"_id": 9}, "update": {"$set": {"email": "b@x"}}, "upsert": true}),
        ),
        (
            "updateOne",
            "users",
            json!({"filter": {"_id": 2}, "update": {"$set": {"email": "c@x"}}}),
        ),
        (
            "insertOne",
            "users",
            json!({"document": {"_id": 4, "email": "b@x"}}),
        ),
        ("find", "users", json!({"sort": {"_id": 1}})),
        (
            "insertMany",
            "orders",
            json!({"documents": [
                {"_id": 1, "owner": "ann", "placed": 3},
                {"_id": 2, "owner": "bob", "placed": 1},
                {"_id": 3, "owner": "ann", "placed": 7},
                {"_id": 4, "owner": "ann", "placed": 5}
            ]}),
        ),
        (
            "find",
            "orders",
            json!({"filter": {"owner": "ann"}, "sort": {"placed": -1}, "limit": 2}),
        ),
        (
            "find",
            "orders",
            json!({"filter": {"owner": "ann", "placed": {"$gte": 4}}, "sort": {"placed": 1}}),
        ),
    ];
    for (action, coll, extra) in steps {
        let answer = server.call_as(KEY, action, db, coll, extra.clone()).await;
        answers.push((answer.status, answer.json()));
    }
    answers
}

async fn run(kind: BackendKind, db: &str) -> Option<Vec<(u16, Value)>> {
    let server = standalone_with(&config(db), kind).await?;
    let mut answers = unique_scenario(&server, db).await;
    for (_, answer) in &mut answers {
        // The link names the request: different on every call.
        if let Some(fields) = answer.as_object_mut() {
            fields.remove("link");
        }
    }
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses,
        [201, 400, 400, 400, 400, 200, 201, 200, 201, 200, 200],
        "{kind:?}: {answers:#?}"
    );
    let refusal = &answers[1].1;
    assert_eq!(refusal["error_code"], "MongoDBError", "{kind:?}");
    let message = refusal["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("E11000 duplicate key error")
            && message.contains("index: email_1 dup key: { email: \"a@x\" }"),
        "{kind:?}: {message}"
    );
    assert_eq!(
        answers[7].1,
        json!({"documents": [
            {"_id": 1, "email": "a@x"}, {"_id": 2, "email": "c@x"}, {"_id": 4, "email": "b@x"}
        ]}),
        "{kind:?}: refused writes changed nothing"
    );
    assert_eq!(
        answers[9].1,
        json!({"documents": [
            {"_id": 3, "owner": "ann", "placed": 7}, {"_id": 4, "owner": "ann", "placed": 5}
        ]})
    );
    assert_eq!(
        answers[10].1,
        json!({"documents": [
            {"_id": 4, "owner": "ann", "placed": 5}, {"_id": 3, "owner": "ann", "placed": 7}
        ]})
    );
    Some(answers)
}

#[tokio::test]
async fn unique_indexes_answer_alike_on_both_backends() {
    // One database name for both, so messages naming it compare equal.
    let db = unique_db("indexes");
    let memory = run(BackendKind::Memory, &db)
        .await
        .expect("memory always runs");
    let Some(peer) = run(BackendKind::Peer, &db).await else {
        return;
    };
    // Same statuses and bodies, the duplicate-key messages included. The
    // peer (SecantusDB) words a duplicate key met by an update as MongoDB
    // 4.x did, behind "Plan executor error during update :: caused by :: ";
    // MongoDB 8 and the embedded engine give the E11000 text alone.
    let peer: Vec<(u16, Value)> = peer
        .into_iter()
        .map(|(status, mut answer)| {
            if let Some(Value::String(message)) = answer.get_mut("error") {
                *message =
                    message.replace("Plan executor error during update :: caused by :: ", "");
            }
            (status, answer)
        })
        .collect();
    for (i, (m, p)) in memory.iter().zip(&peer).enumerate() {
        assert_eq!(m, p, "step {i}: memory vs peer");
    }
}

#[tokio::test]
async fn bad_index_declarations_stop_start_up_naming_the_entry() {
    let toml = "[[data_sources]]\nname = \"mongodb-atlas\"\nuri = \"memory\"\n\
                [[data_sources.indexes]]\ndatabase = \"d\"\ncollection = \"c\"\n\
                keys = { a = 2 }\n\
                [[api_keys]]\nname = \"k\"\nkey = \"k\"\n";
    let config = tower_data_api::config::Config::from_toml(toml).expect("parses");
    let Err(err) = config.builder(None).await else {
        panic!("a direction of 2 must be refused");
    };
    assert_eq!(
        err.to_string(),
        "data_sources[0] ('mongodb-atlas').indexes[0].keys: the direction of 'a' must be 1 or -1, not 2"
    );
    let parsed = tower_data_api::config::Config::from_toml(
        "[[data_sources]]\nname = \"x\"\n[[data_sources.indexes]]\ndatabase = \"d\"\n\
         collection = \"c\"\nkeys = { z = 1, a = -1, m = 1 }\n",
    )
    .expect("parses");
    let spec = parsed.data_sources[0].indexes[0].spec().expect("valid");
    assert_eq!(
        spec.name(),
        "z_1_a_-1_m_1",
        "the keys keep the order written"
    );
}

/// Declared indexes apply to the durable mode as to the in-memory one.
#[tokio::test]
async fn unique_indexes_answer_alike_on_the_durable_mode() {
    let db = unique_db("indexes_durable");
    let memory = run(BackendKind::Memory, &db).await.expect("memory runs");
    let durable = run(BackendKind::Durable, &db).await.expect("durable runs");
    assert_eq!(memory, durable);
}
