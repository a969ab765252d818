use super::*;

fn sessions(store: &MemorySessionStore, app: &str, kid: &str) -> Sessions {
    let settings = SessionSettings::default().signing_key(kid, "k".repeat(40));
    Sessions::new(settings, Arc::new(store.clone()), app).unwrap()
}

#[tokio::test]
async fn tokens_are_typed_bound_to_the_app_and_revocable() {
    let store = MemorySessionStore::new();
    let s = sessions(&store, "app-a", "k1");
    let user = Principal::user("u1", "local-userpass");
    let tokens = s.start(user.clone(), "dev".into()).await.unwrap();
    let live = s.check_access(&tokens.access_token).await.unwrap().unwrap();
    assert_eq!(live.principal, user);
    assert!(s
        .check_refresh(&tokens.refresh_token)
        .await
        .unwrap()
        .is_some());
    // Neither token passes for the other.
    assert!(s
        .check_access(&tokens.refresh_token)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .check_refresh(&tokens.access_token)
        .await
        .unwrap()
        .is_none());
    // Same key, other app: refused.
    let other = sessions(&store, "app-b", "k1");
    assert!(other
        .check_access(&tokens.access_token)
        .await
        .unwrap()
        .is_none());
    // Claims per §6.5.
    let claims: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode(tokens.refresh_token.expose())
            .unwrap()
            .claims;
    for field in [
        "sub",
        "iat",
        "exp",
        "typ",
        "baas_id",
        "stitch_id",
        "baas_identity",
        "stitch_ident",
        "baas_data",
        "baas_device_id",
        "baas_domain_id",
        "stitch_devId",
        "stitch_domainId",
    ] {
        assert!(claims.get(field).is_some(), "{field}");
    }
    let access: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode(tokens.access_token.expose())
            .unwrap()
            .claims;
    assert_eq!(
        access["exp"].as_u64().unwrap() - access["iat"].as_u64().unwrap(),
        1800
    );
    assert_eq!(access["typ"], "access");
    // Logout kills both.
    assert!(store.revoke(&live.id).await.unwrap());
    assert!(s
        .check_access(&tokens.access_token)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .check_refresh(&tokens.refresh_token)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn rotation_and_revoking_a_user() {
    let store = MemorySessionStore::new();
    let old = sessions(&store, "app", "old");
    let tokens = old
        .start(Principal::user("u", "api-key"), "d".into())
        .await
        .unwrap();
    let settings = SessionSettings::default()
        .signing_key("new", "n".repeat(40))
        .signing_key("old", "k".repeat(40));
    let rotated = Sessions::new(settings, Arc::new(store.clone()), "app").unwrap();
    assert!(rotated
        .check_access(&tokens.access_token)
        .await
        .unwrap()
        .is_some());
    let fresh = rotated
        .start(Principal::user("u", "api-key"), "d".into())
        .await
        .unwrap();
    assert!(
        old.check_access(&fresh.access_token)
            .await
            .unwrap()
            .is_none(),
        "unknown kid"
    );
    assert_eq!(store.revoke_user("u").await.unwrap(), 2);
    assert!(store.is_empty());
}

#[tokio::test]
async fn memory_store_caps_sessions() {
    let store = MemorySessionStore::new().with_limits(5, 2);
    let session = |id: &str, user: &str, created_at: u64| Session {
        id: id.into(),
        principal: Principal::user(user, "anon-user"),
        device_id: "d".into(),
        created_at,
        expires_at: now_secs() + 60,
    };
    for (i, id) in ["a1", "a2", "a3"].iter().enumerate() {
        store.create(session(id, "a", i as u64)).await.unwrap();
    }
    assert!(
        store.get("a1").await.unwrap().is_none(),
        "oldest of the user ended"
    );
    assert!(store.get("a3").await.unwrap().is_some());
    for (i, user) in ["b", "c", "d", "e"].iter().enumerate() {
        store
            .create(session(user, user, 10 + i as u64))
            .await
            .unwrap();
    }
    assert_eq!(store.len(), 5);
    assert!(
        store.get("a2").await.unwrap().is_none(),
        "oldest overall ended"
    );
}

#[test]
fn settings_validation_and_redaction() {
    assert!(SessionSettings::default()
        .signing_key("a", "short")
        .validate()
        .is_err());
    assert!(SessionSettings::default()
        .signing_key("", "x".repeat(40))
        .validate()
        .is_err());
    assert!(SessionSettings::default()
        .signing_key("a", "x".repeat(40))
        .signing_key("a", "y".repeat(40))
        .validate()
        .is_err());
    assert!(SessionSettings::default()
        .refresh_token_lifetime(Duration::from_secs(60))
        .validate()
        .is_err());
    let debug = format!(
        "{:?}",
        SessionSettings::default().signing_key("a", "x".repeat(40))
    );
    assert!(!debug.contains("xxxx"), "{debug}");
}
