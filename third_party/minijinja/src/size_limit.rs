//! wf patch: this whole file (see PATCHED.md at the crate root).
//!
//! The bounds of [`Environment::set_max_string_size`](crate::Environment::set_max_string_size)
//! and [`Environment::set_max_evaluation_bytes`](crate::Environment::set_max_evaluation_bytes).
//! The VM enters the environment's bounds for the duration of every evaluation
//! (`Vm::do_eval`); the operators, the capture buffers, the argument conversions
//! and the builtin filters check against them *before* they allocate.  They are
//! thread locals so that they reach code that gets no `State` (operators,
//! argument conversion, `Output`, constant folding).
//!
//! The max string size bounds each string (and sequence, in items) on its own.
//! The evaluation budget bounds their sum: every string and list built by one
//! evaluation (the outermost `do_eval`; macro calls and blocks evaluated inside
//! it share its budget) is charged, in bytes, and never refunded.
use std::cell::Cell;
use std::fmt;

use crate::error::{Error, ErrorKind};
use crate::value::Value;

/// The bytes a sequence item is charged for (a `Value`; what it points to is charged
/// where it is built).
pub(crate) const ITEM_BYTES: usize = std::mem::size_of::<Value>();

const NOT_EXCEEDED: u8 = 0;
const EXCEEDED_SIZE: u8 = 1;
const EXCEEDED_BUDGET: u8 = 2;

thread_local! {
    static MAX: Cell<Option<usize>> = const { Cell::new(None) };
    // the evaluation budget in effect, the bytes charged to it so far and how
    // many evaluations are nested (the outermost one starts the count).
    static BUDGET: Cell<Option<usize>> = const { Cell::new(None) };
    static USED: Cell<usize> = const { Cell::new(0) };
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    // a `Bounded` writer refused a write (and which bound): the `fmt::Error` it
    // returned is converted into that bound's error (see `From<fmt::Error> for Error`).
    static EXCEEDED: Cell<u8> = const { Cell::new(NOT_EXCEEDED) };
    // the iteration bound in effect (for its error), the items the evaluation may
    // still walk (`usize::MAX`: unbounded, not counted down) and whether an
    // iteration was cut short by it (sticky until the next outermost evaluation).
    static ITER_MAX: Cell<Option<usize>> = const { Cell::new(None) };
    static ITER_LEFT: Cell<usize> = const { Cell::new(usize::MAX) };
    static ITER_EXCEEDED: Cell<bool> = const { Cell::new(false) };
    // a `Counted` iterator is taking its next item: the iterators it pulls from
    // (a lazy view over other sequences) do not count that item again.
    static IN_COUNTED: Cell<bool> = const { Cell::new(false) };
}

/// The bounds in effect; the previous ones are restored when this is dropped.
pub(crate) struct Scope {
    max: Option<usize>,
    budget: Option<usize>,
    used: usize,
    // the iteration state the outermost scope replaced: (max, left, exceeded)
    iterations: Option<(Option<usize>, usize, bool)>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        MAX.with(|m| m.set(self.max));
        BUDGET.with(|b| b.set(self.budget));
        let depth = DEPTH.with(|d| {
            let depth = d.get().saturating_sub(1);
            d.set(depth);
            depth
        });
        if depth == 0 {
            USED.with(|u| u.set(self.used));
            if let Some((max, left, exceeded)) = self.iterations {
                ITER_MAX.with(|m| m.set(max));
                ITER_LEFT.with(|l| l.set(left));
                ITER_EXCEEDED.with(|e| e.set(exceeded));
            }
        }
    }
}

/// Puts `max` (each string), `budget` (all of them) and `iterations` (the items
/// walked) in effect until the returned scope is dropped.  The outermost scope
/// starts the budget's and the iterations' counts at zero; nested ones (macro
/// calls, blocks) keep counting.
pub(crate) fn enter(
    max: Option<usize>,
    budget: Option<usize>,
    iterations: Option<usize>,
) -> Scope {
    EXCEEDED.with(|e| e.set(NOT_EXCEEDED));
    let outermost = DEPTH.with(|d| {
        let depth = d.get();
        d.set(depth + 1);
        depth == 0
    });
    let used = USED.with(|u| if outermost { u.replace(0) } else { u.get() });
    let iterations = outermost.then(|| {
        (
            ITER_MAX.with(|m| m.replace(iterations)),
            ITER_LEFT.with(|l| l.replace(iterations.unwrap_or(usize::MAX))),
            ITER_EXCEEDED.with(|e| e.replace(false)),
        )
    });
    Scope {
        max: MAX.with(|m| m.replace(max)),
        budget: BUDGET.with(|b| b.replace(budget)),
        used,
        iterations,
    }
}

/// Whether items walked are counted (an iteration bound is in effect).
pub(crate) fn iterations_bounded() -> bool {
    ITER_LEFT.with(Cell::get) != usize::MAX
}

/// Counts `n` items walked; false (and the evaluation is marked as cut short)
/// when that passes the iteration bound.
pub(crate) fn take_items(n: usize) -> bool {
    ITER_LEFT.with(|left| match left.get() {
        usize::MAX => true,
        have if have >= n => {
            left.set(have - n);
            true
        }
        _ => {
            left.set(0);
            ITER_EXCEEDED.with(|e| e.set(true));
            false
        }
    })
}

/// Counts a walk over a string of `len` bytes (counting or indexing its chars,
/// searching it): one item per 64 bytes.  Past the bound the evaluation fails
/// at its end (the walk itself is done: it is at most one string).
pub(crate) fn take_bytes(len: usize) {
    take_items(len / 64);
}

/// The error of an evaluation whose iteration was cut short by the bound.
pub(crate) fn iterations_exceeded() -> Option<Error> {
    if !ITER_EXCEEDED.with(Cell::get) {
        return None;
    }
    let max = ITER_MAX.with(Cell::get).unwrap_or_default();
    Some(Error::new(
        ErrorKind::InvalidOperation,
        format!("cannot walk more than {max} items in one evaluation (max_iterated_items)"),
    ))
}

/// An iterator whose items are counted against the iteration bound: it ends
/// early (and the evaluation fails) past it.  An item is counted once, by the
/// outermost `Counted` it passes through (a lazy view nests the iterators of the
/// sequences it joins or repeats).
pub(crate) struct Counted<I>(pub(crate) I);

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        if IN_COUNTED.with(Cell::get) {
            return self.0.next();
        }
        IN_COUNTED.with(|c| c.set(true));
        // reset even if the inner iterator panics
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                IN_COUNTED.with(|c| c.set(false));
            }
        }
        let reset = Reset;
        let item = self.0.next();
        drop(reset);
        take_items(1).then_some(item?)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.0.size_hint().1)
    }
}

/// The bound in effect.
pub(crate) fn max() -> Option<usize> {
    MAX.with(Cell::get)
}

/// Whether any bound is in effect (a check that costs a pass over the input may
/// be skipped otherwise).
pub(crate) fn active() -> bool {
    max().is_some() || BUDGET.with(Cell::get).is_some()
}

fn too_large(max: usize) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("cannot build a string of more than {max} bytes (max_string_size)"),
    )
}

fn over_budget(budget: usize) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "cannot build more than {budget} bytes of strings and lists in one evaluation \
             (max_evaluation_bytes)"
        ),
    )
}

/// Fails if a string of `len` bytes (`None`: the length overflowed) may not be built.
pub(crate) fn check(len: Option<usize>) -> Result<(), Error> {
    match (max(), len) {
        (Some(max), Some(len)) if len > max => Err(too_large(max)),
        (Some(max), None) => Err(too_large(max)),
        _ => Ok(()),
    }
}

/// Fails if a sequence of `len` items (`None`: overflowed) may not be built.
pub(crate) fn check_items(len: Option<usize>) -> Result<(), Error> {
    match (max(), len) {
        (Some(max), Some(len)) if len <= max => Ok(()),
        (Some(max), _) => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot build a sequence of more than {max} items (max_string_size)"),
        )),
        (None, _) => Ok(()),
    }
}

/// Charges `bytes` to the evaluation budget; fails (charging nothing) past it.
pub(crate) fn charge(bytes: usize) -> Result<(), Error> {
    if try_charge(bytes) {
        Ok(())
    } else {
        Err(over_budget(BUDGET.with(Cell::get).unwrap_or_default()))
    }
}

fn try_charge(bytes: usize) -> bool {
    match BUDGET.with(Cell::get) {
        None => true,
        Some(budget) => USED.with(|u| match u.get().checked_add(bytes) {
            Some(used) if used <= budget => {
                u.set(used);
                true
            }
            _ => false,
        }),
    }
}

/// `check` a string of `len` bytes, then charge it to the budget.
pub(crate) fn reserve(len: Option<usize>) -> Result<(), Error> {
    ok!(check(len));
    charge(len.unwrap_or(usize::MAX))
}

/// `check_items` a sequence of `len` items, then charge them to the budget.
pub(crate) fn reserve_items(len: Option<usize>) -> Result<(), Error> {
    ok!(check_items(len));
    charge_items(len.unwrap_or(usize::MAX))
}

/// Charges `n` sequence items to the budget.
pub(crate) fn charge_items(n: usize) -> Result<(), Error> {
    charge(n.saturating_mul(ITEM_BYTES))
}

/// Charges one sequence item holding a new string of `len` bytes to the budget
/// (after checking the string against the max size).
pub(crate) fn reserve_str_item(len: usize) -> Result<(), Error> {
    ok!(check(Some(len)));
    charge(ITEM_BYTES.saturating_add(len))
}

/// Collects `chars` into a `String` written through a `Bounded` writer (in
/// chunks of a few KiB: the bounds are not consulted for every char).
pub(crate) fn collect_str(chars: impl Iterator<Item = char>) -> Result<String, Error> {
    use std::fmt::Write;
    const CHUNK: usize = 8 * 1024;
    let mut rv = String::new();
    let mut chunk = String::with_capacity(CHUNK + 4);
    for c in chars {
        chunk.push(c);
        if chunk.len() >= CHUNK {
            ok!(Bounded(&mut rv).write_str(&chunk).map_err(Error::from));
            chunk.clear();
        }
    }
    ok!(Bounded(&mut rv).write_str(&chunk).map_err(Error::from));
    Ok(rv)
}

/// Collects `iter` into a `Vec`, charging every item to the budget (and checking
/// the count against the max size) before it is added.
pub(crate) fn collect_items(iter: impl Iterator<Item = Value>) -> Result<Vec<Value>, Error> {
    let mut rv = Vec::new();
    for item in iter {
        ok!(check_items(Some(rv.len() + 1)));
        ok!(charge_items(1));
        rv.push(item);
    }
    Ok(rv)
}

/// The error of a refused write, if the last `fmt::Error` came from a `Bounded` writer.
pub(crate) fn take_exceeded() -> Option<Error> {
    match EXCEEDED.with(|e| e.replace(NOT_EXCEEDED)) {
        EXCEEDED_SIZE => max().map(too_large),
        EXCEEDED_BUDGET => BUDGET.with(Cell::get).map(over_budget),
        _ => None,
    }
}

/// Whether `add` more bytes may be written to a buffer of `len` bytes (checked
/// against the max size, then charged to the budget); records which bound refused.
fn may_grow(len: usize, add: usize) -> bool {
    if let Some(max) = max() {
        if !matches!(len.checked_add(add), Some(len) if len <= max) {
            EXCEEDED.with(|e| e.set(EXCEEDED_SIZE));
            return false;
        }
    }
    if !try_charge(add) {
        EXCEEDED.with(|e| e.set(EXCEEDED_BUDGET));
        return false;
    }
    true
}

/// A `fmt::Write` into a `String` that fails instead of growing past the bounds
/// (what it writes is charged to the budget).
pub(crate) struct Bounded<'a>(pub(crate) &'a mut String);

impl fmt::Write for Bounded<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !may_grow(self.0.len(), s.len()) {
            return Err(fmt::Error);
        }
        self.0.push_str(s);
        Ok(())
    }
}

/// `format!`, bounded (`format(format_args!("{value}"))` is a bounded `to_string`).
pub(crate) fn format(args: fmt::Arguments<'_>) -> Result<String, Error> {
    let mut rv = String::new();
    match fmt::write(&mut Bounded(&mut rv), args) {
        Ok(()) => Ok(rv),
        Err(err) => Err(Error::from(err)),
    }
}

/// An `io::Write` into bytes that fails instead of growing past the bound
/// (for serializers; the failure is reported by `take_exceeded`).
#[cfg(feature = "json")]
pub(crate) struct BoundedBytes(pub(crate) Vec<u8>);

#[cfg(feature = "json")]
impl std::io::Write for BoundedBytes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !may_grow(self.0.len(), buf.len()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Other,
                "over the max string size",
            ));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
