//! Data sources: access level and on/off, changed at run time and kept in
//! the state database (enforced by every instance within a second).

use askama::Template;
use http::StatusCode;

use crate::AccessLevel;

use super::super::http::{Failure, Form, Reply};
use super::overview::{source_rows, SourceRow};
use super::{state_failure, Context, Frame};

#[derive(Template)]
#[template(path = "sources.html")]
struct SourcesPage {
    frame: Frame,
    sources: Vec<SourceRow>,
    message: Option<String>,
}

/// The page, with a message after a change.
pub(crate) async fn page(page: &Context<'_>, message: Option<String>) -> Result<Reply, Failure> {
    let sources = source_rows(page).await?;
    Ok(Reply::html(
        StatusCode::OK,
        &SourcesPage {
            frame: page.frame("sources"),
            sources,
            message,
        },
    ))
}

/// Applies one data source's form: `access` and `enabled`.
pub(crate) async fn submit(page: &Context<'_>, form: &Form) -> Result<Reply, Failure> {
    let name = form.require("name")?;
    if !page.service.data_sources.contains_key(name) {
        return Err(Failure::BadRequest(format!(
            "there is no data source '{name}'"
        )));
    }
    let access: AccessLevel = form
        .require("access")?
        .parse()
        .map_err(Failure::BadRequest)?;
    let enabled = form.get("enabled").is_some();
    let sources = &page.state().sources;
    let outcome = match sources.set_access(name, access).await {
        Ok(()) => sources.set_disabled(name, !enabled).await,
        Err(error) => Err(error),
    };
    if let Err(error) = outcome {
        let message = state_failure(error)?;
        return self::page(page, Some(message)).await;
    }
    tracing::info!(target: "tower_data_api::console", admin = %page.session.email, data_source = %name, ?access, enabled, "data source changed");
    Ok(Reply::redirect("sources"))
}
