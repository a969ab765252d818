//! Parsing `{"$op": args}`: the lazily evaluated forms (`$cond`, `$let`,
//! `$map`, …), then the operator table, whose entry says how the
//! arguments are written. An unknown operator is refused here, when the
//! pipeline is parsed, not when a document reaches it.

use bson::{Bson, Document};

use super::array::validate_sort_by;
use super::dates::DatePart;
use super::lazy::Special;
use super::op::{Args, Op};
use super::{string, Expr};
use crate::query::QueryError;

/// MongoDB's error for an unknown expression operator.
fn unrecognized(name: &str) -> QueryError {
    QueryError::new(168, format!("Unrecognized expression '{name}'"))
}

/// Parses `{name: arg}`.
pub(super) fn parse_operator(name: &str, arg: &Bson) -> Result<Expr, QueryError> {
    if name == "$literal" {
        return Ok(Expr::Literal(arg.clone()));
    }
    if let Some(parsed) = parse_special(name, arg) {
        return parsed;
    }
    if matches!(name, "$function" | "$accumulator" | "$where") {
        return Err(QueryError::unsupported(name));
    }
    let op = Op::lookup(name).ok_or_else(|| unrecognized(name))?;
    if matches!(op, Op::RegexMatch | Op::RegexFind | Op::RegexFindAll) {
        return parse_regex(op, arg);
    }
    let args = match op.args() {
        Args::List(min, max) => list_args(op, arg, min, max)?,
        Args::Named(params) => named_params(op, arg, params)?,
        Args::Own => own_args(op, arg)?,
    };
    Ok(Expr::Op(op, args))
}

/// A regular expression operator: compiled now when `regex` and `options`
/// are constants that compile; otherwise (an expression, or a constant
/// that fails to compile, whose error stays with evaluation as before)
/// evaluated as an operator of the table.
fn parse_regex(op: Op, arg: &Bson) -> Result<Expr, QueryError> {
    let mut args = own_args(op, arg)?;
    if let [input, Expr::Literal(regex), Expr::Literal(options)] = args.as_mut_slice() {
        if matches!(options, Bson::Null | Bson::String(_)) {
            if let Ok(pattern) = string::regex_pattern(op, Some(regex), Some(options)) {
                let input = std::mem::replace(input, Expr::Literal(Bson::Null));
                return Ok(special(Special::Regex { op, input, pattern }));
            }
        }
    }
    Ok(Expr::Op(op, args))
}

/// The arguments of a list operator, `min` to `max` of them.
fn list_args(op: Op, arg: &Bson, min: usize, max: usize) -> Result<Vec<Expr>, QueryError> {
    let args = arg_list(arg)?;
    if args.len() < min || args.len() > max {
        let name = op.name();
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
    Ok(args)
}

/// The arguments of a named-argument operator of the table, in `params`'
/// order (an absent optional argument evaluates to missing).
fn named_params(
    op: Op,
    arg: &Bson,
    params: &[(&'static str, bool)],
) -> Result<Vec<Expr>, QueryError> {
    let name = op.name();
    let Bson::Document(d) = arg else {
        return Err(QueryError::failed_to_parse(format!(
            "{name} only supports an object as its argument"
        )));
    };
    for k in d.keys() {
        if !params.iter().any(|(p, _)| p == k) {
            return Err(QueryError::failed_to_parse(format!(
                "Unrecognized argument to {name}: {k}"
            )));
        }
    }
    let mut args = Vec::with_capacity(params.len());
    for (param, required) in params {
        match d.get(*param) {
            // `$sortArray`'s `sortBy` is a specification, not an expression.
            Some(v) if *param == "sortBy" => args.push(Expr::Literal(v.clone())),
            Some(v) => args.push(Expr::parse(v)?),
            None if *required => {
                return Err(QueryError::failed_to_parse(format!(
                    "Missing '{param}' parameter to {name}"
                )))
            }
            None => args.push(Expr::Var("REMOVE".into(), Vec::new())),
        }
    }
    if op == Op::SortArray {
        validate_sort_by(d.get("sortBy"))?;
    }
    Ok(args)
}

/// The arguments of the operators of the table with their own rules.
fn own_args(op: Op, arg: &Bson) -> Result<Vec<Expr>, QueryError> {
    let name = op.name();
    let null = || Expr::Literal(Bson::Null);
    let current = || Expr::Var("CURRENT".into(), vec![]);
    Ok(match op {
        Op::RegexMatch | Op::RegexFind | Op::RegexFindAll => {
            let d = named_args(name, arg, &["input", "regex", "options"])?;
            vec![
                required(name, d, "input")?,
                required(name, d, "regex")?,
                optional(d, "options")?.unwrap_or_else(null),
            ]
        }
        Op::Trim | Op::Ltrim | Op::Rtrim => {
            let d = named_args(name, arg, &["input", "chars"])?;
            vec![
                required(name, d, "input")?,
                optional(d, "chars")?.unwrap_or_else(null),
            ]
        }
        Op::GetField => match arg {
            Bson::Document(_) => {
                let d = named_args(name, arg, &["field", "input"])?;
                vec![
                    required(name, d, "field")?,
                    optional(d, "input")?.unwrap_or_else(current),
                ]
            }
            other => vec![Expr::parse(other)?, current()],
        },
        Op::Convert => {
            let d = named_args(name, arg, &["input", "to", "onError", "onNull"])?;
            vec![
                required(name, d, "input")?,
                required(name, d, "to")?,
                // MinKey marks an absent `onError` (errors are raised).
                optional(d, "onError")?.unwrap_or(Expr::Literal(Bson::MinKey)),
                optional(d, "onNull")?.unwrap_or_else(null),
            ]
        }
        other => return Err(unrecognized(other.name())),
    })
}

/// The argument document of a lazily evaluated or own-rule operator,
/// refusing keys not in `allowed`.
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

/// A list argument, or one bare argument.
fn arg_list(arg: &Bson) -> Result<Vec<Expr>, QueryError> {
    match arg {
        Bson::Array(items) => items.iter().map(Expr::parse).collect(),
        other => Ok(vec![Expr::parse(other)?]),
    }
}

/// Parses the lazily evaluated forms; `None` when `name` is not one.
fn parse_special(name: &str, arg: &Bson) -> Option<Result<Expr, QueryError>> {
    Some(match name {
        "$cond" => parse_cond(arg),
        "$and" => arg_list(arg).map(|a| special(Special::And(a))),
        "$or" => arg_list(arg).map(|a| special(Special::Or(a))),
        "$ifNull" => arg_list(arg).and_then(|args| {
            if args.len() < 2 {
                return Err(QueryError::new(
                    1257300,
                    format!("$ifNull needs at least two arguments, had: {}", args.len()),
                ));
            }
            Ok(special(Special::IfNull(args)))
        }),
        "$switch" => parse_switch(arg),
        "$let" => parse_let(arg),
        "$map" => (|| {
            let d = named_args(name, arg, &["input", "as", "in"])?;
            Ok(special(Special::Map {
                input: required(name, d, "input")?,
                var: var_name(name, d, "as", "this")?,
                body: required(name, d, "in")?,
            }))
        })(),
        "$filter" => (|| {
            let d = named_args(name, arg, &["input", "as", "cond", "limit"])?;
            Ok(special(Special::Filter {
                input: required(name, d, "input")?,
                var: var_name(name, d, "as", "this")?,
                cond: required(name, d, "cond")?,
                limit: optional(d, "limit")?,
            }))
        })(),
        "$reduce" => (|| {
            let d = named_args(name, arg, &["input", "initialValue", "in"])?;
            Ok(special(Special::Reduce {
                input: required(name, d, "input")?,
                initial: required(name, d, "initialValue")?,
                body: required(name, d, "in")?,
            }))
        })(),
        "$dateToString" => (|| {
            let d = named_args(name, arg, &["date", "format", "timezone", "onNull"])?;
            Ok(special(Special::DateToString {
                date: required(name, d, "date")?,
                format: optional(d, "format")?,
                timezone: optional(d, "timezone")?,
                on_null: optional(d, "onNull")?,
            }))
        })(),
        _ => parse_date_part(DatePart::lookup(name)?, arg),
    })
}

/// `$cond`: `[if, then, else]` or `{if, then, else}`.
fn parse_cond(arg: &Bson) -> Result<Expr, QueryError> {
    match arg {
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

/// `$switch`: `{branches: [{case, then}, …], default}`.
fn parse_switch(arg: &Bson) -> Result<Expr, QueryError> {
    let d = named_args("$switch", arg, &["branches", "default"])?;
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
    Ok(special(Special::Switch(parsed, optional(d, "default")?)))
}

/// `$let`: `{vars: {name: expr, …}, in}`.
fn parse_let(arg: &Bson) -> Result<Expr, QueryError> {
    let d = named_args("$let", arg, &["vars", "in"])?;
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
    Ok(special(Special::Let(bindings, Expr::parse(body)?)))
}

/// `$year`, `$month`, …: `{date, timezone}`, `[date]` or a bare date.
fn parse_date_part(part: DatePart, arg: &Bson) -> Result<Expr, QueryError> {
    let name = part.name();
    match arg {
        Bson::Document(d) if d.contains_key("date") => {
            let d = named_args(name, arg, &["date", "timezone"])?;
            Ok(special(Special::DatePart(
                part,
                required(name, d, "date")?,
                optional(d, "timezone")?,
            )))
        }
        Bson::Array(items) if items.len() == 1 => Ok(special(Special::DatePart(
            part,
            Expr::parse(&items[0])?,
            None,
        ))),
        Bson::Array(items) => Err(QueryError::new(
            16020,
            format!(
                "Expression {name} takes exactly 1 arguments. {} were passed in.",
                items.len()
            ),
        )),
        other => Ok(special(Special::DatePart(part, Expr::parse(other)?, None))),
    }
}
