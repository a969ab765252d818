//! Property-style tests across the engine, driven by a small deterministic
//! generator of BSON values (no external test dependencies).

use std::cmp::Ordering;
use std::str::FromStr;

use bson::{doc, Bson, Decimal128, Document};

use super::compare::{canonical_key, compare_values, identical, type_rank, values_equal};
use super::{Filter, Projection, SortSpec, UpdateDoc};

/// xorshift64*: deterministic, good enough to explore value shapes.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn scalar(&mut self) -> Bson {
        let small = (self.below(7) as i64) - 3;
        match self.below(14) {
            0 => Bson::Null,
            1 => Bson::Int32(small as i32),
            2 => Bson::Int64(small),
            3 => Bson::Double(small as f64 / 2.0),
            4 => Bson::Double(if self.below(2) == 0 { f64::NAN } else { -0.0 }),
            5 => Bson::Decimal128(
                Decimal128::from_str(&format!("{}.{}", small, self.below(3)))
                    .unwrap_or(Decimal128::from_bytes([0; 16])),
            ),
            6 => Bson::String(["", "a", "b", "ab", "B"][self.below(5) as usize].to_string()),
            7 => Bson::Boolean(self.below(2) == 0),
            8 => Bson::DateTime(bson::DateTime::from_millis(small * 1000)),
            9 => Bson::MinKey,
            10 => Bson::MaxKey,
            11 => Bson::Undefined,
            12 => Bson::Int64(i64::MAX - self.below(2) as i64),
            _ => Bson::Double(9.223_372_036_854_776e18),
        }
    }

    fn value(&mut self, depth: u32) -> Bson {
        if depth == 0 {
            return self.scalar();
        }
        match self.below(6) {
            0 => Bson::Array((0..self.below(3)).map(|_| self.value(depth - 1)).collect()),
            1 => Bson::Document(self.doc(depth - 1)),
            _ => self.scalar(),
        }
    }

    fn doc(&mut self, depth: u32) -> Document {
        let mut d = Document::new();
        for _ in 0..self.below(3) {
            let key = ["a", "b", "c"][self.below(3) as usize];
            d.insert(key, self.value(depth));
        }
        d
    }
}

#[test]
fn order_is_total_and_keys_agree_with_equality() {
    let mut g = Gen(0x1234_5678_9ABC_DEF1);
    let values: Vec<Bson> = (0..300).map(|_| g.value(2)).collect();
    for a in &values {
        assert_eq!(compare_values(a, a), Ordering::Equal, "reflexive {a:?}");
        for b in &values {
            let ab = compare_values(a, b);
            assert_eq!(
                ab,
                compare_values(b, a).reverse(),
                "antisymmetric {a:?} {b:?}"
            );
            let eq = values_equal(a, b);
            assert_eq!(
                eq,
                ab == Ordering::Equal && type_rank(a) == type_rank(b),
                "{a:?} {b:?}"
            );
            assert_eq!(eq, canonical_key(a) == canonical_key(b), "keys {a:?} {b:?}");
        }
    }
    for a in values.iter().take(60) {
        for b in values.iter().take(60) {
            for c in values.iter().take(60) {
                if compare_values(a, b) != Ordering::Greater
                    && compare_values(b, c) != Ordering::Greater
                {
                    assert_ne!(
                        compare_values(a, c),
                        Ordering::Greater,
                        "transitive {a:?} {b:?} {c:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn equality_filter_matches_the_value_itself() {
    let mut g = Gen(42);
    for _ in 0..500 {
        let v = g.value(2);
        if let Bson::Document(d) = &v {
            if d.keys().next().is_some_and(|k| k.starts_with('$')) {
                continue;
            }
        }
        let f = Filter::parse(&doc! {"x": v.clone()}).unwrap();
        if !matches!(v, Bson::Undefined) {
            assert!(f.matches(&doc! {"x": v.clone()}), "{v:?}");
        }
        let eq = Filter::parse(&doc! {"x": {"$eq": v.clone()}}).unwrap();
        let ne = Filter::parse(&doc! {"x": {"$ne": v.clone()}}).unwrap();
        let d = doc! {"x": g.value(1)};
        assert_ne!(
            eq.matches(&d),
            ne.matches(&d),
            "$eq/$ne complement {v:?} on {d}"
        );
        let inf = Filter::parse(&doc! {"x": {"$in": [v.clone()]}}).unwrap();
        let nin = Filter::parse(&doc! {"x": {"$nin": [v.clone()]}}).unwrap();
        assert_eq!(
            eq.matches(&d),
            inf.matches(&d),
            "$in [v] == $eq v: {v:?} on {d}"
        );
        assert_ne!(inf.matches(&d), nin.matches(&d));
    }
}

#[test]
fn range_filters_agree_with_compare_within_a_type() {
    let mut g = Gen(7);
    for _ in 0..800 {
        let (a, b) = (g.scalar(), g.scalar());
        if type_rank(&a) != type_rank(&b)
            || matches!(
                a,
                Bson::MinKey | Bson::MaxKey | Bson::Null | Bson::Undefined
            )
        {
            continue;
        }
        let nan =
            |v: &Bson| super::number::Num::from_bson(v).is_some_and(super::number::Num::is_nan);
        if nan(&a) || nan(&b) {
            continue;
        }
        let o = compare_values(&a, &b);
        let d = doc! {"x": a.clone()};
        let check = |op: &str, want: bool| {
            let f = Filter::parse(&doc! {"x": {op: b.clone()}}).unwrap();
            assert_eq!(f.matches(&d), want, "{a:?} {op} {b:?}");
        };
        check("$gt", o == Ordering::Greater);
        check("$gte", o != Ordering::Less);
        check("$lt", o == Ordering::Less);
        check("$lte", o != Ordering::Greater);
    }
}

#[test]
fn sort_output_is_ordered_and_stable() {
    let mut g = Gen(99);
    let docs: Vec<Document> = (0..200)
        .map(|i| {
            let mut d = g.doc(1);
            d.insert("i", i);
            d
        })
        .collect();
    for spec in [doc! {"a": 1}, doc! {"a": -1}, doc! {"b": 1, "a": -1}] {
        let s = SortSpec::parse(&spec).unwrap();
        let mut sorted = docs.clone();
        s.sort(&mut sorted);
        for w in sorted.windows(2) {
            let o = s.compare(&w[0], &w[1]);
            assert_ne!(o, Ordering::Greater, "{spec}: {} before {}", w[0], w[1]);
            if o == Ordering::Equal {
                assert!(
                    w[0].get_i32("i").unwrap() < w[1].get_i32("i").unwrap(),
                    "stable"
                );
            }
        }
    }
}

#[test]
fn set_then_read_back_and_unset_removes() {
    let mut g = Gen(5);
    for _ in 0..300 {
        let mut d = g.doc(2);
        d.insert("_id", 1);
        let v = g.value(1);
        let u = UpdateDoc::parse(&doc! {"$set": {"z.y": v.clone()}}, None).unwrap();
        let mut after = d.clone();
        match u.apply(&mut after, false) {
            Ok(_) => {
                let got = super::path::get_exact(&after, &["z".into(), "y".into()]);
                assert!(got.is_some_and(|g| identical(g, &v)), "{got:?} vs {v:?}");
            }
            Err(e) => panic!("{d}: {e}"),
        }
        assert!(
            !u.apply(&mut after, false).unwrap(),
            "second $set changes nothing"
        );
        let un = UpdateDoc::parse(&doc! {"$unset": {"z.y": 1}}, None).unwrap();
        un.apply(&mut after, false).unwrap();
        assert!(!Filter::parse(&doc! {"z.y": {"$exists": true}})
            .unwrap()
            .matches(&after));
    }
}

#[test]
fn inclusion_and_exclusion_partition_fields() {
    let mut g = Gen(11);
    for _ in 0..300 {
        let mut d = g.doc(1);
        d.insert("_id", 1);
        let inc = Projection::parse(&doc! {"a": 1, "_id": 0})
            .unwrap()
            .apply(&d)
            .unwrap();
        let exc = Projection::parse(&doc! {"a": 0, "_id": 0})
            .unwrap()
            .apply(&d)
            .unwrap();
        assert_eq!(inc.len() + exc.len() + 1, d.len(), "{d}");
        for (k, v) in inc.iter().chain(exc.iter()) {
            assert!(d.get(k).is_some_and(|x| identical(x, v)));
        }
    }
}

const WORDS: &[&str] = &[
    "a",
    "b",
    "a.b",
    "a.0",
    "a.$",
    "a.$[]",
    "a.$[x]",
    "_id",
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$type",
    "$size",
    "$all",
    "$elemMatch",
    "$mod",
    "$regex",
    "$options",
    "$not",
    "$and",
    "$or",
    "$nor",
    "$expr",
    "$bitsAllSet",
    "$set",
    "$unset",
    "$inc",
    "$mul",
    "$min",
    "$max",
    "$rename",
    "$push",
    "$addToSet",
    "$pop",
    "$pull",
    "$pullAll",
    "$bit",
    "$each",
    "$slice",
    "$sort",
    "$position",
    "$add",
    "$subtract",
    "$divide",
    "$concat",
    "$cond",
    "$ifNull",
    "$map",
    "$filter",
    "$reduce",
    "$size",
    "$arrayElemAt",
    "$toString",
    "$dateToString",
    "$year",
    "$substrCP",
    "$split",
    "$range",
    "$let",
    "$switch",
    "$dateAdd",
    "$dateTrunc",
    "$replaceAll",
    "$sortArray",
    "$zip",
    "$firstN",
    "$setField",
    "$round",
    "$pow",
    "$objectToArray",
    "$arrayToObject",
    "$mergeObjects",
    "$elemMatch",
    "input",
    "as",
    "in",
    "cond",
    "n",
    "unit",
    "amount",
    "startDate",
    "date",
    "format",
    "vars",
    "if",
    "then",
    "else",
    "$$ROOT",
    "$a",
    "$b",
    "$$this",
    "$$value",
];

const STAGES: &[&str] = &[
    "$match",
    "$project",
    "$addFields",
    "$set",
    "$unset",
    "$sort",
    "$skip",
    "$limit",
    "$group",
    "$count",
    "$unwind",
    "$replaceRoot",
    "$replaceWith",
    "$sortByCount",
    "$facet",
    "$bucket",
    "$redact",
    "$sample",
    "$setWindowFields",
    "$graphLookup",
    "$lookup",
];

impl Gen {
    fn word(&mut self) -> String {
        WORDS[self.below(WORDS.len() as u64) as usize].to_string()
    }

    /// A random operator-flavoured value.
    fn op_value(&mut self, depth: u32) -> Bson {
        if depth == 0 {
            return match self.below(3) {
                0 => Bson::String(self.word()),
                _ => self.scalar(),
            };
        }
        match self.below(5) {
            0 => Bson::Array(
                (0..self.below(4))
                    .map(|_| self.op_value(depth - 1))
                    .collect(),
            ),
            1 | 2 => Bson::Document(self.op_doc(depth - 1)),
            3 => Bson::String(self.word()),
            _ => self.scalar(),
        }
    }

    fn op_doc(&mut self, depth: u32) -> Document {
        let mut d = Document::new();
        for _ in 0..1 + self.below(3) {
            let k = self.word();
            d.insert(k, self.op_value(depth));
        }
        d
    }
}

/// Random operator soup must only ever produce errors, never panics.
#[test]
fn random_inputs_never_panic() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let mut g = Gen(env("ENGINE_FUZZ_SEED").unwrap_or(0xDEAD_BEEF) | 1);
    let iterations = env("ENGINE_FUZZ_ITERS").unwrap_or(4000);
    let docs: Vec<Document> = (0..8)
        .map(|i| {
            let mut d = g.doc(2);
            d.insert("_id", i);
            d.insert("a", g.value(2));
            d
        })
        .collect();
    for _ in 0..iterations {
        let spec = g.op_doc(3);
        if let Ok(f) = Filter::parse(&spec) {
            for d in &docs {
                let _ = f.try_matches(d);
                let _ = f.matched_array_index(d);
            }
        }
        if let Ok(p) = Projection::parse(&spec) {
            for d in &docs {
                let _ = p.apply_with_match(d, Some(0));
            }
        }
        if let Ok(s) = SortSpec::parse(&spec) {
            let mut v = docs.clone();
            s.sort(&mut v);
        }
        let filters = [doc! {"x.a": 1}];
        if let Ok(u) =
            UpdateDoc::parse(&spec, Some(&filters)).or_else(|_| UpdateDoc::parse(&spec, None))
        {
            for d in &docs {
                let mut m = d.clone();
                let _ = u.apply_with_match(&mut m, false, Some(1));
                let mut m = d.clone();
                let _ = u.apply(&mut m, true);
            }
        }
        let _ = super::update::upsert_seed(&spec);
        if let Ok(e) = super::expr::Expr::parse(&Bson::Document(spec.clone())) {
            for d in &docs {
                let _ = e.eval_doc(d);
            }
        }
        let stage_name = STAGES[g.below(STAGES.len() as u64) as usize];
        let stage = doc! {stage_name: g.op_value(2)};
        if let Ok(p) = super::Pipeline::parse(&[stage, doc! {"$match": spec.clone()}]) {
            let _ = p.run(docs.clone(), &super::aggregate::NoCollections);
        }
    }
}

const FIELDS: &[&str] = &[
    "a", "b", "a.b", "a.0", "a.1.b", "c", "_id", "a.$", "a.$[]", "a.$[x]", "a.b.c",
];
const QUERY_OPS: &[&str] = &[
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$type",
    "$size",
    "$all",
    "$elemMatch",
    "$mod",
    "$regex",
    "$not",
    "$bitsAllSet",
    "$bitsAnyClear",
];
// The update modifiers the engine knows, shared with its parser.
use super::update::MODIFIERS;
const EXPR_OPS: &[&str] = &[
    "$add",
    "$subtract",
    "$multiply",
    "$divide",
    "$mod",
    "$abs",
    "$eq",
    "$gt",
    "$cmp",
    "$and",
    "$or",
    "$not",
    "$cond",
    "$ifNull",
    "$concat",
    "$size",
    "$toUpper",
    "$arrayElemAt",
    "$concatArrays",
    "$in",
    "$substrCP",
    "$split",
    "$toString",
    "$year",
    "$slice",
    "$range",
    "$round",
    "$trunc",
    "$pow",
    "$sum",
    "$max",
    "$indexOfArray",
    "$reverseArray",
    "$toInt",
    "$toDouble",
    "$first",
    "$setUnion",
    "$strLenCP",
    "$floor",
    "$sqrt",
    "$ln",
    "$objectToArray",
    "$mergeObjects",
];

impl Gen {
    fn pick(&mut self, list: &[&str]) -> String {
        list[self.below(list.len() as u64) as usize].to_string()
    }

    fn arg(&mut self) -> Bson {
        match self.below(6) {
            0 => Bson::Array((0..self.below(4)).map(|_| self.value(1)).collect()),
            1 => Bson::String(format!("${}", self.pick(&["a", "b", "a.b", "c"]))),
            2 => Bson::Int64([i64::MAX, i64::MIN, -1, 0, 64, 1 << 40][self.below(6) as usize]),
            _ => self.value(1),
        }
    }

    fn filter(&mut self, depth: u32) -> Document {
        let mut d = Document::new();
        for _ in 0..1 + self.below(2) {
            if depth > 0 && self.below(4) == 0 {
                let op = self.pick(&["$and", "$or", "$nor"]);
                d.insert(
                    op,
                    (0..1 + self.below(2))
                        .map(|_| Bson::Document(self.filter(depth - 1)))
                        .collect::<Vec<_>>(),
                );
                continue;
            }
            let field = self.pick(FIELDS);
            let v = if self.below(3) == 0 {
                self.arg()
            } else {
                let op = self.pick(QUERY_OPS);
                let a = match op.as_str() {
                    "$elemMatch" | "$not" if depth > 0 => Bson::Document(self.filter(depth - 1)),
                    "$regex" => Bson::String(self.pick(&["^a", "(x", "a|b", "\\\\d+"])),
                    _ => self.arg(),
                };
                Bson::Document(doc! {op: a})
            };
            d.insert(field, v);
        }
        d
    }

    fn update(&mut self) -> Document {
        let mut d = Document::new();
        for _ in 0..1 + self.below(2) {
            let m = self.pick(MODIFIERS);
            let mut fields = Document::new();
            let field = self.pick(FIELDS);
            let v = match (m.as_str(), self.below(3)) {
                ("$push" | "$addToSet", 0) => Bson::Document(
                    doc! {"$each": self.arg(), "$slice": self.arg(), "$position": self.arg()},
                ),
                ("$pull", 0) => Bson::Document(self.filter(1)),
                ("$bit", _) => Bson::Document(doc! {"and": self.arg()}),
                ("$rename", _) => Bson::String(self.pick(FIELDS)),
                _ => self.arg(),
            };
            fields.insert(field, v);
            d.insert(m, fields);
        }
        d
    }

    fn expr(&mut self, depth: u32) -> Bson {
        if depth == 0 || self.below(3) == 0 {
            return self.arg();
        }
        let op = self.pick(EXPR_OPS);
        let args: Vec<Bson> = (0..1 + self.below(3))
            .map(|_| self.expr(depth - 1))
            .collect();
        Bson::Document(doc! {op: args})
    }
}

/// Structured random filters, updates and expressions never panic and are
/// deterministic.
#[test]
fn structured_random_inputs_never_panic() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let mut g = Gen(env("ENGINE_FUZZ_SEED").unwrap_or(0xC0FF_EE00) | 1);
    let iterations = env("ENGINE_FUZZ_ITERS").unwrap_or(3000);
    let docs: Vec<Document> = (0..8)
        .map(|i| {
            let mut d = g.doc(2);
            d.insert("_id", i);
            d.insert("a", g.value(3));
            d
        })
        .collect();
    let (mut parsed_filters, mut parsed_updates, mut parsed_exprs) = (0, 0, 0);
    for _ in 0..iterations {
        let f = g.filter(2);
        if let Ok(parsed) = Filter::parse(&f) {
            parsed_filters += 1;
            for d in &docs {
                let first = parsed.try_matches(d);
                assert_eq!(first, parsed.try_matches(d), "deterministic");
                let _ = parsed.matched_array_index(d);
            }
            let _ = super::update::upsert_seed(&f);
        }
        let u = g.update();
        let filters = [doc! {"x": {"$gt": 0}}];
        if let Ok(parsed) =
            UpdateDoc::parse(&u, Some(&filters)).or_else(|_| UpdateDoc::parse(&u, None))
        {
            parsed_updates += 1;
            for d in &docs {
                let mut m = d.clone();
                if parsed.apply_with_match(&mut m, false, Some(0)).is_ok() {
                    assert_eq!(m.get("_id"), d.get("_id"), "_id survives {u}");
                }
            }
        }
        let e = g.expr(3);
        if let Ok(parsed) = super::expr::Expr::parse(&e) {
            parsed_exprs += 1;
            for d in &docs {
                let _ = parsed.eval_doc(d);
            }
        }
    }
    assert!(parsed_filters > iterations / 10, "{parsed_filters}");
    assert!(parsed_updates > iterations / 10, "{parsed_updates}");
    assert!(parsed_exprs > iterations / 10, "{parsed_exprs}");
}

impl Gen {
    fn stage(&mut self) -> Document {
        let field = format!("${}", self.pick(&["a", "b", "a.b", "c", "_id"]));
        let plain = self.pick(&["a", "b", "a.b", "c"]);
        match self.below(16) {
            0 => doc! {"$match": self.filter(1)},
            1 => doc! {"$project": {plain.clone(): self.expr(2), "_id": self.below(2) as i32}},
            2 => doc! {"$addFields": {plain.clone(): self.expr(2)}},
            3 => doc! {"$unset": plain.clone()},
            4 => doc! {"$sort": {plain.clone(): if self.below(2) == 0 { 1 } else { -1 }}},
            5 => doc! {"$skip": self.arg()},
            6 => doc! {"$limit": self.arg()},
            7 => {
                doc! {"$group": {"_id": self.expr(1), "s": {self.pick(&["$sum", "$avg", "$min", "$max", "$push", "$addToSet", "$first", "$last", "$stdDevPop", "$mergeObjects"]): self.expr(1)}}}
            }
            8 => {
                doc! {"$unwind": {"path": field.clone(), "includeArrayIndex": "i", "preserveNullAndEmptyArrays": self.below(2) == 0}}
            }
            9 => doc! {"$replaceWith": self.expr(2)},
            10 => doc! {"$sortByCount": field.clone()},
            11 => {
                doc! {"$bucket": {"groupBy": field.clone(), "boundaries": [self.arg(), self.arg()], "default": "x"}}
            }
            12 => {
                doc! {"$setWindowFields": {"partitionBy": field.clone(), "sortBy": {plain.clone(): 1}, "output": {"w": {"$sum": self.expr(1), "window": {"documents": [self.arg(), self.arg()]}}, "r": {"$rank": {}}}}}
            }
            13 => {
                doc! {"$lookup": {"from": "other", "localField": plain.clone(), "foreignField": plain.clone(), "as": "j"}}
            }
            14 => {
                doc! {"$graphLookup": {"from": "other", "startWith": field.clone(), "connectFromField": plain.clone(), "connectToField": plain.clone(), "as": "g", "maxDepth": self.arg()}}
            }
            _ => doc! {"$facet": {"f": [Bson::Document(doc! {"$count": "n"})]}},
        }
    }
}

struct OtherCollection(Vec<Document>);

impl super::aggregate::AggregateContext for OtherCollection {
    fn collection(&self, _name: &str) -> Vec<Document> {
        self.0.clone()
    }
}

/// Structured random pipelines never panic.
#[test]
fn random_pipelines_never_panic() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let mut g = Gen(env("ENGINE_FUZZ_SEED").unwrap_or(0xFACE_B00C) | 1);
    let iterations = env("ENGINE_FUZZ_ITERS").unwrap_or(2000);
    let docs: Vec<Document> = (0..8)
        .map(|i| {
            let mut d = g.doc(2);
            d.insert("_id", i);
            d.insert("a", g.value(2));
            d
        })
        .collect();
    let ctx = OtherCollection(docs.clone());
    let mut ran = 0;
    for _ in 0..iterations {
        let stages: Vec<Document> = (0..1 + g.below(3)).map(|_| g.stage()).collect();
        if let Ok(p) = super::Pipeline::parse(&stages) {
            ran += 1;
            let _ = p.run(docs.clone(), &ctx);
        }
    }
    assert!(ran > iterations / 10, "{ran}");
}
