//! `campaign-fairness`: priority and fairness of the send queues while a large campaign drains,
//! on the wall clock, in process: the real router, `SendWorker` with `TablePace` at 14/s and
//! `consumer::run` (the loop `plunk serve` runs) over the embedded store and queues, and the
//! campaign fan-out driven the way it runs on AWS (one scheduler tick a minute, then top-ups
//! every 5 s for the rest of the invocation, `Scheduler::top_up_fan_outs`).
//!
//! 1. Project A starts a MARKETING campaign to `BENCH_FAIRNESS_CONTACTS` (100,000) contacts.
//! 2. Transactional mail of three projects (A, B, C) arrives through `POST /v1/send` all along,
//!    two emails a second at random moments; its wait is acceptance → provider hand-off.
//! 3. A minute later project B starts a campaign to 2,000 contacts; its wait is the send call →
//!    its first email at the provider.
//! 4. The run lasts `BENCH_FAIRNESS_SECONDS` (180) in all; A's campaign is far from drained at
//!    the end, which is the point: the figures are those of the hours it takes to drain.
//!
//! Prints transactional wait p50/p99/max, B's first-email wait, and each campaign's share of
//! the provider calls once both run. Exits 1 when B sends nothing, a transactional email is not
//! delivered, or an email is handed over twice.

use async_trait::async_trait;
use axum::http::Method;
use plunk_bench::inproc::{self, call};
use plunk_bench::seed::{env_usize, seed_contacts, SeedContact};
use plunk_bench::stats::percentile;
use plunk_domain::Timestamp;
use plunk_http_kit::{AppState, Settings};
use plunk_messaging::mailer::{MailError, Mailer, OutgoingEmail};
use plunk_messaging::memory::MemoryBlobs;
use plunk_messaging::send_queues::SendQueues;
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::Store;
use plunk_worker::campaigns::fanout::FanoutSettings;
use plunk_worker::clock::{Clock, SystemClock};
use plunk_worker::pacing::{Pacer, TablePace};
use plunk_worker::scheduler::Scheduler;
use plunk_worker::send::{SendWorker, SenderConfig};
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The account's send rate (SES's default).
const RATE: f64 = 14.0;

/// What reached the provider: which email, from which sender, when.
#[derive(Default)]
struct Provider {
    calls: Mutex<Vec<(Uuid, String, Instant)>>,
}

#[async_trait]
impl Mailer for Provider {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        self.calls.lock().expect("calls").push((
            email.email_id,
            email.from.email.clone(),
            Instant::now(),
        ));
        Ok(format!("msg-{}", email.email_id))
    }
}

/// Creates and sends a campaign to every contact of the project behind `bearer`.
async fn start_campaign(app: &inproc::Api, bearer: &str, from: &str) -> Instant {
    let created = call(
        app,
        Method::POST,
        "/campaigns",
        bearer,
        Some(&json!({
            "name": "News", "subject": "News", "from": from, "type": "MARKETING",
            "body": "<p>Hello {{ data.firstName ?? \"there\" }}</p>",
        })),
    )
    .await;
    assert!(created.status.is_success(), "campaign: {}", created.body);
    let id = created.body["data"]["id"].as_str().expect("id").to_owned();
    let sent_at = Instant::now();
    let sent = call(
        app,
        Method::POST,
        &format!("/campaigns/{id}/send"),
        bearer,
        Some(&json!({})),
    )
    .await;
    assert!(sent.status.is_success(), "send: {}", sent.body);
    sent_at
}

/// Runs the scheduler as the every-minute Lambda does: a tick, then top-ups for the rest of the
/// invocation.
async fn scheduler_lambda(scheduler: Scheduler) {
    let mut every_minute = tokio::time::interval(Duration::from_secs(60));
    loop {
        every_minute.tick().await;
        let started = Instant::now();
        match scheduler.tick(SystemClock.now_ms()).await {
            Ok(report) if report.campaigns_fanning > 0 => {
                if let Err(e) = scheduler.top_up_fan_outs(started, &SystemClock).await {
                    eprintln!("campaign-fairness: top-up failed: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => eprintln!("campaign-fairness: tick failed: {e}"),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let contacts = env_usize("BENCH_FAIRNESS_CONTACTS", 100_000);
    let seconds = env_usize("BENCH_FAIRNESS_SECONDS", 180).max(90) as u64;
    println!("## Priority and fairness while a {contacts}-recipient campaign drains ({seconds} s on the wall clock, {RATE}/s)");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::new(Arc::new(
        SqliteTable::open(&dir.path().join("plunk.db")).expect("sqlite"),
    ));
    let queues = SendQueues::embedded(&dir.path().join("queues.db")).expect("queues");
    let provider = Arc::new(Provider::default());
    let worker = SendWorker::new(
        store.clone(),
        provider.clone(),
        Arc::new(MemoryBlobs::default()),
        Pacer::new(
            Arc::new(TablePace::new(store.table().clone())),
            Arc::new(SystemClock),
            RATE,
        ),
        SenderConfig::default(),
    );
    let app = plunk_api::app(
        AppState::new(store.clone(), Settings::default()).with_send_queues(queues.clone()),
    );
    let (a, bearer_a) = inproc::project_with_domain(&store, &app, "big", "big.example").await;
    let (b, bearer_b) = inproc::project_with_domain(&store, &app, "second", "second.example").await;
    let (_, bearer_c) = inproc::project_with_domain(&store, &app, "third", "third.example").await;
    let setup = Instant::now();
    let now = Timestamp::now();
    let plain = |_| SeedContact {
        subscribed: true,
        data: serde_json::Map::new(),
        created_at: now,
    };
    seed_contacts(&store, a.id, contacts, plain).await;
    seed_contacts(&store, b.id, 2_000, plain).await;
    println!(
        "setup: {} contacts in {:.1} s (not counted)",
        contacts + 2_000,
        setup.elapsed().as_secs_f64()
    );

    let consumer = tokio::spawn(plunk_worker::consumer::run(worker, queues.clone()));
    let scheduler = Scheduler {
        store: store.clone(),
        queues: queues.clone(),
        fanout: FanoutSettings::for_rate(RATE),
    };
    let start = Instant::now();
    start_campaign(&app, &bearer_a, "news@big.example").await;
    let lambda = tokio::spawn(scheduler_lambda(scheduler));

    // Transactional mail: two a second at random moments, from the three projects in turn.
    let senders = [
        (bearer_a.clone(), "billing@big.example"),
        (bearer_b.clone(), "billing@second.example"),
        (bearer_c.clone(), "billing@third.example"),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut accepted: HashMap<Uuid, Instant> = HashMap::new();
    let mut b_started = None;
    let end = start + Duration::from_secs(seconds);
    let mut i = 0usize;
    while Instant::now() < end {
        if b_started.is_none() && start.elapsed() >= Duration::from_secs(60) {
            b_started = Some(start_campaign(&app, &bearer_b, "news@second.example").await);
        }
        let (bearer, from) = &senders[i % senders.len()];
        let to = [format!("t{i}@receipts.example")];
        let reply = call(
            &app,
            Method::POST,
            "/v1/send",
            bearer,
            Some(&inproc::send_body(&to, from)),
        )
        .await;
        if reply.status.is_success() {
            for id in inproc::email_ids(&reply) {
                accepted.insert(id, reply_time(&reply));
            }
        } else {
            eprintln!("campaign-fairness: /v1/send answered {}", reply.status);
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..1_000))).await;
    }
    // Let the last transactional emails out.
    tokio::time::sleep(Duration::from_secs(5)).await;
    lambda.abort();
    consumer.abort();

    let calls = provider.calls.lock().expect("calls").clone();
    let mut seen = HashSet::new();
    let doubled = calls.iter().filter(|(id, _, _)| !seen.insert(*id)).count();
    let mut waits: Vec<i64> = calls
        .iter()
        .filter_map(|(id, _, at)| {
            accepted
                .get(id)
                .map(|t| at.duration_since(*t).as_micros() as i64)
        })
        .collect();
    waits.sort_unstable();
    let undelivered = accepted.len() - waits.len();
    let b_started = b_started.expect("B started");
    let b_first = calls
        .iter()
        .filter(|(_, from, _)| from == "news@second.example")
        .map(|(_, _, at)| *at)
        .min();
    let first_b = b_first.map(|t| t.duration_since(b_started));
    let since = b_first.unwrap_or(end);
    let count = |from: &str| {
        calls
            .iter()
            .filter(|(_, f, at)| f == from && *at >= since)
            .count()
    };
    let (a_after, b_after) = (count("news@big.example"), count("news@second.example"));
    let a_total = calls
        .iter()
        .filter(|(_, f, _)| f == "news@big.example")
        .count();
    let us = |v: i64| v as f64 / 1000.0;
    println!(
        "transactional: {} accepted, {} delivered; wait acceptance → provider p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (target p99 < 1 s)",
        accepted.len(),
        waits.len(),
        us(percentile(&waits, 50.0)),
        us(percentile(&waits, 99.0)),
        us(waits.last().copied().unwrap_or_default())
    );
    match first_b {
        Some(wait) => println!(
            "second project's campaign, started at {:.0} s: first email {:.1} s after its send call (target < 60 s)",
            b_started.duration_since(start).as_secs_f64(),
            ms(wait) / 1000.0
        ),
        None => println!("second project's campaign: no email sent"),
    }
    let both = (a_after + b_after).max(1) as f64;
    println!(
        "campaign mail once both run ({:.0} s): A {a_after} ({:.0} %), B {b_after} ({:.0} %); A sent {a_total} of {contacts} in all",
        end.saturating_duration_since(since).as_secs_f64(),
        100.0 * a_after as f64 / both,
        100.0 * b_after as f64 / both
    );
    println!(
        "provider calls: {} in {:.0} s ({:.2}/s), {doubled} handed over twice",
        calls.len(),
        seconds,
        calls.len() as f64 / seconds as f64
    );
    if first_b.is_none() || undelivered > 0 || doubled > 0 {
        eprintln!("campaign-fairness: failed ({undelivered} transactional undelivered, {doubled} doubled)");
        std::process::exit(1);
    }
}

/// When a reply's request was made (it just arrived): the wait counts the acceptance too.
fn reply_time(reply: &inproc::Reply) -> Instant {
    Instant::now() - reply.elapsed
}
