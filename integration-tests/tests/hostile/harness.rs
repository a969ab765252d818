//! The hostile suite's harness: the real standalone binary in a child process
//! under a memory cap, the attacks' raw sockets, and a second client that
//! checks the server keeps answering while under attack.
//!
//! A probe is a test that starts a [`Server`] with the [`Settings`] it needs
//! (short timeouts by default), starts a [`Probe`], runs its attack, then
//! asserts the attack's outcome, [`Server::assert_healthy`] and
//! [`ProbeReport::assert_served`]. Wrap the whole test in [`bounded`].

#![allow(dead_code)] // each test file uses part of the harness

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The API key of every hostile-suite server.
pub const KEY: &str = "hostile-key-0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEF";
/// The app id in the servers' URLs.
pub const APP: &str = "hostile";
/// Path of an action under the servers' base URL.
pub fn action_path(action: &str) -> String {
    format!("/app/{APP}/endpoint/data/v1/action/{action}")
}
/// Path of the client API's login for `provider`.
pub fn login_path(provider: &str) -> String {
    format!("/api/client/v2.0/app/{APP}/auth/providers/{provider}/login")
}
/// A findOne body for the probe collection.
pub const FIND_ONE: &str =
    r#"{"dataSource":"mongodb-atlas","database":"hostile","collection":"probe","filter":{}}"#;

/// The most a whole probe may take, server start included.
pub const TEST_BOUND: Duration = Duration::from_secs(120);
/// Generous bound on one probe request during an attack: behaviour (the
/// server answers), not performance.
pub const ANSWER_BOUND: Duration = Duration::from_secs(2);
/// Resident memory the server may use during any attack.
pub const RSS_BOUND_BYTES: u64 = 512 * 1024 * 1024;

/// Runs a test body under [`TEST_BOUND`].
pub async fn bounded<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_BOUND, test)
        .await
        .expect("the probe finishes within its time bound");
}

/// How a test server is configured and confined. [`Default`] has short
/// timeouts so that attacks end in seconds.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[server] header_read_timeout_secs`.
    pub header_read_timeout_secs: f64,
    /// `[server] idle_timeout_secs`.
    pub idle_timeout_secs: f64,
    /// `[server] max_connections`; `None` keeps the server's default
    /// (derived from the open-file limit).
    pub max_connections: Option<usize>,
    /// `[server] shutdown_grace_secs`.
    pub shutdown_grace_secs: f64,
    /// `[limits] request_timeout_secs`.
    pub request_timeout_secs: f64,
    /// `[limits] body_read_timeout_secs`.
    pub body_read_timeout_secs: f64,
    /// `[limits] max_concurrent_requests`.
    pub max_concurrent_requests: usize,
    /// `[limits] max_concurrent_password_checks`.
    pub max_concurrent_password_checks: usize,
    /// More `[limits]` lines, e.g. `max_body_bytes = 1024`.
    pub extra_limits: String,
    /// `[[users]]`: email and password.
    pub users: Vec<(String, String)>,
    /// The child's address-space cap (RLIMIT_AS).
    pub memory_cap_bytes: u64,
    /// The child's open-file limit (RLIMIT_NOFILE).
    pub open_files: u64,
    /// The child's CPU-time limit in seconds (RLIMIT_CPU): a runaway server
    /// is killed even if the test hangs.
    pub cpu_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 1.0,
            idle_timeout_secs: 1.5,
            max_connections: Some(4_000),
            shutdown_grace_secs: 1.0,
            request_timeout_secs: 10.0,
            body_read_timeout_secs: 1.0,
            max_concurrent_requests: 200,
            max_concurrent_password_checks: 2,
            extra_limits: String::new(),
            users: Vec::new(),
            memory_cap_bytes: 4 << 30,
            open_files: 8_192,
            cpu_secs: 300,
        }
    }
}

impl Settings {
    fn toml(&self) -> String {
        let mut text = format!(
            "app_id = \"{APP}\"\n\
             [[data_sources]]\nname = \"mongodb-atlas\"\nuri = \"memory\"\n\
             [[api_keys]]\nname = \"hostile\"\nkey = \"{KEY}\"\n"
        );
        for (email, password) in &self.users {
            text.push_str(&format!(
                "[[users]]\nemail = \"{email}\"\npassword = \"{password}\"\n"
            ));
        }
        text.push_str(&format!(
            "[limits]\nrequest_timeout_secs = {}\nbody_read_timeout_secs = {}\n\
             max_concurrent_requests = {}\nmax_concurrent_password_checks = {}\n{}\n",
            self.request_timeout_secs,
            self.body_read_timeout_secs,
            self.max_concurrent_requests,
            self.max_concurrent_password_checks,
            self.extra_limits,
        ));
        text.push_str(&format!(
            "[server]\nheader_read_timeout_secs = {}\nidle_timeout_secs = {}\n\
             shutdown_grace_secs = {}\n",
            self.header_read_timeout_secs, self.idle_timeout_secs, self.shutdown_grace_secs,
        ));
        if let Some(max) = self.max_connections {
            text.push_str(&format!("max_connections = {max}\n"));
        }
        text
    }
}

/// The standalone binary as a child process; killed when dropped.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process id.
    pub pid: u32,
    child: Mutex<Child>,
    stderr: PathBuf,
}

impl Server {
    /// Starts the standalone binary with `settings` and waits for its banner.
    pub fn start(settings: &Settings) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "tda-hostile-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("config.toml");
        std::fs::write(&config, settings.toml()).expect("write config");
        let stderr = dir.join("stderr.log");
        let mut command = Command::new(standalone_binary());
        command
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .env_remove("MONGODB_URI")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let limits = [
            (libc::RLIMIT_AS, settings.memory_cap_bytes),
            (libc::RLIMIT_NOFILE, settings.open_files),
            (libc::RLIMIT_CPU, settings.cpu_secs),
        ];
        // SAFETY: between fork and exec only async-signal-safe calls
        // (setrlimit, prctl) run, on values computed before the fork.
        unsafe {
            command.pre_exec(move || {
                for (resource, value) in limits {
                    let limit = libc::rlimit {
                        rlim_cur: value,
                        rlim_max: value,
                    };
                    if libc::setrlimit(resource, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // Die with the test process.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().expect("the standalone binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, banner) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("tower-data-api listening on http://") {
                    let _ = sender.send(addr.trim().to_owned());
                }
            }
        });
        let addr = match banner.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr.parse().expect("banner address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "no banner from the standalone binary; stderr:\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
        };
        Server {
            addr,
            pid: child.id(),
            child: Mutex::new(child),
            stderr,
        }
    }

    /// Starts a server with the default [`Settings`].
    pub fn start_default() -> Server {
        Self::start(&Settings::default())
    }

    /// Whether the process is still running.
    pub fn is_alive(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        matches!(child.try_wait(), Ok(None))
    }

    /// The process's resident memory (VmRSS) in bytes.
    pub fn rss_bytes(&self) -> u64 {
        self.status_field("VmRSS:")
            .map(|kib| kib * 1024)
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// A numeric field of `/proc/<pid>/status` (`VmRSS:` in kB, `Threads:`).
    pub fn status_field(&self, name: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Asserts the process is alive and within [`RSS_BOUND_BYTES`].
    pub fn assert_healthy(&self) {
        assert!(
            self.is_alive(),
            "the server died; stderr:\n{}",
            self.stderr_text()
        );
        let rss = self.rss_bytes();
        eprintln!(
            "server RSS: {} MiB, {} threads",
            rss / (1024 * 1024),
            self.status_field("Threads:").unwrap_or_default()
        );
        assert!(
            rss < RSS_BOUND_BYTES,
            "server RSS {rss} bytes is over the bound {RSS_BOUND_BYTES}"
        );
    }

    /// What the server wrote to stderr.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid).expect("pid");
        // SAFETY: kill(2) on our own child's pid.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0, "kill({pid}, {signal})");
    }

    /// Waits up to `within` for the process to exit.
    pub async fn wait_exit(&self, within: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            {
                let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
                if let Ok(Some(status)) = child.try_wait() {
                    return Some(status);
                }
            }
            if started.elapsed() > within {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts a second client measuring findOne answers until
    /// [`Probe::finish`]; returns once its first request was answered, so
    /// that its keep-alive connection is open before an attack starts.
    pub async fn probe(&self) -> Probe {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("client");
        let url = format!("http://{}{}", self.addr, action_path("findOne"));
        let first = find_one(&client, &url).await;
        assert_eq!(first, Ok(200), "the probe's first findOne");
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut report = ProbeReport::default();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let outcome =
                        tokio::time::timeout(ANSWER_BOUND * 5, find_one(&client, &url)).await;
                    let took = started.elapsed();
                    report.requests += 1;
                    report.slowest = report.slowest.max(took);
                    match outcome {
                        Ok(Ok(200)) => {}
                        Ok(Ok(status)) => report.failures.push(format!("status {status}")),
                        Ok(Err(err)) => report.failures.push(err),
                        Err(_) => report.failures.push(format!("no answer in {took:?}")),
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                report
            }
        });
        Probe { stop, task }
    }

    /// Sends an action with the suite's key on a new connection; the status
    /// and the body as JSON (`Null` when it is not JSON).
    pub async fn call(&self, action: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .post(format!("http://{}{}", self.addr, action_path(action)))
            .header("apiKey", KEY)
            .body(body.to_string())
            .send()
            .await
            .expect("an answer");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or_default())
    }

    /// A findOne on a new connection; its status.
    pub async fn find_one_status(&self) -> Result<u16, String> {
        let client = reqwest::Client::new();
        find_one(
            &client,
            &format!("http://{}{}", self.addr, action_path("findOne")),
        )
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

async fn find_one(client: &reqwest::Client, url: &str) -> Result<u16, String> {
    client
        .post(url)
        .header("apiKey", KEY)
        .body(FIND_ONE)
        .send()
        .await
        .map(|response| response.status().as_u16())
        .map_err(|err| format!("{err:?}"))
}

/// The second client, running.
pub struct Probe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<ProbeReport>,
}

impl Probe {
    /// Stops the probe and reports.
    pub async fn finish(self) -> ProbeReport {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("probe task")
    }
}

/// What the second client saw.
#[derive(Debug, Default)]
pub struct ProbeReport {
    /// findOne requests sent.
    pub requests: usize,
    /// Requests not answered 200, and why.
    pub failures: Vec<String>,
    /// The slowest answer.
    pub slowest: Duration,
}

impl ProbeReport {
    /// Asserts every findOne was answered 200 within [`ANSWER_BOUND`].
    pub fn assert_served(&self) {
        eprintln!(
            "probe: {} findOne, slowest {:?}, failures {:?}",
            self.requests, self.slowest, self.failures
        );
        assert!(self.requests >= 3, "the probe ran: {self:?}");
        assert!(self.failures.is_empty(), "the probe was refused: {self:?}");
        assert!(
            self.slowest <= ANSWER_BOUND,
            "a findOne took longer than {ANSWER_BOUND:?}: {self:?}"
        );
    }
}

/// Opens `n` TCP connections to `addr`.
pub async fn connect_many(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        streams.push(TcpStream::connect(addr).await.expect("connect"));
    }
    streams
}

/// Waits up to `within` for the server to close `stream` (EOF or reset);
/// whether it did. Bytes the server sends first are read and dropped.
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// How many of `streams` the server closes within `within`, waiting on all
/// at once.
pub async fn count_closed(streams: Vec<TcpStream>, within: Duration) -> (usize, Vec<TcpStream>) {
    let mut tasks = tokio::task::JoinSet::new();
    for mut stream in streams {
        tasks.spawn(async move {
            let closed = closed_within(&mut stream, within).await;
            (closed, stream)
        });
    }
    let mut closed = 0;
    let mut open = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (was_closed, stream) = result.expect("wait task");
        if was_closed {
            closed += 1;
        } else {
            open.push(stream);
        }
    }
    (closed, open)
}

/// The head of a POST to `path` with these headers and a declared body length.
pub fn post_head(addr: SocketAddr, path: &str, headers: &[(&str, &str)], length: usize) -> Vec<u8> {
    let mut text = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {length}\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// A whole keep-alive POST.
pub fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut bytes = post_head(addr, path, headers, body.len());
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// One response read off a connection.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("JSON body: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one `Content-Length` response from `stream` within `within`.
pub async fn read_reply(stream: &mut TcpStream, within: Duration) -> Result<Reply, String> {
    tokio::time::timeout(within, read_reply_now(stream))
        .await
        .map_err(|_| format!("no response within {within:?}"))?
}

async fn read_reply_now(stream: &mut TcpStream) -> Result<Reply, String> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before a response".into());
        }
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = bytes[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed inside a body".into());
        }
        body.extend_from_slice(&buf[..n]);
    }
    body.truncate(length);
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Writes `bytes` one at a time, `every` apart, until `stop` is set or the
/// server closes the connection; whether the server closed it.
pub async fn dribble(
    stream: &mut TcpStream,
    bytes: &[u8],
    every: Duration,
    stop: &AtomicBool,
) -> bool {
    let mut buf = [0u8; 1024];
    for byte in bytes.iter().cycle() {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        if stream.write_all(&[*byte]).await.is_err() {
            return true;
        }
        // The server closing shows as EOF on the read side.
        match tokio::time::timeout(every, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    false
}

/// `target/<profile>/examples/standalone`, next to this test's own binary.
///
/// The suite does not build it itself: a nested `cargo build` would wait on
/// the lock of the `cargo test` that runs it. `cargo test --workspace`
/// builds it; a binary older than the sources it is built from fails the
/// test instead of testing stale code.
pub fn standalone_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile directory");
    let binary = profile_dir.join("examples").join("standalone");
    let built = std::fs::metadata(&binary)
        .and_then(|meta| meta.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: build it with `cargo build --example standalone` \
                 (cargo test --workspace builds it)",
                binary.display()
            )
        });
    // Cargo's dep-info lists exactly the sources the binary is built from.
    let dep_info = std::fs::read_to_string(binary.with_extension("d")).unwrap_or_default();
    let newest = dep_info
        .split_once(": ")
        .map(|(_, deps)| deps)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
        .max();
    if let Some(newest) = newest {
        assert!(
            newest <= built,
            "{} is older than its sources: rebuild it with `cargo build --example standalone`",
            binary.display()
        );
    }
    binary
}
