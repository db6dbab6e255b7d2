//! Applied provider notifications (spec feedback-and-unsubscribe.md §1–§2).
//!
//! Each applied notification leaves a marker item, keyed by the SHA-256 of its dedupe key and
//! expiring after [`MARKER_TTL_SECONDS`]. The marker is written in ONE transaction with everything
//! the notification must cause exactly once: the version-conditioned email record, the `email.*`
//! events and the campaign counter additions. A marker that already exists fails the transaction,
//! so a redelivered or duplicated notification changes nothing twice.
//!
//! What follows the transaction (unsubscribing the contact, suppressing the address) is safe to
//! repeat; the marker records it as pending until [`Feedback::settle`] clears it, so a crash in
//! between is finished by the next delivery of the same notification.

use crate::keys;
use crate::repo::emails::record_item;
use crate::repo::events::event_item;
use crate::table::{Condition, Item, StoreError, Table, WriteOp};
use plunk_domain::email_record::EmailRecord;
use plunk_domain::event::{Event, SubscriptionSource};
use plunk_domain::feedback::{CounterChange, SuppressionReason};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// How long a marker is kept: SQS keeps a message at most 14 days, so no copy of a
/// notification can arrive after its marker is gone.
pub const MARKER_TTL_SECONDS: i64 = 14 * 24 * 3600;

/// The contact effect of a hard bounce or a complaint, kept on the marker until carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingContactEffect {
    /// The email's contact, when it has one.
    pub contact_id: Option<Uuid>,
    /// The address to suppress (the email's recipient).
    pub address: String,
    pub source: SubscriptionSource,
    pub reason: SuppressionReason,
    pub email_id: Uuid,
    pub campaign_id: Option<Uuid>,
}

/// A stored marker.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackMarker {
    /// The contact effect still to carry out, if any.
    #[serde(default)]
    pub pending: Option<PendingContactEffect>,
}

/// Everything one applied notification writes at once.
#[derive(Debug, Clone)]
pub struct AppliedFeedback<'a> {
    /// `ProviderEvent::dedupe_key` of the notification.
    pub dedupe_key: &'a str,
    /// The updated record, written only if the stored one is still at `version`.
    pub record: &'a EmailRecord,
    pub version: u64,
    pub events: &'a [Event],
    /// Changes of the email's campaign counters (empty when it has no campaign).
    pub counters: &'a [CounterChange],
    pub pending: Option<PendingContactEffect>,
}

/// How a commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Everything was written.
    Applied,
    /// The notification's marker exists: it was applied before; nothing was written.
    AlreadyApplied,
    /// The email record changed since it was read; nothing was written (read and apply again).
    EmailChanged,
}

/// Marker operations of one table.
pub struct Feedback<'a> {
    table: &'a dyn Table,
}

/// The marker key of a dedupe key (hashed, so provider ids never form a key attribute).
fn marker_key(project: Uuid, dedupe_key: &str) -> crate::table::Key {
    let hex: String = Sha256::digest(dedupe_key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    keys::feedback_marker(project, &hex)
}

fn marker_item(project: Uuid, dedupe_key: &str, marker: &FeedbackMarker, ttl: i64) -> Item {
    Item::new(marker_key(project, dedupe_key), crate::encode(marker)).with_ttl(ttl)
}

impl<'a> Feedback<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// The marker of a notification, if it was applied (and the marker has not expired).
    pub async fn marker(
        &self,
        project: Uuid,
        dedupe_key: &str,
    ) -> Result<Option<FeedbackMarker>, StoreError> {
        match self.table.get(&marker_key(project, dedupe_key)).await? {
            Some(item) => crate::decode(&item).map(Some),
            None => Ok(None),
        }
    }

    /// Writes the marker, the record, the events and the counter additions in one transaction.
    pub async fn commit(
        &self,
        project: Uuid,
        applied: AppliedFeedback<'_>,
    ) -> Result<Commit, StoreError> {
        let marker = FeedbackMarker {
            pending: applied.pending,
        };
        let ttl = crate::table::unix_now() + MARKER_TTL_SECONDS;
        let mut ops = vec![
            WriteOp::Put {
                item: marker_item(project, applied.dedupe_key, &marker, ttl),
                condition: Condition::NotExists,
            },
            WriteOp::Put {
                item: record_item(project, applied.record, applied.version + 1),
                condition: Condition::VersionEquals(applied.version),
            },
        ];
        ops.extend(applied.events.iter().map(|event| WriteOp::Put {
            item: event_item(project, event),
            condition: Condition::NotExists,
        }));
        if let Some(campaign) = applied.record.campaign_id {
            ops.extend(applied.counters.iter().map(|c| WriteOp::Add {
                key: keys::campaign_counter(project, campaign, c.counter.as_str()),
                delta: c.delta,
            }));
        }
        match self.table.transact(ops).await {
            Ok(()) => Ok(Commit::Applied),
            // Both backends name the first failed condition, so an existing marker wins over
            // a changed record: a duplicate is never re-applied on a newer version.
            Err(StoreError::ConditionFailed { index: Some(0) }) => Ok(Commit::AlreadyApplied),
            Err(StoreError::ConditionFailed { index: Some(1) }) => Ok(Commit::EmailChanged),
            Err(e) => Err(e),
        }
    }

    /// Records that the marker's pending contact effect was carried out (the marker keeps its
    /// original expiry).
    pub async fn settle(&self, project: Uuid, dedupe_key: &str) -> Result<(), StoreError> {
        let key = marker_key(project, dedupe_key);
        let Some(item) = self.table.get(&key).await? else {
            return Ok(());
        };
        let ttl = item
            .ttl
            .unwrap_or_else(|| crate::table::unix_now() + MARKER_TTL_SECONDS);
        self.table
            .put(
                marker_item(project, dedupe_key, &FeedbackMarker::default(), ttl),
                Condition::Exists,
            )
            .await
            .or_else(|e| {
                if e.is_condition_failed() {
                    Ok(())
                } else {
                    Err(e)
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_keys_hash_the_dedupe_key() {
        let project = Uuid::from_u128(1);
        let key = marker_key(
            project,
            "m-1|Delivery|2026-03-01T09:30:02.114Z|ada@example.org",
        );
        let hex = key.pk.rsplit('#').next().unwrap_or_default();
        assert_eq!(hex.len(), 64);
        assert!(!key.pk.contains("ada@example.org"));
        assert_ne!(
            key,
            marker_key(project, "m-1|Open|2026-03-01T09:30:02.114Z|ada@example.org")
        );
    }
}
