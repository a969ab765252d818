//! Limits and sizes shared by expressions and pipeline stages: the memory
//! budget of the stages that hold documents (`$group`, `$sort`,
//! `$bucketAuto`, `$facet`, `$setWindowFields`, `$lookup`, `$densify`), a
//! cooperative deadline checked while documents stream through the stages,
//! BSON size estimates, and the nesting bound of documents and paths.

use std::time::{Duration, Instant};

use bson::{Bson, Document};

use crate::query::QueryError;

/// MongoDB's per-stage memory limit without `allowDiskUse`: 100 MiB.
pub(crate) const DEFAULT_MAX_PIPELINE_BYTES: usize = 100 * 1024 * 1024;

pub(crate) use super::budget::MAX_TIME_EXPIRED;

/// MongoDB's `QueryExceededMemoryLimitNoDiskUseAllowed` error code.
pub(crate) const MEMORY_LIMIT_EXCEEDED: i32 = 292;

/// How many documents pass between two looks at the clock.
const CLOCK_EVERY: usize = 256;

/// The bounds a pipeline runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The most bytes (estimated BSON size) a blocking stage may hold.
    pub max_bytes: usize,
    /// When the pipeline must give up, if ever.
    pub deadline: Option<Instant>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: DEFAULT_MAX_PIPELINE_BYTES,
            deadline: None,
        }
    }
}

impl Limits {
    /// Limits with a deadline `max_time` from now.
    pub(crate) fn with_max_time(max_bytes: usize, max_time: Option<Duration>) -> Limits {
        Limits {
            max_bytes,
            deadline: max_time.and_then(|t| Instant::now().checked_add(t)),
        }
    }

    /// Fails with `MaxTimeMSExpired` once the deadline has passed, and when
    /// the request's meter says its deadline passed or it was abandoned.
    pub(crate) fn check_time(&self) -> Result<(), QueryError> {
        super::budget::check()?;
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(QueryError::new(
                MAX_TIME_EXPIRED,
                "operation exceeded time limit",
            )),
            _ => Ok(()),
        }
    }

    /// [`Limits::check_time`] every few hundred documents: call with a running index.
    pub(crate) fn tick(&self, i: usize) -> Result<(), QueryError> {
        if i.is_multiple_of(CLOCK_EVERY) {
            self.check_time()
        } else {
            Ok(())
        }
    }

    /// Fails when `docs`, held at once by `stage`, exceed the memory budget.
    pub(crate) fn check_docs(&self, stage: &str, docs: &[Document]) -> Result<(), QueryError> {
        let mut total = 0usize;
        for (i, d) in docs.iter().enumerate() {
            total = total.saturating_add(doc_size(d));
            if total > self.max_bytes {
                return Err(self.exceeded(stage));
            }
            self.tick(i)?;
        }
        Ok(())
    }

    /// Fails when `bytes` held by `stage` exceed the memory budget.
    pub(crate) fn check_bytes(&self, stage: &str, bytes: usize) -> Result<(), QueryError> {
        if bytes > self.max_bytes {
            Err(self.exceeded(stage))
        } else {
            Ok(())
        }
    }

    fn exceeded(&self, stage: &str) -> QueryError {
        QueryError::new(
            MEMORY_LIMIT_EXCEEDED,
            format!(
                "Exceeded memory limit for {stage} of {} bytes, but didn't allow external spilling; \
                 the embedded engine cannot spill to disk: reduce the data this stage holds \
                 (for example with an earlier $match or $project)",
                self.max_bytes
            ),
        )
    }
}

/// The BSON size of a document, computed without serializing it.
pub(crate) fn doc_size(d: &Document) -> usize {
    // int32 length + elements + trailing NUL.
    let mut n = 5usize;
    for (k, v) in d {
        n = n.saturating_add(2 + k.len()).saturating_add(value_size(v));
    }
    n
}

/// The BSON size of a value's payload (an estimate for rare types).
pub(crate) fn value_size(v: &Bson) -> usize {
    match v {
        Bson::Double(_) | Bson::Int64(_) | Bson::DateTime(_) | Bson::Timestamp(_) => 8,
        Bson::Int32(_) => 4,
        Bson::Boolean(_) => 1,
        Bson::Null | Bson::Undefined | Bson::MinKey | Bson::MaxKey => 0,
        Bson::String(s) | Bson::Symbol(s) | Bson::JavaScriptCode(s) => 5 + s.len(),
        Bson::ObjectId(_) => 12,
        Bson::Decimal128(_) => 16,
        Bson::Document(d) => doc_size(d),
        Bson::Array(items) => {
            let mut n = 5usize;
            for (i, item) in items.iter().enumerate() {
                // Keys are the decimal indexes.
                let digits = if i < 10 {
                    1
                } else {
                    (i as f64).log10() as usize + 1
                };
                n = n
                    .saturating_add(2 + digits)
                    .saturating_add(value_size(item));
            }
            n
        }
        Bson::Binary(b) => 5 + b.bytes.len(),
        Bson::RegularExpression(r) => r.pattern.len() + r.options.len() + 2,
        Bson::JavaScriptCodeWithScope(c) => 14 + c.code.len() + doc_size(&c.scope),
        Bson::DbPointer(_) => 24,
    }
}

/// The deepest nesting of documents and arrays a pipeline (or a value an
/// expression computes) may have (MongoDB refuses BSON nested beyond 180
/// levels in commands).
pub(crate) const MAX_NESTING: usize = 180;

/// How [`nesting_exceeds`] counts a document's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keys {
    /// A key is one level, dots or not (stored data).
    Plain,
    /// A dotted key, and a dotted string, is as many levels as it has parts
    /// (specifications such as `{"$set": {"a.b.c": 1}}` or `{"as": "a.b.c"}`
    /// build that nesting; no document is deeper than the limit, so no
    /// longer field path is of use).
    Paths,
}

/// Whether documents and arrays in `values`, each at nesting level `level`,
/// nest deeper than `limit`, checked without recursion.
pub(crate) fn nesting_exceeds<'a>(
    values: impl IntoIterator<Item = &'a Bson>,
    level: usize,
    limit: usize,
    keys: Keys,
) -> bool {
    let mut stack: Vec<(&Bson, usize)> = values.into_iter().map(|v| (v, level)).collect();
    while let Some((v, depth)) = stack.pop() {
        if depth > limit {
            return true;
        }
        match v {
            Bson::Document(d) => stack.extend(d.iter().map(|(key, x)| {
                let parts = match keys {
                    Keys::Plain => 1,
                    Keys::Paths => key.split('.').count(),
                };
                (x, depth.saturating_add(parts))
            })),
            Bson::Array(items) => stack.extend(items.iter().map(|x| (x, depth + 1))),
            Bson::String(text)
                if keys == Keys::Paths
                    && depth.saturating_add(text.split('.').count() - 1) > limit =>
            {
                return true;
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn sizes_match_bson_encoding() {
        let docs = [
            doc! {},
            doc! {"a": 1, "b": "xyz", "c": [1, 2.5, null, {"d": true}], "e": {"f": 1_i64}},
            doc! {"arr": (0..25).map(Bson::Int32).collect::<Vec<_>>()},
            doc! {"o": bson::oid::ObjectId::new(), "t": bson::DateTime::from_millis(5)},
        ];
        for d in docs {
            let mut buf = Vec::new();
            d.to_writer(&mut buf).unwrap();
            assert_eq!(doc_size(&d), buf.len(), "{d}");
        }
    }

    #[test]
    fn budget_and_deadline() {
        let limits = Limits {
            max_bytes: 100,
            deadline: None,
        };
        let small = vec![doc! {"a": 1}];
        assert!(limits.check_docs("$sort", &small).is_ok());
        let big = vec![doc! {"s": "x".repeat(200)}];
        let err = limits.check_docs("$sort", &big).unwrap_err();
        assert_eq!(err.code, MEMORY_LIMIT_EXCEEDED);
        assert!(err.message.contains("$sort"), "{}", err.message);
        let expired = Limits {
            max_bytes: 100,
            deadline: Some(Instant::now()),
        };
        assert_eq!(expired.check_time().unwrap_err().code, MAX_TIME_EXPIRED);
        assert!(Limits::default().check_time().is_ok());
    }
}
