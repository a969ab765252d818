//! Type and conversion operators: `$type`, `$isNumber`, `$toString`,
//! `$toInt`, … and `$convert`, with the string forms MongoDB gives values.

use std::str::FromStr;

use bson::Bson;

use super::{arg, bool_val, dates, null, nullish, truthy, type_name, Op, Res, Val};
use crate::query::number::{self, Num};
use crate::query::{display_value, QueryError};

/// `$type`.
pub(super) fn type_of(_: Op, args: &[Val]) -> Res {
    Ok(Some(Bson::String(type_name(arg(args, 0)).to_string())))
}

/// `$isNumber`.
pub(super) fn is_number(_: Op, args: &[Val]) -> Res {
    bool_val(arg(args, 0).and_then(Num::from_bson).is_some())
}

/// A type values convert to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    String,
    Bool,
    Int,
    Long,
    Double,
    Decimal,
    ObjectId,
    Date,
}

impl Target {
    /// The type called `name` (`$convert`'s `to` as a string).
    fn from_name(name: &str) -> Option<Target> {
        Some(match name {
            "string" => Target::String,
            "bool" => Target::Bool,
            "int" => Target::Int,
            "long" => Target::Long,
            "double" => Target::Double,
            "decimal" => Target::Decimal,
            "objectId" => Target::ObjectId,
            "date" => Target::Date,
            _ => return None,
        })
    }

    /// The type with BSON type number `code` (`$convert`'s `to` as a number).
    fn from_code(code: i64) -> Option<Target> {
        Some(match code {
            1 => Target::Double,
            2 => Target::String,
            7 => Target::ObjectId,
            8 => Target::Bool,
            9 => Target::Date,
            16 => Target::Int,
            18 => Target::Long,
            19 => Target::Decimal,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Target::String => "string",
            Target::Bool => "bool",
            Target::Int => "int",
            Target::Long => "long",
            Target::Double => "double",
            Target::Decimal => "decimal",
            Target::ObjectId => "objectId",
            Target::Date => "date",
        }
    }
}

/// `$toString`, `$toInt`, `$toLong`, `$toDouble`, `$toBool`, `$toDecimal`,
/// `$toObjectId` and `$toDate`.
pub(super) fn to_type(op: Op, args: &[Val]) -> Res {
    let to = match op {
        Op::ToString => Target::String,
        Op::ToInt => Target::Int,
        Op::ToLong => Target::Long,
        Op::ToDouble => Target::Double,
        Op::ToBool => Target::Bool,
        Op::ToDecimal => Target::Decimal,
        Op::ToObjectId => Target::ObjectId,
        _ => Target::Date,
    };
    convert(arg(args, 0), to)
}

/// `$convert` (`input`, `to`, `onError`, `onNull`; an absent `onError` is
/// parsed as MinKey).
pub(super) fn convert_op(_: Op, args: &[Val]) -> Res {
    let to = match arg(args, 1) {
        Some(Bson::String(s)) => Target::from_name(s).ok_or(s.as_str()),
        Some(v) => match Num::from_bson(v)
            .and_then(Num::to_i64_exact)
            .and_then(Target::from_code)
        {
            Some(t) => Ok(t),
            None => {
                return Err(QueryError::bad_value(format!(
                    "Unknown type name: {}",
                    display_value(v)
                )))
            }
        },
        None => {
            return Err(QueryError::failed_to_parse(
                "Missing 'to' parameter to $convert",
            ))
        }
    };
    if nullish(arg(args, 0)) {
        return Ok(arg(args, 3).cloned());
    }
    let converted = match to {
        Ok(to) => convert(arg(args, 0), to),
        Err(name) => Err(QueryError::bad_value(format!("Unknown type name: {name}"))),
    };
    match converted {
        Ok(v) => Ok(v),
        Err(e) => match arg(args, 2) {
            Some(Bson::MinKey) | None => Err(e),
            Some(fallback) => Ok(Some(fallback.clone())),
        },
    }
}

/// String form used by `$toString`, `$toUpper` and friends.
pub(super) fn to_string_value(v: &Bson) -> Option<String> {
    Some(match v {
        Bson::String(s) | Bson::Symbol(s) => s.clone(),
        Bson::Int32(i) => i.to_string(),
        Bson::Int64(i) => i.to_string(),
        Bson::Double(d) => format_double(*d),
        Bson::Decimal128(d) => d.to_string(),
        Bson::Boolean(b) => b.to_string(),
        Bson::ObjectId(o) => o.to_hex(),
        Bson::DateTime(d) => {
            dates::format_date(d.timestamp_millis(), "%Y-%m-%dT%H:%M:%S.%LZ", 0).ok()?
        }
        _ => return None,
    })
}

/// How MongoDB prints a double in `$toString`.
pub(super) fn format_double(d: f64) -> String {
    if d.is_nan() {
        "NaN".into()
    } else if d.is_infinite() {
        if d > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if d != 0.0 && (d.abs() >= 1e15 || d.abs() < 1e-4) {
        let s = format!("{d:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    } else {
        format!("{d}")
    }
}

fn conversion_error(v: &Bson, to: Target) -> QueryError {
    QueryError::new(
        241,
        format!(
            "Unsupported conversion from {} to {} in $convert with no onError value",
            type_name(Some(v)),
            to.name()
        ),
    )
}

fn parse_number_error(s: &str) -> QueryError {
    QueryError::new(
        241,
        format!("Failed to parse number '{s}' in $convert with no onError value: Did not consume whole string."),
    )
}

/// Converts `v` to `to` (null and missing convert to null).
fn convert(v: Option<&Bson>, to: Target) -> Res {
    let Some(v) = v.filter(|v| !nullish(Some(v))) else {
        return null();
    };
    let fail = || conversion_error(v, to);
    Ok(Some(match to {
        Target::String => Bson::String(to_string_value(v).ok_or_else(fail)?),
        Target::Bool => Bson::Boolean(match v {
            Bson::Boolean(b) => *b,
            other => truthy(Some(other)),
        }),
        Target::Int | Target::Long => {
            let n: i64 = match v {
                Bson::Boolean(b) => i64::from(*b),
                Bson::String(s) => s.trim().parse::<i64>().map_err(|_| parse_number_error(s))?,
                Bson::DateTime(d) if to == Target::Long => d.timestamp_millis(),
                other => {
                    let n = Num::from_bson(other).ok_or_else(fail)?;
                    if !n.to_f64().is_finite() {
                        return Err(QueryError::new(241, "Attempt to convert NaN or infinity value to integer in $convert with no onError value"));
                    }
                    n.to_i64_trunc().ok_or_else(fail)?
                }
            };
            if to == Target::Int {
                Bson::Int32(i32::try_from(n).map_err(|_| {
                    QueryError::new(241, format!("Conversion would overflow target type in $convert with no onError value: {n}"))
                })?)
            } else {
                Bson::Int64(n)
            }
        }
        Target::Double | Target::Decimal => {
            let f = match v {
                Bson::Boolean(b) => f64::from(u8::from(*b)),
                Bson::String(s) => s.trim().parse::<f64>().map_err(|_| parse_number_error(s))?,
                Bson::DateTime(d) => d.timestamp_millis() as f64,
                Bson::Decimal128(d) if to == Target::Decimal => {
                    return Ok(Some(Bson::Decimal128(*d)))
                }
                other => Num::from_bson(other).ok_or_else(fail)?.to_f64(),
            };
            if to == Target::Double {
                Bson::Double(f)
            } else {
                let decimal = |s: &str| bson::Decimal128::from_str(s).map_err(|_| fail());
                Bson::Decimal128(match v {
                    Bson::String(s) => decimal(s.trim())?,
                    Bson::Int32(i) => decimal(&i.to_string())?,
                    Bson::Int64(i) => decimal(&i.to_string())?,
                    _ => number::f64_to_decimal(f),
                })
            }
        }
        Target::ObjectId => match v {
            Bson::ObjectId(o) => Bson::ObjectId(*o),
            Bson::String(s) => Bson::ObjectId(bson::oid::ObjectId::parse_str(s).map_err(|_| {
                QueryError::new(241, format!("Failed to parse objectId '{s}' in $convert with no onError value: Invalid string length for parsing to OID, expected 24 but found {}", s.len()))
            })?),
            _ => return Err(fail()),
        },
        Target::Date => match v {
            Bson::DateTime(d) => Bson::DateTime(*d),
            Bson::ObjectId(o) => Bson::DateTime(bson::DateTime::from_millis(
                (o.timestamp().timestamp_millis() / 1000) * 1000,
            )),
            Bson::String(s) => Bson::DateTime(bson::DateTime::parse_rfc3339_str(s).map_err(
                |_| QueryError::new(241, format!("Error parsing date string '{s}'")),
            )?),
            Bson::Timestamp(t) => {
                Bson::DateTime(bson::DateTime::from_millis(i64::from(t.time) * 1000))
            }
            other => {
                let n = Num::from_bson(other).ok_or_else(fail)?;
                Bson::DateTime(bson::DateTime::from_millis(
                    n.to_i64_trunc().ok_or_else(fail)?,
                ))
            }
        },
    }))
}
