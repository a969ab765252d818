//! Health probes and the response size limit, through the whole service.

use std::time::{Duration, Instant};

use super::*;

fn probe_service(backend: Scripted) -> DataApiService {
    DataApi::builder()
        .app_id("data-test")
        .data_source("mongodb-atlas", backend)
        .data_source("second", Scripted::default())
        .api_key("ci", KEY)
        .health_endpoints(true)
        .build()
        .unwrap()
}

async fn get(service: &DataApiService, path: &str) -> Answer {
    send(service, Request::get(path).body(String::new()).unwrap()).await
}

#[tokio::test]
async fn health_answers_without_credentials_or_backend_calls() {
    let down = probe_service(Scripted {
        down: true,
        ..Scripted::default()
    });
    let answer = get(&down, "/health").await;
    answer.assert_ok();
    assert_eq!(answer.json(), serde_json::json!({"status": "ok"}));
    assert!(down.handles_path("/health") && down.handles_path("/ready"));

    let post = Request::post("/health").body(String::new()).unwrap();
    send(&down, post).await.refused(405, "MethodNotAllowed");

    let off = DataApi::builder()
        .data_source("mongodb-atlas", Scripted::default())
        .api_key("ci", KEY)
        .build()
        .unwrap();
    assert!(!off.handles_path("/health"));
    assert_eq!(get(&off, "/health").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&off, "/ready").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn ready_checks_every_data_source_and_the_session_store() {
    let answer = get(&probe_service(Scripted::default()), "/ready").await;
    answer.assert_ok();
    assert_eq!(
        answer.json(),
        serde_json::json!({
            "status": "ready",
            "checks": {
                "data_sources": {"mongodb-atlas": "ok", "second": "ok"},
                "sessions": "ok",
            },
        })
    );
}

#[tokio::test]
async fn ready_names_the_data_source_that_failed() {
    let down = probe_service(Scripted {
        down: true,
        ..Scripted::default()
    });
    let answer = get(&down, "/ready").await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    let body = answer.json();
    assert_eq!(body["error_code"], "ServiceUnavailable");
    assert_eq!(
        body["error"],
        "not ready: data source 'mongodb-atlas' did not answer"
    );
    assert_eq!(body["checks"]["data_sources"]["second"], "ok");
    assert_eq!(
        body["checks"]["data_sources"]["mongodb-atlas"],
        "the data source is unavailable"
    );
}

#[tokio::test]
async fn ready_gives_up_on_a_data_source_that_hangs() {
    let hung = probe_service(Scripted {
        delay: Some(Duration::from_secs(30)),
        ..Scripted::default()
    });
    let started = Instant::now();
    let answer = get(&hung, "/ready").await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        answer.json()["checks"]["data_sources"]["mongodb-atlas"],
        "no answer within 2 s"
    );
}

fn capped(kib_documents: usize, sink: MemoryLogSink) -> DataApiService {
    DataApi::builder()
        .app_id("data-test")
        .data_source(
            "mongodb-atlas",
            Scripted {
                kib_documents,
                ..Scripted::default()
            },
        )
        .api_key("ci", KEY)
        .max_response_bytes(64 * 1024)
        .log_sink(sink)
        .build()
        .unwrap()
}

async fn read(service: &DataApiService, action: &str, extra: &str) -> Answer {
    let request = post(action)
        .body(Full::new(Bytes::from(format!("{{{COMMON}{extra}}}"))))
        .unwrap();
    send(service, request).await
}

#[tokio::test]
async fn responses_over_the_limit_fail_with_read_size_limit_exceeded() {
    let sink = MemoryLogSink::new(8);
    let big = capped(100, sink.clone());
    for (action, extra) in [("find", ""), ("aggregate", r#","pipeline":[]"#)] {
        let answer = read(&big, action, extra).await;
        answer.error(
            400,
            "ReadSizeLimitExceeded",
            "read size limit exceeded: the response would be larger than 65536 bytes; \
             ask for fewer documents (filter, limit) or fewer fields (projection)",
        );
    }
    let logged = sink.entries();
    assert_eq!(logged[0].error_code, Some("ReadSizeLimitExceeded"));
    assert_eq!(logged[0].documents, None);

    let small = capped(50, MemoryLogSink::new(8));
    let answer = read(&small, "find", "").await;
    answer.assert_ok();
    assert_eq!(answer.json()["documents"].as_array().unwrap().len(), 50);
    assert!(answer.body.len() <= 64 * 1024);
}

#[test]
fn encoding_stops_at_the_limit() {
    use crate::protocol::Format;
    let docs: Vec<Document> = (0..1000)
        .map(|i| doc! {"_id": i, "pad": "y".repeat(1000)})
        .collect();
    let err = crate::action::Reply::Documents(docs)
        .render(Format::Json, 10_000)
        .unwrap_err();
    assert_eq!(err.code(), crate::ErrorCode::ReadSizeLimitExceeded);
    let exact = crate::action::Reply::Documents(vec![doc! {"a": 1}])
        .render(Format::Json, r#"{"documents":[{"a":1}]}"#.len())
        .unwrap();
    assert_eq!(exact, br#"{"documents":[{"a":1}]}"#);
    assert!(crate::action::Reply::Documents(vec![doc! {"a": 1}])
        .render(Format::Json, r#"{"documents":[{"a":1}]}"#.len() - 1)
        .is_err());
}
