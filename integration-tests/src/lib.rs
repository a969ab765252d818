//! Test harness: starts the standalone server and the three framework examples
//! on `127.0.0.1:0` and talks to them over real TCP.
//!
//! The example sources are compiled in here as they are (`#[path]`), so the
//! tests exercise exactly the code the examples ship.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub mod bench;

// The examples' `main`s (and the banner only `main` prints) go unused here.
#[path = "../../examples/standalone/main.rs"]
#[allow(dead_code)]
pub mod standalone;

#[path = "../../examples/axum.rs"]
#[allow(dead_code)]
pub mod axum_example;

#[path = "../../examples/poem.rs"]
#[allow(dead_code)]
pub mod poem_example;

#[path = "../../examples/warp.rs"]
#[allow(dead_code)]
pub mod warp_example;

pub mod raw;
pub mod rng;
pub mod vectors;

/// The API key every test server accepts.
pub const KEY: &str = "itest-key-0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEF";

/// Which backend a standalone server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The embedded engine.
    Memory,
    /// The official driver against the wire-protocol peer.
    Peer,
    /// The embedded engine, durable: every data source without a `uri`
    /// gets `uri = "file:<a new temporary directory>"`.
    Durable,
}

/// The peer's URI from `DATA_API_TEST_MONGODB_URI`.
///
/// Fails the test when it is missing, unless `DATA_API_TEST_NO_PEER=1` says
/// the run deliberately has no peer (then the caller reports the skip).
pub fn peer_uri() -> Option<String> {
    match std::env::var("DATA_API_TEST_MONGODB_URI") {
        Ok(uri) if !uri.is_empty() => Some(uri),
        _ if std::env::var("DATA_API_TEST_NO_PEER").as_deref() == Ok("1") => {
            eprintln!("SKIPPED (DATA_API_TEST_NO_PEER=1): this test needs the wire-protocol peer");
            None
        }
        _ => panic!(
            "this test needs the wire-protocol peer: run `bash .ci/peer.sh start` and set \
             DATA_API_TEST_MONGODB_URI (or run the whole suite with `bash .ci/run`); set \
             DATA_API_TEST_NO_PEER=1 to skip peer tests on purpose"
        ),
    }
}

/// A running server and a client for it.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://addr[/prefix]/app/<app>/endpoint/data/v1`.
    pub base: String,
    /// The HTTP client.
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    /// A durable server's data directory, removed with the server.
    data_dir: Option<PathBuf>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(dir) = self.data_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `toml` with `uri = "file:<dir>/<n>"` in every `[[data_sources]]` table
/// that names no `uri`, for [`BackendKind::Durable`].
pub fn durable_toml(toml: &str, dir: &Path) -> String {
    let lines: Vec<&str> = toml.lines().collect();
    let mut out = String::new();
    let mut n = 0;
    for (i, line) in lines.iter().enumerate() {
        out.push_str(line);
        out.push('\n');
        if line.trim() != "[[data_sources]]" {
            continue;
        }
        let has_uri = lines[i + 1..]
            .iter()
            .take_while(|l| !l.trim_start().starts_with('['))
            .any(|l| l.trim_start().starts_with("uri"));
        if !has_uri {
            out.push_str(&format!(
                "uri = \"file:{}\"\n",
                dir.join(n.to_string()).display()
            ));
            n += 1;
        }
    }
    out
}

/// A unique database name, so tests sharing the peer never see each other's data.
pub fn unique_db(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{pid}_{nanos}_{n}")
}

/// `target/<profile>/examples/standalone`, next to this test's own binary.
pub fn standalone_binary() -> PathBuf {
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

/// A new, empty temporary directory.
pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique_db("tda"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes `contents` as `name` into a new temporary directory and returns
/// the file's path.
fn temp_file(name: &str, contents: &str) -> PathBuf {
    let path = temp_dir().join(name);
    std::fs::write(&path, contents).expect("write temp file");
    path
}

/// Runs the standalone server (the example's own `launch`) with the
/// configuration `toml`; the server stops when `stop` is sent or dropped.
pub async fn launch(
    toml: &str,
    mongodb_uri: Option<String>,
    stop: oneshot::Receiver<()>,
) -> Result<standalone::Running, Box<dyn std::error::Error>> {
    let options = standalone::Options {
        listen: Some("127.0.0.1:0".into()),
        config: Some(temp_file("config.toml", toml)),
        mongodb_uri,
        ..standalone::Options::default()
    };
    standalone::launch(options, async {
        let _ = stop.await;
    })
    .await
}

/// Starts the standalone server with a config file.
pub async fn standalone_with(toml: &str, kind: BackendKind) -> Option<TestServer> {
    let mongodb_uri = match kind {
        BackendKind::Memory | BackendKind::Durable => None,
        BackendKind::Peer => Some(peer_uri()?),
    };
    let (toml, data_dir) = match kind {
        BackendKind::Durable => {
            let dir = temp_dir();
            (durable_toml(toml, &dir), Some(dir))
        }
        _ => (toml.to_owned(), None),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let running = launch(&toml, mongodb_uri, stopped)
        .await
        .expect("standalone server starts");
    if kind == BackendKind::Durable {
        assert!(
            running.sources.iter().any(|(_, s)| s.starts_with("file:")),
            "not durable: {:?}",
            running.sources
        );
    }
    Some(TestServer {
        addr: running.addr,
        base: running.base_url,
        client: client(),
        stop: Some(stop),
        data_dir,
    })
}

/// Where a data source takes its App Services rules from.
#[derive(Debug, Clone, Copy)]
pub enum RulesSource<'a> {
    /// One JSON file holding every collection's rules (`rules_file`).
    File(&'a Value),
    /// An App Services export directory (`rules_dir`).
    Dir(&'a Path),
}

/// A configuration with one data source (`mongodb-atlas`) governed by
/// `rules` and one API key per `(name, key)`: rules see the key's name as
/// `%%user.name`.
pub fn rules_config(app_id: &str, rules: RulesSource, keys: &[(&str, &str)]) -> String {
    let source = match rules {
        RulesSource::File(rules) => format!(
            "rules_file = '{}'",
            temp_file("rules.json", &rules.to_string()).display()
        ),
        RulesSource::Dir(dir) => format!("rules_dir = '{}'", dir.display()),
    };
    let mut config =
        format!("app_id = \"{app_id}\"\n[[data_sources]]\nname = \"mongodb-atlas\"\n{source}\n");
    for (name, key) in keys {
        config.push_str(&format!(
            "[[api_keys]]\nname = \"{name}\"\nkey = \"{key}\"\n"
        ));
    }
    config
}

/// A role for the key named `admin`: reads and writes everything.
pub fn admin_role() -> Value {
    serde_json::json!({"name": "admin", "apply_when": {"%%user.name": "admin"}, "read": true, "write": true})
}

/// A standalone server under App Services rules with a database of its
/// own, for tests that act as several principals (API keys whose names the
/// rules read as `%%user.name`).
pub struct RulesRig {
    /// The server.
    pub server: TestServer,
    /// The rig's database (unique per rig).
    pub db: String,
    /// The key that reads collection contents ([`RulesRig::contents`]).
    admin_key: String,
}

impl RulesRig {
    /// Starts a server whose data source has the rules `rules(db)` and one
    /// API key per `(name, key)`; the key named `admin` reads contents.
    /// `None` when the peer is asked for and DATA_API_TEST_NO_PEER=1.
    pub async fn start(
        app_id: &str,
        rules: impl FnOnce(&str) -> Value,
        keys: &[(&str, &str)],
        kind: BackendKind,
    ) -> Option<RulesRig> {
        let db = unique_db(app_id.trim_start_matches("data-"));
        let config = rules_config(app_id, RulesSource::File(&rules(&db)), keys);
        Self::launch(db, &config, keys, kind).await
    }

    /// Like [`RulesRig::start`], with the rules of an App Services export
    /// directory: `export(db)` writes it and returns its path.
    pub async fn start_with_export(
        app_id: &str,
        export: impl FnOnce(&str) -> PathBuf,
        keys: &[(&str, &str)],
        kind: BackendKind,
    ) -> Option<RulesRig> {
        let db = unique_db(app_id.trim_start_matches("data-"));
        let config = rules_config(app_id, RulesSource::Dir(&export(&db)), keys);
        Self::launch(db, &config, keys, kind).await
    }

    async fn launch(
        db: String,
        config: &str,
        keys: &[(&str, &str)],
        kind: BackendKind,
    ) -> Option<RulesRig> {
        let server = standalone_with(config, kind).await?;
        let admin_key = keys
            .iter()
            .find(|(name, _)| *name == "admin")
            .map(|(_, key)| (*key).to_owned())
            .unwrap_or_default();
        Some(RulesRig {
            server,
            db,
            admin_key,
        })
    }

    /// POSTs `action` on `coll` as the principal of `key`.
    pub async fn call(&self, key: &str, action: &str, coll: &str, extra: Value) -> Answer {
        self.server
            .call_as(key, action, &self.db, coll, extra)
            .await
    }

    /// Asserts the exact status and JSON body.
    pub async fn expect(
        &self,
        key: &str,
        action: &str,
        coll: &str,
        extra: Value,
        status: u16,
        body: Value,
    ) {
        let answer = self.call(key, action, coll, extra.clone()).await;
        assert_eq!(
            (answer.status, answer.json()),
            (status, body),
            "{action} on {coll} with {extra}"
        );
    }

    /// Asserts a 403 with `code` and exactly `message`.
    pub async fn refused(
        &self,
        key: &str,
        action: &str,
        coll: &str,
        extra: Value,
        code: &str,
        message: &str,
    ) {
        self.rejected(key, action, coll, extra, (403, code, message))
            .await;
    }

    /// Asserts an error answer: `(status, error_code, exact message)`.
    pub async fn rejected(
        &self,
        key: &str,
        action: &str,
        coll: &str,
        extra: Value,
        want: (u16, &str, &str),
    ) {
        let answer = self.call(key, action, coll, extra.clone()).await;
        let body = answer.json();
        assert_eq!(
            (
                answer.status,
                body["error_code"].as_str(),
                body["error"].as_str()
            ),
            (want.0, Some(want.1), Some(want.2)),
            "{action} on {coll} with {extra}"
        );
    }

    /// Asserts a 2xx answer and returns its body.
    pub async fn ok(&self, key: &str, action: &str, coll: &str, extra: Value) -> Value {
        let answer = self.call(key, action, coll, extra.clone()).await;
        assert!(
            (200..300).contains(&answer.status),
            "{action} on {coll} with {extra} answered {}: {}",
            answer.status,
            answer.text
        );
        answer.json()
    }

    /// What the `admin` key sees of `coll`, sorted by `_id` (asserts a 200).
    pub async fn contents(&self, coll: &str) -> Value {
        let extra = serde_json::json!({"sort": {"_id": 1}});
        let answer = self.call(&self.admin_key, "find", coll, extra).await;
        assert_eq!(answer.status, 200, "find on {coll}: {}", answer.text);
        answer.json()["documents"].clone()
    }
}

/// The default test configuration: one data source (embedded, or the peer
/// when the server is started with [`BackendKind::Peer`]) and [`KEY`].
pub fn default_config(app_id: &str) -> String {
    format!(
        "app_id = \"{app_id}\"\n\
         [[data_sources]]\nname = \"mongodb-atlas\"\n\
         [[data_sources]]\nname = \"readonly\"\naccess = \"read-only\"\n\
         [[data_sources]]\nname = \"locked\"\naccess = \"no-access\"\n\
         [[api_keys]]\nname = \"itest\"\nkey = \"{KEY}\"\n"
    )
}

/// The standalone server with [`default_config`].
pub async fn standalone(kind: BackendKind) -> Option<TestServer> {
    standalone_with(&default_config("data-itest"), kind).await
}

/// A client that never follows redirects and times out.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// The axum example on a free port.
pub async fn axum_app() -> TestServer {
    let (listener, addr) = bind().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = axum_example::app(axum_example::data_api(KEY));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    framework_server(addr, stop)
}

/// The poem example on a free port.
pub async fn poem_app() -> TestServer {
    let (listener, addr) = bind().await;
    drop(listener);
    let (stop, stopped) = oneshot::channel::<()>();
    let app = poem_example::app(poem_example::data_api(KEY));
    tokio::spawn(async move {
        let _ = poem::Server::new(poem::listener::TcpListener::bind(addr.to_string()))
            .run_with_graceful_shutdown(
                app,
                async {
                    let _ = stopped.await;
                },
                Some(Duration::from_secs(1)),
            )
            .await;
    });
    wait_for_port(addr).await;
    framework_server(addr, stop)
}

/// The warp example on a free port.
pub async fn warp_app() -> TestServer {
    let (listener, addr) = bind().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let routes = warp_example::routes(warp_example::data_api(KEY));
    tokio::spawn(
        warp::serve(routes)
            .incoming(listener)
            .graceful(async {
                let _ = stopped.await;
            })
            .run(),
    );
    framework_server(addr, stop)
}

fn framework_server(addr: SocketAddr, stop: oneshot::Sender<()>) -> TestServer {
    TestServer {
        addr,
        base: format!("http://{addr}/data/app/data-local/endpoint/data/v1"),
        client: client(),
        stop: Some(stop),
        data_dir: None,
    }
}

async fn wait_for_port(addr: SocketAddr) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("server on {addr} did not start");
}

/// An answer: status, selected headers, body text and the body as JSON.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as text.
    pub text: String,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text))
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestServer {
    /// POSTs `body` to `action` with the test key and `headers`.
    pub async fn call_with(&self, action: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = self
            .client
            .post(format!("{}/action/{action}", self.base))
            .body(body.to_owned());
        let mut has_credentials = false;
        for (name, value) in headers {
            let lower = name.to_ascii_lowercase();
            if [
                "apikey",
                "api-key",
                "authorization",
                "email",
                "password",
                "jwttokenstring",
                "x-no-auth",
            ]
            .contains(&lower.as_str())
            {
                has_credentials = true;
            }
            if lower != "x-no-auth" {
                request = request.header(*name, *value);
            }
        }
        if !has_credentials {
            request = request.header("apiKey", KEY);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body read");
        Answer {
            status,
            headers,
            text,
        }
    }

    /// POSTs `action` on `db.coll` of the `mongodb-atlas` data source as
    /// the principal of API key `key`, with the fields of `extra`.
    pub async fn call_as(
        &self,
        key: &str,
        action: &str,
        db: &str,
        coll: &str,
        extra: Value,
    ) -> Answer {
        self.call_with(
            action,
            &body(db, coll, extra).to_string(),
            &[("apiKey", key), ("Content-Type", "application/json")],
        )
        .await
    }

    /// POSTs a JSON body to `action` with the test key.
    pub async fn call(&self, action: &str, body: Value) -> Answer {
        self.call_with(
            action,
            &body.to_string(),
            &[("Content-Type", "application/json")],
        )
        .await
    }

    /// POSTs and asserts a 2xx, returning the JSON body.
    pub async fn ok(&self, action: &str, body: Value) -> Value {
        let answer = self.call(action, body).await;
        assert!(
            (200..300).contains(&answer.status),
            "{action} answered {}: {}",
            answer.status,
            answer.text
        );
        answer.json()
    }
}

/// `{"dataSource": "mongodb-atlas", "database": db, "collection": coll, ...extra}`.
pub fn body(db: &str, coll: &str, extra: Value) -> Value {
    let mut value = serde_json::json!({
        "dataSource": "mongodb-atlas",
        "database": db,
        "collection": coll,
    });
    if let (Some(target), Value::Object(extra)) = (value.as_object_mut(), extra) {
        target.extend(extra);
    }
    value
}

/// base64url without padding (an encoding, not cryptography).
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// An HS256 JWT of `header` and `claims`, signed with the crate's
/// HMAC-SHA256 (`payload_signature`), for custom-JWT tests.
pub fn hs256_jwt(header: &Value, claims: &Value, secret: &str) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mac = tower_data_api::auth::payload_signature(secret, input.as_bytes());
    format!("{input}.{}", b64url(&unhex(&mac["sha256=".len()..])))
}

/// Sends `method url` with `headers` and an optional JSON body; the status
/// and the body as JSON (a JSON string when the body is not JSON).
pub async fn send_json(
    method: &str,
    url: String,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client().request(method.parse().expect("a method"), url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("the request is sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("the body is read");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
