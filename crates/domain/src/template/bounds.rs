//! The bounds of one render: loop iterations, rendered size, time,
//! and the memory the values made while rendering may take.
//!
//! A render is synchronous and runs on one thread, so its budget lives in a thread-local for the
//! length of the render ([`Budget::run`]). The pieces of the engine that can repeat work — the
//! `for` loop, every filter, `capture`, `assign` and every write of output — charge it, and the
//! first bound crossed is remembered: whatever error Liquid then wraps around it, the render
//! reports that bound.

use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, Instant};

/// Loop iterations a render may run, all loops together.
pub const MAX_LOOP_ITERATIONS: u64 = 10_000;
/// Largest rendered body, in bytes.
pub const MAX_RENDERED_BODY_BYTES: usize = 1 << 20;
/// Longest rendered subject, in characters.
pub const MAX_RENDERED_SUBJECT_CHARS: usize = 998;
/// Longest a render may take.
pub const MAX_RENDER_TIME: Duration = Duration::from_millis(250);
/// Largest single value (string, or an array's contents) a filter or `capture` may make.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Most items an array made while rendering may hold.
pub const MAX_ARRAY_ITEMS: usize = 100_000;
/// Bytes all values made while rendering may add up to (filter results, captures, assigns).
/// Values outlive the statement that made them (`assign`), so this bounds memory as the time
/// bound bounds work.
pub const MAX_WORK_BYTES: usize = 64 << 20;

/// Which bound a render crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// More than [`MAX_LOOP_ITERATIONS`] loop iterations.
    LoopIterations,
    /// A rendered body over [`MAX_RENDERED_BODY_BYTES`].
    BodySize,
    /// A rendered subject over [`MAX_RENDERED_SUBJECT_CHARS`].
    SubjectLength,
    /// A render over [`MAX_RENDER_TIME`].
    Time,
    /// A value over [`MAX_VALUE_BYTES`] or [`MAX_ARRAY_ITEMS`], or values adding up to more
    /// than [`MAX_WORK_BYTES`].
    Memory,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bound::LoopIterations => "loop iterations: more than 10,000 in one email",
            Bound::BodySize => "rendered body: more than 1 MiB",
            Bound::SubjectLength => "rendered subject: more than 998 characters",
            Bound::Time => "render time: more than 250 ms",
            Bound::Memory => "memory: the values made while rendering are too large",
        })
    }
}

/// The budget of the render running on this thread.
#[derive(Debug)]
pub(super) struct Budget {
    deadline: Instant,
    iterations_left: u64,
    work_left: usize,
    /// Whether outputs are HTML-escaped (an HTML body) or not (subjects, text).
    pub(super) escape_html: bool,
    crossed: Option<Bound>,
}

thread_local! {
    static CURRENT: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

/// Clears the thread's budget when the render ends, however it ends.
struct Reset(Option<Budget>);

impl Drop for Reset {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

impl Budget {
    /// Runs `render` with a fresh budget; returns its result and the first bound crossed.
    pub(super) fn run<T>(escape_html: bool, render: impl FnOnce() -> T) -> (T, Option<Bound>) {
        let budget = Budget {
            deadline: Instant::now() + MAX_RENDER_TIME,
            iterations_left: MAX_LOOP_ITERATIONS,
            work_left: MAX_WORK_BYTES,
            escape_html,
            crossed: None,
        };
        let previous = CURRENT.with(|c| c.borrow_mut().replace(budget));
        let reset = Reset(previous);
        let out = render();
        let crossed = CURRENT.with(|c| c.borrow().as_ref().and_then(|b| b.crossed));
        drop(reset);
        (out, crossed)
    }

    /// Applies `f` to the current budget; outside a render (parsing, unit tests of a single
    /// filter) there is none and nothing is charged.
    fn with<T>(f: impl FnOnce(&mut Budget) -> Result<T, Bound>, outside: T) -> Result<T, Bound> {
        CURRENT.with(|c| match c.borrow_mut().as_mut() {
            Some(budget) => {
                if let Some(bound) = budget.crossed {
                    return Err(bound);
                }
                let result = f(budget);
                if let Err(bound) = result {
                    budget.crossed = Some(bound);
                }
                result
            }
            None => Ok(outside),
        })
    }

    /// Whether the current render escapes outputs.
    pub(super) fn escaping() -> bool {
        CURRENT.with(|c| c.borrow().as_ref().is_some_and(|b| b.escape_html))
    }
}

fn liquid_error(bound: Bound) -> liquid_core::Error {
    liquid_core::Error::with_msg(bound.to_string())
}

/// Checks the time bound.
pub(super) fn tick() -> liquid_core::Result<()> {
    Budget::with(
        |b| {
            if Instant::now() > b.deadline {
                Err(Bound::Time)
            } else {
                Ok(())
            }
        },
        (),
    )
    .map_err(liquid_error)
}

/// Takes one loop iteration (and checks the time).
pub(super) fn iteration() -> liquid_core::Result<()> {
    tick()?;
    Budget::with(
        |b| {
            b.iterations_left = b
                .iterations_left
                .checked_sub(1)
                .ok_or(Bound::LoopIterations)?;
            Ok(())
        },
        (),
    )
    .map_err(liquid_error)
}

/// Charges `bytes` of values made while rendering.
pub(super) fn charge(bytes: usize) -> liquid_core::Result<()> {
    Budget::with(
        |b| {
            b.work_left = b.work_left.checked_sub(bytes).ok_or(Bound::Memory)?;
            Ok(())
        },
        (),
    )
    .map_err(liquid_error)
}

/// Records that a value about to be made would cross the memory bound.
pub(super) fn too_large() -> liquid_core::Error {
    let _ = Budget::with(|_| Err::<(), _>(Bound::Memory), ());
    liquid_error(Bound::Memory)
}

/// Whether a value of `bytes` may still be made.
pub(super) fn affordable(bytes: usize) -> bool {
    bytes <= MAX_VALUE_BYTES
        && CURRENT.with(|c| c.borrow().as_ref().is_none_or(|b| bytes <= b.work_left))
}

/// A writer that holds at most `limit` bytes: past it the write fails and `bound` is recorded.
/// Every write also checks the time bound.
pub(super) struct BoundedWriter<'w> {
    out: &'w mut Vec<u8>,
    limit: usize,
    bound: Bound,
}

impl<'w> BoundedWriter<'w> {
    /// A writer appending to `out`.
    pub(super) fn new(out: &'w mut Vec<u8>, limit: usize, bound: Bound) -> Self {
        Self { out, limit, bound }
    }
}

impl std::io::Write for BoundedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let failed = |bound: Bound| std::io::Error::other(bound.to_string());
        tick().map_err(|_| failed(Bound::Time))?;
        if self.out.len() + buf.len() > self.limit {
            let bound = self.bound;
            let _ = Budget::with(|_| Err::<(), _>(bound), ());
            return Err(failed(bound));
        }
        self.out.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
