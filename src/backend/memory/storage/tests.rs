//! The durable mode: what is acknowledged is on disk, what failed is
//! nowhere, and a reopened backend holds exactly what was acknowledged.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bson::{doc, Bson, Document};

use super::super::MemoryBackend;
use crate::backend::{
    Backend, BackendErrorKind, FindOneQuery, FindQuery, IndexSpec, Namespace, UpdateModifications,
    UpdateQuery,
};

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tda-storage-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ns() -> Namespace {
    Namespace::new("db", "items")
}

async fn all(b: &MemoryBackend, ns: &Namespace) -> Vec<Document> {
    b.find(
        ns,
        FindQuery {
            filter: doc! {},
            projection: None,
            sort: None,
            skip: 0,
            limit: 0,
        },
    )
    .await
    .expect("find")
}

fn set(filter: Document, update: Document) -> UpdateQuery {
    UpdateQuery {
        filter,
        update: UpdateModifications::Operators(update),
        upsert: false,
        array_filters: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_path_survives_a_reopen() {
    let dir = TempDir::new();
    let expected = {
        let b = MemoryBackend::open(&dir.0).expect("open");
        b.insert_one(&ns(), doc! {"_id": 1, "n": 1}).await.unwrap();
        b.insert_many(
            &ns(),
            vec![
                doc! {"_id": 2, "n": 2},
                doc! {"_id": 3, "n": 3},
                doc! {"_id": 4, "n": 4},
            ],
        )
        .await
        .unwrap();
        b.update_many(
            &ns(),
            set(doc! {"n": {"$gte": 3}}, doc! {"$inc": {"n": 10}}),
        )
        .await
        .unwrap();
        let mut upsert = set(doc! {"_id": 9}, doc! {"$set": {"u": true}});
        upsert.upsert = true;
        b.update_one(&ns(), upsert).await.unwrap();
        b.update_one(
            &ns(),
            UpdateQuery {
                filter: doc! {"_id": 1},
                update: UpdateModifications::Pipeline(vec![
                    doc! {"$set": {"p": {"$add": ["$n", 1]}}},
                ]),
                upsert: false,
                array_filters: None,
            },
        )
        .await
        .unwrap();
        b.replace_one(
            &ns(),
            crate::backend::ReplaceQuery {
                filter: doc! {"_id": 2},
                replacement: doc! {"r": "x"},
                upsert: false,
            },
        )
        .await
        .unwrap();
        b.delete_one(&ns(), doc! {"_id": 4}).await.unwrap();
        // Ordered insertMany stopping at a duplicate keeps what it reported.
        let err = b
            .insert_many(
                &ns(),
                vec![doc! {"_id": 5}, doc! {"_id": 1}, doc! {"_id": 6}],
            )
            .await
            .unwrap_err();
        assert!(
            err.message.contains("1 of 3 documents were inserted"),
            "{}",
            err.message
        );
        // $out replaces a collection, $merge writes into one.
        b.aggregate(
            &ns(),
            vec![doc! {"$match": {"n": {"$gt": 1}}}, doc! {"$out": "copy"}],
        )
        .await
        .unwrap();
        b.aggregate(
            &ns(),
            vec![
                doc! {"$match": {"_id": 1}},
                doc! {"$merge": {"into": "merged"}},
            ],
        )
        .await
        .unwrap();
        b.insert_one(&Namespace::new("db", "gone"), doc! {"_id": 1})
            .await
            .unwrap();
        assert_eq!(b.drop_collection(&Namespace::new("db", "gone")), Ok(true));
        let stats = b.storage_stats().expect("durable");
        assert!(stats.transactions >= 1 && stats.writes >= stats.transactions);
        (
            all(&b, &ns()).await,
            all(&b, &Namespace::new("db", "copy")).await,
            all(&b, &Namespace::new("db", "merged")).await,
        )
    };
    let b = MemoryBackend::open(&dir.0).expect("reopen");
    let info = b.storage_info().expect("durable").clone();
    assert_eq!(info.directory, dir.0);
    assert_eq!(info.collections, 3);
    assert_eq!(all(&b, &ns()).await, expected.0);
    assert_eq!(all(&b, &Namespace::new("db", "copy")).await, expected.1);
    assert_eq!(all(&b, &Namespace::new("db", "merged")).await, expected.2);
    assert_eq!(b.collection_names("db"), vec!["copy", "items", "merged"]);
    // Natural order and contents, exactly.
    let ids: Vec<Bson> = expected
        .0
        .iter()
        .map(|d| d.get("_id").cloned().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            Bson::Int32(1),
            Bson::Int32(2),
            Bson::Int32(3),
            Bson::Int32(9),
            Bson::Int32(5)
        ]
    );
    assert_eq!(expected.0[1], doc! {"_id": 2, "r": "x"});
    assert_eq!(expected.0[0], doc! {"_id": 1, "n": 1, "p": 2});
    // New documents after a reopen go after the loaded ones.
    b.insert_one(&ns(), doc! {"_id": 7}).await.unwrap();
    let after = all(&b, &ns()).await;
    assert_eq!(after.last(), Some(&doc! {"_id": 7}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The test holds the committer's gate on purpose while writers run.
#[allow(clippy::await_holding_lock)]
async fn a_write_is_visible_only_once_committed() {
    let dir = TempDir::new();
    let b = MemoryBackend::open(&dir.0).expect("open");
    let storage = b.storage.clone().expect("durable");
    let gate = storage.shared.gate.lock().unwrap();
    let writer = {
        let b = b.clone();
        tokio::spawn(async move { b.insert_one(&ns(), doc! {"_id": 1}).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!writer.is_finished(), "acknowledged before the commit");
    assert!(all(&b, &ns()).await.is_empty(), "visible before the commit");
    drop(gate);
    writer.await.unwrap().unwrap();
    assert_eq!(all(&b, &ns()).await, vec![doc! {"_id": 1}]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_publishes_nothing_and_reads_go_on() {
    let dir = TempDir::new();
    {
        let b = MemoryBackend::open(&dir.0).expect("open");
        b.insert_one(&ns(), doc! {"_id": 1, "n": 0}).await.unwrap();
        b.fail_commits(true);
        let err = b.insert_one(&ns(), doc! {"_id": 2}).await.unwrap_err();
        assert_eq!(err.kind, BackendErrorKind::Unavailable);
        let err = b
            .update_one(&ns(), set(doc! {"_id": 1}, doc! {"$inc": {"n": 1}}))
            .await
            .unwrap_err();
        assert_eq!(err.kind, BackendErrorKind::Unavailable);
        assert!(b.delete_many(&ns(), doc! {}).await.is_err());
        assert!(b.drop_collection(&ns()).is_err());
        // Reads keep working and see the last committed state.
        assert_eq!(all(&b, &ns()).await, vec![doc! {"_id": 1, "n": 0}]);
        let one = b
            .find_one(
                &ns(),
                FindOneQuery {
                    filter: doc! {"_id": 1},
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(one, Some(doc! {"_id": 1, "n": 0}));
        // Once the disk works again, writes start from the committed state.
        b.fail_commits(false);
        b.insert_one(&ns(), doc! {"_id": 2}).await.unwrap();
        b.update_one(&ns(), set(doc! {"_id": 1}, doc! {"$inc": {"n": 1}}))
            .await
            .unwrap();
        assert_eq!(
            all(&b, &ns()).await,
            vec![doc! {"_id": 1, "n": 1}, doc! {"_id": 2}]
        );
    }
    let b = MemoryBackend::open(&dir.0).expect("reopen");
    assert_eq!(
        all(&b, &ns()).await,
        vec![doc! {"_id": 1, "n": 1}, doc! {"_id": 2}]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The test holds the committer's gate on purpose while writers run.
#[allow(clippy::await_holding_lock)]
async fn writes_built_on_a_failed_commit_fail_too() {
    let dir = TempDir::new();
    let b = MemoryBackend::open(&dir.0).expect("open");
    let storage = b.storage.clone().expect("durable");
    b.fail_commits(true);
    // Hold the committer so that several writes pile up on one another.
    let gate = storage.shared.gate.lock().unwrap();
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let b = b.clone();
            tokio::spawn(async move { b.insert_one(&ns(), doc! {"_id": i}).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(gate);
    for w in writers {
        assert!(w.await.unwrap().is_err());
    }
    b.fail_commits(false);
    assert!(all(&b, &ns()).await.is_empty());
    b.insert_one(&ns(), doc! {"_id": 100}).await.unwrap();
    assert_eq!(all(&b, &ns()).await, vec![doc! {"_id": 100}]);
    // The committer ends (and the directory is released) with the last sender.
    drop(storage);
    drop(b);
    let b = MemoryBackend::open(&dir.0).expect("reopen");
    assert_eq!(all(&b, &ns()).await, vec![doc! {"_id": 100}]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits() {
    let dir = TempDir::new();
    let b = MemoryBackend::open(&dir.0).expect("open");
    let writers: Vec<_> = (0..16)
        .map(|t| {
            let b = b.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    b.insert_one(&ns(), doc! {"_id": t * 100 + i})
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let stats = b.storage_stats().unwrap();
    assert_eq!(stats.writes, 400);
    assert!(
        stats.transactions < stats.writes,
        "no group commit: {stats:?}"
    );
    assert_eq!(b.count(&ns()), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_indexes_cover_loaded_documents() {
    let dir = TempDir::new();
    {
        let b = MemoryBackend::open(&dir.0).expect("open");
        b.insert_many(
            &ns(),
            vec![doc! {"_id": 1, "email": "a"}, doc! {"_id": 2, "email": "b"}],
        )
        .await
        .unwrap();
    }
    let spec = IndexSpec::new([("email", 1)]).unwrap().unique(true);
    let b = MemoryBackend::open(&dir.0)
        .expect("reopen")
        .with_index("db", "items", spec);
    assert_eq!(b.index_specs(&ns()).len(), 1);
    let err = b
        .insert_one(&ns(), doc! {"_id": 3, "email": "a"})
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::DuplicateKey);
    let found = b
        .find_one(
            &ns(),
            FindOneQuery {
                filter: doc! {"email": "b"},
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found, Some(doc! {"_id": 2, "email": "b"}));
}

#[test]
fn a_directory_in_use_is_refused_with_its_path() {
    let dir = TempDir::new();
    let _first = MemoryBackend::open(&dir.0).expect("open");
    let err = MemoryBackend::open(&dir.0).unwrap_err();
    assert!(err.0.contains(&dir.0.display().to_string()), "{err}");
    assert!(err.0.contains("in use by another process"), "{err}");
}

#[test]
fn a_closed_backend_releases_its_directory() {
    let dir = TempDir::new();
    drop(MemoryBackend::open(&dir.0).expect("open"));
    MemoryBackend::open(&dir.0).expect("reopen after close");
}

#[test]
fn a_corrupt_file_is_refused_with_its_path() {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join("data.redb");
    std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
    let err = MemoryBackend::open(&dir.0).unwrap_err();
    assert!(err.0.contains(&path.display().to_string()), "{err}");
}

#[test]
fn a_file_from_a_newer_release_is_refused() {
    let dir = TempDir::new();
    drop(MemoryBackend::open(&dir.0).expect("open"));
    {
        let db = redb::Database::create(dir.0.join("data.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(super::META)
            .unwrap()
            .insert("format", 99)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = MemoryBackend::open(&dir.0).unwrap_err();
    assert!(err.0.contains("newer release"), "{err}");
    assert!(err.0.contains(&dir.0.display().to_string()), "{err}");
}

#[test]
fn a_path_that_is_a_file_is_refused() {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("plain");
    std::fs::write(&file, b"x").unwrap();
    let err = MemoryBackend::open(&file).unwrap_err();
    assert!(err.0.contains(&file.display().to_string()), "{err}");
}
