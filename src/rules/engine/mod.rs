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
//!
//! | file | what |
//! |---|---|
//! | `compile` | [`CompiledRules::compile`]: roles, filters and field permissions from the configuration |
//! | `plan` | one request's roles and filters, merged into its filter, projection or pipeline |
//! | `rewrite` | the request rewritten by its plan, upserts included |
//! | `post_image` | [`PostImageRules`]: documents about to be written, `%%prevRoot` |
//! | `guard` | [`Guard`]: read results checked and stripped per document |

mod compile;
mod guard;
mod plan;
mod post_image;
mod rewrite;

use std::collections::HashMap;

use bson::{doc, Document};

use crate::action::Command;
use crate::backend::{BackendError, BackendErrorKind, Namespace, UpdateModifications};
use crate::protocol::ApiError;
use crate::query::QueryError;
use crate::rules::expr::Scope;
use crate::rules::functions::Functions;
use crate::rules::policy::{find_in_document, forbidden};
use compile::CompiledRule;
pub(crate) use guard::Guard;
pub(crate) use post_image::PostImageRules;

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

impl CompiledRules {
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
mod tests;
