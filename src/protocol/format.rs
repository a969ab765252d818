//! Rendering BSON as the Data API's two response formats.
//!
//! - [`Format::Json`]: the Data API's "JSON" mode (spec §4.2): ObjectId as a hex
//!   string, dates as ISO-8601 UTC strings with milliseconds, Decimal128 as a
//!   string, all integers and doubles as JSON numbers, and the capitalised
//!   shapes `{"Subtype","Data"}`, `{"Pattern","Options"}`, `{"T","I"}` for
//!   binary, regex and timestamp values.
//! - [`Format::Ejson`]: canonical Extended JSON v2, type-exact.
//!
//! Both writers append to a byte buffer directly; no intermediate JSON tree.

use std::fmt::Write as _;

use base64::Engine as _;
use bson::spec::BinarySubtype;
use bson::{Bson, Document};

/// A response format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Plain JSON, types flattened as the Data API's JSON mode does.
    #[default]
    Json,
    /// Canonical Extended JSON.
    Ejson,
}

impl Format {
    /// The response `Content-Type` for this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Ejson => "application/ejson",
        }
    }

    /// The format an `Accept` header asks for, if it names one of the two.
    ///
    /// ```
    /// use tower_data_api::Format;
    /// assert_eq!(Format::from_accept("application/ejson"), Some(Format::Ejson));
    /// assert_eq!(Format::from_accept("text/html, application/json;q=0.9"), Some(Format::Json));
    /// assert_eq!(Format::from_accept("*/*"), None);
    /// ```
    pub fn from_accept(accept: &str) -> Option<Format> {
        accept.split(',').find_map(|range| {
            let media = range.split(';').next().unwrap_or("").trim();
            if media.eq_ignore_ascii_case("application/json") {
                Some(Format::Json)
            } else if media.eq_ignore_ascii_case("application/ejson") {
                Some(Format::Ejson)
            } else {
                None
            }
        })
    }

    /// Appends `doc` to `out` in this format.
    pub fn write_document(self, doc: &Document, out: &mut Vec<u8>) {
        self.write_object(doc.iter().map(|(key, value)| (key.as_str(), value)), out);
    }

    /// Appends an object of `fields` to `out` in this format: what
    /// [`write_document`](Self::write_document) writes for a document of
    /// them, without building one.
    pub(crate) fn write_fields(self, fields: &[(&str, &Bson)], out: &mut Vec<u8>) {
        self.write_object(fields.iter().copied(), out);
    }

    /// Appends an object of these fields, in order.
    fn write_object<'a>(
        self,
        fields: impl Iterator<Item = (&'a str, &'a Bson)>,
        out: &mut Vec<u8>,
    ) {
        out.push(b'{');
        for (i, (key, value)) in fields.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_string(key, out);
            out.push(b':');
            self.write_value(value, out);
        }
        out.push(b'}');
    }

    /// Appends one value to `out` in this format.
    pub fn write_value(self, value: &Bson, out: &mut Vec<u8>) {
        match self {
            Format::Json => write_json(value, out),
            Format::Ejson => write_ejson(value, out),
        }
    }

    /// Renders a document to a new buffer.
    pub fn document_to_vec(self, doc: &Document) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.write_document(doc, &mut out);
        out
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // serde_json's escaper is exact and fast; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_raw(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(s.as_bytes());
}

fn write_array(items: &[Bson], format: Format, out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        format.write_value(item, out);
    }
    out.push(b']');
}

/// A field of a small object: its key and a writer for its value.
type Field<'a> = (&'a str, &'a dyn Fn(&mut Vec<u8>));

/// `{"k1":v1,"k2":v2}` from fields that write their own values.
fn write_object(fields: &[Field<'_>], out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        value(out);
    }
    out.push(b'}');
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn subtype_byte(subtype: BinarySubtype) -> u8 {
    u8::from(subtype)
}

fn write_json(value: &Bson, out: &mut Vec<u8>) {
    match value {
        Bson::Double(f) => write_raw(&json_double(*f), out),
        Bson::String(s) | Bson::Symbol(s) | Bson::JavaScriptCode(s) => write_string(s, out),
        Bson::Array(items) => write_array(items, Format::Json, out),
        Bson::Document(doc) => Format::Json.write_document(doc, out),
        Bson::Boolean(b) => write_raw(if *b { "true" } else { "false" }, out),
        Bson::Null | Bson::Undefined => write_raw("null", out),
        Bson::RegularExpression(re) => write_object(
            &[
                ("Pattern", &|o| write_string(&re.pattern, o)),
                ("Options", &|o| write_string(&re.options, o)),
            ],
            out,
        ),
        Bson::JavaScriptCodeWithScope(code) => write_object(
            &[
                ("Code", &|o| write_string(&code.code, o)),
                ("Scope", &|o| Format::Json.write_document(&code.scope, o)),
            ],
            out,
        ),
        Bson::Int32(i) => write_raw(&i.to_string(), out),
        Bson::Int64(i) => write_raw(&i.to_string(), out),
        Bson::Timestamp(ts) => write_object(
            &[
                ("T", &|o| write_raw(&ts.time.to_string(), o)),
                ("I", &|o| write_raw(&ts.increment.to_string(), o)),
            ],
            out,
        ),
        Bson::Binary(bin) => write_object(
            &[
                ("Subtype", &|o| {
                    write_raw(&subtype_byte(bin.subtype).to_string(), o)
                }),
                ("Data", &|o| write_string(&base64(&bin.bytes), o)),
            ],
            out,
        ),
        Bson::ObjectId(oid) => write_string(&oid.to_hex(), out),
        Bson::DateTime(dt) => match iso_date(*dt) {
            Some(text) => write_string(&text, out),
            // Years outside 0000–9999 have no ISO-8601 basic form: keep the
            // exact value in its canonical shape rather than lose it.
            None => write_ejson(value, out),
        },
        Bson::MaxKey | Bson::MinKey => write_raw("{}", out),
        Bson::Decimal128(d) => write_string(&d.to_string(), out),
        Bson::DbPointer(_) => write_ejson(value, out),
    }
}

fn write_ejson(value: &Bson, out: &mut Vec<u8>) {
    let wrapped = |key: &str, text: &str, out: &mut Vec<u8>| {
        write_object(&[(key, &|o| write_string(text, o))], out)
    };
    match value {
        Bson::Double(f) => wrapped("$numberDouble", &canonical_double(*f), out),
        Bson::String(s) => write_string(s, out),
        Bson::Array(items) => write_array(items, Format::Ejson, out),
        Bson::Document(doc) => Format::Ejson.write_document(doc, out),
        Bson::Boolean(b) => write_raw(if *b { "true" } else { "false" }, out),
        Bson::Null => write_raw("null", out),
        Bson::Undefined => write_raw(r#"{"$undefined":true}"#, out),
        Bson::RegularExpression(re) => {
            let mut options: Vec<char> = re.options.chars().collect();
            options.sort_unstable();
            let options: String = options.into_iter().collect();
            write_object(
                &[("$regularExpression", &|o| {
                    write_object(
                        &[
                            ("pattern", &|o| write_string(&re.pattern, o)),
                            ("options", &|o| write_string(&options, o)),
                        ],
                        o,
                    )
                })],
                out,
            )
        }
        Bson::JavaScriptCode(code) => wrapped("$code", code, out),
        Bson::JavaScriptCodeWithScope(code) => write_object(
            &[
                ("$code", &|o| write_string(&code.code, o)),
                ("$scope", &|o| Format::Ejson.write_document(&code.scope, o)),
            ],
            out,
        ),
        Bson::Symbol(s) => wrapped("$symbol", s, out),
        Bson::Int32(i) => wrapped("$numberInt", &i.to_string(), out),
        Bson::Int64(i) => wrapped("$numberLong", &i.to_string(), out),
        Bson::Timestamp(ts) => write_object(
            &[("$timestamp", &|o| {
                write_object(
                    &[
                        ("t", &|o| write_raw(&ts.time.to_string(), o)),
                        ("i", &|o| write_raw(&ts.increment.to_string(), o)),
                    ],
                    o,
                )
            })],
            out,
        ),
        Bson::Binary(bin) => write_object(
            &[("$binary", &|o| {
                write_object(
                    &[
                        ("base64", &|o| write_string(&base64(&bin.bytes), o)),
                        ("subType", &|o| {
                            write_string(&format!("{:02x}", subtype_byte(bin.subtype)), o)
                        }),
                    ],
                    o,
                )
            })],
            out,
        ),
        Bson::ObjectId(oid) => wrapped("$oid", &oid.to_hex(), out),
        Bson::DateTime(dt) => write_object(
            &[("$date", &|o| {
                wrapped("$numberLong", &dt.timestamp_millis().to_string(), o)
            })],
            out,
        ),
        Bson::MaxKey => write_raw(r#"{"$maxKey":1}"#, out),
        Bson::MinKey => write_raw(r#"{"$minKey":1}"#, out),
        Bson::Decimal128(d) => wrapped("$numberDecimal", &d.to_string(), out),
        Bson::DbPointer(pointer) => {
            // bson 2 keeps the fields private; its own extended JSON form is exact.
            let ext = Bson::DbPointer(pointer.clone()).into_canonical_extjson();
            let _ = serde_json::to_writer(&mut *out, &ext);
        }
    }
}

/// A double as JSON mode writes it: the shortest text that reads back to the
/// same value, in exponent form outside [1e-6, 1e21) as Go's encoder does;
/// non-finite values (which JSON cannot express) as the strings `"NaN"`,
/// `"Infinity"` and `"-Infinity"`.
pub(crate) fn json_double(f: f64) -> String {
    if f.is_nan() {
        return "\"NaN\"".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        }
        .to_owned();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{f:e}");
        match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => text,
        }
    } else {
        format!("{f}")
    }
}

/// A double as canonical Extended JSON writes it inside `$numberDouble`:
/// `"1.0"`, `"-0.0"`, `"1.2345678921232E+18"`, `"NaN"`, `"Infinity"`.
pub(crate) fn canonical_double(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let scientific = format!("{f:e}");
    let (mantissa, exp) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if f != 0.0 && !(-4..16).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        let mut text = String::with_capacity(mantissa.len() + 6);
        text.push_str(mantissa);
        let _ = write!(text, "E{sign}{}", exp.abs());
        text
    } else {
        let mut text = format!("{f}");
        if !text.contains('.') {
            text.push_str(".0");
        }
        text
    }
}

/// `2022-01-12T02:33:23.067Z`, or `None` outside years 0–9999.
pub(crate) fn iso_date(dt: bson::DateTime) -> Option<String> {
    let millis = dt.timestamp_millis();
    let nanos = i128::from(millis) * 1_000_000;
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    if !(0..=9999).contains(&time.year()) {
        return None;
    }
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time.format(&format).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId, Binary, Decimal128, Regex, Timestamp};

    fn json(value: Bson) -> String {
        let mut out = Vec::new();
        Format::Json.write_value(&value, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn ejson(value: Bson) -> String {
        let mut out = Vec::new();
        Format::Ejson.write_value(&value, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_mode_matches_the_spec_type_table() {
        let oid = ObjectId::parse_str("64224f3cd79f54ad342dd9b1").unwrap();
        assert_eq!(json(Bson::ObjectId(oid)), r#""64224f3cd79f54ad342dd9b1""#);
        let date = bson::DateTime::from_millis(1_641_954_803_067);
        assert_eq!(json(Bson::DateTime(date)), r#""2022-01-12T02:33:23.067Z""#);
        assert_eq!(
            json(Bson::DateTime(bson::DateTime::from_millis(0))),
            r#""1970-01-01T00:00:00.000Z""#
        );
        let dec: Decimal128 = "9823.1297".parse().unwrap();
        assert_eq!(json(Bson::Decimal128(dec)), r#""9823.1297""#);
        assert_eq!(json(Bson::Double(10.5)), "10.5");
        assert_eq!(json(Bson::Int32(10)), "10");
        assert_eq!(json(Bson::Int64(50)), "50");
        let bin = Binary {
            subtype: BinarySubtype::Md5,
            bytes: vec![1, 2, 3],
        };
        assert_eq!(json(Bson::Binary(bin)), r#"{"Subtype":5,"Data":"AQID"}"#);
        let re = Regex {
            pattern: "^H".into(),
            options: "i".into(),
        };
        assert_eq!(
            json(Bson::RegularExpression(re)),
            r#"{"Pattern":"^H","Options":"i"}"#
        );
        let ts = Timestamp {
            time: 1_565_545_664,
            increment: 1,
        };
        assert_eq!(json(Bson::Timestamp(ts)), r#"{"T":1565545664,"I":1}"#);
        assert_eq!(json(Bson::MinKey), "{}");
        assert_eq!(json(Bson::MaxKey), "{}");
        assert_eq!(json(Bson::Null), "null");
    }

    #[test]
    fn ejson_mode_is_canonical() {
        let oid = ObjectId::parse_str("64224f3cd79f54ad342dd9b1").unwrap();
        assert_eq!(
            ejson(Bson::ObjectId(oid)),
            r#"{"$oid":"64224f3cd79f54ad342dd9b1"}"#
        );
        assert_eq!(
            ejson(Bson::DateTime(bson::DateTime::from_millis(
                1_683_248_523_456
            ))),
            r#"{"$date":{"$numberLong":"1683248523456"}}"#
        );
        assert_eq!(ejson(Bson::Int32(10)), r#"{"$numberInt":"10"}"#);
        assert_eq!(ejson(Bson::Int64(50)), r#"{"$numberLong":"50"}"#);
        assert_eq!(ejson(Bson::Double(10.5)), r#"{"$numberDouble":"10.5"}"#);
        assert_eq!(ejson(Bson::Double(1.0)), r#"{"$numberDouble":"1.0"}"#);
        let bin = Binary {
            subtype: BinarySubtype::Md5,
            bytes: vec![1, 2, 3],
        };
        assert_eq!(
            ejson(Bson::Binary(bin)),
            r#"{"$binary":{"base64":"AQID","subType":"05"}}"#
        );
        let re = Regex {
            pattern: "^H".into(),
            options: "mi".into(),
        };
        assert_eq!(
            ejson(Bson::RegularExpression(re)),
            r#"{"$regularExpression":{"pattern":"^H","options":"im"}}"#
        );
        assert_eq!(ejson(Bson::MinKey), r#"{"$minKey":1}"#);
        let nested = doc! {"a": [1, {"b": "x"}]};
        assert_eq!(
            ejson(Bson::Document(nested)),
            r#"{"a":[{"$numberInt":"1"},{"b":"x"}]}"#
        );
    }

    #[test]
    fn doubles_format_like_the_reference_encoders() {
        for (value, json_text, canonical) in [
            (1.0, "1", "1.0"),
            (-0.0, "-0", "-0.0"),
            (1.0001220703125, "1.0001220703125", "1.0001220703125"),
            (
                1.2345678921232e18,
                "1234567892123200000",
                "1.2345678921232E+18",
            ),
            (1e21, "1e+21", "1E+21"),
            (1.5e-7, "1.5e-7", "1.5E-7"),
            (0.0001, "0.0001", "0.0001"),
        ] {
            assert_eq!(json_double(value), json_text, "json {value}");
            assert_eq!(canonical_double(value), canonical, "canonical {value}");
        }
        assert_eq!(json_double(f64::NAN), "\"NaN\"");
        assert_eq!(canonical_double(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(
            json(Bson::String("a\"b\n\u{1}".into())),
            r#""a\"b\n\u0001""#
        );
    }
}
