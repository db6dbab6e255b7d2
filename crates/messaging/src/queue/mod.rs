//! The queue port: at-least-once delivery with a visibility timeout, a receive count, and redrive
//! to a dead-letter queue after a maximum number of receives (SQS semantics).

pub mod embedded;
pub mod sqs;

use async_trait::async_trait;
use std::time::Duration;

/// A received message. `receipt` identifies this receipt for `delete` / `change_visibility`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    /// How many times the message has been received, this time included (≥ 1).
    pub receive_count: u32,
}

/// Queue failures.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Throttled or briefly unavailable; retry later.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The receipt is stale (the message was received again or deleted).
    #[error("invalid receipt")]
    InvalidReceipt,
    #[error("queue failure: {0}")]
    Other(String),
}

/// One work queue.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Enqueues one message, invisible for `delay` (at most 15 minutes).
    async fn send(&self, body: &str, delay: Duration) -> Result<(), QueueError>;
    /// Enqueues up to 10 messages at once.
    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError>;
    /// Receives up to `max` (1–10) visible messages, hiding them for `visibility`; waits up to
    /// `wait` for at least one. Messages received more than the queue's maximum receive count are
    /// moved to its dead-letter queue instead of being returned.
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;
    /// Deletes a received message.
    async fn delete(&self, receipt: &str) -> Result<(), QueueError>;
    /// Changes how long a received message stays hidden (0 makes it visible now).
    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError>;
}
