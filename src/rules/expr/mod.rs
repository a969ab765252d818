//! Rule expressions (§7.2): parsed when the service is built, evaluated per
//! request into a [`Cond`].
//!
//! Evaluation expands `%%user`, `%%request`, `%%true`/`%%false`,
//! `%stringToOid`, `%oidToString` and `%function` into concrete values; what
//! is left depends only on the document and becomes a MongoDB query filter on
//! it, which the backend evaluates (merged into the operation's filter) or
//! the embedded query engine evaluates in-process. Anything that cannot be
//! expanded (a missing value, a string that is no ObjectId) makes its
//! comparison false, never true.
//!
//! `%%prevRoot` is the stored version of the document a write changes. When
//! the rules choose which stored documents a request may read, delete or
//! update, the stored version is the document itself, so
//! `%%prevRoot.<field>` reads like `<field>` ([`PrevRoot::Stored`]). When
//! they judge a document about to be written ([`PrevRoot::Written`]), the
//! condition tests [`subject`]: the new document with the stored one under
//! the reserved key `%%prevRoot` (absent for inserts).

use std::collections::BTreeSet;

use bson::oid::ObjectId;
use bson::{doc, Bson, Document};

use crate::query::Filter;
use crate::rules::functions::{FunctionCall, Functions};

/// The expansion of the stored version of a written document; also the key
/// it has in a [`subject`].
pub(crate) const PREV_ROOT: &str = "%%prevRoot";

/// How `%%prevRoot` is read (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrevRoot {
    /// Judging stored documents: `%%prevRoot` is the document itself.
    Stored,
    /// Judging a document about to be written: `%%prevRoot` is the stored
    /// version, found in the [`subject`].
    Written,
}

/// What [`PrevRoot::Written`] conditions are tested on: `after` with
/// `before` under the key `%%prevRoot` (a field of that name in `after`
/// itself is dropped, so a client cannot forge the stored version).
pub(crate) fn subject(after: &Document, before: Option<&Document>) -> Document {
    let mut out = after.clone();
    out.remove(PREV_ROOT);
    if let Some(before) = before {
        out.insert(PREV_ROOT, before.clone());
    }
    out
}

/// The operators an expression may use on a value.
const VALUE_OPERATORS: &[&str] = &[
    "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists",
];

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    True,
    False,
    All(Vec<Expr>),
    Any(Vec<Expr>),
    /// A condition on a document field (`field`, `%%root.field`, or
    /// `%%prevRoot.field` kept with its prefix; `%%prevRoot` alone for
    /// `%exists` tests).
    Field {
        path: String,
        test: Test,
    },
    /// A condition on an expanded value (`%%user.id`, `%%true`, …).
    Value {
        value: Val,
        test: Test,
    },
}

/// What a field or value is tested against.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    /// Equality with a value.
    Equals(Val),
    /// `{"$in": [...], "$exists": true, ...}`, all of which must hold.
    Ops(Vec<(String, Val)>),
}

/// A value before expansion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Literal(Bson),
    User(Vec<String>),
    Request(Vec<String>),
    /// `%%root.<path>` (or `%%prevRoot.<path>`, prefix kept): only as the
    /// equality partner of an expanded value.
    Root(String),
    StringToOid(Box<Val>),
    OidToString(Box<Val>),
    Function {
        name: String,
        arguments: Vec<Val>,
    },
    Array(Vec<Val>),
    Doc(Vec<(String, Val)>),
}

/// What an expression means for one request: always, never, or for the
/// documents a filter matches.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    True,
    False,
    Query(Document),
}

/// A [`Cond`] parsed once, to test many documents in-process.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Const(bool),
    Filter(Filter),
}

impl Matcher {
    /// Whether `document` satisfies the condition.
    pub(crate) fn matches(&self, document: &Document) -> bool {
        match self {
            Matcher::Const(value) => *value,
            Matcher::Filter(filter) => filter.matches(document),
        }
    }
}

/// What expressions need per request: the `%function`s they call and
/// whether they read `%%request`.
#[derive(Debug, Default)]
pub(crate) struct Expansions {
    pub(crate) functions: BTreeSet<String>,
    pub(crate) request: bool,
}

/// The values expressions expand: `%%user` and `%%request` as documents.
pub(crate) struct Scope<'a> {
    pub(crate) user: &'a Document,
    pub(crate) request: &'a Document,
    pub(crate) functions: &'a Functions,
}

impl Expr {
    /// Parses an expression; `path` names it in errors (`roles[0].apply_when`).
    pub(crate) fn parse(value: &Bson, path: &str) -> Result<Expr, String> {
        match value {
            Bson::Boolean(true) => Ok(Expr::True),
            Bson::Boolean(false) => Ok(Expr::False),
            Bson::Document(doc) => parse_doc(doc, path),
            other => Err(format!(
                "{path}: expected an expression object or a boolean, found {other}"
            )),
        }
    }

    /// An optional expression, `default` when absent.
    pub(crate) fn parse_json(
        value: Option<&serde_json::Value>,
        path: &str,
        default: Expr,
    ) -> Result<Expr, String> {
        match value {
            None => Ok(default),
            Some(value) => Expr::parse(&json_to_bson(value, path)?, path),
        }
    }

    /// Whether the expression looks at the document (`%%root`, a bare field
    /// or `%%prevRoot`, alone included).
    pub(crate) fn depends_on_document(&self) -> bool {
        let mut paths = BTreeSet::new();
        self.document_paths(&mut paths);
        !paths.is_empty() || self.uses_prev_root()
    }

    /// The document paths the expression reads.
    pub(crate) fn document_paths(&self, out: &mut BTreeSet<String>) {
        match self {
            Expr::True | Expr::False => {}
            Expr::All(items) | Expr::Any(items) => {
                items.iter().for_each(|item| item.document_paths(out))
            }
            Expr::Field { path, .. } => insert_document_path(path, out),
            Expr::Value { test, .. } => {
                if let Test::Equals(Val::Root(path)) = test {
                    insert_document_path(path, out);
                }
            }
        }
    }

    /// Whether the expression reads `%%prevRoot`.
    pub(crate) fn uses_prev_root(&self) -> bool {
        match self {
            Expr::True | Expr::False => false,
            Expr::All(items) | Expr::Any(items) => items.iter().any(Expr::uses_prev_root),
            Expr::Field { path, .. } => is_prev_root(path),
            Expr::Value { test, .. } => {
                matches!(test, Test::Equals(Val::Root(path)) if is_prev_root(path))
            }
        }
    }

    /// Adds the `%function`s the expression calls, and whether it reads
    /// `%%request`, to `out`.
    pub(crate) fn expansions(&self, out: &mut Expansions) {
        let test_uses = |test: &Test, out: &mut Expansions| match test {
            Test::Equals(val) => val.expansions(out),
            Test::Ops(ops) => ops.iter().for_each(|(_, val)| val.expansions(out)),
        };
        match self {
            Expr::True | Expr::False => {}
            Expr::All(items) | Expr::Any(items) => {
                items.iter().for_each(|item| item.expansions(out))
            }
            Expr::Field { test, .. } => test_uses(test, out),
            Expr::Value { value, test } => {
                value.expansions(out);
                test_uses(test, out);
            }
        }
    }

    /// Expands the expression for one request, judging stored documents
    /// ([`PrevRoot::Stored`]).
    pub(crate) fn eval(&self, scope: &Scope<'_>) -> Cond {
        self.eval_as(scope, PrevRoot::Stored)
    }

    /// Expands the expression for one request, `%%prevRoot` read as `prev`.
    pub(crate) fn eval_as(&self, scope: &Scope<'_>, prev: PrevRoot) -> Cond {
        match self {
            Expr::True => Cond::True,
            Expr::False => Cond::False,
            Expr::All(items) => items
                .iter()
                .fold(Cond::True, |acc, item| acc.and(item.eval_as(scope, prev))),
            Expr::Any(items) => items
                .iter()
                .fold(Cond::False, |acc, item| acc.or(item.eval_as(scope, prev))),
            Expr::Field { path, test } => match test.expand(scope) {
                Some(condition) => Cond::Query(doc! { query_path(path, prev): condition }),
                None => Cond::False,
            },
            Expr::Value { value, test } => {
                let value = match value.eval(scope) {
                    Ok(value) => value,
                    Err(_) => return Cond::False,
                };
                if let Test::Equals(Val::Root(path)) = test {
                    return match value {
                        Some(value) => {
                            Cond::Query(doc! { query_path(path, prev): { "$eq": value } })
                        }
                        None => Cond::False,
                    };
                }
                let Some(condition) = test.expand(scope) else {
                    return Cond::False;
                };
                let subject = match value {
                    Some(value) => doc! { "v": value },
                    None => Document::new(),
                };
                match Filter::parse(&doc! { "v": condition }) {
                    Ok(filter) if filter.matches(&subject) => Cond::True,
                    _ => Cond::False,
                }
            }
        }
    }
}

impl Test {
    /// The test as a MongoDB condition (`{"$eq": v}`, `{"$in": [...]}`);
    /// `None` when a value cannot be expanded.
    fn expand(&self, scope: &Scope<'_>) -> Option<Document> {
        match self {
            Test::Equals(val) => Some(doc! { "$eq": val.eval(scope).ok()?? }),
            Test::Ops(ops) => {
                let mut out = Document::new();
                for (op, val) in ops {
                    out.insert(op.clone(), val.eval(scope).ok()??);
                }
                Some(out)
            }
        }
    }
}

impl Val {
    fn expansions(&self, out: &mut Expansions) {
        match self {
            Val::Function { name, arguments } => {
                out.functions.insert(name.clone());
                arguments.iter().for_each(|a| a.expansions(out));
            }
            Val::StringToOid(inner) | Val::OidToString(inner) => inner.expansions(out),
            Val::Array(items) => items.iter().for_each(|a| a.expansions(out)),
            Val::Doc(fields) => fields.iter().for_each(|(_, a)| a.expansions(out)),
            Val::Request(_) => out.request = true,
            Val::Literal(_) | Val::User(_) | Val::Root(_) => {}
        }
    }

    /// The expanded value; `Ok(None)` when it is missing.
    pub(crate) fn eval(&self, scope: &Scope<'_>) -> Result<Option<Bson>, String> {
        Ok(match self {
            Val::Literal(value) => Some(value.clone()),
            Val::User(path) => lookup(scope.user, path),
            Val::Request(path) => lookup(scope.request, path),
            Val::Root(_) => return Err("%%root cannot be expanded here".into()),
            Val::StringToOid(inner) => match inner.eval(scope)? {
                Some(Bson::String(text)) => Some(Bson::ObjectId(
                    ObjectId::parse_str(&text).map_err(|e| e.to_string())?,
                )),
                Some(Bson::ObjectId(id)) => Some(Bson::ObjectId(id)),
                Some(_) => return Err("%stringToOid expects a string".into()),
                None => None,
            },
            Val::OidToString(inner) => match inner.eval(scope)? {
                Some(Bson::ObjectId(id)) => Some(Bson::String(id.to_hex())),
                Some(Bson::String(text)) => Some(Bson::String(text)),
                Some(_) => return Err("%oidToString expects an ObjectId".into()),
                None => None,
            },
            Val::Function { name, arguments } => {
                let arguments = arguments
                    .iter()
                    .map(|a| a.eval(scope).map(|v| v.unwrap_or(Bson::Null)))
                    .collect::<Result<Vec<_>, _>>()?;
                let call = FunctionCall {
                    arguments: &arguments,
                    user: scope.user,
                    request: scope.request,
                };
                Some(scope.functions.call(name, &call)?)
            }
            // A missing value inside an array or document makes the whole
            // value unusable: dropping it could widen a condition.
            Val::Array(items) => Some(Bson::Array(
                items
                    .iter()
                    .map(|a| a.eval(scope)?.ok_or_else(missing))
                    .collect::<Result<_, _>>()?,
            )),
            Val::Doc(fields) => {
                let mut out = Document::new();
                for (key, val) in fields {
                    out.insert(key.clone(), val.eval(scope)?.ok_or_else(missing)?);
                }
                Some(Bson::Document(out))
            }
        })
    }

    fn contains_root(&self) -> bool {
        match self {
            Val::Root(_) => true,
            Val::StringToOid(inner) | Val::OidToString(inner) => inner.contains_root(),
            Val::Function { arguments, .. } => arguments.iter().any(Val::contains_root),
            Val::Array(items) => items.iter().any(Val::contains_root),
            Val::Doc(fields) => fields.iter().any(|(_, v)| v.contains_root()),
            Val::Literal(_) | Val::User(_) | Val::Request(_) => false,
        }
    }
}

impl Cond {
    /// Both conditions.
    pub(crate) fn and(self, other: Cond) -> Cond {
        match (self, other) {
            (Cond::False, _) | (_, Cond::False) => Cond::False,
            (Cond::True, c) | (c, Cond::True) => c,
            (Cond::Query(a), Cond::Query(b)) => Cond::Query(doc! { "$and": [a, b] }),
        }
    }

    /// Either condition.
    pub(crate) fn or(self, other: Cond) -> Cond {
        match (self, other) {
            (Cond::True, _) | (_, Cond::True) => Cond::True,
            (Cond::False, c) | (c, Cond::False) => c,
            (Cond::Query(a), Cond::Query(b)) => Cond::Query(doc! { "$or": [a, b] }),
        }
    }

    /// The opposite condition.
    pub(crate) fn not(self) -> Cond {
        match self {
            Cond::True => Cond::False,
            Cond::False => Cond::True,
            Cond::Query(q) => Cond::Query(doc! { "$nor": [q] }),
        }
    }

    /// Whether `document` satisfies the condition (evaluated in-process).
    pub(crate) fn matches(&self, document: &Document) -> bool {
        match self {
            Cond::True => true,
            Cond::False => false,
            Cond::Query(query) => Filter::parse(query).is_ok_and(|f| f.matches(document)),
        }
    }

    /// The condition parsed for in-process tests (an unparsable query never matches).
    pub(crate) fn matcher(&self) -> Matcher {
        match self {
            Cond::True => Matcher::Const(true),
            Cond::False => Matcher::Const(false),
            Cond::Query(query) => Filter::parse(query)
                .map(Matcher::Filter)
                .unwrap_or(Matcher::Const(false)),
        }
    }

    /// Whether the condition is the constant `false`.
    pub(crate) fn is_false(&self) -> bool {
        matches!(self, Cond::False)
    }

    /// The condition as a filter document; `False` matches no document.
    pub(crate) fn to_query(&self) -> Document {
        match self {
            Cond::True => Document::new(),
            Cond::False => doc! { "_id": { "$in": [] } },
            Cond::Query(query) => query.clone(),
        }
    }

    /// `{"$and": [filter, condition]}`, or `filter` alone when the condition
    /// always holds.
    pub(crate) fn merge_into(&self, filter: Document) -> Document {
        match self {
            Cond::True => filter,
            _ if filter.is_empty() => self.to_query(),
            _ => doc! { "$and": [filter, self.to_query()] },
        }
    }
}

/// A JSON expression as BSON (Extended JSON wrappers such as `$oid` honoured).
pub(crate) fn json_to_bson(value: &serde_json::Value, path: &str) -> Result<Bson, String> {
    Bson::try_from(value.clone()).map_err(|e| format!("{path}: invalid Extended JSON: {e}"))
}

/// A filter query or projection with `%%user`/`%%request` expansions in its
/// values, expanded per request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template(Val);

impl Template {
    /// Parses a document whose values may hold expansions (not `%%root`).
    pub(crate) fn parse(value: &serde_json::Value, path: &str) -> Result<Template, String> {
        let bson = json_to_bson(value, path)?;
        if !matches!(bson, Bson::Document(_)) {
            return Err(format!("{path}: expected an object"));
        }
        let val = parse_val(&bson, path)?;
        if val.contains_root() {
            return Err(format!("{path}: %%root cannot be used here"));
        }
        Ok(Template(val))
    }

    /// Adds what the template expands to `out`.
    pub(crate) fn expansions(&self, out: &mut Expansions) {
        self.0.expansions(out);
    }

    /// The expanded document; `None` when an expansion is missing.
    pub(crate) fn expand(&self, scope: &Scope<'_>) -> Option<Document> {
        match self.0.eval(scope) {
            Ok(Some(Bson::Document(doc))) => Some(doc),
            _ => None,
        }
    }
}

fn parse_doc(doc: &Document, path: &str) -> Result<Expr, String> {
    let mut parts = Vec::new();
    for (key, value) in doc {
        let here = format!("{path}.{key}");
        let part = match key.as_str() {
            "%and" | "%or" => {
                let Bson::Array(items) = value else {
                    return Err(format!("{here}: expected an array of expressions"));
                };
                let items = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Expr::parse(item, &format!("{here}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                if key == "%and" {
                    Expr::All(items)
                } else {
                    Expr::Any(items)
                }
            }
            _ if key.starts_with("%%root.") => Expr::Field {
                path: key["%%root.".len()..].to_owned(),
                test: parse_test(value, &here, false)?,
            },
            PREV_ROOT => {
                let test = parse_test(value, &here, false)?;
                let exists_only = matches!(&test, Test::Ops(ops)
                    if ops.iter().all(|(op, v)| op == "$exists" && matches!(v, Val::Literal(_))));
                if !exists_only {
                    return Err(format!(
                        "{here}: %%prevRoot alone can only be tested with %exists (use %%prevRoot.<field>)"
                    ));
                }
                Expr::Field {
                    path: PREV_ROOT.to_owned(),
                    test,
                }
            }
            _ if key.starts_with("%%prevRoot.") && key.len() > "%%prevRoot.".len() => Expr::Field {
                path: key.clone(),
                test: parse_test(value, &here, false)?,
            },
            _ if key.starts_with("%%") => {
                let test = parse_test(value, &here, true)?;
                Expr::Value {
                    value: parse_expansion(key, &here)?,
                    test,
                }
            }
            _ if key.starts_with('%') || key.starts_with('$') => {
                return Err(format!(
                    "{here}: unknown operator '{key}' (expressions use %and, %or and %%expansions)"
                ))
            }
            _ if key.is_empty() => return Err(format!("{path}: empty field name")),
            _ => Expr::Field {
                path: key.clone(),
                test: parse_test(value, &here, false)?,
            },
        };
        parts.push(part);
    }
    Ok(match parts.len() {
        0 => Expr::True,
        1 => parts.pop().unwrap_or(Expr::True),
        _ => Expr::All(parts),
    })
}

/// The test after a field or expansion; `root_allowed` when a `%%root`
/// value may be its equality partner.
fn parse_test(value: &Bson, path: &str, root_allowed: bool) -> Result<Test, String> {
    if let Bson::Document(doc) = value {
        let operator_keys = doc.keys().filter(|k| k.starts_with('$')).count();
        let is_value_operator = doc.len() == 1
            && doc
                .keys()
                .all(|k| matches!(k.as_str(), "%stringToOid" | "%oidToString" | "%function"));
        if !doc.is_empty()
            && !is_value_operator
            && (operator_keys > 0 || doc.contains_key("%exists"))
        {
            let mut ops = Vec::new();
            for (op, arg) in doc {
                let here = format!("{path}.{op}");
                let op = match op.as_str() {
                    "%exists" => "$exists",
                    op if VALUE_OPERATORS.contains(&op) => op,
                    _ => {
                        return Err(format!(
                        "{here}: operator not allowed in rule expressions (allowed: {}, %exists)",
                        VALUE_OPERATORS.join(" ")
                    ))
                    }
                };
                let val = parse_val(arg, &here)?;
                if val.contains_root() {
                    return Err(format!("{here}: %%root can only be compared for equality"));
                }
                ops.push((op.to_owned(), val));
            }
            return Ok(Test::Ops(ops));
        }
    }
    let val = parse_val(value, path)?;
    match &val {
        Val::Root(_) if root_allowed => {}
        val if val.contains_root() => {
            return Err(format!(
                "{path}: %%root can only be compared for equality with an expanded value"
            ))
        }
        _ => {}
    }
    Ok(Test::Equals(val))
}

fn parse_val(value: &Bson, path: &str) -> Result<Val, String> {
    Ok(match value {
        Bson::String(text) if text.starts_with("%%") => parse_expansion(text, path)?,
        Bson::Array(items) => Val::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_val(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Bson::Document(doc) if doc.len() == 1 && doc.contains_key("%stringToOid") => {
            Val::StringToOid(Box::new(parse_val(&doc["%stringToOid"], path)?))
        }
        Bson::Document(doc) if doc.len() == 1 && doc.contains_key("%oidToString") => {
            Val::OidToString(Box::new(parse_val(&doc["%oidToString"], path)?))
        }
        Bson::Document(doc) if doc.contains_key("%function") => parse_function(doc, path)?,
        Bson::Document(doc) => {
            let mut fields = Vec::new();
            for (key, value) in doc {
                if key.starts_with('%') {
                    return Err(format!("{path}.{key}: unknown operator '{key}'"));
                }
                fields.push((key.clone(), parse_val(value, &format!("{path}.{key}"))?));
            }
            Val::Doc(fields)
        }
        other => Val::Literal(other.clone()),
    })
}

fn parse_function(doc: &Document, path: &str) -> Result<Val, String> {
    let here = format!("{path}.%function");
    if doc.len() != 1 {
        return Err(format!(
            "{here}: %function must be the only key of its object"
        ));
    }
    let Some(Bson::Document(spec)) = doc.get("%function") else {
        return Err(format!(
            "{here}: expected {{\"name\": ..., \"arguments\": [...]}}"
        ));
    };
    let Some(Bson::String(name)) = spec.get("name") else {
        return Err(format!("{here}.name: expected the function's name"));
    };
    let arguments = match spec.get("arguments") {
        None => Vec::new(),
        Some(Bson::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_val(item, &format!("{here}.arguments[{i}]")))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(format!("{here}.arguments: expected an array")),
    };
    if let Some(key) = spec
        .keys()
        .find(|k| !matches!(k.as_str(), "name" | "arguments"))
    {
        return Err(format!("{here}: unknown field '{key}'"));
    }
    if arguments.iter().any(Val::contains_root) {
        return Err(format!(
            "{here}.arguments: function arguments cannot use the document (%%root)"
        ));
    }
    Ok(Val::Function {
        name: name.clone(),
        arguments,
    })
}

fn parse_expansion(text: &str, path: &str) -> Result<Val, String> {
    let (head, rest) = match text.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (text, None),
    };
    let segments = || -> Vec<String> {
        rest.map(|r| r.split('.').map(str::to_owned).collect())
            .unwrap_or_default()
    };
    match head {
        "%%user" => Ok(Val::User(segments())),
        "%%request" => Ok(Val::Request(segments())),
        "%%true" if rest.is_none() => Ok(Val::Literal(Bson::Boolean(true))),
        "%%false" if rest.is_none() => Ok(Val::Literal(Bson::Boolean(false))),
        "%%root" => match rest {
            Some(rest) if !rest.is_empty() => Ok(Val::Root(rest.to_owned())),
            _ => Err(format!(
                "{path}: %%root needs a field path (%%root.<field>)"
            )),
        },
        "%%prevRoot" => match rest {
            Some(rest) if !rest.is_empty() => Ok(Val::Root(text.to_owned())),
            _ => Err(format!(
                "{path}: %%prevRoot needs a field path here (%%prevRoot.<field>)"
            )),
        },
        "%%this" | "%%prev" | "%%values" | "%%environment" | "%%args" | "%%partition" => {
            Err(format!("{path}: the expansion {head} is not supported"))
        }
        _ => Err(format!("{path}: unknown expansion '{text}'")),
    }
}

fn is_prev_root(path: &str) -> bool {
    path == PREV_ROOT || path.starts_with("%%prevRoot.")
}

/// The document path an expression path reads, `%%prevRoot` and its
/// prefix removed (`%%prevRoot` alone reads no field).
fn insert_document_path(path: &str, out: &mut BTreeSet<String>) {
    match path.strip_prefix("%%prevRoot.") {
        Some(rest) => {
            out.insert(rest.to_owned());
        }
        None if path == PREV_ROOT => {}
        None => {
            out.insert(path.to_owned());
        }
    }
}

/// The field path of a condition in a query: under [`PrevRoot::Stored`],
/// `%%prevRoot.x` is `x` and `%%prevRoot` alone is `_id` (every stored
/// document has one).
fn query_path(path: &str, prev: PrevRoot) -> String {
    if prev == PrevRoot::Stored {
        if path == PREV_ROOT {
            return "_id".to_owned();
        }
        if let Some(rest) = path.strip_prefix("%%prevRoot.") {
            return rest.to_owned();
        }
    }
    path.to_owned()
}

fn missing() -> String {
    "a value the expression needs is missing".to_owned()
}

/// The value at `path` inside `doc` (documents only; no array traversal).
fn lookup(doc: &Document, path: &[String]) -> Option<Bson> {
    let Some((first, rest)) = path.split_first() else {
        return Some(Bson::Document(doc.clone()));
    };
    let mut current = doc.get(first)?;
    for segment in rest {
        current = match current {
            Bson::Document(inner) => inner.get(segment)?,
            Bson::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current.clone())
}

#[cfg(test)]
mod tests;
