//! Date operators with named arguments: `$dateAdd`, `$dateSubtract`,
//! `$dateDiff`, `$dateTrunc`, `$dateFromParts`, `$dateFromString` and
//! `$dateToParts` (calendar arithmetic in `dates`).

use bson::{Bson, Document};

use super::dates::{self, days_from_civil, DatePart};
use super::{arg, nullish, type_name, Op, Res, Val};
use crate::query::number::Num;
use crate::query::{display_value, QueryError};

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

/// `$dateAdd` and `$dateSubtract` (`startDate`, `unit`, `amount`, `timezone`).
pub(super) fn add(code: Op, args: &[Val]) -> Res {
    let op = code.name();
    let a = |i: usize| arg(args, i);
    if nullish(a(0)) || nullish(a(1)) || nullish(a(2)) {
        return Ok(Some(Bson::Null));
    }
    let zone = dates::Zone::parse(a(3).cloned())?;
    let start = dates::as_millis(a(0), op)?;
    let unit = unit_arg(op, a(1))?;
    let mut amount = int_param(op, "amount", a(2).unwrap_or(&Bson::Null))?;
    if code == Op::DateSubtract {
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
        u @ ("week" | "day") => zone.to_utc(local.saturating_add(amount.saturating_mul(per(u)))),
        // Smaller units are exact durations.
        u => start.saturating_add(amount.saturating_mul(per(u))),
    };
    Ok(date_out(result))
}

/// `$dateDiff` (`startDate`, `endDate`, `unit`, `timezone`, `startOfWeek`).
pub(super) fn diff(code: Op, args: &[Val]) -> Res {
    let op = code.name();
    let a = |i: usize| arg(args, i);
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
            (week_start(e.div_euclid(86_400_000), sow) - week_start(s.div_euclid(86_400_000), sow))
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

/// `$dateTrunc` (`date`, `unit`, `binSize`, `timezone`, `startOfWeek`).
pub(super) fn trunc(code: Op, args: &[Val]) -> Res {
    let op = code.name();
    let a = |i: usize| arg(args, i);
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

/// `$dateFromParts` (`year` … `millisecond`, `timezone`).
pub(super) fn from_parts(code: Op, args: &[Val]) -> Res {
    let op = code.name();
    let a = |i: usize| arg(args, i);
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
        v[i] = match a(i) {
            None if i == 0 => {
                return Err(QueryError::failed_to_parse(
                    "$dateFromParts requires either 'year' or 'isoWeekYear' to be present",
                ))
            }
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

/// `$dateFromString` (`dateString`, `format`, `timezone`, `onError`, `onNull`).
pub(super) fn from_string(_: Op, args: &[Val]) -> Res {
    let a = |i: usize| arg(args, i);
    let on_error = a(3).cloned();
    let s = match a(0) {
            None | Some(Bson::Null) | Some(Bson::Undefined) => return Ok(a(4).cloned().or(Some(Bson::Null))),
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

/// `$dateToParts` (`date`, `timezone`, `iso8601`).
pub(super) fn to_parts(code: Op, args: &[Val]) -> Res {
    let op = code.name();
    let a = |i: usize| arg(args, i);
    if nullish(a(0)) {
        return Ok(Some(Bson::Null));
    }
    let zone = dates::Zone::parse(a(1).cloned())?;
    let ms = zone.to_local(dates::as_millis(a(0), op)?);
    let p = dates::date_parts(ms);
    let mut d = Document::new();
    if matches!(a(2), Some(Bson::Boolean(true))) {
        for (key, part) in [
            ("isoWeekYear", DatePart::IsoWeekYear),
            ("isoWeek", DatePart::IsoWeek),
            ("isoDayOfWeek", DatePart::IsoDayOfWeek),
        ] {
            let v = match dates::date_part(part, ms) {
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
