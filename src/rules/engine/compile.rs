//! Compiling [`Rules`] into [`CompiledRules`]: roles, filters and field
//! permissions parsed and checked once, errors naming the rule's path.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bson::Bson;

use super::CompiledRules;
use crate::query::Projection;
use crate::rules::expr::{json_to_bson, Cond, Expansions, Expr, Scope, Template};
use crate::rules::fields::FieldAccess;
use crate::rules::functions::Functions;
use crate::rules::model::{FieldPermission, Role, Rule, Rules};
use crate::rules::owner;

#[derive(Debug)]
pub(super) struct CompiledRule {
    pub(super) roles: Vec<CompiledRole>,
    pub(super) filters: Vec<CompiledFilter>,
}

#[derive(Debug)]
pub(super) struct CompiledRole {
    pub(super) apply_when: Expr,
    pub(super) read_filter: Expr,
    pub(super) write_filter: Expr,
    pub(super) read: Expr,
    pub(super) write: Expr,
    pub(super) insert: Expr,
    pub(super) delete: Expr,
    pub(super) fields: FieldSpec,
    /// Document paths that decide whether the role may write a document.
    pub(super) write_deps: Arc<BTreeSet<String>>,
    /// Whether a write-side expression reads `%%prevRoot`.
    pub(super) uses_prev_root: bool,
    /// Fields compared with per-user values (see `owner.rs`).
    pub(super) owners: Vec<owner::Binding>,
}

#[derive(Debug)]
pub(super) struct FieldSpec {
    read: Expr,
    write: Expr,
    fields: BTreeMap<String, FieldSpec>,
}

#[derive(Debug)]
pub(super) struct CompiledFilter {
    pub(super) apply_when: Expr,
    pub(super) query: Option<Template>,
    pub(super) projection: Option<Template>,
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
    pub(super) fn eval(&self, scope: &Scope<'_>) -> FieldAccess {
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
