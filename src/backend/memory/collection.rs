//! One in-memory collection: documents in natural (insertion) order plus a
//! unique `_id` index keyed by [`canonical_key`].
//!
//! Both live in persistent (structurally shared) maps, so cloning a
//! collection is O(1): readers take a snapshot under the lock, drop the lock
//! and work on the snapshot while writers go on; a writer's change copies
//! only the tree nodes it touches.

use std::sync::Arc;

use imbl::{HashMap, OrdMap};

use bson::{Bson, Document};

use crate::query::compare::canonical_key;
use crate::query::{Filter, QueryError};

/// Documents of one collection.
#[derive(Debug, Default, Clone)]
pub(super) struct Collection {
    docs: OrdMap<u64, Arc<Document>>,
    ids: HashMap<Vec<u8>, u64>,
    next: u64,
}

/// A write refused by the `_id` index; holds the duplicate `_id`.
#[derive(Debug, Clone)]
pub(super) struct DuplicateId(pub Bson);

impl Collection {
    /// Number of documents.
    pub(super) fn len(&self) -> usize {
        self.docs.len()
    }

    /// Appends a document (which must carry an `_id`).
    pub(super) fn insert(&mut self, doc: Document) -> Result<(), DuplicateId> {
        let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
        let key = canonical_key(&id);
        if self.ids.contains_key(&key) {
            return Err(DuplicateId(id));
        }
        let seq = self.next;
        self.next += 1;
        self.ids.insert(key, seq);
        self.docs.insert(seq, Arc::new(doc));
        Ok(())
    }

    /// The document at a position.
    pub(super) fn get(&self, seq: u64) -> Option<&Document> {
        self.docs.get(&seq).map(|doc| &**doc)
    }

    /// Replaces the document at a position; its `_id` must not change.
    pub(super) fn replace(&mut self, seq: u64, doc: Document) {
        if let Some(slot) = self.docs.get_mut(&seq) {
            *slot = Arc::new(doc);
        }
    }

    /// Removes the document at a position.
    pub(super) fn remove(&mut self, seq: u64) {
        if let Some(doc) = self.docs.remove(&seq) {
            let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
            self.ids.remove(&canonical_key(&id));
        }
    }

    /// All documents in natural order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &Document)> {
        self.docs.iter().map(|(k, v)| (*k, &**v))
    }

    /// Positions of the documents matching `filter`, in natural order,
    /// stopping after `limit`. Uses the `_id` index when the filter pins `_id`.
    /// Fails when a `$expr` in the filter fails to evaluate.
    pub(super) fn matching(
        &self,
        filter: &Filter,
        limit: Option<usize>,
    ) -> Result<Vec<u64>, QueryError> {
        let mut out = Vec::new();
        if limit == Some(0) {
            return Ok(out);
        }
        if let Some(id) = filter.id_equality() {
            if let Some(seq) = self.ids.get(&canonical_key(id)) {
                if let Some(d) = self.docs.get(seq) {
                    if filter.try_matches(d)? {
                        out.push(*seq);
                    }
                }
            }
            return Ok(out);
        }
        for (seq, d) in &self.docs {
            crate::query::budget::step()?;
            if filter.try_matches(d)? {
                out.push(*seq);
                if limit.is_some_and(|n| out.len() >= n) {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Replaces the whole content (`$out`); fails on a duplicate `_id` without changing anything.
    pub(super) fn reset(&mut self, docs: Vec<Document>) -> Result<(), DuplicateId> {
        let mut fresh = Collection::default();
        for d in docs {
            fresh.insert(d)?;
        }
        *self = fresh;
        Ok(())
    }
}
