//! The cost of App Services-style rules and JSON schemas, in-process through
//! the service (`tower::ServiceExt::oneshot` on a [`DataApiService`], no
//! HTTP), each figure next to a baseline measured in the same process:
//!
//! 1. `findOne` by `_id` on the embedded engine: no rules (baseline) vs. a
//!    two-role rule set (`admin` by user name, `owner` with read and write
//!    document filters on `owner`); the filter the rules produce, sent
//!    without rules, is shown too;
//! 2. `updateOne {"$inc": {"n": 1}}` by `_id` on the embedded engine: a
//!    read-write role without a schema (baseline) vs. the same role with a
//!    JSON schema on the collection, which sends every update through
//!    `Backend::write_checked` (atomic checked writes); no rules at all is
//!    shown too;
//! 3. `updateOne` under the two-role rule set: `$inc` of an unrelated field
//!    (baseline) vs. the same `$inc` plus `$set` of `owner`, the field the
//!    `owner` role's write filter depends on, which makes the post-image go
//!    through the rule re-check (again `write_checked`);
//! 4. when `DATA_API_TEST_MONGODB_URI` is set: part 2 on `MongoBackend`
//!    against that peer, where a checked write is a multi-document
//!    transaction (find, update, read back, commit). The peer used by this
//!    project's tests is SecantusDB, a wire-protocol server written in
//!    Python: its figures describe that peer, not MongoDB.
//!
//! Requests of the variants compared are interleaved (each round sends one
//! request of every variant, the first variant rotating), so machine noise
//! hits all of them alike; a warm-up (a tenth of the rounds) is discarded.
//! A request is timed from the call to the end of reading the response body;
//! building the request and checking the answer happen outside the timing.
//!
//! ```text
//! cargo bench -p integration-tests --bench rules [-- ROUNDS [PEER_ROUNDS]]
//! ```
//!
//! `ROUNDS` defaults to 20,000 (embedded engine), `PEER_ROUNDS` to 300.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use integration_tests::bench::{load_average, print_comparison, timed_call};
use integration_tests::unique_db;
use serde_json::{json, Value};
use tower_data_api::rules::{Role, Rule, Rules};
use tower_data_api::{
    AccessLevel, Backend, DataApi, DataApiService, MemoryBackend, MongoBackend, MongoBackendOptions,
};

const APP: &str = "rules-bench";
const SOURCE: &str = "mongodb-atlas";
const ALICE: &str = "rules-bench-alice-key-0123456789abcdefghijklmnopqrstuvwxyz";
/// Collection of owned documents (parts 1 and 3).
const OWNED: &str = "owned";
/// Collection with a JSON schema in the schema rule sets (parts 2 and 4).
const COUNTERS: &str = "counters";
const MEMORY_DOCS: usize = 10_000;
const PEER_DOCS: usize = 1_000;
const PEER_URI_VAR: &str = "DATA_API_TEST_MONGODB_URI";

/// The two-role rule set: `admin` (by user name) reads and writes
/// everything; `owner` reads and writes the documents whose `owner` is the
/// caller's name.
fn owner_rules() -> Rules {
    Rules::new().default_rule(
        Rule::new()
            .role(Role::read_write("admin").apply_when(json!({"%%user.name": "admin"})))
            .role(Role::read_write("owner").document_filters(
                Some(json!({"owner": "%%user.name"})),
                Some(json!({"owner": "%%user.name"})),
            )),
    )
}

/// One read-write default role.
fn read_write_rules() -> Rules {
    Rules::new().default_rule(Rule::new().role(Role::read_write("readWrite")))
}

/// The read-write role and a JSON schema on `database.counters`.
fn schema_rules(database: &str) -> Rules {
    read_write_rules().schema(
        database,
        COUNTERS,
        json!({
            "bsonType": "object",
            "required": ["n"],
            "properties": {"n": {"bsonType": ["int", "long"], "minimum": 0}}
        }),
    )
}

/// A service on `backend` accepting alice's key, with `rules` if any.
fn service(backend: &Arc<dyn Backend>, rules: Option<Rules>) -> DataApiService {
    let mut builder = DataApi::builder()
        .app_id(APP)
        .data_source_with_access(SOURCE, backend.clone(), AccessLevel::ReadWrite)
        .api_key("alice", ALICE);
    if let Some(rules) = rules {
        builder = builder.rules(SOURCE, rules);
    }
    builder.build().expect("service")
}

fn request(action: &str, body: &Value) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("/app/{APP}/endpoint/data/v1/action/{action}"))
        .header("apiKey", ALICE)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request")
}

/// Seeds `database.collection` with `documents` through `service`.
async fn seed(service: &DataApiService, database: &str, collection: &str, documents: Vec<Value>) {
    let count = documents.len();
    let body = json!({"dataSource": SOURCE, "database": database, "collection": collection,
                      "documents": documents});
    let (_, status, reply) = timed_call(service, request("insertMany", &body)).await;
    assert_eq!(status, 201, "seeding {collection}: {reply:?}");
    let reply: Value = serde_json::from_slice(&reply).expect("JSON reply");
    assert_eq!(reply["insertedIds"].as_array().map(Vec::len), Some(count));
}

/// What a reply must be, checked on every request (outside the timing).
type Expect = fn(&Value) -> Result<(), String>;

fn found_alices_document(reply: &Value) -> Result<(), String> {
    match reply["document"]["owner"].as_str() {
        Some("alice") => Ok(()),
        _ => Err(format!("expected one of alice's documents, got {reply}")),
    }
}

fn updated_one(reply: &Value) -> Result<(), String> {
    if reply["matchedCount"] == json!(1) && reply["modifiedCount"] == json!(1) {
        Ok(())
    } else {
        Err(format!("expected one document updated, got {reply}"))
    }
}

/// One of the variants compared: a service, an action and the body of round `i`.
struct Variant {
    label: &'static str,
    service: DataApiService,
    action: &'static str,
    body: Box<dyn Fn(usize) -> Value>,
    expect: Expect,
}

/// Runs `warm_up + rounds` rounds of one request per variant (interleaved,
/// the first variant rotating) and prints the figures, the first variant
/// being the baseline.
async fn compare(title: &str, variants: &[Variant], warm_up: usize, rounds: usize) {
    let mut samples: Vec<Vec<u64>> = variants
        .iter()
        .map(|_| Vec::with_capacity(rounds))
        .collect();
    let started = Instant::now();
    for i in 0..warm_up + rounds {
        for k in 0..variants.len() {
            let v = (i + k) % variants.len();
            let variant = &variants[v];
            let request = request(variant.action, &(variant.body)(i));
            let (elapsed, status, body) = timed_call(&variant.service, request).await;
            let reply: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if status != 200 {
                panic!("{title} / {}: status {status}: {reply}", variant.label);
            }
            if let Err(message) = (variant.expect)(&reply) {
                panic!("{title} / {}: {message}", variant.label);
            }
            if i >= warm_up {
                samples[v].push(elapsed.as_nanos() as u64);
            }
        }
    }
    let labels: Vec<&str> = variants.iter().map(|variant| variant.label).collect();
    print_comparison(title, &labels, samples, warm_up, rounds, started.elapsed());
}

/// The `$inc` comparison of part 2 (and 4): read-write role without schema
/// (baseline), no rules, read-write role with the schema.
fn schema_variants(backend: &Arc<dyn Backend>, database: &str, docs: usize) -> Vec<Variant> {
    let body = move |database: String| {
        move |i: usize| {
            json!({"dataSource": SOURCE, "database": database, "collection": COUNTERS,
                   "filter": {"_id": i % docs}, "update": {"$inc": {"n": 1}}})
        }
    };
    vec![
        Variant {
            label: "read-write role, no schema (baseline)",
            service: service(backend, Some(read_write_rules())),
            action: "updateOne",
            body: Box::new(body(database.to_owned())),
            expect: updated_one,
        },
        Variant {
            label: "no rules at all",
            service: service(backend, None),
            action: "updateOne",
            body: Box::new(body(database.to_owned())),
            expect: updated_one,
        },
        Variant {
            label: "read-write role + JSON schema (write_checked)",
            service: service(backend, Some(schema_rules(database))),
            action: "updateOne",
            body: Box::new(body(database.to_owned())),
            expect: updated_one,
        },
    ]
}

fn counters(docs: usize) -> Vec<Value> {
    (0..docs).map(|i| json!({"_id": i, "n": 0})).collect()
}

async fn memory_parts(rounds: usize) {
    let warm_up = (rounds / 10).max(1);
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let database = "bench";
    let plain = service(&backend, None);
    seed(
        &plain,
        database,
        OWNED,
        (0..MEMORY_DOCS)
            .map(|i| json!({"_id": i, "owner": if i % 2 == 0 { "alice" } else { "bob" }, "n": i}))
            .collect(),
    )
    .await;
    seed(&plain, database, COUNTERS, counters(MEMORY_DOCS)).await;
    // Alice's documents are the even `_id`s.
    let alices = |i: usize| (i * 2) % MEMORY_DOCS;

    let find = |filter: fn(usize) -> Value| {
        move |i: usize| {
            json!({"dataSource": SOURCE, "database": database, "collection": OWNED,
                   "filter": filter(alices(i))})
        }
    };
    compare(
        &format!(
            "1. findOne by _id, MemoryBackend, {MEMORY_DOCS} documents, alice's key: \
             rules vs. no rules"
        ),
        &[
            Variant {
                label: "no rules (baseline)",
                service: plain.clone(),
                action: "findOne",
                body: Box::new(find(|id| json!({"_id": id}))),
                expect: found_alices_document,
            },
            Variant {
                label: "no rules, the filter the rules produce",
                service: plain.clone(),
                action: "findOne",
                body: Box::new(find(
                    |id| json!({"$and": [{"_id": id}, {"owner": {"$eq": "alice"}}]}),
                )),
                expect: found_alices_document,
            },
            Variant {
                label: "two roles: admin + owner with document filters",
                service: service(&backend, Some(owner_rules())),
                action: "findOne",
                body: Box::new(find(|id| json!({"_id": id}))),
                expect: found_alices_document,
            },
        ],
        warm_up,
        rounds,
    )
    .await;

    compare(
        &format!(
            "2. updateOne {{$inc: {{n: 1}}}} by _id, MemoryBackend, {MEMORY_DOCS} documents: \
             JSON schema (checked write) vs. none"
        ),
        &schema_variants(&backend, database, MEMORY_DOCS),
        warm_up,
        rounds,
    )
    .await;

    let owners = service(&backend, Some(owner_rules()));
    let update = |update: fn() -> Value| {
        move |i: usize| {
            json!({"dataSource": SOURCE, "database": database, "collection": OWNED,
                   "filter": {"_id": alices(i)}, "update": update()})
        }
    };
    compare(
        &format!(
            "3. updateOne by _id under the two roles, MemoryBackend, {MEMORY_DOCS} documents: \
             touching `owner` (post-image rule re-check) vs. not"
        ),
        &[
            Variant {
                label: "$inc n (baseline)",
                service: owners.clone(),
                action: "updateOne",
                body: Box::new(update(|| json!({"$inc": {"n": 1}}))),
                expect: updated_one,
            },
            Variant {
                label: "$inc n + $set owner: alice (post-image check)",
                service: owners,
                action: "updateOne",
                body: Box::new(update(
                    || json!({"$inc": {"n": 1}, "$set": {"owner": "alice"}}),
                )),
                expect: updated_one,
            },
        ],
        warm_up,
        rounds,
    )
    .await;
}

async fn peer_part(uri: &str, rounds: usize) {
    let warm_up = (rounds / 10).max(1);
    println!();
    println!(
        "test peer from {PEER_URI_VAR}: SecantusDB, a MongoDB wire-protocol server written \
         in Python."
    );
    println!(
        "The figures below are for the TEST PEER, NOT MongoDB: they compare a plain update \
         with a checked one (a transaction: find, update, read back, commit) on that peer only."
    );
    let mongo = Arc::new(
        MongoBackend::connect(uri, MongoBackendOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{PEER_URI_VAR} is set but the peer is unusable: {e}")),
    );
    let backend: Arc<dyn Backend> = mongo.clone();
    let database = unique_db("rules_bench");
    seed(
        &service(&backend, None),
        &database,
        COUNTERS,
        counters(PEER_DOCS),
    )
    .await;
    compare(
        &format!(
            "4. updateOne {{$inc: {{n: 1}}}} by _id, MongoBackend on the TEST PEER (not \
             MongoDB), {PEER_DOCS} documents: JSON schema (checked write = transaction) vs. none"
        ),
        &schema_variants(&backend, &database, PEER_DOCS),
        warm_up,
        rounds,
    )
    .await;
    if let Err(e) = mongo.client().database(&database).drop().await {
        println!("   (could not drop the benchmark database {database}: {e})");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(|a| a.parse().expect("usage: rules [ROUNDS [PEER_ROUNDS]]"))
        .collect();
    let rounds = args.first().copied().unwrap_or(20_000).max(1);
    let peer_rounds = args.get(1).copied().unwrap_or(300).max(1);
    println!(
        "rules benchmark: in-process through DataApiService (oneshot, no HTTP), one request at \
         a time on a current-thread runtime; {} cores; load average {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        load_average()
    );
    println!(
        "ratios (×) are against the first line of each table (the baseline), measured \
         interleaved with it in this process"
    );
    memory_parts(rounds).await;
    match std::env::var(PEER_URI_VAR) {
        Ok(uri) if !uri.is_empty() => peer_part(&uri, peer_rounds).await,
        _ => {
            println!();
            println!(
                "4. test peer: SKIPPED: {PEER_URI_VAR} is not set, so there is no MongoDB \
                 wire-protocol peer to measure checked writes (transactions) against"
            );
        }
    }
    println!();
    println!("load average at the end: {}", load_average());
}
