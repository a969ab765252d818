//! Cross-origin requests from browsers (opt-in).
//!
//! Browser apps call the Data API with bearer tokens (spec §5.3); their
//! requests carry `Authorization` and `Content-Type`, so the browser first
//! sends a preflight `OPTIONS`. When CORS is configured the service answers
//! preflights for its own routes, adds `Access-Control-Allow-Origin` to its
//! answers, and refuses requests from origins not on the list (App Services'
//! `allowed_request_origins`). Credential headers (`apiKey`, `password`, …) are
//! deliberately not allowed cross-origin: browsers must use bearer tokens.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
    VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

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
}

/// What the CORS step decided about a request.
pub(crate) enum CorsCheck {
    /// Not a cross-origin concern: carry on.
    Continue,
    /// A preflight: answer it with these headers and no body.
    Preflight(HeaderMap),
}

impl Cors {
    pub(crate) fn new(origins: AllowedOrigins) -> Self {
        Self { origins }
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
                HeaderValue::from_static("authorization, content-type, accept"),
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
        let cors = Cors::new(AllowedOrigins::List(vec!["https://app.example".into()]));
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
}
