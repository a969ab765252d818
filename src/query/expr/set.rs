//! Set operators over arrays, by MongoDB equality: `$setUnion`,
//! `$setIntersection`, `$setEquals`, `$setDifference`, `$setIsSubset`.

use std::collections::HashSet;

use bson::Bson;

use super::{bool_val, dedup, null, type_name, Op, Res, Val};
use crate::query::compare::canonical_key;
use crate::query::QueryError;

/// The set operators.
pub(super) fn apply(op: Op, args: &[Val]) -> Res {
    let name = op.name();
    // `$setEquals` and `$setIsSubset` refuse null; the others return null.
    let strict = matches!(op, Op::SetEquals | Op::SetIsSubset);
    let mut arrays: Vec<&Vec<Bson>> = Vec::with_capacity(args.len());
    for v in args {
        match v {
            None | Some(Bson::Null) | Some(Bson::Undefined) if !strict => return null(),
            Some(Bson::Array(items)) => arrays.push(items),
            other => {
                return Err(QueryError::new(
                    17044,
                    format!(
                        "All operands of {name} must be arrays. One argument is of type: {}",
                        type_name(other.as_ref())
                    ),
                ))
            }
        }
    }
    let keys = |a: &[Bson]| a.iter().map(canonical_key).collect::<HashSet<_>>();
    match op {
        Op::SetUnion => Ok(Some(Bson::Array(dedup(
            arrays.into_iter().flatten().cloned().collect(),
        )))),
        Op::SetIntersection => {
            let Some((first, rest)) = arrays.split_first() else {
                return Ok(Some(Bson::Array(vec![])));
            };
            let sets: Vec<_> = rest.iter().map(|a| keys(a)).collect();
            Ok(Some(Bson::Array(dedup(
                first
                    .iter()
                    .filter(|x| sets.iter().all(|s| s.contains(&canonical_key(x))))
                    .cloned()
                    .collect(),
            ))))
        }
        Op::SetEquals => {
            if arrays.len() < 2 {
                return Err(QueryError::new(
                    17045,
                    "$setEquals needs at least two arguments",
                ));
            }
            let first = keys(arrays[0]);
            bool_val(arrays.iter().skip(1).all(|a| keys(a) == first))
        }
        Op::SetDifference => {
            let other = keys(arrays[1]);
            Ok(Some(Bson::Array(dedup(
                arrays[0]
                    .iter()
                    .filter(|x| !other.contains(&canonical_key(x)))
                    .cloned()
                    .collect(),
            ))))
        }
        _ => {
            let other = keys(arrays[1]);
            bool_val(arrays[0].iter().all(|x| other.contains(&canonical_key(x))))
        }
    }
}
