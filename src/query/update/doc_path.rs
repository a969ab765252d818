//! Writing through dotted paths: creating parents, padding arrays, removing.

use bson::{Bson, Document};

use crate::query::path::array_index;
use crate::query::{display_value, QueryError};

/// `{a: 1}` the way update errors print an element.
pub(crate) fn element_text(key: &str, v: &Bson) -> String {
    format!("{{{key}: {}}}", display_value(v))
}

/// The value at a concrete path (array elements by index).
pub(crate) fn get<'a>(doc: &'a Document, path: &[String]) -> Option<&'a Bson> {
    crate::query::path::get_exact(doc, path)
}

/// The mutable value at a concrete path.
pub(crate) fn get_mut<'a>(doc: &'a mut Document, path: &[String]) -> Option<&'a mut Bson> {
    let (first, rest) = path.split_first()?;
    let mut cur = doc.get_mut(first)?;
    for seg in rest {
        cur = match cur {
            Bson::Document(d) => d.get_mut(seg)?,
            Bson::Array(a) => a.get_mut(array_index(seg)?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Sets `value` at `path`, creating missing documents and padding arrays with null.
pub(crate) fn set(doc: &mut Document, path: &[String], value: Bson) -> Result<(), QueryError> {
    let Some((first, rest)) = path.split_first() else {
        return Err(QueryError::bad_value("empty update path"));
    };
    if rest.is_empty() {
        doc.insert(first.clone(), value);
        return Ok(());
    }
    if !doc.contains_key(first) {
        doc.insert(first.clone(), Document::new());
    }
    let Some(child) = doc.get_mut(first) else {
        return Err(QueryError::bad_value("internal path error"));
    };
    set_in(first, child, rest, value)
}

fn set_in(key: &str, cur: &mut Bson, path: &[String], value: Bson) -> Result<(), QueryError> {
    let Some((seg, rest)) = path.split_first() else {
        *cur = value;
        return Ok(());
    };
    match cur {
        Bson::Document(d) => set(d, path, value),
        Bson::Array(items) => {
            let Some(i) = array_index(seg) else {
                return Err(QueryError::new(
                    28,
                    format!(
                        "Cannot create field '{seg}' in element {}",
                        element_text(key, &Bson::Array(items.clone()))
                    ),
                ));
            };
            if i > 1_500_000 {
                return Err(QueryError::bad_value(
                    "can't backfill array to larger than 1500000 elements",
                ));
            }
            if i >= items.len() {
                items.resize(i, Bson::Null);
                if rest.is_empty() {
                    items.push(value);
                    return Ok(());
                }
                items.push(Bson::Document(Document::new()));
            } else if rest.is_empty() {
                items[i] = value;
                return Ok(());
            }
            set_in(seg, &mut items[i], rest, value)
        }
        other => Err(QueryError::new(
            28,
            format!(
                "Cannot create field '{seg}' in element {}",
                element_text(key, other)
            ),
        )),
    }
}

/// Removes the value at `path` (an array element becomes null). Returns whether anything changed.
pub(crate) fn unset(doc: &mut Document, path: &[String]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    if parent.is_empty() {
        return doc.remove(last).is_some();
    }
    match get_mut(doc, parent) {
        Some(Bson::Document(d)) => d.remove(last).is_some(),
        Some(Bson::Array(items)) => match array_index(last).and_then(|i| items.get_mut(i)) {
            Some(slot) if *slot != Bson::Null => {
                *slot = Bson::Null;
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// Whether any container along `path` (excluding the last segment) is an array.
pub(crate) fn crosses_array(doc: &Document, path: &[String]) -> Option<String> {
    let mut cur = doc;
    for (i, seg) in path.iter().enumerate().take(path.len().saturating_sub(1)) {
        match cur.get(seg) {
            Some(Bson::Document(d)) => cur = d,
            Some(Bson::Array(_)) => return Some(path[..=i].join(".")),
            _ => return None,
        }
    }
    None
}

/// Where `path` (all but its last segment) would have to traverse a value that
/// is neither a document nor an array: the segment that names that value and
/// the value. `None` when every existing prefix is a document (or the path
/// stops existing first).
pub(crate) fn blocked_by_scalar<'a>(
    doc: &'a Document,
    path: &'a [String],
) -> Option<(&'a str, &'a Bson)> {
    let mut cur = doc;
    for seg in path.iter().take(path.len().saturating_sub(1)) {
        match cur.get(seg)? {
            Bson::Document(d) => cur = d,
            Bson::Array(_) => return None,
            other => return Some((seg.as_str(), other)),
        }
    }
    None
}
