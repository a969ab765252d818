//! Reading credentials from request headers, in the order the Data API
//! evaluates them.

use http::{HeaderMap, HeaderName};

use super::Secret;
use crate::protocol::ApiError;

// The credential headers, as names made once (a `&str` is parsed on every lookup).
static API_KEY: HeaderName = HeaderName::from_static("apikey");
static API_KEY_DASHED: HeaderName = HeaderName::from_static("api-key");
static EMAIL: HeaderName = HeaderName::from_static("email");
static PASSWORD: HeaderName = HeaderName::from_static("password");
static JWT: HeaderName = HeaderName::from_static("jwttokenstring");

/// The credentials a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Bearer <access token>`.
    Bearer(Secret),
    /// `apiKey: <key>` or `api-key: <key>`.
    ApiKey(Secret),
    /// `email` + `password`.
    EmailPassword {
        /// The `email` header.
        email: String,
        /// The `password` header.
        password: Secret,
    },
    /// `jwtTokenString: <JWT>`.
    CustomJwt(Secret),
}

/// The credentials in `headers`: `Ok(None)` when there are none, a 400
/// `MissingParameter` when they are incomplete (email without password).
///
/// A `Bearer` authorization wins over every other header; an `Authorization`
/// header with another scheme is ignored.
pub fn extract(headers: &HeaderMap) -> Result<Option<Credentials>, ApiError> {
    if let Some(token) = bearer(headers) {
        return Ok(Some(Credentials::Bearer(token)));
    }
    if let Some(key) = header(headers, &API_KEY).or_else(|| header(headers, &API_KEY_DASHED)) {
        return Ok(Some(Credentials::ApiKey(Secret::new(key))));
    }
    match (header(headers, &EMAIL), header(headers, &PASSWORD)) {
        (Some(email), Some(password)) => {
            return Ok(Some(Credentials::EmailPassword {
                email,
                password: Secret::new(password),
            }))
        }
        (Some(_), None) | (None, Some(_)) => return Err(ApiError::incomplete_credentials()),
        (None, None) => {}
    }
    if let Some(token) = header(headers, &JWT) {
        return Ok(Some(Credentials::CustomJwt(Secret::new(token))));
    }
    Ok(None)
}

/// The scheme of the credential headers in `headers`, in evaluation order,
/// without reading their values: for logs and metrics of failed requests.
pub(crate) fn scheme(headers: &HeaderMap) -> Option<&'static str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().get(..7))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"bearer "));
    if bearer {
        Some("bearer")
    } else if headers.contains_key(&API_KEY) || headers.contains_key(&API_KEY_DASHED) {
        Some("api-key")
    } else if headers.contains_key(&EMAIL) || headers.contains_key(&PASSWORD) {
        Some("local-userpass")
    } else if headers.contains_key(&JWT) {
        Some("custom-token")
    } else {
        None
    }
}

/// A header's value as text. A value that is not visible ASCII is kept as a
/// lossy string so it fails authentication rather than looking absent.
fn header(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).trim().to_owned())
}

fn bearer(headers: &HeaderMap) -> Option<Secret> {
    let value = headers.get(http::header::AUTHORIZATION)?;
    let text = String::from_utf8_lossy(value.as_bytes());
    let (scheme, token) = text.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| Secret::new(token.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn both_key_spellings_and_any_case() {
        for name in ["apiKey", "apikey", "APIKEY", "api-key", "Api-Key"] {
            let map = {
                let mut map = HeaderMap::new();
                map.insert(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_static("k"),
                );
                map
            };
            assert_eq!(
                extract(&map).unwrap(),
                Some(Credentials::ApiKey(Secret::new("k"))),
                "{name}"
            );
        }
    }

    #[test]
    fn bearer_comes_first_and_other_schemes_are_ignored() {
        let both = headers(&[("authorization", "Bearer t"), ("apikey", "k")]);
        assert_eq!(
            extract(&both).unwrap(),
            Some(Credentials::Bearer(Secret::new("t")))
        );
        let basic = headers(&[("authorization", "Basic abc"), ("apikey", "k")]);
        assert_eq!(
            extract(&basic).unwrap(),
            Some(Credentials::ApiKey(Secret::new("k")))
        );
    }

    #[test]
    fn incomplete_and_missing_credentials() {
        let err = extract(&headers(&[("email", "a@b.c")])).unwrap_err();
        assert_eq!(err.status().as_u16(), 400);
        assert_eq!(err.code().as_str(), "MissingParameter");
        assert!(extract(&headers(&[("password", "p")])).is_err());
        assert_eq!(
            extract(&headers(&[("accept", "application/json")])).unwrap(),
            None
        );
        assert!(matches!(
            extract(&headers(&[("jwttokenstring", "a.b.c")])).unwrap(),
            Some(Credentials::CustomJwt(_))
        ));
    }
}
