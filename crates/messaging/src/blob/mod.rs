//! The blob port: bytes by key, for attachments and any content too large for a table item.

pub mod folder;
pub mod prefix;
pub mod s3;

use async_trait::async_trait;
use bytes::Bytes;

/// Blob failures.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
    #[error("blob store failure: {0}")]
    Other(String),
}

/// A key-value store for large content. Keys are `/`-separated paths of `[A-Za-z0-9._-]` segments.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` at `key`, replacing what was there.
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError>;
    /// The bytes at `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError>;
    /// Deletes `key` (deleting nothing is not an error).
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
}
