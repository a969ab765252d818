//! The per-connection watchdog: what a connection is doing and when it has
//! been doing nothing for too long.
//!
//! A connection is in one of four phases:
//!
//! - **handling**: a request is inside the service (its own deadlines apply:
//!   body read and request timeout) — no watchdog deadline;
//! - **streaming**: a response is being written — closed when no byte could be
//!   written for the idle timeout (a client that stops reading);
//! - **awaiting a head**: a new connection, or bytes of the next request have
//!   arrived — closed when the head is not complete within the header-read
//!   timeout (slowloris);
//! - **idle**: between requests — closed after the idle timeout.
//!
//! The phase moves on from three places: [`TrackedIo`] sees bytes read and
//! written, the connection's service wrapper marks each request's start and
//! the moment its response is ready, and [`RequestGuard`] (carried by the
//! response body) marks the end of the response.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What one connection is doing, shared by its IO, its service and its watchdog.
pub(super) struct Activity {
    origin: Instant,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    /// Requests inside the service.
    handling: AtomicUsize,
    /// Responses ready but not completely written.
    streaming: AtomicUsize,
    /// Whether the next request's head is awaited since `mark`.
    awaiting_head: AtomicBool,
    /// Milliseconds since `origin` when the idle or head phase began.
    mark: AtomicU64,
    /// Milliseconds since `origin` of the last byte written.
    last_write: AtomicU64,
    /// Wakes the watchdog when a deadline may have moved earlier or appeared.
    changed: Notify,
}

impl Activity {
    /// A new connection: its first request head is awaited from now.
    pub(super) fn new(header_read_timeout: Duration, idle_timeout: Duration) -> Self {
        Self {
            origin: Instant::now(),
            header_read_timeout,
            idle_timeout,
            handling: AtomicUsize::new(0),
            streaming: AtomicUsize::new(0),
            awaiting_head: AtomicBool::new(true),
            mark: AtomicU64::new(0),
            last_write: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64, after: Duration) -> Instant {
        self.origin + Duration::from_millis(ms) + after
    }

    fn is_quiet(&self) -> bool {
        self.handling.load(Ordering::Acquire) == 0 && self.streaming.load(Ordering::Acquire) == 0
    }

    /// Bytes arrived: on an idle connection they start the next request's head.
    fn on_read(&self) {
        if self.is_quiet() && !self.awaiting_head.load(Ordering::Acquire) {
            self.mark.store(self.now_ms(), Ordering::Release);
            self.awaiting_head.store(true, Ordering::Release);
            self.changed.notify_one();
        }
    }

    fn on_write(&self) {
        self.last_write.store(self.now_ms(), Ordering::Release);
    }

    /// A request reached the service.
    pub(super) fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.handling.fetch_add(1, Ordering::AcqRel);
        RequestGuard {
            activity: self.clone(),
            streaming: false,
        }
    }

    /// When the watchdog closes the connection, if nothing changes before.
    fn deadline(&self) -> Option<Instant> {
        if self.handling.load(Ordering::Acquire) > 0 {
            return None;
        }
        if self.streaming.load(Ordering::Acquire) > 0 {
            let last = self.last_write.load(Ordering::Acquire);
            return Some(self.at(last, self.idle_timeout));
        }
        let mark = self.mark.load(Ordering::Acquire);
        Some(if self.awaiting_head.load(Ordering::Acquire) {
            self.at(mark, self.header_read_timeout)
        } else {
            self.at(mark, self.idle_timeout)
        })
    }

    /// Completes when the connection has overstayed its current phase.
    pub(super) async fn expired(&self) {
        loop {
            // `notify_one` keeps a permit when nobody waits, so a change
            // between reading the deadline and waiting is not lost.
            match self.deadline() {
                None => self.changed.notified().await,
                Some(at) if Instant::now() >= at => return,
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

/// One request on a connection: handling until [`RequestGuard::responded`],
/// then streaming until dropped (with the response body).
pub(super) struct RequestGuard {
    activity: Arc<Activity>,
    streaming: bool,
}

impl RequestGuard {
    /// The service answered; the response is now being written.
    pub(super) fn responded(&mut self) {
        if self.streaming {
            return;
        }
        self.streaming = true;
        self.activity.on_write();
        self.activity.streaming.fetch_add(1, Ordering::AcqRel);
        self.activity.handling.fetch_sub(1, Ordering::AcqRel);
        self.activity.changed.notify_one();
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.activity;
        if self.streaming {
            activity.streaming.fetch_sub(1, Ordering::AcqRel);
        } else {
            activity.handling.fetch_sub(1, Ordering::AcqRel);
        }
        if activity.is_quiet() {
            activity.mark.store(activity.now_ms(), Ordering::Release);
            activity.awaiting_head.store(false, Ordering::Release);
        }
        activity.changed.notify_one();
    }
}

/// A response body that ends its request's streaming phase when dropped.
#[pin_project::pin_project]
pub(super) struct TrackedBody<B> {
    #[pin]
    inner: B,
    guard: RequestGuard,
}

impl<B> TrackedBody<B> {
    pub(super) fn new(inner: B, guard: RequestGuard) -> Self {
        Self { inner, guard }
    }
}

impl<B: Body<Data = Bytes>> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's socket, reporting bytes read and written to its [`Activity`].
#[pin_project::pin_project]
pub(super) struct TrackedIo<T> {
    #[pin]
    inner: T,
    activity: Arc<Activity>,
}

impl<T> TrackedIo<T> {
    pub(super) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead> AsyncRead for TrackedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.on_read();
        }
        result
    }
}

impl<T: AsyncWrite> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.inner.poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.inner.poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: Duration = Duration::from_millis(50);
    const IDLE: Duration = Duration::from_secs(600);
    const BOUND: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn a_new_connection_must_send_a_head_in_time() {
        let activity = Activity::new(HEAD, IDLE);
        tokio::time::timeout(BOUND, activity.expired())
            .await
            .expect("the head deadline fires");
    }

    #[tokio::test]
    async fn requests_hold_off_the_watchdog_then_idle_and_head_phases_follow() {
        let activity = Arc::new(Activity::new(HEAD, IDLE));
        let mut guard = activity.request_started();
        assert_eq!(activity.deadline(), None, "handling: no deadline");
        tokio::time::sleep(HEAD * 2).await;
        assert_eq!(activity.deadline(), None, "still handling");
        guard.responded();
        let streaming = activity.deadline().expect("streaming has a deadline");
        assert!(
            streaming > Instant::now() + IDLE / 2,
            "streaming: the idle timeout"
        );
        activity.on_read();
        assert_eq!(
            activity.deadline(),
            Some(streaming),
            "reads while streaming change nothing"
        );
        drop(guard);
        let idle = activity.deadline().expect("idle has a deadline");
        assert!(idle > Instant::now() + IDLE / 2, "idle: the idle timeout");
        activity.on_read();
        let head = activity.deadline().expect("a head began");
        assert!(head < idle, "a head began: the header-read timeout");
        activity.on_read();
        assert_eq!(
            activity.deadline(),
            Some(head),
            "more bytes do not extend it"
        );
        tokio::time::timeout(BOUND, activity.expired())
            .await
            .expect("the head deadline fires");
    }

    #[tokio::test]
    async fn a_request_starting_wakes_no_one_and_its_end_restarts_the_idle_clock() {
        let activity = Arc::new(Activity::new(HEAD, IDLE));
        let guard = activity.request_started();
        let watchdog = tokio::spawn({
            let activity = activity.clone();
            async move { activity.expired().await }
        });
        tokio::time::sleep(HEAD * 4).await;
        assert!(!watchdog.is_finished(), "no deadline while handling");
        drop(guard);
        tokio::time::sleep(HEAD * 4).await;
        assert!(
            !watchdog.is_finished(),
            "idle: the long idle timeout applies"
        );
        watchdog.abort();
    }
}
