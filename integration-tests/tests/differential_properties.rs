//! Differential property tests: generated documents, filters, sorts,
//! projections and updates run through the [`Backend`] trait on the embedded
//! engine ([`MemoryBackend`]) and on the driver backend ([`MongoBackend`])
//! against the wire-protocol peer, in-process, and the answers compared.
//!
//! - Seeded and reproducible: the seed is printed; set `DIFF_SEED=<n>` to
//!   replay a run, `DIFF_ROUNDS=<n>` to change how many collections are
//!   generated (each collection is inserted once and then queried and updated
//!   a few hundred times).
//! - Reads are compared in order when the sort ends in the unique `_id`
//!   tiebreak, as multisets otherwise. Errors: both sides must fail (messages
//!   may differ); one side failing alone is a disagreement.
//! - Writes: the outcome counts and the documents afterwards are compared.
//!   `$currentDate` values are compared by type only, and the two sides are
//!   then re-synchronised.
//! - Every disagreement fails the test, except those in [`PEER_EXCEPTIONS`]:
//!   cases where the peer is the one that is wrong against MongoDB 8's
//!   documented semantics (two are marked "not decided"). Each entry says
//!   whether the generator keeps away from the case or the comparison
//!   tolerates exactly that case (and the run prints how often it did).
//! - An `updateMany` that fails part-way is not compared document by
//!   document: MongoDB keeps the documents updated before the error, the
//!   engine applies all or nothing; the peer is re-synchronised.
//!
//! Needs `DATA_API_TEST_MONGODB_URI` (fails without it unless
//! `DATA_API_TEST_NO_PEER=1`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use bson::oid::ObjectId;
use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, DateTime, Decimal128, Document, Regex};
use integration_tests::{peer_uri, rng::Rng, unique_db};
use tower_data_api::backend::{
    Backend, BackendError, BackendErrorKind, FindQuery, MemoryBackend, MongoBackend,
    MongoBackendOptions, Namespace, UpdateModifications, UpdateOutcome, UpdateQuery,
};

/// The seed used when `DIFF_SEED` is not set.
const DEFAULT_SEED: u64 = 0x00D1_FFE2_E4C3_2026;
/// Generated collections when `DIFF_ROUNDS` is not set.
const DEFAULT_ROUNDS: usize = 24;
/// Documents per generated collection.
const DOCS_PER_COLLECTION: usize = 30;
/// Read cases (find with filter, sort, projection, skip, limit) per collection.
const QUERIES_PER_COLLECTION: usize = 360;
/// `updateOne`-by-`_id` cases per collection.
const UPDATES_PER_COLLECTION: usize = 60;
/// `updateMany`-over-a-filter cases per collection.
const UPDATE_MANYS_PER_COLLECTION: usize = 12;
/// Upsert cases per collection.
const UPSERTS_PER_COLLECTION: usize = 8;

/// Disagreements where the peer (SecantusDB) is wrong against MongoDB 8's
/// documented semantics: (short name, reason). Each reason ends with
/// "Avoided:" (the generator keeps away; the comment at that spot names the
/// entry) or "Tolerated:" (the comparison accepts exactly that case).
const PEER_EXCEPTIONS: &[(&str, &str)] = &[
    (
        "lazy-validation",
        "the peer checks query and update operator arguments only when it evaluates them \
         against a document, so an invalid request ($size: -1, $mod: [0, 1], \
         $bitsAllSet: -1, $type: \"nosuchtype\", $nor: [], {$foo: 1}, $inc/$mul by a \
         string) that matches nothing, or is short-circuited, succeeds; MongoDB rejects it \
         when it parses the request. Tolerated: for cases the generator marks invalid the \
         engine must fail and the peer may answer",
    ),
    (
        "positional-all",
        "the peer accepts `$[]` updates MongoDB rejects: on a missing or non-array field \
         (\"The path 'c' must exist in the document in order to apply array updates\", \
         \"Cannot apply array updates to non-array element\"; also through an upsert), \
         `c.$[].x` over a non-document element (\"Cannot create field 'x' in element\"), \
         and `c.$[]` next to `c.3` in one update (ConflictingUpdateOperators: `c` cannot be \
         both an array node and an object node). Tolerated: the update uses `$[]`, the \
         engine fails with one of exactly these errors, the peer succeeds",
    ),
    (
        "update-field-order",
        "MongoDB (since 5.0, documented under $set) and the engine apply an update's \
         fields in lexicographic order (numeric names in numeric order), so \
         {$rename: {d: 'f'}, $set: {b: 1}} adds b before f and {$min: {'c.3': null, \
         'c.0': x}} on c: [] sets c.0 before padding up to c.3; the peer follows the order \
         of the update document. Tolerated: after an update naming more than one field the \
         documents may differ in field order only; avoided: one indexed path into an array \
         per update",
    ),
    (
        "bit-result-type",
        "$bit widens: int32 with an int64 operand gives int64 (MongoDB's SafeNum, and the \
         engine); a missing field starts as int32 0. The peer keeps int32 and even narrows \
         an int64 (reporting a modification where MongoDB makes none). Tolerated: after a \
         $bit update the documents (and modifiedCount) may differ in int32/int64 width only",
    ),
    (
        "update-past-array-end",
        "$push/$addToSet/$inc/$mul on `c.3` when `c` has two elements: MongoDB creates the \
         target as it does for $set (padding with nulls) and applies the operator to the new \
         field; the peer pads and then fails on the null (\"The field 'c.3' must be an array \
         but is of type null\", \"… of non-numeric type null\", \"… has non-array type \
         null\"). Tolerated: exactly those peer errors on an update the engine applies",
    ),
    (
        "mul-zero-type",
        "$mul of a double 0.0 by a decimal: MongoDB (SafeNum) gives a decimal zero and, as \
         the type changed, counts the document modified; the peer keeps the double and \
         counts it too. Tolerated: after a $mul the documents (and modifiedCount) may \
         differ in the type of zero values only",
    ),
    (
        "upsert-in-regex",
        "an upsert whose filter has {a: {$in: [/re/]}}: the peer copies the regex into the \
         inserted document; MongoDB only copies equalities (a one-element $in of a regex \
         is a regex match). Avoided: upsert filters have no regex inside $in",
    ),
    (
        "python-bool-equality",
        "$pullAll/$pull/$addToSet compare with Python's `==` on the peer, where false == 0 \
         and true == 1.0: {$pullAll: {b: [-0.0]}} removes `false`. MongoDB compares BSON \
         values, where a bool never equals a number. Avoided: those operands carry no bools \
         and no numbers equal to 0 or 1",
    ),
    (
        "all-array-element",
        "{c: {$all: [[\"x y\"]]}} on c: [\"x y\"]: MongoDB reads $all: [A] as {c: A}, which \
         matches the whole array; the peer does not. Avoided: no arrays inside $all",
    ),
    (
        "push-sort-by-field",
        "not decided, so avoided: $push with $sort: {x: 1} over elements that are not \
         documents: the peer orders them by value, the engine keeps them as equal (their \
         `x` is missing). Avoided: $push $sort only as 1/-1",
    ),
    (
        "inc-negative-zero",
        "$inc of a missing field by -0.0: MongoDB sets the argument itself (-0.0, as the \
         engine does); the peer computes 0 + -0.0 = 0.0. Avoided: no -0.0 operand for $inc",
    ),
    (
        "elemmatch-mod",
        "$elemMatch's value form with $mod over an element that is itself an array (filter \
         {c: {$elemMatch: {$mod: [5, 0]}}} and the same projection): the peer looks inside \
         it ([[10, 3]] matches); MongoDB tests each element itself ($mod matches numbers \
         only), as the peer does for the other operators. Avoided: no $mod inside \
         $elemMatch's value form",
    ),
    (
        "positional-paths",
        "numeric path segments in filters: the peer neither looks into an array found at \
         `c.0` ({\"c.0\": {$lt: \"B\"}} misses c: [[false, \"10\"]]; {\"c.1\": null} misses \
         c: [1, [null]]) nor keeps MongoDB's rule that an index past the end is not \
         null ({\"c.0\": null} matches c: [] on the peer, not on MongoDB); documents \
         inside the array lacking a field \"0\" are treated as null by the peer (not \
         decided against the manual). Avoided: no numeric segments in filter paths",
    ),
    (
        "elemmatch-nested-array",
        "$elemMatch's document form applied to an element that is itself an array: \
         MongoDB (and the engine) treat the inner array as a document with fields \
         \"0\", \"1\", … so {$elemMatch: {x: {$exists: false}}} matches [[7]]; the peer \
         skips such elements. Avoided: the document form only gets conditions that cannot \
         match a missing field",
    ),
    (
        "sort-positional-array",
        "sorting by `c.0` where c[0] is itself an array: the peer compares the inner array \
         as one array value (after every other type) instead of using its smallest/largest \
         element, and puts an empty array after other types where the manual's sort order \
         puts `[]` below null. Avoided: no numeric segments in sort paths",
    ),
    (
        "sort-missing-in-array",
        "sorting by `a.x` where `a` is an array of documents some of which lack `x`: the \
         peer ignores those elements; MongoDB's sort keys (as its index keys, e.g. \
         {a: [{}, {x: 10}]} gives keys null and 10) include null for them. Avoided: sort \
         paths never run through an array of documents",
    ),
    (
        "all-null",
        "{path: {$all: [null]}} matches nothing on the peer; in MongoDB $all: [v] is \
         {path: v}, so it matches null and missing values. Avoided: no null inside $all",
    ),
    (
        "slice-missing-parent",
        "{\"d.x\": {$slice: n}} with d present but x missing: the peer drops `d`, MongoDB \
         keeps the enclosing document (`d: {}`) as for any dotted inclusion. Avoided: \
         $slice only on top-level fields",
    ),
];

// ---------------------------------------------------------------------------
// Values and documents.

const STRINGS: &[&str] = &[
    "", "a", "ab", "abc", "Ab", "b", "ba", "x y", "10", "é", "a\nb", "B",
];
const OIDS: &[&str] = &[
    "000000000000000000000001",
    "64b7f0a1c2d3e4f5a6b7c8d9",
    "ffffffffffffffffffffffff",
];
const DATES: &[i64] = &[-1_000, 0, 86_400_000, 1_700_000_000_000];
const DECIMALS: &[&str] = &["0", "-0", "1", "1.0", "2.5", "-1", "7", "1E+3", "NaN"];
const DOUBLES: &[f64] = &[
    -1.5,
    -0.0,
    0.0,
    1.0,
    2.0,
    2.5,
    5.0,
    7.25,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
];
const INTS: &[i32] = &[-3, -1, 0, 1, 2, 3, 5, 7, 10, 12];
const LONGS: &[i64] = &[-1, 0, 1, 2, 5, 7, 1 << 40];

fn decimal(text: &str) -> Bson {
    Bson::Decimal128(Decimal128::from_str(text).expect("decimal literal"))
}

fn oid(hex: &str) -> Bson {
    Bson::ObjectId(ObjectId::parse_str(hex).expect("ObjectId literal"))
}

/// A number of one of the four numeric types.
fn number(rng: &mut Rng) -> Bson {
    match rng.below(5) {
        0 | 1 => Bson::Int32(rng.pick(INTS)),
        2 => Bson::Int64(rng.pick(LONGS)),
        3 => Bson::Double(rng.pick(DOUBLES)),
        _ => decimal(rng.pick(DECIMALS)),
    }
}

/// A scalar of any of the generated types.
fn scalar(rng: &mut Rng) -> Bson {
    match rng.below(16) {
        0 | 1 => Bson::Null,
        2..=6 => number(rng),
        7..=9 => Bson::String(rng.pick(STRINGS).to_owned()),
        10 => Bson::DateTime(DateTime::from_millis(rng.pick(DATES))),
        11 => oid(rng.pick(OIDS)),
        12 | 13 => Bson::Boolean(rng.chance(50)),
        14 => Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![rng.pick(&[0u8, 1, 5, 255])],
        }),
        _ => match rng.below(2) {
            0 => Bson::MinKey,
            _ => Bson::MaxKey,
        },
    }
}

const SUB_FIELDS: &[&str] = &["x", "y", "z"];

/// A value: a scalar, or (while `depth` allows) an array or a sub-document.
fn value(rng: &mut Rng, depth: u32, array_pct: u64, doc_pct: u64) -> Bson {
    if depth < 2 && rng.chance(array_pct) {
        let n = rng.below(5);
        return Bson::Array((0..n).map(|_| value(rng, depth + 1, 20, 30)).collect());
    }
    if depth < 2 && rng.chance(doc_pct) {
        return Bson::Document(sub_document(rng, depth));
    }
    scalar(rng)
}

fn sub_document(rng: &mut Rng, depth: u32) -> Document {
    let mut d = Document::new();
    let start = rng.below(SUB_FIELDS.len());
    for i in 0..SUB_FIELDS.len() {
        let name = SUB_FIELDS[(start + i) % SUB_FIELDS.len()];
        if rng.chance(65) {
            d.insert(name, value(rng, depth + 1, 15, 15));
        }
    }
    d
}

/// A generated document with an integer `_id`.
fn document(rng: &mut Rng, id: i32) -> Document {
    let mut d = doc! { "_id": id };
    // a: anything; b: mostly scalar; c: mostly arrays; d: mostly sub-documents.
    // `c` arrays hold no documents and `d` is never an array, so sorts on
    // `d.x`/`c` never meet arrays of documents (`sort-missing-in-array`).
    for (name, array_pct, doc_pct) in [("a", 25, 20), ("b", 5, 5), ("c", 70, 0), ("d", 0, 85)] {
        if rng.chance(75) {
            let v = if name == "c" && rng.chance(70) {
                let n = rng.below(5);
                Bson::Array(
                    (0..n)
                        .map(|_| {
                            if rng.chance(15) {
                                Bson::Array((0..rng.below(3)).map(|_| scalar(rng)).collect())
                            } else {
                                scalar(rng)
                            }
                        })
                        .collect(),
                )
            } else {
                value(rng, 0, array_pct, doc_pct)
            };
            d.insert(name, v);
        }
    }
    d
}

// ---------------------------------------------------------------------------
// Filters.

/// Filter paths. No numeric segments (`positional-paths`).
const PATHS: &[&str] = &[
    "a", "a", "b", "b", "c", "c", "d", "a.x", "a.y", "c.x", "d.x", "d.y", "d.x.y", "b.x", "e",
    "_id",
];

/// A condition that never matches a missing field: what `$elemMatch`'s
/// document form gets (`elemmatch-nested-array`).
fn present_condition(rng: &mut Rng, fam: &mut Families) -> Bson {
    let mut v = scalar(rng);
    while matches!(v, Bson::Null | Bson::MinKey | Bson::MaxKey) {
        v = scalar(rng);
    }
    match rng.below(6) {
        0 | 1 => v,
        2 | 3 => {
            fam.add("comparison");
            let mut d = Document::new();
            d.insert(rng.pick(&["$eq", "$gt", "$gte", "$lt", "$lte"]), v);
            Bson::Document(d)
        }
        4 => {
            fam.add("$in/$nin");
            Bson::Document(doc! { "$in": [v, Bson::Boolean(true)] })
        }
        _ => {
            fam.add("$regex");
            Bson::RegularExpression(regex(rng))
        }
    }
}

/// The operator families a case exercises, counted for the report.
#[derive(Default)]
struct Families {
    names: Vec<&'static str>,
    /// The case contains an argument MongoDB rejects when it parses the
    /// request; the engine must fail it (see `lazy-validation` in
    /// [`PEER_EXCEPTIONS`] for the peer).
    invalid: bool,
}

impl Families {
    fn add(&mut self, family: &'static str) {
        if !self.names.contains(&family) {
            self.names.push(family);
        }
    }

    /// Marks the case as one MongoDB rejects.
    fn invalid(&mut self) {
        self.invalid = true;
    }
}

/// A value to compare against: usually a scalar, sometimes an array or document.
fn operand(rng: &mut Rng) -> Bson {
    if rng.chance(85) {
        scalar(rng)
    } else {
        value(rng, 1, 50, 50)
    }
}

const REGEXES: &[&str] = &[
    "^a", "a", "b$", "^A", "^$", "x y", "^[ab]+$", "\\d", "a.b", "^.*$", "B", "^b", "é",
];

fn regex(rng: &mut Rng) -> Regex {
    let mut options = String::new();
    for flag in ['i', 'm', 's', 'x'] {
        if rng.chance(20) {
            options.push(flag);
        }
    }
    Regex {
        pattern: rng.pick(REGEXES).to_owned(),
        options,
    }
}

const TYPE_NAMES: &[&str] = &[
    "double", "string", "object", "array", "binData", "objectId", "bool", "date", "null", "int",
    "long", "decimal", "number", "minKey", "maxKey", "regex",
];
const TYPE_CODES: &[i32] = &[1, 2, 3, 4, 5, 7, 8, 9, 10, 16, 18, 19, -1, 127];

fn type_operand(rng: &mut Rng, fam: &mut Families) -> Bson {
    match rng.below(10) {
        0..=4 => Bson::String(rng.pick(TYPE_NAMES).to_owned()),
        5..=7 => Bson::Int32(rng.pick(TYPE_CODES)),
        8 => Bson::Array(vec![
            Bson::String(rng.pick(TYPE_NAMES).to_owned()),
            Bson::Int32(rng.pick(TYPE_CODES)),
        ]),
        // Invalid: an unknown type name.
        _ => {
            fam.invalid();
            Bson::String("nosuchtype".into())
        }
    }
}

fn bit_mask(rng: &mut Rng, fam: &mut Families) -> Bson {
    match rng.below(8) {
        0..=3 => Bson::Int32(rng.pick(&[0, 1, 2, 3, 5, 6, 7, 12])),
        4 | 5 => Bson::Array(
            (0..=rng.below(3))
                .map(|_| Bson::Int32(rng.pick(&[0, 1, 2, 3, 63])))
                .collect(),
        ),
        6 => Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![rng.pick(&[1u8, 3, 5])],
        }),
        // Invalid: a negative mask.
        _ => {
            fam.invalid();
            Bson::Int32(-1)
        }
    }
}

/// A comparison operator applied to one path, as `{$op: value}`.
fn operator_condition(rng: &mut Rng, fam: &mut Families, depth: u32) -> Document {
    let mut cond = Document::new();
    match rng.below(22) {
        0..=5 => {
            let op = rng.pick(&["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]);
            fam.add("comparison");
            cond.insert(op, operand(rng));
        }
        6 => {
            fam.add("comparison");
            cond.insert(rng.pick(&["$gt", "$gte"]), number(rng));
            cond.insert(rng.pick(&["$lt", "$lte"]), number(rng));
        }
        7 | 8 => {
            let op = rng.pick(&["$in", "$nin"]);
            fam.add("$in/$nin");
            let n = rng.below(4);
            let mut list: Vec<Bson> = (0..n).map(|_| operand(rng)).collect();
            if rng.chance(20) {
                list.push(Bson::RegularExpression(regex(rng)));
            }
            cond.insert(op, list);
        }
        9 => {
            fam.add("$exists");
            let v = match rng.below(4) {
                0 | 1 => Bson::Boolean(rng.chance(50)),
                2 => Bson::Int32(rng.pick(&[0, 1])),
                _ => Bson::Null,
            };
            cond.insert("$exists", v);
        }
        10 => {
            fam.add("$type");
            cond.insert("$type", type_operand(rng, fam));
        }
        11 => {
            fam.add("$size");
            let v = match rng.below(10) {
                0 => Bson::Int32(-1),
                1 => Bson::Double(1.5),
                2 => Bson::Double(2.0),
                3 => Bson::String("1".into()),
                _ => Bson::Int32(rng.pick(&[0, 1, 2, 3])),
            };
            if !matches!(v, Bson::Double(2.0) | Bson::Int32(0..)) {
                fam.invalid();
            }
            cond.insert("$size", v);
        }
        12 => {
            fam.add("$all");
            let n = rng.below(3);
            let list: Vec<Bson> = if rng.chance(15) && depth < 2 {
                vec![Bson::Document(doc! {
                    "$elemMatch": operator_condition(rng, fam, depth + 1)
                })]
            } else {
                // No null and no arrays in $all (`all-null`, `all-array-element`).
                (0..n)
                    .map(|_| operand(rng))
                    .filter(|v| !matches!(v, Bson::Null | Bson::Array(_)))
                    .collect()
            };
            cond.insert("$all", list);
        }
        13 | 14 => {
            fam.add("$elemMatch");
            let inner = if rng.chance(50) || depth >= 2 {
                element_operators(rng, fam, depth + 1)
            } else {
                let mut d = Document::new();
                let first = rng.pick(SUB_FIELDS);
                d.insert(first, present_condition(rng, fam));
                let second = rng.pick(SUB_FIELDS);
                if rng.chance(30) && second != first {
                    d.insert(second, present_condition(rng, fam));
                }
                d
            };
            cond.insert("$elemMatch", inner);
        }
        15 | 16 => {
            fam.add("$regex");
            let re = regex(rng);
            if rng.chance(50) {
                cond.insert("$regex", re.pattern);
                if !re.options.is_empty() {
                    cond.insert("$options", re.options);
                }
            } else {
                cond.insert("$regex", Bson::RegularExpression(re));
            }
        }
        17 => {
            fam.add("$mod");
            let divisor = match rng.below(8) {
                0 => Bson::Int32(0),
                1 => Bson::Double(2.5),
                2 => Bson::Int64(-3),
                _ => Bson::Int32(rng.pick(&[2, 3, 5])),
            };
            let remainder = Bson::Int32(rng.pick(&[0, 1, -1, 2]));
            if divisor == Bson::Int32(0) {
                fam.invalid();
            }
            let args = match rng.below(12) {
                0 => {
                    fam.invalid();
                    vec![divisor]
                }
                1 => {
                    fam.invalid();
                    vec![divisor, remainder, Bson::Int32(0)]
                }
                _ => vec![divisor, remainder],
            };
            cond.insert("$mod", args);
        }
        18 => {
            fam.add("bitwise");
            let op = rng.pick(&[
                "$bitsAllSet",
                "$bitsAnySet",
                "$bitsAllClear",
                "$bitsAnyClear",
            ]);
            cond.insert(op, bit_mask(rng, fam));
        }
        19 | 20 if depth < 2 => {
            fam.add("$not");
            let inner = if rng.chance(25) {
                Bson::RegularExpression(regex(rng))
            } else {
                Bson::Document(operator_condition(rng, fam, depth + 1))
            };
            cond.insert("$not", inner);
        }
        _ => {
            fam.add("comparison");
            cond.insert("$eq", Bson::Null);
        }
    }
    cond
}

/// Operators for `$elemMatch`'s value form (filter and projection): no
/// `$mod` (`elemmatch-mod`).
fn element_operators(rng: &mut Rng, fam: &mut Families, depth: u32) -> Document {
    loop {
        let mut inner = Families::default();
        let cond = operator_condition(rng, &mut inner, depth);
        if !cond.to_string().contains("$mod") {
            for name in inner.names {
                fam.add(name);
            }
            if inner.invalid {
                fam.invalid();
            }
            return cond;
        }
    }
}

/// What a path is compared with: a literal (implicit `$eq`), a regex, or operators.
fn field_condition(rng: &mut Rng, fam: &mut Families, depth: u32) -> Bson {
    match rng.below(10) {
        0..=2 => {
            fam.add("implicit $eq");
            operand(rng)
        }
        3 => {
            fam.add("$regex");
            Bson::RegularExpression(regex(rng))
        }
        _ => Bson::Document(operator_condition(rng, fam, depth)),
    }
}

/// A filter document: path conditions and logical operators.
fn filter(rng: &mut Rng, fam: &mut Families, depth: u32) -> Document {
    let mut f = Document::new();
    let clauses = rng.below(3);
    for _ in 0..clauses {
        if depth < 2 && rng.chance(25) {
            let op = rng.pick(&["$and", "$or", "$nor"]);
            if f.contains_key(op) {
                continue;
            }
            fam.add("logical");
            let n = if rng.chance(3) {
                fam.invalid();
                0
            } else {
                1 + rng.below(3)
            };
            let list: Vec<Bson> = (0..n)
                .map(|_| Bson::Document(filter(rng, fam, depth + 1)))
                .collect();
            f.insert(op, list);
        } else if rng.chance(2) && !f.contains_key("a") {
            fam.add("unknown operator");
            fam.invalid();
            f.insert("a", doc! { "$foo": 1 });
        } else {
            let path = rng.pick(PATHS);
            if f.contains_key(path) {
                continue;
            }
            f.insert(path, field_condition(rng, fam, depth));
        }
    }
    f
}

// ---------------------------------------------------------------------------
// Sorts and projections.

/// Sort paths: none runs through an array of documents
/// (`sort-missing-in-array`) or indexes into an array (`sort-positional-array`).
const SORT_PATHS: &[&str] = &["a", "b", "c", "d", "d.x", "d.y", "e", "d.x.y"];

/// A sort spec; the bool says whether it ends in the unique `_id` tiebreak.
fn sort(rng: &mut Rng, fam: &mut Families) -> Option<(Document, bool)> {
    if rng.chance(25) {
        return None;
    }
    let mut s = Document::new();
    for _ in 0..=rng.below(2) {
        s.insert(rng.pick(SORT_PATHS), rng.pick(&[1, -1]));
    }
    fam.add(if s.len() > 1 {
        "sort multi-key"
    } else {
        "sort"
    });
    if rng.chance(90) {
        s.insert("_id", rng.pick(&[1, -1]));
        Some((s, true))
    } else {
        Some((s, false))
    }
}

const PROJECTION_PATHS: &[&str] = &[
    "a", "b", "c", "d", "a.x", "c.x", "d.x", "d.y", "d.x.y", "e", "c.0",
];

fn projection(rng: &mut Rng, fam: &mut Families) -> Option<Document> {
    if rng.chance(40) {
        return None;
    }
    let mut p = Document::new();
    let kind = rng.below(10);
    let (include, family) = match kind {
        0..=3 => (true, "projection inclusion"),
        4..=6 => (false, "projection exclusion"),
        7 => (true, "projection $slice"),
        8 => (true, "projection $elemMatch"),
        _ => (true, "projection mixed"),
    };
    fam.add(family);
    for _ in 0..=rng.below(3) {
        let path = rng.pick(PROJECTION_PATHS);
        let flag = match rng.below(4) {
            0 => Bson::Boolean(include),
            _ => Bson::Int32(i32::from(include)),
        };
        p.insert(path, flag);
    }
    match kind {
        7 => {
            // Not on a dotted path (`slice-missing-parent`).
            let path = rng.pick(&["c", "a", "b"]);
            let arg = if rng.chance(60) {
                Bson::Int32(rng.pick(&[-2, -1, 0, 1, 2, 5]))
            } else {
                Bson::Array(vec![
                    Bson::Int32(rng.pick(&[-2, 0, 1, 3])),
                    Bson::Int32(rng.pick(&[1, 2, 0, -1])),
                ])
            };
            if rng.chance(40) {
                p.clear();
            }
            p.insert(path, doc! { "$slice": arg });
        }
        8 => {
            let path = rng.pick(&["c", "a"]);
            let mut inner = Families::default();
            let cond = if rng.chance(50) {
                element_operators(rng, &mut inner, 2)
            } else {
                let mut d = Document::new();
                d.insert(rng.pick(SUB_FIELDS), operand(rng));
                d
            };
            if inner.invalid {
                fam.invalid();
            }
            if rng.chance(40) {
                p.clear();
            }
            p.insert(path, doc! { "$elemMatch": cond });
        }
        9 => {
            p.insert(rng.pick(PROJECTION_PATHS), Bson::Int32(0));
        }
        _ => {}
    }
    if rng.chance(30) {
        p.insert("_id", Bson::Int32(rng.pick(&[0, 1])));
    }
    Some(p)
}

// ---------------------------------------------------------------------------
// Updates.

const UPDATE_PATHS: &[&str] = &[
    "a", "a", "b", "b", "c", "c", "d", "a.x", "d.x", "d.y", "d.z.w", "c.0", "c.1", "c.3", "c.6",
    "a.x.y", "c.$[]", "c.$[].x", "f",
];

fn update_operand_number(rng: &mut Rng, fam: &mut Families) -> Bson {
    match rng.below(8) {
        0..=2 => Bson::Int32(rng.pick(&[-2, -1, 0, 1, 2, 3, i32::MAX])),
        3 => Bson::Int64(rng.pick(&[-1, 1, 2, i64::MAX])),
        4 | 5 => Bson::Double(rng.pick(&[-1.0, 0.5, 1.5, 2.0, -0.0])),
        6 => decimal(rng.pick(&["1", "2.5", "-1", "0.10"])),
        _ => {
            fam.invalid();
            Bson::String("1".into())
        }
    }
}

/// The value with booleans and the numbers 0 and 1 replaced, for operands
/// the peer compares with Python's `==`, where `False == 0` and `True == 1.0`
/// (`python-bool-equality`).
fn no_bool_clash(value: &Bson) -> Bson {
    match value {
        Bson::Boolean(b) => Bson::String(format!("{b}")),
        Bson::Int32(0 | 1) | Bson::Int64(0 | 1) => Bson::Int32(5),
        Bson::Double(x) if *x == 0.0 || *x == 1.0 => Bson::Int32(5),
        Bson::Decimal128(d)
            if matches!(d.to_string().trim_start_matches('-'), "0" | "1" | "1.0") =>
        {
            Bson::Int32(5)
        }
        Bson::Array(items) => Bson::Array(items.iter().map(no_bool_clash).collect()),
        Bson::Document(d) => Bson::Document(
            d.iter()
                .map(|(k, v)| (k.clone(), no_bool_clash(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn push_argument(rng: &mut Rng, fam: &mut Families, add_to_set: bool) -> Bson {
    if rng.chance(40) {
        return operand(rng);
    }
    let n = rng.below(4);
    let each: Vec<Bson> = (0..n).map(|_| operand(rng)).collect();
    let mut spec = doc! { "$each": each };
    if !add_to_set {
        if rng.chance(40) {
            fam.add("$push $slice");
            spec.insert("$slice", Bson::Int32(rng.pick(&[-2, -1, 0, 1, 3])));
        }
        if rng.chance(35) {
            // Whole-element order only (`push-sort-by-field`).
            fam.add("$push $sort");
            spec.insert("$sort", Bson::Int32(rng.pick(&[1, -1])));
        }
        if rng.chance(30) {
            fam.add("$push $position");
            spec.insert("$position", Bson::Int32(rng.pick(&[0, 1, -1, 10])));
        }
    }
    Bson::Document(spec)
}

/// One update operator and its argument document.
///
/// `indexed` says whether the update already names an indexed path into `c`:
/// one per update (`update-field-order`: the peer applies `c.3` before `c.0`
/// when the update names them in that order).
fn update_operator(
    rng: &mut Rng,
    fam: &mut Families,
    indexed: &mut bool,
) -> (&'static str, Document) {
    let mut args = Document::new();
    let paths = 1 + rng.below(2);
    let op = rng.pick(&[
        "$set",
        "$set",
        "$unset",
        "$inc",
        "$inc",
        "$mul",
        "$min",
        "$max",
        "$rename",
        "$currentDate",
        "$push",
        "$push",
        "$addToSet",
        "$pop",
        "$pull",
        "$pull",
        "$pullAll",
        "$bit",
    ]);
    fam.add(op);
    for _ in 0..paths {
        let path = rng.pick(UPDATE_PATHS);
        let is_indexed =
            path.starts_with("c.") && path[2..].starts_with(|c: char| c.is_ascii_digit());
        if args.contains_key(path) || (is_indexed && *indexed) {
            continue;
        }
        *indexed |= is_indexed;
        if path.contains("$[]") {
            fam.add("positional $[]");
        }
        let arg = match op {
            "$set" => operand(rng),
            "$unset" => Bson::String(String::new()),
            "$inc" | "$mul" => match update_operand_number(rng, fam) {
                // `inc-negative-zero`.
                Bson::Double(z) if z == 0.0 && op == "$inc" => Bson::Double(0.5),
                n => n,
            },
            "$min" | "$max" => operand(rng),
            "$rename" => {
                let to = rng.pick(&["a", "b", "f", "d.x", "d.q", "g.h", "a.x"]);
                let from = rng.pick(&["a", "b", "d", "d.x", "d.y", "a.x", "f", "c"]);
                if !args.contains_key(from) {
                    let on_same_path = from == to
                        || to.starts_with(&format!("{from}."))
                        || from.starts_with(&format!("{to}."));
                    if on_same_path {
                        // Rejected when parsed ("must not be on the same path").
                        fam.invalid();
                    }
                    args.insert(from, to);
                }
                continue;
            }
            "$currentDate" => match rng.below(3) {
                0 => Bson::Boolean(true),
                1 => Bson::Document(doc! { "$type": "date" }),
                _ => Bson::Document(doc! { "$type": "timestamp" }),
            },
            "$push" => push_argument(rng, fam, false),
            "$addToSet" => no_bool_clash(&push_argument(rng, fam, true)),
            "$pop" => Bson::Int32(rng.pick(&[1, -1])),
            "$pull" => match rng.below(4) {
                0 => no_bool_clash(&operand(rng)),
                1 => {
                    let mut d = Document::new();
                    d.insert(rng.pick(SUB_FIELDS), operand(rng));
                    Bson::Document(d)
                }
                _ => {
                    fam.add("$pull condition");
                    let mut inner = Families::default();
                    let cond = operator_condition(rng, &mut inner, 2);
                    if inner.invalid {
                        fam.invalid();
                    }
                    Bson::Document(cond)
                }
            },
            "$pullAll" => Bson::Array(
                (0..rng.below(3))
                    .map(|_| no_bool_clash(&operand(rng)))
                    .collect(),
            ),
            _ => {
                let mut d = Document::new();
                d.insert(
                    rng.pick(&["and", "or", "xor"]),
                    match rng.below(3) {
                        0 => Bson::Int64(rng.pick(&[1, 6])),
                        _ => Bson::Int32(rng.pick(&[1, 2, 3, 5])),
                    },
                );
                Bson::Document(d)
            }
        };
        args.insert(path, arg);
    }
    (op, args)
}

fn update_document(rng: &mut Rng, fam: &mut Families) -> (Document, bool) {
    let mut u = Document::new();
    let mut current_date = false;
    let mut indexed = false;
    for _ in 0..=rng.below(2) {
        let mut inner = Families::default();
        let mut indexed_here = indexed;
        let (op, args) = update_operator(rng, &mut inner, &mut indexed_here);
        if u.contains_key(op) || args.is_empty() {
            continue;
        }
        indexed = indexed_here;
        for name in inner.names {
            fam.add(name);
        }
        if inner.invalid {
            fam.invalid();
        }
        current_date |= op == "$currentDate";
        if !u.contains_key(op) {
            u.insert(op, args);
        }
    }
    (u, current_date)
}

// ---------------------------------------------------------------------------
// Comparison.

/// Exact equality of two BSON values: same types, same field order, doubles
/// by bit pattern except that every NaN equals every NaN.
fn same(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        }
        (Bson::Document(x), Bson::Document(y)) => same_doc(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

fn same_doc(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
}

/// [`same_doc`] but with the fields of every (sub)document in any order.
fn same_doc_unordered(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, va)| b.get(k).is_some_and(|vb| same_unordered(va, vb)))
}

fn same_unordered(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Document(x), Bson::Document(y)) => same_doc_unordered(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_unordered(p, q))
        }
        _ => same(a, b),
    }
}

/// Documents in order.
fn same_list(a: &[Document], b: &[Document]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_doc(x, y))
}

/// Documents as multisets.
fn same_multiset(a: &[Document], b: &[Document]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut used = vec![false; b.len()];
    a.iter().all(
        |x| match (0..b.len()).find(|&i| !used[i] && same_doc(x, &b[i])) {
            Some(i) => {
                used[i] = true;
                true
            }
            None => false,
        },
    )
}

/// Replaces every value `$currentDate` can have written (a date after every
/// generated one, or any timestamp) with a marker of its type.
fn mask_current_dates(value: &mut Bson) {
    match value {
        Bson::DateTime(d) if d.timestamp_millis() > 1_750_000_000_000 => {
            *value = Bson::String("<current date>".into());
        }
        Bson::Timestamp(_) => *value = Bson::String("<current timestamp>".into()),
        Bson::Document(d) => d.iter_mut().for_each(|(_, v)| mask_current_dates(v)),
        Bson::Array(items) => items.iter_mut().for_each(mask_current_dates),
        _ => {}
    }
}

fn fail_on_transport(side: &str, e: &BackendError) {
    assert!(
        !matches!(
            e.kind,
            BackendErrorKind::Unavailable | BackendErrorKind::Timeout | BackendErrorKind::Internal
        ),
        "{side} failed outside the semantics under test: {e:?}"
    );
}

fn show<T: fmt::Debug>(r: &Result<T, BackendError>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("error {:?}: {}", e.kind, e.message),
    }
}

fn show_docs(docs: &[Document]) -> String {
    docs.iter()
        .map(|d| format!("    {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------
// The driver.

struct Run {
    memory: MemoryBackend,
    peer: MongoBackend,
    seed: u64,
    cases: BTreeMap<&'static str, usize>,
    total: usize,
    both_failed: usize,
    tolerated: usize,
    tolerated_positional: usize,
    tolerated_order: usize,
    tolerated_bit: usize,
    tolerated_push: usize,
    disagreements: Vec<String>,
}

impl Run {
    fn count(&mut self, fam: &Families) {
        self.total += 1;
        for f in &fam.names {
            *self.cases.entry(f).or_default() += 1;
        }
    }

    fn disagree(&mut self, round: usize, case: usize, what: String) {
        self.disagreements.push(format!(
            "seed {:#x} round {round} case {case}: {what}",
            self.seed
        ));
    }

    async fn all(&self, ns: &Namespace) -> (Vec<Document>, Vec<Document>) {
        let q = FindQuery::new(doc! {})
            .with_sort(doc! { "_id": 1 })
            .with_limit(10_000);
        let m = self
            .memory
            .find(ns, q.clone())
            .await
            .expect("memory find all");
        let p = self.peer.find(ns, q).await.expect("peer find all");
        (m, p)
    }

    /// Makes the peer's collection a copy of the engine's.
    async fn resync(&self, ns: &Namespace) {
        let (m, _) = self.all(ns).await;
        self.peer
            .delete_many(ns, Document::new())
            .await
            .expect("peer clear");
        if !m.is_empty() {
            self.peer.insert_many(ns, m).await.expect("peer re-insert");
        }
    }

    async fn query_case(&mut self, ns: &Namespace, rng: &mut Rng, round: usize, case: usize) {
        let mut fam = Families::default();
        let filter = filter(rng, &mut fam, 0);
        let sort = sort(rng, &mut fam);
        let projection = projection(rng, &mut fam);
        let ordered = matches!(sort, Some((_, true)));
        let (skip, limit) = if ordered && rng.chance(30) {
            (rng.below(4) as u64, 1 + rng.below(10) as u64)
        } else {
            (0, 1000)
        };
        let mut query = FindQuery::new(filter).with_skip(skip).with_limit(limit);
        query.projection = projection;
        query.sort = sort.map(|(s, _)| s);
        self.count(&fam);
        let m = self.memory.find(ns, query.clone()).await;
        let p = self.peer.find(ns, query.clone()).await;
        let agree = match (&m, &p) {
            // lazy-validation: the peer may answer what MongoDB rejects.
            (Err(_), Ok(_)) if fam.invalid => {
                self.tolerated += 1;
                true
            }
            (Ok(_), _) if fam.invalid => false,
            (Ok(a), Ok(b)) if ordered => same_list(a, b),
            (Ok(a), Ok(b)) => same_multiset(a, b),
            (Err(_), Err(e)) => {
                fail_on_transport("peer", e);
                self.both_failed += 1;
                true
            }
            (_, Err(e)) => {
                fail_on_transport("peer", e);
                false
            }
            _ => false,
        };
        if !agree {
            let detail = match (&m, &p) {
                (Ok(a), Ok(b)) => {
                    let only_m: Vec<Document> = a
                        .iter()
                        .filter(|x| !b.iter().any(|y| same_doc(x, y)))
                        .cloned()
                        .collect();
                    let only_p: Vec<Document> = b
                        .iter()
                        .filter(|y| !a.iter().any(|x| same_doc(x, y)))
                        .cloned()
                        .collect();
                    format!(
                        "memory {} docs, peer {} docs\n  only memory:\n{}\n  only peer:\n{}\n  memory order: {:?}\n  peer order:   {:?}",
                        a.len(),
                        b.len(),
                        show_docs(&only_m),
                        show_docs(&only_p),
                        a.iter().map(|d| d.get("_id").cloned()).collect::<Vec<_>>(),
                        b.iter().map(|d| d.get("_id").cloned()).collect::<Vec<_>>(),
                    )
                }
                _ => format!("memory: {}\n  peer: {}", show(&m), show(&p)),
            };
            self.disagree(
                round,
                case,
                format!(
                    "find filter {} sort {:?} projection {:?} skip {skip} limit {limit}\n  {detail}",
                    query.filter,
                    query.sort.map(|s| s.to_string()),
                    query.projection.map(|p| p.to_string()),
                ),
            );
        }
    }

    /// Runs one update on both sides and compares the outcomes and the whole
    /// collection afterwards; re-synchronises the peer when they differ.
    #[allow(clippy::too_many_arguments)]
    async fn update_case(
        &mut self,
        ns: &Namespace,
        round: usize,
        case: usize,
        fam: Families,
        query: UpdateQuery,
        many: bool,
        current_date: bool,
    ) {
        self.count(&fam);
        let invalid = fam.invalid;
        let before = self
            .memory
            .find(ns, FindQuery::new(doc! {}).with_limit(10_000))
            .await
            .expect("memory find all");
        let (m, p) = if many {
            (
                self.memory.update_many(ns, query.clone()).await,
                self.peer.update_many(ns, query.clone()).await,
            )
        } else {
            (
                self.memory.update_one(ns, query.clone()).await,
                self.peer.update_one(ns, query.clone()).await,
            )
        };
        let outcomes_agree = match (&m, &p) {
            // lazy-validation: the peer may apply or skip what MongoDB rejects.
            (Err(_), Ok(_)) if invalid => {
                self.tolerated += 1;
                true
            }
            (Ok(_), _) if invalid => false,
            // positional-all: MongoDB fails `$[]` on a missing or
            // non-array field; the peer skips it.
            (Err(e), Ok(_)) if uses_all_positional(&query) && is_array_update_error(e) => {
                self.tolerated_positional += 1;
                true
            }
            // update-past-array-end: MongoDB pads the array with nulls up to
            // a target index past its end and applies the operator to the
            // new field; the peer pads and then fails on the null.
            (Ok(_), Err(e)) if is_past_end_error(e) => {
                self.tolerated_push += 1;
                true
            }
            (Ok(a), Ok(b)) if outcome_eq(a, b) => true,
            // bit-result-type / mul-zero-type: the peer reports a change
            // where only a number's type differs (decided below).
            (Ok(a), Ok(b)) => {
                (uses_operator(&query, "$bit") || uses_operator(&query, "$mul"))
                    && a.matched_count == b.matched_count
                    && a.upserted_id == b.upserted_id
            }
            (Err(_), Err(e)) => {
                fail_on_transport("peer", e);
                self.both_failed += 1;
                true
            }
            (_, Err(e)) => {
                fail_on_transport("peer", e);
                false
            }
            _ => false,
        };
        let (mut after_m, mut after_p) = self.all(ns).await;
        if current_date {
            for d in after_m.iter_mut().chain(after_p.iter_mut()) {
                d.iter_mut().for_each(|(_, v)| mask_current_dates(v));
            }
        }
        let mut docs_agree = same_list(&after_m, &after_p);
        let mut resync = !docs_agree || current_date;
        let mut number_type_only = false;
        // bit-result-type: MongoDB's $bit widens int32 with int64 to int64;
        // the peer keeps int32. mul-zero-type: MongoDB's $mul of a double
        // zero by a decimal gives a decimal zero; the peer keeps the double.
        let normalise = |d: &Document| {
            let mut v = Bson::Document(d.clone());
            if uses_operator(&query, "$bit") {
                v = widen_ints(&v);
            }
            if uses_operator(&query, "$mul") {
                v = zeros_alike(&v);
            }
            v
        };
        if !docs_agree
            && (uses_operator(&query, "$bit") || uses_operator(&query, "$mul"))
            && after_m.len() == after_p.len()
            && after_m
                .iter()
                .zip(&after_p)
                .all(|(a, b)| same_unordered(&normalise(a), &normalise(b)))
        {
            self.tolerated_bit += 1;
            docs_agree = true;
            resync = true;
            number_type_only = true;
        }
        let outcomes_agree = outcomes_agree
            && match (&m, &p) {
                (Ok(a), Ok(b)) if !outcome_eq(a, b) => number_type_only,
                _ => true,
            };
        // update-field-order: MongoDB (and the engine) apply the fields of an
        // update in lexicographic order; the peer in the update's order.
        if !docs_agree
            && update_paths(&query) > 1
            && after_m.len() == after_p.len()
            && after_m
                .iter()
                .zip(&after_p)
                .all(|(a, b)| same_doc_unordered(a, b))
        {
            self.tolerated_order += 1;
            docs_agree = true;
            resync = true;
        }
        // updateMany is not atomic in MongoDB: an error part-way leaves the
        // documents before it updated, while the engine applies all or none.
        // Both failing is agreement; the states are then re-synchronised.
        let partial_failure = (many && m.is_err() && p.is_err())
            || (m.is_ok() && p.as_ref().is_err_and(is_past_end_error))
            || (invalid && m.is_err())
            || (m.as_ref().is_err_and(is_array_update_error) && uses_all_positional(&query));
        if !outcomes_agree || (!docs_agree && !partial_failure) {
            let changed: Vec<String> = after_m
                .iter()
                .zip(after_p.iter())
                .filter(|(a, b)| !same_doc(a, b))
                .map(|(a, b)| {
                    let old = before.iter().find(|d| d.get("_id") == a.get("_id"));
                    format!("    before: {old:?}\n    memory: {a:?}\n    peer:   {b:?}")
                })
                .collect();
            self.disagree(
                round,
                case,
                format!(
                    "{} filter {} update {:?} upsert {}\n  memory: {}\n  peer: {}\n  documents that differ after ({} vs {} docs):\n{}",
                    if many { "updateMany" } else { "updateOne" },
                    query.filter,
                    query.update,
                    query.upsert,
                    show(&m),
                    show(&p),
                    after_m.len(),
                    after_p.len(),
                    changed.join("\n"),
                ),
            );
        }
        if resync {
            self.resync(ns).await;
        }
    }
}

/// The peer's error after padding an array for a target past its end.
fn is_past_end_error(e: &BackendError) -> bool {
    e.message.contains("must be an array but is of type null")
        || e.message.contains("of non-numeric type null")
        || e.message.contains("has non-array type null")
}

/// The value with every zero (any numeric type, either sign) as int32 0.
fn zeros_alike(value: &Bson) -> Bson {
    match value {
        Bson::Document(d) => {
            Bson::Document(d.iter().map(|(k, v)| (k.clone(), zeros_alike(v))).collect())
        }
        Bson::Array(items) => Bson::Array(items.iter().map(zeros_alike).collect()),
        Bson::Double(z) if *z == 0.0 => Bson::Int32(0),
        Bson::Decimal128(d) if is_decimal_zero(d) => Bson::Int32(0),
        Bson::Int64(0) => Bson::Int32(0),
        other => other.clone(),
    }
}

/// Whether a Decimal128 is a zero (of any exponent or sign).
fn is_decimal_zero(d: &Decimal128) -> bool {
    let text = d.to_string();
    let body = text.trim_start_matches('-');
    let mantissa = body.split(['E', 'e']).next().unwrap_or("");
    !mantissa.is_empty() && mantissa.chars().all(|c| c == '0' || c == '.')
}

/// Whether the update uses `operator`.
fn uses_operator(query: &UpdateQuery, operator: &str) -> bool {
    matches!(&query.update, UpdateModifications::Operators(u) if u.contains_key(operator))
}

/// The value with every int32 turned into an int64.
fn widen_ints(value: &Bson) -> Bson {
    match value {
        Bson::Int32(i) => Bson::Int64(i64::from(*i)),
        Bson::Document(d) => {
            Bson::Document(d.iter().map(|(k, v)| (k.clone(), widen_ints(v))).collect())
        }
        Bson::Array(items) => Bson::Array(items.iter().map(widen_ints).collect()),
        other => other.clone(),
    }
}

/// How many fields the update names.
fn update_paths(query: &UpdateQuery) -> usize {
    match &query.update {
        UpdateModifications::Operators(u) => u
            .values()
            .filter_map(Bson::as_document)
            .map(Document::len)
            .sum(),
        UpdateModifications::Pipeline(_) => 0,
    }
}

/// Whether the update writes through `$[]`.
fn uses_all_positional(query: &UpdateQuery) -> bool {
    match &query.update {
        UpdateModifications::Operators(u) => u
            .values()
            .filter_map(Bson::as_document)
            .any(|args| args.keys().any(|k| k.contains("$[]"))),
        UpdateModifications::Pipeline(_) => false,
    }
}

/// The engine's answer when `$[]` meets a missing or non-array field, a
/// non-document element under `$[].x`, or another path under the same field.
fn is_array_update_error(e: &BackendError) -> bool {
    e.message.contains("in order to apply array updates")
        || e.message
            .contains("Cannot apply array updates to non-array element")
        || e.message.contains("Cannot create field")
        || e.message.contains("would create a conflict at")
}

fn outcome_eq(a: &UpdateOutcome, b: &UpdateOutcome) -> bool {
    a.matched_count == b.matched_count
        && a.modified_count == b.modified_count
        && match (&a.upserted_id, &b.upserted_id) {
            (Some(x), Some(y)) => same(x, y),
            (None, None) => true,
            _ => false,
        }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_and_peer_agree_on_generated_cases() {
    let Some(uri) = peer_uri() else { return };
    let seed = std::env::var("DIFF_SEED")
        .ok()
        .map(|s| {
            let s = s.trim();
            match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            }
            .expect("DIFF_SEED is a number")
        })
        .unwrap_or(DEFAULT_SEED);
    let rounds = std::env::var("DIFF_ROUNDS")
        .ok()
        .map(|s| s.trim().parse::<usize>().expect("DIFF_ROUNDS is a number"))
        .unwrap_or(DEFAULT_ROUNDS);
    println!("differential properties: seed {seed:#x} (DIFF_SEED={seed:#x}), {rounds} rounds");
    let peer = MongoBackend::connect(&uri, MongoBackendOptions::default())
        .await
        .expect("the peer URI is valid");
    let database = unique_db("diffprop");
    let mut run = Run {
        memory: MemoryBackend::new(),
        peer,
        seed,
        cases: BTreeMap::new(),
        total: 0,
        both_failed: 0,
        tolerated: 0,
        tolerated_positional: 0,
        tolerated_order: 0,
        tolerated_bit: 0,
        tolerated_push: 0,
        disagreements: Vec::new(),
    };
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    for round in 0..rounds {
        let ns = Namespace::new(database.clone(), format!("c{round}"));
        let docs: Vec<Document> = (0..DOCS_PER_COLLECTION)
            .map(|i| document(&mut rng, i as i32))
            .collect();
        run.memory
            .insert_many(&ns, docs.clone())
            .await
            .expect("memory insert");
        run.peer
            .insert_many(&ns, docs.clone())
            .await
            .expect("peer insert");
        let (m, p) = run.all(&ns).await;
        assert!(
            same_list(&m, &p) && same_list(&m, &docs),
            "round {round}: the stored documents differ before any query\n memory:\n{}\n peer:\n{}",
            show_docs(&m),
            show_docs(&p)
        );
        if std::env::var("DIFF_DUMP").as_deref() == Ok("1") {
            println!("round {round} documents:\n{}", show_docs(&m));
        }
        let mut case = 0;
        for _ in 0..QUERIES_PER_COLLECTION {
            run.query_case(&ns, &mut rng, round, case).await;
            case += 1;
        }
        for _ in 0..UPDATES_PER_COLLECTION {
            let mut fam = Families::default();
            let id = rng.below(DOCS_PER_COLLECTION) as i32;
            let (update, current_date) = update_document(&mut rng, &mut fam);
            let query =
                UpdateQuery::new(doc! { "_id": id }, UpdateModifications::Operators(update));
            run.update_case(&ns, round, case, fam, query, false, current_date)
                .await;
            case += 1;
        }
        for _ in 0..UPDATE_MANYS_PER_COLLECTION {
            let mut fam = Families::default();
            let filter = filter(&mut rng, &mut fam, 1);
            fam.add("updateMany");
            let (update, current_date) = update_document(&mut rng, &mut fam);
            let query = UpdateQuery::new(filter, UpdateModifications::Operators(update));
            run.update_case(&ns, round, case, fam, query, true, current_date)
                .await;
            case += 1;
        }
        for u in 0..UPSERTS_PER_COLLECTION {
            let mut fam = Families::default();
            fam.add("upsert");
            let mut filter = doc! { "_id": 1000 + (round * 100 + u) as i32 };
            for _ in 0..rng.below(3) {
                let path = rng.pick(&["a", "b", "d.x", "d.y", "f.g"]);
                if filter.contains_key(path) {
                    continue;
                }
                let cond = if rng.chance(70) {
                    scalar(&mut rng)
                } else {
                    // No regex inside $in (`upsert-in-regex`).
                    let mut c = operator_condition(&mut rng, &mut fam, 2);
                    while c
                        .get_array("$in")
                        .is_ok_and(|l| l.iter().any(|v| matches!(v, Bson::RegularExpression(_))))
                    {
                        c = operator_condition(&mut rng, &mut fam, 2);
                    }
                    Bson::Document(c)
                };
                filter.insert(path, cond);
            }
            let (update, current_date) = update_document(&mut rng, &mut fam);
            let query =
                UpdateQuery::new(filter, UpdateModifications::Operators(update)).with_upsert(true);
            run.update_case(&ns, round, case, fam, query, false, current_date)
                .await;
            case += 1;
        }
    }
    run.peer
        .client()
        .database(&database)
        .drop()
        .await
        .expect("drop the test database");

    println!(
        "differential properties: {} cases in {:.1}s ({} where both sides failed; tolerated: {} \
         lazy-validation, {} positional-all, {} update-field-order, {} bit-result-type or \
         mul-zero-type, {} update-past-array-end), {} disagreements",
        run.total,
        started.elapsed().as_secs_f64(),
        run.both_failed,
        run.tolerated,
        run.tolerated_positional,
        run.tolerated_order,
        run.tolerated_bit,
        run.tolerated_push,
        run.disagreements.len()
    );
    for (family, n) in &run.cases {
        println!("  {family}: {n}");
    }
    for (name, reason) in PEER_EXCEPTIONS {
        println!("  documented peer exception (avoided or tolerated): {name}: {reason}");
    }
    for d in &run.disagreements {
        println!("DISAGREEMENT {d}\n");
    }
    assert!(
        run.total >= 10_000 || rounds < DEFAULT_ROUNDS,
        "too few cases: {}",
        run.total
    );
    assert!(
        run.disagreements.is_empty(),
        "{} disagreements between the engine and the peer (seed {seed:#x}); see the output above",
        run.disagreements.len()
    );
}
