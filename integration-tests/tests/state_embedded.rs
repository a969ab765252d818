//! The state stores on the durable embedded engine: two services over one
//! state store honour each other's logins, refreshes, logouts, keys and
//! user ids; and after a restart over the same directory, sessions, users,
//! keys, issued user ids and request logs are all still there.
//!
//! (A `file:` directory can be open in one process at a time, so the two
//! services share one opened store in one process; instances in separate
//! processes share state over MongoDB, tested in `state.rs`.)

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use integration_tests::send_json as send;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower_data_api::auth::JwtProvider;
use tower_data_api::backend::Backend;
use tower_data_api::state::{LogFilter, StateStores, KEY_CACHE_TTL};
use tower_data_api::{DataApi, MemoryBackend};

const APP: &str = "data-durable-state";
const EMAIL: &str = "durable@example.com";
const PASSWORD: &str = "a-long-enough-password";
const JWT_SECRET: &str = "a-jwt-secret-of-the-durable-state-test";

/// One service over `backend`, serving until its stop sender is dropped.
struct Node {
    root: String,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
}

impl Node {
    async fn start(state: &StateStores, backend: Arc<dyn Backend>) -> Node {
        let service = state
            .install(
                DataApi::builder()
                    .app_id(APP)
                    .data_source_with_access(
                        "mongodb-atlas",
                        backend,
                        tower_data_api::AccessLevel::ReadWrite,
                    )
                    .signing_key("durable-1", "a-signing-key-shared-by-both-instances")
                    .custom_jwt(JwtProvider::new().hs256_secret(JWT_SECRET))
                    .user_registration(true),
            )
            .build()
            .expect("the service builds");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let root = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            let _ = tower_data_api::server::serve(listener, service, async {
                let _ = stopped.await;
            })
            .await;
        });
        Node {
            root,
            stop: Some(stop),
            served,
        }
    }

    /// Stops serving and waits until the service (and its backend handle) is gone.
    async fn stop(mut self) {
        drop(self.stop.take());
        let _ = (&mut self.served).await;
    }

    fn client_api(&self, path: &str) -> String {
        format!("{}/api/client/v2.0/{path}", self.root)
    }

    fn login_url(&self, provider: &str) -> String {
        self.client_api(&format!("app/{APP}/auth/providers/{provider}/login"))
    }

    async fn login(&self, provider: &str, body: Value) -> (u16, Value) {
        send("POST", self.login_url(provider), &[], Some(body)).await
    }

    async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        let bearer = format!("Bearer {refresh_token}");
        send(
            "POST",
            self.client_api("auth/session"),
            &[("authorization", &bearer)],
            None,
        )
        .await
    }

    async fn find(&self, header: (&str, &str)) -> (u16, Value) {
        send(
            "POST",
            format!("{}/app/{APP}/endpoint/data/v1/action/find", self.root),
            &[header],
            Some(json!({"dataSource": "mongodb-atlas", "database": "app", "collection": "c"})),
        )
        .await
    }

    async fn find_bearer(&self, access_token: &str) -> u16 {
        let bearer = format!("Bearer {access_token}");
        self.find(("authorization", &bearer)).await.0
    }
}

fn custom_token(sub: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    integration_tests::hs256_jwt(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"aud": APP, "sub": sub, "iat": now, "exp": now + 600}),
        JWT_SECRET,
    )
}

const RETENTION: Duration = Duration::from_secs(30 * 86_400);

async fn open(dir: &Path) -> (Arc<dyn Backend>, StateStores) {
    // The previous process's handle may take a moment to close its file.
    let mut attempts = 0;
    let backend: Arc<dyn Backend> = loop {
        match MemoryBackend::open(dir) {
            Ok(backend) => break Arc::new(backend),
            Err(_) if attempts < 100 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("the state directory reopens: {error}"),
        }
    };
    let state = StateStores::open(backend.clone(), "__data_api", RETENTION)
        .await
        .expect("the state stores open");
    (backend, state)
}

#[tokio::test]
async fn two_services_over_one_durable_store_share_sessions_keys_and_user_ids() {
    let dir = integration_tests::temp_dir();
    let (backend, state) = open(&dir).await;
    state.users.add(EMAIL, PASSWORD).await.unwrap();
    let a = Node::start(&state, backend.clone()).await;
    let b = Node::start(&state, backend.clone()).await;

    // Login on A → bearer on B → refresh on B → logout on A → dead on B.
    let (status, login) = a
        .login(
            "local-userpass",
            json!({"username": EMAIL, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(b.find_bearer(&access).await, 200, "A's token works on B");
    let (status, refreshed) = b.refresh(&refresh).await;
    assert_eq!(status, 201, "{refreshed}");
    let fresh = refreshed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(a.find_bearer(&fresh).await, 200, "B's refresh works on A");
    let bearer = format!("Bearer {refresh}");
    let (status, _) = send(
        "DELETE",
        a.client_api("auth/session"),
        &[("authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(status, 204, "logout on A");
    assert_eq!(
        b.refresh(&refresh).await.0,
        401,
        "the refresh token is dead on B"
    );
    assert_eq!(b.find_bearer(&fresh).await, 401, "its access tokens too");

    // A key made at run time works on both, and is refused on both once deleted.
    let key = state.keys.create("made-at-run-time").await.unwrap();
    assert_eq!(a.find(("apiKey", &key)).await.0, 200);
    assert_eq!(b.find(("apiKey", &key)).await.0, 200);
    state.keys.delete("made-at-run-time").await.unwrap();
    tokio::time::sleep(KEY_CACHE_TTL + Duration::from_millis(100)).await;
    assert_eq!(a.find(("apiKey", &key)).await.0, 401);
    assert_eq!(b.find(("apiKey", &key)).await.0, 401);

    // A custom-token user gets one server-issued id, the same on both.
    let token = custom_token("sub-shared");
    let (status, on_a) = a.login("custom-token", json!({"token": token})).await;
    assert_eq!(status, 200, "{on_a}");
    let (status, on_b) = b.login("custom-token", json!({"token": token})).await;
    assert_eq!(status, 200, "{on_b}");
    let user_id = on_a["user_id"].as_str().unwrap();
    assert_eq!(user_id.len(), 24, "{on_a}");
    assert_ne!(user_id, "sub-shared");
    assert_eq!(on_b["user_id"], on_a["user_id"]);
    let bearer = format!("Bearer {}", on_b["access_token"].as_str().unwrap());
    let (status, profile) = send(
        "GET",
        b.client_api("auth/profile"),
        &[("authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["user_id"], on_a["user_id"]);
    assert_eq!(profile["identities"][0]["id"], "sub-shared");
    assert_eq!(profile["identities"][0]["provider_type"], "custom-token");

    // Registration on A makes a user who logs in on B; a second one is refused.
    let register = a.client_api(&format!("app/{APP}/auth/providers/local-userpass/register"));
    let new_user = json!({"email": "New@Example.com", "password": "registered-password"});
    let (status, body) = send("POST", register.clone(), &[], Some(new_user.clone())).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = b
        .login(
            "local-userpass",
            json!({"username": "new@example.com", "password": "registered-password"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send("POST", register.clone(), &[], Some(new_user)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error_code"], "AccountNameInUse");
    let (status, body) = send(
        "POST",
        register,
        &[],
        Some(json!({"email": "short@example.com", "password": "12345"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("between 6 and 128"));

    a.stop().await;
    b.stop().await;
    drop(state);
    drop(backend);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sessions_users_keys_ids_and_logs_survive_a_restart() {
    let dir = integration_tests::temp_dir();
    let (backend, state) = open(&dir).await;
    state.users.add(EMAIL, PASSWORD).await.unwrap();
    let key = state.keys.create("before-restart").await.unwrap();
    let node = Node::start(&state, backend.clone()).await;
    let (status, login) = node
        .login(
            "local-userpass",
            json!({"username": EMAIL, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let (status, jwt_login) = node
        .login(
            "custom-token",
            json!({"token": custom_token("sub-restart")}),
        )
        .await;
    assert_eq!(status, 200, "{jwt_login}");
    let (status, found) = node.find(("apiKey", &key)).await;
    assert_eq!(status, 200, "{found}");
    // The log writer runs off the request path: wait until the entry is stored.
    let mut filter = LogFilter::default();
    filter.principal_name = Some("before-restart".into());
    let mut logged = Vec::new();
    for _ in 0..100 {
        logged = state.logs.find(&filter).await.unwrap();
        if !logged.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(logged.len(), 1, "{logged:?}");
    let request_id = logged[0].get_str("request_id").unwrap().to_owned();

    node.stop().await;
    drop(state);
    drop(backend);

    let (backend, state) = open(&dir).await;
    let node = Node::start(&state, backend.clone()).await;
    let (status, refreshed) = node.refresh(&refresh).await;
    assert_eq!(
        status, 201,
        "the refresh token from before the restart: {refreshed}"
    );
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(node.find_bearer(access).await, 200);
    assert_eq!(node.find(("apiKey", &key)).await.0, 200, "the key");
    let (status, _) = node
        .login(
            "local-userpass",
            json!({"username": EMAIL, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "the user");
    let (status, again) = node
        .login(
            "custom-token",
            json!({"token": custom_token("sub-restart")}),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["user_id"], jwt_login["user_id"], "the issued user id");
    let mut by_id = LogFilter::default();
    by_id.request_id = Some(request_id);
    assert_eq!(
        state.logs.find(&by_id).await.unwrap().len(),
        1,
        "the log entry"
    );

    node.stop().await;
    drop(state);
    drop(backend);
    let _ = std::fs::remove_dir_all(&dir);
}
