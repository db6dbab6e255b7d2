//! Embedded queue: named queues in one SQLite file in the local server's data directory (for
//! example `<data dir>/queues.db`), with SQS semantics, so the local deployment needs no AWS.
//!
//! - A received message is hidden for the visibility timeout; each receive hands out a new
//!   receipt and bumps `receive_count`; only the latest receipt can delete the message or change
//!   its visibility. An older one is [`QueueError::InvalidReceipt`], stricter than SQS, whose
//!   delete with an older receipt "succeeds" without deleting (and than moto, which deletes).
//! - Deleting a message that is already gone succeeds, as in SQS; changing its visibility does not.
//!   The latest receipt keeps working after the visibility timeout ends, until the next receive.
//! - `send` may delay a message (up to 15 minutes); arguments outside SQS's limits are refused.
//! - Redrive: a message already received `max_receive_count` times that becomes visible again is
//!   moved, with its id and receive count, to the dead-letter queue instead of being returned.
//! - Oldest message (by send order) first, among the visible ones.
//! - `receive` long-polls: it retries every 50 ms (woken at once by a `send` through the same
//!   handle) until a message arrives or `wait` has passed, sleeping on tokio's clock.
//!
//! The file is in WAL mode with a busy timeout, and every receive runs in an immediate
//! transaction, so the local server and the `plunk` CLI can use the same queues at the same time
//! without a message being handed to two consumers. A file-backed queue reads the wall clock
//! (shared by every process); an in-memory queue reads tokio's clock, so a test on a paused clock
//! can step past visibility timeouts and delays.

use super::{Queue, QueueError, ReceivedMessage};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, seq);
";

/// How often a waiting `receive` looks again.
const POLL: Duration = Duration::from_millis(50);
/// SQS limits.
const MAX_BATCH: usize = 10;
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
const MAX_WAIT: Duration = Duration::from_secs(20);

/// Where a message goes after too many receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedrivePolicy {
    /// The name of the dead-letter queue (in the same database).
    pub dead_letter_queue: String,
    /// How many receives a message gets before it is moved to the dead-letter queue (≥ 1).
    pub max_receive_count: u32,
}

/// Where "now" comes from, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
enum Clock {
    /// The system clock, which every process sharing the file agrees on.
    Wall,
    /// Tokio's clock, anchored to the system clock when the queue was created.
    Tokio {
        anchor_ms: i64,
        anchor: tokio::time::Instant,
    },
}

impl Clock {
    fn tokio() -> Self {
        Clock::Tokio {
            anchor_ms: wall_ms(),
            anchor: tokio::time::Instant::now(),
        }
    }

    fn now_ms(self) -> i64 {
        match self {
            Clock::Wall => wall_ms(),
            Clock::Tokio { anchor_ms, anchor } => {
                anchor_ms + anchor.elapsed().as_millis().min(i64::MAX as u128) as i64
            }
        }
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// The database behind one or more queue handles.
struct Db {
    conn: Mutex<Connection>,
    /// Woken by every send through this database handle.
    sent: Notify,
    clock: Clock,
}

/// One named queue in an SQLite database. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct EmbeddedQueue {
    db: Arc<Db>,
    name: String,
    redrive: Option<RedrivePolicy>,
}

impl std::fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedQueue")
            .field("name", &self.name)
            .field("redrive", &self.redrive)
            .finish_non_exhaustive()
    }
}

impl EmbeddedQueue {
    /// Opens (creating if needed) the database at `path` and the queue `queue_name` in it, whose
    /// messages move to `redrive.dead_letter_queue` after `redrive.max_receive_count` receives.
    pub fn open(path: &Path, queue_name: &str, redrive: RedrivePolicy) -> Result<Self, QueueError> {
        Self::new(
            Connection::open(path).map_err(sqlite)?,
            Clock::Wall,
            queue_name,
            Some(redrive),
        )
    }

    /// Opens the queue `queue_name` at `path` without redrive (a dead-letter queue, for example).
    pub fn open_without_redrive(path: &Path, queue_name: &str) -> Result<Self, QueueError> {
        Self::new(
            Connection::open(path).map_err(sqlite)?,
            Clock::Wall,
            queue_name,
            None,
        )
    }

    /// A queue in a private in-memory database, for tests; it reads tokio's clock.
    /// [`EmbeddedQueue::dead_letter_queue`] reaches its dead-letter queue.
    pub fn in_memory(queue_name: &str, redrive: RedrivePolicy) -> Result<Self, QueueError> {
        Self::new(
            Connection::open_in_memory().map_err(sqlite)?,
            Clock::tokio(),
            queue_name,
            Some(redrive),
        )
    }

    fn new(
        conn: Connection,
        clock: Clock,
        name: &str,
        redrive: Option<RedrivePolicy>,
    ) -> Result<Self, QueueError> {
        if let Some(r) = &redrive {
            if r.max_receive_count == 0 {
                return Err(QueueError::Other(
                    "max_receive_count must be at least 1".into(),
                ));
            }
            if r.dead_letter_queue == name {
                return Err(QueueError::Other(
                    "a queue cannot be its own dead-letter queue".into(),
                ));
            }
        }
        conn.busy_timeout(Duration::from_secs(10)).map_err(sqlite)?;
        // WAL lets readers and one writer from several processes proceed together.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite)?;
        conn.execute_batch(SCHEMA).map_err(sqlite)?;
        Ok(Self {
            db: Arc::new(Db {
                conn: Mutex::new(conn),
                sent: Notify::new(),
                clock,
            }),
            name: name.to_string(),
            redrive,
        })
    }

    /// The queue named `name` in the same database, sharing this handle's connection.
    pub fn sibling(&self, name: &str, redrive: Option<RedrivePolicy>) -> Self {
        Self {
            db: self.db.clone(),
            name: name.to_string(),
            redrive,
        }
    }

    /// This queue's dead-letter queue (same database, no redrive of its own), if it has one.
    pub fn dead_letter_queue(&self) -> Option<Self> {
        self.redrive
            .as_ref()
            .map(|r| self.sibling(&r.dead_letter_queue, None))
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many messages the queue holds, visible or not.
    pub async fn len(&self) -> Result<usize, QueueError> {
        let name = self.name.clone();
        self.with(move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM messages WHERE queue = ?1",
                params![name],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(sqlite)
        })
        .await
    }

    /// Whether the queue holds no message at all.
    pub async fn is_empty(&self) -> Result<bool, QueueError> {
        Ok(self.len().await? == 0)
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn with<T, F>(&self, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, QueueError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db
                .conn
                .lock()
                .map_err(|_| QueueError::Other("sqlite connection poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| QueueError::Other(e.to_string()))?
    }

    async fn insert(&self, bodies: Vec<String>, delay: Duration) -> Result<(), QueueError> {
        if delay > MAX_DELAY {
            return Err(QueueError::Other("delay must be at most 15 minutes".into()));
        }
        let name = self.name.clone();
        let visible_at = self.db.clock.now_ms() + millis(delay);
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite)?;
            for body in &bodies {
                tx.execute(
                    "INSERT INTO messages (queue, message_id, body, visible_at) VALUES (?1, ?2, ?3, ?4)",
                    params![name, uuid::Uuid::now_v7().to_string(), body, visible_at],
                )
                .map_err(sqlite)?;
            }
            tx.commit().map_err(sqlite)
        })
        .await?;
        self.db.sent.notify_waiters();
        Ok(())
    }

    /// One receive attempt: hides and returns up to `max` visible messages, moving those past
    /// the maximum receive count to the dead-letter queue on the way.
    async fn receive_now(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let name = self.name.clone();
        let redrive = self.redrive.clone();
        let now = self.db.clock.now_ms();
        let hidden_until = now + millis(visibility);
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite)?;
            let mut received = Vec::new();
            let mut after = 0_i64;
            'pages: loop {
                let page: Vec<(i64, String, String, u32)> = tx
                    .prepare_cached(
                        "SELECT seq, message_id, body, receive_count FROM messages
                         WHERE queue = ?1 AND seq > ?2 AND visible_at <= ?3
                         ORDER BY seq LIMIT ?4",
                    )
                    .and_then(|mut s| {
                        s.query_map(params![name, after, now, MAX_BATCH as i64], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                        })?
                        .collect()
                    })
                    .map_err(sqlite)?;
                let full = page.len() == MAX_BATCH;
                for (seq, message_id, body, count) in page {
                    after = seq;
                    if let Some(r) = redrive.as_ref().filter(|r| count >= r.max_receive_count) {
                        tx.execute(
                            "UPDATE messages SET queue = ?2, visible_at = ?3, receipt = NULL
                             WHERE seq = ?1",
                            params![seq, r.dead_letter_queue, now],
                        )
                        .map_err(sqlite)?;
                        continue;
                    }
                    let receipt = format!("{message_id}:{:032x}", rand::random::<u128>());
                    tx.execute(
                        "UPDATE messages SET visible_at = ?2, receive_count = ?3, receipt = ?4
                         WHERE seq = ?1",
                        params![seq, hidden_until, count + 1, receipt],
                    )
                    .map_err(sqlite)?;
                    received.push(ReceivedMessage {
                        message_id,
                        receipt,
                        body,
                        receive_count: count + 1,
                    });
                    if received.len() == max {
                        break 'pages;
                    }
                }
                if !full {
                    break;
                }
            }
            tx.commit().map_err(sqlite)?;
            Ok(received)
        })
        .await
    }

    /// The message a receipt names: `Ok(None)` when it no longer exists in this queue,
    /// `Err(InvalidReceipt)` when the receipt is malformed or not the message's latest.
    fn current(c: &Connection, queue: &str, receipt: &str) -> Result<Option<i64>, QueueError> {
        let (message_id, _) = receipt.split_once(':').ok_or(QueueError::InvalidReceipt)?;
        let row: Option<(i64, Option<String>)> = c
            .query_row(
                "SELECT seq, receipt FROM messages WHERE message_id = ?1 AND queue = ?2",
                params![message_id, queue],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sqlite)?;
        match row {
            None => Ok(None),
            Some((seq, Some(latest))) if latest == receipt => Ok(Some(seq)),
            Some(_) => Err(QueueError::InvalidReceipt),
        }
    }
}

fn sqlite(e: rusqlite::Error) -> QueueError {
    let text = e.to_string();
    if text.contains("database is locked") || text.contains("busy") {
        QueueError::Unavailable(text)
    } else {
        QueueError::Other(text)
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn send(&self, body: &str, delay: Duration) -> Result<(), QueueError> {
        self.insert(vec![body.to_string()], delay).await
    }

    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError> {
        if bodies.len() > MAX_BATCH {
            return Err(QueueError::Other(
                "a batch holds at most 10 messages".into(),
            ));
        }
        if bodies.is_empty() {
            return Ok(());
        }
        self.insert(bodies.to_vec(), Duration::ZERO).await
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        if !(1..=MAX_BATCH).contains(&max) {
            return Err(QueueError::Other("max must be between 1 and 10".into()));
        }
        if visibility > MAX_VISIBILITY {
            return Err(QueueError::Other(
                "visibility must be at most 12 hours".into(),
            ));
        }
        if wait > MAX_WAIT {
            return Err(QueueError::Other("wait must be at most 20 seconds".into()));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Listen before looking, so a send between the two is not missed.
            let sent = self.db.sent.notified();
            tokio::pin!(sent);
            sent.as_mut().enable();
            let messages = self.receive_now(max, visibility).await?;
            let now = tokio::time::Instant::now();
            if !messages.is_empty() || now >= deadline {
                return Ok(messages);
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL.min(deadline - now)) => {}
                _ = sent => {}
            }
        }
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        let name = self.name.clone();
        let receipt = receipt.to_string();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite)?;
            if let Some(seq) = Self::current(&tx, &name, &receipt)? {
                tx.execute("DELETE FROM messages WHERE seq = ?1", params![seq])
                    .map_err(sqlite)?;
            }
            tx.commit().map_err(sqlite)
        })
        .await
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        if visibility > MAX_VISIBILITY {
            return Err(QueueError::Other(
                "visibility must be at most 12 hours".into(),
            ));
        }
        let name = self.name.clone();
        let receipt = receipt.to_string();
        let visible_at = self.db.clock.now_ms() + millis(visibility);
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite)?;
            let seq = Self::current(&tx, &name, &receipt)?.ok_or(QueueError::InvalidReceipt)?;
            tx.execute(
                "UPDATE messages SET visible_at = ?2 WHERE seq = ?1",
                params![seq, visible_at],
            )
            .map_err(sqlite)?;
            tx.commit().map_err(sqlite)
        })
        .await?;
        if visibility.is_zero() {
            self.db.sent.notify_waiters();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn redrive() -> RedrivePolicy {
        RedrivePolicy {
            dead_letter_queue: "jobs-dlq".into(),
            max_receive_count: 3,
        }
    }

    const HIDE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn two_handles_on_one_file_share_the_queue_and_never_hand_out_a_message_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queues.db");
        let a = EmbeddedQueue::open(&path, "jobs", redrive()).unwrap();
        let b = EmbeddedQueue::open(&path, "jobs", redrive()).unwrap();
        for chunk in (0..100).collect::<Vec<_>>().chunks(10) {
            let bodies: Vec<String> = chunk.iter().map(|i| i.to_string()).collect();
            a.send_batch(&bodies).await.unwrap();
        }
        let drain = |q: EmbeddedQueue| {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let got = q.receive(3, HIDE, Duration::ZERO).await.unwrap();
                    if got.is_empty() {
                        return seen;
                    }
                    seen.extend(got.into_iter().map(|m| m.body));
                }
            })
        };
        let (x, y) = (drain(a.clone()), drain(b.clone()));
        let mut all = x.await.unwrap();
        all.extend(y.await.unwrap());
        assert_eq!(all.len(), 100);
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 100);
    }

    #[tokio::test]
    async fn queues_in_one_file_are_independent() {
        let q = EmbeddedQueue::in_memory("jobs", redrive()).unwrap();
        let other = q.sibling("other", None);
        q.send("for jobs", Duration::ZERO).await.unwrap();
        other.send("for other", Duration::ZERO).await.unwrap();
        let got = other.receive(10, HIDE, Duration::ZERO).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body, "for other");
        // A receipt of another queue is unknown here: delete is a no-op, the message stays.
        q.delete(&got[0].receipt).await.unwrap();
        assert_eq!(other.len().await.unwrap(), 1);
        assert_eq!(q.len().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_message_received_max_times_moves_to_the_dead_letter_queue_with_its_id() {
        let q = EmbeddedQueue::in_memory("jobs", redrive()).unwrap();
        q.send("poison", Duration::ZERO).await.unwrap();
        let mut id = String::new();
        for n in 1..=3 {
            let got = q.receive(1, HIDE, Duration::ZERO).await.unwrap();
            assert_eq!(got[0].receive_count, n);
            q.change_visibility(&got[0].receipt, Duration::ZERO)
                .await
                .unwrap();
            id = got[0].message_id.clone();
        }
        assert!(q.receive(1, HIDE, Duration::ZERO).await.unwrap().is_empty());
        assert!(q.is_empty().await.unwrap());
        let dlq = q.dead_letter_queue().unwrap();
        assert_eq!(dlq.name(), "jobs-dlq");
        let dead = dlq.receive(1, HIDE, Duration::ZERO).await.unwrap();
        assert_eq!(dead[0].message_id, id);
        assert_eq!(dead[0].receive_count, 4);
    }

    #[tokio::test]
    async fn arguments_outside_the_sqs_limits_are_refused() {
        let q = EmbeddedQueue::in_memory("jobs", redrive()).unwrap();
        let eleven: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        assert!(q.send_batch(&eleven).await.is_err());
        assert!(q.send("x", Duration::from_secs(901)).await.is_err());
        assert!(q.receive(0, HIDE, Duration::ZERO).await.is_err());
        assert!(q.receive(11, HIDE, Duration::ZERO).await.is_err());
        assert!(q.receive(1, HIDE, Duration::from_secs(21)).await.is_err());
        assert!(EmbeddedQueue::in_memory(
            "jobs",
            RedrivePolicy {
                dead_letter_queue: "jobs".into(),
                max_receive_count: 1
            }
        )
        .is_err());
    }

    #[tokio::test]
    async fn a_waiting_receive_returns_as_soon_as_a_message_is_sent() {
        let q = EmbeddedQueue::in_memory("jobs", redrive()).unwrap();
        let sender = q.clone();
        let started = std::time::Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            sender.send("hello", Duration::ZERO).await.unwrap();
        });
        let got = q.receive(1, HIDE, Duration::from_secs(10)).await.unwrap();
        assert_eq!(got[0].body, "hello");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
