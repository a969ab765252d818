//! One request's plan: the roles that may apply and the filters whose
//! `apply_when` holds, expanded for the principal and the request, and how
//! they merge into a read, a write or a pipeline.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bson::{doc, Document};
use http::StatusCode;

use super::compile::CompiledRule;
use super::guard::{ClientProjection, Guard, ReadGuard, RoleMatcher};
use super::post_image::PostImageRules;
use super::{invalid, CompiledRules};
use crate::action::Command;
use crate::backend::{Namespace, UpdateModifications};
use crate::protocol::{ApiError, ErrorCode};
use crate::query::{Filter, Projection};
use crate::rules::expr::{Cond, Expr, PrevRoot, Scope};
use crate::rules::fields::FieldAccess;
use crate::rules::owner;
use crate::rules::pipeline::{rewrite, PrefixFor};
use crate::rules::policy::{
    filter_paths, forbidden, javascript_operator, paths_overlap, touched_paths,
};

impl CompiledRules {
    /// The rule of `ns`, expanded for this request.
    pub(super) fn plan(&self, ns: &Namespace, scope: &Scope<'_>) -> Result<Plan, ApiError> {
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
pub(super) struct RoleView {
    /// This role applies and no earlier one does.
    apply: Cond,
    /// This role's own `apply_when`.
    pub(super) own_apply: Cond,
    pub(super) read_filter: Cond,
    pub(super) write_filter: Cond,
    pub(super) read_all: Cond,
    pub(super) write_all: Cond,
    pub(super) insert: Cond,
    delete: Cond,
    pub(super) fields: FieldAccess,
    write_deps: Arc<BTreeSet<String>>,
    /// The write-side conditions for a document about to be written, when
    /// they differ from the ones above (the role reads `%%prevRoot`).
    pub(super) written: Option<Box<WrittenConds>>,
    /// This user's values of the role's owner fields.
    pub(super) owners: Vec<owner::Owned>,
}

/// A role's write-side conditions under [`PrevRoot::Written`], tested on a
/// [`subject`](crate::rules::expr::subject).
#[derive(Debug, Clone)]
pub(super) struct WrittenConds {
    pub(super) apply: Cond,
    pub(super) write_filter: Cond,
    pub(super) write_all: Cond,
    pub(super) insert: Cond,
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
pub(super) struct Plan {
    pub(super) roles: Vec<RoleView>,
    filters: ActiveFilters,
}

impl Plan {
    /// The filter of a read, and the guard that strips its results.
    pub(super) fn read(
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
    pub(super) fn check_query_fields(&self, command: &Command) -> Result<(), ApiError> {
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
    pub(super) fn hides_fields(&self) -> bool {
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
    pub(super) fn check_insert(&self, document: &Document, verb: &str) -> Result<(), ApiError> {
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
    pub(super) fn update_filter(
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
    pub(super) fn pipeline_update_filter(
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
    pub(super) fn replace_filter(
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
    pub(super) fn delete_filter(&self, filter: Document) -> Result<Document, ApiError> {
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
    pub(super) fn pipeline(
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
    pub(super) fn read_prefix(&self) -> Result<Vec<Document>, ApiError> {
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

/// The document paths `arrayFilters` read: each identifier stands for the
/// elements of the array whose path precedes `$[identifier]` in the update
/// (`{"$set": {"a.$[e].b": 1}}` with `{"e.c": 1}` reads `a.c`).
pub(super) fn array_filter_paths(array_filters: &[Document], update: &Document) -> Vec<String> {
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

fn constant(value: bool) -> Cond {
    if value {
        Cond::True
    } else {
        Cond::False
    }
}
