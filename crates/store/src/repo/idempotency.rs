//! Idempotency records (spec README §8): one item per project and `Idempotency-Key`, addressed by
//! the SHA-256 of the key (the raw key never appears in a key attribute), expiring 24 hours after
//! the key's first use. Every change is conditional on the item's version, so two racing requests
//! can never both claim the key.
//!
//! The HTTP side (fingerprints, reserved ids, what to do with a response) lives in
//! `plunk_http_kit::idempotency`; this module only stores and swaps records.

use crate::keys;
use crate::table::{Condition, Item, StoreError, Table};
use base64::Engine;
use plunk_domain::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// How long a key stays claimed after its first use (spec README §8: 24 hours).
pub const RETENTION_SECONDS: i64 = 24 * 60 * 60;

/// What is known about one key of one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyRecord {
    /// The key as the client sent it, for `details.key` of `IDEMPOTENCY_KEY_REUSED`.
    pub key: String,
    /// Hex SHA-256 of the request that first used the key (method, path, canonical body).
    pub fingerprint: String,
    /// Method of the first request, e.g. `POST`.
    pub method: String,
    /// Path of the first request, e.g. `/v1/send`.
    pub path: String,
    /// When the key was first used; the item expires [`RETENTION_SECONDS`] later.
    pub first_used_at: Timestamp,
    /// 32 hex digits of randomness from which every attempt derives the same reserved ids.
    pub seed: String,
    /// Attempts started so far (1 on first use; grows on retries after 5xx and on takeovers).
    pub attempts: u32,
    pub state: IdempotencyState,
}

/// Where the request behind a key stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "SCREAMING_SNAKE_CASE",
    rename_all_fields = "camelCase"
)]
pub enum IdempotencyState {
    /// An attempt is running; others wait until `lock_until_ms` (Unix milliseconds), after which
    /// the attempt is presumed dead and the next request with the same fingerprint takes over.
    InProgress { lock_until_ms: i64 },
    /// The last attempt ended with a server error: the next request with the same fingerprint
    /// runs again (with the same reserved ids).
    Retryable,
    /// The request succeeded; this is what every replay returns.
    Completed(StoredResponse),
}

/// A successful response kept for replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredResponse {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The exact body bytes: kept as text when they are UTF-8 (always, for JSON), else base64.
    #[serde(with = "body_bytes")]
    pub body: Vec<u8>,
}

/// Body bytes as `"text"` when valid UTF-8, otherwise `{"base64": "..."}`.
mod body_bytes {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Base64 { base64: String },
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Repr::Text(text.to_owned()),
            Err(_) => Repr::Base64 {
                base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            },
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Text(text) => Ok(text.into_bytes()),
            Repr::Base64 { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Idempotency records of one table.
pub struct Idempotency<'a> {
    table: &'a dyn Table,
}

fn record_item(project: Uuid, key_sha256: &str, record: &IdempotencyRecord, version: u64) -> Item {
    Item::new(
        keys::idempotency(project, key_sha256),
        crate::encode(record),
    )
    .with_ttl(record.first_used_at.unix_seconds() + RETENTION_SECONDS)
    .with_version(version)
}

/// `Ok(true)` when the write happened, `Ok(false)` when its condition failed.
fn applied(result: Result<(), StoreError>) -> Result<bool, StoreError> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.is_condition_failed() => Ok(false),
        Err(e) => Err(e),
    }
}

impl<'a> Idempotency<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// The live record of a key (by the hex SHA-256 of the key) and its version.
    pub async fn get(
        &self,
        project: Uuid,
        key_sha256: &str,
    ) -> Result<Option<(IdempotencyRecord, u64)>, StoreError> {
        match self
            .table
            .get(&keys::idempotency(project, key_sha256))
            .await?
        {
            Some(item) => Ok(Some((crate::decode(&item)?, item.version))),
            None => Ok(None),
        }
    }

    /// Claims an unused (or expired) key. Returns the new version, or `None` when a live record
    /// already exists. The item expires [`RETENTION_SECONDS`] after `record.first_used_at`.
    pub async fn create(
        &self,
        project: Uuid,
        key_sha256: &str,
        record: &IdempotencyRecord,
    ) -> Result<Option<u64>, StoreError> {
        let item = record_item(project, key_sha256, record, 1);
        Ok(applied(self.table.put(item, Condition::NotExists).await)?.then_some(1))
    }

    /// Replaces the record if it still has `expected_version`. Returns the new version, or `None`
    /// when someone else changed (or released) it first. The expiry stays tied to the first use.
    pub async fn replace(
        &self,
        project: Uuid,
        key_sha256: &str,
        record: &IdempotencyRecord,
        expected_version: u64,
    ) -> Result<Option<u64>, StoreError> {
        let version = expected_version + 1;
        let item = record_item(project, key_sha256, record, version);
        let result = self
            .table
            .put(item, Condition::VersionEquals(expected_version))
            .await;
        Ok(applied(result)?.then_some(version))
    }

    /// Deletes the record if it still has `expected_version`, so the key can be used afresh.
    /// Returns false when someone else changed it first.
    pub async fn release(
        &self,
        project: Uuid,
        key_sha256: &str,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        let key = keys::idempotency(project, key_sha256);
        applied(
            self.table
                .delete(&key, Condition::VersionEquals(expected_version))
                .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sqlite::SqliteTable;

    fn record(state: IdempotencyState) -> IdempotencyRecord {
        IdempotencyRecord {
            key: "order-1".into(),
            fingerprint: "ab".repeat(32),
            method: "POST".into(),
            path: "/v1/send".into(),
            first_used_at: Timestamp::now(),
            seed: "00".repeat(16),
            attempts: 1,
            state,
        }
    }

    #[tokio::test]
    async fn records_are_claimed_once_and_swapped_only_at_the_expected_version() {
        let table = SqliteTable::in_memory().unwrap();
        let repo = Idempotency::new(&table);
        let project = Uuid::now_v7();
        let hash = "f".repeat(64);
        let first = record(IdempotencyState::InProgress { lock_until_ms: 1 });
        assert_eq!(repo.create(project, &hash, &first).await.unwrap(), Some(1));
        assert_eq!(repo.create(project, &hash, &first).await.unwrap(), None);

        let done = record(IdempotencyState::Completed(StoredResponse {
            status: 201,
            content_type: Some("application/json; charset=utf-8".into()),
            body: br#"{"success":true,"data":{"a":"\u00e9"}}"#.to_vec(),
        }));
        assert_eq!(repo.replace(project, &hash, &done, 7).await.unwrap(), None);
        assert_eq!(
            repo.replace(project, &hash, &done, 1).await.unwrap(),
            Some(2)
        );
        let (read, version) = repo.get(project, &hash).await.unwrap().unwrap();
        assert_eq!((read, version), (done, 2));

        assert!(!repo.release(project, &hash, 1).await.unwrap());
        assert!(repo.release(project, &hash, 2).await.unwrap());
        assert!(repo.get(project, &hash).await.unwrap().is_none());
        // Another project's key with the same hash is a different record.
        assert!(repo.get(Uuid::now_v7(), &hash).await.unwrap().is_none());
    }

    #[test]
    fn bodies_that_are_not_utf8_survive_as_base64() {
        let response = StoredResponse {
            status: 200,
            content_type: None,
            body: vec![0xff, 0x00, b'a'],
        };
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["body"]["base64"], "/wBh");
        let back: StoredResponse = serde_json::from_value(json).unwrap();
        assert_eq!(back, response);
    }

    #[tokio::test]
    async fn a_key_is_free_again_a_day_after_its_first_use() {
        let table = SqliteTable::in_memory().unwrap();
        let repo = Idempotency::new(&table);
        let project = Uuid::now_v7();
        let mut old = record(IdempotencyState::Retryable);
        let day_ago = Timestamp::now().unix_millis() - (RETENTION_SECONDS + 5) * 1000;
        old.first_used_at = Timestamp::from_millis(day_ago).unwrap();
        assert_eq!(repo.create(project, "h", &old).await.unwrap(), Some(1));
        assert!(repo.get(project, "h").await.unwrap().is_none());
        let fresh = record(IdempotencyState::InProgress { lock_until_ms: 1 });
        assert_eq!(repo.create(project, "h", &fresh).await.unwrap(), Some(1));
        let item = record_item(project, "h", &fresh, 1);
        assert_eq!(
            item.ttl,
            Some(fresh.first_used_at.unix_seconds() + RETENTION_SECONDS)
        );
    }
}
