//! Aggregation pipelines: parsing stages and running them over documents.

mod bucket_auto;
mod densify;
mod fields;
mod fill;
mod group;
mod lookup;
mod output;
mod sources;
mod window;
mod window_math;

use bson::{Bson, Document};

use super::budget;
use super::expr::{Expr, Vars};
use super::filter::Filter;
use super::number::Num;
use super::projection::Projection;
use super::sort::SortSpec;
use super::QueryError;

pub(crate) use crate::query::limits::{
    doc_size, Limits, DEFAULT_MAX_PIPELINE_BYTES, MAX_TIME_EXPIRED,
};
use crate::query::limits::{nesting_exceeds, Keys, MAX_NESTING};
pub(crate) use output::MergeSpec;
pub(crate) use sources::CollectionStats;

/// Access to the other collections of the database a pipeline runs in.
pub(crate) trait AggregateContext {
    /// The documents of collection `name` (empty when it does not exist), in natural order.
    fn collection(&self, name: &str) -> Vec<Document>;

    /// Replaces the contents of collection `name` (`$out`, `$merge`),
    /// creating it when missing. Documents already carry an `_id`.
    fn write_collection(&self, name: &str, docs: Vec<Document>) -> Result<(), QueryError> {
        let _ = (name, docs);
        Err(QueryError::unsupported(
            "Writing from a pipeline ($out/$merge)",
        ))
    }

    /// The memory budget and deadline the pipeline runs under.
    fn limits(&self) -> Limits {
        Limits::default()
    }

    /// Statistics of the collection the pipeline reads (`$collStats`), when known.
    fn stats(&self) -> Option<CollectionStats> {
        None
    }
}

/// A context without collections (pipeline-style updates, tests).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoCollections;

impl AggregateContext for NoCollections {
    fn collection(&self, _name: &str) -> Vec<Document> {
        Vec::new()
    }
}

/// A parsed aggregation pipeline.
#[derive(Debug, Clone)]
pub(crate) struct Pipeline {
    stages: Vec<Stage>,
}

#[derive(Debug, Clone)]
enum Stage {
    Match(Box<Filter>),
    Project(Box<Projection>),
    AddFields(fields::AddFields),
    Sort(SortSpec),
    Skip(u64),
    Limit(u64),
    Group(Box<group::Group>),
    Bucket(Box<group::Bucket>),
    BucketAuto(Box<bucket_auto::BucketAuto>),
    Documents(Box<Expr>),
    CollStats(sources::CollStats),
    Densify(Box<densify::Densify>),
    Fill(Box<fill::Fill>),
    Count(String),
    Unwind(fields::Unwind),
    /// `$replaceRoot` (`false`) or `$replaceWith` (`true`), which word their errors differently.
    ReplaceRoot(Box<Expr>, bool),
    Redact(Box<Expr>),
    SetWindowFields(Box<window::SetWindowFields>),
    SortByCount(Box<Expr>),
    Lookup(Box<lookup::Lookup>),
    GraphLookup(Box<lookup::GraphLookup>),
    UnionWith(String, Option<Box<Pipeline>>),
    Facet(Vec<(String, Pipeline)>),
    Sample(u64),
    Out(String),
    Merge(Box<MergeSpec>),
}

const UNSUPPORTED_STAGES: &[&str] = &[
    "$geoNear",
    "$search",
    "$searchMeta",
    "$vectorSearch",
    "$indexStats",
    "$currentOp",
    "$listSessions",
    "$listLocalSessions",
    "$changeStream",
    "$planCacheStats",
    "$listSearchIndexes",
    "$changeStreamSplitLargeEvent",
];

/// A non-negative integer stage argument (`$skip`, `$limit`, `$sample`'s
/// size), with MongoDB's messages.
fn non_negative(stage: &str, v: &Bson) -> Result<u64, QueryError> {
    let problem = match Num::from_bson(v).map(|n| (n, n.to_i64_exact())) {
        Some((_, Some(n))) if n >= 0 => return Ok(n as u64),
        Some((_, Some(_))) => "Expected a non-negative number",
        Some((n, None)) if n.to_f64() < 0.0 => "Expected a non-negative number",
        Some((_, None)) => "Expected an integer",
        None => "Expected a number",
    };
    Err(QueryError::new(
        if stage == "$limit" { 5107201 } else { 5107200 },
        format!(
            "invalid argument to {stage} stage: {problem} in: {stage}: {}",
            super::display_value(v)
        ),
    ))
}

fn wrap(stage: &str, e: QueryError) -> QueryError {
    QueryError::new(
        e.code,
        format!("Invalid {stage} :: caused by :: {}", e.message),
    )
}

impl Pipeline {
    /// Parses the stages of a pipeline.
    pub(crate) fn parse(stages: &[Document]) -> Result<Pipeline, QueryError> {
        // Parsing and evaluation recurse with the nesting of the stages: a
        // bound on it keeps untrusted pipelines from exhausting the stack.
        if nesting_exceeds(
            stages.iter().flat_map(Document::values),
            2,
            MAX_NESTING,
            Keys::Paths,
        ) {
            return Err(QueryError::new(
                15,
                format!("the pipeline is nested more than {MAX_NESTING} levels deep"),
            ));
        }
        let mut parsed = Vec::with_capacity(stages.len());
        for (i, stage) in stages.iter().enumerate() {
            if stage.len() != 1 {
                return Err(QueryError::new(
                    40323,
                    "A pipeline stage specification object must contain exactly one field.",
                ));
            }
            let Some((name, arg)) = stage.iter().next() else {
                return Err(QueryError::new(
                    40323,
                    "A pipeline stage specification object must contain exactly one field.",
                ));
            };
            let last = i + 1 == stages.len();
            if i > 0 && matches!(name.as_str(), "$documents" | "$collStats") {
                return Err(sources::not_first(name));
            }
            parsed.push(Self::parse_stage(name, arg, last)?);
        }
        Ok(Pipeline { stages: parsed })
    }

    fn parse_stage(name: &str, arg: &Bson, last: bool) -> Result<Stage, QueryError> {
        Ok(match name {
            "$match" => match arg {
                Bson::Document(d) => Stage::Match(Box::new(Filter::parse(d)?)),
                _ => return Err(QueryError::new(15959, "the match filter must be an expression in an object")),
            },
            "$project" => match arg {
                Bson::Document(d) => Stage::Project(Box::new(Projection::parse_aggregate(d).map_err(|e| wrap("$project", e))?)),
                other => {
                    return Err(QueryError::new(
                        15969,
                        format!("$project specification must be an object, found: {}", super::display_value(other)),
                    ))
                }
            },
            "$addFields" | "$set" => match arg {
                Bson::Document(d) => Stage::AddFields(fields::AddFields::parse(d).map_err(|e| wrap(name, e))?),
                _ => return Err(QueryError::new(40272, format!("{name} specification stage must be an object, got {}", super::expr::type_name(Some(arg))))),
            },
            "$unset" => {
                let paths: Vec<String> = match arg {
                    Bson::String(s) => vec![s.clone()],
                    Bson::Array(items) if !items.is_empty() => items
                        .iter()
                        .map(|i| match i {
                            Bson::String(s) => Ok(s.clone()),
                            _ => Err(QueryError::new(31120, "$unset specification must be a string or an array containing only string values")),
                        })
                        .collect::<Result<_, _>>()?,
                    Bson::Array(_) => return Err(QueryError::new(31119, "$unset specification must be a string or an array with at least one field")),
                    _ => return Err(QueryError::new(31002, "$unset specification must be a string or an array")),
                };
                Stage::Project(Box::new(Projection::exclusion(&paths).map_err(|e| wrap("$unset", e))?))
            }
            "$sort" => match arg {
                Bson::Document(d) if d.is_empty() => {
                    return Err(QueryError::new(15976, "$sort stage must have at least one sort key"))
                }
                Bson::Document(d) => {
                    let spec = SortSpec::parse(d)?;
                    if spec.natural().is_some() {
                        return Err(QueryError::unsupported("$natural sort in $sort"));
                    }
                    Stage::Sort(spec)
                }
                _ => return Err(QueryError::new(15973, "the $sort key specification must be an object")),
            },
            "$skip" => Stage::Skip(non_negative("$skip", arg)?),
            "$limit" => match non_negative("$limit", arg)? {
                0 => return Err(QueryError::new(15958, "the limit must be positive")),
                n => Stage::Limit(n),
            },
            "$group" => Stage::Group(Box::new(group::Group::parse(arg)?)),
            "$bucket" => Stage::Bucket(Box::new(group::Bucket::parse(arg)?)),
            "$bucketAuto" => Stage::BucketAuto(Box::new(bucket_auto::BucketAuto::parse(arg)?)),
            "$documents" => Stage::Documents(Box::new(sources::parse_documents(arg)?)),
            "$collStats" => Stage::CollStats(sources::CollStats::parse(arg)?),
            "$densify" => Stage::Densify(Box::new(densify::Densify::parse(arg)?)),
            "$fill" => Stage::Fill(Box::new(fill::Fill::parse(arg)?)),
            "$count" => match arg {
                Bson::String(s) if s.is_empty() => return Err(QueryError::new(40157, "the count field must be a non-empty string")),
                Bson::String(s) if s.starts_with('$') => return Err(QueryError::new(40158, "the count field cannot be a $-prefixed path")),
                Bson::String(s) if s.contains('.') => return Err(QueryError::new(40160, "the count field cannot contain '.'")),
                Bson::String(s) => Stage::Count(s.clone()),
                _ => return Err(QueryError::new(40156, "the count field must be a non-empty string")),
            },
            "$unwind" => Stage::Unwind(fields::Unwind::parse(arg)?),
            "$replaceRoot" => match arg {
                Bson::Document(d) => match d.get("newRoot") {
                    Some(v) if d.len() == 1 => Stage::ReplaceRoot(Box::new(Expr::parse(v)?), false),
                    Some(_) => {
                        let extra = d.keys().find(|k| *k != "newRoot").cloned().unwrap_or_default();
                        return Err(QueryError::new(40415, format!("BSON field '$replaceRoot.{extra}' is an unknown field.")));
                    }
                    None => return Err(QueryError::new(40414, "BSON field '$replaceRoot.newRoot' is missing but a required field")),
                },
                _ => return Err(QueryError::new(40229, "expected an object as specification for $replaceRoot stage")),
            },
            "$replaceWith" => Stage::ReplaceRoot(Box::new(Expr::parse(arg)?), true),
            "$redact" => Stage::Redact(Box::new(Expr::parse(arg)?)),
            "$setWindowFields" => Stage::SetWindowFields(Box::new(window::SetWindowFields::parse(arg)?)),
            "$sortByCount" => match arg {
                Bson::String(s) if s.starts_with('$') => Stage::SortByCount(Box::new(Expr::parse(arg)?)),
                Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
                    Stage::SortByCount(Box::new(Expr::parse(arg)?))
                }
                _ => {
                    return Err(QueryError::new(
                        40148,
                        "the sortByCount field must be defined as a $-prefixed path or an expression inside an object",
                    ))
                }
            },
            "$lookup" => Stage::Lookup(Box::new(lookup::Lookup::parse(arg)?)),
            "$graphLookup" => Stage::GraphLookup(Box::new(lookup::GraphLookup::parse(arg)?)),
            "$unionWith" => {
                let (coll, pipeline) = lookup::parse_union_with(arg)?;
                Stage::UnionWith(coll, pipeline.map(Box::new))
            }
            "$facet" => {
                let Bson::Document(d) = arg else {
                    return Err(QueryError::new(15947, "a facet's fields must be specified in an object"));
                };
                if d.is_empty() {
                    return Err(QueryError::new(40169, "the $facet specification must be a non-empty object"));
                }
                let mut facets = Vec::with_capacity(d.len());
                for (k, v) in d {
                    let Bson::Array(items) = v else {
                        return Err(QueryError::new(40170, format!("arguments to $facet must be arrays, {k} is type {}", super::expr::type_name(Some(v)))));
                    };
                    let mut stages = Vec::with_capacity(items.len());
                    for item in items {
                        let Bson::Document(s) = item else {
                            return Err(QueryError::new(40171, format!("subpipeline of $facet stage must consist only of documents, found {}", super::expr::type_name(Some(item)))));
                        };
                        if let Some(n) = s.keys().next() {
                            if matches!(n.as_str(), "$out" | "$merge" | "$facet") {
                                return Err(QueryError::new(40600, format!("{n} is not allowed to be used within a $facet stage")));
                            }
                        }
                        stages.push(s.clone());
                    }
                    facets.push((k.clone(), Pipeline::parse(&stages)?));
                }
                Stage::Facet(facets)
            }
            "$sample" => match arg {
                Bson::Document(d) => match d.get("size") {
                    Some(v) => match Num::from_bson(v).map(|n| n.to_f64()) {
                        None => return Err(QueryError::new(28746, "size argument to $sample must be a number")),
                        Some(n) if n < 0.0 => return Err(QueryError::new(28747, "size argument to $sample must not be negative")),
                        // A fractional size is truncated, as MongoDB's safeNumberLong does.
                        Some(n) => Stage::Sample(n as u64),
                    },
                    None => return Err(QueryError::new(28749, "$sample stage must specify a size")),
                },
                _ => return Err(QueryError::new(28745, "the $sample stage specification must be an object")),
            },
            "$out" | "$merge" => {
                if !last {
                    return Err(QueryError::new(40601, format!("{name} can only be the final stage in the pipeline")));
                }
                if name == "$out" {
                    Stage::Out(output::parse_out(arg)?)
                } else {
                    Stage::Merge(Box::new(MergeSpec::parse(arg)?))
                }
            }
            n if UNSUPPORTED_STAGES.contains(&n) => return Err(QueryError::unsupported(n)),
            other => {
                return Err(QueryError::new(
                    40324,
                    format!("Unrecognized pipeline stage name: '{other}'"),
                ))
            }
        })
    }

    /// Runs the pipeline over `input`.
    pub(crate) fn run(
        &self,
        input: Vec<Document>,
        ctx: &dyn AggregateContext,
    ) -> Result<Vec<Document>, QueryError> {
        self.run_with_vars(input, ctx, &[])
    }

    /// Runs the pipeline with user variables bound (`$lookup`'s `let`).
    pub(crate) fn run_with_vars(
        &self,
        input: Vec<Document>,
        ctx: &dyn AggregateContext,
        vars: &[(String, Bson)],
    ) -> Result<Vec<Document>, QueryError> {
        run_stages(&self.stages, input, ctx, vars)
    }

    /// The filter of a leading `$match` stage, which a backend may apply
    /// while reading the collection (then runs the rest from stage 1 with
    /// [`Pipeline::run_prefix`] and [`Pipeline::run_from`]).
    pub(crate) fn leading_match(&self) -> Option<&Filter> {
        match self.stages.first() {
            Some(Stage::Match(f)) => Some(f),
            _ => None,
        }
    }

    /// Runs, over documents borrowed from the collection as they are read,
    /// what can run without copying them: a `$group` or `$count` at stage
    /// `start` (typically right after a leading `$match` the caller applies
    /// while reading). Otherwise copies the documents. An error among
    /// `docs` ends the work with that error. Returns the index of the next
    /// stage to run and its input, for [`Pipeline::run_from`].
    pub(crate) fn run_prefix<'d>(
        &self,
        start: usize,
        docs: impl Iterator<Item = Result<&'d Document, QueryError>>,
        ctx: &dyn AggregateContext,
    ) -> Result<(usize, Vec<Document>), QueryError> {
        let limits = ctx.limits();
        limits.check_time()?;
        let mut failed = None;
        let docs = docs.map_while(|d| d.map_err(|e| failed = Some(e)).ok());
        let result = match self.stages.get(start) {
            Some(Stage::Group(g)) => g.run(docs, &[], &limits).and_then(|out| {
                limits.check_docs("$group", &out)?;
                Ok((start + 1, out))
            }),
            Some(Stage::Count(name)) => Ok((start + 1, count(name, docs.count()))),
            _ => Ok((start, docs.cloned().collect())),
        };
        match failed {
            Some(e) => Err(e),
            None => result,
        }
    }

    /// Runs the stages from index `start` on (see [`Pipeline::run_prefix`]).
    pub(crate) fn run_from(
        &self,
        start: usize,
        input: Vec<Document>,
        ctx: &dyn AggregateContext,
    ) -> Result<Vec<Document>, QueryError> {
        run_stages(
            self.stages.get(start..).unwrap_or_default(),
            input,
            ctx,
            &[],
        )
    }

    /// Whether the first stage reads the collection (`$documents` and
    /// `$collStats` make their own documents).
    pub(crate) fn reads_input(&self) -> bool {
        !matches!(
            self.stages.first(),
            Some(Stage::Documents(_) | Stage::CollStats(_))
        )
    }

    /// Whether the first stage is `$documents`, which MongoDB runs only in
    /// a collection-less aggregate or a `$lookup`/`$unionWith` sub-pipeline.
    pub(crate) fn starts_with_documents(&self) -> bool {
        matches!(self.stages.first(), Some(Stage::Documents(_)))
    }

    /// Whether the pipeline ends with `$out` or `$merge`.
    #[cfg(test)]
    pub(crate) fn writes(&self) -> bool {
        matches!(self.stages.last(), Some(Stage::Out(_) | Stage::Merge(_)))
    }
}

/// `$redact` of one (sub)document: `$$KEEP`, `$$PRUNE` or `$$DESCEND` into
/// embedded documents, including those inside arrays.
fn redact(
    expr: &Expr,
    root: &Document,
    current: &Document,
    vars: &[(String, Bson)],
) -> Result<Option<Document>, QueryError> {
    let mut v = Vars::with_bindings(root, vars);
    v.bind("CURRENT", Bson::Document(current.clone()));
    match expr.eval(&v)? {
        Some(Bson::String(s)) if s == "$$KEEP" => Ok(Some(current.clone())),
        Some(Bson::String(s)) if s == "$$PRUNE" => Ok(None),
        Some(Bson::String(s)) if s == "$$DESCEND" => {
            let mut out = Document::new();
            for (k, val) in current {
                match val {
                    Bson::Document(sub) => {
                        if let Some(kept) = redact(expr, root, sub, vars)? {
                            out.insert(k.clone(), kept);
                        }
                    }
                    Bson::Array(items) => {
                        let mut kept_items = Vec::with_capacity(items.len());
                        for item in items {
                            match item {
                                Bson::Document(sub) => {
                                    if let Some(kept) = redact(expr, root, sub, vars)? {
                                        kept_items.push(Bson::Document(kept));
                                    }
                                }
                                other => kept_items.push(other.clone()),
                            }
                        }
                        out.insert(k.clone(), kept_items);
                    }
                    other => {
                        out.insert(k.clone(), other.clone());
                    }
                }
            }
            Ok(Some(out))
        }
        other => Err(QueryError::new(
            17053,
            format!(
                "$redact's expression should not return anything aside from the variables $$KEEP, $$DESCEND, and $$PRUNE, but returned {}",
                other.as_ref().map(super::display_value).unwrap_or_else(|| "MISSING".into())
            ),
        )),
    }
}

/// Evaluates `expr` against `doc` with user variables.
pub(crate) fn eval_in(
    expr: &Expr,
    doc: &Document,
    vars: &[(String, Bson)],
) -> Result<Option<Bson>, QueryError> {
    expr.eval(&Vars::with_bindings(doc, vars))
}

/// The output of `$count` over `n` documents: nothing when there are none.
fn count(name: &str, n: usize) -> Vec<Document> {
    if n == 0 {
        return Vec::new();
    }
    let mut d = Document::new();
    d.insert(
        name,
        i32::try_from(n)
            .map(Bson::Int32)
            .unwrap_or(Bson::Int64(n as i64)),
    );
    vec![d]
}

/// Runs `stages` in order over `input`, metered: before each stage the
/// clock is read; after a stage that built its output anew, its input is no
/// longer charged to the request's memory budget.
fn run_stages(
    stages: &[Stage],
    input: Vec<Document>,
    ctx: &dyn AggregateContext,
    vars: &[(String, Bson)],
) -> Result<Vec<Document>, QueryError> {
    let limits = ctx.limits();
    let base = budget::used();
    let mut docs = input;
    for stage in stages {
        limits.check_time()?;
        let accounting = budget::Stage::open(base);
        docs = run_stage(stage, docs, ctx, vars, &limits)?;
        accounting.close(stage.builds_output());
    }
    Ok(docs)
}

impl Stage {
    /// Whether the stage's output is built anew (its input is gone after
    /// it), rather than input documents passed through, filtered or added to.
    fn builds_output(&self) -> bool {
        !matches!(
            self,
            Stage::Match(_)
                | Stage::Sort(_)
                | Stage::Skip(_)
                | Stage::Limit(_)
                | Stage::Sample(_)
                | Stage::Densify(_)
                | Stage::Fill(_)
                | Stage::UnionWith(..)
                | Stage::BucketAuto(_)
        )
    }
}

fn run_stage(
    stage: &Stage,
    docs: Vec<Document>,
    ctx: &dyn AggregateContext,
    vars: &[(String, Bson)],
    limits: &Limits,
) -> Result<Vec<Document>, QueryError> {
    // Per-document stages look at the clock every few hundred documents.
    // Their output is charged to the request's memory budget as it is built.
    let per_doc = |f: &dyn Fn(&Document) -> Result<Document, QueryError>| {
        docs.iter()
            .enumerate()
            .map(|(i, d)| {
                limits.tick(i)?;
                let out = f(d)?;
                budget::charge_doc(&out, "a pipeline stage")?;
                Ok(out)
            })
            .collect::<Result<Vec<_>, QueryError>>()
    };
    Ok(match stage {
        Stage::Match(f) => {
            let mut kept = Vec::with_capacity(docs.len());
            for (i, d) in docs.into_iter().enumerate() {
                limits.tick(i)?;
                if f.matches_with_vars(&d, vars)? {
                    kept.push(d);
                }
            }
            kept
        }
        Stage::Project(p) => per_doc(&|d| p.apply(d))?,
        Stage::AddFields(a) => per_doc(&|d| a.apply(d, vars))?,
        Stage::Sort(s) => {
            limits.check_docs("$sort", &docs)?;
            let mut docs = docs;
            s.sort(&mut docs);
            docs
        }
        Stage::Skip(n) => docs
            .into_iter()
            .skip(usize::try_from(*n).unwrap_or(usize::MAX))
            .collect(),
        Stage::Limit(n) => docs
            .into_iter()
            .take(usize::try_from(*n).unwrap_or(usize::MAX))
            .collect(),
        Stage::Group(g) => {
            let out = g.run(&docs, vars, limits)?;
            limits.check_docs("$group", &out)?;
            budget::charge_docs(&out, "$group")?;
            out
        }
        Stage::Bucket(b) => {
            let out = b.run(&docs, vars)?;
            limits.check_docs("$bucket", &out)?;
            budget::charge_docs(&out, "$bucket")?;
            out
        }
        Stage::BucketAuto(b) => b.run(docs, vars, limits)?,
        Stage::Documents(e) => sources::run_documents(e, vars)?,
        Stage::CollStats(c) => c.run(ctx)?,
        Stage::Densify(d) => {
            limits.check_docs("$densify", &docs)?;
            d.run(docs, limits)?
        }
        Stage::Fill(f) => f.run(docs, vars, limits)?,
        Stage::Count(name) => count(name, docs.len()),
        Stage::Unwind(u) => {
            let out = u.run(docs)?;
            limits.check_time()?;
            out
        }
        Stage::ReplaceRoot(e, with) => per_doc(&|d| {
            match eval_in(e, d, vars)? {
            Some(Bson::Document(nd)) => Ok(nd),
            other => Err(QueryError::new(
                40228,
                format!(
                    "{} must evaluate to an object, but resulting value was: {}. Type of resulting value: '{}'. Input document: {}",
                    // MongoDB's wording, two spaces included.
                    if *with { "'replacement document' " } else { "'newRoot' expression" },
                    other.as_ref().map(super::display_value).unwrap_or_else(|| "MISSING".into()),
                    super::expr::type_name(other.as_ref()),
                    super::display_doc(d)
                ),
            )),
        }
        })?,
        Stage::SortByCount(e) => group::sort_by_count(e, &docs, vars)?,
        Stage::SetWindowFields(w) => {
            limits.check_docs("$setWindowFields", &docs)?;
            w.run(docs, vars, limits)?
        }
        Stage::Redact(e) => {
            let mut out = Vec::with_capacity(docs.len());
            for (i, d) in docs.iter().enumerate() {
                limits.tick(i)?;
                if let Some(kept) = redact(e, d, d, vars)? {
                    budget::charge_doc(&kept, "$redact")?;
                    out.push(kept);
                }
            }
            out
        }
        Stage::Lookup(l) => {
            let out = l.run(docs, ctx, vars)?;
            limits.check_docs("$lookup", &out)?;
            out
        }
        Stage::GraphLookup(g) => {
            let out = g.run(docs, ctx, vars)?;
            limits.check_docs("$graphLookup", &out)?;
            out
        }
        Stage::UnionWith(coll, pipeline) => {
            let mut docs = docs;
            let other = ctx.collection(coll);
            budget::charge_docs(&other, "$unionWith")?;
            let other = match pipeline {
                Some(p) => p.run(other, ctx)?,
                None => other,
            };
            docs.extend(other);
            docs
        }
        Stage::Facet(facets) => {
            let mut out = Document::new();
            for (name, p) in facets {
                budget::charge_docs(&docs, "$facet")?;
                let res = p.run_with_vars(docs.clone(), ctx, vars)?;
                out.insert(
                    name.clone(),
                    res.into_iter().map(Bson::Document).collect::<Vec<_>>(),
                );
            }
            limits.check_bytes("$facet", doc_size(&out))?;
            vec![out]
        }
        Stage::Sample(n) => output::sample(docs, *n),
        Stage::Out(coll) => {
            output::write_out(coll, docs, ctx)?;
            Vec::new()
        }
        Stage::Merge(spec) => {
            spec.run(docs, ctx)?;
            Vec::new()
        }
    })
}

#[cfg(test)]
mod tests;
