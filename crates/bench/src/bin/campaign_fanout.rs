//! `campaign-fanout`: the campaign fan-out (`plunk_worker::campaigns::fanout`) in process on the
//! embedded store.
//!
//! 1. **Fan-out of N recipients** (`BENCH_FANOUT_RECIPIENTS`, 1,000,000): a MARKETING campaign to
//!    every contact of a project (5 % unsubscribed, a database file as `plunk serve` keeps),
//!    fanned out by the scheduler's pass with no
//!    bound ahead of the send rate (the worst case for one pass). Prints the process CPU seconds
//!    of the fan-out (target ≤ 50 s for a million), queue requests per recipient (target ≤ 0.11),
//!    table read and write units per recipient, and, for the AWS shape, the write units a second
//!    on the busiest partition key when the fan-out runs at the send rate as deployed (bounded
//!    a short lead ahead), against DynamoDB's 1,000 per partition.
//! 2. **Crash and resume** (`BENCH_FANOUT_CRASHES`, 1,000): each run fans a campaign of 60
//!    contacts out in pages of 7 through a table that fails at a random operation (the process
//!    dies there: the pass ends with an error and the next pass starts after the lease), with
//!    passes sometimes run twice at once; then the real send worker drains the queue, every
//!    message handled twice. Counts recipients missing and doubled at the provider, and checks the
//!    stats add up; exits 1 on any.

use async_trait::async_trait;
use plunk_bench::metered::{kinds_since, MeteredQueue, MeteredTable};
use plunk_bench::prices::{DYNAMO_RRU, DYNAMO_WRU, SQS_REQUEST};
use plunk_bench::seed::{cpu_seconds, env_usize, seed_contacts, SeedContact};
use plunk_domain::campaign::Campaign;

use plunk_domain::project::Tracking;
use plunk_domain::Timestamp;
use plunk_messaging::mailer::{MailError, Mailer, OutgoingEmail};
use plunk_messaging::memory::{MemoryBlobs, MemoryQueue};
use plunk_messaging::queue::Queue;
use plunk_messaging::send_queues::SendQueues;
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::keys;
use plunk_store::table::{Condition, Item, Key, Page, Query, StoreError, Table, WriteOp};
use plunk_store::Store;
use plunk_worker::campaigns::fanout::FanoutSettings;
use plunk_worker::campaigns::lifecycle;
use plunk_worker::clock::SystemClock;
use plunk_worker::pacing::{MemoryPace, Pacer};
use plunk_worker::scheduler::Scheduler;
use plunk_worker::send::{SendWorker, SenderConfig};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The account's send rate the AWS figures assume (SES's default).
const SEND_RATE: f64 = 14.0;

/// A project with a verified domain and `contacts` contacts (every 20th unsubscribed), written
/// straight into the table (the fan-out is measured, not the setup).
async fn seed(store: &Store, contacts: usize) -> Uuid {
    let (project, _, _) = store
        .projects()
        .create("fanout", 30_000, Tracking::Disabled, "en")
        .await
        .expect("project");
    // The domain's claim is what the sender checks read: verified, this project's.
    store
        .table()
        .put(
            Item::new(
                keys::domain_name("news.example"),
                serde_json::json!({"projectId": project.id, "domainId": Uuid::now_v7(), "verified": true}),
            ),
            Condition::None,
        )
        .await
        .expect("domain");
    let now = Timestamp::now();
    seed_contacts(store, project.id, contacts, |i| SeedContact {
        subscribed: i % 20 != 0,
        data: serde_json::Map::new(),
        created_at: now,
    })
    .await;
    project.id
}

/// A MARKETING campaign to everyone, moved to SENDING.
async fn start_campaign(store: &Store, project: Uuid) -> Campaign {
    let body = serde_json::json!({
        "name": "Bench", "subject": "News", "body": "<p>Hello {{ data.firstName ?? \"there\" }}</p>",
        "from": "hi@news.example",
    });
    let campaign = plunk_domain::campaign::read_body(body.as_object().expect("object"), None)
        .expect("valid")
        .into_campaign(Uuid::now_v7(), Timestamp::now())
        .expect("campaign");
    store
        .campaigns()
        .create(project, &campaign)
        .await
        .expect("create");
    let (campaign, _) = lifecycle::start_sending(store, project, &campaign, 1, Timestamp::now())
        .await
        .expect("start");
    campaign
}

fn queues_of(make: impl Fn() -> Arc<dyn Queue>) -> SendQueues {
    SendQueues {
        transactional: make(),
        workflow: make(),
        campaign: make(),
    }
}

/// The store, queue meter and campaign of one fan-out run over `recipients` contacts.
struct FanoutRun {
    store: Store,
    project: Uuid,
    campaign: Campaign,
    campaign_queue: Arc<MeteredQueue>,
    scheduler: Scheduler,
    _dir: tempfile::TempDir,
}

async fn prepare(recipients: usize, metered: Option<Arc<MeteredTable>>) -> FanoutRun {
    // A database file, as `plunk serve` keeps (an in-memory database slows down as it grows).
    let dir = tempfile::tempdir().expect("tempdir");
    let raw: Arc<dyn Table> =
        Arc::new(SqliteTable::open(&dir.path().join("store.db")).expect("sqlite"));
    let table: Arc<dyn Table> = match metered {
        Some(m) => m,
        None => raw,
    };
    let store = Store::new(table);
    let project = seed(&store, recipients).await;
    let campaign_queue = Arc::new(MeteredQueue::new(Arc::new(MemoryQueue::default())));
    let queues = SendQueues {
        campaign: campaign_queue.clone(),
        ..queues_of(|| Arc::new(MemoryQueue::default()))
    };
    let campaign = start_campaign(&store, project).await;
    let scheduler = Scheduler {
        store: store.clone(),
        queues,
        fanout: FanoutSettings {
            ahead: i64::MAX,
            budget: usize::MAX,
            time_budget: Duration::from_secs(3600),
            ..FanoutSettings::for_rate(SEND_RATE)
        },
    };
    FanoutRun {
        store,
        project,
        campaign,
        campaign_queue,
        scheduler,
        _dir: dir,
    }
}

/// Runs passes until one writes nothing; returns (recipients written, passes).
async fn fan_out_all(run: &FanoutRun) -> (usize, usize) {
    let (mut written, mut passes) = (0, 0);
    loop {
        let report = run
            .scheduler
            .fan_out(Timestamp::now().unix_millis())
            .await
            .expect("pass");
        passes += 1;
        written += report.recipients;
        if report.recipients == 0 {
            return (written, passes);
        }
    }
}

async fn fan_out_bench(recipients: usize) {
    println!("## Fan-out of {recipients} recipients (in process, embedded store)");
    // CPU on the plain store; units on a metered run (the meter's own work is not the fan-out's).
    let setup = Instant::now();
    let run = prepare(recipients, None).await;
    println!(
        "setup: {recipients} contacts in {:.1} s (not counted)",
        setup.elapsed().as_secs_f64()
    );
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    let (written, passes) = fan_out_all(&run).await;
    let (cpu, wall) = (cpu_seconds() - cpu, wall.elapsed().as_secs_f64());
    let stats = lifecycle::stats(&run.store, run.project, run.campaign.id)
        .await
        .expect("stats");
    let queue = run.campaign_queue.usage();
    drop(run);
    let n = written.max(1) as f64;
    println!(
        "fan-out: {written} emails ({} pending, {} suppressed) in {passes} passes: {cpu:.1} CPU s, {wall:.1} s wall ({:.0} recipients/s)",
        stats.pending_count, stats.suppressed_count, n / wall.max(1e-9)
    );
    println!(
        "CPU per million recipients: {:.1} s (target ≤ 50 s)",
        cpu * 1e6 / n
    );
    println!(
        "queue requests per recipient: {:.3} (target ≤ 0.11; {} SendMessageBatch, {} messages)",
        queue.requests() as f64 / n,
        queue.send_batch,
        queue.messages
    );
    let sample = recipients.min(100_000);
    let raw_dir = tempfile::tempdir().expect("tempdir");
    let raw: Arc<dyn Table> =
        Arc::new(SqliteTable::open(&raw_dir.path().join("store.db")).expect("sqlite"));
    let table = Arc::new(MeteredTable::new(raw));
    let run = prepare(sample, Some(table.clone())).await;
    let before = table.usage();
    let kinds_before = table.by_kind();
    let (written, _) = fan_out_all(&run).await;
    let used = table.usage().since(&before);
    let n = written.max(1) as f64;
    println!(
        "table per recipient (metered run of {sample}): {:.2} write units, {:.2} read units, {:.3} requests",
        used.all_wru() / n,
        used.rru / n,
        used.calls as f64 / n
    );
    // Priced at AWS us-east-1 on-demand: DynamoDB $0.625 per million write units and $0.125 per
    // million read units, SQS $0.40 per million requests (the send itself is send-cost's).
    let queue_per = queue.requests() as f64 / written.max(1) as f64;
    let dollars =
        (used.all_wru() / n) * DYNAMO_WRU + (used.rru / n) * DYNAMO_RRU + queue_per * SQS_REQUEST;
    println!(
        "fan-out cost per million campaign emails: ${dollars:.2} (DynamoDB and SQS; the sends themselves as in send-cost)"
    );
    // The busiest partition key when the fan-out runs bounded at the send rate, as deployed:
    // each kind below is one partition key per project (or one global one).
    let kinds = kinds_since(&table.by_kind(), &kinds_before);
    let mut busiest: Vec<(String, f64)> = kinds
        .iter()
        .map(|(kind, u)| (kind.clone(), u.wru / n))
        .collect();
    busiest.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (kind, per) in busiest.iter().take(4) {
        println!(
            "  partition {kind}: {per:.3} write units per recipient → {:.1} a second at {SEND_RATE} emails/s (limit 1,000)",
            per * SEND_RATE
        );
    }
    if let Some((kind, per)) = busiest.first() {
        println!(
            "peak write units a second on one partition key at {SEND_RATE}/s: {:.1} ({kind}); the fan-out stays under 1,000 up to {:.0} emails/s",
            per * SEND_RATE,
            1000.0 / per
        );
    }
}

// ---- crash and resume -------------------------------------------------------------------------

/// A table that fails every call once `armed` reaches zero (the process died there), and until
/// disarmed.
struct CrashTable {
    inner: Arc<dyn Table>,
    countdown: AtomicU64,
    dead: AtomicBool,
}

impl CrashTable {
    fn tick(&self) -> Result<(), StoreError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("crashed".into()));
        }
        let left = self.countdown.fetch_sub(1, Ordering::SeqCst);
        if left == 1 {
            self.dead.store(true, Ordering::SeqCst);
            return Err(StoreError::Unavailable("crashed".into()));
        }
        Ok(())
    }

    fn revive(&self, countdown: u64) {
        self.countdown.store(countdown, Ordering::SeqCst);
        self.dead.store(false, Ordering::SeqCst);
    }
}

#[async_trait]
impl Table for CrashTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.tick()?;
        self.inner.get(key).await
    }
    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        self.tick()?;
        self.inner.put(item, condition).await
    }
    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        self.tick()?;
        self.inner.delete(key, condition).await
    }
    async fn add(
        &self,
        key: &Key,
        delta: i64,
        max: Option<i64>,
        ttl: Option<i64>,
    ) -> Result<i64, StoreError> {
        self.tick()?;
        self.inner.add(key, delta, max, ttl).await
    }
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.tick()?;
        self.inner.batch_get(keys).await
    }
    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        self.tick()?;
        self.inner.query(query).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.tick()?;
        self.inner.transact(ops).await
    }
}

/// A provider that counts each recipient.
#[derive(Default)]
struct Counting {
    sent: Mutex<HashMap<String, usize>>,
}

#[async_trait]
impl Mailer for Counting {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        *self
            .sent
            .lock()
            .expect("sent")
            .entry(email.to.email.clone())
            .or_default() += 1;
        Ok(format!("m-{}", email.email_id))
    }
}

#[derive(Default)]
struct CrashTotals {
    runs: usize,
    crashes: usize,
    missing: usize,
    doubled: usize,
    stats_off: usize,
}

async fn crash_run(run: u64, totals: &mut CrashTotals) {
    const CONTACTS: usize = 60;
    let mut rng = rand::rngs::StdRng::seed_from_u64(run);
    let raw: Arc<dyn Table> = Arc::new(SqliteTable::in_memory().expect("sqlite"));
    let clean = Store::new(raw.clone());
    let project = seed(&clean, CONTACTS).await;
    let campaign = start_campaign(&clean, project).await;
    let crashing = Arc::new(CrashTable {
        inner: raw.clone(),
        countdown: AtomicU64::new(u64::MAX),
        dead: AtomicBool::new(false),
    });
    let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::default());
    let queues = SendQueues {
        campaign: queue.clone(),
        ..queues_of(|| Arc::new(MemoryQueue::default()))
    };
    let scheduler = Scheduler {
        store: Store::new(crashing.clone()),
        queues,
        fanout: FanoutSettings {
            page: 7,
            ahead: i64::MAX,
            ..FanoutSettings::for_rate(SEND_RATE)
        },
    };
    // One crash at a random operation of the fan-out (it takes some 60-90 operations).
    crashing.revive(rng.gen_range(1..90));
    let mut now = Timestamp::now().unix_millis();
    for _ in 0..200 {
        let twice = rng.gen_bool(0.2);
        let result = if twice {
            let (a, b) = tokio::join!(scheduler.fan_out(now), scheduler.fan_out(now));
            a.and(b)
        } else {
            scheduler.fan_out(now).await
        };
        if result.is_err() || crashing.dead.load(Ordering::SeqCst) {
            totals.crashes += 1;
            crashing.revive(u64::MAX);
            // A new process: the dead holder's lease has run out.
            now += scheduler.fanout.lease.as_millis() as i64 + 1;
            continue;
        }
        let job = clean
            .campaign_fanouts()
            .get(project, campaign.id)
            .await
            .expect("job");
        if job.is_none_or(|(j, _)| j.fanned_out) {
            break;
        }
    }
    // Every message delivered twice (SQS is at least once).
    let provider = Arc::new(Counting::default());
    let worker = SendWorker::new(
        clean.clone(),
        provider.clone(),
        Arc::new(MemoryBlobs::default()),
        Pacer::new(Arc::new(MemoryPace::default()), Arc::new(SystemClock), 1e6),
        SenderConfig::default(),
    );
    let mut bodies = Vec::new();
    loop {
        let got = queue
            .receive(10, Duration::from_secs(600), Duration::ZERO)
            .await
            .expect("receive");
        if got.is_empty() {
            break;
        }
        for m in got {
            bodies.push(m.body.clone());
            queue.delete(&m.receipt).await.expect("delete");
        }
    }
    for body in bodies.iter().chain(bodies.iter()) {
        plunk_worker::consumer::handle(&worker, body).await;
    }
    let sent = provider.sent.lock().expect("sent").clone();
    let expected: Vec<String> = (0..CONTACTS)
        .filter(|i| i % 20 != 0)
        .map(|i| format!("r{i}@rcpt.example"))
        .collect();
    totals.missing += expected.iter().filter(|e| !sent.contains_key(*e)).count();
    totals.doubled += sent.values().filter(|n| **n > 1).count();
    let stats = lifecycle::stats(&clean, project, campaign.id)
        .await
        .expect("stats");
    if stats.total_recipients != expected.len() as i64
        || stats.sent_count != expected.len() as i64
        || stats.pending_count != 0
    {
        totals.stats_off += 1;
    }
    totals.runs += 1;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let recipients = env_usize("BENCH_FANOUT_RECIPIENTS", 1_000_000);
    let crashes = env_usize("BENCH_FANOUT_CRASHES", 1_000);
    if recipients > 0 {
        fan_out_bench(recipients).await;
    }
    if crashes == 0 {
        return;
    }
    println!("## Crash and resume ({crashes} runs)");
    let started = Instant::now();
    let mut totals = CrashTotals::default();
    for run in 0..crashes as u64 {
        crash_run(run, &mut totals).await;
    }
    println!(
        "{} runs, {} crashes: {} recipients missing, {} doubled, {} runs whose stats did not add up ({:.1} s)",
        totals.runs,
        totals.crashes,
        totals.missing,
        totals.doubled,
        totals.stats_off,
        started.elapsed().as_secs_f64()
    );
    if totals.missing + totals.doubled + totals.stats_off > 0 {
        std::process::exit(1);
    }
}
