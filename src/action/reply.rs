//! [`Reply`]: an action's result, before the protocol encodes it.

use bson::{Bson, Document};

use super::UpdateOutcome;

/// An action's result, before it is rendered.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `findOne`: `{"document": …}` (`null` when nothing matched).
    Document(Option<Document>),
    /// `find` and `aggregate`: `{"documents": […]}`.
    Documents(Vec<Document>),
    /// `insertOne`: `{"insertedId": …}`.
    InsertedId(Bson),
    /// `insertMany`: `{"insertedIds": […]}`.
    InsertedIds(Vec<Bson>),
    /// `updateOne`, `updateMany`, `replaceOne`:
    /// `{"matchedCount", "modifiedCount"[, "upsertedId"]}`.
    Updated(UpdateOutcome),
    /// `deleteOne`, `deleteMany`: `{"deletedCount": …}`.
    Deleted(u64),
}

impl Reply {
    /// How many documents the reply returned or affected, for the log.
    pub(crate) fn document_count(&self) -> u64 {
        match self {
            Reply::Document(doc) => u64::from(doc.is_some()),
            Reply::Documents(docs) => docs.len() as u64,
            Reply::InsertedId(_) => 1,
            Reply::InsertedIds(ids) => ids.len() as u64,
            Reply::Updated(outcome) => {
                outcome.modified_count + u64::from(outcome.upserted_id.is_some())
            }
            Reply::Deleted(count) => *count,
        }
    }

    /// Whether the reply is for an insert (answered with the insert status).
    pub(crate) fn is_insert(&self) -> bool {
        matches!(self, Reply::InsertedId(_) | Reply::InsertedIds(_))
    }
}
