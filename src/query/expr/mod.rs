//! Aggregation expressions: parsing (`{"$add": ["$a", 1]}`, `"$field.path"`,
//! `"$$ROOT"`) and evaluation against a document.
//!
//! Evaluation yields `Option<Bson>`: `None` is a *missing* value, which
//! differs from `null` (a computed field that evaluates to missing is omitted).

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::budget;
use super::compare::{canonical_key, compare_values};
use super::limits::{
    nesting_exceeds, value_size, Keys, DEFAULT_MAX_PIPELINE_BYTES, MAX_NESTING,
    MEMORY_LIMIT_EXCEEDED,
};
use super::number::{self, Num, Overflow};
use super::path::{expr_get, expr_get_doc};
use super::QueryError;

mod dates;
mod named;
mod ops;

pub(crate) use dates::format_date;
pub(crate) use named::add_units_utc;

/// A parsed aggregation expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    /// A constant.
    Literal(Bson),
    /// `"$a.b"`: a path in `$$CURRENT`.
    Field(Vec<String>),
    /// `"$$name.a.b"`: a variable, optionally followed by a path.
    Var(String, Vec<String>),
    /// `{a: <expr>, b: <expr>}`: a document built from expressions.
    Object(Vec<(String, Expr)>),
    /// `[<expr>, ...]`.
    Array(Vec<Expr>),
    /// `{"$op": args}` for operators whose arguments are evaluated eagerly.
    Op(String, Vec<Expr>),
    /// Operators with named or lazily evaluated arguments.
    Special(Box<Special>),
}

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
    DatePart(String, Expr, Option<Expr>),
}

/// Variables visible to an expression: `$$ROOT`, `$$CURRENT` and user variables.
#[derive(Debug, Clone)]
pub(crate) struct Vars<'a> {
    root: &'a Document,
    current: Option<Bson>,
    locals: Vec<(String, Bson)>,
}

impl<'a> Vars<'a> {
    /// Variables for evaluating against `root` (also `$$CURRENT`).
    pub(crate) fn new(root: &'a Document) -> Vars<'a> {
        Vars {
            root,
            current: None,
            locals: Vec::new(),
        }
    }

    /// Variables for `root` with user variables already bound.
    pub(crate) fn with_bindings(root: &'a Document, bindings: &[(String, Bson)]) -> Vars<'a> {
        let mut v = Vars::new(root);
        for (name, value) in bindings {
            v.bind(name, value.clone());
        }
        v
    }

    /// A copy with one more user variable bound.
    pub(crate) fn with(&self, name: &str, value: Bson) -> Vars<'a> {
        let mut v = self.clone();
        v.bind(name, value);
        v
    }

    /// Binds a user variable in place (`$lookup`'s `let`).
    pub(crate) fn bind(&mut self, name: &str, value: Bson) {
        if name == "CURRENT" {
            self.current = Some(value);
        } else {
            self.locals.push((name.to_string(), value));
        }
    }

    /// The value of `$$CURRENT` followed by `path`, without copying the document.
    fn current_path(&self, path: &[String]) -> Option<Bson> {
        match &self.current {
            Some(c) => expr_get(c, path),
            None => expr_get_doc(self.root, path),
        }
    }

    fn get(&self, name: &str, path: &[String]) -> Result<Option<Bson>, QueryError> {
        let value = match name {
            "ROOT" => return Ok(expr_get_doc(self.root, path)),
            "CURRENT" => return Ok(self.current_path(path)),
            "REMOVE" => return Ok(None),
            "NOW" => Bson::DateTime(bson::DateTime::now()),
            "DESCEND" | "PRUNE" | "KEEP" => Bson::String(format!("$${name}")),
            _ => match self.locals.iter().rev().find(|(n, _)| n == name) {
                Some((_, v)) => v.clone(),
                None => {
                    return Err(QueryError::new(
                        17276,
                        format!("Use of undefined variable: {name}"),
                    ))
                }
            },
        };
        Ok(expr_get(&value, path))
    }
}

/// Truthiness in expressions: false, null, undefined, missing and zero are false.
pub(crate) fn truthy(v: Option<&Bson>) -> bool {
    match v {
        None | Some(Bson::Null) | Some(Bson::Undefined) | Some(Bson::Boolean(false)) => false,
        Some(other) => Num::from_bson(other).is_none_or(|n| !n.is_zero()),
    }
}

/// MongoDB's type name for a value (`$type` expression, error messages).
pub(crate) fn type_name(v: Option<&Bson>) -> &'static str {
    match v {
        None => "missing",
        Some(v) => match v {
            Bson::Double(_) => "double",
            Bson::String(_) => "string",
            Bson::Document(_) => "object",
            Bson::Array(_) => "array",
            Bson::Binary(_) => "binData",
            Bson::Undefined => "undefined",
            Bson::ObjectId(_) => "objectId",
            Bson::Boolean(_) => "bool",
            Bson::DateTime(_) => "date",
            Bson::Null => "null",
            Bson::RegularExpression(_) => "regex",
            Bson::DbPointer(_) => "dbPointer",
            Bson::JavaScriptCode(_) => "javascript",
            Bson::Symbol(_) => "symbol",
            Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
            Bson::Int32(_) => "int",
            Bson::Timestamp(_) => "timestamp",
            Bson::Int64(_) => "long",
            Bson::Decimal128(_) => "decimal",
            Bson::MinKey => "minKey",
            Bson::MaxKey => "maxKey",
        },
    }
}

/// The most bytes (estimated BSON size) one computed value may hold: the
/// feedback of `$reduce` (`$concat: ["$$value", "$$value"]`) would otherwise
/// grow a value exponentially until allocation aborts the process.
const MAX_VALUE_BYTES: usize = DEFAULT_MAX_PIPELINE_BYTES;

/// The error for a computed value beyond [`MAX_VALUE_BYTES`].
fn too_large(op: &str) -> QueryError {
    QueryError::new(
        MEMORY_LIMIT_EXCEEDED,
        format!("{op} would use too much memory (more than {MAX_VALUE_BYTES} bytes)"),
    )
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

/// Whether the value is null, undefined or missing.
pub(crate) fn nullish(v: Option<&Bson>) -> bool {
    matches!(v, None | Some(Bson::Null) | Some(Bson::Undefined))
}

fn parse_field_path(s: &str) -> Result<Expr, QueryError> {
    if let Some(var) = s.strip_prefix("$$") {
        let mut parts = var.split('.');
        let name = parts.next().unwrap_or_default();
        if name.is_empty() {
            return Err(QueryError::new(
                16869,
                "empty variable names are not allowed",
            ));
        }
        let path: Vec<String> = parts.map(str::to_string).collect();
        if path.iter().any(String::is_empty) {
            return Err(QueryError::new(
                15998,
                "FieldPath field names may not be empty strings.",
            ));
        }
        return Ok(Expr::Var(name.to_string(), path));
    }
    let body = &s[1..];
    if body.is_empty() {
        return Err(QueryError::new(
            16872,
            "'$' by itself is not a valid FieldPath",
        ));
    }
    let path: Vec<String> = body.split('.').map(str::to_string).collect();
    if path.iter().any(String::is_empty) {
        return Err(QueryError::new(
            15998,
            "FieldPath field names may not be empty strings.",
        ));
    }
    if path.iter().any(|p| p.starts_with('$')) {
        return Err(QueryError::new(
            16410,
            "FieldPath field names may not start with '$'.",
        ));
    }
    Ok(Expr::Field(path))
}

impl Expr {
    /// Parses an expression.
    pub(crate) fn parse(v: &Bson) -> Result<Expr, QueryError> {
        match v {
            Bson::String(s) if s.starts_with('$') => parse_field_path(s),
            Bson::Array(items) => Ok(Expr::Array(
                items.iter().map(Expr::parse).collect::<Result<_, _>>()?,
            )),
            Bson::Document(d) => Self::parse_doc(d),
            other => Ok(Expr::Literal(other.clone())),
        }
    }

    fn parse_doc(d: &Document) -> Result<Expr, QueryError> {
        let Some(first) = d.keys().next() else {
            return Ok(Expr::Object(Vec::new()));
        };
        if first.starts_with('$') {
            if d.len() != 1 {
                return Err(QueryError::new(
                    15983,
                    format!(
                        "an expression specification must contain exactly one field, the name of the expression. Found {} fields in {}",
                        d.len(),
                        super::display_doc(d)
                    ),
                ));
            }
            let (name, arg) = d
                .iter()
                .next()
                .ok_or_else(|| QueryError::bad_value("empty expression"))?;
            return ops::parse_operator(name, arg);
        }
        let mut fields = Vec::with_capacity(d.len());
        for (k, v) in d {
            if k.starts_with('$') {
                return Err(QueryError::new(16410, "FieldPath field names may not start with '$'. Consider using $getField or $setField."));
            }
            fields.push((k.clone(), Expr::parse(v)?));
        }
        Ok(Expr::Object(fields))
    }

    /// Evaluates the expression against a document.
    #[cfg(test)]
    pub(crate) fn eval_doc(&self, doc: &Document) -> Result<Option<Bson>, QueryError> {
        self.eval(&Vars::new(doc))
    }

    /// Evaluates the expression; `None` is missing.
    ///
    /// Metered (see `query::budget`): every node is a step of work, and each
    /// node's result is charged to the request's memory budget while its
    /// parent node works with it.
    pub(crate) fn eval(&self, vars: &Vars) -> Result<Option<Bson>, QueryError> {
        budget::step()?;
        let scratch = budget::Scratch::open();
        let value = self.eval_node(vars)?;
        scratch.close(value.as_ref(), self.operator_name())?;
        Ok(value)
    }

    /// The operator name, for error messages ("expression" when there is none).
    fn operator_name(&self) -> &str {
        match self {
            Expr::Op(name, _) => name,
            _ => "an expression",
        }
    }

    fn eval_node(&self, vars: &Vars) -> Result<Option<Bson>, QueryError> {
        match self {
            Expr::Literal(v) => Ok(Some(v.clone())),
            Expr::Field(path) => Ok(vars.current_path(path)),
            Expr::Var(name, path) => vars.get(name, path),
            Expr::Object(fields) => {
                let mut out = Document::new();
                for (k, e) in fields {
                    if let Some(v) = e.eval(vars)? {
                        out.insert(k.clone(), v);
                    }
                }
                Ok(Some(Bson::Document(out)))
            }
            Expr::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for e in items {
                    out.push(e.eval(vars)?.unwrap_or(Bson::Null));
                }
                Ok(Some(Bson::Array(out)))
            }
            Expr::Op(name, args) => {
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(a.eval(vars)?);
                }
                ops::apply(name, vals)
            }
            Expr::Special(s) => s.eval(vars),
        }
    }
}

impl Special {
    fn eval(&self, vars: &Vars) -> Result<Option<Bson>, QueryError> {
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
                    for item in items {
                        out.push(body.eval(&vars.with(var, item))?.unwrap_or(Bson::Null));
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
                                        super::display_value(&v)
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
                        for item in items {
                            if limit.is_some_and(|l| out.len() >= l) {
                                break;
                            }
                            if truthy(cond.eval(&vars.with(var, item.clone()))?.as_ref()) {
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
                    for item in items {
                        let inner = vars.with("value", acc).with("this", item);
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
                                    super::display_value(&other)
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
                let millis = dates::as_millis(d.as_ref(), name)?;
                Ok(Some(dates::date_part(name, zone.to_local(millis))))
            }
        }
    }
}

/// Compares two evaluated values, missing ordering below null.
pub(crate) fn compare_opt(a: Option<&Bson>, b: Option<&Bson>) -> Ordering {
    let undefined = Bson::Undefined;
    compare_values(a.unwrap_or(&undefined), b.unwrap_or(&undefined))
}

/// Numeric addition used by `$add` and `$sum` (int64 overflow widens to double).
pub(crate) fn add_nums(a: Num, b: Num) -> Num {
    number::add(a, b, Overflow::ToDouble).unwrap_or(Num::Double(a.to_f64() + b.to_f64()))
}

/// Deduplicates values by MongoDB equality, keeping first occurrences.
pub(crate) fn dedup(values: Vec<Bson>) -> Vec<Bson> {
    let mut seen = std::collections::HashSet::new();
    values
        .into_iter()
        .filter(|v| seen.insert(canonical_key(v)))
        .collect()
}

#[cfg(test)]
mod tests;
