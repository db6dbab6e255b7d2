//! Campaigns: one item per campaign in the project's campaigns partition (newest first, ids are
//! UUIDv7) with a `Gsi1` entry per status (the `status` filter), and the small items that let
//! other resources find what uses them, written in the same transaction as the campaign:
//!
//! - a sender-use item under the sender's domain while the campaign is DRAFT, SCHEDULED or
//!   SENDING (`DELETE /domains/:id` → `DOMAIN_IN_USE`);
//! - a segment-use item under each segment its audience names, in the same states
//!   (`DELETE /segments/:id` → `SEGMENT_IN_USE`);
//! - a due item in the minute it is SCHEDULED for, read by that minute's scheduler tick;
//! - its fan-out job (`campaign_fanouts`), created when it enters SENDING.
//!
//! Every write is conditional on the version that was read.

use crate::keys;
use crate::repo::domains::{UsedBy, UsedByType};
use crate::repo::scan;
use crate::table::{Condition, Index, Item, Key, Position, Query, StoreError, Table, WriteOp};
use plunk_domain::campaign::{AudienceType, Campaign, CampaignStatus};
use plunk_domain::event::Event;
use plunk_domain::Timestamp;
use serde_json::json;
use std::collections::{BTreeSet, HashSet};
use uuid::Uuid;

/// Most bytes of the encoded campaign: a DynamoDB item holds at most 400 KB, keys and attribute
/// names included. Bodies that do not fit are refused (`too_big`).
pub const MAX_ENCODED_BYTES: usize = 395_000;

/// Most bytes of serialised campaigns in one list page (the response stays well under 4 MiB).
pub const PAGE_BYTES_BUDGET: usize = 3_000_000;

/// Failures of campaign writes.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("campaign not found")]
    NotFound,
    /// The encoded campaign exceeds [`MAX_ENCODED_BYTES`].
    #[error("campaign too large")]
    TooLarge,
    /// Someone else changed the campaign since it was read.
    #[error("campaign changed concurrently")]
    Conflict,
    /// The project already has [`MAX_DUE_PER_MINUTE`] campaigns scheduled for that minute.
    #[error("too many campaigns scheduled for one minute")]
    MinuteFull,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CampaignError {
    fn from_write(e: StoreError) -> Self {
        if e.is_condition_failed() {
            CampaignError::Conflict
        } else {
            CampaignError::Store(e)
        }
    }
}

/// Filters of `GET /campaigns`.
#[derive(Debug, Clone, Default)]
pub struct CampaignFilter {
    pub status: Option<CampaignStatus>,
    /// Case-insensitive substring of name, subject or sender (already lowercased).
    pub search: Option<String>,
}

impl CampaignFilter {
    fn matches(&self, c: &Campaign) -> bool {
        let Some(search) = self.search.as_deref() else {
            return true;
        };
        c.name.to_lowercase().contains(search)
            || c.subject.to_lowercase().contains(search)
            || c.from.as_str().contains(search)
    }
}

/// One page of campaigns.
#[derive(Debug, Clone)]
pub struct CampaignPage {
    pub items: Vec<Campaign>,
    pub next: Option<Position>,
}

/// A scheduled campaign found in a minute's due index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueCampaign {
    pub project: Uuid,
    pub campaign: Uuid,
}

/// Campaign operations of one table.
pub struct Campaigns<'a> {
    table: &'a dyn Table,
}

fn campaign_item(project: Uuid, campaign: &Campaign, version: u64) -> Item {
    Item::new(
        keys::campaign(project, campaign.id),
        crate::encode(campaign),
    )
    .with_gsi1(
        keys::campaigns_by_status_index(project, campaign.status.as_str()),
        campaign.id.to_string(),
    )
    .with_version(version)
}

/// Whether a campaign in `status` still counts as using its sender domain and segments.
fn holds_references(status: CampaignStatus) -> bool {
    matches!(
        status,
        CampaignStatus::Draft | CampaignStatus::Scheduled | CampaignStatus::Sending
    )
}

/// The segments a campaign's audience names: `segmentId` and every `memberOfSegment` of its
/// condition.
pub fn referenced_segments(campaign: &Campaign) -> BTreeSet<Uuid> {
    let mut out = BTreeSet::new();
    if campaign.audience_type == AudienceType::Segment {
        out.extend(campaign.segment_id);
    }
    if let Some(condition) = campaign.parsed_condition() {
        out.extend(condition.segment_refs());
    }
    out
}

/// Most campaigns of one project that may be scheduled for the same minute. The tick of a
/// minute starts every campaign due in it, so without a bound one project could schedule
/// thousands for one minute and hold up that tick (and every other project's campaigns and
/// sweeps in it) past its timeout.
pub const MAX_DUE_PER_MINUTE: usize = 25;

fn minute_of(at: Timestamp) -> i64 {
    at.unix_seconds().div_euclid(60)
}

/// The reference items a campaign in its current state keeps, by key.
fn reference_items(project: Uuid, campaign: &Campaign) -> Vec<Item> {
    let mut items = Vec::new();
    let body = json!({"type": "campaign", "id": campaign.id, "name": campaign.name});
    if holds_references(campaign.status) {
        items.push(Item::new(
            keys::campaign_sender_use(project, campaign.from.domain(), campaign.id),
            body.clone(),
        ));
        for segment in referenced_segments(campaign) {
            items.push(Item::new(
                keys::segment_campaign_use(project, segment, campaign.id),
                body.clone(),
            ));
        }
    }
    if let (CampaignStatus::Scheduled, Some(at)) = (campaign.status, campaign.scheduled_for) {
        items.push(Item::new(
            keys::campaign_due(minute_of(at), project, campaign.id),
            json!({}),
        ));
    }
    items
}

fn check_size(campaign: &Campaign) -> Result<(), CampaignError> {
    if crate::encode(campaign).to_string().len() > MAX_ENCODED_BYTES {
        Err(CampaignError::TooLarge)
    } else {
        Ok(())
    }
}

impl<'a> Campaigns<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// One campaign with its version.
    pub async fn get_versioned(
        &self,
        project: Uuid,
        id: Uuid,
    ) -> Result<Option<(Campaign, u64)>, StoreError> {
        match self.table.get(&keys::campaign(project, id)).await? {
            Some(item) => Ok(Some((crate::decode(&item)?, item.version))),
            None => Ok(None),
        }
    }

    /// One campaign.
    pub async fn get(&self, project: Uuid, id: Uuid) -> Result<Option<Campaign>, StoreError> {
        Ok(self.get_versioned(project, id).await?.map(|(c, _)| c))
    }

    /// Stores a new campaign (its id must be fresh) with its reference items.
    pub async fn create(&self, project: Uuid, campaign: &Campaign) -> Result<(), CampaignError> {
        check_size(campaign)?;
        let mut ops = vec![WriteOp::Put {
            item: campaign_item(project, campaign, 1),
            condition: Condition::NotExists,
        }];
        ops.extend(
            reference_items(project, campaign)
                .into_iter()
                .map(|item| WriteOp::Put {
                    item,
                    condition: Condition::None,
                }),
        );
        self.table
            .transact(ops)
            .await
            .map_err(CampaignError::from_write)
    }

    /// Replaces `before` (read at `version`) with `after`, keeping the reference items in step,
    /// and records `events` (`campaign.sent`, `campaign.cancelled`) in the same transaction; a
    /// campaign entering SENDING gets its fan-out job (`job`, written only if none exists).
    /// `Conflict` when the campaign changed since it was read. Returns the new version.
    pub async fn save(
        &self,
        project: Uuid,
        before: &Campaign,
        after: &Campaign,
        version: u64,
        job: Option<Item>,
        events: &[Event],
    ) -> Result<u64, CampaignError> {
        check_size(after)?;
        if let (CampaignStatus::Scheduled, Some(at)) = (after.status, after.scheduled_for) {
            let unchanged = before.status == CampaignStatus::Scheduled
                && before.scheduled_for.map(minute_of) == Some(minute_of(at));
            if !unchanged && self.due_count(project, minute_of(at)).await? >= MAX_DUE_PER_MINUTE {
                return Err(CampaignError::MinuteFull);
            }
        }
        let mut ops = vec![WriteOp::Put {
            item: campaign_item(project, after, version + 1),
            condition: Condition::VersionEquals(version),
        }];
        ops.extend(reference_changes(project, Some(before), Some(after)));
        if let Some(item) = job {
            ops.push(WriteOp::Put {
                item,
                condition: Condition::NotExists,
            });
        }
        ops.extend(events.iter().map(|e| WriteOp::Put {
            item: crate::repo::events::event_item(project, e),
            condition: Condition::NotExists,
        }));
        self.table
            .transact(ops)
            .await
            .map_err(CampaignError::from_write)?;
        Ok(version + 1)
    }

    /// Deletes a campaign read at `version` and its reference items.
    pub async fn delete(
        &self,
        project: Uuid,
        campaign: &Campaign,
        version: u64,
    ) -> Result<(), CampaignError> {
        let mut ops = vec![WriteOp::Delete {
            key: keys::campaign(project, campaign.id),
            condition: Condition::VersionEquals(version),
        }];
        ops.extend(reference_changes(project, Some(campaign), None));
        self.table
            .transact(ops)
            .await
            .map_err(CampaignError::from_write)
    }

    /// One page of campaigns, newest first. With `search`, up to `scan::SCAN_BUDGET` campaigns
    /// are examined and the page may be short while more remain; a page also ends early once
    /// its campaigns serialise to more than [`PAGE_BYTES_BUDGET`].
    pub async fn list(
        &self,
        project: Uuid,
        filter: &CampaignFilter,
        limit: usize,
        start_after: Option<Position>,
    ) -> Result<CampaignPage, StoreError> {
        let mut query = match filter.status {
            Some(s) => Query::new(
                Index::Gsi1,
                keys::campaigns_by_status_index(project, s.as_str()),
            ),
            None => Query::new(Index::Primary, keys::campaigns_partition(project)),
        };
        query.descending = true;
        query.start_after = start_after;
        let index = query.index;
        let page = scan::page(self.table, query, limit, filter.search.is_some(), |item| {
            let campaign: Campaign = crate::decode(item)?;
            Ok(filter
                .matches(&campaign)
                .then(|| (campaign, item.position(index))))
        })
        .await?;
        let count = page.items.len();
        let mut items = Vec::with_capacity(count);
        let mut bytes = 0;
        for (i, (campaign, position)) in page.items.into_iter().enumerate() {
            bytes += serde_json::to_vec(&campaign).map_or(0, |v| v.len());
            items.push(campaign);
            if bytes >= PAGE_BYTES_BUDGET && i + 1 < count {
                return Ok(CampaignPage {
                    items,
                    next: Some(position),
                });
            }
        }
        Ok(CampaignPage {
            items,
            next: page.next,
        })
    }

    /// The campaigns in DRAFT, SCHEDULED or SENDING whose audience names `segment`
    /// (`SEGMENT_IN_USE`), at most 100.
    pub async fn using_segment(
        &self,
        project: Uuid,
        segment: Uuid,
    ) -> Result<Vec<UsedBy>, StoreError> {
        let mut query = Query::new(
            Index::Primary,
            keys::segment_uses_partition(project, segment),
        );
        query.limit = crate::repo::domains::MAX_USED_BY;
        let page = self.table.query(query).await?;
        page.items
            .iter()
            .map(crate::decode::<UsedBy>)
            .filter(|u| {
                !matches!(
                    u,
                    Ok(UsedBy {
                        kind: UsedByType::Template,
                        ..
                    })
                )
            })
            .collect()
    }

    /// How many of `project`'s campaigns are scheduled for `minute`, counted up to
    /// [`MAX_DUE_PER_MINUTE`] (one small query of the due index). Two schedules at the same moment
    /// may both pass at 24: the bound is what one tick must start, and a few over it are harmless.
    async fn due_count(&self, project: Uuid, minute: i64) -> Result<usize, StoreError> {
        let mut query = Query::new(Index::Primary, keys::campaign_due_partition(minute));
        query.sort_prefix = Some(format!("{project}#"));
        query.limit = MAX_DUE_PER_MINUTE;
        Ok(self.table.query(query).await?.items.len())
    }

    /// The campaigns scheduled for `minute` (one page of the due index per call; the caller
    /// removes what it started).
    pub async fn due_in_minute(&self, minute: i64) -> Result<Vec<DueCampaign>, StoreError> {
        let mut out = Vec::new();
        let mut query = Query::new(Index::Primary, keys::campaign_due_partition(minute));
        loop {
            let page = self.table.query(query.clone()).await?;
            for item in page.items {
                let parsed = item.key.sk.split_once('#').and_then(|(p, c)| {
                    Some(DueCampaign {
                        project: p.parse().ok()?,
                        campaign: c.parse().ok()?,
                    })
                });
                match parsed {
                    Some(due) => out.push(due),
                    None => tracing::warn!(sk = %item.key.sk, "a due campaign item naming nothing"),
                }
            }
            match page.last {
                Some(last) => query.start_after = Some(last),
                None => return Ok(out),
            }
        }
    }

    /// The first minute of the due index not yet worked through, with its item's version
    /// (`None`: never worked).
    pub async fn due_progress(&self) -> Result<Option<(i64, u64)>, StoreError> {
        Ok(self
            .table
            .get(&keys::campaign_due_progress())
            .await?
            .and_then(|item| Some((item.body["nextMinute"].as_i64()?, item.version))))
    }

    /// Records that every minute before `next_minute` was worked; false when another tick moved
    /// the progress meanwhile (it did the same work).
    pub async fn save_due_progress(
        &self,
        next_minute: i64,
        read_version: Option<u64>,
    ) -> Result<bool, StoreError> {
        let (version, condition) = match read_version {
            Some(v) => (v + 1, Condition::VersionEquals(v)),
            None => (1, Condition::NotExists),
        };
        let item = Item::new(
            keys::campaign_due_progress(),
            serde_json::json!({ "nextMinute": next_minute }),
        )
        .with_version(version);
        match self.table.put(item, condition).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes a due item whose campaign is no longer scheduled for that minute (deleted or
    /// rescheduled while its tick read it).
    pub async fn forget_due(&self, minute: i64, due: DueCampaign) -> Result<(), StoreError> {
        self.table
            .delete(
                &keys::campaign_due(minute, due.project, due.campaign),
                Condition::None,
            )
            .await
    }
}

/// The writes that move a campaign's reference items from what `before` kept to what `after`
/// keeps (either may be absent: created, deleted).
fn reference_changes(
    project: Uuid,
    before: Option<&Campaign>,
    after: Option<&Campaign>,
) -> Vec<WriteOp> {
    let old: Vec<Item> = before.map_or_else(Vec::new, |c| reference_items(project, c));
    let new: Vec<Item> = after.map_or_else(Vec::new, |c| reference_items(project, c));
    let new_keys: HashSet<&Key> = new.iter().map(|i| &i.key).collect();
    let mut ops: Vec<WriteOp> = old
        .iter()
        .filter(|i| !new_keys.contains(&i.key))
        .map(|i| WriteOp::Delete {
            key: i.key.clone(),
            condition: Condition::None,
        })
        .collect();
    // Rewritten even when present: a renamed campaign shows its new name in `usedBy`.
    ops.extend(new.into_iter().map(|item| WriteOp::Put {
        item,
        condition: Condition::None,
    }));
    ops
}
