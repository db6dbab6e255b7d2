//! Materialised membership of DYNAMIC segments, kept up to date incrementally (see
//! docs/table-design.md, "Segment membership"):
//!
//! - each contact's memberships live in its activity summary item (`PROJECT#<id>#ACTIVITY` /
//!   `<contactId>`, beside what event conditions read): the DYNAMIC segments it is in and the
//!   instant its next timer is set for. One item holds every input evaluation reads besides the
//!   contact, so an event that moves a contact in or out of a segment costs no write beyond the
//!   summary write the event makes anyway, and one conditional write covers both;
//! - the member counts of a project's DYNAMIC segments in one item (`PROJECT#<id>#COUNTERS` /
//!   `dynamic`), moved once per batch of work by the sum of the batch's moves;
//! - timers: when a contact's answer for a time-relative condition will change by the clock alone
//!   (`Condition::next_change`), an item in that minute's timer partition (16 shards) makes the
//!   scheduler re-evaluate the contact in that minute's tick.
//!
//! **Counts stay exact across failures.** A batch writes its moves into each moved contact's item
//! as an [`Uncounted`] entry under the batch's key, then adds their sum to the counts item, which
//! remembers the last [`RECENT_BATCHES`] keys it counted. A batch that fails in between comes back
//! under the same key (the feed redelivers from the same first record; a tick repeats the same
//! page), finds its entries on the items it touches again and counts them then; a key the counts
//! item remembers is never counted twice. Entries of counted batches are dropped at the item's next
//! write.
//!
//! A change must rest on current inputs: the summary write is conditional on the version read, and
//! a change that moves a contact checks the contact's version after its write and is evaluated
//! again when it moved. Whoever changes an input re-evaluates after (the change feed brings every
//! contact write, event and STATIC membership change to the dispatcher), so the stored membership
//! always ends as the one of the latest inputs, whatever order evaluations finish in.

use crate::keys;
use crate::repo::activity::{decode_summary, encode_summary};
use crate::table::{Condition, Index, Item, Key, Position, Query, StoreError, Table};
use plunk_domain::contact::Contact;
use plunk_domain::event::Event;
use plunk_domain::filter::Activity;
use plunk_domain::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use uuid::Uuid;

/// Keys per batched read.
const READ_BATCH: usize = 100;
/// How long a timer item lives after its minute (it is read in that minute's tick; the expiry
/// deletes it for free).
const TIMER_TTL_SECONDS: i64 = 2 * 86_400;
/// Batch keys the counts item remembers. Every unit of work has a key of its own, reused only
/// when that work comes back; the key must still be remembered then if the work had counted
/// before it failed (a failed step after the count, such as the event counters, brings a batch
/// back within seconds, long before this many later batches of the same project).
pub const RECENT_BATCHES: usize = 48;
/// An entry older than this whose key the counts item no longer remembers is taken as counted
/// and dropped at its item's next write (its batch counted and was pushed out of the memory by
/// later ones). Only a batch that failed before counting and comes back later than this would
/// have its moves left out.
const UNCOUNTED_KEPT_MS: i64 = 10 * 60_000;
/// Entries of other batches an item keeps at most.
const MAX_UNCOUNTED: usize = 8;
/// Attempts of the counts write when other batches of the project write it at the same time.
const COUNT_ATTEMPTS: usize = 20;

/// The DYNAMIC segments one contact is in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// The segments the contact is in.
    #[serde(default, rename = "in", skip_serializing_if = "BTreeSet::is_empty")]
    pub segments: BTreeSet<Uuid>,
    /// The instant (Unix ms) a timer is set to re-evaluate the contact, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_at: Option<i64>,
    /// Moves written here whose batch may not have counted them yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncounted: Vec<Uncounted>,
}

impl Membership {
    /// True when there is nothing to store.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.check_at.is_none() && self.uncounted.is_empty()
    }

    /// The moves `batch` wrote here (empty when none).
    pub fn moves_of(&self, batch: &str) -> BTreeMap<Uuid, i64> {
        self.uncounted
            .iter()
            .find(|u| u.batch == batch)
            .map(|u| u.moves.clone())
            .unwrap_or_default()
    }

    /// Records moves of `batch` (merged with what it wrote here before) and drops the entries
    /// of batches in `counted` and those kept too long.
    pub fn record_moves(
        &mut self,
        batch: &str,
        moves: &[(Uuid, i64)],
        counted: &BTreeSet<String>,
        now_ms: i64,
    ) {
        self.uncounted.retain(|u| {
            u.batch == batch || (!counted.contains(&u.batch) && now_ms - u.at < UNCOUNTED_KEPT_MS)
        });
        // Bounded, so the item stays small whatever a project's traffic: the oldest are taken
        // as counted first (a batch waiting to count is among the newest).
        while self.uncounted.len() > MAX_UNCOUNTED {
            let oldest = (0..self.uncounted.len())
                .filter(|i| self.uncounted[*i].batch != batch)
                .min_by_key(|i| self.uncounted[*i].at);
            match oldest {
                Some(i) => self.uncounted.remove(i),
                None => break,
            };
        }
        if moves.is_empty() {
            return;
        }
        let entry = match self.uncounted.iter_mut().position(|u| u.batch == batch) {
            Some(i) => &mut self.uncounted[i],
            None => {
                self.uncounted.push(Uncounted {
                    batch: batch.to_owned(),
                    at: now_ms,
                    moves: BTreeMap::new(),
                });
                self.uncounted.last_mut().expect("just pushed")
            }
        };
        for (segment, delta) in moves {
            let total = entry.moves.entry(*segment).or_default();
            *total += delta;
            if *total == 0 {
                entry.moves.remove(segment);
            }
        }
        if entry.moves.is_empty() {
            self.uncounted.retain(|u| u.batch != batch);
        }
    }
}

/// Membership moves one batch wrote into a contact's item, kept until the batch has counted them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uncounted {
    /// The batch's key ([`batch_key`]).
    #[serde(rename = "b")]
    pub batch: String,
    /// When it was written (Unix ms).
    #[serde(rename = "t")]
    pub at: i64,
    /// `segment → +1 / -1`.
    #[serde(rename = "m")]
    pub moves: BTreeMap<Uuid, i64>,
}

/// The short key of a batch of work named by `parts`: 12 hex digits of their SHA-256.
pub fn batch_key(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The member counts of a project's DYNAMIC segments, with the batches they include last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicCounts {
    #[serde(default)]
    pub counts: BTreeMap<Uuid, i64>,
    /// Keys of the last batches counted, oldest first.
    #[serde(default)]
    pub recent: VecDeque<String>,
}

impl DynamicCounts {
    /// The batches counted lately.
    pub fn counted(&self) -> BTreeSet<String> {
        self.recent.iter().cloned().collect()
    }

    /// The count of one segment.
    pub fn of(&self, segment: Uuid) -> u64 {
        self.counts.get(&segment).copied().unwrap_or(0).max(0) as u64
    }
}

/// What evaluating one contact needs, as read.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub contact_id: Uuid,
    /// The contact and its version; `None` when it does not exist (deleted).
    pub contact: Option<(Contact, u64)>,
    pub activity: Activity,
    pub membership: Membership,
    /// The version of the summary item holding both; `None`: no item yet.
    pub summary_version: Option<u64>,
}

/// A new summary for one contact, with what is written before it.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub contact: Uuid,
    /// The version it was read at (`None`: none yet).
    pub summary_version: Option<u64>,
    /// The activity to store (with the batch's events folded in).
    pub activity: Activity,
    pub after: Membership,
    /// Entry and exit events of tracked segments (ids derived from the batch, so writing them
    /// again is harmless).
    pub events: Vec<Event>,
    /// A timer to set, in this minute (Unix minutes).
    pub timer_minute: Option<i64>,
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
        // dispatcher, which the change feeds, with strongly consistent reads; a stale summary
        // fails its conditional write and is read again.
        Ok((self.complete(project, known, false).await?, page.last))
    }

    /// Adds each contact's summary (one batched read).
    async fn complete(
        &self,
        project: Uuid,
        known: Vec<(Uuid, Option<(Contact, u64)>)>,
        consistent: bool,
    ) -> Result<Vec<Inputs>, StoreError> {
        let summary_keys: Vec<Key> = known
            .iter()
            .map(|(c, _)| keys::contact_activity(project, *c))
            .collect();
        let summaries = if consistent {
            self.table.batch_get(&summary_keys).await?
        } else {
            self.table.batch_get_eventually(&summary_keys).await?
        };
        Ok(known
            .into_iter()
            .zip(summaries)
            .map(|((contact_id, contact), summary)| {
                let (activity, membership, summary_version) = match summary {
                    Some(item) => {
                        let (activity, membership) = decode_summary(&item);
                        (activity, membership, Some(item.version))
                    }
                    None => (Activity::default(), Membership::default(), None),
                };
                Inputs {
                    contact_id,
                    contact,
                    activity,
                    membership,
                    summary_version,
                }
            })
            .collect())
    }

    /// The current version of a contact (strongly consistent; `None` when it does not exist): a
    /// change that moved the contact is verified against it after its write.
    pub async fn contact_version(
        &self,
        project: Uuid,
        contact: Uuid,
    ) -> Result<Option<u64>, StoreError> {
        Ok(self
            .table
            .get(&keys::contact(project, contact))
            .await?
            .map(|i| i.version))
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

    /// Writes `change` if the summary is still at the version read: `Ok(false)` when it moved
    /// meanwhile (the caller reads again and re-evaluates). The timer and the entry and exit
    /// events go first: a crash after them leaves a timer that finds nothing to do, or an event
    /// the same batch writes again under the same id, never a move without its timer or event.
    pub async fn apply(&self, project: Uuid, change: &Change) -> Result<bool, StoreError> {
        if let Some(minute) = change.timer_minute {
            let timer = Item::new(
                keys::segment_timer(minute, project, change.contact),
                serde_json::json!({}),
            )
            .with_ttl(minute * 60 + TIMER_TTL_SECONDS);
            self.table.put(timer, Condition::None).await?;
        }
        for event in &change.events {
            match self
                .table
                .put(
                    crate::repo::events::event_item(project, event),
                    Condition::NotExists,
                )
                .await
            {
                Ok(()) => {}
                Err(e) if e.is_condition_failed() => {}
                Err(e) => return Err(e),
            }
        }
        let (version, condition) = match change.summary_version {
            Some(v) => (v + 1, Condition::VersionEquals(v)),
            None => (1, Condition::NotExists),
        };
        let item = Item::new(
            keys::contact_activity(project, change.contact),
            encode_summary(&change.activity, &change.after),
        )
        .with_version(version);
        match self.table.put(item, condition).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The member counts of the project's DYNAMIC segments (strongly consistent).
    pub async fn counts(&self, project: Uuid) -> Result<DynamicCounts, StoreError> {
        Ok(self
            .table
            .get(&keys::dynamic_segment_counts(project))
            .await?
            .map(|item| crate::decode(&item))
            .transpose()?
            .unwrap_or_default())
    }

    /// The same, eventually consistent (what the API shows).
    pub async fn counts_eventually(&self, project: Uuid) -> Result<DynamicCounts, StoreError> {
        Ok(self
            .table
            .get_eventually(&keys::dynamic_segment_counts(project))
            .await?
            .map(|item| crate::decode(&item))
            .transpose()?
            .unwrap_or_default())
    }

    /// Adds the moves of `batch` to the counts, once: a batch the counts item remembers is not
    /// counted again. False when it had been counted already.
    pub async fn count(
        &self,
        project: Uuid,
        batch: &str,
        moves: &BTreeMap<Uuid, i64>,
    ) -> Result<bool, StoreError> {
        let key = keys::dynamic_segment_counts(project);
        for _ in 0..COUNT_ATTEMPTS {
            let item = self.table.get(&key).await?;
            let (mut counts, version) = match &item {
                Some(item) => (crate::decode::<DynamicCounts>(item)?, Some(item.version)),
                None => (DynamicCounts::default(), None),
            };
            if counts.recent.iter().any(|b| b == batch) {
                return Ok(false);
            }
            for (segment, delta) in moves {
                *counts.counts.entry(*segment).or_default() += delta;
            }
            counts.recent.push_back(batch.to_owned());
            while counts.recent.len() > RECENT_BATCHES {
                counts.recent.pop_front();
            }
            let (next, condition) = match version {
                Some(v) => (v + 1, Condition::VersionEquals(v)),
                None => (1, Condition::NotExists),
            };
            let item = Item::new(key.clone(), crate::encode(&counts)).with_version(next);
            match self.table.put(item, condition).await {
                Ok(()) => return Ok(true),
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(
            "segment counts changed concurrently too often".into(),
        ))
    }

    /// Drops deleted segments from the counts (their ids are never reused).
    pub async fn forget_segment(&self, project: Uuid, segment: Uuid) -> Result<(), StoreError> {
        let key = keys::dynamic_segment_counts(project);
        for _ in 0..COUNT_ATTEMPTS {
            let Some(item) = self.table.get(&key).await? else {
                return Ok(());
            };
            let mut counts: DynamicCounts = crate::decode(&item)?;
            if counts.counts.remove(&segment).is_none() {
                return Ok(());
            }
            let next =
                Item::new(key.clone(), crate::encode(&counts)).with_version(item.version + 1);
            match self
                .table
                .put(next, Condition::VersionEquals(item.version))
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(
            "segment counts changed concurrently too often".into(),
        ))
    }

    /// Removes an erased contact's summary and takes it out of the counts of the segments in
    /// `existing` it was in (no exit events: nothing new names an erased contact). The counts
    /// move first, under a key naming the item's version, so a repeat after a crash counts once.
    pub async fn remove(
        &self,
        project: Uuid,
        contact: Uuid,
        existing: &[Uuid],
    ) -> Result<(), StoreError> {
        let key = keys::contact_activity(project, contact);
        for _ in 0..5 {
            let Some(item) = self.table.get(&key).await? else {
                return Ok(());
            };
            let (_, membership) = decode_summary(&item);
            let left: BTreeMap<Uuid, i64> = membership
                .segments
                .iter()
                .filter(|s| existing.contains(s))
                .map(|s| (*s, -1))
                .collect();
            if !left.is_empty() {
                let batch = batch_key(&[b"erase", contact.as_bytes(), &item.version.to_be_bytes()]);
                self.count(project, &batch, &left).await?;
            }
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
        super::progress::load(self.table, &keys::segment_timers_state()).await
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
        super::progress::save(self.table, keys::segment_timers_state(), progress, version).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batchs_moves_merge_and_counted_or_stale_entries_go() {
        let (s1, s2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let counted: BTreeSet<String> = ["old".to_owned()].into();
        let mut m = Membership::default();
        m.uncounted.push(Uncounted {
            batch: "old".into(),
            at: 0,
            moves: [(s1, 1)].into(),
        });
        m.uncounted.push(Uncounted {
            batch: "other".into(),
            at: 1_000,
            moves: [(s2, 1)].into(),
        });
        m.record_moves("mine", &[(s1, 1), (s2, -1)], &counted, 2_000);
        assert_eq!(m.moves_of("mine"), [(s1, 1), (s2, -1)].into());
        assert_eq!(m.moves_of("old"), BTreeMap::new(), "counted: dropped");
        assert_eq!(
            m.moves_of("other"),
            [(s2, 1)].into(),
            "not counted yet: kept"
        );
        // Moves that cancel out leave nothing to count.
        m.record_moves("mine", &[(s1, -1), (s2, 1)], &counted, 2_000);
        assert!(m.moves_of("mine").is_empty());
        // An entry older than ten minutes is taken as counted.
        m.record_moves("later", &[], &counted, 1_000 + UNCOUNTED_KEPT_MS);
        assert!(m.uncounted.is_empty(), "{m:?}");
        // At most eight entries of other batches are kept, the oldest going first.
        for i in 0..12 {
            m.record_moves(&format!("b{i}"), &[(s1, 1)], &counted, 3_000 + i);
        }
        assert_eq!(m.uncounted.len(), 9, "eight others and the batch writing");
        assert!(m.moves_of("b2").is_empty() && !m.moves_of("b3").is_empty());
    }

    #[test]
    fn batch_keys_are_short_and_stable() {
        let key = batch_key(&[b"feed", b"x"]);
        assert_eq!(key.len(), 12);
        assert_eq!(key, batch_key(&[b"feed", b"x"]));
        assert_ne!(key, batch_key(&[b"fee", b"dx"]), "parts are delimited");
    }
}
