//! `$group` with its accumulators, `$bucket` and `$sortByCount`.

use std::collections::{HashMap, HashSet};

use bson::{Bson, Document};

use super::eval_in;
use crate::query::compare::{canonical_key, canonical_key_into, compare_values, type_rank};
use crate::query::expr::{add_nums, nullish, Expr};
use crate::query::limits::{value_size, Limits};
use crate::query::number::{self, Num};
use crate::query::sort::SortSpec;
use crate::query::QueryError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccKind {
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
    Push,
    AddToSet,
    Count,
    MergeObjects,
    StdDevPop,
    StdDevSamp,
    FirstN,
    LastN,
    MaxN,
    MinN,
    Top,
    Bottom,
    TopN,
    BottomN,
}

#[derive(Debug, Clone)]
struct Accumulator {
    name: String,
    kind: AccKind,
    expr: Expr,
    /// `n` of the `…N` accumulators.
    n: Option<Expr>,
    /// `sortBy` of `$top`/`$bottom`(N).
    sort: Option<SortSpec>,
}

impl AccKind {
    /// The accumulator named `op`, ranked or not.
    fn from_name(op: &str) -> Option<AccKind> {
        Some(match op {
            "$sum" => AccKind::Sum,
            "$avg" => AccKind::Avg,
            "$min" => AccKind::Min,
            "$max" => AccKind::Max,
            "$first" => AccKind::First,
            "$last" => AccKind::Last,
            "$push" => AccKind::Push,
            "$addToSet" => AccKind::AddToSet,
            "$count" => AccKind::Count,
            "$mergeObjects" => AccKind::MergeObjects,
            "$stdDevPop" => AccKind::StdDevPop,
            "$stdDevSamp" => AccKind::StdDevSamp,
            "$firstN" => AccKind::FirstN,
            "$lastN" => AccKind::LastN,
            "$maxN" => AccKind::MaxN,
            "$minN" => AccKind::MinN,
            "$top" => AccKind::Top,
            "$bottom" => AccKind::Bottom,
            "$topN" => AccKind::TopN,
            "$bottomN" => AccKind::BottomN,
            _ => return None,
        })
    }

    /// Whether the accumulator reads only numbers (other values are ignored).
    fn numeric(self) -> bool {
        matches!(
            self,
            AccKind::Sum | AccKind::Avg | AccKind::StdDevPop | AccKind::StdDevSamp
        )
    }

    fn ranked(self) -> bool {
        matches!(
            self,
            AccKind::FirstN
                | AccKind::LastN
                | AccKind::MaxN
                | AccKind::MinN
                | AccKind::Top
                | AccKind::Bottom
                | AccKind::TopN
                | AccKind::BottomN
        )
    }
}

/// Parses the argument document of `$firstN`, `$top`, … into (n, sortBy, value).
fn parse_ranked(
    op: &str,
    kind: AccKind,
    arg: &Bson,
) -> Result<(Option<Expr>, Option<SortSpec>, Expr), QueryError> {
    let Bson::Document(d) = arg else {
        return Err(QueryError::new(
            5787801,
            format!(
                "specification must be an object; found {}",
                crate::query::display_value(arg)
            ),
        ));
    };
    let needs_n = !matches!(kind, AccKind::Top | AccKind::Bottom);
    let needs_sort = matches!(
        kind,
        AccKind::Top | AccKind::Bottom | AccKind::TopN | AccKind::BottomN
    );
    let value_key = if needs_sort { "output" } else { "input" };
    for k in d.keys() {
        let known = k == value_key || (needs_n && k == "n") || (needs_sort && k == "sortBy");
        if !known {
            return Err(QueryError::new(
                5787901,
                format!("Unknown argument for '{op}' operator: {k}"),
            ));
        }
    }
    let n = if needs_n {
        Some(Expr::parse(d.get("n").ok_or_else(|| {
            QueryError::new(5787906, format!("Missing value for 'n' in '{op}'"))
        })?)?)
    } else {
        None
    };
    let sort = if needs_sort {
        match d.get("sortBy") {
            Some(Bson::Document(spec)) => Some(SortSpec::parse(spec)?),
            Some(_) => {
                return Err(QueryError::new(
                    5788604,
                    format!("Expected 'sortBy' to be an object for '{op}'"),
                ))
            }
            None => {
                return Err(QueryError::new(
                    5788003,
                    format!("Missing value for 'sortBy' in '{op}'"),
                ))
            }
        }
    } else {
        None
    };
    let value = d.get(value_key).ok_or_else(|| {
        QueryError::new(
            5787907,
            format!("Missing value for '{value_key}' in '{op}'"),
        )
    })?;
    Ok((n, sort, Expr::parse(value)?))
}

/// A parsed `$group` stage.
#[derive(Debug, Clone)]
pub(super) struct Group {
    id: Expr,
    accs: Vec<Accumulator>,
}

#[derive(Debug, Clone)]
enum State {
    Sum(Num),
    Avg(f64, u64, bool),
    Best(Option<Bson>),
    First(Option<Bson>),
    Last(Bson),
    List(Vec<Bson>),
    Set(Vec<Bson>, HashSet<Vec<u8>>),
    Merge(Document),
    Values(Vec<f64>),
    Ranked(Option<usize>, Vec<(Document, Bson)>),
}

fn parse_accumulators(spec: &Document, skip_id: bool) -> Result<Vec<Accumulator>, QueryError> {
    let mut accs = Vec::new();
    for (name, v) in spec {
        if skip_id && name == "_id" {
            continue;
        }
        if name.contains('.') {
            return Err(QueryError::new(
                40235,
                format!("The field name '{name}' cannot contain '.'"),
            ));
        }
        if name.starts_with('$') {
            return Err(QueryError::new(
                40236,
                format!("The field name '{name}' cannot be an operator name"),
            ));
        }
        let Bson::Document(d) = v else {
            return Err(QueryError::new(
                40234,
                format!("The field '{name}' must be an accumulator object"),
            ));
        };
        if d.len() != 1 {
            return Err(QueryError::new(
                40238,
                format!("The field '{name}' must specify one accumulator"),
            ));
        }
        let Some((op, arg)) = d.iter().next() else {
            return Err(QueryError::new(
                40238,
                format!("The field '{name}' must specify one accumulator"),
            ));
        };
        let kind = match AccKind::from_name(op) {
            Some(AccKind::Count) if !matches!(arg, Bson::Document(a) if a.is_empty()) => {
                return Err(QueryError::new(
                    4,
                    "$count takes no arguments, i.e. $count:{}",
                ));
            }
            Some(kind) => kind,
            None if matches!(op.as_str(), "$accumulator" | "$median" | "$percentile") => {
                return Err(QueryError::unsupported(op))
            }
            None => {
                return Err(QueryError::new(
                    15952,
                    format!("unknown group operator '{op}'"),
                ))
            }
        };
        let (n, sort, expr) = if kind == AccKind::Count {
            (None, None, Expr::Literal(Bson::Null))
        } else if kind.ranked() {
            parse_ranked(op, kind, arg)?
        } else {
            (None, None, Expr::parse(arg)?)
        };
        accs.push(Accumulator {
            name: name.clone(),
            kind,
            expr,
            n,
            sort,
        });
    }
    Ok(accs)
}

/// A simple accumulator (`$sum`, `$avg`, `$min`, `$max`, `$first`, `$last`,
/// `$push`, `$addToSet`, `$count`, `$mergeObjects`, `$stdDevPop`,
/// `$stdDevSamp`) as `$setWindowFields` uses one: looked up by name once,
/// when the stage is parsed, then folded over each window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fold(AccKind);

impl Fold {
    /// The simple accumulator called `op`, if it is one.
    pub(super) fn lookup(op: &str) -> Option<Fold> {
        AccKind::from_name(op).filter(|k| !k.ranked()).map(Fold)
    }

    /// Folds `values` (a window's).
    pub(super) fn run(
        self,
        values: impl Iterator<Item = Option<Bson>>,
    ) -> Result<Bson, QueryError> {
        let mut state = initial(self.0);
        for v in values {
            accumulate(self.0, &mut state, v)?;
        }
        Ok(finish(self.0, state))
    }
}

fn initial(kind: AccKind) -> State {
    match kind {
        AccKind::Sum | AccKind::Count => State::Sum(Num::Int32(0)),
        AccKind::Avg => State::Avg(0.0, 0, false),
        AccKind::Min | AccKind::Max => State::Best(None),
        AccKind::First => State::First(None),
        AccKind::Last => State::Last(Bson::Null),
        AccKind::Push => State::List(Vec::new()),
        AccKind::AddToSet => State::Set(Vec::new(), HashSet::new()),
        AccKind::MergeObjects => State::Merge(Document::new()),
        AccKind::StdDevPop | AccKind::StdDevSamp => State::Values(Vec::new()),
        _ => State::Ranked(None, Vec::new()),
    }
}

/// Adds a value to the state of a numeric accumulator (`$sum`, `$avg`,
/// `$stdDevPop`, `$stdDevSamp`): values that are not numbers are ignored.
fn accumulate_num(state: &mut State, v: Option<&Bson>) {
    let Some(n) = v.and_then(Num::from_bson) else {
        return;
    };
    match state {
        State::Sum(total) => *total = add_nums(*total, n),
        State::Avg(sum, count, decimal) => {
            *sum += n.to_f64();
            *count += 1;
            *decimal |= matches!(n, Num::Decimal(_));
        }
        State::Values(vals) => vals.push(n.to_f64()),
        _ => {}
    }
}

fn accumulate(kind: AccKind, state: &mut State, v: Option<Bson>) -> Result<(), QueryError> {
    if kind.numeric() {
        accumulate_num(state, v.as_ref());
        return Ok(());
    }
    match state {
        State::Sum(total) => *total = add_nums(*total, Num::Int32(1)),
        // The numeric accumulators returned above.
        State::Avg(..) | State::Values(_) => {}
        State::Best(best) => {
            if let Some(v) = v.filter(|v| !nullish(Some(v))) {
                let replace = match best {
                    None => true,
                    Some(b) => {
                        let o = compare_values(&v, b);
                        (kind == AccKind::Min && o.is_lt()) || (kind == AccKind::Max && o.is_gt())
                    }
                };
                if replace {
                    *best = Some(v);
                }
            }
        }
        State::First(first) => {
            if first.is_none() {
                *first = Some(v.unwrap_or(Bson::Null));
            }
        }
        State::Last(last) => *last = v.unwrap_or(Bson::Null),
        State::List(items) => {
            if let Some(v) = v {
                items.push(v);
            }
        }
        State::Set(items, seen) => {
            if let Some(v) = v {
                if seen.insert(canonical_key(&v)) {
                    items.push(v);
                }
            }
        }
        State::Merge(d) => match v {
            None | Some(Bson::Null) | Some(Bson::Undefined) => {}
            Some(Bson::Document(x)) => {
                for (k, val) in x {
                    d.insert(k, val);
                }
            }
            Some(other) => {
                return Err(QueryError::new(
                    40400,
                    format!(
                        "$mergeObjects requires object inputs, but input {} is of type {}",
                        crate::query::display_value(&other),
                        crate::query::expr::type_name(Some(&other))
                    ),
                ))
            }
        },
        State::Ranked(..) => {}
    }
    Ok(())
}

fn finish(kind: AccKind, state: State) -> Bson {
    match state {
        State::Sum(n) => n.to_bson(),
        State::Avg(_, 0, _) => Bson::Null,
        State::Avg(sum, count, decimal) => {
            let avg = sum / count as f64;
            if decimal {
                Bson::Decimal128(number::f64_to_decimal(avg))
            } else {
                Bson::Double(avg)
            }
        }
        State::Best(b) => b.unwrap_or(Bson::Null),
        State::First(f) => f.unwrap_or(Bson::Null),
        State::Last(l) => l,
        State::List(items) => Bson::Array(items),
        State::Set(items, _) => Bson::Array(items),
        State::Merge(d) => Bson::Document(d),
        State::Values(vals) => {
            let n = vals.len() as f64;
            let samp = kind == AccKind::StdDevSamp;
            if vals.is_empty() || (samp && vals.len() < 2) {
                return Bson::Null;
            }
            let mean = vals.iter().sum::<f64>() / n;
            let var = vals.iter().map(|x| (x - mean).powi(2)).sum::<f64>()
                / if samp { n - 1.0 } else { n };
            Bson::Double(var.sqrt())
        }
        State::Ranked(..) => Bson::Null,
    }
}

fn accumulate_ranked(
    acc: &Accumulator,
    state: &mut State,
    d: &Document,
    vars: &[(String, Bson)],
) -> Result<(), QueryError> {
    let State::Ranked(n, items) = state else {
        return Ok(());
    };
    let limit = match (n.as_ref(), &acc.n) {
        (Some(n), _) => *n,
        (None, None) => 1,
        (None, Some(e)) => {
            let v = eval_in(e, d, vars)?;
            match v
                .as_ref()
                .and_then(Num::from_bson)
                .and_then(Num::to_i64_exact)
            {
                Some(x) if x > 0 => x as usize,
                _ => return Err(QueryError::new(5787908, "'n' must be greater than 0")),
            }
        }
    };
    *n = Some(limit);
    let value = eval_in(&acc.expr, d, vars)?;
    match acc.kind {
        AccKind::FirstN => {
            if items.len() < limit {
                items.push((Document::new(), value.unwrap_or(Bson::Null)));
            }
        }
        AccKind::LastN => {
            items.push((Document::new(), value.unwrap_or(Bson::Null)));
            if items.len() > limit {
                items.remove(0);
            }
        }
        AccKind::MaxN | AccKind::MinN => {
            if let Some(v) = value.filter(|v| !nullish(Some(v))) {
                items.push((Document::new(), v));
            }
        }
        _ => items.push((d.clone(), value.unwrap_or(Bson::Null))),
    }
    Ok(())
}

fn finish_ranked(acc: &Accumulator, state: State) -> Bson {
    let State::Ranked(n, mut items) = state else {
        return Bson::Null;
    };
    let n = n.unwrap_or(1);
    match acc.kind {
        AccKind::FirstN | AccKind::LastN => {
            Bson::Array(items.into_iter().map(|(_, v)| v).collect())
        }
        AccKind::MaxN | AccKind::MinN => {
            let max = acc.kind == AccKind::MaxN;
            items.sort_by(|(_, a), (_, b)| {
                let o = compare_values(a, b);
                if max {
                    o.reverse()
                } else {
                    o
                }
            });
            Bson::Array(items.into_iter().take(n).map(|(_, v)| v).collect())
        }
        kind => {
            if let Some(spec) = &acc.sort {
                items.sort_by(|(a, _), (b, _)| spec.compare(a, b));
            }
            let values: Vec<Bson> = if matches!(kind, AccKind::Top | AccKind::TopN) {
                items.into_iter().take(n).map(|(_, v)| v).collect()
            } else {
                let skip = items.len().saturating_sub(n);
                items.into_iter().skip(skip).map(|(_, v)| v).collect()
            };
            match kind {
                AccKind::Top | AccKind::Bottom => values.into_iter().next().unwrap_or(Bson::Null),
                _ => Bson::Array(values),
            }
        }
    }
}

/// Groups documents by a key, keeping groups in first-seen order. With
/// `limits`, looks at the clock as documents pass and keeps an estimate of
/// the memory held (keys, and the values `$push`/`$addToSet` collect) within
/// the budget.
///
/// `id`, when given, is the expression `key_of` evaluates: when it is a
/// constant or a plain field path the key is read in place rather than
/// copied (and likewise an accumulator's argument), which is most of the
/// work of a simple `$group`.
fn run_groups<'d>(
    docs: impl IntoIterator<Item = &'d Document>,
    key_of: &dyn Fn(&Document) -> Result<Bson, QueryError>,
    id: Option<&Expr>,
    accs: &[Accumulator],
    vars: &[(String, Bson)],
    limits: Option<&Limits>,
) -> Result<Vec<(Bson, Vec<State>)>, QueryError> {
    static NULL: Bson = Bson::Null;
    let mut order: Vec<(Bson, Vec<State>)> = Vec::new();
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut held = 0usize;
    // Field paths read the document itself unless a variable rebinds `$$CURRENT`.
    let in_place = !vars.iter().any(|(name, _)| name == "CURRENT");
    let id = id.filter(|_| in_place);
    let mut key_bytes = Vec::with_capacity(32);
    for (i, d) in docs.into_iter().enumerate() {
        if let Some(l) = limits {
            l.tick(i)?;
        }
        let evaluated;
        let key = match id.and_then(|e| e.get_ref(d)) {
            Some(k) => k.unwrap_or(&NULL),
            None => {
                evaluated = key_of(d)?;
                &evaluated
            }
        };
        key_bytes.clear();
        canonical_key_into(key, &mut key_bytes);
        let slot = match index.get(key_bytes.as_slice()) {
            Some(i) => *i,
            None => {
                held = held.saturating_add(key_bytes.len().saturating_mul(2) + 64);
                order.push((key.clone(), accs.iter().map(|a| initial(a.kind)).collect()));
                index.insert(key_bytes.clone(), order.len() - 1);
                order.len() - 1
            }
        };
        for (acc, state) in accs.iter().zip(order[slot].1.iter_mut()) {
            if acc.kind.ranked() {
                accumulate_ranked(acc, state, d, vars)?;
                continue;
            }
            let in_doc = if in_place && acc.kind != AccKind::Count {
                acc.expr.get_ref(d)
            } else {
                None
            };
            if acc.kind.numeric() {
                if let Some(v) = in_doc {
                    accumulate_num(state, v);
                    continue;
                }
            }
            let v = match in_doc {
                Some(v) => v.cloned(),
                None if acc.kind == AccKind::Count => None,
                None => eval_in(&acc.expr, d, vars)?,
            };
            if matches!(
                acc.kind,
                AccKind::Push | AccKind::AddToSet | AccKind::MergeObjects
            ) {
                held = held.saturating_add(v.as_ref().map_or(0, value_size));
                if let Some(v) = &v {
                    crate::query::budget::charge_value(v, "$group")?;
                }
            }
            accumulate(acc.kind, state, v)?;
        }
        if let Some(l) = limits {
            l.check_bytes("$group", held)?;
        }
    }
    Ok(order)
}

fn output(groups: Vec<(Bson, Vec<State>)>, accs: &[Accumulator]) -> Vec<Document> {
    groups
        .into_iter()
        .map(|(key, states)| {
            let mut d = Document::new();
            d.insert("_id", key);
            for (acc, state) in accs.iter().zip(states) {
                let v = if acc.kind.ranked() {
                    finish_ranked(acc, state)
                } else {
                    finish(acc.kind, state)
                };
                d.insert(acc.name.clone(), v);
            }
            d
        })
        .collect()
}

/// The `_id` of a group: missing becomes null. In an object key, as in
/// MongoDB, a single field that is missing becomes null, while with several
/// fields the missing ones are left out.
fn group_key(id: &Expr, d: &Document, vars: &[(String, Bson)]) -> Result<Bson, QueryError> {
    if let Expr::Object(fields) = id {
        let single = fields.len() == 1;
        let mut out = Document::new();
        for (k, e) in fields {
            match eval_in(e, d, vars)? {
                Some(v) => {
                    out.insert(k.clone(), v);
                }
                None if single => {
                    out.insert(k.clone(), Bson::Null);
                }
                None => {}
            }
        }
        return Ok(Bson::Document(out));
    }
    Ok(eval_in(id, d, vars)?.unwrap_or(Bson::Null))
}

impl Group {
    /// Parses `{_id: <expr>, field: {<accumulator>: <expr>}, ...}`.
    pub(super) fn parse(arg: &Bson) -> Result<Group, QueryError> {
        let Bson::Document(spec) = arg else {
            return Err(QueryError::new(
                15947,
                "a group's fields must be specified in an object",
            ));
        };
        let Some(id) = spec.get("_id") else {
            return Err(QueryError::new(
                15955,
                "a group specification must include an _id",
            ));
        };
        Ok(Group {
            id: Expr::parse(id)?,
            accs: parse_accumulators(spec, true)?,
        })
    }

    /// Runs the stage (over owned or borrowed documents) within `limits`.
    pub(super) fn run<'d>(
        &self,
        docs: impl IntoIterator<Item = &'d Document>,
        vars: &[(String, Bson)],
        limits: &Limits,
    ) -> Result<Vec<Document>, QueryError> {
        let groups = run_groups(
            docs,
            &|d| group_key(&self.id, d, vars),
            Some(&self.id),
            &self.accs,
            vars,
            Some(limits),
        )?;
        Ok(output(groups, &self.accs))
    }
}

/// `$sortByCount`: group by the expression, count, sort by count descending.
pub(super) fn sort_by_count(
    e: &Expr,
    docs: &[Document],
    vars: &[(String, Bson)],
) -> Result<Vec<Document>, QueryError> {
    let accs = vec![Accumulator {
        name: "count".into(),
        kind: AccKind::Count,
        expr: Expr::Literal(Bson::Null),
        n: None,
        sort: None,
    }];
    let groups = run_groups(docs, &|d| group_key(e, d, vars), Some(e), &accs, vars, None)?;
    let mut out = output(groups, &accs);
    let mut spec = Document::new();
    spec.insert("count", -1);
    SortSpec::parse(&spec)?.sort(&mut out);
    Ok(out)
}

/// A parsed `$bucket` stage.
#[derive(Debug, Clone)]
pub(super) struct Bucket {
    group_by: Expr,
    boundaries: Vec<Bson>,
    default: Option<Bson>,
    accs: Vec<Accumulator>,
}

impl Bucket {
    /// Parses `{groupBy, boundaries, default, output}`.
    pub(super) fn parse(arg: &Bson) -> Result<Bucket, QueryError> {
        let Bson::Document(spec) = arg else {
            return Err(QueryError::new(
                40201,
                "Argument to $bucket stage must be an object",
            ));
        };
        let mut group_by = None;
        let mut boundaries = None;
        let mut default = None;
        let mut accs = None;
        for (k, v) in spec {
            match k.as_str() {
                "groupBy" => {
                    if !matches!(v, Bson::String(s) if s.starts_with('$'))
                        && !matches!(v, Bson::Document(_))
                    {
                        return Err(QueryError::new(40202, "The $bucket 'groupBy' field must be defined as a $-prefixed path or an expression"));
                    }
                    group_by = Some(Expr::parse(v)?)
                }
                "boundaries" => match v {
                    Bson::Array(b) if b.len() >= 2 => boundaries = Some(b.clone()),
                    _ => return Err(QueryError::new(
                        40192,
                        "The $bucket 'boundaries' field must be an array with at least two values",
                    )),
                },
                "default" => default = Some(v.clone()),
                "output" => match v {
                    Bson::Document(d) => accs = Some(parse_accumulators(d, false)?),
                    _ => {
                        return Err(QueryError::new(
                            40196,
                            "The $bucket 'output' field must be an object",
                        ))
                    }
                },
                other => {
                    return Err(QueryError::new(
                        40197,
                        format!("Unrecognized option to $bucket: {other}."),
                    ))
                }
            }
        }
        let (Some(group_by), Some(boundaries)) = (group_by, boundaries) else {
            return Err(QueryError::new(
                40198,
                "$bucket requires 'groupBy' and 'boundaries' to be specified.",
            ));
        };
        for w in boundaries.windows(2) {
            if type_rank(&w[0]) != type_rank(&w[1]) {
                return Err(QueryError::new(
                    40193,
                    "All values in the the 'boundaries' option to $bucket must have the same type.",
                ));
            }
            if !compare_values(&w[0], &w[1]).is_lt() {
                return Err(QueryError::new(
                    40194,
                    "The 'boundaries' option to $bucket must be sorted in ascending order",
                ));
            }
        }
        if let Some(d) = &default {
            let (lo, hi) = (&boundaries[0], &boundaries[boundaries.len() - 1]);
            if type_rank(d) == type_rank(lo)
                && !compare_values(d, lo).is_lt()
                && compare_values(d, hi).is_lt()
            {
                return Err(QueryError::new(40199, "The $bucket 'default' field must be less than the lowest boundary or greater than or equal to the highest boundary."));
            }
        }
        let accs = accs.unwrap_or_else(|| {
            vec![Accumulator {
                name: "count".into(),
                kind: AccKind::Sum,
                expr: Expr::Literal(Bson::Int32(1)),
                n: None,
                sort: None,
            }]
        });
        Ok(Bucket {
            group_by,
            boundaries,
            default,
            accs,
        })
    }

    /// Runs the stage: buckets in boundary order, the default bucket last.
    pub(super) fn run(
        &self,
        docs: &[Document],
        vars: &[(String, Bson)],
    ) -> Result<Vec<Document>, QueryError> {
        let key_of = |d: &Document| -> Result<Bson, QueryError> {
            let v = eval_in(&self.group_by, d, vars)?.unwrap_or(Bson::Null);
            let lo_rank = type_rank(&self.boundaries[0]);
            if type_rank(&v) == lo_rank {
                for w in self.boundaries.windows(2) {
                    if !compare_values(&v, &w[0]).is_lt() && compare_values(&v, &w[1]).is_lt() {
                        return Ok(w[0].clone());
                    }
                }
            }
            self.default.clone().ok_or_else(|| {
                QueryError::new(
                    40066,
                    "$switch could not find a matching branch for an input, and no default was specified.",
                )
            })
        };
        let mut groups = run_groups(docs, &key_of, None, &self.accs, vars, None)?;
        let pos = |k: &Bson| {
            self.boundaries
                .iter()
                .position(|b| type_rank(b) == type_rank(k) && compare_values(b, k).is_eq())
                .unwrap_or(usize::MAX)
        };
        groups.sort_by_key(|(k, _)| pos(k));
        Ok(output(groups, &self.accs))
    }
}

/// The accumulators of an `output` field (`$bucketAuto`): `{count: {$sum: 1}}`
/// when it is absent.
#[derive(Debug, Clone)]
pub(super) struct Outputs(Vec<Accumulator>);

impl Outputs {
    /// Parses an `output` specification.
    pub(super) fn parse(spec: Option<&Document>) -> Result<Outputs, QueryError> {
        Ok(Outputs(match spec {
            Some(d) => parse_accumulators(d, false)?,
            None => vec![Accumulator {
                name: "count".into(),
                kind: AccKind::Sum,
                expr: Expr::Literal(Bson::Int32(1)),
                n: None,
                sort: None,
            }],
        }))
    }

    /// One document per distinct key (in first-seen order), with the key as `_id`.
    pub(super) fn group(
        &self,
        docs: &[Document],
        key_of: &dyn Fn(&Document) -> Result<Bson, QueryError>,
        vars: &[(String, Bson)],
    ) -> Result<Vec<Document>, QueryError> {
        let groups = run_groups(docs, key_of, None, &self.0, vars, None)?;
        Ok(output(groups, &self.0))
    }
}
