//! Engine attacks: requests that tried to exhaust the embedded engine's
//! memory, run past their deadline, or stall everyone else. Each runs the
//! real standalone binary under the harness's memory cap.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::harness::*;

/// Documents in the `mid` collection the attacks read.
const MID_DOCUMENTS: usize = 2_000;

async fn seed(server: &Server) {
    let documents: Vec<Value> = (0..MID_DOCUMENTS)
        .map(|i| json!({"_id": i, "n": i, "pad": "x".repeat(200)}))
        .collect();
    let (status, body) = server
        .call(
            "insertMany",
            &json!({"dataSource": "mongodb-atlas", "database": "hostile", "collection": "mid",
                    "documents": documents}),
        )
        .await;
    assert_eq!(status, 201, "seeding: {body}");
    let (status, body) = server
        .call(
            "insertOne",
            &json!({"dataSource": "mongodb-atlas", "database": "hostile", "collection": "one",
                    "document": {"x": 1}}),
        )
        .await;
    assert_eq!(status, 201, "seeding: {body}");
}

fn aggregate(collection: &str, pipeline: Value) -> Value {
    json!({"dataSource": "mongodb-atlas", "database": "hostile", "collection": collection,
           "pipeline": pipeline})
}

/// CPU time (user + system) the process has used, from /proc/<pid>/stat.
fn cpu_time(server: &Server) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.pid)).expect("stat");
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    // The kernel's clock tick is 100 Hz on Linux builds of this kind.
    Duration::from_millis(ticks * 10)
}

/// A pipeline that keeps one core busy for minutes within the memory
/// budget: 2,000 documents × 2,000 × 2,000 additions.
fn cpu_heavy() -> Value {
    json!([{"$project": {"x": {"$reduce": {
        "input": {"$range": [0, 2000]}, "initialValue": 0,
        "in": {"$add": ["$$value", {"$reduce": {"input": {"$range": [0, 2000]},
                "initialValue": 0, "in": {"$add": ["$$value", "$$this"]}}}]}}}}}])
}

/// Waits until the process has used (almost) no CPU for one second: the
/// engine work of abandoned requests has stopped.
async fn engine_goes_quiet(server: &Server, within: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        let before = cpu_time(server);
        tokio::time::sleep(Duration::from_secs(1)).await;
        if cpu_time(server).saturating_sub(before) < Duration::from_millis(300) {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bombs_fail_with_exceeded_memory_limit_and_the_server_stays_small() {
    bounded(async {
        // A deadline far past what a bomb takes here: under CI load one ran
        // past 10 s once and answered 504, which is not what this probes.
        let server = Server::start(&Settings {
            request_timeout_secs: 60.0,
            ..Settings::default()
        });
        seed(&server).await;
        let probe = server.probe().await;
        let bombs = [
            (
                "one",
                json!([{"$project": {"x": {"$map": {"input": {"$range": [0, 1_000_000]},
                                                         "in": {"$range": [0, 1_000_000]}}}}}]),
            ),
            (
                "mid",
                json!([{"$setWindowFields": {"sortBy": {"n": 1}, "output": {"all": {
                "$push": "$$ROOT", "window": {"documents": ["unbounded", "unbounded"]}}}}}]),
            ),
            (
                "one",
                json!([{"$project": {"x": {"$reduce": {"input": {"$range": [0, 30]},
                "initialValue": "ab",
                "in": {"$replaceAll": {"input": "$$value", "find": "a", "replacement": "aa"}}}}}}]),
            ),
            (
                "one",
                json!([{"$densify": {"field": "x",
                "range": {"step": 1, "bounds": [0, 1_000_000_000_000_i64]}}}]),
            ),
            (
                "mid",
                json!([{"$lookup": {"from": "mid", "pipeline": [], "as": "all"}},
                           {"$group": {"_id": null, "p": {"$push": "$$ROOT"}}}]),
            ),
            (
                "mid",
                json!([{"$project": {"a": {"$range": [0, 200_000]}}}, {"$unwind": "$a"},
                           {"$group": {"_id": "$a", "d": {"$push": "$$ROOT"}}}]),
            ),
        ];
        for (collection, pipeline) in bombs {
            let (status, body) = server
                .call("aggregate", &aggregate(collection, pipeline.clone()))
                .await;
            assert_eq!(status, 400, "{pipeline}: {body}");
            let message = body["error"].as_str().unwrap_or_default();
            assert!(
                message.contains("used too much memory"),
                "{pipeline}: {message}"
            );
            assert_eq!(body["error_code"], "MongoDBError");
            server.assert_healthy();
        }
        probe.finish().await.assert_served();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_heavy_work_ends_at_the_deadline_and_stops_consuming_cpu() {
    bounded(async {
        let settings = Settings {
            request_timeout_secs: 3.0,
            ..Settings::default()
        };
        let server = Server::start(&settings);
        seed(&server).await;
        let probe = server.probe().await;
        let started = Instant::now();
        let (status, body) = server
            .call("aggregate", &aggregate("mid", cpu_heavy()))
            .await;
        let took = started.elapsed();
        assert_eq!(status, 504, "{body}");
        assert!(
            took < Duration::from_secs(3) + Duration::from_secs(5),
            "answered after {took:?}"
        );
        assert!(
            engine_goes_quiet(&server, Duration::from_secs(10)).await,
            "the engine kept working after the deadline"
        );
        server.assert_healthy();
        probe.finish().await.assert_served();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_stops_its_engine_work() {
    bounded(async {
        let settings = Settings {
            request_timeout_secs: 60.0,
            ..Settings::default()
        };
        let server = Server::start(&settings);
        seed(&server).await;
        let client = reqwest::Client::new();
        let url = format!("http://{}{}", server.addr, action_path("aggregate"));
        let gone = client
            .post(url)
            .header("apiKey", KEY)
            .timeout(Duration::from_secs(1))
            .body(aggregate("mid", cpu_heavy()).to_string())
            .send()
            .await;
        assert!(gone.is_err(), "the client gave up before the answer");
        assert!(
            engine_goes_quiet(&server, Duration::from_secs(10)).await,
            "the engine kept working for a client that left"
        );
        server.assert_healthy();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_aggregations_neither_stall_point_reads_nor_bypass_admission() {
    bounded(async {
        let settings = Settings {
            request_timeout_secs: 4.0,
            max_concurrent_requests: 200,
            ..Settings::default()
        };
        let server = Server::start(&settings);
        seed(&server).await;
        let probe = server.probe().await;
        // Two heavy aggregations at once: a findOne is still answered.
        let client = reqwest::Client::new();
        let url = format!("http://{}{}", server.addr, action_path("aggregate"));
        let body = aggregate("mid", cpu_heavy()).to_string();
        let pair: Vec<_> = (0..2)
            .map(|_| {
                let (client, url, body) = (client.clone(), url.clone(), body.clone());
                tokio::spawn(async move {
                    client
                        .post(url)
                        .header("apiKey", KEY)
                        .body(body)
                        .send()
                        .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        // A scan (2,000 documents: the blocking pool, no job slot) is answered too.
        let started = Instant::now();
        let (status, found) = server
            .call(
                "find",
                &json!({"dataSource": "mongodb-atlas", "database": "hostile", "collection": "mid",
                        "filter": {"n": {"$gt": 1990}}}),
            )
            .await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["documents"].as_array().map(Vec::len), Some(9));
        assert!(
            started.elapsed() < ANSWER_BOUND,
            "the scan waited {:?}",
            started.elapsed()
        );
        probe.finish().await.assert_served();
        for heavy in pair {
            let status = heavy.await.expect("task").expect("an answer").status();
            assert_eq!(status.as_u16(), 504);
        }
        // Past the concurrency limit: 429s, even though every engine job
        // slot is busy (the limiter runs on free async workers).
        let mut heavy = tokio::task::JoinSet::new();
        for _ in 0..400 {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            heavy.spawn(async move {
                client
                    .post(url)
                    .header("apiKey", KEY)
                    .timeout(Duration::from_secs(30))
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            });
        }
        let mut statuses = Vec::new();
        while let Some(status) = heavy.join_next().await {
            statuses.push(status.expect("task"));
        }
        let refused = statuses.iter().filter(|s| **s == 429).count();
        let timed_out = statuses.iter().filter(|s| **s == 504).count();
        assert!(refused > 0, "admission answered no 429: {statuses:?}");
        assert_eq!(
            refused + timed_out,
            statuses.len(),
            "every heavy request was refused or timed out: {statuses:?}"
        );
        server.assert_healthy();
        assert_eq!(server.find_one_status().await, Ok(200));
    })
    .await;
}
