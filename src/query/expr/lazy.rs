//! The lazily evaluated forms, which decide which of their arguments to
//! evaluate or bind variables for them: `$cond`, `$and`, `$or`, `$ifNull`,
//! `$switch`, `$let`, `$map`, `$filter`, `$reduce`, and the date forms
//! with optional named arguments (`$dateToString`, `$year`, …).

use bson::Bson;

use super::dates::{self, format_date, DatePart};
use super::{nullish, string, too_large, truthy, type_name, Expr, Op, Vars, MAX_VALUE_BYTES};
use crate::query::budget;
use crate::query::limits::{nesting_exceeds, value_size, Keys, MAX_NESTING};
use crate::query::number::Num;
use crate::query::pattern::Pattern;
use crate::query::{display_value, QueryError};

/// Operators that need control over argument evaluation or named arguments.
#[derive(Debug, Clone)]
pub(crate) enum Special {
    /// `$cond`.
    Cond(Expr, Expr, Expr),
    /// `$and`.
    And(Vec<Expr>),
    /// `$or`.
    Or(Vec<Expr>),
    /// `$ifNull`.
    IfNull(Vec<Expr>),
    /// `$switch`.
    Switch(Vec<(Expr, Expr)>, Option<Expr>),
    /// `$let`.
    Let(Vec<(String, Expr)>, Expr),
    /// `$map`.
    Map {
        /// The array.
        input: Expr,
        /// The element variable (`as`).
        var: String,
        /// The expression producing each output element (`in`).
        body: Expr,
    },
    /// `$filter`.
    Filter {
        /// The array.
        input: Expr,
        /// The element variable (`as`).
        var: String,
        /// The condition an element must satisfy.
        cond: Expr,
        /// Most elements to keep.
        limit: Option<Expr>,
    },
    /// `$reduce`.
    Reduce {
        /// The array.
        input: Expr,
        /// The starting `$$value`.
        initial: Expr,
        /// The next `$$value` from `$$value` and `$$this`.
        body: Expr,
    },
    /// `$dateToString`.
    DateToString {
        /// The date.
        date: Expr,
        /// The format string (default ISO-8601).
        format: Option<Expr>,
        /// UTC, a fixed offset or a named zone.
        timezone: Option<Expr>,
        /// The result for a null or missing date.
        on_null: Option<Expr>,
    },
    /// `$year`, `$month`, … (`{date, timezone}` or a bare date).
    DatePart(DatePart, Expr, Option<Expr>),
    /// `$regexMatch`, `$regexFind` or `$regexFindAll` whose `regex` and
    /// `options` are constants: compiled once, when parsed.
    Regex {
        /// Which of the three.
        op: Op,
        /// The string searched.
        input: Expr,
        /// The compiled regular expression.
        pattern: Pattern,
    },
}

/// Bounds a `$reduce` accumulator: each step may wrap the previous value, so
/// without a bound on its nesting, recursion over it (cloning, comparing,
/// dropping) would exhaust the stack; without one on its size, memory.
fn check_accumulator(acc: &Bson) -> Result<(), QueryError> {
    if !matches!(acc, Bson::Document(_) | Bson::Array(_) | Bson::String(_)) {
        return Ok(());
    }
    if nesting_exceeds([acc], 1, MAX_NESTING, Keys::Plain) {
        return Err(QueryError::new(
            15,
            format!("$reduce produced a value nested more than {MAX_NESTING} levels deep"),
        ));
    }
    if value_size(acc) > MAX_VALUE_BYTES {
        return Err(too_large("$reduce"));
    }
    Ok(())
}

impl Special {
    /// Evaluates the form.
    pub(super) fn eval(&self, vars: &Vars) -> Result<Option<Bson>, QueryError> {
        match self {
            Special::Cond(c, t, e) => {
                if truthy(c.eval(vars)?.as_ref()) {
                    t.eval(vars)
                } else {
                    e.eval(vars)
                }
            }
            Special::And(items) => {
                for e in items {
                    if !truthy(e.eval(vars)?.as_ref()) {
                        return Ok(Some(Bson::Boolean(false)));
                    }
                }
                Ok(Some(Bson::Boolean(true)))
            }
            Special::Or(items) => {
                for e in items {
                    if truthy(e.eval(vars)?.as_ref()) {
                        return Ok(Some(Bson::Boolean(true)));
                    }
                }
                Ok(Some(Bson::Boolean(false)))
            }
            Special::IfNull(items) => {
                let (last, rest) = items
                    .split_last()
                    .ok_or_else(|| QueryError::bad_value("$ifNull needs at least two arguments"))?;
                for e in rest {
                    let v = e.eval(vars)?;
                    if !nullish(v.as_ref()) {
                        return Ok(v);
                    }
                }
                last.eval(vars)
            }
            Special::Switch(branches, default) => {
                for (case, then) in branches {
                    if truthy(case.eval(vars)?.as_ref()) {
                        return then.eval(vars);
                    }
                }
                match default {
                    Some(d) => d.eval(vars),
                    None => Err(QueryError::new(
                        40066,
                        "$switch could not find a matching branch for an input, and no default was specified.",
                    )),
                }
            }
            Special::Let(bindings, body) => {
                let mut inner = vars.clone();
                for (name, e) in bindings {
                    let v = e.eval(vars)?.unwrap_or(Bson::Null);
                    inner.bind(name, v);
                }
                body.eval(&inner)
            }
            Special::Map { input, var, body } => match input.eval(vars)? {
                None | Some(Bson::Null) | Some(Bson::Undefined) => Ok(Some(Bson::Null)),
                Some(Bson::Array(items)) => {
                    let mut out = Vec::with_capacity(items.len());
                    let mut inner = vars.clone();
                    for item in items {
                        inner.rebind(var, item);
                        out.push(body.eval(&inner)?.unwrap_or(Bson::Null));
                    }
                    Ok(Some(Bson::Array(out)))
                }
                Some(other) => Err(QueryError::new(
                    16883,
                    format!(
                        "input to $map must be an array not {}",
                        type_name(Some(&other))
                    ),
                )),
            },
            Special::Filter {
                input,
                var,
                cond,
                limit,
            } => {
                let limit = match limit {
                    None => None,
                    Some(l) => match l.eval(vars)? {
                        None | Some(Bson::Null) => None,
                        Some(v) => match Num::from_bson(&v).and_then(Num::to_i64_exact) {
                            Some(n) if n > 0 => Some(n as usize),
                            _ => {
                                return Err(QueryError::new(
                                    327391,
                                    format!(
                                        "$filter: limit must be greater than 0: {}",
                                        display_value(&v)
                                    ),
                                ))
                            }
                        },
                    },
                };
                match input.eval(vars)? {
                    None | Some(Bson::Null) | Some(Bson::Undefined) => Ok(Some(Bson::Null)),
                    Some(Bson::Array(items)) => {
                        let mut out = Vec::new();
                        let mut inner = vars.clone();
                        for item in items {
                            if limit.is_some_and(|l| out.len() >= l) {
                                break;
                            }
                            inner.rebind(var, item.clone());
                            if truthy(cond.eval(&inner)?.as_ref()) {
                                out.push(item);
                            }
                        }
                        Ok(Some(Bson::Array(out)))
                    }
                    Some(other) => Err(QueryError::new(
                        28651,
                        format!(
                            "input to $filter must be an array not {}",
                            type_name(Some(&other))
                        ),
                    )),
                }
            }
            Special::Reduce {
                input,
                initial,
                body,
            } => match input.eval(vars)? {
                None | Some(Bson::Null) | Some(Bson::Undefined) => Ok(Some(Bson::Null)),
                Some(Bson::Array(items)) => {
                    let mut acc = initial.eval(vars)?.unwrap_or(Bson::Null);
                    let held = budget::used();
                    let mut inner = vars.clone();
                    for item in items {
                        inner.rebind("value", acc);
                        inner.rebind("this", item);
                        acc = body.eval(&inner)?.unwrap_or(Bson::Null);
                        check_accumulator(&acc)?;
                        // The previous accumulator is gone: hold only this one.
                        budget::set_used(held);
                        budget::charge_value(&acc, "$reduce")?;
                    }
                    Ok(Some(acc))
                }
                Some(other) => Err(QueryError::new(
                    40080,
                    format!(
                        "$reduce requires an array as an input, found: {}",
                        type_name(Some(&other))
                    ),
                )),
            },
            Special::DateToString {
                date,
                format,
                timezone,
                on_null,
            } => {
                let d = date.eval(vars)?;
                if nullish(d.as_ref()) {
                    return match on_null {
                        Some(e) => e.eval(vars),
                        None => Ok(Some(Bson::Null)),
                    };
                }
                let zone = dates::Zone::parse(
                    timezone
                        .as_ref()
                        .map(|t| t.eval(vars))
                        .transpose()?
                        .flatten(),
                )?;
                let millis = dates::as_millis(d.as_ref(), "$dateToString")?;
                let fmt = match format {
                    None => None,
                    Some(f) => match f.eval(vars)? {
                        None | Some(Bson::Null) => return Ok(Some(Bson::Null)),
                        Some(Bson::String(s)) => Some(s),
                        Some(other) => {
                            return Err(QueryError::new(
                                18533,
                                format!(
                                    "$dateToString requires that 'format' be a string, found: {} with value {}",
                                    type_name(Some(&other)),
                                    display_value(&other)
                                ),
                            ))
                        }
                    },
                };
                Ok(Some(Bson::String(format_date(
                    zone.to_local(millis),
                    fmt.as_deref().unwrap_or("%Y-%m-%dT%H:%M:%S.%LZ"),
                    zone.offset_at(millis),
                )?)))
            }
            Special::Regex { op, input, pattern } => {
                let value = input.eval(vars)?;
                Ok(Some(match string::regex_input(*op, value.as_ref())? {
                    Some(s) => string::regex_apply(*op, s, pattern),
                    None => string::regex_on_null(*op),
                }))
            }
            Special::DatePart(name, date, timezone) => {
                let d = date.eval(vars)?;
                if nullish(d.as_ref()) {
                    return Ok(Some(Bson::Null));
                }
                let zone = dates::Zone::parse(
                    timezone
                        .as_ref()
                        .map(|t| t.eval(vars))
                        .transpose()?
                        .flatten(),
                )?;
                let millis = dates::as_millis(d.as_ref(), name.name())?;
                Ok(Some(dates::date_part(*name, zone.to_local(millis))))
            }
        }
    }
}
