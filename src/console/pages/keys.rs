//! API keys: create (the key shown once), list, disable, delete.

use std::collections::HashMap;

use askama::Template;
use bson::doc;

use crate::state::LogFilter;

use super::super::http::{Failure, Form, Reply};
use super::{now, state_failure, unix_time, Context, Frame};

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    frame: Frame,
    keys: Vec<KeyRow>,
    cap: usize,
    created: Option<Created>,
    message: Option<String>,
}

struct KeyRow {
    name: String,
    created: String,
    last_used: String,
    requests: i64,
    disabled: bool,
    source: String,
}

/// A key just made: shown on this response only, never stored in clear.
struct Created {
    name: String,
    key: String,
}

/// Requests per principal name in the last 24 hours.
async fn requests_last_day(page: &Context<'_>) -> Result<HashMap<String, i64>, Failure> {
    let filter = LogFilter {
        since: Some(now() - 86_400),
        ..LogFilter::default()
    };
    let groups = page
        .state()
        .logs
        .aggregate(
            &filter,
            vec![doc! { "$group": { "_id": "$principal_name", "n": { "$sum": 1 } } }],
        )
        .await?;
    Ok(groups
        .iter()
        .filter_map(|group| {
            let name = group.get_str("_id").ok()?;
            let n = match group.get("n")? {
                bson::Bson::Int32(n) => i64::from(*n),
                bson::Bson::Int64(n) => *n,
                bson::Bson::Double(n) => *n as i64,
                _ => return None,
            };
            Some((name.to_owned(), n))
        })
        .collect())
}

/// The page; `created` is a key just made, `message` a refusal to show.
pub(crate) async fn page(
    page: &Context<'_>,
    created: Option<(String, String)>,
    message: Option<String>,
) -> Result<Reply, Failure> {
    let keys = match page.state().keys.list().await {
        Ok(keys) => keys,
        Err(error) => return Err(Failure::BadRequest(state_failure(error)?)),
    };
    let requests = requests_last_day(page).await?;
    let keys = keys
        .into_iter()
        .map(|key| KeyRow {
            requests: requests.get(&key.name).copied().unwrap_or(0),
            created: unix_time(key.created_at),
            last_used: key.last_used.map_or_else(|| "never".to_owned(), unix_time),
            disabled: key.disabled,
            source: key.source,
            name: key.name,
        })
        .collect();
    let status = super::page_status(message.as_ref());
    Ok(Reply::html(
        status,
        &KeysPage {
            frame: page.frame("keys"),
            keys,
            cap: page.state().keys.max_keys(),
            created: created.map(|(name, key)| Created { name, key }),
            message,
        },
    ))
}

/// `op` = `create` (`name`), `disable`, `enable` or `delete` (`name`).
pub(crate) async fn submit(page: &Context<'_>, form: &Form) -> Result<Reply, Failure> {
    let name = form.require("name")?;
    let keys = &page.state().keys;
    let outcome = match form.require("op")? {
        "create" => {
            if name.len() > 64 || name.chars().any(char::is_control) {
                return self::page(
                    page,
                    None,
                    Some(
                        "a key name has at most 64 characters, none of them control characters"
                            .into(),
                    ),
                )
                .await;
            }
            match keys.create(name).await {
                Ok(key) => {
                    tracing::info!(target: "tower_data_api::console", admin = %page.session.email, key = %name, "API key created");
                    return self::page(page, Some((name.to_owned(), key)), None).await;
                }
                Err(error) => Err(error),
            }
        }
        "disable" => keys.set_disabled(name, true).await,
        "enable" => keys.set_disabled(name, false).await,
        "delete" => keys.delete(name).await,
        other => {
            return Err(Failure::BadRequest(format!("unknown operation '{other}'")));
        }
    };
    if let Err(error) = outcome {
        let message = state_failure(error)?;
        return self::page(page, None, Some(message)).await;
    }
    tracing::info!(target: "tower_data_api::console", admin = %page.session.email, key = %name, op = form.get("op"), "API key changed");
    Ok(Reply::redirect("keys"))
}
