//! `feedback-order [NOTIFICATIONS] [EMAILS]`: delivery feedback is order-independent and applied
//! at most once, end to end.
//!
//! EMAILS sent emails (default 10,000; a contact each, half of them in one of 10 campaigns, 10 %
//! untracked) receive NOTIFICATIONS SES-shaped notification bodies (default 100,000): per email a
//! Send, usually a Delivery, opens and clicks, sometimes a delivery delay, a transient or
//! permanent bounce, a complaint or a reject, and 10 % of the total are exact duplicates of other
//! notifications. Two fresh embedded SQLite stores (files, WAL) get the same emails:
//!
//! - *in order*: the distinct notifications in time order, one at a time;
//! - *shuffled*: every notification including the duplicates, shuffled (fixed seed), handled by 4
//!   concurrent workers, so notifications of one email race for its record.
//!
//! Both go through the real `FeedbackWorker::handle` (parse, transaction with the dedupe marker,
//! contact effect). Then every email record, suppression, contact subscription, the number of
//! `contact.unsubscribed` events per contact, every campaign counter and the number of stored
//! events per name are compared; any difference is a mismatch (exit 1). Throughput is printed.

// The deployed binaries' allocator.
use plunk_bench as _;
use plunk_domain::contact::DataChange;
use plunk_domain::email_record::{EmailRecord, EmailStatus, SourceType};
use plunk_domain::event::SubscriptionSource;
use plunk_domain::feedback::notification::{eventbridge_body, Notification};
use plunk_domain::feedback::{BounceType, CampaignCounter, FeedbackKind};
use plunk_domain::{EmailAddress, Timestamp};
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::keys;
use plunk_store::table::{Index, Query};
use plunk_store::Store;
use plunk_worker::feedback::{FeedbackWorker, Handled};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

const CONCURRENCY: usize = 4;
const CAMPAIGNS: u128 = 10;
/// 2026-03-01T09:30:00Z.
const BASE_MS: i64 = 1_772_357_400_000;

/// One email as both stores hold it before feedback (its contact is made per store).
struct Seed {
    record: EmailRecord,
}

/// A notification: its email and its place in time.
#[derive(Clone)]
struct Note {
    email: usize,
    at: i64,
    kind: FeedbackKind,
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms).expect("in range")
}

/// The distinct notifications of email `i`, sent at `sent`.
fn notes_of(rng: &mut StdRng, i: usize, sent: i64) -> Vec<Note> {
    let mut out = vec![Note {
        email: i,
        at: sent,
        kind: FeedbackKind::Send,
    }];
    let mut t = sent;
    let mut next = |rng: &mut StdRng| {
        t += rng.gen_range(1_000..60_000);
        t
    };
    let hard_end = rng.gen_range(0..100);
    if hard_end < 2 {
        out.push(Note {
            email: i,
            at: sent,
            kind: FeedbackKind::Reject {
                reason: "Bad content".into(),
            },
        });
        return out;
    }
    if rng.gen_bool(0.05) {
        let at = next(rng);
        out.push(Note {
            email: i,
            at,
            kind: FeedbackKind::DeliveryDelay {
                delay_type: "TransientCommunicationFailure".into(),
                expiration_time: Some(ts(at + 86_400_000)),
            },
        });
    }
    if rng.gen_bool(0.05) {
        let at = next(rng);
        out.push(Note {
            email: i,
            at,
            kind: FeedbackKind::Bounce {
                bounce_type: BounceType::Transient,
                sub_type: "MailboxFull".into(),
            },
        });
    }
    if hard_end < 7 {
        let at = next(rng);
        out.push(Note {
            email: i,
            at,
            kind: FeedbackKind::Bounce {
                bounce_type: BounceType::Permanent,
                sub_type: "General".into(),
            },
        });
        return out;
    }
    let at = next(rng);
    out.push(Note {
        email: i,
        at,
        kind: FeedbackKind::Delivery,
    });
    for _ in 0..rng.gen_range(0..4) {
        let at = next(rng);
        out.push(Note {
            email: i,
            at,
            kind: FeedbackKind::Open,
        });
    }
    for _ in 0..rng.gen_range(0..3) {
        let at = next(rng);
        let link = ["https://acme.io/a", "https://acme.io/b"][rng.gen_range(0..2)];
        out.push(Note {
            email: i,
            at,
            kind: FeedbackKind::Click { link: link.into() },
        });
    }
    if hard_end < 9 {
        let at = next(rng);
        out.push(Note {
            email: i,
            at,
            kind: FeedbackKind::Complaint {
                feedback_type: Some("abuse".into()),
            },
        });
    }
    out
}

fn body(project: Uuid, seeds: &[Seed], n: &Note) -> String {
    let r = &seeds[n.email].record;
    eventbridge_body(&Notification {
        kind: &n.kind,
        message_id: r.message_id.as_deref().unwrap_or_default(),
        email_id: r.id,
        project_id: project,
        from: &r.from,
        to: &r.to,
        subject: &r.subject,
        sent_at: r.sent_at.unwrap_or(r.created_at),
        at: ts(n.at),
    })
}

/// A fresh store in `dir` with one project; the same emails and contacts (same ids) in it.
async fn fresh_store(dir: &std::path::Path, name: &str, seeds: &[Seed], project: Uuid) -> Store {
    let store = Store::sqlite(SqliteTable::open(&dir.join(format!("{name}.db"))).expect("sqlite"));
    for s in seeds {
        let email = EmailAddress::parse(&s.record.to).expect("address");
        let contact = store
            .contacts()
            .upsert(
                project,
                &email,
                Some(true),
                &DataChange::default(),
                SubscriptionSource::Api,
            )
            .await
            .expect("contact")
            .contact;
        let mut record = s.record.clone();
        record.contact_id = Some(contact.id);
        store
            .emails()
            .accept(project, &record, None)
            .await
            .expect("email");
    }
    store
}

#[derive(Default)]
struct Tally {
    applied: AtomicUsize,
    duplicate: AtomicUsize,
    unchanged: AtomicUsize,
    other: AtomicUsize,
    failed: AtomicUsize,
}

impl Tally {
    fn count(&self, h: &Result<Handled, plunk_worker::feedback::FeedbackError>) {
        let c = match h {
            Ok(Handled::Applied { .. }) => &self.applied,
            Ok(Handled::Duplicate { .. }) => &self.duplicate,
            Ok(Handled::Unchanged { .. }) => &self.unchanged,
            Ok(_) => &self.other,
            Err(_) => &self.failed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Handles `bodies` with `concurrency` workers pulling from one shared list; returns the tally
/// and the seconds taken.
async fn run(store: &Store, bodies: Vec<String>, concurrency: usize) -> (Tally, f64) {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (bodies, next, tally) = (bodies.clone(), next.clone(), tally.clone());
        let worker = FeedbackWorker {
            store: store.clone(),
        };
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let mut result = worker.handle(body).await;
                // A failure is retried, as the queue would redeliver the message.
                for _ in 0..5 {
                    if result.is_ok() {
                        break;
                    }
                    result = worker.handle(body).await;
                }
                tally.count(&result);
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker task");
    }
    let seconds = started.elapsed().as_secs_f64();
    (Arc::try_unwrap(tally).unwrap_or_default(), seconds)
}

/// Everything compared between the runs.
#[derive(PartialEq)]
struct State {
    emails: Vec<EmailRecord>,
    suppressions: Vec<Option<(String, Option<Uuid>)>>,
    subscribed: Vec<bool>,
    unsubscribe_events: BTreeMap<Uuid, usize>,
    counters: BTreeMap<(u128, &'static str), i64>,
    events: BTreeMap<String, usize>,
}

async fn state(store: &Store, project: Uuid, seeds: &[Seed]) -> State {
    let mut emails = Vec::new();
    let mut suppressions = Vec::new();
    let mut subscribed = Vec::new();
    let mut contacts = Vec::new();
    for s in seeds {
        let mut r = store
            .emails()
            .get(project, s.record.id)
            .await
            .expect("read")
            .expect("email");
        let contact = r.contact_id.take().expect("contact");
        contacts.push(contact);
        emails.push(r);
        let address = EmailAddress::parse(&s.record.to).expect("address");
        let sup = store
            .suppressions()
            .get(project, &address)
            .await
            .expect("read");
        suppressions.push(sup.map(|x| (x.reason.as_str().to_owned(), x.email_id)));
        let c = store
            .contacts()
            .get(project, contact)
            .await
            .expect("read")
            .expect("contact");
        subscribed.push(c.subscribed);
    }
    let mut counters = BTreeMap::new();
    for c in 1..=CAMPAIGNS {
        for counter in CampaignCounter::ALL {
            let item = store
                .table()
                .get(&keys::campaign_counter(
                    project,
                    Uuid::from_u128(c),
                    counter.as_str(),
                ))
                .await
                .expect("read");
            counters.insert(
                (c, counter.as_str()),
                item.and_then(|i| i.counter).unwrap_or(0),
            );
        }
    }
    let mut events: BTreeMap<String, usize> = BTreeMap::new();
    let mut unsubscribe_by_contact: BTreeMap<Uuid, usize> = BTreeMap::new();
    let mut query = Query::new(Index::Primary, keys::events_partition(project));
    query.limit = 1000;
    loop {
        let page = store.table().query(query.clone()).await.expect("events");
        for item in &page.items {
            let name = item.body["name"].as_str().unwrap_or_default().to_owned();
            if name == "contact.unsubscribed" {
                if let Some(contact) = item.body["contactId"]
                    .as_str()
                    .and_then(|c| c.parse::<Uuid>().ok())
                {
                    *unsubscribe_by_contact.entry(contact).or_default() += 1;
                }
            }
            *events.entry(name).or_default() += 1;
        }
        match page.last {
            Some(last) => query.start_after = Some(last),
            None => break,
        }
    }
    // Contact ids differ between the stores: compare per email, in seed order.
    let mut unsubscribe_events = BTreeMap::new();
    for (i, contact) in contacts.iter().enumerate() {
        let n = unsubscribe_by_contact.get(contact).copied().unwrap_or(0);
        if n > 0 {
            unsubscribe_events.insert(Uuid::from_u128(i as u128), n);
        }
    }
    State {
        emails,
        suppressions,
        subscribed,
        unsubscribe_events,
        counters,
        events,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let total = args.first().copied().unwrap_or(100_000);
    let email_count = args.get(1).copied().unwrap_or(10_000).max(1);
    let duplicates = total / 10;
    let mut rng = StdRng::seed_from_u64(0x5e5_f33d);

    // The feedback worker needs no project item, only the id the notifications carry.
    let project = Uuid::now_v7();
    let mut seeds = Vec::with_capacity(email_count);
    for i in 0..email_count {
        let sent = BASE_MS + (i as i64) * 37;
        let id = Uuid::now_v7();
        seeds.push(Seed {
            record: EmailRecord {
                id,
                contact_id: None,
                to: format!("user{i}@example.org"),
                to_name: None,
                from: "news@acme.io".into(),
                from_name: "Acme".into(),
                reply_to: None,
                subject: "News".into(),
                source_type: SourceType::Campaign,
                template_id: None,
                campaign_id: (i % 2 == 0).then(|| Uuid::from_u128(1 + (i as u128 / 2) % CAMPAIGNS)),
                workflow_id: None,
                workflow_execution_id: None,
                marketing: true,
                tracking: i % 10 != 3,
                test: false,
                status: EmailStatus::Sent,
                error: None,
                attempts: 1,
                message_id: Some(format!("0100-bench-{id}")),
                opens: 0,
                clicks: 0,
                bounce_type: None,
                bounce_sub_type: None,
                queued_at: Some(ts(sent - 500)),
                sending_at: Some(ts(sent - 100)),
                sent_at: Some(ts(sent)),
                delivered_at: None,
                opened_at: None,
                clicked_at: None,
                bounced_at: None,
                complained_at: None,
                delayed_at: None,
                failed_at: None,
                suppressed_at: None,
                created_at: ts(sent - 500),
                updated_at: ts(sent),
            },
        });
    }

    // Distinct notifications until `total - duplicates`, spread over the emails.
    let distinct_target = total - duplicates;
    let mut distinct: Vec<Note> = Vec::with_capacity(distinct_target + 16);
    let mut delivered = vec![false; email_count];
    let mut i = 0;
    while distinct.len() < distinct_target {
        let e = i % email_count;
        let sent = seeds[e]
            .record
            .sent_at
            .map(|t| t.unix_millis())
            .unwrap_or(BASE_MS);
        let mut notes = notes_of(&mut rng, e, sent);
        if i < email_count {
            delivered[e] = notes.iter().any(|n| n.kind == FeedbackKind::Delivery);
        } else {
            // Later rounds add opens and clicks, hours later, to delivered emails only (a
            // rejected or bounced message is never opened).
            notes.retain(|n| {
                delivered[e] && matches!(n.kind, FeedbackKind::Open | FeedbackKind::Click { .. })
            });
            for n in &mut notes {
                n.at += (i / email_count) as i64 * 3_600_000;
            }
        }
        distinct.extend(notes);
        i += 1;
    }
    distinct.truncate(distinct_target);

    let dir = tempfile::tempdir().expect("temp dir");
    eprintln!("feedback-order: seeding two stores with {email_count} emails and contacts");
    let ordered_store = fresh_store(dir.path(), "in-order", &seeds, project).await;
    let shuffled_store = fresh_store(dir.path(), "shuffled", &seeds, project).await;

    let mut in_order = distinct.clone();
    in_order.sort_by_key(|n| (n.at, n.email));
    let ordered_bodies: Vec<String> = in_order.iter().map(|n| body(project, &seeds, n)).collect();
    // A duplicate is the same SES event in a new envelope (another EventBridge id).
    let mut all: Vec<String> = distinct.iter().map(|n| body(project, &seeds, n)).collect();
    for _ in 0..duplicates {
        let n = &distinct[rng.gen_range(0..distinct.len())];
        all.push(body(project, &seeds, n));
    }
    all.shuffle(&mut rng);

    println!(
        "feedback-order: {} notifications ({} distinct, {duplicates} duplicates) over {email_count} emails",
        all.len(),
        distinct.len()
    );
    let (ordered, ordered_s) = run(&ordered_store, ordered_bodies, 1).await;
    let (shuffled, shuffled_s) = run(&shuffled_store, all, CONCURRENCY).await;

    println!(
        "{:<26} {:>13} {:>8} {:>9} {:>9} {:>6} {:>6} {:>8} {:>10}",
        "run",
        "notifications",
        "applied",
        "duplicate",
        "unchanged",
        "other",
        "failed",
        "seconds",
        "per second"
    );
    for (name, t, s) in [
        ("in order, 1 worker", &ordered, ordered_s),
        ("shuffled + dupes, 4 workers", &shuffled, shuffled_s),
    ] {
        let n = t.applied.load(Ordering::Relaxed)
            + t.duplicate.load(Ordering::Relaxed)
            + t.unchanged.load(Ordering::Relaxed)
            + t.other.load(Ordering::Relaxed)
            + t.failed.load(Ordering::Relaxed);
        println!(
            "{:<26} {:>13} {:>8} {:>9} {:>9} {:>6} {:>6} {:>8.1} {:>10.0}",
            name,
            n,
            t.applied.load(Ordering::Relaxed),
            t.duplicate.load(Ordering::Relaxed),
            t.unchanged.load(Ordering::Relaxed),
            t.other.load(Ordering::Relaxed),
            t.failed.load(Ordering::Relaxed),
            s,
            n as f64 / s.max(f64::MIN_POSITIVE)
        );
    }

    let a = state(&ordered_store, project, &seeds).await;
    let b = state(&shuffled_store, project, &seeds).await;
    let email_mismatches = a
        .emails
        .iter()
        .zip(&b.emails)
        .filter(|(x, y)| x != y)
        .count();
    let suppression_mismatches = a
        .suppressions
        .iter()
        .zip(&b.suppressions)
        .filter(|(x, y)| x != y)
        .count();
    let contact_mismatches = a
        .subscribed
        .iter()
        .zip(&b.subscribed)
        .filter(|(x, y)| x != y)
        .count();
    let twice = b.unsubscribe_events.values().filter(|n| **n > 1).count();
    let unsubscribe_mismatches = usize::from(a.unsubscribe_events != b.unsubscribe_events) + twice;
    let counter_mismatches = a
        .counters
        .iter()
        .filter(|(k, v)| b.counters.get(k) != Some(v))
        .count();
    let event_mismatches = a
        .events
        .iter()
        .filter(|(k, v)| b.events.get(*k) != Some(v))
        .count()
        + b.events
            .keys()
            .filter(|k| !a.events.contains_key(*k))
            .count();
    for (name, n) in &a.events {
        if b.events.get(name) != Some(n) {
            println!("  {name}: in order {n}, shuffled {:?}", b.events.get(name));
        }
    }
    let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &b.emails {
        *statuses.entry(e.status.as_str()).or_default() += 1;
    }
    println!(
        "final email status: {}",
        statuses
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "suppressed {}, contacts unsubscribed {}, contact.unsubscribed events {}, stored events {}",
        b.suppressions.iter().filter(|s| s.is_some()).count(),
        b.subscribed.iter().filter(|s| !**s).count(),
        b.unsubscribe_events.values().sum::<usize>(),
        b.events.values().sum::<usize>(),
    );
    println!(
        "mismatches vs in order: emails {email_mismatches}, suppressions {suppression_mismatches}, \
         contacts {contact_mismatches}, unsubscribe events {unsubscribe_mismatches}, \
         campaign counters {counter_mismatches}, event counts {event_mismatches}"
    );
    let mismatches = email_mismatches
        + suppression_mismatches
        + contact_mismatches
        + unsubscribe_mismatches
        + counter_mismatches
        + event_mismatches
        + shuffled.failed.load(Ordering::Relaxed)
        + ordered.failed.load(Ordering::Relaxed);
    let total_handled = b.emails.len();
    println!(
        "RESULT feedback-order notifications={} emails={total_handled} mismatches={mismatches} in_order_per_s={:.0} shuffled_per_s={:.0}",
        total,
        (distinct.len()) as f64 / ordered_s.max(f64::MIN_POSITIVE),
        total as f64 / shuffled_s.max(f64::MIN_POSITIVE),
    );
    if mismatches > 0 {
        eprintln!("feedback-order: {mismatches} mismatches");
        std::process::exit(1);
    }
}
