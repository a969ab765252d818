//! Stages that produce documents instead of transforming their input:
//! `$documents` and `$collStats`. Both must come first in a pipeline.

use bson::{Bson, Document};

use super::AggregateContext;
use crate::query::expr::{type_name, Expr, Vars};
#[cfg(test)]
use crate::query::limits::doc_size;
use crate::query::QueryError;

/// What `$collStats` reports about the collection a pipeline reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CollectionStats {
    /// `database.collection`.
    pub ns: String,
    /// Number of documents.
    pub count: u64,
    /// Total BSON size of the documents, in bytes.
    pub size: u64,
}

impl CollectionStats {
    /// Stats for `ns` computed from its documents.
    #[cfg(test)]
    pub(crate) fn of(ns: String, docs: &[Document]) -> CollectionStats {
        CollectionStats {
            ns,
            count: docs.len() as u64,
            size: docs.iter().map(|d| doc_size(d) as u64).sum(),
        }
    }
}

/// A count or size as MongoDB's `appendNumber` writes it: int32 below 2^30.
fn number(n: u64) -> Bson {
    match i32::try_from(n) {
        Ok(small) if small < (1 << 30) => Bson::Int32(small),
        _ => Bson::Int64(i64::try_from(n).unwrap_or(i64::MAX)),
    }
}

/// The error for a source stage that is not first.
pub(super) fn not_first(name: &str) -> QueryError {
    QueryError::new(
        40602,
        format!("{name} is only valid as the first stage in a pipeline"),
    )
}

/// Parses `$documents`: an expression that evaluates to an array of objects.
pub(super) fn parse_documents(arg: &Bson) -> Result<Expr, QueryError> {
    Expr::parse(arg)
}

/// Evaluates `$documents`' expression (no `$$ROOT`: it runs before any input).
pub(super) fn run_documents(
    expr: &Expr,
    vars: &[(String, Bson)],
) -> Result<Vec<Document>, QueryError> {
    let empty = Document::new();
    let value = expr.eval(&Vars::with_bindings(&empty, vars))?;
    let Some(Bson::Array(items)) = value else {
        return Err(QueryError::new(
            5858203,
            format!(
                "error parsing $documents: an array is expected, found {}",
                type_name(value.as_ref())
            ),
        ));
    };
    items
        .into_iter()
        .map(|item| match item {
            Bson::Document(d) => Ok(d),
            other => Err(QueryError::new(
                40228,
                format!(
                    "error parsing $documents: every element must be an object, found {}",
                    type_name(Some(&other))
                ),
            )),
        })
        .collect()
}

/// A parsed `$collStats` stage: which sections to report.
#[derive(Debug, Clone, Default)]
pub(super) struct CollStats {
    count: bool,
    storage: Option<f64>,
}

impl CollStats {
    /// Parses `{count: {}, storageStats: {scale}}`; `latencyStats` and
    /// `queryExecStats` are not supported.
    pub(super) fn parse(arg: &Bson) -> Result<CollStats, QueryError> {
        let Bson::Document(spec) = arg else {
            return Err(QueryError::new(
                5447000,
                format!(
                    "$collStats must take a nested object but found: {}",
                    crate::query::display_value(arg)
                ),
            ));
        };
        let mut out = CollStats::default();
        for (k, v) in spec {
            let Bson::Document(section) = v else {
                return Err(QueryError::type_mismatch(format!(
                    "BSON field '$collStats.{k}' is the wrong type '{}', expected type 'object'",
                    type_name(Some(v))
                )));
            };
            match k.as_str() {
                "count" => out.count = true,
                "storageStats" => {
                    let scale = match section.get("scale") {
                        None => 1.0,
                        Some(s) => match crate::query::number::Num::from_bson(s)
                            .and_then(|n| n.to_i64_exact())
                        {
                            Some(n) if n >= 1 => n as f64,
                            _ => {
                                return Err(QueryError::bad_value(
                                    "scale has to be >= 1 and an integer",
                                ))
                            }
                        },
                    };
                    out.storage = Some(scale);
                }
                "latencyStats" | "queryExecStats" => {
                    return Err(QueryError::unsupported(&format!("$collStats' {k}")))
                }
                other => {
                    return Err(QueryError::new(
                        40415,
                        format!("BSON field '$collStats.{other}' is an unknown field."),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// The single document `$collStats` outputs. Numbers are int32 when
    /// they fit in 30 bits, as MongoDB's `appendNumber` writes them.
    pub(super) fn run(&self, ctx: &dyn AggregateContext) -> Result<Vec<Document>, QueryError> {
        let Some(stats) = ctx.stats() else {
            return Err(QueryError::unsupported("$collStats here"));
        };
        let mut d = Document::new();
        d.insert("ns", stats.ns.clone());
        d.insert("host", "embedded");
        d.insert("localTime", bson::DateTime::now());
        if let Some(scale) = self.storage {
            let size = (stats.size as f64 / scale) as u64;
            let mut s = Document::new();
            s.insert("size", number(size));
            s.insert("count", number(stats.count));
            if let Some(avg) = stats.size.checked_div(stats.count) {
                s.insert("avgObjSize", number(avg));
            }
            s.insert("storageSize", number(size));
            s.insert("freeStorageSize", 0_i32);
            s.insert("capped", false);
            s.insert("nindexes", 1_i32);
            s.insert("totalIndexSize", 0_i32);
            s.insert("totalSize", number(size));
            let mut idx = Document::new();
            idx.insert("_id_", 0_i32);
            s.insert("indexSizes", idx);
            s.insert("scaleFactor", number(scale as u64));
            d.insert("storageStats", s);
        }
        if self.count {
            d.insert("count", number(stats.count));
        }
        Ok(vec![d])
    }
}
