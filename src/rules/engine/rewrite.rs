//! Rewriting a request by its plan: filters merged, upserts checked as the
//! inserts they may become, pipelines prefixed with the read rules.

use bson::{doc, Document};

use super::guard::Guard;
use super::plan::Plan;
use super::post_image::PostImageRules;
use super::{invalid, CompiledRules};
use crate::action::Command;
use crate::backend::{Namespace, UpdateModifications};
use crate::protocol::ApiError;
use crate::query::update::{apply_pipeline_update, upsert_seed};
use crate::query::UpdateDoc;
use crate::rules::expr::Scope;

impl CompiledRules {
    /// The rewriting part of [`authorize`](Self::authorize).
    pub(super) fn rewrite(
        &self,
        plan: &Plan,
        ns: &Namespace,
        scope: &Scope<'_>,
        command: &mut Command,
    ) -> Result<(Guard, Option<PostImageRules>), ApiError> {
        match command {
            Command::FindOne(query) => {
                let (filter, guard) =
                    plan.read(std::mem::take(&mut query.filter), &mut query.projection)?;
                query.filter = filter;
                Ok((guard, None))
            }
            Command::Find(query) => {
                let (filter, guard) =
                    plan.read(std::mem::take(&mut query.filter), &mut query.projection)?;
                query.filter = filter;
                Ok((guard, None))
            }
            Command::InsertOne(document) => {
                plan.check_insert(document, "insert")?;
                Ok((Guard::None, None))
            }
            Command::InsertMany(documents) => {
                for document in documents.iter() {
                    plan.check_insert(document, "insert")?;
                }
                Ok((Guard::None, None))
            }
            Command::UpdateOne(query) | Command::UpdateMany(query) => {
                let filter = std::mem::take(&mut query.filter);
                let client = query.upsert.then(|| filter.clone());
                let rules_filter = |filter: Document| match &query.update {
                    UpdateModifications::Operators(update) => plan.update_filter(filter, update),
                    UpdateModifications::Pipeline(_) => plan.pipeline_update_filter(filter),
                };
                let (mut filter, post) = rules_filter(filter)?;
                if let Some(client) = client {
                    filter =
                        upsert_filter(client, filter, || Ok(rules_filter(Document::new())?.0))?;
                }
                query.filter = filter;
                if query.upsert {
                    let mut inserted = upsert_seed(&query.filter).map_err(invalid)?;
                    inserted = match &query.update {
                        UpdateModifications::Operators(update) => {
                            UpdateDoc::parse(update, query.array_filters.as_deref())
                                .and_then(|u| u.apply(&mut inserted, true))
                                .map_err(invalid)?;
                            inserted
                        }
                        UpdateModifications::Pipeline(pipeline) => {
                            apply_pipeline_update(pipeline, &inserted).map_err(invalid)?
                        }
                    };
                    plan.check_insert(&inserted, "upsert")?;
                }
                Ok((Guard::None, post))
            }
            Command::ReplaceOne(query) => {
                let filter = std::mem::take(&mut query.filter);
                let client = query.upsert.then(|| filter.clone());
                let (mut filter, post) = plan.replace_filter(filter, &query.replacement)?;
                if let Some(client) = client {
                    filter = upsert_filter(client, filter, || {
                        Ok(plan.replace_filter(Document::new(), &query.replacement)?.0)
                    })?;
                }
                query.filter = filter;
                if query.upsert {
                    // Inserted with the `_id` the filter gives, if any.
                    let mut inserted = query.replacement.clone();
                    if !inserted.contains_key("_id") {
                        let seed = upsert_seed(&query.filter).map_err(invalid)?;
                        if let Some(id) = seed.get("_id") {
                            let mut with_id = doc! { "_id": id.clone() };
                            with_id.extend(inserted);
                            inserted = with_id;
                        }
                    }
                    plan.check_insert(&inserted, "upsert")?;
                }
                Ok((Guard::None, post))
            }
            Command::DeleteOne(filter) | Command::DeleteMany(filter) => {
                *filter = plan.delete_filter(std::mem::take(filter))?;
                Ok((Guard::None, None))
            }
            Command::Aggregate(pipeline) => {
                let prefix_for = |collection: &str| {
                    self.plan(&Namespace::new(ns.database.clone(), collection), scope)?
                        .read_prefix()
                };
                *pipeline = plan.pipeline(std::mem::take(pipeline), &prefix_for)?;
                Ok((Guard::None, None))
            }
        }
    }
}

/// The filter of an upsert: `merged` (the client's filter and the rules'
/// conditions) when MongoDB can seed the inserted document from it;
/// otherwise (both constrain the same path with an equality: "matched
/// twice") the client's filter and the rules' conditions (`rules_only`)
/// wrapped in a double `$nor`. The same documents match; the inserted
/// document is seeded from the client's filter alone and is checked as an
/// insert like any other.
fn upsert_filter(
    client: Document,
    merged: Document,
    rules_only: impl FnOnce() -> Result<Document, ApiError>,
) -> Result<Document, ApiError> {
    if upsert_seed(&merged).is_ok() {
        return Ok(merged);
    }
    let rules = rules_only()?;
    if rules.is_empty() {
        return Ok(client);
    }
    let hidden = doc! { "$nor": [{ "$nor": [rules] }] };
    Ok(if client.is_empty() {
        hidden
    } else {
        doc! { "$and": [client, hidden] }
    })
}
