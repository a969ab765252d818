//! The arguments of the query and write actions, and the outcome of updates.

use bson::{Bson, Document};

/// The arguments of `findOne`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindOneQuery {
    /// Query filter; `{}` matches every document.
    pub filter: Document,
    /// Projection; `None` returns whole documents.
    pub projection: Option<Document>,
    /// Sort order applied before the first document is taken (an extension:
    /// clients such as `@taskless/mongo-data-api` send it).
    pub sort: Option<Document>,
}

/// The arguments of `find`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindQuery {
    /// Query filter; `{}` matches every document.
    pub filter: Document,
    /// Projection; `None` returns whole documents.
    pub projection: Option<Document>,
    /// Sort specification; `None` keeps natural order.
    pub sort: Option<Document>,
    /// Documents to skip before returning any.
    pub skip: u64,
    /// Most documents to return (the service always sets one, 1 to 50,000).
    pub limit: u64,
}

/// What an update changes: an operator document or an aggregation pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateModifications {
    /// `{"$set": {...}, "$inc": {...}}`.
    Operators(Document),
    /// `[{"$set": {...}}, {"$unset": "x"}]` (pipeline-style update).
    Pipeline(Vec<Document>),
}

/// The arguments of `updateOne` and `updateMany`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateQuery {
    /// Which documents to update.
    pub filter: Document,
    /// The change to apply.
    pub update: UpdateModifications,
    /// Insert a document built from the filter and the update when none matches.
    pub upsert: bool,
    /// Identifiers for `$[<id>]` positional updates (extension field `arrayFilters`).
    pub array_filters: Option<Vec<Document>>,
}

/// The arguments of `replaceOne`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplaceQuery {
    /// Which document to replace.
    pub filter: Document,
    /// The new document (its `_id`, if any, must equal the old one's).
    pub replacement: Document,
    /// Insert the replacement when no document matches.
    pub upsert: bool,
}

/// The result of `updateOne`, `updateMany` and `replaceOne`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateOutcome {
    /// Documents the filter matched.
    pub matched_count: u64,
    /// Documents actually changed.
    pub modified_count: u64,
    /// The `_id` of the document an upsert inserted, if it inserted one.
    pub upserted_id: Option<Bson>,
}
