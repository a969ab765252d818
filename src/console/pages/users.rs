//! Users: list, add, disable/enable, remove, revoke sessions.

use askama::Template;

use super::super::http::{Failure, Form, Reply};
use super::{state_failure, unix_time, Context, Frame};

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    frame: Frame,
    users: Vec<UserRow>,
    message: Option<String>,
}

struct UserRow {
    email: String,
    id: String,
    created: String,
    disabled: bool,
    admin: bool,
    source: String,
}

/// The page, with a refusal to show.
pub(crate) async fn page(page: &Context<'_>, message: Option<String>) -> Result<Reply, Failure> {
    let users = match page.state().users.list().await {
        Ok(users) => users,
        Err(error) => return Err(Failure::BadRequest(state_failure(error)?)),
    };
    let config = &page.console.inner.config;
    let users = users
        .into_iter()
        .map(|user| UserRow {
            admin: config.is_admin(&user.email),
            created: unix_time(user.created_at),
            disabled: user.disabled,
            source: user.source,
            id: user.id,
            email: user.email,
        })
        .collect();
    let status = super::page_status(message.as_ref());
    Ok(Reply::html(
        status,
        &UsersPage {
            frame: page.frame("users"),
            users,
            message,
        },
    ))
}

/// `op` = `add` (`email`, `password`), `disable`, `enable`, `remove`,
/// `revoke` (`email`).
pub(crate) async fn submit(page: &Context<'_>, form: &Form) -> Result<Reply, Failure> {
    let email = form.require("email")?;
    let users = &page.state().users;
    let op = form.require("op")?;
    let outcome = match op {
        "add" => {
            let password = form.raw("password").unwrap_or_default();
            users.add(email, password).await.map(drop)
        }
        "disable" => users.set_disabled(email, true).await,
        "enable" => users.set_disabled(email, false).await,
        "remove" => users.remove(email).await,
        "revoke" => users.revoke_sessions(email).await,
        other => {
            return Err(Failure::BadRequest(format!("unknown operation '{other}'")));
        }
    };
    if let Err(error) = outcome {
        let message = state_failure(error)?;
        return self::page(page, Some(message)).await;
    }
    if matches!(op, "disable" | "remove" | "revoke") {
        page.console
            .inner
            .sessions
            .end_all(&email.to_ascii_lowercase())
            .await?;
    }
    tracing::info!(target: "tower_data_api::console", admin = %page.session.email, user = %email, op, "user changed");
    Ok(Reply::redirect("users"))
}
