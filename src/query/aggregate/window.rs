//! `$setWindowFields`: window functions over sorted partitions.
//!
//! Supported: `partitionBy`, `sortBy`, the accumulators of [`super::group`]
//! over `documents` windows (`"unbounded"`, `"current"` or offsets) and
//! `range` windows (numeric, or over dates with a time `unit`), plus `$rank`,
//! `$denseRank`, `$documentNumber`, `$shift`, `$derivative`, `$integral` and
//! `$expMovingAvg`. Partitions come out ordered by their key, as MongoDB
//! sorts by `partitionBy` first.

use crate::query::budget;
use std::collections::HashMap;

use bson::{Bson, Document};

use super::eval_in;
use super::fields::set_nested;
use super::group::Fold;
use super::window_math;
use crate::query::compare::{canonical_key, compare_values};
use crate::query::expr::{add_units_utc, Expr};
use crate::query::limits::Limits;
use crate::query::number::Num;
use crate::query::path::{get_exact, split};
use crate::query::sort::SortSpec;
use crate::query::{display_value, QueryError};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Bound {
    Unbounded,
    Current,
    Offset(f64),
}

#[derive(Debug, Clone, PartialEq)]
enum Window {
    Documents(Bound, Bound),
    /// Bounds on the `sortBy` value; with a time unit, over dates.
    Range(Bound, Bound, Option<String>),
}

#[derive(Debug, Clone)]
enum Func {
    Accumulate(Fold, Expr, Window),
    Rank,
    DenseRank,
    DocumentNumber,
    Shift {
        output: Expr,
        by: i64,
        default: Expr,
    },
    /// `$derivative` (`integral: false`) or `$integral`, per `unit` of x.
    Calculus {
        integral: bool,
        input: Expr,
        unit: Option<String>,
        window: Window,
    },
    ExpMovingAvg {
        input: Expr,
        alpha: f64,
    },
}

/// A parsed `$setWindowFields` stage.
#[derive(Debug, Clone)]
pub(super) struct SetWindowFields {
    partition_by: Option<Expr>,
    sort_by: Option<(SortSpec, Document)>,
    outputs: Vec<(Vec<String>, Func)>,
}

fn parse_bound(v: &Bson) -> Result<Bound, QueryError> {
    match v {
        Bson::String(s) if s == "unbounded" => Ok(Bound::Unbounded),
        Bson::String(s) if s == "current" => Ok(Bound::Current),
        other => match Num::from_bson(other) {
            Some(n) => Ok(Bound::Offset(n.to_f64())),
            None => Err(QueryError::failed_to_parse(format!(
                "Window bounds must be 'unbounded', 'current', or a number, found {}",
                display_value(other)
            ))),
        },
    }
}

fn parse_window(spec: Option<&Bson>) -> Result<Window, QueryError> {
    let Some(spec) = spec else {
        return Ok(Window::Documents(Bound::Unbounded, Bound::Unbounded));
    };
    let Bson::Document(d) = spec else {
        return Err(QueryError::failed_to_parse(
            "'window' field must be an object",
        ));
    };
    let unit = match d.get("unit") {
        None => None,
        Some(Bson::String(u)) if add_units_utc(0, u, 0).is_some() => Some(u.clone()),
        Some(other) => {
            return Err(QueryError::failed_to_parse(format!(
                "unknown time unit value: {}",
                display_value(other)
            )))
        }
    };
    let bounds = |k: &str| -> Result<(Bound, Bound), QueryError> {
        match d.get(k) {
            Some(Bson::Array(b)) if b.len() == 2 => Ok((parse_bound(&b[0])?, parse_bound(&b[1])?)),
            _ => Err(QueryError::failed_to_parse(format!(
                "Window bounds must be a 2-element array: {k}"
            ))),
        }
    };
    if unit.is_some() && !d.contains_key("range") {
        return Err(QueryError::failed_to_parse(
            "Window bounds can only specify 'unit' with range-based bounds.",
        ));
    }
    if d.contains_key("documents") {
        let (lo, hi) = bounds("documents")?;
        for b in [lo, hi] {
            if matches!(b, Bound::Offset(x) if x.fract() != 0.0) {
                return Err(QueryError::failed_to_parse(
                    "Numeric document-based bounds must be an integer",
                ));
            }
        }
        Ok(Window::Documents(lo, hi))
    } else if d.contains_key("range") {
        let (lo, hi) = bounds("range")?;
        if unit.is_some() {
            for b in [lo, hi] {
                if matches!(b, Bound::Offset(x) if x.fract() != 0.0) {
                    return Err(QueryError::failed_to_parse(
                        "With 'unit', range-based bounds must be an integer",
                    ));
                }
            }
        }
        Ok(Window::Range(lo, hi, unit))
    } else {
        Err(QueryError::failed_to_parse(
            "'window' field can only contain 'documents' or 'range'",
        ))
    }
}

fn parse_func(field: &str, spec: &Bson) -> Result<Func, QueryError> {
    let Bson::Document(d) = spec else {
        return Err(QueryError::failed_to_parse(format!(
            "The field '{field}' must be an object"
        )));
    };
    let window = d.get("window");
    let Some((op, arg)) = d.iter().find(|(k, _)| k.as_str() != "window") else {
        return Err(QueryError::failed_to_parse(format!(
            "Expected a $-prefixed window function, {field}"
        )));
    };
    Ok(match op.as_str() {
        "$rank" => Func::Rank,
        "$denseRank" => Func::DenseRank,
        "$documentNumber" => Func::DocumentNumber,
        "$shift" => {
            let Bson::Document(a) = arg else {
                return Err(QueryError::failed_to_parse(
                    "Argument to $shift must be an object",
                ));
            };
            let by = a
                .get("by")
                .and_then(Num::from_bson)
                .and_then(Num::to_i64_exact)
                .ok_or_else(|| {
                    QueryError::failed_to_parse("'$shift:by' field must be an integer")
                })?;
            let output = Expr::parse(a.get("output").ok_or_else(|| {
                QueryError::failed_to_parse("$shift requires an 'output' expression")
            })?)?;
            let default = Expr::parse(a.get("default").unwrap_or(&Bson::Null))?;
            Func::Shift {
                output,
                by,
                default,
            }
        }
        "$derivative" | "$integral" => {
            let Bson::Document(a) = arg else {
                return Err(QueryError::failed_to_parse(format!(
                    "{op} expects an object of the form {{input: <expr>, unit: <unit>}}"
                )));
            };
            let input = Expr::parse(a.get("input").ok_or_else(|| {
                QueryError::failed_to_parse(format!("{op} requires an 'input' expression"))
            })?)?;
            let unit = match a.get("unit") {
                None => None,
                Some(Bson::String(u)) if window_math::unit_millis(u).is_some() => Some(u.clone()),
                Some(other) => {
                    return Err(QueryError::failed_to_parse(format!(
                        "{op} 'unit' must be one of week, day, hour, minute, second or millisecond, found {}",
                        display_value(other)
                    )))
                }
            };
            if let Some(k) = a.keys().find(|k| !matches!(k.as_str(), "input" | "unit")) {
                return Err(QueryError::failed_to_parse(format!(
                    "{op} got unexpected argument: {k}"
                )));
            }
            Func::Calculus {
                integral: op == "$integral",
                input,
                unit,
                window: parse_window(window)?,
            }
        }
        "$expMovingAvg" => {
            if window.is_some() {
                return Err(QueryError::failed_to_parse(
                    "$expMovingAvg does not accept a window",
                ));
            }
            let Bson::Document(a) = arg else {
                return Err(QueryError::failed_to_parse(
                    "$expMovingAvg expects an object with 'input' and 'N' or 'alpha'",
                ));
            };
            let input = Expr::parse(a.get("input").ok_or_else(|| {
                QueryError::failed_to_parse("$expMovingAvg requires an 'input' expression")
            })?)?;
            let alpha = match (a.get("N"), a.get("alpha")) {
                (Some(n), None) => match Num::from_bson(n).and_then(Num::to_i64_exact) {
                    Some(n) if n > 0 => 2.0 / (n as f64 + 1.0),
                    _ => {
                        return Err(QueryError::failed_to_parse(
                            "'N' field must be an integer greater than zero",
                        ))
                    }
                },
                (None, Some(x)) => match Num::from_bson(x).map(Num::to_f64) {
                    Some(x) if x > 0.0 && x < 1.0 => x,
                    _ => {
                        return Err(QueryError::failed_to_parse(
                            "'alpha' must be a number between 0 and 1 (exclusive)",
                        ))
                    }
                },
                _ => {
                    return Err(QueryError::failed_to_parse(
                        "$expMovingAvg requires exactly one of 'N' or 'alpha'",
                    ))
                }
            };
            Func::ExpMovingAvg { input, alpha }
        }
        "$sum" | "$avg" | "$min" | "$max" | "$first" | "$last" | "$push" | "$addToSet"
        | "$count" | "$mergeObjects" | "$stdDevPop" | "$stdDevSamp" => {
            let fold = Fold::lookup(op).ok_or_else(|| QueryError::unsupported(op))?;
            Func::Accumulate(fold, Expr::parse(arg)?, parse_window(window)?)
        }
        other => {
            return Err(QueryError::unsupported(&format!(
                "The window function {other}"
            )))
        }
    })
}

impl SetWindowFields {
    /// Parses `{partitionBy, sortBy, output}`.
    pub(super) fn parse(arg: &Bson) -> Result<SetWindowFields, QueryError> {
        let Bson::Document(spec) = arg else {
            return Err(QueryError::failed_to_parse(
                "$setWindowFields must be an object",
            ));
        };
        let mut stage = SetWindowFields {
            partition_by: None,
            sort_by: None,
            outputs: Vec::new(),
        };
        for (k, v) in spec {
            match (k.as_str(), v) {
                ("partitionBy", v) => stage.partition_by = Some(Expr::parse(v)?),
                ("sortBy", Bson::Document(d)) => {
                    stage.sort_by = Some((SortSpec::parse(d)?, d.clone()))
                }
                ("output", Bson::Document(d)) => {
                    for (field, f) in d {
                        stage.outputs.push((split(field), parse_func(field, f)?));
                    }
                }
                (other, _) => {
                    return Err(QueryError::new(
                        40415,
                        format!("BSON field '$setWindowFields.{other}' is an unknown field."),
                    ))
                }
            }
        }
        let needs_sort = stage.outputs.iter().any(|(_, f)| {
            matches!(
                f,
                Func::Rank
                    | Func::DenseRank
                    | Func::DocumentNumber
                    | Func::Shift { .. }
                    | Func::Calculus { .. }
                    | Func::ExpMovingAvg { .. }
            ) || matches!(f, Func::Accumulate(_, _, w) if *w != Window::Documents(Bound::Unbounded, Bound::Unbounded))
        });
        if needs_sort && stage.sort_by.is_none() {
            return Err(QueryError::failed_to_parse(
                "this window function requires a sortBy",
            ));
        }
        let single_key = stage.sort_by.as_ref().is_some_and(|(_, d)| d.len() == 1);
        let needs_single_key = stage.outputs.iter().any(|(_, f)| {
            matches!(f, Func::Calculus { .. })
                || matches!(f, Func::Accumulate(_, _, Window::Range(..)))
        });
        if needs_single_key && !single_key {
            return Err(QueryError::failed_to_parse(
                "Range-based windows, $derivative and $integral require a sortBy with exactly one field",
            ));
        }
        Ok(stage)
    }

    /// Runs the stage: partitions in first-seen order, each sorted by `sortBy`.
    pub(super) fn run(
        &self,
        docs: Vec<Document>,
        vars: &[(String, Bson)],
        limits: &Limits,
    ) -> Result<Vec<Document>, QueryError> {
        let mut partitions: Vec<(Bson, Vec<Document>)> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        for d in docs {
            let key = match &self.partition_by {
                Some(e) => eval_in(e, &d, vars)?.unwrap_or(Bson::Null),
                None => Bson::Null,
            };
            let k = canonical_key(&key);
            let slot = match index.get(&k) {
                Some(slot) => *slot,
                None => {
                    partitions.push((key, Vec::new()));
                    index.insert(k, partitions.len() - 1);
                    partitions.len() - 1
                }
            };
            partitions[slot].1.push(d);
        }
        // MongoDB sorts by the partition key first.
        partitions.sort_by(|a, b| compare_values(&a.0, &b.0));
        let mut out = Vec::new();
        for (_, mut part) in partitions {
            if let Some((spec, _)) = &self.sort_by {
                spec.sort(&mut part);
            }
            let mut results: Vec<Vec<Option<Bson>>> = Vec::with_capacity(self.outputs.len());
            for (_, f) in &self.outputs {
                results.push(self.compute(f, &part, vars, limits)?);
            }
            for (i, mut d) in part.into_iter().enumerate() {
                for ((path, _), values) in self.outputs.iter().zip(&results) {
                    set_nested(&mut d, path, values.get(i).cloned().flatten());
                }
                out.push(d);
            }
        }
        Ok(out)
    }

    fn sort_key(&self, d: &Document) -> Option<Bson> {
        let (_, raw) = self.sort_by.as_ref()?;
        let field = raw.keys().next()?;
        get_exact(d, &split(field)).cloned()
    }

    /// The `sortBy` values as numbers: dates in milliseconds when `dates`.
    /// A value of the other kind fails with MongoDB's range-window error.
    fn x_values(&self, part: &[Document], dates: bool) -> Result<Vec<f64>, QueryError> {
        part.iter()
            .map(|d| match (self.sort_key(d), dates) {
                (Some(Bson::DateTime(t)), true) => Ok(t.timestamp_millis() as f64),
                (Some(v), false) if Num::from_bson(&v).is_some() => {
                    Ok(Num::from_bson(&v).map(Num::to_f64).unwrap_or(0.0))
                }
                (other, true) => Err(QueryError::new(
                    5429513,
                    format!(
                        "Invalid range: Expected the sortBy field to be a Date, but it was {}",
                        crate::query::expr::type_name(other.as_ref())
                    ),
                )),
                (_, false) => Err(QueryError::new(
                    5429414,
                    "Invalid range: Expected the sortBy field to be a number",
                )),
            })
            .collect()
    }

    /// The first and last index of the window of document `i` (empty when first > last).
    fn window_at(&self, window: &Window, i: usize, keys: &[f64]) -> (i64, i64) {
        let n = keys.len();
        match window {
            Window::Documents(lo, hi) => {
                let at = |b: &Bound, low: bool| -> i64 {
                    match b {
                        Bound::Unbounded => {
                            if low {
                                0
                            } else {
                                n as i64 - 1
                            }
                        }
                        Bound::Current => i as i64,
                        Bound::Offset(x) => (i as i64).saturating_add(*x as i64),
                    }
                };
                (at(lo, true).max(0), at(hi, false).min(n as i64 - 1))
            }
            Window::Range(lo, hi, unit) => {
                let center = keys[i];
                let edge = |b: &Bound| -> Option<f64> {
                    match (b, unit) {
                        (Bound::Unbounded, _) => None,
                        (Bound::Current, _) => Some(center),
                        (Bound::Offset(x), None) => Some(center + x),
                        (Bound::Offset(x), Some(u)) => {
                            add_units_utc(center as i64, u, *x as i64).map(|ms| ms as f64)
                        }
                    }
                };
                let (low, high) = (edge(lo), edge(hi));
                let within = |k: f64| low.is_none_or(|l| k >= l) && high.is_none_or(|h| k <= h);
                let first = (0..n).find(|j| within(keys[*j]));
                let last = (0..n).rev().find(|j| within(keys[*j]));
                match (first, last) {
                    (Some(a), Some(b)) => (a as i64, b as i64),
                    _ => (1, 0),
                }
            }
        }
    }

    fn compute(
        &self,
        f: &Func,
        part: &[Document],
        vars: &[(String, Bson)],
        limits: &Limits,
    ) -> Result<Vec<Option<Bson>>, QueryError> {
        let n = part.len();
        match f {
            Func::DocumentNumber => Ok((1..=n).map(|i| Some(Bson::Int32(i as i32))).collect()),
            Func::Rank | Func::DenseRank => {
                let dense = matches!(f, Func::DenseRank);
                let mut out = Vec::with_capacity(n);
                let (mut rank, mut dense_rank) = (0usize, 0usize);
                for i in 0..n {
                    let tie = i > 0
                        && self
                            .sort_by
                            .as_ref()
                            .is_some_and(|(s, _)| s.compare(&part[i - 1], &part[i]).is_eq());
                    if !tie {
                        rank = i + 1;
                        dense_rank += 1;
                    }
                    out.push(Some(Bson::Int32(
                        if dense { dense_rank } else { rank } as i32
                    )));
                }
                Ok(out)
            }
            Func::Shift {
                output,
                by,
                default,
            } => {
                let mut out = Vec::with_capacity(n);
                for (i, d) in part.iter().enumerate() {
                    let j = (i as i64).saturating_add(*by);
                    let v = match usize::try_from(j).ok().filter(|j| *j < n) {
                        Some(j) => eval_in(output, &part[j], vars)?.or(Some(Bson::Null)),
                        None => eval_in(default, d, vars)?,
                    };
                    out.push(v);
                }
                Ok(out)
            }
            Func::Accumulate(op, expr, window) => {
                let values: Vec<Option<Bson>> = part
                    .iter()
                    .map(|d| {
                        let v = eval_in(expr, d, vars)?;
                        if let Some(v) = &v {
                            budget::charge_value(v, "$setWindowFields")?;
                        }
                        Ok(v)
                    })
                    .collect::<Result<_, QueryError>>()?;
                let keys = match window {
                    Window::Range(_, _, unit) => self.x_values(part, unit.is_some())?,
                    Window::Documents(..) => vec![0.0; n],
                };
                let fold = |slice: &[Option<Bson>]| op.run(slice.iter().cloned());
                // The whole partition: one fold for every document.
                if *window == Window::Documents(Bound::Unbounded, Bound::Unbounded) {
                    let folded = fold(&values)?;
                    // n copies: refuse before making them.
                    let each = budget::value_cost(&folded);
                    budget::ensure_room(each.saturating_mul(n), "$setWindowFields")?;
                    budget::charge(each.saturating_mul(n), "$setWindowFields")?;
                    return Ok(vec![Some(folded); n]);
                }
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    limits.tick(i)?;
                    let (lo, hi) = self.window_at(window, i, &keys);
                    let slice = if lo <= hi {
                        &values[lo as usize..=hi as usize]
                    } else {
                        &values[0..0]
                    };
                    let folded = fold(slice)?;
                    budget::charge_value(&folded, "$setWindowFields")?;
                    out.push(Some(folded));
                }
                Ok(out)
            }
            Func::Calculus {
                integral,
                input,
                unit,
                window,
            } => {
                let xs = self.x_values(part, unit.is_some())?;
                let per = unit
                    .as_deref()
                    .and_then(window_math::unit_millis)
                    .unwrap_or(1.0);
                let ys: Vec<Option<f64>> = part
                    .iter()
                    .map(|d| {
                        eval_in(input, d, vars)
                            .map(|v| v.as_ref().and_then(Num::from_bson).map(Num::to_f64))
                    })
                    .collect::<Result<_, _>>()?;
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    limits.tick(i)?;
                    let (lo, hi) = self.window_at(window, i, &xs);
                    let points: Vec<(f64, f64)> = if lo <= hi {
                        (lo as usize..=hi as usize)
                            .filter_map(|j| ys[j].map(|y| (xs[j], y)))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let v = if *integral {
                        window_math::integral(&points, per)
                    } else {
                        window_math::derivative(&points, per)
                    };
                    out.push(Some(v.map(Bson::Double).unwrap_or(Bson::Null)));
                }
                Ok(out)
            }
            Func::ExpMovingAvg { input, alpha } => {
                let xs: Vec<Option<f64>> = part
                    .iter()
                    .map(|d| {
                        eval_in(input, d, vars)
                            .map(|v| v.as_ref().and_then(Num::from_bson).map(Num::to_f64))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(window_math::exp_moving_avg(&xs, *alpha)
                    .into_iter()
                    .map(|v| Some(v.map(Bson::Double).unwrap_or(Bson::Null)))
                    .collect())
            }
        }
    }
}
