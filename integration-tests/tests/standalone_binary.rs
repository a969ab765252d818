//! The example standalone binary as a user runs it: start, read the banner,
//! send a request with the printed key, stop with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use integration_tests::{standalone_binary, temp_dir};

/// Starts the binary without configuration in `cwd` (a temporary directory:
/// it writes `./data-api-data` there) and reads its banner.
async fn start_in(cwd: &Path) -> (Child, Vec<String>) {
    let mut child = Command::new(standalone_binary())
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(cwd)
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
    (child, lines)
}

fn value_of(lines: &[String], label: &str) -> String {
    lines
        .iter()
        .find_map(|line| line.split_once(label).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no '{label}' in banner: {lines:?}"))
}

fn stop(child: &mut Child) {
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[tokio::test]
async fn starts_prints_url_and_key_serves_and_stops_on_sigterm() {
    let cwd = temp_dir();
    let (mut child, lines) = start_in(&cwd).await;
    let base = value_of(&lines, "Data API base URL:");
    let key = value_of(&lines, "demo API key:");
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/app/data-local/endpoint/data/v1")
    );
    assert_eq!(key.len(), 64);
    let data_dir = std::path::absolute(cwd.join("data-api-data")).expect("absolute");
    let expected = format!(
        "mongodb-atlas (embedded engine, data in {})",
        data_dir.display()
    );
    assert!(
        lines.iter().any(|l| l.contains(&expected)),
        "{expected} not in {lines:?}"
    );

    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/action/insertOne"))
        .header("apiKey", &key)
        .body(r#"{"dataSource":"mongodb-atlas","database":"todo","collection":"tasks","document":{"text":"Do the dishes"}}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 201);
    tokio::task::spawn_blocking(move || stop(&mut child))
        .await
        .expect("stopped");
    assert!(data_dir.join("data.redb").is_file());

    // A restart in the same directory finds the document.
    let (mut child, lines) = start_in(&cwd).await;
    let base = value_of(&lines, "Data API base URL:");
    let key = value_of(&lines, "demo API key:");
    let response = client
        .post(format!("{base}/action/find"))
        .header("apiKey", &key)
        .body(
            r#"{"dataSource":"mongodb-atlas","database":"todo","collection":"tasks","filter":{}}"#,
        )
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let found: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
    assert_eq!(found["documents"][0]["text"], "Do the dishes", "{found}");

    // A second server on the same directory stops with the path named.
    let second = Command::new(standalone_binary())
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(&cwd)
        .env_remove("MONGODB_URI")
        .output()
        .expect("second server runs");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("data-api-data") && stderr.contains("in use by another process"),
        "{stderr}"
    );
    tokio::task::spawn_blocking(move || stop(&mut child))
        .await
        .expect("stopped");
    let _ = std::fs::remove_dir_all(&cwd);
}

/// Runs a subcommand of the binary without configuration in `cwd`;
/// (success, stdout, stderr).
fn subcommand(cwd: &Path, args: &[&str], password: Option<&str>) -> (bool, String, String) {
    let mut command = Command::new(standalone_binary());
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("MONGODB_URI")
        .env_remove("DATA_API_PASSWORD");
    if let Some(password) = password {
        command.env("DATA_API_PASSWORD", password);
    }
    let output = command.output().expect("the subcommand runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn post(url: String, headers: &[(&str, &str)], body: &str) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().post(url).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("body");
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

#[tokio::test]
async fn subcommands_reach_the_running_server_and_its_state_survives_a_restart() {
    let cwd = temp_dir();
    let (mut child, lines) = start_in(&cwd).await;
    let base = value_of(&lines, "Data API base URL:");
    let root = base.split("/app/").next().unwrap().to_owned();
    let find = |base: &str| format!("{base}/action/find");
    let body = r#"{"dataSource":"mongodb-atlas","database":"todo","collection":"tasks"}"#;

    // The server holds ./data-api-data: the subcommands go through its admin socket.
    let (ok, key, err) = subcommand(&cwd, &["keys", "create", "from-the-cli"], None);
    assert!(ok, "{err}");
    let key = key.trim().to_owned();
    assert_eq!(key.len(), 64, "{key}");
    assert_eq!(post(find(&base), &[("apiKey", &key)], body).await.0, 200);
    let (ok, id, err) = subcommand(
        &cwd,
        &["users", "add", "cli@example.com"],
        Some("a cli password"),
    );
    assert!(ok && id.trim().len() == 24, "{id} {err}");
    let login =
        format!("{root}/api/client/v2.0/app/data-local/auth/providers/local-userpass/login");
    let credentials = r#"{"username":"cli@example.com","password":"a cli password"}"#;
    let (status, tokens) = post(login.clone(), &[], credentials).await;
    assert_eq!(status, 200, "{tokens}");
    let refresh = format!("Bearer {}", tokens["refresh_token"].as_str().unwrap());

    tokio::task::spawn_blocking(move || stop(&mut child))
        .await
        .expect("stopped");
    let (mut child, lines) = start_in(&cwd).await;
    let base = value_of(&lines, "Data API base URL:");
    let root = base.split("/app/").next().unwrap().to_owned();
    let login =
        format!("{root}/api/client/v2.0/app/data-local/auth/providers/local-userpass/login");

    // After the restart: the key, the session, the user and the logs are there.
    assert_eq!(
        post(find(&base), &[("apiKey", &key)], body).await.0,
        200,
        "the key"
    );
    let session = format!("{root}/api/client/v2.0/auth/session");
    let (status, refreshed) = post(session, &[("authorization", &refresh)], "").await;
    assert_eq!(
        status, 201,
        "the refresh token from before the restart: {refreshed}"
    );
    assert_eq!(post(login, &[], credentials).await.0, 200, "the user");
    let (ok, logs, err) = subcommand(&cwd, &["logs", "--key", "from-the-cli"], None);
    assert!(ok, "{err}");
    assert!(
        logs.lines().count() >= 1,
        "the entry from before the restart: {logs}"
    );

    let (ok, _, err) = subcommand(&cwd, &["keys", "delete", "from-the-cli"], None);
    assert!(ok, "{err}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        post(find(&base), &[("apiKey", &key)], body).await.0,
        401,
        "deleted"
    );
    let (ok, _, err) = subcommand(&cwd, &["keys", "delete", "from-the-cli"], None);
    assert!(!ok && err.contains("does not exist"), "{err}");

    tokio::task::spawn_blocking(move || stop(&mut child))
        .await
        .expect("stopped");
    // With no server, the subcommands open the directory themselves.
    let (ok, listed, err) = subcommand(&cwd, &["keys", "list"], None);
    assert!(
        ok && listed.contains("demo") && !listed.contains("from-the-cli"),
        "{listed} {err}"
    );
    let _ = std::fs::remove_dir_all(&cwd);
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
