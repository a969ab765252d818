//! The App Services client API (spec §6) that bearer-token clients call:
//! login per provider, session refresh and logout, the user profile and the
//! app location. Paths are relative to the mount point, under
//! `/api/client/v2.0/`.

use std::fmt;

use bson::oid::ObjectId;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode};
use serde_json::{json, Map, Value};

use super::authenticator::{resolve_user, store_unavailable};
use super::sessions::Session;
use super::{extract_credentials, Authentication, Credentials, Principal, Registration, Secret};
use crate::protocol::{ApiError, ErrorCode};
use crate::route::ClientRoute;

/// A client API answer, before it becomes a response. Its `Debug` output
/// leaves the body out: login and refresh bodies carry tokens.
pub(crate) struct ClientReply {
    /// 200, 201 or 204.
    pub(crate) status: StatusCode,
    /// The JSON body; `None` for 204.
    pub(crate) body: Option<Value>,
    /// Who the request was for, for the log.
    pub(crate) principal: Option<Principal>,
}

impl fmt::Debug for ClientReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientReply")
            .field("status", &self.status)
            .field("body", &self.body.as_ref().map(|_| "[redacted]"))
            .field("principal", &self.principal)
            .finish()
    }
}

impl ClientReply {
    fn ok(status: StatusCode, body: Value, principal: Option<Principal>) -> Self {
        Self {
            status,
            body: Some(body),
            principal,
        }
    }
}

/// Where the client API is reachable, for `GET .../location`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Location {
    /// The public base URL (scheme, host and mount point); derived from the
    /// request's `Host` when not configured.
    pub(crate) base_url: Option<String>,
    /// The `location` field, e.g. `US-VA`.
    pub(crate) location: String,
    /// `GLOBAL` or `LOCAL`.
    pub(crate) deployment_model: String,
}

const LOCAL_USERPASS: &str = super::users::LOCAL_USERPASS;
const API_KEY: &str = "api-key";
const CUSTOM_TOKEN: &str = super::jwt::CUSTOM_TOKEN;
const ANON_USER: &str = "anon-user";

impl Authentication {
    /// Answers one client API request; `body` is the raw request body.
    pub(crate) async fn client_api(
        &self,
        route: ClientRoute<'_>,
        parts: &Parts,
        body: &[u8],
    ) -> Result<ClientReply, ApiError> {
        match route {
            ClientRoute::Login { app_id, provider } => {
                self.check_app(app_id)?;
                allow(parts, &[Method::POST])?;
                self.login(provider, body).await
            }
            ClientRoute::Register { app_id } => {
                self.check_app(app_id)?;
                allow(parts, &[Method::POST])?;
                self.register(body).await
            }
            ClientRoute::Location { app_id } => {
                self.check_app(app_id)?;
                allow(parts, &[Method::GET])?;
                Ok(ClientReply::ok(StatusCode::OK, self.location(parts), None))
            }
            ClientRoute::Session => {
                allow(parts, &[Method::POST, Method::DELETE])?;
                let session = self.refresh_session(parts).await?;
                if parts.method == Method::DELETE {
                    self.sessions
                        .store
                        .revoke(&session.id)
                        .await
                        .map_err(store_unavailable)?;
                    return Ok(ClientReply {
                        status: StatusCode::NO_CONTENT,
                        body: None,
                        principal: Some(session.principal),
                    });
                }
                let token = self
                    .sessions
                    .access_token(&session)
                    .map_err(store_unavailable)?;
                Ok(ClientReply::ok(
                    StatusCode::CREATED,
                    json!({ "access_token": token.expose() }),
                    Some(session.principal),
                ))
            }
            ClientRoute::Profile => {
                allow(parts, &[Method::GET])?;
                let principal = match extract_credentials(&parts.headers) {
                    Ok(Some(Credentials::Bearer(token))) => self.bearer(&token).await?,
                    _ => return Err(ApiError::invalid_session()),
                };
                Ok(ClientReply::ok(
                    StatusCode::OK,
                    self.profile(&principal),
                    Some(principal),
                ))
            }
        }
    }

    fn check_app(&self, app_id: &str) -> Result<(), ApiError> {
        if app_id == self.app_id {
            Ok(())
        } else {
            Err(ApiError::app_not_found(app_id))
        }
    }

    /// `POST .../auth/providers/<provider>/login`.
    async fn login(&self, provider: &str, body: &[u8]) -> Result<ClientReply, ApiError> {
        let body = parse_object(body)?;
        let principal = match (provider, &self.user_store, &self.key_store, &self.jwt) {
            (LOCAL_USERPASS, Some(store), _, _) => {
                let username = field(&body, "username")?;
                let password = Secret::new(field(&body, "password")?);
                self.password_checks
                    .verify(store.as_ref(), &username, &password)
                    .await?
                    .ok_or_else(|| {
                        login_failed(ErrorCode::InvalidPassword, "invalid username/password")
                    })?
            }
            (API_KEY, _, Some(store), _) => {
                let key = Secret::new(field(&body, "key")?);
                store
                    .find_key(&key)
                    .await
                    .map_err(store_unavailable)?
                    .ok_or_else(|| login_failed(ErrorCode::InvalidSession, "invalid API key"))?
            }
            (CUSTOM_TOKEN, _, _, Some(provider)) => {
                // The docs name the field `token`; the docs team's helper sent `key`.
                let token = Secret::new(field(&body, "token").or_else(|_| field(&body, "key"))?);
                let principal = provider.verify(&token, &self.app_id).ok_or_else(|| {
                    login_failed(ErrorCode::AuthError, "invalid custom auth token")
                })?;
                resolve_user(self.directory.as_deref(), principal).await?
            }
            (ANON_USER, ..) if self.anonymous => {
                let id = ObjectId::new().to_hex();
                resolve_user(self.directory.as_deref(), Principal::user(id, ANON_USER)).await?
            }
            (other, ..) => return Err(unsupported(other)),
        };
        let tokens = self
            .sessions
            .start(principal.clone(), device_id(&body))
            .await
            .map_err(store_unavailable)?;
        Ok(ClientReply::ok(
            StatusCode::OK,
            json!({
                "access_token": tokens.access_token.expose(),
                "refresh_token": tokens.refresh_token.expose(),
                "user_id": tokens.user_id,
                "device_id": tokens.device_id,
            }),
            Some(principal),
        ))
    }

    /// `POST .../auth/providers/local-userpass/register`: a new, confirmed
    /// email/password user, when registration is enabled.
    async fn register(&self, body: &[u8]) -> Result<ClientReply, ApiError> {
        let Some(store) = self.user_store.as_ref().filter(|_| self.registration) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::AuthProviderNotFound,
                "registration through 'local-userpass' is not enabled on this server",
            ));
        };
        let body = parse_object(body)?;
        let email = field(&body, "email")?.trim().to_lowercase();
        if !plausible_email(&email) {
            return Err(ApiError::bad_request("email is not a valid email address"));
        }
        let password = Secret::new(field(&body, "password")?);
        let length = password.expose().chars().count();
        if !(super::MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&length) {
            return Err(ApiError::bad_request(format!(
                "password must be between {} and {MAX_PASSWORD_LEN} characters",
                super::MIN_PASSWORD_LEN
            )));
        }
        match self
            .password_checks
            .register(store.as_ref(), &email, &password)
            .await?
        {
            Registration::Created => Ok(ClientReply::ok(StatusCode::CREATED, json!({}), None)),
            Registration::Exists => Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::AccountNameInUse,
                "name already in use",
            )),
            Registration::Unsupported => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::AuthProviderNotFound,
                "this server's user store cannot register users",
            )),
        }
    }

    /// The live session of the refresh token in `Authorization: Bearer`.
    async fn refresh_session(&self, parts: &Parts) -> Result<Session, ApiError> {
        let Ok(Some(Credentials::Bearer(token))) = extract_credentials(&parts.headers) else {
            return Err(ApiError::invalid_session());
        };
        self.sessions
            .check_refresh(&token)
            .await
            .map_err(store_unavailable)?
            .ok_or_else(ApiError::invalid_session)
    }

    fn profile(&self, principal: &Principal) -> Value {
        let identities: Vec<Value> = principal
            .identities
            .iter()
            .map(|identity| {
                json!({
                    "id": identity.id,
                    "provider_type": identity.provider_type,
                    "provider_id": identity.provider_id,
                })
            })
            .collect();
        let data = bson::Bson::Document(principal.data.clone()).into_relaxed_extjson();
        json!({
            "user_id": principal.id,
            "domain_id": self.sessions.domain_id(),
            "identities": identities,
            "data": data,
            "type": principal.kind.as_str(),
        })
    }

    fn location(&self, parts: &Parts) -> Value {
        let hostname = self.location.base_url.clone().unwrap_or_else(|| {
            let host = parts
                .uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .or_else(|| {
                    parts
                        .headers
                        .get(http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "localhost".to_owned());
            let scheme = match parts
                .headers
                .get("x-forwarded-proto")
                .and_then(|h| h.to_str().ok())
            {
                Some("https") => "https",
                _ => parts.uri.scheme_str().unwrap_or("http"),
            };
            format!("{scheme}://{host}")
        });
        let ws_hostname = hostname
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        json!({
            "deployment_model": self.location.deployment_model,
            "location": self.location.location,
            "hostname": hostname,
            "ws_hostname": ws_hostname,
        })
    }
}

/// The longest password registration accepts, as App Services.
const MAX_PASSWORD_LEN: usize = 128;

/// One `@` between a non-empty local part and a dotted domain, no spaces,
/// at most 254 characters: the address can be written to, not proven.
fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// 405 unless the method is one of `methods`.
fn allow(parts: &Parts, methods: &[Method]) -> Result<(), ApiError> {
    if methods.contains(&parts.method) {
        return Ok(());
    }
    let list = methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("method {} is not allowed here", parts.method),
    )
    .with_header(
        http::header::ALLOW,
        HeaderValue::from_str(&list).unwrap_or(HeaderValue::from_static("POST")),
    ))
}

/// The body as a JSON object; an empty body is an empty object.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::bad_request(
            "the request body must be a JSON object",
        )),
    }
}

/// A required string field.
fn field(body: &Map<String, Value>, name: &str) -> Result<String, ApiError> {
    match body.get(name) {
        Some(Value::String(value)) if !value.is_empty() => Ok(value.clone()),
        None | Some(Value::Null) => Err(ApiError::missing_field(name)),
        Some(_) => Err(ApiError::bad_request(format!(
            "'{name}' must be a non-empty string"
        ))),
    }
}

/// The client's `options.device.deviceId` when it is a real id, else a new one.
/// Clients send it as a plain hex string or, as realm-web does, in extended
/// JSON: `{"$oid": "…"}`.
fn device_id(body: &Map<String, Value>) -> String {
    body.get("options")
        .and_then(|o| o.get("device"))
        .and_then(|d| d.get("deviceId"))
        .and_then(|id| match id {
            Value::String(hex) => Some(hex.as_str()),
            Value::Object(ejson) if ejson.len() == 1 => ejson.get("$oid").and_then(Value::as_str),
            _ => None,
        })
        .and_then(|id| ObjectId::parse_str(id).ok())
        .filter(|id| id.bytes() != [0; 12])
        .map_or_else(|| ObjectId::new().to_hex(), |id| id.to_hex())
}

fn unsupported(provider: &str) -> ApiError {
    let provider: String = provider.chars().take(64).collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::AuthProviderNotFound,
        format!("authentication via '{provider}' is unsupported"),
    )
}

fn login_failed(code: ErrorCode, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_leaves_the_tokens_out() {
        let reply = ClientReply::ok(
            StatusCode::OK,
            json!({"access_token": "token-secret-value"}),
            Some(Principal::user("u1", API_KEY)),
        );
        let debug = format!("{reply:?}");
        assert!(debug.contains("200") && debug.contains("u1"), "{debug}");
        assert!(!debug.contains("token-secret-value"), "{debug}");
    }

    fn login_body(options: Value) -> Map<String, Value> {
        match json!({"username": "u", "password": "p", "options": options}) {
            Value::Object(body) => body,
            _ => unreachable!(),
        }
    }

    #[test]
    fn registration_emails_are_checked_loosely() {
        for good in ["ada@example.com", "a.b+c@mail.example.org"] {
            assert!(plausible_email(good), "{good}");
        }
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "a da@example.com",
            "a@b@c.d",
            "ada@.com",
            "ada@com.",
        ] {
            assert!(!plausible_email(bad), "{bad}");
        }
    }

    #[test]
    fn device_id_is_kept_in_plain_and_extended_json() {
        let id = "5f1e2d3c4b5a697887766554";
        let plain = login_body(json!({"device": {"deviceId": id}}));
        assert_eq!(device_id(&plain), id);
        // realm-web sends the id as an extended-JSON ObjectId.
        let ejson = login_body(json!({"device": {"deviceId": {"$oid": id}}}));
        assert_eq!(device_id(&ejson), id);
        let upper = login_body(json!({"device": {"deviceId": {"$oid": id.to_uppercase()}}}));
        assert_eq!(device_id(&upper), id);
    }

    #[test]
    fn a_missing_or_unusable_device_id_gets_a_new_one() {
        let zero = "000000000000000000000000";
        let cases = [
            json!({}),
            json!({"device": {}}),
            json!({"device": {"deviceId": zero}}),
            json!({"device": {"deviceId": {"$oid": zero}}}),
            json!({"device": {"deviceId": "not-an-id"}}),
            json!({"device": {"deviceId": {"$oid": "5f1e2d3c4b5a697887766554", "x": 1}}}),
            json!({"device": {"deviceId": {"$oid": 42}}}),
            json!({"device": {"deviceId": 42}}),
        ];
        for options in cases {
            let first = device_id(&login_body(options.clone()));
            let second = device_id(&login_body(options.clone()));
            assert_eq!(first.len(), 24, "{options}");
            assert!(ObjectId::parse_str(&first).is_ok(), "{options}");
            assert_ne!(first, zero, "{options}");
            assert_ne!(first, second, "a fresh id each time for {options}");
        }
    }
}
