//! The custom JWT provider (`jwtTokenString` header and the `custom-token`
//! login provider), spec §6.6.
//!
//! Keys come from configuration only — HS256 shared secrets, RS256 public keys
//! in PEM, or a JWK set — so verifying a token never touches the network. Each
//! key is pinned to its algorithm: an RS256 public key is never tried as an
//! HS256 secret, and `alg: none` is refused.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use bson::{Bson, Document};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{Principal, Secret};

/// The provider type of custom JWT users.
pub const CUSTOM_TOKEN: &str = "custom-token";

/// The longest token accepted, in characters (spec §6.6).
pub const MAX_TOKEN_LEN: usize = 1_000_000;

/// The longest metadata value kept, in characters of its JSON text.
pub(super) const MAX_METADATA_LEN: usize = 4096;

/// A configuration problem in a [`JwtProvider`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfigError(pub String);

impl fmt::Display for JwtConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JwtConfigError {}

/// One JWT field copied into the user's data (`%%user.data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataField {
    /// The path in the JWT payload, dot notation, `\.` for a literal dot.
    pub path: String,
    /// The field name in the user's data (default: the path's last segment).
    pub field_name: String,
    /// Whether a token without this field is refused.
    pub required: bool,
}

enum Key {
    Hmac(DecodingKey),
    Rsa {
        kid: Option<String>,
        key: DecodingKey,
    },
}

/// Verifies custom JWTs and turns them into [`Principal`]s.
///
/// ```
/// use tower_data_api::auth::JwtProvider;
/// let provider = JwtProvider::new()
///     .hs256_secret("a-shared-secret-of-at-least-32-chars")
///     .audience(["my-app", "other-app"])
///     .require_all_audiences(false)
///     .metadata_field("user.email", "email", false);
/// assert!(provider.validate().is_ok());
/// ```
pub struct JwtProvider {
    keys: Vec<Key>,
    audiences: Vec<String>,
    require_all: bool,
    leeway_secs: u64,
    /// `jsonwebtoken`'s checks for HS256 and RS256 tokens, made once.
    hs256: Validation,
    rs256: Validation,
    metadata: Vec<Metadata>,
    errors: Vec<String>,
}

/// A metadata field with its path split into segments once.
struct Metadata {
    field: MetadataField,
    segments: Vec<String>,
}

impl Default for JwtProvider {
    fn default() -> Self {
        let leeway_secs = 30;
        Self {
            keys: Vec::new(),
            audiences: Vec::new(),
            require_all: false,
            leeway_secs,
            hs256: validation(Algorithm::HS256, leeway_secs),
            rs256: validation(Algorithm::RS256, leeway_secs),
            metadata: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// The signature, expiry and claim checks for tokens of `alg`.
fn validation(alg: Algorithm, leeway_secs: u64) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = leeway_secs;
    validation.validate_nbf = true;
    validation.validate_aud = false; // checked by `check_audience`, with the any/all switch
    validation.set_required_spec_claims(&["exp", "sub", "aud"]);
    validation
}

impl fmt::Debug for JwtProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hmac = self
            .keys
            .iter()
            .filter(|k| matches!(k, Key::Hmac(_)))
            .count();
        f.debug_struct("JwtProvider")
            .field("hs256_secrets", &hmac)
            .field("rs256_keys", &(self.keys.len() - hmac))
            .field("audiences", &self.audiences)
            .field("require_all_audiences", &self.require_all)
            .field("leeway_secs", &self.leeway_secs)
            .field(
                "metadata",
                &self.metadata.iter().map(|m| &m.field).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl JwtProvider {
    /// A provider with no keys yet; add one to three.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts HS256 tokens signed with this shared secret (32–512 characters
    /// of `[A-Za-z0-9_-]`, as App Services required).
    #[must_use]
    pub fn hs256_secret(mut self, secret: impl Into<Secret>) -> Self {
        let secret = secret.into();
        let text = secret.expose();
        let valid_chars = text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !(32..=512).contains(&text.len()) || !valid_chars {
            self.errors.push(
                "custom JWT: an HS256 secret needs 32 to 512 characters of [A-Za-z0-9_-]".into(),
            );
            return self;
        }
        match DecodingKey::from_secret(text.as_bytes()) {
            Ok(key) => self.keys.push(Key::Hmac(key)),
            Err(_) => self.errors.push("custom JWT: unusable HS256 secret".into()),
        }
        self
    }

    /// Accepts RS256 tokens signed by the private half of this PEM public key;
    /// `kid`, when given, must match the token header's.
    #[must_use]
    pub fn rs256_public_key_pem(mut self, kid: Option<&str>, pem: &str) -> Self {
        match DecodingKey::from_rsa_pem(pem.as_bytes()) {
            Ok(key) => self.keys.push(Key::Rsa {
                kid: kid.map(str::to_owned),
                key,
            }),
            Err(_) => self
                .errors
                .push("custom JWT: not an RSA public key in PEM form".into()),
        }
        self
    }

    /// Accepts RS256 tokens signed by the RSA keys of a JWK set (JSON text);
    /// every key needs a `kid`.
    #[must_use]
    pub fn jwk_set(mut self, json: &str) -> Self {
        let set: JwkSet = match serde_json::from_str(json) {
            Ok(set) => set,
            Err(_) => {
                self.errors.push("custom JWT: not a JWK set".into());
                return self;
            }
        };
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone();
            let usable = matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) && kid.is_some();
            match DecodingKey::from_jwk(jwk) {
                Ok(key) if usable => self.keys.push(Key::Rsa { kid, key }),
                _ => self
                    .errors
                    .push("custom JWT: every JWK must be an RSA key with a kid".into()),
            }
        }
        self
    }

    /// Accepted audiences instead of the app id.
    #[must_use]
    pub fn audience<S: Into<String>>(mut self, audiences: impl IntoIterator<Item = S>) -> Self {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// With an audience list: `true` requires the token to name every listed
    /// audience, `false` (the default) any one of them.
    #[must_use]
    pub fn require_all_audiences(mut self, all: bool) -> Self {
        self.require_all = all;
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 30 s).
    #[must_use]
    pub fn leeway_secs(mut self, secs: u64) -> Self {
        self.leeway_secs = secs;
        self.hs256.leeway = secs;
        self.rs256.leeway = secs;
        self
    }

    /// Copies the payload field at `path` into the user's data as `field_name`.
    #[must_use]
    pub fn metadata_field(mut self, path: &str, field_name: &str, required: bool) -> Self {
        let segments = split_path(path);
        let field_name = if field_name.is_empty() {
            segments.last().cloned().unwrap_or_default()
        } else {
            field_name.to_owned()
        };
        self.metadata.push(Metadata {
            field: MetadataField {
                path: path.to_owned(),
                field_name,
                required,
            },
            segments,
        });
        self
    }

    /// Checks the configuration: one to three keys, no unusable key.
    pub fn validate(&self) -> Result<(), JwtConfigError> {
        if let Some(error) = self.errors.first() {
            return Err(JwtConfigError(error.clone()));
        }
        if self.keys.is_empty() || self.keys.len() > 3 {
            return Err(JwtConfigError(
                "custom JWT: configure one to three signing keys".into(),
            ));
        }
        if self
            .metadata
            .iter()
            .any(|metadata| metadata.field.field_name.is_empty())
        {
            return Err(JwtConfigError(
                "custom JWT: a metadata field needs a name".into(),
            ));
        }
        Ok(())
    }

    /// The user a token identifies, or `None` for any invalid token (bad
    /// signature or algorithm, wrong audience, expired, not yet valid, …).
    /// Why it failed goes to the debug log, never to the client.
    pub fn verify(&self, token: &Secret, app_id: &str) -> Option<Principal> {
        match self.check(token.expose(), app_id) {
            Ok(principal) => Some(principal),
            Err(reason) => {
                tracing::debug!(reason, "custom JWT refused");
                None
            }
        }
    }

    fn check(&self, token: &str, app_id: &str) -> Result<Principal, &'static str> {
        if token.len() > MAX_TOKEN_LEN {
            return Err("token too long");
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed header")?;
        let (candidates, validation): (Vec<&DecodingKey>, _) = match header.alg {
            Algorithm::HS256 => (
                self.keys
                    .iter()
                    .filter_map(|key| match key {
                        Key::Hmac(key) => Some(key),
                        Key::Rsa { .. } => None,
                    })
                    .collect(),
                &self.hs256,
            ),
            Algorithm::RS256 => (
                self.keys
                    .iter()
                    .filter_map(|key| match key {
                        Key::Rsa { kid, key } if kid.is_none() || *kid == header.kid => Some(key),
                        _ => None,
                    })
                    .collect(),
                &self.rs256,
            ),
            _ => return Err("algorithm not accepted"),
        };
        let claims = candidates
            .into_iter()
            .find_map(|key| jsonwebtoken::decode::<Value>(token, key, validation).ok())
            .ok_or("signature, expiry or claims invalid")?
            .claims;
        self.check_audience(&claims, app_id)?;
        if let Some(iat) = claims.get("iat") {
            let iat = iat.as_f64().ok_or("iat not a number")?;
            if iat > (now_secs() + self.leeway_secs) as f64 {
                return Err("issued in the future");
            }
        }
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|sub| !sub.is_empty())
            .ok_or("no sub")?;
        let data = self.metadata(&claims)?;
        Ok(Principal::user(sub, CUSTOM_TOKEN).with_data(data))
    }

    fn check_audience(&self, claims: &Value, app_id: &str) -> Result<(), &'static str> {
        let in_token: Vec<&str> = match claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => return Err("no aud"),
        };
        let ok = if self.audiences.is_empty() {
            in_token.contains(&app_id)
        } else if self.require_all {
            self.audiences
                .iter()
                .all(|aud| in_token.contains(&aud.as_str()))
        } else {
            self.audiences
                .iter()
                .any(|aud| in_token.contains(&aud.as_str()))
        };
        ok.then_some(()).ok_or("wrong audience")
    }

    fn metadata(&self, claims: &Value) -> Result<Document, &'static str> {
        let mut data = Document::new();
        for Metadata { field, segments } in &self.metadata {
            let value = lookup(claims, segments)
                .filter(|value| value.to_string().chars().count() <= MAX_METADATA_LEN)
                .and_then(|value| Bson::try_from(value.clone()).ok());
            match value {
                Some(value) => {
                    data.insert(field.field_name.clone(), value);
                }
                None if field.required => return Err("required metadata field missing"),
                None => {}
            }
        }
        Ok(data)
    }
}

/// The value at a path split by [`split_path`].
fn lookup<'a>(value: &'a Value, segments: &[String]) -> Option<&'a Value> {
    segments
        .iter()
        .try_fold(value, |value, segment| value.get(segment.as_str()))
}

/// The segments of a dot-notation path (`\.` escapes a dot).
fn split_path(path: &str) -> Vec<String> {
    let mut segments = vec![String::new()];
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(last)) = (chars.next(), segments.last_mut()) {
                    last.push(next);
                }
            }
            '.' => segments.push(String::new()),
            other => {
                if let Some(last) = segments.last_mut() {
                    last.push(other);
                }
            }
        }
    }
    segments
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! A throwaway RSA key pair for tests, generated for this crate.

    /// PKCS#8 private key.
    pub(crate) const RSA_PRIVATE_PEM: &str = include_str!("../testdata/rsa_private.pem");
    /// SubjectPublicKeyInfo public key.
    pub(crate) const RSA_PUBLIC_PEM: &str = include_str!("../testdata/rsa_public.pem");
}

#[cfg(test)]
mod tests;
