//! Contact activity summaries: per contact, the latest time of each event name and of each email
//! lifecycle step (`plunk_domain::filter::Activity`), which event and email conditions read
//! instead of the contact's event history.
//!
//! The event dispatcher folds every batch from the change feed in: one read (batched) and at most
//! one conditional write per contact per batch, however many of its events the batch holds, and
//! none when nothing moved (a redelivered batch writes nothing). For a project without DYNAMIC
//! segments that is [`Activities::record`]; with some, the segment evaluation folds the events in
//! and writes the contact's memberships, which the same item holds
//! ([`crate::repo::memberships`]), in the same write.
//! All of a project's summaries share the partition `PROJECT#<id>#ACTIVITY`, sorted by contact
//! id like the contacts partition, so a pass over a project's contacts can read both side by
//! side.

use crate::keys;
use crate::repo::memberships::Membership;
use crate::table::{Condition, Item, StoreError, Table};
use plunk_domain::event::Event;
use plunk_domain::filter::Activity;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Attempts per contact when a concurrent batch wrote the same summary.
const CONFLICT_RETRIES: usize = 5;
/// Keys per batched read.
const READ_BATCH: usize = 100;

/// Activity summary operations of one table.
pub struct Activities<'a> {
    table: &'a dyn Table,
}

/// What one call wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecordReport {
    /// Contacts whose summary was read.
    pub contacts: usize,
    /// Summaries written (changed).
    pub written: usize,
}

impl<'a> Activities<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// The summary of `contact` (empty when it did nothing yet).
    pub async fn get(&self, project: Uuid, contact: Uuid) -> Result<Activity, StoreError> {
        let item = self
            .table
            .get_eventually(&keys::contact_activity(project, contact))
            .await?;
        Ok(item.map(|i| decode(&i)).unwrap_or_default())
    }

    /// The summaries of `contacts`, in their order (eventually consistent; empty for none).
    pub async fn get_many(
        &self,
        project: Uuid,
        contacts: &[Uuid],
    ) -> Result<Vec<Activity>, StoreError> {
        let mut out = Vec::with_capacity(contacts.len());
        for chunk in contacts.chunks(READ_BATCH) {
            let keys: Vec<_> = chunk
                .iter()
                .map(|c| keys::contact_activity(project, *c))
                .collect();
            let items = self.table.batch_get_eventually(&keys).await?;
            out.extend(
                items
                    .iter()
                    .map(|i| i.as_ref().map(decode).unwrap_or_default()),
            );
        }
        Ok(out)
    }

    /// Folds `events` (of one project) into their contacts' summaries: events without a contact
    /// are skipped; each contact is read once and written once at most.
    pub async fn record(
        &self,
        project: Uuid,
        events: &[Event],
    ) -> Result<RecordReport, StoreError> {
        let mut by_contact: BTreeMap<Uuid, Vec<&Event>> = BTreeMap::new();
        for event in events {
            if let Some(contact) = event.contact_id {
                by_contact.entry(contact).or_default().push(event);
            }
        }
        let contacts: Vec<Uuid> = by_contact.keys().copied().collect();
        let mut report = RecordReport {
            contacts: contacts.len(),
            written: 0,
        };
        for chunk in contacts.chunks(READ_BATCH) {
            let keys: Vec<_> = chunk
                .iter()
                .map(|c| keys::contact_activity(project, *c))
                .collect();
            let mut current = self.table.batch_get(&keys).await?;
            for ((contact, key), item) in chunk.iter().zip(keys).zip(current.iter_mut()) {
                let events = &by_contact[contact];
                let mut attempt = 0;
                loop {
                    // The item also holds the contact's DYNAMIC memberships: kept as they are.
                    let (mut activity, membership) =
                        item.as_ref().map(decode_summary).unwrap_or_default();
                    let mut changed = false;
                    for event in events {
                        changed |= activity.record(event);
                    }
                    if !changed {
                        break;
                    }
                    let (version, condition) = match item {
                        Some(i) => (i.version + 1, Condition::VersionEquals(i.version)),
                        None => (1, Condition::NotExists),
                    };
                    let next = Item::new(key.clone(), encode_summary(&activity, &membership))
                        .with_version(version);
                    match self.table.put(next, condition).await {
                        Ok(()) => {
                            report.written += 1;
                            break;
                        }
                        Err(e) if e.is_condition_failed() && attempt < CONFLICT_RETRIES => {
                            attempt += 1;
                            *item = self.table.get(&key).await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(report)
    }

    /// Removes a contact's summary (its history is being erased).
    pub async fn remove(&self, project: Uuid, contact: Uuid) -> Result<(), StoreError> {
        self.table
            .delete(&keys::contact_activity(project, contact), Condition::None)
            .await
    }
}

fn decode(item: &Item) -> Activity {
    decode_summary(item).0
}

/// A summary item's activity and the DYNAMIC memberships kept beside it
/// ([`crate::repo::memberships`]); an unreadable part starts again empty.
pub(crate) fn decode_summary(item: &Item) -> (Activity, Membership) {
    let activity = serde_json::from_value(item.body.clone()).unwrap_or_else(|e| {
        tracing::warn!(pk = %item.key.pk, sk = %item.key.sk, error = %e,
            "unreadable activity summary; starting it again");
        Activity::default()
    });
    let membership = match item.body.get(MEMBERSHIP) {
        Some(value) => serde_json::from_value(value.clone()).unwrap_or_else(|e| {
            tracing::warn!(pk = %item.key.pk, sk = %item.key.sk, error = %e,
                "unreadable segment membership; evaluated again from empty");
            Membership::default()
        }),
        None => Membership::default(),
    };
    (activity, membership)
}

/// The body of a summary item.
pub(crate) fn encode_summary(activity: &Activity, membership: &Membership) -> serde_json::Value {
    let mut body = crate::encode(activity);
    if !membership.is_empty() {
        body[MEMBERSHIP] = crate::encode(membership);
    }
    body
}

/// The member of a summary's body holding the contact's DYNAMIC memberships.
const MEMBERSHIP: &str = "membership";
