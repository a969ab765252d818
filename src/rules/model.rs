//! The rules configuration, in App Services' JSON shape.
//!
//! The same structs load from a builder call (typed Rust), a TOML table of
//! the standalone binary's configuration, or JSON files exported from App
//! Services (`default_rule.json`, `<db>/<coll>/rules.json`). Expressions are
//! kept as JSON values here and compiled, with their path named in every
//! error, when the service is built.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::rules::AccessLevel;

/// The rules of one data source: a default rule and per-collection rules.
///
/// Collection roles, when a collection has any, are the only ones evaluated;
/// the default rule's roles apply only to collections without a rule of
/// their own. A namespace with neither is refused with 403
/// `NoMatchingRuleFound`.
///
/// ```
/// use tower_data_api::rules::{Role, Rule, Rules};
/// use serde_json::json;
///
/// let rules = Rules::new()
///     .default_rule(Rule::new().role(Role::read_only("reader")))
///     .collection("shop", "orders", Rule::owner("owner_id"));
/// assert_eq!(rules.collections.len(), 1);
///
/// // The same from App Services' JSON layout:
/// let parsed = Rules::from_json(r#"{
///     "default_rule": {"roles": [{"name": "reader", "read": true}]},
///     "collections": [{"database": "shop", "collection": "orders",
///                      "roles": [{"name": "owner", "apply_when": {},
///                                 "document_filters": {"read": {"owner_id": "%%user.id"},
///                                                      "write": {"owner_id": "%%user.id"}},
///                                 "read": true, "write": true}]}]
/// }"#).unwrap();
/// assert_eq!(parsed.collections[0].rule.roles[0].name, "owner");
/// # let _ = json!({});
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Roles and filters for collections without a rule of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_rule: Option<Rule>,
    /// Rules of single collections (`rules.json` files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<CollectionRule>,
    /// Query and pipeline operators refused for non-system users, anywhere in
    /// a filter, update or pipeline. `None` means the default list
    /// ([`Rules::DEFAULT_DENIED_OPERATORS`]); JavaScript code values are
    /// always refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_operators: Option<Vec<String>>,
    /// Let non-system users filter and sort on fields the rules hide from
    /// them, as App Services did. Default `false`: such a filter or sort is
    /// refused (403), since which documents match, and in what order, tells
    /// hidden values apart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_hidden_field_queries: bool,
}

impl Rules {
    /// Operators refused for non-system users unless configured otherwise:
    /// the ones that run server-side JavaScript.
    pub const DEFAULT_DENIED_OPERATORS: &'static [&'static str] =
        &["$where", "$function", "$accumulator"];

    /// No rules yet (every namespace is refused until a rule is added).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the default rule.
    #[must_use]
    pub fn default_rule(mut self, rule: Rule) -> Self {
        self.default_rule = Some(rule);
        self
    }

    /// Adds the rule of collection `database.collection`.
    #[must_use]
    pub fn collection(
        mut self,
        database: impl Into<String>,
        collection: impl Into<String>,
        rule: Rule,
    ) -> Self {
        self.collections.push(CollectionRule {
            database: database.into(),
            collection: collection.into(),
            rule,
            schema: None,
        });
        self
    }

    /// Sets the JSON schema of collection `database.collection` (App
    /// Services' `schema.json`), adding an empty rule for it if it has none.
    ///
    /// Every insert, replacement and update post-image is validated against
    /// it, for every principal, `system` included (the keywords: `Schema`,
    /// feature `memory`). An entry added here has no roles or filters of
    /// its own: the default rule's roles apply to the collection.
    #[must_use]
    pub fn schema(
        mut self,
        database: impl Into<String>,
        collection: impl Into<String>,
        schema: Value,
    ) -> Self {
        let (database, collection) = (database.into(), collection.into());
        match self
            .collections
            .iter_mut()
            .find(|c| c.database == database && c.collection == collection)
        {
            Some(rule) => rule.schema = Some(schema),
            None => self.collections.push(CollectionRule {
                database,
                collection,
                rule: Rule::new(),
                schema: Some(schema),
            }),
        }
        self
    }

    /// Sets [`allow_hidden_field_queries`](Self::allow_hidden_field_queries).
    #[must_use]
    pub fn allow_hidden_field_queries(mut self, allow: bool) -> Self {
        self.allow_hidden_field_queries = allow;
        self
    }

    /// Replaces the list of operators refused for non-system users.
    #[must_use]
    pub fn denied_operators(
        mut self,
        operators: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.denied_operators = Some(operators.into_iter().map(Into::into).collect());
        self
    }

    /// The rules equivalent of an Atlas UI access level: one default role
    /// that reads and writes everything (`ReadWrite`), reads everything
    /// (`ReadOnly`), or no rule at all (`NoAccess`).
    pub fn preset(level: AccessLevel) -> Self {
        match level {
            AccessLevel::ReadWrite => {
                Self::new().default_rule(Rule::new().role(Role::read_write("readWrite")))
            }
            AccessLevel::ReadOnly => {
                Self::new().default_rule(Rule::new().role(Role::read_only("readOnly")))
            }
            AccessLevel::NoAccess => Self::new(),
        }
    }

    /// Parses rules from JSON text in this struct's shape.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads rules from a JSON file in this struct's shape.
    pub fn from_json_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Self::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Reads an App Services export of one data source: the directory
    /// holding `default_rule.json` (optional) and `<db>/<coll>/rules.json`,
    /// with the collection's JSON schema from `<db>/<coll>/schema.json` when
    /// that file exists (a `schema.json` without `rules.json` adds a
    /// schema-only entry: the default rule's roles apply).
    pub fn from_app_services_dir(dir: &Path) -> Result<Self, String> {
        let mut rules = Rules::new();
        let read = |path: &Path| -> Result<String, String> {
            std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read: {e}", path.display()))
        };
        let default = dir.join("default_rule.json");
        if default.exists() {
            let text = read(&default)?;
            rules.default_rule = Some(
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", default.display()))?,
            );
        }
        let mut files = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for db in entries.flatten().filter(|e| e.path().is_dir()) {
            let colls = std::fs::read_dir(db.path())
                .map_err(|e| format!("{}: {e}", db.path().display()))?;
            for coll in colls.flatten() {
                let dir = coll.path();
                if dir.join("rules.json").is_file() || dir.join("schema.json").is_file() {
                    let names = (db.file_name(), coll.file_name());
                    files.push((dir, names));
                }
            }
        }
        files.sort();
        for (dir, (db, coll)) in files {
            let file = dir.join("rules.json");
            let mut rule = if file.is_file() {
                let text = read(&file)?;
                serde_json::from_str::<CollectionRule>(&text)
                    .map_err(|e| format!("{}: {e}", file.display()))?
            } else {
                // A schema without rules: the default rule applies.
                CollectionRule {
                    database: db.to_string_lossy().into_owned(),
                    collection: coll.to_string_lossy().into_owned(),
                    rule: Rule::new(),
                    schema: None,
                }
            };
            let schema_file = dir.join("schema.json");
            if schema_file.is_file() {
                let text = read(&schema_file)?;
                rule.schema = Some(
                    serde_json::from_str(&text)
                        .map_err(|e| format!("{}: {e}", schema_file.display()))?,
                );
            }
            rules.collections.push(rule);
        }
        Ok(rules)
    }
}

/// The rule of one collection (App Services' `rules.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionRule {
    /// The database name.
    pub database: String,
    /// The collection name.
    pub collection: String,
    /// Its roles and filters.
    #[serde(flatten)]
    pub rule: Rule,
    /// The collection's App Services JSON schema (`schema.json`), validated
    /// on every insert, replacement and update post-image for every
    /// principal, `system` included; parsed when the service is built (the
    /// supported keywords are listed on `Schema`, feature `memory`). An
    /// entry with a schema but no roles and no filters is schema-only: the
    /// default rule's roles apply to the collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

/// Roles and filters (App Services' `default_rule.json` shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Roles, tried in order: the first whose `apply_when` holds wins.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Filters merged into every operation whose `apply_when` holds.
    #[serde(default)]
    pub filters: Vec<RuleFilter>,
}

impl Rule {
    /// A rule without roles or filters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a role.
    #[must_use]
    pub fn role(mut self, role: Role) -> Self {
        self.roles.push(role);
        self
    }

    /// Appends a filter.
    #[must_use]
    pub fn filter(mut self, filter: RuleFilter) -> Self {
        self.filters.push(filter);
        self
    }

    /// The "owner" preset: every user reads and writes the documents whose
    /// `field` equals their user id (`{"<field>": "%%user.id"}`), and may
    /// insert documents only with their own id there.
    pub fn owner(field: &str) -> Self {
        let mine = json!({ field: "%%user.id" });
        Self::new().role(Role::read_write("owner").document_filters(Some(mine.clone()), Some(mine)))
    }
}

/// One role: when it applies and what it allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// The role's name (at most 100 characters).
    pub name: String,
    /// When the role applies; absent or `{}` means always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_when: Option<Value>,
    /// Which documents the role may read and write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_filters: Option<DocumentFilters>,
    /// Document-level read: `true` (or an expression that holds) reads every field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Value>,
    /// Document-level write: writes (and reads) every field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<Value>,
    /// Whether the role may insert (default `true`, after field writes pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insert: Option<Value>,
    /// Whether the role may delete (default `true`, after field writes pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<Value>,
    /// Atlas Search permission; accepted for compatibility, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<Value>,
    /// Field-level permissions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldPermission>,
    /// Permissions of fields `fields` does not list (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_fields: Option<FieldPermission>,
}

impl Role {
    /// A role that applies always and allows nothing yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            apply_when: None,
            document_filters: None,
            read: None,
            write: None,
            insert: None,
            delete: None,
            search: None,
            fields: BTreeMap::new(),
            additional_fields: None,
        }
    }

    /// Reads every document and field; cannot insert, update or delete.
    pub fn read_only(name: impl Into<String>) -> Self {
        let mut role = Self::new(name);
        role.read = Some(Value::Bool(true));
        role.write = Some(Value::Bool(false));
        role.insert = Some(Value::Bool(false));
        role.delete = Some(Value::Bool(false));
        role
    }

    /// Reads and writes every document and field.
    pub fn read_write(name: impl Into<String>) -> Self {
        let mut role = Self::new(name);
        role.read = Some(Value::Bool(true));
        role.write = Some(Value::Bool(true));
        role
    }

    /// Sets `apply_when`.
    #[must_use]
    pub fn apply_when(mut self, expression: Value) -> Self {
        self.apply_when = Some(expression);
        self
    }

    /// Sets the document filters.
    #[must_use]
    pub fn document_filters(mut self, read: Option<Value>, write: Option<Value>) -> Self {
        self.document_filters = Some(DocumentFilters { read, write });
        self
    }

    /// Sets document-level read.
    #[must_use]
    pub fn read(mut self, expression: Value) -> Self {
        self.read = Some(expression);
        self
    }

    /// Sets document-level write.
    #[must_use]
    pub fn write(mut self, expression: Value) -> Self {
        self.write = Some(expression);
        self
    }

    /// Sets the insert permission.
    #[must_use]
    pub fn insert(mut self, expression: Value) -> Self {
        self.insert = Some(expression);
        self
    }

    /// Sets the delete permission.
    #[must_use]
    pub fn delete(mut self, expression: Value) -> Self {
        self.delete = Some(expression);
        self
    }

    /// Sets the permission of one field.
    #[must_use]
    pub fn field(mut self, name: impl Into<String>, permission: FieldPermission) -> Self {
        self.fields.insert(name.into(), permission);
        self
    }

    /// Sets the permission of unlisted fields.
    #[must_use]
    pub fn additional_fields(mut self, permission: FieldPermission) -> Self {
        self.additional_fields = Some(permission);
        self
    }
}

/// A role's document filters; an absent filter matches every document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentFilters {
    /// Documents the role may read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Value>,
    /// Documents the role may write (insert, update, replace, delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<Value>,
}

/// Read and write permission of one field, with permissions of its subfields.
///
/// `write` implies `read`. Subfields not listed in `fields` inherit this
/// field's permissions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldPermission {
    /// May read (default false). `true`, `false` or an expression on `%%user`/`%%request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Value>,
    /// May write (default false); implies read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<Value>,
    /// Permissions of subfields.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldPermission>,
}

impl FieldPermission {
    /// Neither read nor write.
    pub fn hidden() -> Self {
        Self::default()
    }

    /// Read only.
    pub fn read_only() -> Self {
        Self {
            read: Some(Value::Bool(true)),
            ..Self::default()
        }
    }

    /// Read and write.
    pub fn read_write() -> Self {
        Self {
            read: Some(Value::Bool(true)),
            write: Some(Value::Bool(true)),
            ..Self::default()
        }
    }

    /// Sets the permission of a subfield.
    #[must_use]
    pub fn field(mut self, name: impl Into<String>, permission: FieldPermission) -> Self {
        self.fields.insert(name.into(), permission);
        self
    }
}

/// A filter: when `apply_when` holds, `query` is merged into the operation's
/// filter and `projection` applied to what it returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFilter {
    /// The filter's name.
    pub name: String,
    /// When the filter applies (`%%user`/`%%request` only, never the document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_when: Option<Value>,
    /// Query conditions added to the operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Value>,
    /// Projection applied to returned documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<Value>,
}

impl RuleFilter {
    /// A filter that applies always and changes nothing yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            apply_when: None,
            query: None,
            projection: None,
        }
    }

    /// Sets `apply_when`.
    #[must_use]
    pub fn apply_when(mut self, expression: Value) -> Self {
        self.apply_when = Some(expression);
        self
    }

    /// Sets the query merged into operations.
    #[must_use]
    pub fn query(mut self, query: Value) -> Self {
        self.query = Some(query);
        self
    }

    /// Sets the projection applied to returned documents.
    #[must_use]
    pub fn projection(mut self, projection: Value) -> Self {
        self.projection = Some(projection);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_services_layout_round_trips() {
        let text = r#"{
            "database": "db", "collection": "c",
            "roles": [{"name": "r", "apply_when": {"%%user.id": "u"},
                       "document_filters": {"read": true, "write": false},
                       "fields": {"a": {"read": true, "fields": {"b": {"write": true}}}},
                       "additional_fields": {"read": false},
                       "insert": false, "delete": true, "search": true}],
            "filters": [{"name": "f", "apply_when": {}, "query": {"x": 1}, "projection": {"y": 0}}]
        }"#;
        let rule: CollectionRule = serde_json::from_str(text).unwrap();
        assert_eq!(
            rule.rule.roles[0].fields["a"].fields["b"].write,
            Some(Value::Bool(true))
        );
        let back: CollectionRule =
            serde_json::from_str(&serde_json::to_string(&rule).unwrap()).unwrap();
        assert_eq!(back, rule);
        let err = serde_json::from_str::<Role>(r#"{"name": "r", "reed": true}"#).unwrap_err();
        assert!(err.to_string().contains("reed"), "{err}");
    }

    #[test]
    fn presets() {
        assert!(Rules::preset(AccessLevel::NoAccess).default_rule.is_none());
        let ro = Rules::preset(AccessLevel::ReadOnly);
        assert_eq!(
            ro.default_rule.unwrap().roles[0].insert,
            Some(Value::Bool(false))
        );
        let owner = Rule::owner("owner_id");
        let filters = owner.roles[0].document_filters.clone().unwrap();
        assert_eq!(filters.read, Some(json!({"owner_id": "%%user.id"})));
    }

    #[test]
    fn app_services_directory() {
        let dir = std::env::temp_dir().join(format!("tda-rules-{}", std::process::id()));
        let coll = dir.join("shop").join("orders");
        std::fs::create_dir_all(&coll).unwrap();
        std::fs::write(
            dir.join("default_rule.json"),
            r#"{"roles": [{"name": "d"}]}"#,
        )
        .unwrap();
        std::fs::write(
            coll.join("rules.json"),
            r#"{"database": "shop", "collection": "orders", "roles": [{"name": "o"}]}"#,
        )
        .unwrap();
        std::fs::write(coll.join("schema.json"), r#"{"bsonType": "object"}"#).unwrap();
        let rules = Rules::from_app_services_dir(&dir).unwrap();
        assert_eq!(rules.default_rule.unwrap().roles[0].name, "d");
        assert_eq!(rules.collections[0].collection, "orders");
        assert_eq!(
            rules.collections[0].schema,
            Some(json!({"bsonType": "object"}))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
