//! `$lookup` (equality and pipeline forms), `$graphLookup` and `$unionWith`.

use std::collections::HashMap;

use bson::{Bson, Document};

use super::fields::set_nested;
use super::{eval_in, AggregateContext, Pipeline};
use crate::query::compare::canonical_key;
use crate::query::expr::{type_name, Expr};
use crate::query::path::{filter_leaves, split};
use crate::query::QueryError;

/// A parsed `$lookup` stage.
#[derive(Debug, Clone)]
pub(super) struct Lookup {
    from: String,
    local: Option<Vec<String>>,
    foreign: Option<Vec<String>>,
    lets: Vec<(String, Expr)>,
    pipeline: Option<Pipeline>,
    as_path: Vec<String>,
}

fn collection_name(stage: &str, v: &Bson) -> Result<String, QueryError> {
    match v {
        Bson::String(s) if !s.is_empty() => Ok(s.clone()),
        Bson::Document(d) => {
            if d.contains_key("db") {
                return Err(QueryError::unsupported(&format!(
                    "A cross-database {stage}"
                )));
            }
            match d.get("coll") {
                Some(Bson::String(s)) => Ok(s.clone()),
                _ => Err(QueryError::failed_to_parse(format!(
                    "{stage} 'from' must name a collection"
                ))),
            }
        }
        other => Err(QueryError::failed_to_parse(format!(
            "{stage} 'from' field must be a string, but found {}",
            type_name(Some(other))
        ))),
    }
}

fn parse_sub_pipeline(stage: &str, v: &Bson) -> Result<Pipeline, QueryError> {
    let Bson::Array(items) = v else {
        return Err(QueryError::failed_to_parse(format!(
            "{stage} 'pipeline' must be an array, but found {}",
            type_name(Some(v))
        )));
    };
    let mut stages = Vec::with_capacity(items.len());
    for item in items {
        let Bson::Document(d) = item else {
            return Err(QueryError::failed_to_parse(format!(
                "{stage} 'pipeline' must consist of objects"
            )));
        };
        if let Some(n) = d.keys().next() {
            if matches!(n.as_str(), "$out" | "$merge") {
                return Err(QueryError::new(
                    51047,
                    format!("{n} is not allowed within a {stage}'s sub-pipeline"),
                ));
            }
        }
        stages.push(d.clone());
    }
    Pipeline::parse(&stages)
}

impl Lookup {
    /// Parses `{from, localField, foreignField, let, pipeline, as}`.
    pub(super) fn parse(arg: &Bson) -> Result<Lookup, QueryError> {
        let Bson::Document(spec) = arg else {
            return Err(QueryError::failed_to_parse(
                "the $lookup specification must be an Object",
            ));
        };
        let mut l = Lookup {
            from: String::new(),
            local: None,
            foreign: None,
            lets: Vec::new(),
            pipeline: None,
            as_path: Vec::new(),
        };
        let field = |k: &str, v: &Bson| match v {
            Bson::String(s) if !s.is_empty() && !s.starts_with('$') => Ok(split(s)),
            other => Err(QueryError::failed_to_parse(format!(
                "$lookup argument '{k}: {}' must be a string, is type {}",
                crate::query::display_value(other),
                type_name(Some(other))
            ))),
        };
        for (k, v) in spec {
            match k.as_str() {
                "from" => l.from = collection_name("$lookup", v)?,
                "localField" => l.local = Some(field(k, v)?),
                "foreignField" => l.foreign = Some(field(k, v)?),
                "as" => l.as_path = field(k, v)?,
                "let" => match v {
                    Bson::Document(d) => {
                        for (name, e) in d {
                            l.lets.push((name.clone(), Expr::parse(e)?));
                        }
                    }
                    _ => {
                        return Err(QueryError::failed_to_parse(
                            "$lookup argument 'let' must be an object",
                        ))
                    }
                },
                "pipeline" => l.pipeline = Some(parse_sub_pipeline("$lookup", v)?),
                other => {
                    return Err(QueryError::failed_to_parse(format!(
                        "unknown argument to $lookup: {other}"
                    )))
                }
            }
        }
        if l.as_path.is_empty() {
            return Err(QueryError::failed_to_parse(
                "must specify 'as' field for a $lookup",
            ));
        }
        // Without `from`, the pipeline must make its own documents.
        if l.from.is_empty()
            && !l
                .pipeline
                .as_ref()
                .is_some_and(Pipeline::starts_with_documents)
        {
            return Err(QueryError::failed_to_parse(
                "must specify 'from' field for a $lookup",
            ));
        }
        match (&l.local, &l.foreign, &l.pipeline) {
            (Some(_), Some(_), _) | (None, None, Some(_)) => Ok(l),
            (None, None, None) => Err(QueryError::failed_to_parse(
                "$lookup requires either 'pipeline' or both 'localField' and 'foreignField' to be specified",
            )),
            _ => Err(QueryError::failed_to_parse(
                "$lookup requires both or neither of 'localField' and 'foreignField' to be specified",
            )),
        }
    }

    /// Runs the stage.
    pub(super) fn run(
        &self,
        docs: Vec<Document>,
        ctx: &dyn AggregateContext,
        outer_vars: &[(String, Bson)],
    ) -> Result<Vec<Document>, QueryError> {
        let foreign = ctx.collection(&self.from);
        let index = self.foreign.as_ref().map(|path| index_by(&foreign, path));
        let mut out = Vec::with_capacity(docs.len());
        for mut doc in docs {
            let candidates: Vec<Document> = match (&self.local, &index) {
                (Some(local), Some(index)) => {
                    let mut hits: Vec<usize> = Vec::new();
                    for v in local_values(&doc, local) {
                        if let Some(list) = index.get(&canonical_key(&v)) {
                            hits.extend(list);
                        }
                    }
                    hits.sort_unstable();
                    hits.dedup();
                    hits.into_iter().map(|i| foreign[i].clone()).collect()
                }
                _ => foreign.clone(),
            };
            let joined = match &self.pipeline {
                None => candidates,
                Some(p) => {
                    let mut vars = outer_vars.to_vec();
                    for (name, e) in &self.lets {
                        vars.push((
                            name.clone(),
                            eval_in(e, &doc, outer_vars)?.unwrap_or(Bson::Null),
                        ));
                    }
                    p.run_with_vars(candidates, ctx, &vars)?
                }
            };
            let joined = Bson::Array(joined.into_iter().map(Bson::Document).collect());
            crate::query::budget::charge_value(&joined, "$lookup")?;
            set_nested(&mut doc, &self.as_path, Some(joined));
            out.push(doc);
        }
        Ok(out)
    }
}

/// The values of `localField`: array elements individually, missing as null.
fn local_values(doc: &Document, path: &[String]) -> Vec<Bson> {
    let mut values = Vec::new();
    for leaf in filter_leaves(doc, path) {
        match leaf {
            None => values.push(Bson::Null),
            Some(Bson::Array(items)) => values.extend(items.iter().cloned()),
            Some(v) => values.push(v.clone()),
        }
    }
    if values.is_empty() {
        values.push(Bson::Null);
    }
    values
}

/// Index of foreign documents by every value found at `path` (missing as null).
fn index_by(docs: &[Document], path: &[String]) -> HashMap<Vec<u8>, Vec<usize>> {
    let mut index: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for (i, d) in docs.iter().enumerate() {
        let mut keys = Vec::new();
        for leaf in filter_leaves(d, path) {
            match leaf {
                None => keys.push(canonical_key(&Bson::Null)),
                Some(Bson::Array(items)) => {
                    keys.push(canonical_key(&Bson::Array(items.clone())));
                    keys.extend(items.iter().map(canonical_key));
                }
                Some(v) => keys.push(canonical_key(v)),
            }
        }
        keys.sort();
        keys.dedup();
        for k in keys {
            index.entry(k).or_default().push(i);
        }
    }
    index
}

/// Parses `$unionWith`: `"coll"` or `{coll, pipeline}`.
pub(super) fn parse_union_with(arg: &Bson) -> Result<(String, Option<Pipeline>), QueryError> {
    match arg {
        Bson::String(s) if !s.is_empty() => Ok((s.clone(), None)),
        Bson::Document(d) => {
            let mut coll = None;
            let mut pipeline = None;
            for (k, v) in d {
                match k.as_str() {
                    "coll" => coll = Some(collection_name("$unionWith", v)?),
                    "pipeline" => pipeline = Some(parse_sub_pipeline("$unionWith", v)?),
                    other => {
                        return Err(QueryError::new(
                            40415,
                            format!("BSON field '$unionWith.{other}' is an unknown field."),
                        ))
                    }
                }
            }
            match coll {
                Some(c) => Ok((c, pipeline)),
                // Without `coll`, the pipeline must make its own documents.
                None if pipeline
                    .as_ref()
                    .is_some_and(Pipeline::starts_with_documents) =>
                {
                    Ok((String::new(), pipeline))
                }
                None => Err(QueryError::new(
                    40414,
                    "BSON field '$unionWith.coll' is missing but a required field",
                )),
            }
        }
        other => Err(QueryError::failed_to_parse(format!(
            "the $unionWith stage specification must be an object or string, but found {}",
            type_name(Some(other))
        ))),
    }
}

/// A parsed `$graphLookup` stage.
#[derive(Debug, Clone)]
pub(super) struct GraphLookup {
    from: String,
    start_with: Expr,
    connect_from: Vec<String>,
    connect_to: Vec<String>,
    as_path: Vec<String>,
    max_depth: Option<i64>,
    depth_field: Option<Vec<String>>,
    restrict: Option<crate::query::filter::Filter>,
}

impl GraphLookup {
    /// Parses `{from, startWith, connectFromField, connectToField, as, maxDepth, depthField, restrictSearchWithMatch}`.
    pub(super) fn parse(arg: &Bson) -> Result<GraphLookup, QueryError> {
        let Bson::Document(spec) = arg else {
            return Err(QueryError::failed_to_parse(
                "the $graphLookup specification must be an Object",
            ));
        };
        let path = |k: &str| -> Result<Vec<String>, QueryError> {
            match spec.get(k) {
                Some(Bson::String(s)) if !s.is_empty() && !s.starts_with('$') => Ok(split(s)),
                Some(other) => Err(QueryError::new(
                    40103,
                    format!(
                        "expected string as argument for {k}, found: {}",
                        type_name(Some(other))
                    ),
                )),
                None => Err(QueryError::new(
                    40105,
                    format!("$graphLookup requires '{k}' to be specified"),
                )),
            }
        };
        for k in spec.keys() {
            if !matches!(
                k.as_str(),
                "from"
                    | "startWith"
                    | "connectFromField"
                    | "connectToField"
                    | "as"
                    | "maxDepth"
                    | "depthField"
                    | "restrictSearchWithMatch"
            ) {
                return Err(QueryError::new(
                    40104,
                    format!("Unknown argument to $graphLookup: {k}"),
                ));
            }
        }
        let from = match spec.get("from") {
            Some(v) => collection_name("$graphLookup", v)?,
            None => {
                return Err(QueryError::new(
                    40105,
                    "$graphLookup requires 'from' to be specified",
                ))
            }
        };
        let start_with = match spec.get("startWith") {
            Some(v) => Expr::parse(v)?,
            None => {
                return Err(QueryError::new(
                    40105,
                    "$graphLookup requires 'startWith' to be specified",
                ))
            }
        };
        let max_depth = match spec.get("maxDepth") {
            None => None,
            Some(v) => match crate::query::number::Num::from_bson(v)
                .and_then(crate::query::number::Num::to_i64_exact)
            {
                Some(n) if n >= 0 => Some(n),
                _ => {
                    return Err(QueryError::new(
                        40101,
                        "maxDepth requires a nonnegative argument",
                    ))
                }
            },
        };
        let depth_field = match spec.get("depthField") {
            None => None,
            Some(_) => Some(path("depthField")?),
        };
        let restrict = match spec.get("restrictSearchWithMatch") {
            None => None,
            Some(Bson::Document(d)) => Some(crate::query::filter::Filter::parse(d)?),
            Some(other) => {
                return Err(QueryError::new(
                    40185,
                    format!(
                        "restrictSearchWithMatch must be an object, found {}",
                        type_name(Some(other))
                    ),
                ))
            }
        };
        Ok(GraphLookup {
            from,
            start_with,
            connect_from: path("connectFromField")?,
            connect_to: path("connectToField")?,
            as_path: path("as")?,
            max_depth,
            depth_field,
            restrict,
        })
    }

    /// Runs the breadth-first search for every input document.
    pub(super) fn run(
        &self,
        docs: Vec<Document>,
        ctx: &dyn AggregateContext,
        vars: &[(String, Bson)],
    ) -> Result<Vec<Document>, QueryError> {
        let foreign = ctx.collection(&self.from);
        let mut allowed = Vec::with_capacity(foreign.len());
        for d in &foreign {
            allowed.push(match &self.restrict {
                Some(f) => f.try_matches(d)?,
                None => true,
            });
        }
        let index = index_by(&foreign, &self.connect_to);
        let mut out = Vec::with_capacity(docs.len());
        for mut doc in docs {
            let mut frontier: Vec<Bson> = match eval_in(&self.start_with, &doc, vars)? {
                Some(Bson::Array(items)) => items,
                Some(v) => vec![v],
                None => vec![Bson::Null],
            };
            let mut seen: HashMap<usize, i64> = HashMap::new();
            let mut order: Vec<usize> = Vec::new();
            let mut depth = 0i64;
            while !frontier.is_empty() && self.max_depth.is_none_or(|m| depth <= m) {
                let mut next = Vec::new();
                for v in &frontier {
                    for &i in index
                        .get(&canonical_key(v))
                        .map(Vec::as_slice)
                        .unwrap_or(&[])
                    {
                        if !allowed[i] || seen.contains_key(&i) {
                            continue;
                        }
                        seen.insert(i, depth);
                        order.push(i);
                        for leaf in filter_leaves(&foreign[i], &self.connect_from) {
                            match leaf {
                                Some(Bson::Array(items)) => next.extend(items.iter().cloned()),
                                Some(x) => next.push(x.clone()),
                                None => {}
                            }
                        }
                    }
                }
                frontier = next;
                depth += 1;
            }
            let found: Vec<Bson> = order
                .into_iter()
                .map(|i| {
                    let mut d = foreign[i].clone();
                    if let Some(f) = &self.depth_field {
                        set_nested(
                            &mut d,
                            f,
                            Some(Bson::Int64(seen.get(&i).copied().unwrap_or(0))),
                        );
                    }
                    Bson::Document(d)
                })
                .collect();
            let found = Bson::Array(found);
            crate::query::budget::charge_value(&found, "$graphLookup")?;
            set_nested(&mut doc, &self.as_path, Some(found));
            out.push(doc);
        }
        Ok(out)
    }
}
