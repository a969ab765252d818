//! Durable storage for the embedded engine: every collection's documents in
//! a [redb](https://www.redb.org) database file, `<dir>/data.redb`.
//!
//! redb gives atomic, durable transactions and crash recovery (copy-on-write
//! B-trees, checksummed pages, two commit slots); this module only maps the
//! engine's writes onto it:
//!
//! - one table per collection, keyed by the document's position in the
//!   collection's natural order (`u64`), holding the document's BSON bytes;
//!   a catalogue table names the collection of each table, a `meta` table
//!   holds the format version;
//! - one **committer thread** owns the database. Writers hand it a
//!   [`Batch`] (the changes of one request, and the collection version they
//!   produce) and wait; the committer takes every batch waiting, commits
//!   them in one write transaction (group commit: one `fsync` for many
//!   requests), then publishes each batch's version to readers, in order,
//!   and answers the writers. A batch is on disk before anyone can read it.
//! - A failed commit publishes nothing: the writers get an error, the
//!   collections' next writers start again from what readers see (the
//!   pending versions are dropped), and batches built on the failed ones are
//!   refused too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bson::Document;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::backend::{BackendError, BackendErrorKind};

use super::collection::{Change, Collection};
use super::Slot;

/// The format version this build writes; a file with a greater one was
/// written by a newer release and is refused.
const FORMAT: u64 = 1;

/// The database file inside the directory.
const FILE: &str = "data.redb";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const CATALOGUE: TableDefinition<&str, (&str, &str)> = TableDefinition::new("collections");

/// At most this many requests are committed in one transaction.
const MAX_GROUP: usize = 1024;

/// redb's page cache: the engine serves reads from memory, so the cache
/// only helps writes find the B-tree pages they change.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// How often the committer makes [`SyncMode::Periodic`] commits durable.
const PERIODIC_SYNC: Duration = Duration::from_secs(1);

/// When a write reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// A write is durable (committed and `fsync`ed) before it is
    /// acknowledged; concurrent writes share one commit. The default.
    #[default]
    Always,
    /// Writes are committed in order without waiting for the disk (redb's
    /// `Durability::None`); a durable commit follows at least every second.
    /// A crash (of the process too: redb keeps such commits in memory until
    /// the next durable one) may lose the writes acknowledged in the last
    /// second, never part of one, and the files stay consistent. The same
    /// holds after an I/O error.
    Periodic,
}

/// The name of a collection's table.
fn table_name(database: &str, collection: &str) -> String {
    // The length makes the name unique whatever the names contain.
    format!("c{}:{database}.{collection}", database.len())
}

/// What a batch does to its collection's table.
#[derive(Debug)]
pub(super) enum Op {
    /// Stores a document (BSON bytes) at a position.
    Put(u64, Vec<u8>),
    /// Removes the document at a position.
    Delete(u64),
    /// Removes every document (`$out`).
    Clear,
    /// Removes the collection.
    Drop,
}

/// One request's changes to one collection, on their way to the disk.
pub(super) struct Batch {
    pub(super) slot: Arc<Slot>,
    /// The slot's epoch the batch was built in (see [`Slot`]).
    pub(super) epoch: u64,
    pub(super) ops: Vec<Op>,
    /// The collection version readers see once the batch is committed
    /// (`None` for a drop).
    pub(super) version: Option<Collection>,
    pub(super) reply: Sender<Result<(), BackendError>>,
}

/// The encoded form of a write's changes.
pub(super) fn encode(changes: Vec<Change>) -> Result<Vec<Op>, BackendError> {
    changes
        .into_iter()
        .map(|change| match change {
            Change::Put(seq, doc) => {
                let mut bytes = Vec::new();
                doc.to_writer(&mut bytes).map_err(|err| {
                    tracing::error!(error = %err, "a document could not be encoded for storage");
                    storage_error()
                })?;
                Ok(Op::Put(seq, bytes))
            }
            Change::Delete(seq) => Ok(Op::Delete(seq)),
            Change::Clear => Ok(Op::Clear),
        })
        .collect()
}

/// The error a writer gets when its write did not reach the disk: HTTP 503
/// (the details are logged, not sent).
pub(super) fn storage_error() -> BackendError {
    BackendError::new(
        BackendErrorKind::Unavailable,
        "the write could not be stored; nothing was changed",
    )
}

/// An error opening or loading the storage, naming the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenError(pub String);

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OpenError {}

/// What [`open`] found on disk.
pub(super) struct Loaded {
    /// Every collection, by database and name.
    pub(super) collections: Vec<(String, String, Collection)>,
    /// Documents loaded.
    pub(super) documents: u64,
    /// The handle writers send batches to.
    pub(super) storage: Storage,
}

/// The committer thread's handle: writers send batches through it; dropping
/// the last clone of the backend (and of every slot) lets the thread end,
/// and [`Closer`] waits for it so the file lock is released.
#[derive(Debug, Clone)]
pub(super) struct Storage {
    sender: Sender<Batch>,
    pub(super) shared: Arc<Shared>,
}

/// State shared with the committer thread.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Write transactions committed (for tests and figures).
    pub(super) commits: AtomicU64,
    /// Batches committed.
    pub(super) batches: AtomicU64,
    /// Test hook: commits fail while set.
    pub(super) fail: AtomicBool,
    /// Test hook: the committer holds this while it commits, so a test
    /// holding it stops commits.
    pub(super) gate: Mutex<()>,
    /// The directory, for messages.
    pub(super) dir: PathBuf,
}

/// Waits for the committer thread when the backend is dropped.
#[derive(Debug)]
pub(super) struct Closer(Mutex<Option<JoinHandle<()>>>);

impl Drop for Closer {
    fn drop(&mut self) {
        let handle = self
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            // The thread ends once every sender is gone; the slots holding
            // senders go with the backend, before this.
            if handle.join().is_err() {
                tracing::error!("the storage committer stopped with a panic");
            }
        }
    }
}

impl Storage {
    /// Hands a batch to the committer; the answer arrives on `reply`.
    pub(super) fn submit(&self, batch: Batch) -> Result<(), BackendError> {
        self.sender.send(batch).map_err(|_| {
            tracing::error!("the storage committer is gone");
            storage_error()
        })
    }
}

fn open_error(path: &Path, what: impl std::fmt::Display) -> OpenError {
    OpenError(format!("{}: {what}", path.display()))
}

/// Opens (creating when missing) the storage in `dir` and loads every
/// collection. Fails, naming the path, when the directory cannot be
/// created or read, the database is open in another process, was written by
/// a newer release, or is corrupt.
pub(super) fn open(dir: &Path, sync: SyncMode) -> Result<(Loaded, Closer), OpenError> {
    std::fs::create_dir_all(dir).map_err(|e| open_error(dir, format!("cannot create: {e}")))?;
    let path = dir.join(FILE);
    // A corrupt file may make redb panic (its own consistency checks):
    // report it as an error.
    let opened = std::panic::catch_unwind(|| open_database(&path));
    let (db, collections, documents) = match opened {
        Ok(result) => result?,
        Err(_) => return Err(open_error(&path, "corrupt database file")),
    };
    let (sender, receiver) = mpsc::channel();
    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        ..Shared::default()
    });
    let thread_shared = shared.clone();
    let handle = std::thread::Builder::new()
        .name("data-api-storage".into())
        .spawn(move || commit_loop(db, &path, receiver, sync, &thread_shared))
        .map_err(|e| open_error(dir, format!("cannot start the storage thread: {e}")))?;
    Ok((
        Loaded {
            collections,
            documents,
            storage: Storage { sender, shared },
        },
        Closer(Mutex::new(Some(handle))),
    ))
}

type Opened = (Database, Vec<(String, String, Collection)>, u64);

fn open_database(path: &Path) -> Result<Opened, OpenError> {
    if let Err(e) = std::fs::metadata(path.parent().unwrap_or(path)).and_then(|m| {
        if m.is_dir() {
            Ok(())
        } else {
            Err(std::io::Error::other("not a directory"))
        }
    }) {
        return Err(open_error(path, format!("cannot read: {e}")));
    }
    if path.exists() {
        // Fail early and clearly on a file we may not read or write.
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| open_error(path, format!("cannot open: {e}")))?;
    }
    let db = open_file(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => open_error(
            path,
            "in use by another process (only one server may open a data directory)",
        ),
        redb::DatabaseError::UpgradeRequired(v) => open_error(
            path,
            format!("written in redb file format {v}, which this build cannot read"),
        ),
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(what)) => {
            open_error(path, format!("corrupt database file: {what}"))
        }
        other => open_error(path, format!("cannot open: {other}")),
    })?;
    check_format(&db).map_err(|e| open_error(path, e))?;
    let (collections, documents) = load(&db).map_err(|e| open_error(path, e))?;
    Ok((db, collections, documents))
}

/// Opens (or creates) the database file, checking every page.
fn open_file(path: &Path) -> Result<Database, redb::DatabaseError> {
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .set_check_integrity_on_open(true)
        .create(path)
}

/// Writes the format version into a new file; refuses a newer one.
fn check_format(db: &Database) -> Result<(), String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
        let found = meta
            .get("format")
            .map_err(|e| e.to_string())?
            .map(|v| v.value());
        match found {
            Some(v) if v > FORMAT => {
                return Err(format!(
                "written by a newer release (storage format {v}; this build reads up to {FORMAT})"
            ))
            }
            Some(_) => {}
            None => {
                meta.insert("format", FORMAT).map_err(|e| e.to_string())?;
            }
        }
    }
    txn.commit().map_err(|e| e.to_string())
}

type Collections = (Vec<(String, String, Collection)>, u64);

/// Every collection in the file, documents at their stored positions.
fn load(db: &Database) -> Result<Collections, String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let catalogue = match txn.open_table(CATALOGUE) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e.to_string()),
    };
    let mut out = Vec::new();
    let mut documents = 0;
    for entry in catalogue.iter().map_err(|e| e.to_string())? {
        let (name, names) = entry.map_err(|e| e.to_string())?;
        let (database, collection) = names.value();
        let (database, collection) = (database.to_owned(), collection.to_owned());
        let name = name.value().to_owned();
        let table = txn
            .open_table(TableDefinition::<u64, &[u8]>::new(&name))
            .map_err(|e| e.to_string())?;
        let mut coll = Collection::default();
        for row in table.iter().map_err(|e| e.to_string())? {
            let (seq, bytes) = row.map_err(|e| e.to_string())?;
            let doc = Document::from_reader(bytes.value())
                .map_err(|e| format!("{database}.{collection}: an unreadable document: {e}"))?;
            coll.load(seq.value(), doc)
                .map_err(|_| format!("{database}.{collection}: a duplicate _id"))?;
            documents += 1;
        }
        out.push((database, collection, coll));
    }
    Ok((out, documents))
}

/// The committer: takes every waiting batch, commits them together, then
/// publishes and answers.
///
/// redb refuses every write after an I/O error until the file is opened
/// again, so after a failed commit the committer closes the file and opens
/// it again (redb's repair restores the last commit, which is what readers
/// see), at once and then before each later commit until it succeeds: once
/// the disk has room again, writes go on without a restart.
fn commit_loop(
    db: Database,
    path: &Path,
    receiver: Receiver<Batch>,
    sync: SyncMode,
    shared: &Shared,
) {
    let mut db = Some(db);
    let mut last_sync = Instant::now();
    let mut unsynced = false;
    loop {
        let first = if unsynced {
            match receiver.recv_timeout(PERIODIC_SYNC) {
                Ok(batch) => batch,
                Err(RecvTimeoutError::Timeout) => {
                    if db.as_ref().is_some_and(|db| flush(db).is_ok()) {
                        unsynced = false;
                        last_sync = Instant::now();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match receiver.recv() {
                Ok(batch) => batch,
                Err(_) => break,
            }
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(batch) => group.push(batch),
                Err(_) => break,
            }
        }
        // Batches built on versions a failed commit discarded are refused.
        let (group, stale): (Vec<Batch>, Vec<Batch>) = group
            .into_iter()
            .partition(|b| b.epoch == b.slot.epoch.load(Ordering::Acquire));
        for batch in stale {
            batch.slot.answered();
            let _ = batch.reply.send(Err(storage_error()));
        }
        if group.is_empty() {
            continue;
        }
        let durable = match sync {
            SyncMode::Always => true,
            SyncMode::Periodic => last_sync.elapsed() >= PERIODIC_SYNC,
        };
        let committed = {
            let _gate = shared.gate.lock().unwrap_or_else(PoisonError::into_inner);
            if db.is_none() {
                db = reopen(path, shared);
            }
            match &db {
                Some(db) => commit(db, &group, durable, shared),
                None => Err(redb::StorageError::Io(std::io::Error::other(
                    "the database file could not be opened again",
                ))
                .into()),
            }
        };
        match committed {
            Ok(()) => {
                shared.commits.fetch_add(1, Ordering::Relaxed);
                shared
                    .batches
                    .fetch_add(group.len() as u64, Ordering::Relaxed);
                if durable {
                    last_sync = Instant::now();
                }
                unsynced = !durable;
                for batch in group {
                    if let Some(version) = batch.version {
                        batch.slot.publish_committed(version);
                    }
                    batch.slot.answered();
                    let _ = batch.reply.send(Ok(()));
                }
            }
            Err(err) => {
                tracing::error!(
                    directory = %shared.dir.display(),
                    error = %err,
                    requests = group.len(),
                    "storage commit failed; the writes were not applied"
                );
                for batch in &group {
                    batch.slot.discard_pending();
                }
                for batch in group {
                    batch.slot.answered();
                    let _ = batch.reply.send(Err(storage_error()));
                }
                // Close (releasing the lock) before opening again.
                drop(db.take());
                db = reopen(path, shared);
                unsynced = false;
            }
        }
    }
    let Some(db) = db else { return };
    if unsynced {
        if let Err(err) = flush(&db) {
            tracing::error!(error = %err, "storage: the last writes could not be made durable");
        }
    }
}

/// The database file opened again after a failed commit (`None`, logged,
/// when that fails too).
fn reopen(path: &Path, shared: &Shared) -> Option<Database> {
    if shared.fail.load(Ordering::Relaxed) {
        return None;
    }
    match std::panic::catch_unwind(|| open_file(path)) {
        Ok(Ok(db)) => Some(db),
        Err(_) => {
            tracing::error!(directory = %shared.dir.display(), "storage: the database file is corrupt");
            None
        }
        Ok(Err(err)) => {
            tracing::error!(
                directory = %shared.dir.display(),
                error = %err,
                "storage: the database file could not be opened again"
            );
            None
        }
    }
}

/// An empty durable commit: makes earlier non-durable commits durable.
fn flush(db: &Database) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.commit()?;
    Ok(())
}

/// Applies a group of batches in one write transaction.
fn commit(
    db: &Database,
    group: &[Batch],
    durable: bool,
    shared: &Shared,
) -> Result<(), redb::Error> {
    if shared.fail.load(Ordering::Relaxed) {
        return Err(redb::StorageError::Io(std::io::Error::other("injected failure")).into());
    }
    let mut txn = db.begin_write()?;
    txn.set_durability(if durable {
        Durability::Immediate
    } else {
        Durability::None
    })?;
    {
        let mut catalogue = txn.open_table(CATALOGUE)?;
        let mut known: HashMap<String, bool> = HashMap::new();
        for batch in group {
            let name = table_name(&batch.slot.database, &batch.slot.collection);
            let definition = TableDefinition::<u64, &[u8]>::new(&name);
            let mut dropped = false;
            let mut table = None;
            for op in &batch.ops {
                match op {
                    Op::Drop => {
                        table = None;
                        txn.delete_table(definition)?;
                        catalogue.remove(name.as_str())?;
                        dropped = true;
                    }
                    Op::Clear => {
                        table = None;
                        txn.delete_table(definition)?;
                    }
                    Op::Put(seq, bytes) => {
                        let t = match &mut table {
                            Some(t) => t,
                            None => table.insert(txn.open_table(definition)?),
                        };
                        t.insert(seq, bytes.as_slice())?;
                    }
                    Op::Delete(seq) => {
                        let t = match &mut table {
                            Some(t) => t,
                            None => table.insert(txn.open_table(definition)?),
                        };
                        t.remove(seq)?;
                    }
                }
            }
            drop(table);
            if dropped {
                known.insert(name, false);
            } else if known.get(&name) != Some(&true) {
                // The collection exists (maybe empty) from its first write.
                txn.open_table(definition)?;
                catalogue.insert(
                    name.as_str(),
                    (batch.slot.database.as_str(), batch.slot.collection.as_str()),
                )?;
                known.insert(name, true);
            }
        }
    }
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests;
