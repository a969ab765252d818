//! Usage: requests, errors, p50/p99 latency and bytes returned, per hour
//! (last 24 h) or per day (last 30 days), per data source or per key, as
//! SVG charts drawn server-side, with a table of the totals.

use std::collections::BTreeMap;

use askama::Template;
use bson::{doc, Bson};
use http::StatusCode;
use serde::Deserialize;

use crate::state::LogFilter;

use super::super::charts::{line_chart, Axis, Series};
use super::super::http::{Failure, Reply};
use super::{now, Context, Frame};

/// Lines drawn per chart; the busiest groups are shown.
const MAX_SERIES: usize = 8;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Params {
    /// `source` (default) or `key`.
    by: String,
    /// `hour` (default: the last 24 h) or `day` (the last 30 days).
    step: String,
    /// `requests`, `errors`, `latency` or `bytes` (charts).
    metric: String,
}

impl Params {
    fn by_key(&self) -> bool {
        self.by == "key"
    }
    fn daily(&self) -> bool {
        self.step == "day"
    }
    /// (bucket width, window) in seconds.
    fn window(&self) -> (i64, i64) {
        if self.daily() {
            (86_400, 30 * 86_400)
        } else {
            (3_600, 86_400)
        }
    }
}

/// One group's figures in one bucket.
#[derive(Debug, Default, Clone)]
struct Figures {
    requests: f64,
    errors: f64,
    bytes: f64,
    durations: Vec<f64>,
}

impl Figures {
    fn add(&mut self, other: &Figures) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.bytes += other.bytes;
        self.durations.extend_from_slice(&other.durations);
    }
    fn percentile(&self, p: f64) -> f64 {
        if self.durations.is_empty() {
            return 0.0;
        }
        let mut sorted = self.durations.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }
}

fn number(value: Option<&Bson>) -> f64 {
    match value {
        Some(Bson::Int32(n)) => f64::from(*n),
        Some(Bson::Int64(n)) => *n as f64,
        Some(Bson::Double(n)) => *n,
        _ => 0.0,
    }
}

/// Figures by group, then by bucket start (Unix ms).
type Usage = BTreeMap<String, BTreeMap<i64, Figures>>;

async fn usage(page: &Context<'_>, params: &Params) -> Result<(Usage, i64, i64), Failure> {
    let (step, window) = params.window();
    let end = (now() / step + 1) * step;
    let start = end - window;
    let filter = LogFilter {
        since: Some(start),
        ..LogFilter::default()
    };
    let field = if params.by_key() {
        "$principal_name"
    } else {
        "$data_source"
    };
    let step_ms = step * 1000;
    let pipeline = vec![
        doc! { "$match": { field.trim_start_matches('$'): { "$ne": Bson::Null } } },
        doc! { "$project": {
            "b": { "$subtract": [ { "$toLong": "$at" }, { "$mod": [ { "$toLong": "$at" }, step_ms ] } ] },
            "g": field,
            "e": { "$cond": [ { "$gte": [ "$status", 400 ] }, 1, 0 ] },
            "r": { "$ifNull": [ "$response_bytes", 0 ] },
            "d": { "$ifNull": [ "$duration_ms", 0 ] },
        } },
        doc! { "$group": {
            "_id": { "b": "$b", "g": "$g" },
            "requests": { "$sum": 1 },
            "errors": { "$sum": "$e" },
            "bytes": { "$sum": "$r" },
            "durations": { "$push": "$d" },
        } },
    ];
    let groups = page.state().logs.aggregate(&filter, pipeline).await?;
    let mut usage = Usage::new();
    for group in &groups {
        let Ok(id) = group.get_document("_id") else {
            continue;
        };
        let bucket = number(id.get("b")) as i64;
        let name = id.get_str("g").unwrap_or("(none)").to_owned();
        let durations = group
            .get_array("durations")
            .map(|items| items.iter().map(|d| number(Some(d))).collect())
            .unwrap_or_default();
        let figures = Figures {
            requests: number(group.get("requests")),
            errors: number(group.get("errors")),
            bytes: number(group.get("bytes")),
            durations,
        };
        usage
            .entry(name)
            .or_default()
            .entry(bucket)
            .or_default()
            .add(&figures);
    }
    Ok((usage, start * 1000, end * 1000))
}

/// The busiest groups first, at most [`MAX_SERIES`].
fn busiest(usage: &Usage) -> Vec<(&String, &BTreeMap<i64, Figures>)> {
    let mut groups: Vec<_> = usage.iter().collect();
    groups.sort_by(|a, b| {
        let total = |g: &BTreeMap<i64, Figures>| g.values().map(|f| f.requests).sum::<f64>();
        total(b.1).total_cmp(&total(a.1))
    });
    groups.truncate(MAX_SERIES);
    groups
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    frame: Frame,
    by_key: bool,
    daily: bool,
    query: String,
    totals: Vec<TotalRow>,
}

struct TotalRow {
    name: String,
    requests: u64,
    errors: u64,
    p50: String,
    p99: String,
    bytes: u64,
}

/// The page: four charts (images from `usage.svg`) and the totals.
pub(crate) async fn page(page: &Context<'_>, query: &str) -> Result<Reply, Failure> {
    let params: Params = serde_urlencoded::from_str(query).unwrap_or_default();
    let (usage, _, _) = usage(page, &params).await?;
    let totals = busiest(&usage)
        .into_iter()
        .map(|(name, buckets)| {
            let mut total = Figures::default();
            buckets.values().for_each(|f| total.add(f));
            TotalRow {
                name: name.clone(),
                requests: total.requests as u64,
                errors: total.errors as u64,
                p50: format!("{:.1} ms", total.percentile(0.5)),
                p99: format!("{:.1} ms", total.percentile(0.99)),
                bytes: total.bytes as u64,
            }
        })
        .collect();
    let query = format!(
        "by={}&step={}",
        if params.by_key() { "key" } else { "source" },
        if params.daily() { "day" } else { "hour" }
    );
    Ok(Reply::html(
        StatusCode::OK,
        &UsagePage {
            frame: page.frame("usage"),
            by_key: params.by_key(),
            daily: params.daily(),
            query,
            totals,
        },
    ))
}

/// One chart: `metric` per group over time, as SVG.
pub(crate) async fn chart(page: &Context<'_>, query: &str) -> Result<Reply, Failure> {
    let params: Params = serde_urlencoded::from_str(query).unwrap_or_default();
    let (usage, start, end) = usage(page, &params).await?;
    let (title, unit): (&str, &str) = match params.metric.as_str() {
        "errors" => ("Errors (4xx and 5xx)", "errors"),
        "latency" => ("Latency p50 and p99", "ms"),
        "bytes" => ("Bytes returned", "bytes"),
        _ => ("Requests", "requests"),
    };
    let mut series = Vec::new();
    for (name, buckets) in busiest(&usage) {
        let pick = |figures: &Figures| -> Vec<f64> {
            match params.metric.as_str() {
                "errors" => vec![figures.errors],
                "latency" => vec![figures.percentile(0.5), figures.percentile(0.99)],
                "bytes" => vec![figures.bytes],
                _ => vec![figures.requests],
            }
        };
        let lines = if params.metric == "latency" { 2 } else { 1 };
        for line in 0..lines {
            // Counts are zero in buckets without requests; latencies have
            // no value there (the line joins the buckets that have one).
            let points = if lines == 1 {
                let step_ms = params.window().0 * 1000;
                (start..end)
                    .step_by(usize::try_from(step_ms).unwrap_or(3_600_000))
                    .map(|bucket| {
                        let value = buckets.get(&bucket).map_or(0.0, |f| pick(f)[0]);
                        (bucket, value)
                    })
                    .collect()
            } else {
                buckets
                    .iter()
                    .map(|(bucket, figures)| (*bucket, pick(figures)[line]))
                    .collect()
            };
            let suffix = match (lines, line) {
                (1, _) => "",
                (_, 0) => " p50",
                _ => " p99",
            };
            series.push(Series {
                name: format!("{}{suffix}", legend_safe(name)),
                points,
            });
        }
    }
    let axis = Axis {
        start,
        end,
        step: params.window().0 * 1000,
    };
    Ok(Reply::svg(line_chart(title, unit, axis, &series)))
}

/// A legend text with only plain characters (names are the operator's, but
/// an SVG gets no markup from them whatever they hold).
fn legend_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || "@._-+ ()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect()
}
