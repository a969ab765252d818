//! Query filters: parsing a MongoDB filter document and matching documents against it.

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::compare::{compare_values, type_rank, values_equal};
use super::expr::{Expr, Vars};
use super::number::Num;
use super::path::{filter_leaves, filter_leaves_of, plain_get, split};
use super::pattern::Pattern;
use super::QueryError;

/// A parsed query filter.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Nor(Vec<Node>),
    Path {
        path: Vec<String>,
        pred: Pred,
    },
    Expr(Box<Expr>),
    /// `$jsonSchema`: the document must validate against the schema.
    Schema(Box<super::schema::Schema>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BitsOp {
    AllSet,
    AnySet,
    AllClear,
    AnyClear,
}

#[derive(Debug, Clone)]
enum Pred {
    All(Vec<Pred>),
    Not(Box<Pred>),
    Eq(Bson),
    Cmp(CmpOp, Bson),
    In(Vec<Pred>),
    Exists(bool),
    Regex(Box<Pattern>),
    Type(Vec<i32>),
    Size(i64),
    AllOf(Vec<Pred>),
    ElemMatchDoc(Box<Node>),
    ElemMatchValue(Vec<Pred>),
    Mod(i64, i64),
    Bits(BitsOp, Vec<u32>),
    Never,
}

impl Filter {
    /// Parses a filter document such as `{"a.b": {"$gt": 1}, "$or": [...]}`.
    pub(crate) fn parse(filter: &Document) -> Result<Filter, QueryError> {
        Ok(Filter {
            root: parse_doc(filter)?,
        })
    }

    /// Parses a condition on a single value as `$pull` and `$elemMatch` use
    /// them: `{"$gte": 5}` applies to the value itself, anything else is a
    /// document filter applied to the value when it is a document.
    pub(crate) fn parse_value_condition(cond: &Document) -> Result<Filter, QueryError> {
        if is_operator_doc(cond) && !starts_logical(cond) {
            return Ok(Filter {
                root: Node::Path {
                    path: Vec::new(),
                    pred: parse_operators(cond)?,
                },
            });
        }
        Filter::parse(cond)
    }

    /// Whether `doc` matches (an `$expr` that fails to evaluate does not match;
    /// use [`Filter::try_matches`] to see the error).
    pub(crate) fn matches(&self, doc: &Document) -> bool {
        self.root.matches(doc, &[]).unwrap_or(false)
    }

    /// Whether `doc` matches; errors come from evaluating `$expr`
    /// (for example "can't $divide by zero"), which fail the whole query.
    pub(crate) fn try_matches(&self, doc: &Document) -> Result<bool, QueryError> {
        self.root.matches(doc, &[])
    }

    /// [`Filter::try_matches`] with user variables visible to `$expr`
    /// (`$lookup`'s `let`).
    pub(crate) fn matches_with_vars(
        &self,
        doc: &Document,
        vars: &[(String, Bson)],
    ) -> Result<bool, QueryError> {
        self.root.matches(doc, vars)
    }

    /// Whether a single value matches a filter from [`Filter::parse_value_condition`]
    /// the way `$pull` tests an element: MongoDB wraps the element as
    /// `{"": element}` and matches it as a document, so an array element is
    /// looked into (`{$gte: 5}` matches `[6]`).
    pub(crate) fn matches_value(&self, v: &Bson) -> bool {
        match (&self.root, v) {
            (Node::Path { path, pred }, _) if path.is_empty() => pred.eval(&[Some(v)]),
            (_, Bson::Document(d)) => self.root.matches(d, &[]).unwrap_or(false),
            _ => false,
        }
    }

    /// Whether one array element matches a filter from
    /// [`Filter::parse_value_condition`] the way `$elemMatch` tests elements
    /// (MongoDB's `matchesSingleElement`): the operator form sees the element
    /// itself, so an element that is an array is not looked into (`{$gte: 5}`
    /// does not match `[6]`).
    pub(crate) fn matches_element(&self, v: &Bson) -> bool {
        match (&self.root, v) {
            (Node::Path { path, pred }, _) if path.is_empty() => pred.single(v),
            (_, Bson::Document(d)) => self.root.matches(d, &[]).unwrap_or(false),
            _ => false,
        }
    }

    /// `Some(v)` when the filter pins `_id` to one value (`{_id: v}` or
    /// `{_id: {$eq: v}}`, possibly next to other conditions).
    pub(crate) fn id_equality(&self) -> Option<&Bson> {
        fn find(node: &Node) -> Option<&Bson> {
            match node {
                Node::Path {
                    path,
                    pred: Pred::Eq(v),
                } if path.len() == 1 && path[0] == "_id" => Some(v),
                Node::Path {
                    path,
                    pred: Pred::All(ps),
                } if path.len() == 1 && path[0] == "_id" => ps.iter().find_map(|p| match p {
                    Pred::Eq(v) => Some(v),
                    _ => None,
                }),
                Node::And(children) => children.iter().find_map(find),
                _ => None,
            }
        }
        find(&self.root)
    }

    /// The index, in the first array met along a matching condition's path,
    /// of the element that satisfied the filter: what the positional `$`
    /// update operator refers to.
    pub(crate) fn matched_array_index(&self, doc: &Document) -> Option<usize> {
        let mut conds = Vec::new();
        collect_path_conditions(&self.root, &mut conds);
        for (path, pred) in conds {
            if let Some(i) = first_array_match(doc, path, pred) {
                return Some(i);
            }
        }
        None
    }
}

/// A condition of a filter's top-level conjunction that an index can
/// narrow: every document the filter matches has, at the condition's path,
/// a value (or an array element) that satisfies it.
#[derive(Debug, Clone)]
pub(crate) enum IndexableCondition<'a> {
    /// `{path: v}` or `{path: {$eq: v}}`.
    Equals(&'a Bson),
    /// `{path: {$in: [v, …]}}` without regexes.
    In(Vec<&'a Bson>),
    /// `{path: {$gt: v}}` or `$gte`.
    AtLeast(&'a Bson),
    /// `{path: {$lt: v}}` or `$lte`.
    AtMost(&'a Bson),
}

impl Filter {
    /// The conditions of the filter's top-level conjunction (the filter's
    /// own fields and `$and`) that an index can serve, with their paths.
    /// Which values an index may use is the index's decision.
    pub(crate) fn indexable_conditions(&self) -> Vec<(&[String], IndexableCondition<'_>)> {
        fn from_pred<'a>(
            path: &'a [String],
            pred: &'a Pred,
            out: &mut Vec<(&'a [String], IndexableCondition<'a>)>,
        ) {
            match pred {
                Pred::Eq(v) => out.push((path, IndexableCondition::Equals(v))),
                Pred::Cmp(CmpOp::Gt | CmpOp::Gte, v) => {
                    out.push((path, IndexableCondition::AtLeast(v)));
                }
                Pred::Cmp(CmpOp::Lt | CmpOp::Lte, v) => {
                    out.push((path, IndexableCondition::AtMost(v)));
                }
                Pred::In(items) => {
                    let values: Option<Vec<&Bson>> = items
                        .iter()
                        .map(|p| match p {
                            Pred::Eq(v) => Some(v),
                            _ => None,
                        })
                        .collect();
                    if let Some(values) = values {
                        out.push((path, IndexableCondition::In(values)));
                    }
                }
                Pred::All(ps) | Pred::AllOf(ps) => {
                    ps.iter().for_each(|p| from_pred(path, p, out));
                }
                _ => {}
            }
        }
        fn walk<'a>(node: &'a Node, out: &mut Vec<(&'a [String], IndexableCondition<'a>)>) {
            match node {
                Node::And(children) => children.iter().for_each(|c| walk(c, out)),
                Node::Path { path, pred } if !path.is_empty() => from_pred(path, pred, out),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }
}

fn collect_path_conditions<'a>(node: &'a Node, out: &mut Vec<(&'a [String], &'a Pred)>) {
    match node {
        Node::And(children) => children
            .iter()
            .for_each(|c| collect_path_conditions(c, out)),
        Node::Path { path, pred } => out.push((path, pred)),
        _ => {}
    }
}

fn first_array_match(doc: &Document, path: &[String], pred: &Pred) -> Option<usize> {
    let mut cur = doc;
    for (depth, seg) in path.iter().enumerate() {
        match cur.get(seg)? {
            Bson::Document(d) => cur = d,
            Bson::Array(items) => {
                let rest = &path[depth + 1..];
                return items.iter().position(|item| {
                    if rest.is_empty() {
                        pred.eval(&[Some(item)])
                            || pred.eval(&[Some(&Bson::Array(vec![item.clone()]))])
                    } else {
                        pred.eval(&filter_leaves_of(item, rest))
                    }
                });
            }
            _ => return None,
        }
    }
    None
}

fn is_operator_doc(d: &Document) -> bool {
    d.keys().next().is_some_and(|k| k.starts_with('$'))
}

fn starts_logical(d: &Document) -> bool {
    d.keys().next().is_some_and(|k| {
        matches!(
            k.as_str(),
            "$and" | "$or" | "$nor" | "$expr" | "$where" | "$comment"
        )
    })
}

/// `{$jsonSchema: {...}}`: the same BSON-typed JSON Schema subset that
/// collection schemas use; keywords outside it are refused with a 400.
fn parse_json_schema(value: &Bson) -> Result<super::schema::Schema, QueryError> {
    let Bson::Document(_) = value else {
        return Err(QueryError::type_mismatch("$jsonSchema must be an object"));
    };
    let json = value.clone().into_relaxed_extjson();
    super::schema::Schema::parse(&json)
        .map_err(|e| QueryError::failed_to_parse(format!("$jsonSchema: {e}")))
}

fn parse_doc(filter: &Document) -> Result<Node, QueryError> {
    let mut nodes = Vec::with_capacity(filter.len());
    for (key, value) in filter {
        if let Some(op) = key.strip_prefix('$') {
            match op {
                "and" | "or" | "nor" => {
                    let children = parse_logical(value)?;
                    nodes.push(match op {
                        "and" => Node::And(children),
                        "or" => Node::Or(children),
                        _ => Node::Nor(children),
                    });
                }
                "comment" => {}
                "expr" => nodes.push(Node::Expr(Box::new(Expr::parse(value)?))),
                "jsonSchema" => nodes.push(Node::Schema(Box::new(parse_json_schema(value)?))),
                "where" | "text" | "sampleRate" | "alwaysTrue" | "alwaysFalse" => {
                    return Err(QueryError::unsupported(key));
                }
                _ => {
                    return Err(QueryError::bad_value(format!(
                        "unknown top level operator: {key}. If you have a field name that starts with a '$' symbol, consider using $getField or $setField."
                    )))
                }
            }
            continue;
        }
        if key.is_empty() {
            // MongoDB accepts an empty field name; it simply never exists in stored documents.
        }
        let path = split(key);
        let pred = parse_value(value)?;
        nodes.push(Node::Path { path, pred });
    }
    Ok(if nodes.len() == 1 {
        nodes.pop().unwrap_or(Node::And(Vec::new()))
    } else {
        Node::And(nodes)
    })
}

fn parse_logical(value: &Bson) -> Result<Vec<Node>, QueryError> {
    let Bson::Array(items) = value else {
        return Err(QueryError::bad_value(
            "$and/$or/$nor must be a nonempty array",
        ));
    };
    if items.is_empty() {
        return Err(QueryError::bad_value(
            "$and/$or/$nor must be a nonempty array",
        ));
    }
    items
        .iter()
        .map(|item| match item {
            Bson::Document(d) => parse_doc(d),
            _ => Err(QueryError::bad_value(
                "$or/$and/$nor entries need to be full objects",
            )),
        })
        .collect()
}

/// The predicate for `{field: value}`.
fn parse_value(value: &Bson) -> Result<Pred, QueryError> {
    match value {
        Bson::Document(d) if is_operator_doc(d) && !is_dbref(d) => parse_operators(d),
        Bson::RegularExpression(r) => Ok(Pred::Regex(Box::new(Pattern::from_regex(r)?))),
        other => Ok(Pred::Eq(other.clone())),
    }
}

fn is_dbref(d: &Document) -> bool {
    matches!(
        d.keys().next().map(String::as_str),
        Some("$ref" | "$id" | "$db")
    )
}

fn parse_operators(ops: &Document) -> Result<Pred, QueryError> {
    let mut preds = Vec::with_capacity(ops.len());
    let regex_options = ops.get("$options");
    let mut saw_regex = false;
    for (key, arg) in ops {
        let pred = match key.as_str() {
            "$eq" => Pred::Eq(arg.clone()),
            "$ne" => {
                if matches!(arg, Bson::RegularExpression(_)) {
                    return Err(QueryError::bad_value("Can't have regex as arg to $ne."));
                }
                Pred::Not(Box::new(Pred::Eq(arg.clone())))
            }
            "$gt" => Pred::Cmp(CmpOp::Gt, arg.clone()),
            "$gte" => Pred::Cmp(CmpOp::Gte, arg.clone()),
            "$lt" => Pred::Cmp(CmpOp::Lt, arg.clone()),
            "$lte" => Pred::Cmp(CmpOp::Lte, arg.clone()),
            "$in" => Pred::In(parse_in_list(arg, "$in")?),
            "$nin" => Pred::Not(Box::new(Pred::In(parse_in_list(arg, "$nin")?))),
            "$exists" => Pred::Exists(truthy(arg)),
            "$type" => Pred::Type(parse_types(arg)?),
            "$size" => parse_size(arg)?,
            "$all" => parse_all(arg)?,
            "$elemMatch" => parse_elem_match(arg)?,
            "$mod" => parse_mod(arg)?,
            "$regex" => {
                saw_regex = true;
                Pred::Regex(Box::new(parse_regex(arg, regex_options)?))
            }
            "$options" => {
                if !ops.contains_key("$regex") {
                    return Err(QueryError::bad_value("$options needs a $regex"));
                }
                continue;
            }
            "$not" => Pred::Not(Box::new(match arg {
                Bson::RegularExpression(r) => Pred::Regex(Box::new(Pattern::from_regex(r)?)),
                Bson::Document(d) if d.is_empty() => {
                    return Err(QueryError::bad_value("$not cannot be empty"));
                }
                Bson::Document(d) if is_operator_doc(d) => parse_operators(d)?,
                Bson::Document(_) => return Err(QueryError::bad_value("unknown operator: $not")),
                _ => return Err(QueryError::bad_value("$not needs a regex or a document")),
            })),
            "$bitsAllSet" => Pred::Bits(BitsOp::AllSet, parse_bits(key, arg)?),
            "$bitsAnySet" => Pred::Bits(BitsOp::AnySet, parse_bits(key, arg)?),
            "$bitsAllClear" => Pred::Bits(BitsOp::AllClear, parse_bits(key, arg)?),
            "$bitsAnyClear" => Pred::Bits(BitsOp::AnyClear, parse_bits(key, arg)?),
            "$near" | "$nearSphere" | "$geoWithin" | "$geoIntersects" | "$within"
            | "$maxDistance" | "$minDistance" => return Err(QueryError::unsupported(key)),
            "$where" | "$text" | "$expr" | "$jsonSchema" | "$function" => {
                return Err(QueryError::bad_value(format!("unknown operator: {key}")))
            }
            other => return Err(QueryError::bad_value(format!("unknown operator: {other}"))),
        };
        preds.push(pred);
    }
    let _ = saw_regex;
    Ok(if preds.len() == 1 {
        preds.pop().unwrap_or(Pred::Never)
    } else {
        Pred::All(preds)
    })
}

fn parse_in_list(arg: &Bson, op: &str) -> Result<Vec<Pred>, QueryError> {
    let Bson::Array(items) = arg else {
        return Err(QueryError::bad_value(format!("{op} needs an array")));
    };
    items
        .iter()
        .map(|item| match item {
            Bson::RegularExpression(r) => Ok(Pred::Regex(Box::new(Pattern::from_regex(r)?))),
            Bson::Document(d) if is_operator_doc(d) && !is_dbref(d) => {
                Err(QueryError::bad_value(format!("cannot nest $ under {op}")))
            }
            other => Ok(Pred::Eq(other.clone())),
        })
        .collect()
}

fn parse_regex(arg: &Bson, options: Option<&Bson>) -> Result<Pattern, QueryError> {
    let opts = match options {
        None => None,
        Some(Bson::String(s)) => Some(s.as_str()),
        Some(_) => return Err(QueryError::bad_value("$options has to be a string")),
    };
    match arg {
        Bson::String(s) => Pattern::new(s, opts.unwrap_or("")),
        Bson::RegularExpression(r) => {
            if opts.is_some() && !r.options.is_empty() {
                return Err(QueryError::new(
                    51075,
                    "options set in both $regex and $options",
                ));
            }
            Pattern::new(&r.pattern, opts.unwrap_or(&r.options))
        }
        _ => Err(QueryError::bad_value("$regex has to be a string")),
    }
}

/// Truthiness of an operator argument such as `$exists: 0`.
fn truthy(v: &Bson) -> bool {
    match v {
        Bson::Boolean(b) => *b,
        Bson::Null | Bson::Undefined => false,
        other => Num::from_bson(other).is_none_or(|n| !n.is_zero()),
    }
}

/// BSON type codes by `$type` alias.
pub(crate) fn type_code_by_alias(name: &str) -> Option<i32> {
    Some(match name {
        "double" => 1,
        "string" => 2,
        "object" => 3,
        "array" => 4,
        "binData" => 5,
        "undefined" => 6,
        "objectId" => 7,
        "bool" => 8,
        "date" => 9,
        "null" => 10,
        "regex" => 11,
        "dbPointer" => 12,
        "javascript" => 13,
        "symbol" => 14,
        "javascriptWithScope" => 15,
        "int" => 16,
        "timestamp" => 17,
        "long" => 18,
        "decimal" => 19,
        "minKey" => -1,
        "maxKey" => 127,
        _ => return None,
    })
}

/// The BSON type code of a value.
pub(crate) fn type_code(v: &Bson) -> i32 {
    match v {
        Bson::Double(_) => 1,
        Bson::String(_) => 2,
        Bson::Document(_) => 3,
        Bson::Array(_) => 4,
        Bson::Binary(_) => 5,
        Bson::Undefined => 6,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::Null => 10,
        Bson::RegularExpression(_) => 11,
        Bson::DbPointer(_) => 12,
        Bson::JavaScriptCode(_) => 13,
        Bson::Symbol(_) => 14,
        Bson::JavaScriptCodeWithScope(_) => 15,
        Bson::Int32(_) => 16,
        Bson::Timestamp(_) => 17,
        Bson::Int64(_) => 18,
        Bson::Decimal128(_) => 19,
        Bson::MinKey => -1,
        Bson::MaxKey => 127,
    }
}

/// `$type` code standing for "number".
const NUMBER_TYPE: i32 = i32::MIN;

fn parse_types(arg: &Bson) -> Result<Vec<i32>, QueryError> {
    fn one(v: &Bson) -> Result<i32, QueryError> {
        match v {
            Bson::String(s) if s == "number" => Ok(NUMBER_TYPE),
            Bson::String(s) => type_code_by_alias(s)
                .ok_or_else(|| QueryError::bad_value(format!("Unknown type name alias: {s}"))),
            other => match Num::from_bson(other).and_then(Num::to_i64_exact) {
                Some(code @ (-1 | 1..=19 | 127)) => Ok(code as i32),
                Some(code) => Err(QueryError::bad_value(format!(
                    "Invalid numerical type code: {code}"
                ))),
                None => Err(QueryError::bad_value(
                    "type must be represented as a number or a string",
                )),
            },
        }
    }
    match arg {
        Bson::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

fn parse_size(arg: &Bson) -> Result<Pred, QueryError> {
    let Some(n) = Num::from_bson(arg) else {
        return Err(QueryError::bad_value("$size needs a number"));
    };
    match n.to_i64_exact() {
        Some(i) if i < 0 => Err(QueryError::bad_value("$size may not be negative")),
        Some(i) => Ok(Pred::Size(i)),
        None => Err(QueryError::bad_value("$size must be a whole number")),
    }
}

fn parse_all(arg: &Bson) -> Result<Pred, QueryError> {
    let Bson::Array(items) = arg else {
        return Err(QueryError::bad_value("$all needs an array"));
    };
    let mut preds = Vec::with_capacity(items.len());
    for item in items {
        preds.push(match item {
            Bson::Document(d) if d.keys().next().is_some_and(|k| k == "$elemMatch") => {
                parse_operators(d)?
            }
            Bson::Document(d) if is_operator_doc(d) => {
                return Err(QueryError::bad_value("no $ expressions in $all"))
            }
            Bson::RegularExpression(r) => Pred::Regex(Box::new(Pattern::from_regex(r)?)),
            other => Pred::Eq(other.clone()),
        });
    }
    if preds.is_empty() {
        return Ok(Pred::Never);
    }
    Ok(Pred::AllOf(preds))
}

fn parse_elem_match(arg: &Bson) -> Result<Pred, QueryError> {
    let Bson::Document(d) = arg else {
        return Err(QueryError::bad_value("$elemMatch needs an Object"));
    };
    if is_operator_doc(d) && !starts_logical(d) {
        let Pred::All(ps) = parse_operators(d)? else {
            return Ok(Pred::ElemMatchValue(vec![parse_operators(d)?]));
        };
        return Ok(Pred::ElemMatchValue(ps));
    }
    Ok(Pred::ElemMatchDoc(Box::new(parse_doc(d)?)))
}

fn parse_mod(arg: &Bson) -> Result<Pred, QueryError> {
    let Bson::Array(items) = arg else {
        return Err(QueryError::bad_value("malformed mod, needs to be an array"));
    };
    if items.len() < 2 {
        return Err(QueryError::bad_value("malformed mod, not enough elements"));
    }
    if items.len() > 2 {
        return Err(QueryError::bad_value("malformed mod, too many elements"));
    }
    let num = |v: &Bson, what: &str| {
        Num::from_bson(v)
            .filter(|n| !n.is_nan() && n.to_f64().is_finite())
            .and_then(Num::to_i64_trunc)
            .ok_or_else(|| QueryError::bad_value(format!("malformed mod, {what} not a number")))
    };
    let divisor = num(&items[0], "divisor")?;
    let remainder = num(&items[1], "remainder")?;
    if divisor == 0 {
        return Err(QueryError::bad_value("divisor cannot be 0"));
    }
    Ok(Pred::Mod(divisor, remainder))
}

fn parse_bits(op: &str, arg: &Bson) -> Result<Vec<u32>, QueryError> {
    match arg {
        Bson::Array(items) => items
            .iter()
            .map(|v| match Num::from_bson(v).and_then(Num::to_i64_exact) {
                Some(i) if (0..64 * 1024).contains(&i) => Ok(i as u32),
                Some(_) => Err(QueryError::bad_value(format!(
                    "bit positions cannot be negative: {}",
                    super::display_value(v)
                ))),
                None => Err(QueryError::bad_value(format!(
                    "bit positions must be an integer but got: {}",
                    super::display_value(v)
                ))),
            })
            .collect(),
        Bson::Binary(b) => Ok(b
            .bytes
            .iter()
            .enumerate()
            .flat_map(|(i, byte)| {
                (0..8)
                    .filter(move |bit| byte & (1 << bit) != 0)
                    .map(move |bit| (i * 8 + bit) as u32)
            })
            .collect()),
        other => match Num::from_bson(other).and_then(Num::to_i64_exact) {
            Some(mask) if mask >= 0 => Ok((0..63).filter(|b| mask & (1i64 << b) != 0).collect()),
            Some(_) => Err(QueryError::bad_value(format!(
                "{op} cannot take a negative number: {}",
                super::display_value(other)
            ))),
            None => Err(QueryError::bad_value(format!(
                "{op} takes an Array, a number, or a BinData but received: {}",
                super::display_value(other)
            ))),
        },
    }
}

impl Node {
    fn matches(&self, doc: &Document, vars: &[(String, Bson)]) -> Result<bool, QueryError> {
        Ok(match self {
            Node::And(children) => {
                for c in children {
                    if !c.matches(doc, vars)? {
                        return Ok(false);
                    }
                }
                true
            }
            Node::Or(children) => {
                for c in children {
                    if c.matches(doc, vars)? {
                        return Ok(true);
                    }
                }
                false
            }
            Node::Nor(children) => {
                for c in children {
                    if c.matches(doc, vars)? {
                        return Ok(false);
                    }
                }
                true
            }
            Node::Path { path, pred } => match plain_get(doc, path) {
                // The usual case (no array on the way) allocates nothing.
                Some(leaf) => pred.eval(&[leaf]),
                None => pred.eval(&filter_leaves(doc, path)),
            },
            Node::Expr(e) => super::expr::truthy(e.eval(&Vars::with_bindings(doc, vars))?.as_ref()),
            Node::Schema(schema) => schema.validate(doc).is_ok(),
        })
    }
}

impl Pred {
    /// Evaluates against the values found at the path.
    fn eval(&self, leaves: &[Option<&Bson>]) -> bool {
        match self {
            Pred::All(ps) => ps.iter().all(|p| p.eval(leaves)),
            Pred::Not(p) => !p.eval(leaves),
            Pred::Exists(want) => leaves.iter().any(Option::is_some) == *want,
            Pred::AllOf(ps) => ps.iter().all(|p| p.eval(leaves)),
            Pred::Never => false,
            _ => leaves.iter().any(|leaf| self.leaf(*leaf)),
        }
    }

    /// One value found at the path (`None`: missing), looking inside arrays.
    fn leaf(&self, leaf: Option<&Bson>) -> bool {
        match self {
            Pred::Eq(t) => match leaf {
                None => matches!(t, Bson::Null),
                Some(v) => {
                    eq_single(v, t) || matches!(v, Bson::Array(items) if items.iter().any(|e| eq_single(e, t)))
                }
            },
            Pred::Cmp(op, t) => match leaf {
                None => {
                    (matches!(t, Bson::Null) && matches!(op, CmpOp::Gte | CmpOp::Lte))
                        || (matches!(t, Bson::MinKey | Bson::MaxKey) && cmp_single(*op, &Bson::Null, t))
                }
                Some(v) => {
                    cmp_single(*op, v, t)
                        || matches!(v, Bson::Array(items) if items.iter().any(|e| cmp_single(*op, e, t)))
                }
            },
            Pred::In(items) => items.iter().any(|p| p.leaf(leaf)),
            Pred::Regex(p) => leaf.is_some_and(|v| {
                p.matches_value(v) || matches!(v, Bson::Array(items) if items.iter().any(|e| p.matches_value(e)))
            }),
            Pred::Type(codes) => leaf.is_some_and(|v| {
                type_matches(codes, v)
                    || matches!(v, Bson::Array(items) if items.iter().any(|e| type_matches(codes, e)))
            }),
            Pred::Size(n) => matches!(leaf, Some(Bson::Array(items)) if items.len() as i64 == *n),
            Pred::ElemMatchDoc(node) => match leaf {
                Some(Bson::Array(items)) => items.iter().any(|e| match e {
                    Bson::Document(d) => node.matches(d, &[]).unwrap_or(false),
                    Bson::Array(inner) => node.matches(&array_as_doc(inner), &[]).unwrap_or(false),
                    _ => false,
                }),
                _ => false,
            },
            Pred::ElemMatchValue(ps) => match leaf {
                Some(Bson::Array(items)) => items.iter().any(|e| ps.iter().all(|p| p.single(e))),
                _ => false,
            },
            Pred::Mod(d, r) => leaf.is_some_and(|v| {
                mod_matches(*d, *r, v) || matches!(v, Bson::Array(items) if items.iter().any(|e| mod_matches(*d, *r, e)))
            }),
            Pred::Bits(op, bits) => leaf.is_some_and(|v| {
                bits_match(*op, bits, v)
                    || matches!(v, Bson::Array(items) if items.iter().any(|e| bits_match(*op, bits, e)))
            }),
            Pred::All(_) | Pred::Not(_) | Pred::Exists(_) | Pred::AllOf(_) | Pred::Never => self.eval(&[leaf]),
        }
    }

    /// A single value without looking inside arrays (`$elemMatch` value form).
    fn single(&self, v: &Bson) -> bool {
        match self {
            Pred::Eq(t) => eq_single(v, t),
            Pred::Cmp(op, t) => cmp_single(*op, v, t),
            Pred::In(items) => items.iter().any(|p| p.single(v)),
            Pred::Not(p) => !p.single(v),
            Pred::All(ps) | Pred::AllOf(ps) => ps.iter().all(|p| p.single(v)),
            Pred::Regex(p) => p.matches_value(v),
            Pred::Type(codes) => type_matches(codes, v),
            Pred::Mod(d, r) => mod_matches(*d, *r, v),
            Pred::Bits(op, bits) => bits_match(*op, bits, v),
            other => other.leaf(Some(v)),
        }
    }
}

fn array_as_doc(items: &[Bson]) -> Document {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| (i.to_string(), v.clone()))
        .collect()
}

fn eq_single(v: &Bson, t: &Bson) -> bool {
    match t {
        Bson::Null => matches!(v, Bson::Null),
        _ => values_equal(v, t),
    }
}

fn cmp_single(op: CmpOp, v: &Bson, t: &Bson) -> bool {
    let cross = matches!(t, Bson::MinKey | Bson::MaxKey);
    if !cross && type_rank(v) != type_rank(t) {
        return false;
    }
    if !cross && (is_nan(v) || is_nan(t)) {
        // NaN only equals NaN; it is neither greater nor less than other numbers.
        return is_nan(v) && is_nan(t) && matches!(op, CmpOp::Gte | CmpOp::Lte);
    }
    let o = compare_values(v, t);
    match op {
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Gte => o != Ordering::Less,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Lte => o != Ordering::Greater,
    }
}

fn is_nan(v: &Bson) -> bool {
    Num::from_bson(v).is_some_and(Num::is_nan)
}

fn type_matches(codes: &[i32], v: &Bson) -> bool {
    let code = type_code(v);
    codes
        .iter()
        .any(|c| *c == code || (*c == NUMBER_TYPE && Num::from_bson(v).is_some()))
}

fn mod_matches(divisor: i64, remainder: i64, v: &Bson) -> bool {
    match Num::from_bson(v) {
        Some(n) if !n.is_nan() && n.to_f64().is_finite() => n
            .to_i64_trunc()
            .is_some_and(|x| x.wrapping_rem(divisor) == remainder),
        _ => false,
    }
}

fn bits_match(op: BitsOp, bits: &[u32], v: &Bson) -> bool {
    let is_set: Box<dyn Fn(u32) -> bool> = match v {
        Bson::Binary(b) => {
            let bytes = b.bytes.clone();
            Box::new(move |bit| {
                bytes
                    .get((bit / 8) as usize)
                    .is_some_and(|byte| byte & (1 << (bit % 8)) != 0)
            })
        }
        other => match Num::from_bson(other).and_then(Num::to_i64_exact) {
            Some(x) => Box::new(move |bit| {
                if bit >= 64 {
                    x < 0
                } else {
                    x & (1i64 << bit) != 0
                }
            }),
            None => return false,
        },
    };
    match op {
        BitsOp::AllSet => bits.iter().all(|b| is_set(*b)),
        BitsOp::AnySet => bits.iter().any(|b| is_set(*b)),
        BitsOp::AllClear => bits.iter().all(|b| !is_set(*b)),
        BitsOp::AnyClear => bits.iter().any(|b| !is_set(*b)),
    }
}

#[cfg(test)]
mod tests;
