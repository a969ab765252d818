//! The error type of the engine: MongoDB's error code and message text.

use std::fmt;

/// An error in a client-sent query, update or pipeline, with MongoDB's error code and message text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// MongoDB's numeric error code (for example 2 for `BadValue`).
    pub code: i32,
    /// MongoDB's message text.
    pub message: String,
}

impl QueryError {
    /// MongoDB's `BadValue` code.
    pub const BAD_VALUE: i32 = 2;
    /// MongoDB's `FailedToParse` code.
    pub const FAILED_TO_PARSE: i32 = 9;
    /// MongoDB's `TypeMismatch` code.
    pub const TYPE_MISMATCH: i32 = 14;
    /// MongoDB's `NotImplemented` code, used for features the embedded engine lacks.
    pub const NOT_IMPLEMENTED: i32 = 238;
    /// MongoDB's `DuplicateKey` code.
    pub const DUPLICATE_KEY: i32 = 11000;

    /// An error with an explicit code.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A `BadValue` (2) error.
    pub fn bad_value(message: impl Into<String>) -> Self {
        Self::new(Self::BAD_VALUE, message)
    }

    /// A `FailedToParse` (9) error.
    pub fn failed_to_parse(message: impl Into<String>) -> Self {
        Self::new(Self::FAILED_TO_PARSE, message)
    }

    /// A `TypeMismatch` (14) error.
    pub fn type_mismatch(message: impl Into<String>) -> Self {
        Self::new(Self::TYPE_MISMATCH, message)
    }

    /// "`feature` is not supported by the embedded engine" (`NotImplemented`, 238).
    pub fn unsupported(feature: &str) -> Self {
        Self::new(
            Self::NOT_IMPLEMENTED,
            format!("{feature} is not supported by the embedded engine"),
        )
    }

    /// Whether this error reports a feature the embedded engine does not implement.
    pub fn is_unsupported(&self) -> bool {
        self.code == Self::NOT_IMPLEMENTED
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for QueryError {}
