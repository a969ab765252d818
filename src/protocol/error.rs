//! The Data API's error type: one value that knows its HTTP status, its message,
//! its App Services error code and how it renders (`{"error", "error_code", "link"}`).

use std::fmt;

use http::{HeaderName, HeaderValue, StatusCode};

use crate::backend::{BackendError, BackendErrorKind};

/// App Services error codes used in the `error_code` field.
///
/// The names are the ones App Services clients know; the few the original
/// service never documented (such as [`ErrorCode::PayloadTooLarge`]) follow the
/// same style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A request field, header or value is wrong.
    InvalidParameter,
    /// A required field or credential is missing.
    MissingParameter,
    /// The credentials do not identify a user.
    InvalidSession,
    /// Email/password login with a wrong email or password.
    InvalidPassword,
    /// Login with credentials the provider refuses.
    AuthError,
    /// Login through a provider that is not enabled.
    AuthProviderNotFound,
    /// Registration with an email that has a user already.
    AccountNameInUse,
    /// No app with the client app id in the URL.
    AppNotFound,
    /// The URL names no endpoint (unknown action or version).
    NotFound,
    /// The URL exists but not for this HTTP method.
    MethodNotAllowed,
    /// The `dataSource` names no enabled data source.
    ServiceNotFound,
    /// No rule lets this user touch this namespace at all.
    NoMatchingRuleFound,
    /// A rule or access level forbids this operation.
    PermissionDenied,
    /// The database refused the operation (bad operator, duplicate key, …).
    MongoDBError,
    /// A document failed schema validation.
    SchemaValidationFailedWrite,
    /// The request body is larger than the configured limit.
    PayloadTooLarge,
    /// The response would be larger than the configured limit.
    ReadSizeLimitExceeded,
    /// Too many requests are in flight.
    TooManyRequests,
    /// The request did not finish within its deadline.
    ExecutionTimeLimitExceeded,
    /// The data source cannot be reached.
    ServiceUnavailable,
    /// An unexpected failure inside the server.
    InternalServerError,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidParameter => "InvalidParameter",
            Self::MissingParameter => "MissingParameter",
            Self::InvalidSession => "InvalidSession",
            Self::InvalidPassword => "InvalidPassword",
            Self::AuthError => "AuthError",
            Self::AuthProviderNotFound => "AuthProviderNotFound",
            Self::AccountNameInUse => "AccountNameInUse",
            Self::AppNotFound => "AppNotFound",
            Self::NotFound => "NotFound",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::ServiceNotFound => "ServiceNotFound",
            Self::NoMatchingRuleFound => "NoMatchingRuleFound",
            Self::PermissionDenied => "PermissionDenied",
            Self::MongoDBError => "MongoDBError",
            Self::SchemaValidationFailedWrite => "SchemaValidationFailedWrite",
            Self::PayloadTooLarge => "PayloadTooLarge",
            Self::ReadSizeLimitExceeded => "ReadSizeLimitExceeded",
            Self::TooManyRequests => "TooManyRequests",
            Self::ExecutionTimeLimitExceeded => "ExecutionTimeLimitExceeded",
            Self::ServiceUnavailable => "ServiceUnavailable",
            Self::InternalServerError => "InternalServerError",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed request, ready to become an HTTP response.
///
/// ```
/// use tower_data_api::{ApiError, ErrorCode};
/// let err = ApiError::bad_request("'limit' must be a number");
/// assert_eq!(err.status().as_u16(), 400);
/// assert_eq!(err.code(), ErrorCode::InvalidParameter);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    header: Option<(HeaderName, HeaderValue)>,
}

/// The message of [`ApiError::response_too_large`], also used by backends
/// that stop reading a result early.
pub(crate) fn response_too_large_message(limit: usize) -> String {
    format!(
        "read size limit exceeded: the response would be larger than {limit} bytes; \
         ask for fewer documents (filter, limit) or fewer fields (projection)"
    )
}

/// The three authentication failures, worded exactly as the original service.
pub(crate) const NO_AUTH_METHODS: &str = "no authentication methods were specified";
pub(crate) const INCOMPLETE_AUTH: &str = "must specify some form of authentication (either email+password, api-key, or jwt) in the request header or body";
pub(crate) const INVALID_SESSION: &str = "invalid session: error finding user for endpoint";

impl ApiError {
    /// An error with any status, code and message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            header: None,
        }
    }

    /// 400 `InvalidParameter`: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidParameter,
            message,
        )
    }

    /// 400 `MissingParameter`: a required field is absent.
    pub fn missing_field(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::MissingParameter,
            format!("missing required field '{field}'"),
        )
    }

    /// 400 `InvalidParameter`: no credentials at all.
    pub fn no_credentials() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidParameter,
            NO_AUTH_METHODS,
        )
    }

    /// 400 `MissingParameter`: credentials are incomplete (e.g. email without password).
    pub fn incomplete_credentials() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::MissingParameter,
            INCOMPLETE_AUTH,
        )
    }

    /// 401 `InvalidSession`: the credentials identify nobody. The message never
    /// says which part was wrong.
    pub fn invalid_session() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidSession,
            INVALID_SESSION,
        )
    }

    /// 404 `AppNotFound`, worded as the original service.
    pub fn app_not_found(app_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::AppNotFound,
            format!("cannot find app using Client App ID '{app_id}'"),
        )
    }

    /// 404 `NotFound`: no endpoint at this URL.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "Not found: The request was sent to an endpoint that does not exist",
        )
    }

    /// 405 with `Allow: POST`.
    pub fn method_not_allowed(method: &http::Method) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            format!("method {method} is not allowed here: Data API actions take POST"),
        )
        .with_header(http::header::ALLOW, HeaderValue::from_static("POST"))
    }

    /// 413: the body is larger than `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }

    /// 400 `ReadSizeLimitExceeded`: the answer would be larger than
    /// `limit` bytes ([`Limits::max_response_bytes`](crate::Limits::max_response_bytes)).
    ///
    /// ```
    /// use tower_data_api::{ApiError, ErrorCode};
    /// let err = ApiError::response_too_large(16 * 1024 * 1024);
    /// assert_eq!(err.status().as_u16(), 400);
    /// assert_eq!(err.code(), ErrorCode::ReadSizeLimitExceeded);
    /// ```
    pub fn response_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ReadSizeLimitExceeded,
            response_too_large_message(limit),
        )
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyRequests,
            "too many concurrent requests; retry later",
        )
        .with_header(
            http::header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs),
        )
    }

    /// 504: the request deadline passed.
    pub fn timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::ExecutionTimeLimitExceeded,
            "execution time limit exceeded",
        )
    }

    /// 500 with a generic message (details go to the log, never to the client).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalServerError,
            "The Data API encountered an internal error",
        )
    }

    /// Adds a response header (such as `Allow` or `Retry-After`).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.header = Some((name, value));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `error_code` field.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The `error` field.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The extra response header, if any.
    pub fn header(&self) -> Option<&(HeaderName, HeaderValue)> {
        self.header.as_ref()
    }

    /// Builds the database error for an action; `verb` reads like "insert document".
    pub(crate) fn from_backend(err: BackendError, verb: &str) -> Self {
        let (status, code) = match err.kind {
            BackendErrorKind::InvalidRequest
            | BackendErrorKind::DuplicateKey
            | BackendErrorKind::Unsupported => (StatusCode::BAD_REQUEST, ErrorCode::MongoDBError),
            BackendErrorKind::DocumentValidation => (
                StatusCode::BAD_REQUEST,
                ErrorCode::SchemaValidationFailedWrite,
            ),
            BackendErrorKind::Unavailable => {
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::ServiceUnavailable,
                    "the data source is unavailable; retry later",
                )
                .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("1"))
            }
            BackendErrorKind::Timeout => return Self::timeout(),
            BackendErrorKind::PermissionDenied => {
                return Self::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::PermissionDenied,
                    err.message,
                )
            }
            BackendErrorKind::ResponseTooLarge => {
                return Self::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::ReadSizeLimitExceeded,
                    err.message,
                )
            }
            BackendErrorKind::Internal => return Self::internal(),
        };
        Self::new(status, code, format!("Failed to {verb}: {}", err.message))
    }

    /// Renders `{"error", "error_code", "link"}`.
    pub(crate) fn to_json(&self, link: &str) -> Vec<u8> {
        let body = serde_json::json!({
            "error": self.message,
            "error_code": self.code.as_str(),
            "link": link,
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_data_api_shape_in_field_order() {
        let body = ApiError::no_credentials().to_json("L");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"error":"no authentication methods were specified","error_code":"InvalidParameter","link":"L"}"#
        );
    }

    #[test]
    fn backend_errors_map_to_statuses_without_leaking_details() {
        let dup = ApiError::from_backend(
            BackendError::new(BackendErrorKind::DuplicateKey, "E11000 duplicate key"),
            "insert document",
        );
        assert_eq!(dup.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            dup.message(),
            "Failed to insert document: E11000 duplicate key"
        );
        let down = ApiError::from_backend(
            BackendError::new(BackendErrorKind::Unavailable, "host db1:27017 refused"),
            "find documents",
        );
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!down.message().contains("db1"));
        let internal = ApiError::from_backend(
            BackendError::new(BackendErrorKind::Internal, "secret detail"),
            "find documents",
        );
        assert!(!internal.message().contains("secret"));
    }
}
