//! [`RequestContext`]: what a backend may know about the request it serves —
//! when the request must be answered, and whether its client is gone.
//!
//! The service runs every backend call inside a context (a tokio task-local,
//! so the [`Backend`](super::Backend) trait keeps its signatures). A backend
//! that does long work reads it with [`RequestContext::current`] and stops
//! when [`RequestContext::is_done`] says so; the embedded engine checks it
//! every few thousand steps, the MongoDB backend turns the time left into
//! `maxTimeMS`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// The deadline of one request and its abandonment flag. Cheap to clone;
/// clones share the flag.
///
/// ```
/// use std::time::Duration;
/// use tower_data_api::backend::RequestContext;
///
/// let context = RequestContext::with_timeout(Duration::from_secs(5));
/// assert!(!context.is_done());
/// context.abandon();
/// assert!(context.is_abandoned() && context.is_done());
/// ```
#[derive(Debug, Clone)]
pub struct RequestContext {
    deadline: Option<Instant>,
    abandoned: Arc<AtomicBool>,
    response_limit: Option<usize>,
}

impl Default for RequestContext {
    /// No deadline, not abandoned: what a backend sees outside the service.
    fn default() -> Self {
        RequestContext {
            deadline: None,
            abandoned: Arc::new(AtomicBool::new(false)),
            response_limit: None,
        }
    }
}

impl RequestContext {
    /// A context whose deadline is `timeout` from now.
    pub fn with_timeout(timeout: Duration) -> Self {
        RequestContext {
            deadline: Instant::now().checked_add(timeout),
            ..RequestContext::default()
        }
    }

    /// A context whose deadline is the instant `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use tower_data_api::backend::RequestContext;
    ///
    /// let context = RequestContext::with_deadline(Instant::now() + Duration::from_secs(5));
    /// assert!(!context.is_done());
    /// ```
    pub fn with_deadline(deadline: Instant) -> Self {
        RequestContext {
            deadline: Some(deadline),
            ..RequestContext::default()
        }
    }

    /// The context of the request being served by this task, or the default
    /// (no deadline) when called outside one.
    pub fn current() -> RequestContext {
        CURRENT.try_with(RequestContext::clone).unwrap_or_default()
    }

    /// Runs `work` with this context as [`RequestContext::current`].
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    /// The same context with a response size limit: the most bytes the
    /// encoded answer may have ([`Limits::max_response_bytes`](crate::Limits::max_response_bytes)).
    #[must_use]
    pub fn with_response_limit(mut self, bytes: usize) -> Self {
        self.response_limit = Some(bytes);
        self
    }

    /// The response size limit, if any. The service checks the encoded
    /// answer itself; a backend may use this to stop reading a result early
    /// that is certain to exceed it (see [`BackendErrorKind::ResponseTooLarge`](crate::backend::BackendErrorKind::ResponseTooLarge)).
    pub fn response_limit(&self) -> Option<usize> {
        self.response_limit
    }

    /// When the request must be answered, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline (`None`: no deadline; zero when past).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// Marks the request as abandoned: nobody waits for its answer any more.
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }

    /// Whether the request was abandoned (its client left or it timed out).
    pub fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// Whether work for this request should stop: abandoned or past its deadline.
    pub fn is_done(&self) -> bool {
        self.is_abandoned() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// A guard that abandons this context when dropped: the service holds
    /// one for as long as it still waits for the answer.
    pub(crate) fn abandon_on_drop(&self) -> AbandonOnDrop {
        AbandonOnDrop(Some(self.abandoned.clone()))
    }

    /// The shared flag, for engines that poll it from another thread.
    #[cfg(feature = "memory")]
    pub(crate) fn abandoned_flag(&self) -> Arc<AtomicBool> {
        self.abandoned.clone()
    }
}

/// Sets the abandonment flag when dropped (see [`RequestContext::abandon_on_drop`]).
#[derive(Debug)]
pub(crate) struct AbandonOnDrop(Option<Arc<AtomicBool>>);

impl AbandonOnDrop {
    /// The answer arrived: dropping the guard no longer abandons the request.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if let Some(flag) = &self.0 {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn current_is_the_scoped_context_and_default_outside() {
        assert!(RequestContext::current().deadline().is_none());
        let context = RequestContext::with_timeout(Duration::from_secs(60));
        let seen = context
            .clone()
            .scope(async { RequestContext::current() })
            .await;
        assert_eq!(seen.deadline(), context.deadline());
        seen.abandon();
        assert!(context.is_abandoned(), "clones share the flag");
    }

    #[test]
    fn dropping_the_guard_abandons_and_disarming_does_not() {
        let context = RequestContext::default();
        context.abandon_on_drop().disarm();
        assert!(!context.is_abandoned());
        drop(context.abandon_on_drop());
        assert!(context.is_abandoned());
    }

    #[test]
    fn past_deadline_is_done() {
        let context = RequestContext::with_timeout(Duration::ZERO);
        assert!(context.is_done());
        assert_eq!(context.remaining(), Some(Duration::ZERO));
    }
}
