//! The feedback queue: provider notifications waiting for the feedback worker. In AWS it is the
//! SQS queue SES events reach through EventBridge; locally it is a queue of the embedded queue
//! file (`queues.db`, beside the send queues), fed by the local mailers
//! ([`crate::mailer::emitting`]) and `plunk simulate` with the same SES-shaped bodies.

use crate::queue::embedded::{EmbeddedQueue, RedrivePolicy};
use crate::queue::{Queue, QueueError};
use std::path::Path;
use std::sync::Arc;

/// The embedded feedback queue's name.
pub const FEEDBACK_QUEUE: &str = "feedback";
/// Its dead-letter queue.
pub const FEEDBACK_DEAD_LETTER_QUEUE: &str = "feedback-dlq";
/// Receives before a notification moves to the dead-letter queue (the SQS redrive policy of the
/// SAM template says the same).
pub const MAX_RECEIVES: u32 = 5;

/// The embedded feedback queue in the SQLite file `path` (the local server's `queues.db`).
pub fn embedded(path: &Path) -> Result<Arc<dyn Queue>, QueueError> {
    let redrive = RedrivePolicy {
        dead_letter_queue: FEEDBACK_DEAD_LETTER_QUEUE.into(),
        max_receive_count: MAX_RECEIVES,
    };
    Ok(Arc::new(EmbeddedQueue::open(
        path,
        FEEDBACK_QUEUE,
        redrive,
    )?))
}
