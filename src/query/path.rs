//! Dotted-path resolution the way MongoDB traverses documents and arrays.
//!
//! Three flavours exist because MongoDB uses three:
//! - [`filter_leaves`]: query matching. `a.b` over an array of documents yields
//!   each element's `b`; a numeric segment both indexes an array and names a
//!   field called `"0"`; a scalar in the middle of the path yields "missing".
//! - [`get_exact`]: a single value, numeric segments indexing arrays (updates).
//! - [`expr_get`]: aggregation field paths (`$a.b` over an array gives the array of `b`s).

use bson::{Bson, Document};

use super::limits::MAX_NESTING;
use super::QueryError;

/// Refuses a path with more parts than a document may nest (180): an
/// update or upsert would build a document MongoDB refuses, and walking
/// such a path would recurse that deep.
pub(crate) fn check_parts(path: &str) -> Result<(), QueryError> {
    if path.split('.').count() > MAX_NESTING {
        return Err(QueryError::new(
            15,
            format!(
                "a field path has more than {MAX_NESTING} parts, deeper than a document may nest"
            ),
        ));
    }
    Ok(())
}

/// Splits a dotted path into its segments.
pub(crate) fn split(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

/// Whether `seg` is an array index as MongoDB reads one (ASCII digits only).
pub(crate) fn array_index(seg: &str) -> Option<usize> {
    if seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if seg.len() > 1 && seg.starts_with('0') {
        return None;
    }
    seg.parse().ok()
}

/// Documents with at most this many fields are searched by comparing keys
/// in order rather than through their hash index.
const LINEAR_FIELDS: usize = 16;

/// The value of `doc`'s field `key`. Stored documents are usually small;
/// for them a scan comparing key lengths first (one key's bytes read on a
/// length match) costs less than hashing `key` and probing the document's
/// index, which also reads the key. Keys are unique, so both find the same
/// field.
#[inline]
pub(crate) fn field<'a>(doc: &'a Document, key: &str) -> Option<&'a Bson> {
    if doc.len() <= LINEAR_FIELDS {
        doc.iter().find_map(|(k, v)| (k == key).then_some(v))
    } else {
        doc.get(key)
    }
}

/// The values a query predicate sees at `path`; `None` stands for "missing".
/// The final value itself is returned even when it is an array: predicates
/// decide whether to look inside it.
pub(crate) fn filter_leaves<'a>(doc: &'a Document, path: &[String]) -> Vec<Option<&'a Bson>> {
    let mut out = Vec::new();
    match path.split_first() {
        None => {}
        Some((first, rest)) => match field(doc, first) {
            Some(v) => walk(v, rest, &mut out),
            None => out.push(None),
        },
    }
    out
}

/// The value at `path` when reaching it goes through embedded documents
/// only: `Some(Some(v))`, or `Some(None)` when it is missing (the path ends
/// early or meets a scalar). `None` when the path meets an array before its
/// last segment or is empty, where [`filter_leaves`] and [`expr_get`] must
/// walk. Where it answers it agrees with both: [`filter_leaves`] yields
/// exactly this one leaf, [`expr_get`] a copy of it. It allocates nothing.
pub(crate) fn plain_get<'a>(doc: &'a Document, path: &[String]) -> Option<Option<&'a Bson>> {
    let (first, rest) = path.split_first()?;
    let Some(mut cur) = field(doc, first) else {
        return Some(None);
    };
    for seg in rest {
        cur = match cur {
            Bson::Document(d) => match field(d, seg) {
                Some(v) => v,
                None => return Some(None),
            },
            Bson::Array(_) => return None,
            _ => return Some(None),
        };
    }
    Some(Some(cur))
}

/// Like [`filter_leaves`] starting from any value.
pub(crate) fn filter_leaves_of<'a>(value: &'a Bson, path: &[String]) -> Vec<Option<&'a Bson>> {
    let mut out = Vec::new();
    walk(value, path, &mut out);
    out
}

fn walk<'a>(v: &'a Bson, rest: &[String], out: &mut Vec<Option<&'a Bson>>) {
    let Some((seg, tail)) = rest.split_first() else {
        out.push(Some(v));
        return;
    };
    match v {
        Bson::Document(d) => match field(d, seg) {
            Some(x) => walk(x, tail, out),
            None => out.push(None),
        },
        Bson::Array(items) => {
            let index = array_index(seg);
            if let Some(x) = index.and_then(|i| items.get(i)) {
                walk(x, tail, out);
            }
            for item in items {
                if let Bson::Document(d) = item {
                    match field(d, seg) {
                        Some(x) => walk(x, tail, out),
                        // With a numeric segment the array index already answered.
                        None if index.is_some() => {}
                        None => out.push(None),
                    }
                }
            }
        }
        _ => out.push(None),
    }
}

/// The single value at `path`, indexing arrays with numeric segments only.
pub(crate) fn get_exact<'a>(doc: &'a Document, path: &[String]) -> Option<&'a Bson> {
    let (first, rest) = path.split_first()?;
    let mut cur = field(doc, first)?;
    for seg in rest {
        cur = match cur {
            Bson::Document(d) => field(d, seg)?,
            Bson::Array(a) => a.get(array_index(seg)?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// An aggregation field path (`$a.b`): through arrays it collects the values
/// of every element, recursively, skipping elements where the path is missing.
pub(crate) fn expr_get(value: &Bson, path: &[String]) -> Option<Bson> {
    let Some((seg, rest)) = path.split_first() else {
        return Some(value.clone());
    };
    match value {
        Bson::Document(d) => expr_get(field(d, seg)?, rest),
        Bson::Array(items) => Some(Bson::Array(
            items
                .iter()
                .filter(|x| matches!(x, Bson::Document(_) | Bson::Array(_)))
                .filter_map(|x| expr_get(x, path))
                .collect(),
        )),
        _ => None,
    }
}

/// [`expr_get`] starting at a document (no copy of the document is made).
pub(crate) fn expr_get_doc(doc: &Document, path: &[String]) -> Option<Bson> {
    match path.split_first() {
        None => Some(Bson::Document(doc.clone())),
        Some((first, rest)) => expr_get(field(doc, first)?, rest),
    }
}

/// The values a sort key sees at `path`: the leaves of [`filter_leaves`] with
/// arrays flattened one level; an empty result means the key is missing.
pub(crate) fn sort_values<'a>(doc: &'a Document, path: &[String]) -> Vec<Option<&'a Bson>> {
    let mut out = Vec::new();
    for leaf in filter_leaves(doc, path) {
        match leaf {
            Some(Bson::Array(items)) => {
                if items.is_empty() {
                    out.push(Some(&EMPTY_ARRAY_MARK));
                }
                out.extend(items.iter().map(Some));
            }
            other => out.push(other),
        }
    }
    out
}

/// Sort position of an empty array: below null, as MongoDB orders `[]` keys.
static EMPTY_ARRAY_MARK: Bson = Bson::Undefined;

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc};

    #[test]
    fn plain_get_agrees_with_the_walks() {
        let d = doc! {"a": {"b": {"c": 1}}, "s": 5, "arr": [{"b": 1}], "e": [1, 2]};
        for path in [
            "a", "a.b", "a.b.c", "a.x", "a.b.c.d", "s", "s.t", "missing", "e", "arr.b", "arr.0",
        ] {
            let parts = split(path);
            match plain_get(&d, &parts) {
                Some(leaf) => {
                    assert_eq!(filter_leaves(&d, &parts), vec![leaf], "{path}");
                    assert_eq!(expr_get_doc(&d, &parts), leaf.cloned(), "{path}");
                }
                None => assert!(path.starts_with("arr."), "{path}"),
            }
        }
        assert_eq!(plain_get(&d, &[]), None);
    }

    #[test]
    fn filter_paths() {
        let d = doc! {"a": [{"b": 1}, {"c": 2}, 7, {"b": [3, 4]}], "x": {"0": "zero"}, "y": ["p", "q"], "s": 5};
        let cases: Vec<(&str, Vec<Option<Bson>>)> = vec![
            ("a.b", vec![Some(bson!(1)), None, Some(bson!([3, 4]))]),
            ("a.1.c", vec![Some(bson!(2))]),
            ("x.0", vec![Some(bson!("zero"))]),
            ("y.1", vec![Some(bson!("q"))]),
            ("s.t", vec![None]),
            ("missing.t", vec![None]),
            ("y.z", vec![]),
        ];
        for (path, want) in cases {
            let got: Vec<Option<Bson>> = filter_leaves(&d, &split(path))
                .into_iter()
                .map(|v| v.cloned())
                .collect();
            assert_eq!(got, want, "{path}");
        }
    }

    #[test]
    fn expression_paths() {
        let d = Bson::Document(doc! {"a": [{"b": 1}, {"c": 2}, 7, [{"b": 5}]], "n": {"m": 3}});
        assert_eq!(expr_get(&d, &split("a.b")), Some(bson!([1, [5]])));
        assert_eq!(expr_get(&d, &split("n.m")), Some(bson!(3)));
        assert_eq!(expr_get(&d, &split("n.q")), None);
        assert_eq!(array_index("01"), None);
        assert_eq!(
            get_exact(&doc! {"a": [1, {"b": 2}]}, &split("a.1.b")),
            Some(&bson!(2))
        );
    }
}
