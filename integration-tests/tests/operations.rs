//! Operating the standalone server over TCP: `/metrics` after a scripted mix
//! of requests (parsed with an independent Prometheus text parser), the
//! health probes, and the response size limit.

use std::collections::HashMap;

use integration_tests::launch;
use serde_json::{json, Value};

const CONFIG: &str = r#"
app_id = "data-ops"
metrics_listen = "127.0.0.1:0"

[[data_sources]]
name = "mongodb-atlas"
uri = "memory"

[[api_keys]]
name = "ops-key"
key = "ops-key-0123456789abcdefghijklmnopqrstuv"

[[api_keys]]
name = "other-key"
key = "other-key-0123456789abcdefghijklmnopqrs"

[limits]
max_response_bytes = 200000
"#;

struct Server {
    base: String,
    root: String,
    metrics: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Server {
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let running = launch(CONFIG, None, stopped).await.expect("starts");
    Server {
        base: running.base_url.clone(),
        root: format!("http://{}", running.addr),
        metrics: running.metrics_url.clone().expect("metrics_listen set"),
        _stop: stop,
    }
}

async fn call(server: &Server, key: &str, action: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({"dataSource": "mongodb-atlas", "database": "ops", "collection": "c"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let response = reqwest::Client::new()
        .post(format!("{}/action/{action}", server.base))
        .header("apiKey", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The samples of one scrape: (metric name, sorted labels) → value.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

fn scrape_samples(text: &str) -> Samples {
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("a valid exposition");
    scrape
        .samples
        .into_iter()
        .filter_map(|sample| {
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => return None,
            };
            let mut labels: Vec<(String, String)> = sample
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            Some(((sample.metric, labels), value))
        })
        .collect()
}

fn sample(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    *samples
        .get(&(name.to_owned(), labels.clone()))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

#[tokio::test]
async fn metrics_count_what_was_sent() {
    let server = start().await;
    let key = "ops-key-0123456789abcdefghijklmnopqrstuv";
    for i in 0..3 {
        let (status, _) = call(&server, key, "insertOne", json!({"document": {"n": i}})).await;
        assert_eq!(status, 201);
    }
    for _ in 0..2 {
        let (status, _) = call(&server, key, "findOne", json!({"filter": {"n": 1}})).await;
        assert_eq!(status, 200);
    }
    let (status, _) = call(&server, "wrong-key", "findOne", json!({})).await;
    assert_eq!(status, 401);
    let (status, _) = call(&server, key, "find", json!({"filter": {"$bad": 1}})).await;
    assert_eq!(status, 400);
    let other = "other-key-0123456789abcdefghijklmnopqrs";
    let (status, _) = call(&server, other, "find", json!({})).await;
    assert_eq!(status, 200);

    let response = reqwest::get(&server.metrics).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    assert!(
        !text.contains(key) && !text.contains(other),
        "no key in metrics"
    );
    let samples = scrape_samples(&text);
    let requests = |action: &str, status: &str, scheme: &str| {
        sample(
            &samples,
            "data_api_requests_total",
            &[
                ("action", action),
                ("data_source", "mongodb-atlas"),
                ("status", status),
                ("auth_scheme", scheme),
            ],
        )
    };
    assert_eq!(requests("insertOne", "201", "api-key"), 3.0);
    assert_eq!(requests("findOne", "200", "api-key"), 2.0);
    assert_eq!(requests("find", "400", "api-key"), 1.0);
    assert_eq!(requests("find", "200", "api-key"), 1.0);
    assert_eq!(
        sample(
            &samples,
            "data_api_auth_failures_total",
            &[("scheme", "api-key")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "data_api_errors_total",
            &[("error_code", "MongoDBError")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "data_api_usage_requests_total",
            &[("principal", "ops-key")]
        ),
        6.0
    );
    assert_eq!(
        sample(
            &samples,
            "data_api_usage_requests_total",
            &[("principal", "other-key")]
        ),
        1.0
    );
    assert_eq!(
        sample(&samples, "data_api_requests_in_flight", &[]),
        0.0,
        "nothing in flight between requests"
    );
    let histogram_count = text
        .lines()
        .find(|line| {
            line.starts_with("data_api_request_duration_seconds_count{action=\"findOne\"}")
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|count| count.parse::<f64>().ok());
    assert_eq!(histogram_count, Some(3.0), "{text}");
    assert!(
        sample(
            &samples,
            "data_api_response_bytes_total",
            &[("action", "findOne")]
        ) > 0.0
    );
}

#[tokio::test]
async fn health_and_ready_answer_without_credentials() {
    let server = start().await;
    let health = reqwest::get(format!("{}/health", server.root))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        serde_json::from_str::<Value>(&health.text().await.unwrap()).unwrap(),
        json!({"status": "ok"})
    );
    let ready = reqwest::get(format!("{}/ready", server.root))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = serde_json::from_str(&ready.text().await.unwrap()).unwrap();
    assert_eq!(ready["status"], "ready");
}

#[tokio::test]
async fn a_response_over_the_limit_is_refused() {
    let server = start().await;
    let key = "ops-key-0123456789abcdefghijklmnopqrstuv";
    let pad = "x".repeat(10_000);
    let documents: Vec<Value> = (0..40).map(|i| json!({"i": i, "pad": pad})).collect();
    let (status, _) = call(&server, key, "insertMany", json!({"documents": documents})).await;
    assert_eq!(status, 201);
    let (status, body) = call(&server, key, "find", json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_code"], "ReadSizeLimitExceeded");
    assert_eq!(
        body["error"],
        "read size limit exceeded: the response would be larger than 200000 bytes; \
         ask for fewer documents (filter, limit) or fewer fields (projection)"
    );
    let (status, body) = call(&server, key, "find", json!({"limit": 10})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["documents"].as_array().unwrap().len(), 10);
    let (status, body) = call(
        &server,
        key,
        "aggregate",
        json!({"pipeline": [{"$project": {"pad": 1}}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_code"], "ReadSizeLimitExceeded");
}

const LIMITED: &str = r#"
app_id = "data-ops"

[[data_sources]]
name = "mongodb-atlas"
uri = "memory"

[[api_keys]]
name = "slow-key"
key = "slow-key-0123456789abcdefghijklmnopqrstu"

[[api_keys]]
name = "fast-key"
key = "fast-key-0123456789abcdefghijklmnopqrstu"

[rate_limits]
requests_per_second = 1
burst = 3
failed_auth_per_minute = 60
failed_auth_burst = 3

[rate_limits.keys.fast-key]
requests_per_second = 1000
"#;

async fn start_limited() -> Server {
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let running = launch(LIMITED, None, stopped).await.expect("starts");
    Server {
        base: running.base_url.clone(),
        root: format!("http://{}", running.addr),
        metrics: String::new(),
        _stop: stop,
    }
}

async fn find_one(server: &Server, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/action/findOne", server.base))
        .header("apiKey", key)
        .header("content-type", "application/json")
        .body(r#"{"dataSource":"mongodb-atlas","database":"d","collection":"c"}"#)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_key_over_its_rate_limit_waits_while_others_go_on() {
    let server = start_limited().await;
    let slow = "slow-key-0123456789abcdefghijklmnopqrstu";
    let fast = "fast-key-0123456789abcdefghijklmnopqrstu";
    for _ in 0..3 {
        assert_eq!(find_one(&server, slow).await.status(), 200);
    }
    let refused = find_one(&server, slow).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
    assert_eq!(body["error_code"], "TooManyRequests");
    assert_eq!(body["error"], "rate limit exceeded for this caller");
    for _ in 0..20 {
        assert_eq!(find_one(&server, fast).await.status(), 200, "unaffected");
    }
    // One token a second (the test's requests take far less).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(find_one(&server, slow).await.status(), 200, "refilled");
}

#[tokio::test]
async fn failed_authentication_is_slowed_then_released() {
    let server = start_limited().await;
    // Three failures fit the bucket; the fourth finds it empty and blocks.
    for _ in 0..4 {
        assert_eq!(find_one(&server, "wrong").await.status(), 401);
    }
    let blocked = find_one(&server, "wrong").await;
    assert_eq!(blocked.status(), 429);
    assert!(blocked.headers().contains_key("retry-after"));
    let body: Value = serde_json::from_str(&blocked.text().await.unwrap()).unwrap();
    assert_eq!(
        body["error"],
        "too many failed authentication attempts; retry later"
    );
    // The same address with a right key is slowed too, briefly.
    let slow = "slow-key-0123456789abcdefghijklmnopqrstu";
    assert_eq!(find_one(&server, slow).await.status(), 429);
    // 60 failures a minute: a token returns every second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(find_one(&server, slow).await.status(), 200, "released");
    let _ = &server.root;
}

#[tokio::test]
async fn the_openapi_document_describes_what_is_served() {
    let server = start().await;
    let url = format!("{}/openapi.json", server.base);
    let answer = reqwest::get(&url).await.unwrap();
    assert_eq!(answer.status(), 200);
    let document: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["version"], "v1");
    let paths = document["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 10);
    let insert = &paths["/action/insertOne"]["post"];
    assert!(insert["responses"]["201"].is_object(), "{insert}");
    assert_eq!(
        insert["requestBody"]["content"]["application/json"]["schema"]["properties"]["dataSource"]
            ["enum"],
        json!(["mongodb-atlas"])
    );
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    assert!(schemes.contains_key("apiKey") && schemes.contains_key("bearer"));
    assert!(
        !schemes.contains_key("jwtTokenString"),
        "no custom JWT configured"
    );

    let post = reqwest::Client::new().post(&url).send().await.unwrap();
    assert_eq!(post.status(), 405);
    let beta = reqwest::get(url.replace("/v1/", "/v9/")).await.unwrap();
    assert_eq!(beta.status(), 404);
    let other_app = reqwest::get(url.replace("data-ops", "data-nope"))
        .await
        .unwrap();
    assert_eq!(other_app.status(), 404);
}
