//! Authorization: what an authenticated principal may do.
//!
//! Two layers, both per data source:
//!
//! - the Atlas UI's access level ([`AccessLevel`]), enforced on every action;
//! - App Services-style [`Rules`] (feature `memory`: the embedded query
//!   engine evaluates them): roles with `apply_when`, document filters,
//!   document- and field-level permissions, and filters, enforced for every
//!   non-system principal on all ten actions. `system` principals bypass them.
//!
//! | module | what |
//! |---|---|
//! | `model` | the configuration ([`Rules`], [`Rule`], [`Role`], …), serde in App Services' JSON shape |
//! | `expr` | rule expressions: parsing, `%%user`/`%%request` expansion, conditions |
//! | `expression_reads` | the fields a filter's `$expr` reads (`$getField` names included) |
//! | `functions` | `%function`: closures registered by name ([`FunctionCall`]) |
//! | `fields` | field-level permissions: stripping, write checks, projections |
//! | `stages` | the aggregation stages the rules know and what each does; others are refused |
//! | `policy` | denied operators, paths an update writes |
//! | `pipeline` | aggregation pipelines: refused stages, joins with the joined collection's rules |
//! | `context` | the `%%user` and `%%request` documents |
//! | `owner` | owner fields (`{"owner_id": "%%user.id"}`): writes may not hand documents to other users |
//! | `engine` | compiled rules, role selection, request rewriting |
//! | `schema_check` | schema validation ([`Schema`], from `query::schema`) of inserts, replacements and update post-images |
//!
//! Updates and replacements that need checking per stored document (JSON
//! schema, rules whose roles depend on what the write changes, `%%prevRoot`)
//! run through [`Backend::write_checked`](crate::backend::Backend::write_checked),
//! which makes the check atomic with the write.

mod access;
#[cfg(feature = "memory")]
mod context;
#[cfg(feature = "memory")]
mod engine;
#[cfg(feature = "memory")]
mod expr;
#[cfg(feature = "memory")]
mod expression_reads;
#[cfg(feature = "memory")]
mod fields;
mod functions;
mod model;
#[cfg(feature = "memory")]
mod owner;
#[cfg(feature = "memory")]
mod pipeline;
#[cfg(feature = "memory")]
mod policy;
#[cfg(feature = "memory")]
mod schema_check;
mod stages;

#[cfg(feature = "memory")]
pub use crate::query::schema::{Schema, SchemaError};
pub(crate) use access::check_access;
pub use access::AccessLevel;
pub use functions::{FunctionCall, Functions, RuleFunction};
pub use model::{CollectionRule, DocumentFilters, FieldPermission, Role, Rule, RuleFilter, Rules};

#[cfg(feature = "memory")]
pub(crate) use enforce::{compile, Enforcer};

/// What authorization hands to the rest of the pipeline: the guard that
/// cleans the reply, and the check the backend runs on every document an
/// update or replacement stores (schema, post-image rules), if any.
pub(crate) struct Authorization {
    /// Post-processes the backend's reply.
    pub(crate) guard: Guard,
    /// Goes to [`Backend::write_checked`](crate::backend::Backend::write_checked).
    pub(crate) check: Option<Box<dyn crate::backend::WriteCheck>>,
}

#[cfg(feature = "memory")]
pub(crate) use enforce::Guard;

#[cfg(feature = "memory")]
mod enforce {
    use std::sync::Arc;

    use bson::Document;
    use http::request::Parts;

    pub(crate) use super::engine::Guard;
    use super::engine::{CompiledRules, PostImageRules};
    use super::expr::Scope;
    use super::schema_check::{SchemaCheck, Schemas};
    use super::{Authorization, Functions, Rules};
    use crate::action::ActionRequest;
    use crate::auth::Principal;
    use crate::backend::{BackendError, WriteCheck};
    use crate::protocol::ApiError;

    /// The rules of one data source, if it has any, and its collections'
    /// JSON schemas.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Enforcer {
        rules: Option<Arc<CompiledRules>>,
        schemas: Arc<Schemas>,
    }

    /// Validates `rules` for the service.
    pub(crate) fn compile(rules: &Rules, functions: Functions) -> Result<Enforcer, String> {
        let compiled =
            CompiledRules::compile(rules, functions).map_err(|e| format!("rules.{e}"))?;
        let schemas = Schemas::compile(rules).map_err(|e| format!("rules.{e}"))?;
        Ok(Enforcer {
            rules: Some(Arc::new(compiled)),
            schemas: Arc::new(schemas),
        })
    }

    impl Enforcer {
        /// Applies the rules to `request` (nothing without rules or for
        /// `system` principals) and validates inserts against the
        /// collection's JSON schema (for every principal). Updates and
        /// replacements get their checks in the returned [`Authorization`].
        pub(crate) fn authorize(
            &self,
            principal: &Principal,
            parts: &Parts,
            request: &mut ActionRequest,
        ) -> Result<Authorization, ApiError> {
            let (guard, post_image, hides_fields) = match &self.rules {
                Some(rules) if !principal.is_system() => {
                    let user = super::context::user_document(principal);
                    // Built only for rules that read it (it copies the headers).
                    let request_doc = if rules.needs_request() {
                        super::context::request_document(
                            parts,
                            request.action(),
                            &request.data_source,
                        )
                    } else {
                        Document::new()
                    };
                    let scope = Scope {
                        user: &user,
                        request: &request_doc,
                        functions: rules.functions(),
                    };
                    let decision =
                        rules.authorize(&request.namespace, &scope, &mut request.command)?;
                    (decision.guard, decision.post_image, decision.hides_fields)
                }
                _ => (Guard::None, None, false),
            };
            let ns = &request.namespace;
            self.schemas.check_inserts(ns, &request.command)?;
            self.schemas.check_aggregate_output(ns, &request.command)?;
            let checks = WriteChecks {
                rules: post_image,
                schema: self.schemas.write_check(ns, &request.command, hides_fields),
            };
            let check: Option<Box<dyn WriteCheck>> =
                if checks.rules.is_none() && checks.schema.is_none() {
                    None
                } else {
                    Some(Box::new(checks))
                };
            Ok(Authorization { guard, check })
        }
    }

    /// Post-image rules first (403), then the schema (400).
    struct WriteChecks {
        rules: Option<PostImageRules>,
        schema: Option<SchemaCheck>,
    }

    impl WriteCheck for WriteChecks {
        fn check(&self, before: Option<&Document>, after: &Document) -> Result<(), BackendError> {
            if let Some(rules) = &self.rules {
                rules.check(before, after)?;
            }
            if let Some(schema) = &self.schema {
                schema.check(before, after)?;
            }
            Ok(())
        }
    }
}

/// Without the embedded engine rules cannot be evaluated: data sources keep
/// their access level only.
#[cfg(not(feature = "memory"))]
pub(crate) use disabled::{Enforcer, Guard};

#[cfg(not(feature = "memory"))]
mod disabled {
    use http::request::Parts;

    use super::Authorization;
    use crate::action::{ActionRequest, Reply};
    use crate::auth::Principal;
    use crate::protocol::ApiError;

    /// No rules.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Enforcer;

    /// Nothing to do after the backend.
    pub(crate) struct Guard;

    impl Enforcer {
        pub(crate) fn authorize(
            &self,
            _principal: &Principal,
            _parts: &Parts,
            _request: &mut ActionRequest,
        ) -> Result<Authorization, ApiError> {
            Ok(Authorization {
                guard: Guard,
                check: None,
            })
        }
    }

    impl Guard {
        pub(crate) fn finish(self, reply: Reply) -> Result<Reply, ApiError> {
            Ok(reply)
        }
    }
}
