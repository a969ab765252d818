//! Array operators: size and access, `$concatArrays`, `$reverseArray`,
//! `$in`, `$indexOfArray`, `$slice`, `$range`, `$allElementsTrue` /
//! `$anyElementTrue`, `$sortArray`, `$zip` and `$firstN` … `$minN`.
//! (`$map`, `$filter` and `$reduce` bind variables: see `lazy`.)

use bson::{Bson, Document};

use super::{
    arg, bool_val, int_arg, null, nullish, too_large, truthy, type_name, Op, Res, Val,
    MAX_VALUE_BYTES,
};
use crate::query::compare::{compare_values, values_equal};
use crate::query::limits::value_size;
use crate::query::number::Num;
use crate::query::sort::SortSpec;
use crate::query::{display_value, QueryError};

/// Most elements `$range` may produce (MongoDB bounds it by memory, 100 MB).
const RANGE_LIMIT: usize = 1_000_000;

/// `$size`.
pub(super) fn size(_: Op, args: &[Val]) -> Res {
    match arg(args, 0) {
        Some(Bson::Array(items)) => Ok(Some(Bson::Int32(items.len() as i32))),
        other => Err(QueryError::new(
            17124,
            format!(
                "The argument to $size must be an array. Type of argument was: {}",
                type_name(other)
            ),
        )),
    }
}

/// `$isArray`.
pub(super) fn is_array(_: Op, args: &[Val]) -> Res {
    bool_val(matches!(arg(args, 0), Some(Bson::Array(_))))
}

/// `$arrayElemAt` (negative indexes count from the end).
pub(super) fn elem_at(_: Op, args: &[Val]) -> Res {
    let (x, y) = (arg(args, 0), arg(args, 1));
    if nullish(x) || nullish(y) {
        return null();
    }
    let Some(Bson::Array(items)) = x else {
        return Err(QueryError::new(
            28689,
            format!(
                "$arrayElemAt's first argument must be an array, but is {}",
                type_name(x)
            ),
        ));
    };
    let Some(idx) = y.and_then(Num::from_bson).and_then(Num::to_i64_exact) else {
        return Err(QueryError::new(
            28690,
            format!(
                "$arrayElemAt's second argument must be a numeric value, but is {}",
                type_name(y)
            ),
        ));
    };
    let i = if idx < 0 {
        items.len() as i64 + idx
    } else {
        idx
    };
    Ok(usize::try_from(i).ok().and_then(|i| items.get(i)).cloned())
}

/// `$first` and `$last`.
pub(super) fn first_last(op: Op, args: &[Val]) -> Res {
    match arg(args, 0) {
        x if nullish(x) => null(),
        Some(Bson::Array(items)) => Ok(if op == Op::First {
            items.first()
        } else {
            items.last()
        }
        .cloned()),
        other => Err(QueryError::new(
            28689,
            format!(
                "{}'s argument must be an array, but is {}",
                op.name(),
                type_name(other)
            ),
        )),
    }
}

/// `$concatArrays`.
pub(super) fn concat(op: Op, args: &[Val]) -> Res {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for v in args {
        match v {
            None | Some(Bson::Null) | Some(Bson::Undefined) => return null(),
            Some(array @ Bson::Array(items)) => {
                bytes = bytes.saturating_add(value_size(array));
                if bytes > MAX_VALUE_BYTES {
                    return Err(too_large(op.name()));
                }
                out.extend(items.iter().cloned())
            }
            Some(other) => {
                return Err(QueryError::new(
                    28664,
                    format!(
                        "$concatArrays only supports arrays, not {}",
                        type_name(Some(other))
                    ),
                ))
            }
        }
    }
    Ok(Some(Bson::Array(out)))
}

/// `$reverseArray`.
pub(super) fn reverse(_: Op, args: &[Val]) -> Res {
    match arg(args, 0) {
        x if nullish(x) => null(),
        Some(Bson::Array(items)) => Ok(Some(Bson::Array(items.iter().rev().cloned().collect()))),
        other => Err(QueryError::new(
            34435,
            format!(
                "The argument to $reverseArray must be an array, but was of type: {}",
                type_name(other)
            ),
        )),
    }
}

/// `$in`.
pub(super) fn contains(_: Op, args: &[Val]) -> Res {
    match arg(args, 1) {
        Some(Bson::Array(items)) => {
            let undefined = Bson::Undefined;
            let needle = arg(args, 0).unwrap_or(&undefined);
            bool_val(items.iter().any(|x| values_equal(x, needle)))
        }
        other => Err(QueryError::new(
            40081,
            format!(
                "$in requires an array as a second argument, found: {}",
                type_name(other)
            ),
        )),
    }
}

/// `$indexOfArray`.
pub(super) fn index_of(op: Op, args: &[Val]) -> Res {
    let name = op.name();
    let x = arg(args, 0);
    if nullish(x) {
        return null();
    }
    let Some(Bson::Array(items)) = x else {
        return Err(QueryError::new(
            40090,
            format!(
                "$indexOfArray requires an array as a first argument, found: {}",
                type_name(x)
            ),
        ));
    };
    let undefined = Bson::Undefined;
    let needle = arg(args, 1).unwrap_or(&undefined);
    let start = arg(args, 2)
        .map(|v| int_arg(name, "starting index", v))
        .transpose()?
        .unwrap_or(0)
        .max(0) as usize;
    let end = arg(args, 3)
        .map(|v| int_arg(name, "ending index", v))
        .transpose()?
        .map(|e| e.max(0) as usize)
        .unwrap_or(items.len())
        .min(items.len());
    let pos = (start..end).find(|i| values_equal(&items[*i], needle));
    Ok(Some(Bson::Int32(pos.map(|p| p as i32).unwrap_or(-1))))
}

/// `$slice` (`[array, n]` or `[array, position, n]`).
pub(super) fn slice(op: Op, args: &[Val]) -> Res {
    let name = op.name();
    let x = arg(args, 0);
    if nullish(x) {
        return null();
    }
    let Some(Bson::Array(items)) = x else {
        return Err(QueryError::new(
            28724,
            format!(
                "First argument to $slice must be an array, but is of type: {}",
                type_name(x)
            ),
        ));
    };
    let n1 = int_arg(name, "second argument", arg(args, 1).unwrap_or(&Bson::Null))?;
    let len = items.len() as i64;
    let (start, count) = match arg(args, 2) {
        None => {
            if n1 >= 0 {
                (0, n1)
            } else {
                ((len + n1).max(0), len)
            }
        }
        Some(c) => {
            let c = int_arg(name, "third argument", c)?;
            if c <= 0 {
                return Err(QueryError::new(
                    28729,
                    format!("Third argument to $slice must be positive: {c}"),
                ));
            }
            let start = if n1 >= 0 {
                n1.min(len)
            } else {
                (len + n1).max(0)
            };
            (start, c)
        }
    };
    Ok(Some(Bson::Array(
        items
            .iter()
            .skip(start as usize)
            .take(count as usize)
            .cloned()
            .collect(),
    )))
}

/// `$range`.
pub(super) fn range(op: Op, args: &[Val]) -> Res {
    let name = op.name();
    let start = int_arg(name, "starting value", arg(args, 0).unwrap_or(&Bson::Null))?;
    let end = int_arg(name, "ending value", arg(args, 1).unwrap_or(&Bson::Null))?;
    let step = match arg(args, 2) {
        Some(s) => int_arg(name, "step value", s)?,
        None => 1,
    };
    for (what, v, code) in [
        ("starting value", start, 34443),
        ("ending value", end, 34445),
        ("step value", step, 34447),
    ] {
        if i32::try_from(v).is_err() {
            return Err(QueryError::new(
                code,
                format!("$range requires a {what} that can be represented as a 32-bit integer, found value: {v}"),
            ));
        }
    }
    if step == 0 {
        return Err(QueryError::new(
            34449,
            "$range requires a non-zero step value",
        ));
    }
    // Refuse before allocating what the request could not hold.
    let count = if (step > 0 && start < end) || (step < 0 && start > end) {
        ((end - start).unsigned_abs() - 1) / step.unsigned_abs() + 1
    } else {
        0
    };
    let count = usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(RANGE_LIMIT);
    crate::query::budget::ensure_room(count.saturating_mul(std::mem::size_of::<Bson>()), name)?;
    let mut out = Vec::with_capacity(count);
    let mut i = start;
    while (step > 0 && i < end) || (step < 0 && i > end) {
        if out.len() >= RANGE_LIMIT {
            return Err(QueryError::new(5645001, "$range would use too much memory"));
        }
        out.push(Bson::Int32(i as i32));
        match i.checked_add(step) {
            Some(next) => i = next,
            None => break,
        }
    }
    Ok(Some(Bson::Array(out)))
}

/// `$allElementsTrue` and `$anyElementTrue`.
pub(super) fn all_any(op: Op, args: &[Val]) -> Res {
    match arg(args, 0) {
        Some(Bson::Array(items)) => bool_val(if op == Op::AllElementsTrue {
            items.iter().all(|x| truthy(Some(x)))
        } else {
            items.iter().any(|x| truthy(Some(x)))
        }),
        other => Err(QueryError::new(
            17040,
            format!(
                "{}'s argument must be an array, but is {}",
                op.name(),
                type_name(other)
            ),
        )),
    }
}

/// Checks `$sortArray`'s `sortBy` when the pipeline is parsed.
pub(super) fn validate_sort_by(v: Option<&Bson>) -> Result<(), QueryError> {
    match v {
        Some(Bson::Document(d)) => SortSpec::parse(d).map(|_| ()),
        Some(other) if matches!(Num::from_bson(other).map(Num::to_f64), Some(x) if x == 1.0 || x == -1.0) => {
            Ok(())
        }
        _ => Err(QueryError::new(
            2942504,
            "$sortArray requires sortBy to be 1, -1 or an object",
        )),
    }
}

/// `$sortArray` (`input`, `sortBy`: a direction or a sort document).
pub(super) fn sort(_: Op, args: &[Val]) -> Res {
    match arg(args, 0) {
        None | Some(Bson::Null) | Some(Bson::Undefined) => null(),
        Some(Bson::Array(items)) => {
            let mut items = items.clone();
            match arg(args, 1) {
                Some(Bson::Document(spec)) => {
                    let s = SortSpec::parse(spec)?;
                    let empty = Document::new();
                    items.sort_by(|x, y| {
                        let dx = if let Bson::Document(d) = x { d } else { &empty };
                        let dy = if let Bson::Document(d) = y { d } else { &empty };
                        s.compare(dx, dy)
                    });
                }
                other => {
                    let desc = other
                        .and_then(Num::from_bson)
                        .is_some_and(|n| n.to_f64() < 0.0);
                    items.sort_by(|x, y| {
                        let o = compare_values(x, y);
                        if desc {
                            o.reverse()
                        } else {
                            o
                        }
                    });
                }
            }
            Ok(Some(Bson::Array(items)))
        }
        Some(other) => Err(QueryError::new(
            2942504,
            format!(
                "$sortArray requires an array as input, found: {}",
                type_name(Some(other))
            ),
        )),
    }
}

/// `$zip` (`inputs`, `useLongestLength`, `defaults`).
pub(super) fn zip(_: Op, args: &[Val]) -> Res {
    let Some(Bson::Array(inputs)) = arg(args, 0) else {
        if nullish(arg(args, 0)) {
            return null();
        }
        return Err(QueryError::new(
            34460,
            format!(
                "inputs must be an array of expressions, found {}",
                type_name(arg(args, 0))
            ),
        ));
    };
    let mut arrays = Vec::with_capacity(inputs.len());
    for i in inputs {
        match i {
            Bson::Null | Bson::Undefined => return null(),
            Bson::Array(x) => arrays.push(x),
            other => {
                return Err(QueryError::new(
                    34468,
                    format!(
                        "$zip found a non-array expression in input: {}",
                        display_value(other)
                    ),
                ))
            }
        }
    }
    let longest = matches!(arg(args, 1), Some(Bson::Boolean(true)));
    let defaults: &[Bson] = match arg(args, 2) {
        Some(Bson::Array(d)) => d,
        _ => &[],
    };
    let len = if longest {
        arrays.iter().map(|a| a.len()).max().unwrap_or(0)
    } else {
        arrays.iter().map(|a| a.len()).min().unwrap_or(0)
    };
    let out = (0..len)
        .map(|i| {
            Bson::Array(
                arrays
                    .iter()
                    .enumerate()
                    .map(|(j, arr)| {
                        arr.get(i)
                            .or(defaults.get(j))
                            .cloned()
                            .unwrap_or(Bson::Null)
                    })
                    .collect(),
            )
        })
        .collect();
    Ok(Some(Bson::Array(out)))
}

/// `$firstN`, `$lastN`, `$maxN` and `$minN` (`n`, `input`).
pub(super) fn n_of(op: Op, args: &[Val]) -> Res {
    let name = op.name();
    let n = match arg(args, 0)
        .and_then(Num::from_bson)
        .and_then(Num::to_i64_exact)
    {
        Some(n) if n > 0 => n as usize,
        _ => {
            return Err(QueryError::new(
                5787908,
                format!("'n' must be a positive integer for {name}"),
            ))
        }
    };
    match arg(args, 1) {
        None | Some(Bson::Null) | Some(Bson::Undefined) => null(),
        Some(Bson::Array(items)) => {
            let out: Vec<Bson> = match op {
                Op::FirstN => items.iter().take(n).cloned().collect(),
                Op::LastN => items
                    .iter()
                    .skip(items.len().saturating_sub(n))
                    .cloned()
                    .collect(),
                _ => {
                    let mut v: Vec<&Bson> = items.iter().filter(|x| !nullish(Some(x))).collect();
                    let max = op == Op::MaxN;
                    v.sort_by(|x, y| {
                        let o = compare_values(x, y);
                        if max {
                            o.reverse()
                        } else {
                            o
                        }
                    });
                    v.into_iter().take(n).cloned().collect()
                }
            };
            Ok(Some(Bson::Array(out)))
        }
        Some(other) => Err(QueryError::new(
            5788200,
            format!(
                "Input must be an array for {name}, found {}",
                type_name(Some(other))
            ),
        )),
    }
}
