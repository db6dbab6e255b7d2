//! The storage port, the single-table key design, cursors and repositories.
//!
//! Repositories are written once over the [`table::Table`] port; [`backend::dynamo`] and
//! [`backend::sqlite`] implement it. Every key format lives in [`keys`].

pub mod backend;
pub mod config;
pub mod cursor;
pub mod feed;
pub mod keys;
pub mod lookup_cache;
pub mod repo;
pub mod table;

use cursor::{CursorCodec, CursorSecret};
use feed::ChangeFeed;
use plunk_domain::page_token::{PageTokenKeys, PageTokenSecret, SECRET_LEN};
use std::sync::Arc;
use table::{Condition, Item, StoreError, Table};
use tokio::sync::OnceCell;

pub use repo::contacts::{
    ContactError, ContactFilter, Contacts, CurrentContact, SubscriptionOutcome, UpsertOutcome,
};
pub use repo::events::Events;
pub use repo::projects::{KeyLookup, ProjectError, Projects, RotatedKeys};
pub use repo::rate_limit::{RateDecision, RateLimiter};

/// The repositories over one table, cheap to clone.
#[derive(Clone)]
pub struct Store {
    table: Arc<dyn Table>,
    cursor: Arc<OnceCell<CursorCodec>>,
    feed: Option<Arc<dyn ChangeFeed>>,
    page_tokens: Arc<OnceCell<PageTokenKeys>>,
    lookups: Arc<lookup_cache::Lookups>,
}

impl Store {
    /// Wraps a table backend.
    pub fn new(table: Arc<dyn Table>) -> Self {
        Self {
            table,
            cursor: Arc::new(OnceCell::new()),
            feed: None,
            page_tokens: Arc::new(OnceCell::new()),
            lookups: Arc::new(lookup_cache::Lookups::new(std::time::Duration::ZERO)),
        }
    }

    /// Reuses project settings for up to `ttl` (at most 60 s, as key lookups; zero, the
    /// default, reads them every time). See [`lookup_cache`].
    pub fn with_lookup_ttl(mut self, ttl: std::time::Duration) -> Self {
        let ttl = ttl.min(std::time::Duration::from_secs(60));
        self.lookups = Arc::new(lookup_cache::Lookups::new(ttl));
        self
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

    /// Outgoing webhooks and their deliveries.
    pub fn webhooks(&self) -> repo::webhooks::Webhooks<'_> {
        repo::webhooks::Webhooks::new(self.table.as_ref())
    }

    /// Projects and API keys.
    pub fn projects(&self) -> Projects<'_> {
        Projects::new(self.table.as_ref(), &self.lookups)
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

    /// Campaign counters (`unsubscribedCount`, …), each email counted at most once.
    pub fn campaign_counters(&self) -> repo::campaign_counters::CampaignCounters<'_> {
        repo::campaign_counters::CampaignCounters::new(self.table.as_ref())
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

    /// The hosted-page token keys, read from the table like the cursor secrets (created on first
    /// use, so every process sharing the table signs and verifies alike).
    pub async fn page_tokens(&self) -> Result<&PageTokenKeys, StoreError> {
        self.page_tokens
            .get_or_try_init(|| load_or_create_page_token_keys(self.table.as_ref()))
            .await
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSecret {
    id: u8,
    hex: String,
}

/// Secrets read from a SYSTEM item: `(id, bytes)` in stored order and the id of the signing one
/// when the item names it (else the first signs).
struct LoadedSecrets {
    secrets: Vec<(u8, Vec<u8>)>,
    current: Option<u8>,
}

/// Reads the secrets item at `key`, creating it with one random 32-byte secret (id 1) when it is
/// missing. The create is a conditional put, so processes starting at once agree on one secret.
async fn load_or_create_secrets(
    table: &dyn Table,
    key: &table::Key,
    what: &str,
) -> Result<LoadedSecrets, StoreError> {
    for _ in 0..3 {
        if let Some(item) = table.get(key).await? {
            let stored: Vec<StoredSecret> = serde_json::from_value(item.body["secrets"].clone())
                .map_err(|e| StoreError::Other(format!("{what}: {e}")))?;
            let secrets: Vec<(u8, Vec<u8>)> = stored
                .into_iter()
                .filter_map(|s| decode_hex(&s.hex).map(|bytes| (s.id, bytes)))
                .collect();
            if !secrets.is_empty() {
                let current = item.body["current"]
                    .as_u64()
                    .and_then(|c| u8::try_from(c).ok());
                return Ok(LoadedSecrets { secrets, current });
            }
        }
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let body = serde_json::json!({ "current": 1, "secrets": [ { "id": 1, "hex": hex } ] });
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
    Err(StoreError::Other(format!("could not establish {what}")))
}

async fn load_or_create_cursor_secrets(table: &dyn Table) -> Result<Vec<CursorSecret>, StoreError> {
    let loaded = load_or_create_secrets(table, &keys::cursor_secret(), "cursor secrets").await?;
    Ok(loaded
        .secrets
        .into_iter()
        .map(|(id, bytes)| CursorSecret { id, bytes })
        .collect())
}

/// The hosted-page token keys: every stored secret of 32 bytes verifies; `current` (else the
/// first) signs. Rotation adds a secret to the item and points `current` at it.
async fn load_or_create_page_token_keys(table: &dyn Table) -> Result<PageTokenKeys, StoreError> {
    let loaded =
        load_or_create_secrets(table, &keys::page_token_secrets(), "page token secrets").await?;
    let secrets: Vec<PageTokenSecret> = loaded
        .secrets
        .into_iter()
        .filter_map(|(id, bytes)| {
            let bytes: [u8; SECRET_LEN] = bytes.try_into().ok()?;
            Some(PageTokenSecret { id, bytes })
        })
        .collect();
    let current = loaded
        .current
        .or_else(|| secrets.first().map(|s| s.id))
        .ok_or_else(|| StoreError::Other("page token secrets: none of 32 bytes".into()))?;
    PageTokenKeys::new(secrets, current).ok_or_else(|| {
        StoreError::Other("page token secrets: the current id is missing or ids repeat".into())
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use backend::sqlite::SqliteTable;

    #[tokio::test]
    async fn project_settings_are_reused_within_their_ttl_and_dropped_by_this_stores_writes() {
        use plunk_domain::project::Tracking;
        let table: Arc<dyn Table> = Arc::new(SqliteTable::in_memory().unwrap());
        let cached = Store::new(table.clone()).with_lookup_ttl(std::time::Duration::from_secs(60));
        let other = Store::new(table.clone()); // another process on the same table
        let (project, _, _) = cached
            .projects()
            .create("P", 1000, Tracking::Enabled, "en")
            .await
            .unwrap();
        let get = |s: &Store| {
            let s = s.clone();
            async move { s.projects().get_cached(project.id).await.unwrap().unwrap() }
        };
        assert!(!get(&cached).await.disabled);
        other
            .projects()
            .update(project.id, |p| {
                p.disabled = true;
                Ok(())
            })
            .await
            .unwrap();
        assert!(!get(&cached).await.disabled, "kept within the ttl");
        assert!(
            get(&other).await.disabled,
            "an uncached store reads every time"
        );
        cached
            .projects()
            .update(project.id, |p| {
                p.name = "Q".into();
                Ok(())
            })
            .await
            .unwrap();
        let seen = get(&cached).await;
        assert!(
            seen.disabled && seen.name == "Q",
            "dropped by this store's write"
        );
    }

    #[tokio::test]
    async fn page_token_keys_are_created_once_and_shared_by_every_store_on_the_table() {
        let table: Arc<dyn Table> = Arc::new(SqliteTable::in_memory().unwrap());
        let (a, b) = (Store::new(table.clone()), Store::new(table.clone()));
        let (ka, kb) = tokio::join!(a.page_tokens(), b.page_tokens());
        let (ka, kb) = (ka.unwrap(), kb.unwrap());
        let contact = uuid::Uuid::now_v7();
        let token = ka.sign(contact, None, "ada@example.org");
        assert_eq!(kb.verify(&token).unwrap().contact_id, contact);
        assert_eq!(ka.current_id(), 1);
        // Distinct from the cursor secret.
        let item = table
            .get(&keys::page_token_secrets())
            .await
            .unwrap()
            .unwrap();
        let cursor = table.get(&keys::cursor_secret()).await.unwrap();
        assert!(cursor.is_none(), "only what was asked for is created");
        assert_eq!(item.body["secrets"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_rotated_secrets_item_signs_with_current_and_verifies_older_tokens() {
        let table: Arc<dyn Table> = Arc::new(SqliteTable::in_memory().unwrap());
        let contact = uuid::Uuid::now_v7();
        let old = Store::new(table.clone()).page_tokens().await.unwrap().sign(
            contact,
            None,
            "ada@example.org",
        );
        let mut item = table
            .get(&keys::page_token_secrets())
            .await
            .unwrap()
            .unwrap();
        let first = item.body["secrets"][0].clone();
        item.body = serde_json::json!({
            "current": 2,
            "secrets": [first, { "id": 2, "hex": "ab".repeat(32) }],
        });
        table.put(item, Condition::None).await.unwrap();
        let rotated = Store::new(table.clone());
        let keys = rotated.page_tokens().await.unwrap();
        assert_eq!(keys.current_id(), 2);
        assert_eq!(keys.verify(&old).unwrap().contact_id, contact);
    }
}
