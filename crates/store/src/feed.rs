//! The change feed: every new item of an events partition, in write order, delivered at least
//! once. On AWS it is the table's DynamoDB stream (a Lambda event source filtered to inserts into
//! `…#EVENTS` partitions); the embedded backend keeps the same records in its `item_stream` table,
//! filled by a trigger inside the writing transaction, so an event can never be stored without
//! being fed. Consumers read, handle, then acknowledge; a crash in between redelivers.

use crate::table::{Item, StoreError};
use async_trait::async_trait;

/// One new item.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRecord {
    /// Position in the feed; acknowledge up to it.
    pub seq: i64,
    /// The item as written (DynamoDB's `NEW_IMAGE`).
    pub item: Item,
}

/// A readable change feed.
#[async_trait]
pub trait ChangeFeed: Send + Sync + 'static {
    /// Up to `limit` unacknowledged records, oldest first.
    async fn read(&self, limit: usize) -> Result<Vec<FeedRecord>, StoreError>;
    /// Drops every record up to and including `seq`.
    async fn acknowledge(&self, seq: i64) -> Result<(), StoreError>;
}
