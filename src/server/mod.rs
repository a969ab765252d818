//! A ready server loop (feature `server`): HTTP/1.1 and HTTP/2 over TCP with
//! connection limits and a bounded graceful shutdown, for the standalone
//! binary and for tests.
//!
//! Any framework's server works just as well; this exists so that running the
//! Data API alone needs no framework at all. [`ServerOptions`] sets what a
//! hostile client may cost: how long a request head may take, how long a
//! connection may sit idle, how many connections are open at once and how
//! long shutdown waits for requests in flight.

mod activity;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use activity::{Activity, TrackedBody, TrackedIo};

/// How the server treats connections. [`Default`] suits a server on the
/// internet; tests use short timeouts.
///
/// ```
/// use std::time::Duration;
/// use tower_data_api::server::ServerOptions;
/// let options = ServerOptions { idle_timeout: Duration::from_secs(5), ..ServerOptions::default() };
/// assert!(options.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// Time a request head may take to arrive, from its first byte (or from
    /// the connection's opening, for the first request); past it the
    /// connection is closed (default 10 s). On HTTP/2, any traffic on a
    /// connection without a request in flight counts as an unfinished head.
    pub header_read_timeout: Duration,
    /// Time a connection may sit between requests, and a response may go
    /// without a byte written (a client that stops reading), before it is
    /// closed (default 60 s).
    pub idle_timeout: Duration,
    /// Connections open at once. Past it a new connection is accepted and
    /// closed at once, without an answer: that costs one file descriptor for
    /// an instant, whereas answering would let a flood of connections hold
    /// descriptors while the answers are written. Default: 10,000, or the
    /// process's open-file limit less a reserve when that is lower.
    pub max_connections: usize,
    /// Concurrent streams on one HTTP/2 connection (default 200).
    pub max_http2_streams: u32,
    /// After shutdown begins, time requests in flight get to finish; then the
    /// remaining connections are dropped (default 30 s).
    pub shutdown_grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: default_max_connections(),
            max_http2_streams: 200,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl ServerOptions {
    /// Checks that every option is usable, naming the first that is not.
    pub fn validate(&self) -> Result<(), String> {
        let zero = [
            ("header_read_timeout", self.header_read_timeout.is_zero()),
            ("idle_timeout", self.idle_timeout.is_zero()),
            ("max_connections", self.max_connections == 0),
            ("max_http2_streams", self.max_http2_streams == 0),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, is_zero)| *is_zero) {
            return Err(format!("server option {name} must be greater than zero"));
        }
        if self.max_connections > Semaphore::MAX_PERMITS {
            return Err("server option max_connections is too large".into());
        }
        Ok(())
    }
}

/// Descriptors kept for everything but client connections: the listener,
/// backend connections, configuration and log files.
const RESERVED_DESCRIPTORS: usize = 64;

/// 10,000, or the open-file limit less [`RESERVED_DESCRIPTORS`] when lower.
fn default_max_connections() -> usize {
    const DEFAULT: usize = 10_000;
    match open_file_limit() {
        Some(limit) if limit <= 2 * RESERVED_DESCRIPTORS => (limit / 2).max(1),
        Some(limit) => DEFAULT.min(limit - RESERVED_DESCRIPTORS),
        None => DEFAULT,
    }
}

#[cfg(unix)]
fn open_file_limit() -> Option<usize> {
    // `None` is RLIM_INFINITY.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit.current.and_then(|n| usize::try_from(n).ok())
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<usize> {
    None
}

/// Serves `service` on `listener` with [`ServerOptions::default`] until
/// `shutdown` completes; see [`serve_with`].
///
/// ```no_run
/// # async fn run(service: tower_data_api::DataApiService) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// tower_data_api::server::serve(listener, service, tower_data_api::server::shutdown_signal()).await
/// # }
/// ```
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_with(listener, service, shutdown, ServerOptions::default()).await
}

/// Serves `service` on `listener` until `shutdown` completes, then stops
/// accepting at once, lets requests in flight finish for at most
/// [`ServerOptions::shutdown_grace`], drops the connections left and returns.
/// Each request carries the client's `SocketAddr` in its extensions.
///
/// Work that never yields to the runtime (a long synchronous computation)
/// cannot be interrupted by dropping its connection: a binary should exit
/// once this returns rather than wait for the runtime's tasks.
///
/// ```no_run
/// # async fn run(service: tower_data_api::DataApiService) -> std::io::Result<()> {
/// use tower_data_api::server::{serve_with, shutdown_signal, ServerOptions};
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let options = ServerOptions { max_connections: 2_000, ..ServerOptions::default() };
/// serve_with(listener, service, shutdown_signal(), options).await
/// # }
/// ```
pub async fn serve_with<S, B>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
    options: ServerOptions,
) -> io::Result<()>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    options
        .validate()
        .map_err(|message| io::Error::new(io::ErrorKind::InvalidInput, message))?;
    let builder = Arc::new(connection_builder(&options));
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let (stopping, stop_seen) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: wait and keep serving.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection limit reached: closing the new connection");
            drop(stream);
            continue;
        };
        let connection = Connection {
            builder: builder.clone(),
            options,
            stop_seen: stop_seen.clone(),
            _slot: slot,
        };
        connections.spawn(connection.run(stream, peer, service.clone()));
    }
    drop(listener);
    let _ = stopping.send(true);
    let drained = tokio::time::timeout(options.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "shutdown grace period over: dropping the remaining connections"
        );
        // Aborted, not awaited: a task stuck in a synchronous computation
        // must not hold up the return.
        connections.abort_all();
    }
    Ok(())
}

/// The HTTP/1.1 and HTTP/2 settings every connection shares.
fn connection_builder(options: &ServerOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The head deadline is the connection watchdog's: hyper's own runs from
    // the moment a connection goes idle, which would make it an idle
    // timeout as well.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(options.max_http2_streams);
    builder
}

/// One accepted connection and what it holds.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    options: ServerOptions,
    stop_seen: watch::Receiver<bool>,
    /// Frees the connection's place under `max_connections` when dropped.
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    /// Serves the connection until the client leaves, the watchdog closes it,
    /// or shutdown ends it (gracefully; the serve loop drops it after the grace).
    async fn run<S, B>(mut self, stream: TcpStream, peer: SocketAddr, service: S)
    where
        S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new(
            self.options.header_read_timeout,
            self.options.idle_timeout,
        ));
        let io = TokioIo::new(TrackedIo::new(stream, activity.clone()));
        let service = ConnectionService {
            inner: service,
            peer,
            activity: activity.clone(),
        };
        let connection = self.builder.serve_connection(io, service);
        tokio::pin!(connection);
        let stop = self.stop_seen.wait_for(|stopping| *stopping);
        tokio::select! {
            result = connection.as_mut() => return log_end(result),
            () = activity.expired() => return closed_by_watchdog(peer),
            _ = stop => {}
        }
        connection.as_mut().graceful_shutdown();
        tokio::select! {
            result = connection.as_mut() => log_end(result),
            () = activity.expired() => closed_by_watchdog(peer),
        }
    }
}

fn closed_by_watchdog(peer: SocketAddr) {
    tracing::debug!(%peer, "connection closed: header-read or idle timeout");
}

fn log_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(err) = result {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

/// The service as one connection calls it: adds the client's address to each
/// request and reports each request's progress to the connection's watchdog.
#[derive(Clone)]
struct ConnectionService<S> {
    inner: S,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> hyper::service::Service<Request<Incoming>> for ConnectionService<S>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<TrackedBody<B>>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        // Rules can see the client's address (`%%request.remoteIPAddress`).
        request.extensions_mut().insert(self.peer);
        let mut guard = self.activity.request_started();
        let service = self.inner.clone();
        Box::pin(async move {
            let response = tower::ServiceExt::oneshot(service, request).await?;
            guard.responded();
            Ok(response.map(|body| TrackedBody::new(body, guard)))
        })
    }
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
///
/// The signals are awaited on a thread of their own: a runtime whose workers
/// are all busy with work that does not yield (a long synchronous
/// computation) stops polling its I/O driver, and a signal awaited there would
/// go unnoticed until that work ends.
pub async fn shutdown_signal() {
    let (notify, notified) = tokio::sync::oneshot::channel::<()>();
    let listener = std::thread::Builder::new()
        .name("tda-signals".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(signals());
                let _ = notify.send(());
            }
        });
    match listener {
        // A dropped sender (the thread could not start its runtime) means
        // the signals cannot be awaited there: await them here instead.
        Ok(_) => {
            if notified.await.is_err() {
                signals().await;
            }
        }
        Err(_) => signals().await,
    }
}

async fn signals() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
