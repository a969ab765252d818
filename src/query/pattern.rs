//! MongoDB regular expressions (PCRE syntax) compiled with the linear-time `regex` crate.

use bson::Bson;
use regex::{Regex, RegexBuilder};

use super::QueryError;

/// A compiled `$regex` with its original pattern and options.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    /// The pattern as the client sent it.
    pub source: String,
    /// The options (`i`, `m`, `s`, `x`, `u`).
    pub options: String,
    regex: Regex,
}

impl Pattern {
    /// Compiles `pattern` with MongoDB/PCRE `options` (`i m s x u`).
    pub(crate) fn new(pattern: &str, options: &str) -> Result<Pattern, QueryError> {
        let mut builder = RegexBuilder::new(pattern);
        for c in options.chars() {
            match c {
                'i' => builder.case_insensitive(true),
                'm' => builder.multi_line(true),
                's' => builder.dot_matches_new_line(true),
                'x' => builder.ignore_whitespace(true),
                'u' | 'l' => &mut builder,
                other => {
                    return Err(QueryError::new(
                        51108,
                        format!("invalid flag in regex options: {other}"),
                    ))
                }
            };
        }
        builder.size_limit(1 << 22);
        let regex = builder.build().map_err(|e| {
            QueryError::new(
                51091,
                format!(
                    "Regular expression is invalid or not supported by the embedded engine \
                     (backreferences and lookaround are not supported): {}",
                    first_line(&e.to_string())
                ),
            )
        })?;
        Ok(Pattern {
            source: pattern.to_string(),
            options: options.to_string(),
            regex,
        })
    }

    /// Compiles a BSON regular expression value.
    pub(crate) fn from_regex(r: &bson::Regex) -> Result<Pattern, QueryError> {
        Pattern::new(&r.pattern, &r.options)
    }

    /// Whether the pattern matches somewhere in `s`.
    pub(crate) fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }

    /// The compiled regex.
    pub(crate) fn regex(&self) -> &Regex {
        &self.regex
    }

    /// Whether a single value matches: strings and symbols by search, a regex
    /// value by being the same regex.
    pub(crate) fn matches_value(&self, v: &Bson) -> bool {
        match v {
            Bson::String(s) | Bson::Symbol(s) => self.is_match(s),
            Bson::RegularExpression(r) => {
                r.pattern == self.source && sorted(&r.options) == sorted(&self.options)
            }
            _ => false,
        }
    }
}

fn sorted(s: &str) -> Vec<char> {
    let mut v: Vec<char> = s.chars().collect();
    v.sort_unstable();
    v
}

fn first_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_errors() {
        let cases = [
            ("^ab", "", "abc", true),
            ("^AB", "i", "abc", true),
            ("^b", "", "a\nb", false),
            ("^b", "m", "a\nb", true),
            ("a.b", "", "a\nb", false),
            ("a.b", "s", "a\nb", true),
            ("a b # comment", "x", "ab", true),
        ];
        for (p, o, s, want) in cases {
            assert_eq!(
                Pattern::new(p, o).unwrap().is_match(s),
                want,
                "/{p}/{o} on {s:?}"
            );
        }
        assert_eq!(Pattern::new("(a)\\1", "").unwrap_err().code, 51091);
        assert_eq!(Pattern::new("a(?=b)", "").unwrap_err().code, 51091);
        assert_eq!(
            Pattern::new("a", "q").unwrap_err().message,
            "invalid flag in regex options: q"
        );
    }
}
