//! Shared scaffolding of the rules' service-level tests: a service on the
//! embedded engine whose principal each request names in an `x-user`
//! header (`system` for the system user), and a call helper.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::auth::RunAs;
use crate::{DataApi, DataApiBuilder, DataApiService, MemoryBackend};

/// A builder for app `app_id` with one embedded data source
/// (`mongodb-atlas`) and the principal taken from the `x-user` header.
pub(super) fn builder(app_id: &str) -> DataApiBuilder {
    DataApi::builder()
        .app_id(app_id)
        .data_source("mongodb-atlas", MemoryBackend::new())
        .run_as_fn(
            |parts| match parts.headers.get("x-user").and_then(|v| v.to_str().ok()) {
                Some("system") => RunAs::System,
                Some(user) => RunAs::User(user.to_owned()),
                None => RunAs::Nobody,
            },
        )
}

/// POSTs `action` on `db.c` of app `app_id` as `user` (with the header
/// `x-tenant: t1`), the fields of `extra` added to the body.
pub(super) async fn call(
    service: &DataApiService,
    app_id: &str,
    user: &str,
    action: &str,
    extra: Value,
) -> (StatusCode, Value) {
    let mut body = json!({"dataSource": "mongodb-atlas", "database": "db", "collection": "c"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let request = Request::post(format!("/app/{app_id}/endpoint/data/v1/action/{action}"))
        .header("x-user", user)
        .header("x-tenant", "t1")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}
