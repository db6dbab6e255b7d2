//! One project's hanging webhook receiver neither holds back another project's deliveries nor
//! takes more than its share of attempts: the local loop has no rounds, and attempts to one
//! webhook are bounded by shared slots.

use plunk_domain::Timestamp;
use plunk_messaging::queue::embedded::{EmbeddedQueue, RedrivePolicy};
use plunk_messaging::queue::Queue;
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::repo::webhooks::{DeliveryStatus, SigningSecret, Webhook};
use plunk_store::Store;
use plunk_webhooks::{AttemptPolicy, WebhookSecret};
use plunk_worker::webhooks::{
    enqueue, new_delivery, WebhookJob, WebhookWorker, ATTEMPTS_PER_WEBHOOK,
};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// Connections a receiver holds now, the most it held at once, and requests answered.
#[derive(Default)]
struct Counts {
    open: AtomicUsize,
    most_open: AtomicUsize,
    answered: AtomicUsize,
}

/// A receiver on 127.0.0.1 that reads each request and then either answers 204 at once or holds
/// the connection for a minute without answering.
async fn receiver(hang: bool) -> (SocketAddr, Arc<Counts>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let c = c.clone();
            tokio::spawn(async move {
                let now = c.open.fetch_add(1, Ordering::SeqCst) + 1;
                c.most_open.fetch_max(now, Ordering::SeqCst);
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                if hang {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                } else {
                    let _ = socket
                        .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                        .await;
                    c.answered.fetch_add(1, Ordering::SeqCst);
                }
                c.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, counts)
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
    assert!(store.webhooks().create(project, &hook).await.unwrap());
    hook.id
}

/// Queues `n` deliveries to `hook`; returns their ids.
async fn queue_deliveries(
    store: &Store,
    queue: &dyn Queue,
    project: Uuid,
    hook: Uuid,
    n: usize,
) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let delivery = new_delivery(
            hook,
            Uuid::now_v7(),
            "order.placed",
            Timestamp::now(),
            b"{}".to_vec(),
        );
        assert!(store
            .webhooks()
            .create_delivery(project, &delivery)
            .await
            .unwrap());
        let job = WebhookJob {
            project_id: project,
            webhook_id: hook,
            delivery_id: delivery.id,
            attempt: 0,
            one_off: false,
            waits: 0,
        };
        enqueue(queue, job, Duration::ZERO).await.unwrap();
        ids.push(delivery.id);
    }
    ids
}

async fn statuses(store: &Store, project: Uuid, hook: Uuid, ids: &[Uuid]) -> Vec<DeliveryStatus> {
    let mut out = Vec::new();
    for id in ids {
        let (d, _) = store
            .webhooks()
            .get_delivery(project, hook, *id)
            .await
            .unwrap()
            .unwrap();
        out.push(d.status);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_of_one_project_does_not_delay_another_projects_deliveries() {
    let store = Store::new(Arc::new(SqliteTable::in_memory().unwrap()));
    let redrive = RedrivePolicy {
        dead_letter_queue: "webhooks-dlq".into(),
        max_receive_count: 10,
    };
    let queue: Arc<dyn Queue> = Arc::new(EmbeddedQueue::in_memory("webhooks", redrive).unwrap());
    let (hanging_addr, hanging) = receiver(true).await;
    let (healthy_addr, healthy) = receiver(false).await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let hanging_hook = webhook(&store, a, hanging_addr).await;
    let healthy_hook = webhook(&store, b, healthy_addr).await;

    // Project A's 20 deliveries are queued first, project B's 5 behind them.
    let a_ids = queue_deliveries(
        &store,
        queue.as_ref(),
        a,
        hanging_hook,
        std::env::var("NA")
            .map(|v| v.parse().unwrap())
            .unwrap_or(12),
    )
    .await;
    let b_ids = queue_deliveries(&store, queue.as_ref(), b, healthy_hook, 5).await;

    let worker = WebhookWorker {
        store: store.clone(),
        queue: queue.clone(),
        policy: AttemptPolicy {
            allow_private: true,
            timeout: Duration::from_secs(20),
        },
        // The secrets below are stored as created (in plain text), which the box reads as is.
        secrets: Arc::new(plunk_webhooks::SecretBox::ephemeral()),
    };
    let loop_task = tokio::spawn(plunk_worker::webhooks::run(worker));

    // B's deliveries all succeed while every attempt to A's receiver is still hanging.
    let mut waited = Duration::ZERO;
    while healthy.answered.load(Ordering::SeqCst) < 5 && waited < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    let mut b_statuses = statuses(&store, b, healthy_hook, &b_ids).await;
    for _ in 0..40 {
        if b_statuses.iter().all(|s| *s == DeliveryStatus::Succeeded) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        b_statuses = statuses(&store, b, healthy_hook, &b_ids).await;
    }
    assert_eq!(b_statuses, vec![DeliveryStatus::Succeeded; 5]);
    let a_statuses = statuses(&store, a, hanging_hook, &a_ids).await;
    assert!(
        a_statuses.iter().all(|s| *s == DeliveryStatus::Pending),
        "no attempt to the hanging receiver has ended yet: B did not wait for them"
    );
    // A's receiver holds at most its slots' worth of attempts: the rest of A's jobs wait in the
    // queue instead of taking every place of the loop.
    let most = hanging.most_open.load(Ordering::SeqCst);
    assert!(most >= 1, "A's receiver was reached");
    assert!(
        most <= ATTEMPTS_PER_WEBHOOK as usize,
        "at most {ATTEMPTS_PER_WEBHOOK} attempts at once to one webhook, saw {most}"
    );
    loop_task.abort();
}
