//! Write operations on one collection, run while its write lock is held.
//!
//! Every multi-document write is all-or-nothing: the new version of each
//! matched document is computed (and every error detected) before the first
//! document is changed, so a failing `updateMany` leaves the collection as it
//! was. Because the caller holds the collection's write lock for the whole
//! call, other requests see either none or all of a write.

use bson::{oid::ObjectId, Bson, Document};

use crate::backend::{
    BackendError, BackendErrorKind, UpdateModifications, UpdateOutcome, WriteCheck,
};
use crate::query::compare::identical_docs;
use crate::query::limits::{exact_doc_size, nesting_exceeds, Keys, MAX_NESTING};
use crate::query::update::{
    apply_parsed_pipeline_update, check_id_unchanged, parse_pipeline_update, upsert_seed,
    validate_id, validate_replacement,
};
use crate::query::{display_value, Filter, Pipeline, QueryError, UpdateDoc};

use super::collection::Collection;
use super::index::IndexViolation;

/// Maps an engine error to a backend error of the matching kind.
pub(super) fn to_backend(e: QueryError) -> BackendError {
    let kind = match e.code {
        QueryError::DUPLICATE_KEY => BackendErrorKind::DuplicateKey,
        QueryError::NOT_IMPLEMENTED => BackendErrorKind::Unsupported,
        crate::query::aggregate::MAX_TIME_EXPIRED => BackendErrorKind::Timeout,
        crate::query::budget::INTERRUPTED => BackendErrorKind::Timeout,
        _ => BackendErrorKind::InvalidRequest,
    };
    BackendError::new(kind, e.message)
}

/// MongoDB's duplicate key message: `E11000 duplicate key error collection:
/// db.coll index: a_1 dup key: { a: 1 }`.
pub(super) fn duplicate_message(ns: &str, index: &str, key: &[(String, Bson)]) -> String {
    let fields: Vec<String> = key
        .iter()
        .map(|(field, value)| format!("{field}: {}", display_value(value)))
        .collect();
    format!(
        "E11000 duplicate key error collection: {ns} index: {index} dup key: {{ {} }}",
        fields.join(", ")
    )
}

/// The error of a write an index refused.
pub(super) fn refused(ns: &str, violation: IndexViolation) -> BackendError {
    match violation {
        IndexViolation::Duplicate { index, key } => BackendError::new(
            BackendErrorKind::DuplicateKey,
            duplicate_message(ns, &index, &key),
        ),
        IndexViolation::ParallelArrays(message) => {
            BackendError::new(BackendErrorKind::InvalidRequest, message)
        }
    }
}

/// MongoDB's largest document: 16 MiB.
const MAX_DOCUMENT_SIZE: usize = 16 * 1024 * 1024;

/// The BSON size of a document: computed, or serialized when computing
/// cannot be exact.
fn bson_size(doc: &Document) -> usize {
    if let Some(size) = exact_doc_size(doc) {
        return size;
    }
    let mut buf = Vec::new();
    match doc.to_writer(&mut buf) {
        Ok(()) => buf.len(),
        Err(_) => usize::MAX,
    }
}

/// Rejects a document nested deeper than MongoDB stores (180 levels),
/// before anything walks it recursively.
fn check_depth(doc: &Document, what: &str) -> Result<(), QueryError> {
    if nesting_exceeds(doc.values(), 1, MAX_NESTING, Keys::Plain) {
        return Err(QueryError::new(
            15,
            format!("cannot {what} document because it exceeds {MAX_NESTING} levels of nesting"),
        ));
    }
    Ok(())
}

/// Rejects a document to insert that exceeds 16 MiB or 180 levels.
fn check_insert_size(doc: &Document) -> Result<(), QueryError> {
    check_depth(doc, "insert")?;
    let size = bson_size(doc);
    if size > MAX_DOCUMENT_SIZE {
        return Err(QueryError::bad_value(format!(
            "object to insert too large. size in bytes: {size}, max size: {MAX_DOCUMENT_SIZE}"
        )));
    }
    Ok(())
}

/// Rejects an updated document that exceeds 16 MiB or 180 levels.
fn check_update_size(doc: &Document) -> Result<(), QueryError> {
    check_depth(doc, "update")?;
    if bson_size(doc) > MAX_DOCUMENT_SIZE {
        return Err(QueryError::new(
            17419,
            format!("Resulting document after update is larger than {MAX_DOCUMENT_SIZE}"),
        ));
    }
    Ok(())
}

/// Puts `_id` first, generating an ObjectId when missing; rejects invalid
/// `_id`s and documents over 16 MiB.
pub(super) fn prepare_insert(
    doc: Document,
    fallback_id: Option<Bson>,
) -> Result<Document, QueryError> {
    let mut doc = doc;
    // Already first: the document is kept as it is (not rebuilt entry by entry).
    if doc.keys().next().is_some_and(|k| k == "_id") {
        if let Some(id) = doc.get("_id") {
            validate_id(id)?;
        }
        check_insert_size(&doc)?;
        return Ok(doc);
    }
    let id = match doc.remove("_id") {
        Some(id) => id,
        None => fallback_id.unwrap_or_else(|| Bson::ObjectId(ObjectId::new())),
    };
    validate_id(&id)?;
    let mut out = Document::new();
    out.insert("_id", id);
    out.extend(doc);
    check_insert_size(&out)?;
    Ok(out)
}

/// Inserts one document (see [`prepare_insert`]).
pub(super) fn insert(coll: &mut Collection, ns: &str, doc: Document) -> Result<Bson, BackendError> {
    let doc = prepare_insert(doc, None).map_err(to_backend)?;
    insert_prepared(coll, ns, doc)
}

/// Inserts one document [`prepare_insert`] accepted; changes nothing when
/// the collection refuses it. `ns` is written out only for the error.
pub(super) fn insert_prepared(
    coll: &mut Collection,
    ns: &(impl std::fmt::Display + ?Sized),
    doc: Document,
) -> Result<Bson, BackendError> {
    let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
    coll.insert(doc).map_err(|v| refused(&ns.to_string(), v))?;
    Ok(id)
}

/// Ordered insert: stops at the first failure, keeping earlier documents.
pub(super) fn insert_many(
    coll: &mut Collection,
    ns: &str,
    docs: Vec<Document>,
) -> Result<Vec<Bson>, BackendError> {
    let total = docs.len();
    let mut ids = Vec::with_capacity(total);
    insert_ordered(coll, ns, docs, &mut ids, total)?;
    Ok(ids)
}

/// Ordered inserts of part of a batch of `total` documents: the `_id` of
/// each goes to `ids`, which holds those of the batch's earlier parts.
/// Stops at the first failure, keeping earlier documents.
pub(super) fn insert_ordered(
    coll: &mut Collection,
    ns: &str,
    docs: impl IntoIterator<Item = Document>,
    ids: &mut Vec<Bson>,
    total: usize,
) -> Result<(), BackendError> {
    for doc in docs {
        match insert(coll, ns, doc) {
            Ok(id) => ids.push(id),
            Err(e) => {
                return Err(BackendError::new(
                    e.kind,
                    format!(
                        "{} ({} of {total} documents were inserted before the error)",
                        e.message,
                        ids.len()
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// A parsed update: operators or a pipeline.
pub(super) enum ParsedUpdate {
    /// `{$set: …}`.
    Operators(UpdateDoc),
    /// `[{$set: …}]`.
    Pipeline(Pipeline),
}

impl ParsedUpdate {
    /// Parses the update, with `arrayFilters` for operator updates.
    pub(super) fn parse(
        update: &UpdateModifications,
        array_filters: Option<&[Document]>,
    ) -> Result<Self, QueryError> {
        match update {
            UpdateModifications::Operators(d) => {
                Ok(ParsedUpdate::Operators(UpdateDoc::parse(d, array_filters)?))
            }
            UpdateModifications::Pipeline(stages) => {
                if array_filters.is_some_and(|f| !f.is_empty()) {
                    return Err(QueryError::failed_to_parse(
                        "arrayFilters may not be specified for pipeline-style updates",
                    ));
                }
                Ok(ParsedUpdate::Pipeline(parse_pipeline_update(stages)?))
            }
        }
    }

    /// The updated copy of `doc` and whether it differs.
    fn apply(
        &self,
        doc: &Document,
        filter: &Filter,
        upsert: bool,
    ) -> Result<(Document, bool), QueryError> {
        match self {
            ParsedUpdate::Operators(u) => {
                let mut new = doc.clone();
                let matched = if u.uses_positional() {
                    filter.matched_array_index(doc)
                } else {
                    None
                };
                let changed = u.apply_with_match(&mut new, upsert, matched)?;
                Ok((new, changed))
            }
            ParsedUpdate::Pipeline(p) => {
                let new = apply_parsed_pipeline_update(p, doc)?;
                check_id_unchanged(doc, &new)?;
                if let Some(id) = new.get("_id") {
                    validate_id(id)?;
                }
                let changed = !identical_docs(&new, doc);
                Ok((new, changed))
            }
        }
    }
}

/// What an update or replacement applies, besides the collection.
pub(super) struct WriteSpec<'a> {
    /// The namespace, for duplicate-key messages.
    pub(super) ns: &'a str,
    /// The parsed filter.
    pub(super) filter: &'a Filter,
    /// The filter as sent, to seed upserts.
    pub(super) raw_filter: &'a Document,
    /// Insert when nothing matches.
    pub(super) upsert: bool,
    /// Called on every document about to be stored, before the first change.
    pub(super) check: Option<&'a dyn WriteCheck>,
}

impl WriteSpec<'_> {
    fn check(&self, before: Option<&Document>, after: &Document) -> Result<(), BackendError> {
        match self.check {
            Some(check) => check.check(before, after),
            None => Ok(()),
        }
    }
}

/// `updateOne` (`multi == false`) and `updateMany`.
pub(super) fn update(
    coll: &mut Collection,
    spec: &WriteSpec<'_>,
    update: &ParsedUpdate,
    multi: bool,
) -> Result<UpdateOutcome, BackendError> {
    let WriteSpec {
        ns,
        filter,
        raw_filter,
        upsert,
        ..
    } = *spec;
    let matches = coll
        .matching(filter, if multi { None } else { Some(1) })
        .map_err(to_backend)?;
    if matches.is_empty() {
        if !upsert {
            return Ok(UpdateOutcome::default());
        }
        let seed = upsert_seed(raw_filter).map_err(to_backend)?;
        let (new, _) = update.apply(&seed, filter, true).map_err(to_backend)?;
        let doc = prepare_insert(new, None).map_err(to_backend)?;
        spec.check(None, &doc)?;
        let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
        coll.insert(doc).map_err(|v| refused(ns, v))?;
        return Ok(UpdateOutcome {
            matched_count: 0,
            modified_count: 0,
            upserted_id: Some(id),
        });
    }
    // Compute every new version first: nothing changes if any document fails.
    let mut changes = Vec::with_capacity(matches.len());
    for seq in &matches {
        let Some(doc) = coll.get(*seq) else { continue };
        let (new, changed) = update.apply(doc, filter, false).map_err(to_backend)?;
        if changed {
            check_update_size(&new).map_err(to_backend)?;
            spec.check(Some(doc), &new)?;
            changes.push((*seq, new));
        }
    }
    let modified = changes.len() as u64;
    for (seq, new) in changes {
        coll.replace(seq, new).map_err(|v| refused(ns, v))?;
    }
    Ok(UpdateOutcome {
        matched_count: matches.len() as u64,
        modified_count: modified,
        upserted_id: None,
    })
}

/// `replaceOne`.
pub(super) fn replace(
    coll: &mut Collection,
    spec: &WriteSpec<'_>,
    replacement: Document,
) -> Result<UpdateOutcome, BackendError> {
    let WriteSpec {
        ns,
        filter,
        raw_filter,
        upsert,
        ..
    } = *spec;
    validate_replacement(&replacement).map_err(to_backend)?;
    let Some(seq) = coll
        .matching(filter, Some(1))
        .map_err(to_backend)?
        .first()
        .copied()
    else {
        if !upsert {
            return Ok(UpdateOutcome::default());
        }
        let seed_id = upsert_seed(raw_filter)
            .map_err(to_backend)?
            .get("_id")
            .cloned();
        let doc = prepare_insert(replacement, seed_id).map_err(to_backend)?;
        spec.check(None, &doc)?;
        let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
        coll.insert(doc).map_err(|v| refused(ns, v))?;
        return Ok(UpdateOutcome {
            matched_count: 0,
            modified_count: 0,
            upserted_id: Some(id),
        });
    };
    let Some(old) = coll.get(seq) else {
        return Ok(UpdateOutcome::default());
    };
    check_id_unchanged(old, &replacement).map_err(to_backend)?;
    let old_id = old.get("_id").cloned().unwrap_or(Bson::Null);
    let mut new = Document::new();
    new.insert("_id", old_id);
    new.extend(replacement.into_iter().filter(|(k, _)| k != "_id"));
    let changed = !identical_docs(&new, old);
    if changed {
        check_update_size(&new).map_err(to_backend)?;
        spec.check(Some(old), &new)?;
        coll.replace(seq, new).map_err(|v| refused(ns, v))?;
    }
    Ok(UpdateOutcome {
        matched_count: 1,
        modified_count: u64::from(changed),
        upserted_id: None,
    })
}

/// `deleteOne` / `deleteMany`.
pub(super) fn delete(
    coll: &mut Collection,
    filter: &Filter,
    multi: bool,
) -> Result<u64, BackendError> {
    let matches = coll
        .matching(filter, if multi { None } else { Some(1) })
        .map_err(to_backend)?;
    for seq in &matches {
        coll.remove(*seq);
    }
    Ok(matches.len() as u64)
}
