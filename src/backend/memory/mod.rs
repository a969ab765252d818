//! [`MemoryBackend`]: the embedded engine serving the Data API from memory.
//!
//! Databases and collections spring into existence on first write; reading a
//! missing collection gives empty results. Each collection sits behind its own
//! `std::sync::RwLock`, held (never across an await) for the whole of a read
//! or write, so every request — including multi-document writes — is atomic
//! with respect to the others.

mod collection;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bson::{Bson, Document};

use crate::backend::{
    Backend, BackendError, CheckedWrite, FindOneQuery, FindQuery, Namespace, ReplaceQuery,
    UpdateOutcome, UpdateQuery, WriteCheck,
};
use crate::query::aggregate::{
    doc_size, AggregateContext, CollectionStats, Limits, DEFAULT_MAX_PIPELINE_BYTES,
};
use crate::query::{Filter, Pipeline, Projection, QueryError, SortSpec};

use collection::Collection;
use write::{duplicate_message, to_backend, ParsedUpdate, WriteSpec};

type Shared<T> = Arc<RwLock<T>>;

/// An in-memory data source with MongoDB query semantics. Cloning is cheap
/// and clones share the same data.
///
/// Aggregation pipelines run under a memory budget (see
/// [`MemoryBackend::with_max_pipeline_bytes`]) and a time budget (see
/// [`MemoryBackend::with_max_time`]).
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    databases: Shared<HashMap<String, HashMap<String, Shared<Collection>>>>,
    max_pipeline_bytes: usize,
    max_time: Option<Duration>,
}

/// The default time budget of one aggregation: the service's default request deadline.
const DEFAULT_MAX_TIME: Duration = Duration::from_secs(90);

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend {
            databases: Shared::default(),
            max_pipeline_bytes: DEFAULT_MAX_PIPELINE_BYTES,
            max_time: Some(DEFAULT_MAX_TIME),
        }
    }
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the memory budget of an aggregation pipeline: the most bytes
    /// (estimated BSON size) that one blocking stage (`$group`, `$sort`,
    /// `$bucketAuto`, `$facet`, `$setWindowFields`, `$lookup`, …) may hold.
    /// A pipeline that needs more fails with error code 292, as MongoDB does
    /// without `allowDiskUse`. The default is 100 MiB, MongoDB's per-stage limit.
    #[must_use]
    pub fn with_max_pipeline_bytes(mut self, bytes: usize) -> Self {
        self.max_pipeline_bytes = bytes;
        self
    }

    /// Sets the time budget of one aggregation (`None`: unbounded; default
    /// 90 s, the service's default request deadline). The engine runs
    /// synchronously, so the request deadline alone cannot interrupt it: the
    /// pipeline checks this budget as documents flow and fails with a
    /// [`BackendErrorKind::Timeout`](crate::backend::BackendErrorKind::Timeout)
    /// error (MongoDB's `MaxTimeMSExpired`) when it runs out.
    #[must_use]
    pub fn with_max_time(mut self, max_time: Option<Duration>) -> Self {
        self.max_time = max_time;
        self
    }

    /// The collection if it exists.
    fn existing(&self, database: &str, collection: &str) -> Option<Shared<Collection>> {
        let dbs = self
            .databases
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        dbs.get(database).and_then(|db| db.get(collection)).cloned()
    }

    /// The collection, created when missing.
    fn create(&self, database: &str, collection: &str) -> Shared<Collection> {
        if let Some(c) = self.existing(database, collection) {
            return c;
        }
        let mut dbs = self
            .databases
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        dbs.entry(database.to_string())
            .or_default()
            .entry(collection.to_string())
            .or_default()
            .clone()
    }

    /// A snapshot of a collection's documents in natural order.
    fn snapshot(&self, database: &str, collection: &str) -> Vec<Document> {
        match self.existing(database, collection) {
            Some(c) => {
                let guard = c.read().unwrap_or_else(PoisonError::into_inner);
                guard.iter().map(|(_, d)| d.clone()).collect()
            }
            None => Vec::new(),
        }
    }

    /// Names of the collections of `database` that exist, sorted.
    pub fn collection_names(&self, database: &str) -> Vec<String> {
        let dbs = self
            .databases
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<String> = dbs
            .get(database)
            .map(|db| db.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Removes a collection and its documents; returns whether it existed.
    pub fn drop_collection(&self, ns: &Namespace) -> bool {
        let mut dbs = self
            .databases
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(db) = dbs.get_mut(&ns.database) else {
            return false;
        };
        let existed = db.remove(&ns.collection).is_some();
        if db.is_empty() {
            dbs.remove(&ns.database);
        }
        existed
    }

    /// Number of documents in a collection (0 when it does not exist).
    pub fn count(&self, ns: &Namespace) -> usize {
        self.existing(&ns.database, &ns.collection)
            .map(|c| c.read().unwrap_or_else(PoisonError::into_inner).len())
            .unwrap_or(0)
    }

    fn read_matches(
        &self,
        ns: &Namespace,
        filter: &Filter,
        sort: Option<&SortSpec>,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Document>, BackendError> {
        let Some(coll) = self.existing(&ns.database, &ns.collection) else {
            return Ok(Vec::new());
        };
        let guard = coll.read().unwrap_or_else(PoisonError::into_inner);
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        let limit = if limit == 0 {
            usize::MAX
        } else {
            usize::try_from(limit).unwrap_or(usize::MAX)
        };
        if sort.and_then(SortSpec::natural) == Some(false) {
            let seqs = guard.matching(filter, None).map_err(to_backend)?;
            return Ok(seqs
                .into_iter()
                .rev()
                .skip(skip)
                .take(limit)
                .filter_map(|s| guard.get(s).cloned())
                .collect());
        }
        match sort.filter(|s| !s.is_empty()) {
            None => {
                let seqs = guard
                    .matching(filter, Some(skip.saturating_add(limit)))
                    .map_err(to_backend)?;
                Ok(seqs
                    .into_iter()
                    .skip(skip)
                    .filter_map(|s| guard.get(s).cloned())
                    .collect())
            }
            Some(spec) => {
                // Sort references and copy only the documents returned.
                let matched: Vec<&Document> = guard
                    .matching(filter, None)
                    .map_err(to_backend)?
                    .into_iter()
                    .filter_map(|s| guard.get(s))
                    .collect();
                Ok(spec
                    .top(matched.iter().copied(), skip, limit)
                    .into_iter()
                    .map(|i| matched[i].clone())
                    .collect())
            }
        }
    }
}

fn parse_filter(filter: &Document) -> Result<Filter, BackendError> {
    Filter::parse(filter).map_err(to_backend)
}

fn parse_projection(p: Option<&Document>) -> Result<Option<Projection>, BackendError> {
    p.filter(|p| !p.is_empty())
        .map(Projection::parse)
        .transpose()
        .map_err(to_backend)
}

fn parse_sort(s: Option<&Document>) -> Result<Option<SortSpec>, BackendError> {
    s.map(SortSpec::parse).transpose().map_err(to_backend)
}

/// Applies a `find` projection, resolving `"a.$"` through the filter's matched element.
fn project(
    docs: Vec<Document>,
    projection: Option<&Projection>,
    filter: &Filter,
) -> Result<Vec<Document>, BackendError> {
    let Some(p) = projection else {
        return Ok(docs);
    };
    docs.iter()
        .map(|d| {
            let matched = if p.uses_positional() {
                filter.matched_array_index(d)
            } else {
                None
            };
            p.apply_with_match(d, matched)
        })
        .collect::<Result<_, _>>()
        .map_err(to_backend)
}

/// The database a pipeline runs in, for `$lookup`, `$unionWith`, `$out` and
/// `$merge`, with the collection it reads (`$collStats`) and its limits.
struct DatabaseContext<'a> {
    backend: &'a MemoryBackend,
    database: &'a str,
    collection: &'a str,
    limits: Limits,
}

impl AggregateContext for DatabaseContext<'_> {
    fn limits(&self) -> Limits {
        self.limits
    }

    fn stats(&self) -> Option<CollectionStats> {
        let ns = format!("{}.{}", self.database, self.collection);
        let Some(coll) = self.backend.existing(self.database, self.collection) else {
            return Some(CollectionStats {
                ns,
                count: 0,
                size: 0,
            });
        };
        let guard = coll.read().unwrap_or_else(PoisonError::into_inner);
        Some(CollectionStats {
            ns,
            count: guard.len() as u64,
            size: guard.iter().map(|(_, d)| doc_size(d) as u64).sum(),
        })
    }

    fn collection(&self, name: &str) -> Vec<Document> {
        self.backend.snapshot(self.database, name)
    }

    fn write_collection(&self, name: &str, docs: Vec<Document>) -> Result<(), QueryError> {
        let coll = self.backend.create(self.database, name);
        let mut guard = coll.write().unwrap_or_else(PoisonError::into_inner);
        guard.reset(docs).map_err(|dup| {
            QueryError::new(
                QueryError::DUPLICATE_KEY,
                duplicate_message(&format!("{}.{name}", self.database), &dup.0),
            )
        })
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn find_one(
        &self,
        ns: &Namespace,
        query: FindOneQuery,
    ) -> Result<Option<Document>, BackendError> {
        let filter = parse_filter(&query.filter)?;
        let projection = parse_projection(query.projection.as_ref())?;
        let sort = parse_sort(query.sort.as_ref())?;
        let docs = self.read_matches(ns, &filter, sort.as_ref(), 0, 1)?;
        Ok(project(docs, projection.as_ref(), &filter)?
            .into_iter()
            .next())
    }

    async fn find(&self, ns: &Namespace, query: FindQuery) -> Result<Vec<Document>, BackendError> {
        let filter = parse_filter(&query.filter)?;
        let projection = parse_projection(query.projection.as_ref())?;
        let sort = parse_sort(query.sort.as_ref())?;
        let docs = self.read_matches(ns, &filter, sort.as_ref(), query.skip, query.limit)?;
        project(docs, projection.as_ref(), &filter)
    }

    async fn insert_one(&self, ns: &Namespace, document: Document) -> Result<Bson, BackendError> {
        let coll = self.create(&ns.database, &ns.collection);
        let mut guard = coll.write().unwrap_or_else(PoisonError::into_inner);
        write::insert(&mut guard, &ns.to_string(), document)
    }

    async fn insert_many(
        &self,
        ns: &Namespace,
        documents: Vec<Document>,
    ) -> Result<Vec<Bson>, BackendError> {
        let coll = self.create(&ns.database, &ns.collection);
        let mut guard = coll.write().unwrap_or_else(PoisonError::into_inner);
        write::insert_many(&mut guard, &ns.to_string(), documents)
    }

    async fn update_one(
        &self,
        ns: &Namespace,
        query: UpdateQuery,
    ) -> Result<UpdateOutcome, BackendError> {
        self.run_update(ns, query, false, None)
    }

    async fn update_many(
        &self,
        ns: &Namespace,
        query: UpdateQuery,
    ) -> Result<UpdateOutcome, BackendError> {
        self.run_update(ns, query, true, None)
    }

    async fn replace_one(
        &self,
        ns: &Namespace,
        query: ReplaceQuery,
    ) -> Result<UpdateOutcome, BackendError> {
        self.run_replace(ns, query, None)
    }

    async fn delete_one(&self, ns: &Namespace, filter: Document) -> Result<u64, BackendError> {
        self.run_delete(ns, &filter, false)
    }

    async fn delete_many(&self, ns: &Namespace, filter: Document) -> Result<u64, BackendError> {
        self.run_delete(ns, &filter, true)
    }

    async fn aggregate(
        &self,
        ns: &Namespace,
        pipeline: Vec<Document>,
    ) -> Result<Vec<Document>, BackendError> {
        let parsed = Pipeline::parse(&pipeline).map_err(to_backend)?;
        // Data API aggregates always name a collection.
        if parsed.starts_with_documents() {
            return Err(to_backend(QueryError::new(
                73,
                "'$documents' can only be run with {aggregate: 1}",
            )));
        }
        let ctx = DatabaseContext {
            backend: self,
            database: &ns.database,
            collection: &ns.collection,
            limits: Limits::with_max_time(self.max_pipeline_bytes, self.max_time),
        };
        if !parsed.reads_input() {
            return parsed.run(Vec::new(), &ctx).map_err(to_backend);
        }
        let start = usize::from(parsed.leading_match().is_some());
        // The leading `$match` (and a `$group` or `$count` right after it) read
        // the documents in place under the read lock; the lock is released
        // before the other stages run, as they may read or write collections.
        let (next, input) = match self.existing(&ns.database, &ns.collection) {
            None => (start, Vec::new()),
            Some(coll) => {
                let guard = coll.read().unwrap_or_else(PoisonError::into_inner);
                let refs: Vec<&Document> = match parsed.leading_match() {
                    Some(filter) => guard
                        .matching(filter, None)
                        .map_err(to_backend)?
                        .into_iter()
                        .filter_map(|s| guard.get(s))
                        .collect(),
                    None => guard.iter().map(|(_, d)| d).collect(),
                };
                parsed.run_prefix(start, &refs, &ctx).map_err(to_backend)?
            }
        };
        parsed.run_from(next, input, &ctx).map_err(to_backend)
    }

    /// Atomic: the collection's write lock is held from the first read of a
    /// matched document to the last change.
    async fn write_checked(
        &self,
        ns: &Namespace,
        write: CheckedWrite,
        check: &dyn WriteCheck,
    ) -> Result<UpdateOutcome, BackendError> {
        match write {
            CheckedWrite::UpdateOne(query) => self.run_update(ns, query, false, Some(check)),
            CheckedWrite::UpdateMany(query) => self.run_update(ns, query, true, Some(check)),
            CheckedWrite::ReplaceOne(query) => self.run_replace(ns, query, Some(check)),
        }
    }
}

impl MemoryBackend {
    fn run_update(
        &self,
        ns: &Namespace,
        query: UpdateQuery,
        multi: bool,
        check: Option<&dyn WriteCheck>,
    ) -> Result<UpdateOutcome, BackendError> {
        let filter = parse_filter(&query.filter)?;
        let update = ParsedUpdate::parse(&query.update, query.array_filters.as_deref())
            .map_err(to_backend)?;
        let Some(coll) = self.write_target(ns, query.upsert) else {
            return Ok(UpdateOutcome::default());
        };
        let mut guard = coll.write().unwrap_or_else(PoisonError::into_inner);
        let spec = WriteSpec {
            ns: &ns.to_string(),
            filter: &filter,
            raw_filter: &query.filter,
            upsert: query.upsert,
            check,
        };
        write::update(&mut guard, &spec, &update, multi)
    }

    /// The collection an update writes to: created for an upsert, `None`
    /// when it does not exist otherwise (nothing to update).
    fn write_target(&self, ns: &Namespace, upsert: bool) -> Option<Shared<Collection>> {
        if upsert {
            Some(self.create(&ns.database, &ns.collection))
        } else {
            self.existing(&ns.database, &ns.collection)
        }
    }

    fn run_replace(
        &self,
        ns: &Namespace,
        query: ReplaceQuery,
        check: Option<&dyn WriteCheck>,
    ) -> Result<UpdateOutcome, BackendError> {
        let filter = parse_filter(&query.filter)?;
        let Some(coll) = self.write_target(ns, query.upsert) else {
            crate::query::update::validate_replacement(&query.replacement).map_err(to_backend)?;
            return Ok(UpdateOutcome::default());
        };
        let mut guard = coll.write().unwrap_or_else(PoisonError::into_inner);
        let spec = WriteSpec {
            ns: &ns.to_string(),
            filter: &filter,
            raw_filter: &query.filter,
            upsert: query.upsert,
            check,
        };
        write::replace(&mut guard, &spec, query.replacement)
    }

    fn run_delete(
        &self,
        ns: &Namespace,
        filter: &Document,
        multi: bool,
    ) -> Result<u64, BackendError> {
        let filter = parse_filter(filter)?;
        let Some(coll) = self.existing(&ns.database, &ns.collection) else {
            return Ok(0);
        };
        let mut guard = coll.write().unwrap_or_else(PoisonError::into_inner);
        write::delete(&mut guard, &filter, multi)
    }
}

#[cfg(test)]
mod tests;
