//! Object operators: `$mergeObjects`, `$objectToArray`, `$arrayToObject`,
//! `$getField`, `$setField` and `$unsetField`.

use bson::{Bson, Document};

use super::{arg, null, nullish, type_name, Op, Res, Val};
use crate::query::{display_value, QueryError};

/// `$mergeObjects` (a list of documents, or one array of them).
pub(super) fn merge(_: Op, args: &[Val]) -> Res {
    let mut out = Document::new();
    let mut add = |v: Option<&Bson>| match v {
        None | Some(Bson::Null) | Some(Bson::Undefined) => Ok(()),
        Some(Bson::Document(d)) => {
            for (k, x) in d {
                out.insert(k.clone(), x.clone());
            }
            Ok(())
        }
        Some(other) => Err(QueryError::new(
            40400,
            format!(
                "$mergeObjects requires object inputs, but input {} is of type {}",
                display_value(other),
                type_name(Some(other))
            ),
        )),
    };
    match args {
        [Some(Bson::Array(items))] => items.iter().try_for_each(|v| add(Some(v)))?,
        _ => args.iter().try_for_each(|v| add(v.as_ref()))?,
    }
    Ok(Some(Bson::Document(out)))
}

/// `$objectToArray`.
pub(super) fn to_array(_: Op, args: &[Val]) -> Res {
    match arg(args, 0) {
        x if nullish(x) => null(),
        Some(Bson::Document(d)) => Ok(Some(Bson::Array(
            d.iter()
                .map(|(k, v)| {
                    let mut e = Document::new();
                    e.insert("k", k.clone());
                    e.insert("v", v.clone());
                    Bson::Document(e)
                })
                .collect(),
        ))),
        other => Err(QueryError::new(
            40390,
            format!(
                "$objectToArray requires a document input, found: {}",
                type_name(other)
            ),
        )),
    }
}

/// `$arrayToObject` (`[{k, v}, …]` or `[[k, v], …]`).
pub(super) fn from_array(_: Op, args: &[Val]) -> Res {
    match arg(args, 0) {
        x if nullish(x) => null(),
        Some(Bson::Array(items)) => {
            let mut out = Document::new();
            for item in items {
                match item {
                    Bson::Document(d) if d.len() == 2 => match (d.get("k"), d.get("v")) {
                        (Some(Bson::String(k)), Some(v)) => {
                            out.insert(k.clone(), v.clone());
                        }
                        _ => {
                            return Err(QueryError::new(
                                40393,
                                "$arrayToObject requires an object with keys 'k' and 'v'.",
                            ))
                        }
                    },
                    Bson::Array(pair) if pair.len() == 2 => match (&pair[0], &pair[1]) {
                        (Bson::String(k), v) => {
                            out.insert(k.clone(), v.clone());
                        }
                        _ => return Err(QueryError::new(40395, "$arrayToObject requires an array of key-value pairs, where the key must be of type string.")),
                    },
                    _ => {
                        return Err(QueryError::new(
                            40398,
                            "Unrecognised input type format for $arrayToObject",
                        ))
                    }
                }
            }
            Ok(Some(Bson::Document(out)))
        }
        other => Err(QueryError::new(
            40386,
            format!(
                "$arrayToObject requires an array input, found: {}",
                type_name(other)
            ),
        )),
    }
}

/// `$getField` (`field`, `input`).
pub(super) fn get_field(_: Op, args: &[Val]) -> Res {
    let Some(Bson::String(field)) = arg(args, 0) else {
        return Err(QueryError::new(
            5654602,
            "$getField requires 'field' to evaluate to type String",
        ));
    };
    match arg(args, 1) {
        Some(Bson::Document(d)) => Ok(d.get(field).cloned()),
        x if nullish(x) => null(),
        _ => Ok(None),
    }
}

/// `$setField` (`field`, `input`, `value`) and `$unsetField` (`field`, `input`).
pub(super) fn set_field(op: Op, args: &[Val]) -> Res {
    let name = op.name();
    let Some(Bson::String(field)) = arg(args, 0) else {
        return Err(QueryError::new(
            4161106,
            format!("{name} requires 'field' to evaluate to type String"),
        ));
    };
    match arg(args, 1) {
        None | Some(Bson::Null) | Some(Bson::Undefined) => null(),
        Some(Bson::Document(d)) => {
            let mut d = d.clone();
            match (op, arg(args, 2)) {
                (Op::SetField, Some(v)) => {
                    d.insert(field.clone(), v.clone());
                }
                _ => {
                    d.remove(field);
                }
            }
            Ok(Some(Bson::Document(d)))
        }
        Some(other) => Err(QueryError::new(
            4161105,
            format!(
                "{name} requires 'input' to evaluate to type Object, found {}",
                type_name(Some(other))
            ),
        )),
    }
}
