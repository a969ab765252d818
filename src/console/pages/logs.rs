//! Logs: the last 30 days of requests, newest first, filtered and paged;
//! one request by its id (`?co_id=`, the page an error's `link` opens).

use askama::Template;
use bson::{Bson, Document};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::state::LogFilter;

use super::super::http::{Failure, Reply};
use super::{millis_time, now, Context, Frame};

/// Entries per page.
const PAGE_SIZE: u64 = 50;

/// The filters, as the form sends them (a GET query string).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct Filters {
    /// `2`, `3`, `4`, `5` (a class) or an exact status (`401`).
    status: String,
    action: String,
    source: String,
    /// A key name or user email.
    who: String,
    /// `1h`, `24h`, `7d` or `30d` (default) when `from` is empty.
    range: String,
    /// `YYYY-MM-DDTHH:MM` (UTC).
    from: String,
    /// `YYYY-MM-DDTHH:MM` (UTC).
    to: String,
    #[serde(skip_serializing)]
    page: u64,
    #[serde(skip_serializing)]
    co_id: String,
}

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsPage {
    frame: Frame,
    filters: Filters,
    rows: Vec<LogRow>,
    page: u64,
    previous: Option<String>,
    next: Option<String>,
    message: Option<String>,
}

struct LogRow {
    request_id: String,
    at: String,
    status: i64,
    action: String,
    source: String,
    who: String,
    duration: String,
    error: String,
}

#[derive(Template)]
#[template(path = "log_detail.html")]
struct DetailPage {
    frame: Frame,
    request_id: String,
    fields: Vec<(String, String)>,
}

fn text(entry: &Document, key: &str) -> String {
    match entry.get(key) {
        None | Some(Bson::Null) => String::new(),
        Some(Bson::String(s)) => s.clone(),
        Some(Bson::DateTime(at)) => millis_time(at.timestamp_millis()),
        Some(Bson::Double(n)) => format!("{n:.1}"),
        Some(other) => other.to_string(),
    }
}

/// `YYYY-MM-DDTHH:MM` (UTC) as Unix seconds.
fn parse_minute(text: &str) -> Result<i64, Failure> {
    let seconds = if text.len() == 16 { ":00Z" } else { "Z" };
    bson::DateTime::parse_rfc3339_str(format!("{text}{seconds}"))
        .map(|at| at.timestamp_millis() / 1000)
        .map_err(|_| Failure::BadRequest(format!("'{text}' is not a time like 2026-12-07T09:30")))
}

impl Filters {
    fn log_filter(&self) -> Result<LogFilter, Failure> {
        let mut filter = LogFilter::default();
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        match self.status.trim() {
            "" => {}
            class @ ("2" | "3" | "4" | "5") => filter.status_class = class.parse().ok(),
            exact => {
                filter.status = Some(exact.parse().map_err(|_| {
                    Failure::BadRequest(format!("'{exact}' is not a status or status class"))
                })?)
            }
        }
        filter.action = some(&self.action);
        filter.data_source = some(&self.source);
        filter.principal_name = some(&self.who);
        filter.since = Some(match some(&self.from) {
            Some(from) => parse_minute(&from)?,
            None => {
                now()
                    - match self.range.as_str() {
                        "1h" => 3_600,
                        "24h" => 86_400,
                        "7d" => 7 * 86_400,
                        _ => 30 * 86_400,
                    }
            }
        });
        filter.until = some(&self.to).map(|to| parse_minute(&to)).transpose()?;
        filter.skip = self.page.saturating_mul(PAGE_SIZE);
        filter.limit = Some(PAGE_SIZE + 1);
        Ok(filter)
    }

    /// The query string of these filters on page `page`.
    fn link(&self, page: u64) -> String {
        let query = serde_urlencoded::to_string(self).unwrap_or_default();
        format!("logs?{query}&page={page}")
    }
}

/// The list, or one request's detail with `co_id`.
pub(crate) async fn page(page: &Context<'_>, query: &str) -> Result<Reply, Failure> {
    let filters: Filters = serde_urlencoded::from_str(query)
        .map_err(|_| Failure::BadRequest("the filters could not be read".into()))?;
    if !filters.co_id.is_empty() {
        return detail(page, &filters.co_id).await;
    }
    let (rows, message, more) = match filters.log_filter() {
        Err(Failure::BadRequest(message)) => (Vec::new(), Some(message), false),
        Err(other) => return Err(other),
        Ok(filter) => {
            let mut entries = page.state().logs.find(&filter).await?;
            let more = entries.len() as u64 > PAGE_SIZE;
            entries.truncate(PAGE_SIZE as usize);
            let rows = entries
                .iter()
                .map(|entry| LogRow {
                    request_id: text(entry, "request_id"),
                    at: text(entry, "at"),
                    status: entry.get_i32("status").map_or(0, i64::from),
                    action: text(entry, "action"),
                    source: text(entry, "data_source"),
                    who: text(entry, "principal_name"),
                    duration: format!("{:.1} ms", entry.get_f64("duration_ms").unwrap_or(0.0)),
                    error: text(entry, "error_code"),
                })
                .collect();
            (rows, None, more)
        }
    };
    let status = super::page_status(message.as_ref());
    Ok(Reply::html(
        status,
        &LogsPage {
            frame: page.frame("logs"),
            previous: (filters.page > 0).then(|| filters.link(filters.page - 1)),
            next: more.then(|| filters.link(filters.page + 1)),
            page: filters.page + 1,
            filters,
            rows,
            message,
        },
    ))
}

/// One request's entry.
async fn detail(page: &Context<'_>, request_id: &str) -> Result<Reply, Failure> {
    let filter = LogFilter {
        request_id: Some(request_id.to_owned()),
        limit: Some(1),
        ..LogFilter::default()
    };
    let entries = page.state().logs.find(&filter).await?;
    let Some(entry) = entries.first() else {
        return Err(Failure::NotFoundWith(format!(
            "No request with id '{request_id}' in the kept logs (30 days). \
             Entries are written within a second of the answer."
        )));
    };
    let fields = entry
        .keys()
        .map(|key| (key.clone(), text(entry, key)))
        .collect();
    Ok(Reply::html(
        StatusCode::OK,
        &DetailPage {
            frame: page.frame("logs"),
            request_id: request_id.to_owned(),
            fields,
        },
    ))
}
