//! Request bodies in plain JSON parsed straight into BSON, in one pass.
//!
//! Most bodies hold no Extended JSON type wrapper (`{"$oid": …}`,
//! `{"$date": …}`, …). For those, reading the JSON into a
//! `serde_json::Value` and then converting the tree to BSON (what
//! [`super::request::parse_body_general`] does) builds every string,
//! map and array twice. [`parse`] builds the BSON values directly and
//! gives up (`None`) at the first thing it does not handle exactly as that
//! path would: a type wrapper key, a NUL byte in a key, a top level that is
//! not an object or has more than [`MAX_FIELDS`] fields, or any JSON
//! error. The caller then takes the general path, which produces the
//! result or the error, so both paths answer alike by construction: on the
//! bodies `parse` accepts, the conversion below is the one `bson` applies
//! to a `serde_json::Value` (numbers that fit `i32` become `Int32`, other
//! integers `Int64`, the rest `Double`; a repeated key keeps its first
//! position and its last value).

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

/// The most top-level fields [`parse`] takes; a body with more (no request
/// needs more than ten) goes to the general path, which dedupes by hashing.
pub(crate) const MAX_FIELDS: usize = 32;

/// The body's top-level fields in order (a repeated key keeps its first
/// position and its last value), when it is a JSON object of at most
/// [`MAX_FIELDS`] fields without Extended JSON type wrappers and without
/// NUL bytes in keys; `None` for anything else.
///
/// The top level is a list, not a [`Document`]: the decoder takes each
/// field out by name, and for a handful of fields a list needs no hash
/// table.
pub(crate) fn parse(bytes: &[u8]) -> Option<Vec<(String, Bson)>> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let fields = json.deserialize_map(TopLevel).ok()?;
    json.end().ok()?;
    Some(fields)
}

/// Deserializes the body's object into its fields.
struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = Vec<(String, Bson)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(String, Bson)> = Vec::with_capacity(8);
        while let Some(key) = map.next_key::<String>()? {
            check_key::<A::Error>(&key)?;
            let value = map.next_value_seed(PlainValue)?;
            if let Some((_, earlier)) = fields.iter_mut().find(|(name, _)| *name == key) {
                *earlier = value;
            } else if fields.len() == MAX_FIELDS {
                return Err(de::Error::custom("left to the general path"));
            } else {
                fields.push((key, value));
            }
        }
        Ok(fields)
    }
}

/// Refuses the keys [`parse`] leaves to the general path.
fn check_key<E: de::Error>(key: &str) -> Result<(), E> {
    if key.contains('\0') || (key.starts_with('$') && TYPE_WRAPPERS.contains(&key)) {
        return Err(E::custom("left to the general path"));
    }
    Ok(())
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
            check_key::<A::Error>(&key)?;
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
            assert_eq!(plain(text), Some(general(text)), "{text}");
        }
    }

    /// What [`parse`] makes of `text`, as a document.
    fn plain(text: &str) -> Option<Document> {
        parse(text.as_bytes()).map(|fields| fields.into_iter().collect())
    }

    /// A body of `n` fields, the last one repeating the first when `repeat`.
    fn wide(n: usize, repeat: bool) -> String {
        let mut fields: Vec<String> = (0..n).map(|i| format!(r#""f{i}":{i}"#)).collect();
        if repeat {
            fields.push(r#""f0":"again""#.into());
        }
        format!("{{{}}}", fields.join(","))
    }

    #[test]
    fn bodies_of_many_top_level_fields_are_left_to_the_general_path() {
        for text in [wide(MAX_FIELDS, false), wide(MAX_FIELDS, true)] {
            assert_eq!(plain(&text), Some(general(&text)), "{text}");
        }
        assert_eq!(plain(&wide(MAX_FIELDS + 1, false)), None);
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
