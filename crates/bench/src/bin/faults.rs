//! `faults [SCHEDULES]`: the send pipeline's guarantees under randomised faults.
//!
//! Each schedule (default 10,000, `BENCH_FAULT_SCHEDULES` or the first argument; fixed seed, so a
//! run repeats exactly) builds a fresh store (`SqliteTable::in_memory()`), a project with a verified
//! domain, and accepts 1–5 emails through the real router (`POST /v1/send`), some to suppressed
//! addresses. The real `SendWorker` (pacer over `MemoryPace` at 1,000,000/s, so it never waits)
//! then drains the transactional queue (`MemoryQueue`) in a delivery loop that mirrors the SQS
//! event source on a simulated clock: batches of 10, a 60 s visibility timeout, back-off through
//! `change_visibility`, redrive to a dead-letter queue after 10 receives. Scheduler ticks
//! (`Scheduler::tick`) run 2 and 16 simulated minutes after acceptance (retried the next minute when
//! they fail), and once more 72 hours after.
//!
//! Faults, each drawn per schedule with its own probability, decided by keyed hashes of the seed so
//! they do not depend on timing:
//! - queue: enqueue refused at acceptance (the sweep must find the email), enqueued twice,
//!   duplicate concurrent delivery of a message to two consumers (their store operations
//!   interleaved in a drawn order), acknowledgements lost (delete or visibility change failing);
//! - consumer crash: mid-batch (the rest of the batch stays invisible, then returns), at a store
//!   operation (before or after it applies), and after the provider accepted the message but before
//!   `SENT` is written (the record stays `SENDING`);
//! - provider: throttling, transient and permanent errors;
//! - store: transient errors before or after an operation applies, in the worker and in ticks.
//!
//! The worker and scheduler stamp records with the real clock; the fault table rewrites the claim
//! time (`sendingAt`) with the simulated clock, so the stale-claim check sees simulated time.
//!
//! Checked per email: handed to the provider at most once; at the end of the active phase in a
//! state the API shows (`SENT`, `FAILED` with a reason, `SUPPRESSED`, or `PENDING` with its message
//! in the dead-letter queue); terminal after the 72-hour tick. Exits 1 on any duplicate or lost
//! email (not in the store; `PENDING` with no message left; still not terminal after 72 h).

use async_trait::async_trait;
use axum::http::Method;
use plunk_bench::fault_kit::{current_ctx, gated, run_in, Ctx, FaultCounts, Gate, OpFault};
use plunk_bench::inproc::{self, call};
use plunk_bench::stats::keyed_unit;
use plunk_domain::email_record::EmailStatus;
use plunk_domain::{EmailAddress, Timestamp};
use plunk_http_kit::{AppState, Settings};
use plunk_messaging::mailer::{MailError, Mailer, OutgoingEmail};
use plunk_messaging::memory::{MemoryBlobs, MemoryQueue};
use plunk_messaging::queue::{Queue, QueueError, ReceivedMessage};
use plunk_messaging::send_queues::{SendJob, SendQueues};
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::keys;
use plunk_store::table::{Condition, Item, Key, Page, Query, StoreError, Table, WriteOp};
use plunk_store::Store;
use plunk_worker::clock::Clock;
use plunk_worker::consumer;
use plunk_worker::pacing::{MemoryPace, Pacer};
use plunk_worker::scheduler::Scheduler;
use plunk_worker::send::{Outcome, SendWorker, SenderConfig};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const SEED: u64 = 0xFA17_5EED;
const MINUTE_MS: i64 = 60_000;
/// The queue's visibility timeout (the consumer's `VISIBILITY`).
const VISIBILITY_MS: i64 = 60_000;
/// Receives before a message moves to the dead-letter queue (as `plunk serve` configures it).
const MAX_RECEIVES: u32 = 10;
/// The simulated time a schedule may take before it is declared stuck.
const CAP_MS: i64 = 3 * 3600 * 1000;
/// Minutes after acceptance of the scheduled ticks (the sweeps that can find these emails).
const TICK_MINUTES: [i64; 2] = [2, 16];
/// Minute of the expiry tick.
const EXPIRY_MINUTE: i64 = 72 * 60;

// Purposes of keyed draws.
const P_PROFILE: u64 = 1;
const P_OP: u64 = 2;
const P_TICK_OP: u64 = 3;
const P_MAIL: u64 = 4;
const P_BATCH: u64 = 5;
const P_DUP: u64 = 6;
const P_ACK: u64 = 7;
const P_ENQUEUE: u64 = 8;
const P_ENQUEUE_DUP: u64 = 9;
const P_SUPPRESS: u64 = 11;
const P_RECIPIENTS: u64 = 12;

/// Fault probabilities of one schedule.
#[derive(Debug, Clone, Copy, Default)]
struct Profile {
    recipients: usize,
    pre_suppressed: f64,
    post_suppressed: f64,
    enqueue_fail: f64,
    enqueue_dup: f64,
    concurrent_dup: f64,
    batch_crash: f64,
    ack_fail: f64,
    throttle: f64,
    transient: f64,
    permanent: f64,
    crash_after_send: f64,
    store_error: f64,
    store_crash: f64,
    tick_error: f64,
}

impl Profile {
    fn draw(schedule: u64) -> Self {
        let mut n = 0u64;
        // Each fault is off in about half the schedules, else uniform in [0, max).
        let mut p = |max: f64| {
            n += 1;
            if keyed_unit(&[SEED, schedule, P_PROFILE, n, 0]) < 0.5 {
                0.0
            } else {
                max * keyed_unit(&[SEED, schedule, P_PROFILE, n, 1])
            }
        };
        let mut profile = Profile {
            recipients: 0,
            pre_suppressed: p(0.3),
            post_suppressed: p(0.3),
            enqueue_fail: p(0.5),
            enqueue_dup: p(0.5),
            concurrent_dup: p(0.5),
            batch_crash: p(0.4),
            ack_fail: p(0.4),
            throttle: p(0.5),
            transient: p(0.3),
            permanent: p(0.15),
            crash_after_send: p(0.3),
            store_error: p(0.06),
            store_crash: p(0.03),
            tick_error: p(0.002),
        };
        profile.recipients = 1 + (keyed_unit(&[SEED, schedule, P_RECIPIENTS]) * 5.0) as usize;
        profile
    }
}

/// Everything one schedule shares.
struct World {
    schedule: u64,
    profile: Profile,
    /// Print what happens (`FAULTS_TRACE=<schedule>`).
    trace: bool,
    /// Simulated milliseconds since the start of the acceptance minute.
    vnow: AtomicI64,
    /// Unix milliseconds of the start of the acceptance minute.
    base_ms: AtomicI64,
    index: Mutex<HashMap<Uuid, usize>>,
    /// Per-email counters: deliveries and provider calls.
    counters: Mutex<HashMap<(u64, usize), u64>>,
    /// Faults met per email index (inside its deliveries).
    met: Mutex<HashMap<usize, BTreeSet<&'static str>>>,
    /// Provider hand-offs per email index.
    handoffs: Mutex<HashMap<usize, u32>>,
    faults: Mutex<FaultCounts>,
    /// Set while a tick runs: its number.
    tick: Mutex<Option<u64>>,
    tick_ops: AtomicU64,
    enqueue_calls: AtomicU64,
    enqueued: AtomicU64,
    batches: AtomicU64,
}

impl World {
    fn draw(&self, keys: &[u64]) -> f64 {
        let mut all = vec![SEED, self.schedule];
        all.extend_from_slice(keys);
        keyed_unit(&all)
    }

    fn vnow(&self) -> i64 {
        self.vnow.load(Ordering::SeqCst)
    }

    fn fault(&self, name: &'static str) {
        self.note(|| name.to_owned());
        if let Some(ctx) = current_ctx() {
            self.met
                .lock()
                .expect("met")
                .entry(ctx.unit)
                .or_default()
                .insert(name);
        }
        self.faults.lock().expect("faults").add(name, 1);
    }

    fn note(&self, what: impl FnOnce() -> String) {
        if self.trace {
            let ctx = current_ctx().map(|c| {
                format!(
                    " [email #{} delivery {} copy {}]",
                    c.unit, c.delivery, c.copy
                )
            });
            eprintln!(
                "{:>9} ms  {}{}",
                self.vnow(),
                what(),
                ctx.unwrap_or_default()
            );
        }
    }

    fn idx(&self, id: Uuid) -> usize {
        self.index
            .lock()
            .expect("index")
            .get(&id)
            .copied()
            .unwrap_or(usize::MAX)
    }

    fn bump(&self, purpose: u64, email: usize) -> u64 {
        let mut c = self.counters.lock().expect("counters");
        let n = c.entry((purpose, email)).or_insert(0);
        *n += 1;
        *n
    }
}

/// The store with faults, and the simulated claim time.
struct FaultTable {
    inner: Arc<dyn Table>,
    world: Arc<World>,
}

impl FaultTable {
    /// `tick_eligible`: an operation whose place in a tick does not depend on the (random) email
    /// ids — the sweep-partition queries and the scheduler's own state — so tick faults repeat exactly.
    fn decide(&self, ctx: Option<&Ctx>, tick_eligible: bool) -> OpFault {
        let w = &self.world;
        let p = w.profile;
        if let Some(ctx) = ctx {
            let op = ctx.ops.fetch_add(1, Ordering::SeqCst);
            let u = w.draw(&[P_OP, ctx.unit as u64, ctx.delivery, u64::from(ctx.copy), op]);
            let before = w.draw(&[
                P_OP,
                ctx.unit as u64,
                ctx.delivery,
                u64::from(ctx.copy),
                op,
                1,
            ]) < 0.5;
            let fault = OpFault::drawn(u, before, p.store_crash, p.store_error);
            match fault {
                OpFault::None => {}
                OpFault::CrashBefore => w.fault("store: crash before an operation"),
                OpFault::CrashAfter => w.fault("store: crash after an operation"),
                OpFault::ErrorBefore => w.fault("store: error, not applied"),
                OpFault::ErrorAfter => w.fault("store: error after applying"),
            }
            fault
        } else if let (Some(tick), true) = (*w.tick.lock().expect("tick"), tick_eligible) {
            let op = w.tick_ops.fetch_add(1, Ordering::SeqCst);
            if w.draw(&[P_TICK_OP, tick, op]) < p.tick_error {
                w.fault("store: error during a tick");
                OpFault::ErrorBefore
            } else {
                OpFault::None
            }
        } else {
            OpFault::None
        }
    }

    async fn run<T, F, Fut>(&self, tick_eligible: bool, f: F) -> Result<T, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        gated(|| self.decide(current_ctx().as_deref(), tick_eligible), f).await
    }

    /// A claim (`SENDING`) gets the simulated time as `sendingAt`.
    fn simulated_claim_time(&self, mut item: Item) -> Item {
        if item.body["status"] == json!("SENDING") && item.body.get("sendingAt").is_some() {
            let at = self.world.base_ms.load(Ordering::SeqCst) + self.world.vnow();
            if let Some(ts) = Timestamp::from_millis(at) {
                item.body["sendingAt"] = serde_json::to_value(ts).expect("timestamp");
            }
        }
        item
    }
}

#[async_trait]
impl Table for FaultTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.run(*key == keys::scheduler_state(), || self.inner.get(key))
            .await
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        let item = self.simulated_claim_time(item);
        self.run(item.key == keys::scheduler_state(), || {
            self.inner.put(item, condition)
        })
        .await
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        self.run(false, || self.inner.delete(key, condition)).await
    }

    async fn add(
        &self,
        key: &Key,
        delta: i64,
        max: Option<i64>,
        ttl: Option<i64>,
    ) -> Result<i64, StoreError> {
        self.run(false, || self.inner.add(key, delta, max, ttl))
            .await
    }

    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.run(false, || self.inner.batch_get(keys)).await
    }

    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        self.run(true, || self.inner.query(query)).await
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.run(false, || self.inner.transact(ops)).await
    }
}

/// The provider: throttles, fails, accepts (and counts), or accepts and then the consumer dies.
struct FaultMailer {
    world: Arc<World>,
    next: AtomicU32,
}

#[async_trait]
impl Mailer for FaultMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        let w = &self.world;
        let p = w.profile;
        let idx = w.idx(email.email_id);
        let call = w.bump(P_MAIL, idx);
        let u = w.draw(&[P_MAIL, idx as u64, call]);
        let mut edge = p.throttle;
        if u < edge {
            w.fault("provider: throttled");
            return Err(MailError::Throttled("Maximum sending rate exceeded".into()));
        }
        edge += p.transient;
        if u < edge {
            w.fault("provider: transient error");
            return Err(MailError::Transient("service unavailable".into()));
        }
        edge += p.permanent;
        if u < edge {
            w.fault("provider: permanent error");
            return Err(MailError::Permanent("address rejected".into()));
        }
        *w.handoffs.lock().expect("handoffs").entry(idx).or_insert(0) += 1;
        if u < edge + p.crash_after_send {
            if let Some(ctx) = current_ctx() {
                w.fault("crash after the provider accepted");
                return ctx.die().await;
            }
        }
        Ok(format!("sim-{}", self.next.fetch_add(1, Ordering::Relaxed)))
    }
}

/// The pacer's clock: simulated time, and no waiting (the rate is far above anything sent here).
struct SimClock {
    world: Arc<World>,
}

#[async_trait]
impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        self.world.base_ms.load(Ordering::SeqCst) + self.world.vnow()
    }

    async fn sleep_until_ms(&self, _at_ms: i64) {}
}

/// `MemoryQueue` on the simulated clock: received messages stay hidden (for a real day) and the
/// simulated visibility is kept here; enqueue faults; redrive to a dead-letter list.
struct SimQueue {
    inner: Arc<MemoryQueue>,
    world: Arc<World>,
    /// Receipt → simulated time it becomes visible again.
    inflight: Mutex<HashMap<String, i64>>,
    dead: Mutex<Vec<String>>,
}

const HIDDEN: Duration = Duration::from_secs(24 * 3600);

impl SimQueue {
    fn enqueue_fails(&self) -> bool {
        let n = self.world.enqueue_calls.fetch_add(1, Ordering::SeqCst);
        let fail = self.world.draw(&[P_ENQUEUE, n]) < self.world.profile.enqueue_fail;
        if fail {
            self.world.fault("queue: enqueue refused");
        }
        fail
    }

    async fn push(&self, body: &str) -> Result<(), QueueError> {
        // Keyed by email (ids are known after acceptance) so the sweep's order does not matter.
        let idx = serde_json::from_str::<SendJob>(body)
            .map_or(usize::MAX, |j| self.world.idx(j.email_id));
        let n = if idx == usize::MAX {
            self.world.enqueued.fetch_add(1, Ordering::SeqCst)
        } else {
            self.world.bump(P_ENQUEUE_DUP, idx)
        };
        self.inner.send(body, Duration::ZERO).await?;
        if self.world.draw(&[P_ENQUEUE_DUP, idx as u64, n]) < self.world.profile.enqueue_dup {
            self.world.fault("queue: message enqueued twice");
            self.inner.send(body, Duration::ZERO).await?;
        }
        Ok(())
    }

    /// Makes messages whose simulated visibility passed visible again.
    async fn release_due(&self, now: i64) {
        let due: Vec<String> = {
            let mut inflight = self.inflight.lock().expect("inflight");
            let due: Vec<String> = inflight
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(r, _)| r.clone())
                .collect();
            for r in &due {
                inflight.remove(r);
            }
            due
        };
        for r in due {
            let _ = self.inner.change_visibility(&r, Duration::ZERO).await;
        }
    }

    /// Every visible message, hidden for the visibility timeout; those received too often go to
    /// the dead-letter list instead.
    async fn take_visible(&self, now: i64) -> Vec<ReceivedMessage> {
        let mut out = Vec::new();
        loop {
            let got = self
                .inner
                .receive(10, HIDDEN, Duration::ZERO)
                .await
                .expect("memory queue");
            if got.is_empty() {
                return out;
            }
            for m in got {
                if m.receive_count > MAX_RECEIVES {
                    self.world.fault("queue: moved to the dead-letter queue");
                    self.dead.lock().expect("dead").push(m.body.clone());
                    self.inner.delete(&m.receipt).await.expect("delete");
                } else {
                    self.inflight
                        .lock()
                        .expect("inflight")
                        .insert(m.receipt.clone(), now + VISIBILITY_MS);
                    out.push(m);
                }
            }
        }
    }

    async fn ack(&self, receipt: &str, outcome: Outcome, lost: bool) {
        if lost {
            self.world.fault("queue: acknowledgement lost");
            return;
        }
        match outcome {
            Outcome::Done => {
                if self.inner.delete(receipt).await.is_ok() {
                    self.inflight.lock().expect("inflight").remove(receipt);
                }
            }
            Outcome::RetryAfter(delay) => {
                let mut inflight = self.inflight.lock().expect("inflight");
                if let Some(at) = inflight.get_mut(receipt) {
                    *at = self.world.vnow() + delay.as_millis() as i64;
                }
            }
        }
    }

    fn next_visible_at(&self) -> Option<i64> {
        self.inflight
            .lock()
            .expect("inflight")
            .values()
            .min()
            .copied()
    }

    fn holds(&self, id: Uuid) -> bool {
        let id = id.to_string();
        self.inner.bodies().iter().any(|b| b.contains(&id))
    }

    fn dead_holds(&self, id: Uuid) -> bool {
        let id = id.to_string();
        self.dead
            .lock()
            .expect("dead")
            .iter()
            .any(|b| b.contains(&id))
    }
}

#[async_trait]
impl Queue for SimQueue {
    async fn send(&self, body: &str, _delay: Duration) -> Result<(), QueueError> {
        if self.enqueue_fails() {
            return Err(QueueError::Unavailable("injected".into()));
        }
        self.push(body).await
    }

    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError> {
        if self.enqueue_fails() {
            return Err(QueueError::Unavailable("injected".into()));
        }
        for b in bodies {
            self.push(b).await?;
        }
        Ok(())
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.inner.receive(max, visibility, wait).await
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.inner.delete(receipt).await
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.inner.change_visibility(receipt, visibility).await
    }
}

/// Runs one copy of a delivery; `None` when its consumer crashed.
async fn run_copy(worker: &SendWorker, body: &str, ctx: Arc<Ctx>) -> Option<Outcome> {
    run_in(ctx, consumer::handle(worker, body)).await
}

/// What one schedule found.
#[derive(Debug, Default)]
struct Findings {
    emails: usize,
    /// Status after the active phase (label → count).
    active: BTreeMap<String, u64>,
    /// Status after the 72-hour tick.
    after_expiry: BTreeMap<String, u64>,
    duplicates: u64,
    lost: u64,
    stuck: u64,
    faults: FaultCounts,
    requeued: u64,
    deliveries: u64,
    simulated_ms: i64,
    examples: Vec<String>,
}

fn label(status: EmailStatus, error: Option<&str>) -> String {
    match status {
        EmailStatus::Failed => {
            let reason = error.unwrap_or("?");
            let code = reason.split(':').next().unwrap_or(reason);
            format!("FAILED {code}")
        }
        s => s.as_str().to_owned(),
    }
}

struct Scenario {
    world: Arc<World>,
    raw: Store,
    queue: Arc<SimQueue>,
    worker: SendWorker,
    scheduler: Scheduler,
    project: Uuid,
    ids: Vec<Uuid>,
}

impl Scenario {
    async fn set_scheduler_minute(&self, last_minute: i64) {
        let key = keys::scheduler_state();
        let version = self
            .raw
            .table()
            .get(&key)
            .await
            .expect("state")
            .map_or(0, |i| i.version);
        let item = Item::new(key, json!({ "lastMinute": last_minute })).with_version(version + 1);
        self.raw
            .table()
            .put(item, Condition::None)
            .await
            .expect("state");
    }

    /// One tick at `minute` minutes after the acceptance minute; true when it succeeded.
    async fn tick(&self, minute: i64, tick_no: u64, report: &mut Findings) -> bool {
        let w = &self.world;
        let base_minute = w.base_ms.load(Ordering::SeqCst) / MINUTE_MS;
        *w.tick.lock().expect("tick") = Some(tick_no);
        let result = self
            .scheduler
            .tick((base_minute + minute) * MINUTE_MS)
            .await;
        *w.tick.lock().expect("tick") = None;
        w.note(|| format!("tick at minute {minute}: {result:?}"));
        match result {
            Ok(r) => {
                report.requeued += u64::from(r.requeued);
                true
            }
            Err(_) => {
                w.fault("scheduler: tick failed (retried next minute)");
                false
            }
        }
    }

    async fn deliver(&self, batch: &[ReceivedMessage], report: &mut Findings) {
        let w = &self.world;
        let p = w.profile;
        let batch_no = w.batches.fetch_add(1, Ordering::SeqCst);
        let crash_at = (w.draw(&[P_BATCH, batch_no]) < p.batch_crash)
            .then(|| (w.draw(&[P_BATCH, batch_no, 1]) * batch.len() as f64) as usize);
        for (i, m) in batch.iter().enumerate() {
            if crash_at == Some(i) {
                w.fault("consumer: crash mid-batch");
                return;
            }
            let idx =
                serde_json::from_str::<SendJob>(&m.body).map_or(usize::MAX, |j| w.idx(j.email_id));
            let delivery = w.bump(P_DUP, idx);
            report.deliveries += 1;
            let duplicate = w.draw(&[P_DUP, idx as u64, delivery]) < p.concurrent_dup;
            let mut outcomes: Vec<(u8, Option<Outcome>)> = Vec::new();
            if duplicate {
                w.fault("queue: delivered to two consumers at once");
                let gate = Arc::new(Gate::new([SEED, w.schedule, idx as u64, delivery]));
                let done = Mutex::new(Vec::new());
                let copy = |c: u8| {
                    let ctx = Ctx::new(idx, delivery, c, Some(gate.clone()));
                    let done = &done;
                    async move {
                        let o = run_copy(&self.worker, &m.body, ctx).await;
                        done.lock().expect("done").push((c, o));
                    }
                };
                tokio::join!(copy(0), copy(1));
                outcomes = done.into_inner().expect("done");
                // Which consumer acknowledges first is drawn, not left to timing.
                outcomes.sort_by_key(|(c, _)| *c);
                if w.draw(&[P_ACK, idx as u64, delivery, 2]) < 0.5 {
                    outcomes.reverse();
                }
            } else {
                let o = run_copy(&self.worker, &m.body, Ctx::new(idx, delivery, 0, None)).await;
                outcomes.push((0, o));
            }
            let mut crashed = false;
            w.note(|| {
                format!(
                    "email #{idx} delivery {delivery} (receive {}): {outcomes:?}",
                    m.receive_count
                )
            });
            for (c, o) in outcomes {
                match o {
                    Some(outcome) => {
                        let lost =
                            w.draw(&[P_ACK, idx as u64, delivery, u64::from(c)]) < p.ack_fail;
                        self.queue.ack(&m.receipt, outcome, lost).await;
                    }
                    None => crashed |= c == 0,
                }
            }
            if crashed {
                return;
            }
        }
    }

    /// The active phase: deliveries and the 2- and 16-minute ticks, until nothing is left to do.
    async fn run_active(&self, report: &mut Findings) {
        let w = &self.world;
        let mut ticks: BTreeSet<(i64, bool)> = TICK_MINUTES.iter().map(|m| (*m, true)).collect();
        let mut tick_no = 0;
        loop {
            let now = w.vnow();
            self.queue.release_due(now).await;
            if let Some(&(minute, scheduled)) = ticks.first() {
                if minute * MINUTE_MS <= now {
                    ticks.pop_first();
                    if scheduled {
                        // What the every-minute ticks in between would have left.
                        let base_minute = w.base_ms.load(Ordering::SeqCst) / MINUTE_MS;
                        self.set_scheduler_minute(base_minute + minute - 1).await;
                    }
                    tick_no += 1;
                    if !self.tick(minute, tick_no, report).await {
                        ticks.insert((minute + 1, false));
                    }
                    continue;
                }
            }
            let mut visible = self.queue.take_visible(now).await;
            if visible.is_empty() {
                let next_tick = ticks.first().map(|(m, _)| m * MINUTE_MS);
                let next = match (self.queue.next_visible_at(), next_tick) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => match a.or(b) {
                        Some(t) => t,
                        None => return,
                    },
                };
                if next > CAP_MS {
                    report.stuck += 1;
                    return;
                }
                w.vnow.store(next.max(now + 1), Ordering::SeqCst);
                continue;
            }
            // A fixed order (standard queues promise none), so a run repeats exactly.
            visible.sort_by_key(|m| {
                let idx = serde_json::from_str::<SendJob>(&m.body)
                    .map_or(usize::MAX, |j| w.idx(j.email_id));
                (idx, m.receive_count)
            });
            for batch in visible.chunks(10) {
                self.deliver(batch, report).await;
            }
        }
    }

    /// Classifies every email; returns (labels, lost).
    async fn classify(&self, expired: bool) -> (BTreeMap<String, u64>, u64, Vec<String>) {
        let mut out = BTreeMap::new();
        let mut lost = 0;
        let mut examples = Vec::new();
        for id in &self.ids {
            let record = self
                .raw
                .emails()
                .get(self.project, *id)
                .await
                .expect("read email");
            let l = match &record {
                None => {
                    lost += 1;
                    "LOST: not in the store".to_owned()
                }
                Some(r) => match r.status {
                    EmailStatus::Pending if !expired && self.queue.dead_holds(*id) => {
                        format!(
                            "PENDING (dead-letter queue, {} attempts)",
                            r.attempts.min(9)
                        )
                    }
                    EmailStatus::Pending if !expired && self.queue.holds(*id) => {
                        "PENDING (queued)".to_owned()
                    }
                    EmailStatus::Pending => {
                        lost += 1;
                        "LOST: PENDING with no message".to_owned()
                    }
                    EmailStatus::Sending if expired => {
                        lost += 1;
                        "LOST: SENDING after 72 h".to_owned()
                    }
                    EmailStatus::Sending => {
                        "SENDING (claim older than 15 min, not swept)".to_owned()
                    }
                    s => label(s, r.error.as_deref()),
                },
            };
            if l.starts_with("LOST") || l.starts_with("SENDING") {
                examples.push(format!(
                    "schedule {} email {id}: {l} ({:?})",
                    self.world.schedule,
                    record.map(|r| (r.status, r.attempts, r.error))
                ));
            }
            *out.entry(l).or_insert(0) += 1;
        }
        (out, lost, examples)
    }
}

async fn run_schedule(schedule: u64) -> Findings {
    let profile = Profile::draw(schedule);
    let world = Arc::new(World {
        schedule,
        profile,
        trace: std::env::var("FAULTS_TRACE").is_ok_and(|t| t == schedule.to_string()),
        vnow: AtomicI64::new(0),
        base_ms: AtomicI64::new(0),
        index: Mutex::new(HashMap::new()),
        counters: Mutex::new(HashMap::new()),
        handoffs: Mutex::new(HashMap::new()),
        met: Mutex::new(HashMap::new()),
        faults: Mutex::new(FaultCounts::default()),
        tick: Mutex::new(None),
        tick_ops: AtomicU64::new(0),
        enqueue_calls: AtomicU64::new(0),
        enqueued: AtomicU64::new(0),
        batches: AtomicU64::new(0),
    });
    // Acceptance must fall in one minute: skip the last seconds of a minute.
    let second = (plunk_worker::clock::SystemClock.now_ms()).rem_euclid(MINUTE_MS);
    if second > 57_000 {
        tokio::time::sleep(Duration::from_millis((MINUTE_MS - second + 20) as u64)).await;
    }

    let sqlite = SqliteTable::in_memory().expect("sqlite");
    let raw = Store::new(Arc::new(sqlite.clone()));
    let store = Store::new(Arc::new(FaultTable {
        inner: Arc::new(sqlite),
        world: world.clone(),
    }));
    let queue = Arc::new(SimQueue {
        inner: Arc::new(MemoryQueue::default()),
        world: world.clone(),
        inflight: Mutex::new(HashMap::new()),
        dead: Mutex::new(Vec::new()),
    });
    let queues = SendQueues {
        transactional: queue.clone(),
        workflow: Arc::new(MemoryQueue::default()),
        campaign: Arc::new(MemoryQueue::default()),
    };
    let app = plunk_api::app(
        AppState::new(store.clone(), Settings::default()).with_send_queues(queues.clone()),
    );
    let (project, bearer) =
        inproc::project_with_domain(&raw, &app, "faults", "faults.example").await;

    let recipients: Vec<String> = (0..profile.recipients)
        .map(|i| format!("r{i}@dest.example"))
        .collect();
    let mut report = Findings::default();
    for (i, r) in recipients.iter().enumerate() {
        if world.draw(&[P_SUPPRESS, i as u64, 0]) < profile.pre_suppressed {
            world.fault("suppressed before acceptance");
            let email = EmailAddress::parse(r).expect("address");
            raw.suppressions()
                .add(
                    project.id,
                    &email,
                    plunk_store::repo::suppressions::SuppressionReason::HardBounce,
                    Default::default(),
                )
                .await
                .expect("suppress");
        }
    }
    let reply = call(
        &app,
        Method::POST,
        "/v1/send",
        &bearer,
        Some(&inproc::send_body(&recipients, "hello@faults.example")),
    )
    .await;
    assert!(reply.status.is_success(), "send refused: {}", reply.body);
    let ids = inproc::email_ids(&reply);
    assert_eq!(ids.len(), recipients.len());
    {
        let mut index = world.index.lock().expect("index");
        for (i, id) in ids.iter().enumerate() {
            index.insert(*id, i);
        }
    }
    let first = raw
        .emails()
        .get(project.id, ids[0])
        .await
        .expect("read")
        .expect("accepted");
    let accepted_at = first
        .queued_at
        .or(first.suppressed_at)
        .unwrap_or(first.created_at);
    world.base_ms.store(
        accepted_at.unix_seconds().div_euclid(60) * MINUTE_MS,
        Ordering::SeqCst,
    );
    for (i, r) in recipients.iter().enumerate() {
        if world.draw(&[P_SUPPRESS, i as u64, 1]) < profile.post_suppressed {
            world.fault("suppressed after acceptance");
            let email = EmailAddress::parse(r).expect("address");
            raw.suppressions()
                .add(
                    project.id,
                    &email,
                    plunk_store::repo::suppressions::SuppressionReason::Complaint,
                    Default::default(),
                )
                .await
                .expect("suppress");
        }
    }

    let clock: Arc<dyn Clock> = Arc::new(SimClock {
        world: world.clone(),
    });
    let worker = SendWorker::new(
        store.clone(),
        Arc::new(FaultMailer {
            world: world.clone(),
            next: AtomicU32::new(1),
        }),
        Arc::new(MemoryBlobs::default()),
        Pacer::new(Arc::new(MemoryPace::default()), clock, 1_000_000.0),
        SenderConfig::default(),
    );
    let scenario = Scenario {
        world: world.clone(),
        raw: raw.clone(),
        queue,
        worker,
        scheduler: Scheduler {
            store: store.clone(),
            queues,
            fanout: plunk_worker::campaigns::fanout::FanoutSettings::for_rate(14.0),
        },
        project: project.id,
        ids: ids.clone(),
    };

    scenario.run_active(&mut report).await;
    report.simulated_ms = world.vnow();
    let (active, lost_active, mut examples) = scenario.classify(false).await;

    // 72 hours later: the expiry sweep of the acceptance minute.
    world
        .vnow
        .store(EXPIRY_MINUTE * MINUTE_MS, Ordering::SeqCst);
    let base_minute = world.base_ms.load(Ordering::SeqCst) / MINUTE_MS;
    scenario
        .set_scheduler_minute(base_minute + EXPIRY_MINUTE - 1)
        .await;
    let tick = scenario
        .scheduler
        .tick((base_minute + EXPIRY_MINUTE) * MINUTE_MS)
        .await;
    assert!(tick.is_ok(), "the expiry tick runs without faults");
    let (after, lost_after, more) = scenario.classify(true).await;
    examples.extend(more);

    let handoffs = world.handoffs.lock().expect("handoffs").clone();
    report.duplicates = handoffs.values().filter(|n| **n > 1).count() as u64;
    for (idx, n) in &handoffs {
        if *n > 1 {
            examples.push(format!(
                "schedule {schedule} email #{idx}: handed to the provider {n} times"
            ));
        }
    }
    // Hand-off and final state together: was a FAILED SEND_OUTCOME_UNKNOWN really sent?
    for (i, id) in ids.iter().enumerate() {
        let r = raw.emails().get(project.id, *id).await.expect("read");
        if let Some(r) = r {
            let sent = handoffs.get(&i).copied().unwrap_or(0) > 0;
            let unknown = r
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("SEND_OUTCOME_UNKNOWN"));
            if r.status == EmailStatus::Failed && unknown {
                let crashed = world
                    .met
                    .lock()
                    .expect("met")
                    .get(&i)
                    .is_some_and(|m| m.iter().any(|f| f.starts_with("store: crash")));
                world.fault(if sent {
                    "outcome: FAILED unknown, was sent (SES Send event reconciles)"
                } else if crashed {
                    "outcome: FAILED unknown, never sent (crash after the claim)"
                } else {
                    "outcome: FAILED unknown, never sent (store error after the claim)"
                });
            }
            if r.status == EmailStatus::Sent && !sent {
                world.fault("outcome: SENT without a hand-off (!)");
            }
        }
    }
    report.emails = ids.len();
    report.active = active;
    report.after_expiry = after;
    report.lost = lost_active + lost_after;
    report.faults = world.faults.lock().expect("faults").clone();
    report.examples = examples;
    report
}

fn main() {
    if let Some(one) = std::env::var("FAULTS_TRACE")
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let f = runtime.block_on(run_schedule(one));
        eprintln!("profile: {:?}", Profile::draw(one));
        eprintln!("{f:#?}");
        return;
    }
    let schedules: u64 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("BENCH_FAULT_SCHEDULES").ok())
        .map(|a| a.parse().expect("usage: faults [SCHEDULES]"))
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let results: Vec<Findings> = runtime.block_on(async {
        let mut results: Vec<Option<Findings>> = (0..schedules).map(|_| None).collect();
        let mut tasks = tokio::task::JoinSet::new();
        let mut next = 0u64;
        let parallel: usize = std::env::var("FAULTS_PARALLEL")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(8);
        while next < schedules || !tasks.is_empty() {
            while next < schedules && tasks.len() < parallel {
                let s = next;
                tasks.spawn(async move { (s, run_schedule(s).await) });
                next += 1;
            }
            if let Some(done) = tasks.join_next().await {
                let (s, f) = done.expect("schedule panicked");
                results[s as usize] = Some(f);
            }
        }
        results
            .into_iter()
            .map(|f| f.expect("every schedule ran"))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    if std::env::var("FAULTS_DIGEST").is_ok() {
        for (i, f) in results.iter().enumerate() {
            eprintln!("{i} {} {:?} {:?}", f.deliveries, f.active, f.faults.counts);
        }
    }

    let mut faults = FaultCounts::default();
    let mut active: BTreeMap<String, u64> = BTreeMap::new();
    let mut after: BTreeMap<String, u64> = BTreeMap::new();
    let (mut emails, mut duplicates, mut lost, mut stuck, mut deliveries, mut requeued) =
        (0, 0, 0, 0, 0, 0);
    let mut longest = 0;
    let mut examples = Vec::new();
    for f in &results {
        faults.merge(&f.faults);
        for (k, v) in &f.active {
            *active.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &f.after_expiry {
            *after.entry(k.clone()).or_insert(0) += v;
        }
        emails += f.emails;
        duplicates += f.duplicates;
        lost += f.lost;
        stuck += f.stuck;
        deliveries += f.deliveries;
        requeued += f.requeued;
        longest = longest.max(f.simulated_ms);
        examples.extend(f.examples.iter().cloned());
    }
    println!(
        "faults: {schedules} schedules (seed {SEED:#x}), {emails} emails, {deliveries} deliveries, {requeued} re-queued by the sweep; \
         {elapsed:.1} s; longest active phase {:.1} simulated min",
        longest as f64 / 60_000.0
    );
    println!();
    println!("{:<62} {:>9}", "fault injected", "count");
    for (k, v) in &faults.counts {
        println!("{k:<62} {v:>9}");
    }
    println!();
    println!(
        "{:<46} {:>16} {:>16}",
        "email status", "active phase end", "after 72 h tick"
    );
    let labels: BTreeSet<&String> = active.keys().chain(after.keys()).collect();
    for l in labels {
        println!(
            "{l:<46} {:>16} {:>16}",
            active.get(l).copied().unwrap_or(0),
            after.get(l).copied().unwrap_or(0)
        );
    }
    println!();
    println!(
        "{:<46} {:>16}\n{:<46} {:>16}\n{:<46} {:>16}",
        "emails handed to the provider more than once",
        duplicates,
        "emails lost",
        lost,
        "schedules stuck",
        stuck
    );
    // Lost and duplicated first, then a few stale claims (`FAULTS_TRACE=<schedule>` replays one).
    examples.sort_by_key(|e| !(e.contains("LOST") || e.contains("times")));
    let shown: Vec<&String> = examples
        .iter()
        .filter(|e| e.contains("LOST") || e.contains("times"))
        .take(8)
        .chain(examples.iter().filter(|e| e.contains("SENDING")).take(2))
        .collect();
    for e in shown {
        println!("  e.g. {e}");
    }
    if duplicates > 0 || lost > 0 || stuck > 0 {
        std::process::exit(1);
    }
}
