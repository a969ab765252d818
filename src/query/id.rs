//! What an `_id` may be, and that updates leave it unchanged.

use bson::{Bson, Document};

use crate::query::compare::identical;
use crate::query::{display_value, QueryError};

/// Rejects `_id` values MongoDB refuses to store (arrays, regexes, undefined).
pub(crate) fn validate_id(id: &Bson) -> Result<(), QueryError> {
    if let Bson::Document(fields) = id {
        if let Some(key) = dollar_prefixed_key(fields) {
            return Err(QueryError::new(
                52,
                format!("_id fields may not contain '$'-prefixed fields: {key} is not valid for storage."),
            ));
        }
    }
    let kind = match id {
        Bson::Array(_) => "array",
        Bson::RegularExpression(_) => "regex",
        Bson::Undefined => "undefined",
        _ => return Ok(()),
    };
    Err(QueryError::new(
        53,
        format!("The '_id' value cannot be of type {kind}"),
    ))
}

/// The first `$`-prefixed field name inside an `_id` document, at any depth.
fn dollar_prefixed_key(fields: &Document) -> Option<&str> {
    fields.iter().find_map(|(key, value)| {
        if key.starts_with('$') {
            Some(key.as_str())
        } else if let Bson::Document(inner) = value {
            dollar_prefixed_key(inner)
        } else {
            None
        }
    })
}

/// Error when a replacement or pipeline update changed the `_id`.
pub(crate) fn check_id_unchanged(old: &Document, new: &Document) -> Result<(), QueryError> {
    match (old.get("_id"), new.get("_id")) {
        (Some(a), Some(b)) if !identical(a, b) => {
            Err(QueryError::new(
                66,
                format!(
                    "After applying the update, the (immutable) field '_id' was found to have been altered to _id: {}",
                    display_value(b)
                ),
            ))
        }
        _ => Ok(()),
    }
}
