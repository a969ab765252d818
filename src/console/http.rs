//! The console's HTTP plumbing: replies with their security headers and
//! cookies, failures as error pages, form bodies.

use std::collections::HashMap;

use askama::Template;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt as _, Full};

use crate::limits::read_body;
use crate::protocol::ResponseBody;
use crate::service::Inner;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "tda_console";

/// The login form's CSRF cookie (double submit: the form carries the same value).
pub(crate) const LOGIN_COOKIE: &str = "tda_console_login";

/// The largest form body the console reads.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Every console response's Content-Security-Policy: nothing but the
/// console's own style sheet, script and images; no inline script.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
     img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A form body or query string, by field name (the last value wins).
#[derive(Debug, Default)]
pub(crate) struct Form(HashMap<String, String>);

impl Form {
    /// Parses `application/x-www-form-urlencoded` text.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, Failure> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
            .map_err(|_| Failure::BadRequest("the form could not be read".into()))?;
        Ok(Self(pairs.into_iter().collect()))
    }

    /// The field `name`, trimmed; `None` when absent or empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }

    /// The field `name` untrimmed (passwords), `None` when absent or empty.
    pub(crate) fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The field `name`, or a 400 naming it.
    pub(crate) fn require(&self, name: &str) -> Result<&str, Failure> {
        self.get(name)
            .ok_or_else(|| Failure::BadRequest(format!("the field '{name}' is missing")))
    }
}

/// Reads a form body within the service's body time limit.
pub(crate) async fn read_form<B>(service: &Inner, body: B) -> Result<Form, Failure>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit = MAX_FORM_BYTES.min(service.limits.max_body_bytes);
    let bytes = read_body(body, limit, service.limits.body_read_timeout)
        .await
        .map_err(|e| Failure::BadRequest(e.message().to_owned()))?;
    Form::parse(&bytes)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(parts: &'a http::request::Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// What the console answers, before its headers are added.
#[derive(Debug)]
pub(crate) struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    location: Option<String>,
    cookies: Vec<Cookie>,
    cacheable: bool,
}

#[derive(Debug)]
struct Cookie {
    name: &'static str,
    value: String,
    max_age: Option<u64>,
}

impl Reply {
    /// An HTML page.
    pub(crate) fn html(status: StatusCode, page: &impl Template) -> Self {
        let body = page
            .render()
            .unwrap_or_else(|_| "<!doctype html><title>Error</title>the page failed".into());
        Self {
            status,
            content_type: "text/html; charset=utf-8",
            body: Bytes::from(body),
            location: None,
            cookies: Vec::new(),
            cacheable: false,
        }
    }

    /// An SVG image.
    pub(crate) fn svg(svg: String) -> Self {
        Self {
            status: StatusCode::OK,
            content_type: "image/svg+xml",
            body: Bytes::from(svg),
            location: None,
            cookies: Vec::new(),
            cacheable: false,
        }
    }

    /// A static file from the binary.
    pub(crate) fn asset(content_type: &'static str, text: &'static str) -> Self {
        Self {
            status: StatusCode::OK,
            content_type,
            body: Bytes::from_static(text.as_bytes()),
            location: None,
            cookies: Vec::new(),
            cacheable: true,
        }
    }

    /// 303 to `location` (relative to the current page).
    pub(crate) fn redirect(location: &str) -> Self {
        Self {
            status: StatusCode::SEE_OTHER,
            content_type: "text/plain; charset=utf-8",
            body: Bytes::new(),
            location: Some(location.to_owned()),
            cookies: Vec::new(),
            cacheable: false,
        }
    }

    /// Sets the session cookie to `id` for `max_age` seconds.
    pub(crate) fn with_session(mut self, id: String, max_age: u64) -> Self {
        self.cookies.push(Cookie {
            name: SESSION_COOKIE,
            value: id,
            max_age: Some(max_age),
        });
        self
    }

    /// Expires the session cookie and the login cookie.
    pub(crate) fn clear_session(mut self) -> Self {
        for name in [SESSION_COOKIE, LOGIN_COOKIE] {
            self.cookies.push(Cookie {
                name,
                value: String::new(),
                max_age: Some(0),
            });
        }
        self
    }

    /// Sets the login form's CSRF cookie.
    pub(crate) fn with_login_token(mut self, token: String) -> Self {
        self.cookies.push(Cookie {
            name: LOGIN_COOKIE,
            value: token,
            max_age: Some(3600),
        });
        self
    }

    /// The response, with the console's security headers.
    pub(crate) fn into_response(self, secure: bool) -> Response<ResponseBody> {
        let mut response = Response::new(Full::new(self.body).boxed());
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(if self.cacheable {
                "public, max-age=300"
            } else {
                "no-store"
            }),
        );
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        for cookie in self.cookies {
            let mut line = format!(
                "{}={}; HttpOnly; SameSite=Strict",
                cookie.name, cookie.value
            );
            if let Some(age) = cookie.max_age {
                line.push_str(&format!("; Max-Age={age}"));
            }
            if secure {
                line.push_str("; Secure");
            }
            if let Ok(value) = HeaderValue::from_str(&line) {
                headers.append(header::SET_COOKIE, value);
            }
        }
        response
    }
}

/// Why a console request is refused, shown as an error page.
#[derive(Debug)]
pub(crate) enum Failure {
    /// 400 with a message for the operator.
    BadRequest(String),
    /// 403 with a message.
    Forbidden(String),
    /// 404.
    NotFound,
    /// 404 with a message.
    NotFoundWith(String),
    /// 405.
    MethodNotAllowed,
    /// 503: the state database failed (details are logged, not shown).
    Store,
}

impl From<crate::auth::StoreError> for Failure {
    fn from(error: crate::auth::StoreError) -> Self {
        tracing::warn!(target: "tower_data_api::console", error = %error, "the state database failed");
        Failure::Store
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl Failure {
    /// The error page of this failure.
    pub(crate) fn reply(self) -> Reply {
        let (status, title, message) = match &self {
            Failure::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, "Bad request", message.as_str())
            }
            Failure::Forbidden(message) => (StatusCode::FORBIDDEN, "Forbidden", message.as_str()),
            Failure::NotFound => (StatusCode::NOT_FOUND, "Not found", "There is no such page."),
            Failure::NotFoundWith(message) => {
                (StatusCode::NOT_FOUND, "Not found", message.as_str())
            }
            Failure::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "This page does not take that method.",
            ),
            Failure::Store => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The state database failed; try again shortly.",
            ),
        };
        Reply::html(status, &ErrorPage { title, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(cookie: &str) -> http::request::Parts {
        http::Request::builder()
            .header(header::COOKIE, cookie)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let parts = parts("a=1; tda_console_login=L; tda_console=S");
        assert_eq!(cookie(&parts, "tda_console"), Some("S"));
        assert_eq!(cookie(&parts, "tda_console_login"), Some("L"));
        assert_eq!(cookie(&parts, "tda"), None);
    }

    #[test]
    fn forms_are_decoded_and_blank_fields_are_absent() {
        let form = Form::parse(b"name=a+b%26c&empty=&pw=%20x%20").unwrap();
        assert_eq!(form.get("name"), Some("a b&c"));
        assert_eq!(form.get("empty"), None);
        assert_eq!(form.raw("pw"), Some(" x "), "passwords are not trimmed");
        assert!(matches!(form.require("nope"), Err(Failure::BadRequest(_))));
    }

    #[test]
    fn replies_carry_the_security_headers_and_cookie_flags() {
        let reply = Reply::redirect("keys").with_session("id".into(), 60);
        let response = reply.into_response(true);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(headers[header::LOCATION], "keys");
        assert_eq!(
            headers[header::SET_COOKIE],
            "tda_console=id; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        let plain = Reply::redirect("x").clear_session().into_response(false);
        let cookies: Vec<_> = plain.headers().get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies.len(), 2);
        assert!(cookies
            .iter()
            .all(|c| c.to_str().unwrap().contains("Max-Age=0")));
        assert!(!cookies
            .iter()
            .any(|c| c.to_str().unwrap().contains("Secure")));
    }
}
