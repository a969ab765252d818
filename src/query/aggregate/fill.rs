//! `$fill`: replaces null and missing field values with a constant
//! expression, the last value seen (`locf`) or a linear interpolation.
//!
//! As in MongoDB (which rewrites `$fill` into `$setWindowFields`), a stage
//! with a `method` sorts its output by the partition key, then `sortBy`.

use std::collections::HashMap;

use bson::{Bson, Document};

use super::eval_in;
use super::fields::set_nested;
use crate::query::compare::canonical_key;
use crate::query::expr::{compare_opt, nullish, type_name, Expr};
use crate::query::limits::Limits;
use crate::query::number::Num;
use crate::query::path::{get_exact, split};
use crate::query::sort::SortSpec;
use crate::query::{display_value, QueryError};

#[derive(Debug, Clone)]
enum How {
    Value(Expr),
    Locf,
    Linear,
}

/// A parsed `$fill` stage.
#[derive(Debug, Clone)]
pub(super) struct Fill {
    partition_by: Option<Expr>,
    sort_by: Option<(SortSpec, Vec<String>)>,
    outputs: Vec<(Vec<String>, How)>,
}

fn invalid(message: impl Into<String>) -> QueryError {
    QueryError::failed_to_parse(message)
}

impl Fill {
    /// Parses `{partitionBy | partitionByFields, sortBy, output}`.
    pub(super) fn parse(arg: &Bson) -> Result<Fill, QueryError> {
        let Bson::Document(spec) = arg else {
            return Err(QueryError::type_mismatch(format!(
                "$fill must be an object, found {}",
                type_name(Some(arg))
            )));
        };
        let mut fill = Fill {
            partition_by: None,
            sort_by: None,
            outputs: Vec::new(),
        };
        for (k, v) in spec {
            match (k.as_str(), v) {
                ("partitionBy", v) => {
                    if fill.partition_by.is_some() {
                        return Err(invalid("Only one of 'partitionBy' and 'partitionByFields' is allowed for '$fill'"));
                    }
                    fill.partition_by = Some(Expr::parse(v)?);
                }
                ("partitionByFields", Bson::Array(fields)) => {
                    if fill.partition_by.is_some() {
                        return Err(invalid("Only one of 'partitionBy' and 'partitionByFields' is allowed for '$fill'"));
                    }
                    // An object of the fields, as MongoDB rewrites it.
                    let mut obj = Document::new();
                    for f in fields {
                        match f {
                            Bson::String(s) if !s.is_empty() && !s.starts_with('$') => {
                                obj.insert(s.replace('.', "_"), format!("${s}"));
                            }
                            other => {
                                return Err(invalid(format!(
                                    "'partitionByFields' must contain field names, found {}",
                                    display_value(other)
                                )))
                            }
                        }
                    }
                    fill.partition_by = Some(Expr::parse(&Bson::Document(obj))?);
                }
                ("sortBy", Bson::Document(d)) => {
                    let fields = d.keys().map(|k| k.to_string()).collect();
                    fill.sort_by = Some((SortSpec::parse(d)?, fields));
                }
                ("output", Bson::Document(d)) => {
                    for (field, how) in d {
                        fill.outputs
                            .push((split(field), Self::parse_output(field, how)?));
                    }
                }
                ("partitionByFields" | "sortBy" | "output", other) => {
                    return Err(QueryError::type_mismatch(format!(
                        "BSON field '$fill.{k}' is the wrong type '{}'",
                        type_name(Some(other))
                    )))
                }
                (other, _) => {
                    return Err(QueryError::new(
                        40415,
                        format!("BSON field '$fill.{other}' is an unknown field."),
                    ))
                }
            }
        }
        if fill.outputs.is_empty() {
            return Err(QueryError::new(
                40414,
                "BSON field '$fill.output' is missing but a required field",
            ));
        }
        let has_method = fill
            .outputs
            .iter()
            .any(|(_, h)| matches!(h, How::Locf | How::Linear));
        if has_method && fill.sort_by.is_none() {
            return Err(invalid("'sortBy' is required when using 'method' in $fill"));
        }
        let linear = fill.outputs.iter().any(|(_, h)| matches!(h, How::Linear));
        if linear && fill.sort_by.as_ref().is_some_and(|(_, f)| f.len() != 1) {
            return Err(QueryError::new(
                605001,
                "$linearFill requires a sortBy with exactly one field",
            ));
        }
        Ok(fill)
    }

    fn parse_output(field: &str, how: &Bson) -> Result<How, QueryError> {
        let Bson::Document(d) = how else {
            return Err(invalid(format!(
                "$fill output field '{field}' must be an object"
            )));
        };
        if d.len() != 1 {
            return Err(invalid(format!(
                "$fill output field '{field}' must have exactly one of 'value' or 'method'"
            )));
        }
        match (d.get("value"), d.get("method")) {
            (Some(v), None) => Ok(How::Value(Expr::parse(v)?)),
            (None, Some(Bson::String(m))) if m == "locf" => Ok(How::Locf),
            (None, Some(Bson::String(m))) if m == "linear" => Ok(How::Linear),
            (None, Some(other)) => Err(invalid(format!(
                "Method must be either 'locf' or 'linear', found {}",
                display_value(other)
            ))),
            _ => Err(invalid(format!(
                "$fill output field '{field}' must have exactly one of 'value' or 'method'"
            ))),
        }
    }

    /// Runs the stage.
    pub(super) fn run(
        &self,
        docs: Vec<Document>,
        vars: &[(String, Bson)],
        limits: &Limits,
    ) -> Result<Vec<Document>, QueryError> {
        let has_method = self
            .outputs
            .iter()
            .any(|(_, h)| matches!(h, How::Locf | How::Linear));
        let mut docs = docs;
        // Constant fills need neither partitions nor order.
        for (i, d) in docs.iter_mut().enumerate() {
            limits.tick(i)?;
            for (path, how) in &self.outputs {
                if let How::Value(e) = how {
                    if nullish(get_exact(d, path)) {
                        let v = eval_in(e, d, vars)?;
                        set_nested(d, path, v);
                    }
                }
            }
        }
        if !has_method {
            return Ok(docs);
        }
        limits.check_docs("$fill", &docs)?;
        // Partitions ordered by key, each sorted by `sortBy`.
        let mut keys: Vec<Bson> = Vec::new();
        let mut parts: Vec<Vec<Document>> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        for d in docs {
            let key = match &self.partition_by {
                Some(e) => eval_in(e, &d, vars)?.unwrap_or(Bson::Null),
                None => Bson::Null,
            };
            let slot = *index.entry(canonical_key(&key)).or_insert_with(|| {
                keys.push(key);
                parts.push(Vec::new());
                parts.len() - 1
            });
            parts[slot].push(d);
        }
        let mut order: Vec<usize> = (0..parts.len()).collect();
        order.sort_by(|a, b| compare_opt(Some(&keys[*a]), Some(&keys[*b])));
        let mut out = Vec::new();
        for p in order {
            let mut part = std::mem::take(&mut parts[p]);
            if let Some((spec, _)) = &self.sort_by {
                spec.sort(&mut part);
            }
            for (path, how) in &self.outputs {
                match how {
                    How::Value(_) => {}
                    How::Locf => locf(&mut part, path),
                    How::Linear => self.linear(&mut part, path)?,
                }
            }
            out.extend(part);
        }
        Ok(out)
    }

    /// Linear interpolation on the single `sortBy` field between the nearest
    /// non-null neighbours; values outside them become null.
    fn linear(&self, part: &mut [Document], path: &[String]) -> Result<(), QueryError> {
        let Some((_, fields)) = &self.sort_by else {
            return Ok(());
        };
        let key_path = split(fields.first().map(String::as_str).unwrap_or(""));
        let x_of = |d: &Document| -> Result<f64, QueryError> {
            match get_exact(d, &key_path) {
                Some(Bson::DateTime(t)) => Ok(t.timestamp_millis() as f64),
                Some(v) => Num::from_bson(v).map(Num::to_f64).ok_or_else(|| {
                    QueryError::new(
                        6050106,
                        format!(
                            "The sortBy field of $linearFill must be numeric or a date, found {}",
                            type_name(Some(v))
                        ),
                    )
                }),
                None => Err(QueryError::new(
                    6050106,
                    "The sortBy field of $linearFill must be numeric or a date, found missing",
                )),
            }
        };
        let mut known: Vec<(usize, f64, f64)> = Vec::new();
        for (i, d) in part.iter().enumerate() {
            match get_exact(d, path) {
                None | Some(Bson::Null) | Some(Bson::Undefined) => {}
                Some(v) => match Num::from_bson(v) {
                    Some(n) => known.push((i, x_of(d)?, n.to_f64())),
                    None => {
                        return Err(QueryError::new(
                            6050103,
                            format!(
                                "Value to $linearFill must be numeric, found {}",
                                type_name(Some(v))
                            ),
                        ))
                    }
                },
            }
        }
        let mut next_known = 0usize;
        for (i, d) in part.iter_mut().enumerate() {
            while next_known < known.len() && known[next_known].0 < i {
                next_known += 1;
            }
            if known.get(next_known).is_some_and(|k| k.0 == i) {
                continue;
            }
            let before = next_known.checked_sub(1).and_then(|j| known.get(j));
            let after = known.get(next_known);
            let value = match (before, after) {
                (Some(&(_, x1, y1)), Some(&(_, x2, y2))) => {
                    let x = x_of(d)?;
                    let y = if x2 == x1 {
                        y1
                    } else {
                        y1 + (x - x1) * (y2 - y1) / (x2 - x1)
                    };
                    Bson::Double(y)
                }
                _ => Bson::Null,
            };
            set_nested(d, path, Some(value));
        }
        Ok(())
    }
}

/// Last observation carried forward; before the first one the field is null.
fn locf(part: &mut [Document], path: &[String]) {
    let mut last: Option<Bson> = None;
    for d in part.iter_mut() {
        match get_exact(d, path) {
            None | Some(Bson::Null) | Some(Bson::Undefined) => {
                set_nested(d, path, Some(last.clone().unwrap_or(Bson::Null)));
            }
            Some(v) => last = Some(v.clone()),
        }
    }
}
