//! Rules through the whole service pipeline, on the embedded engine: the
//! principal chosen per request (`x-user` header, `system` for the system
//! user), requests and answers as HTTP.

use bson::Bson;
use http::StatusCode;
use serde_json::{json, Value};

use super::test_support;
use crate::rules::{FieldPermission, Role, Rule, Rules};
use crate::{DataApi, DataApiService, MemoryBackend};

const APP: &str = "data-rules";

fn service(rules: Option<Rules>) -> DataApiService {
    let mut builder = test_support::builder(APP).rule_function("isVip", |call| {
        Bson::Boolean(call.arguments.first() == Some(&Bson::String("vip".into())))
    });
    if let Some(rules) = rules {
        builder = builder.rules("mongodb-atlas", rules);
    }
    builder.build().unwrap()
}

async fn call(
    service: &DataApiService,
    user: &str,
    action: &str,
    extra: Value,
) -> (StatusCode, Value) {
    test_support::call(service, APP, user, action, extra).await
}

/// Owners read and write their documents; everybody reads `public` ones
/// without `secret`; VIPs (a rule function) read everything.
fn rules() -> Rules {
    Rules::new().default_rule(
        Rule::new()
            .role(Role::read_only("vip").apply_when(
                json!({"%%true": {"%function": {"name": "isVip", "arguments": ["%%user.id"]}}}),
            ))
            .role(
                Role::read_write("owner")
                    .apply_when(json!({"owner": "%%user.id"}))
                    .document_filters(None, Some(json!({"owner": "%%user.id"}))),
            )
            .role(
                Role::new("reader")
                    .apply_when(json!({"%%request.requestHeaders.x-tenant": "t1"}))
                    .document_filters(Some(json!({"public": true})), Some(json!(false)))
                    .field("secret", FieldPermission::hidden())
                    .additional_fields(FieldPermission::read_only()),
            ),
    )
}

async fn seed(service: &DataApiService) {
    let (status, _) = call(
        service,
        "system",
        "insertMany",
        json!({"documents": [
            {"_id": 1, "owner": "alice", "public": true, "secret": "a", "n": 1},
            {"_id": 2, "owner": "bob", "public": true, "secret": "b", "n": 2},
            {"_id": 3, "owner": "bob", "public": false, "secret": "c", "n": 3},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn all(service: &DataApiService) -> Value {
    call(service, "system", "find", json!({"sort": {"_id": 1}}))
        .await
        .1["documents"]
        .clone()
}

#[tokio::test]
async fn without_rules_nothing_changes() {
    let service = service(None);
    seed(&service).await;
    let (status, body) = call(&service, "anyone", "find", json!({"filter": {"_id": 3}})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["documents"][0]["secret"], "c");
}

#[tokio::test]
async fn reads_pick_a_role_per_document_and_strip_fields() {
    let service = service(Some(rules()));
    seed(&service).await;
    let (status, body) = call(
        &service,
        "alice",
        "find",
        json!({"sort": {"_id": 1}, "projection": {"n": 0}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"documents": [
            {"_id": 1, "owner": "alice", "public": true, "secret": "a"},
            {"_id": 2, "owner": "bob", "public": true},
        ]})
    );
    let (_, vip) = call(&service, "vip", "find", json!({})).await;
    assert_eq!(vip["documents"].as_array().unwrap().len(), 3);
    let (_, one) = call(&service, "carol", "findOne", json!({"filter": {"_id": 3}})).await;
    assert_eq!(one, json!({"document": null}));
}

#[tokio::test]
async fn writes_are_refused_in_the_data_api_shape_and_change_nothing() {
    let service = service(Some(rules()));
    seed(&service).await;
    let before = all(&service).await;
    let (status, body) = call(
        &service,
        "alice",
        "insertOne",
        json!({"document": {"_id": 9, "owner": "bob"}}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error_code"], "PermissionDenied");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("insert not permitted"),
        "{body}"
    );
    let (status, body) = call(
        &service,
        "alice",
        "updateMany",
        json!({"filter": {}, "update": {"$inc": {"n": 10}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"matchedCount": 1, "modifiedCount": 1}));
    let (status, body) = call(&service, "carol", "deleteMany", json!({"filter": {}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"deletedCount": 0}));
    let (status, _) = call(
        &service,
        "alice",
        "aggregate",
        json!({"pipeline": [{"$lookup": {"from": "c", "as": "x", "pipeline": []}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut expected = before;
    expected[0]["n"] = json!(11);
    assert_eq!(all(&service).await, expected);
}

/// Under rules a stage the stage table does not list is refused (403 in
/// the Data API shape), at the top or nested; without rules the backend
/// decides (the embedded engine answers 400 for a stage it does not know).
#[tokio::test]
async fn unknown_stages_are_403_under_rules_only() {
    let ruled = service(Some(rules()));
    seed(&ruled).await;
    for pipeline in [
        json!([{"$fooBar": {}}]),
        json!([{"$match": {}}, {"$facet": {"f": [{"$fooBar": {}}]}}]),
        json!([{"$unionWith": {"coll": "c", "pipeline": [{"$fooBar": {}}]}}]),
    ] {
        let (status, body) =
            call(&ruled, "vip", "aggregate", json!({ "pipeline": pipeline })).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{pipeline}: {body}");
        assert_eq!(
            (&body["error"], &body["error_code"]),
            (
                &json!("$fooBar not permitted in aggregation pipelines: the rules do not know this stage"),
                &json!("PermissionDenied")
            ),
        );
        assert!(
            body["link"].is_string() && body.as_object().unwrap().len() == 3,
            "{body}"
        );
    }
    let (status, body) = call(
        &ruled,
        "system",
        "aggregate",
        json!({"pipeline": [{"$fooBar": {}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let unruled = service(None);
    let (status, body) = call(
        &unruled,
        "alice",
        "aggregate",
        json!({"pipeline": [{"$fooBar": {}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn unknown_namespaces_are_403() {
    let rules = Rules::new().collection("db", "other", Rule::new().role(Role::read_write("rw")));
    let service = service(Some(rules));
    let (status, body) = call(&service, "alice", "find", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error"], "no rule exists for namespace 'db.c'",
        "{body}"
    );
    assert_eq!(body["error_code"], "NoMatchingRuleFound");
    let (status, _) = call(&service, "system", "find", json!({})).await;
    assert_eq!(status, StatusCode::OK, "system bypasses rules");
}

#[test]
fn invalid_rules_fail_the_build_naming_the_path() {
    let err = DataApi::builder()
        .data_source("mongodb-atlas", MemoryBackend::new())
        .api_key("k", "key-0123456789abcdef")
        .rules(
            "mongodb-atlas",
            Rules::new().default_rule(
                Rule::new().role(Role::new("r").apply_when(json!({"a": {"$regex": "x"}}))),
            ),
        )
        .build()
        .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "data source 'mongodb-atlas': rules.default_rule.roles[0] ('r').apply_when.a.$regex"
        ),
        "{err}"
    );
    let err = DataApi::builder()
        .data_source("mongodb-atlas", MemoryBackend::new())
        .api_key("k", "key-0123456789abcdef")
        .rules("elsewhere", Rules::new())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("'elsewhere'"), "{err}");
}
