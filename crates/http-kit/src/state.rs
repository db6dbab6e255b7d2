//! The state every router shares: the store, deployment settings and the auth cache.

use crate::auth::{FailedAuth, KeyCache};
use plunk_messaging::blob::BlobStore;
use plunk_messaging::identity::local::LocalIdentities;
use plunk_messaging::identity::SendingIdentities;
use plunk_messaging::memory::{MemoryBlobs, MemoryQueue};
use plunk_messaging::queue::Queue;
use plunk_messaging::send_queues::SendQueues;
use plunk_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Deployment settings that change behaviour.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest accepted request body (default 5 MiB).
    pub body_limit_bytes: usize,
    /// How long a key lookup (and its project's settings) may be reused (at most 60 s).
    pub key_cache_ttl: Duration,
    /// Reported by `/health`.
    pub version: &'static str,
    /// Label of every domain's MAIL FROM subdomain (`<label>.<domain>`).
    pub mail_from_label: String,
    /// Whether webhook URLs may point at loopback and private addresses. Only `plunk serve
    /// --allow-private-webhooks` sets it; deployed functions never do.
    pub allow_private_webhooks: bool,
    /// Public-key requests per project, source address and minute
    /// (`PLUNK_PUBLIC_REQUESTS_PER_SOURCE`, default 120).
    pub public_requests_per_source: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 5 * 1024 * 1024,
            key_cache_ttl: Duration::from_secs(60),
            version: env!("CARGO_PKG_VERSION"),
            mail_from_label: "mail".to_owned(),
            allow_private_webhooks: false,
            public_requests_per_source: crate::auth::PUBLIC_REQUESTS_PER_SOURCE,
        }
    }
}

impl Settings {
    /// Defaults, overridden by `PLUNK_BODY_LIMIT_BYTES`, `PLUNK_KEY_CACHE_SECONDS` (≤ 60) and
    /// `PLUNK_PUBLIC_REQUESTS_PER_SOURCE` (≥ 1).
    pub fn from_env() -> Self {
        let mut s = Self::default();
        if let Some(n) = std::env::var("PLUNK_BODY_LIMIT_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            s.body_limit_bytes = n;
        }
        if let Some(n) = std::env::var("PLUNK_KEY_CACHE_SECONDS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            s.key_cache_ttl = Duration::from_secs(n.min(60));
        }
        if let Some(n) = std::env::var("PLUNK_PUBLIC_REQUESTS_PER_SOURCE")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|n| *n >= 1)
        {
            s.public_requests_per_source = n;
        }
        // `PLUNK_MAIL_FROM_LABEL`: one DNS label; anything else keeps the default.
        if let Some(label) = std::env::var("PLUNK_MAIL_FROM_LABEL")
            .ok()
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| plunk_domain::sending_domain::is_valid_label(v))
        {
            s.mail_from_label = label;
        }
        s
    }
}

/// Shared state of the HTTP layer.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub keys: Arc<KeyCache>,
    /// Sources over the failed-authentication limit this minute.
    pub failed_auth: Arc<FailedAuth>,
    /// Sending domains at the email provider.
    pub identities: Arc<dyn SendingIdentities>,
    /// Where accepted emails are queued for sending.
    pub send_queues: SendQueues,
    /// Attachments and other large content.
    pub blobs: Arc<dyn BlobStore>,
    /// Where webhook deliveries are queued (test sends and manual retries).
    pub webhook_queue: Arc<dyn Queue>,
    /// Seals webhook signing secrets before they are stored.
    pub webhook_secrets: Arc<plunk_webhooks::SecretBox>,
    /// Where workflow executions are queued (manual starts).
    pub workflow_queue: Arc<dyn Queue>,
}

impl AppState {
    /// State over `store` with `settings` and local stand-ins for the provider ports.
    pub fn new(store: Store, settings: Settings) -> Self {
        Self {
            store,
            keys: Arc::new(KeyCache::new(settings.key_cache_ttl)),
            failed_auth: Arc::new(FailedAuth::default()),
            settings: Arc::new(settings),
            identities: Arc::new(LocalIdentities),
            send_queues: SendQueues::in_memory(),
            blobs: Arc::new(MemoryBlobs::default()),
            webhook_queue: Arc::new(MemoryQueue::default()),
            webhook_secrets: Arc::new(plunk_webhooks::SecretBox::ephemeral()),
            workflow_queue: Arc::new(MemoryQueue::default()),
        }
    }

    /// Replaces the workflow queue.
    pub fn with_workflow_queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.workflow_queue = queue;
        self
    }

    /// Replaces the box that seals webhook secrets (the deployment's data key).
    pub fn with_webhook_secrets(mut self, secrets: Arc<plunk_webhooks::SecretBox>) -> Self {
        self.webhook_secrets = secrets;
        self
    }

    /// Replaces the webhook delivery queue.
    pub fn with_webhook_queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.webhook_queue = queue;
        self
    }

    /// Replaces the send queues (SQS or the embedded queue in deployments and `plunk serve`).
    pub fn with_send_queues(mut self, queues: SendQueues) -> Self {
        self.send_queues = queues;
        self
    }

    /// Replaces the blob store (S3 or a folder).
    pub fn with_blobs(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        self.blobs = blobs;
        self
    }

    /// Replaces the sending-identity port (SES v2 in deployments).
    pub fn with_identities(mut self, identities: Arc<dyn SendingIdentities>) -> Self {
        self.identities = identities;
        self
    }
}
