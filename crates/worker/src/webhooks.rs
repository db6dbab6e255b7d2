//! Outgoing webhook deliveries: fan-out, attempts, retries.
//!
//! - [`fan_out`]: called by the event dispatcher for each batch of new events; creates one
//!   delivery per (enabled webhook, matching event), id derived from the pair so a repeated event
//!   creates nothing twice, and queues it.
//! - [`WebhookWorker`]: one queued attempt. A message names the delivery and the attempt number it
//!   expects, so duplicates and stale messages do nothing. Retries follow the schedule with
//!   jitter; waits longer than a queue delay (15 minutes) hop through the queue until due.

use plunk_domain::event::Event;
use plunk_domain::Timestamp;
use plunk_messaging::queue::{Queue, QueueError};
use plunk_store::repo::webhooks::{delivery_id, Delivery, DeliveryStatus, Webhook};
use plunk_store::table::StoreError;
use plunk_store::Store;
use plunk_webhooks::{
    attempt, AttemptOutcome, AttemptPolicy, AttemptRequest, SecretBox, WebhookSecret,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The embedded webhook queue's name in `queues.db`, and its dead-letter queue.
pub const EMBEDDED_QUEUE: &str = "webhooks";
const EMBEDDED_DEAD_LETTER_QUEUE: &str = "webhooks-dlq";

/// The embedded webhook queue in the SQLite file `path` (the local server's `queues.db`).
pub fn embedded_queue(path: &std::path::Path) -> Result<Arc<dyn Queue>, QueueError> {
    let redrive = plunk_messaging::queue::embedded::RedrivePolicy {
        dead_letter_queue: EMBEDDED_DEAD_LETTER_QUEUE.into(),
        max_receive_count: 10,
    };
    Ok(Arc::new(
        plunk_messaging::queue::embedded::EmbeddedQueue::open(path, EMBEDDED_QUEUE, redrive)?,
    ))
}

/// Attempts to one webhook in flight at once, across every process.
pub const ATTEMPTS_PER_WEBHOOK: u32 = 8;
/// How long a job waits when its webhook has no free slot the first time; each further time the
/// wait doubles up to [`SLOT_WAIT_MAX`], with up to half of it added as jitter. A burst to a
/// healthy webhook waits a few hundred milliseconds; jobs of a receiver that hangs settle at the
/// maximum, so they cost few queue messages while they wait.
const SLOT_WAIT: Duration = Duration::from_millis(250);
const SLOT_WAIT_MAX: Duration = Duration::from_secs(10);
/// A slot's lease outlives the attempt's timeout by this much (a holder that died frees it then).
const SLOT_LEASE_MARGIN_SECONDS: i64 = 15;

/// The longest delay a queue message can carry.
const MAX_QUEUE_DELAY: Duration = Duration::from_secs(15 * 60);

/// What a webhook-queue message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookJob {
    pub project_id: Uuid,
    pub webhook_id: Uuid,
    pub delivery_id: Uuid,
    /// The delivery's `attempts` when this message was queued; anything else means stale.
    pub attempt: u32,
    /// A manual retry of a delivery that had already ended (`FAILED`): one attempt only, after
    /// which a failure ends it again instead of resuming the schedule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_off: bool,
    /// How many times this job found every slot of its webhook taken (its next wait doubles).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waits: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Failures that make the message come back later.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Queues `job` after `delay` (capped at the queue's maximum; the worker re-queues the rest).
pub async fn enqueue(
    queue: &dyn Queue,
    job: WebhookJob,
    delay: Duration,
) -> Result<(), QueueError> {
    let body = serde_json::to_string(&job).expect("jobs serialise");
    queue.send(&body, delay.min(MAX_QUEUE_DELAY)).await
}

/// A new pending delivery of `payload` for `event_id` (`event_type`) to `webhook`.
pub fn new_delivery(
    webhook: Uuid,
    event_id: Uuid,
    event_type: &str,
    at: Timestamp,
    payload: Vec<u8>,
) -> Delivery {
    let now = Timestamp::now();
    Delivery {
        id: delivery_id(webhook, event_id, at),
        webhook_id: webhook,
        event_id,
        event_type: event_type.to_owned(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: Some(now),
        last_attempt_at: None,
        response_status: None,
        response_body: None,
        error: None,
        duration_ms: None,
        created_at: now,
        payload: String::from_utf8_lossy(&payload).into_owned(),
    }
}

/// Creates and queues the deliveries of `events` (one project's) to its matching enabled
/// webhooks.
pub async fn fan_out(
    store: &Store,
    queue: &dyn Queue,
    project: Uuid,
    events: &[Event],
) -> Result<usize, WebhookError> {
    let webhooks: Vec<Webhook> = store
        .webhooks()
        .all(project)
        .await?
        .into_iter()
        .filter(|w| w.enabled)
        .collect();
    if webhooks.is_empty() {
        return Ok(0);
    }
    let mut queued = 0;
    for event in events {
        for webhook in webhooks
            .iter()
            .filter(|w| plunk_webhooks::patterns::matches(&w.events, &event.name))
        {
            let payload =
                plunk_webhooks::payload::event_body(event, event.contact_email.as_deref());
            let delivery =
                new_delivery(webhook.id, event.id, &event.name, event.created_at, payload);
            // Already there: the feed repeated this event. If its first attempt was never
            // queued (the queue failed after the delivery was stored), queue it now; a job that
            // turns out to be a duplicate does nothing.
            if !store.webhooks().create_delivery(project, &delivery).await? {
                let existing = store
                    .webhooks()
                    .get_delivery(project, webhook.id, delivery.id)
                    .await?;
                let unattempted = existing
                    .is_some_and(|(d, _)| d.status == DeliveryStatus::Pending && d.attempts == 0);
                if !unattempted {
                    continue;
                }
            }
            let job = WebhookJob {
                project_id: project,
                webhook_id: webhook.id,
                delivery_id: delivery.id,
                attempt: 0,
                one_off: false,
                waits: 0,
            };
            enqueue(queue, job, Duration::ZERO).await?;
            queued += 1;
        }
    }
    Ok(queued)
}

/// Makes delivery attempts.
#[derive(Clone)]
pub struct WebhookWorker {
    pub store: Store,
    pub queue: Arc<dyn Queue>,
    pub policy: AttemptPolicy,
    /// Opens the stored signing secrets (the deployment's data key).
    pub secrets: Arc<SecretBox>,
}

impl WebhookWorker {
    /// Handles one message body. `Ok` means the message is done (delete it).
    pub async fn process(&self, body: &str) -> Result<(), WebhookError> {
        let job: WebhookJob = match serde_json::from_str(body) {
            Ok(job) => job,
            Err(e) => {
                tracing::error!(error = %e, "unreadable webhook job dropped");
                return Ok(());
            }
        };
        let webhooks = self.store.webhooks();
        let Some((mut delivery, version)) = webhooks
            .get_delivery(job.project_id, job.webhook_id, job.delivery_id)
            .await?
        else {
            return Ok(());
        };
        if delivery.status != DeliveryStatus::Pending || delivery.attempts != job.attempt {
            return Ok(());
        }
        let now = Timestamp::now();
        if let Some(due) = delivery.next_attempt_at {
            let wait = due.unix_millis() - now.unix_millis();
            if wait > 0 {
                enqueue(self.queue.as_ref(), job, Duration::from_millis(wait as u64)).await?;
                return Ok(());
            }
        }
        let webhook = webhooks.get(job.project_id, job.webhook_id).await?;
        let Some((webhook, webhook_version)) = webhook.filter(|(w, _)| w.enabled) else {
            // Disabling or deleting a webhook stops its pending deliveries.
            delivery.status = DeliveryStatus::Failed;
            delivery.next_attempt_at = None;
            delivery.error = Some("webhook_disabled".into());
            return self.save(job, &delivery, version).await;
        };
        let webhook_id = webhook.id.to_string();
        let secrets: Vec<WebhookSecret> = webhook
            .active_secrets(now)
            .into_iter()
            .filter_map(|stored| match self.secrets.open(&webhook_id, stored) {
                Ok(plain) => WebhookSecret::parse(&plain).ok(),
                Err(e) => {
                    tracing::error!(webhook = %webhook.id, error = %e, "a webhook secret does not open");
                    None
                }
            })
            .collect();
        let request = AttemptRequest {
            url: webhook.url.clone(),
            webhook_id: delivery.event_id.to_string(),
            body: delivery.payload.clone().into_bytes(),
            secrets,
        };
        // At most ATTEMPTS_PER_WEBHOOK attempts to one webhook at a time, across every process:
        // a receiver that hangs holds its own slots, never every worker. Over the bound the job
        // waits a moment in the queue, unchanged.
        let lease = self.policy.timeout.as_secs() as i64 + SLOT_LEASE_MARGIN_SECONDS;
        let Some(slot) = webhooks
            .take_attempt_slot(job.project_id, job.webhook_id, ATTEMPTS_PER_WEBHOOK, lease)
            .await?
        else {
            let wait = SLOT_WAIT
                .saturating_mul(1 << job.waits.min(8))
                .min(SLOT_WAIT_MAX);
            let jitter =
                Duration::from_millis(rand::random::<u64>() % (wait.as_millis() as u64 / 2 + 1));
            let next = WebhookJob {
                waits: job.waits.saturating_add(1),
                ..job
            };
            enqueue(self.queue.as_ref(), next, wait + jitter).await?;
            return Ok(());
        };
        // Never sent unsigned: without a secret that opens, the attempt fails without a request.
        let outcome = if request.secrets.is_empty() {
            AttemptOutcome {
                success: false,
                status: None,
                body: None,
                duration_ms: 0,
                error: Some("signing_secret_unreadable".into()),
                gone: false,
            }
        } else {
            attempt(&request, &self.policy).await
        };
        if let Err(e) = webhooks.release_attempt_slot(slot).await {
            // Its lease runs out by itself.
            tracing::warn!(error = %e, "could not release a webhook attempt slot");
        }
        let finished = Timestamp::now();
        delivery.attempts += 1;
        delivery.last_attempt_at = Some(finished);
        delivery.response_status = outcome.status;
        delivery.response_body = outcome.body;
        delivery.error = outcome.error;
        delivery.duration_ms = Some(outcome.duration_ms);
        if outcome.success {
            delivery.status = DeliveryStatus::Succeeded;
            delivery.next_attempt_at = None;
        } else if outcome.gone {
            // 410 Gone: the receiver asks us to stop for good.
            delivery.status = DeliveryStatus::Failed;
            delivery.next_attempt_at = None;
            self.disable(job, webhook.clone(), webhook_version, finished)
                .await?;
        } else if job.one_off {
            // A manual retry of an ended delivery was its one extra attempt.
            delivery.status = DeliveryStatus::Failed;
            delivery.next_attempt_at = None;
        } else {
            let next_delay =
                plunk_webhooks::schedule::next_delay(delivery.attempts, &mut rand::thread_rng());
            match next_delay {
                Some(delay) => {
                    let due = finished.unix_millis() + delay.as_millis() as i64;
                    delivery.next_attempt_at = Timestamp::from_millis(due);
                    // Queued before the record is saved: if saving fails, this message is
                    // stale and dropped, and the current one comes back for the same attempt.
                    let next = WebhookJob {
                        attempt: delivery.attempts,
                        one_off: false,
                        waits: 0,
                        ..job
                    };
                    enqueue(self.queue.as_ref(), next, delay).await?;
                }
                None => {
                    delivery.status = DeliveryStatus::Failed;
                    delivery.next_attempt_at = None;
                }
            }
        }
        self.save(job, &delivery, version).await
    }

    /// Disables a webhook after a 410, re-reading it when it changed meanwhile.
    async fn disable(
        &self,
        job: WebhookJob,
        mut webhook: Webhook,
        mut version: u64,
        at: Timestamp,
    ) -> Result<(), WebhookError> {
        let webhooks = self.store.webhooks();
        for _ in 0..5 {
            webhook.enabled = false;
            webhook.updated_at = at;
            match webhooks.save(job.project_id, &webhook, version).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_condition_failed() => {
                    match webhooks.get(job.project_id, job.webhook_id).await? {
                        Some((current, v)) => (webhook, version) = (current, v),
                        None => return Ok(()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Unavailable("the webhook changed concurrently too often".into()).into())
    }

    async fn save(
        &self,
        job: WebhookJob,
        delivery: &Delivery,
        version: u64,
    ) -> Result<(), WebhookError> {
        match self
            .store
            .webhooks()
            .save_delivery(job.project_id, delivery, version)
            .await
        {
            // Someone else moved this delivery on (a manual retry, a duplicate message).
            Err(e) if e.is_condition_failed() => Ok(()),
            other => other.map_err(Into::into),
        }
    }
}

/// How long a received webhook message stays hidden: longer than one attempt can take.
pub const VISIBILITY: Duration = Duration::from_secs(60);

/// Attempts the local loop runs at once, over every webhook.
pub const LOCAL_ATTEMPTS_IN_FLIGHT: usize = 32;

/// The local loop over the embedded webhook queue: up to [`LOCAL_ATTEMPTS_IN_FLIGHT`] attempts at
/// once, each started as soon as a place frees up. There are no rounds: a slow attempt holds only
/// its own place, never the next messages.
pub async fn run(worker: WebhookWorker) {
    let places = Arc::new(tokio::sync::Semaphore::new(LOCAL_ATTEMPTS_IN_FLIGHT));
    loop {
        // Wait for at least one free place before receiving.
        match places.clone().acquire_owned().await {
            Ok(place) => drop(place),
            Err(_) => return,
        }
        let free = places.available_permits().clamp(1, 10);
        let messages = match worker.queue.receive(free, VISIBILITY, Duration::ZERO).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "webhook queue receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        for m in messages {
            let Ok(place) = places.clone().acquire_owned().await else {
                return;
            };
            let worker = worker.clone();
            tokio::spawn(async move {
                match worker.process(&m.body).await {
                    Ok(()) => {
                        if let Err(e) = worker.queue.delete(&m.receipt).await {
                            tracing::warn!(error = %e, "webhook queue delete failed");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "webhook delivery will be retried"),
                }
                drop(place);
            });
        }
    }
}
