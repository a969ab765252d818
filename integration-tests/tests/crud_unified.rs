//! Conformance: MongoDB's unified CRUD tests, driven through the Data API over
//! HTTP on both backends.
//!
//! Mapping: `initialData` → `deleteMany {}` + `insertMany`; each operation →
//! `POST .../action/<name>` (dropping `comment`, `batchSize`, `maxTimeMS`,
//! `allowDiskUse`); `expectResult` → compared with the Data API answer;
//! `expectError` → any 4xx; `outcome` → `find {}` sorted by `_id`. Tests that
//! need what the Data API has no way to say (hints, collations, `let`,
//! sessions, fail points, unordered inserts, …) are skipped with the reason.

use std::collections::BTreeMap;
use std::path::Path;

use bson::{Bson, Document};
use integration_tests::{standalone, vectors::vectors_dir, BackendKind, TestServer};
use serde_json::Value;

/// The server version the tests are selected for.
const SERVER_VERSION: (u32, u32, u32) = (8, 0, 0);

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: Vec<String>,
    skipped: BTreeMap<String, Vec<String>>,
}

impl Tally {
    fn skip(&mut self, name: &str, reason: impl Into<String>) {
        self.skipped
            .entry(reason.into())
            .or_default()
            .push(name.to_owned());
    }

    fn skipped_count(&self) -> usize {
        self.skipped.values().map(Vec::len).sum()
    }
}

fn to_bson(value: &Value) -> Bson {
    Bson::try_from(value.clone()).unwrap_or_else(|e| panic!("vector is not EJSON ({e}): {value}"))
}

fn parse_version(text: &str) -> (u32, u32, u32) {
    let mut parts = text.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// Why a list of `runOnRequirements` excludes this server, if it does.
fn unmet(requirements: Option<&Value>) -> Option<String> {
    let list = requirements?.as_array()?;
    if list.is_empty() {
        return None;
    }
    let mut reasons = Vec::new();
    for requirement in list {
        let mut reason = None;
        if let Some(min) = requirement["minServerVersion"].as_str() {
            if parse_version(min) > SERVER_VERSION {
                reason = Some(format!("needs server >= {min}"));
            }
        }
        if let Some(max) = requirement["maxServerVersion"].as_str() {
            if parse_version(max) < SERVER_VERSION {
                reason = Some(format!("needs server <= {max}"));
            }
        }
        if let Some(topologies) = requirement["topologies"].as_array() {
            if !topologies
                .iter()
                .any(|t| t == "single" || t == "replicaset")
            {
                reason = Some("needs a sharded cluster".into());
            }
        }
        if requirement["serverless"] == "require" {
            reason = Some("needs serverless".into());
        }
        if requirement["auth"] == true || requirement.get("csfle").is_some() {
            reason = Some("needs server auth or CSFLE".into());
        }
        match reason {
            None => return None,
            Some(reason) => reasons.push(reason),
        }
    }
    Some(reasons.join(" / "))
}

const DROPPED_ARGUMENTS: &[&str] = &["comment", "batchSize", "maxTimeMS", "allowDiskUse"];
const ACTIONS: &[&str] = &[
    "findOne",
    "find",
    "insertOne",
    "insertMany",
    "updateOne",
    "updateMany",
    "replaceOne",
    "deleteOne",
    "deleteMany",
    "aggregate",
];

/// Why an operation cannot be expressed as a Data API request, if it cannot.
fn inexpressible(operation: &Value) -> Option<String> {
    let name = operation["name"].as_str().unwrap_or("");
    if !ACTIONS.contains(&name) {
        return Some(format!("operation {name} is not a Data API action"));
    }
    let arguments = operation["arguments"].as_object()?;
    for (key, value) in arguments {
        if DROPPED_ARGUMENTS.contains(&key.as_str()) {
            continue;
        }
        let allowed = match (name, key.as_str()) {
            (_, "filter") => true,
            ("find", "projection" | "sort" | "skip" | "limit") => true,
            ("findOne", "projection" | "sort") => true,
            ("insertOne", "document") | ("insertMany", "documents") => true,
            ("insertMany", "ordered") => value == &Value::Bool(true),
            ("updateOne" | "updateMany", "update" | "upsert" | "arrayFilters") => true,
            ("replaceOne", "replacement" | "upsert") => true,
            ("aggregate", "pipeline") => true,
            _ => false,
        };
        if !allowed {
            return Some(format!(
                "argument '{key}' of {name} has no Data API equivalent"
            ));
        }
    }
    None
}

struct Entities {
    /// collection entity id → (database, collection)
    collections: BTreeMap<String, (String, String)>,
}

fn entities(file: &Value) -> Entities {
    let mut databases = BTreeMap::new();
    let mut collections = BTreeMap::new();
    for entity in file["createEntities"].as_array().into_iter().flatten() {
        if let Some(db) = entity.get("database") {
            databases.insert(
                db["id"].as_str().unwrap_or("").to_owned(),
                db["databaseName"].as_str().unwrap_or("").to_owned(),
            );
        }
    }
    for entity in file["createEntities"].as_array().into_iter().flatten() {
        if let Some(coll) = entity.get("collection") {
            let db = databases
                .get(coll["database"].as_str().unwrap_or(""))
                .cloned()
                .unwrap_or_default();
            collections.insert(
                coll["id"].as_str().unwrap_or("").to_owned(),
                (db, coll["collectionName"].as_str().unwrap_or("").to_owned()),
            );
        }
    }
    Entities { collections }
}

fn ejson(value: &Bson) -> String {
    value.clone().into_canonical_extjson().to_string()
}

async fn post(server: &TestServer, action: &str, body: &Document) -> (u16, Option<Bson>, String) {
    let answer = server
        .call_with(
            action,
            &ejson(&Bson::Document(body.clone())),
            &[
                ("Content-Type", "application/ejson"),
                ("Accept", "application/ejson"),
            ],
        )
        .await;
    let parsed = serde_json::from_str::<Value>(&answer.text)
        .ok()
        .and_then(|v| Bson::try_from(v).ok());
    (answer.status, parsed, answer.text)
}

fn request(db: &str, coll: &str) -> Document {
    let mut doc = Document::new();
    doc.insert("dataSource", "mongodb-atlas");
    doc.insert("database", db);
    doc.insert("collection", coll);
    doc
}

async fn reset(
    server: &TestServer,
    db: &str,
    coll: &str,
    documents: &[Bson],
) -> Result<(), String> {
    let mut clear = request(db, coll);
    clear.insert("filter", Document::new());
    let (status, _, text) = post(server, "deleteMany", &clear).await;
    if status != 200 {
        return Err(format!("reset deleteMany answered {status}: {text}"));
    }
    if !documents.is_empty() {
        let mut insert = request(db, coll);
        insert.insert("documents", documents.to_vec());
        let (status, _, text) = post(server, "insertMany", &insert).await;
        if !(200..300).contains(&status) {
            return Err(format!("initialData insertMany answered {status}: {text}"));
        }
    }
    Ok(())
}

/// The unified format's result shape of a Data API answer.
fn as_unified_result(action: &str, answer: &Bson) -> Option<Bson> {
    let doc = answer.as_document()?;
    Some(match action {
        "find" | "aggregate" => doc.get("documents")?.clone(),
        "findOne" => doc.get("document")?.clone(),
        "insertOne" => Bson::Document(bson::doc! {"insertedId": doc.get("insertedId")?.clone()}),
        "insertMany" => {
            let ids = doc.get_array("insertedIds").ok()?;
            let mut map = Document::new();
            for (i, id) in ids.iter().enumerate() {
                map.insert(i.to_string(), id.clone());
            }
            Bson::Document(bson::doc! {"insertedIds": map})
        }
        "updateOne" | "updateMany" | "replaceOne" => {
            let mut out = Document::new();
            out.insert("matchedCount", doc.get("matchedCount")?.clone());
            out.insert("modifiedCount", doc.get("modifiedCount")?.clone());
            let upserted = doc.get("upsertedId");
            out.insert("upsertedCount", Bson::Int32(i32::from(upserted.is_some())));
            if let Some(id) = upserted {
                out.insert("upsertedId", id.clone());
            }
            Bson::Document(out)
        }
        "deleteOne" | "deleteMany" => {
            Bson::Document(bson::doc! {"deletedCount": doc.get("deletedCount")?.clone()})
        }
        _ => return None,
    })
}

fn number(value: &Bson) -> Option<f64> {
    match value {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(f) => Some(*f),
        _ => None,
    }
}

fn type_name(value: &Bson) -> &'static str {
    match value {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::Binary(_) => "binData",
        Bson::ObjectId(_) => "objectId",
        Bson::Boolean(_) => "bool",
        Bson::DateTime(_) => "date",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::Int32(_) => "int",
        Bson::Timestamp(_) => "timestamp",
        Bson::Int64(_) => "long",
        Bson::Decimal128(_) => "decimal",
        _ => "other",
    }
}

/// Unified-format matching: extra fields allowed in root documents only,
/// numbers compared by value, `$$unsetOrMatches`, `$$exists`, `$$type`.
fn matches(expected: &Bson, actual: Option<&Bson>, root: bool, path: &str) -> Result<(), String> {
    if let Bson::Document(spec) = expected {
        if spec.len() == 1 {
            let (key, inner) = spec.iter().next().expect("one key");
            match key.as_str() {
                "$$unsetOrMatches" => {
                    return match actual {
                        None => Ok(()),
                        Some(_) => matches(inner, actual, root, path),
                    }
                }
                "$$exists" => {
                    let want = inner.as_bool().unwrap_or(true);
                    return if actual.is_some() == want {
                        Ok(())
                    } else {
                        Err(format!("{path}: expected exists={want}"))
                    };
                }
                "$$type" => {
                    let actual = actual.ok_or_else(|| format!("{path}: missing"))?;
                    let names: Vec<&str> = match inner {
                        Bson::String(s) => vec![s.as_str()],
                        Bson::Array(list) => list.iter().filter_map(Bson::as_str).collect(),
                        _ => vec![],
                    };
                    return if names.contains(&type_name(actual)) {
                        Ok(())
                    } else {
                        Err(format!(
                            "{path}: type {} not in {names:?}",
                            type_name(actual)
                        ))
                    };
                }
                _ => {}
            }
        }
    }
    let actual = actual.ok_or_else(|| format!("{path}: missing, expected {expected}"))?;
    match (expected, actual) {
        (Bson::Document(want), Bson::Document(got)) => {
            for (key, value) in want {
                matches(value, got.get(key), false, &format!("{path}.{key}"))?;
            }
            if !root {
                if let Some(extra) = got.keys().find(|key| !want.contains_key(*key)) {
                    return Err(format!("{path}: unexpected field '{extra}' in {got}"));
                }
            }
            Ok(())
        }
        (Bson::Array(want), Bson::Array(got)) => {
            if want.len() != got.len() {
                return Err(format!(
                    "{path}: expected {} items {expected}, got {} {actual}",
                    want.len(),
                    got.len()
                ));
            }
            // Documents of a root-level array (cursor results) are root-level too.
            for (i, (w, g)) in want.iter().zip(got).enumerate() {
                matches(w, Some(g), root, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ => match (number(expected), number(actual)) {
            (Some(a), Some(b)) if a == b => Ok(()),
            (Some(_), Some(_)) => Err(format!("{path}: expected {expected}, got {actual}")),
            _ if expected == actual => Ok(()),
            _ => Err(format!("{path}: expected {expected}, got {actual}")),
        },
    }
}

async fn run_test(
    server: &TestServer,
    file: &Value,
    entities: &Entities,
    test: &Value,
) -> Result<(), String> {
    // Reset every collection the test reads or checks.
    let mut reset_done = Vec::new();
    for data in file["initialData"].as_array().into_iter().flatten() {
        let db = data["databaseName"].as_str().unwrap_or("");
        let coll = data["collectionName"].as_str().unwrap_or("");
        let docs: Vec<Bson> = data["documents"]
            .as_array()
            .into_iter()
            .flatten()
            .map(to_bson)
            .collect();
        reset(server, db, coll, &docs).await?;
        reset_done.push((db.to_owned(), coll.to_owned()));
    }
    for outcome in test["outcome"].as_array().into_iter().flatten() {
        let key = (
            outcome["databaseName"].as_str().unwrap_or("").to_owned(),
            outcome["collectionName"].as_str().unwrap_or("").to_owned(),
        );
        if !reset_done.contains(&key) {
            reset(server, &key.0, &key.1, &[]).await?;
            reset_done.push(key);
        }
    }
    for (i, operation) in test["operations"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let action = operation["name"].as_str().unwrap_or("");
        let (db, coll) = entities
            .collections
            .get(operation["object"].as_str().unwrap_or(""))
            .cloned()
            .ok_or_else(|| format!("operation {i}: unknown object"))?;
        let mut body = request(&db, &coll);
        for (key, value) in operation["arguments"].as_object().into_iter().flatten() {
            if !DROPPED_ARGUMENTS.contains(&key.as_str()) && key != "ordered" {
                body.insert(key.clone(), to_bson(value));
            }
        }
        let (status, answer, text) = post(server, action, &body).await;
        if operation.get("expectError").is_some() {
            if !(400..500).contains(&status) {
                return Err(format!(
                    "operation {i} ({action}): expected an error, got {status}: {text}"
                ));
            }
            continue;
        }
        if !(200..300).contains(&status) {
            return Err(format!(
                "operation {i} ({action}): answered {status}: {text}"
            ));
        }
        if let Some(expected) = operation.get("expectResult") {
            let actual = answer
                .as_ref()
                .and_then(|a| as_unified_result(action, a))
                .ok_or_else(|| format!("operation {i} ({action}): unexpected answer {text}"))?;
            matches(&to_bson(expected), Some(&actual), true, action)
                .map_err(|e| format!("operation {i} ({action}): {e}"))?;
        }
    }
    for outcome in test["outcome"].as_array().into_iter().flatten() {
        let db = outcome["databaseName"].as_str().unwrap_or("");
        let coll = outcome["collectionName"].as_str().unwrap_or("");
        let mut find = request(db, coll);
        find.insert("sort", bson::doc! {"_id": 1});
        find.insert("limit", 0);
        let (status, answer, text) = post(server, "find", &find).await;
        if status != 200 {
            return Err(format!("outcome find answered {status}: {text}"));
        }
        let actual = answer
            .as_ref()
            .and_then(|a| as_unified_result("find", a))
            .ok_or_else(|| format!("outcome: unexpected answer {text}"))?;
        let expected = Bson::Array(
            outcome["documents"]
                .as_array()
                .into_iter()
                .flatten()
                .map(to_bson)
                .collect(),
        );
        matches(
            &expected,
            Some(&actual),
            false,
            &format!("outcome {db}.{coll}"),
        )?;
    }
    Ok(())
}

async fn run_suite(server: &TestServer, dir: &Path, label: &str) -> Tally {
    let mut tally = Tally::default();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("vector file");
        let file: Value = serde_json::from_str(&text).expect("vector JSON");
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("?")
            .to_owned();
        let file_unmet = unmet(file.get("runOnRequirements"));
        let entities = entities(&file);
        for test in file["tests"].as_array().into_iter().flatten() {
            let name = format!("{stem}: {}", test["description"].as_str().unwrap_or("?"));
            if let Some(reason) = &file_unmet {
                tally.skip(&name, reason.clone());
                continue;
            }
            if let Some(reason) = unmet(test.get("runOnRequirements")) {
                tally.skip(&name, reason);
                continue;
            }
            if test.get("skipReason").is_some() {
                tally.skip(&name, "the test itself says skip");
                continue;
            }
            let operations: Vec<&Value> = test["operations"]
                .as_array()
                .into_iter()
                .flatten()
                .collect();
            if let Some(reason) = operations.iter().find_map(|op| inexpressible(op)) {
                tally.skip(&name, reason);
                continue;
            }
            let checks_something = operations
                .iter()
                .any(|op| op.get("expectResult").is_some() || op.get("expectError").is_some())
                || test.get("outcome").is_some();
            if !checks_something {
                tally.skip(&name, "checks only command-monitoring events");
                continue;
            }
            match run_test(server, &file, &entities, test).await {
                Ok(()) => tally.passed += 1,
                Err(why) => tally.failed.push(format!("[{label}] {name}: {why}")),
            }
        }
    }
    tally
}

fn report(label: &str, tally: &Tally) {
    println!("crud-unified on {label}:");
    for (reason, names) in &tally.skipped {
        println!("  skipped ({reason}): {}", names.len());
        for name in names {
            println!("    - {name}");
        }
    }
    for failure in &tally.failed {
        println!("  FAILED {failure}");
    }
    println!(
        "crud-unified {label}: {} passed, {} failed, {} skipped",
        tally.passed,
        tally.failed.len(),
        tally.skipped_count()
    );
}

async fn conformance(kind: BackendKind, label: &str) {
    let Some(vectors) = vectors_dir() else { return };
    let Some(server) = standalone(kind).await else {
        return;
    };
    let tally = run_suite(&server, &vectors.join("crud-unified"), label).await;
    report(label, &tally);
    assert!(tally.passed > 0, "no unified test ran");
    assert!(
        tally.failed.is_empty(),
        "{} unified CRUD tests failed on {label}:\n{}",
        tally.failed.len(),
        tally.failed.join("\n")
    );
}

#[tokio::test]
async fn unified_crud_on_the_embedded_engine() {
    conformance(BackendKind::Memory, "memory").await;
}

#[tokio::test]
async fn unified_crud_on_the_durable_embedded_engine() {
    conformance(BackendKind::Durable, "durable").await;
}

#[tokio::test]
async fn unified_crud_on_the_driver_backend() {
    conformance(BackendKind::Peer, "peer").await;
}
