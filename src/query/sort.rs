//! Sort specifications: `{a: 1, "b.c": -1}` ordering documents as MongoDB does.
//!
//! Array fields sort by their smallest element ascending and their largest
//! element descending; missing fields sort as null; ties keep input order.

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::compare::compare_values;
use super::number::Num;
use super::path::{sort_values, split};
use super::QueryError;

/// A parsed sort specification.
#[derive(Debug, Clone, Default)]
pub(crate) struct SortSpec {
    keys: Vec<(Vec<String>, bool)>,
    natural: Option<bool>,
}

impl SortSpec {
    /// Parses `{field: 1 | -1, ...}`; `{}` sorts nothing.
    pub(crate) fn parse(sort: &Document) -> Result<SortSpec, QueryError> {
        let mut keys = Vec::with_capacity(sort.len());
        let mut natural = None;
        for (field, dir) in sort {
            let ascending =
                match dir {
                    Bson::Document(d) if d.contains_key("$meta") => {
                        return Err(QueryError::unsupported("$meta sort"));
                    }
                    other => match Num::from_bson(other).map(Num::to_f64) {
                        Some(1.0) => true,
                        Some(-1.0) => false,
                        _ => return Err(QueryError::new(
                            15975,
                            "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
                        )),
                    },
                };
            if field.is_empty() || field.split('.').any(str::is_empty) {
                return Err(QueryError::new(
                    40352,
                    "FieldPath cannot be constructed with empty string",
                ));
            }
            if field == "$natural" && sort.len() == 1 {
                natural = Some(ascending);
                continue;
            }
            if field.starts_with('$') {
                return Err(QueryError::new(
                    16410,
                    "FieldPath field names may not start with '$'.",
                ));
            }
            keys.push((split(field), ascending));
        }
        Ok(SortSpec { keys, natural })
    }

    /// Whether the specification has no keys.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The sort's paths and whether each is ascending, in order.
    pub(crate) fn keys(&self) -> &[(Vec<String>, bool)] {
        &self.keys
    }

    /// `Some(ascending)` for `{$natural: 1 | -1}` (insertion order or its
    /// reverse), which only a collection scan can honour.
    pub(crate) fn natural(&self) -> Option<bool> {
        self.natural
    }

    /// Compares two documents.
    pub(crate) fn compare(&self, a: &Document, b: &Document) -> Ordering {
        for (path, ascending) in &self.keys {
            let (ka, kb) = (key(a, path, *ascending), key(b, path, *ascending));
            let o = compare_values(&ka, &kb);
            if o != Ordering::Equal {
                return if *ascending { o } else { o.reverse() };
            }
        }
        Ordering::Equal
    }

    /// Sorts documents stably, computing each sort key once.
    pub(crate) fn sort(&self, docs: &mut Vec<Document>) {
        if self.keys.is_empty() {
            return;
        }
        let mut keyed: Vec<(Vec<Bson>, Document)> =
            docs.drain(..).map(|d| (self.sort_key(&d), d)).collect();
        keyed.sort_by(|(ka, _), (kb, _)| self.compare_keys(ka, kb));
        docs.extend(keyed.into_iter().map(|(_, d)| d));
    }

    /// The sort key of a document: one value per key of the specification.
    pub(crate) fn sort_key(&self, doc: &Document) -> Vec<Bson> {
        self.keys.iter().map(|(p, asc)| key(doc, p, *asc)).collect()
    }

    /// Compares two keys from [`SortSpec::sort_key`].
    pub(crate) fn compare_keys(&self, a: &[Bson], b: &[Bson]) -> Ordering {
        for ((x, y), (_, ascending)) in a.iter().zip(b.iter()).zip(self.keys.iter()) {
            let o = compare_values(x, y);
            if o != Ordering::Equal {
                return if *ascending { o } else { o.reverse() };
            }
        }
        Ordering::Equal
    }

    /// The positions in `docs` of the documents a stable sort would put at
    /// `skip..skip + limit`, in that order, without moving or copying any
    /// document: only the first `skip + limit` are fully sorted.
    pub(crate) fn top<'a, I>(&self, docs: I, skip: usize, limit: usize) -> Vec<usize>
    where
        I: IntoIterator<Item = &'a Document>,
    {
        let mut keyed: Vec<(Vec<Bson>, usize)> = docs
            .into_iter()
            .enumerate()
            .map(|(i, d)| (self.sort_key(d), i))
            .collect();
        // The position breaks ties, which makes the order total and equal to
        // a stable sort's.
        let order = |a: &(Vec<Bson>, usize), b: &(Vec<Bson>, usize)| {
            self.compare_keys(&a.0, &b.0).then(a.1.cmp(&b.1))
        };
        let wanted = skip.saturating_add(limit);
        if wanted < keyed.len() {
            if wanted == 0 {
                return Vec::new();
            }
            keyed.select_nth_unstable_by(wanted - 1, order);
            keyed.truncate(wanted);
        }
        keyed.sort_unstable_by(order);
        keyed.into_iter().skip(skip).map(|(_, i)| i).collect()
    }
}

/// The sort key of one document for one path.
fn key(doc: &Document, path: &[String], ascending: bool) -> Bson {
    let values = sort_values(doc, path);
    let null = Bson::Null;
    let mut best: Option<&Bson> = None;
    for v in values {
        let v = v.unwrap_or(&null);
        best = Some(match best {
            None => v,
            Some(b) => {
                let o = compare_values(v, b);
                if (ascending && o == Ordering::Less) || (!ascending && o == Ordering::Greater) {
                    v
                } else {
                    b
                }
            }
        });
    }
    best.cloned().unwrap_or(Bson::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn ids(spec: Document, docs: Vec<Document>) -> Vec<i32> {
        let s = SortSpec::parse(&spec).unwrap();
        let mut docs = docs;
        s.sort(&mut docs);
        docs.iter().map(|d| d.get_i32("_id").unwrap()).collect()
    }

    #[test]
    fn orders() {
        let docs = vec![
            doc! {"_id": 1, "a": 3},
            doc! {"_id": 2, "a": [5, 0]},
            doc! {"_id": 3},
            doc! {"_id": 4, "a": "x"},
            doc! {"_id": 5, "a": null},
            doc! {"_id": 6, "a": 3.0},
        ];
        let cases = [
            (doc! {"a": 1}, vec![3, 5, 2, 1, 6, 4]),
            (doc! {"a": -1}, vec![4, 2, 1, 6, 3, 5]),
            (doc! {"a": 1, "_id": -1}, vec![5, 3, 2, 6, 1, 4]),
        ];
        for (spec, want) in cases {
            assert_eq!(ids(spec.clone(), docs.clone()), want, "{spec}");
        }
        let nested = vec![
            doc! {"_id": 1, "a": [{"b": 2}, {"b": 9}]},
            doc! {"_id": 2, "a": {"b": 5}},
        ];
        assert_eq!(ids(doc! {"a.b": 1}, nested.clone()), vec![1, 2]);
        assert_eq!(ids(doc! {"a.b": -1}, nested), vec![1, 2]);
        let s = SortSpec::parse(&doc! {"a": 1}).unwrap();
        assert_eq!(s.compare(&doc! {"a": 1}, &doc! {"a": 2}), Ordering::Less);
    }

    #[test]
    fn top_equals_a_stable_sort() {
        let docs: Vec<Document> = (0..200)
            .map(|i| doc! {"_id": i, "a": (i * 7) % 13, "b": [i % 3, (i * 5) % 11]})
            .collect();
        for spec in [doc! {"a": 1}, doc! {"a": -1, "b": 1}, doc! {"b": -1}] {
            let s = SortSpec::parse(&spec).unwrap();
            let mut sorted = docs.clone();
            s.sort(&mut sorted);
            for (skip, limit) in [(0, 10), (5, 20), (190, 50), (0, 500), (0, 0)] {
                let want: Vec<&Document> = sorted.iter().skip(skip).take(limit).collect();
                let got: Vec<&Document> = s
                    .top(&docs, skip, limit)
                    .into_iter()
                    .map(|i| &docs[i])
                    .collect();
                assert_eq!(got, want, "{spec} skip {skip} limit {limit}");
            }
        }
    }

    #[test]
    fn rejects_bad_directions() {
        for spec in [doc! {"a": 2}, doc! {"a": "asc"}, doc! {"a": 0}] {
            let err = SortSpec::parse(&spec).unwrap_err();
            assert_eq!(err.code, 15975);
            assert_eq!(
                err.message,
                "$sort key ordering must be 1 (for ascending) or -1 (for descending)"
            );
        }
        assert!(SortSpec::parse(&doc! {"a": 1.0, "b": -1i64}).is_ok());
        assert_eq!(
            SortSpec::parse(&doc! {"$natural": -1}).unwrap().natural(),
            Some(false)
        );
        assert_eq!(
            SortSpec::parse(&doc! {"$natural": -1, "a": 1})
                .unwrap_err()
                .code,
            16410
        );
    }
}
