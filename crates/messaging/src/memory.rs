//! In-memory adapters for tests and benchmarks: a queue without persistence and a blob map.
//! They honour the ports' contracts closely enough for the accept path (receive hides messages
//! for the visibility timeout, receipts change per receive) but keep nothing across restarts.

use crate::blob::{BlobError, BlobStore};
use crate::queue::{Queue, QueueError, ReceivedMessage};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Stored {
    id: String,
    body: String,
    visible_at: Instant,
    receipt: Option<String>,
    receive_count: u32,
}

/// A process-local queue.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    messages: Mutex<Vec<Stored>>,
}

impl MemoryQueue {
    /// Bodies of every message still in the queue (visible or not), oldest first.
    pub fn bodies(&self) -> Vec<String> {
        self.messages
            .lock()
            .map(|m| m.iter().map(|s| s.body.clone()).collect())
            .unwrap_or_default()
    }
}

fn poisoned() -> QueueError {
    QueueError::Other("memory queue poisoned".into())
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, body: &str, delay: Duration) -> Result<(), QueueError> {
        self.messages.lock().map_err(|_| poisoned())?.push(Stored {
            id: uuid::Uuid::now_v7().to_string(),
            body: body.to_owned(),
            visible_at: Instant::now() + delay,
            receipt: None,
            receive_count: 0,
        });
        Ok(())
    }

    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError> {
        for b in bodies {
            self.send(b, Duration::ZERO).await?;
        }
        Ok(())
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        _wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let now = Instant::now();
        let mut messages = self.messages.lock().map_err(|_| poisoned())?;
        let mut out = Vec::new();
        for m in messages
            .iter_mut()
            .filter(|m| m.visible_at <= now)
            .take(max)
        {
            m.receive_count += 1;
            m.visible_at = now + visibility;
            let receipt = uuid::Uuid::now_v7().to_string();
            m.receipt = Some(receipt.clone());
            out.push(ReceivedMessage {
                message_id: m.id.clone(),
                receipt,
                body: m.body.clone(),
                receive_count: m.receive_count,
            });
        }
        Ok(out)
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        let mut messages = self.messages.lock().map_err(|_| poisoned())?;
        let before = messages.len();
        messages.retain(|m| m.receipt.as_deref() != Some(receipt));
        if messages.len() == before {
            return Err(QueueError::InvalidReceipt);
        }
        Ok(())
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        let mut messages = self.messages.lock().map_err(|_| poisoned())?;
        let m = messages
            .iter_mut()
            .find(|m| m.receipt.as_deref() == Some(receipt))
            .ok_or(QueueError::InvalidReceipt)?;
        m.visible_at = Instant::now() + visibility;
        Ok(())
    }
}

/// A process-local blob map.
#[derive(Debug, Default)]
pub struct MemoryBlobs {
    blobs: Mutex<HashMap<String, Bytes>>,
}

#[async_trait]
impl BlobStore for MemoryBlobs {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        self.blobs
            .lock()
            .map_err(|_| BlobError::Other("poisoned".into()))?
            .insert(key.to_owned(), bytes);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        Ok(self
            .blobs
            .lock()
            .map_err(|_| BlobError::Other("poisoned".into()))?
            .get(key)
            .cloned())
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.blobs
            .lock()
            .map_err(|_| BlobError::Other("poisoned".into()))?
            .remove(key);
        Ok(())
    }
}
