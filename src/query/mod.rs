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

pub(crate) mod aggregate;
pub(crate) mod budget;
pub(crate) mod compare;
mod display;
mod error;
pub(crate) mod expr;
pub(crate) mod filter;
mod id;
pub(crate) mod limits;
pub(crate) mod number;
pub(crate) mod path;
pub(crate) mod pattern;
pub(crate) mod projection;
pub(crate) mod schema;
pub(crate) mod sort;
pub(crate) mod update;

#[cfg(test)]
mod tests;

pub(crate) use aggregate::Pipeline;
pub(crate) use display::{display_doc, display_value};
pub(crate) use error::QueryError;
pub(crate) use filter::Filter;
pub(crate) use projection::Projection;
pub(crate) use sort::SortSpec;
pub(crate) use update::UpdateDoc;
