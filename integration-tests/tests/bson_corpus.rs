//! The BSON corpus's Extended JSON cases through the Data API over HTTP:
//! every `valid` case inserted with `Content-Type: application/ejson` and read
//! back with `Accept: application/ejson` must come back as its canonical
//! Extended JSON; every `parseErrors` case must be refused with a 400.

use std::path::Path;

use integration_tests::{standalone, unique_db, vectors::vectors_dir, BackendKind, TestServer};
use serde_json::Value;

/// Where the wire-protocol peer (a Python server, a test tool) departs from
/// MongoDB: it converts deprecated BSON types the way Python's driver does
/// and cannot hold dates past year 9999. These cases are listed, not failed,
/// on the driver backend only; the embedded engine must pass every case.
fn peer_deviation(file: &str, description: &str) -> Option<&'static str> {
    match (file, description) {
        ("symbol" | "undefined" | "dbpointer" | "multi-type-deprecated", _) => {
            Some("the peer converts deprecated BSON types")
        }
        ("datetime", "Y10K") => Some("the peer cannot store dates past year 9999"),
        _ => None,
    }
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: Vec<String>,
    excepted: Vec<String>,
}

async fn insert_and_read(
    server: &TestServer,
    db: &str,
    collection: &str,
    document: &str,
) -> Result<String, (u16, String)> {
    let insert = format!(
        r#"{{"dataSource":"mongodb-atlas","database":"{db}","collection":"{collection}","document":{document}}}"#
    );
    let inserted = server
        .call_with(
            "insertOne",
            &insert,
            &[
                ("Content-Type", "application/ejson"),
                ("Accept", "application/ejson"),
            ],
        )
        .await;
    if inserted.status != 201 {
        return Err((inserted.status, inserted.text));
    }
    let id = inserted.json()["insertedId"].to_string();
    // The generated `_id` is not part of the case: leave it out unless the case has one.
    let has_id = serde_json::from_str::<Value>(document).is_ok_and(|d| d.get("_id").is_some());
    let projection = if has_id { "{}" } else { r#"{"_id":0}"# };
    let find = format!(
        r#"{{"dataSource":"mongodb-atlas","database":"{db}","collection":"{collection}","filter":{{"_id":{id}}},"projection":{projection}}}"#
    );
    let found = server
        .call_with(
            "findOne",
            &find,
            &[
                ("Content-Type", "application/ejson"),
                ("Accept", "application/ejson"),
            ],
        )
        .await;
    if found.status != 200 {
        return Err((found.status, found.text));
    }
    Ok(found.json()["document"].to_string())
}

/// Canonical JSON text without insignificant whitespace, keys in their order.
fn normalized(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| text.to_owned())
}

async fn run(server: &TestServer, dir: &Path, on_peer: bool) -> Tally {
    let db = &unique_db("corpus");
    let mut tally = Tally::default();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("bson-corpus directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for path in files {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("?")
            .to_owned();
        let file: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let collection = format!("c_{}", stem.replace('-', "_"));
        for case in file["valid"].as_array().into_iter().flatten() {
            let description = case["description"].as_str().unwrap_or("?");
            let name = format!("{stem}: {description}");
            let canonical = case["canonical_extjson"].as_str().unwrap_or("{}");
            // The engine keeps deprecated types as they are, so the canonical form
            // (not `converted_extjson`) is what must come back.
            let expected = normalized(canonical);
            let failure = match insert_and_read(server, db, &collection, canonical).await {
                Ok(text) if normalized(&text) == expected => None,
                Ok(text) => Some(format!("{name}: expected {expected}, got {text}")),
                Err((status, text)) => Some(format!("{name}: answered {status}: {text}")),
            };
            let deviation = peer_deviation(&stem, description).filter(|_| on_peer);
            match (failure, deviation) {
                (None, _) => tally.passed += 1,
                (Some(_), Some(reason)) => tally.excepted.push(format!("{name} ({reason})")),
                (Some(failure), None) => tally.failed.push(failure),
            }
        }
        for case in file["parseErrors"].as_array().into_iter().flatten() {
            let name = format!(
                "{stem}: parse error: {}",
                case["description"].as_str().unwrap_or("?")
            );
            let text = case["string"].as_str().unwrap_or("");
            let document = if file["bson_type"] == "0x13" {
                format!(
                    r#"{{"d":{{"$numberDecimal":{}}}}}"#,
                    Value::String(text.to_owned())
                )
            } else {
                text.to_owned()
            };
            match insert_and_read(server, db, &collection, &document).await {
                Err((400, _)) => tally.passed += 1,
                Ok(stored) => tally
                    .failed
                    .push(format!("{name}: accepted {document}, stored {stored}")),
                Err((status, body)) => tally
                    .failed
                    .push(format!("{name}: answered {status}: {body}")),
            }
        }
    }
    tally
}

async fn corpus(kind: BackendKind, label: &str) {
    let Some(vectors) = vectors_dir() else { return };
    let Some(server) = standalone(kind).await else {
        return;
    };
    let tally = run(
        &server,
        &vectors.join("bson-corpus"),
        kind == BackendKind::Peer,
    )
    .await;
    for case in &tally.excepted {
        println!("  excepted: {case}");
    }
    for failure in &tally.failed {
        println!("  FAILED {failure}");
    }
    println!(
        "bson-corpus {label}: {} passed, {} failed, {} excepted",
        tally.passed,
        tally.failed.len(),
        tally.excepted.len()
    );
    assert!(tally.passed > 0, "no corpus case ran");
    assert!(
        tally.failed.is_empty(),
        "{} corpus cases failed on {label}:\n{}",
        tally.failed.len(),
        tally.failed.join("\n")
    );
}

#[tokio::test]
async fn extended_json_round_trips_through_the_embedded_engine() {
    corpus(BackendKind::Memory, "memory").await;
}

#[tokio::test]
async fn extended_json_round_trips_through_the_durable_embedded_engine() {
    corpus(BackendKind::Durable, "durable").await;
}

#[tokio::test]
async fn extended_json_round_trips_through_the_driver_backend() {
    corpus(BackendKind::Peer, "peer").await;
}
