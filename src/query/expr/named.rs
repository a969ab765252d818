//! Operators taking a document of named arguments (`{$dateAdd: {startDate, unit, amount}}`):
//! date arithmetic, string replacement and array helpers.

use bson::{Bson, Document};

use super::dates::{self, days_from_civil};
use super::{nullish, type_name, Expr};
use crate::query::compare::compare_values;
use crate::query::number::Num;
use crate::query::sort::SortSpec;
use crate::query::{display_value, QueryError};

/// Parameter lists: (name, required).
fn params(op: &str) -> Option<&'static [(&'static str, bool)]> {
    Some(match op {
        "$dateAdd" | "$dateSubtract" => &[
            ("startDate", true),
            ("unit", true),
            ("amount", true),
            ("timezone", false),
        ],
        "$dateDiff" => &[
            ("startDate", true),
            ("endDate", true),
            ("unit", true),
            ("timezone", false),
            ("startOfWeek", false),
        ],
        "$dateTrunc" => &[
            ("date", true),
            ("unit", true),
            ("binSize", false),
            ("timezone", false),
            ("startOfWeek", false),
        ],
        "$dateFromParts" => &[
            ("year", false),
            ("month", false),
            ("day", false),
            ("hour", false),
            ("minute", false),
            ("second", false),
            ("millisecond", false),
            ("timezone", false),
        ],
        "$dateFromString" => &[
            ("dateString", true),
            ("format", false),
            ("timezone", false),
            ("onError", false),
            ("onNull", false),
        ],
        "$dateToParts" => &[("date", true), ("timezone", false), ("iso8601", false)],
        "$replaceOne" | "$replaceAll" => &[("input", true), ("find", true), ("replacement", true)],
        "$sortArray" => &[("input", true), ("sortBy", true)],
        "$zip" => &[
            ("inputs", true),
            ("useLongestLength", false),
            ("defaults", false),
        ],
        "$firstN" | "$lastN" | "$maxN" | "$minN" => &[("n", true), ("input", true)],
        "$setField" => &[("field", true), ("input", true), ("value", true)],
        "$unsetField" => &[("field", true), ("input", true)],
        _ => return None,
    })
}

/// Parses a named-argument operator into positional arguments (absent
/// optional arguments evaluate to missing). `None` when `op` is not one.
pub(super) fn parse(op: &str, arg: &Bson) -> Option<Result<Expr, QueryError>> {
    let list = params(op)?;
    Some((|| {
        let Bson::Document(d) = arg else {
            return Err(QueryError::failed_to_parse(format!(
                "{op} only supports an object as its argument"
            )));
        };
        for k in d.keys() {
            if !list.iter().any(|(p, _)| p == k) {
                return Err(QueryError::failed_to_parse(format!(
                    "Unrecognized argument to {op}: {k}"
                )));
            }
        }
        let mut args = Vec::with_capacity(list.len());
        for (name, required) in list {
            match d.get(*name) {
                Some(v) if *name == "sortBy" => args.push(Expr::Literal(v.clone())),
                Some(v) => args.push(Expr::parse(v)?),
                None if *required => {
                    return Err(QueryError::failed_to_parse(format!(
                        "Missing '{name}' parameter to {op}"
                    )))
                }
                None => args.push(Expr::Var("REMOVE".into(), Vec::new())),
            }
        }
        if op == "$sortArray" {
            validate_sort_by(d.get("sortBy"))?;
        }
        Ok(Expr::Op(op.to_string(), args))
    })())
}

fn validate_sort_by(v: Option<&Bson>) -> Result<(), QueryError> {
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

/// Whether `op` is a named-argument operator of this module.
pub(super) fn handles(op: &str) -> bool {
    params(op).is_some()
}

const MS: [(&str, i64); 6] = [
    ("millisecond", 1),
    ("second", 1000),
    ("minute", 60_000),
    ("hour", 3_600_000),
    ("day", 86_400_000),
    ("week", 604_800_000),
];

fn unit_arg(op: &str, v: Option<&Bson>) -> Result<String, QueryError> {
    match v {
        Some(Bson::String(u))
            if matches!(
                u.as_str(),
                "year"
                    | "quarter"
                    | "month"
                    | "week"
                    | "day"
                    | "hour"
                    | "minute"
                    | "second"
                    | "millisecond"
            ) =>
        {
            Ok(u.clone())
        }
        Some(other) => Err(QueryError::failed_to_parse(format!(
            "{op} parameter 'unit' value cannot be recognized as a time unit: {}",
            display_value(other)
        ))),
        None => Err(QueryError::failed_to_parse(format!(
            "{op} requires 'unit' to be a string"
        ))),
    }
}

fn add_months(millis: i64, months: i64) -> i64 {
    let p = dates::date_parts(millis);
    // Clamped to ±10 million years: far beyond any date, safe for the calendar arithmetic.
    let total = (p.year * 12 + i64::from(p.month) - 1)
        .saturating_add(months)
        .clamp(-120_000_000, 120_000_000);
    let (y, m) = (total.div_euclid(12), total.rem_euclid(12) + 1);
    let dim = dates::days_in_month(y, m as u32);
    let day = i64::from(p.day).min(dim);
    let time = millis.rem_euclid(86_400_000);
    days_from_civil(y, m as u32, day as u32)
        .saturating_mul(86_400_000)
        .saturating_add(time)
}

/// `millis` plus `amount` time units (`year` … `millisecond`) in UTC, as
/// `$dateAdd` computes it; `None` for an unknown unit.
pub(crate) fn add_units_utc(millis: i64, unit: &str, amount: i64) -> Option<i64> {
    match unit {
        "year" => Some(add_months(millis, amount.saturating_mul(12))),
        "quarter" => Some(add_months(millis, amount.saturating_mul(3))),
        "month" => Some(add_months(millis, amount)),
        u => MS
            .iter()
            .find(|(n, _)| *n == u)
            .map(|(_, per)| millis.saturating_add(amount.saturating_mul(*per))),
    }
}

fn week_start(days: i64, start_of_week: u32) -> i64 {
    // 1970-01-01 was a Thursday (day_of_week 5, Sunday = 1).
    let dow = (days + 4).rem_euclid(7) + 1;
    days - (dow - i64::from(start_of_week)).rem_euclid(7)
}

fn start_of_week_arg(v: Option<&Bson>) -> Result<u32, QueryError> {
    let names = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    match v {
        None => Ok(1),
        Some(Bson::String(s)) => {
            let lower = s.to_lowercase();
            names
                .iter()
                .position(|n| *n == lower || n[..3] == lower)
                .map(|i| i as u32 + 1)
                .ok_or_else(|| {
                    QueryError::failed_to_parse(format!("unknown day of week string: {s}"))
                })
        }
        Some(other) => Err(QueryError::failed_to_parse(format!(
            "startOfWeek must be a string, found {}",
            type_name(Some(other))
        ))),
    }
}

fn int_param(op: &str, name: &str, v: &Bson) -> Result<i64, QueryError> {
    Num::from_bson(v)
        .and_then(Num::to_i64_exact)
        .ok_or_else(|| {
            QueryError::failed_to_parse(format!(
                "{op} expects integer {name}, found {}",
                type_name(Some(v))
            ))
        })
}

/// The error for date arithmetic that leaves the `i64` millisecond range.
fn out_of_range(op: &str, what: &str) -> QueryError {
    QueryError::bad_value(format!("{op}: {what} is out of the supported range"))
}

fn date_out(ms: i64) -> Option<Bson> {
    Some(Bson::DateTime(bson::DateTime::from_millis(ms)))
}

/// Evaluates a named-argument operator on its positional arguments.
pub(super) fn apply(op: &str, args: Vec<Option<Bson>>) -> Result<Option<Bson>, QueryError> {
    let a = |i: usize| args.get(i).and_then(|v| v.as_ref());
    match op {
        "$dateAdd" | "$dateSubtract" => {
            if nullish(a(0)) || nullish(a(1)) || nullish(a(2)) {
                return Ok(Some(Bson::Null));
            }
            let zone = dates::Zone::parse(a(3).cloned())?;
            let start = dates::as_millis(a(0), op)?;
            let unit = unit_arg(op, a(1))?;
            let mut amount = int_param(op, "amount", a(2).unwrap_or(&Bson::Null))?;
            if op == "$dateSubtract" {
                amount = amount.saturating_neg();
            }
            let local = zone.to_local(start);
            let per = |u: &str| {
                MS.iter()
                    .find(|(n, _)| *n == u)
                    .map(|(_, m)| *m)
                    .unwrap_or(1)
            };
            let result = match unit.as_str() {
                "year" => zone.to_utc(add_months(local, amount.saturating_mul(12))),
                "quarter" => zone.to_utc(add_months(local, amount.saturating_mul(3))),
                "month" => zone.to_utc(add_months(local, amount)),
                // Days and weeks keep the wall-clock time across offset changes.
                u @ ("week" | "day") => {
                    zone.to_utc(local.saturating_add(amount.saturating_mul(per(u))))
                }
                // Smaller units are exact durations.
                u => start.saturating_add(amount.saturating_mul(per(u))),
            };
            Ok(date_out(result))
        }
        "$dateDiff" => {
            if nullish(a(0)) || nullish(a(1)) || nullish(a(2)) {
                return Ok(Some(Bson::Null));
            }
            let zone = dates::Zone::parse(a(3).cloned())?;
            let (s_utc, e_utc) = (dates::as_millis(a(0), op)?, dates::as_millis(a(1), op)?);
            let (s, e) = (zone.to_local(s_utc), zone.to_local(e_utc));
            // Hours and smaller units count boundaries in local time, corrected
            // for a change of UTC offset between the two dates (as MongoDB does).
            let offset_change = zone.offset_at(e_utc) - zone.offset_at(s_utc);
            let unit = unit_arg(op, a(2))?;
            let (ps, pe) = (dates::date_parts(s), dates::date_parts(e));
            let months = |p: &dates::DateParts| p.year * 12 + i64::from(p.month) - 1;
            let diff = match unit.as_str() {
                "year" => pe.year - ps.year,
                "quarter" => months(&pe).div_euclid(3) - months(&ps).div_euclid(3),
                "month" => months(&pe) - months(&ps),
                "week" => {
                    let sow = start_of_week_arg(a(4))?;
                    (week_start(e.div_euclid(86_400_000), sow)
                        - week_start(s.div_euclid(86_400_000), sow))
                        / 7
                }
                "millisecond" => e_utc.saturating_sub(s_utc),
                u => {
                    let per = MS
                        .iter()
                        .find(|(n, _)| *n == u)
                        .map(|(_, m)| *m)
                        .unwrap_or(1);
                    let correction = match u {
                        "hour" => offset_change / 60,
                        "minute" => offset_change,
                        "second" => offset_change * 60,
                        _ => 0,
                    };
                    e.div_euclid(per) - s.div_euclid(per) - correction
                }
            };
            Ok(Some(Bson::Int64(diff)))
        }
        "$dateTrunc" => {
            if nullish(a(0)) || nullish(a(1)) {
                return Ok(Some(Bson::Null));
            }
            let zone = dates::Zone::parse(a(3).cloned())?;
            let local = zone.to_local(dates::as_millis(a(0), op)?);
            let unit = unit_arg(op, a(1))?;
            let bin = match a(2) {
                None => 1,
                Some(v) => match int_param(op, "binSize", v)? {
                    n if n > 0 => n,
                    _ => {
                        return Err(QueryError::failed_to_parse(format!(
                            "{op} requires 'binSize' to be greater than 0"
                        )))
                    }
                },
            };
            // Bins count from 2000-01-01T00:00:00 (a Saturday), as MongoDB does.
            const REF: i64 = 946_684_800_000;
            let truncated = match unit.as_str() {
                "year" | "quarter" | "month" => {
                    let months_per_unit = match unit.as_str() {
                        "year" => 12,
                        "quarter" => 3,
                        _ => 1,
                    };
                    let step = bin
                        .checked_mul(months_per_unit)
                        .ok_or_else(|| out_of_range(op, "'binSize'"))?;
                    let p = dates::date_parts(local);
                    let months = (p.year - 2000) * 12 + i64::from(p.month) - 1;
                    let m = months - months.rem_euclid(step);
                    let (y, mo) = (2000 + m.div_euclid(12), m.rem_euclid(12) + 1);
                    // A huge binSize can start the bin before any date an
                    // `i64` of milliseconds holds (about ±292 million years).
                    if y.unsigned_abs() > 300_000_000 {
                        return Err(out_of_range(op, "the truncated date"));
                    }
                    days_from_civil(y, mo as u32, 1).saturating_mul(86_400_000)
                }
                "week" => {
                    let sow = start_of_week_arg(a(4))?;
                    let ref_week = week_start(REF / 86_400_000, sow);
                    let days = week_start(local.div_euclid(86_400_000), sow);
                    let weeks = (days - ref_week).div_euclid(7);
                    (weeks - weeks.rem_euclid(bin))
                        .checked_mul(7)
                        .and_then(|d| d.checked_add(ref_week))
                        .ok_or_else(|| out_of_range(op, "the truncated date"))?
                        .saturating_mul(86_400_000)
                }
                u => {
                    let per = MS
                        .iter()
                        .find(|(n, _)| *n == u)
                        .map(|(_, m)| *m)
                        .unwrap_or(1)
                        .saturating_mul(bin);
                    local
                        .checked_sub(REF)
                        .and_then(|since| since.div_euclid(per).checked_mul(per))
                        .and_then(|bins| bins.checked_add(REF))
                        .ok_or_else(|| out_of_range(op, "the date"))?
                }
            };
            Ok(date_out(zone.to_utc(truncated)))
        }
        "$dateFromParts" => {
            let zone = dates::Zone::parse(a(7).cloned())?;
            let names = [
                "year",
                "month",
                "day",
                "hour",
                "minute",
                "second",
                "millisecond",
            ];
            let defaults = [1970, 1, 1, 0, 0, 0, 0];
            let mut v = [0i64; 7];
            for i in 0..7 {
                v[i] =
                    match a(i) {
                        None if i == 0 => return Err(QueryError::failed_to_parse(
                            "$dateFromParts requires either 'year' or 'isoWeekYear' to be present",
                        )),
                        None => defaults[i],
                        Some(x) if nullish(Some(x)) => return Ok(Some(Bson::Null)),
                        Some(x) => int_param(op, names[i], x)?,
                    };
            }
            // Out-of-range parts carry over into the larger units.
            let months = v[0]
                .checked_mul(12)
                .and_then(|m| m.checked_add(v[1]))
                .and_then(|m| m.checked_sub(1))
                .ok_or_else(|| out_of_range(op, "'year' and 'month'"))?
                .clamp(-1_000_000, 1_000_000);
            let (y, m) = (months.div_euclid(12), months.rem_euclid(12) + 1);
            let day = v[2]
                .checked_sub(1)
                .ok_or_else(|| out_of_range(op, "'day'"))?;
            let days = days_from_civil(y, m as u32, 1).saturating_add(day);
            let ms = days
                .saturating_mul(86_400_000)
                .saturating_add(v[3].saturating_mul(3_600_000))
                .saturating_add(v[4].saturating_mul(60_000))
                .saturating_add(v[5].saturating_mul(1000))
                .saturating_add(v[6]);
            Ok(date_out(zone.to_utc(ms)))
        }
        "$dateFromString" => {
            let on_error = args.get(3).cloned().flatten();
            let s = match a(0) {
                None | Some(Bson::Null) | Some(Bson::Undefined) => return Ok(args.get(4).cloned().flatten().or(Some(Bson::Null))),
                Some(Bson::String(s)) => s.clone(),
                Some(other) => {
                    return match on_error {
                        Some(v) => Ok(Some(v)),
                        None => Err(QueryError::new(
                            241,
                            format!("$dateFromString requires that 'dateString' be a string, found: {} with value {}", type_name(Some(other)), display_value(other)),
                        )),
                    }
                }
            };
            let zone = dates::Zone::parse(a(2).cloned())?;
            let parsed = match a(1) {
                Some(Bson::String(f)) => dates::parse_with_format(&s, f).map(|ms| zone.to_utc(ms)),
                _ => dates::parse_iso(&s, &zone),
            };
            match parsed {
                Some(ms) => Ok(date_out(ms)),
                None => match on_error {
                    Some(v) => Ok(Some(v)),
                    None => Err(QueryError::new(
                        241,
                        format!("Error parsing date string '{s}'"),
                    )),
                },
            }
        }
        "$dateToParts" => {
            if nullish(a(0)) {
                return Ok(Some(Bson::Null));
            }
            let zone = dates::Zone::parse(a(1).cloned())?;
            let ms = zone.to_local(dates::as_millis(a(0), op)?);
            let p = dates::date_parts(ms);
            let mut d = Document::new();
            if matches!(a(2), Some(Bson::Boolean(true))) {
                for name in ["$isoWeekYear", "$isoWeek", "$isoDayOfWeek"] {
                    let key = name.trim_start_matches('$');
                    let v = match dates::date_part(name, ms) {
                        Bson::Int64(y) => Bson::Int32(y as i32),
                        other => other,
                    };
                    d.insert(key, v);
                }
            } else {
                d.insert("year", p.year as i32);
                d.insert("month", p.month as i32);
                d.insert("day", p.day as i32);
            }
            d.insert("hour", p.hour as i32);
            d.insert("minute", p.minute as i32);
            d.insert("second", p.second as i32);
            d.insert("millisecond", p.millis as i32);
            Ok(Some(Bson::Document(d)))
        }
        "$replaceOne" | "$replaceAll" => {
            let mut strs = Vec::with_capacity(3);
            for (i, name) in ["input", "find", "replacement"].iter().enumerate() {
                match a(i) {
                    None | Some(Bson::Null) | Some(Bson::Undefined) => return Ok(Some(Bson::Null)),
                    Some(Bson::String(s)) => strs.push(s.as_str()),
                    Some(other) => {
                        return Err(QueryError::new(
                            51746,
                            format!(
                                "{op} requires that '{name}' be a string, found: {}",
                                display_value(other)
                            ),
                        ))
                    }
                }
            }
            let (input, find, replacement) = (strs[0], strs[1], strs[2]);
            if op == "$replaceAll" && !find.is_empty() && replacement.len() > find.len() {
                // Refuse an expansion the request could not hold before building it.
                let grows =
                    (replacement.len() - find.len()).saturating_mul(input.matches(find).count());
                crate::query::budget::ensure_room(input.len().saturating_add(grows), op)?;
            }
            let out = if op == "$replaceOne" {
                input.replacen(find, replacement, 1)
            } else if find.is_empty() {
                input.to_owned()
            } else {
                input.replace(find, replacement)
            };
            Ok(Some(Bson::String(out)))
        }
        "$sortArray" => match a(0) {
            None | Some(Bson::Null) | Some(Bson::Undefined) => Ok(Some(Bson::Null)),
            Some(Bson::Array(items)) => {
                let mut items = items.clone();
                match a(1) {
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
        },
        "$zip" => {
            let Some(Bson::Array(inputs)) = a(0) else {
                if nullish(a(0)) {
                    return Ok(Some(Bson::Null));
                }
                return Err(QueryError::new(
                    34460,
                    format!(
                        "inputs must be an array of expressions, found {}",
                        type_name(a(0))
                    ),
                ));
            };
            let mut arrays = Vec::with_capacity(inputs.len());
            for i in inputs {
                match i {
                    Bson::Null | Bson::Undefined => return Ok(Some(Bson::Null)),
                    Bson::Array(x) => arrays.push(x.clone()),
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
            let longest = matches!(a(1), Some(Bson::Boolean(true)));
            let defaults = match a(2) {
                Some(Bson::Array(d)) => d.clone(),
                _ => Vec::new(),
            };
            let len = if longest {
                arrays.iter().map(Vec::len).max().unwrap_or(0)
            } else {
                arrays.iter().map(Vec::len).min().unwrap_or(0)
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
        "$firstN" | "$lastN" | "$maxN" | "$minN" => {
            let n = match a(0).and_then(Num::from_bson).and_then(Num::to_i64_exact) {
                Some(n) if n > 0 => n as usize,
                _ => {
                    return Err(QueryError::new(
                        5787908,
                        format!("'n' must be a positive integer for {op}"),
                    ))
                }
            };
            match a(1) {
                None | Some(Bson::Null) | Some(Bson::Undefined) => Ok(Some(Bson::Null)),
                Some(Bson::Array(items)) => {
                    let out: Vec<Bson> = match op {
                        "$firstN" => items.iter().take(n).cloned().collect(),
                        "$lastN" => items
                            .iter()
                            .skip(items.len().saturating_sub(n))
                            .cloned()
                            .collect(),
                        _ => {
                            let mut v: Vec<Bson> = items
                                .iter()
                                .filter(|x| !nullish(Some(x)))
                                .cloned()
                                .collect();
                            v.sort_by(|x, y| {
                                let o = compare_values(x, y);
                                if op == "$maxN" {
                                    o.reverse()
                                } else {
                                    o
                                }
                            });
                            v.truncate(n);
                            v
                        }
                    };
                    Ok(Some(Bson::Array(out)))
                }
                Some(other) => Err(QueryError::new(
                    5788200,
                    format!(
                        "Input must be an array for {op}, found {}",
                        type_name(Some(other))
                    ),
                )),
            }
        }
        "$setField" | "$unsetField" => {
            let Some(Bson::String(field)) = a(0) else {
                return Err(QueryError::new(
                    4161106,
                    format!("{op} requires 'field' to evaluate to type String"),
                ));
            };
            match a(1) {
                None | Some(Bson::Null) | Some(Bson::Undefined) => Ok(Some(Bson::Null)),
                Some(Bson::Document(d)) => {
                    let mut d = d.clone();
                    match (op, args.get(2).cloned().flatten()) {
                        ("$setField", Some(v)) => {
                            d.insert(field.clone(), v);
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
                        "{op} requires 'input' to evaluate to type Object, found {}",
                        type_name(Some(other))
                    ),
                )),
            }
        }
        other => Err(QueryError::new(
            168,
            format!("Unrecognized expression '{other}'"),
        )),
    }
}
