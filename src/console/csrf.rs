//! CSRF tokens: every form of a session carries the session's random token
//! (field `csrf`); the login form, before any session, carries the value of
//! its own cookie (double submit). Compared in constant time.

use subtle::ConstantTimeEq as _;

use super::http::{cookie, Failure, Form, LOGIN_COOKIE};
use super::session::Session;

/// The form's `csrf` field is the session's token, or 403.
pub(crate) fn check(session: &Session, form: &Form) -> Result<(), Failure> {
    same(form.get("csrf"), Some(&session.csrf))
}

/// The login form's `csrf` field is its cookie's value, or 403.
pub(crate) fn check_login(parts: &http::request::Parts, form: &Form) -> Result<(), Failure> {
    same(form.get("csrf"), cookie(parts, LOGIN_COOKIE))
}

fn same(sent: Option<&str>, expected: Option<&str>) -> Result<(), Failure> {
    match (sent, expected) {
        (Some(sent), Some(expected))
            if expected.len() == 64 && bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) =>
        {
            Ok(())
        }
        _ => Err(Failure::Forbidden(
            "the form's CSRF token is missing or wrong: reload the page and try again".into(),
        )),
    }
}
