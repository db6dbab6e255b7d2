//! Queued segment work: `POST /segments/:id/refresh` (recount `memberCount`), `compute` (a
//! membership computation), and the recount a new or changed condition asks for. One job item
//! per segment in the global `SEGMENT_JOBS` partition (`<projectId>#<segmentId>`), so requests
//! coalesce: asking again while a job is queued keeps the one job (a `compute` upgrades a queued
//! `refresh`) and answers with its `requestedAt`; asking while it runs starts its pass over. The scheduler works through
//! the jobs with a budget of contacts per tick, projects taking turns, saving the position and
//! the running count after each page, so a large project's count spans ticks and a crash repeats
//! at most a page.

use crate::keys;
use crate::repo::turns;
use crate::table::{Condition, Item, Position, StoreError, Table};
use plunk_domain::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Jobs read per pass.
const JOBS_READ: usize = 200;
/// Each project's least share of a pass's budget.
pub const SHARE_MIN: usize = 200;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Recount `memberCount`.
    Refresh,
    /// A membership computation (sets `lastComputedAt` too).
    Compute,
}

/// One queued or running job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentJob {
    pub project: Uuid,
    pub segment: Uuid,
    pub kind: JobKind,
    pub requested_at: Timestamp,
    /// Where the pass over the contacts stopped (`None`: not started).
    #[serde(default)]
    pub position: Option<Position>,
    /// Members counted so far.
    #[serde(default)]
    pub counted: u64,
    /// When the pass began: the count it ends with is as of then.
    #[serde(default)]
    pub started_at: Option<Timestamp>,
}

/// The segment jobs of one table.
pub struct SegmentJobs<'a> {
    table: &'a dyn Table,
}

impl<'a> SegmentJobs<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// Queues `kind` for `segment`, coalesced with a job already there; returns the
    /// `requestedAt` of the job that will do it.
    pub async fn request(
        &self,
        project: Uuid,
        segment: Uuid,
        kind: JobKind,
        now: Timestamp,
    ) -> Result<Timestamp, StoreError> {
        let key = keys::segment_job(project, segment);
        for _ in 0..5 {
            match self.table.get(&key).await? {
                Some(item) => {
                    let mut job: SegmentJob = crate::decode(&item)?;
                    let started = job.started_at.is_some();
                    if job.kind >= kind && !started {
                        return Ok(job.requested_at);
                    }
                    job.kind = job.kind.max(kind);
                    if started {
                        // A pass under way may have passed contacts the new request's
                        // condition reads differently: it starts over (the running worker's
                        // next save fails on the version and leaves it).
                        job.requested_at = now;
                        job.position = None;
                        job.counted = 0;
                        job.started_at = None;
                    }
                    let next =
                        Item::new(key.clone(), crate::encode(&job)).with_version(item.version + 1);
                    match self
                        .table
                        .put(next, Condition::VersionEquals(item.version))
                        .await
                    {
                        Ok(()) => return Ok(job.requested_at),
                        Err(e) if e.is_condition_failed() => continue,
                        Err(e) => return Err(e),
                    }
                }
                None => {
                    let job = SegmentJob {
                        project,
                        segment,
                        kind,
                        requested_at: now,
                        position: None,
                        counted: 0,
                        started_at: None,
                    };
                    let item = Item::new(key.clone(), crate::encode(&job)).with_version(1);
                    match self.table.put(item, Condition::NotExists).await {
                        Ok(()) => return Ok(now),
                        Err(e) if e.is_condition_failed() => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Err(StoreError::Unavailable(
            "segment job changed concurrently too often".into(),
        ))
    }

    /// The queued jobs of the next pass, grouped by project in turn order, with each job's
    /// version.
    pub async fn due(&self) -> Result<Vec<(Uuid, Vec<(SegmentJob, u64)>)>, StoreError> {
        let grouped = turns::pending_by_project(
            self.table,
            keys::SEGMENT_JOBS_PARTITION,
            &keys::segment_job_turn(),
            JOBS_READ,
        )
        .await?;
        let mut out = Vec::with_capacity(grouped.len());
        for (project, items) in grouped {
            let mut jobs = Vec::with_capacity(items.len());
            for item in items {
                jobs.push((crate::decode::<SegmentJob>(&item)?, item.version));
            }
            out.push((project, jobs));
        }
        Ok(out)
    }

    /// Saves a running job's progress; false when the job changed meanwhile (a new request
    /// upgraded it: the pass goes on from the saved state next time).
    pub async fn save(&self, job: &SegmentJob, version: u64) -> Result<bool, StoreError> {
        let item = Item::new(
            keys::segment_job(job.project, job.segment),
            crate::encode(job),
        )
        .with_version(version + 1);
        match self
            .table
            .put(item, Condition::VersionEquals(version))
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Ends a finished job (unless it changed meanwhile: then it runs again).
    pub async fn finish(&self, job: &SegmentJob, version: u64) -> Result<(), StoreError> {
        match self
            .table
            .delete(
                &keys::segment_job(job.project, job.segment),
                Condition::VersionEquals(version),
            )
            .await
        {
            Err(e) if !e.is_condition_failed() => Err(e),
            _ => Ok(()),
        }
    }

    /// Drops the job of a deleted segment.
    pub async fn forget(&self, project: Uuid, segment: Uuid) -> Result<(), StoreError> {
        self.table
            .delete(&keys::segment_job(project, segment), Condition::None)
            .await
    }

    /// Records that a pass served `project` last.
    pub async fn record_turn(&self, project: Uuid) -> Result<(), StoreError> {
        turns::record_turn(self.table, keys::segment_job_turn(), project).await
    }

    /// The share of `budget` each of `projects` gets.
    pub fn share(budget: usize, projects: usize) -> usize {
        turns::share(budget, projects, SHARE_MIN)
    }
}
