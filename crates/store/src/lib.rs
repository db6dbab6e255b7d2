//! The storage port, the single-table key design, cursors and repositories.
//!
//! Repositories are written once over the [`table::Table`] port; [`backend::dynamo`] and
//! [`backend::sqlite`] implement it. Every key format lives in [`keys`].

pub mod backend;
pub mod config;
pub mod cursor;
pub mod feed;
pub mod keys;
pub mod repo;
pub mod table;

use cursor::{CursorCodec, CursorSecret};
use feed::ChangeFeed;
use std::sync::Arc;
use table::{Condition, Item, StoreError, Table};
use tokio::sync::OnceCell;

pub use repo::contacts::{ContactError, ContactFilter, Contacts, UpsertOutcome};
pub use repo::events::Events;
pub use repo::projects::{KeyLookup, ProjectError, Projects, RotatedKeys};
pub use repo::rate_limit::{RateDecision, RateLimiter};

/// The repositories over one table, cheap to clone.
#[derive(Clone)]
pub struct Store {
    table: Arc<dyn Table>,
    cursor: Arc<OnceCell<CursorCodec>>,
    feed: Option<Arc<dyn ChangeFeed>>,
}

impl Store {
    /// Wraps a table backend.
    pub fn new(table: Arc<dyn Table>) -> Self {
        Self {
            table,
            cursor: Arc::new(OnceCell::new()),
            feed: None,
        }
    }

    /// The embedded backend, with its change feed.
    pub fn sqlite(table: backend::sqlite::SqliteTable) -> Self {
        let feed: Arc<dyn ChangeFeed> = Arc::new(table.clone());
        let mut store = Self::new(Arc::new(table));
        store.feed = Some(feed);
        store
    }

    /// The change feed of new events, when this process reads it itself (the embedded backend;
    /// on DynamoDB the stream is read by the event-dispatch function).
    pub fn change_feed(&self) -> Option<&Arc<dyn ChangeFeed>> {
        self.feed.as_ref()
    }

    /// The underlying table port.
    pub fn table(&self) -> &Arc<dyn Table> {
        &self.table
    }

    /// Event counters (names, daily stats, unique contacts).
    pub fn event_stats(&self) -> repo::event_stats::EventStats<'_> {
        repo::event_stats::EventStats::new(self.table.as_ref())
    }

    /// Projects and API keys.
    pub fn projects(&self) -> Projects<'_> {
        Projects::new(self.table.as_ref())
    }

    /// Contacts.
    pub fn contacts(&self) -> Contacts<'_> {
        Contacts::new(self.table.as_ref())
    }

    /// Sending domains and the sender check.
    pub fn domains(&self) -> repo::domains::Domains<'_> {
        repo::domains::Domains::new(self.table.as_ref())
    }

    /// Email records and their queued content.
    pub fn emails(&self) -> repo::emails::Emails<'_> {
        repo::emails::Emails::new(self.table.as_ref())
    }

    /// Markers of applied provider notifications (delivery feedback).
    pub fn feedback(&self) -> repo::feedback::Feedback<'_> {
        repo::feedback::Feedback::new(self.table.as_ref())
    }

    /// The suppression list.
    pub fn suppressions(&self) -> repo::suppressions::Suppressions<'_> {
        repo::suppressions::Suppressions::new(self.table.as_ref())
    }

    /// Templates.
    pub fn templates(&self) -> repo::templates::Templates<'_> {
        repo::templates::Templates::new(self.table.as_ref())
    }

    /// Events.
    pub fn events(&self) -> Events<'_> {
        Events::new(self.table.as_ref())
    }

    /// The per-project request counter.
    pub fn rate_limiter(&self) -> RateLimiter<'_> {
        RateLimiter::new(self.table.as_ref())
    }

    /// Idempotency-key records (spec README §8).
    pub fn idempotency(&self) -> repo::idempotency::Idempotency<'_> {
        repo::idempotency::Idempotency::new(self.table.as_ref())
    }

    /// The cursor codec, with the signing secrets read from the table (created on first use, so
    /// every process sharing the table signs alike).
    pub async fn cursor_codec(&self) -> Result<&CursorCodec, StoreError> {
        self.cursor
            .get_or_try_init(|| async {
                let secrets = load_or_create_cursor_secrets(self.table.as_ref()).await?;
                Ok(CursorCodec::new(secrets))
            })
            .await
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSecret {
    id: u8,
    hex: String,
}

async fn load_or_create_cursor_secrets(table: &dyn Table) -> Result<Vec<CursorSecret>, StoreError> {
    let key = keys::cursor_secret();
    for _ in 0..3 {
        if let Some(item) = table.get(&key).await? {
            let stored: Vec<StoredSecret> = serde_json::from_value(item.body["secrets"].clone())
                .map_err(|e| StoreError::Other(format!("cursor secrets: {e}")))?;
            let secrets: Vec<CursorSecret> = stored
                .into_iter()
                .filter_map(|s| decode_hex(&s.hex).map(|bytes| CursorSecret { id: s.id, bytes }))
                .collect();
            if !secrets.is_empty() {
                return Ok(secrets);
            }
        }
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let body = serde_json::json!({ "secrets": [ { "id": 1, "hex": hex } ] });
        match table
            .put(Item::new(key.clone(), body), Condition::NotExists)
            .await
        {
            Ok(()) => {}
            // Another process created it first: read theirs on the next turn.
            Err(e) if e.is_condition_failed() => {}
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Other(
        "could not establish cursor secrets".into(),
    ))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// Reads a record out of an item body.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_value(item.body.clone())
        .map_err(|e| StoreError::Other(format!("corrupt item {:?}: {e}", item.key)))
}

/// Writes a record into an item body.
pub(crate) fn encode<T: serde::Serialize>(record: &T) -> serde_json::Value {
    serde_json::to_value(record).expect("records serialise to JSON")
}
