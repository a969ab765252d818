//! String operators: `$concat`, case, lengths, substrings, `$split`,
//! `$strcasecmp`, trimming, `$indexOfCP`/`$indexOfBytes`, the regular
//! expression operators and `$replaceOne`/`$replaceAll`.

use bson::{Bson, Document};

use super::convert::to_string_value;
use super::{arg, int_arg, null, nullish, too_large, type_name, Op, Res, Val, MAX_VALUE_BYTES};
use crate::query::number::Num;
use crate::query::pattern::Pattern;
use crate::query::{display_value, QueryError};

/// `$concat`.
pub(super) fn concat(op: Op, args: &[Val]) -> Res {
    let mut out = String::new();
    for v in args {
        match v {
            None | Some(Bson::Null) | Some(Bson::Undefined) => return null(),
            Some(Bson::String(s)) => {
                if out.len().saturating_add(s.len()) > MAX_VALUE_BYTES {
                    return Err(too_large(op.name()));
                }
                out.push_str(s)
            }
            Some(other) => {
                return Err(QueryError::new(
                    16702,
                    format!(
                        "$concat only supports strings, not {}",
                        type_name(Some(other))
                    ),
                ))
            }
        }
    }
    Ok(Some(Bson::String(out)))
}

/// The string form of an argument of `$toUpper`, `$substr`, …: empty for
/// null or missing.
fn string_arg(v: Option<&Bson>) -> Result<String, QueryError> {
    match v {
        None | Some(Bson::Null) | Some(Bson::Undefined) => Ok(String::new()),
        Some(v) => to_string_value(v).ok_or_else(|| {
            QueryError::new(
                16007,
                format!(
                    "can't convert from BSON type {} to String",
                    type_name(Some(v))
                ),
            )
        }),
    }
}

/// `$toUpper` and `$toLower`.
pub(super) fn change_case(op: Op, args: &[Val]) -> Res {
    let s = string_arg(arg(args, 0))?;
    // MongoDB changes the case of ASCII letters only.
    Ok(Some(Bson::String(if op == Op::ToUpper {
        s.to_ascii_uppercase()
    } else {
        s.to_ascii_lowercase()
    })))
}

/// `$strLenCP` and `$strLenBytes`.
pub(super) fn length(op: Op, args: &[Val]) -> Res {
    match arg(args, 0) {
        Some(Bson::String(s)) => Ok(Some(Bson::Int32(if op == Op::StrLenCP {
            s.chars().count()
        } else {
            s.len()
        } as i32))),
        other => Err(QueryError::new(
            34471,
            format!(
                "{} requires a string argument, found: {}",
                op.name(),
                type_name(other)
            ),
        )),
    }
}

/// `$substrCP` (code points), `$substr` and `$substrBytes` (bytes).
pub(super) fn substr(op: Op, args: &[Val]) -> Res {
    let name = op.name();
    let s = match arg(args, 0) {
        None | Some(Bson::Null) | Some(Bson::Undefined) => {
            return Ok(Some(Bson::String(String::new())))
        }
        v => string_arg(v)?,
    };
    let start = arg(args, 1)
        .and_then(Num::from_bson)
        .and_then(Num::to_i64_trunc)
        .ok_or_else(|| {
            QueryError::new(
                34450,
                format!(
                    "{name}: starting index must be a numeric type (is BSON type {})",
                    type_name(arg(args, 1))
                ),
            )
        })?;
    let len = arg(args, 2)
        .and_then(Num::from_bson)
        .and_then(Num::to_i64_trunc)
        .ok_or_else(|| {
            QueryError::new(
                34452,
                format!(
                    "{name}: length must be a numeric type (is BSON type {})",
                    type_name(arg(args, 2))
                ),
            )
        })?;
    if op == Op::SubstrCP {
        if start < 0 {
            return Err(QueryError::new(
                34455,
                "$substrCP: the starting index must be nonnegative integer.",
            ));
        }
        let len = if len < 0 { usize::MAX } else { len as usize };
        return Ok(Some(Bson::String(
            s.chars().skip(start as usize).take(len).collect(),
        )));
    }
    let bytes = s.as_bytes();
    let start = (start.max(0) as usize).min(bytes.len());
    let end = if len < 0 {
        bytes.len()
    } else {
        start.saturating_add(len as usize).min(bytes.len())
    };
    match std::str::from_utf8(&bytes[start..end]) {
        Ok(sub) => Ok(Some(Bson::String(sub.to_string()))),
        Err(_) => Err(QueryError::new(
            28656,
            format!("{name}: Invalid range, starting index is a UTF-8 continuation byte."),
        )),
    }
}

/// `$split`.
pub(super) fn split(_: Op, args: &[Val]) -> Res {
    match (arg(args, 0), arg(args, 1)) {
        (x, _) if nullish(x) => null(),
        (Some(Bson::String(s)), Some(Bson::String(sep))) => {
            if sep.is_empty() {
                return Err(QueryError::new(
                    40087,
                    "$split requires a non-empty separator",
                ));
            }
            Ok(Some(Bson::Array(
                s.split(sep.as_str())
                    .map(|p| Bson::String(p.to_string()))
                    .collect(),
            )))
        }
        (Some(Bson::String(_)), other) => Err(QueryError::new(
            40086,
            format!("$split requires an expression that evaluates to a string as a second argument, found: {}", type_name(other)),
        )),
        (other, _) => Err(QueryError::new(
            40085,
            format!("$split requires an expression that evaluates to a string as a first argument, found: {}", type_name(other)),
        )),
    }
}

/// `$strcasecmp` (ASCII case folding).
pub(super) fn strcasecmp(_: Op, args: &[Val]) -> Res {
    let s = |v: Option<&Bson>| {
        v.and_then(to_string_value)
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    Ok(Some(Bson::Int32(
        match s(arg(args, 0)).cmp(&s(arg(args, 1))) {
            std::cmp::Ordering::Less => -1,
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Greater => 1,
        },
    )))
}

/// What `$trim` removes without `chars`.
const WHITESPACE: &[char] = &[' ', '\t', '\n', '\r', '\u{0b}', '\u{0c}', '\0', '\u{a0}'];

/// `$trim`, `$ltrim` and `$rtrim` (`input`, `chars`).
pub(super) fn trim(op: Op, args: &[Val]) -> Res {
    let name = op.name();
    let input = match arg(args, 0) {
        x if nullish(x) => return null(),
        Some(Bson::String(s)) => s,
        other => {
            return Err(QueryError::new(
                50699,
                format!(
                    "{name} requires its input to be a string, got {} instead.",
                    type_name(other)
                ),
            ))
        }
    };
    let given: Vec<char>;
    let chars: &[char] = match arg(args, 1) {
        None | Some(Bson::Null) => WHITESPACE,
        Some(Bson::String(c)) => {
            given = c.chars().collect();
            &given
        }
        other => {
            return Err(QueryError::new(
                50700,
                format!(
                    "{name} requires 'chars' to be a string, got {} instead.",
                    type_name(other)
                ),
            ))
        }
    };
    let pred = |c: char| chars.contains(&c);
    Ok(Some(Bson::String(
        match op {
            Op::Trim => input.trim_matches(pred),
            Op::Ltrim => input.trim_start_matches(pred),
            _ => input.trim_end_matches(pred),
        }
        .to_string(),
    )))
}

/// `$indexOfCP` and `$indexOfBytes` (both count code points here).
pub(super) fn index_of(op: Op, args: &[Val]) -> Res {
    let name = op.name();
    let hay = match arg(args, 0) {
        x if nullish(x) => return null(),
        Some(Bson::String(s)) => s,
        other => {
            return Err(QueryError::new(
                40091,
                format!(
                    "{name} requires a string as the first argument, found: {}",
                    type_name(other)
                ),
            ))
        }
    };
    let Some(Bson::String(needle)) = arg(args, 1) else {
        return Err(QueryError::new(
            40092,
            format!(
                "{name} requires a string as the second argument, found: {}",
                type_name(arg(args, 1))
            ),
        ));
    };
    let chars: Vec<char> = hay.chars().collect();
    let start = arg(args, 2)
        .map(|v| int_arg(name, "starting index", v))
        .transpose()?
        .unwrap_or(0)
        .max(0) as usize;
    let end = arg(args, 3)
        .map(|v| int_arg(name, "ending index", v))
        .transpose()?
        .map(|e| e.max(0) as usize)
        .unwrap_or(chars.len())
        .min(chars.len());
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

/// `$regexMatch`, `$regexFind` and `$regexFindAll` (`input`, `regex`, `options`).
pub(super) fn regex(op: Op, args: &[Val]) -> Res {
    let Some(input) = regex_input(op, arg(args, 0))? else {
        return Ok(Some(regex_on_null(op)));
    };
    let pattern = regex_pattern(op, arg(args, 1), arg(args, 2))?;
    Ok(Some(regex_apply(op, input, &pattern)))
}

/// The result of a regular expression operator on a null or missing input.
pub(super) fn regex_on_null(op: Op) -> Bson {
    match op {
        Op::RegexMatch => Bson::Boolean(false),
        Op::RegexFind => Bson::Null,
        _ => Bson::Array(vec![]),
    }
}

/// The `input` of a regular expression operator: `None` when null or missing.
pub(super) fn regex_input(op: Op, v: Option<&Bson>) -> Result<Option<&str>, QueryError> {
    match v {
        x if nullish(x) => Ok(None),
        Some(Bson::String(s)) => Ok(Some(s)),
        other => Err(QueryError::new(
            51104,
            format!(
                "{} needs 'input' to be of type string, found {}",
                op.name(),
                type_name(other)
            ),
        )),
    }
}

/// Compiles the `regex` (a string or a regex value) and `options` of a
/// regular expression operator; `options` override a regex value's own.
pub(super) fn regex_pattern(
    op: Op,
    regex: Option<&Bson>,
    options: Option<&Bson>,
) -> Result<Pattern, QueryError> {
    let opts = match options {
        Some(Bson::String(o)) => o.as_str(),
        _ => "",
    };
    match regex {
        Some(Bson::String(p)) => Pattern::new(p, opts),
        Some(Bson::RegularExpression(r)) => {
            Pattern::new(&r.pattern, if opts.is_empty() { &r.options } else { opts })
        }
        other => Err(QueryError::new(
            51105,
            format!(
                "{} needs 'regex' to be of type string or regex, found {}",
                op.name(),
                type_name(other)
            ),
        )),
    }
}

/// A regular expression operator applied to a string.
pub(super) fn regex_apply(op: Op, input: &str, pattern: &Pattern) -> Bson {
    let found = |m: regex::Captures| {
        let whole = m.get(0);
        let mut d = Document::new();
        d.insert("match", whole.map(|w| w.as_str()).unwrap_or_default());
        d.insert(
            "idx",
            whole
                .map(|w| input[..w.start()].chars().count() as i32)
                .unwrap_or(0),
        );
        d.insert(
            "captures",
            m.iter()
                .skip(1)
                .map(|c| {
                    c.map(|c| Bson::String(c.as_str().into()))
                        .unwrap_or(Bson::Null)
                })
                .collect::<Vec<_>>(),
        );
        Bson::Document(d)
    };
    match op {
        Op::RegexMatch => Bson::Boolean(pattern.is_match(input)),
        Op::RegexFind => pattern
            .regex()
            .captures(input)
            .map(found)
            .unwrap_or(Bson::Null),
        _ => Bson::Array(pattern.regex().captures_iter(input).map(found).collect()),
    }
}

/// `$replaceOne` and `$replaceAll` (`input`, `find`, `replacement`).
pub(super) fn replace(op: Op, args: &[Val]) -> Res {
    let name = op.name();
    let mut strs = [""; 3];
    for (i, what) in ["input", "find", "replacement"].iter().enumerate() {
        match arg(args, i) {
            None | Some(Bson::Null) | Some(Bson::Undefined) => return null(),
            Some(Bson::String(s)) => strs[i] = s.as_str(),
            Some(other) => {
                return Err(QueryError::new(
                    51746,
                    format!(
                        "{name} requires that '{what}' be a string, found: {}",
                        display_value(other)
                    ),
                ))
            }
        }
    }
    let [input, find, replacement] = strs;
    if op == Op::ReplaceAll && !find.is_empty() && replacement.len() > find.len() {
        // Refuse an expansion the request could not hold before building it.
        let grows = (replacement.len() - find.len()).saturating_mul(input.matches(find).count());
        crate::query::budget::ensure_room(input.len().saturating_add(grows), name)?;
    }
    let out = if op == Op::ReplaceOne {
        input.replacen(find, replacement, 1)
    } else if find.is_empty() {
        input.to_owned()
    } else {
        input.replace(find, replacement)
    };
    Ok(Some(Bson::String(out)))
}
