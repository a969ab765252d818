//! The meter of the request the engine is working for: its deadline, whether
//! it was abandoned, and the memory it holds, checked as the engine works.
//!
//! The engine runs one request at a time on a thread (see
//! `backend::memory`), so the meter is a thread-local installed by
//! [`metered`] around that work. Code anywhere in the engine reports what it
//! does without a parameter threaded through every evaluator:
//!
//! - [`step`] once per unit of work (an expression node, a document scanned):
//!   every [`CHECK_EVERY`] steps the clock and the abandonment flag are read;
//! - [`charge`] / [`charge_value`] for memory the request now holds, estimated
//!   close to what the allocator really hands out ([`value_cost`]);
//! - [`Scratch`] around one expression node: its operands' charges are given
//!   back when it has its result, which is charged in their place;
//! - [`Stage`] around one pipeline stage: its input is given back when the
//!   stage consumed it, its output stays charged.
//!
//! Without a meter installed (unit tests, direct engine use) every check passes.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bson::{Bson, Document};

use super::QueryError;

/// MongoDB's `ExceededMemoryLimit` error code.
pub(crate) const EXCEEDED_MEMORY_LIMIT: i32 = 146;

/// MongoDB's `MaxTimeMSExpired` error code.
pub(crate) const MAX_TIME_EXPIRED: i32 = 50;

/// MongoDB's `Interrupted` error code: the request was abandoned.
pub(crate) const INTERRUPTED: i32 = 11601;

/// Steps between two looks at the clock and the abandonment flag (a look
/// costs about 25 ns; a step of real work is rarely under 10 ns).
pub(crate) const CHECK_EVERY: u32 = 1024;

/// What one request may spend.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meter {
    /// When the work must stop.
    pub(crate) deadline: Option<Instant>,
    /// Set by the service when nobody waits for the answer any more.
    pub(crate) abandoned: Option<Arc<AtomicBool>>,
    /// The most bytes the request may hold at once (`None`: unbounded).
    pub(crate) max_bytes: Option<usize>,
    /// For work tried on an async worker before the blocking pool: the
    /// steps it may take there (a direct [`check`] counts as many as are
    /// left to the next periodic one). At the first check past them the
    /// work fails and [`Usage::over_allowance`] tells the caller to discard
    /// the outcome and run it again where it may take long (`None`: no
    /// limit).
    pub(crate) inline_steps: Option<u32>,
}

/// What a metered piece of work used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// The most bytes held at once.
    pub(crate) peak_bytes: usize,
    /// The work went past [`Meter::inline_steps`]: its outcome is an
    /// error that says nothing about the request.
    pub(crate) over_allowance: bool,
}

struct Installed {
    meter: Meter,
    used: usize,
    peak: usize,
    /// Checks left before the inline allowance is spent.
    checks_left: Option<u32>,
    over_allowance: bool,
}

thread_local! {
    static INSTALLED: RefCell<Option<Installed>> = const { RefCell::new(None) };
    static STEPS: Cell<u32> = const { Cell::new(0) };
    static SCRATCH_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Runs `work` under `meter` on this thread; restores whatever meter was
/// installed before (so metered work may nest) and reports the peak.
/// Steps count from the start of `work`.
pub(crate) fn metered<T>(meter: Meter, work: impl FnOnce() -> T) -> (T, Usage) {
    struct Restore(Option<Installed>, u32);
    impl Drop for Restore {
        fn drop(&mut self) {
            INSTALLED.with(|cell| *cell.borrow_mut() = self.0.take());
            SCRATCH_DEPTH.with(|depth| depth.set(self.1));
        }
    }
    let checks_left = meter.inline_steps.map(|steps| (steps / CHECK_EVERY).max(1));
    let previous = INSTALLED.with(|cell| {
        cell.borrow_mut().replace(Installed {
            meter,
            used: 0,
            peak: 0,
            checks_left,
            over_allowance: false,
        })
    });
    let restore = Restore(previous, SCRATCH_DEPTH.with(|depth| depth.replace(0)));
    STEPS.with(|steps| steps.set(0));
    let out = work();
    let usage = INSTALLED.with(|cell| {
        cell.borrow().as_ref().map_or(Usage::default(), |m| Usage {
            peak_bytes: m.peak,
            over_allowance: m.over_allowance,
        })
    });
    drop(restore);
    (out, usage)
}

/// One unit of work; every [`CHECK_EVERY`] units, [`check`].
#[inline]
pub(crate) fn step() -> Result<(), QueryError> {
    let n = STEPS.with(|steps| {
        let n = steps.get().wrapping_add(1);
        steps.set(n);
        n
    });
    if n.is_multiple_of(CHECK_EVERY) {
        check()
    } else {
        Ok(())
    }
}

/// Fails when the request was abandoned, its deadline has passed or the
/// work's inline allowance is spent.
pub(crate) fn check() -> Result<(), QueryError> {
    INSTALLED.with(|cell| {
        let mut installed = cell.borrow_mut();
        let Some(installed) = installed.as_mut() else {
            return Ok(());
        };
        if let Some(left) = &mut installed.checks_left {
            *left = left.saturating_sub(1);
            if *left == 0 {
                installed.over_allowance = true;
                return Err(QueryError::new(
                    INTERRUPTED,
                    "the operation is moving off the async workers",
                ));
            }
        }
        let meter = &installed.meter;
        if meter
            .abandoned
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
        {
            return Err(QueryError::new(
                INTERRUPTED,
                "operation was interrupted because the client disconnected",
            ));
        }
        if meter.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(QueryError::new(
                MAX_TIME_EXPIRED,
                "operation exceeded time limit",
            ));
        }
        Ok(())
    })
}

/// Charges `bytes` the request now holds for `what` (an operator or stage
/// name, for the error message); fails when the budget is exceeded.
pub(crate) fn charge(bytes: usize, what: &str) -> Result<(), QueryError> {
    if bytes == 0 {
        return Ok(());
    }
    INSTALLED.with(|cell| {
        let mut installed = cell.borrow_mut();
        let Some(installed) = installed.as_mut() else {
            return Ok(());
        };
        installed.used = installed.used.saturating_add(bytes);
        installed.peak = installed.peak.max(installed.used);
        match installed.meter.max_bytes {
            Some(max) if installed.used > max => Err(exceeded(what, max)),
            _ => Ok(()),
        }
    })
}

/// Fails, charging nothing, when `bytes` more would not fit in the budget:
/// for refusing a large allocation before making it (the value built is
/// charged once it exists).
pub(crate) fn ensure_room(bytes: usize, what: &str) -> Result<(), QueryError> {
    INSTALLED.with(|cell| {
        let installed = cell.borrow();
        let Some(installed) = installed.as_ref() else {
            return Ok(());
        };
        match installed.meter.max_bytes {
            Some(max) if installed.used.saturating_add(bytes) > max => Err(exceeded(what, max)),
            _ => Ok(()),
        }
    })
}

/// Charges what holding `value` costs (see [`value_cost`]).
pub(crate) fn charge_value(value: &Bson, what: &str) -> Result<(), QueryError> {
    if !has_heap(value) || !is_installed() {
        return Ok(());
    }
    charge(value_cost(value), what)
}

/// Charges what holding `docs` costs.
pub(crate) fn charge_docs(docs: &[Document], what: &str) -> Result<(), QueryError> {
    if !is_installed() {
        return Ok(());
    }
    for doc in docs {
        charge(doc_cost(doc), what)?;
    }
    Ok(())
}

/// Charges what holding `doc` costs.
pub(crate) fn charge_doc(doc: &Document, what: &str) -> Result<(), QueryError> {
    if !is_installed() {
        return Ok(());
    }
    charge(doc_cost(doc), what)
}

/// Bytes held now.
pub(crate) fn used() -> usize {
    INSTALLED.with(|cell| cell.borrow().as_ref().map_or(0, |m| m.used))
}

/// Sets the bytes held (after a stage or an iteration gave back what it held).
pub(crate) fn set_used(bytes: usize) {
    INSTALLED.with(|cell| {
        if let Some(installed) = cell.borrow_mut().as_mut() {
            installed.used = bytes;
        }
    });
}

fn is_installed() -> bool {
    INSTALLED.with(|cell| cell.borrow().is_some())
}

fn exceeded(what: &str, max: usize) -> QueryError {
    QueryError::new(
        EXCEEDED_MEMORY_LIMIT,
        format!(
            "{what} used too much memory: the request may hold at most {max} bytes (its memory budget)"
        ),
    )
}

/// The accounting of one expression node's evaluation. Opened before the
/// node evaluates its operands (which charge their results), closed with the
/// node's result: the operands' charges are given back (they were consumed
/// or dropped) and the result is charged instead, for the parent node to
/// give back in turn. At the outermost node nothing stays charged: the
/// caller charges what it keeps (a stage's output document, an accumulator).
pub(crate) struct Scratch {
    start: usize,
    nested: bool,
}

impl Scratch {
    /// Opens the accounting of one node.
    #[inline]
    pub(crate) fn open() -> Scratch {
        let depth = SCRATCH_DEPTH.with(|depth| {
            let d = depth.get();
            depth.set(d + 1);
            d
        });
        Scratch {
            start: used(),
            nested: depth > 0,
        }
    }

    /// Closes it with the node's result; fails when holding the result does
    /// not fit the budget.
    #[inline]
    pub(crate) fn close(self, result: Option<&Bson>, what: &str) -> Result<(), QueryError> {
        let nested = self.nested;
        drop(self);
        match result {
            Some(value) if nested => charge_value(value, what),
            _ => Ok(()),
        }
    }
}

impl Drop for Scratch {
    #[inline]
    fn drop(&mut self) {
        SCRATCH_DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
        set_used(self.start);
    }
}

/// Charges the result of a leaf node (a constant, a field path, a
/// variable) as [`Scratch`] would: a leaf has no operands to give back, so
/// only its result is charged, and only when a node above it will give
/// it back.
#[inline]
pub(crate) fn charge_leaf(result: Option<&Bson>, what: &str) -> Result<(), QueryError> {
    match result {
        Some(value) if SCRATCH_DEPTH.with(Cell::get) > 0 => charge_value(value, what),
        _ => Ok(()),
    }
}

/// One pipeline stage's accounting: opened before the stage runs, while its
/// input is charged; closed when it has produced its output.
pub(crate) struct Stage {
    /// Bytes held before the stage's input was charged.
    base: usize,
    /// Bytes held when the stage started (base + input).
    start: usize,
}

impl Stage {
    /// Opens the accounting of a stage whose input was charged since `base`.
    pub(crate) fn open(base: usize) -> Stage {
        Stage {
            base,
            start: used(),
        }
    }

    /// The stage is done. `consumed`: its input is gone (the output was
    /// built anew), so only what the stage charged stays held; otherwise the
    /// input passed through and stays held too. Returns the new base for the
    /// next stage.
    pub(crate) fn close(self, consumed: bool) -> usize {
        if consumed {
            let produced = used().saturating_sub(self.start);
            set_used(self.base.saturating_add(produced));
        }
        self.base
    }
}

/// Estimated bytes of heap and inline storage that holding `value` costs,
/// modelled on how `bson` lays values out (an enum slot per value; a
/// `String` or `Vec` buffer per string and array; an `IndexMap` of entries
/// plus a hash index per document; allocator rounding).
pub(crate) fn value_cost(value: &Bson) -> usize {
    std::mem::size_of::<Bson>().saturating_add(heap_cost(value))
}

/// Estimated bytes that holding `doc` costs (see [`value_cost`]).
pub(crate) fn doc_cost(doc: &Document) -> usize {
    std::mem::size_of::<Document>().saturating_add(doc_heap(doc))
}

/// Per heap allocation: the allocator's header and rounding.
const ALLOCATION_OVERHEAD: usize = 16;
/// Per document entry: the stored hash, the `String` key header and the
/// hash index slot, beside the value's own enum slot.
const ENTRY_OVERHEAD: usize =
    std::mem::size_of::<usize>() + std::mem::size_of::<String>() + 2 * std::mem::size_of::<usize>();

fn has_heap(value: &Bson) -> bool {
    matches!(
        value,
        Bson::String(_)
            | Bson::Array(_)
            | Bson::Document(_)
            | Bson::Binary(_)
            | Bson::RegularExpression(_)
            | Bson::JavaScriptCode(_)
            | Bson::JavaScriptCodeWithScope(_)
            | Bson::Symbol(_)
            | Bson::DbPointer(_)
    )
}

fn heap_cost(value: &Bson) -> usize {
    // Iterative: values may nest as deep as the engine allows.
    let mut total = 0usize;
    let mut stack: Vec<&Bson> = vec![value];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(match v {
            Bson::String(s) | Bson::JavaScriptCode(s) | Bson::Symbol(s) => string_cost(s),
            Bson::Array(items) => {
                stack.extend(items.iter());
                ALLOCATION_OVERHEAD + items.len() * std::mem::size_of::<Bson>()
            }
            Bson::Document(d) => {
                stack.extend(d.values());
                entries_cost(d)
            }
            Bson::Binary(b) => ALLOCATION_OVERHEAD + b.bytes.len(),
            Bson::RegularExpression(r) => string_cost(&r.pattern) + string_cost(&r.options),
            Bson::JavaScriptCodeWithScope(c) => {
                string_cost(&c.code).saturating_add(doc_heap(&c.scope))
            }
            Bson::DbPointer(_) => 64,
            _ => 0,
        });
    }
    total
}

fn doc_heap(doc: &Document) -> usize {
    let mut total = entries_cost(doc);
    for v in doc.values() {
        total = total.saturating_add(heap_cost(v));
    }
    total
}

fn entries_cost(doc: &Document) -> usize {
    if doc.is_empty() {
        return 0;
    }
    let keys: usize = doc.keys().map(|k| k.len() + ALLOCATION_OVERHEAD).sum();
    2 * ALLOCATION_OVERHEAD + doc.len() * (ENTRY_OVERHEAD + std::mem::size_of::<Bson>()) + keys
}

fn string_cost(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        ALLOCATION_OVERHEAD + s.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bson::doc;

    use super::*;

    fn limited(max: usize) -> Meter {
        Meter {
            max_bytes: Some(max),
            ..Meter::default()
        }
    }

    #[test]
    fn without_a_meter_everything_passes() {
        assert!(charge(usize::MAX, "x").is_ok());
        assert!(check().is_ok());
        assert_eq!(used(), 0);
    }

    #[test]
    fn charges_over_the_budget_fail_with_exceeded_memory_limit() {
        let (result, usage) = metered(limited(1000), || {
            charge(600, "$range")?;
            charge(600, "$range")
        });
        let err = result.unwrap_err();
        assert_eq!(err.code, EXCEEDED_MEMORY_LIMIT);
        assert!(
            err.message.starts_with("$range used too much memory"),
            "{}",
            err.message
        );
        assert_eq!(usage.peak_bytes, 1200);
    }

    #[test]
    fn ensure_room_refuses_without_charging() {
        let (used_after, _) = metered(limited(1000), || {
            assert!(ensure_room(2000, "$range").is_err());
            assert!(ensure_room(900, "$range").is_ok());
            used()
        });
        assert_eq!(used_after, 0);
    }

    #[test]
    fn a_node_keeps_its_result_charged_in_place_of_its_operands() {
        let result = Bson::String("x".repeat(500));
        let ((), usage) = metered(limited(100_000), || {
            charge(100, "held").unwrap();
            let outer = Scratch::open();
            let inner = Scratch::open();
            charge(10_000, "operand").unwrap();
            inner.close(Some(&result), "inner").unwrap();
            assert_eq!(
                used(),
                100 + value_cost(&result),
                "operands given back, result charged"
            );
            outer.close(Some(&result), "outer").unwrap();
            assert_eq!(used(), 100, "the outermost node leaves nothing charged");
        });
        assert_eq!(usage.peak_bytes, 10_100);
    }

    #[test]
    fn a_consuming_stage_keeps_only_its_output() {
        metered(limited(10_000), || {
            let base = used();
            charge(500, "input").unwrap();
            let stage = Stage::open(base);
            charge(200, "output").unwrap();
            stage.close(true);
            assert_eq!(used(), 200);
            let stage = Stage::open(base);
            charge(50, "added").unwrap();
            stage.close(false);
            assert_eq!(used(), 250);
        });
    }

    #[test]
    fn deadline_and_abandonment_are_seen_within_check_every_steps() {
        let flag = Arc::new(AtomicBool::new(false));
        let meter = Meter {
            abandoned: Some(flag.clone()),
            ..Meter::default()
        };
        let (steps, _) = metered(meter, || {
            flag.store(true, Ordering::Relaxed);
            (1..=2 * CHECK_EVERY).find(|_| step().is_err())
        });
        assert!(steps.is_some_and(|n| n <= CHECK_EVERY));
        let meter = Meter {
            deadline: Some(Instant::now() - Duration::from_millis(1)),
            ..Meter::default()
        };
        let (err, _) = metered(meter, check);
        assert_eq!(err.unwrap_err().code, MAX_TIME_EXPIRED);
    }

    #[test]
    fn the_inline_allowance_ends_work_at_the_first_check_past_it() {
        let allowance = Meter {
            inline_steps: Some(2 * CHECK_EVERY),
            ..Meter::default()
        };
        let (failed_at, usage) = metered(allowance.clone(), || {
            (1..=10 * CHECK_EVERY).find(|_| step().is_err())
        });
        assert_eq!(failed_at, Some(2 * CHECK_EVERY));
        assert!(usage.over_allowance);
        // Every later check fails too: nothing goes on past the allowance.
        let (later, _) = metered(allowance.clone(), || {
            let _ = (1..=2 * CHECK_EVERY).try_for_each(|_| step());
            check()
        });
        assert!(later.is_err());
        // Work within the allowance is untouched.
        let (done, usage) = metered(allowance, || (1..2 * CHECK_EVERY).try_for_each(|_| step()));
        assert!(done.is_ok());
        assert!(!usage.over_allowance);
        // Without an allowance no step fails.
        let (done, usage) = metered(Meter::default(), || {
            (1..=10 * CHECK_EVERY).try_for_each(|_| step())
        });
        assert!(done.is_ok() && !usage.over_allowance);
    }

    #[test]
    fn metered_work_nests_and_restores() {
        metered(limited(100), || {
            charge(50, "outer").unwrap();
            let (inner, _) = metered(Meter::default(), || charge(1 << 40, "inner"));
            assert!(inner.is_ok(), "the inner meter is unbounded");
            assert_eq!(used(), 50);
        });
    }

    #[test]
    fn costs_grow_with_content() {
        let small = value_cost(&Bson::Int32(1));
        assert_eq!(small, std::mem::size_of::<Bson>());
        assert!(small <= 128, "a Bson slot is {small} bytes");
        let doc = doc! {"name": "a".repeat(1000), "list": [1, 2, 3]};
        let cost = doc_cost(&doc);
        assert!(cost > 1000 + 3 * std::mem::size_of::<Bson>(), "{cost}");
        let nested = Bson::Array(vec![Bson::Document(doc.clone()); 10]);
        assert!(value_cost(&nested) >= 10 * cost);
    }
}
