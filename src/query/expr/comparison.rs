//! Comparison and boolean operators: `$eq`, `$ne`, `$gt`, `$gte`, `$lt`,
//! `$lte`, `$cmp` (MongoDB's cross-type order, missing below null) and
//! `$not`. (`$and` and `$or` evaluate lazily: see `lazy`.)

use std::cmp::Ordering;

use bson::Bson;

use super::{arg, bool_val, compare_opt, truthy, Op, Res, Val};

/// `$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte` and `$cmp`.
pub(super) fn compare(op: Op, args: &[Val]) -> Res {
    let o = compare_opt(arg(args, 0), arg(args, 1));
    match op {
        Op::Cmp => Ok(Some(Bson::Int32(match o {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }))),
        Op::Eq => bool_val(o == Ordering::Equal),
        Op::Ne => bool_val(o != Ordering::Equal),
        Op::Gt => bool_val(o == Ordering::Greater),
        Op::Gte => bool_val(o != Ordering::Less),
        Op::Lt => bool_val(o == Ordering::Less),
        _ => bool_val(o != Ordering::Greater),
    }
}

/// `$not`.
pub(super) fn not(_: Op, args: &[Val]) -> Res {
    bool_val(!truthy(arg(args, 0)))
}
