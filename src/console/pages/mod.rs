//! The console's pages, one file each, and what they share.

pub(crate) mod keys;
pub(crate) mod login;
pub(crate) mod logs;
pub(crate) mod overview;
pub(crate) mod sources;
pub(crate) mod usage;
pub(crate) mod users;

use crate::service::Inner;
use crate::state::StateError;

use super::http::Failure;
use super::session::Session;
use super::Console;

/// What a page handler sees.
pub(crate) struct Context<'a> {
    pub(crate) console: &'a Console,
    pub(crate) service: &'a Inner,
    pub(crate) session: &'a Session,
    pub(crate) parts: &'a http::request::Parts,
}

impl Context<'_> {
    /// The stores.
    pub(crate) fn state(&self) -> &crate::state::StateStores {
        &self.console.inner.state
    }

    /// What every page's frame shows: the admin and the form token.
    pub(crate) fn frame(&self, nav: &'static str) -> Frame {
        Frame {
            nav,
            admin: self.session.email.clone(),
            csrf: self.session.csrf.clone(),
        }
    }
}

/// The page frame's data (navigation, who is logged in, the CSRF token).
pub(crate) struct Frame {
    pub(crate) nav: &'static str,
    pub(crate) admin: String,
    pub(crate) csrf: String,
}

/// A store failure as the page shows it: the operator's mistakes in words,
/// the database's failures as 503 (details logged only).
pub(crate) fn state_failure(error: StateError) -> Result<String, Failure> {
    match error {
        StateError::Store(error) => Err(Failure::from(error)),
        other => Ok(other.to_string()),
    }
}

/// The status of a page shown again with a refusal message (400), or
/// without one (200).
pub(crate) fn page_status(message: Option<&String>) -> http::StatusCode {
    if message.is_some() {
        http::StatusCode::BAD_REQUEST
    } else {
        http::StatusCode::OK
    }
}

/// Unix seconds as `2026-12-07 12:04:53 UTC`.
pub(crate) fn unix_time(secs: i64) -> String {
    millis_time(secs.saturating_mul(1000))
}

/// Unix milliseconds as `2026-12-07 12:04:53 UTC`.
pub(crate) fn millis_time(millis: i64) -> String {
    bson::DateTime::from_millis(millis)
        .try_to_rfc3339_string()
        .map(|text| format!("{} UTC", text.replace('T', " ").trim_end_matches('Z')))
        .unwrap_or_else(|_| millis.to_string())
}

/// Now, in Unix seconds.
pub(crate) fn now() -> i64 {
    bson::DateTime::now().timestamp_millis() / 1000
}
