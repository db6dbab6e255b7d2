//! Metering adapters for the cost benchmark: a [`Table`] that counts operations and estimates the
//! DynamoDB request units they would consume, and a [`Queue`] that counts SQS requests.
//!
//! The unit model (DynamoDB on-demand, as documented by AWS):
//! - an item's size is the sum of its attribute names and values as `backend::dynamo` stores them
//!   (`pk`, `sk`, `g1pk`, `g1sk`, `ttl`, `v`, `n`, `b` = the JSON body as a string);
//! - writes: 1 write unit per started KB of the larger of the old and the new item; a delete, the
//!   old item; twice that for every operation of a `TransactWriteItems` (condition checks
//!   included); a write whose condition fails still consumes its units;
//! - the secondary index (all attributes projected) costs its own write units when an item on it is
//!   written, moved or removed;
//! - reads: `GetItem` and `BatchGetItem` are strongly consistent here, 1 read unit per started
//!   4 KB of each item (1 for an absent item), half that for `get_eventually`; a `Query` sums the sizes of the items it returns and
//!   rounds up to 4 KB once (minimum one unit), at half price on the index, which is only
//!   eventually consistent.
//!
//! Sizes of items written before the meter existed are unknown (counted as absent), so wrap the
//! table before anything is written.

use async_trait::async_trait;
use plunk_messaging::blob::{BlobError, BlobStore};
use plunk_messaging::queue::{Queue, QueueError, ReceivedMessage};
use plunk_store::table::{Condition, Index, Item, Key, Page, Query, StoreError, Table, WriteOp};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counted table work.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct TableUsage {
    /// Calls of the port (each one DynamoDB request).
    pub calls: u64,
    pub gets: u64,
    pub puts: u64,
    pub deletes: u64,
    pub adds: u64,
    pub batch_gets: u64,
    pub queries: u64,
    pub transacts: u64,
    /// Writes or transactions refused by their condition.
    pub condition_failures: u64,
    /// Read request units.
    pub rru: f64,
    /// Write request units on the table.
    pub wru: f64,
    /// Write request units on the secondary index.
    pub gsi_wru: f64,
}

impl TableUsage {
    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &TableUsage) -> TableUsage {
        TableUsage {
            calls: self.calls - earlier.calls,
            gets: self.gets - earlier.gets,
            puts: self.puts - earlier.puts,
            deletes: self.deletes - earlier.deletes,
            adds: self.adds - earlier.adds,
            batch_gets: self.batch_gets - earlier.batch_gets,
            queries: self.queries - earlier.queries,
            transacts: self.transacts - earlier.transacts,
            condition_failures: self.condition_failures - earlier.condition_failures,
            rru: self.rru - earlier.rru,
            wru: self.wru - earlier.wru,
            gsi_wru: self.gsi_wru - earlier.gsi_wru,
        }
    }

    /// `self + other`, field by field.
    pub fn plus(&self, other: &TableUsage) -> TableUsage {
        TableUsage {
            calls: self.calls + other.calls,
            gets: self.gets + other.gets,
            puts: self.puts + other.puts,
            deletes: self.deletes + other.deletes,
            adds: self.adds + other.adds,
            batch_gets: self.batch_gets + other.batch_gets,
            queries: self.queries + other.queries,
            transacts: self.transacts + other.transacts,
            condition_failures: self.condition_failures + other.condition_failures,
            rru: self.rru + other.rru,
            wru: self.wru + other.wru,
            gsi_wru: self.gsi_wru + other.gsi_wru,
        }
    }

    /// All write units (table and index).
    pub fn all_wru(&self) -> f64 {
        self.wru + self.gsi_wru
    }
}

/// Units charged to one kind of item.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct KindUsage {
    pub calls: f64,
    pub rru: f64,
    /// Table and index write units.
    pub wru: f64,
}

/// The kind of item a key names: its partition key without ids (`PROJECT#<id>#CONTACTS` →
/// `CONTACTS`), or `SYSTEM/<sk>` for the global items.
pub fn kind_of(key: &Key) -> String {
    if key.pk == "SYSTEM" {
        return format!("SYSTEM/{}", key.sk);
    }
    let words: Vec<&str> = key
        .pk
        .split('#')
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect();
    match words.as_slice() {
        ["PROJECT"] => key.sk.clone(),
        ["PROJECT", rest @ ..] => rest.join("/"),
        other => other.join("/"),
    }
}

/// `later - earlier`, kind by kind.
pub fn kinds_since(
    later: &BTreeMap<String, KindUsage>,
    earlier: &BTreeMap<String, KindUsage>,
) -> BTreeMap<String, KindUsage> {
    later
        .iter()
        .map(|(k, v)| {
            let e = earlier.get(k).copied().unwrap_or_default();
            let d = KindUsage {
                calls: v.calls - e.calls,
                rru: v.rru - e.rru,
                wru: v.wru - e.wru,
            };
            (k.clone(), d)
        })
        .filter(|(_, v)| v.calls > 1e-9)
        .collect()
}

fn number_size(n: i64) -> usize {
    // DynamoDB: about one byte per two significant digits, plus one.
    let digits = n
        .unsigned_abs()
        .to_string()
        .trim_end_matches('0')
        .len()
        .max(1);
    digits.div_ceil(2) + 1
}

/// The size DynamoDB would bill for `item` as `backend::dynamo` writes it.
pub fn item_size(item: &Item) -> usize {
    let mut size = 2 + item.key.pk.len() + 2 + item.key.sk.len();
    if let Some((g1pk, g1sk)) = &item.gsi1 {
        size += 4 + g1pk.len() + 4 + g1sk.len();
    }
    if let Some(ttl) = item.ttl {
        size += 3 + number_size(ttl);
    }
    size += 1 + number_size(item.version as i64);
    if let Some(n) = item.counter {
        size += 1 + number_size(n);
    }
    size + 1 + item.body.to_string().len()
}

fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

fn read_units(bytes: usize) -> f64 {
    bytes.div_ceil(4096).max(1) as f64
}

/// What the meter knows of a stored item.
#[derive(Debug, Clone)]
struct Known {
    size: usize,
    gsi1: Option<(String, String)>,
}

/// A table that meters another.
pub struct MeteredTable {
    inner: Arc<dyn Table>,
    usage: Mutex<TableUsage>,
    known: Mutex<HashMap<Key, Known>>,
    kinds: Mutex<BTreeMap<String, KindUsage>>,
}

impl MeteredTable {
    /// Charges a `BatchGetItem` (`factor` 0.5 when eventually consistent).
    fn charge_batch_get(
        &self,
        keys: &[Key],
        result: Vec<Option<Item>>,
        factor: f64,
    ) -> Vec<Option<Item>> {
        let mut units = 0.0;
        for (key, item) in keys.iter().zip(&result) {
            let u = match item {
                Some(item) => {
                    self.remember(item);
                    read_units(item_size(item))
                }
                None => 1.0,
            } * factor;
            self.charge(key, 1.0 / keys.len() as f64, u, 0.0);
            units += u;
        }
        self.count(|u| {
            u.batch_gets += 1;
            u.rru += units;
        });
        result
    }

    /// Meters `inner` (wrap it before anything is written).
    pub fn new(inner: Arc<dyn Table>) -> Self {
        Self {
            inner,
            usage: Mutex::new(TableUsage::default()),
            known: Mutex::new(HashMap::new()),
            kinds: Mutex::new(BTreeMap::new()),
        }
    }

    /// Units so far by kind of item (see [`kind_of`]); a transaction's share goes to each item.
    pub fn by_kind(&self) -> BTreeMap<String, KindUsage> {
        self.kinds.lock().expect("kinds").clone()
    }

    fn charge(&self, key: &Key, calls: f64, rru: f64, wru: f64) {
        let mut kinds = self.kinds.lock().expect("kinds");
        let k = kinds.entry(kind_of(key)).or_default();
        k.calls += calls;
        k.rru += rru;
        k.wru += wru;
    }

    /// Everything counted so far.
    pub fn usage(&self) -> TableUsage {
        *self.usage.lock().expect("usage")
    }

    fn count(&self, f: impl FnOnce(&mut TableUsage)) {
        let mut u = self.usage.lock().expect("usage");
        u.calls += 1;
        f(&mut u);
    }

    fn known(&self, key: &Key) -> Option<Known> {
        self.known.lock().expect("known").get(key).cloned()
    }

    fn remember(&self, item: &Item) {
        self.known.lock().expect("known").insert(
            item.key.clone(),
            Known {
                size: item_size(item),
                gsi1: item.gsi1.clone(),
            },
        );
    }

    fn forget(&self, key: &Key) {
        self.known.lock().expect("known").remove(key);
    }

    /// Units of writing `new` over `old`: (table, index).
    fn put_units(
        old: Option<&Known>,
        new_size: usize,
        new_gsi: &Option<(String, String)>,
    ) -> (f64, f64) {
        let old_size = old.map_or(0, |o| o.size);
        let table = write_units(old_size.max(new_size));
        let old_gsi = old.and_then(|o| o.gsi1.as_ref());
        let index = match (old_gsi, new_gsi) {
            (None, None) => 0.0,
            (None, Some(_)) => write_units(new_size),
            (Some(_), None) => write_units(old_size),
            (Some(a), Some(b)) if a == b => write_units(old_size.max(new_size)),
            (Some(_), Some(_)) => write_units(old_size) + write_units(new_size),
        };
        (table, index)
    }

    fn delete_units(old: Option<&Known>) -> (f64, f64) {
        match old {
            None => (1.0, 0.0),
            Some(o) => (
                write_units(o.size),
                if o.gsi1.is_some() {
                    write_units(o.size)
                } else {
                    0.0
                },
            ),
        }
    }

    fn counter_size(key: &Key, value: i64, ttl: Option<i64>) -> usize {
        let mut item = Item::new(key.clone(), serde_json::Value::Null);
        item.counter = Some(value);
        item.ttl = ttl;
        item_size(&item)
    }
}

#[async_trait]
impl Table for MeteredTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let result = self.inner.get(key).await?;
        let size = match &result {
            Some(item) => {
                self.remember(item);
                item_size(item)
            }
            None => 0,
        };
        self.charge(key, 1.0, read_units(size), 0.0);
        self.count(|u| {
            u.gets += 1;
            u.rru += read_units(size);
        });
        Ok(result)
    }

    async fn get_eventually(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let result = self.inner.get_eventually(key).await?;
        let size = match &result {
            Some(item) => {
                self.remember(item);
                item_size(item)
            }
            None => 0,
        };
        // Eventually consistent: half the units of a strongly consistent read.
        let units = read_units(size) / 2.0;
        self.charge(key, 1.0, units, 0.0);
        self.count(|u| {
            u.gets += 1;
            u.rru += units;
        });
        Ok(result)
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        let old = self.known(&item.key);
        let new_size = item_size(&item);
        let (table, index) = Self::put_units(old.as_ref(), new_size, &item.gsi1);
        let result = self.inner.put(item.clone(), condition).await;
        let failed = matches!(&result, Err(e) if e.is_condition_failed());
        if result.is_ok() {
            self.remember(&item);
        }
        let indexed = if result.is_ok() { index } else { 0.0 };
        self.charge(&item.key, 1.0, 0.0, table + indexed);
        self.count(|u| {
            u.puts += 1;
            u.wru += table;
            if result.is_ok() {
                u.gsi_wru += index;
            }
            u.condition_failures += u64::from(failed);
        });
        result
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        let old = self.known(key);
        let (table, index) = Self::delete_units(old.as_ref());
        let result = self.inner.delete(key, condition).await;
        let failed = matches!(&result, Err(e) if e.is_condition_failed());
        if result.is_ok() {
            self.forget(key);
        }
        let indexed = if result.is_ok() { index } else { 0.0 };
        self.charge(key, 1.0, 0.0, table + indexed);
        self.count(|u| {
            u.deletes += 1;
            u.wru += table;
            if result.is_ok() {
                u.gsi_wru += index;
            }
            u.condition_failures += u64::from(failed);
        });
        result
    }

    async fn add(
        &self,
        key: &Key,
        delta: i64,
        max: Option<i64>,
        ttl: Option<i64>,
    ) -> Result<i64, StoreError> {
        let result = self.inner.add(key, delta, max, ttl).await;
        let failed = matches!(&result, Err(e) if e.is_condition_failed());
        let size = match &result {
            Ok(value) => {
                let size = Self::counter_size(key, *value, ttl);
                self.known
                    .lock()
                    .expect("known")
                    .insert(key.clone(), Known { size, gsi1: None });
                size
            }
            Err(_) => self.known(key).map_or(0, |k| k.size),
        };
        self.charge(key, 1.0, 0.0, write_units(size));
        self.count(|u| {
            u.adds += 1;
            u.wru += write_units(size);
            u.condition_failures += u64::from(failed);
        });
        result
    }

    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let result = self.inner.batch_get(keys).await?;
        Ok(self.charge_batch_get(keys, result, 1.0))
    }

    async fn batch_get_eventually(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let result = self.inner.batch_get_eventually(keys).await?;
        Ok(self.charge_batch_get(keys, result, 0.5))
    }

    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        let on_index = query.index == Index::Gsi1;
        let partition = Key::new(query.partition.clone(), "");
        let page = self.inner.query(query).await?;
        let mut bytes = 0;
        for item in &page.items {
            self.remember(item);
            bytes += item_size(item);
        }
        let units = read_units(bytes) * if on_index { 0.5 } else { 1.0 };
        self.charge(&partition, 1.0, units, 0.0);
        self.count(|u| {
            u.queries += 1;
            u.rru += units;
        });
        Ok(page)
    }

    async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        // BatchWriteItem: 25 items a request, each item at its put's units.
        let requests = items.len().div_ceil(25).max(1);
        let mut table = 0.0;
        let mut index = 0.0;
        for item in &items {
            let (t, i) =
                Self::put_units(self.known(&item.key).as_ref(), item_size(item), &item.gsi1);
            self.charge(
                &item.key,
                requests as f64 / items.len().max(1) as f64,
                0.0,
                t + i,
            );
            table += t;
            index += i;
        }
        let result = self.inner.batch_put(items.clone()).await;
        if result.is_ok() {
            for item in &items {
                self.remember(item);
            }
        }
        let mut u = self.usage.lock().expect("usage");
        u.calls += requests as u64;
        u.puts += items.len() as u64;
        u.wru += table;
        u.gsi_wru += index;
        drop(u);
        result
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let mut table = 0.0;
        let mut index = 0.0;
        let mut shares = Vec::with_capacity(ops.len());
        for op in &ops {
            let (key, t, i) = match op {
                WriteOp::Put { item, .. } => {
                    let old = self.known(&item.key);
                    let (t, i) = Self::put_units(old.as_ref(), item_size(item), &item.gsi1);
                    (&item.key, 2.0 * t, i)
                }
                WriteOp::Delete { key, .. } => {
                    let (t, i) = Self::delete_units(self.known(key).as_ref());
                    (key, 2.0 * t, i)
                }
                WriteOp::Check { key, .. } => {
                    let size = self.known(key).map_or(0, |k| k.size);
                    (key, 2.0 * write_units(size), 0.0)
                }
                WriteOp::Add { key, .. } => {
                    let size = self.known(key).map_or(0, |k| k.size);
                    let size = size.max(Self::counter_size(key, 0, None));
                    (key, 2.0 * write_units(size), 0.0)
                }
            };
            table += t;
            index += i;
            shares.push((key.clone(), t, i));
        }
        let result = self.inner.transact(ops.clone()).await;
        for (key, t, i) in &shares {
            let i = if result.is_ok() { *i } else { 0.0 };
            self.charge(key, 1.0 / ops.len() as f64, 0.0, t + i);
        }
        let failed = matches!(&result, Err(e) if e.is_condition_failed());
        if result.is_ok() {
            for op in &ops {
                match op {
                    WriteOp::Put { item, .. } => self.remember(item),
                    WriteOp::Delete { key, .. } => self.forget(key),
                    WriteOp::Add { key, delta } => {
                        let size = Self::counter_size(key, *delta, None)
                            .max(self.known(key).map_or(0, |k| k.size));
                        self.known
                            .lock()
                            .expect("known")
                            .insert(key.clone(), Known { size, gsi1: None });
                    }
                    WriteOp::Check { .. } => {}
                }
            }
        }
        self.count(|u| {
            u.transacts += 1;
            u.wru += table;
            if result.is_ok() {
                u.gsi_wru += index;
            }
            u.condition_failures += u64::from(failed);
        });
        result
    }
}

/// Counted queue requests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueUsage {
    pub send: u64,
    pub send_batch: u64,
    pub receive: u64,
    pub delete: u64,
    pub change_visibility: u64,
    /// Messages enqueued (by either send call).
    pub messages: u64,
}

impl QueueUsage {
    /// Billable requests (each call is one request; every payload here is far below 64 KB).
    pub fn requests(&self) -> u64 {
        self.send + self.send_batch + self.receive + self.delete + self.change_visibility
    }

    /// `self - earlier`.
    pub fn since(&self, e: &QueueUsage) -> QueueUsage {
        QueueUsage {
            send: self.send - e.send,
            send_batch: self.send_batch - e.send_batch,
            receive: self.receive - e.receive,
            delete: self.delete - e.delete,
            change_visibility: self.change_visibility - e.change_visibility,
            messages: self.messages - e.messages,
        }
    }

    /// Sum of two.
    pub fn plus(&self, o: &QueueUsage) -> QueueUsage {
        QueueUsage {
            send: self.send + o.send,
            send_batch: self.send_batch + o.send_batch,
            receive: self.receive + o.receive,
            delete: self.delete + o.delete,
            change_visibility: self.change_visibility + o.change_visibility,
            messages: self.messages + o.messages,
        }
    }
}

/// A queue that counts the requests made of another.
pub struct MeteredQueue {
    inner: Arc<dyn Queue>,
    usage: Mutex<QueueUsage>,
}

impl MeteredQueue {
    /// Counts requests to `inner`.
    pub fn new(inner: Arc<dyn Queue>) -> Self {
        Self {
            inner,
            usage: Mutex::new(QueueUsage::default()),
        }
    }

    /// Everything counted so far.
    pub fn usage(&self) -> QueueUsage {
        *self.usage.lock().expect("usage")
    }

    fn count(&self, f: impl FnOnce(&mut QueueUsage)) {
        f(&mut self.usage.lock().expect("usage"));
    }
}

#[async_trait]
impl Queue for MeteredQueue {
    async fn send(&self, body: &str, delay: Duration) -> Result<(), QueueError> {
        self.count(|u| {
            u.send += 1;
            u.messages += 1;
        });
        self.inner.send(body, delay).await
    }

    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError> {
        self.count(|u| {
            u.send_batch += 1;
            u.messages += bodies.len() as u64;
        });
        self.inner.send_batch(bodies).await
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.count(|u| u.receive += 1);
        self.inner.receive(max, visibility, wait).await
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.count(|u| u.delete += 1);
        self.inner.delete(receipt).await
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.count(|u| u.change_visibility += 1);
        self.inner.change_visibility(receipt, visibility).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plunk_store::backend::sqlite::SqliteTable;
    use serde_json::json;

    fn table() -> MeteredTable {
        MeteredTable::new(Arc::new(SqliteTable::in_memory().unwrap()))
    }

    #[tokio::test]
    async fn writes_round_up_per_kilobyte_and_conditions_that_fail_still_cost() {
        let t = table();
        let small = Item::new(Key::new("P", "a"), json!({ "x": 1 }));
        t.put(small.clone(), Condition::NotExists).await.unwrap();
        assert_eq!(t.usage().wru, 1.0);
        let big = Item::new(Key::new("P", "a"), json!({ "x": "y".repeat(1500) }));
        t.put(big.clone(), Condition::None).await.unwrap();
        assert_eq!(t.usage().wru, 3.0, "the larger of old and new: 2 KB");
        assert!(t.put(small, Condition::NotExists).await.is_err());
        assert_eq!(
            t.usage().wru,
            5.0,
            "a refused write is billed on the item it was checked against"
        );
        assert_eq!(t.usage().condition_failures, 1);
        t.get(&Key::new("P", "a")).await.unwrap();
        t.get(&Key::new("P", "missing")).await.unwrap();
        assert_eq!(t.usage().rru, 2.0);
    }

    #[tokio::test]
    async fn transactions_cost_double_and_the_index_costs_its_own_writes() {
        let t = table();
        let item = Item::new(Key::new("P", "a"), json!({})).with_gsi1("G", "1");
        t.transact(vec![
            WriteOp::Put {
                item,
                condition: Condition::NotExists,
            },
            WriteOp::Add {
                key: Key::new("P", "n"),
                delta: 1,
            },
        ])
        .await
        .unwrap();
        let u = t.usage();
        assert_eq!((u.wru, u.gsi_wru), (4.0, 1.0));
        let mut q = Query::new(Index::Gsi1, "G");
        q.limit = 10;
        t.query(q).await.unwrap();
        assert_eq!(t.usage().rru, 0.5);
    }
}

/// Counted blob requests (S3 PUT and GET).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BlobUsage {
    pub puts: u64,
    pub gets: u64,
}

/// A [`BlobStore`] that counts requests.
pub struct MeteredBlobs {
    inner: Arc<dyn BlobStore>,
    usage: Mutex<BlobUsage>,
}

impl MeteredBlobs {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn BlobStore>) -> Self {
        Self {
            inner,
            usage: Mutex::new(BlobUsage::default()),
        }
    }

    /// What was counted so far.
    pub fn usage(&self) -> BlobUsage {
        *self.usage.lock().expect("blob usage")
    }
}

#[async_trait]
impl BlobStore for MeteredBlobs {
    async fn put(&self, key: &str, bytes: bytes::Bytes) -> Result<(), BlobError> {
        self.usage.lock().expect("blob usage").puts += 1;
        self.inner.put(key, bytes).await
    }

    async fn get(&self, key: &str) -> Result<Option<bytes::Bytes>, BlobError> {
        self.usage.lock().expect("blob usage").gets += 1;
        self.inner.get(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.inner.delete(key).await
    }
}
