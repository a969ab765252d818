//! Owner fields: a role condition comparing a document field with a value
//! that differs per user (`{"owner_id": "%%user.id"}`, also with `$eq`,
//! `$in`, `%%request`, `%function` or `{"%%user.id": "%%root.owner_id"}`).
//!
//! MongoDB's equality also matches an array holding the value (App Services
//! documents `{"<array field>": "%%user.id"}` as membership), so a user
//! writing `owner_id: ["bob", "alice"]` would make the document match
//! alice's rules: it shows in her reads and she may update or delete it.
//! A written document is refused when, at an owner field of the role that
//! authorizes the write, it holds something the stored version did not
//! already hold that is not the writer's own value (an array element naming
//! someone else, a nested array, a document), unless the role authorizes
//! the write whatever that field holds (a role handing documents over by
//! `%%prevRoot.owner_id`, a role whose write filter does not read the
//! field): then an array gives the writer nothing a plain value would not.
//! The field left as it was, the writer's exact value, an array of the
//! writer's value alone, and names dropped from a shared document are
//! accepted.

use bson::{Bson, Document};

use crate::query::compare::{identical, values_equal};
use crate::rules::expr::{Expr, Scope, Test, Val};

/// A field compared with a per-request value, as compiled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Binding {
    /// The document path.
    pub(crate) path: String,
    value: Val,
    /// `$in`: the value is a list of accepted values.
    membership: bool,
}

/// A [`Binding`] expanded for one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Owned {
    path: String,
    /// The values under which the condition matches for this user.
    own: Vec<Bson>,
}

/// Adds the owner fields `expr` compares to `out`.
pub(crate) fn bindings(expr: &Expr, out: &mut Vec<Binding>) {
    let mut add = |path: &str, value: &Val, membership: bool| {
        let path = path.strip_prefix("%%root.").unwrap_or(path);
        // `%%prevRoot` names the stored version, which the write does not change.
        if varies(value) && !path.starts_with("%%") {
            let binding = Binding {
                path: path.to_owned(),
                value: value.clone(),
                membership,
            };
            if !out.contains(&binding) {
                out.push(binding);
            }
        }
    };
    match expr {
        Expr::True | Expr::False => {}
        Expr::All(items) | Expr::Any(items) => items.iter().for_each(|e| bindings(e, out)),
        Expr::Field { path, test } => match test {
            Test::Equals(value) => add(path, value, false),
            Test::Ops(ops) => {
                for (op, value) in ops {
                    match op.as_str() {
                        "$eq" => add(path, value, false),
                        "$in" => add(path, value, true),
                        _ => {}
                    }
                }
            }
        },
        Expr::Value {
            value,
            test: Test::Equals(Val::Root(path)),
        } => add(path, value, false),
        Expr::Value { .. } => {}
    }
}

/// Whether `value` expands differently per request.
fn varies(value: &Val) -> bool {
    match value {
        Val::Literal(_) | Val::Root(_) => false,
        Val::User(_) | Val::Request(_) | Val::Function { .. } => true,
        Val::StringToOid(inner) | Val::OidToString(inner) => varies(inner),
        Val::Array(items) => items.iter().any(varies),
        Val::Doc(fields) => fields.iter().any(|(_, v)| varies(v)),
    }
}

/// `bindings` expanded for the request of `scope`; a value that cannot be
/// expanded matches nothing, so the user has no own value there.
pub(crate) fn expand(bindings: &[Binding], scope: &Scope<'_>) -> Vec<Owned> {
    bindings
        .iter()
        .map(|binding| {
            let own = match binding.value.eval(scope) {
                Ok(Some(Bson::Array(items))) if binding.membership => items,
                Ok(Some(value)) if !binding.membership => vec![value],
                _ => Vec::new(),
            };
            Owned {
                path: binding.path.clone(),
                own,
            }
        })
        .collect()
}

/// `Err(path)` naming the first owner field at which `after` would match
/// other users than the writer (see the module docs); `before` is the
/// stored version (`None` for inserts). `authorizes` tells whether the
/// role still authorizes a version of `after` whose owner field matches
/// nobody.
pub(crate) fn check(
    owned: &[Owned],
    before: Option<&Document>,
    after: &Document,
    authorizes: impl Fn(&Document) -> bool,
) -> Result<(), String> {
    for field in owned {
        let segments: Vec<&str> = field.path.split('.').collect();
        if only_own(field, &segments, before, after) {
            continue;
        }
        let mut masked = after.clone();
        mask(&mut masked, &segments);
        if !authorizes(&masked) {
            return Err(field.path.clone());
        }
    }
    Ok(())
}

/// Whether `after` holds at `field` nothing but the writer's value and
/// what `before` held.
fn only_own(field: &Owned, segments: &[&str], before: Option<&Document>, after: &Document) -> bool {
    let new = get(after, segments);
    if new.is_some() && new == before.and_then(|b| get(b, segments)) {
        return true;
    }
    if new.is_some_and(|v| field.own.iter().any(|own| identical(own, v))) {
        return true;
    }
    // Whole arrays can only equal a value that is an array itself.
    let whole_arrays = field.own.iter().any(|v| matches!(v, Bson::Array(_)));
    let values = |doc: &Document| {
        let mut out = Vec::new();
        candidates(
            &Bson::Document(doc.clone()),
            segments,
            whole_arrays,
            &mut out,
        );
        out
    };
    let old = before.map(values).unwrap_or_default();
    let fine = |v: &Bson| {
        field.own.iter().any(|own| values_equal(own, v)) || old.iter().any(|o| identical(o, v))
    };
    values(after).iter().all(fine)
}

/// Puts a value no user's can equal (`MinKey`) at `segments` (at its first
/// segment when the path crosses something else than documents).
fn mask(doc: &mut Document, segments: &[&str]) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    match doc.get_mut(*first) {
        Some(Bson::Document(inner)) if !rest.is_empty() => mask(inner, rest),
        _ => {
            doc.insert(*first, Bson::MinKey);
        }
    }
}

/// The value at `segments`, through documents only.
fn get<'a>(doc: &'a Document, segments: &[&str]) -> Option<&'a Bson> {
    let (first, rest) = segments.split_first()?;
    let value = doc.get(*first)?;
    match (rest.is_empty(), value) {
        (true, _) => Some(value),
        (false, Bson::Document(inner)) => get(inner, rest),
        _ => None,
    }
}

/// Every value an equality condition on `segments` compares with, as
/// MongoDB walks paths: through documents, through arrays of documents, by
/// array index, and each element of an array at the end (with the array
/// itself when `whole_arrays`).
fn candidates(value: &Bson, segments: &[&str], whole_arrays: bool, out: &mut Vec<Bson>) {
    let Some((first, rest)) = segments.split_first() else {
        match value {
            Bson::Array(items) => {
                if whole_arrays {
                    out.push(value.clone());
                }
                out.extend(items.iter().cloned());
            }
            other => out.push(other.clone()),
        }
        return;
    };
    match value {
        Bson::Document(doc) => {
            if let Some(inner) = doc.get(*first) {
                candidates(inner, rest, whole_arrays, out);
            }
        }
        Bson::Array(items) => {
            if let Some(item) = first.parse::<usize>().ok().and_then(|i| items.get(i)) {
                candidates(item, rest, whole_arrays, out);
            }
            for item in items {
                if matches!(item, Bson::Document(_)) {
                    candidates(item, segments, whole_arrays, out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc};

    fn owner(own: Bson) -> Vec<Owned> {
        vec![Owned {
            path: "o".into(),
            own: vec![own],
        }]
    }

    #[test]
    fn only_the_writer_or_the_stored_owners() {
        let bob = owner(bson!("bob"));
        let new = |after: Document| check(&bob, None, &after, |_| false);
        assert_eq!(new(doc! {"o": "bob"}), Ok(()));
        assert_eq!(new(doc! {"o": ["bob", "bob"]}), Ok(()));
        assert_eq!(new(doc! {"x": 1}), Ok(()));
        assert_eq!(new(doc! {"o": ["bob", "alice"]}), Err("o".into()));
        assert_eq!(new(doc! {"o": ["bob", ["alice"]]}), Err("o".into()));
        assert_eq!(new(doc! {"o": {"id": "bob"}}), Err("o".into()));
        assert_eq!(new(doc! {"o": "alice"}), Err("o".into()));
        let shared = doc! {"o": ["alice", "bob"]};
        let change = |after: Document| check(&bob, Some(&shared), &after, |_| false);
        assert_eq!(change(doc! {"o": ["alice", "bob"], "t": 1}), Ok(()));
        assert_eq!(change(doc! {"o": ["bob"]}), Ok(()));
        assert_eq!(change(doc! {"o": ["bob", "alice"]}), Ok(()));
        assert_eq!(
            change(doc! {"o": ["alice", "bob", "carol"]}),
            Err("o".into())
        );
        // Nested paths walk arrays of documents.
        let nested = vec![Owned {
            path: "a.o".into(),
            own: vec![bson!("bob")],
        }];
        assert_eq!(
            check(&nested, None, &doc! {"a": [{"o": "bob"}]}, |_| false),
            Ok(())
        );
        assert_eq!(
            check(
                &nested,
                None,
                &doc! {"a": [{"o": "bob"}, {"o": "eve"}]},
                |_| false
            ),
            Err("a.o".into())
        );
        // A role that authorizes the write whatever the field holds.
        let masked = |d: &Document| d.get("o") == Some(&Bson::MinKey);
        assert_eq!(
            check(&bob, None, &doc! {"o": ["bob", "eve"]}, masked),
            Ok(())
        );
        let mut nested_doc = doc! {"a": {"o": "eve", "k": 1}};
        mask(&mut nested_doc, &["a", "o"]);
        assert_eq!(nested_doc, doc! {"a": {"o": Bson::MinKey, "k": 1}});
        // A writer whose value is an array may store exactly it.
        let groups = owner(bson!(["x", "y"]));
        assert_eq!(
            check(&groups, None, &doc! {"o": ["x", "y"]}, |_| false),
            Ok(())
        );
        assert_eq!(
            check(&groups, None, &doc! {"o": ["x", "z"]}, |_| false),
            Err("o".into())
        );
    }

    #[test]
    fn bindings_are_the_fields_compared_with_per_user_values() {
        let expr = Expr::parse(
            &bson!({"%or": [{"owner": "%%user.id"}, {"team": {"$in": ["%%user.data.team", "x"]}},
                            {"public": true}, {"%%user.id": "%%root.editor"}]}),
            "t",
        )
        .unwrap();
        let mut out = Vec::new();
        bindings(&expr, &mut out);
        let paths: Vec<&str> = out.iter().map(|b| b.path.as_str()).collect();
        assert_eq!(paths, vec!["owner", "team", "editor"]);
    }
}
