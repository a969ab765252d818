//! The wire format, a pure codec: request bytes → a typed [`ActionRequest`](crate::action::ActionRequest),
//! a [`Reply`](crate::action::Reply) → response bytes; Extended JSON and errors.

mod ejson;
mod error;
mod format;
mod plain_json;
mod request;
mod response;

#[cfg(feature = "mongodb")]
pub(crate) use error::response_too_large_message;
pub use error::{ApiError, ErrorCode};
pub(crate) use error::{INCOMPLETE_AUTH, NO_AUTH_METHODS};
pub use format::Format;
#[cfg(feature = "fuzzing")]
pub(crate) use plain_json::parse as parse_plain_body;
#[cfg(feature = "fuzzing")]
pub(crate) use request::parse_body_general;
pub(crate) use request::{decode, parse_body, FindLimits};
pub use response::ResponseBody;
pub(crate) use response::{empty_response, error_response, response};
