//! Schema validation: App Services' BSON-typed JSON Schema subset.
//!
//! A [`Schema`] is parsed once, when the service is built, from the JSON
//! value of a collection rule's `schema` field (App Services keeps it in
//! `schema.json` beside `rules.json`). [`Schema::validate`] checks one
//! document and names the failing schema path in its [`SchemaError`].
//!
//! Supported keywords: `bsonType`, `type`, `required`, `properties`,
//! `additionalProperties` (boolean or schema), `enum`, `minimum`, `maximum`,
//! `exclusiveMinimum`, `exclusiveMaximum` (booleans), `minLength`,
//! `maxLength` (in code points), `pattern` (unanchored, `regex` crate
//! syntax), `items` (one schema for every element), `minItems`, `maxItems`,
//! `uniqueItems`; `title` and `description` are accepted and ignored. Any
//! other keyword is refused when the schema is parsed, so that a rule never
//! silently checks less than it says.

use std::cmp::Ordering;
use std::fmt;

use bson::{Bson, Document};
use regex::Regex;
use serde_json::Value;

use crate::query::compare::{compare_values, values_equal};
use crate::query::display_value;
use crate::query::number::Num;

/// A parsed App Services JSON schema.
///
/// ```
/// use tower_data_api::rules::Schema;
/// use serde_json::json;
///
/// let schema = Schema::parse(&json!({
///     "bsonType": "object",
///     "required": ["name"],
///     "properties": {"age": {"bsonType": "int", "minimum": 18}}
/// })).unwrap();
/// let err = schema.validate(&bson::doc! {"name": "Ada", "age": 17}).unwrap_err();
/// assert_eq!(err.to_string(), "properties.age: 17 is less than the minimum 18");
/// let err = schema.validate(&bson::doc! {"age": 30}).unwrap_err();
/// assert_eq!(err.to_string(), "required field 'name' is missing");
/// ```
#[derive(Debug, Clone)]
pub struct Schema {
    root: Node,
}

/// Why a document does not match a [`Schema`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// The schema path of the failing keyword's schema (`properties.age`,
    /// `properties.tags.items[2]`); empty for the root.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for SchemaError {}

/// BSON types `bsonType` names.
const BSON_TYPES: &[&str] = &[
    "double",
    "string",
    "object",
    "array",
    "binData",
    "undefined",
    "objectId",
    "bool",
    "date",
    "null",
    "regex",
    "dbPointer",
    "javascript",
    "symbol",
    "javascriptWithScope",
    "int",
    "timestamp",
    "long",
    "decimal",
    "minKey",
    "maxKey",
    "number",
];

/// JSON types `type` names.
const JSON_TYPES: &[&str] = &["object", "array", "string", "number", "boolean", "null"];

#[derive(Debug, Clone)]
enum Additional {
    Any,
    Deny,
    Schema(Box<Node>),
}

#[derive(Debug, Clone)]
struct Node {
    bson_types: Option<Vec<String>>,
    json_types: Option<Vec<String>>,
    required: Vec<String>,
    properties: Vec<(String, Node)>,
    additional: Additional,
    enumeration: Option<Vec<Bson>>,
    minimum: Option<(Bson, bool)>,
    maximum: Option<(Bson, bool)>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<Regex>,
    items: Option<Box<Node>>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    unique_items: bool,
}

impl Schema {
    /// Parses a schema; the error names the offending keyword's path.
    pub fn parse(value: &Value) -> Result<Schema, String> {
        Ok(Schema {
            root: Node::parse(value, "")?,
        })
    }

    /// Checks `document` (as it will be stored, `_id` included).
    pub fn validate(&self, document: &Document) -> Result<(), SchemaError> {
        self.root.check_document(document, "", false)
    }

    /// [`validate`](Self::validate) with messages that never quote the
    /// document's values (`the value is less than the minimum 18`): for
    /// answers to users who may not read every field.
    pub fn validate_redacted(&self, document: &Document) -> Result<(), SchemaError> {
        self.root.check_document(document, "", true)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn type_names(value: &Value, path: &str, known: &[&str]) -> Result<Vec<String>, String> {
    let names: Vec<&Value> = match value {
        Value::Array(list) if !list.is_empty() => list.iter().collect(),
        Value::String(_) => vec![value],
        _ => {
            return Err(format!(
                "{path}: must be a type name or a non-empty array of them"
            ))
        }
    };
    names
        .into_iter()
        .map(|name| match name.as_str() {
            Some(n) if known.contains(&n) => Ok(n.to_owned()),
            _ => Err(format!("{path}: unknown type {name}")),
        })
        .collect()
}

fn count(value: &Value, path: &str) -> Result<u64, String> {
    value
        .as_u64()
        .ok_or_else(|| format!("{path}: must be a non-negative integer"))
}

fn flag(value: &Value, path: &str) -> Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| format!("{path}: must be a boolean"))
}

fn to_bson(value: &Value, path: &str) -> Result<Bson, String> {
    Bson::try_from(value.clone()).map_err(|e| format!("{path}: {e}"))
}

fn number(value: &Value, path: &str) -> Result<Bson, String> {
    match to_bson(value, path)? {
        n if Num::from_bson(&n).is_some() => Ok(n),
        _ => Err(format!("{path}: must be a number")),
    }
}

impl Node {
    fn parse(value: &Value, path: &str) -> Result<Node, String> {
        let Value::Object(map) = value else {
            let at = if path.is_empty() { "schema" } else { path };
            return Err(format!("{at}: a schema must be an object"));
        };
        let mut node = Node {
            bson_types: None,
            json_types: None,
            required: Vec::new(),
            properties: Vec::new(),
            additional: Additional::Any,
            enumeration: None,
            minimum: None,
            maximum: None,
            min_length: None,
            max_length: None,
            pattern: None,
            items: None,
            min_items: None,
            max_items: None,
            unique_items: false,
        };
        let flag_of = |key: &str| -> Result<bool, String> {
            map.get(key)
                .map(|v| flag(v, &join(path, key)))
                .transpose()
                .map(|b| b.unwrap_or(false))
        };
        let exclusive_min = flag_of("exclusiveMinimum")?;
        let exclusive_max = flag_of("exclusiveMaximum")?;
        for (key, v) in map {
            let at = join(path, key);
            match key.as_str() {
                "bsonType" => node.bson_types = Some(type_names(v, &at, BSON_TYPES)?),
                "type" => node.json_types = Some(type_names(v, &at, JSON_TYPES)?),
                "required" => {
                    let Value::Array(list) = v else {
                        return Err(format!("{at}: must be an array of field names"));
                    };
                    for name in list {
                        let name = name
                            .as_str()
                            .ok_or_else(|| format!("{at}: must be an array of field names"))?;
                        node.required.push(name.to_owned());
                    }
                }
                "properties" => {
                    let Value::Object(props) = v else {
                        return Err(format!("{at}: must be an object of schemas"));
                    };
                    for (name, schema) in props {
                        node.properties
                            .push((name.clone(), Node::parse(schema, &join(&at, name))?));
                    }
                }
                "additionalProperties" => {
                    node.additional = match v {
                        Value::Bool(true) => Additional::Any,
                        Value::Bool(false) => Additional::Deny,
                        _ => Additional::Schema(Box::new(Node::parse(v, &at)?)),
                    }
                }
                "enum" => {
                    let Value::Array(list) = v else {
                        return Err(format!("{at}: must be an array"));
                    };
                    if list.is_empty() {
                        return Err(format!("{at}: must not be empty"));
                    }
                    let values = list
                        .iter()
                        .map(|x| to_bson(x, &at))
                        .collect::<Result<_, _>>()?;
                    node.enumeration = Some(values);
                }
                "minimum" => node.minimum = Some((number(v, &at)?, exclusive_min)),
                "maximum" => node.maximum = Some((number(v, &at)?, exclusive_max)),
                "exclusiveMinimum" | "exclusiveMaximum" | "title" | "description" => {}
                "minLength" => node.min_length = Some(count(v, &at)?),
                "maxLength" => node.max_length = Some(count(v, &at)?),
                "pattern" => {
                    let text = v
                        .as_str()
                        .ok_or_else(|| format!("{at}: must be a string"))?;
                    node.pattern =
                        Some(Regex::new(text).map_err(|e| format!("{at}: invalid regex: {e}"))?);
                }
                "items" => node.items = Some(Box::new(Node::parse(v, &at)?)),
                "minItems" => node.min_items = Some(count(v, &at)?),
                "maxItems" => node.max_items = Some(count(v, &at)?),
                "uniqueItems" => node.unique_items = flag(v, &at)?,
                _ => return Err(format!("{at}: unsupported schema keyword")),
            }
        }
        if exclusive_min && node.minimum.is_none() {
            return Err(format!("{}: needs minimum", join(path, "exclusiveMinimum")));
        }
        if exclusive_max && node.maximum.is_none() {
            return Err(format!("{}: needs maximum", join(path, "exclusiveMaximum")));
        }
        Ok(node)
    }

    fn check_document(&self, doc: &Document, path: &str, redact: bool) -> Result<(), SchemaError> {
        self.check(&Bson::Document(doc.clone()), path, redact)
    }

    /// `redact`: messages name no value of the document.
    fn check(&self, value: &Bson, path: &str, redact: bool) -> Result<(), SchemaError> {
        let show = |v: &Bson| {
            if redact {
                "the value".to_owned()
            } else {
                display_value(v)
            }
        };
        let fail = |message: String| {
            Err(SchemaError {
                path: path.to_owned(),
                message,
            })
        };
        if let Some(types) = &self.bson_types {
            if !types.iter().any(|t| bson_type_matches(t, value)) {
                return fail(format!(
                    "{} is not of bsonType {}",
                    show(value),
                    types.join(" or ")
                ));
            }
        }
        if let Some(types) = &self.json_types {
            if !types.iter().any(|t| json_type_matches(t, value)) {
                return fail(format!(
                    "{} is not of type {}",
                    show(value),
                    types.join(" or ")
                ));
            }
        }
        if let Some(values) = &self.enumeration {
            if !values.iter().any(|v| values_equal(v, value)) {
                return fail(format!("{} is not one of the enum values", show(value)));
            }
        }
        if Num::from_bson(value).is_some() {
            if let Some((min, exclusive)) = &self.minimum {
                let ord = compare_values(value, min);
                if ord == Ordering::Less || (*exclusive && ord == Ordering::Equal) {
                    let word = if *exclusive {
                        "not greater than"
                    } else {
                        "less than"
                    };
                    return fail(format!(
                        "{} is {word} the minimum {}",
                        show(value),
                        display_value(min)
                    ));
                }
            }
            if let Some((max, exclusive)) = &self.maximum {
                let ord = compare_values(value, max);
                if ord == Ordering::Greater || (*exclusive && ord == Ordering::Equal) {
                    let word = if *exclusive {
                        "not less than"
                    } else {
                        "greater than"
                    };
                    return fail(format!(
                        "{} is {word} the maximum {}",
                        show(value),
                        display_value(max)
                    ));
                }
            }
        }
        match value {
            Bson::String(s) => {
                let len = s.chars().count() as u64;
                if self.min_length.is_some_and(|min| len < min) {
                    return fail(format!(
                        "string of length {len} is shorter than minLength {}",
                        self.min_length.unwrap_or(0)
                    ));
                }
                if self.max_length.is_some_and(|max| len > max) {
                    return fail(format!(
                        "string of length {len} is longer than maxLength {}",
                        self.max_length.unwrap_or(0)
                    ));
                }
                if let Some(re) = &self.pattern {
                    if !re.is_match(s) {
                        return fail(format!(
                            "{} does not match the pattern {}",
                            show(value),
                            re.as_str()
                        ));
                    }
                }
            }
            Bson::Array(items) => {
                let len = items.len() as u64;
                if self.min_items.is_some_and(|min| len < min) {
                    return fail(format!(
                        "array of {len} items has fewer than minItems {}",
                        self.min_items.unwrap_or(0)
                    ));
                }
                if self.max_items.is_some_and(|max| len > max) {
                    return fail(format!(
                        "array of {len} items has more than maxItems {}",
                        self.max_items.unwrap_or(0)
                    ));
                }
                if self.unique_items {
                    for (i, a) in items.iter().enumerate() {
                        if items[..i].iter().any(|b| values_equal(a, b)) {
                            return fail(format!(
                                "item {i} ({}) is a duplicate but uniqueItems is set",
                                show(a)
                            ));
                        }
                    }
                }
                if let Some(schema) = &self.items {
                    let at = join(path, "items");
                    for (i, item) in items.iter().enumerate() {
                        schema.check(item, &format!("{at}[{i}]"), redact)?;
                    }
                }
            }
            Bson::Document(doc) => {
                for name in &self.required {
                    if !doc.contains_key(name) {
                        return fail(format!("required field '{name}' is missing"));
                    }
                }
                for (name, field) in doc {
                    let known = self.properties.iter().find(|(p, _)| p == name);
                    match (known, &self.additional) {
                        (Some((_, schema)), _) => {
                            schema.check(field, &join(&join(path, "properties"), name), redact)?
                        }
                        (None, Additional::Any) => {}
                        (None, Additional::Deny) => {
                            return fail(format!("additional property '{name}' is not allowed"))
                        }
                        (None, Additional::Schema(schema)) => schema.check(
                            field,
                            &join(&join(path, "additionalProperties"), name),
                            redact,
                        )?,
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn bson_type_matches(name: &str, v: &Bson) -> bool {
    matches!(
        (name, v),
        ("double", Bson::Double(_))
            | ("string", Bson::String(_))
            | ("object", Bson::Document(_))
            | ("array", Bson::Array(_))
            | ("binData", Bson::Binary(_))
            | ("undefined", Bson::Undefined)
            | ("objectId", Bson::ObjectId(_))
            | ("bool", Bson::Boolean(_))
            | ("date", Bson::DateTime(_))
            | ("null", Bson::Null)
            | ("regex", Bson::RegularExpression(_))
            | ("dbPointer", Bson::DbPointer(_))
            | ("javascript", Bson::JavaScriptCode(_))
            | ("symbol", Bson::Symbol(_))
            | ("javascriptWithScope", Bson::JavaScriptCodeWithScope(_))
            | ("int", Bson::Int32(_))
            | ("timestamp", Bson::Timestamp(_))
            | ("long", Bson::Int64(_))
            | ("decimal", Bson::Decimal128(_))
            | ("minKey", Bson::MinKey)
            | ("maxKey", Bson::MaxKey)
            | (
                "number",
                Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
            )
    )
}

fn json_type_matches(name: &str, v: &Bson) -> bool {
    match name {
        "boolean" => matches!(v, Bson::Boolean(_)),
        other => bson_type_matches(other, v),
    }
}

#[cfg(test)]
mod tests;
