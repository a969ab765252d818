//! Overview: base URLs, app id, versions, data sources and a curl line.

use std::time::Duration;

use askama::Template;
use http::StatusCode;

use super::super::http::{Failure, Reply};
use super::{Context, Frame};

/// How long a data source's health check may take.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    frame: Frame,
    app_id: String,
    versions: String,
    base_urls: Vec<String>,
    sources: Vec<SourceRow>,
    curl: String,
}

/// One data source as the Overview and the Data sources page show it.
pub(crate) struct SourceRow {
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) access: &'static str,
    pub(crate) configured: &'static str,
    pub(crate) enabled: bool,
    pub(crate) health: String,
}

/// The label of an access level, as the original's screen named them.
pub(crate) fn access_label(access: crate::AccessLevel) -> &'static str {
    match access {
        crate::AccessLevel::ReadWrite => "Read and Write",
        crate::AccessLevel::ReadOnly => "Read Only",
        crate::AccessLevel::NoAccess => "No Access",
    }
}

/// Every data source, by name, with its current setting and health.
pub(crate) async fn source_rows(page: &Context<'_>) -> Result<Vec<SourceRow>, Failure> {
    let settings = page.state().sources.all().await?;
    let mut names: Vec<&String> = page.service.data_sources.keys().collect();
    names.sort();
    let mut rows = Vec::new();
    for name in names {
        let source = &page.service.data_sources[name];
        let setting = settings.get(name).copied().unwrap_or_default();
        let health = match tokio::time::timeout(PING_TIMEOUT, source.backend.ping()).await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(error)) => format!("failing: {}", error.message),
            Err(_) => "no answer within 2 s".to_owned(),
        };
        rows.push(SourceRow {
            name: name.clone(),
            kind: source.backend.kind(),
            access: access_label(setting.access.unwrap_or(source.access)),
            configured: access_label(source.access),
            enabled: !setting.disabled,
            health,
        });
    }
    Ok(rows)
}

/// The public base of the mount point: configured, or this request's host.
pub(crate) fn public_base(page: &Context<'_>) -> String {
    if let Some(url) = &page.console.inner.config.public_url {
        return url.clone();
    }
    let host = page
        .parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    let scheme = if page.console.secure(page.parts) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// The Overview page.
pub(crate) async fn page(page: &Context<'_>) -> Result<Reply, Failure> {
    let base = public_base(page);
    let app_id = page.service.app_id.clone();
    let base_urls: Vec<String> = page
        .service
        .versions
        .iter()
        .map(|version| format!("{base}/app/{app_id}/endpoint/data/{version}"))
        .collect();
    let sources = source_rows(page).await?;
    let source = sources
        .first()
        .map_or("mongodb-atlas", |row| row.name.as_str());
    let curl = format!(
        "curl -s {}/action/find -H 'apiKey: YOUR-API-KEY' -H 'Content-Type: application/json' \
         -d '{{\"dataSource\":\"{source}\",\"database\":\"test\",\"collection\":\"test\",\"filter\":{{}}}}'",
        base_urls.last().cloned().unwrap_or_default()
    );
    Ok(Reply::html(
        StatusCode::OK,
        &OverviewPage {
            frame: page.frame("overview"),
            app_id,
            versions: page
                .service
                .versions
                .iter()
                .map(|version| version.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            base_urls,
            sources,
            curl,
        },
    ))
}
