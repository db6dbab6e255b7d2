//! `webhook-isolation [SECONDS]`: one project's hanging webhook receiver beside another
//! project's healthy one.
//!
//! Two runs of SECONDS each (default 60, `BENCH_WEBHOOK_SECONDS`), on the embedded store and queue
//! with the local webhook loop (`plunk_worker::webhooks::run`, the default 15 s attempt timeout):
//! project B queues 20 deliveries a second to a receiver that answers at once. In the second run,
//! project A first queues 100 deliveries and then 10 a second to a receiver that accepts each
//! connection and answers nothing for 60 s. Printed: B's delivery latency (queued → received)
//! p50/p99/max in both runs, how many of A's attempts were in flight at most, and how many of B's
//! deliveries arrived. Exits 1 when a B delivery never arrives.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use plunk_bench::stats::percentile;
use plunk_domain::Timestamp;
use plunk_messaging::queue::embedded::{EmbeddedQueue, RedrivePolicy};
use plunk_messaging::queue::Queue;
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::repo::webhooks::{SigningSecret, Webhook};
use plunk_store::Store;
use plunk_webhooks::{AttemptPolicy, WebhookSecret};
use plunk_worker::webhooks::{enqueue, new_delivery, WebhookJob, WebhookWorker};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    Timestamp::now().unix_millis()
}

/// A receiver that answers 204 and records each delivery's latency (the payload carries the time
/// it was queued).
async fn healthy_receiver() -> (SocketAddr, Arc<Mutex<Vec<i64>>>) {
    let latencies: Arc<Mutex<Vec<i64>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            post(
                |State(l): State<Arc<Mutex<Vec<i64>>>>, body: Bytes| async move {
                    let queued = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["queuedAt"].as_i64());
                    if let Some(queued) = queued {
                        l.lock().unwrap().push(now_ms() - queued);
                    }
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(latencies.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, latencies)
}

/// A receiver that reads each request and answers nothing for 60 s (or until the client closes);
/// returns the most connections open at once, i.e. attempts in flight.
async fn hanging_receiver() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let m = most.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (open, most) = (open.clone(), m.clone());
            tokio::spawn(async move {
                most.fetch_max(open.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                // Read until the client gives up (closes) or 60 s pass; never answer.
                let mut buf = vec![0u8; 64 * 1024];
                let _ = tokio::time::timeout(Duration::from_secs(60), async {
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                })
                .await;
                let _ = socket.shutdown().await;
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, most)
}

async fn webhook(store: &Store, project: Uuid, addr: SocketAddr) -> Uuid {
    let now = Timestamp::now();
    let hook = Webhook {
        id: Uuid::now_v7(),
        url: format!("http://{addr}/hook"),
        description: None,
        events: vec!["*".into()],
        enabled: true,
        secrets: vec![SigningSecret {
            secret: WebhookSecret::generate().expose().to_owned(),
            expires_at: None,
        }],
        created_at: now,
        updated_at: now,
    };
    store.webhooks().create(project, &hook).await.unwrap();
    hook.id
}

async fn queue_one(store: &Store, queue: &dyn Queue, project: Uuid, hook: Uuid) {
    let payload = serde_json::json!({ "queuedAt": now_ms() }).to_string();
    let delivery = new_delivery(
        hook,
        Uuid::now_v7(),
        "order.placed",
        Timestamp::now(),
        payload.into_bytes(),
    );
    store
        .webhooks()
        .create_delivery(project, &delivery)
        .await
        .unwrap();
    let job = WebhookJob {
        project_id: project,
        webhook_id: hook,
        delivery_id: delivery.id,
        attempt: 0,
        one_off: false,
        waits: 0,
    };
    enqueue(queue, job, Duration::ZERO).await.unwrap();
}

/// One run: B's latencies, how many B deliveries were queued, and A's most attempts in flight.
async fn run(seconds: u64, hanging: bool) -> (Vec<i64>, usize, usize) {
    let store = Store::new(Arc::new(SqliteTable::in_memory().unwrap()));
    let redrive = RedrivePolicy {
        dead_letter_queue: "webhooks-dlq".into(),
        max_receive_count: 10,
    };
    let queue: Arc<dyn Queue> = Arc::new(EmbeddedQueue::in_memory("webhooks", redrive).unwrap());
    let (healthy_addr, latencies) = healthy_receiver().await;
    let (b, a) = (Uuid::now_v7(), Uuid::now_v7());
    let b_hook = webhook(&store, b, healthy_addr).await;
    let mut a_in_flight = None;
    let mut a_hook = None;
    if hanging {
        let (addr, most) = hanging_receiver().await;
        let hook = webhook(&store, a, addr).await;
        for _ in 0..100 {
            queue_one(&store, queue.as_ref(), a, hook).await;
        }
        a_in_flight = Some(most);
        a_hook = Some(hook);
    }
    let worker = WebhookWorker {
        store: store.clone(),
        queue: queue.clone(),
        policy: AttemptPolicy {
            allow_private: true,
            ..AttemptPolicy::default()
        },
        secrets: Arc::new(plunk_webhooks::SecretBox::ephemeral()),
    };
    let loop_task = tokio::spawn(plunk_worker::webhooks::run(worker));

    let started = Instant::now();
    let mut queued = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut ticks = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        ticks += 1;
        queue_one(&store, queue.as_ref(), b, b_hook).await;
        queued += 1;
        if let Some(hook) = a_hook.filter(|_| ticks.is_multiple_of(2)) {
            queue_one(&store, queue.as_ref(), a, hook).await;
        }
    }
    // Let the last ones arrive.
    let drain = Instant::now();
    while latencies.lock().unwrap().len() < queued && drain.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop_task.abort();
    let mut l = latencies.lock().unwrap().clone();
    l.sort_unstable();
    let most = a_in_flight.map_or(0, |m| m.load(Ordering::SeqCst));
    (l, queued, most)
}

fn line(name: &str, l: &[i64], queued: usize) -> String {
    format!(
        "{name}: p50 {} ms, p99 {} ms, max {} ms, {}/{} delivered",
        percentile(l, 50.0),
        percentile(l, 99.0),
        l.last().copied().unwrap_or(0),
        l.len(),
        queued
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("BENCH_WEBHOOK_SECONDS").ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let (alone, alone_queued, _) = run(seconds, false).await;
    let (beside, beside_queued, most) = run(seconds, true).await;
    println!("webhook isolation: {seconds} s per run, project B 20 deliveries/s");
    println!("  {}", line("alone", &alone, alone_queued));
    println!(
        "  {}",
        line("beside a hanging receiver", &beside, beside_queued)
    );
    println!(
        "  hanging receiver: at most {most} attempts in flight (bound {})",
        plunk_worker::webhooks::ATTEMPTS_PER_WEBHOOK
    );
    if alone.len() < alone_queued || beside.len() < beside_queued {
        eprintln!("a delivery of the healthy project never arrived");
        std::process::exit(1);
    }
}
