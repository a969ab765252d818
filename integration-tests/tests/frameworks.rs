//! The axum, poem and warp examples over TCP: the app's own route still
//! answers, and the Data API works under `/data`.

use integration_tests::{axum_app, body, poem_app, raw, unique_db, warp_app, TestServer, KEY};
use serde_json::json;

async fn mounted_beside_the_apps_route(server: TestServer) {
    let own = server
        .client
        .get(format!("http://{}/hello", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status().as_u16(), 200);
    assert_eq!(own.text().await.unwrap(), "hello from the app's own route");

    let db = unique_db("mount");
    let inserted = server
        .call(
            "insertOne",
            body(&db, "c", json!({"document": {"_id": 1, "hello": "world"}})),
        )
        .await;
    assert_eq!(inserted.status, 201, "{}", inserted.text);
    assert_eq!(inserted.json(), json!({"insertedId": 1}));
    let found = server
        .call_with(
            "findOne",
            &body(&db, "c", json!({"filter": {"_id": 1}})).to_string(),
            &[("Accept", "application/ejson")],
        )
        .await;
    assert_eq!(found.status, 200);
    assert_eq!(
        found.text,
        r#"{"document":{"_id":{"$numberInt":"1"},"hello":"world"}}"#
    );
    assert_eq!(found.header("content-type"), Some("application/ejson"));

    let wrong_key = server
        .call_with(
            "find",
            &body(&db, "c", json!({})).to_string(),
            &[("apiKey", "nope")],
        )
        .await;
    assert_eq!(wrong_key.status, 401);
    assert_eq!(wrong_key.json()["error_code"], "InvalidSession");

    let unknown = server.call("findAll", body(&db, "c", json!({}))).await;
    assert_eq!(unknown.status, 404);

    let get = server
        .client
        .get(format!("{}/action/find", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);

    // A chunked upload (no Content-Length) goes through the framework to the service.
    let payload = body(&db, "c", json!({"document": {"_id": 2, "chunked": true}})).to_string();
    let request = format!(
        "POST /data/app/data-local/endpoint/data/v1/action/insertOne HTTP/1.1\r\nHost: x\r\napiKey: {KEY}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{payload}\r\n0\r\n\r\n",
        payload.len()
    );
    let response = raw::send(server.addr, request.as_bytes()).await;
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(response.text(), r#"{"insertedId":2}"#);
}

#[tokio::test]
async fn axum_custom_endpoint_is_behind_the_data_apis_authentication() {
    let server = axum_app().await;
    let me = |key: Option<&'static str>| {
        let mut request = server.client.get(format!("http://{}/me", server.addr));
        if let Some(key) = key {
            request = request.header("apiKey", key);
        }
        request.send()
    };
    let answer = me(Some(KEY)).await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let body: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(body["name"], "demo");
    assert_eq!(body["provider"], "api-key");
    assert!(body["id"].as_str().is_some_and(|id| !id.is_empty()));

    let refused = me(Some("wrong")).await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let body: serde_json::Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
    assert_eq!(
        body["error"],
        "invalid session: error finding user for endpoint"
    );
    assert_eq!(body["error_code"], "InvalidSession");
    let none = me(None).await.unwrap();
    assert_eq!(none.status().as_u16(), 400);
}

#[tokio::test]
async fn axum_example() {
    mounted_beside_the_apps_route(axum_app().await).await;
}

#[tokio::test]
async fn poem_example() {
    mounted_beside_the_apps_route(poem_app().await).await;
}

#[tokio::test]
async fn warp_example() {
    mounted_beside_the_apps_route(warp_app().await).await;
}
