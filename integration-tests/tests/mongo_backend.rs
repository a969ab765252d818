//! `MongoBackend` through the `Backend` trait against the wire-protocol peer.
//!
//! The peer's URI comes from DATA_API_TEST_MONGODB_URI (`bash .ci/peer.sh start`
//! prints it). When the variable is unset the tests fail, unless
//! DATA_API_TEST_NO_PEER=1, which turns the tests that need the peer into
//! no-ops that print SKIPPED. Each test works in a database of its own and
//! drops it at the end.

use std::time::Duration;

use bson::{doc, Bson, Document};
use integration_tests::{peer_uri, unique_db};
use tower_data_api::backend::{
    Backend, BackendErrorKind, CheckedWrite, FindOneQuery, FindQuery, MongoBackend,
    MongoBackendOptions, Namespace, ReplaceQuery, UpdateModifications, UpdateOutcome, UpdateQuery,
    WriteCheck,
};
use tower_data_api::BackendError;

/// A backend on the peer and a namespace in a database no other test uses.
struct Peer {
    uri: String,
    backend: MongoBackend,
    ns: Namespace,
}

impl Peer {
    /// `None` (after printing SKIPPED) only when DATA_API_TEST_NO_PEER=1.
    async fn new(test: &str) -> Option<Self> {
        let uri = peer_uri()?;
        let backend = MongoBackend::connect(&uri, MongoBackendOptions::default())
            .await
            .expect("the peer URI is valid");
        Some(Self {
            uri,
            backend,
            ns: Namespace::new(unique_db(&format!("t_{test}")), "items"),
        })
    }

    /// Another collection in the same database.
    fn sibling(&self, collection: &str) -> Namespace {
        Namespace::new(self.ns.database.clone(), collection)
    }

    async fn insert(&self, documents: Vec<Document>) {
        self.backend
            .insert_many(&self.ns, documents)
            .await
            .expect("seed documents insert");
    }

    async fn all(&self, ns: &Namespace) -> Vec<Document> {
        self.backend
            .find(
                ns,
                FindQuery::new(doc! {})
                    .with_sort(doc! { "_id": 1 })
                    .with_limit(1000),
            )
            .await
            .expect("find all")
    }

    /// The document with `_id` `id`, if any.
    async fn by_id(&self, id: Bson) -> Option<Document> {
        self.backend
            .find_one(&self.ns, FindOneQuery::new(doc! { "_id": id }))
            .await
            .expect("findOne by _id")
    }

    /// `updateOne` with the update operators `change`.
    async fn update_one(
        &self,
        filter: Document,
        change: Document,
        upsert: bool,
    ) -> Result<UpdateOutcome, BackendError> {
        let query = update(filter, operators(change), upsert);
        self.backend.update_one(&self.ns, query).await
    }

    /// `updateMany` with the update operators `change`.
    async fn update_many(
        &self,
        filter: Document,
        change: Document,
        upsert: bool,
    ) -> Result<UpdateOutcome, BackendError> {
        let query = update(filter, operators(change), upsert);
        self.backend.update_many(&self.ns, query).await
    }

    async fn cleanup(self) {
        self.backend
            .client()
            .database(&self.ns.database)
            .drop()
            .await
            .expect("drop the test database");
    }
}

fn operators(update: Document) -> UpdateModifications {
    UpdateModifications::Operators(update)
}

fn update(filter: Document, update: UpdateModifications, upsert: bool) -> UpdateQuery {
    UpdateQuery::new(filter, update).with_upsert(upsert)
}

#[tokio::test]
async fn insert_one_returns_the_stored_id() {
    let Some(peer) = Peer::new("insert_one").await else {
        return;
    };
    let id = peer
        .backend
        .insert_one(&peer.ns, doc! { "name": "a" })
        .await
        .expect("insert without _id");
    assert!(matches!(id, Bson::ObjectId(_)), "generated id: {id:?}");
    let found = peer.by_id(id.clone()).await;
    assert_eq!(found, Some(doc! { "_id": id, "name": "a" }));

    let id = peer
        .backend
        .insert_one(&peer.ns, doc! { "_id": "mine", "name": "b" })
        .await
        .expect("insert with _id");
    assert_eq!(id, Bson::String("mine".into()));
    peer.cleanup().await;
}

#[tokio::test]
async fn find_one_applies_filter_projection_and_sort() {
    let Some(peer) = Peer::new("find_one").await else {
        return;
    };
    peer.insert(vec![
        doc! { "_id": 1, "kind": "x", "n": 5, "secret": true },
        doc! { "_id": 2, "kind": "x", "n": 9, "secret": true },
        doc! { "_id": 3, "kind": "y", "n": 7, "secret": true },
    ])
    .await;
    let found = peer
        .backend
        .find_one(
            &peer.ns,
            FindOneQuery::new(doc! { "kind": "x" })
                .with_projection(doc! { "n": 1 })
                .with_sort(doc! { "n": -1 }),
        )
        .await
        .expect("findOne");
    assert_eq!(found, Some(doc! { "_id": 2, "n": 9 }));

    let none = peer
        .backend
        .find_one(&peer.ns, FindOneQuery::new(doc! { "kind": "z" }))
        .await
        .expect("findOne without a match");
    assert_eq!(none, None);
    peer.cleanup().await;
}

#[tokio::test]
async fn find_applies_sort_skip_limit_and_projection() {
    let Some(peer) = Peer::new("find").await else {
        return;
    };
    peer.insert(
        (1..=10)
            .map(|i| doc! { "_id": i, "n": i % 4, "extra": "x" })
            .collect(),
    )
    .await;
    let found = peer
        .backend
        .find(
            &peer.ns,
            FindQuery::new(doc! { "n": { "$gte": 1 } })
                .with_projection(doc! { "extra": 0 })
                .with_sort(doc! { "n": -1, "_id": 1 })
                .with_skip(1)
                .with_limit(3),
        )
        .await
        .expect("find");
    // n = 3: ids 3, 7; n = 2: ids 2, 6, 10; skip one, take three.
    assert_eq!(
        found,
        vec![
            doc! { "_id": 7, "n": 3 },
            doc! { "_id": 2, "n": 2 },
            doc! { "_id": 6, "n": 2 },
        ]
    );
    peer.cleanup().await;
}

#[tokio::test]
async fn find_collects_more_than_one_batch() {
    let Some(peer) = Peer::new("find_batches").await else {
        return;
    };
    peer.insert((0..250).map(|i| doc! { "_id": i }).collect())
        .await;
    let found = peer
        .backend
        .find(
            &peer.ns,
            FindQuery::new(doc! {})
                .with_sort(doc! { "_id": 1 })
                .with_limit(240),
        )
        .await
        .expect("find");
    assert_eq!(found.len(), 240);
    assert_eq!(found[239], doc! { "_id": 239 });
    peer.cleanup().await;
}

#[tokio::test]
async fn insert_many_returns_ids_in_order() {
    let Some(peer) = Peer::new("insert_many").await else {
        return;
    };
    let ids = peer
        .backend
        .insert_many(
            &peer.ns,
            vec![doc! { "_id": 10 }, doc! { "a": 1 }, doc! { "_id": "z" }],
        )
        .await
        .expect("insertMany");
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], Bson::Int32(10));
    assert!(matches!(ids[1], Bson::ObjectId(_)));
    assert_eq!(ids[2], Bson::String("z".into()));
    let stored = peer.all(&peer.ns).await;
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().any(|d| d.get("_id") == Some(&ids[1])));
    peer.cleanup().await;
}

#[tokio::test]
async fn insert_many_stops_at_the_first_failure() {
    let Some(peer) = Peer::new("insert_many_partial").await else {
        return;
    };
    let err = peer
        .backend
        .insert_many(
            &peer.ns,
            vec![
                doc! { "_id": 1 },
                doc! { "_id": 2 },
                doc! { "_id": 1 },
                doc! { "_id": 4 },
                doc! { "_id": 5 },
            ],
        )
        .await
        .expect_err("the third document repeats an _id");
    assert_eq!(err.kind, BackendErrorKind::DuplicateKey, "{err:?}");
    assert!(err.message.starts_with("E11000"), "{}", err.message);
    assert!(
        err.message
            .ends_with("(2 of 5 documents were inserted before the error)"),
        "{}",
        err.message
    );
    assert_eq!(
        peer.all(&peer.ns).await,
        vec![doc! { "_id": 1 }, doc! { "_id": 2 }]
    );
    peer.cleanup().await;
}

#[tokio::test]
async fn insert_one_duplicate_key() {
    let Some(peer) = Peer::new("duplicate").await else {
        return;
    };
    peer.insert(vec![doc! { "_id": 1 }]).await;
    let err = peer
        .backend
        .insert_one(&peer.ns, doc! { "_id": 1 })
        .await
        .expect_err("duplicate _id");
    assert_eq!(err.kind, BackendErrorKind::DuplicateKey, "{err:?}");
    assert!(err.message.contains("E11000"), "{}", err.message);
    peer.cleanup().await;
}

#[tokio::test]
async fn update_one_and_many() {
    let Some(peer) = Peer::new("update").await else {
        return;
    };
    peer.insert(vec![
        doc! { "_id": 1, "n": 1, "tag": "a" },
        doc! { "_id": 2, "n": 2, "tag": "a" },
        doc! { "_id": 3, "n": 3, "tag": "b" },
    ])
    .await;
    let one = peer
        .update_one(doc! { "tag": "a" }, doc! { "$inc": { "n": 10 } }, false)
        .await
        .expect("updateOne");
    assert_eq!((one.matched_count, one.modified_count), (1, 1));
    assert_eq!(one.upserted_id, None);

    let many = peer
        .update_many(
            doc! { "tag": "a" },
            doc! { "$set": { "seen": true } },
            false,
        )
        .await
        .expect("updateMany");
    assert_eq!((many.matched_count, many.modified_count), (2, 2));
    assert_eq!(many.upserted_id, None);

    // Matching without changing anything.
    let same = peer
        .update_many(
            doc! { "tag": "a" },
            doc! { "$set": { "seen": true } },
            false,
        )
        .await
        .expect("updateMany again");
    assert_eq!((same.matched_count, same.modified_count), (2, 0));

    let none = peer
        .update_one(doc! { "tag": "zzz" }, doc! { "$set": { "x": 1 } }, false)
        .await
        .expect("updateOne without a match");
    assert_eq!((none.matched_count, none.modified_count), (0, 0));
    assert_eq!(none.upserted_id, None);

    let stored = peer.all(&peer.ns).await;
    assert_eq!(
        stored[0],
        doc! { "_id": 1, "n": 11, "tag": "a", "seen": true }
    );
    assert_eq!(
        stored[1],
        doc! { "_id": 2, "n": 2, "tag": "a", "seen": true }
    );
    peer.cleanup().await;
}

#[tokio::test]
async fn update_upserts_only_without_a_match() {
    let Some(peer) = Peer::new("upsert").await else {
        return;
    };
    let inserted = peer
        .update_one(doc! { "_id": 5 }, doc! { "$set": { "n": 1 } }, true)
        .await
        .expect("upsert inserts");
    assert_eq!((inserted.matched_count, inserted.modified_count), (0, 0));
    assert_eq!(inserted.upserted_id, Some(Bson::Int32(5)));

    let matched = peer
        .update_one(doc! { "_id": 5 }, doc! { "$set": { "n": 2 } }, true)
        .await
        .expect("upsert updates");
    assert_eq!((matched.matched_count, matched.modified_count), (1, 1));
    assert_eq!(matched.upserted_id, None);

    // No _id in the filter: the server generates one and reports it.
    let generated = peer
        .update_many(doc! { "k": "new" }, doc! { "$set": { "n": 3 } }, true)
        .await
        .expect("upsert with a generated _id");
    let Some(id) = generated.upserted_id else {
        panic!("an upserted _id: {generated:?}")
    };
    let stored = peer.by_id(id.clone()).await;
    assert_eq!(stored, Some(doc! { "_id": id, "k": "new", "n": 3 }));
    peer.cleanup().await;
}

#[tokio::test]
async fn update_with_a_pipeline() {
    let Some(peer) = Peer::new("update_pipeline").await else {
        return;
    };
    peer.insert(vec![doc! { "_id": 1, "a": 2, "b": 3 }]).await;
    let outcome = peer
        .backend
        .update_one(
            &peer.ns,
            update(
                doc! { "_id": 1 },
                UpdateModifications::Pipeline(vec![
                    doc! { "$set": { "sum": { "$add": ["$a", "$b"] } } },
                    doc! { "$unset": "b" },
                ]),
                false,
            ),
        )
        .await
        .expect("pipeline update");
    assert_eq!((outcome.matched_count, outcome.modified_count), (1, 1));
    assert_eq!(
        peer.all(&peer.ns).await,
        vec![doc! { "_id": 1, "a": 2, "sum": 5 }]
    );
    peer.cleanup().await;
}

#[tokio::test]
async fn update_with_array_filters() {
    let Some(peer) = Peer::new("array_filters").await else {
        return;
    };
    peer.insert(vec![doc! { "_id": 1, "grades": [70, 95, 80, 99] }])
        .await;
    let outcome = peer
        .backend
        .update_one(
            &peer.ns,
            UpdateQuery::new(
                doc! { "_id": 1 },
                operators(doc! { "$set": { "grades.$[high]": 100 } }),
            )
            .with_array_filters(vec![doc! { "high": { "$gte": 90 } }]),
        )
        .await
        .expect("arrayFilters update");
    assert_eq!(outcome.modified_count, 1);
    assert_eq!(
        peer.all(&peer.ns).await,
        vec![doc! { "_id": 1, "grades": [70, 100, 80, 100] }]
    );
    peer.cleanup().await;
}

#[tokio::test]
async fn replace_one_and_upsert() {
    let Some(peer) = Peer::new("replace").await else {
        return;
    };
    peer.insert(vec![doc! { "_id": 1, "a": 1, "b": 2 }]).await;
    let replaced = peer
        .backend
        .replace_one(
            &peer.ns,
            ReplaceQuery::new(doc! { "a": 1 }, doc! { "c": 3 }),
        )
        .await
        .expect("replaceOne");
    assert_eq!((replaced.matched_count, replaced.modified_count), (1, 1));
    assert_eq!(replaced.upserted_id, None);

    let upserted = peer
        .backend
        .replace_one(
            &peer.ns,
            ReplaceQuery::new(doc! { "_id": 2 }, doc! { "d": 4 }).with_upsert(true),
        )
        .await
        .expect("replaceOne upsert");
    assert_eq!(upserted.matched_count, 0);
    assert_eq!(upserted.upserted_id, Some(Bson::Int32(2)));
    assert_eq!(
        peer.all(&peer.ns).await,
        vec![doc! { "_id": 1, "c": 3 }, doc! { "_id": 2, "d": 4 }]
    );
    peer.cleanup().await;
}

#[tokio::test]
async fn delete_one_and_many() {
    let Some(peer) = Peer::new("delete").await else {
        return;
    };
    peer.insert(
        (1..=5)
            .map(|i| doc! { "_id": i, "even": i % 2 == 0 })
            .collect(),
    )
    .await;
    let one = peer
        .backend
        .delete_one(&peer.ns, doc! { "even": false })
        .await
        .expect("deleteOne");
    assert_eq!(one, 1);
    let many = peer
        .backend
        .delete_many(&peer.ns, doc! { "even": false })
        .await
        .expect("deleteMany");
    assert_eq!(many, 2);
    let none = peer
        .backend
        .delete_many(&peer.ns, doc! { "even": "never" })
        .await
        .expect("deleteMany without a match");
    assert_eq!(none, 0);
    assert_eq!(peer.all(&peer.ns).await.len(), 2);
    peer.cleanup().await;
}

#[tokio::test]
async fn aggregate_collects_the_results() {
    let Some(peer) = Peer::new("aggregate").await else {
        return;
    };
    peer.insert(vec![
        doc! { "_id": 1, "k": "a", "n": 1 },
        doc! { "_id": 2, "k": "b", "n": 2 },
        doc! { "_id": 3, "k": "a", "n": 3 },
    ])
    .await;
    let groups = peer
        .backend
        .aggregate(
            &peer.ns,
            vec![
                doc! { "$group": { "_id": "$k", "total": { "$sum": "$n" } } },
                doc! { "$sort": { "_id": 1 } },
            ],
        )
        .await
        .expect("aggregate");
    assert_eq!(
        groups,
        vec![
            doc! { "_id": "a", "total": 4 },
            doc! { "_id": "b", "total": 2 }
        ]
    );

    // A pipeline ending in $out returns nothing and writes the target.
    let out = peer
        .backend
        .aggregate(
            &peer.ns,
            vec![doc! { "$match": { "k": "a" } }, doc! { "$out": "copy" }],
        )
        .await
        .expect("aggregate with $out");
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(peer.all(&peer.sibling("copy")).await.len(), 2);

    // An unknown collection aggregates to nothing.
    let empty = peer
        .backend
        .aggregate(&peer.sibling("missing"), vec![doc! { "$match": {} }])
        .await
        .expect("aggregate on a missing collection");
    assert!(empty.is_empty());
    peer.cleanup().await;
}

#[tokio::test]
async fn request_errors_are_invalid_requests() {
    let Some(peer) = Peer::new("invalid").await else {
        return;
    };
    peer.insert(vec![doc! { "_id": 1, "a": 1 }]).await;
    let backend = &peer.backend;
    let ns = &peer.ns;

    let err = backend
        .find(
            ns,
            FindQuery::new(doc! { "a": { "$bogus": 1 } }).with_limit(10),
        )
        .await
        .expect_err("unknown query operator");
    assert_eq!(err.kind, BackendErrorKind::InvalidRequest, "{err:?}");
    assert!(err.message.contains("$bogus"), "{}", err.message);

    let err = peer
        .update_one(doc! { "_id": 1 }, doc! { "$bogus": { "a": 2 } }, false)
        .await
        .expect_err("unknown update operator");
    assert_eq!(err.kind, BackendErrorKind::InvalidRequest, "{err:?}");

    let err = peer
        .update_one(doc! { "_id": 1 }, doc! { "a": 2 }, false)
        .await
        .expect_err("update without operators");
    assert_eq!(err.kind, BackendErrorKind::InvalidRequest, "{err:?}");

    let err = peer
        .update_one(doc! { "_id": 1 }, doc! { "$set": { "_id": 2 } }, false)
        .await
        .expect_err("changing _id");
    assert_eq!(err.kind, BackendErrorKind::InvalidRequest, "{err:?}");

    let err = backend
        .replace_one(
            ns,
            ReplaceQuery::new(doc! { "_id": 1 }, doc! { "$set": { "a": 1 } }),
        )
        .await
        .expect_err("replacement with operators");
    assert_eq!(err.kind, BackendErrorKind::InvalidRequest, "{err:?}");

    let err = backend
        .aggregate(ns, vec![doc! { "$bogusStage": {} }])
        .await
        .expect_err("unknown stage");
    assert_eq!(err.kind, BackendErrorKind::InvalidRequest, "{err:?}");

    // Atlas Search exists only on Atlas: the server says so.
    let err = backend
        .aggregate(
            ns,
            vec![doc! { "$search": { "text": { "query": "a", "path": "a" } } }],
        )
        .await
        .expect_err("$search off Atlas");
    assert_eq!(err.kind, BackendErrorKind::Unsupported, "{err:?}");

    // Nothing changed.
    assert_eq!(peer.all(ns).await, vec![doc! { "_id": 1, "a": 1 }]);
    peer.cleanup().await;
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    // Needs no peer: nothing listens on port 1.
    let options =
        MongoBackendOptions::default().with_server_selection_timeout(Duration::from_millis(500));
    let backend = MongoBackend::connect(
        "mongodb://user:hunter2@127.0.0.1:1/?directConnection=true",
        options,
    )
    .await
    .expect("a lazy client is created without a server");
    let err = backend
        .find_one(&Namespace::new("db", "c"), FindOneQuery::default())
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(err.kind, BackendErrorKind::Unavailable, "{err:?}");
    assert_eq!(err.message, "the data source is unavailable");
    for leak in ["127.0.0.1", "hunter2", "user", "mongodb://"] {
        assert!(!err.message.contains(leak), "{}", err.message);
    }
}

#[tokio::test]
async fn bad_connection_string_does_not_echo_it() {
    for uri in [
        "mongodb://user:hunter2@host:notaport/",
        "postgres://user:hunter2@host/",
        "mongodb://user:hunter2@host/?serverSelectionTimeoutMS=oops",
    ] {
        let err = MongoBackend::connect(uri, MongoBackendOptions::default())
            .await
            .expect_err("the URI is malformed");
        assert_eq!(err.kind, BackendErrorKind::InvalidRequest, "{err:?}");
        for leak in ["hunter2", "user", "host"] {
            assert!(!err.message.contains(leak), "{uri}: {}", err.message);
        }
    }
}

#[tokio::test]
async fn clones_share_the_client() {
    let Some(peer) = Peer::new("clone").await else {
        return;
    };
    let clone = peer.backend.clone();
    let ns = peer.ns.clone();
    let task = tokio::spawn(async move { clone.insert_one(&ns, doc! { "_id": 1 }).await });
    task.await.expect("task").expect("insert through a clone");
    assert_eq!(peer.all(&peer.ns).await, vec![doc! { "_id": 1 }]);
    peer.cleanup().await;
}

#[tokio::test]
async fn document_validation_failure() {
    let Some(peer) = Peer::new("validation").await else {
        return;
    };
    peer.backend
        .client()
        .database(&peer.ns.database)
        .create_collection(&peer.ns.collection)
        .validator(doc! { "$jsonSchema": { "required": ["name"] } })
        .await
        .expect("create a collection with a validator");
    let err = peer
        .backend
        .insert_one(&peer.ns, doc! { "other": 1 })
        .await
        .expect_err("the document has no name");
    assert_eq!(err.kind, BackendErrorKind::DocumentValidation, "{err:?}");
    assert!(err.message.contains("validation"), "{}", err.message);
    peer.cleanup().await;
}

#[tokio::test]
async fn max_time_is_a_timeout() {
    let Some(peer) = Peer::new("max_time").await else {
        return;
    };
    peer.insert(
        (0..20_000)
            .map(|i| doc! { "i": i, "s": "xxxxxxxxxxxxxxxx" })
            .collect(),
    )
    .await;
    let limited = peer
        .backend
        .clone()
        .with_max_time(Some(Duration::from_millis(1)));
    let err = limited
        .aggregate(
            &peer.ns,
            vec![doc! { "$group": { "_id": { "$mod": ["$i", 7] }, "n": { "$sum": 1 } } }],
        )
        .await
        .expect_err("1 ms is not enough to group 20,000 documents");
    assert_eq!(err.kind, BackendErrorKind::Timeout, "{err:?}");
    assert_eq!(err.message, "the data source did not answer in time");
    peer.cleanup().await;
}

#[tokio::test]
async fn unencodable_documents_are_invalid_requests() {
    let Some(peer) = Peer::new("unencodable").await else {
        return;
    };
    let mut nul_key = Document::new();
    nul_key.insert("a\0b", 1);
    let err = peer
        .backend
        .find_one(&peer.ns, FindOneQuery::new(nul_key.clone()))
        .await
        .expect_err("a NUL byte in a field name");
    assert_eq!(err.kind, BackendErrorKind::InvalidRequest, "{err:?}");
    let err = peer
        .backend
        .insert_many(&peer.ns, vec![doc! { "_id": 1 }, nul_key])
        .await
        .expect_err("a NUL byte in a field name");
    assert_eq!(err.kind, BackendErrorKind::InvalidRequest, "{err:?}");
    // Nothing was sent: the first document is not stored either.
    assert!(peer.all(&peer.ns).await.is_empty());

    // A skip beyond i64::MAX is clamped, not refused.
    peer.insert(vec![doc! { "_id": 1 }]).await;
    let found = peer
        .backend
        .find(
            &peer.ns,
            FindQuery::new(doc! {}).with_skip(u64::MAX).with_limit(10),
        )
        .await
        .expect("a huge skip");
    assert!(found.is_empty());
    peer.cleanup().await;
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

#[tokio::test]
async fn logs_never_contain_the_password() {
    // Needs no peer. `#[tokio::test]` runs on the current thread, so the
    // thread-local subscriber sees every event.
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    for uri in [
        "mongodb://alice:hunter2@host:notaport/",
        "mongodb://alice:hun/ter2@host/",
        "mongodb://alice:hunter2@[::1/",
    ] {
        let err = MongoBackend::connect(uri, MongoBackendOptions::default())
            .await
            .expect_err("malformed");
        assert!(!err.message.contains("hunter2") && !err.message.contains("hun/ter2"));
    }
    let options =
        MongoBackendOptions::default().with_server_selection_timeout(Duration::from_millis(300));
    let backend = MongoBackend::connect("mongodb://alice:hunter2@127.0.0.1:1/", options)
        .await
        .expect("a lazy client");
    let err = backend
        .delete_one(&Namespace::new("db", "c"), doc! {})
        .await
        .expect_err("unreachable");
    assert_eq!(err.kind, BackendErrorKind::Unavailable, "{err:?}");

    let text = logs.text();
    assert!(text.contains("invalid MongoDB connection string"), "{text}");
    assert!(text.contains("MongoDB operation failed"), "{text}");
    for secret in ["hunter2", "hun/ter2", "ter2"] {
        assert!(!text.contains(secret), "{secret} in logs:\n{text}");
    }
}

/// Records what a checked write shows its check and refuses documents whose
/// `n` is negative.
#[derive(Default)]
struct Recorder {
    seen: std::sync::Mutex<Vec<(Option<Document>, Document)>>,
}

impl WriteCheck for Recorder {
    fn check(&self, before: Option<&Document>, after: &Document) -> Result<(), BackendError> {
        if let Ok(seen) = self.seen.lock().as_mut() {
            seen.push((before.cloned(), after.clone()));
        }
        match after.get_i32("n") {
            Ok(n) if n < 0 => Err(BackendError::new(
                BackendErrorKind::DocumentValidation,
                format!("n is negative in {after}"),
            )),
            _ => Ok(()),
        }
    }
}

impl Recorder {
    /// What the check saw since the last call, sorted by the new `_id`.
    fn take(&self) -> Vec<(Option<Document>, Document)> {
        let mut seen = std::mem::take(&mut *self.seen.lock().expect("lock"));
        seen.sort_by_key(|(_, after)| after.get_i32("_id").unwrap_or_default());
        seen
    }
}

/// `write_checked`: the check sees each stored pre-image and the exact
/// post-image, unchanged documents are not checked, upserts have no
/// pre-image, and one refusal leaves every document as it was.
async fn checked_writes(backend: &dyn Backend, ns: &Namespace) {
    backend
        .insert_many(
            ns,
            vec![
                doc! {"_id": 1, "n": 1},
                doc! {"_id": 2, "n": 0},
                doc! {"_id": 3, "n": 5},
            ],
        )
        .await
        .expect("seed");
    let check = Recorder::default();
    let all = || async {
        backend
            .find(
                ns,
                FindQuery::new(doc! {})
                    .with_sort(doc! {"_id": 1})
                    .with_limit(100),
            )
            .await
            .expect("find")
    };
    let many = |filter: Document, change: Document| {
        CheckedWrite::UpdateMany(update(filter, operators(change), false))
    };

    // `$max` leaves _id 3 unchanged: only 1 and 2 are checked.
    let outcome = backend
        .write_checked(ns, many(doc! {}, doc! {"$max": {"n": 2}}), &check)
        .await
        .expect("checked updateMany");
    assert_eq!((outcome.matched_count, outcome.modified_count), (3, 2));
    assert_eq!(
        check.take(),
        vec![
            (Some(doc! {"_id": 1, "n": 1}), doc! {"_id": 1, "n": 2}),
            (Some(doc! {"_id": 2, "n": 0}), doc! {"_id": 2, "n": 2}),
        ]
    );

    // One negative post-image: refused with the check's own error, nothing changes.
    let err = backend
        .write_checked(ns, many(doc! {}, doc! {"$inc": {"n": -3}}), &check)
        .await
        .expect_err("refused");
    assert_eq!(err.kind, BackendErrorKind::DocumentValidation);
    assert!(err.message.starts_with("n is negative"), "{}", err.message);
    let seen = check.take();
    assert_eq!(
        seen.first(),
        Some(&(Some(doc! {"_id": 1, "n": 2}), doc! {"_id": 1, "n": -1})),
        "the check stops the write at the first refusal"
    );
    let before = vec![
        doc! {"_id": 1, "n": 2},
        doc! {"_id": 2, "n": 2},
        doc! {"_id": 3, "n": 5},
    ];
    assert_eq!(all().await, before);

    // updateOne and replaceOne check one document; an upsert has no pre-image.
    let one = CheckedWrite::UpdateOne(update(
        doc! {"_id": 3},
        operators(doc! {"$inc": {"n": -1}}),
        false,
    ));
    backend
        .write_checked(ns, one, &check)
        .await
        .expect("updateOne");
    let replace = CheckedWrite::ReplaceOne(ReplaceQuery::new(
        doc! {"_id": 2},
        doc! {"n": 7, "tag": "r"},
    ));
    backend
        .write_checked(ns, replace, &check)
        .await
        .expect("replaceOne");
    let upsert = CheckedWrite::UpdateOne(update(
        doc! {"_id": 9},
        operators(doc! {"$set": {"n": 4}}),
        true,
    ));
    let outcome = backend
        .write_checked(ns, upsert, &check)
        .await
        .expect("upsert");
    assert_eq!(outcome.upserted_id, Some(Bson::Int32(9)));
    assert_eq!(
        check.take(),
        vec![
            (
                Some(doc! {"_id": 2, "n": 2}),
                doc! {"_id": 2, "n": 7, "tag": "r"}
            ),
            (Some(doc! {"_id": 3, "n": 5}), doc! {"_id": 3, "n": 4}),
            (None, doc! {"_id": 9, "n": 4}),
        ]
    );

    // A refused upsert inserts nothing.
    let upsert = CheckedWrite::UpdateOne(update(
        doc! {"_id": 10},
        operators(doc! {"$set": {"n": -1}}),
        true,
    ));
    assert!(backend.write_checked(ns, upsert, &check).await.is_err());
    let replace = CheckedWrite::ReplaceOne(ReplaceQuery::new(doc! {"_id": 1}, doc! {"n": -5}));
    assert!(backend.write_checked(ns, replace, &check).await.is_err());
    assert_eq!(
        all().await,
        vec![
            doc! {"_id": 1, "n": 2},
            doc! {"_id": 2, "n": 7, "tag": "r"},
            doc! {"_id": 3, "n": 4},
            doc! {"_id": 9, "n": 4},
        ]
    );
}

#[tokio::test]
async fn write_checked_runs_the_check_in_a_transaction() {
    let Some(peer) = Peer::new("checked").await else {
        return;
    };
    checked_writes(&peer.backend, &peer.ns).await;
    peer.cleanup().await;
}

#[tokio::test]
async fn write_checked_on_the_embedded_engine() {
    let backend = tower_data_api::MemoryBackend::new();
    checked_writes(&backend, &Namespace::new("db", "items")).await;
}

#[tokio::test]
async fn checked_update_many_is_capped() {
    let Some(peer) = Peer::new("capped").await else {
        return;
    };
    let capped = MongoBackend::connect(
        &peer.uri,
        MongoBackendOptions::default().with_max_checked_documents(2),
    )
    .await
    .expect("connect");
    peer.insert(vec![doc! {"_id": 1}, doc! {"_id": 2}, doc! {"_id": 3}])
        .await;
    let all = CheckedWrite::UpdateMany(update(doc! {}, operators(doc! {"$set": {"n": 1}}), false));
    let err = capped
        .write_checked(&peer.ns, all, &Recorder::default())
        .await
        .expect_err("more than the cap");
    assert_eq!(err.kind, BackendErrorKind::InvalidRequest);
    assert!(
        err.message.contains("more than 2 documents"),
        "{}",
        err.message
    );
    let two = CheckedWrite::UpdateMany(update(
        doc! {"_id": {"$lte": 2}},
        operators(doc! {"$set": {"n": 1}}),
        false,
    ));
    let outcome = capped
        .write_checked(&peer.ns, two, &Recorder::default())
        .await
        .expect("within the cap");
    assert_eq!(outcome.modified_count, 2);
    assert_eq!(
        peer.all(&peer.ns).await,
        vec![
            doc! {"_id": 1, "n": 1},
            doc! {"_id": 2, "n": 1},
            doc! {"_id": 3}
        ]
    );
    peer.cleanup().await;
}
