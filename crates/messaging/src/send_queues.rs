//! The three send queues, one per priority class, and the small job each message carries.

use crate::queue::{Queue, QueueError};
use plunk_domain::email_record::SendClass;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

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

    /// Three in-memory queues, for tests.
    pub fn in_memory() -> Self {
        Self {
            transactional: Arc::new(crate::memory::MemoryQueue::default()),
            workflow: Arc::new(crate::memory::MemoryQueue::default()),
            campaign: Arc::new(crate::memory::MemoryQueue::default()),
        }
    }
}
