//! Request limits: body size, concurrency and the per-request deadline.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, Limited};

use crate::protocol::ApiError;

/// The limits one service enforces. Defaults are the original service's.
///
/// ```
/// use std::time::Duration;
/// use tower_data_api::Limits;
/// let limits = Limits { request_timeout: Duration::from_secs(30), ..Limits::default() };
/// assert_eq!(limits.max_body_bytes, 18 * 1024 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted request body (default 18 MiB); larger → 413.
    pub max_body_bytes: usize,
    /// Requests handled at once (default 10,000); more → 429 with `Retry-After`.
    pub max_concurrent_requests: usize,
    /// Deadline for one request, body reading included (default 90 s); past it → 504.
    pub request_timeout: Duration,
    /// Time the request body may take to arrive once reading it begins
    /// (default 30 s); past it → 408 `ExecutionTimeLimitExceeded`, and the
    /// request's concurrency slot is free again.
    pub body_read_timeout: Duration,
    /// Password verifications (argon2, on the blocking pool) running at once
    /// (default: the number of cores); more → 429 with `Retry-After`, so a
    /// flood of logins cannot take the CPU from other requests.
    pub max_concurrent_password_checks: usize,
    /// `find`'s `limit` when the request has none (default 1000).
    pub default_find_limit: u64,
    /// The most documents one `find` returns (default 50,000); larger limits
    /// (and `limit: 0`) are clamped to it.
    pub max_find_limit: u64,
    /// Largest encoded response (default 16 MiB, the Atlas Data API's
    /// limit); a `find`, `findOne` or `aggregate` whose answer would be
    /// larger fails with 400 `ReadSizeLimitExceeded`, and encoding stops as
    /// soon as it passes the limit.
    pub max_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 18 * 1024 * 1024,
            max_concurrent_requests: 10_000,
            request_timeout: Duration::from_secs(90),
            body_read_timeout: Duration::from_secs(30),
            max_concurrent_password_checks: std::thread::available_parallelism()
                .map_or(2, |cores| cores.get()),
            default_find_limit: 1000,
            max_find_limit: 50_000,
            max_response_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Checks that every limit is usable, naming the first that is not.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let zero = [
            ("max_body_bytes", self.max_body_bytes == 0),
            ("max_concurrent_requests", self.max_concurrent_requests == 0),
            ("request_timeout", self.request_timeout.is_zero()),
            ("body_read_timeout", self.body_read_timeout.is_zero()),
            (
                "max_concurrent_password_checks",
                self.max_concurrent_password_checks == 0,
            ),
            ("default_find_limit", self.default_find_limit == 0),
            ("max_find_limit", self.max_find_limit == 0),
            ("max_response_bytes", self.max_response_bytes == 0),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, is_zero)| *is_zero) {
            return Err(format!("limit {name} must be greater than zero"));
        }
        if self.default_find_limit > self.max_find_limit {
            return Err("limit default_find_limit must not exceed max_find_limit".into());
        }
        let max = tokio::sync::Semaphore::MAX_PERMITS;
        if self.max_concurrent_requests > max {
            return Err("limit max_concurrent_requests is too large".into());
        }
        if self.max_concurrent_password_checks > max {
            return Err("limit max_concurrent_password_checks is too large".into());
        }
        Ok(())
    }
}

/// Refuses a body whose declared `Content-Length` is over `limit`, before reading it.
pub(crate) fn check_content_length(
    headers: &http::HeaderMap,
    limit: usize,
) -> Result<(), ApiError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Err(ApiError::payload_too_large(limit)),
        _ => Ok(()),
    }
}

/// Reads a whole body, stopping with 413 as soon as it passes `limit` bytes
/// and with 408 when it is not complete within `timeout`.
pub(crate) async fn read_body<B>(
    body: B,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let collected = finish_by(Limited::new(body, limit).collect(), || {
        Instant::now().checked_add(timeout)
    })
    .await
    .map_err(|TimedOut| body_timeout(timeout))?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::payload_too_large(limit))
        }
        Err(_) => Err(ApiError::bad_request("the request body could not be read")),
    }
}

/// A deadline passed before the work it bounded was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimedOut;

/// Runs `work` until it is done, or fails at the instant `deadline` gives
/// (`None`: no deadline). Most work of a request is done in its first poll,
/// so the timer (and `deadline`, which may read the clock) is set up only
/// when that poll leaves it pending.
pub(crate) async fn finish_by<F: Future>(
    work: F,
    deadline: impl FnOnce() -> Option<Instant>,
) -> Result<F::Output, TimedOut> {
    let mut work = pin!(work);
    if let Poll::Ready(output) = poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await {
        return Ok(output);
    }
    match deadline() {
        Some(at) => tokio::time::timeout_at(at.into(), work)
            .await
            .map_err(|_| TimedOut),
        None => Ok(work.await),
    }
}

/// 408: the body did not arrive in time. `ExecutionTimeLimitExceeded` is the
/// code the Data API uses for its other deadline.
fn body_timeout(timeout: Duration) -> ApiError {
    ApiError::new(
        http::StatusCode::REQUEST_TIMEOUT,
        crate::protocol::ErrorCode::ExecutionTimeLimitExceeded,
        format!(
            "the request body was not received within {} s",
            timeout.as_secs_f64()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    const SOON: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn work_done_in_its_first_poll_sets_no_deadline() {
        let done = finish_by(async { 7 }, || panic!("no deadline is needed")).await;
        assert_eq!(done, Ok(7));
    }

    #[tokio::test]
    async fn pending_work_ends_at_its_deadline_or_runs_on_without_one() {
        let late = tokio::time::sleep(SOON);
        let at = Instant::now() + Duration::from_millis(20);
        assert_eq!(finish_by(late, || Some(at)).await, Err(TimedOut));
        assert!(Instant::now() >= at);
        let yielded = async {
            tokio::task::yield_now().await;
            7
        };
        assert_eq!(finish_by(yielded, || None).await, Ok(7));
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let ok = read_body(Full::new(Bytes::from_static(b"12345")), 5, SOON).await;
        assert_eq!(ok.unwrap(), Bytes::from_static(b"12345"));
        let err = read_body(Full::new(Bytes::from_static(b"123456")), 5, SOON)
            .await
            .unwrap_err();
        assert_eq!(err.status().as_u16(), 413);
    }

    #[tokio::test]
    async fn bodies_that_do_not_arrive_in_time_are_408() {
        use http_body_util::StreamBody;
        let trickle = StreamBody::new(futures_util::stream::pending::<
            Result<http_body::Frame<Bytes>, std::io::Error>,
        >());
        let err = read_body(trickle, 100, Duration::from_millis(20))
            .await
            .unwrap_err();
        assert_eq!(err.status().as_u16(), 408);
        assert_eq!(
            err.code(),
            crate::protocol::ErrorCode::ExecutionTimeLimitExceeded
        );
        assert!(err.message().contains("0.02 s"), "{}", err.message());
    }

    #[test]
    fn declared_lengths_and_validation() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_LENGTH, "6".parse().unwrap());
        assert!(check_content_length(&headers, 5).is_err());
        assert!(check_content_length(&headers, 6).is_ok());
        assert!(Limits::default().validate().is_ok());
        let zero = Limits {
            max_concurrent_requests: 0,
            ..Limits::default()
        };
        assert!(zero
            .validate()
            .unwrap_err()
            .contains("max_concurrent_requests"));
    }
}
