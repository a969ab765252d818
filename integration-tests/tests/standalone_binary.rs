//! The example standalone binary as a user runs it: start, read the banner,
//! send a request with the printed key, stop with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `target/<profile>/examples/standalone`, next to this test's own binary.
fn standalone_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile directory");
    let binary = profile_dir.join("examples").join("standalone");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --example standalone` \
         (cargo test --workspace --all-features builds it)",
        binary.display()
    );
    binary
}

#[tokio::test]
async fn starts_prints_url_and_key_serves_and_stops_on_sigterm() {
    let mut child = Command::new(standalone_binary())
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("MONGODB_URI")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("standalone starts");
    let stdout = child.stdout.take().expect("stdout");
    let banner = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("banner line");
            let done = line.contains("demo API key:");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let lines = tokio::time::timeout(Duration::from_secs(60), banner)
        .await
        .expect("banner in time")
        .expect("banner read");
    let value_of = |label: &str| {
        lines
            .iter()
            .find_map(|line| line.split_once(label).map(|(_, v)| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no '{label}' in banner: {lines:?}"))
    };
    let base = value_of("Data API base URL:");
    let key = value_of("demo API key:");
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/app/data-local/endpoint/data/v1")
    );
    assert_eq!(key.len(), 64);
    assert!(lines
        .iter()
        .any(|l| l.contains("mongodb-atlas (embedded engine)")));

    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/action/insertOne"))
        .header("apiKey", &key)
        .body(r#"{"dataSource":"mongodb-atlas","database":"todo","collection":"tasks","document":{"text":"Do the dishes"}}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 201);

    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn a_bad_config_names_the_file_and_field() {
    let dir = std::env::temp_dir().join(format!("tda-bad-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[[data_sources]]\nname = \"x\"\naccess = \"everything\"\n",
    )
    .unwrap();
    let output = Command::new(standalone_binary())
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .env_remove("MONGODB_URI")
        .output()
        .expect("standalone runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("data_sources[0] ('x').access"), "{stderr}");
    let output = Command::new(standalone_binary())
        .args(["--config", "/nonexistent/tda.toml"])
        .output()
        .expect("standalone runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/tda.toml"));
}
