//! Request decoding: body bytes → relaxed Extended JSON → typed per-action requests.
//!
//! The body is parsed as relaxed Extended JSON whatever its `Content-Type`
//! (the original service did the same, and its own examples rely on it), so
//! `{"$oid": …}` and `{"$date": …}` wrappers work under `application/json` too.
//! Every wrong field gets a 400 whose message names the field.

use bson::{Bson, Document};

use crate::action::{
    Action, ActionRequest, Command, FindOneQuery, FindQuery, Namespace, ReplaceQuery,
    UpdateModifications, UpdateQuery,
};
use crate::protocol::ApiError;

/// How `find` treats `limit` (see [`crate::Limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FindLimits {
    /// Used when the request has no `limit` (1000 as in the original service).
    pub default: u64,
    /// The most one request may return (50,000 as in the original service).
    pub max: u64,
}

/// Parses a request body as relaxed Extended JSON into its top-level fields.
pub(crate) fn parse_body(bytes: &[u8]) -> Result<Fields, ApiError> {
    // Most bodies are plain JSON: one pass straight into BSON.
    match super::plain_json::parse(bytes) {
        Some(fields) => Ok(Fields(fields)),
        None => parse_body_general(bytes).map(Fields::from),
    }
}

/// [`parse_body`] for any body: JSON into a `serde_json::Value`, checked
/// for Extended JSON the converter would accept wrongly, then converted.
/// Every error comes from here.
pub(crate) fn parse_body_general(bytes: &[u8]) -> Result<Document, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty: expected a JSON object with dataSource, database and collection",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    super::ejson::check_strict(&value)
        .map_err(|e| ApiError::bad_request(format!("invalid Extended JSON: {e}")))?;
    match Bson::try_from(value) {
        Ok(Bson::Document(doc)) => Ok(doc),
        Ok(_) => Err(ApiError::bad_request(
            "the request body must be a JSON object, not an Extended JSON value",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "the request body is not valid Extended JSON: {e}"
        ))),
    }
}

/// Builds the typed request for `action` from a parsed body.
pub(crate) fn decode(
    action: Action,
    mut fields: Fields,
    limits: FindLimits,
) -> Result<ActionRequest, ApiError> {
    let data_source = fields.required_string("dataSource")?;
    let database = fields.required_string("database")?;
    let collection = fields.required_string("collection")?;
    validate_database_name(&database)?;
    validate_collection_name(&collection)?;
    let command = match action {
        Action::FindOne => Command::FindOne(FindOneQuery {
            filter: fields.optional_document("filter")?.unwrap_or_default(),
            projection: fields.optional_document("projection")?,
            sort: fields.optional_document("sort")?,
        }),
        Action::Find => Command::Find(FindQuery {
            filter: fields.optional_document("filter")?.unwrap_or_default(),
            projection: fields.optional_document("projection")?,
            sort: fields.optional_document("sort")?,
            skip: fields.optional_count("skip")?.unwrap_or(0),
            limit: match fields.optional_count("limit")? {
                None => limits.default,
                Some(0) => limits.max,
                Some(n) => n.min(limits.max),
            },
        }),
        Action::InsertOne => Command::InsertOne(fields.required_document("document")?),
        Action::InsertMany => Command::InsertMany(fields.documents("documents")?),
        Action::UpdateOne | Action::UpdateMany => {
            let query = UpdateQuery {
                filter: fields.required_document("filter")?,
                update: fields.update("update")?,
                upsert: fields.optional_bool("upsert")?.unwrap_or(false),
                array_filters: fields.optional_document_array("arrayFilters")?,
            };
            if action == Action::UpdateOne {
                Command::UpdateOne(query)
            } else {
                Command::UpdateMany(query)
            }
        }
        Action::ReplaceOne => Command::ReplaceOne(ReplaceQuery {
            filter: fields.required_document("filter")?,
            replacement: fields.required_document("replacement")?,
            upsert: fields.optional_bool("upsert")?.unwrap_or(false),
        }),
        Action::DeleteOne => Command::DeleteOne(fields.required_document("filter")?),
        Action::DeleteMany => Command::DeleteMany(fields.required_document("filter")?),
        Action::Aggregate => Command::Aggregate(fields.pipeline("pipeline")?),
    };
    Ok(ActionRequest {
        data_source,
        namespace: Namespace {
            database,
            collection,
        },
        command,
    })
}

/// MongoDB's database-name rules: not empty, at most 64 bytes, none of `/\. "$*<>:|?` or NUL.
fn validate_database_name(name: &str) -> Result<(), ApiError> {
    const FORBIDDEN: &[char] = &[
        '/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?', '\0',
    ];
    if name.is_empty() || name.len() > 64 || name.contains(FORBIDDEN) {
        return Err(ApiError::bad_request(format!(
            "invalid database name '{name}': it must be 1 to 64 bytes without any of /\\. \"$*<>:|?"
        )));
    }
    Ok(())
}

/// MongoDB's collection-name rules: not empty, no `$` or NUL, not in the `system.` namespace.
fn validate_collection_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.contains(['$', '\0']) || name.starts_with("system.") {
        return Err(ApiError::bad_request(format!(
            "invalid collection name '{name}': it must not be empty, contain '$' or start with 'system.'"
        )));
    }
    Ok(())
}

/// The name of a BSON value's type as error messages say it.
fn type_name(value: &Bson) -> &'static str {
    match value {
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::String(_) => "string",
        Bson::Boolean(_) => "boolean",
        Bson::Null => "null",
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => "number",
        Bson::ObjectId(_) => "objectId",
        Bson::DateTime(_) => "date",
        _ => "a non-JSON value",
    }
}

/// The top-level fields of a request body, each name once (a repeated
/// name keeps its last value), taken out one by one. A body has a handful,
/// so they are a list rather than a map.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fields(Vec<(String, Bson)>);

impl From<Document> for Fields {
    fn from(doc: Document) -> Self {
        Fields(doc.into_iter().collect())
    }
}

impl Fields {
    /// Takes the field called `name` out.
    fn remove(&mut self, name: &str) -> Option<Bson> {
        let at = self.0.iter().position(|(key, _)| key == name)?;
        Some(self.0.swap_remove(at).1)
    }

    fn take_present(&mut self, name: &str) -> Result<Option<Bson>, ApiError> {
        match self.remove(name) {
            Some(Bson::Null) => Err(ApiError::bad_request(format!(
                "'{name}' must not be null: leave it out to use the default"
            ))),
            other => Ok(other),
        }
    }

    fn required(&mut self, name: &str) -> Result<Bson, ApiError> {
        match self.remove(name) {
            None => Err(ApiError::missing_field(name)),
            Some(Bson::Null) => Err(ApiError::bad_request(format!("'{name}' must not be null"))),
            Some(value) => Ok(value),
        }
    }

    fn required_string(&mut self, name: &str) -> Result<String, ApiError> {
        match self.required(name)? {
            Bson::String(s) => Ok(s),
            other => Err(wrong_type(name, "a string", &other)),
        }
    }

    fn required_document(&mut self, name: &str) -> Result<Document, ApiError> {
        match self.required(name)? {
            Bson::Document(doc) => Ok(doc),
            other => Err(wrong_type(name, "an object", &other)),
        }
    }

    fn optional_document(&mut self, name: &str) -> Result<Option<Document>, ApiError> {
        match self.take_present(name)? {
            None => Ok(None),
            Some(Bson::Document(doc)) => Ok(Some(doc)),
            Some(other) => Err(wrong_type(name, "an object", &other)),
        }
    }

    fn optional_bool(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.take_present(name)? {
            None => Ok(None),
            Some(Bson::Boolean(b)) => Ok(Some(b)),
            Some(other) => Err(wrong_type(name, "a boolean", &other)),
        }
    }

    /// A non-negative whole number (int, long, or a double without fraction).
    fn optional_count(&mut self, name: &str) -> Result<Option<u64>, ApiError> {
        let value = match self.take_present(name)? {
            None => return Ok(None),
            Some(value) => value,
        };
        let number = match &value {
            Bson::Int32(i) => Some(i64::from(*i)),
            Bson::Int64(i) => Some(*i),
            Bson::Double(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            _ => None,
        };
        match number {
            Some(n) if n >= 0 => Ok(Some(n as u64)),
            Some(n) => Err(ApiError::bad_request(format!(
                "'{name}' must not be negative, got {n}"
            ))),
            None => Err(wrong_type(name, "a whole number", &value)),
        }
    }

    fn documents(&mut self, name: &str) -> Result<Vec<Document>, ApiError> {
        let items = match self.required(name)? {
            Bson::Array(items) => items,
            other => return Err(wrong_type(name, "an array of objects", &other)),
        };
        if items.is_empty() {
            return Err(ApiError::bad_request(format!(
                "'{name}' must contain at least one document"
            )));
        }
        array_of_documents(name, items)
    }

    fn optional_document_array(&mut self, name: &str) -> Result<Option<Vec<Document>>, ApiError> {
        match self.take_present(name)? {
            None => Ok(None),
            Some(Bson::Array(items)) => array_of_documents(name, items).map(Some),
            Some(other) => Err(wrong_type(name, "an array of objects", &other)),
        }
    }

    fn pipeline(&mut self, name: &str) -> Result<Vec<Document>, ApiError> {
        match self.required(name)? {
            Bson::Array(items) => array_of_documents(name, items),
            other => Err(wrong_type(name, "an array of stage objects", &other)),
        }
    }

    fn update(&mut self, name: &str) -> Result<UpdateModifications, ApiError> {
        match self.required(name)? {
            Bson::Document(doc) => Ok(UpdateModifications::Operators(doc)),
            Bson::Array(items) => {
                array_of_documents(name, items).map(UpdateModifications::Pipeline)
            }
            other => Err(wrong_type(
                name,
                "an object of update operators or an array of pipeline stages",
                &other,
            )),
        }
    }
}

fn array_of_documents(name: &str, items: Vec<Bson>) -> Result<Vec<Document>, ApiError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Bson::Document(doc) => Ok(doc),
            other => Err(wrong_type(&format!("{name}.{i}"), "an object", &other)),
        })
        .collect()
}

fn wrong_type(name: &str, expected: &str, got: &Bson) -> ApiError {
    ApiError::bad_request(format!(
        "'{name}' must be {expected}, got {}",
        type_name(got)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    const LIMITS: FindLimits = FindLimits {
        default: 1000,
        max: 50_000,
    };

    fn body(json: &str) -> Fields {
        parse_body(json.as_bytes()).unwrap()
    }

    fn decode_err(action: Action, json: &str) -> String {
        decode(action, body(json), LIMITS)
            .unwrap_err()
            .message()
            .to_owned()
    }

    #[test]
    fn relaxed_ejson_is_parsed_whatever_the_wrapper() {
        let mut doc = body(
            r#"{"a": {"$oid": "64224f3cd79f54ad342dd9b1"}, "n": 1, "big": 8047923148, "f": 1.5, "d": {"$date": "2022-01-12T02:33:23.067Z"}}"#,
        );
        assert!(matches!(doc.remove("a"), Some(Bson::ObjectId(_))));
        assert_eq!(doc.remove("n"), Some(Bson::Int32(1)));
        assert_eq!(doc.remove("big"), Some(Bson::Int64(8_047_923_148)));
        assert_eq!(doc.remove("f"), Some(Bson::Double(1.5)));
        assert!(matches!(doc.remove("d"), Some(Bson::DateTime(_))));
        assert_eq!(doc.remove("a"), None);
    }

    #[test]
    fn bodies_that_are_not_objects_are_rejected() {
        for bad in ["", "  ", "[1]", "nul", "{\"a\":", "\"x\""] {
            assert!(parse_body(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(parse_body(br#"{"a": {"$numberInt": "x"}}"#).is_err());
    }

    #[test]
    fn find_defaults_and_limits() {
        let req = decode(
            Action::Find,
            body(r#"{"dataSource":"s","database":"d","collection":"c"}"#),
            LIMITS,
        )
        .unwrap();
        let Command::Find(q) = req.command else {
            panic!("not find")
        };
        assert_eq!((q.filter, q.limit, q.skip), (doc! {}, 1000, 0));
        let limit_of = |json: &str| match decode(Action::Find, body(json), LIMITS).unwrap().command
        {
            Command::Find(q) => q.limit,
            _ => unreachable!(),
        };
        assert_eq!(
            limit_of(r#"{"dataSource":"s","database":"d","collection":"c","limit":0}"#),
            50_000
        );
        assert_eq!(
            limit_of(r#"{"dataSource":"s","database":"d","collection":"c","limit":70000}"#),
            50_000
        );
        assert_eq!(
            limit_of(r#"{"dataSource":"s","database":"d","collection":"c","limit":5.0}"#),
            5
        );
    }

    #[test]
    fn wrong_fields_are_named() {
        assert_eq!(
            decode_err(Action::Find, r#"{"database":"d","collection":"c"}"#),
            "missing required field 'dataSource'"
        );
        assert_eq!(
            decode_err(
                Action::Find,
                r#"{"dataSource":"s","database":"d","collection":"c","projection":null}"#
            ),
            "'projection' must not be null: leave it out to use the default"
        );
        assert_eq!(
            decode_err(
                Action::Find,
                r#"{"dataSource":"s","database":"d","collection":"c","limit":"5"}"#
            ),
            "'limit' must be a whole number, got string"
        );
        assert_eq!(
            decode_err(
                Action::Find,
                r#"{"dataSource":"s","database":"d","collection":"c","skip":-1}"#
            ),
            "'skip' must not be negative, got -1"
        );
        assert_eq!(
            decode_err(
                Action::InsertOne,
                r#"{"dataSource":"s","database":"d","collection":"c","document":[1]}"#
            ),
            "'document' must be an object, got array"
        );
        assert_eq!(
            decode_err(
                Action::InsertMany,
                r#"{"dataSource":"s","database":"d","collection":"c","documents":[]}"#
            ),
            "'documents' must contain at least one document"
        );
        assert_eq!(
            decode_err(
                Action::InsertMany,
                r#"{"dataSource":"s","database":"d","collection":"c","documents":[{},3]}"#
            ),
            "'documents.1' must be an object, got number"
        );
        assert_eq!(
            decode_err(
                Action::UpdateOne,
                r#"{"dataSource":"s","database":"d","collection":"c","filter":{},"update":{},"upsert":"yes"}"#
            ),
            "'upsert' must be a boolean, got string"
        );
        assert_eq!(
            decode_err(
                Action::DeleteMany,
                r#"{"dataSource":"s","database":"d","collection":"c"}"#
            ),
            "missing required field 'filter'"
        );
        assert!(decode_err(
            Action::Find,
            r#"{"dataSource":"s","database":"a.b","collection":"c"}"#
        )
        .contains("invalid database name"));
        assert!(decode_err(
            Action::Find,
            r#"{"dataSource":"s","database":"d","collection":"$c"}"#
        )
        .contains("invalid collection name"));
    }

    #[test]
    fn decoded_requests_carry_their_action() {
        let json = r#"{"dataSource":"s","database":"d","collection":"c","filter":{},
            "document":{},"documents":[{}],"update":{"$set":{"a":1}},"replacement":{},
            "pipeline":[]}"#;
        for action in Action::ALL {
            let request = decode(action, body(json), LIMITS).unwrap();
            assert_eq!(request.action(), action);
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_pipelines_accepted() {
        let req = decode(
            Action::UpdateMany,
            body(r#"{"dataSource":"s","database":"d","collection":"c","filter":{},"update":[{"$set":{"a":1}}],"extra":true}"#),
            LIMITS,
        )
        .unwrap();
        assert!(matches!(
            req.command,
            Command::UpdateMany(UpdateQuery {
                update: UpdateModifications::Pipeline(_),
                ..
            })
        ));
    }
}
