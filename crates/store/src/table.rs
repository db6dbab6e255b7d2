//! The table port: a small mirror of the DynamoDB operations the repositories use. Two backends
//! implement it (`backend::dynamo`, `backend::sqlite`) and one contract suite
//! (`tests/table_contract.rs`) holds them to the same behaviour.
//!
//! Semantics every backend honours exactly:
//! - Items are addressed by `(pk, sk)`; strings compare by UTF-8 bytes, as DynamoDB does.
//! - On `Gsi1`, items sharing a sort key come in an unspecified but stable order; repositories
//!   give every index entry a unique sort key.
//! - An item whose `ttl` (Unix seconds) is in the past is invisible: `get` and `query` skip it and
//!   `Condition::NotExists` treats it as absent (DynamoDB deletes expired items only lazily).
//! - Conditions are few and typed so both backends evaluate them identically.
//! - `transact` applies all operations or none; a failed condition names the operation's index.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The primary key of an item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    /// Builds a key from anything string-like.
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

/// One stored item: keys, an optional secondary-index key pair, an optional expiry, a version
/// for optimistic concurrency, an optional numeric counter and the record itself as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub key: Key,
    /// `(gsi1pk, gsi1sk)`: present when the item is listed on the secondary index `Gsi1`.
    pub gsi1: Option<(String, String)>,
    /// Unix seconds after which the item is treated as absent.
    pub ttl: Option<i64>,
    /// Incremented by repositories on every rewrite; used with `Condition::VersionEquals`.
    pub version: u64,
    /// The record. Counter items keep their value in `counter` instead and have `Value::Null` here.
    pub body: Value,
    /// Counter value maintained by `WriteOp::Add` / `Table::add`.
    pub counter: Option<i64>,
}

impl Item {
    /// A plain item with a body and no index, expiry or counter.
    pub fn new(key: Key, body: Value) -> Self {
        Self {
            key,
            gsi1: None,
            ttl: None,
            version: 0,
            body,
            counter: None,
        }
    }

    /// Adds the secondary-index keys.
    pub fn with_gsi1(mut self, pk: impl Into<String>, sk: impl Into<String>) -> Self {
        self.gsi1 = Some((pk.into(), sk.into()));
        self
    }

    /// Sets the expiry (Unix seconds).
    pub fn with_ttl(mut self, ttl: i64) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the version.
    pub fn with_version(mut self, version: u64) -> Self {
        self.version = version;
        self
    }

    /// The position of this item in a query over `index`, usable as `Query::start_after`.
    pub fn position(&self, index: Index) -> Position {
        Position {
            key: self.key.clone(),
            gsi1: match index {
                Index::Primary => None,
                Index::Gsi1 => self.gsi1.clone(),
            },
        }
    }
}

/// A condition on the current state of an item, checked atomically with the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Always true.
    None,
    /// No live item has this key (an expired one counts as absent).
    NotExists,
    /// A live item has this key.
    Exists,
    /// A live item has this key and exactly this version.
    VersionEquals(u64),
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Writes the whole item if the condition holds.
    Put { item: Item, condition: Condition },
    /// Deletes the item if the condition holds (deleting nothing is not an error).
    Delete { key: Key, condition: Condition },
    /// Only checks the condition.
    Check { key: Key, condition: Condition },
    /// Adds `delta` to the item's counter, creating the item at 0 first if needed.
    Add { key: Key, delta: i64 },
}

/// Which ordering a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Index {
    /// `(pk, sk)`.
    Primary,
    /// `(gsi1pk, gsi1sk)`: a global secondary index projecting all attributes.
    Gsi1,
}

/// Where a query stopped: DynamoDB's `ExclusiveStartKey`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    pub key: Key,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1: Option<(String, String)>,
}

/// A query over one partition of one index.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub index: Index,
    /// The partition: `pk` on `Primary`, `gsi1pk` on `Gsi1`.
    pub partition: String,
    /// Only sort keys starting with this prefix.
    pub sort_prefix: Option<String>,
    /// Newest (greatest sort key) first when true.
    pub descending: bool,
    /// At most this many items (at least 1).
    pub limit: usize,
    /// Continue after this position (exclusive).
    pub start_after: Option<Position>,
}

impl Query {
    /// A query of `partition` on `index`, ascending, 100 items, from the start.
    pub fn new(index: Index, partition: impl Into<String>) -> Self {
        Self {
            index,
            partition: partition.into(),
            sort_prefix: None,
            descending: false,
            limit: 100,
            start_after: None,
        }
    }
}

/// One page of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    /// Present when more items may follow: continue with `start_after = last`.
    pub last: Option<Position>,
}

/// Failures of the table port.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition did not hold; `index` is the failing operation of a transaction.
    #[error("condition failed (operation {index:?})")]
    ConditionFailed { index: Option<usize> },
    /// The backend is throttling or briefly unavailable; retrying later may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (I/O, corrupt item, programming error).
    #[error("store failure: {0}")]
    Other(String),
}

impl StoreError {
    /// True for a failed condition.
    pub fn is_condition_failed(&self) -> bool {
        matches!(self, Self::ConditionFailed { .. })
    }
}

/// The storage port.
#[async_trait]
pub trait Table: Send + Sync + 'static {
    /// The live item at `key`, if any.
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;
    /// Like [`Table::get`], but may miss a change made in the last second or so (DynamoDB's
    /// eventually consistent read, at half the read units). Only for reads a second-old answer
    /// cannot make wrong: the suppression check of a send, and items written once (read again
    /// consistently when not found).
    async fn get_eventually(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.get(key).await
    }
    /// Writes `item` if `condition` holds.
    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError>;
    /// Deletes the item at `key` if `condition` holds.
    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError>;
    /// Adds `delta` to the counter at `key` (creating it at 0 with `ttl`), only if the result stays
    /// at or below `max`. Returns the new value; `ConditionFailed` when `max` would be exceeded.
    async fn add(
        &self,
        key: &Key,
        delta: i64,
        max: Option<i64>,
        ttl: Option<i64>,
    ) -> Result<i64, StoreError>;
    /// The live items at `keys` (up to 100), in the order asked; `None` where absent.
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError>;
    /// [`Table::batch_get`] with eventually consistent reads (see [`Table::get_eventually`]).
    async fn batch_get_eventually(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.batch_get(keys).await
    }
    /// Reads one page of a partition.
    async fn query(&self, query: Query) -> Result<Page, StoreError>;
    /// Writes `items` unconditionally, each replacing what was there (DynamoDB's
    /// `BatchWriteItem`, 25 a request, at the same write units as single puts; not atomic: on an
    /// error some may be written). For writers that know the items are theirs alone.
    async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        for item in items {
            self.put(item, Condition::None).await?;
        }
        Ok(())
    }
    /// Applies up to 100 operations atomically. As in DynamoDB, no two operations may name the
    /// same item.
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError>;
}

/// Current Unix time in seconds, for TTL checks.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
