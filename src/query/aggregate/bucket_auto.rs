//! `$bucketAuto`: documents sorted by a value and cut into buckets of about
//! the same size.

use std::cell::Cell;

use bson::{Bson, Document};

use super::eval_in;
use super::group::Outputs;
use crate::query::compare::compare_values;
use crate::query::expr::{type_name, Expr};
use crate::query::limits::Limits;
use crate::query::number::Num;
use crate::query::{display_value, QueryError};

/// A parsed `$bucketAuto` stage.
#[derive(Debug, Clone)]
pub(super) struct BucketAuto {
    group_by: Expr,
    buckets: usize,
    outputs: Outputs,
}

impl BucketAuto {
    /// Parses `{groupBy, buckets, output, granularity}`.
    pub(super) fn parse(arg: &Bson) -> Result<BucketAuto, QueryError> {
        let Bson::Document(spec) = arg else {
            return Err(QueryError::new(
                40240,
                format!(
                    "The argument to $bucketAuto must be an object, but found type: {}",
                    type_name(Some(arg))
                ),
            ));
        };
        let mut group_by = None;
        let mut buckets = None;
        let mut output = None;
        for (k, v) in spec {
            match k.as_str() {
                "groupBy" => {
                    if !matches!(v, Bson::String(s) if s.starts_with('$'))
                        && !matches!(v, Bson::Document(_))
                    {
                        return Err(QueryError::new(
                            40239,
                            format!(
                                "The $bucketAuto 'groupBy' field must be defined as a $-prefixed path or an expression object, but found: {}",
                                display_value(v)
                            ),
                        ));
                    }
                    group_by = Some(Expr::parse(v)?);
                }
                "buckets" => {
                    let Some(n) = Num::from_bson(v) else {
                        return Err(QueryError::new(
                            40241,
                            format!(
                                "The $bucketAuto 'buckets' field must be a numeric value, but found type: {}",
                                type_name(Some(v))
                            ),
                        ));
                    };
                    let n = match n.to_i64_exact().and_then(|n| i32::try_from(n).ok()) {
                        Some(n) => n,
                        None => {
                            return Err(QueryError::new(
                                40242,
                                format!(
                                    "The $bucketAuto 'buckets' field must be representable as a 32-bit integer, but found {}",
                                    display_value(v)
                                ),
                            ))
                        }
                    };
                    if n <= 0 {
                        return Err(QueryError::new(
                            40243,
                            format!(
                                "The $bucketAuto 'buckets' field must be greater than 0, but found: {n}"
                            ),
                        ));
                    }
                    buckets = Some(n as usize);
                }
                "output" => match v {
                    Bson::Document(d) => output = Some(d),
                    other => {
                        return Err(QueryError::new(
                            40244,
                            format!(
                            "The $bucketAuto 'output' field must be an object, but found type: {}",
                            type_name(Some(other))
                        ),
                        ))
                    }
                },
                "granularity" => {
                    return Err(QueryError::unsupported(
                        "The $bucketAuto 'granularity' option",
                    ))
                }
                other => {
                    return Err(QueryError::new(
                        40245,
                        format!("Unrecognized option to $bucketAuto: {other}."),
                    ))
                }
            }
        }
        let (Some(group_by), Some(buckets)) = (group_by, buckets) else {
            return Err(QueryError::new(
                40246,
                "$bucketAuto requires 'groupBy' and 'buckets' to be specified",
            ));
        };
        Ok(BucketAuto {
            group_by,
            buckets,
            outputs: Outputs::parse(output)?,
        })
    }

    /// Runs the stage: buckets ordered by value, `_id: {min, max}` where each
    /// bucket's `max` is the next bucket's `min` (the last one's own maximum).
    pub(super) fn run(
        &self,
        docs: Vec<Document>,
        vars: &[(String, Bson)],
        limits: &Limits,
    ) -> Result<Vec<Document>, QueryError> {
        limits.check_docs("$bucketAuto", &docs)?;
        let mut keyed = Vec::with_capacity(docs.len());
        for (i, d) in docs.into_iter().enumerate() {
            limits.tick(i)?;
            let v = eval_in(&self.group_by, &d, vars)?.unwrap_or(Bson::Null);
            keyed.push((v, d));
        }
        keyed.sort_by(|a, b| compare_values(&a.0, &b.0));
        let n = keyed.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let approx = ((n as f64 / self.buckets as f64).round() as usize).max(1);
        // bounds[b] = (first index, one past the last index) of bucket b.
        let mut bounds: Vec<(usize, usize)> = Vec::new();
        let mut start = 0;
        while start < n {
            let last_bucket = bounds.len() + 1 == self.buckets;
            let mut end = if last_bucket {
                n
            } else {
                (start + approx).min(n)
            };
            // Equal values never straddle two buckets.
            while end < n && compare_values(&keyed[end].0, &keyed[end - 1].0).is_eq() {
                end += 1;
            }
            bounds.push((start, end));
            start = end;
        }
        let mut ids = Vec::with_capacity(bounds.len());
        for (b, &(s, e)) in bounds.iter().enumerate() {
            let min = keyed[s].0.clone();
            let max = match bounds.get(b + 1) {
                Some(&(next, _)) => keyed[next].0.clone(),
                None => keyed[e - 1].0.clone(),
            };
            let mut id = Document::new();
            id.insert("min", min);
            id.insert("max", max);
            ids.push(Bson::Document(id));
        }
        let mut bucket_of = Vec::with_capacity(n);
        for (b, &(s, e)) in bounds.iter().enumerate() {
            bucket_of.extend(std::iter::repeat_n(b, e - s));
        }
        let sorted: Vec<Document> = keyed.into_iter().map(|(_, d)| d).collect();
        let next = Cell::new(0usize);
        let key_of = |_: &Document| -> Result<Bson, QueryError> {
            let i = next.get();
            next.set(i + 1);
            Ok(Bson::Int64(bucket_of.get(i).copied().unwrap_or(0) as i64))
        };
        let mut out = self.outputs.group(&sorted, &key_of, vars)?;
        for d in &mut out {
            let b = match d.get("_id") {
                Some(Bson::Int64(b)) => *b as usize,
                _ => 0,
            };
            if let Some(id) = ids.get(b) {
                d.insert("_id", id.clone());
            }
        }
        Ok(out)
    }
}
