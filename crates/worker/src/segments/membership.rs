//! Keeping DYNAMIC segment membership current, contact by contact (segments.md §4; the store
//! side is `plunk_store::repo::memberships`).
//!
//! A contact is re-evaluated against every DYNAMIC segment of its project whenever something a
//! condition reads may have changed:
//!
//! - the event dispatcher, for each contact of a batch whose contact item was written, whose
//!   events arrived, or who joined or left a STATIC segment;
//! - the scheduler's tick, for each contact whose timer is due (a time-relative filter crosses
//!   its boundary in that minute);
//! - a segment's full pass ([`super::jobs`]), for every contact, when the segment is new or its
//!   condition changed.
//!
//! Evaluation reads the contact, its activity summary, its membership item and the STATIC
//! memberships the conditions name (strongly consistent, batched per 100), and writes only what
//! changed: the membership item, the member counters, the entry and exit events of tracked
//! segments whose baseline is set, and a timer for its next boundary. A change whose inputs moved
//! meanwhile is not written and the contact is evaluated again.

use crate::audience::Resolver;
use plunk_domain::event::{Event, EventSource};
use plunk_domain::filter::{Condition, Subject};
use plunk_domain::segment::{Segment, SegmentType};
use plunk_domain::Timestamp;
use plunk_store::repo::memberships::{Change, Inputs, Membership, MAX_TRANSACTION_OPS};
use plunk_store::table::StoreError;
use plunk_store::Store;
use serde_json::{json, Map};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use uuid::Uuid;

/// Times a contact is read and evaluated again after its inputs moved under a write.
const ATTEMPTS: usize = 5;

/// The segments of one project, as evaluation needs them.
pub struct ProjectSegments {
    /// Every DYNAMIC segment with a condition that parses, in creation order.
    dynamic: Vec<(Segment, Condition)>,
    /// The same conditions by id (what `memberOfSegment` of a DYNAMIC segment evaluates).
    conditions: HashMap<Uuid, Condition>,
    /// STATIC segments the conditions name (their memberships are read per contact).
    statics_named: Vec<Uuid>,
    /// Every segment id of the project (entries of deleted segments are dropped).
    existing: HashSet<Uuid>,
}

/// Projects whose segments this process holds, parsed, with the segments version they were read
/// at. Bounded: past it the cache starts over.
const CACHED_PROJECTS: usize = 1_000;

type Cache = Mutex<HashMap<Uuid, (i64, Arc<ProjectSegments>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::default)
}

impl ProjectSegments {
    /// The project's segments as they are now: from this process's cache when the project's
    /// segments version (one small strongly consistent read) says they did not change, else read
    /// and parsed again. Every dispatch batch asks, so this keeps a batch from reading and
    /// parsing up to 1,000 conditions of 32 KB each.
    pub async fn current(store: &Store, project: Uuid) -> Result<Arc<Self>, StoreError> {
        let version = store.segments().version(project).await?;
        let cached = cache().lock().expect("cache").get(&project).cloned();
        if let Some((at, segments)) = cached {
            if at == version {
                return Ok(segments);
            }
        }
        // Read after the version: segments newer than it are cached under it at worst, and read
        // again at the next batch.
        let segments = Arc::new(Self::load(store, project).await?);
        let mut cache = cache().lock().expect("cache");
        if cache.len() >= CACHED_PROJECTS {
            cache.clear();
        }
        cache.insert(project, (version, segments.clone()));
        Ok(segments)
    }

    /// Reads and parses the project's segments (at most 1,000).
    pub async fn load(store: &Store, project: Uuid) -> Result<Self, StoreError> {
        let all = store.segments().all(project).await?;
        let mut dynamic = Vec::new();
        let mut conditions = HashMap::new();
        let mut named = HashSet::new();
        let existing: HashSet<Uuid> = all.iter().map(|s| s.id).collect();
        let statics: HashSet<Uuid> = all
            .iter()
            .filter(|s| s.segment_type == SegmentType::Static)
            .map(|s| s.id)
            .collect();
        for segment in all {
            if segment.segment_type != SegmentType::Dynamic {
                continue;
            }
            let Some(condition) = segment.parsed_condition() else {
                continue;
            };
            for id in condition.segment_refs() {
                if statics.contains(&id) {
                    named.insert(id);
                }
            }
            conditions.insert(segment.id, condition.clone());
            dynamic.push((segment, condition));
        }
        dynamic.sort_by_key(|(s, _)| s.id);
        let mut statics_named: Vec<Uuid> = named.into_iter().collect();
        statics_named.sort();
        Ok(Self {
            dynamic,
            conditions,
            statics_named,
            existing,
        })
    }

    /// True when the project has no DYNAMIC segment (nothing to keep).
    pub fn is_empty(&self) -> bool {
        self.dynamic.is_empty()
    }
}

/// Which segments an evaluation decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every DYNAMIC segment (a change of the contact).
    All,
    /// One segment's full pass; `events: false` for a recount (`refresh`), which records
    /// changes silently.
    One { segment: Uuid, events: bool },
}

/// What an evaluation did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Contacts evaluated.
    pub evaluated: usize,
    /// Contacts whose membership item was written.
    pub written: usize,
    /// Entry and exit events stored.
    pub events: usize,
    /// Memberships that changed (a contact entering or leaving a segment).
    pub moved: usize,
    /// Contacts given up on after [`ATTEMPTS`] (a later change evaluates them again).
    pub abandoned: usize,
}

impl Outcome {
    fn add(&mut self, other: Outcome) {
        self.evaluated += other.evaluated;
        self.written += other.written;
        self.events += other.events;
        self.moved += other.moved;
        self.abandoned += other.abandoned;
    }
}

/// Re-evaluates `contacts` of `project` against every DYNAMIC segment and records what
/// changed.
pub async fn reevaluate(
    store: &Store,
    project: Uuid,
    contacts: &[Uuid],
    now_ms: i64,
) -> Result<Outcome, StoreError> {
    if contacts.is_empty() {
        return Ok(Outcome::default());
    }
    let segments = ProjectSegments::current(store, project).await?;
    if segments.is_empty() {
        return Ok(Outcome::default());
    }
    settle(store, project, &segments, Scope::All, contacts, now_ms).await
}

/// Evaluates `contacts` (read afresh) in `scope`, again for those whose inputs moved under the
/// write, up to [`ATTEMPTS`] times.
pub async fn settle(
    store: &Store,
    project: Uuid,
    segments: &ProjectSegments,
    scope: Scope,
    contacts: &[Uuid],
    now_ms: i64,
) -> Result<Outcome, StoreError> {
    let mut outcome = Outcome::default();
    let mut pending: Vec<Uuid> = contacts.to_vec();
    pending.sort();
    pending.dedup();
    for _ in 0..ATTEMPTS {
        if pending.is_empty() {
            return Ok(outcome);
        }
        let inputs = store.memberships().inputs(project, &pending).await?;
        let (done, conflicted) =
            evaluate_inputs(store, project, segments, scope, &inputs, now_ms).await?;
        outcome.add(done);
        pending = conflicted;
    }
    if !pending.is_empty() {
        tracing::warn!(%project, contacts = pending.len(),
            "segment membership kept changing under evaluation; left to the next change");
        outcome.abandoned += pending.len();
    }
    Ok(outcome)
}

/// Evaluates contacts already read; returns what was done and the contacts whose write found
/// its inputs changed.
pub async fn evaluate_inputs(
    store: &Store,
    project: Uuid,
    segments: &ProjectSegments,
    scope: Scope,
    inputs: &[Inputs],
    now_ms: i64,
) -> Result<(Outcome, Vec<Uuid>), StoreError> {
    let ids: Vec<Uuid> = inputs.iter().map(|i| i.contact_id).collect();
    let mut members: HashSet<(Uuid, Uuid)> = HashSet::new();
    for segment in &segments.statics_named {
        let among = store
            .memberships()
            .static_members(project, *segment, &ids)
            .await?;
        for (contact, member) in ids.iter().zip(among) {
            if member {
                members.insert((*segment, *contact));
            }
        }
    }
    let mut outcome = Outcome::default();
    let mut conflicted = Vec::new();
    for input in inputs {
        outcome.evaluated += 1;
        let Some(change) = plan(segments, scope, input, &members, now_ms) else {
            continue;
        };
        let events = change.events.len();
        let moved = change.counter_moves.len();
        let verify = !change.checked() && !change.counter_moves.is_empty();
        let (contact_version, activity_version) = (change.contact_version, change.activity_version);
        if !apply(store, project, &input.membership, change).await? {
            conflicted.push(input.contact_id);
            continue;
        }
        outcome.written += 1;
        outcome.events += events;
        outcome.moved += moved;
        if verify {
            // Unchecked: if an input moved while this was decided, decide again (the write
            // stands as a step; the next evaluation corrects it).
            let now = store
                .memberships()
                .input_versions(project, input.contact_id)
                .await?;
            if now != (Some(contact_version), activity_version) {
                conflicted.push(input.contact_id);
            }
        }
    }
    Ok((outcome, conflicted))
}

/// The change evaluation makes to one contact's membership, if any.
pub fn plan(
    segments: &ProjectSegments,
    scope: Scope,
    input: &Inputs,
    members: &HashSet<(Uuid, Uuid)>,
    now_ms: i64,
) -> Option<Change> {
    // A deleted contact: its erasure takes it out of every count.
    let (contact, contact_version) = input.contact.as_ref()?;
    let now = Timestamp::from_millis(now_ms).unwrap_or_else(Timestamp::now);
    let resolver = Resolver::new(
        contact,
        &input.activity,
        members,
        &segments.conditions,
        now_ms,
    );
    let subject = Subject {
        contact,
        activity: &input.activity,
    };
    let mut after = input.membership.clone();
    after.segments.retain(|s, _| segments.existing.contains(s));
    after.exited.retain(|s, _| segments.existing.contains(s));
    let mut change = Change {
        contact: contact.id,
        contact_version: *contact_version,
        activity_version: input.activity_version,
        membership_version: input.membership_version,
        static_reads: segments
            .statics_named
            .iter()
            .map(|s| (*s, members.contains(&(*s, contact.id))))
            .collect(),
        ..Change::default()
    };
    for (segment, condition) in &segments.dynamic {
        let emits = match scope {
            Scope::All => true,
            Scope::One {
                segment: only,
                events,
            } if only == segment.id => events,
            Scope::One { .. } => continue,
        } && segment.track_membership
            && segment.membership_since.is_some();
        let hit = condition.matches(&subject, &resolver, now_ms);
        let was = after.segments.contains_key(&segment.id);
        if hit == was {
            continue;
        }
        let step = if hit {
            after.segments.insert(segment.id, now);
            change.counter_moves.push((segment.id, 1));
            "entry"
        } else {
            after.segments.remove(&segment.id);
            after.exited.insert(segment.id, now);
            change.counter_moves.push((segment.id, -1));
            "exit"
        };
        if emits {
            change
                .events
                .push(membership_event(segment, contact, step, now));
        }
    }
    // The next instant any of the project's conditions may change for this contact by the clock
    // alone. A timer is set unless one already comes at or before it.
    let next = segments
        .dynamic
        .iter()
        .filter_map(|(_, c)| c.next_change(&subject, now_ms))
        .min();
    let pending_timer = after.check_at.filter(|at| *at > now_ms);
    match next {
        Some(at) if pending_timer.is_none_or(|set| at < set) => {
            after.check_at = Some(at);
            change.timer_minute = Some(timer_minute(at));
        }
        Some(_) => {}
        None => after.check_at = pending_timer,
    }
    if after == input.membership {
        return None;
    }
    change.after = after;
    Some(change)
}

/// The minute whose tick handles an instant: the first tick at or after it.
pub fn timer_minute(at_ms: i64) -> i64 {
    at_ms.saturating_add(59_999).div_euclid(60_000)
}

/// `segment.<slug>.entry` / `.exit` for one contact, data `{segmentId, segmentName}`.
fn membership_event(
    segment: &Segment,
    contact: &plunk_domain::contact::Contact,
    step: &str,
    now: Timestamp,
) -> Event {
    let mut data = Map::new();
    data.insert("segmentId".into(), json!(segment.id));
    data.insert("segmentName".into(), json!(segment.name));
    Event {
        id: plunk_domain::id::new_id(),
        name: format!("segment.{}.{step}", segment.slug),
        contact_id: Some(contact.id),
        contact_email: Some(contact.email.as_str().to_owned()),
        email_id: None,
        data,
        source: EventSource::System,
        created_at: now,
    }
}

/// Writes a change, split into transactions of at most 100 operations when a contact moves in
/// or out of many segments at once (each part a whole change of its own: the item as it stands
/// after that part's moves, with their counters and events); false when its inputs moved.
async fn apply(
    store: &Store,
    project: Uuid,
    before: &Membership,
    change: Change,
) -> Result<bool, StoreError> {
    let memberships = store.memberships();
    if change.check_count() + change.write_count() <= MAX_TRANSACTION_OPS {
        return memberships.apply(project, &change).await;
    }
    let per_part = ((MAX_TRANSACTION_OPS - change.check_count() - 2) / 2).max(1);
    let mut state = before.clone();
    let mut version = change.membership_version;
    let parts: Vec<&[(Uuid, i64)]> = change.counter_moves.chunks(per_part).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut events = Vec::new();
        for (segment, delta) in *part {
            let step = if *delta > 0 {
                if let Some(entered) = change.after.segments.get(segment) {
                    state.segments.insert(*segment, *entered);
                }
                ".entry"
            } else {
                state.segments.remove(segment);
                if let Some(exited) = change.after.exited.get(segment) {
                    state.exited.insert(*segment, *exited);
                }
                ".exit"
            };
            events.extend(
                change
                    .events
                    .iter()
                    .filter(|e| {
                        e.data.get("segmentId") == Some(&json!(segment)) && e.name.ends_with(step)
                    })
                    .cloned(),
            );
        }
        let part_change = Change {
            contact: change.contact,
            contact_version: change.contact_version,
            activity_version: change.activity_version,
            membership_version: version,
            static_reads: change.static_reads.clone(),
            after: if last {
                change.after.clone()
            } else {
                state.clone()
            },
            counter_moves: part.to_vec(),
            events,
            timer_minute: if last { change.timer_minute } else { None },
        };
        if !memberships.apply(project, &part_change).await? {
            return Ok(false);
        }
        version = Some(version.map_or(1, |v| v + 1));
    }
    Ok(true)
}
