use bson::{doc, oid::ObjectId};
use serde_json::json;

use super::*;

fn check(schema: Value, doc: Document) -> Result<(), String> {
    Schema::parse(&schema)
        .expect("valid schema")
        .validate(&doc)
        .map_err(|e| e.to_string())
}

#[test]
fn keywords() {
    let cases: Vec<(Value, Document, Result<(), &str>)> = vec![
        (json!({"bsonType": "object"}), doc! {"a": 1}, Ok(())),
        (
            json!({"properties": {"a": {"bsonType": "string"}}}),
            doc! {"a": 1},
            Err("properties.a: 1 is not of bsonType string"),
        ),
        (
            json!({"properties": {"a": {"bsonType": ["string", "null"]}}}),
            doc! {"a": Bson::Null},
            Ok(()),
        ),
        (
            json!({"properties": {"a": {"bsonType": "number"}}}),
            doc! {"a": 1.5},
            Ok(()),
        ),
        (
            json!({"properties": {"a": {"bsonType": "long"}}}),
            doc! {"a": 1},
            Err("properties.a: 1 is not of bsonType long"),
        ),
        (
            json!({"properties": {"a": {"bsonType": "objectId"}}}),
            doc! {"a": ObjectId::new()},
            Ok(()),
        ),
        (
            json!({"properties": {"a": {"type": "boolean"}}}),
            doc! {"a": true},
            Ok(()),
        ),
        (
            json!({"properties": {"a": {"type": "number"}}}),
            doc! {"a": "1"},
            Err("properties.a: \"1\" is not of type number"),
        ),
        (
            json!({"required": ["name"]}),
            doc! {},
            Err("required field 'name' is missing"),
        ),
        (
            json!({"properties": {"a": {}}, "additionalProperties": false}),
            doc! {"a": 1, "b": 2},
            Err("additional property 'b' is not allowed"),
        ),
        (
            json!({"additionalProperties": {"bsonType": "int"}}),
            doc! {"b": "x"},
            Err("additionalProperties.b: \"x\" is not of bsonType int"),
        ),
        (
            json!({"properties": {"c": {"enum": ["red", "blue"]}}}),
            doc! {"c": "green"},
            Err("properties.c: \"green\" is not one of the enum values"),
        ),
        (
            json!({"properties": {"c": {"enum": [1, 2]}}}),
            doc! {"c": 2.0},
            Ok(()),
        ),
        (
            json!({"properties": {"age": {"minimum": 18}}}),
            doc! {"age": 17},
            Err("properties.age: 17 is less than the minimum 18"),
        ),
        (
            json!({"properties": {"age": {"minimum": 18}}}),
            doc! {"age": 18},
            Ok(()),
        ),
        (
            json!({"properties": {"age": {"minimum": 18, "exclusiveMinimum": true}}}),
            doc! {"age": 18_i64},
            Err("properties.age: 18 is not greater than the minimum 18"),
        ),
        (
            json!({"properties": {"age": {"maximum": 10}}}),
            doc! {"age": 10.5},
            Err("properties.age: 10.5 is greater than the maximum 10"),
        ),
        (
            json!({"properties": {"age": {"maximum": 10, "exclusiveMaximum": true}}}),
            doc! {"age": 10},
            Err("properties.age: 10 is not less than the maximum 10"),
        ),
        (
            json!({"properties": {"age": {"maximum": 10}}}),
            doc! {"age": "99"},
            Ok(()),
        ),
        (
            json!({"properties": {"s": {"minLength": 3}}}),
            doc! {"s": "éé"},
            Err("properties.s: string of length 2 is shorter than minLength 3"),
        ),
        (
            json!({"properties": {"s": {"maxLength": 2}}}),
            doc! {"s": "éé"},
            Ok(()),
        ),
        (
            json!({"properties": {"s": {"maxLength": 2}}}),
            doc! {"s": "abc"},
            Err("properties.s: string of length 3 is longer than maxLength 2"),
        ),
        (
            json!({"properties": {"s": {"pattern": "^[a-z]+$"}}}),
            doc! {"s": "abC"},
            Err("properties.s: \"abC\" does not match the pattern ^[a-z]+$"),
        ),
        (
            json!({"properties": {"t": {"items": {"bsonType": "string"}}}}),
            doc! {"t": ["a", 2]},
            Err("properties.t.items[1]: 2 is not of bsonType string"),
        ),
        (
            json!({"properties": {"t": {"minItems": 1}}}),
            doc! {"t": []},
            Err("properties.t: array of 0 items has fewer than minItems 1"),
        ),
        (
            json!({"properties": {"t": {"maxItems": 1}}}),
            doc! {"t": [1, 2]},
            Err("properties.t: array of 2 items has more than maxItems 1"),
        ),
        (
            json!({"properties": {"t": {"uniqueItems": true}}}),
            doc! {"t": [1, 2, 1.0]},
            Err("properties.t: item 2 (1.0) is a duplicate but uniqueItems is set"),
        ),
        (
            json!({"properties": {"t": {"uniqueItems": true}}}),
            doc! {"t": [1, 2, 3]},
            Ok(()),
        ),
    ];
    for (i, (schema, doc, expected)) in cases.into_iter().enumerate() {
        let got = check(schema.clone(), doc.clone());
        assert_eq!(
            got,
            expected.map_err(str::to_owned),
            "case {i}: {schema} on {doc}"
        );
    }
}

#[test]
fn nesting() {
    let schema = json!({
        "bsonType": "object",
        "required": ["_id", "address"],
        "properties": {
            "_id": {"bsonType": "objectId"},
            "address": {
                "bsonType": "object",
                "required": ["zip"],
                "additionalProperties": false,
                "properties": {
                    "zip": {"bsonType": "string", "pattern": "^[0-9]{5}$"},
                    "lines": {"bsonType": "array", "items": {
                        "bsonType": "object", "properties": {"n": {"bsonType": "int"}}
                    }}
                }
            }
        }
    });
    let id = ObjectId::new();
    assert_eq!(
        check(
            schema.clone(),
            doc! {"_id": id, "address": {"zip": "12345"}}
        ),
        Ok(())
    );
    assert_eq!(
        check(schema.clone(), doc! {"_id": id, "address": {}}),
        Err("properties.address: required field 'zip' is missing".into())
    );
    assert_eq!(
        check(schema.clone(), doc! {"_id": id, "address": {"zip": "1"}}),
        Err(
            "properties.address.properties.zip: \"1\" does not match the pattern ^[0-9]{5}$".into()
        )
    );
    assert_eq!(
        check(
            schema.clone(),
            doc! {"_id": id, "address": {"zip": "12345", "lines": [{"n": 1}, {"n": "x"}]}}
        ),
        Err(
            "properties.address.properties.lines.items[1].properties.n: \"x\" is not of bsonType int"
                .into()
        )
    );
    assert_eq!(
        check(
            schema.clone(),
            doc! {"_id": id, "address": {"zip": "12345", "x": 1}}
        ),
        Err("properties.address: additional property 'x' is not allowed".into())
    );
    assert_eq!(
        check(schema, doc! {"_id": 1, "address": {"zip": "12345"}}),
        Err("properties._id: 1 is not of bsonType objectId".into())
    );
}

#[test]
fn invalid_schemas_name_the_path() {
    let cases = [
        (json!([]), "schema: a schema must be an object"),
        (
            json!({"bsonType": "integer"}),
            "bsonType: unknown type \"integer\"",
        ),
        (json!({"type": "int"}), "type: unknown type \"int\""),
        (
            json!({"bsonType": []}),
            "bsonType: must be a type name or a non-empty array of them",
        ),
        (
            json!({"properties": {"a": {"properties": {"b": {"minLength": -1}}}}}),
            "properties.a.properties.b.minLength: must be a non-negative integer",
        ),
        (
            json!({"properties": {"a": {"pattern": "("}}}),
            "properties.a.pattern: invalid regex",
        ),
        (
            json!({"items": {"minimum": "x"}}),
            "items.minimum: must be a number",
        ),
        (
            json!({"required": [1]}),
            "required: must be an array of field names",
        ),
        (json!({"enum": []}), "enum: must not be empty"),
        (
            json!({"exclusiveMinimum": true}),
            "exclusiveMinimum: needs minimum",
        ),
        (json!({"oneOf": []}), "oneOf: unsupported schema keyword"),
        (
            json!({"additionalProperties": 3}),
            "additionalProperties: a schema must be an object",
        ),
    ];
    for (schema, expected) in cases {
        let err = Schema::parse(&schema).unwrap_err();
        assert!(err.starts_with(expected), "{schema}: {err}");
    }
}
