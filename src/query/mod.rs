//! The embedded engine: MongoDB's query language evaluated in-process.
//!
//! Every input to this module (filters, projections, sorts, updates and
//! pipelines) comes from untrusted HTTP clients, so nothing here panics on
//! client input: problems are reported as [`QueryError`]s carrying MongoDB's
//! error code and message text. Features the engine lacks fail with
//! "`$X` is not supported by the embedded engine" (code 238, `NotImplemented`).
//!
//! | module | what |
//! |---|---|
//! | [`compare`] | BSON type order, value equality, canonical keys |
//! | [`number`] | numeric types, cross-type comparison, widening arithmetic |
//! | [`path`] | dotted paths through documents and arrays |
//! | [`pattern`] | `$regex` on the linear-time `regex` crate |
//! | [`filter`] | query filters (`$eq` … `$elemMatch`, `$expr`) |
//! | [`projection`] | find projections and `$project` |
//! | [`sort`] | sort specifications |
//! | [`update`] | update operators, upsert seeds, pipeline updates |
//! | [`expr`] | aggregation expressions |
//! | [`aggregate`] | aggregation stages |
//! | [`schema`] | App Services / `$jsonSchema` document schemas |
//!
//! Known differences from MongoDB: no collation (strings compare by bytes);
//! Decimal128 division goes through `f64`; regexes are those of the `regex`
//! crate (no backreferences or lookaround); `$text`, `$where`, geo operators,
//! `$function` and a few stages (`$geoNear`, `$search`, …) are not
//! implemented; `$bucketAuto` has no `granularity`; `$collStats` reports
//! `count` and `storageStats` only. Time zones are UTC, fixed offsets or the
//! IANA zones of the bundled time zone database.
//!
//! Pipelines run under a memory budget and a deadline
//! ([`aggregate::Limits`]): a blocking stage that would hold more than the
//! budget fails with code 292, an expired deadline with code 50.

pub mod aggregate;
pub mod compare;
mod display;
pub mod expr;
pub mod filter;
pub mod number;
pub mod path;
pub mod pattern;
pub mod projection;
pub mod schema;
pub mod sort;
pub mod update;

#[cfg(test)]
mod tests;

pub use aggregate::{AggregateContext, Pipeline};
pub use display::{display_doc, display_value};
pub use filter::Filter;
pub use projection::Projection;
pub use sort::SortSpec;
pub use update::UpdateDoc;

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
