//! Turning MongoDB driver errors into client-safe [`BackendError`]s.
//!
//! The driver's own error text names hosts, the topology and sometimes parts of
//! the connection string, so it never reaches a client. What does reach one:
//!
//! - the server's message for an error the *request* caused (bad operator, bad
//!   pipeline, duplicate key, failed validation): it describes the query, not
//!   the deployment;
//! - a fixed, generic message for everything else (unreachable server, time-out,
//!   internal failure).
//!
//! The real driver error is logged with `tracing` by [`log_and_map`].

use mongodb::error::{Error, ErrorKind, WriteConcernError, WriteFailure};

use crate::backend::{BackendError, BackendErrorKind};

/// The message of every [`BackendErrorKind::Unavailable`] error.
pub(super) const UNAVAILABLE: &str = "the data source is unavailable";
/// The message of every [`BackendErrorKind::Timeout`] error.
pub(super) const TIMEOUT: &str = "the data source did not answer in time";
/// The message of every [`BackendErrorKind::Internal`] error.
pub(super) const INTERNAL: &str = "the data source failed to run the operation";
/// The message when the connection string cannot be parsed.
pub(super) const BAD_CONNECTION_STRING: &str = "invalid MongoDB connection string";

/// Duplicate key: `DuplicateKey` and the two legacy codes.
const DUPLICATE_KEY_CODES: [i32; 3] = [11000, 11001, 12582];

/// `DocumentValidationFailure`.
const DOCUMENT_VALIDATION_CODE: i32 = 121;

/// The server ran out of time: `MaxTimeMSExpired`, `ExceededTimeLimit`,
/// `NetworkInterfaceExceededTimeLimit`.
const TIMEOUT_CODES: [i32; 3] = [50, 262, 202];

/// The deployment, not the request, is at fault: unreachable or stepping-down
/// members, shutdown, failed authentication, unsatisfiable read preference,
/// stale routing.
const UNAVAILABLE_CODES: [i32; 19] = [
    6,     // HostUnreachable
    7,     // HostNotFound
    18,    // AuthenticationFailed
    89,    // NetworkTimeout (between members)
    91,    // ShutdownInProgress
    133,   // FailedToSatisfyReadPreference
    134,   // ReadConcernMajorityNotAvailableYet
    189,   // PrimarySteppedDown
    216,   // ElectionInProgress
    9001,  // SocketException
    10058, // LegacyNotPrimary
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13388, // StaleConfig
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
    141,   // SSLHandshakeFailed
    279,   // ClientDisconnect
];

/// The server does not implement what the request asks for.
const UNSUPPORTED_CODES: [i32; 7] = [
    59,    // CommandNotFound
    115,   // CommandNotSupported
    166,   // CommandNotSupportedOnView
    167,   // OptionNotSupportedOnView
    224,   // QueryFeatureNotAllowed
    238,   // NotImplemented
    31082, // SearchNotEnabled ($search, $vectorSearch off Atlas)
];

/// Named codes (below 10000) that mean the request itself is wrong.
const REQUEST_CODES: [i32; 35] = [
    2,   // BadValue
    4,   // NoSuchKey
    9,   // FailedToParse
    14,  // TypeMismatch
    15,  // Overflow
    16,  // InvalidLength
    20,  // IllegalOperation
    22,  // InvalidBSON
    26,  // NamespaceNotFound
    27,  // IndexNotFound ($text without a text index, unknown hint)
    28,  // PathNotViable
    29,  // NonExistentPath
    30,  // InvalidPath
    34,  // CannotBackfillArray
    40,  // ConflictingUpdateOperators
    52,  // DollarPrefixedFieldName
    53,  // InvalidIdField
    54,  // NotSingleValueField
    55,  // InvalidDBRef
    56,  // EmptyFieldName
    57,  // DottedFieldName
    66,  // ImmutableField
    72,  // InvalidOptions
    73,  // InvalidNamespace
    96,  // OperationFailed
    111, // NotExactValueField
    116, // DocTooLargeForCapped
    146, // ExceededMemoryLimit
    159, // DurationOverflow
    165, // ViewDepthLimitExceeded
    168, // InvalidPipelineOperator
    171, // CannotIndexParallelArrays
    207, // InvalidUUID
    241, // ConversionFailure
    292, // QueryExceededMemoryLimitNoDiskUseAllowed
];

/// `WriteConcernFailed`: with `wtimeout`, the write concern timed out.
const WRITE_CONCERN_FAILED_CODE: i32 = 64;

/// Where a server error code came from; decides the default for unknown codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A top-level command error (`ok: 0`): unknown named codes are internal.
    Command,
    /// A per-document write error (`writeErrors`): always about the request.
    Write,
}

/// Maps a server error code and message to a [`BackendError`].
fn from_code(code: i32, code_name: &str, message: &str, origin: Origin) -> BackendError {
    let server_message = || {
        if message.trim().is_empty() {
            let name = if code_name.is_empty() {
                code.to_string()
            } else {
                code_name.to_string()
            };
            format!("the data source rejected the request ({name})")
        } else {
            message.to_string()
        }
    };
    if DUPLICATE_KEY_CODES.contains(&code) {
        BackendError::new(BackendErrorKind::DuplicateKey, server_message())
    } else if code == DOCUMENT_VALIDATION_CODE {
        BackendError::new(BackendErrorKind::DocumentValidation, server_message())
    } else if TIMEOUT_CODES.contains(&code) {
        BackendError::new(BackendErrorKind::Timeout, TIMEOUT)
    } else if UNAVAILABLE_CODES.contains(&code) {
        BackendError::new(BackendErrorKind::Unavailable, UNAVAILABLE)
    } else if UNSUPPORTED_CODES.contains(&code) {
        BackendError::new(BackendErrorKind::Unsupported, server_message())
    } else if REQUEST_CODES.contains(&code) || code >= 10000 || origin == Origin::Write {
        // Codes from 10000 up are "location" codes: assertions raised while
        // parsing or evaluating a query, update or pipeline. The few that
        // describe the deployment are listed in UNAVAILABLE_CODES above.
        BackendError::invalid(server_message())
    } else {
        BackendError::new(BackendErrorKind::Internal, INTERNAL)
    }
}

/// Maps a write concern failure: a time-out or an unhealthy replica set.
fn from_write_concern(error: &WriteConcernError) -> BackendError {
    if error.code == WRITE_CONCERN_FAILED_CODE
        || error
            .details
            .as_ref()
            .and_then(|d| d.get_bool("wtimeout").ok())
            .unwrap_or(false)
    {
        BackendError::new(BackendErrorKind::Timeout, TIMEOUT)
    } else {
        BackendError::new(BackendErrorKind::Unavailable, UNAVAILABLE)
    }
}

/// Maps a driver error to a client-safe [`BackendError`] (no logging).
///
/// | driver error | kind | message |
/// | --- | --- | --- |
/// | code 11000 / 11001 / 12582 | `DuplicateKey` | server's |
/// | code 121 | `DocumentValidation` | server's |
/// | codes 50, 202, 262; write concern time-out; I/O time-out | `Timeout` | generic |
/// | server selection, I/O, pool cleared, authentication, DNS, shutdown, not-primary codes | `Unavailable` | generic |
/// | codes 59, 115, 166, 167, 224, 238, 31082 | `Unsupported` | server's |
/// | request codes (2, 9, 14, 40, 66, 72, …), location codes ≥ 10000, any write error, driver argument/serialization errors | `InvalidRequest` | server's / driver's |
/// | anything else | `Internal` | generic |
pub(super) fn map_error(error: &Error) -> BackendError {
    match error.kind.as_ref() {
        ErrorKind::Command(e) => from_code(e.code, &e.code_name, &e.message, Origin::Command),
        ErrorKind::Write(WriteFailure::WriteError(e)) => from_code(
            e.code,
            e.code_name.as_deref().unwrap_or_default(),
            &e.message,
            Origin::Write,
        ),
        ErrorKind::Write(WriteFailure::WriteConcernError(e)) => from_write_concern(e),
        ErrorKind::InsertMany(e) => {
            let first = e
                .write_errors
                .as_ref()
                .and_then(|errors| errors.iter().min_by_key(|w| w.index));
            match (first, &e.write_concern_error) {
                (Some(w), _) => from_code(
                    w.code,
                    w.code_name.as_deref().unwrap_or_default(),
                    &w.message,
                    Origin::Write,
                ),
                (None, Some(wc)) => from_write_concern(wc),
                (None, None) => BackendError::new(BackendErrorKind::Internal, INTERNAL),
            }
        }
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            BackendError::new(BackendErrorKind::Timeout, TIMEOUT)
        }
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::Authentication { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::IncompatibleServer { .. }
        | ErrorKind::Shutdown => BackendError::new(BackendErrorKind::Unavailable, UNAVAILABLE),
        // Raised by the driver before anything is sent, about the request's
        // documents: "update document must only contain update modifiers",
        // "replacement document must not contain update modifiers", a key the
        // BSON encoder refuses.
        ErrorKind::InvalidArgument { message, .. } => BackendError::invalid(message.clone()),
        ErrorKind::BsonSerialization(e) => BackendError::invalid(e.to_string()),
        _ => BackendError::new(BackendErrorKind::Internal, INTERNAL),
    }
}

/// Maps a driver error and logs it: `warn` when the data source is at fault
/// (unavailable, time-out, internal), `debug` when the request was refused.
pub(super) fn log_and_map(error: &Error, operation: &'static str) -> BackendError {
    let mapped = map_error(error);
    match mapped.kind {
        BackendErrorKind::Unavailable | BackendErrorKind::Timeout | BackendErrorKind::Internal => {
            tracing::warn!(operation, kind = ?mapped.kind, error = %error.kind, "MongoDB operation failed");
        }
        _ => {
            tracing::debug!(operation, kind = ?mapped.kind, error = %error.kind, "MongoDB refused the request");
        }
    }
    mapped
}

/// The error for a connection string the driver cannot use.
///
/// Parse errors become a fixed message (the driver's text may quote parts of the
/// string); a failed `mongodb+srv` DNS look-up is [`BackendErrorKind::Unavailable`].
/// The log line has the driver's text with the string's user information removed.
pub(super) fn connection_string_error(error: &Error, uri: &str) -> BackendError {
    let text = redact_userinfo(&error.kind.to_string(), uri);
    match error.kind.as_ref() {
        ErrorKind::DnsResolve { .. } | ErrorKind::Io(_) => {
            tracing::warn!(error = %text, "resolving the MongoDB connection string failed");
            BackendError::new(BackendErrorKind::Unavailable, UNAVAILABLE)
        }
        _ => {
            tracing::warn!(error = %text, "invalid MongoDB connection string");
            BackendError::invalid(BAD_CONNECTION_STRING)
        }
    }
}

/// Removes the connection string's user information (`user:password`), its
/// password alone and their percent-decoded forms from `text`.
///
/// A malformed string has no single right parse, so the user information is
/// taken up to the last `@` of each plausible authority (ending at the first
/// `/` or `?`, at the first `?`, or at the end) and every candidate is removed.
fn redact_userinfo(text: &str, uri: &str) -> String {
    let after_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let ends = [
        after_scheme.find(['/', '?']),
        after_scheme.find('?'),
        Some(after_scheme.len()),
    ];
    let mut secrets: Vec<String> = Vec::new();
    for end in ends.into_iter().flatten() {
        let authority = &after_scheme[..end];
        let Some(at) = authority.rfind('@') else {
            continue;
        };
        let userinfo = &authority[..at];
        secrets.push(userinfo.to_string());
        secrets.push(percent_decode(userinfo));
        if let Some((_, password)) = userinfo.split_once(':') {
            secrets.push(password.to_string());
            secrets.push(percent_decode(password));
        }
    }
    secrets.retain(|s| !s.is_empty());
    // Longest first, so that a part never leaves the rest of a longer secret.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    let mut out = text.to_string();
    for secret in &secrets {
        out = out.replace(secret.as_str(), "<redacted>");
    }
    out
}

/// Decodes `%XX` escapes; invalid escapes and non-UTF-8 results are kept as is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
mod tests;
