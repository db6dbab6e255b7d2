//! `workflow-faults [SCHEDULES]`: each workflow step done once under randomised faults.
//!
//! Each schedule (default 10,000, `BENCH_WORKFLOW_FAULT_SCHEDULES` or the first argument; fixed
//! seed) builds a fresh store (`SqliteTable::in_memory()`), a project with a verified domain, and
//! through the real router a template and a "welcome" workflow using every step type:
//!
//! ```text
//! TRIGGER signed_up → SEND_EMAIL → WEBHOOK → DELAY 1 min → CONDITION data.plan = pro
//!   yes → SEND_EMAIL
//!   no  → UPDATE_CONTACT (data, unsubscribe) → WAIT_FOR_EVENT upgraded (5 min)
//!           EVENT → SEND_EMAIL      TIMEOUT → EXIT
//! ```
//!
//! 1–4 contacts sign up (`signed_up` events handed to the dispatcher's `on_events`, as the change
//! feed would); some "free" contacts send `upgraded` at a drawn time. The real `Engine` works the
//! workflow queue in a loop that mirrors SQS on a simulated clock (batches of 10, the engine's
//! 300 s visibility, redrive to a dead-letter list after 10 receives), and the real timer tick
//! (`timers::work`) runs every simulated minute. The WEBHOOK step calls a local HTTP receiver.
//!
//! Faults, drawn per schedule with their own probabilities (keyed hashes of the seed), injected
//! during the first simulated hour (the storm), after which every execution must settle:
//! - every store operation and queue send of a delivery may fail (before or after it applied) or
//!   crash the worker (before or after it applied; the crash drops the rest of the delivery and of
//!   its batch, whose messages come back after the visibility timeout);
//! - in one schedule in ten, a 53-minute worker outage (every operation of a delivery fails while
//!   the dispatcher and the tick work): messages reach the dead-letter queue and the tick must
//!   fire the stranded executions' timers again an hour later (`timers` module);
//! - a message delivered to two workers at once (their operations interleaved in a drawn order),
//!   queued twice, refused at send, or its delete lost; a batch crashed part-way;
//! - the worker crashing right after the webhook receiver answered (before the step is saved);
//! - the receiver answering 500 (the step retries after 30 s and 120 s, then fails);
//! - the email queue refusing a send (the email stays `PENDING` for the send sweep);
//! - the dispatcher's batch failing (read again a second later) or delivered twice; the timer
//!   tick failing (it goes on the next minute).
//!
//! Checked per execution, at the end: it is in an ended state (`COMPLETED`, `EXITED`, `FAILED`
//! with a reason) — never left `RUNNING` or `WAITING`; no step has two records (a step run twice
//! is recorded twice: every record is written with the execution's next version); no email is
//! queued twice; no email exists without its step's record; the webhook receiver saw one
//! `Idempotency-Key` per webhook step; `contact.unsubscribed` is stored at most once per contact.
//! Exits 1 on any of these.

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use plunk_bench::fault_kit::{current_ctx, gated, run_in, Ctx, FaultCounts, Gate, OpFault};
use plunk_bench::inproc::{self, call, Api};
use plunk_bench::stats::keyed_unit;
use plunk_domain::email_record::EmailStatus;
use plunk_domain::event::{Event, EventSource};
use plunk_domain::workflow::execution::{execution_id_for_event, ExecutionStatus, StepStatus};
use plunk_domain::workflow::StepType;
use plunk_domain::Timestamp;
use plunk_http_kit::{AppState, Settings};
use plunk_messaging::memory::{MemoryBlobs, MemoryQueue};
use plunk_messaging::queue::{Queue, QueueError, ReceivedMessage};
use plunk_messaging::send_queues::{SendJob, SendQueues};
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::table::{Condition, Item, Key, Page, Query, StoreError, Table, WriteOp};
use plunk_store::Store;
use plunk_worker::accept::Acceptor;
use plunk_worker::clock::Clock;
use plunk_worker::workflows::engine::{Engine, Job};
use plunk_worker::workflows::{start, timers};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use uuid::Uuid;

const SEED: u64 = 0x3F10_3EED;
const MINUTE_MS: i64 = 60_000;
/// The engine's visibility timeout (`engine::VISIBILITY`).
const VISIBILITY_MS: i64 = 300_000;
/// Receives before a message moves to the dead-letter list (as the deployed queue).
const MAX_RECEIVES: u32 = 10;
/// Faults are injected during the first simulated hour only.
const STORM_MS: i64 = 60 * MINUTE_MS;
const _: () = assert!(5 * MINUTE_MS + OUTAGE_MS <= STORM_MS);
/// The simulated time a schedule may take before it is declared stuck.
const CAP_MS: i64 = 8 * 60 * MINUTE_MS;
/// The WAIT_FOR_EVENT step's timeout, in seconds.
const WAIT_TIMEOUT_S: i64 = 300;

// Purposes of keyed draws.
const P_PROFILE: u64 = 1;
const P_OP: u64 = 2;
const P_OUTSIDE_OP: u64 = 3;
const P_HOOK: u64 = 4;
const P_DUP: u64 = 5;
const P_ACK: u64 = 6;
const P_ENQUEUE: u64 = 7;
const P_ENQUEUE_DUP: u64 = 8;
const P_CONTACTS: u64 = 9;
const P_PLAN: u64 = 10;
const P_UPGRADE: u64 = 11;
const P_DISPATCH: u64 = 12;
const P_BATCH: u64 = 13;
const P_CALL_CRASH: u64 = 14;
const P_OUTAGE: u64 = 15;
/// How long a store outage lasts: longer than ten receives of a message (50 minutes).
const OUTAGE_MS: i64 = 53 * MINUTE_MS;

/// Fault probabilities of one schedule.
#[derive(Debug, Clone, Copy, Default)]
struct Profile {
    contacts: usize,
    store_error: f64,
    store_crash: f64,
    outside_error: f64,
    enqueue_fail: f64,
    enqueue_dup: f64,
    concurrent_dup: f64,
    batch_crash: f64,
    ack_fail: f64,
    dispatch_dup: f64,
    hook_fail: f64,
    crash_after_call: f64,
    /// A worker outage (every operation of a delivery fails; the dispatcher and the tick work),
    /// long enough for messages to reach the dead-letter queue: `(from, to)` in simulated ms.
    outage: Option<(i64, i64)>,
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
            contacts: 0,
            store_error: p(0.05),
            store_crash: p(0.03),
            outside_error: p(0.05),
            enqueue_fail: p(0.3),
            enqueue_dup: p(0.3),
            concurrent_dup: p(0.5),
            batch_crash: p(0.3),
            ack_fail: p(0.3),
            dispatch_dup: p(0.5),
            hook_fail: p(0.6),
            crash_after_call: p(0.5),
            outage: None,
        };
        if keyed_unit(&[SEED, schedule, P_OUTAGE]) < 0.1 {
            let from = 2 * MINUTE_MS
                + (keyed_unit(&[SEED, schedule, P_OUTAGE, 1]) * 3.0 * MINUTE_MS as f64) as i64;
            profile.outage = Some((from, from + OUTAGE_MS));
        }
        profile.contacts = 1 + (keyed_unit(&[SEED, schedule, P_CONTACTS]) * 4.0) as usize;
        profile
    }
}

/// Everything one schedule shares.
struct World {
    schedule: u64,
    profile: Profile,
    /// Print what happens (`FAULTS_TRACE=<schedule>`).
    trace: bool,
    /// Simulated milliseconds since `base_ms`.
    vnow: AtomicI64,
    /// Unix milliseconds of the start of the first simulated minute.
    base_ms: i64,
    /// Execution id → its contact's index.
    index: Mutex<HashMap<Uuid, usize>>,
    /// Workflow emails put on the send queue, by email id.
    queued_emails: Mutex<HashMap<Uuid, u32>>,
    /// Webhook calls per `Idempotency-Key`: (calls, 2xx answers, the execution's index).
    hook_calls: Mutex<HashMap<String, (u32, u32, usize)>>,
    /// Executions whose worker dies at its next operation (the receiver just answered).
    crash_next: Mutex<HashSet<usize>>,
    counters: Mutex<HashMap<(u64, usize), u64>>,
    faults: Mutex<FaultCounts>,
    outside_ops: AtomicU64,
    enqueue_calls: AtomicU64,
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

    fn storm(&self) -> bool {
        self.vnow() < STORM_MS
    }

    fn fault(&self, name: &'static str) {
        self.note(|| name.to_owned());
        self.faults.lock().expect("faults").add(name, 1);
    }

    fn note(&self, what: impl FnOnce() -> String) {
        if self.trace {
            let ctx = current_ctx().map(|c| {
                format!(
                    " [execution #{} delivery {} copy {}]",
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

    fn idx(&self, execution: Uuid) -> usize {
        self.index
            .lock()
            .expect("index")
            .get(&execution)
            .copied()
            .unwrap_or(usize::MAX)
    }

    fn bump(&self, purpose: u64, unit: usize) -> u64 {
        let mut c = self.counters.lock().expect("counters");
        let n = c.entry((purpose, unit)).or_insert(0);
        *n += 1;
        *n
    }

    /// The fault of the calling delivery's next store operation or queue send (or of the
    /// dispatcher's or the tick's, outside any delivery).
    fn decide(&self) -> OpFault {
        if !self.storm() {
            return OpFault::None;
        }
        let p = self.profile;
        let Some(ctx) = current_ctx() else {
            let op = self.outside_ops.fetch_add(1, Ordering::SeqCst);
            if self.draw(&[P_OUTSIDE_OP, op]) < p.outside_error {
                self.fault("store: error in the dispatcher or a tick");
                return OpFault::ErrorBefore;
            }
            return OpFault::None;
        };
        if p.outage
            .is_some_and(|(from, to)| (from..to).contains(&self.vnow()))
        {
            self.fault("worker: outage (every operation of a delivery fails)");
            return OpFault::ErrorBefore;
        }
        if self.crash_next.lock().expect("crash").remove(&ctx.unit) {
            self.fault("worker: crash after the webhook answered, before the step was saved");
            return OpFault::CrashBefore;
        }
        let op = ctx.ops.fetch_add(1, Ordering::SeqCst);
        let keys = [P_OP, ctx.unit as u64, ctx.delivery, u64::from(ctx.copy), op];
        let u = self.draw(&keys);
        let before = self.draw(&[keys[0], keys[1], keys[2], keys[3], keys[4], 1]) < 0.5;
        let fault = OpFault::drawn(u, before, p.store_crash, p.store_error);
        match fault {
            OpFault::None => {}
            OpFault::CrashBefore => self.fault("worker: crash before an operation"),
            OpFault::CrashAfter => self.fault("worker: crash after an operation"),
            OpFault::ErrorBefore => self.fault("store/queue: error, not applied"),
            OpFault::ErrorAfter => self.fault("store/queue: error after applying"),
        }
        fault
    }
}

/// The store with faults.
struct FaultTable {
    inner: Arc<dyn Table>,
    world: Arc<World>,
}

impl FaultTable {
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        gated(|| self.world.decide(), f).await
    }
}

#[async_trait]
impl Table for FaultTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.run(|| self.inner.get(key)).await
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        self.run(|| self.inner.put(item, condition)).await
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        self.run(|| self.inner.delete(key, condition)).await
    }

    async fn add(
        &self,
        key: &Key,
        delta: i64,
        max: Option<i64>,
        ttl: Option<i64>,
    ) -> Result<i64, StoreError> {
        self.run(|| self.inner.add(key, delta, max, ttl)).await
    }

    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.run(|| self.inner.batch_get(keys)).await
    }

    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        self.run(|| self.inner.query(query)).await
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.run(|| self.inner.transact(ops)).await
    }
}

fn queue_error(e: StoreError) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

/// A message of the simulated workflow queue.
struct Message {
    id: u64,
    body: String,
    visible_at: i64,
    receives: u32,
}

/// The workflow queue on the simulated clock: delays and visibility in simulated time, sends
/// refused or doubled, deletes lost, redrive to a dead-letter list.
struct SimQueue {
    world: Arc<World>,
    messages: Mutex<Vec<Message>>,
    next_id: AtomicU64,
    dead: Mutex<Vec<String>>,
}

impl SimQueue {
    fn push(&self, body: &str, delay_ms: i64) {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.messages.lock().expect("messages").push(Message {
            id,
            body: body.to_owned(),
            visible_at: self.world.vnow() + delay_ms,
            receives: 0,
        });
    }

    async fn send_one(&self, body: &str, delay_ms: i64) -> Result<(), QueueError> {
        let w = &self.world;
        let n = w.enqueue_calls.fetch_add(1, Ordering::SeqCst);
        if w.storm() && w.draw(&[P_ENQUEUE, n]) < w.profile.enqueue_fail {
            w.fault("queue: send refused");
            return Err(QueueError::Unavailable("injected".into()));
        }
        gated(
            || w.decide(),
            || async {
                self.push(body, delay_ms);
                Ok(())
            },
        )
        .await
        .map_err(queue_error)?;
        if w.storm() && w.draw(&[P_ENQUEUE_DUP, n]) < w.profile.enqueue_dup {
            w.fault("queue: message queued twice");
            self.push(body, delay_ms);
        }
        Ok(())
    }

    /// Every visible message, hidden for the visibility timeout; those received too often go to
    /// the dead-letter list instead.
    fn take_visible(&self, now: i64) -> Vec<ReceivedMessage> {
        let mut messages = self.messages.lock().expect("messages");
        let mut out = Vec::new();
        let mut dead = Vec::new();
        messages.retain_mut(|m| {
            if m.visible_at > now {
                return true;
            }
            m.receives += 1;
            if m.receives > MAX_RECEIVES {
                dead.push(m.body.clone());
                return false;
            }
            m.visible_at = now + VISIBILITY_MS;
            out.push(ReceivedMessage {
                body: m.body.clone(),
                receipt: m.id.to_string(),
                message_id: m.id.to_string(),
                receive_count: m.receives,
            });
            true
        });
        drop(messages);
        for _ in &dead {
            self.world
                .fault("queue: message moved to the dead-letter queue");
        }
        self.dead.lock().expect("dead").extend(dead);
        out
    }

    fn next_visible_at(&self) -> Option<i64> {
        self.messages
            .lock()
            .expect("messages")
            .iter()
            .map(|m| m.visible_at)
            .min()
    }

    fn is_empty(&self) -> bool {
        self.messages.lock().expect("messages").is_empty()
    }
}

#[async_trait]
impl Queue for SimQueue {
    async fn send(&self, body: &str, delay: std::time::Duration) -> Result<(), QueueError> {
        self.send_one(body, delay.as_millis() as i64).await
    }

    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError> {
        for body in bodies {
            self.send_one(body, 0).await?;
        }
        Ok(())
    }

    async fn receive(
        &self,
        _max: usize,
        _visibility: std::time::Duration,
        _wait: std::time::Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        Ok(Vec::new())
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        let w = &self.world;
        let id: u64 = receipt.parse().unwrap_or(u64::MAX);
        let receives = self
            .messages
            .lock()
            .expect("messages")
            .iter()
            .find(|m| m.id == id)
            .map_or(0, |m| m.receives);
        if w.storm() && w.draw(&[P_ACK, id, u64::from(receives)]) < w.profile.ack_fail {
            w.fault("queue: delete lost");
            return Err(QueueError::Unavailable("injected".into()));
        }
        self.messages
            .lock()
            .expect("messages")
            .retain(|m| m.id != id);
        Ok(())
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: std::time::Duration,
    ) -> Result<(), QueueError> {
        let id: u64 = receipt.parse().unwrap_or(u64::MAX);
        let at = self.world.vnow() + visibility.as_millis() as i64;
        for m in self.messages.lock().expect("messages").iter_mut() {
            if m.id == id {
                m.visible_at = at;
            }
        }
        Ok(())
    }
}

/// The workflow send queue: counts every email put on it; sends may fail or crash the worker.
struct EmailQueue {
    world: Arc<World>,
}

impl EmailQueue {
    async fn put(&self, body: &str) -> Result<(), QueueError> {
        gated(
            || self.world.decide(),
            || async {
                if let Ok(job) = serde_json::from_str::<SendJob>(body) {
                    *self
                        .world
                        .queued_emails
                        .lock()
                        .expect("emails")
                        .entry(job.email_id)
                        .or_insert(0) += 1;
                }
                Ok(())
            },
        )
        .await
        .map_err(queue_error)
    }
}

#[async_trait]
impl Queue for EmailQueue {
    async fn send(&self, body: &str, _delay: std::time::Duration) -> Result<(), QueueError> {
        self.put(body).await
    }

    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError> {
        for body in bodies {
            self.put(body).await?;
        }
        Ok(())
    }

    async fn receive(
        &self,
        _max: usize,
        _visibility: std::time::Duration,
        _wait: std::time::Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        Ok(Vec::new())
    }

    async fn delete(&self, _receipt: &str) -> Result<(), QueueError> {
        Ok(())
    }

    async fn change_visibility(
        &self,
        _receipt: &str,
        _visibility: std::time::Duration,
    ) -> Result<(), QueueError> {
        Ok(())
    }
}

/// The engine's clock: simulated time.
struct SimClock {
    world: Arc<World>,
}

#[async_trait]
impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        self.world.base_ms + self.world.vnow()
    }

    async fn sleep_until_ms(&self, _at_ms: i64) {}
}

/// The webhook receiver: answers 500 on drawn attempts, else 200; may kill the calling worker
/// right after it answered.
async fn receive_hook(
    State(world): State<Arc<World>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let idx: usize = body["n"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    let call = {
        let mut calls = world.hook_calls.lock().expect("calls");
        let entry = calls.entry(key.clone()).or_insert((0, 0, idx));
        entry.0 += 1;
        entry.0
    };
    let storm = world.storm();
    if storm && world.draw(&[P_HOOK, idx as u64, u64::from(call)]) < world.profile.hook_fail {
        world.fault("webhook: receiver answered 500");
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if let Some(entry) = world.hook_calls.lock().expect("calls").get_mut(&key) {
        entry.1 += 1;
    }
    if storm
        && world.draw(&[P_CALL_CRASH, idx as u64, u64::from(call)]) < world.profile.crash_after_call
    {
        world.crash_next.lock().expect("crash").insert(idx);
    }
    StatusCode::OK
}

/// What one schedule found.
#[derive(Debug, Default)]
struct Findings {
    executions: usize,
    steps: u64,
    deliveries: u64,
    /// Final state of each execution (label → count).
    ended: BTreeMap<String, u64>,
    steps_twice: u64,
    emails: u64,
    emails_queued_twice: u64,
    emails_left_to_sweep: u64,
    emails_without_step: u64,
    webhook_keys_twice: u64,
    webhook_repeated_after_2xx: u64,
    unsubscribed_twice: u64,
    not_ended: u64,
    stuck: u64,
    dead_letters: u64,
    faults: FaultCounts,
    simulated_ms: i64,
    examples: Vec<String>,
}

impl Findings {
    fn failed(&self) -> bool {
        self.steps_twice
            + self.emails_queued_twice
            + self.emails_without_step
            + self.webhook_keys_twice
            + self.unsubscribed_twice
            + self.not_ended
            + self.stuck
            > 0
    }
}

/// One schedule's world, engine and workflow.
struct Scenario {
    world: Arc<World>,
    raw: Store,
    store: Store,
    queue: Arc<SimQueue>,
    engine: Engine,
    project: Uuid,
    workflow: Uuid,
    /// Events for the dispatcher: (due at, event).
    feed: Vec<(i64, Event)>,
    executions: Vec<Uuid>,
}

impl Scenario {
    /// Hands the due events to the dispatcher, as the change feed would (again on failure).
    async fn dispatch_due(&mut self, now: i64) -> bool {
        let due: Vec<Event> = self
            .feed
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, e)| e.clone())
            .collect();
        if due.is_empty() {
            return false;
        }
        let w = self.world.clone();
        match start::on_events(&self.store, self.queue.as_ref(), self.project, &due).await {
            Ok(report) => {
                w.note(|| format!("dispatched {} events: {report:?}", due.len()));
                self.feed.retain(|(at, _)| *at > now);
                let n = w.bump(P_DISPATCH, 0);
                if w.storm() && w.draw(&[P_DISPATCH, n]) < w.profile.dispatch_dup {
                    w.fault("dispatcher: batch delivered twice");
                    let _ = start::on_events(&self.store, self.queue.as_ref(), self.project, &due)
                        .await;
                }
            }
            Err(e) => {
                w.note(|| format!("dispatch failed: {e}"));
                w.fault("dispatcher: batch failed, read again a second later");
                for (at, _) in self.feed.iter_mut().filter(|(at, _)| *at <= now) {
                    *at = now + 1_000;
                }
            }
        }
        true
    }

    async fn deliver(&self, batch: &[ReceivedMessage], report: &mut Findings) {
        let w = &self.world;
        let p = w.profile;
        let batch_no = w.batches.fetch_add(1, Ordering::SeqCst);
        let crash_at = (w.storm() && w.draw(&[P_BATCH, batch_no]) < p.batch_crash)
            .then(|| (w.draw(&[P_BATCH, batch_no, 1]) * batch.len() as f64) as usize);
        for (i, m) in batch.iter().enumerate() {
            if crash_at == Some(i) {
                w.fault("worker: crash mid-batch");
                return;
            }
            let idx =
                serde_json::from_str::<Job>(&m.body).map_or(usize::MAX, |j| w.idx(j.execution));
            let delivery = w.bump(P_DUP, idx);
            report.deliveries += 1;
            let concurrent = w.storm() && w.draw(&[P_DUP, idx as u64, delivery]) < p.concurrent_dup;
            let crashed = if concurrent {
                w.fault("queue: delivered to two workers at once");
                let gate = Arc::new(Gate::new([SEED, w.schedule, idx as u64, delivery]));
                let copy = |c: u8| {
                    let ctx = Ctx::new(idx, delivery, c, Some(gate.clone()));
                    run_in(ctx, self.engine.handle(&m.body, &m.receipt))
                };
                let (first, _second) = tokio::join!(copy(0), copy(1));
                first.is_none()
            } else {
                let ctx = Ctx::new(idx, delivery, 0, None);
                run_in(ctx, self.engine.handle(&m.body, &m.receipt))
                    .await
                    .is_none()
            };
            if crashed {
                return;
            }
        }
    }

    async fn all_ended(&self) -> bool {
        for id in &self.executions {
            match self
                .raw
                .executions()
                .get(self.project, self.workflow, *id)
                .await
                .expect("read")
            {
                Some((e, _)) if !e.status.is_active() => {}
                _ => return false,
            }
        }
        true
    }

    /// Deliveries, dispatches and a timer tick every simulated minute, until every execution
    /// ended and nothing is left to do.
    async fn run(&mut self, report: &mut Findings) {
        let w = self.world.clone();
        let mut next_tick = MINUTE_MS + 500;
        loop {
            let now = w.vnow();
            if now >= next_tick {
                let at = w.base_ms + now;
                match timers::work(&self.store, self.queue.as_ref(), at, usize::MAX).await {
                    Ok(n) => w.note(|| format!("tick: {n} timers queued")),
                    Err(_) => w.fault("scheduler: tick failed (goes on next minute)"),
                }
                next_tick += MINUTE_MS;
                continue;
            }
            if self.dispatch_due(now).await {
                continue;
            }
            let visible = self.queue.take_visible(now);
            if !visible.is_empty() {
                for batch in visible.chunks(10) {
                    self.deliver(batch, report).await;
                }
                continue;
            }
            if self.feed.is_empty() && self.queue.is_empty() && self.all_ended().await {
                return;
            }
            let next_feed = self.feed.iter().map(|(at, _)| *at).min();
            let next = [self.queue.next_visible_at(), next_feed, Some(next_tick)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(next_tick);
            if next > CAP_MS {
                report.stuck += 1;
                report
                    .examples
                    .push(format!("schedule {}: stuck after {CAP_MS} ms", w.schedule));
                return;
            }
            w.vnow.store(next.max(now + 1), Ordering::SeqCst);
        }
    }

    /// Checks every execution, its steps, emails and webhook calls.
    async fn check(&self, report: &mut Findings) {
        let w = &self.world;
        let graph = self
            .raw
            .workflows()
            .graph(self.project, self.workflow)
            .await
            .expect("graph");
        let sends: Vec<Uuid> = graph
            .steps
            .iter()
            .filter(|s| s.step_type == StepType::SendEmail)
            .map(|s| s.id)
            .collect();
        let queued = w.queued_emails.lock().expect("emails").clone();
        for id in &self.executions {
            report.executions += 1;
            let Some((execution, _)) = self
                .raw
                .executions()
                .get(self.project, self.workflow, *id)
                .await
                .expect("read")
            else {
                report.not_ended += 1;
                report.examples.push(format!(
                    "schedule {}: execution {id} never started",
                    w.schedule
                ));
                continue;
            };
            let steps = self
                .raw
                .executions()
                .steps(self.project, *id)
                .await
                .expect("steps");
            report.steps += steps.len() as u64;
            let mut seen = HashSet::new();
            for s in &steps {
                if !seen.insert(s.step_id) {
                    report.steps_twice += 1;
                    report.examples.push(format!(
                        "schedule {}: execution {id} recorded step {} ({}) twice",
                        w.schedule,
                        s.step_id,
                        s.step_type.as_str()
                    ));
                }
            }
            let label = match execution.status {
                s if s.is_active() => {
                    report.not_ended += 1;
                    report.examples.push(format!(
                        "schedule {}: execution {id} still {}",
                        w.schedule,
                        s.as_str()
                    ));
                    format!("NOT ENDED: {}", s.as_str())
                }
                ExecutionStatus::Failed => {
                    let reason = execution.exit_reason.as_deref().unwrap_or("");
                    if reason.is_empty() {
                        report.not_ended += 1;
                        "FAILED without a reason".to_owned()
                    } else {
                        let reason = reason.split(" (").next().unwrap_or(reason);
                        format!("FAILED ({reason})")
                    }
                }
                s => {
                    let path = if steps.iter().any(|r| r.step_type == StepType::UpdateContact) {
                        match steps.last().map(|r| r.step_type) {
                            Some(StepType::SendEmail) => "no → upgraded → email",
                            Some(StepType::Exit) => "no → timed out → exit",
                            _ => "no → ?",
                        }
                    } else {
                        "yes → email"
                    };
                    format!("{} ({path})", s.as_str())
                }
            };
            *report.ended.entry(label).or_insert(0) += 1;
            // Emails: one per SEND_EMAIL step record, queued at most once.
            let recorded: HashSet<Uuid> = steps
                .iter()
                .filter(|r| r.step_type == StepType::SendEmail && r.status != StepStatus::Failed)
                .map(|r| r.step_id)
                .collect();
            for step in &sends {
                let email_id =
                    plunk_domain::workflow::execution::step_execution_id(&execution, *step);
                let Some(email) = self
                    .raw
                    .emails()
                    .get(self.project, email_id)
                    .await
                    .expect("email")
                else {
                    continue;
                };
                report.emails += 1;
                if !recorded.contains(step) {
                    report.emails_without_step += 1;
                    report.examples.push(format!(
                        "schedule {}: email {email_id} exists without its step's record",
                        w.schedule
                    ));
                }
                match queued.get(&email_id).copied().unwrap_or(0) {
                    0 if email.status == EmailStatus::Pending => report.emails_left_to_sweep += 1,
                    0 | 1 => {}
                    n => {
                        report.emails_queued_twice += 1;
                        report.examples.push(format!(
                            "schedule {}: email {email_id} queued {n} times",
                            w.schedule
                        ));
                    }
                }
            }
        }
        // Webhooks: one key per execution's webhook step.
        let calls = w.hook_calls.lock().expect("calls").clone();
        let mut keys_per_execution: HashMap<usize, u32> = HashMap::new();
        for (_, ok, idx) in calls.values() {
            *keys_per_execution.entry(*idx).or_insert(0) += 1;
            if *ok > 1 {
                report.webhook_repeated_after_2xx += 1;
            }
        }
        for (idx, n) in keys_per_execution {
            if n > 1 {
                report.webhook_keys_twice += 1;
                report.examples.push(format!(
                    "schedule {}: execution #{idx} called its webhook with {n} keys",
                    w.schedule
                ));
            }
        }
        // UPDATE_CONTACT: one `contact.unsubscribed` per contact at most.
        let events = self
            .raw
            .events()
            .list(self.project, Some("contact.unsubscribed"), 100, None)
            .await
            .expect("events");
        let mut per_contact: HashMap<Option<Uuid>, u32> = HashMap::new();
        for e in events.items {
            *per_contact.entry(e.contact_id).or_insert(0) += 1;
        }
        report.unsubscribed_twice += per_contact.values().filter(|n| **n > 1).count() as u64;
        report.dead_letters = self.queue.dead.lock().expect("dead").len() as u64;
    }
}

/// Calls the API; panics unless it succeeded. Returns `data`.
async fn ok(app: &Api, method: Method, path: &str, bearer: &str, body: Value) -> Value {
    let reply = call(app, method, path, bearer, Some(&body)).await;
    assert!(
        reply.status.is_success(),
        "{path}: {} {}",
        reply.status,
        reply.body
    );
    reply.body["data"].clone()
}

/// The welcome workflow (module documentation), enabled; its id.
async fn welcome_workflow(app: &Api, bearer: &str, hook_url: &str) -> Uuid {
    let template = ok(
        app,
        Method::POST,
        "/templates",
        bearer,
        json!({
            "name": "Welcome", "subject": "Welcome", "body": "<p>Hi ({{ event.source }})</p>",
            "from": "hello@wf.example", "type": "TRANSACTIONAL"
        }),
    )
    .await["id"]
        .as_str()
        .expect("template id")
        .to_owned();
    let wf = ok(
        app,
        Method::POST,
        "/workflows",
        bearer,
        json!({"name": "welcome", "eventName": "signed_up"}),
    )
    .await["id"]
        .as_str()
        .expect("workflow id")
        .to_owned();
    let steps = format!("/workflows/{wf}/steps");
    let mut y = 0.0;
    let mut step = |body: Value| {
        y += 100.0;
        let mut body = body;
        body["position"] = json!({"x": 0.0, "y": y});
        let steps = steps.clone();
        async move {
            ok(app, Method::POST, &steps, bearer, body).await["step"]["id"]
                .as_str()
                .expect("step id")
                .to_owned()
        }
    };
    step(json!({"type": "SEND_EMAIL", "name": "Welcome", "templateId": template, "autoConnect": true})).await;
    step(
        json!({"type": "WEBHOOK", "name": "CRM", "autoConnect": true,
        "config": {"url": hook_url, "body": {"n": "{{ event.n }}", "who": "{{ email }}"}}}),
    )
    .await;
    step(json!({"type": "DELAY", "name": "A minute", "autoConnect": true, "config": {"amount": 1, "unit": "minutes"}})).await;
    let condition = step(
        json!({"type": "CONDITION", "name": "Pro?", "autoConnect": true,
        "config": {"field": "data.plan", "operator": "equals", "value": "pro"}}),
    )
    .await;
    let yes = step(json!({"type": "SEND_EMAIL", "name": "Pro tips", "templateId": template})).await;
    let no = step(json!({"type": "UPDATE_CONTACT", "name": "Nurture",
        "config": {"updates": {"stage": "nurture"}, "subscriptionAction": "unsubscribe"}}))
    .await;
    let wait = step(json!({"type": "WAIT_FOR_EVENT", "name": "Upgrade?",
        "config": {"eventName": "upgraded", "timeout": WAIT_TIMEOUT_S}}))
    .await;
    let thanks =
        step(json!({"type": "SEND_EMAIL", "name": "Thanks", "templateId": template})).await;
    let exit =
        step(json!({"type": "EXIT", "name": "Gave up", "config": {"reason": "no upgrade"}})).await;
    let transitions = format!("/workflows/{wf}/transitions");
    for (from, to, extra) in [
        (&condition, &yes, json!({"condition": {"branch": "yes"}})),
        (&condition, &no, json!({"condition": {"branch": "no"}})),
        (&no, &wait, json!({})),
        (&wait, &thanks, json!({"waitOutcome": "EVENT"})),
        (&wait, &exit, json!({"waitOutcome": "TIMEOUT"})),
    ] {
        let mut body = json!({"fromStepId": from, "toStepId": to});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        ok(app, Method::POST, &transitions, bearer, body).await;
    }
    ok(
        app,
        Method::PATCH,
        &format!("/workflows/{wf}"),
        bearer,
        json!({"enabled": true}),
    )
    .await;
    wf.parse().expect("uuid")
}

fn event(name: &str, contact: (Uuid, &str), data: Value, at_ms: i64) -> Event {
    Event {
        id: Uuid::now_v7(),
        name: name.into(),
        contact_id: Some(contact.0),
        contact_email: Some(contact.1.into()),
        email_id: None,
        data: data.as_object().cloned().unwrap_or_default(),
        source: EventSource::Api,
        created_at: Timestamp::from_millis(at_ms).expect("time"),
    }
}

async fn run_schedule(schedule: u64, hook: &HookServer) -> Findings {
    let profile = Profile::draw(schedule);
    let base_ms = Timestamp::now().unix_millis().div_euclid(MINUTE_MS) * MINUTE_MS;
    let world = Arc::new(World {
        schedule,
        profile,
        trace: std::env::var("FAULTS_TRACE").is_ok_and(|t| t == schedule.to_string()),
        vnow: AtomicI64::new(0),
        base_ms,
        index: Mutex::new(HashMap::new()),
        queued_emails: Mutex::new(HashMap::new()),
        hook_calls: Mutex::new(HashMap::new()),
        crash_next: Mutex::new(HashSet::new()),
        counters: Mutex::new(HashMap::new()),
        faults: Mutex::new(FaultCounts::default()),
        outside_ops: AtomicU64::new(0),
        enqueue_calls: AtomicU64::new(0),
        batches: AtomicU64::new(0),
    });
    hook.worlds
        .lock()
        .expect("worlds")
        .insert(schedule, world.clone());

    let sqlite = SqliteTable::in_memory().expect("sqlite");
    let raw = Store::new(Arc::new(sqlite.clone()));
    let store = Store::new(Arc::new(FaultTable {
        inner: Arc::new(sqlite),
        world: world.clone(),
    }));
    let settings = Settings {
        allow_private_webhooks: true,
        ..Settings::default()
    };
    let app = plunk_api::app(AppState::new(raw.clone(), settings));
    let (project, bearer) = inproc::project_with_domain(&raw, &app, "wf", "wf.example").await;
    let hook_url = format!("http://{}/hook/{schedule}", hook.addr);
    let workflow = welcome_workflow(&app, &bearer, &hook_url).await;

    let queue = Arc::new(SimQueue {
        world: world.clone(),
        messages: Mutex::new(Vec::new()),
        next_id: AtomicU64::new(0),
        dead: Mutex::new(Vec::new()),
    });
    let engine = Engine {
        store: store.clone(),
        acceptor: Acceptor {
            store: store.clone(),
            blobs: Arc::new(MemoryBlobs::default()),
            queues: SendQueues {
                transactional: Arc::new(MemoryQueue::default()),
                workflow: Arc::new(EmailQueue {
                    world: world.clone(),
                }),
                campaign: Arc::new(MemoryQueue::default()),
            },
        },
        queue: queue.clone(),
        allow_private_webhooks: true,
        clock: Arc::new(SimClock {
            world: world.clone(),
        }),
    };

    // Contacts sign up at the start; some "free" ones upgrade at a drawn time (or never).
    let mut feed = Vec::new();
    let mut executions = Vec::new();
    for i in 0..profile.contacts {
        let pro = world.draw(&[P_PLAN, i as u64]) < 0.4;
        let email = format!("c{i}@dest.example");
        let contact = ok(&app, Method::POST, "/contacts", &bearer, json!({
            "email": email, "subscribed": true, "data": {"plan": if pro { "pro" } else { "free" }}
        }))
        .await["id"]
            .as_str()
            .expect("contact id")
            .parse::<Uuid>()
            .expect("uuid");
        let signed_up = event(
            "signed_up",
            (contact, &email),
            json!({"source": "bench", "n": i.to_string()}),
            base_ms + i as i64 * 100,
        );
        let execution = execution_id_for_event(workflow, signed_up.id, signed_up.created_at);
        world.index.lock().expect("index").insert(execution, i);
        executions.push(execution);
        raw.events()
            .record(project.id, &signed_up)
            .await
            .expect("event");
        feed.push((i as i64 * 100, signed_up));
        let u = world.draw(&[P_UPGRADE, i as u64]);
        if !pro && u < 0.66 {
            let at = (u / 0.66 * 9.0 * MINUTE_MS as f64) as i64;
            let upgraded = event(
                "upgraded",
                (contact, &email),
                json!({"upgraded": true}),
                base_ms + at,
            );
            raw.events()
                .record(project.id, &upgraded)
                .await
                .expect("event");
            feed.push((at, upgraded));
        }
    }

    let mut scenario = Scenario {
        world: world.clone(),
        raw,
        store,
        queue,
        engine,
        project: project.id,
        workflow,
        feed,
        executions,
    };
    let mut report = Findings::default();
    scenario.run(&mut report).await;
    report.simulated_ms = world.vnow();
    scenario.check(&mut report).await;
    report.faults = world.faults.lock().expect("faults").clone();
    hook.worlds.lock().expect("worlds").remove(&schedule);
    report
}

/// One webhook receiver for every schedule (`/hook/<schedule>`).
struct HookServer {
    addr: std::net::SocketAddr,
    worlds: Arc<Mutex<HashMap<u64, Arc<World>>>>,
}

async fn hook_server() -> HookServer {
    let worlds: Arc<Mutex<HashMap<u64, Arc<World>>>> = Arc::default();
    let routes = {
        let worlds = worlds.clone();
        Router::new().route(
            "/hook/{schedule}",
            post(
                move |axum::extract::Path(schedule): axum::extract::Path<u64>,
                      headers: HeaderMap,
                      body: Json<Value>| {
                    let world = worlds.lock().expect("worlds").get(&schedule).cloned();
                    async move {
                        match world {
                            Some(world) => receive_hook(State(world), headers, body).await,
                            None => StatusCode::GONE,
                        }
                    }
                },
            ),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, routes).await;
    });
    HookServer { addr, worlds }
}

fn main() {
    let trace_one = std::env::var("FAULTS_TRACE")
        .ok()
        .and_then(|t| t.parse::<u64>().ok());
    let schedules: u64 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("BENCH_WORKFLOW_FAULT_SCHEDULES").ok())
        .map(|a| a.parse().expect("usage: workflow-faults [SCHEDULES]"))
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let results: Vec<Findings> = runtime.block_on(async {
        let hook = Arc::new(hook_server().await);
        if let Some(one) = trace_one {
            let f = run_schedule(one, &hook).await;
            eprintln!("profile: {:?}", Profile::draw(one));
            eprintln!("{f:#?}");
            return vec![f];
        }
        let parallel: usize = std::env::var("FAULTS_PARALLEL")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(8);
        let mut results: Vec<Option<Findings>> = (0..schedules).map(|_| None).collect();
        let mut tasks = tokio::task::JoinSet::new();
        let mut next = 0u64;
        while next < schedules || !tasks.is_empty() {
            while next < schedules && tasks.len() < parallel {
                let (s, hook) = (next, hook.clone());
                tasks.spawn(async move { (s, run_schedule(s, &hook).await) });
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
    if trace_one.is_some() {
        return;
    }
    report(schedules, started.elapsed().as_secs_f64(), &results);
}

fn report(schedules: u64, elapsed: f64, results: &[Findings]) {
    let mut faults = FaultCounts::default();
    let mut ended: BTreeMap<String, u64> = BTreeMap::new();
    let mut total = Findings::default();
    let mut examples = Vec::new();
    for f in results {
        faults.merge(&f.faults);
        for (k, v) in &f.ended {
            *ended.entry(k.clone()).or_insert(0) += v;
        }
        total.executions += f.executions;
        total.steps += f.steps;
        total.deliveries += f.deliveries;
        total.steps_twice += f.steps_twice;
        total.emails += f.emails;
        total.emails_queued_twice += f.emails_queued_twice;
        total.emails_left_to_sweep += f.emails_left_to_sweep;
        total.emails_without_step += f.emails_without_step;
        total.webhook_keys_twice += f.webhook_keys_twice;
        total.webhook_repeated_after_2xx += f.webhook_repeated_after_2xx;
        total.unsubscribed_twice += f.unsubscribed_twice;
        total.not_ended += f.not_ended;
        total.stuck += f.stuck;
        total.dead_letters += f.dead_letters;
        total.simulated_ms = total.simulated_ms.max(f.simulated_ms);
        examples.extend(f.examples.iter().cloned());
    }
    println!(
        "workflow-faults: {schedules} schedules (seed {SEED:#x}), {} executions, {} steps recorded, {} emails, {} deliveries; {elapsed:.1} s; longest {:.0} simulated min",
        total.executions,
        total.steps,
        total.emails,
        total.deliveries,
        total.simulated_ms as f64 / 60_000.0
    );
    println!();
    println!("{:<72} {:>9}", "fault injected", "count");
    for (k, v) in &faults.counts {
        println!("{k:<72} {v:>9}");
    }
    println!();
    println!("{:<46} {:>9}", "execution ended", "count");
    for (k, v) in &ended {
        println!("{k:<46} {v:>9}");
    }
    println!();
    for (label, n) in [
        ("steps run twice", total.steps_twice),
        ("emails queued twice", total.emails_queued_twice),
        (
            "emails without their step's record",
            total.emails_without_step,
        ),
        (
            "webhook steps called with two keys",
            total.webhook_keys_twice,
        ),
        ("contacts unsubscribed twice", total.unsubscribed_twice),
        (
            "executions not ended (or FAILED without a reason)",
            total.not_ended,
        ),
        ("schedules stuck", total.stuck),
    ] {
        println!("{label:<62} {n:>9}");
    }
    println!(
        "{:<62} {:>9}",
        "emails PENDING for the send sweep (not queued: failed or crashed)",
        total.emails_left_to_sweep
    );
    println!(
        "{:<62} {:>9}",
        "webhook calls repeated after a 2xx (same key; receiver dedupes)",
        total.webhook_repeated_after_2xx
    );
    println!(
        "{:<62} {:>9}",
        "messages in the dead-letter queue", total.dead_letters
    );
    for e in examples.iter().take(10) {
        println!("  e.g. {e}");
    }
    if results.iter().any(Findings::failed) {
        std::process::exit(1);
    }
}
