//! The admin console over HTTP against the standalone (no browser): who may
//! enter, CSRF refusals, the security headers and cookie flags, and the
//! round trip key → Data API call → Logs → delete; run-time access levels.
//! The browser walk-through is `integration-tests/clients/console.mjs`.

use integration_tests::launch;
use reqwest::redirect::Policy;
use reqwest::{Client, Response};

const ADMIN: &str = "ops@example.com";
const ADMIN_PASSWORD: &str = "an-admin-password-long-enough";
const USER: &str = "user@example.com";
const USER_PASSWORD: &str = "a-user-password-long-enough";
const FILE_KEY: &str = "file-key-0123456789abcdefghijklmnopqrstuvwxyz";
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn config() -> String {
    format!(
        r#"
app_id = "data-console"
[[data_sources]]
name = "mongodb-atlas"
uri = "memory"
[[api_keys]]
name = "file-key"
key = "{FILE_KEY}"
[[users]]
email = "{ADMIN}"
password = "{ADMIN_PASSWORD}"
[[users]]
email = "{USER}"
password = "{USER_PASSWORD}"
[state]
uri = "memory"
[console]
enabled = true
admins = ["{ADMIN}"]
"#
    )
}

struct Server {
    root: String,
    client: Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn server() -> Server {
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let running = launch(&config(), None, stopped).await.expect("starts");
    Server {
        root: format!("http://{}", running.addr),
        client: Client::builder().redirect(Policy::none()).build().unwrap(),
        _stop: stop,
    }
}

/// `application/x-www-form-urlencoded` text of `fields`.
fn encode(fields: &[(&str, &str)]) -> String {
    let escape = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of a `name="csrf"` hidden field in a page.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..at + 64].to_owned()
}

/// `name=value` of a `Set-Cookie` header of `response` for cookie `name`.
fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|line| line.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_pair(line: &str) -> String {
    line.split(';').next().unwrap().to_owned()
}

/// A logged-in console session: its cookie and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.root)
    }

    async fn login_response(&self, email: &str, password: &str) -> Response {
        let form = self
            .client
            .get(self.url("/console/login"))
            .send()
            .await
            .unwrap();
        let login_cookie =
            cookie_pair(&set_cookie(&form, "tda_console_login").expect("login cookie"));
        let token = csrf_of(&form.text().await.unwrap());
        self.client
            .post(self.url("/console/login"))
            .header("cookie", login_cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(&[
                ("csrf", token.as_str()),
                ("email", email),
                ("password", password),
            ]))
            .send()
            .await
            .unwrap()
    }

    async fn login(&self) -> Session {
        let response = self.login_response(ADMIN, ADMIN_PASSWORD).await;
        assert_eq!(response.status(), 303, "an admin logs in");
        let cookie = cookie_pair(&set_cookie(&response, "tda_console").expect("session cookie"));
        let overview = self.get(&cookie, "/console/").await;
        assert_eq!(overview.status(), 200);
        let csrf = csrf_of(&overview.text().await.unwrap());
        Session { cookie, csrf }
    }

    async fn get(&self, cookie: &str, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, session: &Session, path: &str, form: &[(&str, &str)]) -> Response {
        let mut fields = vec![("csrf", session.csrf.as_str())];
        fields.extend_from_slice(form);
        self.client
            .post(self.url(path))
            .header("cookie", &session.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(&fields))
            .send()
            .await
            .unwrap()
    }

    async fn data_api(&self, key: &str, action: &str, body: &str) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(self.url(&format!(
                "/app/data-console/endpoint/data/v1/action/{action}"
            )))
            .header("apiKey", key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap(),
        )
    }
}

const INSERT: &str =
    r#"{"dataSource":"mongodb-atlas","database":"app","collection":"c","document":{"a":1}}"#;
const FIND: &str =
    r#"{"dataSource":"mongodb-atlas","database":"app","collection":"c","filter":{}}"#;

#[tokio::test]
async fn every_console_response_carries_the_security_headers_and_pages_need_a_login() {
    let server = server().await;
    for path in [
        "/console/",
        "/console/keys",
        "/console/login",
        "/console/nothing",
    ] {
        let response = server.get("", path).await;
        let headers = response.headers();
        assert_eq!(headers["content-security-policy"], CSP, "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
    }
    let overview = server.get("", "/console/").await;
    assert_eq!(overview.status(), 303);
    assert_eq!(overview.headers()["location"], "login");
    let bare = server.get("", "/console").await;
    assert_eq!(bare.headers()["location"], "console/");

    // The login cookie: HttpOnly, SameSite=Strict, Secure only over TLS.
    let plain = server.get("", "/console/login").await;
    let cookie = set_cookie(&plain, "tda_console_login").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");
    let tls = server
        .client
        .get(server.url("/console/login"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&tls, "tda_console_login").unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // The session cookie has the same flags; the page has no inline script.
    let response = server.login_response(ADMIN, ADMIN_PASSWORD).await;
    let session = set_cookie(&response, "tda_console").unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let page = server
        .get(&cookie_pair(&session), "/console/")
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>"), "no inline script");
    assert!(page.contains("<dd id=\"versions\">beta, v1</dd>"), "{page}");
    assert!(
        page.contains("/app/data-console/endpoint/data/v1"),
        "{page}"
    );
    assert!(page.contains("<td>embedded</td>"), "{page}");
    assert!(page.contains("<script src=\"static/console.js\""));
}

#[tokio::test]
async fn non_admins_and_data_api_credentials_get_nothing() {
    let server = server().await;
    // A user with the right password who is not an administrator.
    let refused = server.login_response(USER, USER_PASSWORD).await;
    assert_eq!(refused.status(), 401);
    assert!(set_cookie(&refused, "tda_console").is_none());
    let wrong = server.login_response(ADMIN, "not-the-password").await;
    assert_eq!(wrong.status(), 401);
    // A Data API key or the user's credentials as headers open nothing.
    for path in [
        "/console/",
        "/console/keys",
        "/console/logs",
        "/console/users",
        "/console/usage.svg",
    ] {
        for (header, value) in [
            ("apiKey", FILE_KEY),
            ("email", USER),
            ("password", USER_PASSWORD),
        ] {
            let response = server
                .client
                .get(server.url(path))
                .header(header, value)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 303, "{path} with {header}");
            assert_eq!(response.headers()["location"], "login");
        }
        let post = server
            .client
            .post(server.url(path))
            .header("apiKey", FILE_KEY)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(&[("op", "create"), ("name", "x")]))
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), 403, "POST {path}");
    }
    // A forged session cookie is no session.
    let forged = server
        .get(&format!("tda_console={}", "a".repeat(64)), "/console/keys")
        .await;
    assert_eq!(forged.status(), 303);
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_refused() {
    let server = server().await;
    let session = server.login().await;
    for csrf in [None, Some("0".repeat(64))] {
        let mut form = vec![("op", "create"), ("name", "sneaky")];
        if let Some(csrf) = &csrf {
            form.push(("csrf", csrf.as_str()));
        }
        let response = server
            .client
            .post(server.url("/console/keys"))
            .header("cookie", &session.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(&form))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "csrf {csrf:?}");
    }
    let keys = server
        .get(&session.cookie, "/console/keys")
        .await
        .text()
        .await
        .unwrap();
    assert!(!keys.contains("sneaky"), "no key was made");
    // The login form needs its token too.
    let login = server
        .client
        .post(server.url("/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("email", ADMIN), ("password", ADMIN_PASSWORD)]))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 403);
    // Logging out needs it as well, and ends the session.
    let logout = server
        .client
        .post(server.url("/console/logout"))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 403);
    assert_eq!(
        server.post(&session, "/console/logout", &[]).await.status(),
        303
    );
    assert_eq!(
        server.get(&session.cookie, "/console/keys").await.status(),
        303
    );
}

#[tokio::test]
async fn a_key_made_in_the_console_works_is_logged_and_stops_when_deleted() {
    let server = server().await;
    let session = server.login().await;
    let created = server
        .post(
            &session,
            "/console/keys",
            &[("op", "create"), ("name", "reports")],
        )
        .await;
    assert_eq!(created.status(), 200);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let page = created.text().await.unwrap();
    let at = page
        .find("id=\"new-key\" value=\"")
        .expect("the key, shown")
        + 20;
    let key = page[at..at + 64].to_owned();
    assert!(key.chars().all(|c| c.is_ascii_alphanumeric()), "{key}");

    // Shown once: the list never has it.
    let list = server
        .get(&session.cookie, "/console/keys")
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains("data-key=\"reports\""));
    assert!(!list.contains(&key));

    let (status, _) = server.data_api(&key, "insertOne", INSERT).await;
    assert_eq!(status, 201);
    let (status, error) = server.data_api("not-a-key", "find", FIND).await;
    assert_eq!(status, 401);
    let link = error["link"].as_str().unwrap().to_owned();
    assert!(link.starts_with("/console/logs?co_id="), "{link}");

    // The Logs page lists the call (written within a second) and the
    // error's link opens its entry.
    let mut logs = String::new();
    for _ in 0..50 {
        logs = server
            .get(&session.cookie, "/console/logs?who=reports")
            .await
            .text()
            .await
            .unwrap();
        if logs.contains("insertOne") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        logs.contains("insertOne") && logs.contains("reports"),
        "{logs}"
    );
    let mut detail = server.get(&session.cookie, &link).await;
    for _ in 0..50 {
        if detail.status() == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        detail = server.get(&session.cookie, &link).await;
    }
    assert_eq!(detail.status(), 200);
    let detail = detail.text().await.unwrap();
    assert!(
        detail.contains("InvalidSession") && detail.contains("401"),
        "{detail}"
    );
    let filtered = server
        .get(&session.cookie, "/console/logs?status=4")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        filtered.contains("401") && !filtered.contains(">201<"),
        "{filtered}"
    );
    // No page shows a key.
    for path in [
        "/console/logs",
        "/console/keys",
        "/console/usage?by=key",
        "/console/",
    ] {
        let page = server
            .get(&session.cookie, path)
            .await
            .text()
            .await
            .unwrap();
        assert!(!page.contains(&key) && !page.contains(FILE_KEY), "{path}");
    }
    let usage = server
        .get(&session.cookie, "/console/usage.svg?by=key&metric=requests")
        .await;
    assert_eq!(usage.headers()["content-type"], "image/svg+xml");
    assert!(usage.text().await.unwrap().contains("reports"));

    let deleted = server
        .post(
            &session,
            "/console/keys",
            &[("op", "delete"), ("name", "reports")],
        )
        .await;
    assert_eq!(deleted.status(), 303);
    let (status, _) = server.data_api(&key, "find", FIND).await;
    assert_eq!(status, 401, "a deleted key is refused");
}

#[tokio::test]
async fn access_levels_changed_in_the_console_are_enforced_at_once() {
    let server = server().await;
    let session = server.login().await;
    let read_only = server
        .post(
            &session,
            "/console/sources",
            &[
                ("name", "mongodb-atlas"),
                ("access", "read-only"),
                ("enabled", "on"),
            ],
        )
        .await;
    assert_eq!(read_only.status(), 303);
    let (status, error) = server.data_api(FILE_KEY, "insertOne", INSERT).await;
    assert_eq!(status, 403, "{error}");
    assert_eq!(error["error_code"], "PermissionDenied");
    assert!(error["link"].is_string());
    let (status, _) = server.data_api(FILE_KEY, "find", FIND).await;
    assert_eq!(status, 200);

    let disabled = server
        .post(
            &session,
            "/console/sources",
            &[("name", "mongodb-atlas"), ("access", "read-write")],
        )
        .await;
    assert_eq!(disabled.status(), 303);
    let (status, error) = server.data_api(FILE_KEY, "find", FIND).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error_code"], "ServiceNotFound");

    server
        .post(
            &session,
            "/console/sources",
            &[
                ("name", "mongodb-atlas"),
                ("access", "read-write"),
                ("enabled", "on"),
            ],
        )
        .await;
    let (status, _) = server.data_api(FILE_KEY, "insertOne", INSERT).await;
    assert_eq!(status, 201);
    let unknown = server
        .post(
            &session,
            "/console/sources",
            &[("name", "nope"), ("access", "read-only")],
        )
        .await;
    assert_eq!(unknown.status(), 400);
}

#[tokio::test]
async fn users_can_be_added_disabled_and_removed_and_failed_logins_are_braked() {
    let server = server().await;
    let session = server.login().await;
    let added = server
        .post(
            &session,
            "/console/users",
            &[
                ("op", "add"),
                ("email", "new@example.com"),
                ("password", "a-new-password-long-enough"),
            ],
        )
        .await;
    assert_eq!(added.status(), 303);
    let users = server
        .get(&session.cookie, "/console/users")
        .await
        .text()
        .await
        .unwrap();
    assert!(users.contains("new@example.com"));
    assert!(!users.contains("a-new-password-long-enough"));
    let disabled = server
        .post(
            &session,
            "/console/users",
            &[("op", "disable"), ("email", "new@example.com")],
        )
        .await;
    assert_eq!(disabled.status(), 303);
    let removed = server
        .post(
            &session,
            "/console/users",
            &[("op", "remove"), ("email", "new@example.com")],
        )
        .await;
    assert_eq!(removed.status(), 303);
    let users = server
        .get(&session.cookie, "/console/users")
        .await
        .text()
        .await
        .unwrap();
    assert!(!users.contains("new@example.com"));

    // 20 failures at once, then the brake: 429 even for the right password.
    let mut statuses = Vec::new();
    for _ in 0..22 {
        statuses.push(
            server
                .login_response(ADMIN, "wrong-password")
                .await
                .status()
                .as_u16(),
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(
        server.login_response(ADMIN, ADMIN_PASSWORD).await.status(),
        429
    );
}

/// The console works under an adopter's axum mount point (`/data`): its
/// links are relative, and `public_url` points the error link at it.
#[tokio::test]
async fn the_console_works_mounted_under_a_prefix_in_axum() {
    use std::sync::Arc;
    use std::time::Duration;
    use tower_data_api::console::{Console, ConsoleConfig};
    use tower_data_api::state::StateStores;
    use tower_data_api::{DataApi, MemoryBackend};

    let state = StateStores::open(
        Arc::new(MemoryBackend::new()),
        "__data_api",
        Duration::from_secs(86_400),
    )
    .await
    .unwrap();
    state.users.add(ADMIN, ADMIN_PASSWORD).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", listener.local_addr().unwrap());
    let console = Console::new(
        &state,
        ConsoleConfig::new([ADMIN]).public_url(format!("{root}/data")),
    );
    console.ensure_indexes().await.unwrap();
    let service = state
        .install(
            DataApi::builder()
                .app_id("data-console")
                .data_source("mongodb-atlas", MemoryBackend::new()),
        )
        .console(console)
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the app's own page" }))
        .nest_service("/data", service);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mounted = Server {
        root: format!("{root}/data"),
        client: Client::builder().redirect(Policy::none()).build().unwrap(),
        _stop: tokio::sync::oneshot::channel().0,
    };
    let anonymous = mounted.get("", "/console/").await;
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "login");
    let css = mounted.get("", "/console/static/console.css").await;
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css");
    let session = mounted.login().await;
    let created = mounted
        .post(
            &session,
            "/console/keys",
            &[("op", "create"), ("name", "mounted")],
        )
        .await
        .text()
        .await
        .unwrap();
    let at = created.find("id=\"new-key\" value=\"").expect("the key") + 20;
    let key = created[at..at + 64].to_owned();
    let (status, _) = mounted.data_api(&key, "find", FIND).await;
    assert_eq!(status, 200);
    let (status, error) = mounted.data_api("wrong", "find", FIND).await;
    assert_eq!(status, 401);
    let link = error["link"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("{root}/data/console/logs?co_id=")),
        "{link}"
    );
    // The app's own routes are untouched.
    let own = mounted.client.get(format!("{root}/")).send().await.unwrap();
    assert_eq!(own.text().await.unwrap(), "the app's own page");
}

/// Two instances over one state database (the wire peer): a console login
/// made on one works on the other, and an access level set on one is
/// enforced by the other within the settings' cache time (1 s).
#[tokio::test]
async fn console_sessions_and_access_levels_are_shared_by_instances() {
    let Some(peer) = integration_tests::peer_uri() else {
        return;
    };
    let state_db = integration_tests::unique_db("console");
    let toml = config().replace(
        "[state]\nuri = \"memory\"\n",
        &format!("[state]\nuri = \"{peer}\"\ndatabase = \"{state_db}\"\n"),
    );
    assert!(toml.contains(&state_db));
    let start = || async {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let running = launch(&toml, None, stopped).await.expect("starts");
        Server {
            root: format!("http://{}", running.addr),
            client: Client::builder().redirect(Policy::none()).build().unwrap(),
            _stop: stop,
        }
    };
    let a = start().await;
    let b = start().await;
    let session = a.login().await;
    assert_eq!(b.get(&session.cookie, "/console/keys").await.status(), 200);
    let read_only = b
        .post(
            &session,
            "/console/sources",
            &[
                ("name", "mongodb-atlas"),
                ("access", "read-only"),
                ("enabled", "on"),
            ],
        )
        .await;
    assert_eq!(read_only.status(), 303);
    let began = std::time::Instant::now();
    let mut status = 0;
    while began.elapsed() < std::time::Duration::from_secs(3) {
        status = a.data_api(FILE_KEY, "insertOne", INSERT).await.0;
        if status == 403 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 403, "the other instance refuses writes");
    assert!(
        began.elapsed() < std::time::Duration::from_millis(1_500),
        "{:?}",
        began.elapsed()
    );
    // Logging out on one ends the session on both.
    assert_eq!(a.post(&session, "/console/logout", &[]).await.status(), 303);
    assert_eq!(b.get(&session.cookie, "/console/keys").await.status(), 303);
}
