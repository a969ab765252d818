//! Projections: inclusion, exclusion, computed fields (MongoDB 4.4+ rules),
//! `$slice` and `$elemMatch` for `find`, and the same engine for `$project`.

use bson::{Bson, Document};

use super::expr::{Expr, Vars};
use super::filter::Filter;
use super::number::Num;
use super::QueryError;

/// A parsed projection.
#[derive(Debug, Clone)]
pub(crate) struct Projection {
    mode: Mode,
    fields: Vec<(String, Spec)>,
    include_id: bool,
    positional: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Only `$slice` (or nothing but `_id`): keep everything else.
    Neutral,
    Inclusion,
    Exclusion,
}

#[derive(Debug, Clone)]
enum Spec {
    Include,
    Exclude,
    Computed(Expr),
    Slice(i64, Option<i64>),
    /// `"a.$": 1`: the array element the query matched.
    Positional,
    ElemMatch(Box<Filter>),
    Children(Vec<(String, Spec)>),
}

/// Where a projection is used: `find` knows `$slice`/`$elemMatch` projection
/// operators, `$project` reads them as expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Find,
    Aggregate,
}

impl Projection {
    /// Parses a `find` projection (`{}` returns whole documents).
    pub(crate) fn parse(projection: &Document) -> Result<Projection, QueryError> {
        Self::parse_in(projection, Context::Find)
    }

    /// Parses a `$project` stage specification.
    pub(crate) fn parse_aggregate(projection: &Document) -> Result<Projection, QueryError> {
        if projection.is_empty() {
            return Err(QueryError::new(
                51272,
                "projection specification must have at least one field",
            ));
        }
        Self::parse_in(projection, Context::Aggregate)
    }

    /// An exclusion projection removing `paths` (`$unset`).
    pub(crate) fn exclusion(paths: &[String]) -> Result<Projection, QueryError> {
        let spec: Document = paths.iter().map(|p| (p.clone(), Bson::Int32(0))).collect();
        Self::parse_in(&spec, Context::Aggregate)
    }

    fn parse_in(projection: &Document, ctx: Context) -> Result<Projection, QueryError> {
        let mut p = Projection {
            mode: Mode::Neutral,
            fields: Vec::new(),
            include_id: true,
            positional: false,
        };
        let mut id_spec: Option<Spec> = None;
        let mut id_included = false;
        let mut entries = Vec::new();
        flatten(projection, "", &mut entries)?;
        let mut positional = false;
        for (path, value) in entries {
            let (path, spec) = match path.strip_suffix(".$") {
                Some(base) => {
                    if ctx == Context::Aggregate {
                        return Err(QueryError::new(
                            16410,
                            "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
                        ));
                    }
                    if !matches!(parse_spec(base, &value, ctx)?, Spec::Include) {
                        return Err(QueryError::new(
                            31395,
                            "Cannot exclude array elements with the positional operator",
                        ));
                    }
                    if positional {
                        return Err(QueryError::new(
                            31276,
                            "Cannot specify more than one positional projection per query.",
                        ));
                    }
                    positional = true;
                    (base.to_string(), Spec::Positional)
                }
                None => {
                    let spec = parse_spec(&path, &value, ctx)?;
                    (path, spec)
                }
            };
            let kind = match &spec {
                Spec::Include | Spec::Computed(_) | Spec::ElemMatch(_) | Spec::Positional => {
                    Some(Mode::Inclusion)
                }
                Spec::Exclude => Some(Mode::Exclusion),
                _ => None,
            };
            if path == "_id" {
                match spec {
                    Spec::Exclude => p.include_id = false,
                    Spec::Include => {
                        p.include_id = true;
                        id_included = true;
                    }
                    other => {
                        if matches!(other, Spec::Computed(_)) {
                            p.set_mode(Mode::Inclusion, &path)?;
                        }
                        id_spec = Some(other)
                    }
                }
                continue;
            }
            if let Some(k) = kind {
                p.set_mode(k, &path)?;
            }
            insert(&mut p.fields, &path, spec)?;
        }
        if let Some(spec) = id_spec {
            insert(&mut p.fields, "_id", spec)?;
        }
        p.positional = positional;
        if id_included && p.mode == Mode::Neutral {
            // `{_id: 1}` alone is an inclusion projection.
            p.mode = Mode::Inclusion;
        }
        Ok(p)
    }

    fn set_mode(&mut self, kind: Mode, path: &str) -> Result<(), QueryError> {
        match (self.mode, kind) {
            (Mode::Inclusion, Mode::Exclusion) => Err(QueryError::new(
                31254,
                format!("Cannot do exclusion on field {path} in inclusion projection"),
            )),
            (Mode::Exclusion, Mode::Inclusion) => Err(QueryError::new(
                31253,
                format!("Cannot do inclusion on field {path} in exclusion projection"),
            )),
            _ => {
                self.mode = kind;
                Ok(())
            }
        }
    }

    /// Whether the projection uses the positional `$` operator (`"a.$": 1`),
    /// which needs [`Projection::apply_with_match`].
    pub(crate) fn uses_positional(&self) -> bool {
        self.positional
    }

    /// Applies the projection to one document.
    pub(crate) fn apply(&self, doc: &Document) -> Result<Document, QueryError> {
        self.apply_with_match(doc, None)
    }

    /// Applies the projection with the array index the query matched
    /// ([`crate::query::Filter::matched_array_index`]) for `"a.$": 1`.
    pub(crate) fn apply_with_match(
        &self,
        doc: &Document,
        matched: Option<usize>,
    ) -> Result<Document, QueryError> {
        let vars = Vars::new(doc);
        let mut out = match self.mode {
            Mode::Inclusion => {
                let mut out = Document::new();
                if self.include_id {
                    if let Some(id) = doc.get("_id") {
                        out.insert("_id", id.clone());
                    }
                }
                include(doc, &self.fields, &mut out, matched)?;
                out
            }
            _ => {
                let mut out = doc.clone();
                if !self.include_id {
                    out.remove("_id");
                }
                exclude(&mut out, &self.fields);
                out
            }
        };
        if !self.include_id {
            out.remove("_id");
        }
        compute(&mut out, &self.fields, &vars)?;
        Ok(out)
    }
}

/// Expands nested projection documents (`{a: {b: 1}}` → `a.b: 1`).
fn flatten(spec: &Document, prefix: &str, out: &mut Vec<(String, Bson)>) -> Result<(), QueryError> {
    for (k, v) in spec {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if k.starts_with('$') && !k.is_empty() && !path.ends_with(".$") {
            if prefix.is_empty() {
                return Err(QueryError::new(16410, "FieldPath field names may not start with '$'. Consider using $getField or $setField."));
            }
            return Err(QueryError::new(
                31325,
                format!("Unknown projection operator {k}"),
            ));
        }
        if path.contains(".$.") {
            return Err(QueryError::new(
                31394,
                "As of 4.4, it's illegal to specify positional operator in the middle of a path.Positional projection may only be used at the end, for example: a.b.$. If the query previously used a form like a.b.$.d, remove the parts following the '$' and the results will be equivalent.",
            ));
        }
        if path.split('.').any(str::is_empty) {
            return Err(QueryError::new(
                40352,
                "FieldPath cannot be constructed with empty string",
            ));
        }
        super::path::check_parts(&path)?;
        match v {
            Bson::Document(d) if d.is_empty() => {
                return Err(QueryError::new(
                    51270,
                    format!("An empty sub-projection is not a valid value. Found empty object at path {path}"),
                ))
            }
            Bson::Document(d) if !d.keys().next().is_some_and(|f| f.starts_with('$')) => flatten(d, &path, out)?,
            other => out.push((path, other.clone())),
        }
    }
    Ok(())
}

fn parse_spec(path: &str, value: &Bson, ctx: Context) -> Result<Spec, QueryError> {
    match value {
        Bson::Boolean(b) => Ok(if *b { Spec::Include } else { Spec::Exclude }),
        v if Num::from_bson(v).is_some() => {
            Ok(if Num::from_bson(v).is_some_and(|n| !n.is_zero()) {
                Spec::Include
            } else {
                Spec::Exclude
            })
        }
        Bson::Document(d) if ctx == Context::Find && d.len() == 1 && d.contains_key("$slice") => {
            parse_slice(d.get("$slice"))
        }
        Bson::Document(d)
            if ctx == Context::Find && d.len() == 1 && d.contains_key("$elemMatch") =>
        {
            if path.contains('.') {
                return Err(QueryError::bad_value(
                    "Cannot use $elemMatch projection on a nested field.",
                ));
            }
            match d.get("$elemMatch") {
                Some(Bson::Document(cond)) => Ok(Spec::ElemMatch(Box::new(
                    Filter::parse_value_condition(cond)?,
                ))),
                _ => Err(QueryError::bad_value(
                    "elemMatch: Invalid argument, object required.",
                )),
            }
        }
        Bson::Document(d) if d.contains_key("$meta") => Err(QueryError::unsupported("$meta")),
        other => Ok(Spec::Computed(Expr::parse(other)?)),
    }
}

fn parse_slice(arg: Option<&Bson>) -> Result<Spec, QueryError> {
    let int = |v: &Bson| Num::from_bson(v).and_then(Num::to_i64_trunc);
    match arg {
        Some(Bson::Array(items)) if items.len() == 2 => {
            let (Some(skip), Some(limit)) = (int(&items[0]), int(&items[1])) else {
                return Err(QueryError::bad_value(
                    "$slice only supports numbers and [skip, limit] arrays",
                ));
            };
            if limit <= 0 {
                return Err(QueryError::bad_value("$slice limit must be positive"));
            }
            Ok(Spec::Slice(skip, Some(limit)))
        }
        Some(v) => match int(v) {
            Some(n) => Ok(Spec::Slice(n, None)),
            None => Err(QueryError::bad_value(
                "$slice only supports numbers and [skip, limit] arrays",
            )),
        },
        None => Err(QueryError::bad_value(
            "$slice only supports numbers and [skip, limit] arrays",
        )),
    }
}

fn insert(fields: &mut Vec<(String, Spec)>, path: &str, spec: Spec) -> Result<(), QueryError> {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let pos = fields.iter().position(|(k, _)| k == head);
    match (rest, pos) {
        (None, None) => {
            fields.push((head.to_string(), spec));
            Ok(())
        }
        (None, Some(_)) => Err(QueryError::new(31250, format!("Path collision at {path}"))),
        (Some(rest), None) => {
            let mut children = Vec::new();
            insert(&mut children, rest, spec)?;
            fields.push((head.to_string(), Spec::Children(children)));
            Ok(())
        }
        (Some(rest), Some(i)) => match &mut fields[i].1 {
            Spec::Children(children) => insert(children, rest, spec),
            _ => Err(QueryError::new(
                31250,
                format!("Path collision at {path} remaining portion {rest}"),
            )),
        },
    }
}

fn include(
    doc: &Document,
    fields: &[(String, Spec)],
    out: &mut Document,
    matched: Option<usize>,
) -> Result<(), QueryError> {
    for (k, v) in doc {
        let Some((_, spec)) = fields.iter().find(|(f, _)| f == k) else {
            continue;
        };
        match spec {
            Spec::Include => {
                out.insert(k.clone(), v.clone());
            }
            Spec::Slice(skip, limit) => {
                out.insert(k.clone(), slice(v, *skip, *limit));
            }
            Spec::ElemMatch(filter) => {
                if let Bson::Array(items) = v {
                    if let Some(first) = items.iter().find(|e| filter.matches_element(e)) {
                        out.insert(k.clone(), Bson::Array(vec![first.clone()]));
                    }
                }
            }
            Spec::Positional => match v {
                Bson::Array(items) => match matched.and_then(|i| items.get(i)) {
                    Some(item) => {
                        out.insert(k.clone(), Bson::Array(vec![item.clone()]));
                    }
                    None => {
                        return Err(QueryError::new(
                            51246,
                            "Executor error during find command :: caused by :: positional operator '.$' couldn't find a matching element in the array",
                        ))
                    }
                },
                other => {
                    out.insert(k.clone(), other.clone());
                }
            },
            Spec::Children(sub) => match v {
                Bson::Document(d) => {
                    let mut inner = Document::new();
                    include(d, sub, &mut inner, matched)?;
                    out.insert(k.clone(), inner);
                }
                Bson::Array(items) => {
                    out.insert(k.clone(), include_array(items, sub, matched)?);
                }
                _ => {}
            },
            Spec::Exclude | Spec::Computed(_) => {}
        }
    }
    Ok(())
}

fn include_array(
    items: &[Bson],
    sub: &[(String, Spec)],
    matched: Option<usize>,
) -> Result<Bson, QueryError> {
    let mut out = Vec::new();
    for item in items {
        match item {
            Bson::Document(d) => {
                let mut inner = Document::new();
                include(d, sub, &mut inner, matched)?;
                out.push(Bson::Document(inner));
            }
            Bson::Array(nested) => out.push(include_array(nested, sub, matched)?),
            _ => {}
        }
    }
    Ok(Bson::Array(out))
}

fn exclude(doc: &mut Document, fields: &[(String, Spec)]) {
    for (k, spec) in fields {
        match spec {
            Spec::Exclude => {
                doc.remove(k);
            }
            Spec::Slice(skip, limit) => {
                if let Some(v) = doc.get_mut(k) {
                    *v = slice(v, *skip, *limit);
                }
            }
            Spec::Children(sub) => match doc.get_mut(k) {
                Some(Bson::Document(d)) => exclude(d, sub),
                Some(Bson::Array(items)) => exclude_array(items, sub),
                _ => {}
            },
            _ => {}
        }
    }
}

fn exclude_array(items: &mut [Bson], sub: &[(String, Spec)]) {
    for item in items {
        match item {
            Bson::Document(d) => exclude(d, sub),
            Bson::Array(nested) => exclude_array(nested, sub),
            _ => {}
        }
    }
}

fn has_computed(fields: &[(String, Spec)]) -> bool {
    fields.iter().any(|(_, s)| match s {
        Spec::Computed(_) => true,
        Spec::Children(sub) => has_computed(sub),
        _ => false,
    })
}

fn compute(out: &mut Document, fields: &[(String, Spec)], vars: &Vars) -> Result<(), QueryError> {
    for (k, spec) in fields {
        match spec {
            Spec::Computed(e) => match e.eval(vars)? {
                Some(v) => {
                    out.insert(k.clone(), v);
                }
                None => {
                    out.remove(k);
                }
            },
            Spec::Children(sub) if has_computed(sub) => match out.get_mut(k) {
                Some(Bson::Document(d)) => compute(d, sub, vars)?,
                Some(Bson::Array(items)) => {
                    for item in items.iter_mut() {
                        if let Bson::Document(d) = item {
                            compute(d, sub, vars)?;
                        } else {
                            let mut d = Document::new();
                            compute(&mut d, sub, vars)?;
                            *item = Bson::Document(d);
                        }
                    }
                }
                _ => {
                    let mut d = Document::new();
                    compute(&mut d, sub, vars)?;
                    out.insert(k.clone(), d);
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// `$slice` projection of one value (non-arrays are returned unchanged).
fn slice(v: &Bson, skip: i64, limit: Option<i64>) -> Bson {
    let Bson::Array(items) = v else {
        return v.clone();
    };
    let len = items.len() as i64;
    let (start, count) = match limit {
        None if skip >= 0 => (0, skip),
        None => ((len + skip).max(0), len),
        Some(limit) => {
            let start = if skip >= 0 {
                skip.min(len)
            } else {
                (len + skip).max(0)
            };
            (start, limit)
        }
    };
    Bson::Array(
        items
            .iter()
            .skip(start as usize)
            .take(count.max(0) as usize)
            .cloned()
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn run(spec: Document, d: Document) -> Document {
        Projection::parse(&spec)
            .unwrap_or_else(|e| panic!("{spec}: {e}"))
            .apply(&d)
            .unwrap()
    }

    /// Regression (differential tests): the `$elemMatch` projection tests
    /// each element itself and does not look into nested arrays.
    #[test]
    fn elem_match_projection_does_not_descend_into_nested_arrays() {
        let d = doc! {"_id": 28, "c": [false, ["Ab", 12, 1]]};
        assert_eq!(
            run(doc! {"c": {"$elemMatch": {"$all": [1]}}}, d.clone()),
            doc! {"_id": 28}
        );
        assert_eq!(
            run(doc! {"c": {"$elemMatch": {"$bitsAnySet": 12}}}, d.clone()),
            doc! {"_id": 28}
        );
        assert_eq!(
            run(doc! {"c": {"$elemMatch": {"$size": 3}}}, d),
            doc! {"_id": 28, "c": [["Ab", 12, 1]]}
        );
    }

    #[test]
    fn projects() {
        let d = doc! {"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "e": [{"f": 1, "g": 2}, {"f": 3}, 7], "h": [1, 2, 3, 4, 5]};
        let cases = [
            (doc! {"a": 1}, doc! {"_id": 1, "a": 1}),
            (doc! {"a": 1, "_id": 0}, doc! {"a": 1}),
            (
                doc! {"_id": 0},
                doc! {"a": 1, "b": {"c": 2, "d": 3}, "e": [{"f": 1, "g": 2}, {"f": 3}, 7], "h": [1, 2, 3, 4, 5]},
            ),
            (doc! {"b.c": 1}, doc! {"_id": 1, "b": {"c": 2}}),
            (doc! {"b": {"d": true}}, doc! {"_id": 1, "b": {"d": 3}}),
            (doc! {"e.f": 1}, doc! {"_id": 1, "e": [{"f": 1}, {"f": 3}]}),
            (
                doc! {"a": 0, "b.c": 0, "e.g": 0, "h": 0},
                doc! {"_id": 1, "b": {"d": 3}, "e": [{"f": 1}, {"f": 3}, 7]},
            ),
            (
                doc! {"h": {"$slice": 2}, "_id": 0, "a": 1},
                doc! {"a": 1, "h": [1, 2]},
            ),
            (
                doc! {"h": {"$slice": -2}},
                doc! {"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "e": [{"f": 1, "g": 2}, {"f": 3}, 7], "h": [4, 5]},
            ),
            (
                doc! {"h": {"$slice": [1, 2]}, "a": 1},
                doc! {"_id": 1, "a": 1, "h": [2, 3]},
            ),
            (
                doc! {"e": {"$elemMatch": {"f": 3}}},
                doc! {"_id": 1, "e": [{"f": 3}]},
            ),
            (doc! {"x": "$a", "a": 1}, doc! {"_id": 1, "a": 1, "x": 1}),
            (
                doc! {"y": {"$add": ["$a", "$b.c"]}},
                doc! {"_id": 1, "y": 3},
            ),
            (doc! {"lit": "text", "_id": 0}, doc! {"lit": "text"}),
            (doc! {"m": "$missing", "_id": 0}, doc! {}),
            (doc! {"b.z": "$a", "_id": 0}, doc! {"b": {"z": 1}}),
        ];
        for (spec, want) in cases {
            assert_eq!(run(spec.clone(), d.clone()), want, "{spec}");
        }
        let p = Projection::parse(&doc! {"h.$": 1}).unwrap();
        assert!(p.uses_positional());
        assert_eq!(
            p.apply_with_match(&d, Some(3)).unwrap(),
            doc! {"_id": 1, "h": [4]}
        );
        assert_eq!(p.apply(&d).unwrap_err().code, 51246);
        let dd = doc! {"_id": 1, "d": bson::DateTime::from_millis(1_709_214_330_123)};
        assert_eq!(
            run(doc! {"y": {"$year": "$d"}, "_id": 0}, dd),
            doc! {"y": 2024}
        );
    }

    #[test]
    fn errors() {
        let cases = [
            (
                doc! {"a": 1, "b": 0},
                31254,
                "Cannot do exclusion on field b in inclusion projection",
            ),
            (
                doc! {"a": 0, "b": 1},
                31253,
                "Cannot do inclusion on field b in exclusion projection",
            ),
            (
                doc! {"a": 0, "b": "$x"},
                31253,
                "Cannot do inclusion on field b in exclusion projection",
            ),
            (
                doc! {"a": 1, "a.b": 1},
                31250,
                "Path collision at a.b remaining portion b",
            ),
            (
                doc! {"a": {}},
                51270,
                "An empty sub-projection is not a valid value. Found empty object at path a",
            ),
            (
                doc! {"a": {"$foo": 1}},
                168,
                "Unrecognized expression '$foo'",
            ),
            (
                doc! {"a.$": 0},
                31395,
                "Cannot exclude array elements with the positional operator",
            ),
            (
                doc! {"a.$": 1, "b.$": 1},
                31276,
                "Cannot specify more than one positional projection per query.",
            ),
        ];
        for (spec, code, msg) in cases {
            let err = Projection::parse(&spec).unwrap_err();
            assert_eq!((err.code, err.message.as_str()), (code, msg), "{spec}");
        }
    }
}
