//! The read guard: the role applying to each returned document, chosen per
//! document, and the fields it may not read stripped.

use bson::Document;

use super::invalid;
use super::plan::RoleView;
use crate::action::Reply;
use crate::protocol::ApiError;
use crate::query::{Filter, Projection};
use crate::rules::expr::Matcher;
use crate::rules::fields::FieldAccess;

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
    pub(super) roles: Vec<RoleMatcher>,
    pub(super) filter_projections: Vec<Projection>,
    pub(super) client: Option<ClientProjection>,
}

/// A role's conditions parsed once for all the documents of a reply.
#[derive(Debug)]
pub(super) struct RoleMatcher {
    apply: Matcher,
    read_filter: Matcher,
    /// Document-level read or write.
    reads_all: Matcher,
    fields: FieldAccess,
}

impl RoleMatcher {
    pub(super) fn new(role: &RoleView) -> Self {
        Self {
            apply: role.own_apply.matcher(),
            read_filter: role.read_filter.matcher(),
            reads_all: role.read_all.clone().or(role.write_all.clone()).matcher(),
            fields: role.fields.clone(),
        }
    }
}

#[derive(Debug)]
pub(super) struct ClientProjection {
    pub(super) parsed: Projection,
    pub(super) matcher: Option<Filter>,
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
