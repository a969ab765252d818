use super::*;
use crate::rules::functions::Functions;

fn scope_eval(expr: Bson) -> Cond {
    scope_eval_as(expr, PrevRoot::Stored)
}

fn scope_eval_as(expr: Bson, prev: PrevRoot) -> Cond {
    let user = doc! {
        "id": "u1", "type": "normal",
        "data": {"email": "a@b.c", "roles": ["admin"]},
        "custom_data": {"team": "red"},
        "identities": [{"id": "u1", "provider_type": "api-key"}],
    };
    let request = doc! { "action": "find", "httpMethod": "POST" };
    let functions = Functions::default().with("isAdmin", |call: &FunctionCall<'_>| {
        Bson::Boolean(
            call.user
                .get_document("data")
                .ok()
                .and_then(|d| d.get_array("roles").ok())
                .is_some_and(|r| r.contains(&Bson::String("admin".into()))),
        )
    });
    let scope = Scope {
        user: &user,
        request: &request,
        functions: &functions,
    };
    Expr::parse(&expr, "e").unwrap().eval_as(&scope, prev)
}

#[test]
fn prev_root_is_the_stored_document() {
    let owner: Bson = doc! {"%%prevRoot.owner": "%%user.id"}.into();
    let fresh: Bson = doc! {"%%prevRoot": {"%exists": false}}.into();
    let partner: Bson = doc! {"%%user.id": "%%prevRoot.owner"}.into();
    // Judging stored documents: %%prevRoot is the document itself.
    let stored = Cond::Query(doc! {"owner": {"$eq": "u1"}});
    assert_eq!(scope_eval(owner.clone()), stored);
    assert_eq!(scope_eval(partner.clone()), stored);
    assert_eq!(
        scope_eval(fresh.clone()),
        Cond::Query(doc! {"_id": {"$exists": false}})
    );
    // Judging a write: the stored version sits in the subject.
    let before = doc! {"_id": 1, "owner": "u1"};
    let after = doc! {"_id": 1, "owner": "u2"};
    let written = scope_eval_as(owner, PrevRoot::Written);
    assert!(written.matches(&subject(&after, Some(&before))));
    assert!(!written.matches(&subject(&after, None)));
    assert!(scope_eval_as(partner, PrevRoot::Written).matches(&subject(&after, Some(&before))));
    let fresh = scope_eval_as(fresh, PrevRoot::Written);
    assert!(fresh.matches(&subject(&after, None)));
    assert!(!fresh.matches(&subject(&after, Some(&before))));
    // A client's own `%%prevRoot` field is not the stored version.
    let forged = doc! {"_id": 2, "owner": "u2", "%%prevRoot": {"owner": "u1"}};
    assert!(!written.matches(&subject(&forged, None)));
    // Dependencies name the document fields, without the prefix.
    let expr = Expr::parse(
        &doc! {"%%prevRoot.a.b": 1, "%%prevRoot": {"%exists": true}}.into(),
        "e",
    )
    .unwrap();
    let mut paths = BTreeSet::new();
    expr.document_paths(&mut paths);
    assert_eq!(
        paths.into_iter().collect::<Vec<_>>(),
        vec!["a.b".to_owned()]
    );
    assert!(expr.uses_prev_root());
}

#[test]
fn user_expansions_fold_to_constants() {
    assert_eq!(scope_eval(Bson::Document(doc! {})), Cond::True);
    assert_eq!(scope_eval(doc! {"%%user.id": "u1"}.into()), Cond::True);
    assert_eq!(scope_eval(doc! {"%%user.id": "u2"}.into()), Cond::False);
    assert_eq!(
        scope_eval(doc! {"%%user.id": {"$in": ["u0", "u1"]}}.into()),
        Cond::True
    );
    assert_eq!(
        scope_eval(doc! {"%%user.type": {"$ne": "server"}}.into()),
        Cond::True
    );
    assert_eq!(
        scope_eval(doc! {"%%user.data.missing": {"%exists": true}}.into()),
        Cond::False
    );
    assert_eq!(
        scope_eval(doc! {"%%user.custom_data.team": "red", "%%request.action": "find"}.into()),
        Cond::True
    );
    assert_eq!(
        scope_eval(doc! {"%or": [{"%%user.id": "x"}, {"%%user.data.email": "a@b.c"}]}.into()),
        Cond::True
    );
    assert_eq!(
        scope_eval(doc! {"%and": [{"%%true": true}, {"%%false": true}]}.into()),
        Cond::False
    );
    assert_eq!(
        scope_eval(doc! {"%%true": {"%function": {"name": "isAdmin", "arguments": []}}}.into()),
        Cond::True
    );
    assert_eq!(
        scope_eval(doc! {"%%user.identities.0.provider_type": "api-key"}.into()),
        Cond::True
    );
}

#[test]
fn document_parts_become_filters() {
    assert_eq!(
        scope_eval(doc! {"owner_id": "%%user.id"}.into()),
        Cond::Query(doc! {"owner_id": {"$eq": "u1"}})
    );
    assert_eq!(
        scope_eval(doc! {"%%root.owner_id": "%%user.id"}.into()),
        Cond::Query(doc! {"owner_id": {"$eq": "u1"}})
    );
    assert_eq!(
        scope_eval(doc! {"%%user.id": "%%root.owner_id"}.into()),
        Cond::Query(doc! {"owner_id": {"$eq": "u1"}})
    );
    assert_eq!(
        scope_eval(doc! {"team": {"$in": ["%%user.custom_data.team", "blue"]}}.into()),
        Cond::Query(doc! {"team": {"$in": ["red", "blue"]}})
    );
    let oid = ObjectId::new();
    assert_eq!(
        scope_eval(doc! {"ref": {"%stringToOid": oid.to_hex()}}.into()),
        Cond::Query(doc! {"ref": {"$eq": oid}})
    );
    assert_eq!(
        scope_eval(doc! {"ref": {"%stringToOid": "%%user.id"}}.into()),
        Cond::False,
        "an invalid ObjectId never matches"
    );
    assert_eq!(
        scope_eval(doc! {"owner_id": "%%user.data.nothing"}.into()),
        Cond::False
    );
    let cond = scope_eval(doc! {"owner_id": "%%user.id", "public": true}.into());
    assert!(cond.matches(&doc! {"owner_id": "u1", "public": true}));
    assert!(!cond.matches(&doc! {"owner_id": "u1", "public": false}));
    assert!(!cond
        .clone()
        .not()
        .matches(&doc! {"owner_id": "u1", "public": true}));
}

#[test]
fn errors_name_the_path() {
    let err = |e: Bson| Expr::parse(&e, "roles[0].apply_when").unwrap_err();
    assert!(err(doc! {"$where": "1"}.into()).contains("roles[0].apply_when.$where"));
    assert!(err(doc! {"a": {"$regex": "x"}}.into()).contains("not allowed"));
    assert!(err(doc! {"%%this.a": 1}.into()).contains("not supported"));
    assert!(err(doc! {"%%prevRoot": 1}.into()).contains("%exists"));
    assert!(err(doc! {"a": "%%prevRoot"}.into()).contains("field path"));
    assert!(err(doc! {"%%usr.id": 1}.into()).contains("unknown expansion"));
    assert!(err(doc! {"a": "%%root.b"}.into()).contains("%%root"));
    assert!(err(Bson::Int32(1)).contains("expected an expression"));
    let e = Expr::parse(&doc! {"a": {"%function": {"name": "f"}}}.into(), "x").unwrap();
    let mut uses = Expansions::default();
    e.expansions(&mut uses);
    assert!(uses.functions.contains("f"));
    assert!(!uses.request);
    Expr::parse(&doc! {"%%request.action": "find"}.into(), "x")
        .unwrap()
        .expansions(&mut uses);
    assert!(uses.request);
    assert!(e.depends_on_document());
}

#[test]
fn cond_algebra() {
    let q = Cond::Query(doc! {"a": 1});
    assert_eq!(Cond::True.and(q.clone()), q);
    assert_eq!(Cond::False.or(q.clone()), q);
    assert_eq!(Cond::False.and(q.clone()), Cond::False);
    assert_eq!(q.clone().merge_into(doc! {}), doc! {"a": 1});
    assert_eq!(
        q.merge_into(doc! {"b": 2}),
        doc! {"$and": [{"b": 2}, {"a": 1}]}
    );
    assert!(!Cond::False.matches(&doc! {}));
    assert_eq!(Cond::True.merge_into(doc! {"b": 2}), doc! {"b": 2});
}
