//! Embedded backend: one SQLite file in the data directory, in WAL mode, so the local server and
//! the `plunk` CLI can use the same data at the same time (each process opens its own connection
//! and SQLite serialises writers with a busy timeout).

use crate::feed::{ChangeFeed, FeedRecord};
use crate::table::{
    unix_now, Condition, Index, Item, Key, Page, Query, StoreError, Table, WriteOp,
};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    g1pk TEXT,
    g1sk TEXT,
    ttl INTEGER,
    version INTEGER NOT NULL DEFAULT 0,
    counter INTEGER,
    body TEXT NOT NULL,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_gsi1 ON items (g1pk, g1sk, pk, sk) WHERE g1pk IS NOT NULL;
CREATE TABLE IF NOT EXISTS item_stream (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    body TEXT NOT NULL
);
";

/// The change feed's trigger, recording fed items in the same transaction, like a DynamoDB
/// stream behind the deployed filter (`keys::fed`): new items of the events, STATIC member and
/// departure partitions, and every write of a contact. (It replaces the first version, which fed
/// events only.)
fn stream_trigger() -> String {
    use crate::keys::{
        CONTACT_PARTITION_SUFFIX, DEPARTURES_PARTITION_SUFFIX, EVENT_PARTITION_SUFFIX,
        MEMBERS_PARTITION_SUFFIX,
    };
    format!(
        "DROP TRIGGER IF EXISTS item_stream_insert;
         CREATE TRIGGER IF NOT EXISTS item_stream_feed BEFORE INSERT ON items
         WHEN NEW.pk GLOB 'PROJECT#*{contacts}'
           OR ((NEW.pk GLOB 'PROJECT#*{events}'
                OR NEW.pk GLOB 'PROJECT#*{members}'
                OR NEW.pk GLOB 'PROJECT#*{departures}')
               AND NOT EXISTS (SELECT 1 FROM items WHERE pk = NEW.pk AND sk = NEW.sk))
         BEGIN
           INSERT INTO item_stream (pk, sk, body) VALUES (NEW.pk, NEW.sk, NEW.body);
         END;",
        contacts = CONTACT_PARTITION_SUFFIX,
        events = EVENT_PARTITION_SUFFIX,
        members = MEMBERS_PARTITION_SUFFIX,
        departures = DEPARTURES_PARTITION_SUFFIX,
    )
}

/// The SQLite table.
#[derive(Clone)]
pub struct SqliteTable {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteTable {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(other)?;
        Self::init(conn)
    }

    /// A private in-memory database, for tests and benchmarks.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(other)?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(other)?;
        // WAL lets readers and one writer from several processes proceed together.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(other)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(other)?;
        // Large writers (a campaign fan-out, a segment pass) spent most of their CPU in the
        // kernel: pages read with pread on every cache miss and the WAL checkpointed every 1,000
        // pages (each a fsync, and hot pages copied again and again). A 64 MiB page cache,
        // reads through a memory map and a checkpoint every 16,384 pages (a WAL of up to 64 MiB)
        // cut the fan-out's CPU by a third (`campaign-fanout`, docs/benchmarks.md).
        conn.pragma_update(None, "cache_size", -65_536)
            .map_err(other)?;
        conn.pragma_update(None, "mmap_size", 1_i64 << 30)
            .map_err(other)?;
        conn.pragma_update(None, "wal_autocheckpoint", 16_384)
            .map_err(other)?;
        conn.execute_batch(SCHEMA).map_err(other)?;
        conn.execute_batch(&stream_trigger()).map_err(other)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Other("sqlite connection poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?
    }
}

#[async_trait]
impl ChangeFeed for SqliteTable {
    async fn read(&self, limit: usize) -> Result<Vec<FeedRecord>, StoreError> {
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT seq, pk, sk, body FROM item_stream ORDER BY seq LIMIT ?1")
                .map_err(other)?;
            let rows = stmt
                .query_map(params![limit.max(1) as i64], |r| {
                    let body: String = r.get(3)?;
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        body,
                    ))
                })
                .map_err(other)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(other)?;
            rows.into_iter()
                .map(|(seq, pk, sk, body)| {
                    let body = serde_json::from_str(&body).map_err(|e| {
                        StoreError::Other(format!("corrupt stream record {seq}: {e}"))
                    })?;
                    Ok(FeedRecord {
                        seq,
                        item: Item::new(Key::new(pk, sk), body),
                    })
                })
                .collect()
        })
        .await
    }

    async fn acknowledge(&self, seq: i64) -> Result<(), StoreError> {
        self.with(move |c| {
            c.execute("DELETE FROM item_stream WHERE seq <= ?1", params![seq])
                .map_err(other)?;
            Ok(())
        })
        .await
    }
}

fn other(e: impl std::fmt::Display) -> StoreError {
    let text = e.to_string();
    if text.contains("database is locked") || text.contains("busy") {
        StoreError::Unavailable(text)
    } else {
        StoreError::Other(text)
    }
}

/// The live (unexpired) item state at `key`: `(version)`.
fn live_version(tx: &Connection, key: &Key, now: i64) -> Result<Option<u64>, StoreError> {
    tx.prepare_cached(
        "SELECT version FROM items WHERE pk = ?1 AND sk = ?2 AND (ttl IS NULL OR ttl >= ?3)",
    )
    .map_err(other)?
    .query_row(params![key.pk, key.sk, now], |r| r.get::<_, i64>(0))
    .optional()
    .map(|v| v.map(|v| v as u64))
    .map_err(other)
}

fn check(tx: &Connection, key: &Key, condition: Condition, now: i64) -> Result<bool, StoreError> {
    Ok(match condition {
        Condition::None => true,
        Condition::NotExists => live_version(tx, key, now)?.is_none(),
        Condition::Exists => live_version(tx, key, now)?.is_some(),
        Condition::VersionEquals(v) => live_version(tx, key, now)? == Some(v),
    })
}

fn write_item(tx: &Connection, item: &Item) -> Result<(), StoreError> {
    let (g1pk, g1sk) = match &item.gsi1 {
        Some((p, s)) => (Some(p.as_str()), Some(s.as_str())),
        None => (None, None),
    };
    tx.prepare_cached(
        // An upsert rather than `INSERT OR REPLACE`: a replace deletes the row and inserts it
        // again, which needs a statement journal on every write.
        "INSERT INTO items (pk, sk, g1pk, g1sk, ttl, version, counter, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (pk, sk) DO UPDATE SET g1pk = excluded.g1pk, g1sk = excluded.g1sk,
           ttl = excluded.ttl, version = excluded.version, counter = excluded.counter,
           body = excluded.body",
    )
    .map_err(other)?
    .execute(params![
        item.key.pk,
        item.key.sk,
        g1pk,
        g1sk,
        item.ttl,
        item.version as i64,
        item.counter,
        body_text(&item.body)?
    ])
    .map_err(other)?;
    Ok(())
}

/// An item body as stored: written straight into a buffer sized for a typical record (`Value`'s
/// `Display` goes through the formatting machinery, and a growing string copies itself).
fn body_text(body: &serde_json::Value) -> Result<String, StoreError> {
    let mut out = Vec::with_capacity(1024);
    serde_json::to_writer(&mut out, body).map_err(|e| StoreError::Other(e.to_string()))?;
    String::from_utf8(out).map_err(|e| StoreError::Other(e.to_string()))
}

/// Adds to a counter, creating it (with `ttl`) when absent or expired. Returns the new value.
fn add_counter(
    tx: &Connection,
    key: &Key,
    delta: i64,
    ttl: Option<i64>,
    now: i64,
) -> Result<i64, StoreError> {
    let current: Option<(Option<i64>, Option<i64>)> = tx
        .prepare_cached("SELECT counter, ttl FROM items WHERE pk = ?1 AND sk = ?2")
        .map_err(other)?
        .query_row(params![key.pk, key.sk], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(other)?;
    match current {
        Some((counter, old_ttl)) if old_ttl.is_none_or(|t| t >= now) => {
            let value = counter.unwrap_or(0) + delta;
            tx.prepare_cached("UPDATE items SET counter = ?3 WHERE pk = ?1 AND sk = ?2")
                .map_err(other)?
                .execute(params![key.pk, key.sk, value])
                .map_err(other)?;
            Ok(value)
        }
        _ => {
            let mut item = Item::new(key.clone(), serde_json::Value::Null);
            item.counter = Some(delta);
            item.ttl = ttl;
            write_item(tx, &item)?;
            Ok(delta)
        }
    }
}

fn read_item(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    let g1pk: Option<String> = r.get(2)?;
    let g1sk: Option<String> = r.get(3)?;
    let body: String = r.get(7)?;
    Ok(Item {
        key: Key::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
        gsi1: g1pk.zip(g1sk),
        ttl: r.get(4)?,
        version: r.get::<_, i64>(5)? as u64,
        counter: r.get(6)?,
        body: serde_json::from_str(&body).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, Box::new(e))
        })?,
    })
}

fn begin(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(other)
}

#[async_trait]
impl Table for SqliteTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let key = key.clone();
        self.with(move |c| {
            c.prepare_cached(
                "SELECT pk, sk, g1pk, g1sk, ttl, version, counter, body FROM items
                 WHERE pk = ?1 AND sk = ?2 AND (ttl IS NULL OR ttl >= ?3)",
            )
            .map_err(other)?
            .query_row(params![key.pk, key.sk, unix_now()], read_item)
            .optional()
            .map_err(other)
        })
        .await
    }

    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let keys = keys.to_vec();
        self.with(move |c| {
            let now = unix_now();
            let mut stmt = c
                .prepare_cached(
                    "SELECT pk, sk, g1pk, g1sk, ttl, version, counter, body FROM items
                     WHERE pk = ?1 AND sk = ?2 AND (ttl IS NULL OR ttl >= ?3)",
                )
                .map_err(other)?;
            keys.iter()
                .map(|k| {
                    stmt.query_row(params![k.pk, k.sk, now], read_item)
                        .optional()
                        .map_err(other)
                })
                .collect()
        })
        .await
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        self.transact(vec![WriteOp::Put { item, condition }])
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed { .. } => StoreError::ConditionFailed { index: None },
                e => e,
            })
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        let key = key.clone();
        self.transact(vec![WriteOp::Delete { key, condition }])
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed { .. } => StoreError::ConditionFailed { index: None },
                e => e,
            })
    }

    async fn add(
        &self,
        key: &Key,
        delta: i64,
        max: Option<i64>,
        ttl: Option<i64>,
    ) -> Result<i64, StoreError> {
        let key = key.clone();
        self.with(move |c| {
            let now = unix_now();
            let tx = begin(c)?;
            let value = add_counter(&tx, &key, delta, ttl, now)?;
            if max.is_some_and(|m| value > m) {
                tx.rollback().map_err(other)?;
                return Err(StoreError::ConditionFailed { index: None });
            }
            tx.commit().map_err(other)?;
            Ok(value)
        })
        .await
    }

    async fn query(&self, q: Query) -> Result<Page, StoreError> {
        self.with(move |c| {
            let limit = q.limit.max(1);
            let (pcol, scol) = match q.index {
                Index::Primary => ("pk", "sk"),
                Index::Gsi1 => ("g1pk", "g1sk"),
            };
            let order = if q.descending { "DESC" } else { "ASC" };
            let cmp = if q.descending { "<" } else { ">" };
            // Ties on the index sort key are broken by the table key so paging is stable; DynamoDB's own
            // tie order is unspecified (but stable), and no repository relies on it.
            let mut sql = format!(
                "SELECT pk, sk, g1pk, g1sk, ttl, version, counter, body FROM items
                 WHERE {pcol} = ?1 AND (ttl IS NULL OR ttl >= ?2)"
            );
            let mut args: Vec<rusqlite::types::Value> =
                vec![q.partition.clone().into(), unix_now().into()];
            if let Some(prefix) = &q.sort_prefix {
                args.push(prefix.clone().into());
                sql.push_str(&format!(
                    " AND substr({scol}, 1, length(?{n})) = ?{n}",
                    n = args.len()
                ));
            }
            if let Some(start) = &q.start_after {
                let (ssk, tie) = match q.index {
                    Index::Primary => (start.key.sk.clone(), None),
                    Index::Gsi1 => (
                        start.gsi1.as_ref().map(|g| g.1.clone()).unwrap_or_default(),
                        Some((start.key.pk.clone(), start.key.sk.clone())),
                    ),
                };
                args.push(ssk.into());
                let n = args.len();
                match tie {
                    None => sql.push_str(&format!(" AND {scol} {cmp} ?{n}")),
                    Some((tpk, tsk)) => {
                        args.push(tpk.into());
                        args.push(tsk.into());
                        sql.push_str(&format!(
                            " AND ({scol} {cmp} ?{n} OR ({scol} = ?{n} AND (pk, sk) {cmp} (?{}, ?{})))",
                            n + 1,
                            n + 2
                        ));
                    }
                }
            }
            sql.push_str(&format!(" ORDER BY {scol} {order}, pk {order}, sk {order} LIMIT {}", limit + 1));
            let mut stmt = c.prepare_cached(&sql).map_err(other)?;
            let mut items = stmt
                .query_map(rusqlite::params_from_iter(args), read_item)
                .map_err(other)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(other)?;
            let more = items.len() > limit;
            items.truncate(limit);
            let last = if more {
                items.last().map(|i| i.position(q.index))
            } else {
                None
            };
            Ok(Page { items, last })
        })
        .await
    }

    async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        self.with(move |c| {
            let tx = begin(c)?;
            for item in &items {
                write_item(&tx, item)?;
            }
            tx.commit().map_err(other)?;
            Ok(())
        })
        .await
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.with(move |c| {
            let now = unix_now();
            let tx = begin(c)?;
            for (index, op) in ops.iter().enumerate() {
                let (key, condition) = match op {
                    WriteOp::Put { item, condition } => (&item.key, *condition),
                    WriteOp::Delete { key, condition } | WriteOp::Check { key, condition } => {
                        (key, *condition)
                    }
                    WriteOp::Add { key, .. } => (key, Condition::None),
                };
                if !check(&tx, key, condition, now)? {
                    tx.rollback().map_err(other)?;
                    return Err(StoreError::ConditionFailed { index: Some(index) });
                }
                match op {
                    WriteOp::Put { item, .. } => write_item(&tx, item)?,
                    WriteOp::Delete { key, .. } => {
                        tx.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")
                            .map_err(other)?
                            .execute(params![key.pk, key.sk])
                            .map_err(other)?;
                    }
                    WriteOp::Check { .. } => {}
                    WriteOp::Add { key, delta } => {
                        add_counter(&tx, key, *delta, None, now)?;
                    }
                }
            }
            tx.commit().map_err(other)?;
            Ok(())
        })
        .await
    }
}
