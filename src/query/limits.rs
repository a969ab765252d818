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

/// The BSON size of a document, computed without serializing it (exact
/// but for the cases [`exact_doc_size`] names).
pub(crate) fn doc_size(d: &Document) -> usize {
    let mut exact = true;
    sized_doc(d, &mut exact)
}

/// The BSON size of a value's payload (see [`doc_size`]).
pub(crate) fn value_size(v: &Bson) -> usize {
    let mut exact = true;
    sized_value(v, &mut exact)
}

/// [`doc_size`] when it is exactly what the document serializes to: `None`
/// when it holds a DBPointer (whose namespace `bson` keeps private), or a
/// key or regex BSON cannot store (one with a NUL byte).
pub(crate) fn exact_doc_size(d: &Document) -> Option<usize> {
    let mut exact = true;
    let size = sized_doc(d, &mut exact);
    exact.then_some(size)
}

/// An element: type byte, key as a C string, payload.
fn element(key_len: usize, payload: usize) -> usize {
    payload.saturating_add(key_len + 2)
}

fn sized_doc(d: &Document, exact: &mut bool) -> usize {
    // int32 length + elements + trailing NUL.
    let mut n = 5usize;
    for (k, v) in d {
        *exact &= !k.contains('\0');
        n = n.saturating_add(element(k.len(), sized_value(v, exact)));
    }
    n
}

/// Decimal digits of an array index (the element's key).
fn index_digits(mut i: usize) -> usize {
    let mut digits = 1;
    while i >= 10 {
        i /= 10;
        digits += 1;
    }
    digits
}

fn sized_value(v: &Bson, exact: &mut bool) -> usize {
    match v {
        Bson::Double(_) | Bson::Int64(_) | Bson::DateTime(_) | Bson::Timestamp(_) => 8,
        Bson::Int32(_) => 4,
        Bson::Boolean(_) => 1,
        Bson::Null | Bson::Undefined | Bson::MinKey | Bson::MaxKey => 0,
        // int32 length, bytes, NUL.
        Bson::String(s) | Bson::Symbol(s) | Bson::JavaScriptCode(s) => 5 + s.len(),
        Bson::ObjectId(_) => 12,
        Bson::Decimal128(_) => 16,
        Bson::Document(d) => sized_doc(d, exact),
        Bson::Array(items) => {
            let mut n = 5usize;
            for (i, item) in items.iter().enumerate() {
                n = n.saturating_add(element(index_digits(i), sized_value(item, exact)));
            }
            n
        }
        // int32 length, subtype, bytes; the old binary subtype repeats the length.
        Bson::Binary(b) if b.subtype == bson::spec::BinarySubtype::BinaryOld => 9 + b.bytes.len(),
        Bson::Binary(b) => 5 + b.bytes.len(),
        // Two C strings.
        Bson::RegularExpression(r) => {
            *exact &= !r.pattern.contains('\0') && !r.options.contains('\0');
            r.pattern.len() + r.options.len() + 2
        }
        // int32 total length, the code as a string, the scope document.
        Bson::JavaScriptCodeWithScope(c) => 9 + c.code.len() + sized_doc(&c.scope, exact),
        Bson::DbPointer(_) => {
            *exact = false;
            24
        }
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
            doc! {"arr": (0..1_001).map(|i| Bson::Int64(i * 7)).collect::<Vec<_>>()},
            doc! {
                "bin": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1, 2, 3] },
                "old": bson::Binary { subtype: bson::spec::BinarySubtype::BinaryOld, bytes: vec![4; 9] },
                "re": bson::Regex { pattern: "a.*b".into(), options: "im".into() },
                "code": Bson::JavaScriptCode("f()".into()),
                "scoped": bson::JavaScriptCodeWithScope { code: "g(x)".into(), scope: doc! {"x": 1} },
                "sym": Bson::Symbol("s".into()),
                "ts": bson::Timestamp { time: 1, increment: 2 },
                "dec": bson::Decimal128::from_bytes([0; 16]),
                "edge": [Bson::MinKey, Bson::MaxKey, Bson::Undefined, Bson::Null],
                "utf8": "ünïcødé",
            },
        ];
        for d in docs {
            let mut buf = Vec::new();
            d.to_writer(&mut buf).unwrap();
            assert_eq!(doc_size(&d), buf.len(), "{d}");
            assert_eq!(exact_doc_size(&d), Some(buf.len()), "{d}");
        }
        let unstorable = doc! {"a\0b": 1};
        assert!(unstorable.to_writer(&mut Vec::new()).is_err());
        assert_eq!(exact_doc_size(&unstorable), None);
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
