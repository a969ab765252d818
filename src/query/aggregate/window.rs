//! `$setWindowFields`: window functions over sorted partitions.
//!
//! Supported: `partitionBy`, `sortBy`, the accumulators of [`super::group`]
//! over `documents` windows (`"unbounded"`, `"current"` or offsets) and
//! numeric `range` windows without `unit`, plus `$rank`, `$denseRank`,
//! `$documentNumber` and `$shift`.

use std::collections::HashMap;

use bson::{Bson, Document};

use super::super::compare::canonical_key;
use super::super::expr::Expr;
use super::super::number::Num;
use super::super::path::{get_exact, split};
use super::super::sort::SortSpec;
use super::super::{display_value, QueryError};
use super::eval_in;
use super::fields::set_nested;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Bound {
    Unbounded,
    Current,
    Offset(f64),
}

#[derive(Debug, Clone, PartialEq)]
enum Window {
    Documents(Bound, Bound),
    Range(Bound, Bound),
}

#[derive(Debug, Clone)]
enum Func {
    Accumulate(String, Expr, Window),
    Rank,
    DenseRank,
    DocumentNumber,
    Shift {
        output: Expr,
        by: i64,
        default: Expr,
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
    if d.contains_key("unit") {
        return Err(QueryError::unsupported("A time-unit range window"));
    }
    let bounds = |k: &str| -> Result<(Bound, Bound), QueryError> {
        match d.get(k) {
            Some(Bson::Array(b)) if b.len() == 2 => Ok((parse_bound(&b[0])?, parse_bound(&b[1])?)),
            _ => Err(QueryError::failed_to_parse(format!(
                "Window bounds must be a 2-element array: {k}"
            ))),
        }
    };
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
        Ok(Window::Range(lo, hi))
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
        "$sum" | "$avg" | "$min" | "$max" | "$first" | "$last" | "$push" | "$addToSet"
        | "$count" | "$mergeObjects" | "$stdDevPop" | "$stdDevSamp" => {
            Func::Accumulate(op.clone(), Expr::parse(arg)?, parse_window(window)?)
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
            matches!(f, Func::Rank | Func::DenseRank | Func::DocumentNumber | Func::Shift { .. })
                || matches!(f, Func::Accumulate(_, _, w) if *w != Window::Documents(Bound::Unbounded, Bound::Unbounded))
        });
        if needs_sort && stage.sort_by.is_none() {
            return Err(QueryError::failed_to_parse(
                "this window function requires a sortBy",
            ));
        }
        Ok(stage)
    }

    /// Runs the stage: partitions in first-seen order, each sorted by `sortBy`.
    pub(super) fn run(
        &self,
        docs: Vec<Document>,
        vars: &[(String, Bson)],
    ) -> Result<Vec<Document>, QueryError> {
        let mut partitions: Vec<Vec<Document>> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        for d in docs {
            let key = match &self.partition_by {
                Some(e) => eval_in(e, &d, vars)?.unwrap_or(Bson::Null),
                None => Bson::Null,
            };
            let slot = *index.entry(canonical_key(&key)).or_insert_with(|| {
                partitions.push(Vec::new());
                partitions.len() - 1
            });
            partitions[slot].push(d);
        }
        let mut out = Vec::new();
        for mut part in partitions {
            if let Some((spec, _)) = &self.sort_by {
                spec.sort(&mut part);
            }
            let mut results: Vec<Vec<Option<Bson>>> = Vec::with_capacity(self.outputs.len());
            for (_, f) in &self.outputs {
                results.push(self.compute(f, &part, vars)?);
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

    fn compute(
        &self,
        f: &Func,
        part: &[Document],
        vars: &[(String, Bson)],
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
                    .map(|d| eval_in(expr, d, vars))
                    .collect::<Result<_, _>>()?;
                let keys: Vec<Option<f64>> = part
                    .iter()
                    .map(|d| {
                        self.sort_key(d)
                            .as_ref()
                            .and_then(Num::from_bson)
                            .map(Num::to_f64)
                    })
                    .collect();
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    let (lo, hi) = match window {
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
                        Window::Range(lo, hi) => {
                            let Some(center) = keys[i] else {
                                return Err(QueryError::new(
                                    5429414,
                                    "Invalid range: Expected the sortBy field to be a number",
                                ));
                            };
                            let within = |k: f64| {
                                let above = match lo {
                                    Bound::Unbounded => true,
                                    Bound::Current => k >= center,
                                    Bound::Offset(x) => k >= center + x,
                                };
                                let below = match hi {
                                    Bound::Unbounded => true,
                                    Bound::Current => k <= center,
                                    Bound::Offset(x) => k <= center + x,
                                };
                                above && below
                            };
                            let idx: Vec<i64> = (0..n)
                                .filter(|j| keys[*j].is_some_and(within))
                                .map(|j| j as i64)
                                .collect();
                            match (idx.first(), idx.last()) {
                                (Some(a), Some(b)) => (*a, *b),
                                _ => (1, 0),
                            }
                        }
                    };
                    let slice = if lo <= hi {
                        &values[lo as usize..=hi as usize]
                    } else {
                        &values[0..0]
                    };
                    let folded = super::group::fold(op, slice.iter().cloned())
                        .unwrap_or_else(|| Err(QueryError::unsupported(op)))?;
                    out.push(Some(folded));
                }
                Ok(out)
            }
        }
    }
}
