//! Schema validation of writes: inserts, replacements and update post-images
//! checked against the collection's [`Schema`] before the backend writes.
//!
//! Validation applies to every principal, `system` included, as in App
//! Services. A collection without a schema costs nothing (no extra reads).
//!
//! - `insertOne`/`insertMany`: every document is checked (with a placeholder
//!   `ObjectId` `_id` when it has none, as it will be stored) before anything
//!   is written; one invalid document refuses the whole request.
//! - `replaceOne`: the replacement, with the `_id` of the document it
//!   replaces (one `findOne` by the filter), or of the upsert.
//! - `updateOne`/`updateMany`: the matched documents are read (`find` with
//!   the request's filter, after the rules rewrote it), the update is applied
//!   to them in-process with the embedded engine, and every post-image is
//!   checked; with `upsert` and no match, the document the upsert would
//!   insert is checked. Only then does the real update run.
//!
//! This is check-then-write, **not atomic** with the write on either
//! backend: the read and the write are separate backend calls. On
//! `MongoBackend` (and on [`MemoryBackend`](crate::MemoryBackend) under
//! concurrent writers) another writer can change a matched document, or make
//! another one match, between the check and the update; the post-image then
//! stored is not the one that was validated. Inserts and replacements do not
//! have this race (what is validated is exactly what is written; only the
//! `_id` a replacement inherits is read). Deployments that need a hard
//! guarantee for updates should also install the schema as a MongoDB
//! `$jsonSchema` collection validator, whose refusals the backend already
//! answers with 400 `SchemaValidationFailedWrite`.
//!
//! `updateOne` checks the first document `find` returns for its filter,
//! which is the one the update picks on the embedded engine and, in
//! practice (same plan, no sort), on MongoDB, without a guarantee there.
//! `updateMany` reads every matched document into memory for the check.
//!
//! Updates or filters the embedded engine cannot parse or apply are not
//! validated here: the backend refuses them with its own error.

use std::collections::HashMap;

use bson::oid::ObjectId;
use bson::{doc, Bson, Document};
use http::StatusCode;

use super::Rules;
use crate::backend::{
    Backend, FindOneQuery, FindQuery, Namespace, ReplaceQuery, UpdateModifications, UpdateQuery,
};
use crate::protocol::{ApiError, Command, ErrorCode};
use crate::query::schema::Schema;
use crate::query::update::{apply_parsed_pipeline_update, parse_pipeline_update, upsert_seed};
use crate::query::{Filter, Pipeline, UpdateDoc};

/// The parsed schemas of one data source's collections.
#[derive(Debug, Default)]
pub(crate) struct Schemas(HashMap<(String, String), Schema>);

fn refused(message: String) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::SchemaValidationFailedWrite,
        message,
    )
}

/// `doc` as it will be stored: with an `_id` first when it has none.
fn with_id(doc: &Document, id: Option<&Bson>) -> Document {
    if doc.contains_key("_id") {
        return doc.clone();
    }
    let mut out = doc! { "_id": id.cloned().unwrap_or_else(|| Bson::ObjectId(ObjectId::new())) };
    out.extend(doc.clone());
    out
}

enum ParsedUpdate {
    Operators(UpdateDoc),
    Pipeline(Pipeline),
}

impl ParsedUpdate {
    fn parse(query: &UpdateQuery) -> Option<Self> {
        match &query.update {
            UpdateModifications::Operators(d) => {
                UpdateDoc::parse(d, query.array_filters.as_deref())
                    .ok()
                    .map(Self::Operators)
            }
            UpdateModifications::Pipeline(stages) => {
                parse_pipeline_update(stages).ok().map(Self::Pipeline)
            }
        }
    }

    /// The post-image of `doc`, `None` when the engine cannot compute it.
    fn apply(&self, doc: &Document, filter: &Filter, upsert_insert: bool) -> Option<Document> {
        match self {
            Self::Operators(update) => {
                let mut new = doc.clone();
                let matched = if update.uses_positional() {
                    filter.matched_array_index(doc)
                } else {
                    None
                };
                update
                    .apply_with_match(&mut new, upsert_insert, matched)
                    .ok()?;
                Some(new)
            }
            Self::Pipeline(pipeline) => apply_parsed_pipeline_update(pipeline, doc).ok(),
        }
    }
}

impl Schemas {
    /// Parses every collection's schema; errors name the rule path.
    pub(crate) fn compile(rules: &Rules) -> Result<Self, String> {
        let mut schemas = HashMap::new();
        for (i, coll) in rules.collections.iter().enumerate() {
            let Some(value) = &coll.schema else { continue };
            let path = format!(
                "collections[{i}] ('{}.{}').schema",
                coll.database, coll.collection
            );
            let schema = Schema::parse(value).map_err(|e| format!("{path}.{e}"))?;
            let key = (coll.database.clone(), coll.collection.clone());
            if schemas.insert(key, schema).is_some() {
                return Err(format!("{path}: a second schema for the same collection"));
            }
        }
        Ok(Self(schemas))
    }

    /// Refuses `command` with 400 `SchemaValidationFailedWrite` when what it
    /// would write breaks the collection's schema (see the module docs).
    pub(crate) async fn check(
        &self,
        backend: &dyn Backend,
        ns: &Namespace,
        command: &Command,
    ) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let Some(schema) = self.0.get(&(ns.database.clone(), ns.collection.clone())) else {
            return Ok(());
        };
        match command {
            Command::InsertOne(doc) => schema.validate(&with_id(doc, None)).map_err(|e| {
                refused(format!(
                    "Failed to insert document: schema validation failed: {e}"
                ))
            }),
            Command::InsertMany(docs) => {
                for (i, doc) in docs.iter().enumerate() {
                    schema.validate(&with_id(doc, None)).map_err(|e| {
                        refused(format!(
                            "Failed to insert documents: schema validation failed for document {i}: {e}"
                        ))
                    })?;
                }
                Ok(())
            }
            Command::ReplaceOne(query) => check_replace(schema, backend, ns, query).await,
            Command::UpdateOne(query) => check_update(schema, backend, ns, query, false).await,
            Command::UpdateMany(query) => check_update(schema, backend, ns, query, true).await,
            _ => Ok(()),
        }
    }
}

async fn check_replace(
    schema: &Schema,
    backend: &dyn Backend,
    ns: &Namespace,
    query: &ReplaceQuery,
) -> Result<(), ApiError> {
    let existing = backend
        .find_one(
            ns,
            FindOneQuery {
                filter: query.filter.clone(),
                projection: Some(doc! {"_id": 1}),
                sort: None,
            },
        )
        .await
        .map_err(|e| ApiError::from_backend(e, "replace document"))?;
    let id = match &existing {
        Some(doc) => doc.get("_id").cloned(),
        // Nothing matches and nothing will be inserted: nothing to check.
        None if !query.upsert => return Ok(()),
        None => upsert_seed(&query.filter)
            .ok()
            .and_then(|seed| seed.get("_id").cloned()),
    };
    schema
        .validate(&with_id(&query.replacement, id.as_ref()))
        .map_err(|e| {
            refused(format!(
                "Failed to replace document: schema validation failed for the replacement: {e}"
            ))
        })
}

async fn check_update(
    schema: &Schema,
    backend: &dyn Backend,
    ns: &Namespace,
    query: &UpdateQuery,
    multi: bool,
) -> Result<(), ApiError> {
    let verb = if multi {
        "update documents"
    } else {
        "update document"
    };
    let (Ok(filter), Some(update)) = (Filter::parse(&query.filter), ParsedUpdate::parse(query))
    else {
        return Ok(());
    };
    let matched = backend
        .find(
            ns,
            FindQuery {
                filter: query.filter.clone(),
                projection: None,
                sort: None,
                skip: 0,
                limit: if multi { 0 } else { 1 },
            },
        )
        .await
        .map_err(|e| ApiError::from_backend(e, verb))?;
    if matched.is_empty() {
        if !query.upsert {
            return Ok(());
        }
        let Ok(seed) = upsert_seed(&query.filter) else {
            return Ok(());
        };
        let Some(new) = update.apply(&seed, &filter, true) else {
            return Ok(());
        };
        return schema.validate(&with_id(&new, None)).map_err(|e| {
            refused(format!(
                "Failed to {verb}: schema validation failed for the upserted document: {e}"
            ))
        });
    }
    for doc in &matched {
        let Some(new) = update.apply(doc, &filter, false) else {
            return Ok(());
        };
        schema.validate(&new).map_err(|e| {
            let id = doc
                .get("_id")
                .map(crate::query::display_value)
                .unwrap_or_default();
            refused(format!(
                "Failed to {verb}: schema validation failed for the updated document with _id {id}: {e}"
            ))
        })?;
    }
    Ok(())
}
