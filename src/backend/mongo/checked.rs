//! [`Backend::write_checked`](crate::backend::Backend::write_checked) on
//! MongoDB: each attempt is one multi-document transaction.
//!
//! Inside the transaction the matched documents are read (their
//! pre-images; an `updateMany` may match at most
//! `MongoBackendOptions::max_checked_documents`), the write runs pinned to
//! their `_id`s (in batches of at most 10,000 ids or 4 MiB), the
//! post-images are read back (a transaction reads its own writes) and every
//! changed document goes through the check; a refusal aborts, so nothing
//! changes. The documents checked are exactly those the server computed: no
//! update semantics are re-implemented here. When nothing matched, an
//! upsert runs with the client's filter and the document it inserted is
//! checked; if it matched a document after all (a filter that is not
//! deterministic, such as `$rand`), the write is refused and rolled back.
//!
//! Snapshot isolation makes the check atomic with the write: a concurrent
//! writer that touches a matched document after the transaction's snapshot
//! makes the transaction fail with a `TransientTransactionError`
//! (`WriteConflict`), and the whole attempt starts again with fresh
//! pre-images. Commits that end with `UnknownTransactionCommitResult` are
//! retried (a few times) as the driver specification describes. After
//! [`MAX_ATTEMPTS`] conflicting attempts the write gives up with
//! `Unavailable` (503, retry later).
//!
//! Transactions need a replica set or a sharded cluster (Atlas always is
//! one). On a standalone server the write is refused with `Unsupported`,
//! never run unchecked.

use std::collections::HashMap;
use std::time::Duration;

use bson::{doc, Bson, Document};
use mongodb::error::{
    Error, ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT,
};
use mongodb::options::{ReadConcern, UpdateModifications as DriverUpdate, WriteConcern};
use mongodb::results::UpdateResult;
use mongodb::{ClientSession, Collection};

use super::errors::log_and_map;
use super::{encodable, MongoBackend};
use crate::backend::{
    BackendError, BackendErrorKind, CheckedWrite, Namespace, ReplaceQuery, UpdateModifications,
    UpdateOutcome, UpdateQuery, WriteCheck,
};

/// Transaction attempts before a write that keeps conflicting gives up.
pub(super) const MAX_ATTEMPTS: u32 = 64;

/// Most `_id`s one command names.
const ID_BATCH: usize = 10_000;

/// Most encoded bytes of the `_id`s one command names (commands stay far
/// below MongoDB's 16 MiB whatever the `_id`s).
const ID_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Commit attempts while the outcome of a commit stays unknown.
const MAX_COMMIT_ATTEMPTS: u32 = 8;

/// `TransactionTooLarge`: the write changes more than one transaction holds.
const TRANSACTION_TOO_LARGE: i32 = 257;

/// `TransactionExceededLifetimeLimitSeconds`.
const TRANSACTION_TOO_LONG: i32 = 290;

/// Server error code of "Transaction numbers are only allowed on a replica
/// set member or mongos" (`IllegalOperation`).
const ILLEGAL_OPERATION: i32 = 20;

/// Why one attempt did not produce an outcome.
enum Failure {
    /// The check refused a document: abort and answer with its error.
    Refused(BackendError),
    /// The driver failed: maybe a conflict worth another attempt.
    Driver(Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Driver(error)
    }
}

/// Runs `write`, checked, in a transaction (see the module docs).
pub(super) async fn write_checked(
    backend: &MongoBackend,
    ns: &Namespace,
    write: CheckedWrite,
    check: &dyn WriteCheck,
) -> Result<UpdateOutcome, BackendError> {
    let operation = operation_name(&write);
    check_encodable(&write)?;
    let coll = backend.collection(ns);
    let mut session = backend
        .client
        .start_session()
        .await
        .map_err(|e| log_and_map(&e, operation))?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        session
            .start_transaction()
            .read_concern(ReadConcern::snapshot())
            .write_concern(WriteConcern::majority())
            .await
            .map_err(|e| log_and_map(&e, operation))?;
        let failure = match run_once(
            &coll,
            &mut session,
            &write,
            backend.max_checked_documents,
            check,
        )
        .await
        {
            Ok(outcome) => match commit(&mut session).await {
                Ok(()) => return Ok(outcome),
                Err(error) => error,
            },
            Err(Failure::Refused(refusal)) => {
                abort(&mut session).await;
                return Err(refusal);
            }
            Err(Failure::Driver(error)) => {
                abort(&mut session).await;
                error
            }
        };
        if !failure.contains_label(TRANSIENT_TRANSACTION_ERROR) {
            return Err(map_failure(&failure, operation));
        }
        if attempt >= MAX_ATTEMPTS {
            tracing::warn!(
                operation,
                attempts = attempt,
                "checked write gave up after repeated transaction conflicts"
            );
            return Err(BackendError::new(
                BackendErrorKind::Unavailable,
                "the write kept conflicting with concurrent writes",
            ));
        }
        tokio::time::sleep(backoff(attempt)).await;
    }
}

fn operation_name(write: &CheckedWrite) -> &'static str {
    match write {
        CheckedWrite::UpdateOne(_) => "updateOne",
        CheckedWrite::UpdateMany(_) => "updateMany",
        CheckedWrite::ReplaceOne(_) => "replaceOne",
    }
}

fn check_encodable(write: &CheckedWrite) -> Result<(), BackendError> {
    match write {
        CheckedWrite::UpdateOne(query) | CheckedWrite::UpdateMany(query) => {
            encodable::check(&query.filter)?;
            match &query.update {
                UpdateModifications::Operators(doc) => encodable::check(doc)?,
                UpdateModifications::Pipeline(stages) => encodable::check_all(stages)?,
            }
            query
                .array_filters
                .iter()
                .try_for_each(|filters| encodable::check_all(filters))
        }
        CheckedWrite::ReplaceOne(query) => {
            encodable::check(&query.filter)?;
            encodable::check(&query.replacement)
        }
    }
}

/// A standalone server cannot run transactions: say so instead of the
/// server's text about transaction numbers.
fn map_failure(error: &Error, operation: &'static str) -> BackendError {
    let code = match error.kind.as_ref() {
        ErrorKind::Command(e) => Some(e.code),
        _ => None,
    };
    let (kind, message) = match code {
        Some(ILLEGAL_OPERATION) => (
            BackendErrorKind::Unsupported,
            "this write must be checked in a transaction (JSON schema or rules), \
             which needs a MongoDB replica set or sharded cluster",
        ),
        Some(TRANSACTION_TOO_LARGE) => (
            BackendErrorKind::InvalidRequest,
            "the write changes too much to be checked in one transaction; \
             change fewer documents per request",
        ),
        Some(TRANSACTION_TOO_LONG) => {
            return BackendError::new(BackendErrorKind::Timeout, "the checked write took too long")
        }
        _ => return log_and_map(error, operation),
    };
    tracing::warn!(operation, error = %error.kind, "checked write refused by the server");
    BackendError::new(kind, message)
}

/// `ids` in slices of at most [`ID_BATCH`] values and [`ID_BATCH_BYTES`]
/// encoded bytes (a single larger `_id` gets a slice of its own).
fn id_batches(ids: &[Bson]) -> Vec<&[Bson]> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, id) in ids.iter().enumerate() {
        let size = id_key(Some(id)).len();
        if i > start && (i - start >= ID_BATCH || bytes + size > ID_BATCH_BYTES) {
            batches.push(&ids[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < ids.len() {
        batches.push(&ids[start..]);
    }
    batches
}

/// A short, growing, jittered pause between conflicting attempts.
fn backoff(attempt: u32) -> Duration {
    let base = 1u64 << attempt.min(6);
    let jitter = rand::random_range(0..=base);
    Duration::from_millis(base + jitter)
}

/// Commits, retrying while the outcome of the commit is unknown.
async fn commit(session: &mut ClientSession) -> Result<(), Error> {
    let mut attempt = 1;
    loop {
        match session.commit_transaction().await {
            Err(error)
                if error.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                    && attempt < MAX_COMMIT_ATTEMPTS =>
            {
                attempt += 1;
                tokio::time::sleep(backoff(attempt)).await;
            }
            result => return result,
        }
    }
}

/// Aborts; a failed abort only means the server already dropped it.
async fn abort(session: &mut ClientSession) {
    if let Err(error) = session.abort_transaction().await {
        tracing::debug!(error = %error.kind, "aborting a checked write's transaction failed");
    }
}

async fn run_once(
    coll: &Collection<Document>,
    session: &mut ClientSession,
    write: &CheckedWrite,
    max_documents: usize,
    check: &dyn WriteCheck,
) -> Result<UpdateOutcome, Failure> {
    match write {
        CheckedWrite::UpdateOne(query) => {
            update(coll, session, query, false, max_documents, check).await
        }
        CheckedWrite::UpdateMany(query) => {
            update(coll, session, query, true, max_documents, check).await
        }
        CheckedWrite::ReplaceOne(query) => replace(coll, session, query, check).await,
    }
}

async fn update(
    coll: &Collection<Document>,
    session: &mut ClientSession,
    query: &UpdateQuery,
    multi: bool,
    max_documents: usize,
    check: &dyn WriteCheck,
) -> Result<UpdateOutcome, Failure> {
    let before = if multi {
        let before = matched(coll, session, &query.filter, max_documents + 1).await?;
        if before.len() > max_documents {
            return Err(Failure::Refused(BackendError::invalid(format!(
                "this updateMany would change more than {max_documents} documents, the most \
                 one checked write (JSON schema or rules) may change; narrow the filter"
            ))));
        }
        before
    } else {
        matched(coll, session, &query.filter, 1).await?
    };
    let driver_update = || match &query.update {
        UpdateModifications::Operators(doc) => DriverUpdate::Document(doc.clone()),
        UpdateModifications::Pipeline(stages) => DriverUpdate::Pipeline(stages.clone()),
    };
    if before.is_empty() {
        if !query.upsert {
            return Ok(UpdateOutcome::default());
        }
        let mut action = coll
            .update_one(query.filter.clone(), driver_update())
            .upsert(true)
            .session(&mut *session);
        if let Some(filters) = &query.array_filters {
            action = action.array_filters(filters.clone());
        }
        let result = action.await?;
        check_upserted(coll, session, &result, check).await?;
        return Ok(UpdateOutcome {
            matched_count: result.matched_count,
            modified_count: result.modified_count,
            upserted_id: result.upserted_id,
        });
    }
    let ids: Vec<Bson> = before
        .iter()
        .filter_map(|d| d.get("_id").cloned())
        .collect();
    // The write is pinned to the documents read: a document the filter
    // matches only now is neither checked nor changed.
    let (mut matched_count, mut modified_count) = (0, 0);
    for batch in id_batches(&ids) {
        let pinned = doc! { "$and": [query.filter.clone(), { "_id": { "$in": batch.to_vec() } }] };
        let mut action = if multi {
            coll.update_many(pinned, driver_update())
        } else {
            coll.update_one(pinned, driver_update())
        }
        .session(&mut *session);
        if let Some(filters) = &query.array_filters {
            action = action.array_filters(filters.clone());
        }
        let result = action.await?;
        matched_count += result.matched_count;
        modified_count += result.modified_count;
    }
    check_changed(coll, session, &before, ids, check).await?;
    Ok(UpdateOutcome {
        matched_count,
        modified_count,
        upserted_id: None,
    })
}

async fn replace(
    coll: &Collection<Document>,
    session: &mut ClientSession,
    query: &ReplaceQuery,
    check: &dyn WriteCheck,
) -> Result<UpdateOutcome, Failure> {
    let before = matched(coll, session, &query.filter, 1).await?;
    // Pinned to the document read (and then never an upsert), or an upsert
    // when nothing matched.
    let (filter, upsert) = match before.first().and_then(|d| d.get("_id")) {
        Some(id) => (
            doc! { "$and": [query.filter.clone(), { "_id": id.clone() }] },
            false,
        ),
        None if !query.upsert => return Ok(UpdateOutcome::default()),
        None => (query.filter.clone(), true),
    };
    let result = coll
        .replace_one(filter, query.replacement.clone())
        .upsert(upsert)
        .session(&mut *session)
        .await?;
    if before.is_empty() {
        check_upserted(coll, session, &result, check).await?;
    } else {
        let ids = before
            .iter()
            .filter_map(|d| d.get("_id").cloned())
            .collect();
        check_changed(coll, session, &before, ids, check).await?;
    }
    Ok(UpdateOutcome {
        matched_count: result.matched_count,
        modified_count: result.modified_count,
        upserted_id: result.upserted_id,
    })
}

/// The documents `filter` matches, at most `limit` (0: all).
async fn matched(
    coll: &Collection<Document>,
    session: &mut ClientSession,
    filter: &Document,
    limit: usize,
) -> Result<Vec<Document>, Error> {
    let mut action = coll.find(filter.clone()).session(&mut *session);
    if limit > 0 {
        action = action.limit(i64::try_from(limit).unwrap_or(i64::MAX));
    }
    let mut cursor = action.await?;
    let mut documents = Vec::new();
    while cursor.advance(session).await? {
        documents.push(cursor.deserialize_current()?);
    }
    Ok(documents)
}

/// Checks the document an upsert inserted. An upsert that matched a
/// document after all (its filter matched nothing when read a moment
/// before, in the same snapshot: it is not deterministic, e.g. `$rand`)
/// changed a document nobody checked: refused, so the transaction aborts.
async fn check_upserted(
    coll: &Collection<Document>,
    session: &mut ClientSession,
    result: &UpdateResult,
    check: &dyn WriteCheck,
) -> Result<(), Failure> {
    let Some(id) = &result.upserted_id else {
        if result.matched_count == 0 {
            return Ok(());
        }
        return Err(Failure::Refused(BackendError::invalid(
            "the upsert's filter matched a document it did not match when read in the same \
             transaction (a filter that is not deterministic, such as one using $rand, \
             cannot be used in a checked write)",
        )));
    };
    let inserted = coll
        .find_one(doc! { "_id": id.clone() })
        .session(&mut *session)
        .await?;
    match inserted {
        Some(after) => check.check(None, &after).map_err(Failure::Refused),
        None => Ok(()),
    }
}

/// Reads back the documents with `ids` and checks every one that changed.
async fn check_changed(
    coll: &Collection<Document>,
    session: &mut ClientSession,
    before: &[Document],
    ids: Vec<Bson>,
    check: &dyn WriteCheck,
) -> Result<(), Failure> {
    let mut after_by_id: HashMap<Vec<u8>, Document> = HashMap::with_capacity(ids.len());
    for batch in id_batches(&ids) {
        let filter = doc! { "_id": { "$in": batch.to_vec() } };
        for document in matched(coll, session, &filter, 0).await? {
            after_by_id.insert(id_key(document.get("_id")), document);
        }
    }
    for old in before {
        let Some(new) = after_by_id.remove(&id_key(old.get("_id"))) else {
            continue;
        };
        if same_bytes(old, &new) {
            continue;
        }
        check.check(Some(old), &new).map_err(Failure::Refused)?;
    }
    Ok(())
}

/// An `_id` as a hashable key: the BSON bytes of `{"_id": id}`.
fn id_key(id: Option<&Bson>) -> Vec<u8> {
    let id = id.cloned().unwrap_or(Bson::Null);
    to_bytes(&doc! { "_id": id }).unwrap_or_default()
}

fn to_bytes(doc: &Document) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    doc.to_writer(&mut bytes).ok()?;
    Some(bytes)
}

/// Whether two documents are byte for byte the same (field order and
/// numeric types included), as the server decides "modified".
fn same_bytes(a: &Document, b: &Document) -> bool {
    match (to_bytes(a), to_bytes(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_batches_bound_count_and_bytes() {
        let small: Vec<Bson> = (0..25_000).map(Bson::Int32).collect();
        let sizes: Vec<usize> = id_batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![10_000, 10_000, 5_000]);
        let big: Vec<Bson> = (0..5)
            .map(|i| Bson::String(format!("{i}{}", "x".repeat(1024 * 1024))))
            .collect();
        let sizes: Vec<usize> = id_batches(&big).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![3, 2]);
        assert!(id_batches(&[]).is_empty());
    }
}
