//! The document fields an aggregation expression (a filter's `$expr`)
//! reads, for the hidden-field check. Every way of naming a field counts:
//! `"$a.b"`, `"$$ROOT.a"`, `"$$CURRENT.a"`, and the names `$getField` takes
//! as a string, as `{"field": ...}` or as a `$literal`. A name that cannot be
//! known before the expression runs (computed, dotted, `$`-prefixed) reads
//! the whole input: the whole document when the input is the document
//! (`$$ROOT`, `$$CURRENT`, no `input`). `$setField`, `$unsetField` and
//! `$objectToArray` read their input, which is the whole document for
//! `$$ROOT`/`$$CURRENT`. The empty path stands for the whole document.

use bson::Bson;

/// Adds the paths `value` reads to `out`, each prefixed with `prefix`.
pub(crate) fn expression_paths(value: &Bson, prefix: &str, out: &mut Vec<String>) {
    match value {
        Bson::String(text) => {
            if let Some(variable) = text.strip_prefix("$$") {
                let (name, rest) = variable.split_once('.').unwrap_or((variable, ""));
                if name == "ROOT" || name == "CURRENT" {
                    out.push(format!("{prefix}{rest}"));
                }
            } else if let Some(path) = text.strip_prefix('$') {
                out.push(format!("{prefix}{path}"));
            }
        }
        Bson::Array(items) => items
            .iter()
            .for_each(|item| expression_paths(item, prefix, out)),
        Bson::Document(doc) => {
            for (key, inner) in doc {
                match key.as_str() {
                    "$literal" => {}
                    "$getField" => get_field_paths(inner, prefix, out),
                    _ => expression_paths(inner, prefix, out),
                }
            }
        }
        _ => {}
    }
}

/// The paths `{"$getField": argument}` reads: the named field of its input
/// (the current document unless `input` says otherwise).
fn get_field_paths(argument: &Bson, prefix: &str, out: &mut Vec<String>) {
    let (field, input) = match argument {
        Bson::Document(spec) if spec.contains_key("field") => {
            (spec.get("field").unwrap_or(&Bson::Null), spec.get("input"))
        }
        // The short form: the argument is the field name.
        other => (other, None),
    };
    let name = constant_name(field);
    // The input as a document path ("" for the document itself), when it is one.
    let base = match input {
        None => Some(String::new()),
        Some(Bson::String(text)) => match text.strip_prefix("$$") {
            Some("ROOT" | "CURRENT") => Some(String::new()),
            Some(variable) => match variable.split_once('.') {
                Some(("ROOT" | "CURRENT", rest)) => Some(rest.to_owned()),
                _ => None,
            },
            None => text.strip_prefix('$').map(str::to_owned),
        },
        Some(_) => None,
    };
    match (base, name) {
        (Some(base), Some(name)) => {
            let path = if base.is_empty() {
                name.to_owned()
            } else {
                format!("{base}.{name}")
            };
            out.push(format!("{prefix}{path}"));
        }
        // An unknown name of a known input: all of the input.
        (Some(base), None) => out.push(format!("{prefix}{base}")),
        // A computed input: what computing it reads covers its fields.
        (None, _) => {
            if let Some(input) = input {
                expression_paths(input, prefix, out);
            }
        }
    }
    // The name's own expression, when computed, reads fields too.
    if name.is_none() {
        expression_paths(field, prefix, out);
    }
}

/// A field name known before the expression runs: a plain string or a
/// `$literal` one, neither empty nor dotted nor `$`-prefixed (those name no
/// path the rules can check, so they count as unknown).
fn constant_name(field: &Bson) -> Option<&str> {
    let name = match field {
        Bson::String(name) if !name.starts_with('$') => name.as_str(),
        Bson::Document(spec) if spec.len() == 1 => match spec.get("$literal") {
            Some(Bson::String(name)) => name.as_str(),
            _ => return None,
        },
        _ => return None,
    };
    (!name.is_empty() && !name.contains('.') && !name.starts_with('$')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::bson;

    fn paths(value: Bson) -> Vec<String> {
        let mut out = Vec::new();
        expression_paths(&value, "", &mut out);
        out
    }

    #[test]
    fn every_way_to_name_a_field_is_a_read() {
        assert_eq!(paths(bson!({"$getField": "salary"})), vec!["salary"]);
        assert_eq!(
            paths(bson!({"$getField": {"field": "salary"}})),
            vec!["salary"]
        );
        assert_eq!(
            paths(bson!({"$getField": {"field": {"$literal": "salary"}}})),
            vec!["salary"]
        );
        assert_eq!(
            paths(bson!({"$getField": {"$literal": "salary"}})),
            vec!["salary"]
        );
        assert_eq!(
            paths(bson!({"$getField": {"field": "s", "input": "$$CURRENT"}})),
            vec!["s"]
        );
        assert_eq!(
            paths(bson!({"$getField": {"field": "s", "input": "$$ROOT.a"}})),
            vec!["a.s"]
        );
        assert_eq!(
            paths(bson!({"$getField": {"field": "s", "input": "$a.b"}})),
            vec!["a.b.s"]
        );
        assert_eq!(
            paths(bson!({"$getField": {"field": "s", "input": {"$first": "$arr"}}})),
            vec!["arr"]
        );
        // Names not known in advance read the whole input.
        assert_eq!(paths(bson!({"$getField": "$name"})), vec!["", "name"]);
        assert_eq!(
            paths(bson!({"$getField": {"$concat": ["sal", "ary"]}})),
            vec![""]
        );
        assert_eq!(paths(bson!({"$getField": "a.b"})), vec![""]);
        assert_eq!(paths(bson!({"$getField": {"$literal": "$x"}})), vec![""]);
        assert_eq!(
            paths(bson!({"$getField": {"field": {"$toLower": "$k"}, "input": "$d"}})),
            vec!["d", "k"]
        );
        assert_eq!(
            paths(bson!({"$setField": {"field": "x", "input": "$$ROOT", "value": "$v"}})),
            vec!["", "v"]
        );
        assert_eq!(
            paths(bson!({"$unsetField": {"field": "x", "input": "$$CURRENT"}})),
            vec![""]
        );
        assert_eq!(paths(bson!({"$objectToArray": "$$ROOT"})), vec![""]);
        assert_eq!(paths(bson!({"$objectToArray": "$sub"})), vec!["sub"]);
        assert_eq!(
            paths(bson!({"$literal": {"$getField": "salary"}})),
            Vec::<String>::new()
        );
    }
}
