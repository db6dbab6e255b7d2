//! The storage port, the single-table key design, cursors and repositories.
//!
//! Repositories are written once over the [`table::Table`] port; [`backend::dynamo`] and
//! [`backend::sqlite`] implement it. Every key format lives in [`keys`].

pub mod access;
pub mod backend;
pub mod config;
pub mod cursor;
pub mod feed;
pub mod keys;
pub mod lookup_cache;
pub mod repo;
pub mod secrets;
pub mod table;

use cursor::{CursorCodec, CursorSecret};
use feed::ChangeFeed;
use plunk_domain::page_token::{PageTokenKeys, PageTokenSecret, SECRET_LEN};
use std::sync::Arc;
use table::{Item, StoreError, Table};

pub use repo::contacts::{
    ContactError, ContactFilter, Contacts, CurrentContact, SubscriptionOutcome, UpsertOutcome,
};
pub use repo::events::Events;
pub use repo::projects::{KeyLookup, ProjectError, Projects, RotatedKeys};
pub use repo::rate_limit::{RateDecision, RateLimiter};

/// Which server secrets [`Store::rotate_secrets`] rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// The cursor encryption secrets.
    Cursor,
    /// The hosted-page token secrets (unsubscribe and preference links).
    PageTokens,
}

/// The repositories over one table, cheap to clone.
#[derive(Clone)]
pub struct Store {
    table: Arc<dyn Table>,
    cursor: Arc<secrets::Reloading<CursorCodec>>,
    feed: Option<Arc<dyn ChangeFeed>>,
    page_tokens: Arc<secrets::Reloading<PageTokenKeys>>,
    lookups: Arc<lookup_cache::Lookups>,
}

impl Store {
    /// Wraps a table backend.
    pub fn new(table: Arc<dyn Table>) -> Self {
        Self {
            table,
            cursor: Arc::new(secrets::Reloading::new(secrets::RELOAD_EVERY)),
            feed: None,
            page_tokens: Arc::new(secrets::Reloading::new(secrets::RELOAD_EVERY)),
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

    /// This store with a change feed this process reads itself (`plunk serve` on DynamoDB reads
    /// the table's stream).
    pub fn with_change_feed(mut self, feed: Arc<dyn ChangeFeed>) -> Self {
        self.feed = Some(feed);
        self
    }

    /// This store with every table operation checked against `profile` (see [`access`]): the
    /// function's least privilege, enforced in every mode. Secret caches are the profile's own.
    pub fn with_access(&self, profile: access::AccessProfile) -> Self {
        let guarded: Arc<dyn Table> =
            Arc::new(access::GuardedTable::new(self.table.clone(), profile));
        Self {
            table: guarded,
            cursor: Arc::new(secrets::Reloading::new(secrets::RELOAD_EVERY)),
            feed: self.feed.clone(),
            page_tokens: Arc::new(secrets::Reloading::new(secrets::RELOAD_EVERY)),
            lookups: self.lookups.clone(),
        }
    }

    /// Moves the secrets earlier builds kept in the shared `SYSTEM` partition to their own
    /// partitions (links in mail already sent keep verifying). Needs access to both; returns how
    /// many items moved. Nothing to move is not an error. When a new place already holds other
    /// secrets (a process made fresh ones before the move), both are left as they are and an error
    /// says so: deleting either would break links signed with it.
    pub async fn migrate_legacy_secrets(&self) -> Result<usize, StoreError> {
        let mut moved = 0;
        for (old, new) in keys::legacy_secret_keys() {
            let Some(item) = self.table.get(&old).await? else {
                continue;
            };
            let copy = Item::new(new.clone(), item.body.clone());
            match self.table.put(copy, table::Condition::NotExists).await {
                Ok(()) => moved += 1,
                Err(e) if e.is_condition_failed() => {
                    let current = self.table.get(&new).await?;
                    if current.map(|c| c.body) != Some(item.body.clone()) {
                        return Err(StoreError::Other(format!(
                            "both {} and {} hold secrets; merge them by hand",
                            old.pk, new.pk
                        )));
                    }
                }
                Err(e) => return Err(e),
            }
            self.table.delete(&old, table::Condition::None).await?;
        }
        Ok(moved)
    }

    /// The change feed of new events, when this process reads it itself (the embedded backend,
    /// or `plunk serve` on DynamoDB; deployed, the stream drives the event-dispatch function).
    pub fn change_feed(&self) -> Option<&Arc<dyn ChangeFeed>> {
        self.feed.as_ref()
    }

    /// The underlying table port.
    pub fn table(&self) -> &Arc<dyn Table> {
        &self.table
    }

    /// The background erasure of deleted contacts' history.
    pub fn contact_erasure(&self) -> repo::contact_erasure::ContactErasure<'_> {
        repo::contact_erasure::ContactErasure::new(self.table.as_ref())
    }

    /// Segments and the members of STATIC segments.
    pub fn segments(&self) -> repo::segments::Segments<'_> {
        repo::segments::Segments::new(self.table.as_ref())
    }

    /// Queued segment recounts and computations.
    pub fn segment_jobs(&self) -> repo::segment_jobs::SegmentJobs<'_> {
        repo::segment_jobs::SegmentJobs::new(self.table.as_ref())
    }

    /// Materialised DYNAMIC segment memberships, their counters and timers.
    pub fn memberships(&self) -> repo::memberships::Memberships<'_> {
        repo::memberships::Memberships::new(self.table.as_ref())
    }

    /// Contact activity summaries (what event and email conditions read).
    pub fn activities(&self) -> repo::activity::Activities<'_> {
        repo::activity::Activities::new(self.table.as_ref())
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

    /// Campaigns.
    pub fn campaigns(&self) -> repo::campaigns::Campaigns<'_> {
        repo::campaigns::Campaigns::new(self.table.as_ref())
    }

    /// Workflow executions, the records of their steps, their waits and timers.
    pub fn executions(&self) -> repo::executions::Executions<'_> {
        repo::executions::Executions::new(self.table.as_ref())
    }

    /// Workflows, their graphs and the template uses of their steps.
    pub fn workflows(&self) -> repo::workflows::Workflows<'_> {
        repo::workflows::Workflows::new(self.table.as_ref())
    }

    /// The fan-out jobs of SENDING campaigns.
    pub fn campaign_fanouts(&self) -> repo::campaign_fanouts::CampaignFanouts<'_> {
        repo::campaign_fanouts::CampaignFanouts::new(self.table.as_ref())
    }

    /// The per-project request counter.
    pub fn rate_limiter(&self) -> RateLimiter<'_> {
        RateLimiter::new(self.table.as_ref())
    }

    /// Idempotency-key records (spec README §8).
    pub fn idempotency(&self) -> repo::idempotency::Idempotency<'_> {
        repo::idempotency::Idempotency::new(self.table.as_ref())
    }

    /// The cursor codec, with the secrets read from the table (created on first use, so every
    /// process sharing the table encrypts alike; reloaded as [`secrets`] describes).
    pub async fn cursor_codec(&self) -> Result<Arc<CursorCodec>, StoreError> {
        self.cursor
            .get(|| load_or_create_cursor_codec(self.table.as_ref()))
            .await
    }

    /// The hosted-page token keys, read from the table like the cursor secrets.
    pub async fn page_tokens(&self) -> Result<Arc<PageTokenKeys>, StoreError> {
        self.page_tokens
            .get(|| load_or_create_page_token_keys(self.table.as_ref()))
            .await
    }

    /// Adds a fresh secret of `kind`, signing from [`secrets::ACTIVATION_DELAY`] on; every older
    /// secret keeps verifying.
    pub async fn rotate_secrets(&self, kind: SecretKind) -> Result<secrets::Rotation, StoreError> {
        let (key, what) = match kind {
            SecretKind::Cursor => (keys::cursor_secret(), "cursor secrets"),
            SecretKind::PageTokens => (keys::page_token_secrets(), "page token secrets"),
        };
        secrets::rotate(self.table.as_ref(), &key, what, secrets::ACTIVATION_DELAY).await
    }
}

async fn load_or_create_cursor_codec(table: &dyn Table) -> Result<CursorCodec, StoreError> {
    let loaded = secrets::load_or_create(table, &keys::cursor_secret(), "cursor secrets").await?;
    let secrets = loaded
        .secrets
        .into_iter()
        .map(|(id, bytes)| CursorSecret { id, bytes })
        .collect();
    Ok(CursorCodec::new(secrets, Some(loaded.current)))
}

/// The hosted-page token keys: every stored secret of 32 bytes verifies; the current one signs.
async fn load_or_create_page_token_keys(table: &dyn Table) -> Result<PageTokenKeys, StoreError> {
    let loaded =
        secrets::load_or_create(table, &keys::page_token_secrets(), "page token secrets").await?;
    let secrets: Vec<PageTokenSecret> = loaded
        .secrets
        .into_iter()
        .filter_map(|(id, bytes)| {
            let bytes: [u8; SECRET_LEN] = bytes.try_into().ok()?;
            Some(PageTokenSecret { id, bytes })
        })
        .collect();
    PageTokenKeys::new(secrets, loaded.current).ok_or_else(|| {
        StoreError::Other("page token secrets: the current id is missing or ids repeat".into())
    })
}

/// Reads a record out of an item body.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    // Read from the body in place (no copy of the whole tree first).
    T::deserialize(&item.body)
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
    use table::Condition;

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
