//! The compiled rules of one data source and their enforcement.
//!
//! [`CompiledRules::authorize`] runs in the service between decoding and
//! execution. It picks the rule of the namespace, expands its roles for the
//! principal and the request, refuses what no role allows (403) and rewrites
//! the request so the backend only touches permitted documents: role
//! conditions and document filters are merged into the operation's filter
//! (`{"$and": [client filter, rules]}`), aggregation pipelines get a leading
//! `$match`. What it returns, a [`Guard`], strips unreadable fields from
//! the results. The same rewriting serves both backends.
//!
//! Updates and replacements that may move a document out of what the user
//! may write (they change fields a role's `apply_when`, write filter or
//! `write` reads, or the rules use `%%prevRoot`) also get [`PostImageRules`]:
//! the backend runs them on every document it is about to store, atomically
//! with the write, and a refusal (403) leaves every document unchanged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bson::{doc, Bson, Document};
use http::StatusCode;

use crate::backend::{BackendError, BackendErrorKind, Namespace, UpdateModifications, WriteCheck};
use crate::protocol::{ApiError, Command, ErrorCode, Reply};
use crate::query::update::{apply_pipeline_update, upsert_seed};
use crate::query::{display_value, Filter, Projection, QueryError, UpdateDoc};
use crate::rules::expr::{
    json_to_bson, subject, Cond, Expansions, Expr, Matcher, PrevRoot, Scope, Template,
};
use crate::rules::fields::FieldAccess;
use crate::rules::functions::Functions;
use crate::rules::model::{FieldPermission, Role, Rule, Rules};
use crate::rules::pipeline::{rewrite, PrefixFor};
use crate::rules::policy::{
    filter_paths, find_in_document, forbidden, javascript_operator, paths_overlap, touched_paths,
};
use crate::rules::{expr, owner};

/// What [`CompiledRules::authorize`] decided for one request.
#[derive(Debug)]
pub(crate) struct Decision {
    /// Post-processes the reply.
    pub(crate) guard: Guard,
    /// Re-checks written documents, atomically with the write.
    pub(crate) post_image: Option<PostImageRules>,
    /// Whether some role may hide fields from this user: answers about
    /// stored documents must then not quote their values.
    pub(crate) hides_fields: bool,
}

/// The rules of one data source, validated and ready to evaluate.
#[derive(Debug)]
pub(crate) struct CompiledRules {
    default: Option<CompiledRule>,
    collections: HashMap<(String, String), CompiledRule>,
    denied_operators: Vec<String>,
    allow_hidden_field_queries: bool,
    functions: Functions,
    /// Whether an expression reads `%%request` or calls a function.
    needs_request: bool,
}

#[derive(Debug)]
struct CompiledRule {
    roles: Vec<CompiledRole>,
    filters: Vec<CompiledFilter>,
}

#[derive(Debug)]
struct CompiledRole {
    apply_when: Expr,
    read_filter: Expr,
    write_filter: Expr,
    read: Expr,
    write: Expr,
    insert: Expr,
    delete: Expr,
    fields: FieldSpec,
    /// Document paths that decide whether the role may write a document.
    write_deps: Arc<BTreeSet<String>>,
    /// Whether a write-side expression reads `%%prevRoot`.
    uses_prev_root: bool,
    /// Fields compared with per-user values (see `owner.rs`).
    owners: Vec<owner::Binding>,
}

#[derive(Debug)]
struct FieldSpec {
    read: Expr,
    write: Expr,
    fields: BTreeMap<String, FieldSpec>,
}

#[derive(Debug)]
struct CompiledFilter {
    apply_when: Expr,
    query: Option<Template>,
    projection: Option<Template>,
}

impl CompiledRules {
    /// Validates `rules`; errors name the rule's path, e.g.
    /// `collections[0] ('db.c').roles[1] ('owner').apply_when.$where: ...`.
    pub(crate) fn compile(rules: &Rules, functions: Functions) -> Result<Self, String> {
        let default = rules
            .default_rule
            .as_ref()
            .map(|rule| compile_rule(rule, "default_rule"))
            .transpose()?;
        let mut collections = HashMap::new();
        for (i, coll) in rules.collections.iter().enumerate() {
            let path = format!("collections[{i}] ('{}.{}')", coll.database, coll.collection);
            if coll.database.is_empty() || coll.collection.is_empty() {
                return Err(format!("{path}: database and collection are required"));
            }
            // A schema-only entry (no roles, no filters) keeps the default rule.
            if coll.schema.is_some() && coll.rule.roles.is_empty() && coll.rule.filters.is_empty() {
                continue;
            }
            let rule = compile_rule(&coll.rule, &path)?;
            let key = (coll.database.clone(), coll.collection.clone());
            if collections.insert(key, rule).is_some() {
                return Err(format!("{path}: a second rule for the same collection"));
            }
        }
        let denied_operators = match &rules.denied_operators {
            None => Rules::DEFAULT_DENIED_OPERATORS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            Some(list) => {
                if let Some(bad) = list.iter().find(|op| !op.starts_with('$')) {
                    return Err(format!(
                        "denied_operators: '{bad}' is not an operator (operators start with '$')"
                    ));
                }
                list.clone()
            }
        };
        let mut compiled = Self {
            default,
            collections,
            denied_operators,
            allow_hidden_field_queries: rules.allow_hidden_field_queries,
            functions,
            needs_request: false,
        };
        compiled.check_expansions()?;
        Ok(compiled)
    }

    /// Whether evaluating the rules needs the `%%request` document.
    pub(crate) fn needs_request(&self) -> bool {
        self.needs_request
    }

    /// The registered rule functions.
    pub(crate) fn functions(&self) -> &Functions {
        &self.functions
    }

    /// Checks that every `%function` is registered, and notes whether the
    /// rules need the `%%request` document (functions receive it too).
    fn check_expansions(&mut self) -> Result<(), String> {
        let mut uses = Expansions::default();
        for rule in self.default.iter().chain(self.collections.values()) {
            for role in &rule.roles {
                for expr in [
                    &role.apply_when,
                    &role.read_filter,
                    &role.write_filter,
                    &role.read,
                    &role.write,
                    &role.insert,
                    &role.delete,
                ] {
                    expr.expansions(&mut uses);
                }
                role.fields.expansions(&mut uses);
            }
            for filter in &rule.filters {
                filter.apply_when.expansions(&mut uses);
                for template in filter.query.iter().chain(filter.projection.iter()) {
                    template.expansions(&mut uses);
                }
            }
        }
        self.needs_request = uses.request || !uses.functions.is_empty();
        match uses
            .functions
            .iter()
            .find(|name| !self.functions.contains(name))
        {
            Some(name) => Err(format!(
                "%function '{name}' is not registered (DataApiBuilder::rule_function)"
            )),
            None => Ok(()),
        }
    }

    /// Checks `command` on `ns` for a non-system principal and rewrites it;
    /// the returned guard post-processes the reply, the post-image rules (if
    /// any) go to the backend with the write.
    pub(crate) fn authorize(
        &self,
        ns: &Namespace,
        scope: &Scope<'_>,
        command: &mut Command,
    ) -> Result<Decision, ApiError> {
        let plan = self.plan(ns, scope)?;
        self.check_operators(command)?;
        if !self.allow_hidden_field_queries {
            plan.check_query_fields(command)?;
        }
        let (guard, post_image) = self.rewrite(&plan, ns, scope, command)?;
        Ok(Decision {
            guard,
            post_image,
            hides_fields: plan.hides_fields(),
        })
    }

    /// The rewriting part of [`authorize`](Self::authorize).
    fn rewrite(
        &self,
        plan: &Plan,
        ns: &Namespace,
        scope: &Scope<'_>,
        command: &mut Command,
    ) -> Result<(Guard, Option<PostImageRules>), ApiError> {
        match command {
            Command::FindOne(query) => {
                let (filter, guard) =
                    plan.read(std::mem::take(&mut query.filter), &mut query.projection)?;
                query.filter = filter;
                Ok((guard, None))
            }
            Command::Find(query) => {
                let (filter, guard) =
                    plan.read(std::mem::take(&mut query.filter), &mut query.projection)?;
                query.filter = filter;
                Ok((guard, None))
            }
            Command::InsertOne(document) => {
                plan.check_insert(document, "insert")?;
                Ok((Guard::None, None))
            }
            Command::InsertMany(documents) => {
                for document in documents.iter() {
                    plan.check_insert(document, "insert")?;
                }
                Ok((Guard::None, None))
            }
            Command::UpdateOne(query) | Command::UpdateMany(query) => {
                let filter = std::mem::take(&mut query.filter);
                let client = query.upsert.then(|| filter.clone());
                let rules_filter = |filter: Document| match &query.update {
                    UpdateModifications::Operators(update) => plan.update_filter(filter, update),
                    UpdateModifications::Pipeline(_) => plan.pipeline_update_filter(filter),
                };
                let (mut filter, post) = rules_filter(filter)?;
                if let Some(client) = client {
                    filter =
                        upsert_filter(client, filter, || Ok(rules_filter(Document::new())?.0))?;
                }
                query.filter = filter;
                if query.upsert {
                    let mut inserted = upsert_seed(&query.filter).map_err(invalid)?;
                    inserted = match &query.update {
                        UpdateModifications::Operators(update) => {
                            UpdateDoc::parse(update, query.array_filters.as_deref())
                                .and_then(|u| u.apply(&mut inserted, true))
                                .map_err(invalid)?;
                            inserted
                        }
                        UpdateModifications::Pipeline(pipeline) => {
                            apply_pipeline_update(pipeline, &inserted).map_err(invalid)?
                        }
                    };
                    plan.check_insert(&inserted, "upsert")?;
                }
                Ok((Guard::None, post))
            }
            Command::ReplaceOne(query) => {
                let filter = std::mem::take(&mut query.filter);
                let client = query.upsert.then(|| filter.clone());
                let (mut filter, post) = plan.replace_filter(filter, &query.replacement)?;
                if let Some(client) = client {
                    filter = upsert_filter(client, filter, || {
                        Ok(plan.replace_filter(Document::new(), &query.replacement)?.0)
                    })?;
                }
                query.filter = filter;
                if query.upsert {
                    // Inserted with the `_id` the filter gives, if any.
                    let mut inserted = query.replacement.clone();
                    if !inserted.contains_key("_id") {
                        let seed = upsert_seed(&query.filter).map_err(invalid)?;
                        if let Some(id) = seed.get("_id") {
                            let mut with_id = doc! { "_id": id.clone() };
                            with_id.extend(inserted);
                            inserted = with_id;
                        }
                    }
                    plan.check_insert(&inserted, "upsert")?;
                }
                Ok((Guard::None, post))
            }
            Command::DeleteOne(filter) | Command::DeleteMany(filter) => {
                *filter = plan.delete_filter(std::mem::take(filter))?;
                Ok((Guard::None, None))
            }
            Command::Aggregate(pipeline) => {
                let prefix_for = |collection: &str| {
                    self.plan(&Namespace::new(ns.database.clone(), collection), scope)?
                        .read_prefix()
                };
                *pipeline = plan.pipeline(std::mem::take(pipeline), &prefix_for)?;
                Ok((Guard::None, None))
            }
        }
    }

    /// The rule of `ns`, expanded for this request.
    fn plan(&self, ns: &Namespace, scope: &Scope<'_>) -> Result<Plan, ApiError> {
        let rule = self
            .collections
            .get(&(ns.database.clone(), ns.collection.clone()))
            .or(self.default.as_ref())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::NoMatchingRuleFound,
                    format!("no rule exists for namespace '{ns}'"),
                )
            })?;
        let roles = rule.roles_for(scope);
        if roles.is_empty() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::NoMatchingRuleFound,
                format!("no role applies to this request on namespace '{ns}'"),
            ));
        }
        let filters = rule.filters_for(scope);
        Ok(Plan { roles, filters })
    }

    /// Refuses the configured operators (and JavaScript code) anywhere in
    /// what the client sent, inserted documents excepted (they are data).
    fn check_operators(&self, command: &Command) -> Result<(), ApiError> {
        let denied = &self.denied_operators;
        let mut parts: Vec<&Document> = Vec::new();
        let pipeline_doc;
        match command {
            Command::FindOne(q) => parts.extend(
                [Some(&q.filter), q.projection.as_ref()]
                    .into_iter()
                    .flatten(),
            ),
            Command::Find(q) => parts.extend(
                [Some(&q.filter), q.projection.as_ref()]
                    .into_iter()
                    .flatten(),
            ),
            Command::UpdateOne(q) | Command::UpdateMany(q) => {
                parts.push(&q.filter);
                match &q.update {
                    UpdateModifications::Operators(update) => parts.push(update),
                    UpdateModifications::Pipeline(stages) => {
                        pipeline_doc = doc! { "p": stages.clone() };
                        parts.push(&pipeline_doc);
                    }
                }
            }
            Command::ReplaceOne(q) => parts.push(&q.filter),
            Command::DeleteOne(filter) | Command::DeleteMany(filter) => parts.push(filter),
            Command::Aggregate(stages) => {
                pipeline_doc = doc! { "p": stages.clone() };
                parts.push(&pipeline_doc);
            }
            Command::InsertOne(_) | Command::InsertMany(_) => {}
        }
        match parts
            .into_iter()
            .find_map(|part| find_in_document(part, denied))
        {
            Some(operator) => Err(forbidden(format!("{operator} not permitted"))),
            None => Ok(()),
        }
    }
}

fn compile_rule(rule: &Rule, path: &str) -> Result<CompiledRule, String> {
    let roles = rule
        .roles
        .iter()
        .enumerate()
        .map(|(i, role)| compile_role(role, &format!("{path}.roles[{i}] ('{}')", role.name)))
        .collect::<Result<Vec<_>, _>>()?;
    let filters = rule
        .filters
        .iter()
        .enumerate()
        .map(|(i, filter)| {
            let here = format!("{path}.filters[{i}] ('{}')", filter.name);
            let apply_when = Expr::parse_json(
                filter.apply_when.as_ref(),
                &format!("{here}.apply_when"),
                Expr::True,
            )?;
            if apply_when.depends_on_document() {
                return Err(format!(
                    "{here}.apply_when: a filter's apply_when cannot use document fields"
                ));
            }
            let template = |value: &Option<serde_json::Value>, field: &str| {
                value
                    .as_ref()
                    .map(|v| Template::parse(v, &format!("{here}.{field}")))
                    .transpose()
            };
            if let Some(projection) = &filter.projection {
                let here = format!("{here}.projection");
                if let Bson::Document(spec) = json_to_bson(projection, &here)? {
                    Projection::parse(&spec).map_err(|e| format!("{here}: {}", e.message))?;
                }
            }
            Ok(CompiledFilter {
                apply_when,
                query: template(&filter.query, "query")?,
                projection: template(&filter.projection, "projection")?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(CompiledRule { roles, filters })
}

fn compile_role(role: &Role, path: &str) -> Result<CompiledRole, String> {
    if role.name.is_empty() || role.name.chars().count() > 100 {
        return Err(format!("{path}.name: a role name has 1 to 100 characters"));
    }
    let expr = |value: Option<&serde_json::Value>, field: &str, default: Expr| {
        Expr::parse_json(value, &format!("{path}.{field}"), default)
    };
    let filters = role.document_filters.clone().unwrap_or_default();
    let additional = role.additional_fields.clone().unwrap_or_default();
    let root = FieldPermission {
        fields: role.fields.clone(),
        ..additional
    };
    let compiled = CompiledRole {
        apply_when: expr(role.apply_when.as_ref(), "apply_when", Expr::True)?,
        read_filter: expr(filters.read.as_ref(), "document_filters.read", Expr::True)?,
        write_filter: expr(filters.write.as_ref(), "document_filters.write", Expr::True)?,
        read: expr(role.read.as_ref(), "read", Expr::False)?,
        write: expr(role.write.as_ref(), "write", Expr::False)?,
        insert: expr(role.insert.as_ref(), "insert", Expr::True)?,
        delete: expr(role.delete.as_ref(), "delete", Expr::True)?,
        fields: compile_fields(&root, &format!("{path}.fields"))?,
        write_deps: Arc::default(),
        uses_prev_root: false,
        owners: Vec::new(),
    };
    let mut owners = Vec::new();
    for e in [
        &compiled.apply_when,
        &compiled.read_filter,
        &compiled.write_filter,
        &compiled.read,
        &compiled.write,
    ] {
        owner::bindings(e, &mut owners);
    }
    // Writing an owner field is checked on the written document.
    let mut write_deps: BTreeSet<String> = owners.iter().map(|b| b.path.clone()).collect();
    for e in [
        &compiled.apply_when,
        &compiled.write_filter,
        &compiled.write,
    ] {
        e.document_paths(&mut write_deps);
    }
    let uses_prev_root = [
        &compiled.apply_when,
        &compiled.write_filter,
        &compiled.write,
        &compiled.insert,
    ]
    .iter()
    .any(|e| e.uses_prev_root());
    Ok(CompiledRole {
        write_deps: Arc::new(write_deps),
        uses_prev_root,
        owners,
        ..compiled
    })
}

fn compile_fields(permission: &FieldPermission, path: &str) -> Result<FieldSpec, String> {
    let expr = |value: Option<&serde_json::Value>, field: &str| -> Result<Expr, String> {
        let here = format!("{path}.{field}");
        let e = Expr::parse_json(value, &here, Expr::False)?;
        if e.depends_on_document() {
            return Err(format!(
                "{here}: field permissions cannot use document fields (use document_filters)"
            ));
        }
        Ok(e)
    };
    let mut fields = BTreeMap::new();
    for (name, child) in &permission.fields {
        if name.is_empty() || name.contains('.') || name.starts_with('$') {
            return Err(format!(
                "{path}.{name}: a field name without '.' or a leading '$'"
            ));
        }
        fields.insert(
            name.clone(),
            compile_fields(child, &format!("{path}.{name}"))?,
        );
    }
    Ok(FieldSpec {
        read: expr(permission.read.as_ref(), "read")?,
        write: expr(permission.write.as_ref(), "write")?,
        fields,
    })
}

impl FieldSpec {
    fn eval(&self, scope: &Scope<'_>) -> FieldAccess {
        let write = self.write.eval(scope) == Cond::True;
        FieldAccess {
            read: write || self.read.eval(scope) == Cond::True,
            write,
            fields: self
                .fields
                .iter()
                .map(|(name, spec)| (name.clone(), spec.eval(scope)))
                .collect(),
        }
    }

    fn expansions(&self, out: &mut Expansions) {
        self.read.expansions(out);
        self.write.expansions(out);
        self.fields.values().for_each(|f| f.expansions(out));
    }
}

impl CompiledRule {
    /// The roles that may apply to this request, in order, expanded; the
    /// list stops at the first role that applies whatever the document.
    fn roles_for(&self, scope: &Scope<'_>) -> Vec<RoleView> {
        let mut views = Vec::new();
        let mut none_before = Cond::True;
        for role in &self.roles {
            let own = role.apply_when.eval(scope);
            if own.is_false() {
                continue;
            }
            let unconditional = own == Cond::True;
            // Only roles reading `%%prevRoot` judge written documents
            // differently from stored ones.
            let written = role.uses_prev_root.then(|| {
                let eval = |expr: &Expr| expr.eval_as(scope, PrevRoot::Written);
                Box::new(WrittenConds {
                    apply: eval(&role.apply_when),
                    write_filter: eval(&role.write_filter),
                    write_all: eval(&role.write),
                    insert: eval(&role.insert),
                })
            });
            views.push(RoleView {
                apply: none_before.clone().and(own.clone()),
                own_apply: own.clone(),
                read_filter: role.read_filter.eval(scope),
                write_filter: role.write_filter.eval(scope),
                read_all: role.read.eval(scope),
                write_all: role.write.eval(scope),
                insert: role.insert.eval(scope),
                delete: role.delete.eval(scope),
                fields: role.fields.eval(scope),
                write_deps: role.write_deps.clone(),
                written,
                owners: owner::expand(&role.owners, scope),
            });
            if unconditional {
                break;
            }
            none_before = none_before.and(own.not());
        }
        views
    }

    fn filters_for(&self, scope: &Scope<'_>) -> ActiveFilters {
        let mut active = ActiveFilters {
            query: Cond::True,
            projections: Vec::new(),
        };
        for filter in &self.filters {
            if filter.apply_when.eval(scope) != Cond::True {
                continue;
            }
            if let Some(query) = &filter.query {
                active.query = active.query.and(match query.expand(scope) {
                    Some(query) => Cond::Query(query),
                    None => Cond::False,
                });
            }
            if let Some(projection) = &filter.projection {
                // An unexpandable projection hides everything but `_id`.
                active.projections.push(
                    projection
                        .expand(scope)
                        .unwrap_or_else(|| doc! { "_id": 1 }),
                );
            }
        }
        active
    }
}

/// One role, expanded for one request.
#[derive(Debug, Clone)]
struct RoleView {
    /// This role applies and no earlier one does.
    apply: Cond,
    /// This role's own `apply_when`.
    own_apply: Cond,
    read_filter: Cond,
    write_filter: Cond,
    read_all: Cond,
    write_all: Cond,
    insert: Cond,
    delete: Cond,
    fields: FieldAccess,
    write_deps: Arc<BTreeSet<String>>,
    /// The write-side conditions for a document about to be written, when
    /// they differ from the ones above (the role reads `%%prevRoot`).
    written: Option<Box<WrittenConds>>,
    /// This user's values of the role's owner fields.
    owners: Vec<owner::Owned>,
}

/// A role's write-side conditions under [`PrevRoot::Written`], tested on a
/// [`subject`].
#[derive(Debug, Clone)]
struct WrittenConds {
    apply: Cond,
    write_filter: Cond,
    write_all: Cond,
    insert: Cond,
}

impl RoleView {
    /// The documents this role lets the request see.
    fn visible(&self) -> Cond {
        let something = self
            .read_all
            .clone()
            .or(self.write_all.clone())
            .or(constant(self.fields.reads_anything()));
        self.apply
            .clone()
            .and(self.read_filter.clone())
            .and(something)
    }

    /// The documents this role may write, given whether its field
    /// permissions allow the change (`fields_ok`).
    fn writable(&self, fields_ok: bool) -> Cond {
        self.apply
            .clone()
            .and(self.write_filter.clone())
            .and(self.write_all.clone().or(constant(fields_ok)))
    }
}

/// The filters whose `apply_when` holds, expanded.
#[derive(Debug, Clone)]
struct ActiveFilters {
    query: Cond,
    projections: Vec<Document>,
}

/// One request's expanded roles and filters.
struct Plan {
    roles: Vec<RoleView>,
    filters: ActiveFilters,
}

impl Plan {
    /// The filter of a read, and the guard that strips its results.
    fn read(
        &self,
        filter: Document,
        projection: &mut Option<Document>,
    ) -> Result<(Document, Guard), ApiError> {
        let visible = self.visibility();
        let merged = visible.merge_into(self.filters.query.merge_into(filter));
        let simple = self.filters.projections.is_empty()
            && self.roles.len() == 1
            && self.roles[0].own_apply == Cond::True
            && (self.roles[0].read_all == Cond::True || self.roles[0].write_all == Cond::True);
        if simple {
            return Ok((merged, Guard::None));
        }
        // Stripping needs whole documents: the client's projection runs
        // in-process after it.
        let client = projection
            .take()
            .map(|spec| {
                let parsed = Projection::parse(&spec).map_err(invalid)?;
                let matcher = if parsed.uses_positional() {
                    Some(Filter::parse(&merged).map_err(invalid)?)
                } else {
                    None
                };
                Ok::<_, ApiError>(ClientProjection { parsed, matcher })
            })
            .transpose()?;
        let filter_projections = self
            .filters
            .projections
            .iter()
            .map(|spec| Projection::parse(spec).map_err(|_| ApiError::internal()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            merged,
            Guard::Read(Box::new(ReadGuard {
                roles: self.roles.iter().map(RoleMatcher::new).collect(),
                filter_projections,
                client,
            })),
        ))
    }

    /// Refuses a client filter or sort naming a field some role that may
    /// apply does not let the user read: which documents match, and in what
    /// order, would tell its values apart.
    fn check_query_fields(&self, command: &Command) -> Result<(), ApiError> {
        let (verb, filter, sort) = match command {
            Command::FindOne(q) => ("find", &q.filter, q.sort.as_ref()),
            Command::Find(q) => ("find", &q.filter, q.sort.as_ref()),
            Command::UpdateOne(q) | Command::UpdateMany(q) => ("update", &q.filter, None),
            Command::ReplaceOne(q) => ("update", &q.filter, None),
            Command::DeleteOne(filter) | Command::DeleteMany(filter) => ("delete", filter, None),
            // Inserts read nothing; pipelines start with the read prefix,
            // which removes hidden fields before any client stage.
            Command::InsertOne(_) | Command::InsertMany(_) | Command::Aggregate(_) => return Ok(()),
        };
        let mut paths = filter_paths(filter);
        if let Command::UpdateOne(q) | Command::UpdateMany(q) = command {
            if let (Some(array_filters), UpdateModifications::Operators(update)) =
                (&q.array_filters, &q.update)
            {
                paths.extend(array_filter_paths(array_filters, update));
            }
        }
        let readable = |path: &str| {
            self.roles.iter().all(|role| {
                role.read_all == Cond::True
                    || role.write_all == Cond::True
                    || role.fields.can_read_path(path)
            })
        };
        let named = |path: &str| {
            if path.is_empty() {
                "the whole document".to_owned()
            } else {
                format!("field '{path}'")
            }
        };
        if let Some(path) = paths.into_iter().find(|p| !readable(p)) {
            return Err(forbidden(format!(
                "{verb} not permitted: the filter reads {}, which is not readable",
                named(&path)
            )));
        }
        if let Some(path) = sort
            .into_iter()
            .flat_map(|sort| sort.keys())
            .find(|p| !readable(p))
        {
            return Err(forbidden(format!(
                "{verb} not permitted: the sort reads {}, which is not readable",
                named(path)
            )));
        }
        Ok(())
    }

    /// Whether a role that may apply hides some field from the user.
    fn hides_fields(&self) -> bool {
        self.roles.iter().any(|role| {
            role.read_all != Cond::True
                && role.write_all != Cond::True
                && !role.fields.fully_readable()
        }) || !self.filters.projections.is_empty()
    }

    fn visibility(&self) -> Cond {
        self.roles
            .iter()
            .fold(Cond::False, |acc, role| acc.or(role.visible()))
    }

    /// Refuses `document` unless the role applying to it may insert it.
    fn check_insert(&self, document: &Document, verb: &str) -> Result<(), ApiError> {
        PostImageRules::new(self, None)
            .check_new(document, verb)
            .map_err(forbidden)
    }

    /// The post-image rules of an update or replacement, when some role's
    /// write permission depends on what the write may change (`touched`,
    /// `None` for every field) or reads `%%prevRoot`.
    fn post_image_rules(&self, touched: Option<&[String]>) -> Option<PostImageRules> {
        let needed = self.roles.iter().any(|role| {
            role.written.is_some()
                || match touched {
                    None => !role.write_deps.is_empty(),
                    Some(touched) => role
                        .write_deps
                        .iter()
                        .any(|dep| touched.iter().any(|p| paths_overlap(p, dep))),
                }
        });
        needed.then(|| PostImageRules::new(self, touched))
    }

    /// The filter of an update-operator update, and its post-image rules.
    fn update_filter(
        &self,
        filter: Document,
        update: &Document,
    ) -> Result<(Document, Option<PostImageRules>), ApiError> {
        let touched = touched_paths(update).map_err(ApiError::bad_request)?;
        let post = self.post_image_rules(Some(&touched));
        let writable = self.roles.iter().fold(Cond::False, |acc, role| {
            let fields_ok = touched.iter().all(|p| role.fields.can_write_path(p));
            acc.or(role.writable(fields_ok))
        });
        if writable.is_false() {
            let field = touched.iter().find(|p| {
                self.roles
                    .iter()
                    .all(|role| !role.fields.can_write_path(p) && role.write_all.is_false())
            });
            return Err(forbidden(match field {
                Some(field) => format!("update not permitted: field '{field}' is not writable"),
                None => "update not permitted".to_owned(),
            }));
        }
        Ok((
            writable.merge_into(self.filters.query.merge_into(filter)),
            post,
        ))
    }

    /// The filter of a pipeline-style update: only roles with document-level
    /// write for this user may run one (a pipeline may change any field);
    /// the post-image is re-checked as for a replacement.
    fn pipeline_update_filter(
        &self,
        filter: Document,
    ) -> Result<(Document, Option<PostImageRules>), ApiError> {
        let allowed = self.roles.iter().all(|role| role.write_all == Cond::True);
        if !allowed {
            return Err(forbidden(
                "update not permitted: pipeline updates need document-level write permission",
            ));
        }
        let writable = self
            .roles
            .iter()
            .fold(Cond::False, |acc, role| acc.or(role.writable(true)));
        if writable.is_false() {
            return Err(forbidden("update not permitted"));
        }
        let post = self.post_image_rules(None);
        Ok((
            writable.merge_into(self.filters.query.merge_into(filter)),
            post,
        ))
    }

    /// The filter of a replacement; the replacement itself must stay
    /// writable: checked here when no role depends on the document, by the
    /// post-image rules otherwise (they see the `_id` and the stored version).
    fn replace_filter(
        &self,
        filter: Document,
        replacement: &Document,
    ) -> Result<(Document, Option<PostImageRules>), ApiError> {
        let writable = self.roles.iter().fold(Cond::False, |acc, role| {
            acc.or(role.writable(role.fields.fully_writable()))
        });
        if writable.is_false() {
            return Err(forbidden(
                "update not permitted: replacing a document writes every field",
            ));
        }
        let merged = writable.merge_into(self.filters.query.merge_into(filter));
        if let Some(post) = self.post_image_rules(None) {
            return Ok((merged, Some(post)));
        }
        let post = self
            .roles
            .iter()
            .find(|r| r.own_apply.matches(replacement))
            .is_some_and(|role| {
                role.write_filter.matches(replacement)
                    && (role.write_all.matches(replacement) || role.fields.fully_writable())
            });
        if !post {
            return Err(forbidden(
                "update not permitted: the replacement document would not be writable",
            ));
        }
        Ok((merged, None))
    }

    /// The filter of a delete: delete permission, write on every field, write filter.
    fn delete_filter(&self, filter: Document) -> Result<Document, ApiError> {
        let deletable = self.roles.iter().fold(Cond::False, |acc, role| {
            acc.or(role
                .writable(role.fields.fully_writable())
                .and(role.delete.clone()))
        });
        if deletable.is_false() {
            return Err(forbidden("delete not permitted"));
        }
        Ok(deletable.merge_into(self.filters.query.merge_into(filter)))
    }

    /// The pipeline with the rules applied: the read prefix first, joins
    /// rewritten with the joined collections' rules, refused stages refused.
    fn pipeline(
        &self,
        pipeline: Vec<Document>,
        prefix_for: &PrefixFor<'_>,
    ) -> Result<Vec<Document>, ApiError> {
        if let Some(operator) = javascript_operator(&pipeline) {
            return Err(forbidden(format!(
                "{operator} not permitted in aggregation pipelines"
            )));
        }
        // Stages reading the collection itself (`$collStats`, …) are
        // refused by `rewrite` unless the prefix is empty.
        let mut prefix = self.read_prefix()?;
        let unrestricted = prefix.is_empty();
        prefix.extend(rewrite(pipeline, prefix_for, unrestricted)?);
        Ok(prefix)
    }

    /// The stages that apply this plan's read rules inside a pipeline: a
    /// `$match` of the readable documents and `$project` stages hiding
    /// unreadable fields (none when the user reads everything).
    fn read_prefix(&self) -> Result<Vec<Document>, ApiError> {
        let visible = self.filters.query.clone().and(self.visibility());
        let access = self.uniform_read_access()?;
        let projection = access.projection().map_err(|path| {
            forbidden(format!(
                "aggregate not permitted: the read permissions of field '{path}' cannot be applied inside a pipeline"
            ))
        })?;
        let mut prefix = Vec::new();
        if visible != Cond::True {
            prefix.push(doc! { "$match": visible.to_query() });
        }
        if let Some(projection) = projection {
            prefix.push(doc! { "$project": projection });
        }
        for projection in &self.filters.projections {
            prefix.push(doc! { "$project": projection.clone() });
        }
        Ok(prefix)
    }

    /// The field access every role grants, when it does not depend on the
    /// document; otherwise the pipeline cannot be rewritten safely.
    fn uniform_read_access(&self) -> Result<FieldAccess, ApiError> {
        let mut access: Option<FieldAccess> = None;
        for role in &self.roles {
            let this = if role.read_all == Cond::True || role.write_all == Cond::True {
                FieldAccess::read_all()
            } else if role.read_all.is_false() && role.write_all.is_false()
                || role.fields.fully_readable()
            {
                role.fields.clone()
            } else {
                return Err(forbidden(
                    "aggregate not permitted: field read permissions depend on the document",
                ));
            };
            match &access {
                Some(previous) if *previous != this => {
                    return Err(forbidden(
                        "aggregate not permitted: the roles that may apply read different fields",
                    ))
                }
                _ => access = Some(this),
            }
        }
        Ok(access.unwrap_or_default())
    }
}

/// The rules a document about to be written must satisfy, checked by the
/// backend atomically with the write ([`WriteCheck`]).
///
/// - A changed document (`before` is its stored version): the first role
///   whose `apply_when` holds for the new version (`%%prevRoot` = the
///   stored one) must exist, its write filter must hold, and it must allow
///   writing what changed (document-level `write`, or field permissions for
///   the updated paths; every field for a replacement or pipeline).
/// - An inserted document (an upsert): as an insert, `%%prevRoot` absent.
#[derive(Debug)]
pub(crate) struct PostImageRules {
    roles: Vec<PostImageRole>,
    /// The paths the update writes; `None`: any field (replacements,
    /// pipelines).
    touched: Option<Vec<String>>,
}

#[derive(Debug)]
struct PostImageRole {
    apply: Matcher,
    write_filter: Matcher,
    write_all: Matcher,
    insert: Matcher,
    fields: FieldAccess,
    owners: Vec<owner::Owned>,
}

impl PostImageRules {
    fn new(plan: &Plan, touched: Option<&[String]>) -> Self {
        Self {
            roles: plan
                .roles
                .iter()
                .map(|role| {
                    let written = role.written.as_deref();
                    let pick = |stored: &Cond, get: fn(&WrittenConds) -> &Cond| {
                        written.map_or(stored, get).matcher()
                    };
                    PostImageRole {
                        apply: pick(&role.own_apply, |w| &w.apply),
                        write_filter: pick(&role.write_filter, |w| &w.write_filter),
                        write_all: pick(&role.write_all, |w| &w.write_all),
                        insert: pick(&role.insert, |w| &w.insert),
                        fields: role.fields.clone(),
                        owners: role.owners.clone(),
                    }
                })
                .collect(),
            touched: touched.map(<[String]>::to_vec),
        }
    }

    /// The reason a new document may not be inserted, if any.
    fn check_new(&self, document: &Document, verb: &str) -> Result<(), String> {
        let subject = subject(document, None);
        let Some(role) = self.roles.iter().find(|r| r.apply.matches(&subject)) else {
            return Err(format!(
                "{verb} not permitted: no role applies to the document"
            ));
        };
        if !role.write_filter.matches(&subject) {
            return Err(format!(
                "{verb} not permitted: the document does not match the role's write filter"
            ));
        }
        if !role.write_all.matches(&subject) {
            role.fields
                .check_document_write(document)
                .map_err(|path| format!("{verb} not permitted: field '{path}' is not writable"))?;
        }
        if !role.insert.matches(&subject) {
            return Err(format!("{verb} not permitted"));
        }
        let authorizes = |masked: &Document| {
            let masked = expr::subject(masked, None);
            role.apply.matches(&masked)
                && role.write_filter.matches(&masked)
                && role.insert.matches(&masked)
        };
        owner::check(&role.owners, None, document, authorizes).map_err(|path| {
            format!(
                "{verb} not permitted: field '{path}' would make the document match \
                 the rules of users other than you"
            )
        })
    }

    /// The reason the new version of a stored document may not be written.
    fn check_changed(&self, before: &Document, after: &Document) -> Result<(), String> {
        let subject = subject(after, Some(before));
        let id = before.get("_id").map(display_value).unwrap_or_default();
        let denied = |why: &str| {
            format!("update not permitted: after the update, the document with _id {id} {why}")
        };
        let Some(role) = self.roles.iter().find(|r| r.apply.matches(&subject)) else {
            return Err(denied("would match no role"));
        };
        if !role.write_filter.matches(&subject) {
            return Err(denied("would not match the role's write filter"));
        }
        let authorizes = |masked: &Document| {
            let masked = expr::subject(masked, Some(before));
            role.apply.matches(&masked) && role.write_filter.matches(&masked)
        };
        if let Err(path) = owner::check(&role.owners, Some(before), after, authorizes) {
            return Err(denied(&format!(
                "would match the rules of users other than you through field '{path}'"
            )));
        }
        if role.write_all.matches(&subject) {
            return Ok(());
        }
        let fields_ok = match &self.touched {
            Some(touched) => touched.iter().all(|p| role.fields.can_write_path(p)),
            None => role.fields.fully_writable(),
        };
        if fields_ok {
            Ok(())
        } else {
            Err(denied("would not be writable by this user"))
        }
    }
}

impl WriteCheck for PostImageRules {
    fn check(&self, before: Option<&Document>, after: &Document) -> Result<(), BackendError> {
        let outcome = match before {
            None => self.check_new(after, "upsert"),
            Some(before) => self.check_changed(before, after),
        };
        outcome.map_err(|message| BackendError::new(BackendErrorKind::PermissionDenied, message))
    }
}

/// What happens to a reply after the backend: nothing, or read stripping.
#[derive(Debug)]
pub(crate) enum Guard {
    /// The reply goes out as the backend made it.
    None,
    /// Documents are checked and stripped in-process.
    Read(Box<ReadGuard>),
}

/// Per-document role choice and field stripping of a read.
#[derive(Debug)]
pub(crate) struct ReadGuard {
    roles: Vec<RoleMatcher>,
    filter_projections: Vec<Projection>,
    client: Option<ClientProjection>,
}

/// A role's conditions parsed once for all the documents of a reply.
#[derive(Debug)]
struct RoleMatcher {
    apply: Matcher,
    read_filter: Matcher,
    /// Document-level read or write.
    reads_all: Matcher,
    fields: FieldAccess,
}

impl RoleMatcher {
    fn new(role: &RoleView) -> Self {
        Self {
            apply: role.own_apply.matcher(),
            read_filter: role.read_filter.matcher(),
            reads_all: role.read_all.clone().or(role.write_all.clone()).matcher(),
            fields: role.fields.clone(),
        }
    }
}

#[derive(Debug)]
struct ClientProjection {
    parsed: Projection,
    matcher: Option<Filter>,
}

impl Guard {
    /// Applies the guard to the backend's reply.
    pub(crate) fn finish(self, reply: Reply) -> Result<Reply, ApiError> {
        let Guard::Read(guard) = self else {
            return Ok(reply);
        };
        Ok(match reply {
            Reply::Document(Some(document)) => Reply::Document(guard.shape(&document)?),
            Reply::Documents(documents) => {
                let mut out = Vec::with_capacity(documents.len());
                for document in &documents {
                    if let Some(shaped) = guard.shape(document)? {
                        out.push(shaped);
                    }
                }
                Reply::Documents(out)
            }
            other => other,
        })
    }
}

impl ReadGuard {
    /// The document as the role applying to it may see it; `None` when no
    /// role lets the user read it.
    fn shape(&self, document: &Document) -> Result<Option<Document>, ApiError> {
        let Some(role) = self.roles.iter().find(|r| r.apply.matches(document)) else {
            return Ok(None);
        };
        if !role.read_filter.matches(document) {
            return Ok(None);
        }
        let mut shaped = if role.reads_all.matches(document) {
            document.clone()
        } else if role.fields.reads_anything() {
            role.fields.strip(document)
        } else {
            return Ok(None);
        };
        for projection in &self.filter_projections {
            shaped = projection.apply(&shaped).map_err(invalid)?;
        }
        if let Some(client) = &self.client {
            let matched = client
                .matcher
                .as_ref()
                .and_then(|filter| filter.matched_array_index(document));
            shaped = client
                .parsed
                .apply_with_match(&shaped, matched)
                .map_err(invalid)?;
        }
        Ok(Some(shaped))
    }
}

/// The document paths `arrayFilters` read: each identifier stands for the
/// elements of the array whose path precedes `$[identifier]` in the update
/// (`{"$set": {"a.$[e].b": 1}}` with `{"e.c": 1}` reads `a.c`).
fn array_filter_paths(array_filters: &[Document], update: &Document) -> Vec<String> {
    let mut arrays: HashMap<String, String> = HashMap::new();
    for path in touched_paths(update).unwrap_or_default() {
        let mut prefix: Vec<&str> = Vec::new();
        for segment in path.split('.') {
            if let Some(name) = segment
                .strip_prefix("$[")
                .and_then(|rest| rest.strip_suffix(']'))
                .filter(|name| !name.is_empty())
            {
                arrays
                    .entry(name.to_owned())
                    .or_insert_with(|| prefix.join("."));
            }
            if !segment.starts_with('$') && !segment.bytes().all(|b| b.is_ascii_digit()) {
                prefix.push(segment);
            }
        }
    }
    let mut out = Vec::new();
    for array_filter in array_filters {
        for path in filter_paths(array_filter) {
            let (name, rest) = path.split_once('.').unwrap_or((path.as_str(), ""));
            match arrays.get(name) {
                Some(array) if rest.is_empty() => out.push(array.clone()),
                Some(array) => out.push(format!("{array}.{rest}")),
                // An identifier the update does not use: the backend refuses it.
                None => {}
            }
        }
    }
    out
}

/// The filter of an upsert: `merged` (the client's filter and the rules'
/// conditions) when MongoDB can seed the inserted document from it;
/// otherwise (both constrain the same path with an equality: "matched
/// twice") the client's filter and the rules' conditions (`rules_only`)
/// wrapped in a double `$nor`. The same documents match; the inserted
/// document is seeded from the client's filter alone and is checked as an
/// insert like any other.
fn upsert_filter(
    client: Document,
    merged: Document,
    rules_only: impl FnOnce() -> Result<Document, ApiError>,
) -> Result<Document, ApiError> {
    if upsert_seed(&merged).is_ok() {
        return Ok(merged);
    }
    let rules = rules_only()?;
    if rules.is_empty() {
        return Ok(client);
    }
    let hidden = doc! { "$nor": [{ "$nor": [rules] }] };
    Ok(if client.is_empty() {
        hidden
    } else {
        doc! { "$and": [client, hidden] }
    })
}

fn constant(value: bool) -> Cond {
    if value {
        Cond::True
    } else {
        Cond::False
    }
}

/// A query, projection or update the embedded engine refuses, as the
/// backend would report it (400).
fn invalid(err: QueryError) -> ApiError {
    ApiError::from_backend(
        BackendError {
            kind: BackendErrorKind::InvalidRequest,
            message: err.message,
        },
        "authorize request",
    )
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
