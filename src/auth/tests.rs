//! Pipeline tests for authentication: every scheme through the whole
//! service, the client API endpoints, run-as modes, custom authenticators,
//! request validation and the hostile table — with the scripted backend of
//! the service tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::jwt::now_secs;
use super::jwt::test_keys::{RSA_PRIVATE_PEM, RSA_PUBLIC_PEM};
use super::users::cheap_params;
use super::*;
use crate::log::MemoryLogSink;
use crate::service::tests::{send, Answer, Scripted};
use crate::{DataApi, DataApiBuilder, DataApiService};

const APP: &str = "data-test";
const KEY: &str = "pipeline-api-key-0123456789abcdefghijklmnopqrstuvwxyz0123456789";
const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "pipeline-Pa55word";
const JWT_SECRET: &str = "pipeline-jwt-secret-0123456789abcdefghij";
const SIGNING_KEY: &str = "pipeline-signing-key-0123456789abcdefghij";
const FIND: &str = "/app/data-test/endpoint/data/v1/action/find";
const BODY: &str = r#"{"dataSource":"mongodb-atlas","database":"db","collection":"c"}"#;
const CLIENT: &str = "/api/client/v2.0";

fn users() -> MemoryUserStore {
    let users = MemoryUserStore::with_params(cheap_params());
    users.add_user(EMAIL, PASSWORD).unwrap();
    users
}

fn builder(sink: &MemoryLogSink) -> DataApiBuilder {
    DataApi::builder()
        .app_id(APP)
        .data_source("mongodb-atlas", Scripted::default())
        .api_key("ci", KEY)
        .user_store(users())
        .custom_jwt(
            JwtProvider::new()
                .hs256_secret(JWT_SECRET)
                .rs256_public_key_pem(Some("rsa-1"), RSA_PUBLIC_PEM)
                .metadata_field("name", "name", false),
        )
        .signing_key("k1", SIGNING_KEY)
        .log_sink(sink.clone())
}

fn service() -> DataApiService {
    builder(&MemoryLogSink::new(64)).build().unwrap()
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

async fn find(service: &DataApiService, headers: &[(&str, &str)]) -> Answer {
    send(service, request("POST", FIND, headers, BODY)).await
}

async fn login(service: &DataApiService, provider: &str, body: Value) -> Answer {
    let uri = format!("{CLIENT}/app/{APP}/auth/providers/{provider}/login");
    send(service, request("POST", &uri, &[], &body.to_string())).await
}

fn jwt(claims: Value) -> String {
    let key = EncodingKey::from_secret(JWT_SECRET.as_bytes()).unwrap();
    encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

fn jwt_claims() -> Value {
    json!({"aud": APP, "sub": "jwt-user", "exp": now_secs() + 600, "iat": now_secs(), "name": "Jay"})
}

const INVALID: &str = "invalid session: error finding user for endpoint";
const INCOMPLETE: &str = "must specify some form of authentication (either email+password, api-key, or jwt) in the request header or body";

#[tokio::test]
async fn every_credential_header_scheme() {
    let svc = service();
    find(&svc, &[("apiKey", KEY)]).await.assert_ok();
    find(&svc, &[("email", EMAIL), ("password", PASSWORD)])
        .await
        .assert_ok();
    find(&svc, &[("jwtTokenString", &jwt(jwt_claims()))])
        .await
        .assert_ok();
    let rs = {
        let key = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-1".into());
        encode(&header, &jwt_claims(), &key).unwrap()
    };
    find(&svc, &[("jwtTokenString", &rs)]).await.assert_ok();
    // Wrong email and wrong password answer the same.
    let wrong_password = find(&svc, &[("email", EMAIL), ("password", "not-it-at-all")]).await;
    wrong_password.error(401, "InvalidSession", INVALID);
    let unknown_user = find(
        &svc,
        &[("email", "eve@example.com"), ("password", PASSWORD)],
    )
    .await;
    unknown_user.error(401, "InvalidSession", INVALID);
}

#[tokio::test]
async fn login_bearer_refresh_logout() {
    let sink = MemoryLogSink::new(64);
    let svc = builder(&sink).build().unwrap();
    let answer = login(
        &svc,
        "local-userpass",
        json!({"username": EMAIL, "password": PASSWORD}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let tokens = answer.json();
    let keys: Vec<&String> = tokens.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["access_token", "refresh_token", "user_id", "device_id"]
    );
    assert_eq!(tokens["user_id"], MemoryUserStore::user_id(EMAIL));
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let bearer = |token: &str| format!("Bearer {token}");

    find(&svc, &[("Authorization", &bearer(&access))])
        .await
        .assert_ok();
    // Profile.
    let profile = send(
        &svc,
        request(
            "GET",
            &format!("{CLIENT}/auth/profile"),
            &[("authorization", &bearer(&access))],
            "",
        ),
    )
    .await;
    assert_eq!(profile.status, StatusCode::OK, "{}", profile.body);
    let profile = profile.json();
    assert_eq!(profile["user_id"], tokens["user_id"]);
    assert_eq!(profile["type"], "normal");
    assert_eq!(profile["identities"][0]["provider_type"], "local-userpass");
    assert_eq!(profile["data"]["email"], EMAIL);
    assert_eq!(profile["domain_id"].as_str().unwrap().len(), 24);
    // Refresh.
    let session = format!("{CLIENT}/auth/session");
    let refreshed = send(
        &svc,
        request(
            "POST",
            &session,
            &[("Authorization", &bearer(&refresh))],
            "",
        ),
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::CREATED, "{}", refreshed.body);
    let new_access = refreshed.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    find(&svc, &[("Authorization", &bearer(&new_access))])
        .await
        .assert_ok();
    // Tokens are not interchangeable.
    find(&svc, &[("Authorization", &bearer(&refresh))])
        .await
        .error(401, "InvalidSession", INVALID);
    send(
        &svc,
        request("POST", &session, &[("Authorization", &bearer(&access))], ""),
    )
    .await
    .error(401, "InvalidSession", INVALID);
    // Logout: 204, then the refresh token and the session's access tokens are dead.
    let logout = send(
        &svc,
        request(
            "DELETE",
            &session,
            &[("Authorization", &bearer(&refresh))],
            "",
        ),
    )
    .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert!(logout.body.is_empty());
    assert!(logout.headers.get("content-type").is_none());
    send(
        &svc,
        request(
            "POST",
            &session,
            &[("Authorization", &bearer(&refresh))],
            "",
        ),
    )
    .await
    .error(401, "InvalidSession", INVALID);
    find(&svc, &[("Authorization", &bearer(&new_access))])
        .await
        .error(401, "InvalidSession", INVALID);
    send(
        &svc,
        request(
            "DELETE",
            &session,
            &[("Authorization", &bearer(&refresh))],
            "",
        ),
    )
    .await
    .error(401, "InvalidSession", INVALID);
    // The log never holds a token or password.
    let logs = format!("{:?}", sink.entries());
    for secret in [
        PASSWORD,
        access.as_str(),
        refresh.as_str(),
        new_access.as_str(),
    ] {
        assert!(!logs.contains(secret));
    }
    assert!(logs.contains("auth/login") && logs.contains("auth/session"));
}

#[tokio::test]
async fn every_login_provider() {
    let svc = builder(&MemoryLogSink::new(8))
        .anonymous_users(true)
        .build()
        .unwrap();
    let key = login(&svc, "api-key", json!({"key": KEY})).await;
    assert_eq!(key.status, StatusCode::OK, "{}", key.body);
    let token = login(&svc, "custom-token", json!({"token": jwt(jwt_claims())})).await;
    assert_eq!(token.json()["user_id"], "jwt-user");
    let by_key = login(&svc, "custom-token", json!({"key": jwt(jwt_claims())})).await;
    assert_eq!(by_key.status, StatusCode::OK);
    let anon = login(&svc, "anon-user", json!({})).await;
    assert_eq!(anon.status, StatusCode::OK);
    let anon_empty = send(
        &svc,
        request(
            "POST",
            &format!("{CLIENT}/app/{APP}/auth/providers/anon-user/login"),
            &[],
            "",
        ),
    )
    .await;
    assert_eq!(anon_empty.status, StatusCode::OK);
    // Device ids: the client's when it sends a real one.
    let device = "64b0c0ffee0000000000beef";
    let with_device = login(
        &svc,
        "api-key",
        json!({"key": KEY, "options": {"device": {"deviceId": device}}}),
    )
    .await;
    assert_eq!(with_device.json()["device_id"], device);
    let zeros = login(
        &svc,
        "api-key",
        json!({"key": KEY, "options": {"device": {"deviceId": "000000000000000000000000"}}}),
    )
    .await;
    assert_ne!(zeros.json()["device_id"], "000000000000000000000000");
    // The access token of a custom-token login carries the metadata.
    let access = token.json()["access_token"].as_str().unwrap().to_owned();
    let profile = send(
        &svc,
        request(
            "GET",
            &format!("{CLIENT}/auth/profile"),
            &[("authorization", &format!("Bearer {access}"))],
            "",
        ),
    )
    .await;
    assert_eq!(profile.json()["data"]["name"], "Jay");
}

#[tokio::test]
async fn login_errors() {
    let svc = service();
    login(
        &svc,
        "local-userpass",
        json!({"username": EMAIL, "password": "wrong-password"}),
    )
    .await
    .error(401, "InvalidPassword", "invalid username/password");
    login(
        &svc,
        "local-userpass",
        json!({"username": "nobody@example.com", "password": PASSWORD}),
    )
    .await
    .error(401, "InvalidPassword", "invalid username/password");
    login(&svc, "local-userpass", json!({"username": EMAIL}))
        .await
        .error(400, "MissingParameter", "missing required field 'password'");
    login(
        &svc,
        "local-userpass",
        json!({"username": EMAIL, "password": 5}),
    )
    .await
    .error(
        400,
        "InvalidParameter",
        "'password' must be a non-empty string",
    );
    login(&svc, "api-key", json!({"key": "nope"})).await.error(
        401,
        "InvalidSession",
        "invalid API key",
    );
    let mut expired = jwt_claims();
    expired["exp"] = json!(now_secs() - 3600);
    login(&svc, "custom-token", json!({"token": jwt(expired)}))
        .await
        .error(401, "AuthError", "invalid custom auth token");
    login(&svc, "anon-user", json!({})).await.error(
        404,
        "AuthProviderNotFound",
        "authentication via 'anon-user' is unsupported",
    );
    login(&svc, "custom-function", json!({})).await.error(
        404,
        "AuthProviderNotFound",
        "authentication via 'custom-function' is unsupported",
    );
    let raw = |method: &str, uri: &str, body: &str| request(method, uri, &[], body);
    let path = format!("{CLIENT}/app/{APP}/auth/providers/api-key/login");
    send(&svc, raw("POST", &path, "[1]")).await.error(
        400,
        "InvalidParameter",
        "the request body must be a JSON object",
    );
    send(&svc, raw("POST", &path, "{not json")).await.error(
        400,
        "InvalidParameter",
        "the request body must be a JSON object",
    );
    let get = send(&svc, raw("GET", &path, "")).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.headers["allow"], "POST");
    let session = send(&svc, raw("PUT", &format!("{CLIENT}/auth/session"), "")).await;
    assert_eq!(session.headers["allow"], "POST, DELETE");
    send(
        &svc,
        raw(
            "POST",
            &format!("{CLIENT}/app/other/auth/providers/api-key/login"),
            "{}",
        ),
    )
    .await
    .error(
        404,
        "AppNotFound",
        "cannot find app using Client App ID 'other'",
    );
    send(&svc, raw("POST", &format!("{CLIENT}/auth/session"), ""))
        .await
        .error(401, "InvalidSession", INVALID);
    send(&svc, raw("GET", &format!("{CLIENT}/auth/profile"), ""))
        .await
        .error(401, "InvalidSession", INVALID);
}

#[tokio::test]
async fn location_answers_the_mount_point() {
    let svc = service();
    let answer = send(
        &svc,
        request(
            "GET",
            &format!("{CLIENT}/app/{APP}/location"),
            &[("host", "api.example.com:8080")],
            "",
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"deployment_model": "GLOBAL", "location": "US-VA",
               "hostname": "http://api.example.com:8080", "ws_hostname": "ws://api.example.com:8080"})
    );
    let configured = builder(&MemoryLogSink::new(4))
        .client_base_url("https://x.example/data/")
        .build()
        .unwrap();
    let answer = send(
        &configured,
        request("GET", &format!("{CLIENT}/app/{APP}/location"), &[], ""),
    )
    .await;
    assert_eq!(answer.json()["hostname"], "https://x.example/data");
    assert_eq!(answer.json()["ws_hostname"], "wss://x.example/data");
    assert!(svc.handles_path("/api/client/v2.0/auth/session"));
    assert!(!svc.handles_path("/api/client/v2.0/other"));
}

/// The issue's hostile table: each case with its status, code and message.
#[tokio::test]
async fn hostile_table() {
    let svc = service();
    let other_app = DataApi::builder()
        .app_id("data-other")
        .data_source("mongodb-atlas", Scripted::default())
        .api_key("ci", KEY)
        .signing_key("k1", SIGNING_KEY)
        .build()
        .unwrap();
    let foreign = {
        let uri = format!("{CLIENT}/app/data-other/auth/providers/api-key/login");
        let answer = send(
            &other_app,
            request("POST", &uri, &[], &json!({"key": KEY}).to_string()),
        )
        .await;
        answer.json()["access_token"].as_str().unwrap().to_owned()
    };
    let tokens = login(&svc, "api-key", json!({"key": KEY})).await.json();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&jwt_claims())
    );
    let confused = {
        let key = EncodingKey::from_secret(RSA_PUBLIC_PEM.as_bytes()).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-1".into());
        encode(&header, &jwt_claims(), &key).unwrap()
    };
    let patched = |patch: Value| {
        let mut claims = jwt_claims();
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        jwt(claims)
    };
    let tampered = {
        let good = jwt(jwt_claims());
        let parts: Vec<&str> = good.split('.').collect();
        let mut claims = jwt_claims();
        claims["sub"] = json!("admin");
        format!("{}.{}.{}", parts[0], b64(&claims), parts[2])
    };
    let tampered_access = {
        let parts: Vec<&str> = access.split('.').collect();
        let mut claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(&access).unwrap();
        claims["sub"] = json!("someone-else");
        format!("{}.{}.{}", parts[0], b64(&claims), parts[2])
    };
    let session_path = format!("{CLIENT}/auth/session");
    // Logout, then reuse.
    let logged_out = login(&svc, "api-key", json!({"key": KEY})).await.json();
    let dead_refresh = logged_out["refresh_token"].as_str().unwrap().to_owned();
    let dead_access = logged_out["access_token"].as_str().unwrap().to_owned();
    let logout = send(
        &svc,
        request(
            "DELETE",
            &session_path,
            &[("authorization", &format!("Bearer {dead_refresh}"))],
            "",
        ),
    )
    .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);

    let now = now_secs();
    let bearer = |t: &str| format!("Bearer {t}");
    let unauthorized: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("jwt alg none", vec![("jwtTokenString", alg_none.clone())]),
        ("jwt key confusion", vec![("jwtTokenString", confused)]),
        (
            "jwt expired",
            vec![("jwtTokenString", patched(json!({"exp": now - 3600})))],
        ),
        (
            "jwt future nbf",
            vec![("jwtTokenString", patched(json!({"nbf": now + 3600})))],
        ),
        (
            "jwt wrong aud",
            vec![("jwtTokenString", patched(json!({"aud": "data-other"})))],
        ),
        ("jwt tampered", vec![("jwtTokenString", tampered)]),
        (
            "bearer alg none",
            vec![("Authorization", bearer(&alg_none))],
        ),
        (
            "bearer from another app",
            vec![("Authorization", bearer(&foreign))],
        ),
        (
            "bearer tampered",
            vec![("Authorization", bearer(&tampered_access))],
        ),
        (
            "refresh token as access token",
            vec![("Authorization", bearer(&refresh))],
        ),
        (
            "access token after logout",
            vec![("Authorization", bearer(&dead_access))],
        ),
        (
            "bad bearer with a good apiKey",
            vec![
                ("Authorization", "Bearer nope".into()),
                ("apiKey", KEY.into()),
            ],
        ),
        (
            "bad bearer with good email/password",
            vec![
                ("authorization", "bearer x.y.z".into()),
                ("email", EMAIL.into()),
                ("password", PASSWORD.into()),
            ],
        ),
        ("wrong api key", vec![("api-key", "wrong".into())]),
        ("empty api key", vec![("apiKey", "".into())]),
        ("non-ASCII api key", vec![("apiKey", "ключ".into())]),
    ];
    for (name, headers) in &unauthorized {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let answer = send(&svc, request_bytes(&headers)).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{name}: {}",
            answer.body
        );
        answer.error(401, "InvalidSession", INVALID);
    }
    // Refresh after logout, access token as refresh token.
    for token in [&dead_refresh, &access] {
        send(
            &svc,
            request(
                "POST",
                &session_path,
                &[("Authorization", &bearer(token))],
                "",
            ),
        )
        .await
        .error(401, "InvalidSession", INVALID);
    }
    // Incomplete and missing credentials.
    find(&svc, &[("email", EMAIL)])
        .await
        .error(400, "MissingParameter", INCOMPLETE);
    find(&svc, &[("password", PASSWORD)])
        .await
        .error(400, "MissingParameter", INCOMPLETE);
    find(&svc, &[]).await.error(
        400,
        "InvalidParameter",
        "no authentication methods were specified",
    );
    find(&svc, &[("authorization", "Basic Zm9vOmJhcg==")])
        .await
        .error(
            400,
            "InvalidParameter",
            "no authentication methods were specified",
        );
    // Header-case variants all work.
    for (name, value) in [("APIKEY", KEY), ("Api-Key", KEY), ("apikey", KEY)] {
        assert_eq!(
            find(&svc, &[(name, value)]).await.status,
            StatusCode::OK,
            "{name}"
        );
    }
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let header = format!("{scheme} {access}");
        assert_eq!(
            find(&svc, &[("AUTHORIZATION", &header)]).await.status,
            StatusCode::OK,
            "{scheme}"
        );
    }
    find(&svc, &[("EMAIL", EMAIL), ("Password", PASSWORD)])
        .await
        .assert_ok();
    find(&svc, &[("JWTTOKENSTRING", &jwt(jwt_claims()))])
        .await
        .assert_ok();
}

fn request_bytes(headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut builder = Request::post(FIND);
    for (name, value) in headers {
        builder = builder.header(
            *name,
            http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    builder.body(Full::new(Bytes::from(BODY))).unwrap()
}

#[tokio::test]
async fn run_as_modes() {
    let sink = MemoryLogSink::new(16);
    let fixed = DataApi::builder()
        .app_id(APP)
        .data_source("mongodb-atlas", Scripted::default())
        .run_as(RunAs::User("runner".into()))
        .log_sink(sink.clone())
        .build()
        .unwrap();
    find(&fixed, &[]).await.assert_ok();
    assert_eq!(
        sink.entries().last().unwrap().principal_id.as_deref(),
        Some("runner")
    );
    // Credentials, when present, are still checked.
    find(&fixed, &[("apiKey", "unknown")])
        .await
        .error(401, "InvalidSession", INVALID);
    let system = DataApi::builder()
        .app_id(APP)
        .data_source("mongodb-atlas", Scripted::default())
        .run_as(RunAs::System)
        .log_sink(sink.clone())
        .build()
        .unwrap();
    find(&system, &[]).await.assert_ok();
    assert_eq!(
        sink.entries().last().unwrap().principal_id.as_deref(),
        Some("system")
    );
    let chosen = DataApi::builder()
        .app_id(APP)
        .data_source("mongodb-atlas", Scripted::default())
        .run_as_fn(
            |parts| match parts.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
                Some("root") => RunAs::System,
                Some(tenant) => RunAs::User(format!("tenant-{tenant}")),
                None => RunAs::Nobody,
            },
        )
        .log_sink(sink.clone())
        .build()
        .unwrap();
    find(&chosen, &[("x-tenant", "acme")]).await.assert_ok();
    assert_eq!(
        sink.entries().last().unwrap().principal_id.as_deref(),
        Some("tenant-acme")
    );
    find(&chosen, &[]).await.error(
        400,
        "InvalidParameter",
        "no authentication methods were specified",
    );
}

/// Trusts `x-gateway-user`, refuses `x-gateway-user: banned`.
struct Gateway;

#[async_trait]
impl Authenticator for Gateway {
    async fn authenticate(
        &self,
        request: &AuthRequest<'_>,
    ) -> Result<Option<Principal>, crate::ApiError> {
        match request.header("x-gateway-user") {
            Some("banned") => Err(crate::ApiError::invalid_session()),
            Some(user) => Ok(Some(Principal::user(user, "gateway"))),
            None => Ok(None),
        }
    }
}

#[tokio::test]
async fn custom_authenticators_compose_with_the_built_in_schemes() {
    let sink = MemoryLogSink::new(16);
    let only_custom = DataApi::builder()
        .app_id(APP)
        .data_source("mongodb-atlas", Scripted::default())
        .authenticator(Gateway)
        .log_sink(sink.clone())
        .build()
        .unwrap();
    find(&only_custom, &[("x-gateway-user", "gw-1")])
        .await
        .assert_ok();
    assert_eq!(
        sink.entries().last().unwrap().principal_id.as_deref(),
        Some("gw-1")
    );
    find(&only_custom, &[("x-gateway-user", "banned")])
        .await
        .error(401, "InvalidSession", INVALID);
    find(&only_custom, &[]).await.error(
        400,
        "InvalidParameter",
        "no authentication methods were specified",
    );
    find(&only_custom, &[("apiKey", KEY)])
        .await
        .error(401, "InvalidSession", INVALID);
    let mixed = builder(&sink).authenticator(Gateway).build().unwrap();
    find(&mixed, &[("x-gateway-user", "gw-2")])
        .await
        .assert_ok();
    find(&mixed, &[("apiKey", KEY)]).await.assert_ok();
    // Bearer comes first: a bad token is not rescued by the gateway header.
    find(
        &mixed,
        &[("Authorization", "Bearer bad"), ("x-gateway-user", "gw-3")],
    )
    .await
    .error(401, "InvalidSession", INVALID);
}

#[tokio::test]
async fn request_validation_after_authentication() {
    let secret = "Super5ecr3tPa55w0rd";
    let signed = builder(&MemoryLogSink::new(8))
        .request_validation(RequestValidation::VerifyPayload(secret.into()))
        .build()
        .unwrap();
    let signature = payload_signature(secret, BODY.as_bytes());
    find(
        &signed,
        &[("apiKey", KEY), ("Endpoint-Signature", &signature)],
    )
    .await
    .assert_ok();
    let bad = payload_signature("another-secret", BODY.as_bytes());
    find(&signed, &[("apiKey", KEY), ("Endpoint-Signature", &bad)])
        .await
        .error(
            401,
            "InvalidSession",
            "failed to validate request: invalid payload signature",
        );
    find(&signed, &[("apiKey", KEY)]).await.error(
        401,
        "InvalidSession",
        "failed to validate request: invalid payload signature",
    );
    // Authentication comes first.
    find(&signed, &[("Endpoint-Signature", &signature)])
        .await
        .error(
            400,
            "InvalidParameter",
            "no authentication methods were specified",
        );
    // The client API is not subject to it.
    login(&signed, "api-key", json!({"key": KEY}))
        .await
        .assert_ok();

    let query = builder(&MemoryLogSink::new(8))
        .request_validation(RequestValidation::SecretAsQueryParam("s3cret".into()))
        .build()
        .unwrap();
    let with_secret = send(
        &query,
        request(
            "POST",
            &format!("{FIND}?secret=s3cret"),
            &[("apiKey", KEY)],
            BODY,
        ),
    )
    .await;
    assert_eq!(with_secret.status, StatusCode::OK);
    send(
        &query,
        request(
            "POST",
            &format!("{FIND}?secret=nope"),
            &[("apiKey", KEY)],
            BODY,
        ),
    )
    .await
    .error(
        401,
        "InvalidSession",
        "failed to validate request: invalid secret",
    );
}

#[test]
fn builder_needs_some_scheme_and_checks_each() {
    let err = |b: DataApiBuilder| b.build().unwrap_err().to_string();
    let base = || DataApi::builder().data_source("x", Scripted::default());
    assert!(err(base()).contains("no way to authenticate"));
    assert!(base().user_store(users()).build().is_ok());
    assert!(base()
        .custom_jwt(JwtProvider::new().hs256_secret(JWT_SECRET))
        .build()
        .is_ok());
    assert!(base().anonymous_users(true).build().is_ok());
    assert!(base().run_as(RunAs::System).build().is_ok());
    assert!(base().authenticator(Gateway).build().is_ok());
    assert!(err(base().custom_jwt(JwtProvider::new())).contains("custom JWT"));
    assert!(err(base().api_key("a", "k").signing_key("k", "short")).contains("signing key"));
    assert!(err(base()
        .api_key("a", "k")
        .user("not-an-email", "long-password"))
    .contains("user"));
    assert!(err(base()
        .api_key("a", "k")
        .request_validation(RequestValidation::VerifyPayload("".into())))
    .contains("secret"));
    let debug = format!(
        "{:?}",
        builder(&MemoryLogSink::new(1)).user(EMAIL, PASSWORD)
    );
    for secret in [KEY, PASSWORD, JWT_SECRET, SIGNING_KEY] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

/// Captures every `tracing` event at every level, as text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_a_log_line() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let svc = DataApi::builder()
        .app_id(APP)
        .data_source("mongodb-atlas", Scripted::default())
        .api_key("ci", KEY)
        .user_store(users())
        .custom_jwt(JwtProvider::new().hs256_secret(JWT_SECRET))
        .signing_key("k1", SIGNING_KEY)
        .build()
        .unwrap();
    let token = jwt(jwt_claims());
    let tokens = login(
        &svc,
        "local-userpass",
        json!({"username": EMAIL, "password": PASSWORD}),
    )
    .await
    .json();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    find(&svc, &[("apiKey", KEY)]).await;
    find(&svc, &[("apiKey", "wrong-key-value")]).await;
    find(&svc, &[("email", EMAIL), ("password", PASSWORD)]).await;
    find(&svc, &[("email", EMAIL), ("password", "wrong-Pa55word")]).await;
    find(&svc, &[("jwtTokenString", &token)]).await;
    find(&svc, &[("jwtTokenString", &format!("{token}x"))]).await;
    find(&svc, &[("Authorization", &format!("Bearer {access}"))]).await;
    find(&svc, &[("Authorization", &format!("Bearer {refresh}"))]).await;
    send(
        &svc,
        request(
            "DELETE",
            &format!("{CLIENT}/auth/session"),
            &[("Authorization", &format!("Bearer {refresh}"))],
            "",
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("data api request"),
        "the capture saw the request logs: {text}"
    );
    for secret in [
        KEY,
        "wrong-key-value",
        PASSWORD,
        "wrong-Pa55word",
        JWT_SECRET,
        SIGNING_KEY,
        &token,
        &access,
        &refresh,
    ] {
        assert!(!text.contains(secret), "a secret reached the log");
    }
}

#[tokio::test]
async fn the_layer_hands_client_api_routes_to_the_data_api() {
    let layer = crate::DataApiLayer::new(service());
    let inner = tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(
            b"inner",
        ))))
    });
    let app = tower::Layer::layer(&layer, inner);
    let uri = format!("{CLIENT}/app/{APP}/auth/providers/api-key/login");
    let response = app
        .clone()
        .oneshot(request("POST", &uri, &[], &json!({"key": KEY}).to_string()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let tokens: Value = serde_json::from_slice(&body).unwrap();
    assert!(tokens["access_token"].is_string());
    let other = app
        .oneshot(request("GET", "/api/client/v2.0/other", &[], ""))
        .await
        .unwrap();
    let body = other.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"inner");
}

/// Client API bodies and tokens that are wrong get a 4xx, never a 500.
#[tokio::test]
async fn client_api_refuses_hostile_input_with_4xx() {
    let svc = service();
    let raw = |method: &str, uri: &str, body: Vec<u8>| {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let login_path = format!("{CLIENT}/app/{APP}/auth/providers/api-key/login");
    let nested = format!(r#"{{"key":{}1{}}}"#, "[".repeat(300), "]".repeat(300));
    for (name, body) in [
        ("invalid UTF-8", b"{\"key\":\"\xff\"}".to_vec()),
        ("deep nesting", nested.into_bytes()),
        ("huge number", br#"{"key":1e400}"#.to_vec()),
    ] {
        let answer = send(&svc, raw("POST", &login_path, body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}");
        answer.error(
            400,
            "InvalidParameter",
            "the request body must be a JSON object",
        );
    }
    for body in [
        json!({"key": 12345678901234567890u64}),
        json!({"key": {"a": 1}}),
    ] {
        login(&svc, "api-key", body).await.error(
            400,
            "InvalidParameter",
            "'key' must be a non-empty string",
        );
    }
    login(&svc, "api-key", json!({"key": ""})).await.error(
        400,
        "InvalidParameter",
        "'key' must be a non-empty string",
    );
    // Refresh and profile with tokens that are not JWTs at all.
    for token in [&b"Bearer \xff\xfe"[..], b"Bearer a.b.c", b"Bearer ...."] {
        for (method, path) in [
            ("POST", "session"),
            ("DELETE", "session"),
            ("GET", "profile"),
        ] {
            let request = Request::builder()
                .method(method)
                .uri(format!("{CLIENT}/auth/{path}"))
                .header(
                    "authorization",
                    http::HeaderValue::from_bytes(token).unwrap(),
                )
                .body(Full::new(Bytes::from_static(b"\xff")))
                .unwrap();
            send(&svc, request)
                .await
                .error(401, "InvalidSession", INVALID);
        }
    }
}
