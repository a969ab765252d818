//! The error type of the engine: MongoDB's error code and message text.

use std::fmt;

/// An error in a client-sent query, update or pipeline, with MongoDB's error code and message text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryError {
    /// MongoDB's numeric error code (for example 2 for `BadValue`).
    pub code: i32,
    /// MongoDB's message text.
    pub message: String,
}

impl QueryError {
    /// MongoDB's `BadValue` code.
    pub(crate) const BAD_VALUE: i32 = 2;
    /// MongoDB's `FailedToParse` code.
    pub(crate) const FAILED_TO_PARSE: i32 = 9;
    /// MongoDB's `TypeMismatch` code.
    pub(crate) const TYPE_MISMATCH: i32 = 14;
    /// MongoDB's `NotImplemented` code, used for features the embedded engine lacks.
    pub(crate) const NOT_IMPLEMENTED: i32 = 238;
    /// MongoDB's `DuplicateKey` code.
    pub(crate) const DUPLICATE_KEY: i32 = 11000;

    /// An error with an explicit code.
    pub(crate) fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A `BadValue` (2) error.
    pub(crate) fn bad_value(message: impl Into<String>) -> Self {
        Self::new(Self::BAD_VALUE, message)
    }

    /// A `FailedToParse` (9) error.
    pub(crate) fn failed_to_parse(message: impl Into<String>) -> Self {
        Self::new(Self::FAILED_TO_PARSE, message)
    }

    /// A `TypeMismatch` (14) error.
    pub(crate) fn type_mismatch(message: impl Into<String>) -> Self {
        Self::new(Self::TYPE_MISMATCH, message)
    }

    /// "`feature` is not supported by the embedded engine" (`NotImplemented`, 238).
    pub(crate) fn unsupported(feature: &str) -> Self {
        Self::new(
            Self::NOT_IMPLEMENTED,
            format!("{feature} is not supported by the embedded engine"),
        )
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for QueryError {}
