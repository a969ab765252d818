//! The `%%user` and `%%request` documents rule expressions expand.

use std::net::SocketAddr;

use bson::{doc, Bson, Document};
use http::request::Parts;

use crate::action::Action;
use crate::auth::Principal;

/// Headers never shown to rule expressions or functions: they carry credentials.
const HIDDEN_HEADERS: &[&str] = &[
    "apikey",
    "api-key",
    "authorization",
    "password",
    "jwttokenstring",
    "cookie",
];

/// `%%user`: `id`, `type` (`normal`, `server`, `system`), `name`, `data`,
/// `custom_data`, `identities` (`[{id, provider_type, provider_id}]`).
pub(crate) fn user_document(principal: &Principal) -> Document {
    let identities: Vec<Bson> = principal
        .identities
        .iter()
        .map(|identity| {
            Bson::Document(doc! {
                "id": identity.id.clone(),
                "provider_type": identity.provider_type.clone(),
                "provider_id": identity.provider_id.clone(),
            })
        })
        .collect();
    let mut user = doc! {
        "id": principal.id.clone(),
        "type": principal.kind.as_str(),
        "data": principal.data.clone(),
        "custom_data": principal.custom_data.clone(),
        "identities": identities,
    };
    if let Some(name) = &principal.name {
        user.insert("name", name.clone());
    }
    user
}

/// `%%request`: `httpMethod`, `action` (e.g. `find`), `service` (the data
/// source), `requestHeaders` (`{name: [values]}`, credential headers left
/// out), `httpUserAgent`, `httpReferrer`, `rawQueryString`, and
/// `remoteIPAddress` when the server put the peer's `SocketAddr` in the
/// request extensions.
pub(crate) fn request_document(parts: &Parts, action: Action, data_source: &str) -> Document {
    let mut headers = Document::new();
    for name in parts.headers.keys() {
        let lower = name.as_str().to_ascii_lowercase();
        if HIDDEN_HEADERS.contains(&lower.as_str()) {
            continue;
        }
        let values: Vec<Bson> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| Bson::String(v.to_owned()))
            .collect();
        headers.insert(name.as_str(), values);
    }
    let header = |name: http::header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut request = doc! {
        "httpMethod": parts.method.as_str(),
        "action": action.name(),
        "service": data_source,
        "requestHeaders": headers,
        "httpUserAgent": header(http::header::USER_AGENT),
        "httpReferrer": header(http::header::REFERER),
        "rawQueryString": parts.uri.query().unwrap_or_default(),
    };
    if let Some(addr) = parts.extensions.get::<SocketAddr>() {
        request.insert("remoteIPAddress", addr.ip().to_string());
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::PrincipalKind;

    #[test]
    fn documents() {
        let user =
            user_document(&Principal::new("u1", PrincipalKind::Server, "api-key").with_name("ci"));
        assert_eq!(user.get_str("type"), Ok("server"));
        assert_eq!(user.get_str("name"), Ok("ci"));
        let (parts, ()) = http::Request::post("/x?a=1")
            .header("apiKey", "secret")
            .header("x-tenant", "t1")
            .body(())
            .unwrap()
            .into_parts();
        let request = request_document(&parts, Action::Find, "mongodb-atlas");
        let headers = request.get_document("requestHeaders").unwrap();
        assert!(!headers.contains_key("apikey"));
        assert_eq!(headers.get_array("x-tenant").unwrap()[0], Bson::from("t1"));
        assert_eq!(request.get_str("rawQueryString"), Ok("a=1"));
        assert_eq!(request.get_str("httpMethod"), Ok("POST"));
    }
}
