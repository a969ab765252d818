//! The wire format: request decoding, response encoding, Extended JSON and errors.

mod ejson;
mod error;
mod format;
mod request;
mod response;

pub use error::{ApiError, ErrorCode};
pub use format::Format;
pub(crate) use request::{decode, parse_body, FindLimits};
pub use request::{ActionRequest, Command};
pub(crate) use response::{empty_response, error_response, response};
pub use response::{Reply, ResponseBody};
