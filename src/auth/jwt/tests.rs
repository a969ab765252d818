use super::test_keys::*;
use super::*;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "test-secret-0123456789-abcdefghijklmnop";
const APP: &str = "data-test";

fn hs(claims: Value) -> Secret {
    let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    Secret::new(encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap())
}

fn rs(claims: Value, kid: Option<&str>) -> Secret {
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    Secret::new(encode(&header, &claims, &key).unwrap())
}

fn claims() -> Value {
    json!({"aud": APP, "sub": "user-7", "exp": now_secs() + 300, "iat": now_secs(),
           "user": {"email": "u@x.y", "a.b": 1}})
}

fn provider() -> JwtProvider {
    JwtProvider::new()
        .hs256_secret(SECRET)
        .metadata_field("user.email", "email", false)
        .metadata_field("user.a\\.b", "", false)
}

#[test]
fn accepts_a_good_hs256_token_with_metadata() {
    let p = provider().verify(&hs(claims()), APP).unwrap();
    assert_eq!(p.id, "user-7");
    assert_eq!(p.provider, CUSTOM_TOKEN);
    assert_eq!(p.data.get_str("email").unwrap(), "u@x.y");
    assert_eq!(p.data.get("a.b"), Some(&Bson::Int32(1)));
}

#[test]
fn refuses_hostile_tokens() {
    let provider = provider();
    let with = |patch: Value| {
        let mut c = claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let now = now_secs();
    let cases = [
        ("expired", hs(with(json!({"exp": now - 3600})))),
        ("future nbf", hs(with(json!({"nbf": now + 3600})))),
        ("future iat", hs(with(json!({"iat": now + 3600})))),
        ("wrong aud", hs(with(json!({"aud": "data-other"})))),
        ("no aud", hs(with(json!({"aud": null})))),
        ("no sub", hs(with(json!({"sub": null})))),
        ("no exp", hs(with(json!({"exp": null})))),
        ("garbage", Secret::new("not.a.jwt")),
        ("empty", Secret::new("")),
    ];
    for (name, token) in cases {
        assert!(provider.verify(&token, APP).is_none(), "{name}");
    }
    // alg none: header {"alg":"none"}, no signature.
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims())
    );
    assert!(
        provider.verify(&Secret::new(none), APP).is_none(),
        "alg none"
    );
    // Tampered payload: a valid token with another sub spliced in.
    let good = hs(claims());
    let parts: Vec<&str> = good.expose().split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&with(json!({"sub": "admin"}))),
        parts[2]
    );
    assert!(
        provider.verify(&Secret::new(tampered), APP).is_none(),
        "tampered"
    );
    // Within the leeway is fine.
    assert!(provider
        .verify(&hs(with(json!({"exp": now - 5}))), APP)
        .is_some());
}

#[test]
fn garbage_never_panics() {
    let provider = JwtProvider::new()
        .hs256_secret(SECRET)
        .rs256_public_key_pem(None, RSA_PUBLIC_PEM);
    let b64 = |text: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    };
    let long = "a".repeat(MAX_TOKEN_LEN + 1);
    let mut cases = vec![
        ".".to_owned(),
        "..".to_owned(),
        "...".to_owned(),
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        "\u{0}.\u{0}.\u{0}".to_owned(),
        long,
        format!("{}.{}.", b64("{}"), b64("{}")),
        format!("{}.{}.", b64("null"), b64("[]")),
        format!(
            "{}.{}.AAAA",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"sub":"x"}"#)
        ),
        format!("{}.{}.!!!", b64(r#"{"alg":"HS256"}"#), b64("not json")),
        format!(
            "{}.{}.x",
            b64(r#"{"alg":"HS256","kid":5}"#),
            b64(r#"{"exp":"soon"}"#)
        ),
        format!("{}.{}.x", b64(r#"{"alg":"ES256"}"#), b64("{}")),
        format!("{}.{}.x", b64(r#"{"alg":"EdDSA"}"#), b64("{}")),
    ];
    let mut claims = claims();
    claims["exp"] = json!("tomorrow");
    cases.push(hs(claims.clone()).expose().to_owned());
    claims["exp"] = json!(f64::MAX);
    claims["aud"] = json!([1, {"a": 2}]);
    cases.push(hs(claims).expose().to_owned());
    for case in cases {
        assert!(
            provider.verify(&Secret::new(case.clone()), APP).is_none(),
            "{case:.40}"
        );
    }
}

#[test]
fn rs256_keys_are_never_hmac_secrets() {
    let provider = JwtProvider::new().rs256_public_key_pem(Some("k1"), RSA_PUBLIC_PEM);
    provider.validate().unwrap();
    assert!(provider.verify(&rs(claims(), Some("k1")), APP).is_some());
    assert!(
        provider.verify(&rs(claims(), Some("k2")), APP).is_none(),
        "unknown kid"
    );
    // Key confusion: HS256 signed with the public key's PEM bytes.
    let key = EncodingKey::from_secret(RSA_PUBLIC_PEM.as_bytes()).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let forged = Secret::new(encode(&header, &claims(), &key).unwrap());
    assert!(provider.verify(&forged, APP).is_none(), "key confusion");
}

#[test]
fn audience_lists_any_or_all() {
    let token = hs(json!({"aud": ["a", "b"], "sub": "s", "exp": now_secs() + 60}));
    let base = || JwtProvider::new().hs256_secret(SECRET);
    assert!(base().audience(["a", "z"]).verify(&token, APP).is_some());
    assert!(base()
        .audience(["a", "z"])
        .require_all_audiences(true)
        .verify(&token, APP)
        .is_none());
    assert!(base()
        .audience(["a", "b"])
        .require_all_audiences(true)
        .verify(&token, APP)
        .is_some());
    assert!(
        base().verify(&token, APP).is_none(),
        "app id is the default audience"
    );
}

#[test]
fn jwk_sets_and_configuration_errors() {
    let jwks = include_str!("../testdata/jwks.json");
    let provider = JwtProvider::new().jwk_set(jwks);
    provider.validate().unwrap();
    assert!(provider
        .verify(&rs(claims(), Some("test-key")), APP)
        .is_some());
    assert!(JwtProvider::new().validate().is_err());
    assert!(JwtProvider::new().hs256_secret("short").validate().is_err());
    assert!(JwtProvider::new().jwk_set("{}").validate().is_err());
    assert!(JwtProvider::new()
        .rs256_public_key_pem(None, "nope")
        .validate()
        .is_err());
    let four = (0..4).fold(JwtProvider::new(), |p, i| {
        p.hs256_secret(format!("{SECRET}{i}"))
    });
    assert!(four.validate().is_err());
    let debug = format!("{:?}", JwtProvider::new().hs256_secret(SECRET));
    assert!(!debug.contains(SECRET), "{debug}");
}
