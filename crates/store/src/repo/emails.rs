//! Email records and their queued content (spec events-and-emails.md §4–§6).
//!
//! Records live in the project's emails partition, newest first. The unrendered content of a
//! queued email (subject, body, headers, attachment references, one-shot values) is a separate
//! item written once at acceptance and expiring by TTL, keyed by the minute of acceptance: the
//! scheduler's sweep reads those partitions to find records still `PENDING` (see `keys`).

use crate::keys;
use crate::repo::scan::{self, ScanPage};
use crate::table::{Condition, Index, Item, Position, Query, StoreError, Table, WriteOp};
use plunk_domain::email_record::{EmailContent, EmailRecord, EmailStatus};
use plunk_domain::feedback::campaign_counter_changes;
use plunk_domain::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long queued content is kept: past the 72 h queue expiry, then removed by TTL.
const CONTENT_TTL_SECONDS: i64 = 4 * 24 * 3600;

/// Filters of `GET /emails` (combinable).
#[derive(Debug, Clone, Default)]
pub struct EmailFilter {
    pub contact_id: Option<Uuid>,
    pub status: Option<EmailStatus>,
    pub campaign_id: Option<Uuid>,
}

impl EmailFilter {
    fn matches(&self, e: &EmailRecord) -> bool {
        self.contact_id.is_none_or(|c| e.contact_id == Some(c))
            && self.status.is_none_or(|s| e.status == s)
            && self.campaign_id.is_none_or(|c| e.campaign_id == Some(c))
    }

    fn is_empty(&self) -> bool {
        self.contact_id.is_none() && self.status.is_none() && self.campaign_id.is_none()
    }
}

/// A record with the version it was read at.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub record: EmailRecord,
    pub version: u64,
}

/// The stored content item: inline, plus where it belongs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContentItem {
    project_id: Uuid,
    email_id: Uuid,
    content: EmailContent,
}

/// An email found by the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweptEmail {
    pub project_id: Uuid,
    pub email_id: Uuid,
}

/// Email operations of one table.
pub struct Emails<'a> {
    table: &'a dyn Table,
}

fn minute_of(at: Timestamp) -> i64 {
    at.unix_seconds().div_euclid(60)
}

pub(crate) fn record_item(project: Uuid, record: &EmailRecord, version: u64) -> Item {
    Item::new(keys::email(project, record.id), crate::encode(record)).with_version(version)
}

impl<'a> Emails<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// Stores an accepted email: its content first (so a record never exists without it), then
    /// the record. A record that already exists (a retried request reusing its ids) is left as
    /// it is. Returns false when the record was already there.
    pub async fn accept(
        &self,
        project: Uuid,
        record: &EmailRecord,
        content: Option<&EmailContent>,
    ) -> Result<bool, StoreError> {
        if let Some(content) = content {
            let queued = record.queued_at.unwrap_or(record.created_at);
            let body = crate::encode(&ContentItem {
                project_id: project,
                email_id: record.id,
                content: content.clone(),
            });
            let item = Item::new(
                keys::email_content(minute_of(queued), project, record.id),
                body,
            )
            .with_ttl(queued.unix_seconds() + CONTENT_TTL_SECONDS);
            self.table.put(item, Condition::None).await?;
        }
        match self
            .table
            .put(record_item(project, record, 1), Condition::NotExists)
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Stores new accepted emails whose ids no one else writes: every content item in batched
    /// writes first (so a record never exists without its content), then every record. Unlike
    /// [`Self::accept`] nothing is conditional, so a record already there would be replaced:
    /// only for ids the caller knows are new.
    pub async fn accept_new(
        &self,
        project: Uuid,
        entries: &[(&EmailRecord, Option<&EmailContent>)],
    ) -> Result<(), StoreError> {
        let contents: Vec<Item> = entries
            .iter()
            .filter_map(|(record, content)| {
                let content = (*content)?;
                let queued = record.queued_at.unwrap_or(record.created_at);
                Some(
                    Item::new(
                        keys::email_content(minute_of(queued), project, record.id),
                        crate::encode(&ContentItem {
                            project_id: project,
                            email_id: record.id,
                            content: content.clone(),
                        }),
                    )
                    .with_ttl(queued.unix_seconds() + CONTENT_TTL_SECONDS),
                )
            })
            .collect();
        if !contents.is_empty() {
            self.table.batch_put(contents).await?;
        }
        let records: Vec<Item> = entries
            .iter()
            .map(|(record, _)| record_item(project, record, 1))
            .collect();
        self.table.batch_put(records).await
    }

    /// One record with its version.
    pub async fn get_versioned(
        &self,
        project: Uuid,
        id: Uuid,
    ) -> Result<Option<Versioned>, StoreError> {
        match self.table.get(&keys::email(project, id)).await? {
            Some(item) => Ok(Some(Versioned {
                record: crate::decode(&item)?,
                version: item.version,
            })),
            None => Ok(None),
        }
    }

    /// Records by (project, id), in the order asked, possibly a second old (eventually
    /// consistent, half the read units): for sweeps, whose writes are guarded by the version.
    pub async fn get_many_eventually(
        &self,
        ids: &[(Uuid, Uuid)],
    ) -> Result<Vec<Option<Versioned>>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            let keys: Vec<_> = chunk.iter().map(|(p, id)| keys::email(*p, *id)).collect();
            for item in self.table.batch_get_eventually(&keys).await? {
                out.push(match item {
                    Some(item) => Some(Versioned {
                        record: crate::decode(&item)?,
                        version: item.version,
                    }),
                    None => None,
                });
            }
        }
        Ok(out)
    }

    /// One record.
    pub async fn get(&self, project: Uuid, id: Uuid) -> Result<Option<EmailRecord>, StoreError> {
        Ok(self.get_versioned(project, id).await?.map(|v| v.record))
    }

    /// Writes `record` (changed from `before`) if it is still at `version`; `ConditionFailed`
    /// when someone else changed it. A campaign email's change moves the campaign's counters
    /// (campaigns.md §5) in the same transaction, so a counter never misses or doubles a
    /// change that was written.
    pub async fn save(
        &self,
        project: Uuid,
        before: &EmailRecord,
        record: &EmailRecord,
        version: u64,
    ) -> Result<u64, StoreError> {
        let item = record_item(project, record, version + 1);
        let counters = campaign_counter_changes(before, record);
        match record.campaign_id.filter(|_| !counters.is_empty()) {
            None => {
                self.table
                    .put(item, Condition::VersionEquals(version))
                    .await?
            }
            Some(campaign) => {
                let mut ops = vec![WriteOp::Put {
                    item,
                    condition: Condition::VersionEquals(version),
                }];
                ops.extend(counters.iter().map(|c| WriteOp::Add {
                    key: keys::campaign_counter(project, campaign, c.counter.as_str()),
                    delta: c.delta,
                }));
                self.table.transact(ops).await?;
            }
        }
        Ok(version + 1)
    }

    /// Removes a record if it is still at `version` (an email of a deleted contact);
    /// `ConditionFailed` when someone else changed it.
    pub async fn delete(&self, project: Uuid, id: Uuid, version: u64) -> Result<(), StoreError> {
        self.table
            .delete(&keys::email(project, id), Condition::VersionEquals(version))
            .await
    }

    /// The queued content of a record, if still kept.
    pub async fn content(
        &self,
        project: Uuid,
        record: &EmailRecord,
    ) -> Result<Option<EmailContent>, StoreError> {
        let queued = record.queued_at.unwrap_or(record.created_at);
        let key = keys::email_content(minute_of(queued), project, record.id);
        // Written once, before the job was queued: an eventually consistent read finds it,
        // except within moments of the write, when a consistent read settles it.
        let item = match self.table.get_eventually(&key).await? {
            Some(item) => Some(item),
            None => self.table.get(&key).await?,
        };
        match item {
            Some(item) => Ok(Some(crate::decode::<ContentItem>(&item)?.content)),
            None => Ok(None),
        }
    }

    /// One page of records, newest first, filtered (filtered pages examine a bounded number of
    /// records and may be short while more remain).
    pub async fn list(
        &self,
        project: Uuid,
        filter: &EmailFilter,
        limit: usize,
        start_after: Option<Position>,
    ) -> Result<ScanPage<EmailRecord>, StoreError> {
        let mut query = Query::new(Index::Primary, keys::emails_partition(project));
        query.descending = true;
        query.start_after = start_after;
        scan::page(self.table, query, limit, !filter.is_empty(), |item| {
            let record: EmailRecord = crate::decode(item)?;
            Ok(filter.matches(&record).then_some(record))
        })
        .await
    }

    /// Every email accepted in `minute` (all shards).
    pub async fn accepted_in_minute(&self, minute: i64) -> Result<Vec<SweptEmail>, StoreError> {
        let mut out = Vec::new();
        for shard in 0..keys::SWEEP_SHARDS {
            let mut query = Query::new(Index::Primary, keys::sweep_partition(minute, shard));
            loop {
                let page = self.table.query(query.clone()).await?;
                for item in &page.items {
                    let c: ContentItem = crate::decode(item)?;
                    out.push(SweptEmail {
                        project_id: c.project_id,
                        email_id: c.email_id,
                    });
                }
                match page.last {
                    Some(last) => query.start_after = Some(last),
                    None => break,
                }
            }
        }
        Ok(out)
    }
}
