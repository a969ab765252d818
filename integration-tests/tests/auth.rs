//! Authentication over real HTTP: every credential scheme on the standalone
//! server and on an axum mount, the client API's login → bearer CRUD →
//! refresh → logout flows, the hostile table, payload signatures, the custom
//! authenticator example, and a log capture scanned for every secret used.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use integration_tests::{b64url, client, standalone_with, BackendKind, TestServer};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower_data_api::auth::{payload_signature, JwtProvider, MemoryUserStore};
use tower_data_api::{DataApi, MemoryBackend};

#[path = "../../examples/custom_auth.rs"]
#[allow(dead_code)]
mod custom_auth;

const APP: &str = "data-authtest";
const API_KEY: &str = "authtest-api-key-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "authtest-Pa55word-ada";
const JWT_SECRET: &str = "authtest-jwt-secret-0123456789abcdefghij";
const SIGNING_KEY: &str = "authtest-signing-key-0123456789abcdefghij";
const VALIDATION_SECRET: &str = "Super5ecr3tPa55w0rd";
const GATEWAY_SECRET: &str = "authtest-gateway-secret-0123456789";
const INVALID: &str = "invalid session: error finding user for endpoint";
const NO_AUTH: &str = "no authentication methods were specified";
const INCOMPLETE: &str = "must specify some form of authentication (either email+password, api-key, or jwt) in the request header or body";

/// Every secret this file uses, for the log scan.
const SECRETS: [&str; 7] = [
    API_KEY,
    PASSWORD,
    JWT_SECRET,
    SIGNING_KEY,
    VALIDATION_SECRET,
    GATEWAY_SECRET,
    "wrong-Pa55word-value",
];

/// Everything `tracing` writes in this test binary, at every level.
fn log_capture() -> Arc<Mutex<Vec<u8>>> {
    static CAPTURE: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let writer = Writer(buffer.clone());
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || writer.clone())
                .finish();
            let _ = tracing::subscriber::set_global_default(subscriber);
            buffer
        })
        .clone()
}

#[derive(Clone)]
struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn config(extra: &str) -> String {
    format!(
        r#"app_id = "{APP}"
anonymous_users = true
{extra}
[[data_sources]]
name = "mongodb-atlas"
uri = "memory"
[[api_keys]]
name = "itest"
key = "{API_KEY}"
[[users]]
email = "{EMAIL}"
password = "{PASSWORD}"
[custom_jwt]
hs256_secrets = ["{JWT_SECRET}"]
metadata_fields = [{{ path = "profile.name", field_name = "name" }}]
[sessions]
signing_keys = [{{ kid = "itest-1", key = "{SIGNING_KEY}" }}]
"#
    )
}

async fn server(extra: &str) -> TestServer {
    log_capture();
    standalone_with(&config(extra), BackendKind::Memory)
        .await
        .expect("the embedded engine needs no peer")
}

/// A status and a body.
#[derive(Debug)]
struct Reply {
    status: u16,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }

    fn error(&self, status: u16, code: &str, message: &str, case: &str) {
        assert_eq!(self.status, status, "{case}: {}", self.text);
        let body = self.json();
        assert_eq!(body["error"], message, "{case}");
        assert_eq!(body["error_code"], code, "{case}");
        assert!(body["link"].is_string(), "{case}");
    }

    fn field(&self, name: &str) -> String {
        self.json()[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", self.text))
            .to_owned()
    }
}

async fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client().request(method, url).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request sent");
    Reply {
        status: response.status().as_u16(),
        text: response.text().await.expect("body read"),
    }
}

/// URLs of one mounted service: `root` is scheme, host and mount point.
struct Urls {
    root: String,
    app: String,
}

impl Urls {
    fn of(server: &TestServer) -> Self {
        let root = server
            .base
            .split("/app/")
            .next()
            .expect("base has /app/")
            .to_owned();
        Self::at(root, APP)
    }

    fn at(root: String, app: &str) -> Self {
        Self {
            app: app.to_owned(),
            root,
        }
    }

    fn action(&self, action: &str) -> String {
        format!(
            "{}/app/{}/endpoint/data/v1/action/{action}",
            self.root, self.app
        )
    }

    fn login(&self, provider: &str) -> String {
        format!(
            "{}/api/client/v2.0/app/{}/auth/providers/{provider}/login",
            self.root, self.app
        )
    }

    fn session(&self) -> String {
        format!("{}/api/client/v2.0/auth/session", self.root)
    }

    fn profile(&self) -> String {
        format!("{}/api/client/v2.0/auth/profile", self.root)
    }

    fn location(&self) -> String {
        format!("{}/api/client/v2.0/app/{}/location", self.root, self.app)
    }
}

fn body(extra: Value) -> String {
    let mut value = json!({"dataSource": "mongodb-atlas", "database": "authdb", "collection": "c"});
    if let (Some(target), Value::Object(extra)) = (value.as_object_mut(), extra) {
        target.extend(extra);
    }
    value.to_string()
}

async fn find(urls: &Urls, headers: &[(&str, &str)]) -> Reply {
    http("POST", &urls.action("find"), headers, &body(json!({}))).await
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 JWT (see [`integration_tests::hs256_jwt`]).
fn hs256(header: Value, claims: Value, secret: &str) -> String {
    integration_tests::hs256_jwt(&header, &claims, secret)
}

fn claims(patch: Value) -> Value {
    let mut claims = json!({"aud": APP, "sub": "jwt-user-1", "exp": now() + 600, "iat": now(),
                            "profile": {"name": "Jay"}});
    for (key, value) in patch.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

fn custom_jwt(patch: Value) -> String {
    hs256(
        json!({"alg": "HS256", "typ": "JWT"}),
        claims(patch),
        JWT_SECRET,
    )
}

/// Logs in, then runs insert/find/update/delete with the access token,
/// refreshes, checks the profile, logs out and checks the tokens are dead.
async fn full_flow(urls: &Urls, provider: &str, credentials: Value) -> Value {
    let login = http("POST", &urls.login(provider), &[], &credentials.to_string()).await;
    assert_eq!(login.status, 200, "{provider} login: {}", login.text);
    let tokens = login.json();
    for field in ["access_token", "refresh_token", "user_id", "device_id"] {
        assert!(
            tokens[field].is_string(),
            "{provider}: {field} in {}",
            login.text
        );
    }
    let access = format!("Bearer {}", login.field("access_token"));
    let refresh = format!("Bearer {}", login.field("refresh_token"));
    let auth = [("Authorization", access.as_str())];
    let id = format!("{provider}-doc");

    let inserted = http(
        "POST",
        &urls.action("insertOne"),
        &auth,
        &body(json!({"document": {"_id": id, "n": 1}})),
    )
    .await;
    assert_eq!(inserted.status, 201, "{provider} insert: {}", inserted.text);
    let found = http(
        "POST",
        &urls.action("findOne"),
        &auth,
        &body(json!({"filter": {"_id": id}})),
    )
    .await;
    assert_eq!(found.json()["document"]["n"], 1, "{provider}");
    let updated = http(
        "POST",
        &urls.action("updateOne"),
        &auth,
        &body(json!({"filter": {"_id": id}, "update": {"$set": {"n": 2}}})),
    )
    .await;
    assert_eq!(
        updated.json(),
        json!({"matchedCount": 1, "modifiedCount": 1}),
        "{provider}"
    );

    let refreshed = http(
        "POST",
        &urls.session(),
        &[("Authorization", refresh.as_str())],
        "",
    )
    .await;
    assert_eq!(
        refreshed.status, 201,
        "{provider} refresh: {}",
        refreshed.text
    );
    let new_access = format!("Bearer {}", refreshed.field("access_token"));
    let profile = http(
        "GET",
        &urls.profile(),
        &[("Authorization", new_access.as_str())],
        "",
    )
    .await;
    assert_eq!(profile.status, 200, "{provider} profile: {}", profile.text);
    assert_eq!(profile.json()["user_id"], tokens["user_id"]);
    let deleted = http(
        "POST",
        &urls.action("deleteOne"),
        &[("Authorization", new_access.as_str())],
        &body(json!({"filter": {"_id": id}})),
    )
    .await;
    assert_eq!(deleted.json(), json!({"deletedCount": 1}), "{provider}");

    let logout = http(
        "DELETE",
        &urls.session(),
        &[("Authorization", refresh.as_str())],
        "",
    )
    .await;
    assert_eq!(logout.status, 204, "{provider} logout: {}", logout.text);
    http(
        "POST",
        &urls.session(),
        &[("Authorization", refresh.as_str())],
        "",
    )
    .await
    .error(401, "InvalidSession", INVALID, "refresh after logout");
    find(urls, &[("Authorization", new_access.as_str())])
        .await
        .error(401, "InvalidSession", INVALID, "access token after logout");
    profile.json()
}

#[tokio::test]
async fn login_bearer_crud_refresh_logout_for_every_provider() {
    let server = server("").await;
    let urls = Urls::of(&server);
    let user = full_flow(
        &urls,
        "local-userpass",
        json!({"username": EMAIL, "password": PASSWORD}),
    )
    .await;
    assert_eq!(user["identities"][0]["provider_type"], "local-userpass");
    assert_eq!(user["data"]["email"], EMAIL);
    let key = full_flow(&urls, "api-key", json!({"key": API_KEY})).await;
    assert_eq!(key["type"], "server");
    let token = full_flow(
        &urls,
        "custom-token",
        json!({"token": custom_jwt(json!({}))}),
    )
    .await;
    assert_eq!(token["user_id"], "jwt-user-1");
    assert_eq!(token["data"]["name"], "Jay");
    full_flow(&urls, "custom-token", json!({"key": custom_jwt(json!({}))})).await;
    let anon = full_flow(&urls, "anon-user", json!({})).await;
    assert_eq!(anon["identities"][0]["provider_type"], "anon-user");

    let location = http("GET", &urls.location(), &[], "").await;
    assert_eq!(location.status, 200);
    assert_eq!(
        location.json()["hostname"],
        format!("http://{}", server.addr)
    );
}

#[tokio::test]
async fn every_credential_header_scheme() {
    let server = server("").await;
    let urls = Urls::of(&server);
    let jwt = custom_jwt(json!({}));
    let cases: [(&str, Vec<(&str, &str)>); 6] = [
        ("apiKey", vec![("apiKey", API_KEY)]),
        ("api-key", vec![("api-key", API_KEY)]),
        ("APIKEY", vec![("APIKEY", API_KEY)]),
        (
            "email/password",
            vec![("email", EMAIL), ("password", PASSWORD)],
        ),
        (
            "EMAIL/PASSWORD",
            vec![("EMAIL", EMAIL), ("PASSWORD", PASSWORD)],
        ),
        ("jwtTokenString", vec![("jwtTokenString", jwt.as_str())]),
    ];
    for (name, headers) in cases {
        let answer = find(&urls, &headers).await;
        assert_eq!(answer.status, 200, "{name}: {}", answer.text);
    }
}

/// One hostile case: name, request headers, expected status, code and message.
type HostileCase<'a> = (&'a str, Vec<(&'a str, String)>, u16, &'a str, &'a str);

/// The issue's hostile table, each case with its expected status and body.
#[tokio::test]
async fn hostile_table() {
    let server = server("").await;
    let urls = Urls::of(&server);
    let other = {
        let text = config("").replace(APP, "data-otherapp");
        standalone_with(&text, BackendKind::Memory).await.unwrap()
    };
    let other_urls = Urls::at(Urls::of(&other).root, "data-otherapp");
    let foreign = http(
        "POST",
        &other_urls.login("api-key"),
        &[],
        &json!({"key": API_KEY}).to_string(),
    )
    .await
    .field("access_token");
    let tokens = http(
        "POST",
        &urls.login("api-key"),
        &[],
        &json!({"key": API_KEY}).to_string(),
    )
    .await;
    let access = tokens.field("access_token");
    let refresh = tokens.field("refresh_token");
    let dead = http(
        "POST",
        &urls.login("local-userpass"),
        &[],
        &json!({"username": EMAIL, "password": PASSWORD}).to_string(),
    )
    .await;
    let dead_refresh = dead.field("refresh_token");
    let dead_access = dead.field("access_token");
    let logout = http(
        "DELETE",
        &urls.session(),
        &[("Authorization", &format!("Bearer {dead_refresh}"))],
        "",
    )
    .await;
    assert_eq!(logout.status, 204);

    let alg_none = format!(
        "{}.{}.",
        b64url(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes()),
        b64url(claims(json!({})).to_string().as_bytes())
    );
    let forged_alg = hs256(
        json!({"alg": "HS512", "typ": "JWT"}),
        claims(json!({})),
        JWT_SECRET,
    );
    let wrong_key = hs256(
        json!({"alg": "HS256"}),
        claims(json!({})),
        "some-other-secret-0123456789abcdefghij",
    );
    // Key confusion: a token "signed" with an RS256 public key used as an HS256 secret.
    let rsa_pem = include_str!("../../src/auth/testdata/rsa_public.pem");
    let confused = hs256(
        json!({"alg": "HS256", "kid": "rsa"}),
        claims(json!({})),
        rsa_pem,
    );
    let tampered = {
        let good = custom_jwt(json!({}));
        let parts: Vec<&str> = good.split('.').collect();
        let payload = b64url(claims(json!({"sub": "admin"})).to_string().as_bytes());
        format!("{}.{payload}.{}", parts[0], parts[2])
    };
    let tampered_access = {
        let parts: Vec<&str> = access.split('.').collect();
        let payload = b64url(
            json!({"sub": "admin", "typ": "access", "exp": now() + 600})
                .to_string()
                .as_bytes(),
        );
        format!("{}.{payload}.{}", parts[0], parts[2])
    };
    let now = now();
    let bearer = |token: &str| format!("Bearer {token}");
    let table: Vec<HostileCase> = vec![
        (
            "jwt alg none",
            vec![("jwtTokenString", alg_none.clone())],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "jwt HS512 not accepted",
            vec![("jwtTokenString", forged_alg)],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "jwt signed with another secret",
            vec![("jwtTokenString", wrong_key)],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "jwt key confusion",
            vec![("jwtTokenString", confused)],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "jwt expired",
            vec![("jwtTokenString", custom_jwt(json!({"exp": now - 3600})))],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "jwt future nbf",
            vec![("jwtTokenString", custom_jwt(json!({"nbf": now + 3600})))],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "jwt wrong aud",
            vec![(
                "jwtTokenString",
                custom_jwt(json!({"aud": "data-otherapp"})),
            )],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "jwt tampered payload",
            vec![("jwtTokenString", tampered)],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "bearer alg none",
            vec![("Authorization", bearer(&alg_none))],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "bearer from another app id",
            vec![("Authorization", bearer(&foreign))],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "bearer tampered payload",
            vec![("Authorization", bearer(&tampered_access))],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "refresh token as access token",
            vec![("Authorization", bearer(&refresh))],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "access token after logout",
            vec![("Authorization", bearer(&dead_access))],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "garbage bearer",
            vec![("Authorization", "Bearer not-a-token".into())],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "bad bearer and a good apiKey",
            vec![
                ("Authorization", "Bearer nope".into()),
                ("apiKey", API_KEY.into()),
            ],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "bad bearer, lower-case scheme",
            vec![
                ("authorization", "bearer nope".into()),
                ("email", EMAIL.into()),
                ("password", PASSWORD.into()),
            ],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "wrong api key",
            vec![("api-key", "wrong-key".into())],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "wrong password",
            vec![
                ("email", EMAIL.into()),
                ("password", "wrong-Pa55word-value".into()),
            ],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "unknown email",
            vec![
                ("email", "eve@example.com".into()),
                ("password", PASSWORD.into()),
            ],
            401,
            "InvalidSession",
            INVALID,
        ),
        (
            "email without password",
            vec![("email", EMAIL.into())],
            400,
            "MissingParameter",
            INCOMPLETE,
        ),
        (
            "password without email",
            vec![("Password", PASSWORD.into())],
            400,
            "MissingParameter",
            INCOMPLETE,
        ),
        ("no credentials", vec![], 400, "InvalidParameter", NO_AUTH),
        (
            "Basic authorization only",
            vec![("Authorization", "Basic YTpi".into())],
            400,
            "InvalidParameter",
            NO_AUTH,
        ),
    ];
    for (case, headers, status, code, message) in &table {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        find(&urls, &headers)
            .await
            .error(*status, code, message, case);
    }
    // Refresh with a dead refresh token or with an access token.
    for (case, token) in [
        ("refresh after logout", &dead_refresh),
        ("access token as refresh token", &access),
    ] {
        http(
            "POST",
            &urls.session(),
            &[("Authorization", &bearer(token))],
            "",
        )
        .await
        .error(401, "InvalidSession", INVALID, case);
    }
    // Login failures.
    http(
        "POST",
        &urls.login("local-userpass"),
        &[],
        &json!({"username": EMAIL, "password": "wrong-Pa55word-value"}).to_string(),
    )
    .await
    .error(
        401,
        "InvalidPassword",
        "invalid username/password",
        "login wrong password",
    );
    http(
        "POST",
        &urls.login("custom-token"),
        &[],
        &json!({"token": alg_none}).to_string(),
    )
    .await
    .error(
        401,
        "AuthError",
        "invalid custom auth token",
        "login alg none",
    );
    http(
        "POST",
        &Urls::at(urls.root.clone(), "data-nope").login("api-key"),
        &[],
        "{}",
    )
    .await
    .error(
        404,
        "AppNotFound",
        "cannot find app using Client App ID 'data-nope'",
        "login unknown app",
    );
    // Header-case variants of good credentials.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let header = format!("{scheme} {access}");
        assert_eq!(
            find(&urls, &[("AUTHORIZATION", &header)]).await.status,
            200,
            "{scheme}"
        );
    }
    drop(other);
}

#[tokio::test]
async fn payload_signature_and_secret_parameter() {
    let server = server(&format!(
        "validation_method = \"VERIFY_PAYLOAD\"\nvalidation_secret = \"{VALIDATION_SECRET}\""
    ))
    .await;
    let urls = Urls::of(&server);
    let raw = r#"{ "dataSource": "mongodb-atlas", "database": "authdb", "collection": "c" }"#;
    let signature = payload_signature(VALIDATION_SECRET, raw.as_bytes());
    let ok = http(
        "POST",
        &urls.action("find"),
        &[("apiKey", API_KEY), ("Endpoint-Signature", &signature)],
        raw,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    // The same JSON with other spacing is another body: refused.
    let compact = r#"{"dataSource":"mongodb-atlas","database":"authdb","collection":"c"}"#;
    http(
        "POST",
        &urls.action("find"),
        &[("apiKey", API_KEY), ("Endpoint-Signature", &signature)],
        compact,
    )
    .await
    .error(
        401,
        "InvalidSession",
        "failed to validate request: invalid payload signature",
        "re-spaced body",
    );
    // The spec's worked example signs `{ "message": "Hello!" }` as sent.
    let example = payload_signature(VALIDATION_SECRET, br#"{ "message": "Hello!" }"#);
    assert!(
        example.starts_with("sha256=d4f0537d") && example.ends_with("e0b36"),
        "{example}"
    );

    let query = server_with_secret_param().await;
    let urls = Urls::of(&query);
    let good = format!("{}?secret={VALIDATION_SECRET}", urls.action("find"));
    assert_eq!(
        http("POST", &good, &[("apiKey", API_KEY)], &body(json!({})))
            .await
            .status,
        200
    );
    let bad = format!("{}?secret=guess", urls.action("find"));
    http("POST", &bad, &[("apiKey", API_KEY)], &body(json!({})))
        .await
        .error(
            401,
            "InvalidSession",
            "failed to validate request: invalid secret",
            "wrong secret",
        );
}

async fn server_with_secret_param() -> TestServer {
    server(&format!(
        "validation_method = \"SECRET_AS_QUERY_PARAM\"\nvalidation_secret = \"{VALIDATION_SECRET}\""
    ))
    .await
}

/// Serves `service` on 127.0.0.1:0 under axum's `/data`.
async fn axum_mount(service: tower_data_api::DataApiService) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let app = axum::Router::new()
        .route("/hello", axum::routing::get(|| async { "hello" }))
        .nest_service("/data", service);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    (format!("http://{addr}/data"), stop)
}

#[tokio::test]
async fn every_scheme_on_an_axum_mount() {
    log_capture();
    let users = MemoryUserStore::new();
    users.add_user(EMAIL, PASSWORD).unwrap();
    let service = DataApi::builder()
        .app_id(APP)
        .data_source("mongodb-atlas", MemoryBackend::new())
        .api_key("itest", API_KEY)
        .user_store(users.clone())
        .custom_jwt(JwtProvider::new().hs256_secret(JWT_SECRET))
        .signing_key("itest-1", SIGNING_KEY)
        .client_base_url("http://example.invalid/data")
        .build()
        .unwrap();
    let (root, stop) = axum_mount(service).await;
    let urls = Urls::at(root, APP);
    let jwt = custom_jwt(json!({}));
    for headers in [
        vec![("apiKey", API_KEY)],
        vec![("email", EMAIL), ("password", PASSWORD)],
        vec![("jwtTokenString", jwt.as_str())],
    ] {
        assert_eq!(find(&urls, &headers).await.status, 200, "{headers:?}");
    }
    full_flow(
        &urls,
        "local-userpass",
        json!({"username": EMAIL, "password": PASSWORD}),
    )
    .await;
    full_flow(&urls, "custom-token", json!({"token": jwt})).await;
    // A password changed at run time through the kept handle.
    users.set_password(EMAIL, "a-brand-new-Pa55word").unwrap();
    find(&urls, &[("email", EMAIL), ("password", PASSWORD)])
        .await
        .error(401, "InvalidSession", INVALID, "old password");
    assert_eq!(
        find(
            &urls,
            &[("email", EMAIL), ("password", "a-brand-new-Pa55word")]
        )
        .await
        .status,
        200
    );
    let location = http("GET", &urls.location(), &[], "").await;
    assert_eq!(location.json()["hostname"], "http://example.invalid/data");
    let _ = stop.send(());
}

#[tokio::test]
async fn the_custom_authenticator_example_mounts_and_works() {
    log_capture();
    let service = custom_auth::data_api(GATEWAY_SECRET, API_KEY);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(custom_auth::serve(listener, service, async {
        let _ = stopped.await;
    }));
    let urls = Urls::at(format!("http://{addr}"), "data-custom");
    let gateway = [
        ("X-Gateway-User", "gw-user"),
        ("X-Gateway-Secret", GATEWAY_SECRET),
    ];
    assert_eq!(find(&urls, &gateway).await.status, 200);
    find(
        &urls,
        &[("X-Gateway-User", "gw-user"), ("X-Gateway-Secret", "guess")],
    )
    .await
    .error(401, "InvalidSession", INVALID, "gateway without its secret");
    find(&urls, &[("X-Gateway-User", "gw-user")]).await.error(
        401,
        "InvalidSession",
        INVALID,
        "gateway header alone",
    );
    assert_eq!(
        find(&urls, &[("X-Tenant-Token", "tenant-token-acme")])
            .await
            .status,
        200
    );
    find(&urls, &[("X-Tenant-Token", "tenant-token-evil")])
        .await
        .error(401, "InvalidSession", INVALID, "unknown tenant");
    assert_eq!(
        find(&urls, &[("apiKey", API_KEY)]).await.status,
        200,
        "API keys still work"
    );
    find(&urls, &[])
        .await
        .error(400, "InvalidParameter", NO_AUTH, "nothing");
    let login = http(
        "POST",
        &urls.login("api-key"),
        &[],
        &json!({"key": API_KEY}).to_string(),
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.text);
    let _ = stop.send(());
}

#[tokio::test]
async fn no_secret_reaches_the_log() {
    let server = server("").await;
    let urls = Urls::of(&server);
    // A full run of every scheme, right and wrong.
    let login = http(
        "POST",
        &urls.login("local-userpass"),
        &[],
        &json!({"username": EMAIL, "password": PASSWORD}).to_string(),
    )
    .await;
    let access = login.field("access_token");
    let refresh = login.field("refresh_token");
    let jwt = custom_jwt(json!({}));
    assert_eq!(login.status, 200, "login: {}", login.text);
    for (headers, status) in [
        (vec![("apiKey", API_KEY.to_owned())], 200),
        (vec![("apiKey", format!("{API_KEY}x"))], 401),
        (
            vec![
                ("email", EMAIL.to_owned()),
                ("password", PASSWORD.to_owned()),
            ],
            200,
        ),
        (
            vec![
                ("email", EMAIL.to_owned()),
                ("password", "wrong-Pa55word-value".to_owned()),
            ],
            401,
        ),
        (vec![("jwtTokenString", jwt.clone())], 200),
        (vec![("jwtTokenString", format!("{jwt}x"))], 401),
        (vec![("Authorization", format!("Bearer {access}"))], 200),
        (vec![("Authorization", format!("Bearer {refresh}"))], 401),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let answer = find(&urls, &headers).await;
        assert_eq!(answer.status, status, "{}", answer.text);
    }
    let bearer_refresh = format!("Bearer {refresh}");
    for (method, status) in [("POST", 201), ("DELETE", 204)] {
        let answer = http(
            method,
            &urls.session(),
            &[("Authorization", bearer_refresh.as_str())],
            "",
        )
        .await;
        assert_eq!(answer.status, status, "{method} session: {}", answer.text);
    }
    let query = server_with_secret_param().await;
    let query_urls = Urls::of(&query);
    for (secret, status) in [(VALIDATION_SECRET, 200), ("wrong-Pa55word-value", 401)] {
        let url = format!("{}?secret={secret}", query_urls.action("find"));
        let answer = http("POST", &url, &[("apiKey", API_KEY)], &body(json!({}))).await;
        assert_eq!(
            answer.status, status,
            "secret as query parameter: {}",
            answer.text
        );
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let text = String::from_utf8(log_capture().lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("data api request"),
        "the capture saw the request log"
    );
    let tokens = [access.as_str(), refresh.as_str(), jwt.as_str()];
    for secret in SECRETS.iter().chain(tokens.iter()) {
        assert!(!text.contains(secret), "a secret reached the log");
    }
}
