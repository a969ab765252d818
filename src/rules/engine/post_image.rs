//! Post-image rules: the rules a document about to be written must satisfy,
//! `%%prevRoot` being its stored version.

use bson::Document;

use super::plan::{Plan, WrittenConds};
use crate::backend::{BackendError, BackendErrorKind, WriteCheck};
use crate::query::display_value;
use crate::rules::expr::{self, subject, Cond, Matcher};
use crate::rules::fields::FieldAccess;
use crate::rules::owner;

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
    pub(super) fn new(plan: &Plan, touched: Option<&[String]>) -> Self {
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
    pub(super) fn check_new(&self, document: &Document, verb: &str) -> Result<(), String> {
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
