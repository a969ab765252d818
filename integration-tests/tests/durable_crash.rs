//! Crash safety of the durable embedded engine, over real HTTP: the
//! standalone binary on `uri = "file:<dir>"`, concurrent writers, `kill -9`
//! at a random moment, restart, and a check of what the restarted server
//! holds against what was acknowledged and what was attempted:
//!
//! - every acknowledged insert is there;
//! - no acknowledged delete came back;
//! - each counter is between its acknowledged and its attempted increments;
//! - every 5-document `insertMany` batch is there entirely or not at all
//!   (entirely when acknowledged).
//!
//! `DURABLE_CRASH_SEED` replays a run (the seed is printed);
//! `DURABLE_CRASH_ROUNDS` sets the number of kill/restart rounds (default 20);
//! `DURABLE_CRASH_SYNC` the data source's `sync` (default `always`;
//! `periodic` fails this test by design: it may lose the last second).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::rng::Rng;
use integration_tests::{standalone_binary, temp_dir, KEY};
use serde_json::{json, Value};

const WRITERS: usize = 8;
const COUNTERS: usize = 4;

/// A running standalone server.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(config: &Path) -> Server {
    let mut child = Command::new(standalone_binary())
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env_remove("MONGODB_URI")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("standalone starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut base = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("banner line");
        if let Some((_, url)) = line.split_once("Data API base URL:") {
            base = Some(url.trim().to_owned());
        }
        if line.contains("data source:") {
            break;
        }
    }
    let base = base.unwrap_or_else(|| {
        let status = child.wait().ok();
        panic!("the server did not start (exit: {status:?})")
    });
    Server { child, base }
}

/// Each writer stops at its first failed request (the server was killed).
/// What the writers attempted and what was acknowledged, this round.
#[derive(Default)]
struct Round {
    inserts_attempted: BTreeSet<i64>,
    inserts_acked: BTreeSet<i64>,
    deletes_attempted: BTreeSet<i64>,
    deletes_acked: BTreeSet<i64>,
    incs_attempted: [u64; COUNTERS],
    incs_acked: [u64; COUNTERS],
    batches_attempted: BTreeSet<i64>,
    batches_acked: BTreeSet<i64>,
}

/// What the directory is known to hold (read back after each restart).
#[derive(Default)]
struct Model {
    docs: BTreeSet<i64>,
    counters: [u64; COUNTERS],
    batches: BTreeSet<i64>,
}

async fn call(client: &reqwest::Client, base: &str, action: &str, body: Value) -> Option<Value> {
    let response = client
        .post(format!("{base}/action/{action}"))
        .header("apiKey", KEY)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    let status = response.status();
    let value: Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
    status.is_success().then_some(value)
}

fn body(collection: &str, extra: Value) -> Value {
    let mut body =
        json!({"dataSource": "mongodb-atlas", "database": "crash", "collection": collection});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

#[allow(clippy::too_many_arguments)]
async fn writer(
    client: reqwest::Client,
    base: String,
    mut rng: Rng,
    deletable: Vec<i64>,
    next_id: Arc<Mutex<i64>>,
    round: Arc<Mutex<Round>>,
    until: Instant,
) {
    while Instant::now() < until {
        let id = {
            let mut next = next_id.lock().unwrap();
            *next += 1;
            *next
        };
        match rng.below(4) {
            0 => {
                round.lock().unwrap().inserts_attempted.insert(id);
                let ok = call(
                    &client,
                    &base,
                    "insertOne",
                    body("docs", json!({"document": {"_id": id, "w": "x"}})),
                )
                .await;
                if ok.is_none() {
                    return;
                }
                round.lock().unwrap().inserts_acked.insert(id);
            }
            1 => {
                let c = rng.below(COUNTERS);
                round.lock().unwrap().incs_attempted[c] += 1;
                let ok = call(
                    &client,
                    &base,
                    "updateOne",
                    body("counters", json!({"filter": {"_id": c as i64}, "update": {"$inc": {"n": 1}}, "upsert": true})),
                )
                .await;
                let Some(v) = ok else { return };
                assert!(
                    v["matchedCount"] == 1 || v.get("upsertedId").is_some(),
                    "{v}"
                );
                round.lock().unwrap().incs_acked[c] += 1;
            }
            2 => {
                round.lock().unwrap().batches_attempted.insert(id);
                let docs: Vec<Value> = (0..5)
                    .map(|k| json!({"_id": id * 10 + k, "batch": id}))
                    .collect();
                let ok = call(
                    &client,
                    &base,
                    "insertMany",
                    body("batches", json!({"documents": docs})),
                )
                .await;
                if ok.is_none() {
                    return;
                }
                round.lock().unwrap().batches_acked.insert(id);
            }
            _ => {
                if deletable.is_empty() {
                    continue;
                }
                let victim = deletable[rng.below(deletable.len())];
                if !round.lock().unwrap().deletes_attempted.insert(victim) {
                    continue;
                }
                let ok = call(
                    &client,
                    &base,
                    "deleteOne",
                    body("docs", json!({"filter": {"_id": victim}})),
                )
                .await;
                let Some(v) = ok else { return };
                assert_eq!(v["deletedCount"], 1, "delete of {victim}");
                round.lock().unwrap().deletes_acked.insert(victim);
            }
        }
    }
}

async fn read_all(client: &reqwest::Client, base: &str, collection: &str) -> Vec<Value> {
    let answer = call(
        client,
        base,
        "find",
        body(collection, json!({"filter": {}, "limit": 50000})),
    )
    .await
    .unwrap_or_else(|| panic!("find on {collection} after restart"));
    answer["documents"].as_array().cloned().unwrap_or_default()
}

/// Checks the restarted server against the round, and returns what it holds.
async fn check(server: &Server, before: &Model, round: &Round, label: &str) -> Model {
    let client = reqwest::Client::new();
    let docs: BTreeSet<i64> = read_all(&client, &server.base, "docs")
        .await
        .iter()
        .map(|d| d["_id"].as_i64().expect("int _id"))
        .collect();
    for id in &round.inserts_acked {
        assert!(docs.contains(id), "{label}: acknowledged insert {id} lost");
    }
    for id in &round.deletes_acked {
        assert!(
            !docs.contains(id),
            "{label}: acknowledged delete of {id} came back"
        );
    }
    for id in &docs {
        let known = before.docs.contains(id) || round.inserts_attempted.contains(id);
        assert!(known, "{label}: document {id} was never written");
    }
    for id in &before.docs {
        assert!(
            docs.contains(id) || round.deletes_attempted.contains(id),
            "{label}: document {id} vanished without a delete"
        );
    }
    let mut counters = [0u64; COUNTERS];
    for d in read_all(&client, &server.base, "counters").await {
        let c = d["_id"].as_i64().expect("counter id") as usize;
        counters[c] = d["n"].as_u64().expect("counter value");
    }
    for (c, value) in counters.iter().enumerate() {
        let low = before.counters[c] + round.incs_acked[c];
        let high = before.counters[c] + round.incs_attempted[c];
        assert!(
            (low..=high).contains(value),
            "{label}: counter {c} is {value}, expected {low}..={high}"
        );
    }
    let mut batches: BTreeMap<i64, usize> = BTreeMap::new();
    for d in read_all(&client, &server.base, "batches").await {
        *batches
            .entry(d["batch"].as_i64().expect("batch"))
            .or_default() += 1;
    }
    for (batch, n) in &batches {
        assert_eq!(*n, 5, "{label}: batch {batch} is partial ({n} of 5)");
        assert!(
            before.batches.contains(batch) || round.batches_attempted.contains(batch),
            "{label}: batch {batch} was never written"
        );
    }
    for batch in round.batches_acked.iter().chain(&before.batches) {
        assert!(batches.contains_key(batch), "{label}: batch {batch} lost");
    }
    Model {
        docs,
        counters,
        batches: batches.into_keys().collect(),
    }
}

fn seed() -> u64 {
    match std::env::var("DURABLE_CRASH_SEED") {
        Ok(text) => text.trim().parse().expect("DURABLE_CRASH_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

fn write_config(dir: &Path) -> PathBuf {
    // `periodic` (to see what it loses) only when asked.
    let sync = std::env::var("DURABLE_CRASH_SYNC").unwrap_or_else(|_| "always".into());
    let config = dir.join("crash.toml");
    std::fs::write(
        &config,
        format!(
            "[[data_sources]]\nname = \"mongodb-atlas\"\nuri = \"file:data\"\nsync = \"{sync}\"\n\
             [[api_keys]]\nname = \"crash\"\nkey = \"{KEY}\"\n\
             [limits]\ndefault_find_limit = 50000\nmax_find_limit = 50000\n"
        ),
    )
    .expect("write config");
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_keeps_every_acknowledged_write() {
    let seed = seed();
    let rounds: usize = std::env::var("DURABLE_CRASH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    eprintln!("durable_crash: seed {seed} (DURABLE_CRASH_SEED={seed} replays), {rounds} rounds");
    let mut rng = Rng::new(seed);
    let dir = temp_dir();
    let config = write_config(&dir);
    let next_id = Arc::new(Mutex::new(0i64));
    let mut model = Model::default();
    let mut acked_total = 0usize;
    let started = Instant::now();
    let mut server = tokio::task::spawn_blocking({
        let config = config.clone();
        move || start(&config)
    })
    .await
    .expect("start");
    for r in 0..rounds {
        let round = Arc::new(Mutex::new(Round::default()));
        let kill_after = Duration::from_millis(rng.int(30, 400) as u64);
        let until = Instant::now() + kill_after + Duration::from_secs(5);
        let deletable: Vec<i64> = model.docs.iter().copied().collect();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let tasks: Vec<_> = (0..WRITERS)
            .map(|_| {
                tokio::spawn(writer(
                    client.clone(),
                    server.base.clone(),
                    Rng::new(rng.next_u64()),
                    deletable.clone(),
                    next_id.clone(),
                    round.clone(),
                    until,
                ))
            })
            .collect();
        tokio::time::sleep(kill_after).await;
        // kill -9 while the writers are in full flight.
        server.child.kill().expect("kill -9");
        server.child.wait().expect("reap");
        for task in tasks {
            task.await.expect("writer");
        }
        server = tokio::task::spawn_blocking({
            let config = config.clone();
            move || start(&config)
        })
        .await
        .expect("restart");
        let round = std::mem::take(&mut *round.lock().unwrap());
        let acked = round.inserts_acked.len()
            + round.deletes_acked.len()
            + round.incs_acked.iter().sum::<u64>() as usize
            + round.batches_acked.len();
        acked_total += acked;
        model = check(&server, &model, &round, &format!("seed {seed} round {r}")).await;
        eprintln!(
            "round {r}: killed after {} ms, {acked} writes acknowledged; {} documents, {} batches, counters {:?}",
            kill_after.as_millis(),
            model.docs.len(),
            model.batches.len(),
            model.counters
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        acked_total > rounds,
        "the writers got almost nothing done: {acked_total}"
    );
    eprintln!(
        "durable_crash: {rounds} rounds, {acked_total} acknowledged writes checked in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
