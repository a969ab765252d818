//! Cross-origin requests from browsers (opt-in).
//!
//! Browser apps call the Data API with bearer tokens (spec §5.3); their
//! requests carry `Authorization` and `Content-Type`, so the browser first
//! sends a preflight `OPTIONS`. When CORS is configured the service answers
//! preflights for its own routes, adds `Access-Control-Allow-Origin` to its
//! answers, and refuses requests from origins not on the list (App Services'
//! `allowed_request_origins`).
//!
//! A preflight's `Access-Control-Allow-Headers` echoes the headers the browser
//! asks for (clients add their own, e.g. `x-realm-op-name`), except the
//! credential headers (`apiKey`, `api-key`, `email`, `password`,
//! `jwtTokenString`): a page must not hold a long-lived secret, so browsers use
//! bearer tokens unless the configuration explicitly allows those headers too.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::protocol::{ApiError, ErrorCode};

/// Which origins may call the service from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Any origin (`Access-Control-Allow-Origin` echoes the request's origin).
    Any,
    /// Only these origins, e.g. `https://app.example.com` (scheme, host, port).
    List(Vec<String>),
}

/// The CORS policy of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cors {
    origins: AllowedOrigins,
    credential_headers: bool,
}

/// Always allowed in a preflight answer, asked for or not.
const BASE_HEADERS: &str = "authorization, content-type, accept";

/// Headers that carry a long-lived credential (lowercase, as browsers list them).
const CREDENTIAL_HEADERS: [&str; 5] = ["apikey", "api-key", "email", "password", "jwttokenstring"];

/// At most this many requested headers are echoed; more is not a real client.
const MAX_ECHOED_HEADERS: usize = 32;

/// What the CORS step decided about a request.
pub(crate) enum CorsCheck {
    /// Not a cross-origin concern: carry on.
    Continue,
    /// A preflight: answer it with these headers and no body.
    Preflight(HeaderMap),
}

impl Cors {
    /// `credential_headers`: whether preflights may allow the credential
    /// headers (`apiKey`, `password`, …) too.
    pub(crate) fn new(origins: AllowedOrigins, credential_headers: bool) -> Self {
        Self {
            origins,
            credential_headers,
        }
    }

    /// `Access-Control-Allow-Headers` for a preflight that asked for `requested`:
    /// the base headers plus each well-formed requested header, leaving out the
    /// credential headers unless they are allowed.
    fn allow_headers(&self, requested: Option<&HeaderValue>) -> HeaderValue {
        let mut allowed: Vec<String> = BASE_HEADERS.split(", ").map(str::to_owned).collect();
        let requested = requested
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        for name in requested.split(',').map(str::trim).take(MAX_ECHOED_HEADERS) {
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            let name = name.as_str();
            let credential = CREDENTIAL_HEADERS.contains(&name);
            if (credential && !self.credential_headers) || allowed.iter().any(|a| a == name) {
                continue;
            }
            allowed.push(name.to_owned());
        }
        HeaderValue::from_str(&allowed.join(", "))
            .unwrap_or_else(|_| HeaderValue::from_static(BASE_HEADERS))
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        match &self.origins {
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => origin
                .to_str()
                .is_ok_and(|origin| list.iter().any(|allowed| allowed == origin)),
        }
    }

    /// Refuses a request from an origin not on the list; recognizes preflights.
    pub(crate) fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<CorsCheck, ApiError> {
        let Some(origin) = headers.get(ORIGIN) else {
            return Ok(CorsCheck::Continue);
        };
        if !self.allows(origin) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::PermissionDenied,
                "requests from this origin are not allowed",
            ));
        }
        if method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
            let mut answer = HeaderMap::new();
            answer.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
            );
            answer.insert(
                ACCESS_CONTROL_ALLOW_HEADERS,
                self.allow_headers(headers.get(ACCESS_CONTROL_REQUEST_HEADERS)),
            );
            // The answer depends on the headers asked for (and the origin,
            // which `decorate` adds): caches must key on both.
            answer.append(
                VARY,
                HeaderValue::from_static("access-control-request-headers"),
            );
            answer.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
            return Ok(CorsCheck::Preflight(answer));
        }
        Ok(CorsCheck::Continue)
    }

    /// Adds the headers a browser needs to read an answer.
    pub(crate) fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        let Some(origin) = origin.filter(|origin| self.allows(origin)) else {
            return;
        };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-request-id"),
        );
        headers.append(VARY, HeaderValue::from_static("origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    http::HeaderName::from_static(n),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn preflights_and_origin_lists() {
        let cors = Cors::new(
            AllowedOrigins::List(vec!["https://app.example".into()]),
            false,
        );
        let preflight = headers(&[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
        ]);
        assert!(matches!(
            cors.check(&Method::OPTIONS, &preflight),
            Ok(CorsCheck::Preflight(_))
        ));
        let other = headers(&[("origin", "https://evil.example")]);
        assert_eq!(
            cors.check(&Method::POST, &other).err().map(|e| e.status()),
            Some(StatusCode::FORBIDDEN)
        );
        assert!(matches!(
            cors.check(&Method::POST, &HeaderMap::new()),
            Ok(CorsCheck::Continue)
        ));
        let mut answer = HeaderMap::new();
        cors.decorate(preflight.get(ORIGIN), &mut answer);
        assert_eq!(answer[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        let mut refused = HeaderMap::new();
        cors.decorate(other.get(ORIGIN), &mut refused);
        assert!(refused.is_empty());
    }

    fn preflight_answer(cors: &Cors, requested: &str) -> HeaderMap {
        let mut request = headers(&[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
        ]);
        request.insert(
            ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_str(requested).unwrap(),
        );
        match cors.check(&Method::OPTIONS, &request) {
            Ok(CorsCheck::Preflight(mut answer)) => {
                cors.decorate(request.get(ORIGIN), &mut answer);
                answer
            }
            _ => panic!("not answered as a preflight"),
        }
    }

    fn allowed(answer: &HeaderMap) -> Vec<String> {
        answer[ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .split(", ")
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn preflights_echo_requested_headers_but_not_credentials() {
        let cors = Cors::new(AllowedOrigins::Any, false);
        let answer = preflight_answer(
            &cors,
            "content-type,x-realm-op-name, apikey,api-key,email,password,jwttokenstring,X-Extra",
        );
        assert_eq!(
            allowed(&answer),
            [
                "authorization",
                "content-type",
                "accept",
                "x-realm-op-name",
                "x-extra"
            ]
        );
        let vary: Vec<_> = answer.get_all(VARY).iter().collect();
        assert!(vary.contains(&&HeaderValue::from_static("access-control-request-headers")));
        assert!(vary.contains(&&HeaderValue::from_static("origin")));
        // Malformed names are dropped, not echoed.
        let answer = preflight_answer(&cors, "x-ok, bad header, ,(x)");
        assert_eq!(
            allowed(&answer),
            ["authorization", "content-type", "accept", "x-ok"]
        );
        // Without the request header, the base list.
        let request = headers(&[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
        ]);
        let Ok(CorsCheck::Preflight(answer)) = cors.check(&Method::OPTIONS, &request) else {
            panic!("not a preflight");
        };
        assert_eq!(answer[ACCESS_CONTROL_ALLOW_HEADERS], BASE_HEADERS);
    }

    #[test]
    fn credential_headers_are_allowed_only_when_configured() {
        let cors = Cors::new(
            AllowedOrigins::List(vec!["https://app.example".into()]),
            true,
        );
        let answer = preflight_answer(&cors, "apikey,content-type,password,email");
        assert_eq!(
            allowed(&answer),
            [
                "authorization",
                "content-type",
                "accept",
                "apikey",
                "password",
                "email"
            ]
        );
    }

    #[test]
    fn echoed_headers_are_bounded() {
        let cors = Cors::new(AllowedOrigins::Any, false);
        let many: String = (0..100).map(|i| format!("x-h{i},")).collect();
        let answer = preflight_answer(&cors, &many);
        assert_eq!(allowed(&answer).len(), 3 + MAX_ECHOED_HEADERS);
    }
}
