//! MongoDB's BSON value order, value equality and canonical byte keys.
//!
//! Type order: MinKey < undefined < null < numbers < symbol/string < object <
//! array < binData < ObjectId < bool < date < timestamp < regex < dbPointer <
//! javascript < javascriptWithScope < MaxKey. Numbers of all four types compare by value.

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::number::{compare_nums, DecVal, Num};

/// MongoDB's canonical type rank (`canonicalizeBSONType`): values of
/// different ranks never compare equal, and `$gt`-style filters only compare
/// values of the same rank.
pub(crate) fn type_rank(v: &Bson) -> u8 {
    match v {
        Bson::MinKey => 0,
        Bson::Undefined => 1,
        Bson::Null => 2,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => 3,
        Bson::String(_) | Bson::Symbol(_) => 4,
        Bson::Document(_) => 5,
        Bson::Array(_) => 6,
        Bson::Binary(_) => 7,
        Bson::ObjectId(_) => 8,
        Bson::Boolean(_) => 9,
        Bson::DateTime(_) => 10,
        Bson::Timestamp(_) => 11,
        Bson::RegularExpression(_) => 12,
        Bson::DbPointer(_) => 13,
        Bson::JavaScriptCode(_) => 14,
        Bson::JavaScriptCodeWithScope(_) => 15,
        Bson::MaxKey => 16,
    }
}

/// Compares two values in MongoDB's order (no collation: strings compare by bytes).
pub(crate) fn compare_values(a: &Bson, b: &Bson) -> Ordering {
    let (ra, rb) = (type_rank(a), type_rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Bson::Document(x), Bson::Document(y)) => compare_docs(x, y),
        (Bson::Array(x), Bson::Array(y)) => compare_arrays(x, y),
        (Bson::Binary(x), Bson::Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then_with(|| u8::from(x.subtype).cmp(&u8::from(y.subtype)))
            .then_with(|| x.bytes.cmp(&y.bytes)),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.timestamp_millis().cmp(&y.timestamp_millis()),
        (Bson::Timestamp(x), Bson::Timestamp(y)) => {
            (x.time, x.increment).cmp(&(y.time, y.increment))
        }
        (Bson::RegularExpression(x), Bson::RegularExpression(y)) => x
            .pattern
            .cmp(&y.pattern)
            .then_with(|| x.options.cmp(&y.options)),
        (Bson::JavaScriptCode(x), Bson::JavaScriptCode(y)) => x.cmp(y),
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => x
            .code
            .cmp(&y.code)
            .then_with(|| compare_docs(&x.scope, &y.scope)),
        (Bson::DbPointer(x), Bson::DbPointer(y)) => format!("{x:?}").cmp(&format!("{y:?}")),
        _ => {
            if let (Some(x), Some(y)) = (Num::from_bson(a), Num::from_bson(b)) {
                return compare_nums(x, y);
            }
            if let (Some(x), Some(y)) = (string_of(a), string_of(b)) {
                return x.as_bytes().cmp(y.as_bytes());
            }
            Ordering::Equal
        }
    }
}

fn string_of(v: &Bson) -> Option<&str> {
    match v {
        Bson::String(s) | Bson::Symbol(s) => Some(s),
        _ => None,
    }
}

/// Compares documents element by element: type rank, then field name, then value.
pub(crate) fn compare_docs(a: &Document, b: &Document) -> Ordering {
    let mut ia = a.iter();
    let mut ib = b.iter();
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((ka, va)), Some((kb, vb))) => {
                let o = type_rank(va)
                    .cmp(&type_rank(vb))
                    .then_with(|| ka.as_bytes().cmp(kb.as_bytes()))
                    .then_with(|| compare_values(va, vb));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

fn compare_arrays(a: &[Bson], b: &[Bson]) -> Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        let o = type_rank(x)
            .cmp(&type_rank(y))
            .then_with(|| compare_values(x, y));
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// Whether two values are equal in MongoDB's sense (`1 == 1.0 == NumberLong(1)`).
pub(crate) fn values_equal(a: &Bson, b: &Bson) -> bool {
    type_rank(a) == type_rank(b) && compare_values(a, b) == Ordering::Equal
}

/// Whether two values are the same BSON (same types all the way down, doubles
/// by bit pattern): MongoDB's test for "this update changed nothing".
pub(crate) fn identical(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        (Bson::Document(x), Bson::Document(y)) => identical_docs(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| identical(p, q))
        }
        _ => a == b,
    }
}

/// [`identical`] for documents (field order matters).
pub(crate) fn identical_docs(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && identical(va, vb))
}

/// A byte key with `canonical_key(a) == canonical_key(b)` exactly when
/// `values_equal(a, b)`; used for the `_id` index, `$group` keys and `$addToSet`.
pub(crate) fn canonical_key(v: &Bson) -> Vec<u8> {
    // Room for a number up to 17 digits or an ObjectId without regrowing.
    let mut out = Vec::with_capacity(32);
    encode(v, &mut out);
    out
}

/// Calls `f` with the [`canonical_key`] of `v`, built in a buffer this
/// thread reuses: a lookup by key allocates nothing.
pub(crate) fn with_canonical_key<R>(v: &Bson, f: impl FnOnce(&[u8]) -> R) -> R {
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(64));
    }
    BUFFER.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut out) => {
            out.clear();
            encode(v, &mut out);
            let result = f(&out);
            // A huge key is not kept for the rest of the thread's life.
            if out.capacity() > 4096 {
                *out = Vec::with_capacity(64);
            }
            result
        }
        // Called from inside `f`: a buffer of its own.
        Err(_) => f(&canonical_key(v)),
    })
}

/// [`canonical_key`] appended to `out` (a buffer reused across values).
pub(crate) fn canonical_key_into(v: &Bson, out: &mut Vec<u8>) {
    encode(v, out);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn encode(v: &Bson, out: &mut Vec<u8>) {
    out.push(type_rank(v));
    match v {
        Bson::MinKey | Bson::MaxKey | Bson::Null | Bson::Undefined => {}
        Bson::Int32(i) => DecVal::encode_integer(i64::from(*i), out),
        Bson::Int64(i) => DecVal::encode_integer(*i, out),
        Bson::Double(_) | Bson::Decimal128(_) => {
            if let Some(n) = Num::from_bson(v) {
                DecVal::from_num(n).encode(out);
            }
        }
        Bson::String(s) | Bson::Symbol(s) | Bson::JavaScriptCode(s) => put_bytes(out, s.as_bytes()),
        Bson::Document(d) => encode_doc(d, out),
        Bson::Array(a) => {
            out.extend_from_slice(&(a.len() as u32).to_be_bytes());
            for x in a {
                encode(x, out);
            }
        }
        Bson::Binary(b) => {
            out.push(u8::from(b.subtype));
            put_bytes(out, &b.bytes);
        }
        Bson::ObjectId(o) => out.extend_from_slice(&o.bytes()),
        Bson::Boolean(b) => out.push(u8::from(*b)),
        Bson::DateTime(d) => out.extend_from_slice(&d.timestamp_millis().to_be_bytes()),
        Bson::Timestamp(t) => {
            out.extend_from_slice(&t.time.to_be_bytes());
            out.extend_from_slice(&t.increment.to_be_bytes());
        }
        Bson::RegularExpression(r) => {
            put_bytes(out, r.pattern.as_bytes());
            put_bytes(out, r.options.as_bytes());
        }
        Bson::JavaScriptCodeWithScope(c) => {
            put_bytes(out, c.code.as_bytes());
            encode_doc(&c.scope, out);
        }
        Bson::DbPointer(p) => put_bytes(out, format!("{p:?}").as_bytes()),
    }
}

fn encode_doc(d: &Document, out: &mut Vec<u8>) {
    out.extend_from_slice(&(d.len() as u32).to_be_bytes());
    for (k, x) in d {
        put_bytes(out, k.as_bytes());
        encode(x, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId, Binary, Decimal128, Regex, Timestamp};
    use std::str::FromStr;

    fn ascending() -> Vec<Bson> {
        vec![
            Bson::MinKey,
            Bson::Undefined,
            Bson::Null,
            Bson::Double(f64::NAN),
            Bson::Double(f64::NEG_INFINITY),
            Bson::Int64(-5),
            Bson::Int32(1),
            Bson::Double(1.5),
            Bson::Decimal128(Decimal128::from_str("2").unwrap()),
            Bson::String("".into()),
            Bson::String("B".into()),
            Bson::String("a".into()),
            Bson::Document(doc! {}),
            Bson::Document(doc! {"a": 1}),
            Bson::Document(doc! {"a": "x"}),
            Bson::Array(vec![]),
            Bson::Array(vec![Bson::Int32(1)]),
            Bson::Binary(Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes: vec![9],
            }),
            Bson::ObjectId(ObjectId::from_bytes([0; 12])),
            Bson::Boolean(false),
            Bson::Boolean(true),
            Bson::DateTime(bson::DateTime::from_millis(-1)),
            Bson::DateTime(bson::DateTime::from_millis(5)),
            Bson::Timestamp(Timestamp {
                time: 1,
                increment: 0,
            }),
            Bson::RegularExpression(Regex {
                pattern: "a".into(),
                options: "".into(),
            }),
            Bson::MaxKey,
        ]
    }

    #[test]
    fn total_order() {
        let vals = ascending();
        for (i, a) in vals.iter().enumerate() {
            for (j, b) in vals.iter().enumerate() {
                assert_eq!(compare_values(a, b), i.cmp(&j), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn equality_and_keys_agree() {
        let pairs = [
            (Bson::Int32(1), Bson::Double(1.0), true),
            (
                Bson::Int64(1 << 60),
                Bson::Double((1u64 << 60) as f64),
                true,
            ),
            (Bson::Double(-0.0), Bson::Int32(0), true),
            (
                Bson::Decimal128(Decimal128::from_str("1.0").unwrap()),
                Bson::Int64(1),
                true,
            ),
            (
                Bson::Double(f64::NAN),
                Bson::Decimal128(Decimal128::from_str("NaN").unwrap()),
                true,
            ),
            (Bson::String("1".into()), Bson::Int32(1), false),
            (
                Bson::Document(doc! {"a": 1, "b": 2}),
                Bson::Document(doc! {"b": 2, "a": 1}),
                false,
            ),
            (
                Bson::Document(doc! {"a": 1}),
                Bson::Document(doc! {"a": 1.0}),
                true,
            ),
            (
                Bson::Array(vec![Bson::Int32(1)]),
                Bson::Array(vec![Bson::Int64(1)]),
                true,
            ),
            (Bson::Null, Bson::Undefined, false),
            (
                Bson::Int64(i64::MAX),
                Bson::Double(9.223_372_036_854_776e18),
                false,
            ),
        ];
        for (a, b, eq) in pairs {
            assert_eq!(values_equal(&a, &b), eq, "{a:?} == {b:?}");
            assert_eq!(
                canonical_key(&a) == canonical_key(&b),
                eq,
                "key {a:?} {b:?}"
            );
        }
    }
}
