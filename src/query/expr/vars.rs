//! The variables an expression sees: `$$ROOT`, `$$CURRENT`, the system
//! variables and user variables (`$let`, `$map`'s `as`, `$lookup`'s `let`).

use bson::{Bson, Document};

use crate::query::path::{expr_get, expr_get_doc};
use crate::query::QueryError;

/// Variables visible to an expression: `$$ROOT`, `$$CURRENT` and user variables.
#[derive(Debug, Clone)]
pub(crate) struct Vars<'a> {
    root: &'a Document,
    current: Option<Bson>,
    locals: Vec<(String, Bson)>,
}

impl<'a> Vars<'a> {
    /// Variables for evaluating against `root` (also `$$CURRENT`).
    pub(crate) fn new(root: &'a Document) -> Vars<'a> {
        Vars {
            root,
            current: None,
            locals: Vec::new(),
        }
    }

    /// Variables for `root` with user variables already bound.
    pub(crate) fn with_bindings(root: &'a Document, bindings: &[(String, Bson)]) -> Vars<'a> {
        let mut v = Vars::new(root);
        for (name, value) in bindings {
            v.bind(name, value.clone());
        }
        v
    }

    /// Sets a user variable in place: the innermost binding of `name` takes
    /// `value`, or a new binding is made. For a private copy that rebinds
    /// the same variable for each element (`$map`, `$filter`, `$reduce`)
    /// without copying all the variables each time; what the expression
    /// sees is as with a new binding of `name` in a fresh copy.
    pub(crate) fn rebind(&mut self, name: &str, value: Bson) {
        if name == "CURRENT" {
            self.current = Some(value);
            return;
        }
        match self.locals.iter_mut().rev().find(|(n, _)| n == name) {
            Some((_, slot)) => *slot = value,
            None => self.locals.push((name.to_string(), value)),
        }
    }

    /// Binds a user variable in place (`$lookup`'s `let`).
    pub(crate) fn bind(&mut self, name: &str, value: Bson) {
        if name == "CURRENT" {
            self.current = Some(value);
        } else {
            self.locals.push((name.to_string(), value));
        }
    }

    /// The value of `$$CURRENT` followed by `path`, without copying the document.
    pub(super) fn current_path(&self, path: &[String]) -> Option<Bson> {
        match &self.current {
            Some(c) => expr_get(c, path),
            None => expr_get_doc(self.root, path),
        }
    }

    /// The value of `$$name` followed by `path`.
    pub(super) fn get(&self, name: &str, path: &[String]) -> Result<Option<Bson>, QueryError> {
        let value = match name {
            "ROOT" => return Ok(expr_get_doc(self.root, path)),
            "CURRENT" => return Ok(self.current_path(path)),
            "REMOVE" => return Ok(None),
            "NOW" => Bson::DateTime(bson::DateTime::now()),
            "DESCEND" | "PRUNE" | "KEEP" => Bson::String(format!("$${name}")),
            _ => match self.locals.iter().rev().find(|(n, _)| n == name) {
                Some((_, v)) => v.clone(),
                None => {
                    return Err(QueryError::new(
                        17276,
                        format!("Use of undefined variable: {name}"),
                    ))
                }
            },
        };
        Ok(expr_get(&value, path))
    }
}
