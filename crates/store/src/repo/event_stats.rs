//! Event counters, maintained incrementally from the change feed:
//! per name a total, a "last seen" time and a unique-contact count, and per name and UTC day a
//! count for `/events/stats`. A batch of new events is folded first, so a burst of one name costs
//! one write per counter, not one per event.
//!
//! The feed is at-least-once: a redelivered batch counts again. Counts are documented as lagging
//! and approximate under such retries (docs/decisions.md); `uniqueContacts` never double-counts,
//! since each contact is counted through a conditional marker.

use crate::keys;
use crate::table::{Condition, Index, Item, Query, StoreError, Table, WriteOp};
use plunk_domain::event::Event;
use plunk_domain::Timestamp;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// At most this many names are listed by `GET /events/names`.
pub const MAX_LISTED_NAMES: usize = 1000;

/// One row of `GET /events/names`.
#[derive(Debug, Clone, PartialEq)]
pub struct NameCount {
    pub name: String,
    pub count: u64,
    pub last_seen_at: Option<Timestamp>,
}

/// Counter operations of one table.
pub struct EventStats<'a> {
    table: &'a dyn Table,
}

/// The UTC day of a timestamp, as the daily counters key it.
pub fn day_of(at: &Timestamp) -> String {
    at.as_datetime().format("%Y-%m-%d").to_string()
}

impl<'a> EventStats<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// The resets of `project`'s names still in force: name → cutoff (events with an older id
    /// are being deleted and are not counted). One read per batch; usually empty.
    async fn resets(&self, project: Uuid) -> Result<BTreeMap<String, Uuid>, StoreError> {
        let items = self.read_all(keys::event_resets_partition(project)).await?;
        Ok(items
            .into_iter()
            .filter_map(|i| {
                let cutoff = i.body["cutoff"].as_str()?.parse().ok()?;
                Some((i.key.sk, cutoff))
            })
            .collect())
    }

    /// Counts a batch of newly stored events of `project`. Events older than a reset of their
    /// name (a `DELETE /events/:name` that came first) are not counted.
    pub async fn count(&self, project: Uuid, events: &[Event]) -> Result<(), StoreError> {
        let resets = self.resets(project).await?;
        let mut totals: BTreeMap<&str, (i64, Timestamp, Uuid)> = BTreeMap::new();
        let mut daily: BTreeMap<(String, &str), i64> = BTreeMap::new();
        let mut seen: BTreeSet<(&str, Uuid)> = BTreeSet::new();
        for event in events {
            if resets
                .get(&event.name)
                .is_some_and(|cutoff| event.id < *cutoff)
            {
                continue;
            }
            let total = totals
                .entry(&event.name)
                .or_insert((0, event.created_at, event.id));
            total.0 += 1;
            if event.created_at > total.1 {
                total.1 = event.created_at;
            }
            total.2 = total.2.max(event.id);
            *daily
                .entry((day_of(&event.created_at), &event.name))
                .or_default() += 1;
            if let Some(contact) = event.contact_id {
                seen.insert((&event.name, contact));
            }
        }
        for (name, (delta, last, newest)) in &totals {
            self.table
                .add(
                    &crate::table::Key::new(keys::event_names_partition(project), *name),
                    *delta,
                    None,
                    None,
                )
                .await?;
            // Last writer wins; two concurrent batches may leave the earlier time for a moment.
            let item = Item::new(
                crate::table::Key::new(keys::event_last_seen_partition(project), *name),
                json!({ "lastSeenAt": last, "lastEventId": newest }),
            );
            self.table.put(item, Condition::None).await?;
        }
        for ((day, name), delta) in &daily {
            self.table
                .add(&keys::event_daily(project, day, name), *delta, None, None)
                .await?;
        }
        // Most events come from contacts already counted for their name: their markers are
        // found by one batched, eventually consistent read (half a read unit each) instead of
        // a transaction that fails (four write units). The transaction's `NotExists` still
        // decides; a marker written a moment ago and not yet read only costs that transaction.
        let seen: Vec<(&str, Uuid)> = seen.into_iter().collect();
        let mut unseen = Vec::with_capacity(seen.len());
        for chunk in seen.chunks(100) {
            let markers: Vec<_> = chunk
                .iter()
                .map(|(name, contact)| keys::event_contact_marker(project, name, *contact))
                .collect();
            let found = self.table.batch_get_eventually(&markers).await?;
            unseen.extend(
                chunk
                    .iter()
                    .zip(found)
                    .filter(|(_, found)| found.is_none())
                    .map(|(seen, _)| *seen),
            );
        }
        for (name, contact) in unseen {
            let marker = Item::new(
                keys::event_contact_marker(project, name, contact),
                json!({}),
            );
            let ops = vec![
                WriteOp::Put {
                    item: marker,
                    condition: Condition::NotExists,
                },
                WriteOp::Add {
                    key: crate::table::Key::new(keys::event_unique_partition(project), name),
                    delta: 1,
                },
            ];
            match self.table.transact(ops).await {
                Ok(()) => {}
                Err(e) if e.is_condition_failed() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Every counted name with its count and last time, count descending, at most
    /// [`MAX_LISTED_NAMES`].
    pub async fn names(&self, project: Uuid) -> Result<Vec<NameCount>, StoreError> {
        let counts = self.read_all(keys::event_names_partition(project)).await?;
        let last_seen = self
            .read_all(keys::event_last_seen_partition(project))
            .await?;
        let last: BTreeMap<String, Option<Timestamp>> = last_seen
            .into_iter()
            .map(|i| {
                let at = serde_json::from_value(i.body["lastSeenAt"].clone()).ok();
                (i.key.sk, at)
            })
            .collect();
        let mut names: Vec<NameCount> = counts
            .into_iter()
            .filter(|i| i.counter.unwrap_or(0) > 0)
            .map(|i| NameCount {
                last_seen_at: last.get(&i.key.sk).cloned().flatten(),
                count: i.counter.unwrap_or(0).max(0) as u64,
                name: i.key.sk,
            })
            .collect();
        names.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        names.truncate(MAX_LISTED_NAMES);
        Ok(names)
    }

    /// `(totalCount, uniqueContacts)` of one name.
    pub async fn totals(&self, project: Uuid, name: &str) -> Result<(u64, u64), StoreError> {
        let got = self
            .table
            .batch_get(&[
                crate::table::Key::new(keys::event_names_partition(project), name),
                crate::table::Key::new(keys::event_unique_partition(project), name),
            ])
            .await?;
        let value =
            |i: &Option<Item>| i.as_ref().and_then(|i| i.counter).unwrap_or(0).max(0) as u64;
        Ok((value(&got[0]), value(&got[1])))
    }

    /// Counts per name over the UTC days `from..=to` (`YYYY-MM-DD`), count descending.
    pub async fn between(
        &self,
        project: Uuid,
        from: &str,
        to: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut sums: BTreeMap<String, u64> = BTreeMap::new();
        let mut query = Query::new(Index::Primary, keys::event_daily_partition(project));
        // Every key of `from` sorts after the bare day, so the read starts at that day.
        query.start_after = Some(crate::table::Position {
            key: crate::table::Key::new(keys::event_daily_partition(project), from),
            gsi1: None,
        });
        'pages: loop {
            query.limit = 500;
            let page = self.table.query(query.clone()).await?;
            for item in &page.items {
                let Some((day, name)) = item.key.sk.split_once('#') else {
                    continue;
                };
                if day > to {
                    break 'pages;
                }
                *sums.entry(name.to_owned()).or_default() +=
                    item.counter.unwrap_or(0).max(0) as u64;
            }
            match page.last {
                Some(last) => query.start_after = Some(last),
                None => break,
            }
        }
        let mut stats: Vec<(String, u64)> = sums.into_iter().filter(|(_, c)| *c > 0).collect();
        stats.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(stats)
    }

    /// The newest event id counted for `name`, if any.
    pub async fn last_counted(
        &self,
        project: Uuid,
        name: &str,
    ) -> Result<Option<Uuid>, StoreError> {
        let item = self
            .table
            .get(&crate::table::Key::new(
                keys::event_last_seen_partition(project),
                name,
            ))
            .await?;
        Ok(item.and_then(|i| i.body["lastEventId"].as_str()?.parse().ok()))
    }

    /// Marks `name`'s counters reset at `cutoff` (`DELETE /events/:name`): from now on, events
    /// older than the cutoff are not counted, even if the change feed brings them later. The
    /// mark outlives the feed's retention (24 hours).
    pub async fn mark_reset(
        &self,
        project: Uuid,
        name: &str,
        cutoff: Uuid,
    ) -> Result<(), StoreError> {
        let expires = Timestamp::now().unix_seconds() + 3 * 24 * 3600;
        let item = Item::new(
            keys::event_reset(project, name),
            json!({ "cutoff": cutoff }),
        )
        .with_ttl(expires);
        self.table.put(item, Condition::None).await
    }

    /// Resets the per-name counters of `name` (after `DELETE /events/:name` and
    /// [`EventStats::mark_reset`]). The unique-contact markers go with the events, in the
    /// background deletion.
    pub async fn reset(&self, project: Uuid, name: &str) -> Result<(), StoreError> {
        self.table
            .transact(vec![
                WriteOp::Delete {
                    key: crate::table::Key::new(keys::event_names_partition(project), name),
                    condition: Condition::None,
                },
                WriteOp::Delete {
                    key: crate::table::Key::new(keys::event_unique_partition(project), name),
                    condition: Condition::None,
                },
                WriteOp::Delete {
                    key: crate::table::Key::new(keys::event_last_seen_partition(project), name),
                    condition: Condition::None,
                },
            ])
            .await
    }

    async fn read_all(&self, partition: String) -> Result<Vec<Item>, StoreError> {
        let mut query = Query::new(Index::Primary, partition);
        query.limit = 1000;
        let mut items = Vec::new();
        loop {
            let page = self.table.query(query.clone()).await?;
            items.extend(page.items);
            match page.last {
                Some(last) => query.start_after = Some(last),
                None => return Ok(items),
            }
        }
    }
}
