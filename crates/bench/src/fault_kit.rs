//! What the fault benchmarks (`faults`, `workflow-faults`) share: a consumer that crashes at a
//! chosen point and never comes back, two copies of one delivery whose store operations
//! interleave in a drawn order, and the tally of faults injected.
//!
//! A delivery runs inside [`run_in`] with its [`Ctx`] as a task-local, so the fault-injecting
//! store, queue or provider can tell which delivery (and which copy of it) is calling.

use crate::stats::keyed_unit;
use plunk_store::table::StoreError;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Purpose key of the gate's draws.
const P_GATE: u64 = 10;

/// Faults injected, by name, summed over schedules.
#[derive(Debug, Default, Clone)]
pub struct FaultCounts {
    pub counts: BTreeMap<&'static str, u64>,
}

impl FaultCounts {
    /// Counts `n` more of `name`.
    pub fn add(&mut self, name: &'static str, n: u64) {
        *self.counts.entry(name).or_insert(0) += n;
    }

    /// Adds another tally to this one.
    pub fn merge(&mut self, other: &FaultCounts) {
        for (k, v) in &other.counts {
            self.add(k, *v);
        }
    }
}

/// A consumer's crash: set once, wakes whoever waits.
#[derive(Default)]
pub struct Crash {
    hit: AtomicBool,
    notify: Notify,
}

impl Crash {
    /// The consumer dies now.
    pub fn trigger(&self) {
        self.hit.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Returns once the consumer died.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.hit.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

/// Serialises the store operations of two copies of one delivery in a drawn order, so concurrent
/// duplicates interleave differently per schedule but the same way every run.
pub struct Gate {
    keys: [u64; 4],
    state: Mutex<GateState>,
    notify: Notify,
}

#[derive(Default)]
struct GateState {
    holder: Option<u8>,
    position: u64,
    finished: [bool; 2],
}

impl Gate {
    /// A gate whose turns are drawn from `keys`.
    pub fn new(keys: [u64; 4]) -> Self {
        Self {
            keys,
            state: Mutex::new(GateState::default()),
            notify: Notify::new(),
        }
    }

    fn turn(&self, position: u64) -> u8 {
        let [a, b, c, d] = self.keys;
        u8::from(keyed_unit(&[a, b, c, d, P_GATE, position]) >= 0.5)
    }

    /// Waits for `copy`'s turn (or for the other copy to have finished).
    pub async fn acquire(&self, copy: u8) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock().expect("gate");
                let other_done = s.finished[usize::from(1 - copy)];
                if s.holder.is_none() && (other_done || self.turn(s.position) == copy) {
                    s.holder = Some(copy);
                    return;
                }
            }
            notified.await;
        }
    }

    /// `copy`'s operation is done: the next turn may be drawn.
    pub fn release(&self, copy: u8) {
        {
            let mut s = self.state.lock().expect("gate");
            if s.holder == Some(copy) {
                s.holder = None;
                s.position += 1;
            }
        }
        self.notify.notify_waiters();
    }

    /// `copy` will make no more operations.
    pub fn finish(&self, copy: u8) {
        {
            let mut s = self.state.lock().expect("gate");
            s.finished[usize::from(copy)] = true;
            if s.holder == Some(copy) {
                s.holder = None;
            }
        }
        self.notify.notify_waiters();
    }
}

/// Who is running: one copy of one delivery of one unit of work (an email, an execution).
pub struct Ctx {
    /// Index of the unit of work in its schedule.
    pub unit: usize,
    /// How many times the unit was delivered so far, this one included.
    pub delivery: u64,
    /// 0, or 1 for the second of two concurrent copies.
    pub copy: u8,
    /// Store operations made so far.
    pub ops: AtomicU64,
    pub crash: Crash,
    pub gate: Option<Arc<Gate>>,
}

impl Ctx {
    /// A delivery's context; `gate` when it runs beside a concurrent copy.
    pub fn new(unit: usize, delivery: u64, copy: u8, gate: Option<Arc<Gate>>) -> Arc<Self> {
        Arc::new(Self {
            unit,
            delivery,
            copy,
            ops: AtomicU64::new(0),
            crash: Crash::default(),
            gate,
        })
    }

    /// This copy makes no more operations.
    pub fn finish(&self) {
        if let Some(g) = &self.gate {
            g.finish(self.copy);
        }
    }

    /// The consumer dies here: never returns (the caller's future is dropped).
    pub async fn die<T>(&self) -> T {
        self.finish();
        self.crash.trigger();
        std::future::pending::<T>().await
    }
}

tokio::task_local! {
    static CTX: Arc<Ctx>;
}

/// The delivery the calling task runs, if any.
pub fn current_ctx() -> Option<Arc<Ctx>> {
    CTX.try_with(Arc::clone).ok()
}

/// Runs one copy of a delivery with `ctx`; `None` when its consumer crashed.
pub async fn run_in<T>(ctx: Arc<Ctx>, work: impl Future<Output = T>) -> Option<T> {
    let handled = CTX.scope(ctx.clone(), work);
    tokio::select! {
        biased;
        outcome = handled => {
            ctx.finish();
            Some(outcome)
        }
        _ = ctx.crash.wait() => None,
    }
}

/// What happens to one store operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpFault {
    None,
    /// An error; the operation did not apply.
    ErrorBefore,
    /// An error; the operation applied.
    ErrorAfter,
    /// The consumer dies before the operation.
    CrashBefore,
    /// The consumer dies after the operation applied.
    CrashAfter,
}

impl OpFault {
    /// The fault of one operation from a uniform draw `u`: a crash below `crash`, an error below
    /// `crash + error`, else none; `before` chooses whether it strikes before or after the
    /// operation applies.
    pub fn drawn(u: f64, before: bool, crash: f64, error: f64) -> Self {
        match (u < crash, u < crash + error, before) {
            (true, _, true) => OpFault::CrashBefore,
            (true, _, false) => OpFault::CrashAfter,
            (false, true, true) => OpFault::ErrorBefore,
            (false, true, false) => OpFault::ErrorAfter,
            (false, false, _) => OpFault::None,
        }
    }
}

/// Runs the store operation `f` under the fault `decide` returns: in the calling delivery's turn
/// when it has a concurrent copy (the draw is made in turn, so its order repeats).
pub async fn gated<T, F, Fut>(decide: impl FnOnce() -> OpFault, f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let ctx = current_ctx();
    let gate = ctx
        .as_ref()
        .and_then(|c| c.gate.clone().map(|g| (g, c.copy)));
    if let Some((g, copy)) = &gate {
        g.acquire(*copy).await;
    }
    let release = || {
        if let Some((g, copy)) = &gate {
            g.release(*copy);
        }
    };
    let unavailable = || StoreError::Unavailable("injected store fault".into());
    match decide() {
        OpFault::None => {
            let r = f().await;
            release();
            r
        }
        OpFault::ErrorBefore => {
            release();
            Err(unavailable())
        }
        OpFault::ErrorAfter => {
            let _ = f().await;
            release();
            Err(unavailable())
        }
        OpFault::CrashBefore => {
            release();
            ctx.expect("crashes only inside a delivery").die().await
        }
        OpFault::CrashAfter => {
            let _ = f().await;
            release();
            ctx.expect("crashes only inside a delivery").die().await
        }
    }
}
