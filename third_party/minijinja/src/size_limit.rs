//! wf patch: this whole file (see PATCHED.md at the crate root).
//!
//! The bound of [`Environment::set_max_string_size`](crate::Environment::set_max_string_size).
//! The VM enters the environment's bound for the duration of every evaluation
//! (`Vm::do_eval`); the operators, the capture buffers, the argument conversions
//! and the builtin filters check against it *before* they allocate.  It is a
//! thread local so that it reaches code that gets no `State` (operators,
//! argument conversion, `Output`, constant folding).
use std::cell::Cell;
use std::fmt;

use crate::error::{Error, ErrorKind};

thread_local! {
    static MAX: Cell<Option<usize>> = const { Cell::new(None) };
    // a `Bounded` writer refused a write: the `fmt::Error` it returned is
    // converted into `too_large` (see `From<fmt::Error> for Error`).
    static EXCEEDED: Cell<bool> = const { Cell::new(false) };
}

/// The bound in effect; the previous one is restored when this is dropped.
pub(crate) struct Scope(Option<usize>);

impl Drop for Scope {
    fn drop(&mut self) {
        MAX.with(|m| m.set(self.0));
    }
}

/// Puts `max` in effect until the returned scope is dropped.
pub(crate) fn enter(max: Option<usize>) -> Scope {
    EXCEEDED.with(|e| e.set(false));
    Scope(MAX.with(|m| m.replace(max)))
}

/// The bound in effect.
pub(crate) fn max() -> Option<usize> {
    MAX.with(Cell::get)
}

fn too_large(max: usize) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("cannot build a string of more than {max} bytes (max_string_size)"),
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

/// The error of a refused write, if the last `fmt::Error` came from a `Bounded` writer.
pub(crate) fn take_exceeded() -> Option<Error> {
    if EXCEEDED.with(|e| e.replace(false)) {
        max().map(too_large)
    } else {
        None
    }
}

/// A `fmt::Write` into a `String` that fails instead of growing past the bound.
pub(crate) struct Bounded<'a>(pub(crate) &'a mut String);

impl fmt::Write for Bounded<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(max) = max() {
            if !matches!(self.0.len().checked_add(s.len()), Some(len) if len <= max) {
                EXCEEDED.with(|e| e.set(true));
                return Err(fmt::Error);
            }
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
        if let Some(max) = max() {
            if !matches!(self.0.len().checked_add(buf.len()), Some(len) if len <= max) {
                EXCEEDED.with(|e| e.set(true));
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Other,
                    "over the max string size",
                ));
            }
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
