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

/// The blob store of a function that keeps no blobs (the scheduler's campaign fan-out, whose
/// emails read their content from the campaign): every call fails, so a stray use shows at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoBlobs;

#[async_trait]
impl BlobStore for NoBlobs {
    async fn put(&self, key: &str, _bytes: Bytes) -> Result<(), BlobError> {
        Err(BlobError::Other(format!(
            "no blob storage here (put {key})"
        )))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        Err(BlobError::Other(format!(
            "no blob storage here (get {key})"
        )))
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        Err(BlobError::Other(format!(
            "no blob storage here (delete {key})"
        )))
    }
}
