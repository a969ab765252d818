//! `$out`, `$merge` and `$sample`.

use bson::{oid::ObjectId, Bson, Document};

use super::{eval_in, AggregateContext, Pipeline};
use crate::query::compare::values_equal;
use crate::query::expr::{type_name, Expr};
use crate::query::id::validate_id;
use crate::query::path::{get_exact, split};
use crate::query::QueryError;

/// Checks a target collection name the way MongoDB validates namespaces.
fn valid_name(name: &str) -> Result<String, QueryError> {
    if name.is_empty()
        || name.contains('$')
        || name.contains('\0')
        || name.starts_with("system.")
        || name.starts_with('.')
    {
        return Err(QueryError::new(
            73,
            format!("Invalid collection name: {name}"),
        ));
    }
    Ok(name.to_string())
}

/// Parses `$out`: `"coll"` or `{db, coll}` (same database only).
pub(super) fn parse_out(arg: &Bson) -> Result<String, QueryError> {
    parse_target(arg).and_then(|n| valid_name(&n))
}

fn parse_target(arg: &Bson) -> Result<String, QueryError> {
    match arg {
        Bson::String(s) if !s.is_empty() => Ok(s.clone()),
        Bson::Document(d) => {
            if d.contains_key("db") {
                return Err(QueryError::unsupported("$out to another database"));
            }
            match d.get("coll") {
                Some(Bson::String(s)) if !s.is_empty() => Ok(s.clone()),
                _ => Err(QueryError::new(
                    40414,
                    "BSON field '$out.coll' is missing but a required field",
                )),
            }
        }
        other => Err(QueryError::new(
            16990,
            format!(
                "$out only supports a string or object argument, but found {}",
                type_name(Some(other))
            ),
        )),
    }
}

/// Gives every document an `_id` (an ObjectId placed first when missing).
fn with_id(doc: Document) -> Result<Document, QueryError> {
    match doc.get("_id") {
        Some(id) => {
            validate_id(id)?;
            Ok(doc)
        }
        None => {
            let mut d = Document::new();
            d.insert("_id", ObjectId::new());
            d.extend(doc);
            Ok(d)
        }
    }
}

/// `$out`: replaces the target collection with the pipeline's output.
pub(super) fn write_out(
    coll: &str,
    docs: Vec<Document>,
    ctx: &dyn AggregateContext,
) -> Result<(), QueryError> {
    let docs = docs
        .into_iter()
        .map(with_id)
        .collect::<Result<Vec<_>, _>>()?;
    ctx.write_collection(coll, docs)
}

#[derive(Debug, Clone)]
enum WhenMatched {
    Merge,
    Replace,
    KeepExisting,
    Fail,
    Pipeline(Pipeline),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WhenNotMatched {
    Insert,
    Discard,
    Fail,
}

/// A parsed `$merge` stage.
#[derive(Debug, Clone)]
pub(crate) struct MergeSpec {
    into: String,
    on: Vec<Vec<String>>,
    matched: WhenMatched,
    not_matched: WhenNotMatched,
    /// `let`: variables for the `whenMatched` pipeline, evaluated against the
    /// incoming document (`$$new` is always bound to it).
    lets: Vec<(String, Expr)>,
}

impl MergeSpec {
    /// Parses `"coll"` or `{into, on, whenMatched, whenNotMatched}`.
    pub(crate) fn parse(arg: &Bson) -> Result<MergeSpec, QueryError> {
        let mut spec = MergeSpec {
            into: String::new(),
            on: vec![vec!["_id".to_string()]],
            matched: WhenMatched::Merge,
            not_matched: WhenNotMatched::Insert,
            lets: Vec::new(),
        };
        let d = match arg {
            Bson::String(s) => {
                spec.into = valid_name(s)?;
                return Ok(spec);
            }
            Bson::Document(d) => d,
            other => {
                return Err(QueryError::new(
                    51182,
                    format!(
                        "$merge only supports a string or object argument, not {}",
                        type_name(Some(other))
                    ),
                ))
            }
        };
        for (k, v) in d {
            match k.as_str() {
                "into" => spec.into = parse_out(v)?,
                "on" => {
                    spec.on = match v {
                        Bson::String(s) => vec![split(s)],
                        Bson::Array(items) if !items.is_empty() => items
                            .iter()
                            .map(|i| match i {
                                Bson::String(s) => Ok(split(s)),
                                _ => Err(QueryError::new(51134, "$merge 'on' array elements must be strings")),
                            })
                            .collect::<Result<_, _>>()?,
                        _ => return Err(QueryError::new(51186, "$merge 'on' field must be either a string or an array of strings")),
                    }
                }
                "whenMatched" => {
                    spec.matched = match v {
                        Bson::String(s) => match s.as_str() {
                            "merge" => WhenMatched::Merge,
                            "replace" => WhenMatched::Replace,
                            "keepExisting" => WhenMatched::KeepExisting,
                            "fail" => WhenMatched::Fail,
                            other => return Err(QueryError::bad_value(format!("Enumeration value '{other}' for field 'whenMatched' is not a valid value."))),
                        },
                        Bson::Array(items) => {
                            let stages = items
                                .iter()
                                .map(|i| match i {
                                    Bson::Document(d) => Ok(d.clone()),
                                    _ => Err(QueryError::failed_to_parse("$merge 'whenMatched' pipeline must consist of objects")),
                                })
                                .collect::<Result<Vec<_>, _>>()?;
                            WhenMatched::Pipeline(Pipeline::parse(&stages)?)
                        }
                        _ => return Err(QueryError::failed_to_parse("$merge 'whenMatched' must be a string or an array")),
                    }
                }
                "whenNotMatched" => {
                    spec.not_matched = match v {
                        Bson::String(s) if s == "insert" => WhenNotMatched::Insert,
                        Bson::String(s) if s == "discard" => WhenNotMatched::Discard,
                        Bson::String(s) if s == "fail" => WhenNotMatched::Fail,
                        other => {
                            return Err(QueryError::bad_value(format!(
                                "Enumeration value '{}' for field 'whenNotMatched' is not a valid value.",
                                crate::query::display_value(other)
                            )))
                        }
                    }
                }
                "let" => match v {
                    Bson::Document(vars) => {
                        for (name, e) in vars {
                            spec.lets.push((name.clone(), Expr::parse(e)?));
                        }
                    }
                    other => {
                        return Err(QueryError::type_mismatch(format!(
                            "BSON field '$merge.let' is the wrong type '{}', expected type 'object'",
                            type_name(Some(other))
                        )))
                    }
                },
                other => return Err(QueryError::new(40415, format!("BSON field '$merge.{other}' is an unknown field."))),
            }
        }
        if spec.into.is_empty() {
            return Err(QueryError::new(
                40414,
                "BSON field '$merge.into' is missing but a required field",
            ));
        }
        if !spec.lets.is_empty() && !matches!(spec.matched, WhenMatched::Pipeline(_)) {
            return Err(QueryError::new(
                51199,
                "Cannot use 'let' variables with 'whenMatched' set to anything but a pipeline",
            ));
        }
        Ok(spec)
    }

    /// Merges the pipeline's output into the target collection.
    pub(super) fn run(
        &self,
        docs: Vec<Document>,
        ctx: &dyn AggregateContext,
    ) -> Result<(), QueryError> {
        let mut target = ctx.collection(&self.into);
        for doc in docs {
            let mut keys = Vec::with_capacity(self.on.len());
            for path in &self.on {
                match get_exact(&doc, path) {
                    Some(v) if !matches!(v, Bson::Array(_)) => keys.push(v.clone()),
                    _ if path.len() == 1 && path[0] == "_id" => keys.push(Bson::Null),
                    _ => {
                        return Err(QueryError::new(
                            51132,
                            format!("$merge write error: 'on' field '{}' cannot be missing, null, undefined or an array", path.join(".")),
                        ))
                    }
                }
            }
            let existing = target.iter().position(|t| {
                self.on
                    .iter()
                    .zip(&keys)
                    .all(|(p, k)| get_exact(t, p).is_some_and(|v| values_equal(v, k)))
            });
            match existing {
                Some(i) => match &self.matched {
                    WhenMatched::Merge => {
                        for (k, v) in doc {
                            target[i].insert(k, v);
                        }
                    }
                    WhenMatched::Replace => {
                        let mut d = doc;
                        if let Some(id) = target[i].get("_id").cloned() {
                            d.insert("_id", id);
                        }
                        target[i] = d;
                    }
                    WhenMatched::KeepExisting => {}
                    WhenMatched::Fail => {
                        return Err(QueryError::new(
                            11000,
                            format!(
                                "$merge failed to update the matching document, did you attempt to modify the _id or the shard key? :: caused by :: E11000 duplicate key error collection: {} index: _id_ dup key: {{ _id: {} }}",
                                self.into,
                                crate::query::display_value(target[i].get("_id").unwrap_or(&Bson::Null))
                            ),
                        ))
                    }
                    WhenMatched::Pipeline(p) => {
                        let mut vars = Vec::with_capacity(self.lets.len() + 1);
                        for (name, e) in &self.lets {
                            vars.push((name.clone(), eval_in(e, &doc, &[])?.unwrap_or(Bson::Null)));
                        }
                        vars.push(("new".to_string(), Bson::Document(doc)));
                        let mut out = p.run_with_vars(vec![target[i].clone()], &super::NoCollections, &vars)?;
                        if let Some(mut d) = out.pop() {
                            if let Some(id) = target[i].get("_id").cloned() {
                                d.insert("_id", id);
                            }
                            target[i] = d;
                        }
                    }
                },
                None => match self.not_matched {
                    WhenNotMatched::Insert => target.push(with_id(doc)?),
                    WhenNotMatched::Discard => {}
                    WhenNotMatched::Fail => {
                        return Err(QueryError::new(
                            13113,
                            "$merge could not find a matching document in the target collection for at least one document in the source collection",
                        ))
                    }
                },
            }
        }
        ctx.write_collection(&self.into, target)
    }
}

/// `$sample`: `n` documents chosen uniformly without replacement.
pub(super) fn sample(mut docs: Vec<Document>, n: u64) -> Vec<Document> {
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9E37_79B9_7F4A_7C15)
        | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let take = usize::try_from(n).unwrap_or(usize::MAX).min(docs.len());
    for i in 0..take {
        let j = i + (next() % (docs.len() - i) as u64) as usize;
        docs.swap(i, j);
    }
    docs.truncate(take);
    docs
}
