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
//! | `functions` | `%function`: closures registered by name ([`FunctionCall`]) |
//! | `fields` | field-level permissions: stripping, write checks, projections |
//! | `policy` | denied operators and stages, paths an update writes |
//! | `pipeline` | aggregation pipelines: refused stages, joins with the joined collection's rules |
//! | `context` | the `%%user` and `%%request` documents |
//! | `engine` | compiled rules, role selection, request rewriting |
//! | `schema_check` | schema validation ([`Schema`], from `query::schema`) of inserts, replacements and update post-images |

mod access;
#[cfg(feature = "memory")]
mod context;
#[cfg(feature = "memory")]
mod engine;
#[cfg(feature = "memory")]
mod expr;
#[cfg(feature = "memory")]
mod fields;
mod functions;
mod model;
#[cfg(feature = "memory")]
mod pipeline;
#[cfg(feature = "memory")]
mod policy;
#[cfg(feature = "memory")]
mod schema_check;

#[cfg(feature = "memory")]
pub use crate::query::schema::{Schema, SchemaError};
pub(crate) use access::check_access;
pub use access::AccessLevel;
pub use functions::{FunctionCall, Functions, RuleFunction};
pub use model::{CollectionRule, DocumentFilters, FieldPermission, Role, Rule, RuleFilter, Rules};

#[cfg(feature = "memory")]
pub(crate) use enforce::{compile, Enforcer};

#[cfg(feature = "memory")]
mod enforce {
    use std::sync::Arc;

    use http::request::Parts;

    use super::engine::CompiledRules;
    pub(crate) use super::engine::Guard;
    use super::expr::Scope;
    use super::schema_check::Schemas;
    use super::{Functions, Rules};
    use crate::auth::Principal;
    use crate::backend::Backend;
    use crate::protocol::{ActionRequest, ApiError};

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
        /// `system` principals); the guard post-processes the reply.
        pub(crate) fn authorize(
            &self,
            principal: &Principal,
            parts: &Parts,
            action: &str,
            request: &mut ActionRequest,
        ) -> Result<Guard, ApiError> {
            let Some(rules) = &self.rules else {
                return Ok(Guard::None);
            };
            if principal.is_system() {
                return Ok(Guard::None);
            }
            let user = super::context::user_document(principal);
            let request_doc = super::context::request_document(parts, action, &request.data_source);
            let scope = Scope {
                user: &user,
                request: &request_doc,
                functions: rules.functions(),
            };
            rules.authorize(&request.namespace, &scope, &mut request.command)
        }

        /// Validates what `request` would write against its collection's
        /// JSON schema, for every principal (`system` included). Runs after
        /// [`Enforcer::authorize`], on the rewritten request; reads from
        /// `backend` only for updates and replacements of a collection that
        /// has a schema. See [`Schemas::check`] for the guarantees.
        pub(crate) async fn check_schema(
            &self,
            backend: &dyn Backend,
            request: &ActionRequest,
        ) -> Result<(), ApiError> {
            self.schemas
                .check(backend, &request.namespace, &request.command)
                .await
        }
    }
}

/// Without the embedded engine rules cannot be evaluated: data sources keep
/// their access level only.
#[cfg(not(feature = "memory"))]
pub(crate) use disabled::Enforcer;

#[cfg(not(feature = "memory"))]
mod disabled {
    use http::request::Parts;

    use crate::auth::Principal;
    use crate::protocol::{ActionRequest, ApiError, Reply};

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
            _action: &str,
            _request: &mut ActionRequest,
        ) -> Result<Guard, ApiError> {
            Ok(Guard)
        }

        pub(crate) async fn check_schema(
            &self,
            _backend: &dyn crate::backend::Backend,
            _request: &ActionRequest,
        ) -> Result<(), ApiError> {
            Ok(())
        }
    }

    impl Guard {
        pub(crate) fn finish(self, reply: Reply) -> Result<Reply, ApiError> {
            Ok(reply)
        }
    }
}

#[cfg(all(test, feature = "memory"))]
mod pipeline_tests;
#[cfg(all(test, feature = "memory"))]
mod schema_tests;
