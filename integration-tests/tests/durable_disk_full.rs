//! A real I/O error during a write, on the standalone binary with
//! `uri = "file:<dir>"`: the server runs under a file-size limit
//! (RLIMIT_FSIZE, with SIGXFSZ ignored, so a write past it fails with
//! EFBIG as on a full disk). Writes past the limit fail with 503 in the
//! Data API's error shape, reads keep working and show exactly the
//! acknowledged writes, and after a restart without the limit the directory
//! holds exactly those.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use integration_tests::{standalone_binary, temp_dir, KEY};
use serde_json::{json, Value};

/// The server, killed when dropped.
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

fn start(config: &Path, max_file_bytes: Option<u64>) -> Server {
    let mut command = Command::new(standalone_binary());
    command
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env_remove("MONGODB_URI")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(bytes) = max_file_bytes {
        // SAFETY: between fork and exec only async-signal-safe calls
        // (signal, setrlimit, prctl) run, on values computed before the fork.
        unsafe {
            command.pre_exec(move || {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let limit = libc::rlimit {
                    rlim_cur: bytes,
                    rlim_max: bytes,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    let mut child = command.spawn().expect("standalone starts");
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
    let base = base.unwrap_or_else(|| panic!("the server did not start: {:?}", child.wait()));
    Server { child, base }
}

async fn call(base: &str, action: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({"dataSource": "mongodb-atlas", "database": "full", "collection": "docs"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let response = reqwest::Client::new()
        .post(format!("{base}/action/{action}"))
        .header("apiKey", KEY)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let value = serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
    (status, value)
}

async fn ids(base: &str) -> Vec<i64> {
    let (status, found) = call(base, "find", json!({"filter": {}, "limit": 50000})).await;
    assert_eq!(status, 200, "{found}");
    found["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| d["_id"].as_i64().expect("id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_fails_the_write_and_keeps_reads() {
    let dir = temp_dir();
    let config = dir.join("full.toml");
    std::fs::write(
        &config,
        format!(
            "[[data_sources]]\nname = \"mongodb-atlas\"\nuri = \"file:data\"\n\
             [[api_keys]]\nname = \"full\"\nkey = \"{KEY}\"\n"
        ),
    )
    .expect("config");
    // Create the file, then allow it 4 MiB more.
    drop(
        tokio::task::spawn_blocking({
            let config = config.clone();
            move || start(&config, None)
        })
        .await
        .expect("first start"),
    );
    let size = std::fs::metadata(dir.join("data").join("data.redb"))
        .expect("data file")
        .len();
    let server = tokio::task::spawn_blocking({
        let config = config.clone();
        move || start(&config, Some(size + 4 * 1024 * 1024))
    })
    .await
    .expect("limited start");
    let pad = "x".repeat(100_000);
    let mut acked = Vec::new();
    let mut refusal = None;
    for id in 0..200i64 {
        let (status, answer) = call(
            &server.base,
            "insertOne",
            json!({"document": {"_id": id, "pad": pad}}),
        )
        .await;
        if status == 201 {
            acked.push(id);
        } else {
            refusal = Some((status, answer));
            break;
        }
    }
    let (status, answer) = refusal.expect("the file-size limit was never reached");
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error_code"], "ServiceUnavailable", "{answer}");
    assert!(
        answer["error"].is_string() && answer["link"].is_string(),
        "{answer}"
    );
    assert!(!acked.is_empty(), "nothing fitted under the limit");
    // A small write after the failure: whatever the answer, memory and
    // disk agree on it (checked after the restart).
    let (status, answer) = call(
        &server.base,
        "insertOne",
        json!({"document": {"_id": 999, "pad": "small"}}),
    )
    .await;
    eprintln!(
        "{} inserts acknowledged before the limit; a small insert after it: {status}",
        acked.len()
    );
    match status {
        201 => acked.push(999),
        503 => assert_eq!(answer["error_code"], "ServiceUnavailable"),
        other => panic!("unexpected {other}: {answer}"),
    }
    // Reads go on and show exactly what was acknowledged.
    assert_eq!(ids(&server.base).await, acked);
    let (status, one) = call(
        &server.base,
        "findOne",
        json!({"filter": {"_id": acked[0]}}),
    )
    .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["document"]["_id"], acked[0]);
    // The failed write is nowhere, also after a restart without the limit.
    drop(server);
    let server = tokio::task::spawn_blocking(move || start(&config, None))
        .await
        .expect("restart");
    assert_eq!(ids(&server.base).await, acked);
    let (status, answer) = call(
        &server.base,
        "insertOne",
        json!({"document": {"_id": 1000, "pad": "small"}}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
