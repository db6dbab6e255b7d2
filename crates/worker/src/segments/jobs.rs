//! Working the queued segment jobs (`plunk_store::repo::segment_jobs`) in the scheduler's tick.
//! A DYNAMIC segment's job is a full pass: every contact of the project is evaluated against the
//! segment ([`super::membership`], one segment in scope) and its materialised membership and
//! counter corrected; a `compute` of a tracked segment whose baseline is set emits entry and exit
//! events for what changed, a `refresh` does not, and the first pass only sets the baseline. A
//! STATIC segment's count is its member counter. Each project gets a share of the tick's contact
//! budget; a pass that does not fit goes on next tick from its saved position, and is written to
//! the segment (`memberCount`, `memberCountUpdatedAt`, and `lastComputedAt` for a computation)
//! once it ends.

use super::membership::{self, Batch, ProjectSegments, Scope, Tally};
use plunk_domain::segment::SegmentType;
use plunk_domain::Timestamp;
use plunk_store::repo::segment_jobs::{JobKind, SegmentJob, SegmentJobs};
use plunk_store::table::StoreError;
use plunk_store::Store;
use std::collections::HashMap;

/// Contacts read per page of a count.
const PAGE: usize = 100;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SegmentWork {
    /// Contacts evaluated.
    pub examined: usize,
    /// Jobs finished (counts written to their segments).
    pub finished: usize,
}

/// Works the due segment jobs, evaluating about `budget` contacts in all.
pub async fn work(store: &Store, now_ms: i64, budget: usize) -> Result<SegmentWork, StoreError> {
    let jobs = store.segment_jobs();
    let due = jobs.due().await?;
    let mut report = SegmentWork::default();
    if due.is_empty() {
        return Ok(report);
    }
    let share = SegmentJobs::share(budget, due.len());
    let mut served = None;
    for (project, project_jobs) in due {
        if report.examined >= budget {
            break;
        }
        let mut left = share.min(budget - report.examined);
        for (job, version) in project_jobs {
            if left == 0 {
                break;
            }
            let examined = work_job(store, job, version, now_ms, left, &mut report).await?;
            left = left.saturating_sub(examined);
            report.examined += examined;
        }
        served = Some(project);
    }
    if let Some(project) = served {
        jobs.record_turn(project).await?;
    }
    Ok(report)
}

/// Advances one job by up to `budget` contacts; returns how many it examined.
async fn work_job(
    store: &Store,
    mut job: SegmentJob,
    mut version: u64,
    now_ms: i64,
    budget: usize,
    report: &mut SegmentWork,
) -> Result<usize, StoreError> {
    let jobs = store.segment_jobs();
    let Some((mut segment, segment_version)) = store
        .segments()
        .get_versioned(job.project, job.segment)
        .await?
    else {
        jobs.forget(job.project, job.segment).await?;
        return Ok(1);
    };
    let started = *job
        .started_at
        .get_or_insert_with(|| Timestamp::from_millis(now_ms).unwrap_or_else(Timestamp::now));
    let mut examined = 0;
    let finished = match (segment.segment_type, segment.parsed_condition()) {
        (SegmentType::Static, _) => {
            job.counted = store
                .segments()
                .member_count(job.project, job.segment)
                .await?;
            true
        }
        (SegmentType::Dynamic, None) => {
            job.counted = 0;
            true
        }
        (SegmentType::Dynamic, Some(_)) => {
            let segments = ProjectSegments::current(store, job.project).await?;
            let scope = Scope::One {
                segment: job.segment,
                events: job.kind == JobKind::Compute,
            };
            loop {
                if examined >= budget {
                    break false;
                }
                let (inputs, next) = store
                    .memberships()
                    .inputs_page(job.project, job.position.clone(), PAGE)
                    .await?;
                // Named by the job and its version (which every saved page and every new
                // request moves): a pass repeating a page after a crash counts its moves once,
                // and no later page or pass reuses the name.
                let batch = Batch::new(
                    &[
                        b"pass",
                        job.segment.as_bytes(),
                        &job.requested_at.unix_millis().to_be_bytes(),
                        &version.to_be_bytes(),
                    ],
                    now_ms,
                );
                let mut tally = Tally::start(store, job.project, &batch).await?;
                let mut no_events = HashMap::new();
                let (_, conflicted) = membership::evaluate_inputs(
                    store,
                    job.project,
                    &segments,
                    scope,
                    &inputs,
                    &mut no_events,
                    &mut tally,
                )
                .await?;
                if !conflicted.is_empty() {
                    membership::settle(
                        store,
                        job.project,
                        &segments,
                        scope,
                        &conflicted,
                        &mut no_events,
                        &mut tally,
                    )
                    .await?;
                }
                tally.finish(store, job.project).await?;
                examined += inputs.len().max(1);
                let done = next.is_none();
                job.position = next;
                if done {
                    break true;
                }
                // Evaluation is idempotent (it writes only differences), so after a crash the
                // pass goes on from the last saved position.
                if !jobs.save(&job, version).await? {
                    // A new request changed the job: it starts over next tick.
                    return Ok(examined);
                }
                version += 1;
            }
        }
    };
    if !finished {
        return Ok(examined);
    }
    if segment.segment_type == SegmentType::Dynamic {
        // The pass evaluated every contact at `started` or later; changes since are the
        // incremental path's, so the counter is the count.
        job.counted = store
            .memberships()
            .counts(job.project)
            .await?
            .of(job.segment);
        segment.membership_since.get_or_insert(started);
    }
    segment.member_count = job.counted;
    segment.member_count_updated_at =
        Some(Timestamp::from_millis(now_ms).unwrap_or_else(Timestamp::now));
    if job.kind == JobKind::Compute {
        segment.last_computed_at = Some(started);
    }
    match store
        .segments()
        .save(job.project, &segment, segment_version)
        .await
    {
        // The segment changed meanwhile (renamed, or a new condition queued another count).
        Err(plunk_store::repo::segments::SegmentError::Conflict) => return Ok(examined),
        Err(plunk_store::repo::segments::SegmentError::Store(e)) => return Err(e),
        Err(_) => return Ok(examined),
        Ok(()) => {}
    }
    jobs.finish(&job, version).await?;
    report.finished += 1;
    Ok(examined.max(1))
}
