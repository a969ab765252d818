//! Applying one update modifier to one concrete path.

use std::cmp::Ordering;

use bson::{Bson, Document, Timestamp};

use super::doc_path::{self, crosses_array};
use super::{BitOp, Op, PullCond, PushSort, PushSpec};
use crate::query::compare::{compare_values, identical, values_equal};
use crate::query::expr::type_name;
use crate::query::number::{self, Num, Overflow};
use crate::query::{display_value, QueryError};

fn id_text(id: &Option<Bson>) -> String {
    match id {
        Some(v) => format!("{{_id: {}}}", display_value(v)),
        None => "{}".to_string(),
    }
}

fn set_if_changed(doc: &mut Document, path: &[String], value: Bson) -> Result<bool, QueryError> {
    if doc_path::get(doc, path).is_some_and(|cur| identical(cur, &value)) {
        return Ok(false);
    }
    doc_path::set(doc, path, value)?;
    Ok(true)
}

fn zero_like(n: Num) -> Num {
    match n {
        Num::Int32(_) => Num::Int32(0),
        Num::Int64(_) => Num::Int64(0),
        Num::Double(_) => Num::Double(0.0),
        Num::Decimal(_) => Num::Decimal(number::f64_to_decimal(0.0)),
    }
}

fn array_at<'a>(
    doc: &'a mut Document,
    path: &[String],
    modifier: &str,
    id: &Option<Bson>,
) -> Result<Option<&'a mut Vec<Bson>>, QueryError> {
    let field = path.join(".");
    match doc_path::get_mut(doc, path) {
        None => Ok(None),
        Some(Bson::Array(items)) => Ok(Some(items)),
        Some(other) => {
            let t = type_name(Some(other));
            Err(match modifier {
                "$pull" | "$pullAll" => QueryError::bad_value("Cannot apply $pull to a non-array value"),
                "$pop" => QueryError::type_mismatch(format!("Path '{field}' contains an element of non-array type '{t}'")),
                "$addToSet" => QueryError::bad_value(format!(
                    "Cannot apply $addToSet to non-array field. Field named '{}' has non-array type {t}",
                    path.last().map(String::as_str).unwrap_or_default()
                )),
                _ => QueryError::bad_value(format!(
                    "The field '{field}' must be an array but is of type {t} in document {}",
                    id_text(id)
                )),
            })
        }
    }
}

/// Applies `op` at `path`; returns whether the document changed.
pub(super) fn apply_op(
    doc: &mut Document,
    path: &[String],
    op: &Op,
    id: &Option<Bson>,
) -> Result<bool, QueryError> {
    match op {
        Op::Set(v) | Op::SetOnInsert(v) => set_if_changed(doc, path, v.clone()),
        Op::Unset => Ok(doc_path::unset(doc, path)),
        Op::Inc(n) | Op::Mul(n) => {
            let is_inc = matches!(op, Op::Inc(_));
            let name = if is_inc { "$inc" } else { "$mul" };
            let result = match doc_path::get(doc, path) {
                None => {
                    if is_inc {
                        *n
                    } else {
                        // MongoDB multiplies the argument by int32 0, so a
                        // negative double gives -0.0 and decimal 2.5 gives 0.0.
                        number::mul(*n, Num::Int32(0), Overflow::Fail).unwrap_or(zero_like(*n))
                    }
                }
                Some(cur) => {
                    let Some(c) = Num::from_bson(cur) else {
                        return Err(QueryError::type_mismatch(format!(
                            "Cannot apply {name} to a value of non-numeric type. {} has the field '{}' of non-numeric type {}",
                            id_text(id),
                            path.last().map(String::as_str).unwrap_or_default(),
                            type_name(Some(cur))
                        )));
                    };
                    let r = if is_inc {
                        number::add(c, *n, Overflow::Fail)
                    } else {
                        number::mul(c, *n, Overflow::Fail)
                    };
                    r.ok_or_else(|| {
                        QueryError::bad_value(format!(
                            "Failed to apply {name} operations to current value ({}) for document {}",
                            display_value(cur),
                            id_text(id)
                        ))
                    })?
                }
            };
            set_if_changed(doc, path, result.to_bson())
        }
        Op::Min(v) | Op::Max(v) => {
            let want = if matches!(op, Op::Min(_)) {
                Ordering::Less
            } else {
                Ordering::Greater
            };
            match doc_path::get(doc, path) {
                Some(cur) if compare_values(v, cur) != want => Ok(false),
                _ => set_if_changed(doc, path, v.clone()),
            }
        }
        Op::Rename(to) => {
            if let Some(p) = crosses_array(doc, path) {
                return Err(QueryError::bad_value(format!(
                    "The source field cannot be an array element, '{}' in doc with {} has an array field called '{p}'",
                    path.join("."),
                    id_text(id)
                )));
            }
            // MongoDB rejects a source path that runs through a scalar
            // (PathNotViable) rather than treating it as missing.
            if let Some((part, value)) = doc_path::blocked_by_scalar(doc, path) {
                return Err(QueryError::new(
                    28,
                    format!(
                        "cannot use the part ({part} of {}) to traverse the element ({{{part}: {}}})",
                        path.join("."),
                        display_value(value)
                    ),
                ));
            }
            let Some(value) = doc_path::get(doc, path).cloned() else {
                return Ok(false);
            };
            if let Some(p) = crosses_array(doc, to) {
                return Err(QueryError::bad_value(format!(
                    "The destination field cannot be an array element, '{}' in doc with {} has an array field called '{p}'",
                    to.join("."),
                    id_text(id)
                )));
            }
            doc_path::unset(doc, path);
            doc_path::set(doc, to, value)?;
            Ok(true)
        }
        Op::Push(spec) => push(doc, path, spec, id),
        Op::AddToSet(values) => match array_at(doc, path, "$addToSet", id)? {
            None => {
                doc_path::set(
                    doc,
                    path,
                    Bson::Array(crate::query::expr::dedup(values.clone())),
                )?;
                Ok(true)
            }
            Some(items) => {
                let mut changed = false;
                for v in values {
                    if !items.iter().any(|x| values_equal(x, v)) {
                        items.push(v.clone());
                        changed = true;
                    }
                }
                Ok(changed)
            }
        },
        Op::Pop(first) => match array_at(doc, path, "$pop", id)? {
            Some(items) if !items.is_empty() => {
                if *first {
                    items.remove(0);
                } else {
                    items.pop();
                }
                Ok(true)
            }
            _ => Ok(false),
        },
        Op::Pull(cond) => match array_at(doc, path, "$pull", id)? {
            None => Ok(false),
            Some(items) => {
                let before = items.len();
                items.retain(|x| !match cond {
                    PullCond::Equal(v) => values_equal(x, v),
                    PullCond::Regex(p) => p.matches_value(x),
                    PullCond::Query(f) => f.matches_value(x),
                });
                Ok(items.len() != before)
            }
        },
        Op::PullAll(values) => match array_at(doc, path, "$pullAll", id)? {
            None => Ok(false),
            Some(items) => {
                let before = items.len();
                items.retain(|x| !values.iter().any(|v| values_equal(x, v)));
                Ok(items.len() != before)
            }
        },
        Op::Bit(ops) => {
            let cur = doc_path::get(doc, path).cloned();
            let mut acc = match &cur {
                None => Bson::Int32(0),
                Some(v @ (Bson::Int32(_) | Bson::Int64(_))) => v.clone(),
                Some(other) => {
                    return Err(QueryError::bad_value(format!(
                        "Cannot apply $bit to a value of non-integral type.{} has the field {} of non-integer type {}",
                        id_text(id),
                        path.last().map(String::as_str).unwrap_or_default(),
                        type_name(Some(other))
                    )))
                }
            };
            for (bop, arg) in ops {
                let f = |a: i64, b: i64| match bop {
                    BitOp::And => a & b,
                    BitOp::Or => a | b,
                    BitOp::Xor => a ^ b,
                };
                acc = match (&acc, arg) {
                    (Bson::Int32(a), Bson::Int32(b)) => {
                        Bson::Int32(f(i64::from(*a), i64::from(*b)) as i32)
                    }
                    (a, b) => {
                        let x = Num::from_bson(a).and_then(Num::to_i64_exact).unwrap_or(0);
                        let y = Num::from_bson(b).and_then(Num::to_i64_exact).unwrap_or(0);
                        Bson::Int64(f(x, y))
                    }
                };
            }
            set_if_changed(doc, path, acc)
        }
        Op::CurrentDate(timestamp) => {
            let now = bson::DateTime::now();
            let v = if *timestamp {
                Bson::Timestamp(Timestamp {
                    time: (now.timestamp_millis() / 1000) as u32,
                    increment: 1,
                })
            } else {
                Bson::DateTime(now)
            };
            doc_path::set(doc, path, v)?;
            Ok(true)
        }
    }
}

fn push(
    doc: &mut Document,
    path: &[String],
    spec: &PushSpec,
    id: &Option<Bson>,
) -> Result<bool, QueryError> {
    let existing = array_at(doc, path, "$push", id)?.map(|items| items.clone());
    let existed = existing.is_some();
    let before = existing.clone().unwrap_or_default();
    let mut items = existing.unwrap_or_default();
    let len = items.len() as i64;
    let at = match spec.position {
        None => len,
        Some(p) if p < 0 => (len + p).max(0),
        Some(p) => p.min(len),
    } as usize;
    for (k, v) in spec.each.iter().enumerate() {
        items.insert(at + k, v.clone());
    }
    match &spec.sort {
        Some(PushSort::Whole(asc)) => items.sort_by(|a, b| {
            let o = compare_values(a, b);
            if *asc {
                o
            } else {
                o.reverse()
            }
        }),
        Some(PushSort::Fields(s)) => {
            let empty = Document::new();
            items.sort_by(|a, b| {
                let da = if let Bson::Document(d) = a { d } else { &empty };
                let db = if let Bson::Document(d) = b { d } else { &empty };
                s.compare(da, db)
            });
        }
        None => {}
    }
    if let Some(n) = spec.slice {
        let len = items.len() as i64;
        if n >= 0 {
            items.truncate(n as usize);
        } else if n.unsigned_abs() < len.unsigned_abs() {
            items.drain(..(len + n) as usize);
        }
    }
    if existed && identical(&Bson::Array(items.clone()), &Bson::Array(before)) {
        return Ok(false);
    }
    doc_path::set(doc, path, Bson::Array(items))?;
    Ok(true)
}
