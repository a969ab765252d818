//! The accumulators used as expressions: `$sum`, `$avg`, `$min`, `$max`,
//! `$stdDevPop` and `$stdDevSamp` over their arguments, or over the one
//! array they are given.

use bson::Bson;

use super::{add_nums, nullish, Op, Res, Val};
use crate::query::compare::compare_values;
use crate::query::number::{self, Num};

/// The fold operators.
pub(super) fn apply(op: Op, args: &[Val]) -> Res {
    Ok(Some(match args {
        [Some(Bson::Array(items))] => fold(op, items.iter()),
        _ => fold(op, args.iter().flatten()),
    }))
}

/// Folds `list` (non-numeric values ignored by the numeric folds; null and
/// missing by `$min` and `$max`).
fn fold<'a>(op: Op, list: impl Iterator<Item = &'a Bson>) -> Bson {
    match op {
        Op::Max | Op::Min => {
            let mut best: Option<&Bson> = None;
            for v in list.filter(|v| !nullish(Some(v))) {
                best = match best {
                    None => Some(v),
                    Some(b) => {
                        let o = compare_values(v, b);
                        if (op == Op::Max && o.is_gt()) || (op == Op::Min && o.is_lt()) {
                            Some(v)
                        } else {
                            Some(b)
                        }
                    }
                };
            }
            best.cloned().unwrap_or(Bson::Null)
        }
        Op::Sum => {
            let mut total = Num::Int32(0);
            for n in list.filter_map(Num::from_bson) {
                total = add_nums(total, n);
            }
            total.to_bson()
        }
        Op::Avg => {
            let nums: Vec<Num> = list.filter_map(Num::from_bson).collect();
            if nums.is_empty() {
                return Bson::Null;
            }
            let decimal = nums.iter().any(|n| matches!(n, Num::Decimal(_)));
            let avg = nums.iter().map(|n| n.to_f64()).sum::<f64>() / nums.len() as f64;
            if decimal {
                Bson::Decimal128(number::f64_to_decimal(avg))
            } else {
                Bson::Double(avg)
            }
        }
        _ => {
            let nums: Vec<f64> = list.filter_map(Num::from_bson).map(Num::to_f64).collect();
            let n = nums.len() as f64;
            let samp = op == Op::StdDevSamp;
            if nums.is_empty() || (samp && nums.len() < 2) {
                return Bson::Null;
            }
            let mean = nums.iter().sum::<f64>() / n;
            let var = nums.iter().map(|x| (x - mean).powi(2)).sum::<f64>()
                / if samp { n - 1.0 } else { n };
            Bson::Double(var.sqrt())
        }
    }
}
