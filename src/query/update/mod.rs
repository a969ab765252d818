//! Update documents (`{$set: …, $inc: …}`), upsert seeds, pipeline-style
//! updates and replacement validation.

mod doc_path;
mod modifiers;

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::aggregate::Pipeline;
use super::filter::Filter;
use super::number::Num;
use super::path::{array_index, check_parts};
use super::pattern::Pattern;
use super::sort::SortSpec;
use super::{display_value, QueryError};

pub(crate) use crate::query::id::{check_id_unchanged, validate_id};

/// One segment of an update path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Field(String),
    /// `$`: the array element the query matched.
    Positional,
    /// `$[]`: every element.
    AllPositional,
    /// `$[id]`: the elements matching array filter `id`.
    Filtered(String),
}

/// How `$push` arranges the new array.
#[derive(Debug, Clone)]
struct PushSpec {
    each: Vec<Bson>,
    position: Option<i64>,
    slice: Option<i64>,
    sort: Option<PushSort>,
}

#[derive(Debug, Clone)]
enum PushSort {
    Whole(bool),
    Fields(SortSpec),
}

/// A `$pull` condition.
#[derive(Debug, Clone)]
enum PullCond {
    Equal(Bson),
    Regex(Box<Pattern>),
    Query(Box<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
}

#[derive(Debug, Clone)]
enum Op {
    Set(Bson),
    SetOnInsert(Bson),
    Unset,
    Inc(Num),
    Mul(Num),
    Min(Bson),
    Max(Bson),
    Rename(Vec<String>),
    Push(PushSpec),
    AddToSet(Vec<Bson>),
    Pop(bool),
    Pull(PullCond),
    PullAll(Vec<Bson>),
    Bit(Vec<(BitOp, Bson)>),
    CurrentDate(bool),
}

#[derive(Debug, Clone)]
struct FieldOp {
    path: Vec<Seg>,
    raw: String,
    op: Op,
}

/// A parsed update-operator document.
#[derive(Debug, Clone)]
pub(crate) struct UpdateDoc {
    ops: Vec<FieldOp>,
    array_filters: Vec<(String, Filter)>,
    positional: bool,
}

pub(crate) const MODIFIERS: &[&str] = &[
    "$set",
    "$unset",
    "$inc",
    "$mul",
    "$min",
    "$max",
    "$rename",
    "$push",
    "$addToSet",
    "$pop",
    "$pull",
    "$pullAll",
    "$bit",
    "$currentDate",
    "$setOnInsert",
];

fn parse_path(raw: &str) -> Result<Vec<Seg>, QueryError> {
    if raw.is_empty() {
        return Err(QueryError::new(56, "An empty update path is not valid."));
    }
    check_parts(raw)?;
    let mut segs = Vec::new();
    let mut positional = 0;
    for part in raw.split('.') {
        if part.is_empty() {
            return Err(QueryError::new(
                56,
                format!(
                    "The update path '{raw}' contains an empty field name, which is not allowed."
                ),
            ));
        }
        let seg = if part == "$" {
            positional += 1;
            Seg::Positional
        } else if part == "$[]" {
            Seg::AllPositional
        } else if let Some(id) = part.strip_prefix("$[").and_then(|p| p.strip_suffix(']')) {
            Seg::Filtered(id.to_string())
        } else if part.starts_with('$') {
            return Err(QueryError::new(
                52,
                format!(
                    "The dollar ($) prefixed field '{part}' in '{raw}' is not valid for storage."
                ),
            ));
        } else {
            Seg::Field(part.to_string())
        };
        segs.push(seg);
    }
    if positional > 1 {
        return Err(QueryError::bad_value(format!(
            "Too many positional (i.e. '$') elements found in path '{raw}'"
        )));
    }
    if matches!(
        segs.first(),
        Some(Seg::Positional | Seg::AllPositional | Seg::Filtered(_))
    ) {
        return Err(QueryError::bad_value(format!(
            "Cannot have array filter identifier (i.e. '$[<id>]') element in the first position in path '{raw}'"
        )));
    }
    Ok(segs)
}

fn is_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

fn parse_array_filters(filters: &[Document]) -> Result<Vec<(String, Filter)>, QueryError> {
    let mut out: Vec<(String, Filter)> = Vec::with_capacity(filters.len());
    for f in filters {
        let mut id: Option<String> = None;
        for key in f.keys() {
            let top = key.split('.').next().unwrap_or_default().to_string();
            if top.starts_with('$') {
                continue;
            }
            match &id {
                None => id = Some(top),
                Some(existing) if *existing != top => {
                    return Err(QueryError::failed_to_parse(format!(
                        "Error parsing array filter :: caused by :: Expected a single top-level field name, found '{existing}' and '{top}'"
                    )))
                }
                _ => {}
            }
        }
        let Some(id) = id else {
            return Err(QueryError::failed_to_parse(
                "Error parsing array filter :: caused by :: Cannot use an expression without a top-level field name in arrayFilters",
            ));
        };
        if !is_identifier(&id) {
            return Err(QueryError::bad_value(format!(
                "Error parsing array filter :: caused by :: The top-level field name must be an alphanumeric string beginning with a lowercase letter, found '{id}'"
            )));
        }
        if out.iter().any(|(existing, _)| *existing == id) {
            return Err(QueryError::failed_to_parse(format!(
                "Found multiple array filters with the same top-level field name {id}"
            )));
        }
        out.push((id, Filter::parse(f)?));
    }
    Ok(out)
}

fn int_of(v: &Bson) -> Option<i64> {
    Num::from_bson(v).and_then(Num::to_i64_exact)
}

fn parse_push(value: &Bson) -> Result<PushSpec, QueryError> {
    let Bson::Document(d) = value else {
        return Ok(PushSpec {
            each: vec![value.clone()],
            position: None,
            slice: None,
            sort: None,
        });
    };
    if !d.contains_key("$each") {
        return Ok(PushSpec {
            each: vec![value.clone()],
            position: None,
            slice: None,
            sort: None,
        });
    }
    let mut spec = PushSpec {
        each: Vec::new(),
        position: None,
        slice: None,
        sort: None,
    };
    for (k, v) in d {
        match k.as_str() {
            "$each" => match v {
                Bson::Array(items) => spec.each = items.clone(),
                other => {
                    return Err(QueryError::bad_value(format!(
                        "The argument to $each in $push must be an array but it was of type: {}",
                        super::expr::type_name(Some(other))
                    )))
                }
            },
            "$slice" => {
                spec.slice = Some(int_of(v).ok_or_else(|| {
                    QueryError::bad_value(format!(
                        "The value for $slice must be an integer value but was given type: {}",
                        super::expr::type_name(Some(v))
                    ))
                })?)
            }
            "$position" => {
                spec.position = Some(int_of(v).ok_or_else(|| {
                    QueryError::bad_value(format!(
                        "The value for $position must be an integer value, not of type: {}",
                        super::expr::type_name(Some(v))
                    ))
                })?)
            }
            "$sort" => {
                let bad = || {
                    QueryError::bad_value(
                        "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort embedded fields",
                    )
                };
                spec.sort = Some(match v {
                    Bson::Document(s) => {
                        if s.is_empty() {
                            return Err(QueryError::bad_value(
                                "The $sort pattern is empty when it should be a set of fields.",
                            ));
                        }
                        PushSort::Fields(SortSpec::parse(s).map_err(|_| bad())?)
                    }
                    other => match int_of(other) {
                        Some(1) => PushSort::Whole(true),
                        Some(-1) => PushSort::Whole(false),
                        _ => return Err(bad()),
                    },
                });
            }
            other => {
                return Err(QueryError::bad_value(format!(
                    "Unrecognized clause in $push: {other}"
                )))
            }
        }
    }
    Ok(spec)
}

fn parse_op(modifier: &str, field: &str, value: &Bson) -> Result<Op, QueryError> {
    Ok(match modifier {
        "$set" => Op::Set(value.clone()),
        "$setOnInsert" => Op::SetOnInsert(value.clone()),
        "$unset" => Op::Unset,
        "$inc" | "$mul" => {
            let n = Num::from_bson(value).ok_or_else(|| {
                QueryError::type_mismatch(format!(
                    "Cannot {} with non-numeric argument: {{{field}: {}}}",
                    if modifier == "$inc" { "increment" } else { "multiply" },
                    display_value(value)
                ))
            })?;
            if modifier == "$inc" { Op::Inc(n) } else { Op::Mul(n) }
        }
        "$min" => Op::Min(value.clone()),
        "$max" => Op::Max(value.clone()),
        "$rename" => {
            let Bson::String(to) = value else {
                return Err(QueryError::bad_value(format!(
                    "The 'to' field for $rename must be a string: {field}: {}",
                    display_value(value)
                )));
            };
            if to == field {
                return Err(QueryError::bad_value(format!(
                    "The source and target field for $rename must differ: {field}: \"{to}\""
                )));
            }
            let to_segs = parse_path(to)?;
            if to_segs.iter().any(|s| !matches!(s, Seg::Field(_))) {
                return Err(QueryError::bad_value(format!(
                    "The destination field for $rename may not be dynamic: {to}"
                )));
            }
            if field.starts_with(&format!("{to}.")) || to.starts_with(&format!("{field}.")) {
                return Err(QueryError::bad_value(format!(
                    "The source and target field for $rename must not be on the same path: {field}: \"{to}\""
                )));
            }
            Op::Rename(to.split('.').map(str::to_string).collect())
        }
        "$push" => Op::Push(parse_push(value)?),
        "$addToSet" => match value {
            Bson::Document(d) if d.keys().next().is_some_and(|k| k == "$each") => match d.get("$each") {
                Some(Bson::Array(items)) => Op::AddToSet(items.clone()),
                other => {
                    return Err(QueryError::bad_value(format!(
                        "The argument to $each in $addToSet must be an array but it was of type {}",
                        super::expr::type_name(other)
                    )))
                }
            },
            other => Op::AddToSet(vec![other.clone()]),
        },
        "$pop" => match int_of(value) {
            Some(1) => Op::Pop(false),
            Some(-1) => Op::Pop(true),
            _ => {
                return Err(QueryError::failed_to_parse(format!(
                    "$pop expects 1 or -1, found: {}",
                    display_value(value)
                )))
            }
        },
        "$pull" => Op::Pull(match value {
            Bson::Document(d) if !d.is_empty() => PullCond::Query(Box::new(Filter::parse_value_condition(d)?)),
            Bson::RegularExpression(r) => PullCond::Regex(Box::new(Pattern::from_regex(r)?)),
            other => PullCond::Equal(other.clone()),
        }),
        "$pullAll" => match value {
            Bson::Array(items) => Op::PullAll(items.clone()),
            other => {
                return Err(QueryError::bad_value(format!(
                    "$pullAll requires an array argument but was given a {}",
                    super::expr::type_name(Some(other))
                )))
            }
        },
        "$bit" => {
            let Bson::Document(d) = value else {
                return Err(QueryError::bad_value(format!(
                    "The $bit modifier is not compatible with a {}. You must pass in an embedded document: {{$bit: {{field: {{and/or/xor: #}}}}.",
                    super::expr::type_name(Some(value))
                )));
            };
            let mut ops = Vec::new();
            for (k, v) in d {
                let op = match k.as_str() {
                    "and" => BitOp::And,
                    "or" => BitOp::Or,
                    "xor" => BitOp::Xor,
                    other => {
                        return Err(QueryError::bad_value(format!(
                            "The $bit modifier only supports 'and', 'or', and 'xor', not '{other}' which is an unknown operator: {{{other}: {}}}",
                            display_value(v)
                        )))
                    }
                };
                if !matches!(v, Bson::Int32(_) | Bson::Int64(_)) {
                    return Err(QueryError::bad_value(format!(
                        "The $bit modifier field must be an Integer(32/64 bit); a '{}' is not supported here: {{{k}: {}}}",
                        super::expr::type_name(Some(v)),
                        display_value(v)
                    )));
                }
                ops.push((op, v.clone()));
            }
            if ops.is_empty() {
                return Err(QueryError::bad_value("You must pass in at least one bitwise operation. The format is: {$bit: {field: {and/or/xor: #}}}."));
            }
            Op::Bit(ops)
        }
        "$currentDate" => match value {
            Bson::Boolean(_) => Op::CurrentDate(false),
            Bson::Document(d) if d.len() == 1 => match d.get("$type") {
                Some(Bson::String(t)) if t == "date" => Op::CurrentDate(false),
                Some(Bson::String(t)) if t == "timestamp" => Op::CurrentDate(true),
                _ => {
                    return Err(QueryError::bad_value(
                        "The '$type' string field is required to be 'date' or 'timestamp': {$currentDate: {field : {$type: 'date'}}}",
                    ))
                }
            },
            other => {
                return Err(QueryError::bad_value(format!(
                    "{} is not valid type for $currentDate. Please use a boolean ('true') or a $type expression ({{$type: 'timestamp/date'}}).",
                    display_value(other)
                )))
            }
        },
        _ => return Err(QueryError::bad_value(format!("Unknown modifier: {modifier}"))),
    })
}

/// Orders field names as MongoDB 5.0+ applies updates: numeric names
/// numerically, others lexicographically.
fn compare_paths(a: &[Seg], b: &[Seg]) -> Ordering {
    let key = |s: &Seg| match s {
        Seg::Field(f) => (
            array_index(f).map_or(1, |_| 0),
            array_index(f).unwrap_or(0),
            f.clone(),
        ),
        other => (2, 0, format!("{other:?}")),
    };
    for (x, y) in a.iter().zip(b.iter()) {
        let o = key(x).cmp(&key(y));
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

fn conflict_key(path: &[Seg]) -> Vec<String> {
    path.iter()
        .map(|s| match s {
            Seg::Field(f) => f.clone(),
            Seg::Positional => "$".into(),
            Seg::AllPositional => "$[]".into(),
            Seg::Filtered(id) => format!("$[{id}]"),
        })
        .collect()
}

impl UpdateDoc {
    /// Parses an update-operator document; `array_filters` serve `$[<id>]`.
    pub(crate) fn parse(
        update: &Document,
        array_filters: Option<&[Document]>,
    ) -> Result<UpdateDoc, QueryError> {
        if update.is_empty() || !update.keys().next().is_some_and(|k| k.starts_with('$')) {
            return Err(QueryError::failed_to_parse(
                "Update document requires atomic operators",
            ));
        }
        let mut ops = Vec::new();
        for (modifier, arg) in update {
            if !MODIFIERS.contains(&modifier.as_str()) {
                return Err(QueryError::failed_to_parse(format!(
                    "Unknown modifier: {modifier}. Expected a valid update modifier or pipeline-style update specified as an array"
                )));
            }
            let Bson::Document(fields) = arg else {
                return Err(QueryError::failed_to_parse(format!(
                    "Modifiers operate on fields but we found type {} instead. For example: {{$mod: {{<field>: ...}}}} not {{{modifier}: {}}}",
                    super::expr::type_name(Some(arg)),
                    display_value(arg)
                )));
            };
            if fields.is_empty() {
                return Err(QueryError::failed_to_parse(format!(
                    "'{modifier}' is empty. You must specify a field like so: {{{modifier}: {{<field>: ...}}}}"
                )));
            }
            for (field, value) in fields {
                let path = parse_path(field)?;
                if modifier == "$rename" && path.iter().any(|s| !matches!(s, Seg::Field(_))) {
                    return Err(QueryError::bad_value(format!(
                        "The source field for $rename may not be dynamic: {field}"
                    )));
                }
                let op = parse_op(modifier, field, value)?;
                ops.push(FieldOp {
                    path,
                    raw: field.clone(),
                    op,
                });
            }
        }
        // Conflicts: no path may be a prefix of (or equal to) another.
        let mut all: Vec<(Vec<String>, &str)> = Vec::new();
        for op in &ops {
            all.push((conflict_key(&op.path), &op.raw));
            if let Op::Rename(to) = &op.op {
                all.push((to.clone(), ""));
            }
        }
        for i in 0..all.len() {
            for j in 0..i {
                let (a, b) = (&all[i].0, &all[j].0);
                let n = a.len().min(b.len());
                // MongoDB builds one tree of update nodes: a field followed
                // by `$[]`/`$[id]` is an array node, followed by anything else
                // an object node; one field cannot be both.
                let shared = a.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
                if shared > 0
                    && shared < n
                    && is_array_filter_segment(&a[shared]) != is_array_filter_segment(&b[shared])
                {
                    return Err(QueryError::new(
                        40,
                        format!(
                            "Updating the path '{}' would create a conflict at '{}'",
                            a.join("."),
                            a[..shared].join(".")
                        ),
                    ));
                }
                if a[..n] == b[..n] {
                    let later = a.join(".");
                    return Err(QueryError::new(
                        40,
                        format!(
                            "Updating the path '{later}' would create a conflict at '{}'",
                            a[..n].join(".")
                        ),
                    ));
                }
            }
        }
        let array_filters = parse_array_filters(array_filters.unwrap_or(&[]))?;
        for op in &ops {
            for seg in &op.path {
                if let Seg::Filtered(id) = seg {
                    if !array_filters.iter().any(|(f, _)| f == id) {
                        return Err(QueryError::bad_value(format!(
                            "No array filter found for identifier '{id}' in path '{}'",
                            op.raw
                        )));
                    }
                }
            }
        }
        for (id, _) in &array_filters {
            let used = ops.iter().any(|op| {
                op.path
                    .iter()
                    .any(|s| matches!(s, Seg::Filtered(x) if x == id))
            });
            if !used {
                return Err(QueryError::failed_to_parse(format!(
                    "The array filter for identifier '{id}' was not used in the update {}",
                    super::display_doc(update)
                )));
            }
        }
        ops.sort_by(|a, b| compare_paths(&a.path, &b.path));
        let positional = ops.iter().any(|op| op.path.contains(&Seg::Positional));
        Ok(UpdateDoc {
            ops,
            array_filters,
            positional,
        })
    }

    /// Whether the update uses the positional `$` operator (which needs
    /// [`Filter::matched_array_index`]).
    pub(crate) fn uses_positional(&self) -> bool {
        self.positional
    }

    /// Applies the update; returns whether the document changed. On error
    /// the document may be partly modified: callers apply to a copy.
    pub(crate) fn apply(
        &self,
        doc: &mut Document,
        is_upsert_insert: bool,
    ) -> Result<bool, QueryError> {
        self.apply_with_match(doc, is_upsert_insert, None)
    }

    /// [`UpdateDoc::apply`] with the array index the query matched, for `$`.
    pub(crate) fn apply_with_match(
        &self,
        doc: &mut Document,
        is_upsert_insert: bool,
        matched_index: Option<usize>,
    ) -> Result<bool, QueryError> {
        let original_id = doc.get("_id").cloned();
        let mut changed = false;
        for op in &self.ops {
            if matches!(op.op, Op::SetOnInsert(_)) && !is_upsert_insert {
                continue;
            }
            let concrete = self.expand(doc, op, matched_index)?;
            for path in concrete {
                changed |= modifiers::apply_op(doc, &path, &op.op, &original_id)?;
            }
        }
        if let Some(old) = &original_id {
            let same = doc
                .get("_id")
                .is_some_and(|new| super::compare::identical(new, old));
            if !same {
                return Err(QueryError::new(
                    66,
                    "Performing an update on the path '_id' would modify the immutable field '_id'",
                ));
            }
        }
        Ok(changed)
    }

    /// Resolves positional segments into concrete paths.
    fn expand(
        &self,
        doc: &Document,
        op: &FieldOp,
        matched: Option<usize>,
    ) -> Result<Vec<Vec<String>>, QueryError> {
        let mut out = Vec::new();
        if op.path.iter().all(|s| matches!(s, Seg::Field(_))) {
            out.push(conflict_key(&op.path));
            return Ok(out);
        }
        let root = Bson::Document(doc.clone());
        self.expand_from(Some(&root), &op.path, Vec::new(), matched, &mut out)?;
        Ok(out)
    }

    fn expand_from(
        &self,
        cur: Option<&Bson>,
        rest: &[Seg],
        prefix: Vec<String>,
        matched: Option<usize>,
        out: &mut Vec<Vec<String>>,
    ) -> Result<(), QueryError> {
        let Some((seg, tail)) = rest.split_first() else {
            out.push(prefix);
            return Ok(());
        };
        fn step<'a>(cur: Option<&'a Bson>, key: &str) -> Option<&'a Bson> {
            match cur? {
                Bson::Document(d) => d.get(key),
                Bson::Array(a) => a.get(array_index(key)?),
                _ => None,
            }
        }
        match seg {
            Seg::Field(f) => {
                let mut p = prefix;
                p.push(f.clone());
                self.expand_from(step(cur, f), tail, p, matched, out)
            }
            Seg::Positional => {
                let Some(i) = matched else {
                    return Err(QueryError::bad_value(
                        "The positional operator did not find the match needed from the query.",
                    ));
                };
                let key = i.to_string();
                let next = step(cur, &key);
                let mut p = prefix;
                p.push(key);
                self.expand_from(next, tail, p, matched, out)
            }
            Seg::AllPositional | Seg::Filtered(_) => {
                let items = match cur {
                    Some(Bson::Array(items)) => items,
                    None => {
                        return Err(QueryError::bad_value(format!(
                        "The path '{}' must exist in the document in order to apply array updates.",
                        prefix.join(".")
                    )))
                    }
                    Some(other) => {
                        return Err(QueryError::bad_value(format!(
                            "Cannot apply array updates to non-array element {}",
                            doc_path::element_text(
                                prefix.last().map(String::as_str).unwrap_or(""),
                                other
                            )
                        )))
                    }
                };
                for (i, item) in items.iter().enumerate() {
                    if let Seg::Filtered(id) = seg {
                        let filter = self
                            .array_filters
                            .iter()
                            .find(|(f, _)| f == id)
                            .map(|(_, f)| f);
                        let mut probe = Document::new();
                        probe.insert(id.clone(), item.clone());
                        if !filter.is_some_and(|f| f.matches(&probe)) {
                            continue;
                        }
                    }
                    let mut p = prefix.clone();
                    p.push(i.to_string());
                    self.expand_from(Some(item), tail, p, matched, out)?;
                }
                Ok(())
            }
        }
    }
}

/// Whether a path segment is `$[]` or `$[<identifier>]`.
fn is_array_filter_segment(seg: &str) -> bool {
    seg.starts_with("$[") && seg.ends_with(']')
}

/// The document an upsert starts from: the filter's equality conditions
/// (top level and inside `$and`, not `$gt` etc.), dotted paths expanded.
///
/// The fields are added in the byte order of their paths, not in filter
/// order: MongoDB collects the equalities of the canonicalised query into an
/// ordered map keyed by path before it writes them (`_id` still goes first,
/// as in every stored document).
pub(crate) fn upsert_seed(filter: &Document) -> Result<Document, QueryError> {
    let mut equalities = Vec::new();
    seed_from(filter, &mut equalities);
    equalities.sort_by(|(a, _), (b, _)| a.cmp(b));
    let mut seed = Document::new();
    for (key, v) in equalities {
        check_parts(&key)?;
        let path: Vec<String> = key.split('.').map(str::to_string).collect();
        let twice = || {
            QueryError::new(
                54,
                format!("cannot infer query fields to set, path '{key}' is matched twice"),
            )
        };
        if doc_path::get(&seed, &path).is_some() {
            return Err(twice());
        }
        doc_path::set(&mut seed, &path, v).map_err(|_| twice())?;
    }
    Ok(seed)
}

/// Collects the filter's equality conditions as (dotted path, value).
fn seed_from(filter: &Document, out: &mut Vec<(String, Bson)>) {
    for (key, value) in filter {
        if key == "$and" || key == "$or" {
            if let Bson::Array(items) = value {
                if key == "$or" && items.len() != 1 {
                    continue;
                }
                for item in items {
                    if let Bson::Document(d) = item {
                        seed_from(d, out);
                    }
                }
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        if key.split('.').any(|s| s.starts_with('$')) {
            continue;
        }
        let equalities: Vec<Bson> = match value {
            Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
                let mut found: Vec<Bson> = d.get("$eq").cloned().into_iter().collect();
                // A one-element `$in` is an equality to it; every element of
                // `$all` is one (MongoDB's parser rewrites both before it
                // looks, so `$all: [1, 2]` matches the path twice).
                if let Some(Bson::Array(items)) = d.get("$in") {
                    if items.len() == 1 && !matches!(items[0], Bson::RegularExpression(_)) {
                        found.push(items[0].clone());
                    }
                }
                if let Some(Bson::Array(items)) = d.get("$all") {
                    found.extend(
                        items
                            .iter()
                            .filter(|v| {
                                !matches!(v, Bson::RegularExpression(_))
                                    && !matches!(v, Bson::Document(e) if e.contains_key("$elemMatch"))
                            })
                            .cloned(),
                    );
                }
                found
            }
            Bson::RegularExpression(_) => Vec::new(),
            other => vec![other.clone()],
        };
        out.extend(equalities.into_iter().map(|v| (key.clone(), v)));
    }
}

/// Stages a pipeline-style update may use.
const UPDATE_STAGES: &[&str] = &[
    "$addFields",
    "$set",
    "$project",
    "$unset",
    "$replaceRoot",
    "$replaceWith",
];

/// Parses a pipeline-style update, rejecting stages an update may not use.
pub(crate) fn parse_pipeline_update(pipeline: &[Document]) -> Result<Pipeline, QueryError> {
    for stage in pipeline {
        if let Some(name) = stage.keys().next() {
            if !UPDATE_STAGES.contains(&name.as_str()) {
                return Err(QueryError::new(
                    72,
                    format!("{name} is not allowed to be used within an update"),
                ));
            }
        }
    }
    Pipeline::parse(pipeline)
}

/// Applies a pipeline-style update (`[{$set: …}, {$unset: …}]`) to a document.
/// The `_id` is restored when the pipeline drops it.
pub(crate) fn apply_pipeline_update(
    pipeline: &[Document],
    doc: &Document,
) -> Result<Document, QueryError> {
    apply_parsed_pipeline_update(&parse_pipeline_update(pipeline)?, doc)
}

/// [`apply_pipeline_update`] with a pipeline from [`parse_pipeline_update`].
pub(crate) fn apply_parsed_pipeline_update(
    parsed: &Pipeline,
    doc: &Document,
) -> Result<Document, QueryError> {
    let mut out = parsed.run(vec![doc.clone()], &super::aggregate::NoCollections)?;
    let mut result = out.pop().unwrap_or_default();
    if let (Some(id), false) = (doc.get("_id"), result.contains_key("_id")) {
        let mut with_id = Document::new();
        with_id.insert("_id", id.clone());
        with_id.extend(result);
        result = with_id;
    }
    Ok(result)
}

/// Checks a replacement document: no `$`-prefixed top-level fields, a valid `_id`.
pub(crate) fn validate_replacement(replacement: &Document) -> Result<(), QueryError> {
    for key in replacement.keys() {
        if key.starts_with('$') {
            return Err(QueryError::new(
                52,
                format!(
                    "The dollar ($) prefixed field '{key}' in '{key}' is not valid for storage."
                ),
            ));
        }
    }
    if let Some(id) = replacement.get("_id") {
        validate_id(id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
