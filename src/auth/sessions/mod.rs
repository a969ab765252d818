//! Bearer sessions (spec §6): signed access and refresh tokens and the
//! [`SessionStore`] that keeps refresh sessions so they can be revoked.
//!
//! Both tokens are HS256 JWTs signed with the configured signing keys; the
//! key id (`kid`) in the header picks the key, so keys can be rotated by
//! adding a new one first and keeping the old ones for verification until
//! their tokens expired. Access tokens carry `typ: "access"`, refresh tokens
//! `typ: "refresh"`: neither is ever accepted as the other. Every token names
//! its session; a revoked session's tokens stop working at once.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bson::oid::ObjectId;
use bson::Document;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::jwt::now_secs;
use super::{Identity, Principal, Secret, StoreError};

/// One login: the user it is for and when its refresh token expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The session id (24 hex digits), in every token of the session.
    pub id: String,
    /// Who logged in.
    pub principal: Principal,
    /// The device id answered at login.
    pub device_id: String,
    /// Unix seconds of the login.
    pub created_at: u64,
    /// Unix seconds after which the refresh token is dead.
    pub expires_at: u64,
}

/// Keeps refresh sessions. Implement it over a shared database so several
/// instances of the service honour each other's logins and logouts;
/// [`MemorySessionStore`] is the single-instance default.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session.
    async fn create(&self, session: Session) -> Result<(), StoreError>;
    /// The session with this id, if it exists (expired ones may be returned;
    /// the caller checks `expires_at`).
    async fn get(&self, id: &str) -> Result<Option<Session>, StoreError>;
    /// Deletes one session; whether it existed.
    async fn revoke(&self, id: &str) -> Result<bool, StoreError>;
    /// Deletes every session of a user; how many there were.
    async fn revoke_user(&self, user_id: &str) -> Result<usize, StoreError>;
}

/// Sessions in memory; clones share them.
///
/// ```
/// # tokio_test_block(async {
/// use tower_data_api::auth::{MemorySessionStore, SessionStore};
/// let store = MemorySessionStore::new();
/// assert_eq!(store.revoke_user("nobody").await.unwrap(), 0);
/// # });
/// # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct MemorySessionStore {
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    max_sessions: usize,
    max_per_user: usize,
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self {
            sessions: Arc::default(),
            max_sessions: 1_000_000,
            max_per_user: 100,
        }
    }
}

impl MemorySessionStore {
    /// An empty store keeping at most a million sessions, 100 per user;
    /// past either cap the oldest sessions end.
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes the caps (each at least 1): total sessions and sessions per user.
    #[must_use]
    pub fn with_limits(mut self, max_sessions: usize, max_per_user: usize) -> Self {
        self.max_sessions = max_sessions.max(1);
        self.max_per_user = max_per_user.max(1);
        self
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        let now = now_secs();
        self.lock().values().filter(|s| s.expires_at > now).count()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for MemorySessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySessionStore")
            .field("sessions", &self.len())
            .finish()
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn create(&self, session: Session) -> Result<(), StoreError> {
        let now = now_secs();
        let mut sessions = self.lock();
        let user = session.principal.id.clone();
        let of_user = sessions.values().filter(|s| s.principal.id == user).count();
        if of_user >= self.max_per_user || sessions.len() >= self.max_sessions {
            sessions.retain(|_, s| s.expires_at > now);
            evict_oldest(&mut sessions, |s| s.principal.id == user, self.max_per_user);
            evict_oldest(&mut sessions, |_| true, self.max_sessions);
        }
        sessions.insert(session.id.clone(), session);
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Session>, StoreError> {
        Ok(self.lock().get(id).cloned())
    }

    async fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().remove(id).is_some())
    }

    async fn revoke_user(&self, user_id: &str) -> Result<usize, StoreError> {
        let mut sessions = self.lock();
        let before = sessions.len();
        sessions.retain(|_, s| s.principal.id != user_id);
        Ok(before - sessions.len())
    }
}

/// Removes the oldest sessions matching `which` until fewer than `cap` remain.
fn evict_oldest(
    sessions: &mut HashMap<String, Session>,
    which: impl Fn(&Session) -> bool,
    cap: usize,
) {
    let mut matching: Vec<(u64, String)> = sessions
        .values()
        .filter(|s| which(s))
        .map(|s| (s.created_at, s.id.clone()))
        .collect();
    if matching.len() < cap {
        return;
    }
    matching.sort_unstable();
    for (_, id) in matching.iter().take(matching.len() + 1 - cap) {
        sessions.remove(id);
    }
}

/// How sessions are signed and how long their tokens live.
///
/// ```
/// use std::time::Duration;
/// use tower_data_api::auth::SessionSettings;
/// let settings = SessionSettings::default()
///     .signing_key("2026-11", "a-signing-key-of-at-least-32-bytes!!")
///     .access_token_lifetime(Duration::from_secs(15 * 60));
/// assert!(settings.validate().is_ok());
/// ```
#[derive(Clone)]
pub struct SessionSettings {
    keys: Vec<(String, Secret)>,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            access_ttl: Duration::from_secs(30 * 60),
            refresh_ttl: Duration::from_secs(60 * 24 * 60 * 60),
        }
    }
}

impl fmt::Debug for SessionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSettings")
            .field(
                "key_ids",
                &self.keys.iter().map(|(kid, _)| kid).collect::<Vec<_>>(),
            )
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish()
    }
}

/// The shortest signing key accepted, in bytes.
pub const MIN_SIGNING_KEY_LEN: usize = 32;

impl SessionSettings {
    /// Adds a signing key with its key id. The first key signs new tokens;
    /// the others only verify (for rotation). Without any key, a random one
    /// is made at start-up: tokens then die with the process and are not
    /// shared between instances.
    #[must_use]
    pub fn signing_key(mut self, kid: impl Into<String>, key: impl Into<Secret>) -> Self {
        self.keys.push((kid.into(), key.into()));
        self
    }

    /// Access-token lifetime (default 30 minutes).
    #[must_use]
    pub fn access_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.access_ttl = lifetime;
        self
    }

    /// Refresh-token lifetime (default 60 days).
    #[must_use]
    pub fn refresh_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.refresh_ttl = lifetime;
        self
    }

    /// Checks keys and lifetimes.
    pub fn validate(&self) -> Result<(), String> {
        for (kid, key) in &self.keys {
            if kid.is_empty() {
                return Err("a session signing key needs a key id".into());
            }
            if key.expose().len() < MIN_SIGNING_KEY_LEN {
                return Err(format!(
                    "session signing key '{kid}' must be at least {MIN_SIGNING_KEY_LEN} bytes"
                ));
            }
        }
        let mut kids: Vec<&str> = self.keys.iter().map(|(kid, _)| kid.as_str()).collect();
        kids.sort_unstable();
        if kids.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err("session signing key ids must be unique".into());
        }
        if self.access_ttl < Duration::from_secs(1) {
            return Err("the access-token lifetime must be at least one second".into());
        }
        if self.refresh_ttl < self.access_ttl {
            return Err(
                "the refresh-token lifetime must not be shorter than the access token's".into(),
            );
        }
        Ok(())
    }
}

/// The two tokens a login answers with.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub(crate) access_token: Secret,
    pub(crate) refresh_token: Secret,
    pub(crate) user_id: String,
    pub(crate) device_id: String,
}

const ACCESS: &str = "access";
const REFRESH: &str = "refresh";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
    typ: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    baas_device_id: String,
    baas_domain_id: String,
    #[serde(rename = "stitch_devId")]
    stitch_dev_id: String,
    #[serde(rename = "stitch_domainId")]
    stitch_domain_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    baas_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stitch_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baas_identity: Option<Identity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stitch_ident: Option<Identity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baas_data: Option<Document>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stitch_data: Option<Document>,
}

impl Claims {
    fn session_id(&self) -> Option<&str> {
        match self.typ.as_str() {
            ACCESS => self.iss.as_deref(),
            _ => self.baas_id.as_deref(),
        }
    }
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Issues and checks session tokens for one app.
pub(crate) struct Sessions {
    keys: Vec<SigningKey>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    domain_id: String,
    /// `jsonwebtoken`'s checks for session tokens, made once.
    validation: Validation,
    pub(crate) store: Arc<dyn SessionStore>,
}

impl Sessions {
    /// Sessions for `app_id`; `settings` must have been validated.
    pub(crate) fn new(
        settings: SessionSettings,
        store: Arc<dyn SessionStore>,
        app_id: &str,
    ) -> Result<Self, String> {
        let mut configured = settings.keys;
        if configured.is_empty() {
            configured.push(("ephemeral".into(), Secret::new(super::generate_api_key())));
        }
        let keys = configured
            .into_iter()
            .map(|(kid, secret)| {
                let bytes = secret.expose().as_bytes();
                match (
                    EncodingKey::from_secret(bytes),
                    DecodingKey::from_secret(bytes),
                ) {
                    (Ok(encoding), Ok(decoding)) => Ok(SigningKey {
                        kid,
                        encoding,
                        decoding,
                    }),
                    _ => Err(format!("session signing key '{kid}' is unusable")),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self {
            keys,
            access_ttl: settings.access_ttl,
            refresh_ttl: settings.refresh_ttl,
            domain_id: super::principal::derived_id("app", app_id),
            validation,
            store,
        })
    }

    /// The app's internal id (`baas_domain_id`, the profile's `domain_id`).
    pub(crate) fn domain_id(&self) -> &str {
        &self.domain_id
    }

    /// Starts a session for `principal` and issues both tokens.
    pub(crate) async fn start(
        &self,
        principal: Principal,
        device_id: String,
    ) -> Result<Tokens, StoreError> {
        let now = now_secs();
        let session = Session {
            id: ObjectId::new().to_hex(),
            principal,
            device_id,
            created_at: now,
            expires_at: now.saturating_add(self.refresh_ttl.as_secs()),
        };
        let refresh_token = self.sign(&self.refresh_claims(&session, now))?;
        let access_token = self.access_token(&session)?;
        let tokens = Tokens {
            access_token,
            refresh_token,
            user_id: session.principal.id.clone(),
            device_id: session.device_id.clone(),
        };
        self.store.create(session).await?;
        Ok(tokens)
    }

    /// A new access token for a live session.
    pub(crate) fn access_token(&self, session: &Session) -> Result<Secret, StoreError> {
        let now = now_secs();
        let exp = now
            .saturating_add(self.access_ttl.as_secs())
            .min(session.expires_at.max(now + 1));
        let claims = Claims {
            sub: session.principal.id.clone(),
            iat: now,
            exp,
            typ: ACCESS.into(),
            iss: Some(session.id.clone()),
            baas_device_id: session.device_id.clone(),
            baas_domain_id: self.domain_id.clone(),
            stitch_dev_id: session.device_id.clone(),
            stitch_domain_id: self.domain_id.clone(),
            baas_id: None,
            stitch_id: None,
            baas_identity: None,
            stitch_ident: None,
            baas_data: None,
            stitch_data: None,
        };
        self.sign(&claims)
    }

    fn refresh_claims(&self, session: &Session, now: u64) -> Claims {
        let identity = session.principal.identities.first().cloned();
        Claims {
            sub: session.principal.id.clone(),
            iat: now,
            exp: session.expires_at,
            typ: REFRESH.into(),
            iss: None,
            baas_device_id: session.device_id.clone(),
            baas_domain_id: self.domain_id.clone(),
            stitch_dev_id: session.device_id.clone(),
            stitch_domain_id: self.domain_id.clone(),
            baas_id: Some(session.id.clone()),
            stitch_id: Some(session.id.clone()),
            baas_identity: identity.clone(),
            stitch_ident: identity,
            baas_data: Some(session.principal.data.clone()),
            stitch_data: Some(session.principal.data.clone()),
        }
    }

    fn sign(&self, claims: &Claims) -> Result<Secret, StoreError> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| StoreError("no session signing key".into()))?;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map(Secret::new)
            .map_err(|_| StoreError("cannot sign a session token".into()))
    }

    /// The live session an access token belongs to; `None` for any invalid,
    /// expired, foreign or revoked token, or a refresh token.
    pub(crate) async fn check_access(&self, token: &Secret) -> Result<Option<Session>, StoreError> {
        self.check(token, ACCESS).await
    }

    /// The live session a refresh token belongs to; `None` for any invalid,
    /// expired, foreign or revoked token, or an access token.
    pub(crate) async fn check_refresh(
        &self,
        token: &Secret,
    ) -> Result<Option<Session>, StoreError> {
        self.check(token, REFRESH).await
    }

    async fn check(&self, token: &Secret, typ: &str) -> Result<Option<Session>, StoreError> {
        let Some(claims) = self.decode(token.expose()) else {
            return Ok(None);
        };
        if claims.typ != typ || claims.baas_domain_id != self.domain_id {
            return Ok(None);
        }
        let Some(id) = claims.session_id() else {
            return Ok(None);
        };
        let session = self.store.get(id).await?;
        Ok(session.filter(|s| s.principal.id == claims.sub && s.expires_at > now_secs()))
    }

    fn decode(&self, token: &str) -> Option<Claims> {
        if token.len() > 16 * 1024 {
            return None;
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::HS256 {
            return None;
        }
        let kid = header.kid?;
        let key = self.keys.iter().find(|key| key.kid == kid)?;
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests;
