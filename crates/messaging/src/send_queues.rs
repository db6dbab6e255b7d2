//! The three send queues, one per priority class, and the small job each message carries.

use crate::queue::embedded::{EmbeddedQueue, RedrivePolicy};
use crate::queue::{Queue, QueueError};
use plunk_domain::email_record::SendClass;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Receives before a send job moves to the dead-letter queue (the SQS redrive policy of the
/// SAM template says the same).
pub const MAX_RECEIVES: u32 = 10;
/// The embedded dead-letter queue of the send queues.
pub const DEAD_LETTER_QUEUE: &str = "send-dlq";

/// What a send-queue message says: which email to send. Everything else is in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendJob {
    pub project_id: Uuid,
    pub email_id: Uuid,
    pub class: SendClass,
}

/// One queue per class.
#[derive(Clone)]
pub struct SendQueues {
    pub transactional: Arc<dyn Queue>,
    pub workflow: Arc<dyn Queue>,
    pub campaign: Arc<dyn Queue>,
}

impl SendQueues {
    /// The queue of `class`.
    pub fn of(&self, class: SendClass) -> &Arc<dyn Queue> {
        match class {
            SendClass::Transactional => &self.transactional,
            SendClass::Workflow => &self.workflow,
            SendClass::Campaign => &self.campaign,
        }
    }

    /// Enqueues jobs (any number), in batches of 10 per class.
    pub async fn enqueue(&self, jobs: &[SendJob]) -> Result<(), QueueError> {
        for class in SendClass::ALL {
            let bodies: Vec<String> = jobs
                .iter()
                .filter(|j| j.class == class)
                .map(|j| serde_json::to_string(j).expect("jobs serialise"))
                .collect();
            for chunk in bodies.chunks(10) {
                if chunk.len() == 1 {
                    self.of(class).send(&chunk[0], Duration::ZERO).await?;
                } else {
                    self.of(class).send_batch(chunk).await?;
                }
            }
        }
        Ok(())
    }

    /// The embedded send queues in the SQLite file `path` (the local server's `queues.db`), with
    /// their shared dead-letter queue `send-dlq` after [`MAX_RECEIVES`] receives, like the
    /// deployed SQS queues.
    pub fn embedded(path: &std::path::Path) -> Result<Self, QueueError> {
        let open = |name: &str| -> Result<Arc<dyn Queue>, QueueError> {
            let redrive = RedrivePolicy {
                dead_letter_queue: DEAD_LETTER_QUEUE.into(),
                max_receive_count: MAX_RECEIVES,
            };
            Ok(Arc::new(EmbeddedQueue::open(path, name, redrive)?))
        };
        Ok(Self {
            transactional: open("send-transactional")?,
            workflow: open("send-workflow")?,
            campaign: open("send-campaign")?,
        })
    }

    /// Three in-memory queues, for tests.
    pub fn in_memory() -> Self {
        Self {
            transactional: Arc::new(crate::memory::MemoryQueue::default()),
            workflow: Arc::new(crate::memory::MemoryQueue::default()),
            campaign: Arc::new(crate::memory::MemoryQueue::default()),
        }
    }
}
