//! Secondary indexes of the embedded engine and the rule that picks one.
//!
//! An index is a persistent ordered set of `(key, position)` entries, part
//! of the collection's snapshot, so it is updated in the same write as the
//! documents and read without a lock. A key holds one value per indexed
//! field, ordered as MongoDB orders values (descending fields reversed).
//! A field's values are what a filter sees at its path: the value, each
//! element when it is an array (an empty array indexes `undefined`), and
//! `null` when it is missing. A document with an array on an indexed path
//! has one entry per value (a *multikey* document); two indexed fields may
//! not both hold arrays in one document ("cannot index parallel arrays").
//!
//! **The planner** (`Collection::plan`) looks only at the conditions of the
//! filter's top-level conjunction (its fields and `$and`): equality, `$in`,
//! `$all`, `$gt`/`$gte`/`$lt`/`$lte`. Per index it counts the leading fields
//! pinned by an equality or `$in`, plus one for a range on the next field;
//! the index with the highest count wins (a unique index wins ties, then the
//! index declared first). A filter pinning `_id` always uses the `_id`
//! index. A sorted find uses an index for its order when the index is not
//! multikey and the sort names the index's fields after the pinned ones,
//! in the index's directions or all reversed. Everything else scans. The
//! index narrows the candidates; the whole filter still decides, so an index
//! never changes an answer, only its cost. Values an index does not serve
//! (`null`, arrays, regexes, `MinKey`/`MaxKey`, NaN, and ranges over types
//! without a clear order) leave that condition to the filter.

use std::cmp::Ordering;
use std::sync::Arc;

use bson::{Bson, Document};
use imbl::OrdSet;

use crate::backend::{IndexDirection, IndexSpec};
use crate::query::compare::{compare_values, type_rank};
use crate::query::filter::IndexableCondition;
use crate::query::number::Num;
use crate::query::path::{filter_leaves, split};
use crate::query::Filter;

/// One value of an index key, with sentinels that bound ranges.
#[derive(Debug, Clone)]
enum KeyValue {
    /// Below every value.
    Min,
    /// Below every value of one type rank.
    RankStart(u8),
    Value(Bson),
    /// Above every value of one type rank.
    RankEnd(u8),
    /// Above every value.
    Max,
}

impl KeyValue {
    fn cmp_asc(&self, other: &KeyValue) -> Ordering {
        fn place(v: &KeyValue) -> (u8, u8, u8) {
            match v {
                KeyValue::Min => (0, 0, 0),
                KeyValue::RankStart(r) => (1, *r, 0),
                KeyValue::Value(b) => (1, type_rank(b), 1),
                KeyValue::RankEnd(r) => (1, *r, 2),
                KeyValue::Max => (2, 0, 0),
            }
        }
        match (self, other) {
            (KeyValue::Value(a), KeyValue::Value(b)) => compare_values(a, b),
            _ => place(self).cmp(&place(other)),
        }
    }
}

/// One field of a key: its value and whether the field sorts descending.
#[derive(Debug, Clone)]
pub(super) struct Part {
    value: KeyValue,
    descending: bool,
}

impl Ord for Part {
    fn cmp(&self, other: &Self) -> Ordering {
        let o = self.value.cmp_asc(&other.value);
        if self.descending {
            o.reverse()
        } else {
            o
        }
    }
}

impl PartialOrd for Part {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Part {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Part {}

/// An index key: one part per indexed field.
pub(super) type Key = Arc<[Part]>;

/// An entry: a key and the position of the document it belongs to.
type Entry = (Key, u64);

/// A write an index refuses.
#[derive(Debug, Clone)]
pub(super) enum IndexViolation {
    /// A unique index already holds the key: the index's name and the key's
    /// fields and values.
    Duplicate {
        /// The index's name.
        index: String,
        /// The key, field by field.
        key: Vec<(String, Bson)>,
    },
    /// Two indexed fields hold arrays in one document (MongoDB code 171).
    ParallelArrays(String),
}

/// An index's declaration with its paths split once.
#[derive(Debug)]
struct Definition {
    spec: IndexSpec,
    paths: Vec<Vec<String>>,
}

/// One secondary index of a collection.
#[derive(Debug, Clone)]
pub(super) struct Index {
    definition: Arc<Definition>,
    entries: OrdSet<Entry>,
    /// How many documents have more than one entry or an array on a path.
    multikey_documents: usize,
}

/// The keys of one document in one index.
struct DocumentKeys {
    keys: Vec<Key>,
    multikey: bool,
}

impl Index {
    /// An empty index.
    pub(super) fn new(spec: IndexSpec) -> Self {
        let paths = spec.keys().iter().map(|(p, _)| split(p)).collect();
        Index {
            definition: Arc::new(Definition { spec, paths }),
            entries: OrdSet::new(),
            multikey_documents: 0,
        }
    }

    /// The declaration.
    pub(super) fn spec(&self) -> &IndexSpec {
        &self.definition.spec
    }

    fn descending(&self, field: usize) -> bool {
        self.definition.spec.keys()[field].1 == IndexDirection::Descending
    }

    /// Whether some document has several entries (arrays on indexed paths).
    fn is_multikey(&self) -> bool {
        self.multikey_documents > 0
    }

    /// The keys `doc` has in this index.
    fn keys_of(&self, doc: &Document) -> Result<DocumentKeys, IndexViolation> {
        let mut per_field: Vec<Vec<Bson>> = Vec::with_capacity(self.definition.paths.len());
        let mut array_fields = Vec::new();
        for (i, path) in self.definition.paths.iter().enumerate() {
            let (values, multikey) = field_values(doc, path);
            if multikey {
                array_fields.push(i);
            }
            per_field.push(values);
        }
        if array_fields.len() > 1 {
            let names: Vec<String> = array_fields
                .iter()
                .take(2)
                .map(|i| format!("[{}]", self.definition.spec.keys()[*i].0))
                .collect();
            return Err(IndexViolation::ParallelArrays(format!(
                "cannot index parallel arrays {}",
                names.join(" ")
            )));
        }
        let mut keys: Vec<Vec<Part>> = vec![Vec::with_capacity(per_field.len())];
        for (field, values) in per_field.into_iter().enumerate() {
            let descending = self.descending(field);
            let mut next = Vec::with_capacity(keys.len() * values.len());
            for prefix in &keys {
                for value in &values {
                    let mut key = prefix.clone();
                    key.push(Part {
                        value: KeyValue::Value(value.clone()),
                        descending,
                    });
                    next.push(key);
                }
            }
            keys = next;
        }
        keys.sort();
        keys.dedup();
        Ok(DocumentKeys {
            multikey: !array_fields.is_empty(),
            keys: keys.into_iter().map(Key::from).collect(),
        })
    }

    /// Checks that `doc` (at `seq`, replacing whatever was there) can be
    /// added: no parallel arrays, no key another document holds in a unique
    /// index. Returns its keys for [`Index::add`].
    fn admit(&self, seq: u64, doc: &Document) -> Result<DocumentKeys, IndexViolation> {
        let keys = self.keys_of(doc)?;
        self.check_unique(seq, &keys.keys)?;
        Ok(keys)
    }

    /// In a unique index, fails when a document other than the one at
    /// `seq` holds one of `keys`.
    fn check_unique(&self, seq: u64, keys: &[Key]) -> Result<(), IndexViolation> {
        if !self.definition.spec.is_unique() {
            return Ok(());
        }
        for key in keys {
            let holder = self
                .entries
                .range((key.clone(), 0)..=(key.clone(), u64::MAX))
                .find(|(_, s)| *s != seq);
            if holder.is_some() {
                return Err(IndexViolation::Duplicate {
                    index: self.definition.spec.name().to_string(),
                    key: self.key_fields(key),
                });
            }
        }
        Ok(())
    }

    fn key_fields(&self, key: &Key) -> Vec<(String, Bson)> {
        self.definition
            .spec
            .keys()
            .iter()
            .zip(key.iter())
            .map(|((path, _), part)| {
                let value = match &part.value {
                    KeyValue::Value(v) => v.clone(),
                    _ => Bson::Null,
                };
                (path.clone(), value)
            })
            .collect()
    }

    fn add(&mut self, seq: u64, keys: DocumentKeys) {
        if keys.multikey {
            self.multikey_documents += 1;
        }
        for key in keys.keys {
            self.entries.insert((key, seq));
        }
    }

    fn remove(&mut self, seq: u64, doc: &Document) {
        // Stored documents were admitted, so their keys are computable; a
        // failure here would mean an index added without its check.
        match self.keys_of(doc) {
            Ok(keys) => self.drop_keys(seq, keys),
            Err(_) => self.remove_by_scan(seq),
        }
    }

    fn drop_keys(&mut self, seq: u64, keys: DocumentKeys) {
        if keys.multikey {
            self.multikey_documents = self.multikey_documents.saturating_sub(1);
        }
        for key in keys.keys {
            self.entries.remove(&(key, seq));
        }
    }

    fn remove_by_scan(&mut self, seq: u64) {
        let stale: Vec<Entry> = self
            .entries
            .iter()
            .filter(|(_, s)| *s == seq)
            .cloned()
            .collect();
        for entry in stale {
            self.entries.remove(&entry);
        }
    }
}

/// The values of `path` an index holds for `doc`, and whether an array
/// was met (the document is multikey for this field).
fn field_values(doc: &Document, path: &[String]) -> (Vec<Bson>, bool) {
    let leaves = filter_leaves(doc, path);
    let mut multikey = leaves.len() != 1 || passes_array(doc, path);
    let mut values = Vec::with_capacity(leaves.len());
    for leaf in leaves {
        match leaf {
            None => values.push(Bson::Null),
            Some(Bson::Array(items)) => {
                multikey = true;
                if items.is_empty() {
                    values.push(Bson::Undefined);
                }
                values.extend(items.iter().cloned());
            }
            Some(v) => values.push(v.clone()),
        }
    }
    if values.is_empty() {
        // The path runs into an empty array: nothing to index but null, so
        // the document still has an entry (a sort or scan by index sees it).
        values.push(Bson::Null);
        multikey = true;
    }
    (values, multikey)
}

/// Whether an array sits on `path` before its last segment.
fn passes_array(doc: &Document, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let mut current = doc.get(first);
    for segment in rest {
        match current {
            Some(Bson::Array(_)) => return true,
            Some(Bson::Document(d)) => current = d.get(segment),
            _ => return false,
        }
    }
    false
}

/// The secondary indexes of one collection.
#[derive(Debug, Clone, Default)]
pub(super) struct Indexes {
    list: Arc<Vec<Index>>,
}

impl Indexes {
    /// Empty indexes following `specs`.
    pub(super) fn declared(specs: &[IndexSpec]) -> Self {
        Indexes {
            list: Arc::new(specs.iter().cloned().map(Index::new).collect()),
        }
    }

    /// The declarations.
    pub(super) fn specs(&self) -> impl Iterator<Item = &IndexSpec> {
        self.list.iter().map(Index::spec)
    }

    /// Adds `doc` at `seq` to every index, or to none when one refuses it.
    /// `old` is the document `doc` replaces at the same position; indexes
    /// whose keys the change leaves as they were are not touched.
    pub(super) fn put(
        &mut self,
        seq: u64,
        old: Option<&Document>,
        doc: &Document,
    ) -> Result<(), IndexViolation> {
        if self.list.is_empty() {
            return Ok(());
        }
        let mut changes = Vec::with_capacity(self.list.len());
        for (i, index) in self.list.iter().enumerate() {
            let keys = index.keys_of(doc)?;
            let previous = old.and_then(|old| index.keys_of(old).ok());
            if let Some(previous) = &previous {
                if previous.keys == keys.keys && previous.multikey == keys.multikey {
                    continue;
                }
            }
            index.check_unique(seq, &keys.keys)?;
            changes.push((i, previous, keys));
        }
        if changes.is_empty() {
            return Ok(());
        }
        let list = Arc::make_mut(&mut self.list);
        for (i, previous, keys) in changes {
            let index = &mut list[i];
            match (previous, old) {
                (Some(previous), _) => index.drop_keys(seq, previous),
                (None, Some(old)) => index.remove(seq, old),
                (None, None) => {}
            }
            index.add(seq, keys);
        }
        Ok(())
    }

    /// Removes the entries of `doc` at `seq`.
    pub(super) fn remove(&mut self, seq: u64, doc: &Document) {
        if self.list.is_empty() {
            return;
        }
        for index in Arc::make_mut(&mut self.list) {
            index.remove(seq, doc);
        }
    }

    /// Adds an index built over `docs`; fails (adding nothing) when a
    /// document breaks it.
    pub(super) fn add_index<'a>(
        &mut self,
        spec: IndexSpec,
        docs: impl Iterator<Item = (u64, &'a Document)>,
    ) -> Result<(), IndexViolation> {
        let mut index = Index::new(spec);
        for (seq, doc) in docs {
            let keys = index.admit(seq, doc)?;
            index.add(seq, keys);
        }
        Arc::make_mut(&mut self.list).push(index);
        Ok(())
    }

    /// The way to read the documents `filter` may match, optionally in
    /// `sort`'s order (see the module's documentation).
    pub(super) fn plan(&self, filter: &Filter, sort: Option<&[(Vec<String>, bool)]>) -> Plan {
        let plan = self.choose(filter, sort);
        #[cfg(test)]
        PLANS_USED.with(|used| {
            let mut counts = used.get();
            counts[match plan {
                Plan::Scan | Plan::Id => 0,
                Plan::Ranges { .. } => 1,
                Plan::Ordered { .. } => 2,
            }] += 1;
            used.set(counts);
        });
        plan
    }

    fn choose(&self, filter: &Filter, sort: Option<&[(Vec<String>, bool)]>) -> Plan {
        if self.list.is_empty() {
            return Plan::Scan;
        }
        let conditions = filter.indexable_conditions();
        let mut best: Option<(usize, Bounds, u32)> = None;
        for (i, index) in self.list.iter().enumerate() {
            let bounds = Bounds::of(index, &conditions);
            let score = bounds.score();
            let better = match &best {
                None => score > 0,
                Some((b, _, best_score)) => {
                    score > *best_score
                        || (score == *best_score
                            && index.spec().is_unique()
                            && !self.list[*b].spec().is_unique())
                }
            };
            if better {
                best = Some((i, bounds, score));
            }
        }
        if let Some(sort) = sort.filter(|s| !s.is_empty()) {
            // An index that serves the filter and gives the order is best;
            // with none serving the filter, one that gives the order.
            let ordered = self.list.iter().enumerate().find_map(|(i, index)| {
                let bounds = Bounds::of(index, &conditions);
                let reverse = bounds.order_for(index, sort)?;
                let serves = bounds.score() > 0;
                Some((i, bounds, reverse, serves))
            });
            match ordered {
                Some((i, bounds, reverse, true)) => {
                    return Plan::Ordered {
                        index: i,
                        range: bounds.single_range(),
                        reverse,
                    }
                }
                Some((i, bounds, reverse, false)) if best.is_none() => {
                    return Plan::Ordered {
                        index: i,
                        range: bounds.single_range(),
                        reverse,
                    }
                }
                _ => {}
            }
        }
        match best {
            Some((index, bounds, _)) => Plan::Ranges {
                index,
                ranges: bounds.ranges(),
            },
            None => Plan::Scan,
        }
    }

    /// Positions in the index's ranges in ascending order, without
    /// repeats. One point range (every field pinned to one value) is read
    /// as it is: its entries are already in position order.
    pub(super) fn positions(
        &self,
        index: usize,
        ranges: &[(Key, Key)],
    ) -> Box<dyn Iterator<Item = u64> + '_> {
        let entries = &self.list[index].entries;
        if let [(lo, hi)] = ranges {
            if lo == hi {
                return Box::new(
                    entries
                        .range((lo.clone(), 0)..=(hi.clone(), u64::MAX))
                        .map(|(_, seq)| *seq),
                );
            }
        }
        let mut out: Vec<u64> = Vec::new();
        for (lo, hi) in ranges {
            out.extend(
                entries
                    .range((lo.clone(), 0)..=(hi.clone(), u64::MAX))
                    .map(|(_, seq)| *seq),
            );
        }
        out.sort_unstable();
        out.dedup();
        Box::new(out.into_iter())
    }

    /// Whether the index's ranges hold at most `limit` entries; a unique
    /// index read at single keys holds at most one per key.
    pub(super) fn at_most(&self, index: usize, ranges: &[(Key, Key)], limit: usize) -> bool {
        let unique = self.list[index].spec().is_unique();
        if unique && ranges.len() <= limit && ranges.iter().all(|(lo, hi)| lo == hi) {
            return true;
        }
        let entries = &self.list[index].entries;
        let mut seen = 0usize;
        for (lo, hi) in ranges {
            seen += entries
                .range((lo.clone(), 0)..=(hi.clone(), u64::MAX))
                .take(limit + 1 - seen.min(limit))
                .count();
            if seen > limit {
                return false;
            }
        }
        true
    }

    /// Positions in index order within one range; equal keys keep natural
    /// order whichever way the index is read.
    pub(super) fn ordered(
        &self,
        index: usize,
        range: &(Key, Key),
        reverse: bool,
    ) -> Box<dyn Iterator<Item = u64> + '_> {
        let (lo, hi) = range;
        let entries = self.list[index]
            .entries
            .range((lo.clone(), 0)..=(hi.clone(), u64::MAX));
        if !reverse {
            return Box::new(entries.map(|(_, seq)| *seq));
        }
        Box::new(EqualKeysForward {
            inner: entries.rev().peekable(),
            group: Vec::new(),
        })
    }
}

/// Reads entries backwards, giving each run of equal keys in ascending
/// position order (the order a stable sort keeps for ties).
struct EqualKeysForward<'a, I: Iterator<Item = &'a Entry>> {
    inner: std::iter::Peekable<I>,
    group: Vec<u64>,
}

impl<'a, I: Iterator<Item = &'a Entry>> Iterator for EqualKeysForward<'a, I> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if let Some(seq) = self.group.pop() {
            return Some(seq);
        }
        // Read backwards, a run of equal keys comes in descending
        // positions: collected in that order, popping gives them ascending.
        let (key, seq) = self.inner.next()?;
        self.group.push(*seq);
        while let Some((next_key, next_seq)) = self.inner.peek() {
            if next_key != key {
                break;
            }
            self.group.push(*next_seq);
            self.inner.next();
        }
        self.group.pop()
    }
}

#[cfg(test)]
thread_local! {
    /// How often each kind of plan was chosen on this thread (tests).
    static PLANS_USED: std::cell::Cell<[usize; 3]> = const { std::cell::Cell::new([0; 3]) };
}

/// How to read a query's candidates.
#[derive(Debug)]
pub(super) enum Plan {
    /// The document the filter's `_id` names (chosen by the collection).
    Id,
    /// Every document.
    Scan,
    /// The union of key ranges of one index.
    Ranges {
        /// Which index.
        index: usize,
        /// Inclusive key ranges.
        ranges: Vec<(Key, Key)>,
    },
    /// One key range of one index, read in the index's order (or reversed)
    /// to give a sort's order.
    Ordered {
        /// Which index.
        index: usize,
        /// The inclusive key range.
        range: (Key, Key),
        /// Read backwards.
        reverse: bool,
    },
}

/// The most ranges one plan reads (a product of `$in` lists).
const MAX_RANGES: usize = 1024;

/// Per field of one index, the inclusive value bounds the filter allows.
struct Bounds {
    /// Per field: the allowed `(low, high)` pairs in ascending value terms.
    fields: Vec<Vec<(KeyValue, KeyValue)>>,
    descending: Vec<bool>,
    /// Leading fields pinned to one or more values.
    pinned: usize,
    /// Whether the field after them has a range.
    ranged: bool,
    /// Whether each pinned field has exactly one value.
    single_values: bool,
}

impl Bounds {
    fn of(index: &Index, conditions: &[(&[String], IndexableCondition<'_>)]) -> Bounds {
        let n = index.definition.paths.len();
        let mut fields = Vec::with_capacity(n);
        let descending: Vec<bool> = (0..n).map(|f| index.descending(f)).collect();
        let mut pinned = 0;
        let mut ranged = false;
        let mut single_values = true;
        let mut product = 1usize;
        for path in &index.definition.paths {
            let on_path = conditions.iter().filter(|(p, _)| *p == path.as_slice());
            if fields.len() == pinned && !ranged {
                if let Some(values) = on_path.clone().find_map(|(_, c)| equal_values(c)) {
                    if product.saturating_mul(values.len()) <= MAX_RANGES {
                        product *= values.len();
                        single_values &= values.len() == 1;
                        fields.push(
                            values
                                .into_iter()
                                .map(|v| (KeyValue::Value(v.clone()), KeyValue::Value(v.clone())))
                                .collect(),
                        );
                        pinned += 1;
                        continue;
                    }
                }
                if let Some(range) = range_of(on_path, index.is_multikey()) {
                    fields.push(vec![range]);
                    ranged = true;
                    continue;
                }
            }
            fields.push(vec![(KeyValue::Min, KeyValue::Max)]);
        }
        Bounds {
            fields,
            descending,
            pinned,
            ranged,
            single_values,
        }
    }

    fn score(&self) -> u32 {
        (self.pinned as u32) * 2 + u32::from(self.ranged)
    }

    /// Whether reading this index in its range gives `sort`'s order, and
    /// which way: `Some(false)` forwards, `Some(true)` backwards.
    fn order_for(&self, index: &Index, sort: &[(Vec<String>, bool)]) -> Option<bool> {
        if index.is_multikey() || !self.single_values {
            return None;
        }
        let paths = &index.definition.paths;
        // The sort must name the index's fields from some pinned position to
        // the end, so ties in the sort are ties in the whole key.
        let start = paths.len().checked_sub(sort.len())?;
        if start > self.pinned {
            return None;
        }
        let mut reverse = None;
        for ((path, ascending), field) in sort.iter().zip(start..) {
            if *path != paths[field] {
                return None;
            }
            let flipped = *ascending == self.descending[field];
            match reverse {
                None => reverse = Some(flipped),
                Some(r) if r != flipped => return None,
                _ => {}
            }
        }
        reverse
    }

    fn key(&self, choice: &[usize], high: bool) -> Key {
        self.fields
            .iter()
            .zip(&self.descending)
            .zip(choice)
            .map(|((options, descending), &i)| {
                let (lo, hi) = &options[i];
                // A descending field orders values backwards: its lowest key
                // holds the highest value.
                let value = if high != *descending { hi } else { lo };
                Part {
                    value: value.clone(),
                    descending: *descending,
                }
            })
            .collect()
    }

    /// Every combination of the fields' options as a key range.
    fn ranges(&self) -> Vec<(Key, Key)> {
        let mut choices: Vec<Vec<usize>> = vec![Vec::new()];
        for options in &self.fields {
            choices = choices
                .into_iter()
                .flat_map(|prefix| {
                    (0..options.len()).map(move |i| {
                        let mut c = prefix.clone();
                        c.push(i);
                        c
                    })
                })
                .collect();
        }
        choices
            .iter()
            .map(|c| (self.key(c, false), self.key(c, true)))
            .collect()
    }

    /// The one range of a plan whose pinned fields have one value each.
    fn single_range(&self) -> (Key, Key) {
        let choice = vec![0; self.fields.len()];
        (self.key(&choice, false), self.key(&choice, true))
    }
}

/// The values an equality or `$in` condition pins, when an index can serve
/// all of them.
fn equal_values<'a>(condition: &IndexableCondition<'a>) -> Option<Vec<&'a Bson>> {
    match condition {
        IndexableCondition::Equals(v) => equality_value(v).then(|| vec![*v]),
        IndexableCondition::In(values) => {
            (!values.is_empty() && values.iter().all(|v| equality_value(v))).then(|| values.clone())
        }
        _ => None,
    }
}

/// Whether an index lookup finds every document equal to `v`.
fn equality_value(v: &Bson) -> bool {
    !matches!(
        v,
        Bson::Null
            | Bson::Undefined
            | Bson::Array(_)
            | Bson::MinKey
            | Bson::MaxKey
            | Bson::RegularExpression(_)
    ) && !is_nan(v)
}

/// Whether a range bound on `v` covers its type's values in order.
fn range_value(v: &Bson) -> bool {
    matches!(
        v,
        Bson::Int32(_)
            | Bson::Int64(_)
            | Bson::Double(_)
            | Bson::Decimal128(_)
            | Bson::String(_)
            | Bson::ObjectId(_)
            | Bson::Boolean(_)
            | Bson::DateTime(_)
            | Bson::Timestamp(_)
    ) && !is_nan(v)
}

fn is_nan(v: &Bson) -> bool {
    Num::from_bson(v).is_some_and(Num::is_nan)
}

/// The range of values a field's `$gt`/`$gte`/`$lt`/`$lte` conditions
/// allow (inclusive; the filter removes the bounds themselves when they are
/// exclusive). A multikey index takes one side only: different elements
/// of an array may satisfy the two sides.
fn range_of<'a, 'b: 'a>(
    conditions: impl Iterator<Item = &'a (&'b [String], IndexableCondition<'b>)>,
    multikey: bool,
) -> Option<(KeyValue, KeyValue)> {
    let mut low: Option<&Bson> = None;
    let mut high: Option<&Bson> = None;
    for (_, condition) in conditions {
        match condition {
            IndexableCondition::AtLeast(v) if range_value(v) && low.is_none() => low = Some(v),
            IndexableCondition::AtMost(v) if range_value(v) && high.is_none() => high = Some(v),
            _ => {}
        }
    }
    match (low, high) {
        (Some(lo), Some(hi)) if !multikey && type_rank(lo) == type_rank(hi) => {
            Some((KeyValue::Value(lo.clone()), KeyValue::Value(hi.clone())))
        }
        (Some(lo), _) => Some((
            KeyValue::Value(lo.clone()),
            KeyValue::RankEnd(type_rank(lo)),
        )),
        (None, Some(hi)) => Some((
            KeyValue::RankStart(type_rank(hi)),
            KeyValue::Value(hi.clone()),
        )),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests;
