//! Static checks on what a non-system client sends: denied operators, the
//! paths a filter reads and the paths an update writes. (Which aggregation
//! stages are refused is `stages.rs`; the stages reading other collections
//! are rewritten in `pipeline.rs`.)

use bson::{Bson, Document};
use http::StatusCode;

use crate::protocol::{ApiError, ErrorCode};
use crate::rules::expression_reads::expression_paths;

/// 403 `PermissionDenied` with `message`.
pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, ErrorCode::PermissionDenied, message)
}

/// Operators refused in pipelines whatever the configuration: they run
/// server-side JavaScript.
pub(crate) const ALWAYS_DENIED_IN_PIPELINES: &[&str] = &["$where", "$function", "$accumulator"];

/// The first denied operator (a key in `denied`) or JavaScript code value
/// anywhere inside `value`.
pub(crate) fn find_denied_operator(value: &Bson, denied: &[String]) -> Option<String> {
    match value {
        Bson::Document(doc) => find_in_document(doc, denied),
        Bson::Array(items) => items
            .iter()
            .find_map(|item| find_denied_operator(item, denied)),
        Bson::JavaScriptCode(_) | Bson::JavaScriptCodeWithScope(_) => {
            Some("JavaScript code".to_owned())
        }
        _ => None,
    }
}

/// [`find_denied_operator`] over a document.
pub(crate) fn find_in_document(doc: &Document, denied: &[String]) -> Option<String> {
    doc.iter().find_map(|(key, value)| {
        if denied.iter().any(|d| d == key) {
            Some(key.clone())
        } else {
            find_denied_operator(value, denied)
        }
    })
}

/// The first JavaScript operator anywhere in `pipeline`.
pub(crate) fn javascript_operator(pipeline: &[Document]) -> Option<String> {
    let always: Vec<String> = ALWAYS_DENIED_IN_PIPELINES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    pipeline
        .iter()
        .find_map(|stage| find_in_document(stage, &always))
}

/// Every field path an update-operator document writes: the keys of each
/// operator, and both the source and the target of `$rename`.
pub(crate) fn touched_paths(update: &Document) -> Result<Vec<String>, String> {
    let mut paths = Vec::new();
    for (operator, spec) in update {
        let Bson::Document(spec) = spec else {
            return Err(format!(
                "Modifiers operate on fields but we found type {} instead for {operator}",
                type_name(spec)
            ));
        };
        for (path, value) in spec {
            paths.push(path.clone());
            if operator == "$rename" {
                match value {
                    Bson::String(target) => paths.push(target.clone()),
                    _ => {
                        return Err(format!(
                            "The 'to' field for $rename must be a string: {path}"
                        ))
                    }
                }
            }
        }
    }
    Ok(paths)
}

/// Every field path a query filter reads, for the hidden-field check; the
/// empty path stands for the whole document (`$expr` on `$$ROOT`,
/// `$jsonSchema`, `$text` and operators this function does not know).
pub(crate) fn filter_paths(filter: &Document) -> Vec<String> {
    let mut out = Vec::new();
    collect_filter_paths(filter, "", &mut out);
    out
}

fn collect_filter_paths(filter: &Document, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in filter {
        match key.as_str() {
            "$and" | "$or" | "$nor" => {
                if let Bson::Array(items) = value {
                    for item in items {
                        if let Bson::Document(inner) = item {
                            collect_filter_paths(inner, prefix, out);
                        }
                    }
                }
            }
            "$expr" => expression_paths(value, prefix, out),
            "$comment" => {}
            operator if operator.starts_with('$') => out.push(String::new()),
            field => {
                let path = format!("{prefix}{field}");
                if let Bson::Document(condition) = value {
                    collect_condition_paths(condition, &path, out);
                }
                out.push(path);
            }
        }
    }
}

/// The paths read by the conditions on one field (`$elemMatch` and `$all`
/// of `$elemMatch` read subfields; `$not` wraps conditions).
fn collect_condition_paths(condition: &Document, path: &str, out: &mut Vec<String>) {
    for (operator, argument) in condition {
        match (operator.as_str(), argument) {
            ("$elemMatch", Bson::Document(inner)) => {
                if inner.keys().all(|k| k.starts_with('$')) {
                    collect_condition_paths(inner, path, out);
                } else {
                    collect_filter_paths(inner, &format!("{path}."), out);
                }
            }
            ("$not", Bson::Document(inner)) => collect_condition_paths(inner, path, out),
            ("$all", Bson::Array(items)) => {
                for item in items {
                    if let Bson::Document(inner) = item {
                        collect_condition_paths(inner, path, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Whether writing `a` affects `b` or the other way round (one is a prefix
/// of the other, by whole segments; array indexes and positional segments
/// ignored).
pub(crate) fn paths_overlap(a: &str, b: &str) -> bool {
    let fields = |p: &str| -> Vec<String> {
        p.split('.')
            .filter(|s| !s.starts_with('$') && !s.bytes().all(|c| c.is_ascii_digit()))
            .map(str::to_owned)
            .collect()
    };
    let (a, b) = (fields(a), fields(b));
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn type_name(value: &Bson) -> &'static str {
    match value {
        Bson::String(_) => "string",
        Bson::Array(_) => "array",
        Bson::Null => "null",
        Bson::Boolean(_) => "bool",
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => "number",
        _ => "value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn denied_operators_anywhere() {
        let denied = vec!["$where".to_owned(), "$function".to_owned()];
        assert_eq!(
            find_in_document(&doc! {"$or": [{"a": 1}, {"$where": "true"}]}, &denied),
            Some("$where".into())
        );
        assert_eq!(find_in_document(&doc! {"a": {"$gt": 1}}, &denied), None);
        let js = doc! {"a": Bson::JavaScriptCode("1".into())};
        assert_eq!(
            find_in_document(&js, &denied),
            Some("JavaScript code".into())
        );
    }

    #[test]
    fn filter_paths_name_every_field_read() {
        let paths = filter_paths(&doc! {
            "a": 1,
            "$or": [{"b.c": {"$gt": 1}}, {"d": {"$elemMatch": {"e": 1, "f": {"$lt": 2}}}}],
            "g": {"$not": {"$elemMatch": {"$gt": 1}}},
            "$expr": {"$gt": ["$h", {"$literal": "$no"}, "$$ROOT.i", "$$now"]},
            "$comment": "x",
        });
        assert_eq!(paths, vec!["a", "b.c", "d.e", "d.f", "d", "g", "h", "i"]);
        assert_eq!(filter_paths(&doc! {"$jsonSchema": {}}), vec![""]);
        assert_eq!(filter_paths(&doc! {"$expr": "$$ROOT"}), vec![""]);
    }

    #[test]
    fn js_in_pipelines() {
        assert_eq!(
            javascript_operator(&[doc! {"$group": {"_id": null, "x": {"$accumulator": {}}}}]),
            Some("$accumulator".into())
        );
        assert_eq!(
            javascript_operator(&[doc! {"$group": {"_id": "$out"}}]),
            None
        );
    }

    #[test]
    fn update_paths() {
        let update = doc! {"$set": {"a.b": 1}, "$rename": {"c": "d.e"}, "$inc": {"n": 1}};
        assert_eq!(
            touched_paths(&update).unwrap(),
            vec!["a.b", "c", "d.e", "n"]
        );
        assert!(touched_paths(&doc! {"$set": 1}).is_err());
        assert!(paths_overlap("a", "a.b"));
        assert!(paths_overlap("a.$[].b", "a.b"));
        assert!(paths_overlap("a.0", "a"));
        assert!(!paths_overlap("ab", "a"));
        assert!(!paths_overlap("a.c", "a.b"));
    }
}
