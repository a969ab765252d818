//! Aggregation expressions: parsing (`{"$add": ["$a", 1]}`, `"$field.path"`,
//! `"$$ROOT"`) into a typed tree, and its evaluation against a document.
//!
//! Operators are looked up once, when the expression is parsed, in the
//! operator table (`op`): the tree holds an [`Op`] and evaluation dispatches
//! on it, never comparing names; an unknown operator fails the parse. The
//! evaluators live in one file per family (`arith`, `comparison`, `string`,
//! `array`, `set`, `object`, `fold`, `convert`, `date_ops`), the lazily
//! evaluated forms (`$cond`, `$let`, `$map`, …) in `lazy`.
//!
//! Evaluation yields `Option<Bson>`: `None` is a *missing* value, which
//! differs from `null` (a computed field that evaluates to missing is omitted).

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::budget;
use super::compare::{canonical_key, compare_values};
use super::limits::{DEFAULT_MAX_PIPELINE_BYTES, MEMORY_LIMIT_EXCEEDED};
use super::number::{self, Num, Overflow};
use super::path::plain_get;
use super::QueryError;

mod arith;
mod array;
mod comparison;
mod convert;
mod date_ops;
mod dates;
mod fold;
mod lazy;
mod object;
mod op;
mod parse;
mod set;
mod string;
mod vars;

pub(crate) use date_ops::add_units_utc;
use lazy::Special;
use op::Op;
pub(crate) use vars::Vars;

/// An evaluated argument: `None` is missing.
type Val = Option<Bson>;

/// What an operator evaluates to.
type Res = Result<Val, QueryError>;

/// Arguments an operator evaluates on the stack (more go to the heap).
const INLINE_ARGS: usize = 4;

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
    Op(Op, Vec<Expr>),
    /// Operators with named or lazily evaluated arguments.
    Special(Box<Special>),
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

/// The `i`-th evaluated argument, `None` when missing or absent.
fn arg(args: &[Val], i: usize) -> Option<&Bson> {
    args.get(i).and_then(Option::as_ref)
}

/// A null result.
fn null() -> Res {
    Ok(Some(Bson::Null))
}

/// A boolean result.
fn bool_val(b: bool) -> Res {
    Ok(Some(Bson::Boolean(b)))
}

/// A numeric argument of `name`, or the error with `code`.
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

/// An integral argument (`what` of `name`: "starting index", …).
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
            return parse::parse_operator(name, arg);
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

    /// The value of a constant or of a plain field path, borrowed from the
    /// expression or from `doc` as `$$CURRENT` (`Some(None)`: missing);
    /// `None` when it takes evaluating (an operator, a variable, a path
    /// through an array). For hot loops that would otherwise copy the value.
    pub(crate) fn get_ref<'a>(&'a self, doc: &'a Document) -> Option<Option<&'a Bson>> {
        match self {
            Expr::Literal(v) => Some(Some(v)),
            Expr::Field(path) => plain_get(doc, path),
            _ => None,
        }
    }

    /// Evaluates the expression; `None` is missing.
    ///
    /// Metered (see `query::budget`): every node is a step of work, and each
    /// node's result is charged to the request's memory budget while its
    /// parent node works with it.
    pub(crate) fn eval(&self, vars: &Vars) -> Result<Option<Bson>, QueryError> {
        budget::step()?;
        if let Expr::Literal(_) | Expr::Field(_) | Expr::Var(..) = self {
            let value = self.eval_node(vars)?;
            budget::charge_leaf(value.as_ref(), self.operator_name())?;
            return Ok(value);
        }
        let scratch = budget::Scratch::open();
        let value = self.eval_node(vars)?;
        scratch.close(value.as_ref(), self.operator_name())?;
        Ok(value)
    }

    /// The operator name, for error messages ("expression" when there is none).
    fn operator_name(&self) -> &'static str {
        match self {
            Expr::Op(op, _) => op.name(),
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
            Expr::Op(op, args) => {
                // Most operators take a few arguments: those live on the stack.
                if args.len() <= INLINE_ARGS {
                    let mut vals: [Val; INLINE_ARGS] = Default::default();
                    for (slot, a) in vals.iter_mut().zip(args) {
                        *slot = a.eval(vars)?;
                    }
                    op.apply(&vals[..args.len()])
                } else {
                    let vals = args
                        .iter()
                        .map(|a| a.eval(vars))
                        .collect::<Result<Vec<_>, _>>()?;
                    op.apply(&vals)
                }
            }
            Expr::Special(s) => s.eval(vars),
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
