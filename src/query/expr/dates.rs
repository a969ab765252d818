//! Date arithmetic for the date expression operators (UTC, fixed offsets and
//! named IANA time zones from the bundled time zone database).

use bson::Bson;

use super::type_name;
use crate::query::number::Num;
use crate::query::QueryError;

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month 1..=12, day) → days since 1970-01-01, proleptic Gregorian.
pub(super) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Number of days in a month.
pub(super) fn days_in_month(y: i64, m: u32) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Parses ISO-8601 dates such as `2024-02-29`, `2024-02-29T13:45:30.123Z`
/// or `2024-02-29 13:45:30+01:00`; without a zone in the string, `zone` applies.
pub(super) fn parse_iso(s: &str, zone: &Zone) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !(1..=12).contains(&mo)
        || d < 1
        || d > days_in_month(y, mo as u32)
    {
        return None;
    }
    let mut ms = days_from_civil(y, mo as u32, d as u32) * 86_400_000;
    let mut i = 10;
    let mut offset = None;
    if matches!(b.get(i), Some(b'T' | b' ')) {
        let (h, mi) = (num(i + 1, 2)?, num(i + 4, 2)?);
        if b.get(i + 3) != Some(&b':') || h > 23 || mi > 59 {
            return None;
        }
        ms += h * 3_600_000 + mi * 60_000;
        i += 6;
        if b.get(i) == Some(&b':') {
            let sec = num(i + 1, 2)?;
            if sec > 59 {
                return None;
            }
            ms += sec * 1000;
            i += 3;
            if b.get(i) == Some(&b'.') {
                let start = i + 1;
                let mut end = start;
                while b.get(end).is_some_and(u8::is_ascii_digit) {
                    end += 1;
                }
                if end == start {
                    return None;
                }
                let digits = std::str::from_utf8(b.get(start..end.min(start + 3))?).ok()?;
                let frac: i64 = digits.parse().ok()?;
                ms += frac * 10i64.pow(3 - digits.len() as u32);
                i = end;
            }
        }
        match b.get(i) {
            None => {}
            Some(b'Z') if i + 1 == b.len() => offset = Some(0),
            Some(b'+' | b'-') => {
                let rest = std::str::from_utf8(b.get(i..)?).ok()?;
                offset = Some(fixed_offset(rest).ok()?);
            }
            _ => return None,
        }
    } else if i != b.len() {
        return None;
    }
    Some(match offset {
        Some(o) => ms - o * 60_000,
        None => zone.to_utc(ms),
    })
}

/// Parses `s` with `$dateFromString` format specifiers (`%Y %m %d %H %M %S %L %z %Z %%`).
pub(super) fn parse_with_format(s: &str, format: &str) -> Option<i64> {
    let (mut y, mut mo, mut d, mut h, mut mi, mut sec, mut ms, mut off) =
        (1970i64, 1i64, 1i64, 0i64, 0i64, 0i64, 0i64, 0i64);
    let input: Vec<char> = s.chars().collect();
    let mut pos = 0usize;
    let take = |n: usize, pos: &mut usize| -> Option<i64> {
        let part: String = input.get(*pos..*pos + n)?.iter().collect();
        if !part.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *pos += n;
        part.parse().ok()
    };
    let mut fmt = format.chars();
    while let Some(c) = fmt.next() {
        if c != '%' {
            if input.get(pos) != Some(&c) {
                return None;
            }
            pos += 1;
            continue;
        }
        match fmt.next()? {
            'Y' => y = take(4, &mut pos)?,
            'm' => mo = take(2, &mut pos)?,
            'd' => d = take(2, &mut pos)?,
            'H' => h = take(2, &mut pos)?,
            'M' => mi = take(2, &mut pos)?,
            'S' => sec = take(2, &mut pos)?,
            'L' => ms = take(3, &mut pos)?,
            'z' => {
                let sign = match s.chars().nth(pos)? {
                    '+' => 1,
                    '-' => -1,
                    _ => return None,
                };
                pos += 1;
                let hh = take(2, &mut pos)?;
                let mm = take(2, &mut pos)?;
                off = sign * (hh * 60 + mm);
            }
            'Z' => {
                let start = pos;
                if matches!(input.get(pos), Some('+' | '-')) {
                    pos += 1;
                }
                while input.get(pos).is_some_and(char::is_ascii_digit) {
                    pos += 1;
                }
                let text: String = input.get(start..pos)?.iter().collect();
                off = text.parse().ok()?;
            }
            '%' => {
                if input.get(pos) != Some(&'%') {
                    return None;
                }
                pos += 1;
            }
            _ => return None,
        }
    }
    if pos != input.len()
        || !(1..=12).contains(&mo)
        || d < 1
        || d > days_in_month(y, mo as u32)
        || h > 23
        || mi > 59
        || sec > 59
    {
        return None;
    }
    Some(
        days_from_civil(y, mo as u32, d as u32) * 86_400_000
            + h * 3_600_000
            + mi * 60_000
            + sec * 1000
            + ms
            - off * 60_000,
    )
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Broken-down UTC time of a millisecond timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateParts {
    /// Year.
    pub year: i64,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of month, 1..=31.
    pub day: u32,
    /// Hour, 0..=23.
    pub hour: u32,
    /// Minute.
    pub minute: u32,
    /// Second.
    pub second: u32,
    /// Millisecond.
    pub millis: u32,
    /// Day of week, 1 (Sunday) ..= 7 (Saturday).
    pub day_of_week: u32,
    /// Day of year, 1..=366.
    pub day_of_year: u32,
}

/// Splits milliseconds since the epoch into calendar fields.
pub(crate) fn date_parts(millis: i64) -> DateParts {
    let days = millis.div_euclid(86_400_000);
    let ms = millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let leap = u32::from(is_leap(year) && month > 2);
    DateParts {
        year,
        month,
        day,
        hour: (ms / 3_600_000) as u32,
        minute: (ms / 60_000 % 60) as u32,
        second: (ms / 1000 % 60) as u32,
        millis: (ms % 1000) as u32,
        day_of_week: ((days + 4).rem_euclid(7) + 1) as u32,
        day_of_year: cum[(month - 1) as usize] + day + leap,
    }
}

/// ISO-8601 week-numbering (year, week, weekday 1=Monday).
fn iso_week(p: &DateParts, millis: i64) -> (i64, u32, u32) {
    let wd = (p.day_of_week + 5) % 7 + 1;
    let week = (p.day_of_year as i64 - wd as i64 + 10) / 7;
    if week < 1 {
        let prev = date_parts(millis - i64::from(p.day_of_year) * 86_400_000);
        let (y, w, _) = iso_week(&prev, millis - i64::from(p.day_of_year) * 86_400_000);
        return (y, w, wd);
    }
    let days_in_year = if is_leap(p.year) { 366 } else { 365 };
    if week == 53 && (p.day_of_year as i64 - wd as i64) > days_in_year - 4 {
        return (p.year + 1, 1, wd);
    }
    (p.year, week as u32, wd)
}

/// A calendar field an operator extracts (`$year`, `$month`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DatePart {
    /// `$year`.
    Year,
    /// `$month`.
    Month,
    /// `$dayOfMonth`.
    DayOfMonth,
    /// `$hour`.
    Hour,
    /// `$minute`.
    Minute,
    /// `$second`.
    Second,
    /// `$millisecond`.
    Millisecond,
    /// `$dayOfWeek`.
    DayOfWeek,
    /// `$dayOfYear`.
    DayOfYear,
    /// `$week`.
    Week,
    /// `$isoWeek`.
    IsoWeek,
    /// `$isoWeekYear`.
    IsoWeekYear,
    /// `$isoDayOfWeek`.
    IsoDayOfWeek,
}

impl DatePart {
    /// The part extracted by the operator called `name`.
    pub(super) fn lookup(name: &str) -> Option<DatePart> {
        Some(match name {
            "$year" => DatePart::Year,
            "$month" => DatePart::Month,
            "$dayOfMonth" => DatePart::DayOfMonth,
            "$hour" => DatePart::Hour,
            "$minute" => DatePart::Minute,
            "$second" => DatePart::Second,
            "$millisecond" => DatePart::Millisecond,
            "$dayOfWeek" => DatePart::DayOfWeek,
            "$dayOfYear" => DatePart::DayOfYear,
            "$week" => DatePart::Week,
            "$isoWeek" => DatePart::IsoWeek,
            "$isoWeekYear" => DatePart::IsoWeekYear,
            "$isoDayOfWeek" => DatePart::IsoDayOfWeek,
            _ => return None,
        })
    }

    /// The operator's name, `$` included.
    pub(super) fn name(self) -> &'static str {
        match self {
            DatePart::Year => "$year",
            DatePart::Month => "$month",
            DatePart::DayOfMonth => "$dayOfMonth",
            DatePart::Hour => "$hour",
            DatePart::Minute => "$minute",
            DatePart::Second => "$second",
            DatePart::Millisecond => "$millisecond",
            DatePart::DayOfWeek => "$dayOfWeek",
            DatePart::DayOfYear => "$dayOfYear",
            DatePart::Week => "$week",
            DatePart::IsoWeek => "$isoWeek",
            DatePart::IsoWeekYear => "$isoWeekYear",
            DatePart::IsoDayOfWeek => "$isoDayOfWeek",
        }
    }
}

/// The value of `part` for a (timezone-adjusted) timestamp.
pub(super) fn date_part(part: DatePart, millis: i64) -> Bson {
    let p = date_parts(millis);
    let v = match part {
        DatePart::Year => return Bson::Int32(p.year as i32),
        DatePart::Month => p.month,
        DatePart::DayOfMonth => p.day,
        DatePart::Hour => p.hour,
        DatePart::Minute => p.minute,
        DatePart::Second => p.second,
        DatePart::Millisecond => p.millis,
        DatePart::DayOfWeek => p.day_of_week,
        DatePart::DayOfYear => p.day_of_year,
        DatePart::Week => (p.day_of_year + 6 - (p.day_of_week - 1)) / 7,
        DatePart::IsoWeek => iso_week(&p, millis).1,
        DatePart::IsoWeekYear => return Bson::Int64(iso_week(&p, millis).0),
        DatePart::IsoDayOfWeek => iso_week(&p, millis).2,
    };
    Bson::Int32(v as i32)
}

/// Formats with `$dateToString` specifiers (`%Y %m %d %H %M %S %L %j %w %u %U %V %G %z %Z %%`).
/// `millis` is already shifted by `offset_minutes`.
pub(crate) fn format_date(
    millis: i64,
    format: &str,
    offset_minutes: i64,
) -> Result<String, QueryError> {
    let p = date_parts(millis);
    let mut out = String::with_capacity(format.len() + 8);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            return Err(QueryError::new(
                18535,
                "Unmatched '%' at end of format string",
            ));
        };
        match spec {
            'Y' => out.push_str(&format!("{:04}", p.year)),
            'm' => out.push_str(&format!("{:02}", p.month)),
            'd' => out.push_str(&format!("{:02}", p.day)),
            'H' => out.push_str(&format!("{:02}", p.hour)),
            'M' => out.push_str(&format!("{:02}", p.minute)),
            'S' => out.push_str(&format!("{:02}", p.second)),
            'L' => out.push_str(&format!("{:03}", p.millis)),
            'j' => out.push_str(&format!("{:03}", p.day_of_year)),
            'w' => out.push_str(&p.day_of_week.to_string()),
            'u' => out.push_str(&iso_week(&p, millis).2.to_string()),
            'U' => out.push_str(&format!(
                "{:02}",
                (p.day_of_year + 6 - (p.day_of_week - 1)) / 7
            )),
            'V' => out.push_str(&format!("{:02}", iso_week(&p, millis).1)),
            'G' => out.push_str(&format!("{:04}", iso_week(&p, millis).0)),
            'z' => {
                let sign = if offset_minutes < 0 { '-' } else { '+' };
                let m = offset_minutes.abs();
                out.push_str(&format!("{sign}{:02}{:02}", m / 60, m % 60));
            }
            'Z' => out.push_str(&offset_minutes.to_string()),
            '%' => out.push('%'),
            other => {
                return Err(QueryError::new(
                    18536,
                    format!("Invalid format character '%{other}' in format string"),
                ))
            }
        }
    }
    Ok(out)
}

/// Milliseconds of a date-like value (date, timestamp, ObjectId).
pub(super) fn as_millis(v: Option<&Bson>, _op: &str) -> Result<i64, QueryError> {
    match v {
        Some(Bson::DateTime(d)) => Ok(d.timestamp_millis()),
        Some(Bson::Timestamp(t)) => Ok(i64::from(t.time) * 1000),
        Some(Bson::ObjectId(o)) => Ok(o.timestamp().timestamp_millis()),
        other => Err(QueryError::new(
            16006,
            format!("can't convert from BSON type {} to Date", type_name(other)),
        )),
    }
}

/// The `timezone` argument of a date operator: UTC, a fixed offset or a
/// named IANA zone whose offset depends on the instant.
#[derive(Debug, Clone)]
pub(super) enum Zone {
    /// A fixed offset in minutes east of UTC (UTC itself is `Fixed(0)`).
    Fixed(i64),
    /// A zone of the bundled time zone database, such as `Europe/Paris`.
    Named(jiff::tz::TimeZone),
}

impl Zone {
    /// UTC.
    pub(super) const UTC: Zone = Zone::Fixed(0);

    /// Parses a `timezone` argument: missing or null is UTC; otherwise
    /// `UTC`, `Z`, `±HH:MM`, `±HHMM`, `±HH` or an Olson identifier.
    pub(super) fn parse(tz: Option<Bson>) -> Result<Zone, QueryError> {
        let s = match tz {
            None | Some(Bson::Null) => return Ok(Zone::UTC),
            Some(Bson::String(s)) => s,
            Some(other) => {
                return Err(QueryError::new(
                    40517,
                    format!(
                        "timezone must evaluate to a string, found {}",
                        type_name(Some(&other))
                    ),
                ))
            }
        };
        if matches!(s.as_str(), "UTC" | "GMT" | "Z" | "Etc/UTC" | "Etc/GMT") {
            return Ok(Zone::UTC);
        }
        if s.starts_with(['+', '-']) {
            return fixed_offset(&s).map(Zone::Fixed);
        }
        // Identifiers are ASCII and short; anything else is not worth a lookup.
        let plausible = s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'));
        match plausible
            .then(|| jiff::tz::TimeZone::get(&s).ok())
            .flatten()
        {
            Some(tz) => Ok(Zone::Named(tz)),
            None => Err(unrecognized(&s)),
        }
    }

    /// The offset from UTC, in minutes, at the instant `utc_millis`.
    pub(super) fn offset_at(&self, utc_millis: i64) -> i64 {
        match self {
            Zone::Fixed(m) => *m,
            Zone::Named(tz) => {
                let clamped = utc_millis.clamp(MIN_TZ_MILLIS, MAX_TZ_MILLIS);
                match jiff::Timestamp::from_millisecond(clamped) {
                    Ok(ts) => i64::from(tz.to_offset(ts).seconds()).div_euclid(60),
                    Err(_) => 0,
                }
            }
        }
    }

    /// The local wall-clock time (as milliseconds) of the instant `utc_millis`.
    pub(super) fn to_local(&self, utc_millis: i64) -> i64 {
        utc_millis.saturating_add(self.offset_at(utc_millis).saturating_mul(60_000))
    }

    /// The instant of a local wall-clock time. In a gap or an overlap the
    /// offset in force just before the transition applies (as MongoDB's
    /// time library does): 02:30 in a spring-forward gap reads as 03:30 of
    /// the new offset, and an ambiguous 02:30 in autumn is the first one.
    pub(super) fn to_utc(&self, local_millis: i64) -> i64 {
        match self {
            Zone::Fixed(m) => local_millis.saturating_sub(m.saturating_mul(60_000)),
            Zone::Named(_) => {
                // Real zones change offset at most once within a day.
                const DAY: i64 = 86_400_000;
                let before = self.offset_at(local_millis.saturating_sub(DAY));
                let after = self.offset_at(local_millis.saturating_add(DAY));
                let at = |offset: i64| local_millis.saturating_sub(offset * 60_000);
                let valid = |offset: i64| self.offset_at(at(offset)) == offset;
                if valid(before) || !valid(after) {
                    at(before)
                } else {
                    at(after)
                }
            }
        }
    }
}

/// The range of instants handed to the time zone database (years -9999..9999).
const MIN_TZ_MILLIS: i64 = -377_705_116_800_000;
const MAX_TZ_MILLIS: i64 = 253_402_300_799_999;

fn unrecognized(s: &str) -> QueryError {
    QueryError::new(40485, format!("unrecognized time zone identifier: \"{s}\""))
}

/// A fixed offset `±HH:MM`, `±HHMM` or `±HH`, in minutes.
fn fixed_offset(s: &str) -> Result<i64, QueryError> {
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(unrecognized(s)),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    let parse = |x: &str| x.parse::<i64>().ok();
    let ascii = digits.bytes().all(|b| b.is_ascii_digit());
    let (h, m) = match digits.len() {
        _ if !ascii => (None, None),
        2 => (parse(&digits), Some(0)),
        4 => (parse(&digits[..2]), parse(&digits[2..])),
        _ => (None, None),
    };
    match (h, m) {
        (Some(h), Some(m)) if h <= 99 && m < 60 => Ok(sign * (h * 60 + m)),
        _ => Err(unrecognized(s)),
    }
}

#[allow(dead_code)]
fn num_millis(v: &Bson) -> Option<i64> {
    Num::from_bson(v).and_then(Num::to_i64_trunc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        // 2024-02-29T13:45:30.123Z, a Thursday.
        let ms = 1_709_214_330_123;
        let p = date_parts(ms);
        assert_eq!(
            (p.year, p.month, p.day, p.hour, p.minute, p.second, p.millis),
            (2024, 2, 29, 13, 45, 30, 123)
        );
        assert_eq!((p.day_of_week, p.day_of_year), (5, 60));
        assert_eq!(
            format_date(ms, "%Y-%m-%dT%H:%M:%S.%LZ", 0).unwrap(),
            "2024-02-29T13:45:30.123Z"
        );
        assert_eq!(format_date(-1, "%Y-%m-%d %H", 0).unwrap(), "1969-12-31 23");
        assert_eq!(date_part(DatePart::IsoWeek, ms), Bson::Int32(9));
        // 2021-01-01 is in ISO week 53 of 2020.
        assert_eq!(
            date_part(DatePart::IsoWeek, 1_609_459_200_000),
            Bson::Int32(53)
        );
        let zone = |s: &str| Zone::parse(Some(Bson::String(s.into()))).unwrap();
        assert_eq!(zone("+05:30").offset_at(0), 330);
        // Paris: UTC+1 in winter, UTC+2 in summer.
        let paris = zone("Europe/Paris");
        assert_eq!(paris.offset_at(1_704_067_200_000), 60);
        assert_eq!(paris.offset_at(1_719_792_000_000), 120);
        assert_eq!(
            paris.to_utc(paris.to_local(1_719_792_000_000)),
            1_719_792_000_000
        );
        let ny = zone("America/New_York");
        assert_eq!(ny.offset_at(1_704_067_200_000), -300);
        assert!(
            Zone::parse(Some(Bson::String("Mars/Olympus".into()))).is_err_and(|e| e.code == 40485)
        );
        // A wall-clock time with no zone in the string is read in `zone`.
        assert_eq!(
            parse_iso("2024-07-01T02:00:00", &paris),
            Some(1_719_792_000_000)
        );
        assert_eq!(
            parse_iso("2024-07-01T00:00:00Z", &paris),
            Some(1_719_792_000_000)
        );
        // 2018-10-28 02:02 happened twice in Paris: the first one (+02:00).
        assert_eq!(
            parse_iso("2018-10-28T02:02:00", &paris),
            parse_iso("2018-10-28T00:02:00Z", &paris)
        );
        // 2018-03-25 02:30 never happened: read with the offset before (+01:00).
        assert_eq!(
            parse_iso("2018-03-25T02:30:00", &paris),
            parse_iso("2018-03-25T01:30:00Z", &paris)
        );
    }
}
