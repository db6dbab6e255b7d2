//! Segments: one item per segment in the project's segments partition (newest first by a
//! descending query; a `Gsi1` entry per type for the `type` filter), a slug item reserving each
//! slug in the same transaction (`SEGMENT_SLUG_TAKEN` without a race), and for STATIC segments
//! their members:
//!
//! - a member item per add in `…#SEGMENT#<id>#MEMBERS`, sorted by the add's UUIDv7, so the list
//!   is most recently added first;
//! - a marker per (segment, contact), written with `NotExists`, so a contact is a member once and
//!   membership is one read; its `Gsi1` entry lists the contact's memberships (how a deleted
//!   contact leaves its segments);
//! - the member counter in the project's counters partition, moved in the same transaction.

use crate::keys;
use crate::repo::scan::{self, ScanPage};
use crate::table::{Condition, Index, Item, Key, Position, Query, StoreError, Table, WriteOp};
use plunk_domain::segment::{Segment, SegmentType};
use plunk_domain::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

/// Most segments a project may have (each pass over a project evaluates all of them).
pub const MAX_SEGMENTS: usize = 1_000;
/// Most filters a project's DYNAMIC segments hold in all (each contact change is evaluated
/// against every one of them).
pub const MAX_PROJECT_FILTERS: usize = 5_000;
/// How long a departure note lives (it is fed to the dispatcher once, at its write).
const DEPARTURE_TTL_SECONDS: i64 = 86_400;
/// Members deleted with a segment inside the request; the rest are unreachable (no marker
/// lookup finds a segment that is gone) and cost only storage.
const MEMBERS_DELETED_INLINE: usize = 2_000;

/// Failures of segment writes.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("segment not found")]
    NotFound,
    #[error("slug taken")]
    SlugTaken,
    #[error("segment changed concurrently")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A member of a STATIC segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub contact_id: Uuid,
    pub added_at: Timestamp,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Marker {
    add_id: Uuid,
}

/// Segment operations of one table.
pub struct Segments<'a> {
    table: &'a dyn Table,
}

/// Moves the project's segments version (see [`Segments::version`]), in the transaction of
/// every segment write.
fn version_bump(project: Uuid) -> WriteOp {
    WriteOp::Add {
        key: keys::counter(project, keys::SEGMENTS_VERSION_COUNTER),
        delta: 1,
    }
}

fn segment_item(project: Uuid, segment: &Segment, version: u64) -> Item {
    Item::new(keys::segment(project, segment.id), crate::encode(segment))
        .with_gsi1(
            keys::segments_by_type_index(project, segment.segment_type.as_str()),
            segment.id.to_string(),
        )
        .with_version(version)
}

impl<'a> Segments<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// One segment with its version.
    pub async fn get_versioned(
        &self,
        project: Uuid,
        id: Uuid,
    ) -> Result<Option<(Segment, u64)>, StoreError> {
        match self.table.get(&keys::segment(project, id)).await? {
            Some(item) => Ok(Some((crate::decode(&item)?, item.version))),
            None => Ok(None),
        }
    }

    /// One segment.
    pub async fn get(&self, project: Uuid, id: Uuid) -> Result<Option<Segment>, StoreError> {
        Ok(self.get_versioned(project, id).await?.map(|(s, _)| s))
    }

    /// Stores a new segment and reserves its slug.
    pub async fn create(&self, project: Uuid, segment: &Segment) -> Result<(), SegmentError> {
        let result = self
            .table
            .transact(vec![
                WriteOp::Put {
                    item: Item::new(
                        keys::segment_slug(project, &segment.slug),
                        serde_json::json!({ "segmentId": segment.id }),
                    ),
                    condition: Condition::NotExists,
                },
                WriteOp::Put {
                    item: segment_item(project, segment, 1),
                    condition: Condition::NotExists,
                },
                version_bump(project),
            ])
            .await;
        match result {
            Err(StoreError::ConditionFailed { index: Some(0) }) => Err(SegmentError::SlugTaken),
            // Without an index the backend could not say which failed: the slug, unless the
            // (fresh) id collided, which it does not.
            Err(StoreError::ConditionFailed { index: None }) => Err(SegmentError::SlugTaken),
            other => Ok(other?),
        }
    }

    /// Rewrites a segment read at `version`.
    pub async fn save(
        &self,
        project: Uuid,
        segment: &Segment,
        version: u64,
    ) -> Result<(), SegmentError> {
        match self
            .table
            .transact(vec![
                WriteOp::Put {
                    item: segment_item(project, segment, version + 1),
                    condition: Condition::VersionEquals(version),
                },
                version_bump(project),
            ])
            .await
        {
            Err(e) if e.is_condition_failed() => Err(SegmentError::Conflict),
            other => Ok(other?),
        }
    }

    /// A page of segments, newest first, of one type when `segment_type` is given.
    pub async fn list(
        &self,
        project: Uuid,
        segment_type: Option<SegmentType>,
        limit: usize,
        start_after: Option<Position>,
    ) -> Result<ScanPage<Segment>, StoreError> {
        let mut query = match segment_type {
            Some(t) => Query::new(
                Index::Gsi1,
                keys::segments_by_type_index(project, t.as_str()),
            ),
            None => Query::new(Index::Primary, keys::segments_partition(project)),
        };
        query.descending = true;
        query.start_after = start_after;
        scan::page(self.table, query, limit, false, |item| {
            crate::decode::<Segment>(item).map(Some)
        })
        .await
    }

    /// The project's segments version: moved by every create, save and delete, so a reader
    /// holding the segments it read at a version knows, from one small read, whether they are
    /// still current (strongly consistent).
    pub async fn version(&self, project: Uuid) -> Result<i64, StoreError> {
        let item = self
            .table
            .get(&keys::counter(project, keys::SEGMENTS_VERSION_COUNTER))
            .await?;
        Ok(item.and_then(|i| i.counter).unwrap_or(0))
    }

    /// Every segment of the project (at most [`MAX_SEGMENTS`]).
    pub async fn all(&self, project: Uuid) -> Result<Vec<Segment>, StoreError> {
        let mut out = Vec::new();
        let mut query = Query::new(Index::Primary, keys::segments_partition(project));
        loop {
            let page = self.table.query(query.clone()).await?;
            for item in &page.items {
                out.push(crate::decode::<Segment>(item)?);
            }
            match page.last {
                Some(last) if out.len() < MAX_SEGMENTS => query.start_after = Some(last),
                _ => return Ok(out),
            }
        }
    }

    /// Deletes a segment, its slug and (up to a bound) its members.
    pub async fn delete(&self, project: Uuid, segment: &Segment) -> Result<(), StoreError> {
        self.table
            .transact(vec![
                WriteOp::Delete {
                    key: keys::segment(project, segment.id),
                    condition: Condition::None,
                },
                WriteOp::Delete {
                    key: keys::segment_slug(project, &segment.slug),
                    condition: Condition::None,
                },
                version_bump(project),
            ])
            .await?;
        if segment.segment_type == SegmentType::Static {
            let mut removed = 0;
            let mut query = Query::new(
                Index::Primary,
                keys::segment_members_partition(project, segment.id),
            );
            while removed < MEMBERS_DELETED_INLINE {
                let page = self.table.query(query.clone()).await?;
                for item in &page.items {
                    let member: Member = crate::decode(item)?;
                    self.table
                        .delete(
                            &keys::segment_member(project, segment.id, member.contact_id),
                            Condition::None,
                        )
                        .await?;
                    self.table.delete(&item.key, Condition::None).await?;
                    removed += 1;
                }
                match page.last {
                    Some(last) => query.start_after = Some(last),
                    None => break,
                }
            }
        }
        // A DYNAMIC segment's membership entries are left in the contacts' summaries: nothing
        // reads an entry of a segment that is gone, and the next evaluation of each contact
        // drops it.
        match segment.segment_type {
            SegmentType::Static => {
                self.table
                    .delete(
                        &keys::segment_member_counter(project, segment.id),
                        Condition::None,
                    )
                    .await
            }
            SegmentType::Dynamic => {
                crate::repo::memberships::Memberships::new(self.table)
                    .forget_segment(project, segment.id)
                    .await
            }
        }
    }

    /// Adds `contact` to STATIC `segment`; false when it was a member already.
    pub async fn add_member(
        &self,
        project: Uuid,
        segment: Uuid,
        contact: Uuid,
    ) -> Result<bool, StoreError> {
        let add_id = plunk_domain::id::new_id();
        let member = Member {
            contact_id: contact,
            added_at: Timestamp::now(),
        };
        let marker = Item::new(
            keys::segment_member(project, segment, contact),
            crate::encode(&Marker { add_id }),
        )
        .with_gsi1(
            keys::contact_segments_index(project, contact),
            segment.to_string(),
        );
        let result = self
            .table
            .transact(vec![
                WriteOp::Put {
                    item: marker,
                    condition: Condition::NotExists,
                },
                WriteOp::Put {
                    item: Item::new(member_key(project, segment, add_id), crate::encode(&member)),
                    condition: Condition::None,
                },
                WriteOp::Add {
                    key: keys::segment_member_counter(project, segment),
                    delta: 1,
                },
            ])
            .await;
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes `contact` from STATIC `segment`; false when it was not a member.
    pub async fn remove_member(
        &self,
        project: Uuid,
        segment: Uuid,
        contact: Uuid,
    ) -> Result<bool, StoreError> {
        self.leave(project, segment, contact, true).await
    }

    /// Removes a membership; `fed`: with a departure note, so the DYNAMIC segments naming
    /// `segment` re-evaluate the contact (an erased contact needs none).
    async fn leave(
        &self,
        project: Uuid,
        segment: Uuid,
        contact: Uuid,
        fed: bool,
    ) -> Result<bool, StoreError> {
        let marker_key = keys::segment_member(project, segment, contact);
        let Some(item) = self.table.get(&marker_key).await? else {
            return Ok(false);
        };
        let marker: Marker = crate::decode(&item)?;
        let mut ops = vec![
            WriteOp::Delete {
                key: marker_key,
                condition: Condition::VersionEquals(item.version),
            },
            WriteOp::Delete {
                key: member_key(project, segment, marker.add_id),
                condition: Condition::None,
            },
            WriteOp::Add {
                key: keys::segment_member_counter(project, segment),
                delta: -1,
            },
        ];
        if fed {
            ops.push(WriteOp::Put {
                item: Item::new(
                    keys::segment_departure(project, segment, plunk_domain::id::new_id()),
                    serde_json::json!({ "contactId": contact }),
                )
                .with_ttl(Timestamp::now().unix_millis() / 1000 + DEPARTURE_TTL_SECONDS),
                condition: Condition::None,
            });
        }
        let result = self.table.transact(ops).await;
        match result {
            Ok(()) => Ok(true),
            // Removed by a concurrent request.
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Which of `contacts` are members of STATIC `segment` (one batched read per 100).
    pub async fn members_among(
        &self,
        project: Uuid,
        segment: Uuid,
        contacts: &[Uuid],
    ) -> Result<Vec<bool>, StoreError> {
        self.member_markers(project, segment, contacts, false).await
    }

    /// Which of `contacts` have a member marker of `segment`, 100 keys a read, strongly
    /// consistent or not.
    pub(crate) async fn member_markers(
        &self,
        project: Uuid,
        segment: Uuid,
        contacts: &[Uuid],
        consistent: bool,
    ) -> Result<Vec<bool>, StoreError> {
        let mut out = Vec::with_capacity(contacts.len());
        for chunk in contacts.chunks(100) {
            let keys: Vec<Key> = chunk
                .iter()
                .map(|c| keys::segment_member(project, segment, *c))
                .collect();
            let found = if consistent {
                self.table.batch_get(&keys).await?
            } else {
                self.table.batch_get_eventually(&keys).await?
            };
            out.extend(found.iter().map(Option::is_some));
        }
        Ok(out)
    }

    /// A page of a STATIC segment's members, most recently added first.
    pub async fn members(
        &self,
        project: Uuid,
        segment: Uuid,
        limit: usize,
        start_after: Option<Position>,
    ) -> Result<ScanPage<Member>, StoreError> {
        let mut query = Query::new(
            Index::Primary,
            keys::segment_members_partition(project, segment),
        );
        query.descending = true;
        query.start_after = start_after;
        scan::page(self.table, query, limit, false, |item| {
            crate::decode::<Member>(item).map(Some)
        })
        .await
    }

    /// The member count of a STATIC segment.
    pub async fn member_count(&self, project: Uuid, segment: Uuid) -> Result<u64, StoreError> {
        let item = self
            .table
            .get(&keys::segment_member_counter(project, segment))
            .await?;
        Ok(item.and_then(|i| i.counter).unwrap_or(0).max(0) as u64)
    }

    /// The member counts of `segments`, by id: STATIC ones from their counters, DYNAMIC ones
    /// from the project's counts item (eventually consistent reads).
    pub async fn member_counts(
        &self,
        project: Uuid,
        segments: &[Segment],
    ) -> Result<HashMap<Uuid, u64>, StoreError> {
        let mut out = HashMap::new();
        if segments
            .iter()
            .any(|s| s.segment_type == SegmentType::Dynamic)
        {
            let dynamic = crate::repo::memberships::Memberships::new(self.table)
                .counts_eventually(project)
                .await?;
            for s in segments {
                if s.segment_type == SegmentType::Dynamic {
                    out.insert(s.id, dynamic.of(s.id));
                }
            }
        }
        let segments: Vec<Uuid> = segments
            .iter()
            .filter(|s| s.segment_type == SegmentType::Static)
            .map(|s| s.id)
            .collect();
        for chunk in segments.chunks(100) {
            let keys: Vec<Key> = chunk
                .iter()
                .map(|s| keys::segment_member_counter(project, *s))
                .collect();
            for (s, item) in chunk
                .iter()
                .zip(self.table.batch_get_eventually(&keys).await?)
            {
                out.insert(*s, item.and_then(|i| i.counter).unwrap_or(0).max(0) as u64);
            }
        }
        Ok(out)
    }

    /// Removes `contact` from every STATIC segment it belongs to (its history is erased);
    /// returns how many memberships went.
    pub async fn leave_all(&self, project: Uuid, contact: Uuid) -> Result<usize, StoreError> {
        let mut removed = 0;
        // One pass over the index (it is eventually consistent: reading it again right after the
        // removals could show them still).
        let mut query = Query::new(Index::Gsi1, keys::contact_segments_index(project, contact));
        loop {
            let page = self.table.query(query.clone()).await?;
            for item in &page.items {
                let Some(segment) = item
                    .gsi1
                    .as_ref()
                    .and_then(|(_, sk)| Uuid::try_parse(sk).ok())
                else {
                    continue;
                };
                if self.leave(project, segment, contact, false).await? {
                    removed += 1;
                }
            }
            match page.last {
                Some(last) => query.start_after = Some(last),
                None => return Ok(removed),
            }
        }
    }
}

fn member_key(project: Uuid, segment: Uuid, add_id: Uuid) -> Key {
    Key::new(
        keys::segment_members_partition(project, segment),
        add_id.to_string(),
    )
}
