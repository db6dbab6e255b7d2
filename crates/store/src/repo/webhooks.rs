//! Outgoing webhooks and their deliveries (spec webhooks.md). A project's webhooks share one
//! small partition (at most 20), which the event dispatcher reads once per batch; each webhook's
//! deliveries have their own partition, newest last, kept 30 days.
//!
//! Signing secrets are stored as given: signing needs the secret itself, so unlike API keys it
//! cannot be kept as a hash (docs/decisions.md).

use crate::keys;
use crate::repo::scan::{self, ScanPage};
use crate::table::{Condition, Index, Item, Position, Query, StoreError, Table, WriteOp};
use plunk_domain::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Most webhooks per project.
pub const MAX_WEBHOOKS: usize = 20;
/// How long delivery records are kept (events-and-emails.md §7).
pub const DELIVERY_RETENTION_SECONDS: i64 = 30 * 24 * 3600;

/// A signing secret and, once rotated out, when it stops signing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningSecret {
    pub secret: String,
    pub expires_at: Option<Timestamp>,
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningSecret")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub enabled: bool,
    /// The current secret first, then rotated ones until they expire.
    pub secrets: Vec<SigningSecret>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Webhook {
    /// The secrets that sign at `now`: the current one and unexpired rotated ones.
    pub fn active_secrets(&self, now: Timestamp) -> Vec<&str> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|at| at > now))
            .map(|s| s.secret.as_str())
            .collect()
    }
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
}

impl DeliveryStatus {
    /// Every status, for query validation.
    pub const ALL: [DeliveryStatus; 3] = [Self::Pending, Self::Succeeded, Self::Failed];

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }

    /// Parses the API spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// One event delivered (or being delivered) to one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_attempt_at: Option<Timestamp>,
    pub response_status: Option<u16>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub duration_ms: Option<u64>,
    pub created_at: Timestamp,
    /// The request body, fixed when the delivery is created so every attempt sends the same
    /// bytes. Not part of the API object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payload: String,
}

/// The id of the delivery of `event` to `webhook`: a UUIDv7 at the event's time whose other bits
/// come from both ids, so the same pair always gets the same id (one delivery per pair, even when
/// the change feed repeats an event) and deliveries still list newest first.
pub fn delivery_id(webhook: Uuid, event: Uuid, at: Timestamp) -> Uuid {
    let digest = Sha256::new()
        .chain_update(webhook.as_bytes())
        .chain_update(event.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let millis = at.unix_millis().max(0) as u64;
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    Uuid::from_bytes(bytes)
}

/// A held attempt slot of one webhook; give it back with
/// [`Webhooks::release_attempt_slot`].
#[derive(Debug)]
pub struct AttemptSlot {
    key: crate::table::Key,
    token: u64,
}

/// Webhook operations of one table.
pub struct Webhooks<'a> {
    table: &'a dyn Table,
}

fn webhook_item(project: Uuid, w: &Webhook, version: u64) -> Item {
    Item::new(keys::webhook(project, w.id), crate::encode(w)).with_version(version)
}

fn delivery_item(project: Uuid, d: &Delivery, version: u64) -> Item {
    Item::new(
        keys::webhook_delivery(project, d.webhook_id, d.id),
        crate::encode(d),
    )
    .with_version(version)
    .with_ttl(d.created_at.unix_seconds() + DELIVERY_RETENTION_SECONDS)
}

impl<'a> Webhooks<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// Every webhook of the project (at most [`MAX_WEBHOOKS`], oldest first).
    pub async fn all(&self, project: Uuid) -> Result<Vec<Webhook>, StoreError> {
        let mut query = Query::new(Index::Primary, keys::webhooks_partition(project));
        query.limit = 100;
        let page = self.table.query(query).await?;
        page.items.iter().map(crate::decode).collect()
    }

    /// One page of webhooks, newest first.
    pub async fn list(
        &self,
        project: Uuid,
        limit: usize,
        start_after: Option<Position>,
    ) -> Result<ScanPage<Webhook>, StoreError> {
        let mut query = Query::new(Index::Primary, keys::webhooks_partition(project));
        query.descending = true;
        query.start_after = start_after;
        scan::page(self.table, query, limit, false, |item| {
            crate::decode(item).map(Some)
        })
        .await
    }

    /// A webhook and its version.
    pub async fn get(&self, project: Uuid, id: Uuid) -> Result<Option<(Webhook, u64)>, StoreError> {
        match self.table.get(&keys::webhook(project, id)).await? {
            Some(item) => Ok(Some((crate::decode(&item)?, item.version))),
            None => Ok(None),
        }
    }

    /// Stores a new webhook unless the project has [`MAX_WEBHOOKS`] already; false when it has.
    /// The count is a counter raised by a conditional add before the webhook is stored (and
    /// lowered again if storing fails), so concurrent creates never pass the bound.
    pub async fn create(&self, project: Uuid, webhook: &Webhook) -> Result<bool, StoreError> {
        let count = keys::webhook_count(project);
        if self.table.get(&count).await?.is_none() {
            // First use since counting began: start from the webhooks stored.
            let stored = self.all(project).await?.len() as i64;
            let mut item = Item::new(count.clone(), serde_json::Value::Null);
            item.counter = Some(stored);
            match self.table.put(item, Condition::NotExists).await {
                Ok(()) => {}
                Err(e) if e.is_condition_failed() => {}
                Err(e) => return Err(e),
            }
        }
        match self
            .table
            .add(&count, 1, Some(MAX_WEBHOOKS as i64), None)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_condition_failed() => return Ok(false),
            Err(e) => return Err(e),
        }
        if let Err(e) = self
            .table
            .put(webhook_item(project, webhook, 1), Condition::NotExists)
            .await
        {
            if let Err(undo) = self.table.add(&count, -1, None, None).await {
                tracing::warn!(%project, error = %undo, "webhook count not lowered after a failed create");
            }
            return Err(e);
        }
        Ok(true)
    }

    /// Rewrites a webhook read at `version`; `ConditionFailed` if it changed meanwhile.
    pub async fn save(
        &self,
        project: Uuid,
        webhook: &Webhook,
        version: u64,
    ) -> Result<(), StoreError> {
        self.table
            .put(
                webhook_item(project, webhook, version + 1),
                Condition::VersionEquals(version),
            )
            .await
    }

    /// Deletes a webhook and lowers the count, in one transaction; deleting one already gone
    /// changes nothing. Its deliveries expire with their retention.
    pub async fn delete(&self, project: Uuid, id: Uuid) -> Result<(), StoreError> {
        let ops = vec![
            WriteOp::Delete {
                key: keys::webhook(project, id),
                condition: Condition::Exists,
            },
            WriteOp::Add {
                key: keys::webhook_count(project),
                delta: -1,
            },
        ];
        match self.table.transact(ops).await {
            Err(e) if e.is_condition_failed() => Ok(()),
            other => other,
        }
    }

    /// Takes one of `slots` attempt slots of a webhook for `lease_seconds`, or `None` when every
    /// slot is held: at most `slots` attempts to one webhook are in flight across every process.
    /// A slot whose holder died frees itself when its lease runs out (an expired item counts as
    /// absent). Starts at a random slot so that holders spread over them.
    pub async fn take_attempt_slot(
        &self,
        project: Uuid,
        webhook: Uuid,
        slots: u32,
        lease_seconds: i64,
    ) -> Result<Option<AttemptSlot>, StoreError> {
        let start = rand::random::<u32>() % slots.max(1);
        // The lease's version: small enough for every backend's integer column.
        let token = u64::from(rand::random::<u32>()) + 1;
        let until = chrono::Utc::now().timestamp() + lease_seconds;
        for i in 0..slots {
            let key = keys::webhook_attempt_slot(project, webhook, (start + i) % slots);
            let item = Item::new(key.clone(), serde_json::json!({}))
                .with_ttl(until)
                .with_version(token);
            match self.table.put(item, Condition::NotExists).await {
                Ok(()) => return Ok(Some(AttemptSlot { key, token })),
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Gives a slot back (only this holder's lease: a slot that expired and was taken by another
    /// attempt is left to it).
    pub async fn release_attempt_slot(&self, slot: AttemptSlot) -> Result<(), StoreError> {
        match self
            .table
            .delete(&slot.key, Condition::VersionEquals(slot.token))
            .await
        {
            Err(e) if e.is_condition_failed() => Ok(()),
            other => other,
        }
    }

    /// Stores a new delivery unless one with its id exists; true when stored.
    pub async fn create_delivery(
        &self,
        project: Uuid,
        delivery: &Delivery,
    ) -> Result<bool, StoreError> {
        match self
            .table
            .put(delivery_item(project, delivery, 1), Condition::NotExists)
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A delivery and its version.
    pub async fn get_delivery(
        &self,
        project: Uuid,
        webhook: Uuid,
        id: Uuid,
    ) -> Result<Option<(Delivery, u64)>, StoreError> {
        match self
            .table
            .get(&keys::webhook_delivery(project, webhook, id))
            .await?
        {
            Some(item) => Ok(Some((crate::decode(&item)?, item.version))),
            None => Ok(None),
        }
    }

    /// Rewrites a delivery read at `version`; `ConditionFailed` if it changed meanwhile.
    pub async fn save_delivery(
        &self,
        project: Uuid,
        delivery: &Delivery,
        version: u64,
    ) -> Result<(), StoreError> {
        self.table
            .put(
                delivery_item(project, delivery, version + 1),
                Condition::VersionEquals(version),
            )
            .await
    }

    /// One page of a webhook's deliveries, newest first, optionally filtered.
    pub async fn deliveries(
        &self,
        project: Uuid,
        webhook: Uuid,
        status: Option<DeliveryStatus>,
        event_type: Option<&str>,
        limit: usize,
        start_after: Option<Position>,
    ) -> Result<ScanPage<Delivery>, StoreError> {
        let mut query = Query::new(
            Index::Primary,
            keys::webhook_deliveries_partition(project, webhook),
        );
        query.descending = true;
        query.start_after = start_after;
        let filtered = status.is_some() || event_type.is_some();
        scan::page(self.table, query, limit, filtered, |item| {
            let d: Delivery = crate::decode(item)?;
            let keep = status.is_none_or(|s| d.status == s)
                && event_type.is_none_or(|t| d.event_type == t);
            Ok(keep.then_some(d))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_stable_per_pair_and_ordered_by_event_time() {
        let (w, e) = (Uuid::now_v7(), Uuid::now_v7());
        let at = Timestamp::from_millis(1_772_357_403_050).unwrap();
        let id = delivery_id(w, e, at);
        assert_eq!(id, delivery_id(w, e, at));
        assert_ne!(id, delivery_id(Uuid::now_v7(), e, at));
        assert_eq!(id.get_version_num(), 7);
        let later = delivery_id(
            w,
            Uuid::now_v7(),
            Timestamp::from_millis(1_772_357_403_051).unwrap(),
        );
        assert!(later > id);
    }
}
