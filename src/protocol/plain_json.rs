//! Request bodies in plain JSON parsed straight into BSON, in one pass.
//!
//! Most bodies hold no Extended JSON type wrapper (`{"$oid": …}`,
//! `{"$date": …}`, …). For those, reading the JSON into a
//! `serde_json::Value` and then converting the tree to BSON (what
//! [`super::request::parse_body_general`] does) builds every string,
//! map and array twice. [`parse`] builds the BSON document directly and
//! gives up (`None`) at the first thing it does not handle exactly as that
//! path would: a type wrapper key, a NUL byte in a key, a top level that is
//! not an object, or any JSON error. The caller then takes the general
//! path, which produces the result or the error, so both paths answer alike
//! by construction: on the bodies `parse` accepts, the conversion below is
//! the one `bson` applies to a `serde_json::Value` (numbers that fit `i32`
//! become `Int32`, other integers `Int64`, the rest `Double`; a repeated key
//! keeps its first position and its last value).

use std::fmt;

use bson::{Bson, Document};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The keys that make a JSON object an Extended JSON value rather than a
/// document (the ones `bson`'s conversion recognises).
const TYPE_WRAPPERS: [&str; 16] = [
    "$oid",
    "$symbol",
    "$regularExpression",
    "$numberInt",
    "$numberLong",
    "$numberDouble",
    "$numberDecimal",
    "$binary",
    "$uuid",
    "$code",
    "$timestamp",
    "$date",
    "$minKey",
    "$maxKey",
    "$dbPointer",
    "$undefined",
];

/// The body as a document, when it is a JSON object without Extended JSON
/// type wrappers and without NUL bytes in keys; `None` for anything else.
pub(crate) fn parse(bytes: &[u8]) -> Option<Document> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let Bson::Document(doc) = PlainValue.deserialize(&mut json).ok()? else {
        return None;
    };
    json.end().ok()?;
    Some(doc)
}

/// Deserializes one JSON value as BSON, refusing what [`parse`] leaves to
/// the general path.
#[derive(Clone, Copy)]
struct PlainValue;

impl<'de> DeserializeSeed<'de> for PlainValue {
    type Value = Bson;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Bson, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PlainValue {
    type Value = Bson;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Bson, E> {
        Ok(Bson::Boolean(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Bson, E> {
        Ok(i32::try_from(v).map_or(Bson::Int64(v), Bson::Int32))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Bson, E> {
        Ok(match i64::try_from(v) {
            Ok(v) => i32::try_from(v).map_or(Bson::Int64(v), Bson::Int32),
            // What `serde_json::Number::as_f64` gives for it.
            Err(_) => Bson::Double(v as f64),
        })
    }

    fn visit_f64<E>(self, v: f64) -> Result<Bson, E> {
        Ok(Bson::Double(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Bson, E> {
        Ok(Bson::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Bson, E> {
        Ok(Bson::String(v))
    }

    fn visit_unit<E>(self) -> Result<Bson, E> {
        Ok(Bson::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bson, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Bson::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Bson, A::Error> {
        let mut doc = Document::new();
        while let Some(key) = map.next_key::<String>()? {
            if key.contains('\0') || (key.starts_with('$') && TYPE_WRAPPERS.contains(&&*key)) {
                return Err(de::Error::custom("left to the general path"));
            }
            let value = map.next_value_seed(self)?;
            doc.insert(key, value);
        }
        Ok(Bson::Document(doc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the general path makes of `text` (a JSON object).
    fn general(text: &str) -> Document {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        match Bson::try_from(value).unwrap() {
            Bson::Document(doc) => doc,
            other => panic!("not a document: {other:?}"),
        }
    }

    #[test]
    fn plain_bodies_convert_as_the_general_path_does() {
        for text in [
            r#"{"dataSource":"a","database":"b","collection":"c","filter":{"_id":500}}"#,
            r#"{"n":[0,-1,2147483647,2147483648,-2147483649,9223372036854775807,
                18446744073709551615,-9223372036854775808,1.0,1e3,-0,-0.0,0.1]}"#,
            r#"{"a":null,"b":true,"c":false,"d":"x\u0000y","e":[],"f":{},"g":[[{"h":[1]}]]}"#,
            r#"{"update":{"$inc":{"n":1},"$set":{"a.b":"x"}},"filter":{"$or":[{"a":{"$gt":1}}]}}"#,
            r#"{"k":1,"j":2,"k":3}"#,
            r#"{"$ref":"c","$id":1,"$regex":"a","$options":"i","$type":"string"}"#,
            r#" { "spaced" : "out" } "#,
        ] {
            assert_eq!(parse(text.as_bytes()), Some(general(text)), "{text}");
        }
    }

    #[test]
    fn everything_else_is_left_to_the_general_path() {
        for text in [
            r#"{"_id":{"$oid":"0123456789abcdef01234567"}}"#,
            r#"{"a":[{"$date":"2020-01-01T00:00:00Z"}]}"#,
            r#"{"n":{"x":1,"$numberLong":"1"}}"#,
            r#"{"a\u0000b":1}"#,
            r#"[1,2]"#,
            r#""text""#,
            r#"{"a":1} trailing"#,
            r#"{"a":1"#,
            r#"{"a":nan}"#,
            "",
        ] {
            assert_eq!(parse(text.as_bytes()), None, "{text}");
        }
    }
}
