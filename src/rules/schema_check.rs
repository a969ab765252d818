//! Schema validation of writes: inserts, replacements and update post-images
//! checked against the collection's [`Schema`].
//!
//! Validation applies to every principal, `system` included, as in App
//! Services. A collection without a schema costs nothing.
//!
//! - `insertOne`/`insertMany`: every document is checked (with a placeholder
//!   `ObjectId` `_id` when it has none, as it will be stored) before anything
//!   is written; one invalid document refuses the whole request. What is
//!   validated is exactly what is written, so no atomicity is needed.
//! - `updateOne`/`updateMany`/`replaceOne`: a [`SchemaCheck`] goes to the
//!   backend with the write ([`Backend::write_checked`]), which calls it on
//!   every document it is about to store (update post-images, replacements
//!   with the `_id` they keep, upserted documents), **atomically** with the
//!   write: under the collection's write lock on the embedded engine, in a
//!   transaction on MongoDB. One invalid document refuses the whole request
//!   and nothing changes.
//!
//! [`Backend::write_checked`]: crate::backend::Backend::write_checked

use std::collections::HashMap;
use std::sync::Arc;

use bson::oid::ObjectId;
use bson::{doc, Bson, Document};
use http::StatusCode;

use super::Rules;
use crate::action::Command;
use crate::backend::{BackendError, BackendErrorKind, Namespace, WriteCheck};
use crate::protocol::{ApiError, ErrorCode};
use crate::query::display_value;
use crate::query::schema::Schema;

/// The parsed schemas of one data source's collections.
#[derive(Debug, Default)]
pub(crate) struct Schemas(HashMap<(String, String), Arc<Schema>>);

fn refused(message: String) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::SchemaValidationFailedWrite,
        message,
    )
}

/// `doc` as it will be stored: with an `_id` first when it has none.
fn with_id(doc: &Document) -> Document {
    if doc.contains_key("_id") {
        return doc.clone();
    }
    let mut out = doc! { "_id": Bson::ObjectId(ObjectId::new()) };
    out.extend(doc.clone());
    out
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
            if schemas.insert(key, Arc::new(schema)).is_some() {
                return Err(format!("{path}: a second schema for the same collection"));
            }
        }
        Ok(Self(schemas))
    }

    /// Refuses an insert with 400 `SchemaValidationFailedWrite` when a
    /// document it would store breaks the collection's schema.
    pub(crate) fn check_inserts(&self, ns: &Namespace, command: &Command) -> Result<(), ApiError> {
        let Some(schema) = self.get(ns) else {
            return Ok(());
        };
        match command {
            Command::InsertOne(doc) => schema.validate(&with_id(doc)).map_err(|e| {
                refused(format!(
                    "Failed to insert document: schema validation failed: {e}"
                ))
            }),
            Command::InsertMany(docs) => {
                for (i, doc) in docs.iter().enumerate() {
                    schema.validate(&with_id(doc)).map_err(|e| {
                        refused(format!(
                            "Failed to insert documents: schema validation failed for document {i}: {e}"
                        ))
                    })?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The check the backend runs on what an update or replacement of `ns`
    /// stores, when the collection has a schema.
    /// `redact`: the user may not read every field, so refusals must not
    /// quote the stored document's values.
    pub(crate) fn write_check(
        &self,
        ns: &Namespace,
        command: &Command,
        redact: bool,
    ) -> Option<SchemaCheck> {
        let replace = match command {
            Command::UpdateOne(_) | Command::UpdateMany(_) => false,
            Command::ReplaceOne(_) => true,
            _ => return None,
        };
        Some(SchemaCheck {
            schema: self.get(ns)?.clone(),
            replace,
            redact,
        })
    }

    /// Refuses (400) an aggregation whose `$out` or `$merge` writes into a
    /// collection with a schema: what such a stage stores is never seen by
    /// the service, so it cannot be validated.
    pub(crate) fn check_aggregate_output(
        &self,
        ns: &Namespace,
        command: &Command,
    ) -> Result<(), ApiError> {
        let Command::Aggregate(pipeline) = command else {
            return Ok(());
        };
        if self.0.is_empty() {
            return Ok(());
        }
        for stage in pipeline {
            for (name, spec) in stage {
                let Some(target) = output_target(name, spec, &ns.database) else {
                    continue;
                };
                if self.get(&target).is_some() {
                    return Err(refused(format!(
                        "Failed to aggregate: {name} into '{target}' is not permitted: the \
                         collection has a schema, and documents an aggregation writes cannot be \
                         validated"
                    )));
                }
            }
        }
        Ok(())
    }

    fn get(&self, ns: &Namespace) -> Option<&Arc<Schema>> {
        if self.0.is_empty() {
            return None;
        }
        self.0.get(&(ns.database.clone(), ns.collection.clone()))
    }
}

/// The collection a `$out` or `$merge` stage writes into (`database` when
/// the stage names none).
fn output_target(stage: &str, spec: &Bson, database: &str) -> Option<Namespace> {
    let named = |value: &Bson| match value {
        Bson::String(coll) => Some(Namespace::new(database, coll.as_str())),
        Bson::Document(target) => {
            let db = target.get_str("db").unwrap_or(database);
            let coll = target.get_str("coll").ok()?;
            Some(Namespace::new(db, coll))
        }
        _ => None,
    };
    match (stage, spec) {
        ("$out", spec) => named(spec),
        ("$merge", Bson::Document(options)) => named(options.get("into")?),
        ("$merge", spec) => named(spec),
        _ => None,
    }
}

/// Validates each document an update or replacement stores (see the
/// module docs).
#[derive(Debug, Clone)]
pub(crate) struct SchemaCheck {
    schema: Arc<Schema>,
    replace: bool,
    /// Messages without the document's values.
    redact: bool,
}

impl WriteCheck for SchemaCheck {
    fn check(&self, before: Option<&Document>, after: &Document) -> Result<(), BackendError> {
        let outcome = if self.redact {
            self.schema.validate_redacted(after)
        } else {
            self.schema.validate(after)
        };
        outcome.map_err(|e| {
            let what = match (self.replace, before) {
                (true, _) => "the replacement".to_owned(),
                (false, None) => "the upserted document".to_owned(),
                (false, Some(old)) => format!(
                    "the updated document with _id {}",
                    old.get("_id").map(display_value).unwrap_or_default()
                ),
            };
            BackendError::new(
                BackendErrorKind::DocumentValidation,
                format!("schema validation failed for {what}: {e}"),
            )
        })
    }
}
