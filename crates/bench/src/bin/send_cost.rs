//! `send-cost [N]`: what one email costs in AWS requests and units, priced.
//!
//! A metered run of the real code in process: the table port wrapped by
//! `plunk_bench::metered::MeteredTable` (DynamoDB on-demand units, see that module), the send
//! queues by `MeteredQueue`, a counting mailer. N emails (default 1,000; `BENCH_COST_EMAILS` or the
//! first argument) are accepted through the real router (`POST /v1/send`, a verified domain) and
//! drained by the real `SendWorker` (`TablePace` in the metered table, as deployed) the way the SQS
//! event source feeds the send Lambda: receive up to 10, handle each, delete the batch in one
//! request. Then the scheduler ticks once per simulated minute until every acceptance minute has
//! had its 2- and 16-minute sweeps, and once more 72 hours after each for the expiry sweep. Five
//! runs: one recipient per request (new contacts), one recipient (existing contacts), 50
//! recipients per request (new contacts), all with a 100-byte body; one recipient (existing)
//! with a 20 KB body, which is kept in blob storage (S3) as every body over 8 KB is; and a
//! campaign to N existing contacts (its API calls and fan-out passes as the acceptance, the
//! campaign queue drained).
//!
//! Below the totals: the same with DynamoDB at provisioned prices, and the floor, what the
//! operations every email needs by the contract and the send pipeline cost on their own.
//!
//! Prices (AWS us-east-1, public on-demand): DynamoDB $0.625 per million write request units and
//! $0.125 per million read request units; SQS $0.40 per million requests; API Gateway HTTP API
//! $1.00 per million requests; Lambda $0.20 per million requests plus $0.0000133334 per GB-second
//! (arm64), at 256 MB for the measured in-process handler time rounded up to the next millisecond
//! (per API request, per consumer batch of 10, per tick). SES ($100 per million) is not included:
//! the target is $4 per million on top of it. S3: $5 per million PUTs, $0.40 per million GETs.

use async_trait::async_trait;
use axum::http::Method;
use plunk_bench::fake_mailer::RecordingMailer;
use plunk_bench::inproc::{self, call};
use plunk_bench::metered::{
    kinds_since, KindUsage, MeteredBlobs, MeteredQueue, MeteredTable, QueueUsage, TableUsage,
};
use plunk_domain::contact::DataChange;
use plunk_domain::email_record::SendClass;
use plunk_domain::event::{Event, EventSource, SubscriptionSource};
use plunk_domain::feedback::{FeedbackKind, ProviderEvent};
use plunk_domain::{EmailAddress, Timestamp};
use plunk_http_kit::{AppState, Settings};
use plunk_messaging::memory::{MemoryBlobs, MemoryQueue};
use plunk_messaging::queue::Queue;
use plunk_messaging::send_queues::SendQueues;
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::keys;
use plunk_store::table::{Condition, Index, Item, Query, Table};
use plunk_store::Store;
use plunk_worker::accept::Acceptor;
use plunk_worker::clock::{Clock, SystemClock};
use plunk_worker::consumer;
use plunk_worker::dispatch::Dispatcher;
use plunk_worker::feedback::FeedbackWorker;
use plunk_worker::pacing::{Pacer, TablePace};
use plunk_worker::scheduler::Scheduler;
use plunk_worker::send::{Outcome, SendWorker, SenderConfig};
use plunk_worker::workflows::{self, engine::Engine};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DYNAMO_WRU: f64 = 0.625;
const DYNAMO_RRU: f64 = 0.125;
const SQS_REQUEST: f64 = 0.40;
const APIGW_REQUEST: f64 = 1.00;
const S3_PUT: f64 = 5.0;
const S3_GET: f64 = 0.4;
const LAMBDA_REQUEST: f64 = 0.20;
const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
const LAMBDA_GB: f64 = 0.25;
const TARGET_PER_MILLION: f64 = 4.0;
/// Provisioned capacity (us-east-1): $0.00065 per WCU-hour and $0.00013 per RCU-hour; one unit
/// serves 3,600 requests an hour, used at auto scaling's default 70 % target.
const PROVISIONED_WRU: f64 = 0.00065 * 1e6 / 3600.0 / 0.7;
const PROVISIONED_RRU: f64 = 0.00013 * 1e6 / 3600.0 / 0.7;
/// Write units every one-recipient email needs by the contract and the send pipeline, whatever
/// the code: the rate-limit counter, the record at acceptance, its content, the claim, `SENT`,
/// `email.sent` and its by-contact index entry, and a tenth of a pace write (a batch of 10).
const REQUIRED_WRU: f64 = 1.0 + 1.0 + 1.0 + 1.0 + 1.0 + 2.0 + 0.1;
const SEND_RATE: f64 = 14.0;
/// Concurrent consumers sharing the pace at saturation (`MaximumConcurrency` 2).
const CONSUMERS: f64 = 2.0;

/// The system clock without waiting: slots are reserved at the real rate (14/s, so a batch's
/// spare slots lie ahead as they do in AWS) but never waited for, so the run measures work, not
/// sleeps; the waiting is priced separately ("consumer waiting for the pace").
struct NoWait;

#[async_trait]
impl Clock for NoWait {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms()
    }

    async fn sleep_until_ms(&self, _at_ms: i64) {}
}

/// A clock whose sleeps pass at once by moving its time forward: a campaign email waits for its
/// pace slot behind transactional mail, and with [`NoWait`] it would read the pace again and again
/// until the real clock got there.
#[derive(Default)]
struct SkipClock {
    ahead_ms: std::sync::atomic::AtomicI64,
}

#[async_trait]
impl Clock for SkipClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.ahead_ms.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn sleep_until_ms(&self, at_ms: i64) {
        let wait = at_ms - self.now_ms();
        if wait > 0 {
            self.ahead_ms
                .fetch_add(wait, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Billed Lambda milliseconds of a measured handler time.
fn billed_ms(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 1e6).ceil().max(1.0)
}

/// One part of the bill, per email.
struct Line {
    name: &'static str,
    per_email: f64,
    unit: &'static str,
    dollars_per_million: f64,
}

struct Run {
    label: String,
    emails: usize,
    lines: Vec<Line>,
    api_ops: TableUsage,
    api_kinds: BTreeMap<String, KindUsage>,
    consumer_kinds: BTreeMap<String, KindUsage>,
    consumer_ops: TableUsage,
    sweep_ops: TableUsage,
    fixed_tick: TableUsage,
    provider_calls: usize,
    api_queue_requests: u64,
    api_ms: f64,
    batch_ms: f64,
    tick_ms: f64,
    /// Delivery feedback and event dispatch, per email.
    after: Vec<Line>,
}

impl Line {
    /// A line whose dollars are its units per email times a price per million units.
    fn priced(name: &'static str, unit: &'static str, per_email: f64, price: f64) -> Self {
        Self {
            name,
            per_email,
            unit,
            dollars_per_million: per_email * price,
        }
    }
}

impl Run {
    fn total(&self) -> f64 {
        self.lines.iter().map(|l| l.dollars_per_million).sum()
    }

    /// The total with DynamoDB's units at provisioned prices (a table sized for a steady load).
    fn provisioned_total(&self) -> f64 {
        self.lines
            .iter()
            .map(|l| match (l.unit, l.name.starts_with("DynamoDB")) {
                ("WRU", true) => l.per_email * PROVISIONED_WRU,
                ("RRU", true) => l.per_email * PROVISIONED_RRU,
                _ => l.dollars_per_million,
            })
            .sum()
    }

    /// Lambda dollars per million emails added if every store, queue and provider call of the
    /// API and consumer handlers took `ms` (a network round trip in AWS) one after the other.
    fn latency_dollars(&self, ms: f64) -> f64 {
        let calls = self.api_ops.calls as f64
            + self.api_queue_requests as f64
            + self.consumer_ops.calls as f64
            + self.provider_calls as f64;
        calls * ms / 1000.0 * LAMBDA_GB / self.emails as f64 * LAMBDA_GB_SECOND * 1e6
    }
}

/// What follows the send of every email, metered per email: SES's Send and Delivery
/// notifications through EventBridge and SQS to the feedback consumer (batches of 10), then the
/// table stream's new event items (`email.sent`, `email.delivery`) through the event dispatcher
/// (batches of 100; stream reads are free).
async fn after_the_send(
    store: &Store,
    raw: &Arc<dyn Table>,
    table: &MeteredTable,
    project: uuid::Uuid,
    email_ids: &[uuid::Uuid],
) -> Vec<Line> {
    let n = email_ids.len() as f64;
    let mut records = Vec::with_capacity(email_ids.len());
    for id in email_ids {
        records.push(
            store
                .emails()
                .get(project, *id)
                .await
                .expect("record")
                .expect("sent record"),
        );
    }
    let feedback = FeedbackWorker {
        store: store.clone(),
    };
    let before = table.usage();
    let (mut feedback_ms, mut feedback_batches, mut notifications) = (0.0, 0usize, 0usize);
    let delivered_at = Timestamp::now();
    for kind in [FeedbackKind::Send, FeedbackKind::Delivery] {
        for chunk in records.chunks(10) {
            let started = Instant::now();
            for r in chunk {
                let event = ProviderEvent {
                    message_id: r.message_id.clone().unwrap_or_default(),
                    email_id: Some(r.id),
                    project_id: Some(project),
                    timestamp: match kind {
                        FeedbackKind::Send => r.sent_at.unwrap_or(r.created_at),
                        _ => delivered_at,
                    },
                    recipients: vec![r.to.clone()],
                    kind: kind.clone(),
                };
                feedback.apply(&event).await.expect("feedback");
                notifications += 1;
            }
            feedback_ms += billed_ms(started.elapsed());
            feedback_batches += 1;
        }
    }
    let feedback_ops = table.usage().since(&before);

    let mut items = Vec::new();
    let mut q = Query::new(Index::Primary, keys::events_partition(project));
    loop {
        let page = raw.query(q.clone()).await.expect("events");
        items.extend(page.items);
        match page.last {
            Some(last) => q.start_after = Some(last),
            None => break,
        }
    }
    let dispatcher = Dispatcher {
        store: store.clone(),
        webhook_queue: Arc::new(MemoryQueue::default()),
        workflow_queue: Arc::new(MemoryQueue::default()),
    };
    let before = table.usage();
    let (mut dispatch_ms, mut dispatch_batches) = (0.0, 0usize);
    for chunk in items.chunks(100) {
        let started = Instant::now();
        dispatcher.handle(chunk).await.expect("dispatch");
        dispatch_ms += billed_ms(started.elapsed());
        dispatch_batches += 1;
    }
    let dispatch_ops = table.usage().since(&before);

    let gbs = |ms: f64| ms / 1000.0 * LAMBDA_GB;
    // EventBridge's SendMessage per notification, one receive and one batch delete per batch.
    let sqs = (notifications + 2 * feedback_batches) as f64 / n;
    vec![
        Line::priced(
            "Feedback: SQS send, receive, delete",
            "req",
            sqs,
            SQS_REQUEST,
        ),
        Line {
            name: "Feedback: Lambda (requests + GB-s)",
            per_email: feedback_batches as f64 / n,
            unit: "req",
            dollars_per_million: (feedback_batches as f64 * LAMBDA_REQUEST
                + gbs(feedback_ms) * LAMBDA_GB_SECOND * 1e6)
                / n,
        },
        Line::priced(
            "DynamoDB feedback: write units",
            "WRU",
            feedback_ops.all_wru() / n,
            DYNAMO_WRU,
        ),
        Line::priced(
            "DynamoDB feedback: read units",
            "RRU",
            feedback_ops.rru / n,
            DYNAMO_RRU,
        ),
        Line {
            name: "Dispatch: Lambda (requests + GB-s)",
            per_email: dispatch_batches as f64 / n,
            unit: "req",
            dollars_per_million: (dispatch_batches as f64 * LAMBDA_REQUEST
                + gbs(dispatch_ms) * LAMBDA_GB_SECOND * 1e6)
                / n,
        },
        Line::priced(
            "DynamoDB dispatch: write units",
            "WRU",
            dispatch_ops.all_wru() / n,
            DYNAMO_WRU,
        ),
        Line::priced(
            "DynamoDB dispatch: read units",
            "RRU",
            dispatch_ops.rru / n,
            DYNAMO_RRU,
        ),
    ]
}

/// How a run's emails are accepted.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// `POST /v1/send` with this many recipients a request, and a body of this size.
    Api {
        per_request: usize,
        body_bytes: Option<usize>,
    },
    /// One MARKETING campaign to every contact: `POST /campaigns`, `POST /campaigns/:id/send`,
    /// then the scheduler's fan-out passes (their table work and time count as acceptance).
    Campaign,
    /// A workflow `signed_up` → SEND_EMAIL started by one event per contact: the event
    /// dispatcher's workflow work (batches of 100 stream records) and the workflow worker
    /// (batches of 10) count as acceptance; the events themselves are the sender's `/v1/track`
    /// calls, priced in the track figures, not here.
    Workflow,
}

async fn metered_run(label: &str, emails: usize, existing: bool, source: Source) -> Run {
    // `raw` reads what the run wrote without metering it (the stream's records are free).
    let raw: Arc<dyn Table> = Arc::new(SqliteTable::in_memory().expect("sqlite"));
    let table = Arc::new(MeteredTable::new(raw.clone()));
    // Lambda functions open the store with the 60 s lookup cache (`StoreConfig::open`).
    let store = Store::new(table.clone()).with_lookup_ttl(Duration::from_secs(60));
    let queue = |_: &str| Arc::new(MeteredQueue::new(Arc::new(MemoryQueue::default())));
    let (tq, wq, cq) = (queue("t"), queue("w"), queue("c"));
    let queues = SendQueues {
        transactional: tq.clone(),
        workflow: wq.clone(),
        campaign: cq.clone(),
    };
    let queue_usage = || tq.usage().plus(&wq.usage()).plus(&cq.usage());
    let blobs = Arc::new(MeteredBlobs::new(Arc::new(MemoryBlobs::default())));
    let app = plunk_api::app(
        AppState::new(store.clone(), Settings::default())
            .with_send_queues(queues.clone())
            .with_blobs(blobs.clone()),
    );
    let (project, bearer) = inproc::project_with_domain(&store, &app, "cost", "cost.example").await;
    let recipients: Vec<String> = (0..emails).map(|i| format!("r{i}@rcpt.example")).collect();
    let mut contacts = Vec::new();
    if existing {
        let change = DataChange::parse(&serde_json::Map::new()).expect("empty change");
        for r in &recipients {
            let email = EmailAddress::parse(r).expect("address");
            let contact = store
                .contacts()
                .upsert(project.id, &email, None, &change, SubscriptionSource::Api)
                .await
                .expect("contact")
                .contact;
            contacts.push((contact.id, r.clone()));
            // An existing contact has been sent and delivered mail before: the event counters
            // already count it among each name's unique contacts.
            for name in ["email.sent", "email.delivery"] {
                let marker = Item::new(
                    keys::event_contact_marker(project.id, name, contact.id),
                    serde_json::json!({}),
                );
                raw.put(marker, Condition::None).await.expect("marker");
            }
        }
    }
    // Warm the key cache and the cursor secret like a warm function instance.
    call(&app, Method::GET, "/emails?limit=1", &bearer, None).await;

    // The workflow (set up once, not per email) and the queue its worker reads.
    let jobs = Arc::new(MeteredQueue::new(Arc::new(MemoryQueue::default())));
    let engine = Engine {
        store: store.clone(),
        acceptor: Acceptor {
            store: store.clone(),
            blobs: blobs.clone(),
            queues: queues.clone(),
        },
        queue: jobs.clone(),
        allow_private_webhooks: false,
        clock: Arc::new(SystemClock),
    };
    if let Source::Workflow = source {
        welcome_workflow(&app, &bearer).await;
    }

    // 1. Accept.
    let first_minute = SystemClock.now_ms().div_euclid(60_000);
    let (t0, q0, k0) = (table.usage(), queue_usage(), table.by_kind());
    let mut api_ms = 0.0;
    let mut requests = 0usize;
    // Lambda invocations of the acceptance: the API requests, or the workflow side's batches.
    let mut invocations = 0usize;
    let mut job_batches = 0u64;
    let mut email_ids = Vec::with_capacity(emails);
    let scheduler = Scheduler {
        store: store.clone(),
        queues: queues.clone(),
        // Unbounded ahead: nothing drains while this fans out. Deployed, the fan-out keeps 30 s
        // waiting and works in passes of about a page, which adds a job claim and release per
        // page (about 0.05 write units an email), not counted here.
        fanout: plunk_worker::campaigns::fanout::FanoutSettings {
            ahead: i64::MAX,
            ..plunk_worker::campaigns::fanout::FanoutSettings::for_rate(SEND_RATE)
        },
    };
    let (queue, class) = match source {
        Source::Api {
            per_request,
            body_bytes,
        } => {
            for chunk in recipients.chunks(per_request) {
                let mut body = inproc::send_body(chunk, "billing@cost.example");
                if let Some(n) = body_bytes {
                    // A realistic HTML body: the template text padded with markup to `n` bytes.
                    let html = body["body"].as_str().unwrap_or_default().to_owned();
                    let pad = n.saturating_sub(html.len() + 13);
                    body["body"] = format!("{html}<!--{}-->", "x".repeat(pad)).into();
                }
                let reply = call(&app, Method::POST, "/v1/send", &bearer, Some(&body)).await;
                assert!(reply.status.is_success(), "send: {}", reply.body);
                email_ids.extend(inproc::email_ids(&reply));
                api_ms += billed_ms(reply.elapsed);
                requests += 1;
            }
            invocations = requests;
            (queues.transactional.clone(), SendClass::Transactional)
        }
        Source::Campaign => {
            let body = serde_json::json!({
                "name": "Cost", "subject": "News for {{ data.plan ?? \"you\" }}",
                "body": "<p>Hello {{ email }}, here is what is new.</p>",
                "from": "news@cost.example", "audienceType": "ALL",
            });
            let created = call(&app, Method::POST, "/campaigns", &bearer, Some(&body)).await;
            assert!(created.status.is_success(), "campaign: {}", created.body);
            let id = created.body["data"]["id"].as_str().expect("id").to_owned();
            let sent = call(
                &app,
                Method::POST,
                &format!("/campaigns/{id}/send"),
                &bearer,
                Some(&serde_json::json!({})),
            )
            .await;
            assert!(sent.status.is_success(), "send: {}", sent.body);
            api_ms += billed_ms(created.elapsed) + billed_ms(sent.elapsed);
            requests += 2;
            invocations = requests;
            // The fan-out, pass after pass.
            loop {
                let started = Instant::now();
                let report = scheduler
                    .fan_out(SystemClock.now_ms())
                    .await
                    .expect("fan-out");
                api_ms += billed_ms(started.elapsed());
                if report.recipients == 0 {
                    break;
                }
            }
            email_ids.extend(stored_email_ids(&raw, project.id).await);
            assert_eq!(email_ids.len(), emails, "one email per contact");
            (queues.campaign.clone(), SendClass::Campaign)
        }
        Source::Workflow => {
            let now = Timestamp::now();
            let events: Vec<Event> = contacts
                .iter()
                .map(|(id, email)| Event {
                    id: uuid::Uuid::now_v7(),
                    name: "signed_up".into(),
                    contact_id: Some(*id),
                    contact_email: Some(email.clone()),
                    email_id: None,
                    data: serde_json::json!({"source": "cost"})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    source: EventSource::Api,
                    created_at: now,
                })
                .collect();
            let unmetered = Store::new(raw.clone());
            for e in &events {
                unmetered
                    .events()
                    .record(project.id, e)
                    .await
                    .expect("event");
            }
            // The event dispatcher's workflow work, a stream batch of 100 at a time.
            for batch in events.chunks(100) {
                let started = Instant::now();
                workflows::start::on_events(&store, jobs.as_ref(), project.id, batch)
                    .await
                    .expect("dispatch");
                api_ms += billed_ms(started.elapsed());
                invocations += 1;
            }
            // The workflow worker, a batch of 10 messages per invocation.
            loop {
                let messages = jobs
                    .receive(10, workflows::engine::VISIBILITY, Duration::ZERO)
                    .await
                    .expect("receive");
                if messages.is_empty() {
                    break;
                }
                let started = Instant::now();
                for m in &messages {
                    assert!(engine.handle(&m.body, &m.receipt).await, "workflow job");
                }
                api_ms += billed_ms(started.elapsed());
                invocations += 1;
                job_batches += 1;
            }
            email_ids.extend(stored_email_ids(&raw, project.id).await);
            assert_eq!(email_ids.len(), emails, "one email per execution");
            (queues.workflow.clone(), SendClass::Workflow)
        }
    };
    let (t1, q1, k1) = (table.usage(), queue_usage(), table.by_kind());
    let blobs_api = blobs.usage();

    // 2. Send, as the event source feeds the Lambda function.
    let mailer = Arc::new(RecordingMailer::accepting());
    let worker = SendWorker::new(
        store.clone(),
        mailer.clone(),
        blobs.clone(),
        Pacer::new(
            Arc::new(TablePace::new(table.clone())),
            match source {
                Source::Api { .. } => Arc::new(NoWait),
                Source::Campaign => Arc::new(SkipClock::default()),
                Source::Workflow => Arc::new(SkipClock::default()),
            },
            SEND_RATE,
        ),
        SenderConfig::default(),
    );
    let mut batches = 0usize;
    let mut batch_ms = 0.0;
    let mut sqs_consumer = QueueUsage::default();
    loop {
        let messages = queue
            .receive(10, consumer::VISIBILITY, Duration::ZERO)
            .await
            .expect("receive");
        if messages.is_empty() {
            break;
        }
        let started = Instant::now();
        let mut done = 0;
        // As the Lambda handler: the batch announced to the pace, its messages handled at once.
        consumer::announce(&worker, std::iter::repeat_n(class, messages.len())).await;
        let mut tasks = Vec::with_capacity(messages.len());
        for m in &messages {
            let (worker, body) = (worker.clone(), m.body.clone());
            tasks.push(tokio::spawn(async move {
                consumer::handle(&worker, &body).await
            }));
        }
        for (m, task) in messages.iter().zip(tasks) {
            match task.await.expect("send task") {
                Outcome::Done => {
                    queue.delete(&m.receipt).await.expect("delete");
                    done += 1;
                }
                Outcome::RetryAfter(delay) => {
                    queue
                        .change_visibility(&m.receipt, delay)
                        .await
                        .expect("visibility");
                    sqs_consumer.change_visibility += 1;
                }
            }
        }
        batch_ms += billed_ms(started.elapsed());
        batches += 1;
        sqs_consumer.receive += 1;
        // The event source deletes a batch's successes with one DeleteMessageBatch.
        sqs_consumer.delete += u64::from(done > 0);
    }
    let (t2, k2) = (table.usage(), table.by_kind());
    let blobs_consumer = blobs.usage();
    let after = after_the_send(&store, &raw, &table, project.id, &email_ids).await;

    // 3. The scheduler, once a simulated minute, until each acceptance minute had both sweeps.
    let last_minute = SystemClock.now_ms().div_euclid(60_000);
    let before_fixed = table.usage();
    let started = Instant::now();
    // A tick over minutes that hold nothing: the fixed cost of every minute.
    scheduler
        .tick((first_minute - 10_000) * 60_000)
        .await
        .expect("tick");
    let fixed_tick = table.usage().since(&before_fixed);
    let fixed_ms = billed_ms(started.elapsed());
    store
        .table()
        .delete(
            &keys::scheduler_state(),
            plunk_store::table::Condition::None,
        )
        .await
        .expect("reset scheduler state");
    let t3 = table.usage();
    let mut ticks = 0u32;
    let mut tick_ms = 0.0;
    for m in first_minute..=last_minute + 16 {
        let started = Instant::now();
        let report = scheduler.tick(m * 60_000 + 1_000).await.expect("tick");
        tick_ms += billed_ms(started.elapsed());
        assert_eq!(
            report.requeued + report.failed,
            0,
            "nothing was left behind"
        );
        ticks += 1;
    }
    // The expiry sweep, 72 hours after each acceptance minute (a tick of its own each, as the
    // minutes in between hold nothing of this run).
    let mut reset_wru = 0.0; // the bench's own state resets, not the scheduler's cost
    for m in first_minute..=last_minute {
        let before = table.usage();
        store
            .table()
            .delete(&keys::scheduler_state(), Condition::None)
            .await
            .expect("reset scheduler state");
        reset_wru += table.usage().since(&before).all_wru();
        let started = Instant::now();
        let report = scheduler
            .tick((m + 72 * 60) * 60_000 + 1_000)
            .await
            .expect("tick");
        tick_ms += billed_ms(started.elapsed());
        assert_eq!(report.failed, 0, "every email ended before its expiry");
        ticks += 1;
    }
    let t4 = table.usage();

    let n = emails as f64;
    let api_ops = t1.since(&t0);
    let consumer_ops = t2.since(&t1);
    let ticks_all = t4.since(&t3);
    let sweep_ops = TableUsage {
        rru: ticks_all.rru - f64::from(ticks) * fixed_tick.rru,
        wru: ticks_all.wru - f64::from(ticks) * fixed_tick.wru - reset_wru,
        gsi_wru: ticks_all.gsi_wru - f64::from(ticks) * fixed_tick.gsi_wru,
        ..ticks_all
    };
    // The workflow queue as its event source uses it: the sends counted, one receive and one
    // DeleteMessageBatch per batch (the engine's own deletes here stand in for that).
    let jobs_used = jobs.usage();
    let sqs_jobs = jobs_used.send + jobs_used.send_batch + 2 * job_batches;
    let sqs_api = q1.since(&q0);
    // At 14/s, a minute carries 840 emails: the fixed tick cost of one minute, shared by them.
    let per_minute = SEND_RATE * 60.0;
    let gbs = |ms: f64| ms / 1000.0 * LAMBDA_GB;
    let mut lines = vec![
        Line::priced(
            "API Gateway requests",
            "req",
            requests as f64 / n,
            APIGW_REQUEST,
        ),
        Line::priced(
            "Lambda API: invocations",
            "req",
            invocations as f64 / n,
            LAMBDA_REQUEST,
        ),
        Line::priced(
            "Lambda API: GB-s",
            "GB-s",
            gbs(api_ms) / n,
            LAMBDA_GB_SECOND * 1e6,
        ),
        Line::priced(
            "DynamoDB API: write units",
            "WRU",
            api_ops.all_wru() / n,
            DYNAMO_WRU,
        ),
        Line::priced(
            "DynamoDB API: read units",
            "RRU",
            api_ops.rru / n,
            DYNAMO_RRU,
        ),
        Line::priced(
            "SQS API: enqueue requests",
            "req",
            (sqs_api.requests() + sqs_jobs) as f64 / n,
            SQS_REQUEST,
        ),
        Line::priced(
            "Lambda consumer: invocations",
            "req",
            batches as f64 / n,
            LAMBDA_REQUEST,
        ),
        Line::priced(
            "Lambda consumer: GB-s (work)",
            "GB-s",
            gbs(batch_ms) / n,
            LAMBDA_GB_SECOND * 1e6,
        ),
        Line::priced(
            "DynamoDB consumer: write units",
            "WRU",
            consumer_ops.all_wru() / n,
            DYNAMO_WRU,
        ),
        Line::priced(
            "DynamoDB consumer: read units",
            "RRU",
            consumer_ops.rru / n,
            DYNAMO_RRU,
        ),
        Line::priced(
            "SQS consumer: receive + delete",
            "req",
            sqs_consumer.requests() as f64 / n,
            SQS_REQUEST,
        ),
        Line::priced(
            "DynamoDB sweeps (2m, 16m, 72h): RRU",
            "RRU",
            sweep_ops.rru / n,
            DYNAMO_RRU,
        ),
        Line {
            name: "Scheduler fixed, shared at 14/s",
            per_email: fixed_tick.rru / per_minute,
            unit: "RRU",
            dollars_per_million: (fixed_tick.rru * DYNAMO_RRU
                + fixed_tick.all_wru() * DYNAMO_WRU
                + LAMBDA_REQUEST
                + gbs(fixed_ms) * LAMBDA_GB_SECOND * 1e6)
                / per_minute,
        },
    ];
    // Bodies over the inline limit are kept in S3: a PUT per request, a GET per email.
    lines.push(Line {
        name: "S3: PUT (API) + GET (consumer)",
        per_email: (blobs_consumer.puts + blobs_consumer.gets) as f64 / n,
        unit: "req",
        dollars_per_million: (blobs_api.puts as f64 * S3_PUT
            + (blobs_consumer.gets - blobs_api.gets) as f64 * S3_GET)
            / n,
    });
    if sweep_ops.all_wru() > 0.0 {
        lines.push(Line::priced(
            "DynamoDB sweeps: write units",
            "WRU",
            sweep_ops.all_wru() / n,
            DYNAMO_WRU,
        ));
    }
    Run {
        label: label.to_owned(),
        emails,
        lines,
        api_ops,
        api_kinds: kinds_since(&k1, &k0),
        consumer_kinds: kinds_since(&k2, &k1),
        consumer_ops,
        sweep_ops,
        fixed_tick,
        provider_calls: mailer.count(),
        api_queue_requests: sqs_api.requests() + sqs_jobs,
        api_ms: api_ms / invocations.max(1) as f64,
        batch_ms: batch_ms / batches.max(1) as f64,
        tick_ms: tick_ms / f64::from(ticks),
        after,
    }
}

/// The ids of every email of `project`, read without metering.
async fn stored_email_ids(raw: &Arc<dyn Table>, project: uuid::Uuid) -> Vec<uuid::Uuid> {
    let mut ids = Vec::new();
    let mut query = Query::new(Index::Primary, keys::emails_partition(project));
    loop {
        let page = raw.query(query.clone()).await.expect("emails");
        ids.extend(
            page.items
                .iter()
                .filter_map(|i| i.key.sk.parse::<uuid::Uuid>().ok()),
        );
        match page.last {
            Some(last) => query.start_after = Some(last),
            None => return ids,
        }
    }
}

/// A template and an enabled workflow `signed_up` → SEND_EMAIL (TRIGGER and SEND_EMAIL: two
/// steps an execution).
async fn welcome_workflow(app: &inproc::Api, bearer: &str) {
    let created = |reply: inproc::Reply| {
        assert!(reply.status.is_success(), "{}", reply.body);
        reply.body["data"].clone()
    };
    let template = created(
        call(app, Method::POST, "/templates", bearer, Some(&serde_json::json!({
            "name": "Welcome", "subject": "Welcome {{ data.plan ?? \"\" }}", "type": "TRANSACTIONAL",
            "body": "<p>Thanks for signing up ({{ event.source }}).</p>", "from": "hello@cost.example"
        })))
        .await,
    );
    let workflow = created(
        call(
            app,
            Method::POST,
            "/workflows",
            bearer,
            Some(&serde_json::json!({"name": "welcome", "eventName": "signed_up"})),
        )
        .await,
    );
    let id = workflow["id"].as_str().expect("workflow id");
    created(
        call(
            app,
            Method::POST,
            &format!("/workflows/{id}/steps"),
            bearer,
            Some(&serde_json::json!({
                "type": "SEND_EMAIL", "name": "Welcome", "position": {"x": 0, "y": 100},
                "templateId": template["id"], "autoConnect": true
            })),
        )
        .await,
    );
    created(
        call(
            app,
            Method::PATCH,
            &format!("/workflows/{id}"),
            bearer,
            Some(&serde_json::json!({"enabled": true})),
        )
        .await,
    );
}

fn api(per_request: usize, body_bytes: Option<usize>) -> Source {
    Source::Api {
        per_request,
        body_bytes,
    }
}

fn kinds(k: &BTreeMap<String, KindUsage>, n: f64) -> String {
    k.iter()
        .map(|(name, u)| format!("{name} {:.2}W/{:.2}R", u.wru / n, u.rru / n))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ops(u: &TableUsage, n: f64) -> String {
    format!(
        "{:.2} get, {:.2} put, {:.2} transact, {:.2} add, {:.2} query, {:.2} batch-get ({:.2} calls; {:.2} refused conditions)",
        u.gets as f64 / n,
        u.puts as f64 / n,
        u.transacts as f64 / n,
        u.adds as f64 / n,
        u.queries as f64 / n,
        u.batch_gets as f64 / n,
        u.calls as f64 / n,
        u.condition_failures as f64 / n
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let emails: usize = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("BENCH_COST_EMAILS").ok())
        .map(|a| a.parse().expect("usage: send-cost [N]"))
        .unwrap_or(1_000);
    let runs = vec![
        metered_run("1 rcpt, new contact", emails, false, api(1, None)).await,
        metered_run("1 rcpt, existing contact", emails, true, api(1, None)).await,
        metered_run("50 rcpt, new contacts", emails, false, api(50, None)).await,
        metered_run(
            "1 rcpt, existing, 20 KB",
            emails,
            true,
            api(1, Some(20_000)),
        )
        .await,
        metered_run("campaign to contacts", emails, true, Source::Campaign).await,
        metered_run("workflow email", emails, true, Source::Workflow).await,
    ];

    println!(
        "send cost: {emails} emails per run through the router, SendWorker (TablePace) and scheduler, metered; \
         Lambda 256 MB arm64, in-process handler time rounded up to the ms"
    );
    print!("{:<34} {:>5}", "per email", "unit");
    for r in &runs {
        print!(" | {:>26}", r.label);
    }
    println!();
    print!("{:<34} {:>5}", "", "");
    for _ in &runs {
        print!(" | {:>12} {:>13}", "units", "$ per 1M");
    }
    println!();
    for (i, line) in runs[0].lines.iter().enumerate() {
        print!("{:<34} {:>5}", line.name, line.unit);
        for r in &runs {
            match r.lines.get(i) {
                Some(l) => print!(" | {:>12.4} {:>13.4}", l.per_email, l.dollars_per_million),
                None => print!(" | {:>12} {:>13}", "", ""),
            }
        }
        println!();
    }
    print!("{:<40}", "total (excluding SES)");
    for r in &runs {
        print!(" | {:>12} {:>13.3}", "", r.total());
    }
    println!();
    print!("{:<40}", "target");
    for _ in &runs {
        print!(" | {:>12} {:>13.3}", "", TARGET_PER_MILLION);
    }
    println!();
    // At saturation the consumer also holds its invocation while it waits for pace slots: each
    // of MaximumConcurrency invocations sends at rate / concurrency.
    let paced_gbs = LAMBDA_GB * CONSUMERS / SEND_RATE;
    let paced = paced_gbs * LAMBDA_GB_SECOND * 1e6;
    print!("{:<40}", "+ consumer waiting for the pace (14/s)");
    for r in &runs {
        print!(" | {:>12} {:>13.3}", "", r.total() + paced);
    }
    println!();
    print!("{:<40}", "+ 5 ms per store/queue/provider call");
    for r in &runs {
        print!(
            " | {:>12} {:>13.3}",
            "",
            r.total() + paced + r.latency_dollars(5.0)
        );
    }
    println!();
    print!("{:<40}", "DynamoDB provisioned at 70 % instead");
    for r in &runs {
        print!(" | {:>12} {:>13.3}", "", r.provisioned_total());
    }
    println!();
    // The floor: what the required operations alone cost at on-demand prices, before any read,
    // contact write or sweep.
    let floor = |per_request: f64| {
        per_request * (APIGW_REQUEST + LAMBDA_REQUEST + SQS_REQUEST + DYNAMO_WRU)
            + (REQUIRED_WRU - 1.0) * DYNAMO_WRU
            + 0.1 * LAMBDA_REQUEST
            + 0.2 * SQS_REQUEST
    };
    print!("{:<40}", "floor: required requests and writes");
    for per_request in [1.0, 1.0, 1.0 / 50.0, 1.0, 2.0 / emails as f64, 0.0] {
        print!(" | {:>12} {:>13.3}", "", floor(per_request));
    }
    println!();
    println!(
        "   (the floor prices only what every email needs by the contract and the send pipeline: the API Gateway \
         request, Lambda invocations, one enqueue and a tenth of a receive and a delete, and {REQUIRED_WRU} write units: \
         rate-limit counter, record, content, claim, SENT, email.sent and its contact index, a tenth of a pace write)"
    );
    println!("after the send: SES Send + Delivery notifications (feedback consumer) and the event dispatcher, per email");
    for (i, line) in runs[0].after.iter().enumerate() {
        print!("{:<34} {:>5}", line.name, line.unit);
        for r in &runs {
            let l = &r.after[i];
            print!(" | {:>12.4} {:>13.4}", l.per_email, l.dollars_per_million);
        }
        println!();
    }
    print!("{:<40}", "total with feedback and dispatch");
    for r in &runs {
        let after: f64 = r.after.iter().map(|l| l.dollars_per_million).sum();
        print!(" | {:>12} {:>13.3}", "", r.total() + after);
    }
    println!();
    println!(
        "   (the pace line adds {paced_gbs:.4} GB-s = ${paced:.3} per 1M: at saturation each of {CONSUMERS} concurrent consumers holds \
         its invocation {:.0} ms per email waiting for its slot; the last line also bills Lambda for a 5 ms round trip per \
         call, one after the other, since in-process calls take microseconds)",
        1000.0 * CONSUMERS / SEND_RATE
    );
    println!();
    for r in &runs {
        let n = r.emails as f64;
        println!("{}: {} provider calls for {} emails; handler ms: API {:.2} per request, consumer {:.2} per batch, tick {:.2}", r.label, r.provider_calls, r.emails, r.api_ms, r.batch_ms, r.tick_ms);
        println!("   API table ops per email:      {}", ops(&r.api_ops, n));
        println!(
            "   consumer table ops per email: {}",
            ops(&r.consumer_ops, n)
        );
        println!(
            "   API units per email by item:      {}",
            kinds(&r.api_kinds, n)
        );
        println!(
            "   consumer units per email by item: {}",
            kinds(&r.consumer_kinds, n)
        );
        println!(
            "   sweeps per email: {:.2} RRU over {:.2} calls; fixed per tick: {:.1} RRU, {:.1} WRU over {} calls",
            r.sweep_ops.rru / n,
            r.sweep_ops.calls as f64 / n,
            r.fixed_tick.rru,
            r.fixed_tick.all_wru(),
            r.fixed_tick.calls
        );
    }
    // The workflow side alone, per step an execution ran (TRIGGER and SEND_EMAIL, the email's
    // acceptance inside the SEND_EMAIL step).
    if let Some(r) = runs.iter().find(|r| r.label == "workflow email") {
        let steps = 2.0 * r.emails as f64;
        println!(
            "workflow side per executed step (dispatch start, TRIGGER, SEND_EMAIL with its accept): \
             {:.2} write units, {:.2} read units, {:.2} table requests, {:.2} SQS requests",
            r.api_ops.all_wru() / steps,
            r.api_ops.rru / steps,
            r.api_ops.calls as f64 / steps,
            r.api_queue_requests as f64 / steps
        );
    }
    let bad = runs.iter().any(|r| r.provider_calls != r.emails);
    if bad {
        eprintln!("send-cost: a run did not send every email exactly once");
        std::process::exit(1);
    }
}
