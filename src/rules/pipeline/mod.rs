//! Aggregation pipelines under rules: stages a non-system user may not run
//! are refused at any depth, and the stages that read other collections get
//! that collection's rules inside their sub-pipelines.
//!
//! - `$lookup` (`from` in the same database): the joined collection's read
//!   prefix (a `$match` of the documents its rules let the user read, then
//!   `$project` stages hiding unreadable fields) goes first in the
//!   `pipeline`, added when the stage had none (with `localField` /
//!   `foreignField` this form needs MongoDB 5.0 or later); a `foreignField`
//!   those rules hide is refused, since that match runs on the stored
//!   documents before the pipeline;
//! - `$unionWith`: the same for `coll`;
//! - `$graphLookup` (`from` in the same database): the read prefix's `$match`
//!   conditions are ANDed into `restrictSearchWithMatch`
//!   (`{"$and": [client's, rules']}`), so unreadable documents are neither
//!   returned nor traversed. When the rules hide fields, the fields the search
//!   reads (`connectFromField`, `connectToField`, every field the client's
//!   `restrictSearchWithMatch` names) must be readable, or the stage is refused
//!   (a traversal over a hidden field would reveal its values), and each
//!   `$project` of the prefix becomes a stage right after the `$graphLookup`
//!   rebuilding every document of the `as` array from its readable top-level
//!   fields:
//!   `{"$set": {as: {"$map": {"input": "$as", "as": "node", "in":
//!   {"$arrayToObject": {"$filter": {"input": {"$objectToArray": "$$node"},
//!   "as": "field", "cond": C}}}}}}}`, where `C` is
//!   `{"$not": [{"$in": ["$$field.k", {"$literal": hidden}]}]}` for an exclusion
//!   projection (the `depthField` is never hidden: the search overwrote it) and
//!   `{"$in": ["$$field.k", {"$literal": kept}]}` for an inclusion one (`_id`
//!   unless excluded, and the `depthField`, are kept). Per-element expressions
//!   rather than a `{"$project": {"as.f": 0}}` because the test peer does not
//!   apply exclusions through arrays; projections of nested paths (`a.b`) and
//!   a dotted `as` are refused for the same reason;
//! - `$facet`: its sub-pipelines see the documents already filtered, so they
//!   are only checked recursively.
//!
//! A joined collection without a rule answers 403 `NoMatchingRuleFound`, as
//! reading it directly would.
//!
//! Every stage is looked up in the stage table (`stages.rs`), at any depth:
//! a stage it does not list, or lists as refused, answers 403
//! `PermissionDenied`; a stage reading the collection itself (`$collStats`,
//! `$geoNear`, `$search`, …) is accepted only as the first stage of a
//! pipeline whose collection's rules add no prefix.

use bson::{Bson, Document};

use crate::protocol::ApiError;
use crate::rules::policy::{filter_paths, forbidden};
use crate::rules::stages::{self, Kind};

/// How deep sub-pipelines may nest.
const MAX_DEPTH: usize = 16;

/// The read prefix of a collection of the request's database, by name.
pub(crate) type PrefixFor<'a> = dyn Fn(&str) -> Result<Vec<Document>, ApiError> + 'a;

/// Rewrites `pipeline` (and every sub-pipeline in it) for a non-system
/// user; `unrestricted` when the rules add no read prefix before it.
pub(crate) fn rewrite(
    pipeline: Vec<Document>,
    prefix_for: &PrefixFor<'_>,
    unrestricted: bool,
) -> Result<Vec<Document>, ApiError> {
    rewrite_at(pipeline, prefix_for, 0, unrestricted)
}

/// [`rewrite`] at nesting `depth`; `unrestricted` when nothing goes before
/// the pipeline's first stage and the collection it runs over is not
/// restricted by the rules.
fn rewrite_at(
    pipeline: Vec<Document>,
    prefix_for: &PrefixFor<'_>,
    depth: usize,
    unrestricted: bool,
) -> Result<Vec<Document>, ApiError> {
    if depth > MAX_DEPTH {
        return Err(forbidden(
            "aggregate not permitted: sub-pipelines are nested too deeply",
        ));
    }
    let mut out = Vec::with_capacity(pipeline.len());
    for (position, stage) in pipeline.into_iter().enumerate() {
        check_stage(&stage, position, unrestricted)?;
        out.extend(rewrite_stage(stage, prefix_for, depth)?);
    }
    Ok(out)
}

/// Refuses a stage the stage table does not know or refuses, and a stage
/// reading the collection itself anywhere but first in an unrestricted
/// pipeline. Every key is looked up, so none the rules do not know reaches
/// the backend.
fn check_stage(stage: &Document, position: usize, unrestricted: bool) -> Result<(), ApiError> {
    for name in stage.keys() {
        let Some(known) = stages::lookup(name) else {
            return Err(forbidden(format!(
                "{name} not permitted in aggregation pipelines: the rules do not know this stage"
            )));
        };
        match known.kind {
            Kind::Writes | Kind::Denied => {
                return Err(forbidden(format!(
                    "{name} not permitted in aggregation pipelines"
                )))
            }
            Kind::ReadsCollection if position > 0 => {
                return Err(forbidden(format!(
                    "{name} not permitted: only as the first stage of a pipeline"
                )))
            }
            Kind::ReadsCollection if !unrestricted => {
                return Err(forbidden(format!(
                    "{name} not permitted: the rules restrict this collection's documents or fields"
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The stage rewritten, followed by any stages it needs after it.
fn rewrite_stage(
    mut stage: Document,
    prefix_for: &PrefixFor<'_>,
    depth: usize,
) -> Result<Vec<Document>, ApiError> {
    if let Some(spec) = stage.get_mut("$lookup") {
        let Bson::Document(spec) = spec else {
            return Err(ApiError::bad_request(
                "the $lookup stage specification must be an object",
            ));
        };
        let inner = sub_pipeline("$lookup", spec.remove("pipeline"))?;
        let had_pipeline = inner.is_some();
        let mut pipeline = match spec.get("from") {
            None => Vec::new(),
            Some(from) => joined_prefix("$lookup", from, prefix_for)?,
        };
        // The equality match on `foreignField` runs on the stored documents,
        // before the sub-pipeline: a hidden field there would reveal its values.
        if let (Some(Bson::String(field)), Some(Bson::String(from))) =
            (spec.get("foreignField"), spec.get("from"))
        {
            if !projections_keep(&pipeline, field) {
                return Err(forbidden(format!(
                    "$lookup not permitted: field '{field}' of collection '{from}' is not readable"
                )));
            }
        }
        let unrestricted = pipeline.is_empty();
        pipeline.extend(rewrite_at(
            inner.unwrap_or_default(),
            prefix_for,
            depth + 1,
            unrestricted,
        )?);
        if had_pipeline || !pipeline.is_empty() {
            spec.insert("pipeline", pipeline);
        }
    } else if let Some(spec) = stage.get_mut("$unionWith") {
        *spec = rewrite_union_with(spec.clone(), prefix_for, depth)?;
    } else if let Some(spec) = stage.get_mut("$facet") {
        let Bson::Document(facets) = spec else {
            return Err(ApiError::bad_request(
                "the $facet stage specification must be an object",
            ));
        };
        for (_, value) in facets.iter_mut() {
            let inner = sub_pipeline("$facet", Some(value.clone()))?.unwrap_or_default();
            // The facets see the documents flowing in, not the collection.
            let rewritten = rewrite_at(inner, prefix_for, depth + 1, false)?;
            *value = Bson::Array(rewritten.into_iter().map(Bson::Document).collect());
        }
    } else if let Some(spec) = stage.get_mut("$graphLookup") {
        let after = rewrite_graph_lookup(spec, prefix_for)?;
        let mut out = vec![stage];
        out.extend(after);
        return Ok(out);
    }
    Ok(vec![stage])
}

fn rewrite_union_with(
    spec: Bson,
    prefix_for: &PrefixFor<'_>,
    depth: usize,
) -> Result<Bson, ApiError> {
    let mut spec = match spec {
        Bson::String(coll) => bson::doc! { "coll": coll },
        Bson::Document(spec) => spec,
        _ => {
            return Err(ApiError::bad_request(
                "the $unionWith stage specification must be a string or an object",
            ))
        }
    };
    let inner = sub_pipeline("$unionWith", spec.remove("pipeline"))?.unwrap_or_default();
    let mut pipeline = match spec.get("coll") {
        None => Vec::new(),
        Some(coll) => joined_prefix("$unionWith", coll, prefix_for)?,
    };
    let unrestricted = pipeline.is_empty();
    pipeline.extend(rewrite_at(inner, prefix_for, depth + 1, unrestricted)?);
    spec.insert("pipeline", pipeline);
    Ok(Bson::Document(spec))
}

/// Applies the rules of the collection a `$graphLookup` searches to its
/// specification; returns the stages that must follow it.
fn rewrite_graph_lookup(
    spec: &mut Bson,
    prefix_for: &PrefixFor<'_>,
) -> Result<Vec<Document>, ApiError> {
    let Bson::Document(spec) = spec else {
        return Err(ApiError::bad_request(
            "the $graphLookup stage specification must be an object",
        ));
    };
    let collection = match spec.get("from") {
        Some(Bson::String(name)) => name.clone(),
        Some(_) => return Err(other_database("$graphLookup")),
        None => {
            return Err(ApiError::bad_request(
                "$graphLookup requires 'from' to be specified",
            ))
        }
    };
    let searched = Searched::parse(&collection, prefix_for(&collection)?)?;
    let client = match spec.get("restrictSearchWithMatch") {
        None => None,
        Some(Bson::Document(client)) => Some(client),
        Some(_) => {
            return Err(ApiError::bad_request(
                "$graphLookup 'restrictSearchWithMatch' must be an object",
            ))
        }
    };
    let mut after = Vec::new();
    if !searched.projections.is_empty() {
        let as_field = match spec.get("as") {
            Some(Bson::String(name)) if is_top_level(name) => name.as_str(),
            _ => {
                return Err(forbidden(format!(
                    "$graphLookup not permitted: 'as' must be a top-level field name \
                     when the rules of collection '{collection}' hide fields"
                )))
            }
        };
        for key in ["connectFromField", "connectToField"] {
            match spec.get(key) {
                Some(Bson::String(path)) => searched.check_readable(path)?,
                _ => {
                    return Err(forbidden(format!(
                        "$graphLookup not permitted: '{key}' must name a field of \
                         collection '{collection}'"
                    )))
                }
            }
        }
        if let Some(client) = client {
            searched.check_filter(client)?;
        }
        let depth_field = match spec.get("depthField") {
            Some(Bson::String(name)) if is_top_level(name) => Some(name.as_str()),
            _ => None,
        };
        after = searched
            .projections
            .iter()
            .filter_map(|shape| shape.strip_stage(as_field, depth_field))
            .collect();
    }
    if !searched.conditions.is_empty() {
        let restrict = searched.restrict(client.cloned());
        spec.insert("restrictSearchWithMatch", restrict);
    }
    Ok(after)
}

/// Whether `name` is a field of the document itself (not a path, not `$`-prefixed).
fn is_top_level(name: &str) -> bool {
    !name.is_empty() && !name.contains('.') && !name.starts_with('$')
}

/// The read rules of the collection a `$graphLookup` searches, taken from
/// its read prefix.
#[derive(Debug)]
struct Searched<'a> {
    collection: &'a str,
    /// The `$match` conditions of the readable documents.
    conditions: Vec<Document>,
    /// The `$project` stages hiding fields, in order.
    projections: Vec<Shape>,
}

impl<'a> Searched<'a> {
    fn parse(collection: &'a str, prefix: Vec<Document>) -> Result<Self, ApiError> {
        let mut searched = Searched {
            collection,
            conditions: Vec::new(),
            projections: Vec::new(),
        };
        for stage in prefix {
            let single = stage.len() == 1;
            match stage.into_iter().next() {
                Some((name, Bson::Document(body)))
                    if single && name == "$match" && searched.projections.is_empty() =>
                {
                    if !body.is_empty() {
                        searched.conditions.push(body);
                    }
                }
                Some((name, Bson::Document(body))) if single && name == "$project" => {
                    searched.projections.push(Shape::parse(collection, &body)?);
                }
                _ => return Err(inapplicable(collection)),
            }
        }
        Ok(searched)
    }

    /// The search restriction: the client's (when not empty) and the rules'
    /// conditions, all of them.
    fn restrict(&self, client: Option<Document>) -> Document {
        let mut parts: Vec<Bson> = client
            .filter(|client| !client.is_empty())
            .into_iter()
            .chain(self.conditions.iter().cloned())
            .map(Bson::Document)
            .collect();
        match parts.pop() {
            Some(Bson::Document(only)) if parts.is_empty() => only,
            last => {
                parts.extend(last);
                bson::doc! { "$and": parts }
            }
        }
    }

    /// Refuses a search reading `path` unless every projection keeps it.
    fn check_readable(&self, path: &str) -> Result<(), ApiError> {
        let top = path.split('.').next().unwrap_or(path);
        if self.projections.iter().all(|shape| shape.keeps(top)) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "$graphLookup not permitted: field '{path}' of collection '{}' is not readable",
                self.collection
            )))
        }
    }

    /// Refuses a client restriction reading a field the rules hide, or the
    /// whole document (`$jsonSchema`, `$text`, `$$ROOT`, unknown operators).
    fn check_filter(&self, filter: &Document) -> Result<(), ApiError> {
        for path in filter_paths(filter) {
            if path.is_empty() {
                return Err(forbidden(format!(
                    "$graphLookup not permitted: restrictSearchWithMatch reads the whole document \
                     while the rules of collection '{}' hide fields",
                    self.collection
                )));
            }
            self.check_readable(&path)?;
        }
        Ok(())
    }
}

/// A `$project` of top-level fields: the names it keeps (`keep`), or the
/// names it hides.
#[derive(Debug)]
struct Shape {
    keep: bool,
    names: Vec<String>,
}

impl Shape {
    fn parse(collection: &str, projection: &Document) -> Result<Shape, ApiError> {
        let (mut kept, mut hidden, mut id) = (Vec::new(), Vec::new(), None);
        for (name, value) in projection {
            let keep = match value {
                Bson::Boolean(b) => *b,
                Bson::Int32(n) => *n != 0,
                Bson::Int64(n) => *n != 0,
                Bson::Double(n) => *n != 0.0,
                _ => return Err(inapplicable(collection)),
            };
            if name.contains('.') {
                return Err(forbidden(format!(
                    "$graphLookup not permitted: the read permissions of field '{name}' of \
                     collection '{collection}' cannot be applied to the documents it returns"
                )));
            }
            if !is_top_level(name) {
                return Err(inapplicable(collection));
            }
            if name == "_id" {
                id = Some(keep);
            } else if keep {
                kept.push(name.clone());
            } else {
                hidden.push(name.clone());
            }
        }
        if !kept.is_empty() && !hidden.is_empty() {
            return Err(inapplicable(collection));
        }
        let keep = !kept.is_empty() || hidden.is_empty() && id == Some(true);
        let mut names = Vec::new();
        if id == Some(keep) || keep && id.is_none() {
            names.push("_id".to_owned());
        }
        names.extend(if keep { kept } else { hidden });
        Ok(Shape { keep, names })
    }

    /// Whether the top-level field `name` survives this projection.
    fn keeps(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name) == self.keep
    }

    /// The stage applying this projection to every document of the array
    /// `as_field` (`None` when it hides nothing there). The `depth_field`
    /// holds the search depth, written over any stored value: never hidden.
    fn strip_stage(&self, as_field: &str, depth_field: Option<&str>) -> Option<Document> {
        let mut names: Vec<&str> = self
            .names
            .iter()
            .map(String::as_str)
            .filter(|name| self.keep || Some(*name) != depth_field)
            .collect();
        if self.keep {
            names.extend(depth_field.filter(|depth| !names.contains(depth)));
        } else if names.is_empty() {
            return None;
        }
        let listed = bson::doc! { "$in": ["$$field.k", { "$literal": names }] };
        let cond = if self.keep {
            listed
        } else {
            bson::doc! { "$not": [listed] }
        };
        Some(bson::doc! { "$set": { as_field: { "$map": {
            "input": format!("${as_field}"),
            "as": "node",
            "in": { "$arrayToObject": { "$filter": {
                "input": { "$objectToArray": "$$node" },
                "as": "field",
                "cond": cond,
            } } },
        } } } })
    }
}

/// 403 for read rules that have no `$graphLookup` equivalent.
fn inapplicable(collection: &str) -> ApiError {
    forbidden(format!(
        "$graphLookup not permitted: the read rules of collection '{collection}' cannot be \
         applied to the documents it returns"
    ))
}

/// 403 for a join naming a collection of another database.
fn other_database(stage: &str) -> ApiError {
    forbidden(format!(
        "{stage} not permitted: only collections of the same database can be joined"
    ))
}

/// Whether every `$project` stage of a read prefix keeps the whole of
/// `path` (a projection that keeps only part of it, or computes fields,
/// counts as hiding it).
fn projections_keep(prefix: &[Document], path: &str) -> bool {
    let related = |key: &str| {
        key == path || path.starts_with(&format!("{key}.")) || key.starts_with(&format!("{path}."))
    };
    let covers = |key: &str| key == path || path.starts_with(&format!("{key}."));
    prefix
        .iter()
        .filter_map(|stage| match stage.get("$project") {
            Some(Bson::Document(projection)) => Some(projection),
            _ => None,
        })
        .all(|projection| {
            let flag = |value: &Bson| match value {
                Bson::Boolean(b) => Some(*b),
                Bson::Int32(n) => Some(*n != 0),
                Bson::Int64(n) => Some(*n != 0),
                Bson::Double(n) => Some(*n != 0.0),
                _ => None,
            };
            if projection.values().any(|v| flag(v).is_none()) {
                return false;
            }
            let inclusion = projection
                .iter()
                .any(|(key, value)| key != "_id" && flag(value) == Some(true));
            if inclusion {
                let id_kept = projection.get("_id").and_then(flag) != Some(false);
                let on_id = path == "_id" || path.starts_with("_id.");
                (on_id && id_kept)
                    || projection
                        .iter()
                        .any(|(key, value)| flag(value) == Some(true) && covers(key))
                        && !projection
                            .iter()
                            .any(|(key, value)| flag(value) == Some(false) && related(key))
            } else {
                !projection
                    .iter()
                    .any(|(key, value)| flag(value) == Some(false) && related(key))
            }
        })
}

/// The read prefix of the collection a join names.
fn joined_prefix(
    stage: &str,
    collection: &Bson,
    prefix_for: &PrefixFor<'_>,
) -> Result<Vec<Document>, ApiError> {
    match collection {
        Bson::String(name) => prefix_for(name),
        _ => Err(other_database(stage)),
    }
}

fn sub_pipeline(stage: &str, value: Option<Bson>) -> Result<Option<Vec<Document>>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let bad = || ApiError::bad_request(format!("{stage} 'pipeline' must be an array of objects"));
    let Bson::Array(items) = value else {
        return Err(bad());
    };
    items
        .into_iter()
        .map(|item| match item {
            Bson::Document(doc) => Ok(doc),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests;
