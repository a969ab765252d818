//! The aggregation stages the rules know, each with what matters to them:
//! whether it writes, which collection it joins, whether it nests
//! pipelines, whether it reads the collection itself (and so must come
//! first, before any rules prefix could), or whether it is refused.
//!
//! Under rules a stage this table does not list is refused (403): a stage
//! MongoDB adds later, or one only Atlas knows, never reaches the server
//! unrewritten. Without rules the backend decides, as for any stage.

/// What a stage does, as far as the rules are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Works on the documents flowing in only: safe after the read prefix.
    Stream,
    /// Produces documents from its own argument and reads no collection (`$documents`).
    Produces,
    /// Writes to a collection (`$out`, `$merge`): refused under rules, and a
    /// write for read-only data sources.
    Writes,
    /// Reads another collection of the database, named by the stage's
    /// `field`; `pipeline` when it may nest a sub-pipeline run over that
    /// collection (`$lookup`, `$unionWith`; `$graphLookup` does not).
    Joins {
        /// The option naming the joined collection.
        field: &'static str,
        /// Whether the stage may carry a `pipeline`.
        pipeline: bool,
    },
    /// Nests sub-pipelines over the documents flowing in (`$facet`).
    Facets,
    /// Reads the collection itself (its statistics or a search index)
    /// rather than the documents flowing in: allowed under rules only as
    /// the first stage of a pipeline the rules do not restrict.
    ReadsCollection,
    /// Refused under rules: server or cluster internals, other namespaces,
    /// or sub-pipelines the rules cannot rewrite.
    Denied,
}

/// One known aggregation stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stage {
    /// The stage name, with its `$`.
    pub name: &'static str,
    /// What it does.
    pub kind: Kind,
    /// Whether MongoDB only accepts it as the first stage of a pipeline.
    pub first: bool,
}

const fn stage(name: &'static str, kind: Kind, first: bool) -> Stage {
    Stage { name, kind, first }
}

const fn stream(name: &'static str) -> Stage {
    stage(name, Kind::Stream, false)
}

/// Every stage the rules know, by name.
pub(crate) const STAGES: &[Stage] = &[
    stream("$addFields"),
    stream("$bucket"),
    stream("$bucketAuto"),
    stream("$count"),
    stream("$densify"),
    stream("$fill"),
    stream("$group"),
    stream("$limit"),
    stream("$match"),
    stream("$project"),
    stream("$redact"),
    stream("$replaceRoot"),
    stream("$replaceWith"),
    stream("$sample"),
    stream("$score"),
    stream("$set"),
    stream("$setWindowFields"),
    stream("$skip"),
    stream("$sort"),
    stream("$sortByCount"),
    stream("$unset"),
    stream("$unwind"),
    stage("$documents", Kind::Produces, true),
    stage("$out", Kind::Writes, false),
    stage("$merge", Kind::Writes, false),
    stage(
        "$lookup",
        Kind::Joins {
            field: "from",
            pipeline: true,
        },
        false,
    ),
    stage(
        "$unionWith",
        Kind::Joins {
            field: "coll",
            pipeline: true,
        },
        false,
    ),
    stage(
        "$graphLookup",
        Kind::Joins {
            field: "from",
            pipeline: false,
        },
        false,
    ),
    stage("$facet", Kind::Facets, false),
    stage("$collStats", Kind::ReadsCollection, true),
    stage("$geoNear", Kind::ReadsCollection, true),
    stage("$search", Kind::ReadsCollection, true),
    stage("$searchMeta", Kind::ReadsCollection, true),
    stage("$vectorSearch", Kind::ReadsCollection, true),
    // Sub-pipelines (`input.pipelines`) over the collection, which the
    // rules do not rewrite.
    stage("$rankFusion", Kind::Denied, true),
    stage("$scoreFusion", Kind::Denied, true),
    stage("$changeStream", Kind::Denied, true),
    stage("$changeStreamSplitLargeEvent", Kind::Denied, false),
    stage("$currentOp", Kind::Denied, true),
    stage("$indexStats", Kind::Denied, true),
    stage("$listClusterCatalog", Kind::Denied, true),
    stage("$listLocalSessions", Kind::Denied, true),
    stage("$listSampledQueries", Kind::Denied, true),
    stage("$listSearchIndexes", Kind::Denied, true),
    stage("$listSessions", Kind::Denied, true),
    stage("$planCacheStats", Kind::Denied, true),
    stage("$querySettings", Kind::Denied, true),
    stage("$queryStats", Kind::Denied, true),
    stage("$shardedDataDistribution", Kind::Denied, true),
];

/// The stage called `name`, when the rules know it.
pub(crate) fn lookup(name: &str) -> Option<&'static Stage> {
    STAGES.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the rules refuse the stage called `name` wherever it appears.
    fn refused(name: &str) -> bool {
        lookup(name).is_none_or(|s| matches!(s.kind, Kind::Writes | Kind::Denied))
    }

    /// Every stage the MongoDB 8 manual documents (`db.collection.aggregate()`
    /// and `db.aggregate()` stages, Atlas Search and Vector Search, the 8.x
    /// additions), and what the table must say about it.
    const DOCUMENTED: &[&str] = &[
        "$addFields",
        "$bucket",
        "$bucketAuto",
        "$changeStream",
        "$changeStreamSplitLargeEvent",
        "$collStats",
        "$count",
        "$currentOp",
        "$densify",
        "$documents",
        "$facet",
        "$fill",
        "$geoNear",
        "$graphLookup",
        "$group",
        "$indexStats",
        "$limit",
        "$listClusterCatalog",
        "$listLocalSessions",
        "$listSampledQueries",
        "$listSearchIndexes",
        "$listSessions",
        "$lookup",
        "$match",
        "$merge",
        "$out",
        "$planCacheStats",
        "$project",
        "$querySettings",
        "$queryStats",
        "$rankFusion",
        "$redact",
        "$replaceRoot",
        "$replaceWith",
        "$sample",
        "$score",
        "$scoreFusion",
        "$search",
        "$searchMeta",
        "$set",
        "$setWindowFields",
        "$shardedDataDistribution",
        "$skip",
        "$sort",
        "$sortByCount",
        "$unionWith",
        "$unset",
        "$unwind",
        "$vectorSearch",
    ];

    #[test]
    fn every_documented_stage_is_known_and_nothing_else() {
        for name in DOCUMENTED {
            assert!(lookup(name).is_some(), "{name} is not in the table");
        }
        for s in STAGES {
            assert!(DOCUMENTED.contains(&s.name), "{} is not documented", s.name);
            assert_eq!(
                STAGES.iter().filter(|t| t.name == s.name).count(),
                1,
                "{} listed twice",
                s.name
            );
        }
    }

    #[test]
    fn unknown_stages_writes_and_internals_are_refused() {
        for name in [
            "$fooBar",
            "$backupCursor",
            "$_internalInhibitOptimization",
            "match",
            "",
        ] {
            assert!(refused(name), "{name}");
        }
        for name in ["$out", "$merge", "$currentOp", "$queryStats", "$rankFusion"] {
            assert!(refused(name), "{name}");
        }
        for name in [
            "$match",
            "$lookup",
            "$facet",
            "$collStats",
            "$documents",
            "$score",
        ] {
            assert!(!refused(name), "{name}");
        }
    }
}
