//! Strict checks on Extended JSON input, before `bson` converts it.
//!
//! `bson`'s converter accepts a few inputs the Extended JSON specification
//! calls parse errors (malformed `$numberDecimal` strings, `{"$date": 42}`, NUL
//! bytes in field names and regular expressions). Those would be stored as
//! something the client did not send, so they are refused here with a 400.

use serde_json::Value;

/// Checks a parsed JSON tree for Extended JSON the converter would accept
/// wrongly; the error names the offending path.
pub(crate) fn check_strict(value: &Value) -> Result<(), String> {
    check(value, &mut String::new())
}

fn check(value: &Value, path: &mut String) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(text)) = map.get("$numberDecimal") {
                if map.len() == 1 && !is_decimal_literal(text) {
                    return Err(format!(
                        "{}: \"{text}\" is not a valid $numberDecimal",
                        shown(path)
                    ));
                }
            }
            if let Some(date) = map.get("$date") {
                if map.len() == 1 && date.is_number() {
                    return Err(format!(
                        "{}: $date must be an ISO-8601 string or {{\"$numberLong\": \"<millis>\"}}",
                        shown(path)
                    ));
                }
            }
            if let Some(Value::Object(regex)) = map.get("$regularExpression") {
                let has_nul = regex
                    .values()
                    .any(|part| part.as_str().is_some_and(|s| s.contains('\0')));
                if has_nul {
                    return Err(format!(
                        "{}: a regular expression must not contain NUL bytes",
                        shown(path)
                    ));
                }
            }
            for (key, child) in map {
                if key.contains('\0') {
                    return Err(format!(
                        "{}: field names must not contain NUL bytes",
                        shown(path)
                    ));
                }
                let before = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                check(child, path)?;
                path.truncate(before);
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let before = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&i.to_string());
                check(child, path)?;
                path.truncate(before);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() {
        "the request body"
    } else {
        path
    }
}

/// The decimal grammar of the Extended JSON specification:
/// `[+-]?(digits[.digits*]|.digits)([eE][+-]?digits)?`, or `Infinity`/`Inf`/`NaN`
/// (any case, infinities signed).
fn is_decimal_literal(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if unsigned.eq_ignore_ascii_case("infinity") || unsigned.eq_ignore_ascii_case("inf") {
        return true;
    }
    if text.eq_ignore_ascii_case("nan") {
        return true;
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(whole)
        && fraction.is_none_or(digits)
        && (!whole.is_empty() || fraction.is_some_and(|f| !f.is_empty()));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_grammar() {
        for good in [
            "1",
            "-1.5",
            "+.5",
            "5.",
            "1E+10",
            "1e-3",
            "-Infinity",
            "inf",
            "NaN",
            "0.000E-3",
        ] {
            assert!(is_decimal_literal(good), "{good}");
        }
        for bad in [
            "", ".", "E01", "-+1", "++1", "e100", ".e+1", "1e", "1.2.3", "1e+-2", "-NaN", "x",
        ] {
            assert!(!is_decimal_literal(bad), "{bad}");
        }
    }

    #[test]
    fn refuses_what_the_converter_would_accept_wrongly() {
        let bad = [
            r#"{"a": {"$numberDecimal": "E02"}}"#,
            r#"{"a": {"$date": 42}}"#,
            "{\"a\\u0000\": 1}",
            "{\"a\": [{\"b\\u0000\": 1}]}",
            "{\"a\": {\"$regularExpression\": {\"pattern\": \"b\\u0000\", \"options\": \"i\"}}}",
        ];
        for text in bad {
            let value: Value = serde_json::from_str(text).unwrap();
            assert!(check_strict(&value).is_err(), "{text}");
        }
        let ok: Value = serde_json::from_str(
            r#"{"a": {"$numberDecimal": "1.5"}, "b": {"$date": "2020-01-01T00:00:00Z"}, "c": [{"$date": {"$numberLong": "1"}}]}"#,
        )
        .unwrap();
        assert!(check_strict(&ok).is_ok());
    }
}
