//! Rate limits: token buckets per principal, and a brake on failed
//! authentication per client address and per email.
//!
//! The buckets are `governor`'s (GCRA, the standard token-bucket
//! equivalent, lock-free). Over a limit the service answers 429
//! `TooManyRequests` with `Retry-After`, in the Data API's error shape.
//!
//! **Per principal** ([`DataApiBuilder::rate_limit`](crate::DataApiBuilder::rate_limit)):
//! every API key and user gets its own bucket, keyed by user id; a key or
//! user named in [`DataApiBuilder::rate_limit_for`](crate::DataApiBuilder::rate_limit_for)
//! gets the bucket given there instead.
//!
//! **Failed authentication** ([`DataApiBuilder::failed_auth_limit`](crate::DataApiBuilder::failed_auth_limit)):
//! each refused credential (401, a refused login) takes a token from the
//! client address's bucket and, for email/password (the headers, or a
//! login body's `username`), from the email's. A failure that finds its bucket empty blocks the address (or
//! email): requests with credentials from it get 429 until the bucket holds
//! a token again. With the default policy, 20 failures at once are answered
//! as usual, then one more every 3 s. A real user shares
//! the block only while an attacker keeps failing, and is free again
//! seconds after the attacker stops: nothing locks an account for long.
//! The address is the TCP peer the server puts in the request extensions
//! (`std::net::SocketAddr`, as `server::serve` does); requests without one
//! are limited per email only.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::request::Parts;
use http::{HeaderValue, StatusCode};

use crate::auth::Principal;
use crate::protocol::{ApiError, ErrorCode};

/// A token bucket: up to `burst` requests at once, refilled at a steady
/// rate.
///
/// ```
/// use tower_data_api::RateLimit;
/// let limit = RateLimit::per_second(50.0).burst(100);
/// assert_eq!(limit.burst_size(), 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    per_second: f64,
    burst: u32,
}

impl RateLimit {
    /// `rate` requests per second, with a burst of one second's worth.
    pub fn per_second(rate: f64) -> Self {
        RateLimit {
            per_second: rate,
            burst: burst_of(rate),
        }
    }

    /// `rate` requests per minute, with a burst of one minute's worth.
    pub fn per_minute(rate: f64) -> Self {
        RateLimit {
            per_second: rate / 60.0,
            burst: burst_of(rate),
        }
    }

    /// The same rate with a burst of `burst` requests at once.
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    /// Requests allowed at once.
    pub fn burst_size(&self) -> u32 {
        self.burst
    }

    /// The `governor` quota, or why this limit is unusable.
    fn quota(&self) -> Result<Quota, String> {
        let usable = self.per_second.is_finite() && self.per_second > 0.0;
        let period = usable
            .then(|| Duration::try_from_secs_f64(1.0 / self.per_second).ok())
            .flatten()
            .filter(|period| !period.is_zero());
        let (Some(period), Some(burst)) = (period, NonZeroU32::new(self.burst)) else {
            return Err(format!(
                "a rate limit needs a positive rate and burst (got {} per second, burst {})",
                self.per_second, self.burst
            ));
        };
        Quota::with_period(period)
            .map(|quota| quota.allow_burst(burst))
            .ok_or_else(|| "a rate limit's period must not be zero".to_owned())
    }
}

fn burst_of(rate: f64) -> u32 {
    if rate.is_finite() && rate >= 1.0 {
        rate.ceil().min(f64::from(u32::MAX)) as u32
    } else {
        1
    }
}

/// The failed-authentication policy when turned on without one:
/// 20 failures at once per address, then one every 3 s.
pub(crate) const DEFAULT_FAILED_AUTH_LIMIT: RateLimit = RateLimit {
    per_second: 1.0 / 3.0,
    burst: 20,
};

/// How many blocked addresses and emails are remembered before expired
/// ones are swept.
const BLOCKED_SWEEP_AT: usize = 100_000;

/// Checks between two sweeps of idle per-principal buckets.
const SWEEP_EVERY: u64 = 4096;

/// What the builder collected, checked at build time.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateLimitSettings {
    pub(crate) default: Option<RateLimit>,
    pub(crate) by_name: Vec<(String, RateLimit)>,
    pub(crate) failed_auth: Option<RateLimit>,
}

/// The live buckets of one service.
pub(crate) struct RateLimits {
    default: Option<DefaultKeyedRateLimiter<String>>,
    by_name: HashMap<String, DefaultDirectRateLimiter>,
    failed_auth: Option<FailedAuth>,
    checks: AtomicU64,
}

struct FailedAuth {
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    by_email: DefaultKeyedRateLimiter<String>,
    /// Addresses and emails whose bucket ran dry, and until when.
    blocked: Mutex<HashMap<Blocked, Instant>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Blocked {
    Address(IpAddr),
    Email(String),
}

impl RateLimits {
    /// Builds the buckets, or names the setting that is unusable.
    pub(crate) fn new(settings: &RateLimitSettings) -> Result<Self, String> {
        let default = settings
            .default
            .map(|limit| limit.quota().map(RateLimiter::keyed))
            .transpose()
            .map_err(|e| format!("rate_limit: {e}"))?;
        let by_name = settings
            .by_name
            .iter()
            .map(|(name, limit)| {
                limit
                    .quota()
                    .map(|quota| (name.clone(), RateLimiter::direct(quota)))
                    .map_err(|e| format!("rate_limit_for('{name}'): {e}"))
            })
            .collect::<Result<_, _>>()?;
        let failed_auth = settings
            .failed_auth
            .map(|limit| {
                limit.quota().map(|quota| FailedAuth {
                    by_address: RateLimiter::keyed(quota),
                    by_email: RateLimiter::keyed(quota),
                    blocked: Mutex::default(),
                })
            })
            .transpose()
            .map_err(|e| format!("failed_auth_limit: {e}"))?;
        Ok(RateLimits {
            default,
            by_name,
            failed_auth,
            checks: AtomicU64::new(0),
        })
    }

    /// Takes a token from the principal's bucket, or answers 429.
    pub(crate) fn check(&self, principal: &Principal) -> Result<(), ApiError> {
        let named = principal
            .name
            .as_ref()
            .and_then(|name| self.by_name.get(name));
        let outcome = match (named, &self.default) {
            (Some(bucket), _) => bucket.check(),
            (None, Some(buckets)) => {
                if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
                    buckets.retain_recent();
                }
                buckets.check_key(&principal.id)
            }
            (None, None) => return Ok(()),
        };
        outcome.map_err(|not_until| {
            refusal(
                not_until.wait_time_from(DefaultClock::default().now()),
                "rate limit exceeded for this caller",
            )
        })
    }

    /// 429 when the request comes from an address, or names an email,
    /// whose failed-authentication bucket is empty.
    ///
    /// `login_email` is the email of a password login's body (the header
    /// `email` counts without it).
    pub(crate) fn refuse_blocked(
        &self,
        parts: &Parts,
        login_email: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some(failed) = &self.failed_auth else {
            return Ok(());
        };
        let now = Instant::now();
        let blocked = failed.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let until = blocked_keys(parts, login_email)
            .filter_map(|key| blocked.get(&key))
            .filter(|until| **until > now)
            .max();
        match until {
            Some(until) => Err(refusal(
                *until - now,
                "too many failed authentication attempts; retry later",
            )),
            None => Ok(()),
        }
    }

    /// Counts one refused credential against the request's address and email.
    pub(crate) fn record_failure(&self, parts: &Parts, login_email: Option<&str>) {
        let Some(failed) = &self.failed_auth else {
            return;
        };
        let clock = DefaultClock::default();
        let mut newly_blocked = Vec::new();
        for key in blocked_keys(parts, login_email) {
            let outcome = match &key {
                Blocked::Address(ip) => failed.by_address.check_key(ip),
                Blocked::Email(email) => failed.by_email.check_key(email),
            };
            if let Err(not_until) = outcome {
                newly_blocked.push((key, not_until.wait_time_from(clock.now())));
            }
        }
        if newly_blocked.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut blocked = failed.blocked.lock().unwrap_or_else(|e| e.into_inner());
        if blocked.len() >= BLOCKED_SWEEP_AT {
            blocked.retain(|_, until| *until > now);
            failed.by_address.retain_recent();
            failed.by_email.retain_recent();
        }
        for (key, wait) in newly_blocked {
            blocked.insert(key, now + wait);
        }
    }
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_principal", &self.default.is_some())
            .field("named", &self.by_name.keys().collect::<Vec<_>>())
            .field("failed_auth", &self.failed_auth.is_some())
            .finish()
    }
}

/// The address and the email (header, or a login's body) a request's
/// failures count against.
fn blocked_keys<'a>(
    parts: &'a Parts,
    login_email: Option<&'a str>,
) -> impl Iterator<Item = Blocked> + 'a {
    let address = parts
        .extensions
        .get::<SocketAddr>()
        .map(|peer| Blocked::Address(peer.ip()));
    let email = parts
        .headers
        .get("email")
        .and_then(|value| value.to_str().ok())
        .or(login_email)
        .map(|email| Blocked::Email(email.trim().to_ascii_lowercase()));
    address.into_iter().chain(email)
}

/// 429 `TooManyRequests` with `Retry-After` in whole seconds (at least 1).
fn refusal(wait: Duration, message: &str) -> ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let retry_after = HeaderValue::from(secs.max(1));
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyRequests,
        message,
    )
    .with_header(http::header::RETRY_AFTER, retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::PrincipalKind;

    fn principal(id: &str, name: &str) -> Principal {
        Principal::new(id, PrincipalKind::Server, "api-key").with_name(name)
    }

    #[test]
    fn each_principal_has_its_own_bucket_and_named_ones_their_own_size() {
        let limits = RateLimits::new(&RateLimitSettings {
            default: Some(RateLimit::per_minute(1.0).burst(2)),
            by_name: vec![("big".into(), RateLimit::per_minute(1.0).burst(5))],
            failed_auth: None,
        })
        .unwrap();
        let a = principal("a", "key-a");
        let b = principal("b", "key-b");
        assert!(limits.check(&a).is_ok() && limits.check(&a).is_ok());
        let refused = limits.check(&a).unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code(), ErrorCode::TooManyRequests);
        assert_eq!(refused.message(), "rate limit exceeded for this caller");
        assert!(limits.check(&b).is_ok(), "another key is unaffected");
        let big = principal("c", "big");
        for _ in 0..5 {
            assert!(limits.check(&big).is_ok());
        }
        assert!(limits.check(&big).is_err());
    }

    #[test]
    fn unusable_limits_are_named() {
        let err = RateLimits::new(&RateLimitSettings {
            default: Some(RateLimit::per_second(0.0)),
            ..RateLimitSettings::default()
        })
        .unwrap_err();
        assert!(
            err.starts_with("rate_limit: a rate limit needs a positive rate"),
            "{err}"
        );
        let err = RateLimits::new(&RateLimitSettings {
            by_name: vec![("k".into(), RateLimit::per_second(1.0).burst(0))],
            ..RateLimitSettings::default()
        })
        .unwrap_err();
        assert!(err.starts_with("rate_limit_for('k')"), "{err}");
    }

    #[test]
    fn failures_block_the_address_and_the_email_until_a_token_returns() {
        let limits = RateLimits::new(&RateLimitSettings {
            failed_auth: Some(RateLimit::per_second(2.0).burst(2)),
            ..RateLimitSettings::default()
        })
        .unwrap();
        let request = |ip: [u8; 4], email: Option<&str>| {
            let mut builder = http::Request::post("/x");
            if let Some(email) = email {
                builder = builder.header("email", email);
            }
            let mut request = builder.body(()).unwrap();
            request
                .extensions_mut()
                .insert(SocketAddr::from((ip, 4000)));
            request.into_parts().0
        };
        let attacker = request([10, 0, 0, 1], Some("Victim@example.com"));
        // Two failures fit the bucket; the third finds it empty and blocks.
        for _ in 0..3 {
            assert!(limits.refuse_blocked(&attacker, None).is_ok());
            limits.record_failure(&attacker, None);
        }
        let refused = limits.refuse_blocked(&attacker, None).unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.message().contains("failed authentication"));
        // Same email from elsewhere: blocked too, briefly; another address
        // without that email is not.
        assert!(limits
            .refuse_blocked(&request([10, 0, 0, 2], Some("victim@example.com")), None)
            .is_err());
        assert!(limits
            .refuse_blocked(&request([10, 0, 0, 2], None), None)
            .is_ok());
        // A login body's email counts like the header.
        assert!(limits
            .refuse_blocked(&request([10, 0, 0, 3], None), Some("VICTIM@example.com"))
            .is_err());
        // A token returns after 500 ms at 2 per second.
        std::thread::sleep(Duration::from_millis(600));
        assert!(limits.refuse_blocked(&attacker, None).is_ok(), "released");
    }
}
