//! Checks that request documents can be encoded as BSON before the driver
//! tries to.
//!
//! BSON writes field names and regular expressions as C strings, so they cannot
//! hold a NUL byte, yet JSON (`"a\u0000b"`) can. The driver reports such a value
//! as an `InvalidResponse` error, indistinguishable from a broken server reply;
//! checking first turns it into the [`BackendErrorKind::InvalidRequest`] it is.
//!
//! [`BackendErrorKind::InvalidRequest`]: crate::backend::BackendErrorKind::InvalidRequest

use bson::{Bson, Document};

use crate::backend::BackendError;

/// How deep the check descends; deeper values are left to the driver (the
/// server refuses documents nested beyond 100 levels anyway).
const MAX_DEPTH: usize = 200;

/// Fails when a field name or regular expression in `document` has a NUL byte
/// (string values may: BSON stores them with their length).
pub(super) fn check(document: &Document) -> Result<(), BackendError> {
    check_document(document, 0)
}

/// [`check`] for each document of a list.
pub(super) fn check_all(documents: &[Document]) -> Result<(), BackendError> {
    documents.iter().try_for_each(check)
}

fn check_document(document: &Document, depth: usize) -> Result<(), BackendError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    for (key, value) in document {
        if key.contains('\0') {
            return Err(BackendError::invalid(
                "field names cannot contain null bytes",
            ));
        }
        check_value(value, depth + 1)?;
    }
    Ok(())
}

fn check_value(value: &Bson, depth: usize) -> Result<(), BackendError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    match value {
        Bson::Document(d) => check_document(d, depth),
        Bson::Array(items) => items.iter().try_for_each(|v| check_value(v, depth + 1)),
        Bson::RegularExpression(re) if re.pattern.contains('\0') || re.options.contains('\0') => {
            Err(BackendError::invalid(
                "regular expressions cannot contain null bytes",
            ))
        }
        Bson::JavaScriptCodeWithScope(code) => check_document(&code.scope, depth),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, Regex};

    #[test]
    fn plain_documents_pass() {
        assert!(check(&doc! { "a": { "b": [1, { "c": "x\0y" }] } }).is_ok());
    }

    #[test]
    fn nul_in_a_nested_field_name_fails() {
        let mut inner = Document::new();
        inner.insert("b\0", 1);
        let outer = doc! { "a": [ { "x": inner } ] };
        let err = check(&outer).unwrap_err();
        assert_eq!(err.message, "field names cannot contain null bytes");
        assert!(check_all(&[doc! {}, outer]).is_err());
    }

    #[test]
    fn nul_in_a_regex_fails() {
        let re = Bson::RegularExpression(Regex {
            pattern: "a\0".into(),
            options: String::new(),
        });
        assert!(check(&doc! { "a": { "$in": [re] } }).is_err());
    }

    #[test]
    fn the_check_stops_at_max_depth() {
        let nested = |levels: usize| {
            let mut d = Document::new();
            d.insert("\0", 1);
            for _ in 0..levels {
                d = doc! { "x": d };
            }
            d
        };
        assert!(check(&nested(5)).is_err());
        // Left to the driver (and the server's own nesting limit).
        assert!(check(&nested(MAX_DEPTH + 5)).is_ok());
    }
}
