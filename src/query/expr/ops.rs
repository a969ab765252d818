//! Expression operators: argument parsing and evaluation.

use std::str::FromStr;

use bson::{Bson, Document};

use super::{
    add_nums, compare_opt, dates, nullish, too_large, truthy, type_name, Expr, Special,
    MAX_VALUE_BYTES,
};
use crate::query::compare::{canonical_key, values_equal};
use crate::query::limits::value_size;
use crate::query::number::{self, Num, Overflow};
use crate::query::pattern::Pattern;
use crate::query::{display_value, QueryError};

type Val = Option<Bson>;

/// Most elements `$range` may produce (MongoDB bounds it by memory, 100 MB).
const RANGE_LIMIT: usize = 1_000_000;
type Res = Result<Val, QueryError>;

/// Arity of an eagerly evaluated operator: (min, max); `None` means unknown.
fn arity(name: &str) -> Option<(usize, usize)> {
    Some(match name {
        "$abs" | "$ceil" | "$floor" | "$sqrt" | "$exp" | "$ln" | "$log10" | "$not" | "$size"
        | "$toUpper" | "$toLower" | "$toString" | "$toInt" | "$toLong" | "$toDouble"
        | "$toBool" | "$toDecimal" | "$toObjectId" | "$toDate" | "$type" | "$isArray"
        | "$reverseArray" | "$strLenCP" | "$strLenBytes" | "$first" | "$last" | "$isNumber"
        | "$objectToArray" | "$arrayToObject" | "$allElementsTrue" | "$anyElementTrue" => (1, 1),
        "$subtract" | "$divide" | "$mod" | "$pow" | "$eq" | "$ne" | "$gt" | "$gte" | "$lt"
        | "$lte" | "$cmp" | "$arrayElemAt" | "$in" | "$split" | "$log" | "$strcasecmp"
        | "$setDifference" | "$setIsSubset" => (2, 2),
        "$substrCP" | "$substr" | "$substrBytes" => (3, 3),
        "$round" | "$trunc" => (1, 2),
        "$slice" => (2, 3),
        "$indexOfArray" | "$indexOfCP" | "$indexOfBytes" => (2, 4),
        "$range" => (2, 3),
        "$add" | "$multiply" | "$concat" | "$concatArrays" | "$mergeObjects" | "$max" | "$min"
        | "$sum" | "$avg" | "$setUnion" | "$setIntersection" | "$setEquals" | "$stdDevPop"
        | "$stdDevSamp" => (0, usize::MAX),
        _ => return None,
    })
}

fn named_args<'a>(op: &str, arg: &'a Bson, allowed: &[&str]) -> Result<&'a Document, QueryError> {
    let Bson::Document(d) = arg else {
        return Err(QueryError::failed_to_parse(format!(
            "{op} only supports an object as its argument"
        )));
    };
    for k in d.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(QueryError::failed_to_parse(format!(
                "Unrecognized parameter to {op}: {k}"
            )));
        }
    }
    Ok(d)
}

fn required(op: &str, d: &Document, key: &str) -> Result<Expr, QueryError> {
    match d.get(key) {
        Some(v) => Expr::parse(v),
        None => Err(QueryError::failed_to_parse(format!(
            "Missing '{key}' parameter to {op}"
        ))),
    }
}

fn optional(d: &Document, key: &str) -> Result<Option<Expr>, QueryError> {
    d.get(key).map(Expr::parse).transpose()
}

fn var_name(op: &str, d: &Document, key: &str, default: &str) -> Result<String, QueryError> {
    match d.get(key) {
        None => Ok(default.to_string()),
        Some(Bson::String(s)) if !s.is_empty() && !s.starts_with('$') => Ok(s.clone()),
        Some(_) => Err(QueryError::failed_to_parse(format!(
            "{op}: '{key}' must be a valid variable name"
        ))),
    }
}

fn special(s: Special) -> Expr {
    Expr::Special(Box::new(s))
}

fn arg_list(arg: &Bson) -> Result<Vec<Expr>, QueryError> {
    match arg {
        Bson::Array(items) => items.iter().map(Expr::parse).collect(),
        other => Ok(vec![Expr::parse(other)?]),
    }
}

const DATE_PARTS: &[&str] = &[
    "$year",
    "$month",
    "$dayOfMonth",
    "$hour",
    "$minute",
    "$second",
    "$millisecond",
    "$dayOfWeek",
    "$dayOfYear",
    "$week",
    "$isoWeek",
    "$isoWeekYear",
    "$isoDayOfWeek",
];

/// Parses `{name: arg}`.
pub(super) fn parse_operator(name: &str, arg: &Bson) -> Result<Expr, QueryError> {
    match name {
        "$literal" => return Ok(Expr::Literal(arg.clone())),
        "$cond" => {
            return match arg {
                Bson::Array(items) if items.len() == 3 => Ok(special(Special::Cond(
                    Expr::parse(&items[0])?,
                    Expr::parse(&items[1])?,
                    Expr::parse(&items[2])?,
                ))),
                Bson::Array(items) => Err(QueryError::new(
                    16020,
                    format!(
                        "Expression $cond takes exactly 3 arguments. {} were passed in.",
                        items.len()
                    ),
                )),
                Bson::Document(d) => {
                    for k in d.keys() {
                        if !matches!(k.as_str(), "if" | "then" | "else") {
                            return Err(QueryError::new(
                                17083,
                                format!("Unrecognized parameter to $cond: {k}"),
                            ));
                        }
                    }
                    let get = |k: &str, code: i32| {
                        d.get(k).map(Expr::parse).unwrap_or_else(|| {
                            Err(QueryError::new(
                                code,
                                format!("Missing '{k}' parameter to $cond"),
                            ))
                        })
                    };
                    Ok(special(Special::Cond(
                        get("if", 17080)?,
                        get("then", 17081)?,
                        get("else", 17082)?,
                    )))
                }
                _ => Err(QueryError::new(
                    16020,
                    "Expression $cond takes exactly 3 arguments. 1 were passed in.",
                )),
            }
        }
        "$and" => return Ok(special(Special::And(arg_list(arg)?))),
        "$or" => return Ok(special(Special::Or(arg_list(arg)?))),
        "$ifNull" => {
            let args = arg_list(arg)?;
            if args.len() < 2 {
                return Err(QueryError::new(
                    1257300,
                    format!("$ifNull needs at least two arguments, had: {}", args.len()),
                ));
            }
            return Ok(special(Special::IfNull(args)));
        }
        "$switch" => {
            let d = named_args(name, arg, &["branches", "default"])?;
            let Some(Bson::Array(branches)) = d.get("branches") else {
                return Err(QueryError::new(
                    40060,
                    "$switch expected an array for 'branches'",
                ));
            };
            let mut parsed = Vec::with_capacity(branches.len());
            for b in branches {
                let Bson::Document(b) = b else {
                    return Err(QueryError::new(
                        40061,
                        "$switch expected each branch to be an object",
                    ));
                };
                let case = b.get("case").ok_or_else(|| {
                    QueryError::new(
                        40064,
                        "$switch requires each branch have a 'case' expression",
                    )
                })?;
                let then = b.get("then").ok_or_else(|| {
                    QueryError::new(
                        40065,
                        "$switch requires each branch have a 'then' expression.",
                    )
                })?;
                parsed.push((Expr::parse(case)?, Expr::parse(then)?));
            }
            return Ok(special(Special::Switch(parsed, optional(d, "default")?)));
        }
        "$let" => {
            let d = named_args(name, arg, &["vars", "in"])?;
            let Some(Bson::Document(vars)) = d.get("vars") else {
                return Err(QueryError::new(16876, "Missing 'vars' parameter to $let"));
            };
            let bindings = vars
                .iter()
                .map(|(k, v)| Ok((k.clone(), Expr::parse(v)?)))
                .collect::<Result<Vec<_>, QueryError>>()?;
            let body = d
                .get("in")
                .ok_or_else(|| QueryError::new(16877, "Missing 'in' parameter to $let"))?;
            return Ok(special(Special::Let(bindings, Expr::parse(body)?)));
        }
        "$map" => {
            let d = named_args(name, arg, &["input", "as", "in"])?;
            return Ok(special(Special::Map {
                input: required(name, d, "input")?,
                var: var_name(name, d, "as", "this")?,
                body: required(name, d, "in")?,
            }));
        }
        "$filter" => {
            let d = named_args(name, arg, &["input", "as", "cond", "limit"])?;
            return Ok(special(Special::Filter {
                input: required(name, d, "input")?,
                var: var_name(name, d, "as", "this")?,
                cond: required(name, d, "cond")?,
                limit: optional(d, "limit")?,
            }));
        }
        "$reduce" => {
            let d = named_args(name, arg, &["input", "initialValue", "in"])?;
            return Ok(special(Special::Reduce {
                input: required(name, d, "input")?,
                initial: required(name, d, "initialValue")?,
                body: required(name, d, "in")?,
            }));
        }
        "$dateToString" => {
            let d = named_args(name, arg, &["date", "format", "timezone", "onNull"])?;
            return Ok(special(Special::DateToString {
                date: required(name, d, "date")?,
                format: optional(d, "format")?,
                timezone: optional(d, "timezone")?,
                on_null: optional(d, "onNull")?,
            }));
        }
        n if DATE_PARTS.contains(&n) => {
            return match arg {
                Bson::Document(d) if d.contains_key("date") => {
                    let d = named_args(name, arg, &["date", "timezone"])?;
                    Ok(special(Special::DatePart(
                        n.to_string(),
                        required(name, d, "date")?,
                        optional(d, "timezone")?,
                    )))
                }
                Bson::Array(items) if items.len() == 1 => Ok(special(Special::DatePart(
                    n.to_string(),
                    Expr::parse(&items[0])?,
                    None,
                ))),
                Bson::Array(items) => Err(QueryError::new(
                    16020,
                    format!(
                        "Expression {n} takes exactly 1 arguments. {} were passed in.",
                        items.len()
                    ),
                )),
                other => Ok(special(Special::DatePart(
                    n.to_string(),
                    Expr::parse(other)?,
                    None,
                ))),
            };
        }
        "$regexMatch" | "$regexFind" | "$regexFindAll" => {
            let d = named_args(name, arg, &["input", "regex", "options"])?;
            let mut args = vec![required(name, d, "input")?, required(name, d, "regex")?];
            args.push(optional(d, "options")?.unwrap_or(Expr::Literal(Bson::Null)));
            return Ok(Expr::Op(name.to_string(), args));
        }
        "$trim" | "$ltrim" | "$rtrim" => {
            let d = named_args(name, arg, &["input", "chars"])?;
            let args = vec![
                required(name, d, "input")?,
                optional(d, "chars")?.unwrap_or(Expr::Literal(Bson::Null)),
            ];
            return Ok(Expr::Op(name.to_string(), args));
        }
        "$getField" => {
            let (field, input) = match arg {
                Bson::Document(_) => {
                    let d = named_args(name, arg, &["field", "input"])?;
                    (
                        required(name, d, "field")?,
                        optional(d, "input")?.unwrap_or(Expr::Var("CURRENT".into(), vec![])),
                    )
                }
                other => (Expr::parse(other)?, Expr::Var("CURRENT".into(), vec![])),
            };
            return Ok(Expr::Op(name.to_string(), vec![field, input]));
        }
        "$convert" => {
            let d = named_args(name, arg, &["input", "to", "onError", "onNull"])?;
            let args = vec![
                required(name, d, "input")?,
                required(name, d, "to")?,
                optional(d, "onError")?.unwrap_or(Expr::Literal(Bson::MinKey)),
                optional(d, "onNull")?.unwrap_or(Expr::Literal(Bson::Null)),
            ];
            return Ok(Expr::Op(name.to_string(), args));
        }
        "$function" | "$accumulator" | "$where" => return Err(QueryError::unsupported(name)),
        n if super::named::handles(n) => {
            return super::named::parse(n, arg).unwrap_or_else(|| {
                Err(QueryError::new(
                    168,
                    format!("Unrecognized expression '{n}'"),
                ))
            });
        }
        _ => {}
    }
    let Some((min, max)) = arity(name) else {
        return Err(QueryError::new(
            168,
            format!("Unrecognized expression '{name}'"),
        ));
    };
    let args = arg_list(arg)?;
    if args.len() < min || args.len() > max {
        let msg = if min == max {
            format!(
                "Expression {name} takes exactly {min} arguments. {} were passed in.",
                args.len()
            )
        } else if max == usize::MAX {
            format!(
                "Expression {name} takes at least {min} arguments, and {} were passed in.",
                args.len()
            )
        } else {
            format!(
                "Expression {name} takes at least {min} arguments, and at most {max}, but {} were passed in.",
                args.len()
            )
        };
        return Err(QueryError::new(16020, msg));
    }
    Ok(Expr::Op(name.to_string(), args))
}

fn num_or_err(name: &str, v: &Bson, code: i32) -> Result<Num, QueryError> {
    Num::from_bson(v).ok_or_else(|| {
        QueryError::new(
            code,
            format!(
                "{name} only supports numeric types, not {}",
                type_name(Some(v))
            ),
        )
    })
}

fn bool_val(b: bool) -> Res {
    Ok(Some(Bson::Boolean(b)))
}

fn null() -> Res {
    Ok(Some(Bson::Null))
}

fn int_arg(name: &str, what: &str, v: &Bson) -> Result<i64, QueryError> {
    Num::from_bson(v)
        .and_then(Num::to_i64_exact)
        .ok_or_else(|| {
            QueryError::new(
                28765,
                format!(
                    "{name}: {what} must be an integral numeric value, found {}",
                    type_name(Some(v))
                ),
            )
        })
}

/// Evaluates an eager operator on its evaluated arguments.
pub(super) fn apply(name: &str, args: Vec<Val>) -> Res {
    let a = |i: usize| args.get(i).and_then(|v| v.as_ref());
    match name {
        "$add" => {
            let mut total = Num::Int32(0);
            let mut date: Option<i64> = None;
            for v in &args {
                match v {
                    None | Some(Bson::Null) | Some(Bson::Undefined) => return null(),
                    Some(Bson::DateTime(d)) => {
                        if date.is_some() {
                            return Err(QueryError::new(16612, "only one date allowed in an $add expression"));
                        }
                        date = Some(d.timestamp_millis());
                    }
                    Some(other) => total = add_nums(total, num_or_err("$add", other, 16554).map_err(|_| {
                        QueryError::new(16554, format!("$add only supports numeric or date types, not {}", type_name(Some(other))))
                    })?),
                }
            }
            match date {
                Some(ms) => {
                    let delta = total.to_f64().round();
                    Ok(Some(Bson::DateTime(bson::DateTime::from_millis(ms.saturating_add(delta as i64)))))
                }
                None => Ok(Some(total.to_bson())),
            }
        }
        "$subtract" => {
            let (x, y) = (a(0), a(1));
            if nullish(x) || nullish(y) {
                return null();
            }
            match (x, y) {
                (Some(Bson::DateTime(p)), Some(Bson::DateTime(q))) => {
                    Ok(Some(Bson::Int64(p.timestamp_millis().saturating_sub(q.timestamp_millis()))))
                }
                (Some(Bson::DateTime(p)), Some(n)) if Num::from_bson(n).is_some() => {
                    let delta = Num::from_bson(n).map(|n| n.to_f64().round() as i64).unwrap_or(0);
                    Ok(Some(Bson::DateTime(bson::DateTime::from_millis(p.timestamp_millis().saturating_sub(delta)))))
                }
                (Some(p), Some(q)) => match (Num::from_bson(p), Num::from_bson(q)) {
                    (Some(p), Some(q)) => Ok(number::sub(p, q, Overflow::ToDouble).map(Num::to_bson)),
                    _ => Err(QueryError::new(
                        16556,
                        format!("can't $subtract {} from {}", type_name(Some(q)), type_name(Some(p))),
                    )),
                },
                _ => null(),
            }
        }
        "$multiply" => {
            let mut total = Num::Int32(1);
            for v in &args {
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
        "$divide" | "$mod" => {
            let (x, y) = (a(0), a(1));
            if nullish(x) || nullish(y) {
                return null();
            }
            let (Some(x), Some(y)) = (x, y) else { return null() };
            let (code, zero_code) = if name == "$divide" { (16609, 16608) } else { (16611, 16610) };
            let (Some(p), Some(q)) = (Num::from_bson(x), Num::from_bson(y)) else {
                return Err(QueryError::new(
                    code,
                    format!("{name} only supports numeric types, not {} and {}", type_name(Some(x)), type_name(Some(y))),
                ));
            };
            if q.is_zero() {
                return Err(QueryError::new(zero_code, format!("can't {name} by zero")));
            }
            Ok(Some(if name == "$divide" { number::div(p, q) } else { number::rem(p, q) }.to_bson()))
        }
        "$abs" | "$ceil" | "$floor" | "$sqrt" | "$exp" | "$ln" | "$log10" => {
            let Some(v) = a(0).filter(|v| !nullish(Some(v))) else { return null() };
            let n = num_or_err(name, v, 28765)?;
            Ok(Some(match name {
                "$abs" => number::abs(n).to_bson(),
                "$ceil" | "$floor" => match n {
                    Num::Double(d) => Bson::Double(if name == "$ceil" { d.ceil() } else { d.floor() }),
                    Num::Decimal(d) => {
                        let f = number::decimal_to_f64(&d);
                        Bson::Decimal128(number::f64_to_decimal(if name == "$ceil" { f.ceil() } else { f.floor() }))
                    }
                    other => other.to_bson(),
                },
                "$sqrt" => {
                    if n.to_f64() < 0.0 {
                        return Err(QueryError::new(28714, "$sqrt's argument must be greater than or equal to 0"));
                    }
                    Bson::Double(n.to_f64().sqrt())
                }
                "$exp" => Bson::Double(n.to_f64().exp()),
                "$ln" => Bson::Double(n.to_f64().ln()),
                _ => Bson::Double(n.to_f64().log10()),
            }))
        }
        "$pow" | "$log" => {
            let (Some(x), Some(y)) = (a(0), a(1)) else { return null() };
            if nullish(Some(x)) || nullish(Some(y)) {
                return null();
            }
            let (p, q) = (num_or_err(name, x, 28762)?, num_or_err(name, y, 28763)?);
            if name == "$log" {
                return Ok(Some(Bson::Double(p.to_f64().ln() / q.to_f64().ln())));
            }
            if let (Some(b), Some(e)) = (p.to_i64_exact(), q.to_i64_exact()) {
                if !matches!(p, Num::Double(_) | Num::Decimal(_)) && !matches!(q, Num::Double(_) | Num::Decimal(_)) && e >= 0 {
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
        "$round" | "$trunc" => {
            let Some(v) = a(0).filter(|v| !nullish(Some(v))) else { return null() };
            let n = num_or_err(name, v, 51081)?;
            let place = match a(1) {
                None => 0,
                Some(p) => int_arg(name, "place", p)?,
            };
            let round = |d: f64| {
                let f = 10f64.powi(place.clamp(-20, 100) as i32);
                let x = d * f;
                let r = if name == "$trunc" {
                    x.trunc()
                } else {
                    let fl = x.floor();
                    let diff = x - fl;
                    if diff > 0.5 || (diff == 0.5 && fl.rem_euclid(2.0) == 1.0) { fl + 1.0 } else { fl }
                };
                r / f
            };
            Ok(Some(match n {
                Num::Double(d) => Bson::Double(round(d)),
                Num::Decimal(d) => Bson::Decimal128(number::f64_to_decimal(round(number::decimal_to_f64(&d)))),
                other if place >= 0 => other.to_bson(),
                Num::Int32(i) => Bson::Int32(round(f64::from(i)) as i32),
                other => Bson::Int64(round(other.to_f64()) as i64),
            }))
        }
        "$eq" | "$ne" | "$gt" | "$gte" | "$lt" | "$lte" | "$cmp" => {
            let o = compare_opt(a(0), a(1));
            use std::cmp::Ordering::*;
            match name {
                "$cmp" => Ok(Some(Bson::Int32(match o {
                    Less => -1,
                    Equal => 0,
                    Greater => 1,
                }))),
                "$eq" => bool_val(o == Equal),
                "$ne" => bool_val(o != Equal),
                "$gt" => bool_val(o == Greater),
                "$gte" => bool_val(o != Less),
                "$lt" => bool_val(o == Less),
                _ => bool_val(o != Greater),
            }
        }
        "$not" => bool_val(!truthy(a(0))),
        "$concat" => {
            let mut out = String::new();
            for v in &args {
                match v {
                    None | Some(Bson::Null) | Some(Bson::Undefined) => return null(),
                    Some(Bson::String(s)) => {
                        if out.len().saturating_add(s.len()) > MAX_VALUE_BYTES {
                            return Err(too_large(name));
                        }
                        out.push_str(s)
                    }
                    Some(other) => {
                        return Err(QueryError::new(
                            16702,
                            format!("$concat only supports strings, not {}", type_name(Some(other))),
                        ))
                    }
                }
            }
            Ok(Some(Bson::String(out)))
        }
        "$toUpper" | "$toLower" => {
            let s = match a(0) {
                None | Some(Bson::Null) | Some(Bson::Undefined) => String::new(),
                Some(v) => to_string_value(v).ok_or_else(|| {
                    QueryError::new(16007, format!("can't convert from BSON type {} to String", type_name(Some(v))))
                })?,
            };
            // MongoDB changes the case of ASCII letters only.
            Ok(Some(Bson::String(if name == "$toUpper" { s.to_ascii_uppercase() } else { s.to_ascii_lowercase() })))
        }
        "$strLenCP" | "$strLenBytes" => match a(0) {
            Some(Bson::String(s)) => Ok(Some(Bson::Int32(
                if name == "$strLenCP" { s.chars().count() } else { s.len() } as i32,
            ))),
            other => Err(QueryError::new(
                34471,
                format!("{name} requires a string argument, found: {}", type_name(other)),
            )),
        },
        "$substrCP" | "$substr" | "$substrBytes" => {
            let s = match a(0) {
                None | Some(Bson::Null) | Some(Bson::Undefined) => return Ok(Some(Bson::String(String::new()))),
                Some(v) => to_string_value(v).ok_or_else(|| {
                    QueryError::new(16007, format!("can't convert from BSON type {} to String", type_name(Some(v))))
                })?,
            };
            let start = a(1).and_then(Num::from_bson).and_then(Num::to_i64_trunc).ok_or_else(|| {
                QueryError::new(34450, format!("{name}: starting index must be a numeric type (is BSON type {})", type_name(a(1))))
            })?;
            let len = a(2).and_then(Num::from_bson).and_then(Num::to_i64_trunc).ok_or_else(|| {
                QueryError::new(34452, format!("{name}: length must be a numeric type (is BSON type {})", type_name(a(2))))
            })?;
            if name == "$substrCP" {
                if start < 0 {
                    return Err(QueryError::new(34455, "$substrCP: the starting index must be nonnegative integer."));
                }
                let len = if len < 0 { usize::MAX } else { len as usize };
                Ok(Some(Bson::String(s.chars().skip(start as usize).take(len).collect())))
            } else {
                let bytes = s.as_bytes();
                let start = (start.max(0) as usize).min(bytes.len());
                let end = if len < 0 { bytes.len() } else { start.saturating_add(len as usize).min(bytes.len()) };
                match std::str::from_utf8(&bytes[start..end]) {
                    Ok(sub) => Ok(Some(Bson::String(sub.to_string()))),
                    Err(_) => Err(QueryError::new(28656, format!("{name}: Invalid range, starting index is a UTF-8 continuation byte."))),
                }
            }
        }
        "$split" => match (a(0), a(1)) {
            (x, _) if nullish(x) => null(),
            (Some(Bson::String(s)), Some(Bson::String(sep))) => {
                if sep.is_empty() {
                    return Err(QueryError::new(40087, "$split requires a non-empty separator"));
                }
                Ok(Some(Bson::Array(s.split(sep.as_str()).map(|p| Bson::String(p.to_string())).collect())))
            }
            (Some(Bson::String(_)), other) => Err(QueryError::new(
                40086,
                format!("$split requires an expression that evaluates to a string as a second argument, found: {}", type_name(other)),
            )),
            (other, _) => Err(QueryError::new(
                40085,
                format!("$split requires an expression that evaluates to a string as a first argument, found: {}", type_name(other)),
            )),
        },
        "$strcasecmp" => {
            let s = |v: Option<&Bson>| v.and_then(to_string_value).unwrap_or_default().to_ascii_lowercase();
            Ok(Some(Bson::Int32(match s(a(0)).cmp(&s(a(1))) {
                std::cmp::Ordering::Less => -1,
                std::cmp::Ordering::Equal => 0,
                std::cmp::Ordering::Greater => 1,
            })))
        }
        "$trim" | "$ltrim" | "$rtrim" => {
            let input = match a(0) {
                x if nullish(x) => return null(),
                Some(Bson::String(s)) => s.clone(),
                other => {
                    return Err(QueryError::new(50699, format!("{name} requires its input to be a string, got {} instead.", type_name(other))))
                }
            };
            let chars: Vec<char> = match a(1) {
                None | Some(Bson::Null) => vec![' ', '\t', '\n', '\r', '\u{0b}', '\u{0c}', '\0', '\u{a0}'],
                Some(Bson::String(c)) => c.chars().collect(),
                other => {
                    return Err(QueryError::new(50700, format!("{name} requires 'chars' to be a string, got {} instead.", type_name(other))))
                }
            };
            let pred = |c: char| chars.contains(&c);
            Ok(Some(Bson::String(match name {
                "$trim" => input.trim_matches(pred).to_string(),
                "$ltrim" => input.trim_start_matches(pred).to_string(),
                _ => input.trim_end_matches(pred).to_string(),
            })))
        }
        "$indexOfCP" | "$indexOfBytes" => {
            let hay = match a(0) {
                x if nullish(x) => return null(),
                Some(Bson::String(s)) => s.clone(),
                other => return Err(QueryError::new(40091, format!("{name} requires a string as the first argument, found: {}", type_name(other)))),
            };
            let Some(Bson::String(needle)) = a(1) else {
                return Err(QueryError::new(40092, format!("{name} requires a string as the second argument, found: {}", type_name(a(1)))));
            };
            let chars: Vec<char> = hay.chars().collect();
            let start = a(2).map(|v| int_arg(name, "starting index", v)).transpose()?.unwrap_or(0).max(0) as usize;
            let end = a(3).map(|v| int_arg(name, "ending index", v)).transpose()?.map(|e| e.max(0) as usize).unwrap_or(chars.len()).min(chars.len());
            let nchars: Vec<char> = needle.chars().collect();
            let mut i = start;
            while i + nchars.len() <= end {
                if chars[i..i + nchars.len()] == nchars[..] {
                    return Ok(Some(Bson::Int32(i as i32)));
                }
                i += 1;
            }
            Ok(Some(Bson::Int32(-1)))
        }
        "$regexMatch" | "$regexFind" | "$regexFindAll" => {
            let input = match a(0) {
                x if nullish(x) => {
                    return Ok(Some(match name {
                        "$regexMatch" => Bson::Boolean(false),
                        "$regexFind" => Bson::Null,
                        _ => Bson::Array(vec![]),
                    }))
                }
                Some(Bson::String(s)) => s.clone(),
                other => return Err(QueryError::new(51104, format!("{name} needs 'input' to be of type string, found {}", type_name(other)))),
            };
            let opts = match a(2) {
                Some(Bson::String(o)) => o.clone(),
                _ => String::new(),
            };
            let pattern = match a(1) {
                Some(Bson::String(p)) => Pattern::new(p, &opts)?,
                Some(Bson::RegularExpression(r)) => Pattern::new(&r.pattern, if opts.is_empty() { &r.options } else { &opts })?,
                other => return Err(QueryError::new(51105, format!("{name} needs 'regex' to be of type string or regex, found {}", type_name(other)))),
            };
            let found = |m: regex::Captures| {
                let whole = m.get(0);
                let mut d = Document::new();
                d.insert("match", whole.map(|w| w.as_str()).unwrap_or_default());
                d.insert("idx", whole.map(|w| input[..w.start()].chars().count() as i32).unwrap_or(0));
                d.insert(
                    "captures",
                    m.iter().skip(1).map(|c| c.map(|c| Bson::String(c.as_str().into())).unwrap_or(Bson::Null)).collect::<Vec<_>>(),
                );
                Bson::Document(d)
            };
            Ok(Some(match name {
                "$regexMatch" => Bson::Boolean(pattern.is_match(&input)),
                "$regexFind" => pattern.regex().captures(&input).map(found).unwrap_or(Bson::Null),
                _ => Bson::Array(pattern.regex().captures_iter(&input).map(found).collect()),
            }))
        }
        "$size" => match a(0) {
            Some(Bson::Array(items)) => Ok(Some(Bson::Int32(items.len() as i32))),
            other => Err(QueryError::new(
                17124,
                format!("The argument to $size must be an array. Type of argument was: {}", type_name(other)),
            )),
        },
        "$isArray" => bool_val(matches!(a(0), Some(Bson::Array(_)))),
        "$isNumber" => bool_val(a(0).and_then(Num::from_bson).is_some()),
        "$type" => Ok(Some(Bson::String(type_name(a(0)).to_string()))),
        "$arrayElemAt" => {
            let (x, y) = (a(0), a(1));
            if nullish(x) || nullish(y) {
                return null();
            }
            let Some(Bson::Array(items)) = x else {
                return Err(QueryError::new(28689, format!("$arrayElemAt's first argument must be an array, but is {}", type_name(x))));
            };
            let Some(idx) = y.and_then(Num::from_bson).and_then(Num::to_i64_exact) else {
                return Err(QueryError::new(28690, format!("$arrayElemAt's second argument must be a numeric value, but is {}", type_name(y))));
            };
            let i = if idx < 0 { items.len() as i64 + idx } else { idx };
            Ok(usize::try_from(i).ok().and_then(|i| items.get(i)).cloned())
        }
        "$first" | "$last" => match a(0) {
            x if nullish(x) => null(),
            Some(Bson::Array(items)) => Ok(if name == "$first" { items.first() } else { items.last() }.cloned()),
            other => Err(QueryError::new(
                28689,
                format!("{name}'s argument must be an array, but is {}", type_name(other)),
            )),
        },
        "$concatArrays" => {
            let mut out = Vec::new();
            let mut bytes = 0usize;
            for v in &args {
                match v {
                    None | Some(Bson::Null) | Some(Bson::Undefined) => return null(),
                    Some(array @ Bson::Array(items)) => {
                        bytes = bytes.saturating_add(value_size(array));
                        if bytes > MAX_VALUE_BYTES {
                            return Err(too_large(name));
                        }
                        out.extend(items.iter().cloned())
                    }
                    Some(other) => {
                        return Err(QueryError::new(
                            28664,
                            format!("$concatArrays only supports arrays, not {}", type_name(Some(other))),
                        ))
                    }
                }
            }
            Ok(Some(Bson::Array(out)))
        }
        "$reverseArray" => match a(0) {
            x if nullish(x) => null(),
            Some(Bson::Array(items)) => Ok(Some(Bson::Array(items.iter().rev().cloned().collect()))),
            other => Err(QueryError::new(34435, format!("The argument to $reverseArray must be an array, but was of type: {}", type_name(other)))),
        },
        "$in" => match a(1) {
            Some(Bson::Array(items)) => {
                let needle = a(0).cloned().unwrap_or(Bson::Undefined);
                bool_val(items.iter().any(|x| values_equal(x, &needle)))
            }
            other => Err(QueryError::new(
                40081,
                format!("$in requires an array as a second argument, found: {}", type_name(other)),
            )),
        },
        "$indexOfArray" => {
            let x = a(0);
            if nullish(x) {
                return null();
            }
            let Some(Bson::Array(items)) = x else {
                return Err(QueryError::new(40090, format!("$indexOfArray requires an array as a first argument, found: {}", type_name(x))));
            };
            let needle = a(1).cloned().unwrap_or(Bson::Undefined);
            let start = a(2).map(|v| int_arg(name, "starting index", v)).transpose()?.unwrap_or(0).max(0) as usize;
            let end = a(3).map(|v| int_arg(name, "ending index", v)).transpose()?.map(|e| e.max(0) as usize).unwrap_or(items.len()).min(items.len());
            let pos = (start..end).find(|i| values_equal(&items[*i], &needle));
            Ok(Some(Bson::Int32(pos.map(|p| p as i32).unwrap_or(-1))))
        }
        "$slice" => {
            let x = a(0);
            if nullish(x) {
                return null();
            }
            let Some(Bson::Array(items)) = x else {
                return Err(QueryError::new(28724, format!("First argument to $slice must be an array, but is of type: {}", type_name(x))));
            };
            let n1 = int_arg(name, "second argument", a(1).unwrap_or(&Bson::Null))?;
            let len = items.len() as i64;
            let (start, count) = match a(2) {
                None => {
                    if n1 >= 0 { (0, n1) } else { ((len + n1).max(0), len) }
                }
                Some(c) => {
                    let c = int_arg(name, "third argument", c)?;
                    if c <= 0 {
                        return Err(QueryError::new(28729, format!("Third argument to $slice must be positive: {c}")));
                    }
                    let start = if n1 >= 0 { n1.min(len) } else { (len + n1).max(0) };
                    (start, c)
                }
            };
            Ok(Some(Bson::Array(items.iter().skip(start as usize).take(count as usize).cloned().collect())))
        }
        "$range" => {
            let start = int_arg(name, "starting value", a(0).unwrap_or(&Bson::Null))?;
            let end = int_arg(name, "ending value", a(1).unwrap_or(&Bson::Null))?;
            let step = match a(2) {
                Some(s) => int_arg(name, "step value", s)?,
                None => 1,
            };
            for (what, v, code) in [("starting value", start, 34443), ("ending value", end, 34445), ("step value", step, 34447)] {
                if i32::try_from(v).is_err() {
                    return Err(QueryError::new(code, format!("$range requires a {what} that can be represented as a 32-bit integer, found value: {v}")));
                }
            }
            if step == 0 {
                return Err(QueryError::new(34449, "$range requires a non-zero step value"));
            }
            // Refuse before allocating what the request could not hold.
            let count = if (step > 0 && start < end) || (step < 0 && start > end) {
                ((end - start).unsigned_abs() - 1) / step.unsigned_abs() + 1
            } else {
                0
            };
            let count = usize::try_from(count).unwrap_or(usize::MAX).min(RANGE_LIMIT);
            crate::query::budget::ensure_room(
                count.saturating_mul(std::mem::size_of::<Bson>()),
                name,
            )?;
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
        "$allElementsTrue" | "$anyElementTrue" => match a(0) {
            Some(Bson::Array(items)) => bool_val(if name == "$allElementsTrue" {
                items.iter().all(|x| truthy(Some(x)))
            } else {
                items.iter().any(|x| truthy(Some(x)))
            }),
            other => Err(QueryError::new(17040, format!("{name}'s argument must be an array, but is {}", type_name(other)))),
        },
        "$setUnion" | "$setIntersection" | "$setEquals" | "$setDifference" | "$setIsSubset" => set_op(name, &args),
        "$mergeObjects" => {
            let mut out = Document::new();
            let list: Vec<Option<&Bson>> = match args.as_slice() {
                [Some(Bson::Array(items))] => items.iter().map(Some).collect(),
                _ => args.iter().map(|v| v.as_ref()).collect(),
            };
            for v in list {
                match v {
                    None | Some(Bson::Null) | Some(Bson::Undefined) => {}
                    Some(Bson::Document(d)) => {
                        for (k, x) in d {
                            out.insert(k.clone(), x.clone());
                        }
                    }
                    Some(other) => {
                        return Err(QueryError::new(
                            40400,
                            format!("$mergeObjects requires object inputs, but input {} is of type {}", display_value(other), type_name(Some(other))),
                        ))
                    }
                }
            }
            Ok(Some(Bson::Document(out)))
        }
        "$objectToArray" => match a(0) {
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
            other => Err(QueryError::new(40390, format!("$objectToArray requires a document input, found: {}", type_name(other)))),
        },
        "$arrayToObject" => match a(0) {
            x if nullish(x) => null(),
            Some(Bson::Array(items)) => {
                let mut out = Document::new();
                for item in items {
                    match item {
                        Bson::Document(d) if d.len() == 2 => match (d.get("k"), d.get("v")) {
                            (Some(Bson::String(k)), Some(v)) => {
                                out.insert(k.clone(), v.clone());
                            }
                            _ => return Err(QueryError::new(40393, "$arrayToObject requires an object with keys 'k' and 'v'.")),
                        },
                        Bson::Array(pair) if pair.len() == 2 => match (&pair[0], &pair[1]) {
                            (Bson::String(k), v) => {
                                out.insert(k.clone(), v.clone());
                            }
                            _ => return Err(QueryError::new(40395, "$arrayToObject requires an array of key-value pairs, where the key must be of type string.")),
                        },
                        _ => return Err(QueryError::new(40398, "Unrecognised input type format for $arrayToObject")),
                    }
                }
                Ok(Some(Bson::Document(out)))
            }
            other => Err(QueryError::new(40386, format!("$arrayToObject requires an array input, found: {}", type_name(other)))),
        },
        "$getField" => {
            let Some(Bson::String(field)) = a(0) else {
                return Err(QueryError::new(5654602, "$getField requires 'field' to evaluate to type String"));
            };
            match a(1) {
                Some(Bson::Document(d)) => Ok(d.get(field).cloned()),
                x if nullish(x) => null(),
                _ => Ok(None),
            }
        }
        "$max" | "$min" | "$sum" | "$avg" | "$stdDevPop" | "$stdDevSamp" => {
            let list: Vec<Bson> = match args.as_slice() {
                [Some(Bson::Array(items))] => items.clone(),
                _ => args.iter().flatten().cloned().collect(),
            };
            Ok(Some(fold_values(name, &list)))
        }
        "$toString" | "$toInt" | "$toLong" | "$toDouble" | "$toBool" | "$toDecimal" | "$toObjectId" | "$toDate" => {
            let target = &name[3..];
            convert(a(0), &target[..1].to_lowercase().chars().chain(target[1..].chars()).collect::<String>())
        }
        "$convert" => {
            let to = match a(1) {
                Some(Bson::String(s)) => s.clone(),
                Some(v) => match Num::from_bson(v).and_then(Num::to_i64_exact) {
                    Some(1) => "double".into(),
                    Some(2) => "string".into(),
                    Some(7) => "objectId".into(),
                    Some(8) => "bool".into(),
                    Some(9) => "date".into(),
                    Some(16) => "int".into(),
                    Some(18) => "long".into(),
                    Some(19) => "decimal".into(),
                    _ => return Err(QueryError::bad_value(format!("Unknown type name: {}", display_value(v)))),
                },
                None => return Err(QueryError::failed_to_parse("Missing 'to' parameter to $convert")),
            };
            if nullish(a(0)) {
                return Ok(a(3).cloned());
            }
            match convert(a(0), &to) {
                Ok(v) => Ok(v),
                Err(e) => match a(2) {
                    Some(Bson::MinKey) | None => Err(e),
                    Some(fallback) => Ok(Some(fallback.clone())),
                },
            }
        }
        n if super::named::handles(n) => super::named::apply(n, args),
        other => Err(QueryError::new(168, format!("Unrecognized expression '{other}'"))),
    }
}

fn set_op(name: &str, args: &[Val]) -> Res {
    let mut arrays = Vec::with_capacity(args.len());
    for v in args {
        match v {
            None | Some(Bson::Null) | Some(Bson::Undefined)
                if name != "$setEquals" && name != "$setIsSubset" =>
            {
                return null()
            }
            Some(Bson::Array(items)) => arrays.push(items.clone()),
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
    let keys = |a: &Vec<Bson>| {
        a.iter()
            .map(canonical_key)
            .collect::<std::collections::HashSet<_>>()
    };
    match name {
        "$setUnion" => Ok(Some(Bson::Array(super::dedup(
            arrays.into_iter().flatten().collect(),
        )))),
        "$setIntersection" => {
            let Some((first, rest)) = arrays.split_first() else {
                return Ok(Some(Bson::Array(vec![])));
            };
            let sets: Vec<_> = rest.iter().map(keys).collect();
            Ok(Some(Bson::Array(super::dedup(
                first
                    .iter()
                    .filter(|x| sets.iter().all(|s| s.contains(&canonical_key(x))))
                    .cloned()
                    .collect(),
            ))))
        }
        "$setEquals" => {
            if arrays.len() < 2 {
                return Err(QueryError::new(
                    17045,
                    "$setEquals needs at least two arguments",
                ));
            }
            let first = keys(&arrays[0]);
            bool_val(arrays.iter().skip(1).all(|a| keys(a) == first))
        }
        "$setDifference" => {
            let other = keys(&arrays[1]);
            Ok(Some(Bson::Array(super::dedup(
                arrays[0]
                    .iter()
                    .filter(|x| !other.contains(&canonical_key(x)))
                    .cloned()
                    .collect(),
            ))))
        }
        _ => {
            let other = keys(&arrays[1]);
            bool_val(arrays[0].iter().all(|x| other.contains(&canonical_key(x))))
        }
    }
}

/// `$sum`, `$avg`, `$min`, `$max`, `$stdDevPop`, `$stdDevSamp` over a list
/// (non-numeric values ignored for the numeric ones; null/missing ignored for min/max).
pub(super) fn fold_values(name: &str, list: &[Bson]) -> Bson {
    match name {
        "$max" | "$min" => {
            let mut best: Option<&Bson> = None;
            for v in list.iter().filter(|v| !nullish(Some(v))) {
                best = match best {
                    None => Some(v),
                    Some(b) => {
                        let o = crate::query::compare::compare_values(v, b);
                        if (name == "$max" && o == std::cmp::Ordering::Greater)
                            || (name == "$min" && o == std::cmp::Ordering::Less)
                        {
                            Some(v)
                        } else {
                            Some(b)
                        }
                    }
                };
            }
            best.cloned().unwrap_or(Bson::Null)
        }
        "$sum" => {
            let mut total = Num::Int32(0);
            for n in list.iter().filter_map(Num::from_bson) {
                total = add_nums(total, n);
            }
            total.to_bson()
        }
        "$avg" => {
            let nums: Vec<Num> = list.iter().filter_map(Num::from_bson).collect();
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
            let nums: Vec<f64> = list
                .iter()
                .filter_map(Num::from_bson)
                .map(Num::to_f64)
                .collect();
            let n = nums.len() as f64;
            let samp = name == "$stdDevSamp";
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

/// String form used by `$toString`, `$toUpper` and friends.
fn to_string_value(v: &Bson) -> Option<String> {
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

fn conversion_error(v: &Bson, to: &str) -> QueryError {
    QueryError::new(
        241,
        format!(
            "Unsupported conversion from {} to {} in $convert with no onError value",
            type_name(Some(v)),
            to
        ),
    )
}

fn convert(v: Option<&Bson>, to: &str) -> Res {
    let Some(v) = v.filter(|v| !nullish(Some(v))) else {
        return null();
    };
    let fail = || conversion_error(v, to);
    Ok(Some(match to {
        "string" => Bson::String(to_string_value(v).ok_or_else(fail)?),
        "bool" => Bson::Boolean(match v {
            Bson::Boolean(b) => *b,
            other => truthy(Some(other)),
        }),
        "int" | "long" => {
            let n: i64 = match v {
                Bson::Boolean(b) => i64::from(*b),
                Bson::String(s) => s.trim().parse::<i64>().map_err(|_| {
                    QueryError::new(241, format!("Failed to parse number '{s}' in $convert with no onError value: Did not consume whole string."))
                })?,
                Bson::DateTime(d) if to == "long" => d.timestamp_millis(),
                other => {
                    let n = Num::from_bson(other).ok_or_else(fail)?;
                    let f = n.to_f64();
                    if !f.is_finite() {
                        return Err(QueryError::new(241, "Attempt to convert NaN or infinity value to integer in $convert with no onError value"));
                    }
                    n.to_i64_trunc().ok_or_else(fail)?
                }
            };
            if to == "int" {
                Bson::Int32(i32::try_from(n).map_err(|_| {
                    QueryError::new(241, format!("Conversion would overflow target type in $convert with no onError value: {n}"))
                })?)
            } else {
                Bson::Int64(n)
            }
        }
        "double" | "decimal" => {
            let f = match v {
                Bson::Boolean(b) => f64::from(u8::from(*b)),
                Bson::String(s) => s.trim().parse::<f64>().map_err(|_| {
                    QueryError::new(241, format!("Failed to parse number '{s}' in $convert with no onError value: Did not consume whole string."))
                })?,
                Bson::DateTime(d) => d.timestamp_millis() as f64,
                Bson::Decimal128(d) if to == "decimal" => return Ok(Some(Bson::Decimal128(*d))),
                other => Num::from_bson(other).ok_or_else(fail)?.to_f64(),
            };
            if to == "double" {
                Bson::Double(f)
            } else {
                match v {
                    Bson::String(s) => Bson::Decimal128(bson::Decimal128::from_str(s.trim()).map_err(|_| fail())?),
                    Bson::Int32(i) => Bson::Decimal128(bson::Decimal128::from_str(&i.to_string()).map_err(|_| fail())?),
                    Bson::Int64(i) => Bson::Decimal128(bson::Decimal128::from_str(&i.to_string()).map_err(|_| fail())?),
                    _ => Bson::Decimal128(number::f64_to_decimal(f)),
                }
            }
        }
        "objectId" => match v {
            Bson::ObjectId(o) => Bson::ObjectId(*o),
            Bson::String(s) => Bson::ObjectId(bson::oid::ObjectId::parse_str(s).map_err(|_| {
                QueryError::new(241, format!("Failed to parse objectId '{s}' in $convert with no onError value: Invalid string length for parsing to OID, expected 24 but found {}", s.len()))
            })?),
            _ => return Err(fail()),
        },
        "date" => match v {
            Bson::DateTime(d) => Bson::DateTime(*d),
            Bson::ObjectId(o) => Bson::DateTime(bson::DateTime::from_millis((o.timestamp().timestamp_millis() / 1000) * 1000)),
            Bson::String(s) => Bson::DateTime(bson::DateTime::parse_rfc3339_str(s).map_err(|_| {
                QueryError::new(241, format!("Error parsing date string '{s}'"))
            })?),
            Bson::Timestamp(t) => Bson::DateTime(bson::DateTime::from_millis(i64::from(t.time) * 1000)),
            other => {
                let n = Num::from_bson(other).ok_or_else(fail)?;
                Bson::DateTime(bson::DateTime::from_millis(n.to_i64_trunc().ok_or_else(fail)?))
            }
        },
        _ => return Err(QueryError::bad_value(format!("Unknown type name: {to}"))),
    }))
}
