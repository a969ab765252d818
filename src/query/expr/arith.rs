//! Arithmetic operators: `$add`, `$subtract`, `$multiply`, `$divide`,
//! `$mod`, the one-argument functions (`$abs`, `$sqrt`, …), `$pow`, `$log`,
//! `$round` and `$trunc`.

use bson::Bson;

use super::{add_nums, arg, int_arg, null, nullish, num_or_err, type_name, Op, Res, Val};
use crate::query::number::{self, Num, Overflow};
use crate::query::QueryError;

/// `$add`: numbers, plus at most one date.
pub(super) fn add(_: Op, args: &[Val]) -> Res {
    let mut total = Num::Int32(0);
    let mut date: Option<i64> = None;
    for v in args {
        match v {
            None | Some(Bson::Null) | Some(Bson::Undefined) => return null(),
            Some(Bson::DateTime(d)) => {
                if date.is_some() {
                    return Err(QueryError::new(
                        16612,
                        "only one date allowed in an $add expression",
                    ));
                }
                date = Some(d.timestamp_millis());
            }
            Some(other) => {
                let n = Num::from_bson(other).ok_or_else(|| {
                    QueryError::new(
                        16554,
                        format!(
                            "$add only supports numeric or date types, not {}",
                            type_name(Some(other))
                        ),
                    )
                })?;
                total = add_nums(total, n);
            }
        }
    }
    match date {
        Some(ms) => {
            let delta = total.to_f64().round();
            Ok(Some(Bson::DateTime(bson::DateTime::from_millis(
                ms.saturating_add(delta as i64),
            ))))
        }
        None => Ok(Some(total.to_bson())),
    }
}

/// `$subtract`: numbers, a number from a date, or two dates.
pub(super) fn subtract(_: Op, args: &[Val]) -> Res {
    let (x, y) = (arg(args, 0), arg(args, 1));
    if nullish(x) || nullish(y) {
        return null();
    }
    match (x, y) {
        (Some(Bson::DateTime(p)), Some(Bson::DateTime(q))) => Ok(Some(Bson::Int64(
            p.timestamp_millis().saturating_sub(q.timestamp_millis()),
        ))),
        (Some(Bson::DateTime(p)), Some(n)) if Num::from_bson(n).is_some() => {
            let delta = Num::from_bson(n)
                .map(|n| n.to_f64().round() as i64)
                .unwrap_or(0);
            Ok(Some(Bson::DateTime(bson::DateTime::from_millis(
                p.timestamp_millis().saturating_sub(delta),
            ))))
        }
        (Some(p), Some(q)) => match (Num::from_bson(p), Num::from_bson(q)) {
            (Some(p), Some(q)) => Ok(number::sub(p, q, Overflow::ToDouble).map(Num::to_bson)),
            _ => Err(QueryError::new(
                16556,
                format!(
                    "can't $subtract {} from {}",
                    type_name(Some(q)),
                    type_name(Some(p))
                ),
            )),
        },
        _ => null(),
    }
}

/// `$multiply`.
pub(super) fn multiply(_: Op, args: &[Val]) -> Res {
    let mut total = Num::Int32(1);
    for v in args {
        match v {
            None | Some(Bson::Null) | Some(Bson::Undefined) => return null(),
            Some(other) => {
                let n = num_or_err("$multiply", other, 16555)?;
                total = number::mul(total, n, Overflow::ToDouble).unwrap_or(Num::Double(f64::NAN));
            }
        }
    }
    Ok(Some(total.to_bson()))
}

/// `$divide` and `$mod`.
pub(super) fn divide(op: Op, args: &[Val]) -> Res {
    let (x, y) = (arg(args, 0), arg(args, 1));
    let (Some(x), Some(y)) = (x, y) else {
        return null();
    };
    if nullish(Some(x)) || nullish(Some(y)) {
        return null();
    }
    let name = op.name();
    let (code, zero_code) = if op == Op::Divide {
        (16609, 16608)
    } else {
        (16611, 16610)
    };
    let (Some(p), Some(q)) = (Num::from_bson(x), Num::from_bson(y)) else {
        return Err(QueryError::new(
            code,
            format!(
                "{name} only supports numeric types, not {} and {}",
                type_name(Some(x)),
                type_name(Some(y))
            ),
        ));
    };
    if q.is_zero() {
        return Err(QueryError::new(zero_code, format!("can't {name} by zero")));
    }
    Ok(Some(
        if op == Op::Divide {
            number::div(p, q)
        } else {
            number::rem(p, q)
        }
        .to_bson(),
    ))
}

/// `$abs`, `$ceil`, `$floor`, `$sqrt`, `$exp`, `$ln`, `$log10`.
pub(super) fn unary(op: Op, args: &[Val]) -> Res {
    let Some(v) = arg(args, 0).filter(|v| !nullish(Some(v))) else {
        return null();
    };
    let n = num_or_err(op.name(), v, 28765)?;
    Ok(Some(match op {
        Op::Abs => number::abs(n).to_bson(),
        Op::Ceil | Op::Floor => {
            let up = op == Op::Ceil;
            match n {
                Num::Double(d) => Bson::Double(if up { d.ceil() } else { d.floor() }),
                Num::Decimal(d) => {
                    let f = number::decimal_to_f64(&d);
                    Bson::Decimal128(number::f64_to_decimal(if up {
                        f.ceil()
                    } else {
                        f.floor()
                    }))
                }
                other => other.to_bson(),
            }
        }
        Op::Sqrt => {
            if n.to_f64() < 0.0 {
                return Err(QueryError::new(
                    28714,
                    "$sqrt's argument must be greater than or equal to 0",
                ));
            }
            Bson::Double(n.to_f64().sqrt())
        }
        Op::Exp => Bson::Double(n.to_f64().exp()),
        Op::Ln => Bson::Double(n.to_f64().ln()),
        _ => Bson::Double(n.to_f64().log10()),
    }))
}

/// `$pow` and `$log` (a number and a base).
pub(super) fn pow(op: Op, args: &[Val]) -> Res {
    let (Some(x), Some(y)) = (arg(args, 0), arg(args, 1)) else {
        return null();
    };
    if nullish(Some(x)) || nullish(Some(y)) {
        return null();
    }
    let name = op.name();
    let (p, q) = (num_or_err(name, x, 28762)?, num_or_err(name, y, 28763)?);
    if op == Op::Log {
        return Ok(Some(Bson::Double(p.to_f64().ln() / q.to_f64().ln())));
    }
    let integral = |n: Num| !matches!(n, Num::Double(_) | Num::Decimal(_));
    if let (Some(b), Some(e)) = (p.to_i64_exact(), q.to_i64_exact()) {
        if integral(p) && integral(q) && e >= 0 {
            if let Some(r) = u32::try_from(e).ok().and_then(|e| b.checked_pow(e)) {
                let both32 = matches!(p, Num::Int32(_)) && matches!(q, Num::Int32(_));
                return Ok(Some(match (both32, i32::try_from(r)) {
                    (true, Ok(r32)) => Bson::Int32(r32),
                    _ => Bson::Int64(r),
                }));
            }
        }
    }
    Ok(Some(Bson::Double(p.to_f64().powf(q.to_f64()))))
}

/// `$round` (half to even) and `$trunc`, to an optional number of places.
pub(super) fn round(op: Op, args: &[Val]) -> Res {
    let Some(v) = arg(args, 0).filter(|v| !nullish(Some(v))) else {
        return null();
    };
    let name = op.name();
    let n = num_or_err(name, v, 51081)?;
    let place = match arg(args, 1) {
        None => 0,
        Some(p) => int_arg(name, "place", p)?,
    };
    let truncate = op == Op::Trunc;
    let round = |d: f64| {
        let f = 10f64.powi(place.clamp(-20, 100) as i32);
        let x = d * f;
        let r = if truncate {
            x.trunc()
        } else {
            let fl = x.floor();
            let diff = x - fl;
            if diff > 0.5 || (diff == 0.5 && fl.rem_euclid(2.0) == 1.0) {
                fl + 1.0
            } else {
                fl
            }
        };
        r / f
    };
    Ok(Some(match n {
        Num::Double(d) => Bson::Double(round(d)),
        Num::Decimal(d) => {
            Bson::Decimal128(number::f64_to_decimal(round(number::decimal_to_f64(&d))))
        }
        other if place >= 0 => other.to_bson(),
        Num::Int32(i) => Bson::Int32(round(f64::from(i)) as i32),
        other => Bson::Int64(round(other.to_f64()) as i64),
    }))
}
