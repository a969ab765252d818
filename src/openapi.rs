//! The OpenAPI 3.1 description of what one service serves, generated from
//! its configuration and answered at
//! `<mount>/app/<app id>/endpoint/data/<version>/openapi.json` (no
//! credentials needed; one document per enabled version).
//!
//! It names the app id and version in its paths, the configured data
//! sources, the ten actions with their request and response bodies, the
//! credential schemes this service accepts (API key headers, email and
//! password headers, the custom JWT header, bearer access tokens), and the
//! error shape with its statuses. The server URL is relative (`./`), so the
//! document is right wherever the service is mounted.

use serde_json::{json, Map, Value};

use crate::action::Action;
use crate::auth::Authentication;
use crate::route::Version;

/// What the document describes: the service's configuration.
pub(crate) struct Served<'a> {
    pub(crate) app_id: &'a str,
    pub(crate) version: Version,
    /// The data source names, sorted.
    pub(crate) data_sources: Vec<&'a str>,
    pub(crate) insert_status: u16,
    pub(crate) auth: &'a Authentication,
}

/// The document for one version of the service.
pub(crate) fn document(served: &Served<'_>) -> Value {
    let Served {
        app_id,
        version,
        ref data_sources,
        insert_status,
        auth,
    } = *served;
    let mut paths = Map::new();
    for action in Action::ALL {
        paths.insert(
            format!("/action/{}", action.name()),
            operation(action, insert_status, data_sources),
        );
    }
    let (schemes, security) = security(auth);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("Data API of app {app_id}"),
            "version": version.as_str(),
            "description": "A MongoDB Atlas Data API served by tower-data-api. \
                Request bodies are relaxed Extended JSON; answers are JSON, or canonical \
                Extended JSON with `Accept: application/ejson`.",
        },
        "servers": [{
            "url": "./",
            "description": format!(
                "this document's directory: /app/{app_id}/endpoint/data/{}",
                version.as_str()
            ),
        }],
        "paths": paths,
        "security": security,
        "components": {
            "securitySchemes": schemes,
            "schemas": schemas(),
        },
    })
}

/// The security schemes this service accepts, and the requirement (any one).
fn security(auth: &Authentication) -> (Map<String, Value>, Vec<Value>) {
    let header = |name: &str, what: &str| json!({ "type": "apiKey", "in": "header", "name": name, "description": what });
    let mut schemes = Map::new();
    let mut security = Vec::new();
    schemes.insert(
        "bearer".into(),
        json!({
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from the login endpoint \
                (/api/client/v2.0/app/<app id>/auth/providers/<provider>/login).",
        }),
    );
    security.push(json!({ "bearer": [] }));
    if auth.key_store.is_some() {
        schemes.insert("apiKey".into(), header("apiKey", "An API key."));
        schemes.insert(
            "api-key".into(),
            header("api-key", "An API key (the same, another header)."),
        );
        security.push(json!({ "apiKey": [] }));
        security.push(json!({ "api-key": [] }));
    }
    if auth.user_store.is_some() {
        schemes.insert(
            "email".into(),
            header("email", "A user's email, with `password`."),
        );
        schemes.insert(
            "password".into(),
            header("password", "The user's password, with `email`."),
        );
        security.push(json!({ "email": [], "password": [] }));
    }
    if auth.jwt.is_some() {
        schemes.insert(
            "jwtTokenString".into(),
            header("jwtTokenString", "A JWT of the custom JWT provider."),
        );
        security.push(json!({ "jwtTokenString": [] }));
    }
    if auth.run_as.is_some() {
        // Requests without credentials run as the configured user.
        security.push(json!({}));
    }
    (schemes, security)
}

/// One action's POST operation.
fn operation(action: Action, insert_status: u16, data_sources: &[&str]) -> Value {
    let name = action.name();
    let (fields, required): (Value, Vec<&str>) = match action {
        Action::FindOne => (
            json!({ "filter": doc(), "projection": doc(), "sort": doc() }),
            vec![],
        ),
        Action::Find => (
            json!({
                "filter": doc(), "projection": doc(), "sort": doc(),
                "limit": { "type": "integer", "minimum": 0, "description": "0: the largest limit" },
                "skip": { "type": "integer", "minimum": 0 },
            }),
            vec![],
        ),
        Action::InsertOne => (json!({ "document": doc() }), vec!["document"]),
        Action::InsertMany => (
            json!({ "documents": { "type": "array", "items": doc(), "minItems": 1 } }),
            vec!["documents"],
        ),
        Action::UpdateOne | Action::UpdateMany => (
            json!({
                "filter": doc(),
                "update": {
                    "oneOf": [doc(), { "type": "array", "items": doc() }],
                    "description": "update operators, or an aggregation pipeline",
                },
                "upsert": { "type": "boolean" },
                "arrayFilters": { "type": "array", "items": doc() },
            }),
            vec!["filter", "update"],
        ),
        Action::ReplaceOne => (
            json!({ "filter": doc(), "replacement": doc(), "upsert": { "type": "boolean" } }),
            vec!["filter", "replacement"],
        ),
        Action::DeleteOne | Action::DeleteMany => (json!({ "filter": doc() }), vec!["filter"]),
        Action::Aggregate => (
            json!({ "pipeline": { "type": "array", "items": doc() } }),
            vec!["pipeline"],
        ),
    };
    let (status, result) = match action {
        Action::FindOne => (
            "200",
            json!({ "$ref": "#/components/schemas/FindOneResult" }),
        ),
        Action::Find | Action::Aggregate => (
            "200",
            json!({ "$ref": "#/components/schemas/DocumentsResult" }),
        ),
        Action::InsertOne => (
            status_text(insert_status),
            json!({ "$ref": "#/components/schemas/InsertOneResult" }),
        ),
        Action::InsertMany => (
            status_text(insert_status),
            json!({ "$ref": "#/components/schemas/InsertManyResult" }),
        ),
        Action::UpdateOne | Action::UpdateMany | Action::ReplaceOne => (
            "200",
            json!({ "$ref": "#/components/schemas/UpdateResult" }),
        ),
        Action::DeleteOne | Action::DeleteMany => (
            "200",
            json!({ "$ref": "#/components/schemas/DeleteResult" }),
        ),
    };
    let mut required_fields = vec!["dataSource", "database", "collection"];
    required_fields.extend(required);
    let mut properties = Map::new();
    properties.insert(
        "dataSource".into(),
        json!({ "type": "string", "enum": data_sources }),
    );
    properties.insert(
        "database".into(),
        json!({ "type": "string", "minLength": 1 }),
    );
    properties.insert(
        "collection".into(),
        json!({ "type": "string", "minLength": 1 }),
    );
    if let Value::Object(fields) = fields {
        properties.extend(fields);
    }
    let mut responses = Map::new();
    responses.insert(
        status.into(),
        json!({
            "description": "The action's result.",
            "content": {
                "application/json": { "schema": result },
                "application/ejson": { "schema": result },
            },
        }),
    );
    for (code, why) in [
        (
            "400",
            "A wrong request, a refused credential format, or a database error.",
        ),
        ("401", "The credentials identify no user."),
        ("403", "An access level or rule forbids this."),
        ("404", "No such action, version or app."),
        ("408", "The body did not arrive in time."),
        ("413", "The body is over the size limit."),
        (
            "429",
            "Too many requests (concurrency or rate limit); see Retry-After.",
        ),
        ("500", "An internal error."),
        ("503", "The data source is unavailable."),
        ("504", "The request did not finish within its deadline."),
    ] {
        responses.insert(
            code.into(),
            json!({
                "description": why,
                "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/Error" },
                } },
            }),
        );
    }
    json!({
        "post": {
            "operationId": name,
            "summary": name,
            "requestBody": {
                "required": true,
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "properties": properties,
                    "required": required_fields,
                } } },
            },
            "responses": responses,
        }
    })
}

fn status_text(status: u16) -> &'static str {
    if status == 200 {
        "200"
    } else {
        "201"
    }
}

/// Any document (relaxed Extended JSON).
fn doc() -> Value {
    json!({ "type": "object", "additionalProperties": true })
}

fn schemas() -> Value {
    json!({
        "FindOneResult": {
            "type": "object",
            "properties": { "document": { "oneOf": [doc(), { "type": "null" }] } },
            "required": ["document"],
        },
        "DocumentsResult": {
            "type": "object",
            "properties": { "documents": { "type": "array", "items": doc() } },
            "required": ["documents"],
        },
        "InsertOneResult": {
            "type": "object",
            "properties": { "insertedId": {} },
            "required": ["insertedId"],
        },
        "InsertManyResult": {
            "type": "object",
            "properties": { "insertedIds": { "type": "array", "items": {} } },
            "required": ["insertedIds"],
        },
        "UpdateResult": {
            "type": "object",
            "properties": {
                "matchedCount": count(),
                "modifiedCount": count(),
                "upsertedId": {},
            },
            "required": ["matchedCount", "modifiedCount"],
        },
        "DeleteResult": {
            "type": "object",
            "properties": { "deletedCount": count() },
            "required": ["deletedCount"],
        },
        "Error": {
            "type": "object",
            "properties": {
                "error": { "type": "string" },
                "error_code": { "type": "string" },
                "link": { "type": "string" },
            },
            "required": ["error", "error_code", "link"],
        },
    })
}

/// A count: a number in JSON, `{"$numberInt": "…"}` in canonical EJSON.
fn count() -> Value {
    json!({ "oneOf": [
        { "type": "integer", "minimum": 0 },
        { "type": "object", "additionalProperties": { "type": "string" } },
    ] })
}
