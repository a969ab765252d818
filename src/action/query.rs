//! The arguments of the query and write actions, and the outcome of updates.
//!
//! The structs are `#[non_exhaustive]`: outside this crate, build them with
//! their constructors and `with_*` methods (fields stay public to read and
//! to assign), so a new optional argument is not a breaking change.

use bson::{Bson, Document};

/// The arguments of `findOne`.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct UpdateOutcome {
    /// Documents the filter matched.
    pub matched_count: u64,
    /// Documents actually changed.
    pub modified_count: u64,
    /// The `_id` of the document an upsert inserted, if it inserted one.
    pub upserted_id: Option<Bson>,
}

impl FindOneQuery {
    /// A `findOne` with `filter`, no projection and no sort.
    pub fn new(filter: Document) -> Self {
        Self {
            filter,
            ..Self::default()
        }
    }

    /// Returns only the fields `projection` selects.
    #[must_use]
    pub fn with_projection(mut self, projection: Document) -> Self {
        self.projection = Some(projection);
        self
    }

    /// Takes the first document in `sort` order.
    #[must_use]
    pub fn with_sort(mut self, sort: Document) -> Self {
        self.sort = Some(sort);
        self
    }
}

impl FindQuery {
    /// A `find` with `filter`, no projection, natural order, no skip and
    /// `limit` 0 (every match: the service itself always sets a limit).
    pub fn new(filter: Document) -> Self {
        Self {
            filter,
            ..Self::default()
        }
    }

    /// Returns only the fields `projection` selects.
    #[must_use]
    pub fn with_projection(mut self, projection: Document) -> Self {
        self.projection = Some(projection);
        self
    }

    /// Returns the documents in `sort` order.
    #[must_use]
    pub fn with_sort(mut self, sort: Document) -> Self {
        self.sort = Some(sort);
        self
    }

    /// Skips the first `skip` documents.
    #[must_use]
    pub fn with_skip(mut self, skip: u64) -> Self {
        self.skip = skip;
        self
    }

    /// Returns at most `limit` documents.
    #[must_use]
    pub fn with_limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }
}

impl UpdateQuery {
    /// An update of the documents `filter` matches, without upsert or array filters.
    pub fn new(filter: Document, update: UpdateModifications) -> Self {
        Self {
            filter,
            update,
            upsert: false,
            array_filters: None,
        }
    }

    /// Whether to insert a document when none matches.
    #[must_use]
    pub fn with_upsert(mut self, upsert: bool) -> Self {
        self.upsert = upsert;
        self
    }

    /// The identifiers of `$[<id>]` positional updates.
    #[must_use]
    pub fn with_array_filters(mut self, array_filters: Vec<Document>) -> Self {
        self.array_filters = Some(array_filters);
        self
    }
}

impl ReplaceQuery {
    /// A replacement of the document `filter` matches, without upsert.
    pub fn new(filter: Document, replacement: Document) -> Self {
        Self {
            filter,
            replacement,
            upsert: false,
        }
    }

    /// Whether to insert the replacement when no document matches.
    #[must_use]
    pub fn with_upsert(mut self, upsert: bool) -> Self {
        self.upsert = upsert;
        self
    }
}

impl UpdateOutcome {
    /// An outcome from its counts and the `_id` an upsert inserted, if any.
    pub fn new(matched_count: u64, modified_count: u64, upserted_id: Option<Bson>) -> Self {
        Self {
            matched_count,
            modified_count,
            upserted_id,
        }
    }
}
