//! Materialised membership of DYNAMIC segments, kept up to date incrementally (see
//! docs/table-design.md, "Segment membership"):
//!
//! - one item per contact in `PROJECT#<id>#MEMBERSHIPS` (sorted by contact id like the contacts
//!   and activity partitions) naming the DYNAMIC segments it is in, when it entered each, when it
//!   last left, and the instant its next timer is set for;
//! - each segment's member counter (the same counter STATIC segments keep), moved in the same
//!   transaction as the membership item, so a count is exactly the members recorded;
//! - timers: when a contact's answer for a time-relative condition will change by the clock alone
//!   (`Condition::next_change`), an item in that minute's timer partition (16 shards) makes the
//!   scheduler re-evaluate the contact in that minute's tick.
//!
//! A change must rest on current inputs. One that stores entry or exit events checks the
//! versions of the contact, its activity summary and the STATIC memberships it read in its
//! transaction; a change of counts alone is verified after its write instead (a transactional
//! check costs as much as a write), and evaluated again when an input moved. Whoever changes an
//! input re-evaluates after (the change feed brings every contact write, event and STATIC
//! membership change to the dispatcher), so the stored membership always ends as the one of the
//! latest inputs, whatever order evaluations finish in.

use crate::keys;
use crate::table::{Condition, Index, Item, Key, Position, Query, StoreError, Table, WriteOp};
use plunk_domain::contact::Contact;
use plunk_domain::event::Event;
use plunk_domain::filter::Activity;
use plunk_domain::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Keys per batched read.
const READ_BATCH: usize = 100;
/// Operations per transaction (DynamoDB allows 100).
pub const MAX_TRANSACTION_OPS: usize = 100;
/// How long a timer item lives after its minute (it is read in that minute's tick; the expiry
/// deletes it for free).
const TIMER_TTL_SECONDS: i64 = 2 * 86_400;

/// The DYNAMIC segments one contact is in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// The segments the contact is in, with when it entered each.
    #[serde(default)]
    pub segments: BTreeMap<Uuid, Timestamp>,
    /// When the contact last left each segment it left.
    #[serde(default)]
    pub exited: BTreeMap<Uuid, Timestamp>,
    /// The instant (Unix ms) a timer is set to re-evaluate the contact, if any.
    #[serde(default)]
    pub check_at: Option<i64>,
}

/// What evaluating one contact needs, as read, with the versions a change is checked against.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub contact_id: Uuid,
    /// The contact and its version; `None` when it does not exist (deleted).
    pub contact: Option<(Contact, u64)>,
    pub activity: Activity,
    /// `None`: no summary yet.
    pub activity_version: Option<u64>,
    pub membership: Membership,
    /// `None`: no membership item yet.
    pub membership_version: Option<u64>,
}

/// A new membership for one contact, with what moves with it.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub contact: Uuid,
    pub contact_version: u64,
    pub activity_version: Option<u64>,
    pub membership_version: Option<u64>,
    /// The STATIC memberships the evaluation read, `(segment, was a member)`: checked too.
    pub static_reads: Vec<(Uuid, bool)>,
    pub after: Membership,
    /// Member counter moves, `(segment, ±1)`.
    pub counter_moves: Vec<(Uuid, i64)>,
    /// Entry and exit events of tracked segments, stored with the change.
    pub events: Vec<Event>,
    /// A timer to set, in this minute (Unix minutes).
    pub timer_minute: Option<i64>,
}

impl Change {
    /// Whether the write checks its inputs' versions in its transaction. Only changes that store
    /// entry or exit events do (a check costs as much as a transactional write); the others are
    /// verified after the write ([`Memberships::input_versions`]) and corrected by evaluating
    /// again, which for counts alone is as exact and cheaper.
    pub fn checked(&self) -> bool {
        !self.events.is_empty()
    }

    /// The operations of its transaction besides the checks (the timer is written apart).
    pub fn write_count(&self) -> usize {
        1 + self.counter_moves.len() + self.events.len()
    }

    /// The operations it checks.
    pub fn check_count(&self) -> usize {
        if self.checked() {
            2 + self.static_reads.len()
        } else {
            0
        }
    }
}

/// One due timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    pub project: Uuid,
    pub contact: Uuid,
}

/// How far the scheduler has worked through the timers: every minute before `minute` is done,
/// and of `minute` the shards before `shard`, the last up to `position`; and when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimersProgress {
    pub minute: i64,
    pub shard: u32,
    #[serde(default)]
    pub position: Option<Position>,
    /// When a tick last worked the timers (Unix ms): every boundary up to then is handled.
    #[serde(default)]
    pub worked_at_ms: i64,
}

/// Membership operations of one table.
pub struct Memberships<'a> {
    table: &'a dyn Table,
}

impl<'a> Memberships<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// The inputs of `contacts` (strongly consistent reads, 100 keys at a time), in their order.
    pub async fn inputs(
        &self,
        project: Uuid,
        contacts: &[Uuid],
    ) -> Result<Vec<Inputs>, StoreError> {
        let mut out = Vec::with_capacity(contacts.len());
        for chunk in contacts.chunks(READ_BATCH) {
            let contact_keys: Vec<Key> = chunk.iter().map(|c| keys::contact(project, *c)).collect();
            let found = self.table.batch_get(&contact_keys).await?;
            let mut known = Vec::with_capacity(chunk.len());
            for (id, item) in chunk.iter().zip(found) {
                let contact = match item {
                    Some(item) => Some((crate::decode::<Contact>(&item)?, item.version)),
                    None => None,
                };
                known.push((*id, contact));
            }
            out.extend(self.complete(project, known, true).await?);
        }
        Ok(out)
    }

    /// A page of the project's contacts (oldest first, after `start`) with their inputs, and
    /// where the next page starts.
    pub async fn inputs_page(
        &self,
        project: Uuid,
        start: Option<Position>,
        limit: usize,
    ) -> Result<(Vec<Inputs>, Option<Position>), StoreError> {
        let mut query = Query::new(Index::Primary, keys::contacts_partition(project));
        query.limit = limit.clamp(1, READ_BATCH);
        query.start_after = start;
        let page = self.table.query(query).await?;
        let mut known = Vec::with_capacity(page.items.len());
        for item in &page.items {
            let contact: Contact = crate::decode(item)?;
            known.push((contact.id, Some((contact, item.version))));
        }
        // Eventually consistent: a contact whose inputs just changed is evaluated again by the
        // dispatcher, which the change feeds, with strongly consistent reads.
        Ok((self.complete(project, known, false).await?, page.last))
    }

    /// Adds the activity and membership of each contact (one batched read of each).
    async fn complete(
        &self,
        project: Uuid,
        known: Vec<(Uuid, Option<(Contact, u64)>)>,
        consistent: bool,
    ) -> Result<Vec<Inputs>, StoreError> {
        let activity_keys: Vec<Key> = known
            .iter()
            .map(|(c, _)| keys::contact_activity(project, *c))
            .collect();
        let membership_keys: Vec<Key> = known
            .iter()
            .map(|(c, _)| keys::contact_membership(project, *c))
            .collect();
        let (activities, memberships) = if consistent {
            (
                self.table.batch_get(&activity_keys).await?,
                self.table.batch_get(&membership_keys).await?,
            )
        } else {
            (
                self.table.batch_get_eventually(&activity_keys).await?,
                self.table.batch_get_eventually(&membership_keys).await?,
            )
        };
        let mut out = Vec::with_capacity(known.len());
        for (((contact_id, contact), activity), membership) in
            known.into_iter().zip(activities).zip(memberships)
        {
            let (activity, activity_version) = match activity {
                Some(item) => (
                    serde_json::from_value(item.body.clone()).unwrap_or_default(),
                    Some(item.version),
                ),
                None => (Activity::default(), None),
            };
            let (membership, membership_version) = match membership {
                Some(item) => (crate::decode(&item)?, Some(item.version)),
                None => (Membership::default(), None),
            };
            out.push(Inputs {
                contact_id,
                contact,
                activity,
                activity_version,
                membership,
                membership_version,
            });
        }
        Ok(out)
    }

    /// The current versions of a contact and of its activity summary (strongly consistent; `None`
    /// for one that does not exist): an unchecked change is verified against them after its
    /// write.
    pub async fn input_versions(
        &self,
        project: Uuid,
        contact: Uuid,
    ) -> Result<(Option<u64>, Option<u64>), StoreError> {
        let found = self
            .table
            .batch_get(&[
                keys::contact(project, contact),
                keys::contact_activity(project, contact),
            ])
            .await?;
        Ok((
            found[0].as_ref().map(|i| i.version),
            found[1].as_ref().map(|i| i.version),
        ))
    }

    /// Which of `contacts` are members of STATIC `segment` (strongly consistent).
    pub async fn static_members(
        &self,
        project: Uuid,
        segment: Uuid,
        contacts: &[Uuid],
    ) -> Result<Vec<bool>, StoreError> {
        crate::repo::segments::Segments::new(self.table)
            .member_markers(project, segment, contacts, true)
            .await
    }

    /// Writes `change` if its inputs are unchanged: `Ok(false)` when one changed meanwhile (the
    /// caller reads again and re-evaluates). At most [`MAX_TRANSACTION_OPS`] operations; the
    /// caller splits larger changes.
    pub async fn apply(&self, project: Uuid, change: &Change) -> Result<bool, StoreError> {
        let (version, condition) = match change.membership_version {
            Some(v) => (v + 1, Condition::VersionEquals(v)),
            None => (1, Condition::NotExists),
        };
        let item = Item::new(
            keys::contact_membership(project, change.contact),
            crate::encode(&change.after),
        )
        .with_version(version);
        let timer = change.timer_minute.map(|minute| {
            Item::new(
                keys::segment_timer(minute, project, change.contact),
                serde_json::json!({}),
            )
            .with_ttl(minute * 60 + TIMER_TTL_SECONDS)
        });
        // The timer is written first, on its own (a crash after it leaves a timer that finds
        // nothing to do, never a boundary without a timer; in a transaction it would cost twice).
        if let Some(timer) = timer {
            self.table.put(timer, Condition::None).await?;
        }
        if change.counter_moves.is_empty() && change.events.is_empty() {
            // Only the next timer moved: a plain write.
            return match self.table.put(item, condition).await {
                Ok(()) => Ok(true),
                Err(e) if e.is_condition_failed() => Ok(false),
                Err(e) => Err(e),
            };
        }
        let mut ops = Vec::with_capacity(change.check_count() + change.write_count());
        if change.checked() {
            ops.push(WriteOp::Check {
                key: keys::contact(project, change.contact),
                condition: Condition::VersionEquals(change.contact_version),
            });
            ops.push(WriteOp::Check {
                key: keys::contact_activity(project, change.contact),
                condition: match change.activity_version {
                    Some(v) => Condition::VersionEquals(v),
                    None => Condition::NotExists,
                },
            });
            for (segment, was_member) in &change.static_reads {
                ops.push(WriteOp::Check {
                    key: keys::segment_member(project, *segment, change.contact),
                    condition: if *was_member {
                        Condition::Exists
                    } else {
                        Condition::NotExists
                    },
                });
            }
        }
        ops.push(WriteOp::Put { item, condition });
        for (segment, delta) in &change.counter_moves {
            ops.push(WriteOp::Add {
                key: keys::segment_member_counter(project, *segment),
                delta: *delta,
            });
        }
        for event in &change.events {
            ops.push(WriteOp::Put {
                item: crate::repo::events::event_item(project, event),
                condition: Condition::NotExists,
            });
        }
        match self.table.transact(ops).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes an erased contact's membership item and takes it out of the counts of the
    /// segments in `existing` it was in (no exit events: nothing new names an erased contact).
    pub async fn remove(
        &self,
        project: Uuid,
        contact: Uuid,
        existing: &[Uuid],
    ) -> Result<(), StoreError> {
        let key = keys::contact_membership(project, contact);
        for _ in 0..5 {
            let Some(item) = self.table.get(&key).await? else {
                return Ok(());
            };
            let membership: Membership = crate::decode(&item)?;
            let left: Vec<Uuid> = membership
                .segments
                .keys()
                .filter(|s| existing.contains(s))
                .copied()
                .collect();
            // One transaction when it fits; a contact in more segments first leaves them in
            // chunks (each chunk's counters move with a rewrite of the item without them).
            let mut rest = membership.clone();
            let chunks: Vec<&[Uuid]> = left.chunks(MAX_TRANSACTION_OPS - 1).collect();
            let mut version = item.version;
            let mut conflicted = false;
            for (i, chunk) in chunks.iter().enumerate() {
                let last = i + 1 == chunks.len();
                for s in *chunk {
                    rest.segments.remove(s);
                }
                let mut ops: Vec<WriteOp> = chunk
                    .iter()
                    .map(|s| WriteOp::Add {
                        key: keys::segment_member_counter(project, *s),
                        delta: -1,
                    })
                    .collect();
                ops.push(if last {
                    WriteOp::Delete {
                        key: key.clone(),
                        condition: Condition::VersionEquals(version),
                    }
                } else {
                    WriteOp::Put {
                        item: Item::new(key.clone(), crate::encode(&rest))
                            .with_version(version + 1),
                        condition: Condition::VersionEquals(version),
                    }
                });
                match self.table.transact(ops).await {
                    Ok(()) => version += 1,
                    Err(e) if e.is_condition_failed() => {
                        conflicted = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if chunks.is_empty() {
                match self
                    .table
                    .delete(&key, Condition::VersionEquals(item.version))
                    .await
                {
                    Ok(()) => return Ok(()),
                    Err(e) if e.is_condition_failed() => continue,
                    Err(e) => return Err(e),
                }
            }
            if !conflicted {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(
            "membership changed concurrently too often".into(),
        ))
    }

    /// A page of one shard of the timers due in `minute`, after `start`.
    pub async fn due_timers(
        &self,
        minute: i64,
        shard: u32,
        start: Option<Position>,
        limit: usize,
    ) -> Result<(Vec<Timer>, Option<Position>), StoreError> {
        let mut query = Query::new(
            Index::Primary,
            keys::segment_timers_partition(minute, shard),
        );
        query.limit = limit.max(1);
        query.start_after = start;
        let page = self.table.query(query).await?;
        let timers = page
            .items
            .iter()
            .filter_map(|item| {
                let (project, contact) = item.key.sk.split_once('#')?;
                Some(Timer {
                    project: project.parse().ok()?,
                    contact: contact.parse().ok()?,
                })
            })
            .collect();
        Ok((timers, page.last))
    }

    /// How far the timers have been worked through (`None`: never).
    pub async fn timers_progress(&self) -> Result<Option<(TimersProgress, u64)>, StoreError> {
        match self.table.get(&keys::segment_timers_state()).await? {
            Some(item) => Ok(Some((crate::decode(&item)?, item.version))),
            None => Ok(None),
        }
    }

    /// The instant up to which every due timer has been worked (`None`: never worked), read
    /// eventually consistently: what a DYNAMIC segment's count is kept current to.
    pub async fn timers_through(&self) -> Result<Option<Timestamp>, StoreError> {
        let Some(item) = self
            .table
            .get_eventually(&keys::segment_timers_state())
            .await?
        else {
            return Ok(None);
        };
        let progress: TimersProgress = crate::decode(&item)?;
        // A boundary is handled by the first tick at or after its minute's start; the timers of
        // the minute a tick ran in are all handled only up to the tick itself.
        let through = progress
            .worked_at_ms
            .min(progress.minute.saturating_mul(60_000));
        Ok(Timestamp::from_millis(through))
    }

    /// Saves the progress read at `version` (`None`: first save); false when another tick moved
    /// it meanwhile.
    pub async fn save_timers_progress(
        &self,
        progress: &TimersProgress,
        version: Option<u64>,
    ) -> Result<bool, StoreError> {
        let (next, condition) = match version {
            Some(v) => (v + 1, Condition::VersionEquals(v)),
            None => (1, Condition::NotExists),
        };
        let item =
            Item::new(keys::segment_timers_state(), crate::encode(progress)).with_version(next);
        match self.table.put(item, condition).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e),
        }
    }
}
