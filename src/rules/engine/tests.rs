use bson::{doc, Bson};
use http::StatusCode;
use serde_json::json;

use super::plan::array_filter_paths;
use super::*;
use crate::action::Reply;
use crate::backend::{FindOneQuery, FindQuery, ReplaceQuery, UpdateQuery, WriteCheck};
use crate::protocol::ErrorCode;
use crate::rules::model::{FieldPermission, Role, Rule, RuleFilter, Rules};

fn ns() -> Namespace {
    Namespace::new("db", "c")
}

fn user_doc(id: &str) -> Document {
    doc! { "id": id, "type": "normal", "data": {"group": "staff"}, "custom_data": {}, "identities": [] }
}

/// Authorizes `command` as user `id` under `rules`.
fn run(rules: &Rules, id: &str, command: &mut Command) -> Result<Guard, ApiError> {
    run_full(rules, id, command).map(|(guard, _)| guard)
}

/// [`run`], with the post-image rules for the backend.
fn run_full(
    rules: &Rules,
    id: &str,
    command: &mut Command,
) -> Result<(Guard, Option<PostImageRules>), ApiError> {
    let compiled = CompiledRules::compile(rules, Functions::default()).unwrap();
    let user = user_doc(id);
    let request = doc! { "action": "x" };
    let scope = Scope {
        user: &user,
        request: &request,
        functions: compiled.functions(),
    };
    compiled
        .authorize(&ns(), &scope, command)
        .map(|decision| (decision.guard, decision.post_image))
}

fn owner_rules() -> Rules {
    Rules::new().collection("db", "c", Rule::owner("owner_id"))
}

/// Admins (apply_when on user data) read and write everything; others read
/// public documents without `salary` and write only `name`.
fn staff_rules() -> Rules {
    Rules::new().default_rule(
        Rule::new()
            .role(Role::read_write("admin").apply_when(json!({"%%user.id": "admin"})))
            .role(
                Role::new("staff")
                    .document_filters(Some(json!({"public": true})), Some(json!({"public": true})))
                    .field("name", FieldPermission::read_write())
                    .field("salary", FieldPermission::hidden())
                    .additional_fields(FieldPermission::read_only()),
            ),
    )
}

fn find(filter: Document) -> Command {
    Command::Find(FindQuery {
        filter,
        limit: 10,
        ..FindQuery::default()
    })
}

fn update(filter: Document, update: Document) -> Command {
    Command::UpdateMany(UpdateQuery {
        filter,
        update: UpdateModifications::Operators(update),
        upsert: false,
        array_filters: None,
    })
}

fn message(result: Result<Guard, ApiError>) -> String {
    let err = result.unwrap_err();
    assert_eq!(err.status(), StatusCode::FORBIDDEN, "{err:?}");
    err.message().to_owned()
}

#[test]
fn no_rule_for_the_namespace_is_403() {
    let err = run(&Rules::new(), "u", &mut find(doc! {})).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoMatchingRuleFound);
    assert_eq!(err.message(), "no rule exists for namespace 'db.c'");
    let rules = Rules::new().default_rule(
        Rule::new().role(Role::read_write("x").apply_when(json!({"%%user.id": "other"}))),
    );
    let err = run(&rules, "u", &mut find(doc! {})).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoMatchingRuleFound);
}

#[test]
fn collection_roles_replace_default_roles() {
    let rules = Rules::new()
        .default_rule(Rule::new().role(Role::read_write("all")))
        .collection("db", "c", Rule::new().role(Role::read_only("ro")));
    let err = run(&rules, "u", &mut Command::InsertOne(doc! {"a": 1})).unwrap_err();
    assert_eq!(
        err.message(),
        "insert not permitted: field 'a' is not writable"
    );
    assert!(run(&rules, "u", &mut find(doc! {})).is_ok());
}

#[test]
fn reads_merge_the_read_filter() {
    let mut command = find(doc! {"x": 1});
    let guard = run(&owner_rules(), "u1", &mut command).unwrap();
    assert!(matches!(guard, Guard::None));
    let Command::Find(query) = command else {
        unreachable!()
    };
    assert_eq!(
        query.filter,
        doc! {"$and": [{"x": 1}, {"owner_id": {"$eq": "u1"}}]}
    );
}

#[test]
fn document_dependent_roles_build_an_or_and_strip_fields() {
    let rules = Rules::new().default_rule(
        Rule::new()
            .role(Role::read_write("mine").apply_when(json!({"owner_id": "%%user.id"})))
            .role(
                Role::new("others")
                    .field("name", FieldPermission::read_only())
                    .document_filters(Some(json!({"public": true})), None),
            ),
    );
    let mut command = Command::FindOne(FindOneQuery {
        filter: doc! {},
        projection: Some(doc! {"secret": 0}),
        sort: None,
    });
    let guard = run(&rules, "u1", &mut command).unwrap();
    let Command::FindOne(query) = command else {
        unreachable!()
    };
    assert_eq!(
        query.projection, None,
        "the projection runs after stripping"
    );
    let mine = doc! {"owner_id": {"$eq": "u1"}};
    assert_eq!(
        query.filter,
        doc! {"$or": [mine.clone(), {"$and": [{"$nor": [mine]}, {"public": {"$eq": true}}]}]}
    );
    let reply = guard
        .finish(Reply::Documents(vec![
            doc! {"_id": 1, "owner_id": "u1", "name": "a", "secret": 1, "x": 1},
            doc! {"_id": 2, "owner_id": "u2", "name": "b", "secret": 2, "public": true},
            doc! {"_id": 3, "owner_id": "u2", "name": "c"},
        ]))
        .unwrap();
    assert_eq!(
        reply,
        Reply::Documents(vec![
            doc! {"_id": 1, "owner_id": "u1", "name": "a", "x": 1},
            doc! {"_id": 2, "name": "b"},
        ])
    );
}

#[test]
fn inserts_check_role_fields_and_insert_permission() {
    let rules = owner_rules();
    assert!(run(
        &rules,
        "u1",
        &mut Command::InsertOne(doc! {"owner_id": "u1"})
    )
    .is_ok());
    assert_eq!(
        message(run(
            &rules,
            "u1",
            &mut Command::InsertOne(doc! {"owner_id": "u2"})
        )),
        "insert not permitted: the document does not match the role's write filter"
    );
    let mut many = Command::InsertMany(vec![doc! {"owner_id": "u1"}, doc! {"owner_id": "u2"}]);
    assert!(run(&rules, "u1", &mut many).is_err(), "all or nothing");
    let staff = staff_rules();
    assert_eq!(
        message(run(
            &staff,
            "u",
            &mut Command::InsertOne(doc! {"public": true, "name": "n", "salary": 1})
        )),
        "insert not permitted: field 'public' is not writable"
    );
    assert!(run(&staff, "admin", &mut Command::InsertOne(doc! {"salary": 1})).is_ok());
}

#[test]
fn updates_check_touched_paths_and_merge_write_filters() {
    let staff = staff_rules();
    let mut ok = update(doc! {"_id": 1}, doc! {"$set": {"name": "x"}});
    run(&staff, "u", &mut ok).unwrap();
    let Command::UpdateMany(query) = ok else {
        unreachable!()
    };
    assert_eq!(
        query.filter,
        doc! {"$and": [{"_id": 1}, {"public": {"$eq": true}}]}
    );
    for (update_doc, field) in [
        (doc! {"$set": {"salary": 2}}, "salary"),
        (doc! {"$rename": {"name": "salary"}}, "salary"),
        (doc! {"$unset": {"other": ""}}, "other"),
        (doc! {"$push": {"tags": 1}}, "tags"),
    ] {
        let err = message(run(&staff, "u", &mut update(doc! {}, update_doc)));
        assert_eq!(
            err,
            format!("update not permitted: field '{field}' is not writable")
        );
    }
    // Changing the field the write filter depends on: the post-image is
    // re-checked by the backend.
    let (_, post) = run_full(
        &owner_rules(),
        "u1",
        &mut update(doc! {}, doc! {"$set": {"owner_id": "u2"}}),
    )
    .unwrap();
    let post = post.expect("post-image rules");
    let before = doc! {"_id": 1, "owner_id": "u1"};
    let refusal = post
        .check(Some(&before), &doc! {"_id": 1, "owner_id": "u2"})
        .unwrap_err();
    assert_eq!(refusal.kind, BackendErrorKind::PermissionDenied);
    assert_eq!(
        refusal.message,
        "update not permitted: after the update, the document with _id 1 would not match \
         the role's write filter"
    );
    assert!(post.check(Some(&before), &before).is_ok());
    // Fields no role depends on need no post-image check.
    let (_, post) = run_full(
        &owner_rules(),
        "u1",
        &mut update(doc! {}, doc! {"$set": {"n": 1}}),
    )
    .unwrap();
    assert!(post.is_none());
    let pipeline = Command::UpdateOne(UpdateQuery {
        filter: doc! {},
        update: UpdateModifications::Pipeline(vec![doc! {"$set": {"name": "x"}}]),
        upsert: false,
        array_filters: None,
    });
    assert!(message(run(&staff, "u", &mut pipeline.clone())).contains("pipeline"));
    assert!(run(&staff, "admin", &mut pipeline.clone()).is_ok());
}

#[test]
fn upserts_check_the_inserted_document() {
    let rules = owner_rules();
    let mut upsert = Command::UpdateOne(UpdateQuery {
        filter: doc! {"_id": 5},
        update: UpdateModifications::Operators(doc! {"$set": {"n": 1}}),
        upsert: true,
        array_filters: None,
    });
    // The merged write filter seeds owner_id, so the new document is the user's.
    assert!(run(&rules, "u1", &mut upsert).is_ok());
    let ro = Rules::preset(crate::AccessLevel::ReadOnly);
    assert!(run(&ro, "u1", &mut upsert).is_err());
}

#[test]
fn replacements_are_whole_writes_checked_before_and_after() {
    let rules = owner_rules();
    let replace = |replacement: Document| {
        Command::ReplaceOne(ReplaceQuery {
            filter: doc! {"_id": 1},
            replacement,
            upsert: false,
        })
    };
    assert!(run(&rules, "u1", &mut replace(doc! {"owner_id": "u1", "a": 1})).is_ok());
    // The owner rule depends on the document: the backend re-checks the
    // replacement with its `_id`.
    let (_, post) = run_full(&rules, "u1", &mut replace(doc! {"owner_id": "u2"})).unwrap();
    let post = post.expect("post-image rules");
    let before = doc! {"_id": 1, "owner_id": "u1"};
    assert!(post
        .check(Some(&before), &doc! {"_id": 1, "owner_id": "u2"})
        .is_err());
    assert!(post
        .check(Some(&before), &doc! {"_id": 1, "owner_id": "u1", "b": 2})
        .is_ok());
    assert!(message(run(
        &staff_rules(),
        "u",
        &mut replace(doc! {"public": true})
    ))
    .contains("every field"));
}

#[test]
fn deletes_need_delete_and_full_write() {
    let mut delete = Command::DeleteMany(doc! {"a": 1});
    run(&owner_rules(), "u1", &mut delete).unwrap();
    assert_eq!(
        delete,
        Command::DeleteMany(doc! {"$and": [{"a": 1}, {"owner_id": {"$eq": "u1"}}]})
    );
    assert_eq!(
        message(run(&staff_rules(), "u", &mut Command::DeleteOne(doc! {}))),
        "delete not permitted"
    );
    let no_delete =
        Rules::new().default_rule(Rule::new().role(Role::read_write("rw").delete(json!(false))));
    assert_eq!(
        message(run(&no_delete, "u", &mut Command::DeleteOne(doc! {}))),
        "delete not permitted"
    );
}

#[test]
fn aggregation_policy() {
    let staff = staff_rules();
    for stage in [
        doc! {"$out": "x"},
        doc! {"$merge": {"into": "x"}},
        doc! {"$graphLookup": {"from": "y"}},
        doc! {"$facet": {"a": [{"$out": "x"}]}},
        doc! {"$match": {"$where": "true"}},
        doc! {"$project": {"x": {"$function": {"body": "f", "args": [], "lang": "js"}}}},
    ] {
        let name = stage.keys().next().unwrap().clone();
        let err = message(run(&staff, "u", &mut Command::Aggregate(vec![stage])));
        assert!(err.contains("not permitted"), "{name}: {err}");
    }
    let mut agg = Command::Aggregate(vec![doc! {"$group": {"_id": null, "n": {"$sum": 1}}}]);
    run(&staff, "u", &mut agg).unwrap();
    assert_eq!(
        agg,
        Command::Aggregate(vec![
            doc! {"$match": {"public": {"$eq": true}}},
            doc! {"$project": {"salary": 0}},
            doc! {"$group": {"_id": null, "n": {"$sum": 1}}},
        ])
    );
    // Joins carry the joined collection's rules (here the same default rule).
    let mut join = Command::Aggregate(vec![
        doc! {"$lookup": {"from": "y", "as": "z", "localField": "a", "foreignField": "b"}},
        doc! {"$unionWith": "y"},
    ]);
    run(&staff, "u", &mut join).unwrap();
    let prefix = vec![
        doc! {"$match": {"public": {"$eq": true}}},
        doc! {"$project": {"salary": 0}},
    ];
    let mut expected = prefix.clone();
    expected.push(
        doc! {"$lookup": {"from": "y", "as": "z", "localField": "a", "foreignField": "b",
        "pipeline": prefix.clone()}},
    );
    expected.push(doc! {"$unionWith": {"coll": "y", "pipeline": prefix}});
    assert_eq!(join, Command::Aggregate(expected));
    let only_c = Rules::new().collection("db", "c", Rule::new().role(Role::read_write("rw")));
    let err = run(
        &only_c,
        "u",
        &mut Command::Aggregate(vec![doc! {"$unionWith": "secret"}]),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoMatchingRuleFound);
    assert_eq!(err.message(), "no rule exists for namespace 'db.secret'");
    let mut stats = Command::Aggregate(vec![doc! {"$collStats": {"count": {}}}]);
    assert!(run(&staff, "u", &mut stats.clone()).is_err());
    assert!(run(&staff, "admin", &mut stats).is_ok());
    assert_eq!(
        stats,
        Command::Aggregate(vec![doc! {"$collStats": {"count": {}}}])
    );
    // Roles reading different fields depending on the document: refused.
    let mixed = Rules::new().default_rule(
        Rule::new()
            .role(Role::read_write("mine").apply_when(json!({"owner_id": "%%user.id"})))
            .role(Role::new("others").field("name", FieldPermission::read_only())),
    );
    assert!(message(run(&mixed, "u", &mut Command::Aggregate(vec![]))).contains("different fields"));
}

#[test]
fn queries_on_hidden_fields_are_refused_unless_allowed() {
    let staff = staff_rules();
    let sorted = |filter: Document, sort: Document| {
        Command::Find(FindQuery {
            filter,
            sort: Some(sort),
            limit: 10,
            ..FindQuery::default()
        })
    };
    assert_eq!(
        message(run(&staff, "u", &mut find(doc! {"salary": {"$gt": 1}}))),
        "find not permitted: the filter reads field 'salary', which is not readable"
    );
    assert_eq!(
        message(run(&staff, "u", &mut sorted(doc! {}, doc! {"salary": 1}))),
        "find not permitted: the sort reads field 'salary', which is not readable"
    );
    assert!(message(run(
        &staff,
        "u",
        &mut update(doc! {"salary": 1}, doc! {"$set": {"name": "x"}})
    ))
    .starts_with("update not permitted: the filter reads field 'salary'"));
    assert!(message(run(
        &staff,
        "u",
        &mut Command::DeleteOne(doc! {"salary": 1})
    ))
    .starts_with("delete not permitted"));
    // arrayFilters read the elements of the array they name.
    assert_eq!(
        array_filter_paths(
            &[doc! {"e.salary": {"$gt": 1}}, doc! {"f": 2}],
            &doc! {"$set": {"items.$[e].name": "x", "tags.0.$[f]": 1}},
        ),
        vec!["items.salary", "tags"]
    );
    let mut with_filters = Command::UpdateMany(UpdateQuery {
        filter: doc! {},
        update: UpdateModifications::Operators(doc! {"$set": {"name.$[e]": 1}}),
        upsert: false,
        array_filters: Some(vec![doc! {"e.salary": 1}]),
    });
    assert!(
        run(&staff, "u", &mut with_filters).is_ok(),
        "name.salary is readable"
    );
    let mut with_filters = Command::UpdateMany(UpdateQuery {
        filter: doc! {},
        update: UpdateModifications::Operators(doc! {"$set": {"salary.$[e]": 1}}),
        upsert: false,
        array_filters: Some(vec![doc! {"e": 1}]),
    });
    assert!(message(run(&staff, "u", &mut with_filters)).contains("'salary'"));
    // Readable fields, and the admin (who reads everything), are fine.
    assert!(run(
        &staff,
        "u",
        &mut sorted(doc! {"name": "a"}, doc! {"name": 1})
    )
    .is_ok());
    assert!(run(&staff, "admin", &mut find(doc! {"salary": {"$gt": 1}})).is_ok());
    // App Services' behaviour on request.
    let lenient = staff.allow_hidden_field_queries(true);
    assert!(run(&lenient, "u", &mut find(doc! {"salary": {"$gt": 1}})).is_ok());
}

#[test]
fn denied_operators_are_configurable() {
    let rules = Rules::new().default_rule(Rule::new().role(Role::read_write("rw")));
    assert_eq!(
        message(run(&rules, "u", &mut find(doc! {"$where": "true"}))),
        "$where not permitted"
    );
    let js = doc! {"a": Bson::JavaScriptCode("1".into())};
    assert!(run(&rules, "u", &mut find(js)).is_err());
    let custom = rules.clone().denied_operators(["$regex"]);
    assert!(run(&custom, "u", &mut find(doc! {"a": {"$regex": "x"}})).is_err());
    assert!(run(&custom, "u", &mut find(doc! {"$where": "1"})).is_ok());
}

#[test]
fn filters_merge_queries_and_projections() {
    let rules = Rules::new().default_rule(
        Rule::new()
            .role(Role::read_write("rw"))
            .filter(
                RuleFilter::new("tenant")
                    .apply_when(json!({"%%user.data.group": "staff"}))
                    .query(json!({"tenant": "%%user.data.group"}))
                    .projection(json!({"internal": 0})),
            )
            .filter(
                RuleFilter::new("never")
                    .apply_when(json!(false))
                    .query(json!({"x": 1})),
            ),
    );
    let mut command = find(doc! {"a": 1});
    let guard = run(&rules, "u", &mut command).unwrap();
    let Command::Find(query) = command else {
        unreachable!()
    };
    assert_eq!(query.filter, doc! {"$and": [{"a": 1}, {"tenant": "staff"}]});
    let reply = guard
        .finish(Reply::Documents(vec![
            doc! {"_id": 1, "internal": 1, "a": 1},
        ]))
        .unwrap();
    assert_eq!(reply, Reply::Documents(vec![doc! {"_id": 1, "a": 1}]));
}

#[test]
fn build_errors_name_the_path() {
    let compile = |rules: Rules| CompiledRules::compile(&rules, Functions::default()).unwrap_err();
    let err = compile(Rules::new().collection(
        "db",
        "c",
        Rule::new().role(Role::new("r").apply_when(json!({"$where": "1"}))),
    ));
    assert!(
        err.starts_with("collections[0] ('db.c').roles[0] ('r').apply_when.$where"),
        "{err}"
    );
    let err = compile(
        Rules::new().default_rule(Rule::new().role(Role::new("r").field(
            "a",
            FieldPermission {
                read: Some(json!({"owner": "%%user.id"})),
                ..FieldPermission::default()
            },
        ))),
    );
    assert!(
        err.contains("default_rule.roles[0] ('r').fields.a.read"),
        "{err}"
    );
    let err = compile(
        Rules::new().default_rule(
            Rule::new()
                .role(Role::new("r").apply_when(json!({"%%true": {"%function": {"name": "f"}}}))),
        ),
    );
    assert!(err.contains("'f' is not registered"), "{err}");
    let err = compile(
        Rules::new()
            .default_rule(Rule::new().filter(RuleFilter::new("f").apply_when(json!({"a": 1})))),
    );
    assert!(err.contains("filters[0] ('f').apply_when"), "{err}");
    assert!(compile(Rules::new().denied_operators(["where"])).contains("denied_operators"));
    let err = compile(Rules::new().default_rule(
        Rule::new().filter(RuleFilter::new("p").projection(json!({"a": 1, "b": 0}))),
    ));
    assert!(
        err.starts_with("default_rule.filters[0] ('p').projection: "),
        "{err}"
    );
    let err = compile(Rules::new().default_rule(Rule::new().role(Role::new(""))));
    assert!(err.contains("name"), "{err}");
}
