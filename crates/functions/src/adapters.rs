//! Builds every adapter a function needs from its environment, once per cold start.
//!
//! In AWS the SAM template sets the names of the resources (queue URLs, bucket, configuration
//! sets); each adapter then talks to its AWS service through one shared SDK configuration
//! (region and credentials from the Lambda environment, `PLUNK_AWS_ENDPOINT` for an emulator such
//! as moto). With the embedded store (`PLUNK_STORE=sqlite`, as in the tests and on a laptop) any
//! adapter whose variable is unset is the local one under `PLUNK_DATA_DIR`, laid out like
//! `plunk serve` lays it out, so a function and the local server can share a data directory.
//!
//! | Variable | Adapter | Unset, embedded store | Unset, DynamoDB |
//! |---|---|---|---|
//! | `PLUNK_SEND_QUEUE_*_URL` (all three) | SQS send queues | `queues.db` | refused where used |
//! | `PLUNK_FEEDBACK_QUEUE_URL` | SQS feedback queue (the outbox mailer reports Send/Delivery there) | `queues.db` | none |
//! | `PLUNK_BLOB_BUCKET` | S3 blobs | `blobs/` | refused where used |
//! | `PLUNK_IDENTITIES` (`ses`, `local`) | sending identities | local (no DNS) | refused for `/domains` |
//! | `PLUNK_WEBHOOK_KMS_KEY_ID` | KMS key wrapping the webhook secrets' data key | `webhook-secrets.key` | refused by the webhook functions |
//! | `PLUNK_DEPLOYMENT` | the `plunk:deployment` tag value of SES identities this deployment makes | `local` | `local` (the template sets the stack name) |
//! | `PLUNK_MAILER` (`ses` or `outbox`), `PLUNK_OUTBOX_DIR` | mailer | SES | SES |
//! | `PLUNK_SES_CONFIGURATION_SET_{TRACKED,UNTRACKED}` | SES configuration sets | none | none |
//! | `PLUNK_SEND_RATE` | sends per second | SES `GetAccount`, else 14 | same |
//! | `PLUNK_WEBHOOK_QUEUE_URL` | SQS webhook queue | `queues.db` | refused where used |
//! | `PLUNK_PUBLIC_URL` | base of the hosted-page links in sent mail | `http://127.0.0.1:8080` | refused by the send worker |
//!
//! A deployment that forgot a variable fails at start with the variable's name, rather than
//! accepting mail into a queue that only lives in memory or verifying domains without DNS.

use aws_config::{BehaviorVersion, SdkConfig};
use plunk_api::Group;
use plunk_http_kit::{AppState, Settings};
use plunk_messaging::blob::folder::FolderBlobs;
use plunk_messaging::blob::prefix::{BlobAccess, GuardedBlobs};
use plunk_messaging::blob::s3::S3Blobs;
use plunk_messaging::blob::BlobStore;
use plunk_messaging::identity::local::LocalIdentities;
use plunk_messaging::identity::ses::SesIdentities;
use plunk_messaging::identity::SendingIdentities;
use plunk_messaging::mailer::emitting::FeedbackEmitting;
use plunk_messaging::mailer::outbox::OutboxMailer;
use plunk_messaging::mailer::ses::SesMailer;
use plunk_messaging::mailer::Mailer;
use plunk_messaging::queue::sqs::SqsQueue;
use plunk_messaging::queue::{Queue, QueueError};
use plunk_messaging::send_queues::SendQueues;
use plunk_store::config::StoreConfig;
use plunk_store::table::StoreError;
use plunk_store::Store;
use plunk_webhooks::{AttemptPolicy, SecretBox};
use plunk_worker::campaigns::fanout::FanoutSettings;
use plunk_worker::clock::SystemClock;
use plunk_worker::dispatch::Dispatcher;
use plunk_worker::feedback::FeedbackWorker;
use plunk_worker::pacing::{Pacer, TablePace, DEFAULT_RATE};
use plunk_worker::scheduler::Scheduler;
use plunk_worker::send::{SendWorker, SenderConfig};
use plunk_worker::webhooks::WebhookWorker;
use plunk_worker::workflows::engine::Engine;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// URL variables of the send queues, in `SendClass::ALL` order.
pub const SEND_QUEUE_URL_VARS: [&str; 3] = [
    "PLUNK_SEND_QUEUE_TRANSACTIONAL_URL",
    "PLUNK_SEND_QUEUE_WORKFLOW_URL",
    "PLUNK_SEND_QUEUE_CAMPAIGN_URL",
];

/// Where `make dev` serves the API: the hosted-page base of functions on the embedded store.
pub const DEFAULT_LOCAL_PUBLIC_URL: &str = "http://127.0.0.1:8080";
/// URL variable of the feedback queue.
pub const FEEDBACK_QUEUE_URL_VAR: &str = "PLUNK_FEEDBACK_QUEUE_URL";

/// Why a function cannot start.
#[derive(thiserror::Error)]
pub enum ConfigError {
    /// A variable this function needs is not set.
    #[error("{var} must be set: {why}")]
    Missing {
        var: &'static str,
        why: &'static str,
    },
    /// A variable has a value this function does not understand.
    #[error("{var}={value:?} is invalid: {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot open the queues: {0}")]
    Queue(#[from] QueueError),
}

/// The message itself: a `main` returning this error prints it with `Debug` into the function's
/// init log.
impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The key file of the webhook secrets' data key in an embedded store's data directory.
pub const WEBHOOK_KEY_FILE: &str = "webhook-secrets.key";

/// A non-empty variable.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The environment of one function: its store and the means to build the other adapters.
pub struct Environment {
    /// The store named by `PLUNK_STORE` (default `dynamo`).
    pub store: Store,
    /// The data directory of the embedded store: where the local adapters live.
    local_dir: Option<PathBuf>,
    endpoint: Option<String>,
    aws: OnceCell<SdkConfig>,
    /// What this function may do in blob storage (as its role allows on AWS).
    blob_access: BlobAccess,
}

impl Environment {
    /// Opens the store named by the environment for the function `function` (its binary name):
    /// every table operation is held to that function's access profile, as IAM holds it on AWS.
    pub async fn from_env(function: &str) -> Result<Self, ConfigError> {
        let config = StoreConfig::from_env("dynamo")?;
        let local_dir = match &config {
            StoreConfig::Sqlite { data_dir } => Some(data_dir.clone()),
            StoreConfig::Dynamo { .. } => None,
        };
        let mut store = config.open().await?;
        if let Some(profile) = plunk_store::access::AccessProfile::of(function) {
            store = store.with_access(profile);
        }
        Ok(Self {
            store,
            local_dir,
            endpoint: var("PLUNK_AWS_ENDPOINT"),
            aws: OnceCell::new(),
            blob_access: BlobAccess::of(function),
        })
    }

    /// The shared SDK configuration, loaded on first use.
    async fn aws(&self) -> &SdkConfig {
        self.aws
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(endpoint) = &self.endpoint {
                    loader = loader.endpoint_url(endpoint);
                }
                loader.load().await
            })
            .await
    }

    async fn ses_client(&self) -> aws_sdk_sesv2::Client {
        aws_sdk_sesv2::Client::new(self.aws().await)
    }

    /// The send queues: SQS when the three URLs are set, the embedded queues with the embedded
    /// store, else `None`.
    pub async fn send_queues(&self) -> Result<Option<SendQueues>, ConfigError> {
        let urls = SEND_QUEUE_URL_VARS.map(var);
        if urls.iter().all(Option::is_some) {
            let client = aws_sdk_sqs::Client::new(self.aws().await);
            let [t, w, c] = urls.map(|url| -> Arc<dyn Queue> {
                Arc::new(SqsQueue::new(client.clone(), url.unwrap_or_default()))
            });
            return Ok(Some(SendQueues {
                transactional: t,
                workflow: w,
                campaign: c,
            }));
        }
        if let Some(i) = urls.iter().position(Option::is_none) {
            if urls.iter().any(Option::is_some) {
                return Err(ConfigError::Missing {
                    var: SEND_QUEUE_URL_VARS[i],
                    why: "the send queue URLs are set together",
                });
            }
        }
        let Some(dir) = &self.local_dir else {
            return Ok(None);
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Other(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Some(SendQueues::embedded(&dir.join("queues.db"))?))
    }

    /// The feedback queue: SQS with `PLUNK_FEEDBACK_QUEUE_URL`, the embedded `feedback` queue
    /// with the embedded store, else `None`. In AWS, SES events reach the queue through
    /// EventBridge and the feedback function's event source reads it; this handle is for
    /// writers, such as the outbox mailer's Send and Delivery reports.
    pub async fn feedback_queue(&self) -> Result<Option<Arc<dyn Queue>>, ConfigError> {
        if let Some(url) = var(FEEDBACK_QUEUE_URL_VAR) {
            let client = aws_sdk_sqs::Client::new(self.aws().await);
            return Ok(Some(Arc::new(SqsQueue::new(client, url))));
        }
        let Some(dir) = &self.local_dir else {
            return Ok(None);
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Other(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Some(plunk_messaging::feedback_queue::embedded(
            &dir.join("queues.db"),
        )?))
    }

    /// The feedback worker over this function's store.
    pub fn feedback_worker(&self) -> FeedbackWorker {
        FeedbackWorker {
            store: self.store.clone(),
        }
    }

    /// The SQS send queues by queue name (the last part of a queue URL or ARN), for changing the
    /// visibility of messages an event source handed over. Empty without the URLs.
    pub async fn sqs_queues_by_name(&self) -> QueuesByName {
        let urls: Vec<String> = SEND_QUEUE_URL_VARS.iter().filter_map(|v| var(v)).collect();
        if urls.is_empty() {
            return QueuesByName::default();
        }
        let client = aws_sdk_sqs::Client::new(self.aws().await);
        QueuesByName(
            urls.into_iter()
                .map(|url| {
                    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
                    let queue: Arc<dyn Queue> = Arc::new(SqsQueue::new(client.clone(), url));
                    (name, queue)
                })
                .collect(),
        )
    }

    /// The blob store: S3 with `PLUNK_BLOB_BUCKET`, the `blobs` folder with the embedded store,
    /// else `None`; held to this function's prefixes in every mode.
    pub async fn blobs(&self) -> Option<Arc<dyn BlobStore>> {
        let blobs = self.unguarded_blobs().await?;
        Some(Arc::new(GuardedBlobs::new(blobs, self.blob_access)))
    }

    async fn unguarded_blobs(&self) -> Option<Arc<dyn BlobStore>> {
        if let Some(bucket) = var("PLUNK_BLOB_BUCKET") {
            // Emulators rarely serve bucket subdomains: address them path-style.
            let config = aws_sdk_s3::config::Builder::from(self.aws().await)
                .force_path_style(self.endpoint.is_some())
                .build();
            let client = aws_sdk_s3::Client::from_conf(config);
            return Some(Arc::new(S3Blobs::new(client, bucket)));
        }
        let dir = self.local_dir.as_ref()?;
        Some(Arc::new(FolderBlobs::new(dir.join("blobs"))))
    }

    /// The sending identities: `PLUNK_IDENTITIES=ses` or `local`; unset, local with the embedded
    /// store, else `None`.
    pub async fn identities(&self) -> Result<Option<Arc<dyn SendingIdentities>>, ConfigError> {
        match var("PLUNK_IDENTITIES").as_deref() {
            Some("ses") => {
                let deployment = var("PLUNK_DEPLOYMENT").unwrap_or_else(|| "local".into());
                Ok(Some(Arc::new(SesIdentities::new(
                    self.ses_client().await,
                    deployment,
                ))))
            }
            Some("local") => Ok(Some(Arc::new(LocalIdentities))),
            Some(other) => Err(ConfigError::Invalid {
                var: "PLUNK_IDENTITIES",
                value: other.to_owned(),
                expected: "ses or local",
            }),
            None if self.local_dir.is_some() => Ok(Some(Arc::new(LocalIdentities))),
            None => Ok(None),
        }
    }

    /// The webhook delivery queue: SQS with `PLUNK_WEBHOOK_QUEUE_URL`, the embedded queue with the
    /// embedded store, else `None`.
    pub async fn webhook_queue(&self) -> Result<Option<Arc<dyn Queue>>, ConfigError> {
        self.queue(
            "PLUNK_WEBHOOK_QUEUE_URL",
            plunk_worker::webhooks::embedded_queue,
        )
        .await
    }

    /// SQS at the URL in `url_var`, else the embedded queue `embedded` opens in the data
    /// directory's `queues.db` with the embedded store, else `None`.
    async fn queue(
        &self,
        url_var: &str,
        embedded: fn(&std::path::Path) -> Result<Arc<dyn Queue>, QueueError>,
    ) -> Result<Option<Arc<dyn Queue>>, ConfigError> {
        if let Some(url) = var(url_var) {
            let client = aws_sdk_sqs::Client::new(self.aws().await);
            return Ok(Some(Arc::new(SqsQueue::new(client, url))));
        }
        let Some(dir) = &self.local_dir else {
            return Ok(None);
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Other(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Some(embedded(&dir.join("queues.db"))?))
    }

    async fn required_webhook_queue(&self) -> Result<Arc<dyn Queue>, ConfigError> {
        self.webhook_queue().await?.ok_or(ConfigError::Missing {
            var: "PLUNK_WEBHOOK_QUEUE_URL",
            why: "webhook deliveries are queued on SQS",
        })
    }

    /// The workflow queue: SQS with `PLUNK_WORKFLOW_QUEUE_URL`, the embedded queue with the
    /// embedded store, else `None`.
    pub async fn workflow_queue(&self) -> Result<Option<Arc<dyn Queue>>, ConfigError> {
        self.queue(
            "PLUNK_WORKFLOW_QUEUE_URL",
            plunk_worker::workflows::engine::embedded_queue,
        )
        .await
    }

    /// The workflow queue, required.
    pub async fn required_workflow_queue(&self) -> Result<Arc<dyn Queue>, ConfigError> {
        self.workflow_queue().await?.ok_or(ConfigError::Missing {
            var: "PLUNK_WORKFLOW_QUEUE_URL",
            why: "workflow executions are queued on SQS",
        })
    }

    /// The event dispatcher (counters, webhook fan-out, workflow starts).
    pub async fn dispatcher(&self) -> Result<Dispatcher, ConfigError> {
        Ok(Dispatcher {
            store: self.store.clone(),
            webhook_queue: self.required_webhook_queue().await?,
            workflow_queue: self.required_workflow_queue().await?,
        })
    }

    /// The workflow engine: the workflow queue, and the accept step over the send queues and
    /// blobs. Deployed functions never call private addresses from WEBHOOK steps.
    pub async fn engine(&self) -> Result<Engine, ConfigError> {
        let queues = self.send_queues().await?.ok_or(ConfigError::Missing {
            var: SEND_QUEUE_URL_VARS[1],
            why: "workflow emails are queued on SQS",
        })?;
        let blobs = self.blobs().await.ok_or(ConfigError::Missing {
            var: "PLUNK_BLOB_BUCKET",
            why: "workflow emails' large bodies are kept in S3",
        })?;
        Ok(Engine {
            acceptor: plunk_worker::accept::Acceptor {
                store: self.store.clone(),
                blobs,
                queues,
            },
            store: self.store.clone(),
            queue: self.required_workflow_queue().await?,
            allow_private_webhooks: false,
            clock: Arc::new(plunk_worker::clock::SystemClock),
        })
    }

    /// The webhook worker. Deployed functions never call private addresses.
    pub async fn webhook_worker(&self) -> Result<WebhookWorker, ConfigError> {
        Ok(WebhookWorker {
            store: self.store.clone(),
            queue: self.required_webhook_queue().await?,
            policy: AttemptPolicy::default(),
            secrets: self.webhook_secrets().await?,
        })
    }

    /// The box over the webhook secrets' data key: KMS envelope encryption with
    /// `PLUNK_WEBHOOK_KMS_KEY_ID`, else the key file `webhook-secrets.key` of the embedded
    /// store's data directory.
    pub async fn webhook_secrets(&self) -> Result<Arc<SecretBox>, ConfigError> {
        if let Some(key_id) = var("PLUNK_WEBHOOK_KMS_KEY_ID") {
            let kms = aws_sdk_kms::Client::new(self.aws().await);
            let sealed = crate::webhook_key::load(&self.store, &kms, &key_id).await?;
            return Ok(Arc::new(sealed));
        }
        let Some(dir) = &self.local_dir else {
            return Err(ConfigError::Missing {
                var: "PLUNK_WEBHOOK_KMS_KEY_ID",
                why: "webhook signing secrets are encrypted at rest",
            });
        };
        let path = dir.join(WEBHOOK_KEY_FILE);
        SecretBox::from_key_file(&path)
            .map(Arc::new)
            .map_err(|e| StoreError::Other(format!("{}: {e}", path.display())).into())
    }

    /// The HTTP state of `group`, refusing to start without an adapter the group uses.
    pub async fn app_state(&self, group: Group) -> Result<AppState, ConfigError> {
        let mut state = AppState::new(self.store.clone(), Settings::from_env());
        match self.send_queues().await? {
            Some(queues) => state = state.with_send_queues(queues),
            None if matches!(group, Group::PublicApi | Group::Campaigns) => {
                return Err(ConfigError::Missing {
                    var: SEND_QUEUE_URL_VARS[0],
                    why: "accepted emails are queued on SQS",
                })
            }
            None => {}
        }
        match self.blobs().await {
            Some(blobs) => state = state.with_blobs(blobs),
            None if matches!(group, Group::PublicApi) => {
                return Err(ConfigError::Missing {
                    var: "PLUNK_BLOB_BUCKET",
                    why: "attachments are kept in S3",
                })
            }
            None => {}
        }
        match self.webhook_queue().await? {
            Some(queue) => state = state.with_webhook_queue(queue),
            None if matches!(group, Group::Webhooks) => {
                return Err(ConfigError::Missing {
                    var: "PLUNK_WEBHOOK_QUEUE_URL",
                    why: "webhook test sends and retries are queued on SQS",
                })
            }
            None => {}
        }
        match self.workflow_queue().await? {
            Some(queue) => state = state.with_workflow_queue(queue),
            None if matches!(group, Group::Workflows) => {
                return Err(ConfigError::Missing {
                    var: "PLUNK_WORKFLOW_QUEUE_URL",
                    why: "manually started executions are queued on SQS",
                })
            }
            None => {}
        }
        if matches!(group, Group::Webhooks) {
            state = state.with_webhook_secrets(self.webhook_secrets().await?);
        }
        match self.identities().await? {
            Some(identities) => state = state.with_identities(identities),
            None if matches!(group, Group::Domains) => {
                return Err(ConfigError::Missing {
                    var: "PLUNK_IDENTITIES",
                    why: "domains are verified by the provider (ses)",
                })
            }
            None => {}
        }
        Ok(state)
    }

    /// The mailer: `PLUNK_MAILER=ses` (default) or `outbox` (into `PLUNK_OUTBOX_DIR`, else the
    /// data directory's `outbox`). The outbox mailer reports Send and Delivery onto the feedback
    /// queue when there is one, as SES would.
    pub async fn mailer(&self) -> Result<Arc<dyn Mailer>, ConfigError> {
        match var("PLUNK_MAILER").as_deref() {
            None | Some("ses") => Ok(Arc::new(SesMailer::new(self.ses_client().await, None))),
            Some("outbox") => {
                let dir = var("PLUNK_OUTBOX_DIR")
                    .map(PathBuf::from)
                    .or_else(|| self.local_dir.as_ref().map(|d| d.join("outbox")))
                    .ok_or(ConfigError::Missing {
                        var: "PLUNK_OUTBOX_DIR",
                        why: "the outbox mailer writes there",
                    })?;
                let outbox = OutboxMailer::new(dir);
                Ok(match self.feedback_queue().await? {
                    Some(queue) => Arc::new(FeedbackEmitting::new(outbox, queue)),
                    None => Arc::new(outbox),
                })
            }
            Some(other) => Err(ConfigError::Invalid {
                var: "PLUNK_MAILER",
                value: other.to_owned(),
                expected: "ses or outbox",
            }),
        }
    }

    /// The send worker: the mailer, the blobs, and the shared pace at `PLUNK_SEND_RATE`, else the
    /// provider's account rate, else 14 per second.
    pub async fn send_worker(&self) -> Result<SendWorker, ConfigError> {
        let mailer = self.mailer().await?;
        let blobs = self.blobs().await.ok_or(ConfigError::Missing {
            var: "PLUNK_BLOB_BUCKET",
            why: "attachments are read from S3",
        })?;
        let rate = match var("PLUNK_SEND_RATE") {
            Some(raw) => raw
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r > 0.0)
                .ok_or(ConfigError::Invalid {
                    var: "PLUNK_SEND_RATE",
                    value: raw,
                    expected: "a positive number of sends per second",
                })?,
            None => mailer.account_send_rate().await.unwrap_or(DEFAULT_RATE),
        };
        tracing::info!(rate, "send pace");
        let pace = Arc::new(TablePace::new(self.store.table().clone()));
        Ok(SendWorker::new(
            self.store.clone(),
            mailer,
            blobs,
            Pacer::new(pace, Arc::new(SystemClock), rate),
            SenderConfig {
                configuration_set_tracked: var("PLUNK_SES_CONFIGURATION_SET_TRACKED"),
                configuration_set_untracked: var("PLUNK_SES_CONFIGURATION_SET_UNTRACKED"),
                public_url: Some(self.public_url()?),
            },
        ))
    }

    /// The public API base URL the hosted-page links in sent mail point at: `PLUNK_PUBLIC_URL`
    /// (an `http(s)://` URL; a trailing slash is dropped). Unset: `make dev`'s address with the
    /// embedded store, refused with DynamoDB (mail would go out without working links).
    pub fn public_url(&self) -> Result<String, ConfigError> {
        match var("PLUNK_PUBLIC_URL") {
            Some(raw) => {
                let url = raw.trim().trim_end_matches('/').to_owned();
                let valid = (url.starts_with("https://") || url.starts_with("http://"))
                    && !url.contains(char::is_whitespace)
                    && url.split("://").nth(1).is_some_and(|rest| !rest.is_empty());
                if valid {
                    Ok(url)
                } else {
                    Err(ConfigError::Invalid {
                        var: "PLUNK_PUBLIC_URL",
                        value: raw,
                        expected: "an http:// or https:// base URL",
                    })
                }
            }
            None if self.local_dir.is_some() => Ok(DEFAULT_LOCAL_PUBLIC_URL.to_owned()),
            None => Err(ConfigError::Missing {
                var: "PLUNK_PUBLIC_URL",
                why: "sent mail links to the hosted unsubscribe pages there",
            }),
        }
    }

    /// The scheduler: the store and the send queues it re-queues into.
    pub async fn scheduler(&self) -> Result<Scheduler, ConfigError> {
        let queues = self.send_queues().await?.ok_or(ConfigError::Missing {
            var: SEND_QUEUE_URL_VARS[0],
            why: "emails left behind are queued again on SQS",
        })?;
        let rate = var("PLUNK_SEND_RATE")
            .and_then(|r| r.trim().parse::<f64>().ok())
            .filter(|r| r.is_finite() && *r > 0.0)
            .unwrap_or(DEFAULT_RATE);
        Ok(Scheduler {
            store: self.store.clone(),
            queues,
            fanout: FanoutSettings::for_rate(rate),
        })
    }
}

/// Queues by name, to act on a message knowing only its queue's ARN.
#[derive(Clone, Default)]
pub struct QueuesByName(HashMap<String, Arc<dyn Queue>>);

impl QueuesByName {
    /// Queues under the given names.
    pub fn new(queues: impl IntoIterator<Item = (String, Arc<dyn Queue>)>) -> Self {
        Self(queues.into_iter().collect())
    }

    /// The queue an event source ARN (`arn:aws:sqs:<region>:<account>:<name>`) names.
    pub fn by_arn(&self, arn: &str) -> Option<&Arc<dyn Queue>> {
        self.0.get(arn.rsplit(':').next().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plunk_messaging::memory::MemoryQueue;

    #[test]
    fn a_queue_is_found_by_the_last_part_of_its_arn() {
        let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::default());
        let queues = QueuesByName::new([("plunk-SendTransactional-AbC".to_owned(), queue)]);
        assert!(queues
            .by_arn("arn:aws:sqs:us-east-1:123456789012:plunk-SendTransactional-AbC")
            .is_some());
        assert!(queues
            .by_arn("arn:aws:sqs:us-east-1:123456789012:plunk-SendCampaign-AbC")
            .is_none());
        assert!(queues.by_arn("").is_none());
    }
}
