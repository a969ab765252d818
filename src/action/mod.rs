//! The ten Data API actions as types: what a request names ([`Action`]),
//! where it runs ([`Namespace`]), its decoded arguments ([`Command`],
//! [`ActionRequest`], the query structs) and its result ([`Reply`], the
//! outcome structs), plus the dispatch that runs a request on a
//! [`Backend`](crate::Backend).
//!
//! The wire format lives in [`protocol`](crate::protocol): it decodes bytes
//! into an [`ActionRequest`] and encodes a [`Reply`] into bytes.

use std::fmt;
use std::str::FromStr;

use bson::Document;

mod dispatch;
mod query;
mod reply;

pub(crate) use dispatch::execute;
pub use query::{
    FindOneQuery, FindQuery, ReplaceQuery, UpdateModifications, UpdateOutcome, UpdateQuery,
};
pub use reply::Reply;

/// The ten Data API actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Action {
    FindOne,
    Find,
    InsertOne,
    InsertMany,
    UpdateOne,
    UpdateMany,
    ReplaceOne,
    DeleteOne,
    DeleteMany,
    Aggregate,
}

impl Action {
    /// Every action, in the order the documentation lists them.
    pub const ALL: [Action; 10] = [
        Action::FindOne,
        Action::Find,
        Action::InsertOne,
        Action::InsertMany,
        Action::UpdateOne,
        Action::UpdateMany,
        Action::ReplaceOne,
        Action::DeleteOne,
        Action::DeleteMany,
        Action::Aggregate,
    ];

    /// The action's name in URLs (case-sensitive camelCase).
    pub fn name(self) -> &'static str {
        match self {
            Action::FindOne => "findOne",
            Action::Find => "find",
            Action::InsertOne => "insertOne",
            Action::InsertMany => "insertMany",
            Action::UpdateOne => "updateOne",
            Action::UpdateMany => "updateMany",
            Action::ReplaceOne => "replaceOne",
            Action::DeleteOne => "deleteOne",
            Action::DeleteMany => "deleteMany",
            Action::Aggregate => "aggregate",
        }
    }

    /// Whether the action always writes (`aggregate` writes only with `$out`/`$merge`).
    pub fn is_write(self) -> bool {
        !matches!(self, Action::FindOne | Action::Find | Action::Aggregate)
    }

    /// How error messages name what failed, e.g. "insert document".
    pub(crate) fn verb(self) -> &'static str {
        match self {
            Action::FindOne => "find document",
            Action::Find => "find documents",
            Action::InsertOne => "insert document",
            Action::InsertMany => "insert documents",
            Action::UpdateOne => "update document",
            Action::UpdateMany => "update documents",
            Action::ReplaceOne => "replace document",
            Action::DeleteOne => "delete document",
            Action::DeleteMany => "delete documents",
            Action::Aggregate => "aggregate",
        }
    }
}

impl FromStr for Action {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Action::ALL
            .into_iter()
            .find(|action| action.name() == s)
            .ok_or(())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A database and collection inside one data source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    /// The database name, as sent in the request's `database` field.
    pub database: String,
    /// The collection name, as sent in the request's `collection` field.
    pub collection: String,
}

impl Namespace {
    /// A namespace from its two names.
    pub fn new(database: impl Into<String>, collection: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            collection: collection.into(),
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.collection)
    }
}

/// A decoded Data API request: where it runs and what it does.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRequest {
    /// The `dataSource` field.
    pub data_source: String,
    /// The `database` and `collection` fields.
    pub namespace: Namespace,
    /// The action and its arguments.
    pub command: Command,
}

/// One action with its typed arguments.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Command {
    FindOne(FindOneQuery),
    Find(FindQuery),
    InsertOne(Document),
    InsertMany(Vec<Document>),
    UpdateOne(UpdateQuery),
    UpdateMany(UpdateQuery),
    ReplaceOne(ReplaceQuery),
    DeleteOne(Document),
    DeleteMany(Document),
    Aggregate(Vec<Document>),
}

impl Command {
    /// The aggregation pipeline, for `aggregate`.
    pub fn pipeline(&self) -> Option<&[Document]> {
        match self {
            Command::Aggregate(pipeline) => Some(pipeline),
            _ => None,
        }
    }

    /// The action this command runs.
    pub fn action(&self) -> Action {
        match self {
            Command::FindOne(_) => Action::FindOne,
            Command::Find(_) => Action::Find,
            Command::InsertOne(_) => Action::InsertOne,
            Command::InsertMany(_) => Action::InsertMany,
            Command::UpdateOne(_) => Action::UpdateOne,
            Command::UpdateMany(_) => Action::UpdateMany,
            Command::ReplaceOne(_) => Action::ReplaceOne,
            Command::DeleteOne(_) => Action::DeleteOne,
            Command::DeleteMany(_) => Action::DeleteMany,
            Command::Aggregate(_) => Action::Aggregate,
        }
    }
}

impl ActionRequest {
    /// The action the request runs (the one its URL named).
    pub fn action(&self) -> Action {
        self.command.action()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_case_sensitive() {
        assert_eq!("findOne".parse(), Ok(Action::FindOne));
        assert_eq!("findone".parse::<Action>(), Err(()));
        for action in Action::ALL {
            assert_eq!(action.name().parse(), Ok(action));
        }
    }
}
