//! Aggregation pipelines under rules: stages a non-system user may not run
//! are refused at any depth, and the stages that read other collections get
//! that collection's rules inside their sub-pipelines.
//!
//! - `$lookup` (`from` in the same database): the joined collection's read
//!   prefix (a `$match` of the documents its rules let the user read, then
//!   `$project` stages hiding unreadable fields) goes first in the
//!   `pipeline`, added when the stage had none (with `localField` /
//!   `foreignField` this form needs MongoDB 5.0 or later);
//! - `$unionWith`: the same for `coll`;
//! - `$facet`: its sub-pipelines see the documents already filtered, so they
//!   are only checked recursively.
//!
//! A joined collection without a rule answers 403 `NoMatchingRuleFound`, as
//! reading it directly would.

use bson::{Bson, Document};

use crate::protocol::ApiError;
use crate::rules::policy::{denied_stage, forbidden};

/// How deep sub-pipelines may nest.
const MAX_DEPTH: usize = 16;

/// The read prefix of a collection of the request's database, by name.
pub(crate) type PrefixFor<'a> = dyn Fn(&str) -> Result<Vec<Document>, ApiError> + 'a;

/// Rewrites `pipeline` (and every sub-pipeline in it) for a non-system user.
pub(crate) fn rewrite(
    pipeline: Vec<Document>,
    prefix_for: &PrefixFor<'_>,
) -> Result<Vec<Document>, ApiError> {
    rewrite_at(pipeline, prefix_for, 0)
}

fn rewrite_at(
    pipeline: Vec<Document>,
    prefix_for: &PrefixFor<'_>,
    depth: usize,
) -> Result<Vec<Document>, ApiError> {
    if depth > MAX_DEPTH {
        return Err(forbidden(
            "aggregate not permitted: sub-pipelines are nested too deeply",
        ));
    }
    pipeline
        .into_iter()
        .map(|stage| rewrite_stage(stage, prefix_for, depth))
        .collect()
}

fn rewrite_stage(
    mut stage: Document,
    prefix_for: &PrefixFor<'_>,
    depth: usize,
) -> Result<Document, ApiError> {
    if let Some(name) = denied_stage(&stage) {
        return Err(forbidden(format!(
            "{name} not permitted in aggregation pipelines"
        )));
    }
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
        pipeline.extend(rewrite_at(
            inner.unwrap_or_default(),
            prefix_for,
            depth + 1,
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
            let rewritten = rewrite_at(inner, prefix_for, depth + 1)?;
            *value = Bson::Array(rewritten.into_iter().map(Bson::Document).collect());
        }
    }
    Ok(stage)
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
    pipeline.extend(rewrite_at(inner, prefix_for, depth + 1)?);
    spec.insert("pipeline", pipeline);
    Ok(Bson::Document(spec))
}

/// The read prefix of the collection a join names.
fn joined_prefix(
    stage: &str,
    collection: &Bson,
    prefix_for: &PrefixFor<'_>,
) -> Result<Vec<Document>, ApiError> {
    match collection {
        Bson::String(name) => prefix_for(name),
        _ => Err(forbidden(format!(
            "{stage} not permitted: only collections of the same database can be joined"
        ))),
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
mod tests {
    use super::*;
    use bson::doc;

    fn prefix_for(coll: &str) -> Result<Vec<Document>, ApiError> {
        match coll {
            "open" => Ok(Vec::new()),
            "hidden" => Ok(vec![
                doc! {"$match": {"ok": true}},
                doc! {"$project": {"s": 0}},
            ]),
            _ => Err(forbidden(format!("no rule for {coll}"))),
        }
    }

    #[test]
    fn joins_get_the_joined_collections_rules() {
        let out = rewrite(
            vec![
                doc! {"$lookup": {"from": "hidden", "localField": "a", "foreignField": "b", "as": "j"}},
                doc! {"$lookup": {"from": "open", "localField": "a", "foreignField": "b", "as": "k"}},
                doc! {"$unionWith": "hidden"},
                doc! {"$facet": {"x": [{"$unionWith": {"coll": "hidden", "pipeline": [{"$limit": 1}]}}]}},
            ],
            &prefix_for,
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                doc! {"$lookup": {"from": "hidden", "localField": "a", "foreignField": "b", "as": "j",
                "pipeline": [{"$match": {"ok": true}}, {"$project": {"s": 0}}]}},
                doc! {"$lookup": {"from": "open", "localField": "a", "foreignField": "b", "as": "k"}},
                doc! {"$unionWith": {"coll": "hidden",
                "pipeline": [{"$match": {"ok": true}}, {"$project": {"s": 0}}]}},
                doc! {"$facet": {"x": [{"$unionWith": {"coll": "hidden", "pipeline": [
                {"$match": {"ok": true}}, {"$project": {"s": 0}}, {"$limit": 1}]}}]}},
            ]
        );
    }

    #[test]
    fn refusals_at_any_depth() {
        let err = |pipeline: Vec<Document>| rewrite(pipeline, &prefix_for).unwrap_err();
        assert_eq!(
            err(vec![doc! {"$unionWith": "secret"}]).message(),
            "no rule for secret"
        );
        assert!(err(vec![
            doc! {"$facet": {"a": [{"$lookup": {"from": "secret", "as": "x", "pipeline": []}}]}}
        ])
        .message()
        .contains("secret"));
        assert!(err(vec![
            doc! {"$lookup": {"from": "open", "as": "x", "pipeline": [{"$out": "y"}]}}
        ])
        .message()
        .starts_with("$out not permitted"));
        assert!(err(vec![
            doc! {"$lookup": {"from": {"db": "other", "coll": "c"}, "as": "x", "pipeline": []}}
        ])
        .message()
        .contains("same database"));
        assert_eq!(
            err(vec![doc! {"$facet": {"a": 1}}]).status(),
            http::StatusCode::BAD_REQUEST
        );
        let mut deep = doc! {"$match": {}};
        for _ in 0..20 {
            deep = doc! {"$facet": {"a": [deep]}};
        }
        assert!(err(vec![deep]).message().contains("too deeply"));
    }
}
