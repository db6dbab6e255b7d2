//! Keeping DYNAMIC segment membership current, contact by contact (segments.md §4; the store
//! side is `plunk_store::repo::memberships`).
//!
//! A contact is re-evaluated against every DYNAMIC segment of its project whenever something a
//! condition reads may have changed:
//!
//! - the event dispatcher, for each contact of a batch whose contact item was written, whose
//!   events arrived, or who joined or left a STATIC segment ([`update`], which folds the batch's
//!   events into the contacts' activity summaries in the same write);
//! - the scheduler's tick, for each contact whose timer is due (a time-relative filter crosses
//!   its boundary in that minute);
//! - a segment's full pass ([`super::jobs`]), for every contact, when the segment is new or its
//!   condition changed.
//!
//! Evaluation reads the contact and its summary (which holds its activity and memberships) and
//! the STATIC memberships the conditions name (strongly consistent, batched per 100), and writes
//! only what changed: the summary, the entry and exit events of tracked segments whose baseline
//! is set, and a timer for its next boundary; then, once per batch, the sum of the batch's moves
//! to the project's counts. A change whose inputs moved meanwhile is evaluated again.

use crate::audience::Resolver;
use plunk_domain::event::{Event, EventSource};
use plunk_domain::filter::{Activity, Condition, Subject};
use plunk_domain::segment::{Segment, SegmentType};
use plunk_domain::Timestamp;
use plunk_store::repo::memberships::{batch_key, Change, Inputs, Membership};
use plunk_store::table::StoreError;
use plunk_store::Store;
use serde_json::{json, Map};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
    /// Contacts whose summary was written.
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

/// One unit of membership work (a dispatch batch, a page of due timers, a page of a full pass):
/// its key, the same when the work is repeated after a failure, and the instant it evaluates at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub key: String,
    pub now_ms: i64,
}

impl Batch {
    /// A batch named by `parts` (whatever names the work so that a repeat names it the same).
    pub fn new(parts: &[&[u8]], now_ms: i64) -> Self {
        Self {
            key: batch_key(parts),
            now_ms,
        }
    }
}

/// What one batch wrote into the contacts' items, for its count at the end.
pub struct Tally {
    /// The key the batch writes under: its own, or one derived from it when a failed attempt
    /// had already counted (its moves are in; what this attempt moves is new).
    key: String,
    now_ms: i64,
    /// Batches the counts remember (their entries are dropped when an item is written).
    counted: BTreeSet<String>,
    /// For each contact evaluated, the moves of this batch its item holds.
    own: HashMap<Uuid, BTreeMap<Uuid, i64>>,
}

impl Tally {
    /// Starts a batch: one strongly consistent read of the project's counts.
    pub async fn start(store: &Store, project: Uuid, batch: &Batch) -> Result<Self, StoreError> {
        let counted = store.memberships().counts(project).await?.counted();
        let mut key = batch.key.clone();
        while counted.contains(&key) {
            key = batch_key(&[key.as_bytes(), b"again"]);
        }
        Ok(Self {
            key,
            now_ms: batch.now_ms,
            counted,
            own: HashMap::new(),
        })
    }

    /// Notes the moves of this batch `membership` holds, as read or written for `contact`.
    fn seen(&mut self, contact: Uuid, membership: &Membership) {
        let moves = membership.moves_of(&self.key);
        if moves.is_empty() {
            self.own.remove(&contact);
        } else {
            self.own.insert(contact, moves);
        }
    }

    /// Adds the batch's moves to the project's counts (nothing when it wrote none).
    pub async fn finish(self, store: &Store, project: Uuid) -> Result<(), StoreError> {
        if self.own.is_empty() {
            return Ok(());
        }
        let mut total: BTreeMap<Uuid, i64> = BTreeMap::new();
        for moves in self.own.values() {
            for (segment, delta) in moves {
                *total.entry(*segment).or_default() += delta;
            }
        }
        total.retain(|_, delta| *delta != 0);
        store
            .memberships()
            .count(project, &self.key, &total)
            .await?;
        Ok(())
    }
}

/// Folds `events` into their contacts' activity summaries and re-evaluates those contacts and
/// `contacts` against every DYNAMIC segment of `project`, writing each summary once.
pub async fn update(
    store: &Store,
    project: Uuid,
    events: &[Event],
    contacts: &[Uuid],
    batch: &Batch,
) -> Result<Outcome, StoreError> {
    let segments = ProjectSegments::current(store, project).await?;
    if segments.is_empty() {
        if !events.is_empty() {
            store.activities().record(project, events).await?;
        }
        return Ok(Outcome::default());
    }
    let mut by_contact: Unfolded = HashMap::new();
    for event in events {
        if let Some(contact) = event.contact_id {
            by_contact.entry(contact).or_default().push(event);
        }
    }
    let mut touched: Vec<Uuid> = contacts.to_vec();
    touched.extend(by_contact.keys().copied());
    if touched.is_empty() {
        return Ok(Outcome::default());
    }
    let mut tally = Tally::start(store, project, batch).await?;
    let outcome = settle(
        store,
        project,
        &segments,
        Scope::All,
        &touched,
        &mut by_contact,
        &mut tally,
    )
    .await?;
    tally.finish(store, project).await?;
    Ok(outcome)
}

/// The events of a batch not yet folded into their contacts' summaries, by contact.
pub type Unfolded<'a> = HashMap<Uuid, Vec<&'a Event>>;

/// Evaluates `contacts` (read afresh) in `scope`, again for those whose inputs moved under the
/// write, up to [`ATTEMPTS`] times. A contact whose events could not be folded in fails the call
/// (the batch comes back); one whose summary is written is left to its next change.
pub async fn settle(
    store: &Store,
    project: Uuid,
    segments: &ProjectSegments,
    scope: Scope,
    contacts: &[Uuid],
    events: &mut Unfolded<'_>,
    tally: &mut Tally,
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
            evaluate_inputs(store, project, segments, scope, &inputs, events, tally).await?;
        outcome.add(done);
        pending = conflicted;
    }
    if pending.is_empty() {
        return Ok(outcome);
    }
    if pending.iter().any(|c| events.contains_key(c)) {
        return Err(StoreError::Unavailable(
            "a contact's summary kept changing under its events".into(),
        ));
    }
    tracing::warn!(%project, contacts = pending.len(),
        "segment membership kept changing under evaluation; left to the next change");
    outcome.abandoned += pending.len();
    Ok(outcome)
}

/// Evaluates contacts already read, folding in their `events` (taken out once written); returns
/// what was done and the contacts whose write found their inputs changed.
pub async fn evaluate_inputs(
    store: &Store,
    project: Uuid,
    segments: &ProjectSegments,
    scope: Scope,
    inputs: &[Inputs],
    events: &mut Unfolded<'_>,
    tally: &mut Tally,
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
        tally.seen(input.contact_id, &input.membership);
        let mut activity = input.activity.clone();
        let mut folded = false;
        for event in events.get(&input.contact_id).into_iter().flatten() {
            folded |= activity.record(event);
        }
        let plan = plan(segments, scope, input, &activity, &members, tally);
        let (mut after, moves, entry_exit, timer_minute) = match plan {
            Some(plan) => (plan.after, plan.moves, plan.events, plan.timer_minute),
            None => (input.membership.clone(), Vec::new(), Vec::new(), None),
        };
        if !folded && after == input.membership {
            continue;
        }
        after.record_moves(&tally.key, &moves, &tally.counted, tally.now_ms);
        let change = Change {
            contact: input.contact_id,
            summary_version: input.summary_version,
            activity,
            after,
            events: entry_exit,
            timer_minute,
        };
        if !store.memberships().apply(project, &change).await? {
            conflicted.push(input.contact_id);
            continue;
        }
        tally.seen(input.contact_id, &change.after);
        events.remove(&input.contact_id);
        outcome.written += 1;
        outcome.events += change.events.len();
        outcome.moved += moves.len();
        // The summary's version was checked by the write; the contact's was not. A move decided
        // on a contact that changed meanwhile is decided again (the write stands as a step; the
        // next evaluation corrects it).
        if let (false, Some((_, version))) = (moves.is_empty(), &input.contact) {
            let now = store
                .memberships()
                .contact_version(project, input.contact_id)
                .await?;
            if now != Some(*version) {
                conflicted.push(input.contact_id);
            }
        }
    }
    Ok((outcome, conflicted))
}

/// What evaluating one contact decides.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Its memberships after (entries of uncounted moves as they were).
    pub after: Membership,
    /// `(segment, +1 / -1)`.
    pub moves: Vec<(Uuid, i64)>,
    /// Entry and exit events of tracked segments.
    pub events: Vec<Event>,
    /// A timer to set, in this minute (Unix minutes).
    pub timer_minute: Option<i64>,
}

/// Evaluates one contact with `activity` (its summary with the batch's events folded in);
/// `None` for a contact that does not exist (its erasure takes it out of every count).
pub fn plan(
    segments: &ProjectSegments,
    scope: Scope,
    input: &Inputs,
    activity: &Activity,
    members: &HashSet<(Uuid, Uuid)>,
    tally: &Tally,
) -> Option<Plan> {
    let (contact, _) = input.contact.as_ref()?;
    let now_ms = tally.now_ms;
    let now = Timestamp::from_millis(now_ms).unwrap_or_else(Timestamp::now);
    let resolver = Resolver::new(contact, activity, members, &segments.conditions, now_ms);
    let subject = Subject {
        contact,
        activity,
        context: None,
    };
    let mut plan = Plan {
        after: input.membership.clone(),
        ..Plan::default()
    };
    plan.after
        .segments
        .retain(|s| segments.existing.contains(s));
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
        let was = plan.after.segments.contains(&segment.id);
        if hit == was {
            continue;
        }
        let step = if hit {
            plan.after.segments.insert(segment.id);
            plan.moves.push((segment.id, 1));
            "entry"
        } else {
            plan.after.segments.remove(&segment.id);
            plan.moves.push((segment.id, -1));
            "exit"
        };
        if emits {
            // The id is derived from the batch and its instant: written again after a refused
            // summary write, it is the same event. (A batch that dies between the event and the
            // summary and comes back decides again at a later instant: that event may be stored
            // twice, as webhook deliveries are at least once.)
            let id = plunk_domain::id::derived_id(
                now_ms.max(0) as u64,
                &[
                    tally.key.as_bytes(),
                    contact.id.as_bytes(),
                    segment.id.as_bytes(),
                    step.as_bytes(),
                ],
            );
            plan.events
                .push(membership_event(id, segment, contact, step, now));
        }
    }
    // The next instant any of the project's conditions may change for this contact by the clock
    // alone. A timer is set unless one already comes at or before it.
    let next = segments
        .dynamic
        .iter()
        .filter_map(|(_, c)| c.next_change(&subject, now_ms))
        .min();
    let pending_timer = plan.after.check_at.filter(|at| *at > now_ms);
    match next {
        Some(at) if pending_timer.is_none_or(|set| at < set) => {
            plan.after.check_at = Some(at);
            plan.timer_minute = Some(timer_minute(at));
        }
        Some(_) => {}
        None => plan.after.check_at = pending_timer,
    }
    Some(plan)
}

/// The minute whose tick handles an instant: the first tick at or after it.
pub fn timer_minute(at_ms: i64) -> i64 {
    at_ms.saturating_add(59_999).div_euclid(60_000)
}

/// `segment.<slug>.entry` / `.exit` for one contact, data `{segmentId, segmentName}`.
fn membership_event(
    id: Uuid,
    segment: &Segment,
    contact: &plunk_domain::contact::Contact,
    step: &str,
    now: Timestamp,
) -> Event {
    let mut data = Map::new();
    data.insert("segmentId".into(), json!(segment.id));
    data.insert("segmentName".into(), json!(segment.name));
    Event {
        id,
        name: format!("segment.{}.{step}", segment.slug),
        contact_id: Some(contact.id),
        contact_email: Some(contact.email.as_str().to_owned()),
        email_id: None,
        data,
        source: EventSource::System,
        created_at: now,
    }
}
