//! The standalone Data API server.
//!
//! ```text
//! cargo run --release [--features mimalloc] --example standalone [-- --listen ADDR] [--config FILE]
//! ```
//!
//! Starts on `127.0.0.1:8080` with the embedded engine as data source
//! `mongodb-atlas`, durable in `./data-api-data` (or a MongoDB when
//! `MONGODB_URI` is set), creates a demo
//! API key when none is configured, and prints the base URL and the key.
//! Without a configuration file it also serves the admin console at
//! `/console/` and prints a demo administrator (`admin@localhost`) with a
//! password made for this run; with one, `[console]` turns the console on.
//! SIGINT or SIGTERM stop it gracefully: it stops accepting at once, lets
//! requests in flight finish within the `[server]` shutdown grace period
//! (30 s by default), then exits.
//!
//! Subcommands manage the state database (the configuration's `[state]`,
//! or `./data-api-data` without a configuration) while servers run, without
//! a restart; a `file:` state held by a running server is reached through
//! that server's admin socket (see [`admin`]):
//!
//! ```text
//! standalone keys create reports                            # prints the key, once
//! standalone --config data-api.toml keys list | disable NAME | enable NAME | delete NAME
//! DATA_API_PASSWORD=… standalone --config data-api.toml users add ada@example.com
//! standalone --config data-api.toml users list | disable EMAIL | enable EMAIL | remove EMAIL
//! standalone --config data-api.toml users import users-export.json | identities
//! standalone --config data-api.toml logs --since 1h --status 401 --key reports
//! ```

pub mod admin;
mod log_output;
mod request_lines;

/// With `--features mimalloc`, mimalloc serves every allocation: fewer CPU
/// cycles per request than the system allocator (see the README's
/// figures). The integration-tests crate compiles this file as a module and
/// has no such feature, so its test binaries keep the system allocator.
#[allow(unexpected_cfgs)]
mod allocator {
    #[cfg(feature = "mimalloc")]
    #[global_allocator]
    static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
}

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_data_api::auth::generate_api_key;
use tower_data_api::config::{
    ApiKeyConfig, Config, ConsoleTable, DataSourceConfig, StateConfig, UserConfig,
};
use tower_data_api::log::LogSink;
use tower_data_api::metrics::Metrics;
use tower_data_api::server;

pub use admin::{Admin, KeysCommand, LogsArgs, UsersCommand};

/// Where the embedded engine keeps its data when there is no configuration
/// file and no `MONGODB_URI`.
pub const DEFAULT_DATA_DIR: &str = "./data-api-data";

/// The console administrator made when there is no configuration file.
pub const DEMO_ADMIN: &str = "admin@localhost";

/// The configuration file (or none), with the defaults of a configuration
/// without data sources: the embedded engine keeping its data, and the
/// service its state (sessions, keys, users, request logs), in
/// [`DEFAULT_DATA_DIR`], or `mongodb_uri` as the data source.
fn load_config(path: Option<&Path>, mongodb_uri: Option<&str>) -> Result<Config, Box<dyn Error>> {
    let mut config = match path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if config.data_sources.is_empty() {
        let mut source = DataSourceConfig::named("mongodb-atlas");
        if mongodb_uri.is_none() {
            let uri = format!("file:{DEFAULT_DATA_DIR}");
            source.uri = Some(uri.clone());
            if config.state.is_none() {
                config.state = Some(StateConfig {
                    uri,
                    database: None,
                    log_retention_days: None,
                    user_ids: None,
                });
            }
        }
        config.data_sources.push(source);
    }
    Ok(config)
}

/// The directory of a `file:` state, resolved as the configuration's
/// loader resolves it (relative to the configuration file).
fn file_state_dir(config: &Config) -> Option<PathBuf> {
    let dir = PathBuf::from(config.state.as_ref()?.uri.strip_prefix("file:")?);
    Some(match &config.base_dir {
        Some(base) if dir.is_relative() => base.join(dir),
        _ => dir,
    })
}

/// Runs a management subcommand on the state database: through the admin
/// socket of the server holding a `file:` state when one runs, else on the
/// state opened here.
pub async fn run_admin(config: Option<&PathBuf>, admin: Admin) -> Result<(), Box<dyn Error>> {
    let mongodb_uri = std::env::var("MONGODB_URI")
        .ok()
        .filter(|uri| !uri.is_empty());
    let source = config.map_or("the default configuration".to_owned(), |p| {
        p.display().to_string()
    });
    let config = load_config(config.map(PathBuf::as_path), mongodb_uri.as_deref())?;
    let input = admin::read_input(&admin)?;
    if let Some(dir) = file_state_dir(&config) {
        if let Some(result) =
            admin::forward(&admin::socket_path(&dir), &admin, input.as_deref()).await
        {
            return print_output(result);
        }
        // No server holds the directory: it is opened here.
    }
    let state = config
        .state_stores()
        .await
        .map_err(|e| format!("{source}: {e}"))?
        .ok_or_else(|| {
            format!(
                "{source}: no [state] table: keys, users and logs live in the configuration file"
            )
        })?;
    print_output(admin::execute(&state, admin, input).await)
}

/// Prints a command's output; its error becomes the process's.
fn print_output(result: Result<admin::Output, String>) -> Result<(), Box<dyn Error>> {
    let output = result?;
    print!("{}", output.stdout);
    eprint!("{}", output.stderr);
    Ok(())
}

/// Command-line options.
#[derive(Default, Clone)]
pub struct Options {
    /// `--listen ADDR`: overrides the file's `listen`.
    pub listen: Option<String>,
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// The `MONGODB_URI` environment variable.
    pub mongodb_uri: Option<String>,
    /// `--log-format text|json` (or the `LOG_FORMAT` environment variable).
    pub log_format: LogFormat,
    /// Where request log lines go, when not through `tracing` (which
    /// [`TracingLogSink`](tower_data_api::log::TracingLogSink) writes to,
    /// the default).
    pub request_lines: Option<request_lines::RequestLines>,
}

/// How the standalone writes its logs (to standard error).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event; colours only on a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format '{other}' is neither 'text' nor 'json'")),
        }
    }
}

// `MONGODB_URI` may carry a password: Debug leaves it out.
impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("listen", &self.listen)
            .field("config", &self.config)
            .field("log_format", &self.log_format)
            .field("request_lines", &self.request_lines)
            .field(
                "mongodb_uri",
                &self.mongodb_uri.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// A started server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `http://<addr>/app/<app id>/endpoint/data/v1`.
    pub base_url: String,
    /// The generated key, when the configuration had none.
    pub demo_key: Option<String>,
    /// Where each data source points, for the banner: `memory`,
    /// `file:<dir>` (the directory made absolute) or `mongodb`.
    pub sources: Vec<(String, String)>,
    /// `http://<metrics_listen>/metrics`, when metrics are on.
    pub metrics_url: Option<String>,
    /// `http://<addr>/console/`, when the console is on.
    pub console_url: Option<String>,
    /// The demo administrator's email and password, when one was made.
    pub demo_admin: Option<(String, String)>,
    /// The server task; it ends after the shutdown future completes.
    pub task: JoinHandle<std::io::Result<()>>,
}

// The demo key is a credential: Debug leaves it out.
impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .field("base_url", &self.base_url)
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "standalone",
    about = "A self-hosted MongoDB Atlas Data API",
    after_help = "Environment: MONGODB_URI fronts a MongoDB instead of the embedded engine; \
                  RUST_LOG sets the log level (default info)."
)]
pub struct Cli {
    /// The TOML configuration file.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// The address to listen on (overrides the file's `listen`).
    #[arg(long)]
    pub listen: Option<String>,
    /// How logs are written to standard error: text or json.
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = parse_log_format)]
    pub log_format: LogFormat,
    /// Manage the state database instead of serving.
    #[command(subcommand)]
    pub admin: Option<Admin>,
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    text.parse()
}

impl Cli {
    /// The server options of this command line and the environment.
    pub fn options(&self) -> Options {
        Options {
            listen: self.listen.clone(),
            config: self.config.clone(),
            mongodb_uri: std::env::var("MONGODB_URI")
                .ok()
                .filter(|uri| !uri.is_empty()),
            log_format: self.log_format,
            request_lines: None,
        }
    }
}

/// Loads the configuration, builds the service, binds and starts serving.
pub async fn launch(
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, Box<dyn Error>> {
    let mut config = load_config(options.config.as_deref(), options.mongodb_uri.as_deref())?;
    // Without a configuration file: the console, with a demo administrator
    // whose password is made anew at each start.
    let demo_admin = (options.config.is_none() && config.state.is_some()).then(|| {
        let password = generate_api_key()[..24].to_owned();
        config.users.push(UserConfig {
            email: DEMO_ADMIN.into(),
            password: Some(password.as_str().into()),
            password_hash: None,
        });
        config.console = Some(ConsoleTable {
            enabled: true,
            admins: vec![DEMO_ADMIN.into()],
            ..ConsoleTable::default()
        });
        (DEMO_ADMIN.to_owned(), password)
    });
    let console_on = config.console.as_ref().is_some_and(|table| table.enabled);
    let demo_key = config.api_keys.is_empty().then(generate_api_key);
    if let Some(key) = &demo_key {
        config.api_keys.push(ApiKeyConfig {
            name: "demo".into(),
            key: Some(key.clone()),
            key_sha256: None,
        });
    }
    let sources = config
        .data_sources
        .iter()
        .map(|source| {
            let uri = source.uri.as_deref().or(options.mongodb_uri.as_deref());
            let kind = match uri {
                Some(uri) if uri.starts_with("file:") => {
                    let dir = PathBuf::from(&uri["file:".len()..]);
                    let dir = match &config.base_dir {
                        Some(base) if dir.is_relative() => base.join(dir),
                        _ => dir,
                    };
                    let dir = std::path::absolute(&dir).unwrap_or(dir);
                    format!("file:{}", dir.display())
                }
                Some(uri) if uri != "memory" => "mongodb".to_owned(),
                _ => "memory".to_owned(),
            };
            (source.name.clone(), kind)
        })
        .collect();
    let app_id = config.app_id.clone().unwrap_or_else(|| "data-local".into());
    let source_name = match &options.config {
        Some(path) => path.display().to_string(),
        None => "configuration".to_owned(),
    };
    let metrics = config.metrics_listen.as_ref().map(|_| Metrics::new());
    let (mut builder, state) = config
        .builder_and_state(options.mongodb_uri.as_deref())
        .await
        .map_err(|e| format!("{source_name}: {e}"))?;
    if let Some(metrics) = &metrics {
        builder = builder.metrics(metrics.clone());
    }
    if let Some(lines) = options.request_lines.clone() {
        builder = match &state {
            // In place of the `tracing` events `StateStores::install` set up.
            Some(state) => builder.log_sink(vec![
                Arc::new(lines) as Arc<dyn LogSink>,
                Arc::new(state.logs.clone()),
            ]),
            None => builder.log_sink(lines),
        };
    }
    let service = builder.build().map_err(|e| format!("{source_name}: {e}"))?;
    // A `file:` state is this process's alone: subcommands reach it here.
    if let (Some(dir), Some(state)) = (file_state_dir(&config), state) {
        let socket = admin::socket_path(&dir);
        if let Err(error) = admin::serve(socket.clone(), state).await {
            // Serving goes on; subcommands then need the server stopped.
            tracing::warn!(socket = %socket.display(), %error, "no admin socket");
        }
    }
    let metrics_url = match (&config.metrics_listen, metrics) {
        (Some(address), Some(metrics)) => Some(serve_metrics(address, metrics).await?),
        _ => None,
    };
    let listen = options
        .listen
        .or(config.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let server_options = config
        .server
        .options()
        .map_err(|e| format!("{source_name}: {e}"))?;
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(server::serve_with(
        listener,
        service,
        shutdown,
        server_options,
    ));
    Ok(Running {
        addr,
        base_url: format!("http://{addr}/app/{app_id}/endpoint/data/v1"),
        demo_key,
        sources,
        metrics_url,
        console_url: console_on.then(|| format!("http://{addr}/console/")),
        demo_admin,
        task,
    })
}

/// Serves `GET /metrics` on its own listener (kept apart from the public
/// one), for as long as the process runs; returns its URL.
async fn serve_metrics(address: &str, metrics: Metrics) -> Result<String, Box<dyn Error>> {
    use http_body_util::Full;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address} (metrics_listen): {e}"))?;
    let url = format!("http://{}/metrics", listener.local_addr()?);
    let scrape = tower::service_fn(move |request: http::Request<_>| {
        let metrics = metrics.clone();
        async move {
            let response =
                if request.uri().path() == "/metrics" && request.method() == http::Method::GET {
                    http::Response::builder()
                        .header(http::header::CONTENT_TYPE, Metrics::CONTENT_TYPE)
                        .body(Full::new(bytes::Bytes::from(metrics.encode())))
                } else {
                    http::Response::builder()
                        .status(http::StatusCode::NOT_FOUND)
                        .body(Full::new(bytes::Bytes::new()))
                };
            Ok::<_, std::convert::Infallible>(response.unwrap_or_default())
        }
    });
    tokio::spawn(server::serve(
        listener,
        scrape,
        std::future::pending::<()>(),
    ));
    Ok(url)
}

fn banner(running: &Running) -> String {
    let mut text = format!(
        "tower-data-api listening on http://{}\n  Data API base URL: {}\n",
        running.addr, running.base_url
    );
    for (name, kind) in &running.sources {
        let what = match kind.strip_prefix("file:") {
            Some(dir) => format!("embedded engine, data in {dir}"),
            None if kind == "memory" => "embedded engine, in memory only".to_owned(),
            None => "MongoDB".to_owned(),
        };
        text.push_str(&format!("  data source:       {name} ({what})\n"));
    }
    text.push_str(&format!(
        "  OpenAPI:           {}/openapi.json\n",
        running.base_url
    ));
    if let Some(url) = &running.metrics_url {
        text.push_str(&format!("  metrics:           {url}\n"));
    }
    if let Some(url) = &running.console_url {
        text.push_str(&format!("  admin console:     {url}\n"));
    }
    if let Some((email, password)) = &running.demo_admin {
        text.push_str(&format!(
            "  console login:     {email} / {password} (made for this run)\n"
        ));
    }
    if let Some(key) = &running.demo_key {
        text.push_str(&format!(
            "  demo API key:      {key}\n\nTry it:\n  curl -s {}/action/insertOne -H 'apiKey: {key}' \\\n    -d '{{\"dataSource\":\"mongodb-atlas\",\"database\":\"todo\",\"collection\":\"tasks\",\"document\":{{\"text\":\"Do the dishes\"}}}}'\n",
            running.base_url
        ));
    }
    text
}

/// Sends `tracing` events to standard error, in `format`, at the level
/// `RUST_LOG` sets (default `info`), with colours only when standard error
/// is a terminal. Lines leave in batches from a writer thread (see
/// [`log_output`]): a slow terminal or pipe never holds a request up, and
/// when the output falls far behind lines are dropped, not requests slowed.
/// Keep the guard until exit: it writes what is still buffered.
///
/// Request log lines skip `tracing` (see [`request_lines`]) unless text goes
/// to a terminal in colour: the sink for them comes back beside the guard.
fn init_logging(format: LogFormat) -> (log_output::Guard, Option<request_lines::RequestLines>) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let (writer, guard) = log_output::batched(std::io::stderr(), log_output::MAX_BUFFERED);
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let ansi = std::io::stderr().is_terminal();
    let lines = (format == LogFormat::Json || !ansi)
        .then(|| request_lines::RequestLines::new(format, writer.clone()));
    log_subscriber(format, filter, writer, ansi).init();
    (guard, lines)
}

/// Request log lines as the standalone writes them (module `request_lines`),
/// in `format`, to `out` from a writer thread; keep the guard while lines
/// are written. Lines are written only where `tracing` enables them.
pub fn request_lines_to(
    format: LogFormat,
    out: impl std::io::Write + Send + 'static,
) -> (request_lines::RequestLines, log_output::Guard) {
    let (writer, guard) = log_output::batched(out, log_output::MAX_BUFFERED);
    (request_lines::RequestLines::new(format, writer), guard)
}

/// The standalone's log lines: `format`, at the levels `filter` lets
/// through, written by `writer`; text has colours when `ansi`.
pub fn log_subscriber<W>(
    format: LogFormat,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text if ansi => Box::new(logs.with_ansi(true).finish()),
        LogFormat::Text => Box::new(
            logs.with_ansi(false)
                .fmt_fields(log_output::PlainFields)
                .finish(),
        ),
        LogFormat::Json => Box::new(
            logs.json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .finish(),
        ),
    }
}

#[tokio::main]
async fn main() {
    use clap::Parser as _;
    let cli = Cli::parse();
    let mut options = cli.options();
    let (logs, request_lines) = init_logging(options.log_format);
    options.request_lines = request_lines;
    if let Some(admin) = cli.admin {
        match run_admin(cli.config.as_ref(), admin).await {
            Ok(()) => exit(logs, 0),
            Err(err) => {
                eprintln!("error: {err}");
                exit(logs, 1);
            }
        }
    }
    let running = match launch(options, server::shutdown_signal()).await {
        Ok(running) => running,
        Err(err) => {
            eprintln!("error: {err}");
            exit(logs, 1);
        }
    };
    print!("{}", banner(&running));
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    // Exit as soon as the server returns: it has ended every connection
    // (after the shutdown grace period at most), and work that never yields,
    // such as a long aggregation, must not hold the process up.
    match running.task.await {
        Ok(Ok(())) => {
            eprintln!("stopped");
            exit(logs, 0);
        }
        Ok(Err(err)) => {
            eprintln!("error: {err}");
            exit(logs, 1);
        }
        Err(err) => {
            eprintln!("error: {err}");
            exit(logs, 1);
        }
    }
}

/// Ends the process: `std::process::exit` skips destructors, so the log
/// lines still queued are flushed first.
fn exit(logs: log_output::Guard, code: i32) -> ! {
    drop(logs);
    std::process::exit(code)
}
