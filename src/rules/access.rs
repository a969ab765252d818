//! Per-data-source access levels, as the Atlas UI offered them.

use std::str::FromStr;

use bson::{Bson, Document};
use http::StatusCode;

use crate::action::Command;
use crate::backend::Namespace;
use crate::protocol::{ApiError, ErrorCode};
use crate::rules::stages::{self, Kind};

/// What a data source allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AccessLevel {
    /// Every action.
    #[default]
    ReadWrite,
    /// `findOne`, `find` and `aggregate` without `$out`/`$merge`.
    ReadOnly,
    /// Nothing.
    NoAccess,
}

impl FromStr for AccessLevel {
    type Err = String;

    /// Parses `read-write`, `read-only` or `no-access` (also with `_`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "read-write" | "readwrite" => Ok(AccessLevel::ReadWrite),
            "read-only" | "readonly" => Ok(AccessLevel::ReadOnly),
            "no-access" | "noaccess" => Ok(AccessLevel::NoAccess),
            _ => Err(format!(
                "unknown access level '{s}': expected read-write, read-only or no-access"
            )),
        }
    }
}

/// Refuses `command` on `ns` when `level` does not allow it.
pub(crate) fn check_access(
    level: AccessLevel,
    ns: &Namespace,
    command: &Command,
) -> Result<(), ApiError> {
    match level {
        AccessLevel::ReadWrite => Ok(()),
        AccessLevel::NoAccess => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::NoMatchingRuleFound,
            format!("no rule exists for namespace '{ns}'"),
        )),
        AccessLevel::ReadOnly => match write_kind(command) {
            None => Ok(()),
            Some(kind) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::PermissionDenied,
                format!("{kind} not permitted: the data source is read-only"),
            )),
        },
    }
}

/// The kind of write a command performs, if it writes.
fn write_kind(command: &Command) -> Option<&'static str> {
    match command {
        Command::FindOne(_) | Command::Find(_) => None,
        Command::InsertOne(_) | Command::InsertMany(_) => Some("insert"),
        Command::UpdateOne(q) | Command::UpdateMany(q) => {
            Some(if q.upsert { "upsert" } else { "update" })
        }
        Command::ReplaceOne(_) => Some("update"),
        Command::DeleteOne(_) | Command::DeleteMany(_) => Some("delete"),
        Command::Aggregate(pipeline) => pipeline_writes(pipeline).then_some("aggregation write"),
    }
}

/// Whether a pipeline, or any pipeline nested in it, has a `$out` or `$merge` stage.
pub(crate) fn pipeline_writes(pipeline: &[Document]) -> bool {
    pipeline.iter().any(stage_writes)
}

/// Whether `stage` writes, by the stage table; stages it does not know are
/// not writes here (the backend decides on them).
fn stage_writes(stage: &Document) -> bool {
    stage.iter().any(
        |(name, spec)| match (stages::lookup(name).map(|s| s.kind), spec) {
            (Some(Kind::Writes), _) => true,
            (Some(Kind::Facets), Bson::Document(facets)) => facets.values().any(nested_writes),
            (Some(Kind::Joins { pipeline: true, .. }), Bson::Document(options)) => {
                options.get("pipeline").is_some_and(nested_writes)
            }
            _ => false,
        },
    )
}

fn nested_writes(value: &Bson) -> bool {
    match value {
        Bson::Array(stages) => stages.iter().any(|stage| match stage {
            Bson::Document(stage) => stage_writes(stage),
            _ => false,
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::FindQuery;
    use bson::doc;

    fn ns() -> Namespace {
        Namespace::new("db", "c")
    }

    #[test]
    fn read_only_refuses_writes_including_aggregate_writes() {
        let read = Command::Find(FindQuery::default());
        assert!(check_access(AccessLevel::ReadOnly, &ns(), &read).is_ok());
        let insert = Command::InsertOne(doc! {});
        let err = check_access(AccessLevel::ReadOnly, &ns(), &insert).unwrap_err();
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        for pipeline in [
            vec![doc! {"$match": {}}, doc! {"$out": "x"}],
            vec![doc! {"$merge": {"into": "x"}}],
            vec![doc! {"$facet": {"a": [{"$out": "x"}]}}],
            vec![doc! {"$lookup": {"from": "y", "as": "z", "pipeline": [{"$merge": "x"}]}}],
        ] {
            let agg = Command::Aggregate(pipeline.clone());
            assert!(
                check_access(AccessLevel::ReadOnly, &ns(), &agg).is_err(),
                "{pipeline:?}"
            );
        }
        let agg = Command::Aggregate(vec![doc! {"$group": {"_id": "$out"}}]);
        assert!(check_access(AccessLevel::ReadOnly, &ns(), &agg).is_ok());
    }

    #[test]
    fn no_access_refuses_everything() {
        let err = check_access(
            AccessLevel::NoAccess,
            &ns(),
            &Command::Find(FindQuery::default()),
        )
        .unwrap_err();
        assert_eq!(err.message(), "no rule exists for namespace 'db.c'");
        assert_eq!("read_only".parse(), Ok(AccessLevel::ReadOnly));
        assert!("write".parse::<AccessLevel>().is_err());
    }
}
