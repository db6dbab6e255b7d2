//! The background work of `plunk serve`: the embedded send and feedback queues, blob folder and
//! mailer, the send consumer, the feedback consumer, the event dispatcher over the store's change
//! feed, the webhook delivery loop, the workflow engine over its queue and the every-minute
//! scheduler tick, all in this process.
//!
//! The mailer (outbox or SMTP) reports Send and Delivery onto the embedded feedback queue after
//! each message, as SES does through EventBridge; `plunk simulate` adds bounces, complaints,
//! opens and clicks to the same queue.

use crate::output::Failure;
use plunk_http_kit::Settings;
use plunk_messaging::blob::folder::FolderBlobs;
use plunk_messaging::blob::BlobStore;
use plunk_messaging::mailer::emitting::FeedbackEmitting;
use plunk_messaging::mailer::outbox::OutboxMailer;
use plunk_messaging::mailer::smtp::SmtpMailer;
use plunk_messaging::mailer::Mailer;
use plunk_messaging::queue::Queue;
use plunk_messaging::send_queues::SendQueues;
use plunk_store::access::AccessProfile;
use plunk_store::Store;
use plunk_webhooks::{AttemptPolicy, SecretBox};
use plunk_worker::campaigns::fanout::FanoutSettings;
use plunk_worker::clock::SystemClock;
use plunk_worker::pacing::{Pacer, TablePace, DEFAULT_RATE};
use plunk_worker::scheduler::Scheduler;
use plunk_worker::send::{SendWorker, SenderConfig};
use plunk_worker::webhooks::WebhookWorker;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The key file of the webhook secrets' data key in the data directory.
const WEBHOOK_KEY_FILE: &str = "webhook-secrets.key";
/// Workflow timers one pass of the local loop queues at most.
const WORKFLOW_TIMER_BUDGET: usize = 10_000;
/// How often the local server works campaign fan-outs.
const FANOUT_INTERVAL: Duration = Duration::from_secs(2);

/// What the HTTP side needs from the background side.
pub struct Background {
    pub queues: SendQueues,
    /// The embedded webhook delivery queue.
    pub webhook_queue: Arc<dyn Queue>,
    pub blobs: Arc<dyn BlobStore>,
    /// Where the outbox mailer writes, when it is the mailer.
    pub outbox_dir: Option<PathBuf>,
    /// Seals and opens webhook signing secrets (the key file `webhook-secrets.key`).
    pub webhook_secrets: Arc<SecretBox>,
    /// Ends the work that must not be cut off in the middle when the server stops.
    pub shutdown: Shutdown,
    /// The embedded workflow queue.
    pub workflow_queue: Arc<dyn Queue>,
}

/// How long a stopping server waits for the event dispatcher to finish its batch.
const DISPATCH_STOP_WAIT: Duration = Duration::from_secs(10);

/// Stops the event dispatcher between two batches. The other loops are idempotent step by step
/// (a send or a delivery cut off is retried from its queue) and simply end with the process.
pub struct Shutdown {
    stop: tokio::sync::watch::Sender<bool>,
    dispatcher: Option<tokio::task::JoinHandle<()>>,
}

impl Shutdown {
    /// Asks the dispatcher to stop and waits (at most [`DISPATCH_STOP_WAIT`]) until the batch it
    /// is handling is finished and acknowledged, so the next start does not count it again.
    pub async fn run(self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.dispatcher {
            if tokio::time::timeout(DISPATCH_STOP_WAIT, task)
                .await
                .is_err()
            {
                tracing::warn!("the event dispatcher did not finish its batch in time");
            }
        }
    }
}

/// Opens the local adapters and starts the send and feedback consumers, the event dispatcher, the
/// webhook worker and the scheduler. Sent mail links to the hosted pages under `public_url`.
pub async fn start(
    store: &Store,
    data_dir: &Path,
    settings: &Settings,
    public_url: &str,
) -> Result<Background, Failure> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| Failure::store(format!("cannot create {}: {e}", data_dir.display())))?;
    let queues_db = data_dir.join("queues.db");
    let queues = SendQueues::embedded(&queues_db)
        .map_err(|e| Failure::store(format!("cannot open the send queues: {e}")))?;
    let feedback_queue = plunk_messaging::feedback_queue::embedded(&queues_db)
        .map_err(|e| Failure::store(format!("cannot open the feedback queue: {e}")))?;
    let blobs: Arc<dyn BlobStore> = Arc::new(FolderBlobs::new(data_dir.join("blobs")));
    let (mailer, outbox_dir): (Arc<dyn Mailer>, Option<PathBuf>) =
        match std::env::var("PLUNK_SMTP_URL") {
            Ok(url) if !url.is_empty() => {
                let mailer = SmtpMailer::from_url(&url)
                    .map_err(|e| Failure::usage(format!("PLUNK_SMTP_URL: {e}")))?;
                println!("Sent mail goes to the SMTP server in PLUNK_SMTP_URL");
                let emitting = FeedbackEmitting::new(mailer, feedback_queue.clone());
                (Arc::new(emitting), None)
            }
            _ => {
                let dir = data_dir.join("outbox");
                let emitting =
                    FeedbackEmitting::new(OutboxMailer::new(dir.clone()), feedback_queue.clone());
                (Arc::new(emitting), Some(dir))
            }
        };
    // Each worker is held to the table access of the function that runs it on AWS.
    let as_function = |name: &str| match AccessProfile::of(name) {
        Some(profile) => store.with_access(profile),
        None => store.clone(),
    };
    let rate = std::env::var("PLUNK_SEND_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(DEFAULT_RATE);
    let sender_store = as_function("send-consumer");
    let pacer = Pacer::new(
        Arc::new(TablePace::new(sender_store.table().clone())),
        Arc::new(SystemClock),
        rate,
    );
    let worker = SendWorker::new(
        sender_store,
        mailer,
        blobs.clone(),
        pacer,
        SenderConfig {
            public_url: Some(public_url.to_owned()),
            ..SenderConfig::default()
        },
    );
    tokio::spawn(plunk_worker::consumer::run(worker, queues.clone()));
    let feedback = plunk_worker::feedback::FeedbackWorker {
        store: as_function("feedback-consumer"),
    };
    tokio::spawn(plunk_worker::feedback::run(feedback, feedback_queue));
    let key_file = data_dir.join(WEBHOOK_KEY_FILE);
    let webhook_secrets = Arc::new(
        SecretBox::from_key_file(&key_file)
            .map_err(|e| Failure::store(format!("{}: {e}", key_file.display())))?,
    );
    let webhook_queue = plunk_worker::webhooks::embedded_queue(&queues_db)
        .map_err(|e| Failure::store(format!("cannot open the webhook queue: {e}")))?;
    let workflow_queue = plunk_worker::workflows::engine::embedded_queue(&queues_db)
        .map_err(|e| Failure::store(format!("cannot open the workflow queue: {e}")))?;
    let workflow_store = as_function("workflow-worker");
    tokio::spawn(plunk_worker::workflows::engine::run_queue(
        plunk_worker::workflows::engine::Engine {
            acceptor: plunk_worker::accept::Acceptor {
                store: workflow_store.clone(),
                blobs: blobs.clone(),
                queues: queues.clone(),
            },
            store: workflow_store,
            queue: workflow_queue.clone(),
            allow_private_webhooks: settings.allow_private_webhooks,
            clock: Arc::new(SystemClock),
        },
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let dispatcher = store.change_feed().map(|feed| {
        let dispatcher = plunk_worker::dispatch::Dispatcher {
            store: as_function("event-dispatch"),
            webhook_queue: webhook_queue.clone(),
            workflow_queue: workflow_queue.clone(),
        };
        tokio::spawn(plunk_worker::dispatch::run_feed(
            dispatcher,
            feed.clone(),
            stopped,
        ))
    });
    tokio::spawn(plunk_worker::webhooks::run(WebhookWorker {
        store: as_function("webhook-delivery"),
        queue: webhook_queue.clone(),
        secrets: webhook_secrets.clone(),
        policy: AttemptPolicy {
            allow_private: settings.allow_private_webhooks,
            ..AttemptPolicy::default()
        },
    }));
    let scheduler = Scheduler {
        store: as_function("scheduler"),
        queues: queues.clone(),
        fanout: FanoutSettings::for_rate(rate),
    };
    // Campaign fan-outs and segment passes every few seconds here (the minute tick does them on
    // AWS), so a campaign sent from `make dev` starts at once and a new segment is counted.
    let fanning = scheduler.clone();
    let (timer_store, timer_queue) = (as_function("scheduler"), workflow_queue.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(FANOUT_INTERVAL);
        loop {
            every.tick().await;
            let now_ms = plunk_worker::clock::Clock::now_ms(&SystemClock);
            if let Err(e) = fanning.fan_out(now_ms).await {
                tracing::warn!(error = %e, "campaign fan-out failed");
            }
            if let Err(e) = fanning.segment_passes(now_ms).await {
                tracing::warn!(error = %e, "segment pass failed");
            }
            // Workflow timers every few seconds here too: the minute tick does them on AWS.
            let timers = plunk_worker::workflows::timers::work(
                &timer_store,
                timer_queue.as_ref(),
                now_ms,
                WORKFLOW_TIMER_BUDGET,
            );
            if let Err(e) = timers.await {
                tracing::warn!(error = %e, "workflow timers failed");
            }
        }
    });
    tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            let now_ms = plunk_worker::clock::Clock::now_ms(&SystemClock);
            if let Err(e) = scheduler.tick(now_ms).await {
                tracing::warn!(error = %e, "scheduler tick failed");
            }
        }
    });
    Ok(Background {
        queues,
        webhook_queue,
        webhook_secrets,
        blobs,
        outbox_dir,
        shutdown: Shutdown { stop, dispatcher },
        workflow_queue,
    })
}
