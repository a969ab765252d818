//! `$densify`: fills the gaps in a sequence of numbers or dates with new
//! documents, per partition, on a grid of `step` from the lower bound.
//!
//! The output is sorted by the partition fields, then by the field (as
//! MongoDB, which puts a `$sort` before its densify stage). Documents whose
//! field is null or missing pass through unchanged.

use std::cmp::Ordering;
use std::collections::HashMap;

use bson::{Bson, Document};

use super::fields::set_nested;
use crate::query::compare::{canonical_key, compare_values};
use crate::query::expr::{add_units_utc, compare_opt, type_name};
use crate::query::limits::{doc_size, Limits};
use crate::query::number::{self, Num, Overflow};
use crate::query::path::{get_exact, split};
use crate::query::{display_value, QueryError};

/// The time units a date `$densify` accepts.
const UNITS: &[&str] = &[
    "year",
    "quarter",
    "month",
    "week",
    "day",
    "hour",
    "minute",
    "second",
    "millisecond",
];

#[derive(Debug, Clone)]
enum Bounds {
    Full,
    Partition,
    /// `[lower, upper)`.
    Explicit(Box<(Bson, Bson)>),
}

/// A parsed `$densify` stage.
#[derive(Debug, Clone)]
pub(super) struct Densify {
    field: Vec<String>,
    partition_by: Vec<Vec<String>>,
    step: Num,
    unit: Option<String>,
    bounds: Bounds,
}

fn missing(name: &str) -> QueryError {
    QueryError::new(
        40414,
        format!("BSON field '$densify.{name}' is missing but a required field"),
    )
}

fn unknown(name: &str) -> QueryError {
    QueryError::new(
        40415,
        format!("BSON field '$densify.{name}' is an unknown field."),
    )
}

fn wrong_type(name: &str, v: &Bson, expected: &str) -> QueryError {
    QueryError::type_mismatch(format!(
        "BSON field '$densify.{name}' is the wrong type '{}', expected type '{expected}'",
        type_name(Some(v))
    ))
}

impl Densify {
    /// Parses `{field, partitionByFields, range: {step, unit, bounds}}`.
    pub(super) fn parse(arg: &Bson) -> Result<Densify, QueryError> {
        let Bson::Document(spec) = arg else {
            return Err(QueryError::new(
                6246500,
                format!(
                    "$densify must take a nested object but found: {}",
                    display_value(arg)
                ),
            ));
        };
        let mut field = None;
        let mut partition_by = Vec::new();
        let mut range = None;
        for (k, v) in spec {
            match k.as_str() {
                "field" => {
                    match v {
                        Bson::String(s) if !s.is_empty() && !s.starts_with('$') => field = Some(s),
                        Bson::String(_) => return Err(QueryError::failed_to_parse(
                            "$densify 'field' must be a non-empty field path without a '$' prefix",
                        )),
                        other => return Err(wrong_type("field", other, "string")),
                    }
                }
                "partitionByFields" => match v {
                    Bson::Array(items) => {
                        for item in items {
                            match item {
                                Bson::String(s) if !s.is_empty() && !s.starts_with('$') => {
                                    partition_by.push(split(s))
                                }
                                other => {
                                    return Err(wrong_type("partitionByFields", other, "string"))
                                }
                            }
                        }
                    }
                    other => return Err(wrong_type("partitionByFields", other, "array")),
                },
                "range" => match v {
                    Bson::Document(d) => range = Some(d),
                    other => return Err(wrong_type("range", other, "object")),
                },
                other => return Err(unknown(other)),
            }
        }
        let field = field.ok_or_else(|| missing("field"))?;
        let range = range.ok_or_else(|| missing("range"))?;
        let mut step = None;
        let mut unit = None;
        let mut bounds = None;
        for (k, v) in range {
            match k.as_str() {
                "step" => step = Some(v),
                "unit" => match v {
                    Bson::String(u) if UNITS.contains(&u.as_str()) => unit = Some(u.clone()),
                    other => {
                        return Err(QueryError::failed_to_parse(format!(
                            "unknown time unit value: {}",
                            display_value(other)
                        )))
                    }
                },
                "bounds" => bounds = Some(v),
                other => return Err(unknown(&format!("range.{other}"))),
            }
        }
        let step = step.ok_or_else(|| missing("range.step"))?;
        let step = match Num::from_bson(step) {
            Some(n) if n.to_f64() > 0.0 => n,
            _ => return Err(QueryError::new(
                5733401,
                "The step parameter in a range statement must be a strictly positive numeric value",
            )),
        };
        if unit.is_some() && step.to_i64_exact().is_none() {
            return Err(QueryError::new(
                5733412,
                "The step parameter in a range statement must be a whole number when densifying a date range",
            ));
        }
        let bounds = match bounds.ok_or_else(|| missing("range.bounds"))? {
            Bson::String(s) if s == "full" => Bounds::Full,
            Bson::String(s) if s == "partition" => Bounds::Partition,
            Bson::Array(b) if b.len() == 2 => {
                let (lo, hi) = (&b[0], &b[1]);
                let dates = matches!((lo, hi), (Bson::DateTime(_), Bson::DateTime(_)));
                let numbers = Num::from_bson(lo).is_some() && Num::from_bson(hi).is_some();
                if !(dates || numbers) || compare_values(lo, hi) == Ordering::Greater {
                    return Err(QueryError::new(
                        5733402,
                        "A bounding array must be an ascending array of either two dates or two numbers",
                    ));
                }
                if dates != unit.is_some() {
                    return Err(QueryError::new(
                        5733410,
                        "a bounding array of dates requires a unit, and a unit requires date bounds",
                    ));
                }
                Bounds::Explicit(Box::new((lo.clone(), hi.clone())))
            }
            Bson::Array(_) => {
                return Err(QueryError::new(
                    5733403,
                    "A bounding array in a range statement must have exactly two elements",
                ))
            }
            other => {
                return Err(QueryError::new(
                    5946802,
                    format!(
                        "range bounds must be 'full', 'partition' or an array, found {}",
                        display_value(other)
                    ),
                ))
            }
        };
        Ok(Densify {
            field: split(field),
            partition_by,
            step,
            unit,
            bounds,
        })
    }

    /// The grid value after `v`, or an error when the step makes no progress.
    fn next(&self, v: &Bson) -> Result<Bson, QueryError> {
        let next = match (&self.unit, v) {
            (Some(unit), Bson::DateTime(d)) => {
                let amount = self.step.to_i64_exact().unwrap_or(1);
                add_units_utc(d.timestamp_millis(), unit, amount)
                    .map(|ms| Bson::DateTime(bson::DateTime::from_millis(ms)))
            }
            (None, v) => Num::from_bson(v)
                .and_then(|n| number::add(n, self.step, Overflow::ToDouble))
                .map(Num::to_bson),
            _ => None,
        };
        match next {
            Some(n) if compare_values(&n, v) == Ordering::Greater => Ok(n),
            _ => Err(QueryError::new(
                5733405,
                format!(
                    "$densify cannot step past {}: the step is too small for the value",
                    display_value(v)
                ),
            )),
        }
    }

    /// Checks the field's value: a number without `unit`, a date with it.
    fn check_value(&self, v: &Bson) -> Result<(), QueryError> {
        let ok = match self.unit {
            Some(_) => matches!(v, Bson::DateTime(_)),
            None => Num::from_bson(v).is_some(),
        };
        if ok {
            Ok(())
        } else {
            Err(QueryError::new(
                5733201,
                format!(
                    "$densify: the field must be {} in every document, found {}",
                    if self.unit.is_some() {
                        "a date when a unit is given"
                    } else {
                        "numeric when no unit is given"
                    },
                    type_name(Some(v))
                ),
            ))
        }
    }

    /// Runs the stage.
    pub(super) fn run(
        &self,
        docs: Vec<Document>,
        limits: &Limits,
    ) -> Result<Vec<Document>, QueryError> {
        // Partitions, each a list of (value, document); values checked.
        let mut keys: Vec<Vec<Option<Bson>>> = Vec::new();
        let mut parts: Vec<Vec<(Option<Bson>, Document)>> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let (mut min, mut max): (Option<Bson>, Option<Bson>) = (None, None);
        for (i, d) in docs.into_iter().enumerate() {
            limits.tick(i)?;
            let value = get_exact(&d, &self.field)
                .filter(|v| !matches!(v, Bson::Null | Bson::Undefined))
                .cloned();
            if let Some(v) = &value {
                self.check_value(v)?;
                if min.as_ref().is_none_or(|m| compare_values(v, m).is_lt()) {
                    min = Some(v.clone());
                }
                if max.as_ref().is_none_or(|m| compare_values(v, m).is_gt()) {
                    max = Some(v.clone());
                }
            }
            let key: Vec<Option<Bson>> = self
                .partition_by
                .iter()
                .map(|p| get_exact(&d, p).cloned())
                .collect();
            let canonical = canonical_key(&Bson::Array(
                key.iter()
                    .map(|k| k.clone().unwrap_or(Bson::Undefined))
                    .collect(),
            ));
            let slot = *index.entry(canonical).or_insert_with(|| {
                keys.push(key);
                parts.push(Vec::new());
                parts.len() - 1
            });
            parts[slot].push((value, d));
        }
        let mut order: Vec<usize> = (0..parts.len()).collect();
        order.sort_by(|a, b| {
            keys[*a]
                .iter()
                .zip(&keys[*b])
                .map(|(x, y)| compare_opt(x.as_ref(), y.as_ref()))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
        let mut out = Vec::new();
        let mut generated_bytes = 0usize;
        for p in order {
            let mut part = std::mem::take(&mut parts[p]);
            part.sort_by(|a, b| compare_opt(a.0.as_ref(), b.0.as_ref()));
            let (lo, hi, hi_inclusive) = match &self.bounds {
                Bounds::Full => (min.clone(), max.clone(), true),
                Bounds::Partition => {
                    let mut values = part.iter().filter_map(|(v, _)| v.as_ref());
                    let first = values.next().cloned();
                    let last = values.next_back().cloned().or_else(|| first.clone());
                    (first, last, true)
                }
                Bounds::Explicit(b) => (Some(b.0.clone()), Some(b.1.clone()), false),
            };
            let (Some(lo), Some(hi)) = (lo, hi) else {
                out.extend(part.into_iter().map(|(_, d)| d));
                continue;
            };
            let in_range = |v: &Bson| {
                let c = compare_values(v, &hi);
                c.is_lt() || (hi_inclusive && c.is_eq())
            };
            let template = &keys[p];
            let mut cur = lo;
            let mut emit = |value: &Bson, out: &mut Vec<Document>| -> Result<(), QueryError> {
                let mut d = Document::new();
                set_nested(&mut d, &self.field, Some(value.clone()));
                for (path, v) in self.partition_by.iter().zip(template) {
                    if let Some(v) = v {
                        set_nested(&mut d, path, Some(v.clone()));
                    }
                }
                generated_bytes = generated_bytes.saturating_add(doc_size(&d));
                limits.check_bytes("$densify", generated_bytes)?;
                crate::query::budget::charge_doc(&d, "$densify")?;
                limits.tick(out.len())?;
                out.push(d);
                Ok(())
            };
            for (value, d) in part {
                if let Some(v) = &value {
                    while compare_values(&cur, v).is_lt() && in_range(&cur) {
                        emit(&cur, &mut out)?;
                        cur = self.next(&cur)?;
                    }
                    if compare_values(&cur, v).is_eq() {
                        cur = self.next(&cur)?;
                    }
                }
                out.push(d);
            }
            // Past the last document: up to the upper bound (`cur` is already
            // past any document equal to it).
            while in_range(&cur) {
                emit(&cur, &mut out)?;
                cur = self.next(&cur)?;
            }
        }
        Ok(out)
    }
}
