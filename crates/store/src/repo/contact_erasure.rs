//! Erasing a deleted contact's history (contacts.md `DELETE /contacts/:id`: its events and email
//! records go, within minutes). The delete writes a job in the same transaction that removes the
//! contact; the scheduler's tick works the jobs, projects taking turns (see [`super::turns`]) with
//! a per-project share of a tick's budget, so one project deleting a million contacts never holds
//! back another's erasures.
//!
//! A job reads the contact's events through their per-contact index (never a project-wide scan)
//! and deletes each event, the email record it names (every email that left `PENDING` has at
//! least one event naming it; a `PENDING` one is removed by the send worker, which finds the
//! contact gone) and, at the end, the unique-contact markers of the event names it met. Work
//! still in flight when the contact was deleted (a send being handed to the provider, feedback
//! arriving, the dispatcher's counters) can write a last item naming it, so every job runs twice:
//! once at the first tick, once [`SECOND_PASS_AFTER_MS`] later, when no claim can still be open.
//! After the first pass a late notification finds no email record and is dropped.

use crate::keys;
use crate::repo::turns;
use crate::table::{Condition, Index, Item, Key, Position, Query, StoreError, Table, WriteOp};
use plunk_domain::event::Event;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;
use uuid::Uuid;

/// The wait before the second pass: longer than a send claim may stay open (15 minutes).
pub const SECOND_PASS_AFTER_MS: i64 = 16 * 60 * 1000;
/// The least a project with pending erasures gets of a tick's budget (items examined).
pub const ERASURE_SHARE_MIN: usize = 100;
/// Most pending jobs one pass reads.
const JOBS_READ: usize = 1_000;
/// Most distinct event names a job remembers for the marker cleanup (a project has at most
/// 10,000 custom names plus the system ones).
const NAMES_KEPT: usize = 11_000;

/// What one call erased.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    pub events: usize,
    pub emails: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    /// Reading the contact's events from `position`.
    Events,
    /// Removing the unique-contact markers of `names`.
    Markers,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErasureJob {
    project: Uuid,
    contact: Uuid,
    /// 1 or 2.
    pass: u8,
    /// Unix ms before which the job waits.
    not_before_ms: i64,
    phase: Phase,
    position: Option<Position>,
    /// The event names met, for the unique-contact markers.
    names: BTreeSet<String>,
    /// How many of `names` had their marker removed in this pass.
    #[serde(default)]
    markers_done: usize,
}

/// The write that schedules the erasure of `contact`'s history, for the delete's transaction.
pub fn request_op(project: Uuid, contact: Uuid) -> WriteOp {
    let job = ErasureJob {
        project,
        contact,
        pass: 1,
        not_before_ms: 0,
        phase: Phase::Events,
        position: None,
        names: BTreeSet::new(),
        markers_done: 0,
    };
    WriteOp::Put {
        item: Item::new(keys::contact_erasure(project, contact), json!(job)),
        condition: Condition::None,
    }
}

/// Contact erasures of one table.
pub struct ContactErasure<'a> {
    table: &'a dyn Table,
}

impl<'a> ContactErasure<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// Works the due jobs at `now_ms`, examining at most about `budget` items in all. Progress is
    /// saved after each page, so a crash repeats at most a page (deletes are idempotent).
    pub async fn work(&self, now_ms: i64, budget: usize) -> Result<Erased, StoreError> {
        let turn = keys::contact_erasure_turn();
        let projects = turns::pending_by_project(
            self.table,
            keys::CONTACT_ERASURES_PARTITION,
            &turn,
            JOBS_READ,
        )
        .await?;
        if projects.is_empty() {
            return Ok(Erased::default());
        }
        let share = turns::share(budget, projects.len(), ERASURE_SHARE_MIN);
        let mut examined = 0;
        let mut erased = Erased::default();
        let mut served = None;
        for (project, jobs) in projects {
            if examined >= budget {
                break;
            }
            let mut left = share.min(budget - examined);
            for item in jobs {
                if left == 0 {
                    break;
                }
                let job: ErasureJob = crate::decode(&item)?;
                if job.not_before_ms > now_ms {
                    continue;
                }
                let e = self.work_job(job, now_ms, left, &mut erased).await?;
                left = left.saturating_sub(e);
                examined += e;
            }
            served = Some(project);
        }
        if let Some(project) = served {
            turns::record_turn(self.table, turn, project).await?;
        }
        Ok(erased)
    }

    /// Whether an erasure of `contact` is still pending (tests and `plunk` use it to wait).
    pub async fn pending(&self, project: Uuid, contact: Uuid) -> Result<bool, StoreError> {
        Ok(self
            .table
            .get(&keys::contact_erasure(project, contact))
            .await?
            .is_some())
    }

    /// Works one job for about `budget` examined items; returns how many it examined.
    async fn work_job(
        &self,
        mut job: ErasureJob,
        now_ms: i64,
        budget: usize,
        erased: &mut Erased,
    ) -> Result<usize, StoreError> {
        let job_key = keys::contact_erasure(job.project, job.contact);
        // Executions waiting for an event of the contact would wait for ever: they end now.
        // (Running and delayed ones end CANCELLED when they next run and find no contact.)
        let now = plunk_domain::Timestamp::from_millis(now_ms)
            .unwrap_or_else(plunk_domain::Timestamp::now);
        let mut examined = crate::repo::executions::Executions::new(self.table)
            .cancel_waits_of(job.project, job.contact, now)
            .await?;
        while examined < budget {
            match job.phase {
                Phase::Events => {
                    let mut query = Query::new(
                        Index::Gsi1,
                        keys::contact_events_index(job.project, job.contact),
                    );
                    query.start_after = job.position.clone();
                    query.limit = 100.min(budget - examined).max(1);
                    let page = self.table.query(query).await?;
                    examined += page.items.len().max(1);
                    let mut emails = BTreeSet::new();
                    for item in &page.items {
                        if let Ok(event) = crate::decode::<Event>(item) {
                            if job.names.len() < NAMES_KEPT {
                                job.names.insert(event.name);
                            }
                            emails.extend(event.email_id);
                        }
                    }
                    // Emails first: an event left behind by a crash still leads to its email.
                    let email_keys: Vec<Key> = emails
                        .into_iter()
                        .map(|email| keys::email(job.project, email))
                        .collect();
                    self.delete_all(&email_keys).await?;
                    erased.emails += email_keys.len();
                    let event_keys: Vec<Key> =
                        page.items.iter().map(|item| item.key.clone()).collect();
                    self.delete_all(&event_keys).await?;
                    erased.events += event_keys.len();
                    match page.last {
                        Some(last) => job.position = Some(last),
                        None => job.phase = Phase::Markers,
                    }
                }
                Phase::Markers => {
                    // The names stay for the second pass: a lagging dispatcher may write a
                    // marker for an event the first pass already erased.
                    let names: Vec<String> = job
                        .names
                        .iter()
                        .skip(job.markers_done)
                        .take(100)
                        .cloned()
                        .collect();
                    let marker_keys: Vec<Key> = names
                        .iter()
                        .map(|name| keys::event_contact_marker(job.project, name, job.contact))
                        .collect();
                    self.delete_all(&marker_keys).await?;
                    job.markers_done += names.len();
                    examined += names.len().max(1);
                    if job.markers_done >= job.names.len() {
                        // The summary goes on every pass (a lagging dispatcher may write it
                        // again after the first), and so do STATIC segment memberships. The
                        // summary holds the DYNAMIC memberships: the contact leaves their counts
                        // as it goes.
                        let segments = crate::repo::segments::Segments::new(self.table);
                        segments.leave_all(job.project, job.contact).await?;
                        let existing: Vec<Uuid> = segments
                            .all(job.project)
                            .await?
                            .iter()
                            .map(|s| s.id)
                            .collect();
                        crate::repo::memberships::Memberships::new(self.table)
                            .remove(job.project, job.contact, &existing)
                            .await?;
                        if job.pass >= 2 {
                            self.table.delete(&job_key, Condition::None).await?;
                            return Ok(examined);
                        }
                        job.pass = 2;
                        job.not_before_ms = now_ms + SECOND_PASS_AFTER_MS;
                        job.phase = Phase::Events;
                        job.position = None;
                        job.markers_done = 0;
                        self.save(&job_key, &job).await?;
                        return Ok(examined);
                    }
                }
            }
            self.save(&job_key, &job).await?;
        }
        Ok(examined)
    }

    async fn delete_all(&self, keys: &[Key]) -> Result<(), StoreError> {
        super::delete_keys(self.table, keys).await
    }

    async fn save(&self, key: &Key, job: &ErasureJob) -> Result<(), StoreError> {
        self.table
            .put(Item::new(key.clone(), json!(job)), Condition::None)
            .await
    }
}
