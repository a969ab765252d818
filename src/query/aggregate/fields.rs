//! `$addFields`/`$set` and `$unwind`.

use bson::{Bson, Document};

use crate::query::expr::{Expr, Vars};
use crate::query::path::{get_exact, split};
use crate::query::QueryError;

/// A parsed `$addFields` specification.
#[derive(Debug, Clone)]
pub(super) struct AddFields {
    fields: Vec<(String, FieldSpec)>,
}

#[derive(Debug, Clone)]
enum FieldSpec {
    Value(Expr),
    Nested(Vec<(String, FieldSpec)>),
}

fn insert(
    fields: &mut Vec<(String, FieldSpec)>,
    path: &[String],
    spec: FieldSpec,
) -> Result<(), QueryError> {
    let Some((head, rest)) = path.split_first() else {
        return Ok(());
    };
    if rest.is_empty() {
        if let Some(slot) = fields.iter_mut().find(|(k, _)| k == head) {
            slot.1 = spec;
        } else {
            fields.push((head.clone(), spec));
        }
        return Ok(());
    }
    match fields.iter_mut().find(|(k, _)| k == head) {
        Some((_, FieldSpec::Nested(children))) => insert(children, rest, spec),
        Some(_) => Err(QueryError::new(40176, format!("specification contains two conflicting paths. Cannot specify both '{head}' and '{}'", path.join(".")))),
        None => {
            let mut children = Vec::new();
            insert(&mut children, rest, spec)?;
            fields.push((head.clone(), FieldSpec::Nested(children)));
            Ok(())
        }
    }
}

fn parse_fields(spec: &Document, out: &mut Vec<(String, FieldSpec)>) -> Result<(), QueryError> {
    for (k, v) in spec {
        if k.starts_with('$') {
            return Err(QueryError::new(16410, "FieldPath field names may not start with '$'. Consider using $getField or $setField."));
        }
        let path = split(k);
        if path.iter().any(String::is_empty) {
            return Err(QueryError::new(
                40352,
                "FieldPath cannot be constructed with empty string",
            ));
        }
        let field = match v {
            Bson::Document(d)
                if !d.is_empty() && !d.keys().next().is_some_and(|f| f.starts_with('$')) =>
            {
                let mut children = Vec::new();
                parse_fields(d, &mut children)?;
                FieldSpec::Nested(children)
            }
            other => FieldSpec::Value(Expr::parse(other)?),
        };
        insert(out, &path, field)?;
    }
    Ok(())
}

impl AddFields {
    /// Parses `{field: <expr>, "a.b": <expr>, c: {d: <expr>}}`.
    pub(super) fn parse(spec: &Document) -> Result<AddFields, QueryError> {
        if spec.is_empty() {
            return Err(QueryError::new(
                40177,
                "Invalid $addFields :: caused by :: specification must have at least one field",
            ));
        }
        let mut fields = Vec::new();
        parse_fields(spec, &mut fields)?;
        Ok(AddFields { fields })
    }

    /// Adds the fields to a copy of `doc` (every expression sees the input document).
    pub(super) fn apply(
        &self,
        doc: &Document,
        vars: &[(String, Bson)],
    ) -> Result<Document, QueryError> {
        let vars = Vars::with_bindings(doc, vars);
        let mut out = doc.clone();
        apply_fields(&mut out, &self.fields, &vars)?;
        Ok(out)
    }
}

fn apply_fields(
    target: &mut Document,
    fields: &[(String, FieldSpec)],
    vars: &Vars,
) -> Result<(), QueryError> {
    for (k, spec) in fields {
        match spec {
            FieldSpec::Value(e) => match e.eval(vars)? {
                Some(v) => {
                    target.insert(k.clone(), v);
                }
                None => {
                    target.remove(k);
                }
            },
            FieldSpec::Nested(children) => match target.get_mut(k) {
                Some(Bson::Document(d)) => apply_fields(d, children, vars)?,
                Some(Bson::Array(items)) => {
                    for item in items.iter_mut() {
                        match item {
                            Bson::Document(d) => apply_fields(d, children, vars)?,
                            other => {
                                let mut d = Document::new();
                                apply_fields(&mut d, children, vars)?;
                                *other = Bson::Document(d);
                            }
                        }
                    }
                }
                _ => {
                    let mut d = Document::new();
                    apply_fields(&mut d, children, vars)?;
                    target.insert(k.clone(), d);
                }
            },
        }
    }
    Ok(())
}

/// A parsed `$unwind`.
#[derive(Debug, Clone)]
pub(super) struct Unwind {
    path: Vec<String>,
    index_field: Option<String>,
    preserve: bool,
}

fn unwind_path(s: &str) -> Result<Vec<String>, QueryError> {
    let Some(p) = s.strip_prefix('$') else {
        return Err(QueryError::new(
            28818,
            format!("path option to $unwind stage should be prefixed with a '$': {s}"),
        ));
    };
    let path = split(p);
    if p.is_empty() || path.iter().any(|x| x.is_empty() || x.starts_with('$')) {
        return Err(QueryError::new(
            28818,
            format!("path option to $unwind stage is not a valid field path: {s}"),
        ));
    }
    Ok(path)
}

impl Unwind {
    /// Parses `"$path"` or `{path, includeArrayIndex, preserveNullAndEmptyArrays}`.
    pub(super) fn parse(arg: &Bson) -> Result<Unwind, QueryError> {
        match arg {
            Bson::String(s) => Ok(Unwind { path: unwind_path(s)?, index_field: None, preserve: false }),
            Bson::Document(d) => {
                let mut u = Unwind { path: Vec::new(), index_field: None, preserve: false };
                for (k, v) in d {
                    match (k.as_str(), v) {
                        ("path", Bson::String(s)) => u.path = unwind_path(s)?,
                        ("path", other) => {
                            return Err(QueryError::new(28808, format!("expected a string as the path for $unwind stage, got {}", crate::query::expr::type_name(Some(other)))))
                        }
                        ("includeArrayIndex", Bson::String(s)) => {
                            if s.is_empty() || s.starts_with('$') {
                                return Err(QueryError::new(28822, format!("includeArrayIndex option to $unwind stage should not be prefixed with a '$': {s}")));
                            }
                            u.index_field = Some(s.clone());
                        }
                        ("includeArrayIndex", other) => {
                            return Err(QueryError::new(28810, format!("expected a non-empty string for the includeArrayIndex option to $unwind stage, got {}", crate::query::expr::type_name(Some(other)))))
                        }
                        ("preserveNullAndEmptyArrays", Bson::Boolean(b)) => u.preserve = *b,
                        ("preserveNullAndEmptyArrays", other) => {
                            return Err(QueryError::new(28809, format!("expected a boolean for the preserveNullAndEmptyArrays option to $unwind stage, got {}", crate::query::expr::type_name(Some(other)))))
                        }
                        (other, _) => return Err(QueryError::new(28811, format!("unrecognized option to $unwind stage: {other}"))),
                    }
                }
                if u.path.is_empty() {
                    return Err(QueryError::new(28812, "no path specified to $unwind stage"));
                }
                Ok(u)
            }
            other => Err(QueryError::new(
                15981,
                format!(
                    "expected either a string or an object as specification for $unwind stage, got {}",
                    crate::query::expr::type_name(Some(other))
                ),
            )),
        }
    }

    /// Runs the stage.
    pub(super) fn run(&self, docs: Vec<Document>) -> Result<Vec<Document>, QueryError> {
        let mut out = Vec::with_capacity(docs.len());
        for doc in docs {
            let value = get_exact(&doc, &self.path).cloned();
            match value {
                Some(Bson::Array(items)) if !items.is_empty() => {
                    // Each output is a copy of the document without the array
                    // (a null keeps the field's position) plus one element.
                    let mut template = doc;
                    set_nested(&mut template, &self.path, Some(Bson::Null));
                    for (i, item) in items.into_iter().enumerate() {
                        let mut d = template.clone();
                        set_nested(&mut d, &self.path, Some(item));
                        if let Some(f) = &self.index_field {
                            d.insert(f.clone(), Bson::Int64(i as i64));
                        }
                        crate::query::budget::step()?;
                        crate::query::budget::charge_doc(&d, "$unwind")?;
                        out.push(d);
                    }
                }
                Some(Bson::Array(_)) | None | Some(Bson::Null) | Some(Bson::Undefined) => {
                    if self.preserve {
                        let mut d = doc;
                        if matches!(value, Some(Bson::Array(_))) {
                            set_nested(&mut d, &self.path, None);
                        }
                        if let Some(f) = &self.index_field {
                            d.insert(f.clone(), Bson::Null);
                        }
                        out.push(d);
                    }
                }
                Some(_) => {
                    let mut d = doc;
                    if let Some(f) = &self.index_field {
                        d.insert(f.clone(), Bson::Null);
                    }
                    out.push(d);
                }
            }
        }
        Ok(out)
    }
}

/// Sets (or with `None` removes) a value at a path of nested documents.
pub(super) fn set_nested(doc: &mut Document, path: &[String], value: Option<Bson>) {
    let Some((head, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        match value {
            Some(v) => {
                doc.insert(head.clone(), v);
            }
            None => {
                doc.remove(head);
            }
        }
        return;
    }
    if !matches!(doc.get(head), Some(Bson::Document(_))) {
        if value.is_none() {
            return;
        }
        doc.insert(head.clone(), Document::new());
    }
    if let Some(Bson::Document(d)) = doc.get_mut(head) {
        set_nested(d, rest, value);
    }
}
