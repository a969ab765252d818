//! Pipeline tests with a scripted backend: routing, limits, authentication,
//! formats, access levels and logging, independent of any real engine.
//!
//! [`Scripted`], [`Answer`] and [`send`] are shared with the authentication
//! tests (`auth::tests`).
//!
//! On the embedded engine, `rules` and `schema` run App Services rules and
//! schema validation through the whole service (`test_support` builds it).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bson::{doc, oid::ObjectId, Bson, Document};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};

use crate::backend::*;
use crate::log::MemoryLogSink;
use crate::{AccessLevel, DataApi, DataApiService};

/// Answers every action with fixed data; `delay` makes it slow.
#[derive(Default)]
pub(crate) struct Scripted {
    pub(crate) delay: Option<Duration>,
    /// `ping` fails (after `delay`, when set).
    pub(crate) down: bool,
    /// `find` and `aggregate` answer this many documents of about 1 KiB.
    pub(crate) kib_documents: usize,
}

impl Scripted {
    fn kib_documents(&self) -> Option<Vec<Document>> {
        (self.kib_documents > 0).then(|| {
            (0..self.kib_documents)
                .map(|i| doc! {"_id": i as i64, "pad": "x".repeat(1000)})
                .collect()
        })
    }
}

#[async_trait]
impl Backend for Scripted {
    async fn find_one(
        &self,
        _: &Namespace,
        q: FindOneQuery,
    ) -> Result<Option<Document>, BackendError> {
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        Ok((!q.filter.contains_key("missing")).then(|| doc! {"_id": 1, "echo": q.filter}))
    }
    async fn find(&self, _: &Namespace, q: FindQuery) -> Result<Vec<Document>, BackendError> {
        Ok(self
            .kib_documents()
            .unwrap_or_else(|| vec![doc! {"limit": q.limit as i64, "skip": q.skip as i64}]))
    }
    async fn insert_one(&self, _: &Namespace, d: Document) -> Result<Bson, BackendError> {
        if d.contains_key("dup") {
            return Err(BackendError::new(
                BackendErrorKind::DuplicateKey,
                "E11000 duplicate key",
            ));
        }
        Ok(Bson::ObjectId(
            ObjectId::parse_str("64224f3cd79f54ad342dd9b1").unwrap(),
        ))
    }
    async fn insert_many(
        &self,
        _: &Namespace,
        d: Vec<Document>,
    ) -> Result<Vec<Bson>, BackendError> {
        Ok((0..d.len() as i32).map(Bson::Int32).collect())
    }
    async fn update_one(
        &self,
        _: &Namespace,
        q: UpdateQuery,
    ) -> Result<UpdateOutcome, BackendError> {
        Ok(UpdateOutcome {
            matched_count: 0,
            modified_count: 0,
            upserted_id: q.upsert.then_some(Bson::Int32(7)),
        })
    }
    async fn update_many(
        &self,
        _: &Namespace,
        _: UpdateQuery,
    ) -> Result<UpdateOutcome, BackendError> {
        Err(BackendError::new(
            BackendErrorKind::Unavailable,
            "db1.internal:27017 refused",
        ))
    }
    async fn replace_one(
        &self,
        _: &Namespace,
        _: ReplaceQuery,
    ) -> Result<UpdateOutcome, BackendError> {
        Ok(UpdateOutcome {
            matched_count: 1,
            modified_count: 1,
            upserted_id: None,
        })
    }
    async fn delete_one(&self, _: &Namespace, _: Document) -> Result<u64, BackendError> {
        Ok(1)
    }
    async fn delete_many(&self, _: &Namespace, _: Document) -> Result<u64, BackendError> {
        Ok(5)
    }
    async fn aggregate(
        &self,
        _: &Namespace,
        p: Vec<Document>,
    ) -> Result<Vec<Document>, BackendError> {
        Ok(self
            .kib_documents()
            .unwrap_or_else(|| vec![doc! {"stages": p.len() as i32}]))
    }
    async fn ping(&self) -> Result<(), BackendError> {
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        if self.down {
            return Err(BackendError::new(
                BackendErrorKind::Unavailable,
                "the data source is unavailable",
            ));
        }
        Ok(())
    }
}

const KEY: &str = "test-key-0123456789";
const BASE: &str = "/app/data-test/endpoint/data/v1/action";
const COMMON: &str = r#""dataSource":"mongodb-atlas","database":"db","collection":"c""#;

fn service_with(backend: Scripted, sink: MemoryLogSink) -> DataApiService {
    DataApi::builder()
        .app_id("data-test")
        .data_source("mongodb-atlas", backend)
        .data_source_with_access("ro", Arc::new(Scripted::default()), AccessLevel::ReadOnly)
        .data_source_with_access("none", Arc::new(Scripted::default()), AccessLevel::NoAccess)
        .api_key("ci", KEY)
        // Short, for the timeout test, but far above what a request takes
        // on a loaded machine with every test running at once.
        .request_timeout(Duration::from_secs(2))
        .max_body_bytes(1024)
        .log_sink(sink)
        .build()
        .unwrap()
}

fn service() -> DataApiService {
    service_with(Scripted::default(), MemoryLogSink::new(16))
}

/// A response, its body read as text.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: String,
}

impl Answer {
    /// The body as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// Asserts a 200, showing the body when it is not.
    pub(crate) fn assert_ok(&self) {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
    }

    /// Asserts the Data API error shape with this status, code and message.
    pub(crate) fn error(&self, status: u16, code: &str, message: &str) {
        self.refused(status, code);
        assert_eq!(self.json()["error"], message, "{}", self.body);
    }

    /// Asserts the Data API error shape with this status and code.
    pub(crate) fn refused(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        let body = self.json();
        assert_eq!(body["error_code"], code, "{}", self.body);
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["error", "error_code", "link"], "{}", self.body);
    }
}

/// Sends one request through the service and reads the whole answer.
pub(crate) async fn send<B>(service: &DataApiService, request: Request<B>) -> Answer
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let response = service.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn post(action: &str) -> http::request::Builder {
    Request::post(format!("{BASE}/{action}")).header("apiKey", KEY)
}

async fn call(action: &str, body: &str) -> Answer {
    let request = post(action)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    send(&service(), request).await
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn every_action_answers_with_its_wrapper() {
    let cases = [
        (
            "findOne",
            format!(r#"{{{COMMON},"filter":{{"a":1}}}}"#),
            200,
            r#"{"document":{"_id":1,"echo":{"a":1}}}"#,
        ),
        (
            "findOne",
            format!(r#"{{{COMMON},"filter":{{"missing":1}}}}"#),
            200,
            r#"{"document":null}"#,
        ),
        (
            "find",
            format!(r#"{{{COMMON}}}"#),
            200,
            r#"{"documents":[{"limit":1000,"skip":0}]}"#,
        ),
        (
            "insertOne",
            format!(r#"{{{COMMON},"document":{{"a":1}}}}"#),
            201,
            r#"{"insertedId":"64224f3cd79f54ad342dd9b1"}"#,
        ),
        (
            "insertMany",
            format!(r#"{{{COMMON},"documents":[{{}},{{}}]}}"#),
            201,
            r#"{"insertedIds":[0,1]}"#,
        ),
        (
            "updateOne",
            format!(r#"{{{COMMON},"filter":{{}},"update":{{"$set":{{"a":1}}}},"upsert":true}}"#),
            200,
            r#"{"matchedCount":0,"modifiedCount":0,"upsertedId":7}"#,
        ),
        (
            "updateOne",
            format!(r#"{{{COMMON},"filter":{{}},"update":{{"$set":{{"a":1}}}}}}"#),
            200,
            r#"{"matchedCount":0,"modifiedCount":0}"#,
        ),
        (
            "replaceOne",
            format!(r#"{{{COMMON},"filter":{{}},"replacement":{{"a":1}}}}"#),
            200,
            r#"{"matchedCount":1,"modifiedCount":1}"#,
        ),
        (
            "deleteOne",
            format!(r#"{{{COMMON},"filter":{{}}}}"#),
            200,
            r#"{"deletedCount":1}"#,
        ),
        (
            "deleteMany",
            format!(r#"{{{COMMON},"filter":{{}}}}"#),
            200,
            r#"{"deletedCount":5}"#,
        ),
        (
            "aggregate",
            format!(r#"{{{COMMON},"pipeline":[{{"$match":{{}}}}]}}"#),
            200,
            r#"{"documents":[{"stages":1}]}"#,
        ),
    ];
    for (action, body, status, expected) in cases {
        let answer = call(action, &body).await;
        assert_eq!(answer.status.as_u16(), status, "{action}: {}", answer.body);
        assert_eq!(answer.body, expected, "{action}");
        assert_eq!(answer.headers["content-type"], "application/json");
        assert_eq!(answer.headers["x-request-id"].len(), 24);
    }
}

#[tokio::test]
async fn accept_chooses_ejson_and_counts_become_canonical() {
    let request = post("deleteMany")
        .header("Accept", "application/ejson")
        .body(Full::new(Bytes::from(format!(
            r#"{{{COMMON},"filter":{{}}}}"#
        ))))
        .unwrap();
    let answer = send(&service(), request).await;
    assert_eq!(answer.body, r#"{"deletedCount":{"$numberInt":"5"}}"#);
    assert_eq!(answer.headers["content-type"], "application/ejson");
}

#[tokio::test]
async fn routing_errors() {
    let svc = service();
    let request = |method: &str, uri: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("apiKey", KEY)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let unknown_app = send(
        &svc,
        request("POST", "/app/other/endpoint/data/v1/action/find"),
    )
    .await;
    assert_eq!(unknown_app.status, StatusCode::NOT_FOUND);
    assert_eq!(
        json(&unknown_app.body)["error"],
        "cannot find app using Client App ID 'other'"
    );
    for uri in [
        format!("{BASE}/findAll"),
        "/app/data-test/endpoint/data/v2/action/find".to_owned(),
        "/elsewhere".to_owned(),
    ] {
        let answer = send(&svc, request("POST", &uri)).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(json(&answer.body)["error_code"], "NotFound");
    }
    let get = send(&svc, request("GET", &format!("{BASE}/find"))).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.headers["allow"], "POST");
    let beta_only = DataApi::builder()
        .app_id("data-test")
        .versions([crate::Version::Beta])
        .data_source("mongodb-atlas", Scripted::default())
        .api_key("ci", KEY)
        .build()
        .unwrap();
    let v1 = send(&beta_only, request("POST", &format!("{BASE}/find"))).await;
    assert_eq!(v1.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn authentication_errors_are_verbatim() {
    let svc = service();
    let body = format!(r#"{{{COMMON}}}"#);
    let with = |headers: &[(&str, &str)]| {
        let mut builder = Request::post(format!("{BASE}/find"));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Full::new(Bytes::from(body.clone()))).unwrap()
    };
    let none = send(&svc, with(&[])).await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json(&none.body)["error"],
        "no authentication methods were specified"
    );
    assert_eq!(json(&none.body)["error_code"], "InvalidParameter");
    let wrong = send(&svc, with(&[("api-key", "nope")])).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        json(&wrong.body),
        json(&format!(
            r#"{{"error":"invalid session: error finding user for endpoint","error_code":"InvalidSession","link":"/logs?co_id={}"}}"#,
            wrong.headers["x-request-id"].to_str().unwrap()
        ))
    );
    let partial = send(&svc, with(&[("email", "a@b.c")])).await;
    assert_eq!(partial.status, StatusCode::BAD_REQUEST);
    assert_eq!(json(&partial.body)["error_code"], "MissingParameter");
    let bearer = send(
        &svc,
        with(&[("authorization", "Bearer x"), ("apiKey", KEY)]),
    )
    .await;
    assert_eq!(
        bearer.status,
        StatusCode::UNAUTHORIZED,
        "no fallback after a bad bearer"
    );
    let spelled = send(&svc, with(&[("api-key", KEY)])).await;
    assert_eq!(spelled.status, StatusCode::OK);
}

#[tokio::test]
async fn limits_answer_413_429_and_504() {
    let svc = service();
    let big = "x".repeat(2048);
    let declared = post("find")
        .header("content-length", big.len())
        .body(Full::new(Bytes::from(big.clone())))
        .unwrap();
    assert_eq!(
        send(&svc, declared).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // No Content-Length: refused while reading.
    let stream = http_body_util::StreamBody::new(futures_util::stream::iter((0..4).map(|_| {
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![b' '; 512])))
    })));
    let request = post("find").body(stream).unwrap();
    assert_eq!(
        send(&svc, request).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    let slow = service_with(
        Scripted {
            delay: Some(Duration::from_secs(5)),
            ..Scripted::default()
        },
        MemoryLogSink::new(4),
    );
    let request = post("findOne")
        .body(Full::new(Bytes::from(format!(r#"{{{COMMON}}}"#))))
        .unwrap();
    let answer = send(&slow, request).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        json(&answer.body)["error_code"],
        "ExecutionTimeLimitExceeded"
    );

    let one = DataApi::builder()
        .data_source(
            "mongodb-atlas",
            Scripted {
                delay: Some(Duration::from_millis(300)),
                ..Scripted::default()
            },
        )
        .api_key("ci", KEY)
        .max_concurrent_requests(1)
        .build()
        .unwrap();
    let request = || {
        Request::post("/app/data-local/endpoint/data/v1/action/findOne")
            .header("apiKey", KEY)
            .body(Full::new(Bytes::from(format!(r#"{{{COMMON}}}"#))))
            .unwrap()
    };
    let first = tokio::spawn(one.clone().oneshot(request()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = send(&one, request()).await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.headers["retry-after"], "1");
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn data_sources_and_access_levels() {
    let body = |source: &str, extra: &str| {
        format!(r#"{{"dataSource":"{source}","database":"db","collection":"c"{extra}}}"#)
    };
    let missing = call("find", &body("nope", "")).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json(&missing.body)["error"],
        "The data source 'nope' is disabled or does not exist"
    );
    assert_eq!(call("find", &body("ro", "")).await.status, StatusCode::OK);
    let write = call("insertOne", &body("ro", r#","document":{}"#)).await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    let out = call("aggregate", &body("ro", r#","pipeline":[{"$out":"x"}]"#)).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    let none = call("find", &body("none", "")).await;
    assert_eq!(none.status, StatusCode::FORBIDDEN);
    assert_eq!(json(&none.body)["error_code"], "NoMatchingRuleFound");
}

#[tokio::test]
async fn backend_errors_are_400_or_503_without_details() {
    let dup = call(
        "insertOne",
        &format!(r#"{{{COMMON},"document":{{"dup":1}}}}"#),
    )
    .await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json(&dup.body)["error"],
        "Failed to insert document: E11000 duplicate key"
    );
    let down = call(
        "updateMany",
        &format!(r#"{{{COMMON},"filter":{{}},"update":{{"$set":{{"a":1}}}}}}"#),
    )
    .await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!down.body.contains("db1"));
}

#[tokio::test]
async fn logs_carry_the_key_name_never_the_key() {
    let sink = MemoryLogSink::new(8);
    let svc = service_with(Scripted::default(), sink.clone());
    let request = post("insertMany")
        .body(Full::new(Bytes::from(format!(
            r#"{{{COMMON},"documents":[{{}},{{}},{{}}]}}"#
        ))))
        .unwrap();
    send(&svc, request).await;
    let entries = sink.entries();
    let entry = entries.last().unwrap();
    assert_eq!(entry.action, Some("insertMany"));
    assert_eq!(entry.principal_name.as_deref(), Some("ci"));
    assert_eq!(entry.documents, Some(3));
    assert_eq!(entry.status, 201);
    assert_eq!(entry.collection.as_deref(), Some("c"));
    assert!(!format!("{entry:?}").contains(KEY));
}

#[tokio::test]
async fn builder_refuses_nonsense() {
    let err = |builder: crate::DataApiBuilder| builder.build().unwrap_err().to_string();
    assert!(err(DataApi::builder().api_key("a", "k")).contains("data source"));
    assert!(err(DataApi::builder().data_source("x", Scripted::default())).contains("authenticate"));
    assert!(err(DataApi::builder()
        .data_source("x", Scripted::default())
        .data_source("x", Scripted::default())
        .api_key("a", "k"))
    .contains("twice"));
    assert!(err(DataApi::builder()
        .data_source("x", Scripted::default())
        .api_key("a", "k")
        .max_concurrent_requests(0))
    .contains("max_concurrent_requests"));
    assert!(err(DataApi::builder()
        .data_source("x", Scripted::default())
        .api_key("a", "k")
        .api_key("a", "j"))
    .contains("used twice"));
    assert!(err(DataApi::builder()
        .app_id("bad/id")
        .data_source("x", Scripted::default())
        .api_key("a", "k"))
    .contains("app id"));
}

#[tokio::test]
async fn the_layer_passes_other_routes_through() {
    let layer = crate::DataApiLayer::new(service());
    let inner = tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(
            b"mine",
        ))))
    });
    let mut app = tower::Layer::layer(&layer, inner);
    let other = app
        .call(
            Request::get("/health")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let body = other.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"mine");
    let ours = app
        .call(
            post("find")
                .body(Full::new(Bytes::from(format!(r#"{{{COMMON}}}"#))))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ours.status(), StatusCode::OK);
}

#[tokio::test]
async fn cors_preflights_and_origins() {
    let svc = DataApi::builder()
        .app_id("data-test")
        .data_source("mongodb-atlas", Scripted::default())
        .api_key("ci", KEY)
        .cors(crate::AllowedOrigins::List(vec![
            "https://app.example".into()
        ]))
        .build()
        .unwrap();
    let preflight = Request::builder()
        .method("OPTIONS")
        .uri(format!("{BASE}/find"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = send(&svc, preflight).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(
        answer.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(answer.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    let request = post("find")
        .header("origin", "https://app.example")
        .body(Full::new(Bytes::from(format!(r#"{{{COMMON}}}"#))))
        .unwrap();
    let answer = send(&svc, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.headers["access-control-allow-origin"],
        "https://app.example"
    );
    let foreign = post("find")
        .header("origin", "https://evil.example")
        .body(Full::new(Bytes::from(format!(r#"{{{COMMON}}}"#))))
        .unwrap();
    let answer = send(&svc, foreign).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.headers.get("access-control-allow-origin").is_none());
    // Paths that are not the service's are not preflighted.
    let elsewhere = Request::builder()
        .method("OPTIONS")
        .uri("/elsewhere")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(&svc, elsewhere).await.refused(404, "NotFound");
    // Without CORS configured, OPTIONS on an action URL is a 405.
    let plain = Request::builder()
        .method("OPTIONS")
        .uri(format!("{BASE}/find"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        send(&service(), plain).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

/// A preflight for a client's own header (`x-realm-op-name`) is allowed; one for
/// a credential header only when the configuration says so.
#[tokio::test]
async fn cors_preflight_headers_and_credential_headers() {
    let build = |credentials: bool| {
        DataApi::builder()
            .app_id("data-test")
            .data_source("mongodb-atlas", Scripted::default())
            .api_key("ci", KEY)
            .cors(crate::AllowedOrigins::List(vec![
                "https://app.example".into()
            ]))
            .cors_allow_credential_headers(credentials)
            .build()
            .unwrap()
    };
    let preflight = || {
        Request::builder()
            .method("OPTIONS")
            .uri(format!("{BASE}/find"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "apikey,content-type,x-realm-op-name",
            )
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let answer = send(&build(false), preflight()).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(
        answer.headers["access-control-allow-headers"],
        "authorization, content-type, accept, x-realm-op-name"
    );
    let vary: Vec<_> = answer
        .headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        vary.contains(&"access-control-request-headers".to_owned())
            && vary.contains(&"origin".to_owned()),
        "{vary:?}"
    );
    let answer = send(&build(true), preflight()).await;
    assert_eq!(
        answer.headers["access-control-allow-headers"],
        "authorization, content-type, accept, apikey, x-realm-op-name"
    );
    // Allowing credential headers with no origin to allow them for is refused.
    let err = DataApi::builder()
        .data_source("mongodb-atlas", Scripted::default())
        .api_key("ci", KEY)
        .cors_allow_credential_headers(true)
        .build()
        .expect_err("refused without cors");
    assert!(
        err.to_string().contains("cors_allow_credential_headers"),
        "{err}"
    );
    let err = DataApi::builder()
        .data_source("mongodb-atlas", Scripted::default())
        .api_key("ci", KEY)
        .cors(crate::AllowedOrigins::List(Vec::new()))
        .cors_allow_credential_headers(true)
        .build()
        .expect_err("refused with an empty origin list");
    assert!(
        err.to_string().contains("at least one allowed origin"),
        "{err}"
    );
}

/// Wrong input from a client is a 4xx in the error shape, never a 500 or a panic.
#[tokio::test]
async fn hostile_bodies_and_headers_are_refused_with_4xx() {
    let svc = service_with(Scripted::default(), MemoryLogSink::new(4));
    let with_body = |body: Vec<u8>| post("find").body(Full::new(Bytes::from(body))).unwrap();
    let nested = format!(
        r#"{{{COMMON},"filter":{{"a":{}1{}}}}}"#,
        "[".repeat(300),
        "]".repeat(300)
    );
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("invalid UTF-8", b"{\"dataSource\":\"\xff\"}".to_vec()),
        ("deep nesting", nested.into_bytes()),
        (
            "huge float",
            format!(r#"{{{COMMON},"limit":1e400}}"#).into_bytes(),
        ),
        (
            "huge integer",
            format!(r#"{{{COMMON},"limit":18446744073709551616}}"#).into_bytes(),
        ),
        (
            "huge $numberLong",
            format!(r#"{{{COMMON},"filter":{{"a":{{"$numberLong":"99999999999999999999"}}}}}}"#)
                .into_bytes(),
        ),
        (
            "wrong type",
            br#"{"dataSource":1,"database":"db","collection":"c"}"#.to_vec(),
        ),
        ("not an object", b"[]".to_vec()),
    ];
    for (name, body) in bodies {
        let answer = send(&svc, with_body(body)).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            answer.body
        );
        answer.refused(400, "InvalidParameter");
    }
    let with_header = |name: &str, value: &[u8]| {
        Request::post(format!("{BASE}/find"))
            .header(name, http::HeaderValue::from_bytes(value).unwrap())
            .body(Full::new(Bytes::from(format!(r#"{{{COMMON}}}"#))))
            .unwrap()
    };
    let long = vec![b'k'; 64 * 1024];
    for (name, value) in [
        ("apiKey", &b"\xff\xfe"[..]),
        ("apiKey", &long[..]),
        ("authorization", b"Bearer \xff.\xfe.\xfd"),
        ("authorization", b"Bearer !!!.???.***"),
        ("jwtTokenString", b"e30.e30.\xff"),
    ] {
        send(&svc, with_header(name, value))
            .await
            .refused(401, "InvalidSession");
    }
    // An unreadable Accept or Content-Length is ignored.
    let request = post("find")
        .header("accept", http::HeaderValue::from_bytes(b"\xff").unwrap())
        .header("content-length", "not a number")
        .body(Full::new(Bytes::from(format!(r#"{{{COMMON}}}"#))))
        .unwrap();
    send(&svc, request).await.assert_ok();
}

#[tokio::test]
async fn trickling_bodies_get_408_and_unauthenticated_ones_hold_no_slot() {
    use http_body::Frame;
    use http_body_util::StreamBody;
    let svc = DataApi::builder()
        .app_id("data-test")
        .data_source("mongodb-atlas", Scripted::default())
        .api_key("ci", KEY)
        .max_concurrent_requests(1)
        .body_read_timeout(Duration::from_millis(100))
        .request_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let never_ends = || {
        StreamBody::new(futures_util::stream::pending::<
            Result<Frame<Bytes>, std::io::Error>,
        >())
    };
    let find_one = || {
        post("findOne")
            .body(Full::new(Bytes::from(format!(r#"{{{COMMON}}}"#))))
            .unwrap()
    };
    // A login (its credentials are in the body) trickling holds no slot.
    let login = Request::post("/api/client/v2.0/app/data-test/auth/providers/local-userpass/login")
        .body(never_ends())
        .unwrap();
    let login = tokio::spawn({
        let svc = svc.clone();
        async move { send(&svc, login).await }
    });
    // Wrong credentials are refused before the body is read.
    let wrong = Request::post(format!("{BASE}/findOne"))
        .header("apiKey", "not-the-key-0123456789")
        .body(never_ends())
        .unwrap();
    send(&svc, wrong).await.refused(401, "InvalidSession");
    send(&svc, find_one()).await.assert_ok();
    // An authenticated trickle holds the slot until the body timeout.
    let slow = tokio::spawn({
        let svc = svc.clone();
        async move { send(&svc, post("findOne").body(never_ends()).unwrap()).await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    send(&svc, find_one()).await.refused(429, "TooManyRequests");
    let slow = slow.await.unwrap();
    slow.refused(408, "ExecutionTimeLimitExceeded");
    assert!(slow.json()["error"].as_str().unwrap().contains("body"));
    send(&svc, find_one()).await.assert_ok();
    login
        .await
        .unwrap()
        .refused(408, "ExecutionTimeLimitExceeded");
}

mod operations;
#[cfg(feature = "memory")]
mod rules;
#[cfg(feature = "memory")]
mod schema;
#[cfg(feature = "memory")]
mod test_support;
