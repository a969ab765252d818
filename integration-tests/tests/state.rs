//! Two standalone instances over one state store (`[state]` on the peer):
//! a login on one is honoured, refreshed and ended on the other, and the
//! state database cannot be reached through the Data API.

use integration_tests::{launch, peer_uri, unique_db};
use serde_json::{json, Value};

const EMAIL: &str = "state-user@example.com";
const PASSWORD: &str = "a-long-enough-password";

fn config(peer: &str, state_db: &str) -> String {
    format!(
        r#"
app_id = "data-state"
[[data_sources]]
name = "mongodb-atlas"
uri = "memory"
[[api_keys]]
name = "file-key"
key = "file-key-0123456789abcdefghijklmnopqrstuvwxyz"
[[users]]
email = "{EMAIL}"
password = "{PASSWORD}"
[sessions]
signing_keys = [{{ kid = "state-1", key = "a-signing-key-shared-by-both-instances" }}]
[state]
uri = "{peer}"
database = "{state_db}"
"#
    )
}

struct Instance {
    root: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn instance(toml: &str) -> Instance {
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let running = launch(toml, None, stopped).await.expect("starts");
    Instance {
        root: format!("http://{}", running.addr),
        _stop: stop,
    }
}

async fn find_with_key(instance: &Instance, key: &str) -> u16 {
    reqwest::Client::new()
        .post(format!(
            "{}/app/data-state/endpoint/data/v1/action/find",
            instance.root
        ))
        .header("apiKey", key)
        .header("content-type", "application/json")
        .body(r#"{"dataSource":"mongodb-atlas","database":"app","collection":"c"}"#)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn keys_made_at_run_time_work_on_every_instance_until_deleted() {
    let Some(peer) = peer_uri() else { return };
    let state_db = unique_db("keys");
    let toml = config(&peer, &state_db);
    let a = instance(&toml).await;
    let b = instance(&toml).await;
    let file_key = "file-key-0123456789abcdefghijklmnopqrstuvwxyz";
    assert_eq!(
        find_with_key(&a, file_key).await,
        200,
        "the file's key, seeded"
    );
    assert_eq!(find_with_key(&b, file_key).await, 200);

    let state = tower_data_api::MongoBackend::connect(&peer, Default::default())
        .await
        .unwrap();
    let keys = tower_data_api::state::BackendKeyStore::new(state, &state_db);
    let made = keys.create("made-at-run-time").await.unwrap();
    assert_eq!(find_with_key(&a, &made).await, 200, "no restart needed");
    assert_eq!(find_with_key(&b, &made).await, 200);
    let names: Vec<String> = keys
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names, ["file-key", "made-at-run-time"]);

    keys.delete("made-at-run-time").await.unwrap();
    tokio::time::sleep(
        tower_data_api::state::KEY_CACHE_TTL + std::time::Duration::from_millis(100),
    )
    .await;
    assert_eq!(find_with_key(&a, &made).await, 401, "deleted: refused on a");
    assert_eq!(find_with_key(&b, &made).await, 401, "and on b");

    // Both instances' request logs are in the state database.
    let state = tower_data_api::MongoBackend::connect(&peer, Default::default())
        .await
        .unwrap();
    let logs = tower_data_api::state::BackendLogSink::new(state, &state_db);
    let mut filter = tower_data_api::state::LogFilter::default();
    filter.status = Some(401);
    let mut refused = Vec::new();
    for _ in 0..100 {
        refused = logs.find(&filter).await.unwrap();
        if refused.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused
        .iter()
        .all(|entry| entry.get_str("action") == Ok("find")));
}

async fn send(method: &str, url: String, auth: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let bearer = auth.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|value| ("authorization", value))
        .into_iter()
        .collect();
    integration_tests::send_json(method, url, &headers, body).await
}

async fn find(instance: &Instance, access: &str, database: &str) -> (u16, Value) {
    send(
        "POST",
        format!(
            "{}/app/data-state/endpoint/data/v1/action/find",
            instance.root
        ),
        Some(access),
        Some(json!({"dataSource": "mongodb-atlas", "database": database, "collection": "c"})),
    )
    .await
}

#[tokio::test]
async fn a_login_on_one_instance_is_honoured_refreshed_and_ended_on_the_other() {
    let Some(peer) = peer_uri() else { return };
    let state_db = unique_db("state");
    let toml = config(&peer, &state_db);
    let a = instance(&toml).await;
    let b = instance(&toml).await;

    let (status, login) = send(
        "POST",
        format!(
            "{}/api/client/v2.0/app/data-state/auth/providers/local-userpass/login",
            a.root
        ),
        None,
        Some(json!({"username": EMAIL, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();

    assert_eq!(
        find(&b, &access, "app").await.0,
        200,
        "A's token works on B"
    );
    let session = |instance: &Instance| format!("{}/api/client/v2.0/auth/session", instance.root);
    let (status, refreshed) = send("POST", session(&b), Some(&refresh), None).await;
    assert_eq!(status, 201, "{refreshed}");
    let fresh = refreshed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        find(&a, &fresh, "app").await.0,
        200,
        "B's refresh works on A"
    );

    let (status, _) = send("DELETE", session(&a), Some(&refresh), None).await;
    assert_eq!(status, 204, "logout on A");
    let (status, _) = send("POST", session(&b), Some(&refresh), None).await;
    assert_eq!(status, 401, "the refresh token is dead on B");
    assert_eq!(
        find(&b, &fresh, "app").await.0,
        401,
        "its access tokens too"
    );

    // The state database is out of reach, by name and from a pipeline.
    let (status, login) = send(
        "POST",
        format!(
            "{}/api/client/v2.0/app/data-state/auth/providers/local-userpass/login",
            b.root
        ),
        None,
        Some(json!({"username": EMAIL, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200);
    let access = login["access_token"].as_str().unwrap();
    let (status, body) = find(&a, access, &state_db).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error_code"], "PermissionDenied");
    let (status, body) = send(
        "POST",
        format!(
            "{}/app/data-state/endpoint/data/v1/action/aggregate",
            a.root
        ),
        Some(access),
        Some(json!({
            "dataSource": "mongodb-atlas", "database": "app", "collection": "c",
            "pipeline": [{"$unionWith": {"db": state_db, "coll": "sessions"}}],
        })),
    )
    .await;
    assert_eq!(status, 403, "{body}");
}

/// Runs `standalone --config <file> <args>`; (status, stdout, stderr).
fn admin(
    config: &std::path::Path,
    args: &[&str],
    password: Option<&str>,
) -> (bool, String, String) {
    let mut command = std::process::Command::new(integration_tests::standalone_binary());
    command.arg("--config").arg(config).args(args);
    command.env_remove("DATA_API_PASSWORD");
    if let Some(password) = password {
        command.env("DATA_API_PASSWORD", password);
    }
    let output = command.output().expect("the standalone runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_standalones_subcommands_manage_keys_users_and_logs_while_servers_run() {
    let Some(peer) = peer_uri() else { return };
    let state_db = unique_db("cli");
    let toml = config(&peer, &state_db);
    let path = integration_tests::temp_dir().join("config.toml");
    std::fs::write(&path, &toml).unwrap();
    let server = instance(&toml).await;

    let (ok, key, err) = admin(&path, &["keys", "create", "from-cli"], None);
    assert!(ok, "{err}");
    let key = key.trim().to_owned();
    assert_eq!(key.len(), 64);
    assert!(err.contains("not shown again"), "{err}");
    assert_eq!(find_with_key(&server, &key).await, 200, "no restart");
    let (ok, listed, err) = admin(&path, &["keys", "list"], None);
    assert!(ok, "{err}");
    assert!(
        listed.contains("from-cli") && listed.contains("file-key"),
        "{listed}"
    );
    assert!(!listed.contains(&key), "never the key");
    assert!(admin(&path, &["keys", "delete", "from-cli"], None).0);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(find_with_key(&server, &key).await, 401, "deleted");
    let (ok, _, err) = admin(&path, &["keys", "delete", "from-cli"], None);
    assert!(
        !ok && err.contains("key 'from-cli' does not exist"),
        "{err}"
    );

    let (ok, id, err) = admin(
        &path,
        &["users", "add", "cli-user@example.com"],
        Some("cli password 1"),
    );
    assert!(ok, "{err}");
    assert_eq!(id.trim().len(), 24);
    let (status, login) = send(
        "POST",
        format!(
            "{}/api/client/v2.0/app/data-state/auth/providers/local-userpass/login",
            server.root
        ),
        None,
        Some(json!({"username": "cli-user@example.com", "password": "cli password 1"})),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let (ok, users, _) = admin(&path, &["users", "list"], None);
    assert!(
        ok && users.contains("cli-user@example.com") && !users.contains("argon2"),
        "{users}"
    );

    let (ok, lines, err) = admin(&path, &["logs", "--status", "401", "--since", "1h"], None);
    assert!(ok, "{err}");
    let entries: Vec<Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(
        !entries.is_empty(),
        "the refused call is in the logs: {lines}"
    );
    assert!(entries.iter().all(|entry| entry["status"] == 401));
    let (ok, _, err) = admin(&path, &["logs", "--since", "yesterday"], None);
    assert!(!ok && err.contains("--since 'yesterday'"), "{err}");
}

#[tokio::test]
async fn an_app_services_export_imported_by_the_cli_keeps_its_user_ids() {
    let Some(peer) = peer_uri() else { return };
    let state_db = unique_db("import");
    let jwt_secret = "a-jwt-secret-for-the-import-test";
    let toml = format!(
        "{}\n[custom_jwt]\nhs256_secrets = [\"{jwt_secret}\"]\n",
        config(&peer, &state_db)
    );
    let dir = integration_tests::temp_dir();
    let path = dir.join("config.toml");
    std::fs::write(&path, &toml).unwrap();
    let export = dir.join("users.json");
    std::fs::write(
        &export,
        json!([
            {"_id": "5f1e2d3c4b5a697887766554", "type": "normal", "data": {"email": "owner@example.com"},
             "identities": [{"id": "64b0c0ffee0000000000aaaa", "provider_type": "local-userpass",
                             "provider_data": {"email": "owner@example.com"}}]},
            {"_id": {"$oid": "65a1b2c3d4e5f60718293a4b"}, "type": "normal", "data": {},
             "identities": [{"id": "hosted-sub-1", "provider_type": "custom-token"}]},
        ])
        .to_string(),
    )
    .unwrap();
    let export = export.to_str().unwrap();
    let (ok, out, err) = admin(&path, &["users", "import", export], None);
    assert!(ok, "{err}");
    assert!(
        out.contains("1 email users added, 1 identities linked"),
        "{out}"
    );
    let (ok, again, _) = admin(&path, &["users", "import", export], None);
    assert!(ok && again.contains("2 unchanged"), "{again}");
    let (ok, listed, _) = admin(&path, &["users", "identities"], None);
    assert!(
        ok && listed.contains("65a1b2c3d4e5f60718293a4b") && listed.contains("hosted-sub-1"),
        "{listed}"
    );

    // The hosted service's custom-token user keeps its id; a new one gets a fresh id.
    let server = instance(&toml).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |sub: &str| {
        integration_tests::hs256_jwt(
            &json!({"alg": "HS256", "typ": "JWT"}),
            &json!({"aud": "data-state", "sub": sub, "iat": now, "exp": now + 600}),
            jwt_secret,
        )
    };
    let login = format!(
        "{}/api/client/v2.0/app/data-state/auth/providers/custom-token/login",
        server.root
    );
    let (status, body) = send(
        "POST",
        login.clone(),
        None,
        Some(json!({"token": token("hosted-sub-1")})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], "65a1b2c3d4e5f60718293a4b");
    let (status, body) = send(
        "POST",
        login,
        None,
        Some(json!({"token": token("new-sub")})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let fresh = body["user_id"].as_str().unwrap();
    assert!(fresh.len() == 24 && fresh != "new-sub", "{body}");

    // The imported email user logs in once a password is set.
    let (ok, _, err) = admin(
        &path,
        &["users", "set-password", "owner@example.com"],
        Some("imported password 1"),
    );
    assert!(ok, "{err}");
    let (status, body) = send(
        "POST",
        format!(
            "{}/api/client/v2.0/app/data-state/auth/providers/local-userpass/login",
            server.root
        ),
        None,
        Some(json!({"username": "owner@example.com", "password": "imported password 1"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], "5f1e2d3c4b5a697887766554");
}
