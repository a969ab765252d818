use super::*;

#[test]
fn parses_the_documented_example() {
    let config = Config::from_toml(
        r#"
        listen = "127.0.0.1:8080"
        app_id = "data-local"
        default_format = "ejson"
        [[data_sources]]
        name = "mongodb-atlas"
        uri = "memory"
        access = "read-only"
        [[api_keys]]
        name = "ci"
        key = "abc"
        "#,
    )
    .unwrap();
    assert_eq!(config.listen.as_deref(), Some("127.0.0.1:8080"));
    assert_eq!(config.data_sources[0].access.as_deref(), Some("read-only"));
    assert!(!format!("{config:?}").contains("abc"));
}

#[tokio::test]
async fn authentication_tables() {
    let text = r#"
        app_id = "data-auth"
        anonymous_users = true
        run_as_system = true
        validation_method = "VERIFY_PAYLOAD"
        validation_secret = "validation-secret-value"
        client_base_url = "https://api.example.com/data"
        [[data_sources]]
        name = "mongodb-atlas"
        uri = "memory"
        [[users]]
        email = "ada@example.com"
        password = "user-password-value"
        [custom_jwt]
        hs256_secrets = ["jwt-secret-value-0123456789abcdefghij"]
        audience = ["a", "b"]
        require_all_audiences = true
        metadata_fields = [{ path = "user.email", field_name = "email", required = true }]
        [sessions]
        signing_keys = [{ kid = "k1", key = "signing-key-value-0123456789abcdefghij" }]
        access_token_lifetime_secs = 600
        "#;
    let config = Config::from_toml(text).unwrap();
    let debug = format!("{config:?}");
    for secret in [
        "validation-secret-value",
        "user-password-value",
        "jwt-secret-value",
        "signing-key-value",
    ] {
        assert!(!debug.contains(secret), "{debug}");
    }
    let builder = config.apply_auth(DataApi::builder(), true).unwrap();
    let debug = format!("{builder:?}");
    assert!(
        debug.contains("VERIFY_PAYLOAD") && debug.contains("System"),
        "{debug}"
    );
    assert!(!debug.contains("signing-key-value"), "{debug}");
    let err = |text: &str| {
        Config::from_toml(text)
            .unwrap()
            .apply_auth(DataApi::builder(), true)
            .err()
            .unwrap()
            .0
    };
    assert!(err("[[users]]\nemail = \"a@b.c\"").contains("users[0]"));
    assert!(err("run_as_user_id = \"u\"\nrun_as_system = true").contains("run_as"));
    assert!(err("validation_method = \"VERIFY_PAYLOAD\"").contains("validation_method"));
    assert!(
        err("[sessions]\nsigning_keys = [{ kid = \"k\", key = \"short\" }]").contains("sessions")
    );
}

#[cfg(feature = "memory")]
#[tokio::test]
async fn hashed_users_and_rs256_keys_from_the_file() {
    use http_body_util::{BodyExt, Full};
    use tower::ServiceExt;
    let hash = crate::auth::hash_password("from-the-file").unwrap();
    let jwks = include_str!("../auth/testdata/jwks.json");
    let pem = include_str!("../auth/testdata/rsa_public.pem");
    let text = format!(
        "app_id = \"data-file\"\n\
         [[data_sources]]\nname = \"mongodb-atlas\"\nuri = \"memory\"\n\
         [[users]]\nemail = \"f@example.com\"\npassword_hash = \"{hash}\"\n\
         [custom_jwt]\njwks = '{jwks}'\n\
         rs256_public_keys = [{{ kid = \"pem\", pem = \"\"\"\n{pem}\"\"\" }}]\n"
    );
    let config = Config::from_toml(&text).unwrap();
    let service = config.builder(None).await.unwrap().build().unwrap();
    let login =
        http::Request::post("/api/client/v2.0/app/data-file/auth/providers/local-userpass/login")
            .body(Full::new(bytes::Bytes::from_static(
                br#"{"username":"f@example.com","password":"from-the-file"}"#,
            )))
            .unwrap();
    let response = service.oneshot(login).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("refresh_token"));
}

#[cfg(feature = "memory")]
#[tokio::test]
async fn rules_from_a_table_or_a_file() {
    let config = Config::from_toml(
        r#"
        [[data_sources]]
        name = "mongodb-atlas"
        uri = "memory"
        [data_sources.rules.default_rule]
        roles = [{ name = "owner", document_filters = { read = { owner_id = "%%user.id" } }, read = true }]
        [[data_sources.rules.collections]]
        database = "db"
        collection = "public"
        roles = [{ name = "all", read = true, write = true }]
        "#,
    )
    .unwrap();
    let rules = config.data_sources[0].rules.clone().unwrap();
    assert_eq!(rules.collections[0].rule.roles[0].name, "all");
    config
        .builder(None)
        .await
        .unwrap()
        .api_key("k", "rules-test-key-0123456789")
        .build()
        .unwrap();
    let bad = Config::from_toml(
        r#"
        [[data_sources]]
        name = "a"
        uri = "memory"
        [data_sources.rules.default_rule]
        roles = [{ name = "r", apply_when = { "$where" = "1" } }]
        "#,
    )
    .unwrap();
    let err = bad
        .builder(None)
        .await
        .unwrap()
        .api_key("k", "rules-test-key-0123456789")
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("data source 'a': rules.default_rule.roles[0] ('r').apply_when.$where"),
        "{err}"
    );
    let path = std::env::temp_dir().join(format!("tda-rules-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"{"default_rule": {"roles": [{"name": "r", "read": true}]}}"#,
    )
    .unwrap();
    let text = format!(
        "[[data_sources]]\nname = \"a\"\nuri = \"memory\"\nrules_file = '{}'\n",
        path.display()
    );
    let from_file = Config::from_toml(&text).unwrap();
    from_file
        .builder(None)
        .await
        .unwrap()
        .api_key("k", "rules-test-key-0123456789")
        .build()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let both = format!("{text}rules_dir = '/nowhere'\n");
    let err = Config::from_toml(&both)
        .unwrap()
        .builder(None)
        .await
        .err()
        .unwrap();
    assert!(
        err.0.contains("data_sources[0] ('a').give at most one"),
        "{err}"
    );
}

#[cfg(feature = "server")]
#[test]
fn server_and_new_limit_fields() {
    let config = Config::from_toml(
        "[server]\nheader_read_timeout_secs = 0.5\nidle_timeout_secs = 2\n\
         max_connections = 7\nmax_http2_streams = 3\nshutdown_grace_secs = 1.5\n\
         [limits]\nbody_read_timeout_secs = 4\nmax_concurrent_password_checks = 1\n",
    )
    .unwrap();
    let options = config.server.options().unwrap();
    assert_eq!(options.header_read_timeout, Duration::from_millis(500));
    assert_eq!(options.idle_timeout, Duration::from_secs(2));
    assert_eq!(options.max_connections, 7);
    assert_eq!(options.max_http2_streams, 3);
    assert_eq!(options.shutdown_grace, Duration::from_millis(1500));
    let limits = config.limits.apply(Limits::default()).unwrap();
    assert_eq!(limits.body_read_timeout, Duration::from_secs(4));
    assert_eq!(limits.max_concurrent_password_checks, 1);
    let defaults = Config::default().server.options().unwrap();
    assert_eq!(defaults, crate::server::ServerOptions::default());
    let err = |text: &str| {
        Config::from_toml(text)
            .unwrap()
            .server
            .options()
            .unwrap_err()
            .0
    };
    assert!(err("[server]\nmax_connections = 0").contains("server"));
    assert!(err("[server]\nidle_timeout_secs = -1").contains("server.idle_timeout_secs"));
    let err = Config::from_toml("[limits]\nbody_read_timeout_secs = 0")
        .unwrap()
        .limits
        .apply(Limits::default())
        .unwrap_err();
    assert!(err.0.contains("body_read_timeout"), "{err}");
    assert!(Config::from_toml("[server]\nport = 1").is_err());
}

#[test]
fn unknown_fields_are_named() {
    let err = Config::from_toml("listen = \"x\"\nport = 3\n").unwrap_err();
    assert!(err.0.contains("port"), "{err}");
}

#[tokio::test]
async fn field_errors_name_the_field() {
    let err = |text: &'static str| async move {
        Config::from_toml(text)
            .unwrap()
            .builder(None)
            .await
            .err()
            .unwrap()
            .0
    };
    assert!(err("default_format = \"xml\"")
        .await
        .contains("default_format"));
    assert!(err("[[data_sources]]\nname = \"a\"\naccess = \"all\"")
        .await
        .contains("data_sources[0] ('a').access"));
    assert!(
        err("[[data_sources]]\nname = \"a\"\nuri = \"postgres://x\"")
            .await
            .contains("data_sources[0] ('a').uri")
    );
    assert!(err("[[api_keys]]\nname = \"k\"")
        .await
        .contains("api_keys[0] ('k')"));
    assert!(err("[limits]\nmax_find_limit = 0").await.contains("limits"));
}

#[cfg(feature = "memory")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_uris_are_relative_to_the_config_file() {
    let dir = std::env::temp_dir().join(format!("tda-config-file-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("data-api.toml");
    std::fs::write(
        &path,
        "[[data_sources]]\nname = \"a\"\nuri = \"file:store\"\nsync = \"periodic\"\n",
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.base_dir.as_deref(), Some(dir.as_path()));
    let builder = config.builder(None).await.unwrap();
    assert!(dir.join("store").join("data.redb").is_file());
    drop(builder);
    let err = |text: &'static str| async move {
        Config::from_toml(text)
            .unwrap()
            .builder(None)
            .await
            .map(drop)
            .expect_err("refused")
            .0
    };
    assert!(err("[[data_sources]]\nname = \"a\"\nuri = \"file:\"")
        .await
        .contains("needs a directory"));
    assert!(
        err("[[data_sources]]\nname = \"a\"\nuri = \"memory\"\nsync = \"always\"")
            .await
            .contains("sync applies to file: data sources only")
    );
    let bad_sync = format!(
        "[[data_sources]]\nname = \"a\"\nuri = \"file:{}\"\nsync = \"sometimes\"",
        dir.join("other").display()
    );
    let message = Config::from_toml(&bad_sync)
        .unwrap()
        .builder(None)
        .await
        .map(drop)
        .expect_err("refused")
        .0;
    assert!(
        message.contains("data_sources[0] ('a').uri: unknown sync 'sometimes'"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn credential_headers_cross_origin_need_an_origin() {
    let base = "[[data_sources]]\nname = \"mongodb-atlas\"\nuri = \"memory\"\n\
                [[api_keys]]\nname = \"ci\"\nkey = \"cors-test-key-0123456789\"\n";
    for origins in ["", "cors_allowed_origins = []\n"] {
        let text = format!("{origins}cors_allow_credential_headers = true\n{base}");
        let err = Config::from_toml(&text)
            .unwrap()
            .builder(None)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("cors_allow_credential_headers")
                && err.to_string().contains("cors_allowed_origins"),
            "{err}"
        );
    }
    for text in [
        format!("cors_allowed_origins = [\"https://a.example\"]\ncors_allow_credential_headers = true\n{base}"),
        format!("cors_allow_credential_headers = false\n{base}"),
    ] {
        let config = Config::from_toml(&text).unwrap();
        config.builder(None).await.unwrap().build().unwrap();
    }
}

#[tokio::test]
async fn the_console_table_needs_state_and_an_administrator() {
    let base = "[[data_sources]]\nname = \"mongodb-atlas\"\nuri = \"memory\"\n";
    let error = |text: String| async move {
        Config::from_toml(&text)
            .unwrap()
            .builder(None)
            .await
            .map(drop)
            .unwrap_err()
            .0
    };
    let without_state = error(format!(
        "{base}[console]\nenabled = true\nadmins = [\"ops@example.com\"]\n"
    ))
    .await;
    assert!(without_state.contains("[state]"), "{without_state}");
    // Off unless enabled: a table with `enabled = false` changes nothing.
    let off = format!("{base}[console]\nenabled = false\n");
    assert!(Config::from_toml(&off).unwrap().builder(None).await.is_ok());
    #[cfg(feature = "console")]
    {
        let state = "[state]\nuri = \"memory\"\n";
        let no_admin = error(format!("{base}{state}[console]\nenabled = true\n")).await;
        assert!(no_admin.contains("console.admins"), "{no_admin}");
        let on = format!(
            "{base}{state}[console]\nenabled = true\nadmins = [\"ops@example.com\"]\n\
             public_url = \"https://api.example.com/data\"\nsession_lifetime_hours = 1\n"
        );
        let service = Config::from_toml(&on)
            .unwrap()
            .builder(None)
            .await
            .unwrap()
            .build()
            .unwrap();
        assert!(service.handles_path("/console/"));
        assert!(!service.handles_path("/consoles"));
    }
    let unknown = Config::from_toml(&format!("{base}[console]\nenable = true\n"));
    assert!(unknown.is_err(), "unknown keys are refused");
}
