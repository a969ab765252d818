//! The login page: email and password of a user the configuration names as
//! an administrator.

use askama::Template;
use http::StatusCode;

use crate::auth::{Secret, UserStore as _};

use super::super::csrf;
use super::super::http::{Failure, Form, Reply};
use super::super::session::random_token;
use super::super::Console;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    message: Option<&'a str>,
}

/// The form, with a fresh login token (cookie and hidden field).
pub(crate) fn form(message: Option<(StatusCode, &str)>) -> Reply {
    let token = random_token();
    let (status, message) = match message {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    Reply::html(
        status,
        &LoginPage {
            csrf: &token,
            message,
        },
    )
    .with_login_token(token)
}

/// Checks the credentials; an administrator gets a session and the Overview.
pub(crate) async fn submit(
    console: &Console,
    parts: &http::request::Parts,
    form: &Form,
) -> Result<Reply, Failure> {
    csrf::check_login(parts, form)?;
    let inner = &console.inner;
    let email = form.get("email").unwrap_or_default().to_ascii_lowercase();
    let password = form.raw("password").unwrap_or_default();
    if let Err(refused) = inner.failed_logins.refuse_blocked(parts, Some(&email)) {
        return Ok(self::form(Some((
            StatusCode::TOO_MANY_REQUESTS,
            refused.message(),
        ))));
    }
    let user = inner
        .state
        .users
        .verify_password(&email, &Secret::new(password))
        .await?;
    if user.is_none() || !inner.config.is_admin(&email) {
        inner.failed_logins.record_failure(parts, Some(&email));
        return Ok(self::form(Some((
            StatusCode::UNAUTHORIZED,
            "Wrong email or password, or not an administrator.",
        ))));
    }
    let lifetime = inner.config.session_lifetime;
    let id = inner.sessions.start(&email, lifetime).await?;
    Ok(Reply::redirect("./").with_session(id, lifetime.as_secs()))
}
