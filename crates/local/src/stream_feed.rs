//! The change feed of `plunk serve --store dynamo`: the table's DynamoDB stream, read by this
//! process. Deployed, the stream drives the event-dispatch function; a server on DynamoDB (Local,
//! or a real table from a VM or a container) reads the same stream itself, so new events reach
//! the same dispatcher in every mode.
//!
//! Like the embedded feed it yields the fed writes (`plunk_store::keys::fed`: new events, contact
//! writes, STATIC membership changes; the deployed event source's filter) at least once, in
//! order within each partition.
//!
//! Servers sharing a table take turns: one item in the table (`SYSTEM#STREAM_READER`) names the
//! server reading the stream, with a lease it renews while it reads, and how far each shard was
//! handled (written after each acknowledged batch). The others wait; when the reader stops
//! renewing, one of them takes over from those checkpoints within [`LEASE`], so every event is
//! dispatched once by one server, not once per server (the counters would otherwise count it
//! twice). A restarted server holds the same reader id (`stream-reader-id` in its data dir) and
//! takes its own lease back at once. A shard never handled starts at its oldest record
//! (`TRIM_HORIZON`, 24 hours back on AWS), so events stored while no server ran are dispatched
//! too.

use async_trait::async_trait;
use aws_sdk_dynamodbstreams::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, Record, ShardIteratorType};
use aws_sdk_dynamodbstreams::Client;
use plunk_store::feed::{ChangeFeed, FeedRecord};
use plunk_store::keys;
use plunk_store::table::{Condition, Item, StoreError, Table};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use uuid::Uuid;

/// The file in the data dir holding this server's reader id.
pub const READER_ID_FILE: &str = "stream-reader-id";
/// How long a reader's turn lasts without renewal: the longest another server waits to take
/// over from one that died.
pub const LEASE: Duration = Duration::from_secs(30);
/// The lease is renewed when less than this is left of it.
const RENEW_WHEN_LEFT: Duration = Duration::from_secs(20);
/// How long a server that is not the reader waits before asking again.
const NOT_READER_PAUSE: Duration = Duration::from_secs(2);
/// Checkpoints that only skip records nobody waits for are written at most this often.
const SKIP_SAVE_EVERY: Duration = Duration::from_secs(5);

/// How often the shard list is read again (shards split and roll over every few hours).
const DESCRIBE_EVERY: Duration = Duration::from_secs(10);
/// The pause after a poll that found nothing: AWS allows five `GetRecords` per shard per second.
const IDLE_PAUSE: Duration = Duration::from_millis(250);
/// Records per `GetRecords` call (the service's maximum).
const RECORDS_PER_CALL: i32 = 1000;

/// The DynamoDB stream of one table as a [`ChangeFeed`].
pub struct DynamoStreamFeed {
    client: Client,
    stream_arn: String,
    /// Where the reader's lease and checkpoints live (the table itself).
    table: Arc<dyn Table>,
    /// This server's reader id.
    reader: Uuid,
    state: Mutex<State>,
}

/// What survives a restart.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Checkpoints {
    stream_arn: String,
    /// The last handled sequence number of each shard.
    shards: BTreeMap<String, String>,
    /// Shards read to their end and handled.
    finished: BTreeSet<String>,
}

#[derive(Default)]
struct ShardState {
    parent: Option<String>,
    iterator: Option<String>,
    /// The last sequence number taken from the shard (buffered or skipped).
    read_to: Option<String>,
    /// The shard is closed and every record was taken.
    drained: bool,
}

struct Pending {
    seq: i64,
    shard: String,
    sequence_number: String,
    item: Item,
}

struct State {
    saved: Checkpoints,
    shards: BTreeMap<String, ShardState>,
    buffer: VecDeque<Pending>,
    next_seq: i64,
    described_at: Option<Instant>,
    quiet_until: Option<Instant>,
    /// This server's turn as the reader, while it holds one.
    lease: Option<Lease>,
    saved_at: Option<Instant>,
}

/// The reader item's version this server last wrote, and until when its turn lasts.
#[derive(Clone, Copy)]
struct Lease {
    version: u64,
    until: Instant,
}

impl State {
    fn new(stream_arn: &str) -> Self {
        Self {
            saved: Checkpoints {
                stream_arn: stream_arn.to_owned(),
                ..Checkpoints::default()
            },
            shards: BTreeMap::new(),
            buffer: VecDeque::new(),
            next_seq: 1,
            described_at: None,
            quiet_until: None,
            lease: None,
            saved_at: None,
        }
    }

    /// Forgets everything read: after a lost turn, the next reader goes on from the checkpoints.
    fn forget(&mut self, stream_arn: &str) {
        let next_seq = self.next_seq;
        *self = Self::new(stream_arn);
        self.next_seq = next_seq;
    }
}

impl DynamoStreamFeed {
    /// The feed of the stream `stream_arn`, reached at `endpoint` (DynamoDB Local) or AWS's,
    /// taking turns with other servers through `table`; this server's reader id is kept in
    /// `data_dir`.
    pub async fn open(
        stream_arn: String,
        endpoint: Option<&str>,
        table: Arc<dyn Table>,
        data_dir: &std::path::Path,
    ) -> Result<Self, StoreError> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let client = Client::new(&loader.load().await);
        let reader = reader_id(data_dir)?;
        Ok(Self {
            client,
            state: Mutex::new(State::new(&stream_arn)),
            stream_arn,
            table,
            reader,
        })
    }

    /// True while this server is the stream's reader: renews its turn when due, or takes the
    /// turn (and the checkpoints) when nobody holds it.
    async fn hold_turn(&self, state: &mut State) -> Result<bool, StoreError> {
        let now = Instant::now();
        if let Some(lease) = state.lease {
            if lease.until.saturating_duration_since(now) > RENEW_WHEN_LEFT {
                return Ok(true);
            }
        }
        let key = keys::stream_reader();
        let current = self.table.get(&key).await?;
        let now_ms = unix_ms();
        let condition = match &current {
            None => Condition::NotExists,
            Some(item) => {
                let holder = item.body["reader"].as_str();
                let until_ms = item.body["leaseUntilMs"].as_i64().unwrap_or(0);
                let mine = holder == Some(self.reader.to_string().as_str());
                if !mine && until_ms > now_ms {
                    if state.lease.take().is_some() {
                        tracing::info!("another server reads the table's stream now");
                    }
                    state.forget(&self.stream_arn);
                    return Ok(false);
                }
                let ours_in_memory = mine
                    && state
                        .lease
                        .is_some_and(|lease| lease.version == item.version);
                if !ours_in_memory {
                    // A new turn starts from where the last reader (maybe this server before a
                    // restart) acknowledged.
                    state.forget(&self.stream_arn);
                    let saved: Checkpoints =
                        serde_json::from_value(item.body["checkpoints"].clone())
                            .unwrap_or_default();
                    if saved.stream_arn == self.stream_arn {
                        state.saved = saved;
                    }
                }
                Condition::VersionEquals(item.version)
            }
        };
        let version = current.as_ref().map_or(0, |i| i.version) + 1;
        match self.write_turn(&state.saved, version, condition).await {
            Ok(()) => {
                if state.lease.is_none() {
                    tracing::info!("this server reads the table's stream");
                }
                state.lease = Some(Lease {
                    version,
                    until: now + LEASE,
                });
                Ok(true)
            }
            Err(e) if e.is_condition_failed() => {
                state.lease = None;
                state.forget(&self.stream_arn);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the reader item: this server, a fresh lease and `saved`.
    async fn write_turn(
        &self,
        saved: &Checkpoints,
        version: u64,
        condition: Condition,
    ) -> Result<(), StoreError> {
        let body = serde_json::json!({
            "reader": self.reader.to_string(),
            "leaseUntilMs": unix_ms() + LEASE.as_millis() as i64,
            "checkpoints": saved,
        });
        let item = Item::new(keys::stream_reader(), body).with_version(version);
        self.table.put(item, condition).await
    }

    /// Reads the shard list again: new shards join, vanished (trimmed) ones are forgotten.
    async fn describe(&self, state: &mut State) -> Result<(), StoreError> {
        let mut listed: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("DescribeStream", e))?;
            let Some(description) = out.stream_description() else {
                break;
            };
            for shard in description.shards() {
                if let Some(id) = shard.shard_id() {
                    listed.insert(id.to_owned(), shard.parent_shard_id().map(str::to_owned));
                }
            }
            match description.last_evaluated_shard_id() {
                Some(last) => start = Some(last.to_owned()),
                None => break,
            }
        }
        state.shards.retain(|id, _| listed.contains_key(id));
        state.saved.finished.retain(|id| listed.contains_key(id));
        state.saved.shards.retain(|id, _| listed.contains_key(id));
        for (id, parent) in listed {
            state.shards.entry(id).or_insert_with(|| ShardState {
                parent,
                ..ShardState::default()
            });
        }
        state.described_at = Some(Instant::now());
        Ok(())
    }

    /// An iterator for `shard` after its last read (or handled) record, else at its start.
    async fn iterator(&self, state: &State, shard: &str) -> Result<Option<String>, StoreError> {
        let after = state
            .shards
            .get(shard)
            .and_then(|s| s.read_to.clone())
            .or_else(|| state.saved.shards.get(shard).cloned());
        let request = |kind: ShardIteratorType, after: Option<String>| {
            self.client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(shard)
                .shard_iterator_type(kind)
                .set_sequence_number(after)
                .send()
        };
        let out = match after {
            Some(after) => match request(ShardIteratorType::AfterSequenceNumber, Some(after)).await
            {
                Err(e) if code(&e) == Some("TrimmedDataAccessException") => {
                    tracing::warn!(shard, "the stream trimmed records this server never read; going on from the oldest kept");
                    request(ShardIteratorType::TrimHorizon, None).await
                }
                other => other,
            },
            None => request(ShardIteratorType::TrimHorizon, None).await,
        };
        match out {
            Ok(out) => Ok(out.shard_iterator().map(str::to_owned)),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(sdk_error("GetShardIterator", e)),
        }
    }

    /// Takes the next records of every readable shard into the buffer.
    async fn poll(&self, state: &mut State) -> Result<(), StoreError> {
        let stale = state
            .described_at
            .is_none_or(|at| at.elapsed() >= DESCRIBE_EVERY);
        if stale {
            self.describe(state).await?;
        }
        let ids: Vec<String> = state.shards.keys().cloned().collect();
        let mut took = 0;
        for id in ids {
            if !readable(state, &id) {
                continue;
            }
            if state.shards[&id].iterator.is_none() {
                let iterator = self.iterator(state, &id).await?;
                let shard = state.shards.entry(id.clone()).or_default();
                match iterator {
                    Some(iterator) => shard.iterator = Some(iterator),
                    None => {
                        shard.drained = true;
                        continue;
                    }
                }
            }
            let iterator = state.shards[&id].iterator.clone().unwrap_or_default();
            let out = match self
                .client
                .get_records()
                .shard_iterator(iterator)
                .limit(RECORDS_PER_CALL)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if code(&e) == Some("ExpiredIteratorException") => {
                    // Read again after the last record taken.
                    if let Some(shard) = state.shards.get_mut(&id) {
                        shard.iterator = None;
                    }
                    continue;
                }
                Err(e) if code(&e) == Some("ResourceNotFoundException") => {
                    state.shards.remove(&id);
                    continue;
                }
                Err(e) => return Err(sdk_error("GetRecords", e)),
            };
            for record in out.records() {
                took += 1;
                let Some(sequence_number) = record
                    .dynamodb()
                    .and_then(|d| d.sequence_number())
                    .map(str::to_owned)
                else {
                    continue;
                };
                if let Some(item) = fed_item(record) {
                    let seq = state.next_seq;
                    state.next_seq += 1;
                    state.buffer.push_back(Pending {
                        seq,
                        shard: id.clone(),
                        sequence_number: sequence_number.clone(),
                        item,
                    });
                }
                if let Some(shard) = state.shards.get_mut(&id) {
                    shard.read_to = Some(sequence_number);
                }
            }
            if let Some(shard) = state.shards.get_mut(&id) {
                shard.iterator = out.next_shard_iterator().map(str::to_owned);
                shard.drained = shard.iterator.is_none();
            }
        }
        if took == 0 {
            state.quiet_until = Some(Instant::now() + IDLE_PAUSE);
        }
        // Drained shards with nothing left to hand out are finished for good; records skipped
        // (not events) move the checkpoints too, written now and then.
        let due = state
            .saved_at
            .is_none_or(|at| at.elapsed() >= SKIP_SAVE_EVERY);
        if settle(state) && due {
            self.save(state).await?;
        }
        Ok(())
    }

    /// Stores the checkpoints (renewing the turn). A turn lost meanwhile forgets what was read:
    /// the next reader goes on from the last checkpoints, so a batch may be dispatched again
    /// (at least once), never skipped.
    async fn save(&self, state: &mut State) -> Result<(), StoreError> {
        let Some(lease) = state.lease else {
            return Ok(());
        };
        let version = lease.version + 1;
        match self
            .write_turn(
                &state.saved,
                version,
                Condition::VersionEquals(lease.version),
            )
            .await
        {
            Ok(()) => {
                state.lease = Some(Lease {
                    version,
                    until: Instant::now() + LEASE,
                });
                state.saved_at = Some(Instant::now());
                Ok(())
            }
            Err(e) if e.is_condition_failed() => {
                tracing::info!("another server took over reading the table's stream");
                state.lease = None;
                state.forget(&self.stream_arn);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// This server's reader id, made on first use and kept in `data_dir`.
fn reader_id(data_dir: &std::path::Path) -> Result<Uuid, StoreError> {
    let path = data_dir.join(READER_ID_FILE);
    let failed = |e: std::io::Error| StoreError::Other(format!("{}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) => Uuid::try_parse(text.trim())
            .map_err(|e| StoreError::Other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(failed)?;
            let id = Uuid::now_v7();
            std::fs::write(&path, id.to_string()).map_err(failed)?;
            Ok(id)
        }
        Err(e) => Err(failed(e)),
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A shard is read once its parent is finished (or gone), so a partition's records stay in order
/// across a split.
fn readable(state: &State, id: &str) -> bool {
    let Some(shard) = state.shards.get(id) else {
        return false;
    };
    if shard.drained || state.saved.finished.contains(id) {
        return false;
    }
    match &shard.parent {
        Some(parent) => state.saved.finished.contains(parent) || !state.shards.contains_key(parent),
        None => true,
    }
}

/// Moves each shard's checkpoint up to what was taken from it, where nothing of it is still
/// waiting in the buffer; true when the checkpoints changed.
fn settle(state: &mut State) -> bool {
    let waiting: BTreeSet<&str> = state.buffer.iter().map(|p| p.shard.as_str()).collect();
    let mut changed = false;
    for (id, shard) in &state.shards {
        if waiting.contains(id.as_str()) {
            continue;
        }
        if let Some(read_to) = &shard.read_to {
            if state.saved.shards.get(id) != Some(read_to) {
                state.saved.shards.insert(id.clone(), read_to.clone());
                changed = true;
            }
        }
        if shard.drained && state.saved.finished.insert(id.clone()) {
            changed = true;
        }
    }
    changed
}

/// The item of a fed write, else `None` (removals, rewrites of items fed only when new, other
/// partitions: the deployed event source's filter).
fn fed_item(record: &Record) -> Option<Item> {
    let is_new = match record.event_name()? {
        OperationType::Insert => true,
        OperationType::Modify => false,
        _ => return None,
    };
    let image = record.dynamodb()?.new_image()?;
    let fed =
        matches!(image.get("pk"), Some(AttributeValue::S(pk)) if keys::is_fed_write(pk, is_new));
    if !fed {
        return None;
    }
    match plunk_store::backend::dynamo::item_from_stream_image(&image_json(image)) {
        Ok(item) => Some(item),
        Err(e) => {
            tracing::warn!(error = %e, "skipping an undecodable stream record");
            None
        }
    }
}

/// The image in the DynamoDB JSON the Lambda event source delivers (strings and numbers are all
/// this store writes).
fn image_json(image: &HashMap<String, AttributeValue>) -> serde_json::Value {
    let object = image
        .iter()
        .filter_map(|(name, value)| {
            let typed = match value {
                AttributeValue::S(s) => serde_json::json!({ "S": s }),
                AttributeValue::N(n) => serde_json::json!({ "N": n }),
                _ => return None,
            };
            Some((name.clone(), typed))
        })
        .collect();
    serde_json::Value::Object(object)
}

#[async_trait]
impl ChangeFeed for DynamoStreamFeed {
    async fn read(&self, limit: usize) -> Result<Vec<FeedRecord>, StoreError> {
        let mut state = self.state.lock().await;
        let quiet = state
            .quiet_until
            .is_some_and(|until| Instant::now() < until);
        if state.buffer.len() < limit && !quiet {
            if self.hold_turn(&mut state).await? {
                self.poll(&mut state).await?;
            } else {
                state.quiet_until = Some(Instant::now() + NOT_READER_PAUSE);
            }
        }
        Ok(state
            .buffer
            .iter()
            .take(limit)
            .map(|p| FeedRecord {
                seq: p.seq,
                item: p.item.clone(),
            })
            .collect())
    }

    async fn acknowledge(&self, seq: i64) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        let mut handled: BTreeMap<String, String> = BTreeMap::new();
        while state.buffer.front().is_some_and(|p| p.seq <= seq) {
            if let Some(p) = state.buffer.pop_front() {
                handled.insert(p.shard, p.sequence_number);
            }
        }
        let mut changed = false;
        for (shard, sequence_number) in handled {
            if state.saved.shards.get(&shard) != Some(&sequence_number) {
                state.saved.shards.insert(shard, sequence_number);
                changed = true;
            }
        }
        changed |= settle(&mut state);
        if changed {
            self.save(&mut state).await?;
        }
        Ok(())
    }
}

fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.as_service_error().and_then(|s| s.code())
}

fn sdk_error<E, R>(operation: &str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let message = format!("dynamodb streams {operation}: {}", DisplayErrorContext(&e));
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            StoreError::Unavailable(message)
        }
        _ => StoreError::Other(message),
    }
}
