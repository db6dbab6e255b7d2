//! Scheduled campaigns start in the tick of the minute they are scheduled for: the tick reads
//! that minute's due index (campaigns.md §3 `send` with `scheduledFor`), checks again what
//! `send` checked, and starts the fan-out, or cancels the campaign with the reason that failed.

use super::lifecycle::{self, StartRefusal};
use plunk_domain::campaign::CampaignStatus;
use plunk_domain::Timestamp;
use plunk_store::repo::campaigns::{CampaignError, DueCampaign};
use plunk_store::table::StoreError;
use plunk_store::Store;

/// What starting one minute's campaigns did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleReport {
    pub started: usize,
    pub cancelled: usize,
}

/// Minutes of the due index one tick reads at most: after a longer outage the next ticks go on.
const MINUTES_PER_TICK: i64 = 1_440;
/// How far back the first tick of a table looks.
const FIRST_LOOK_BACK_MINUTES: i64 = 30;

/// Starts the campaigns of every minute of the due index not yet worked, through `minute`: a
/// schedule whose minute passed while no tick ran (a stopped `plunk serve`, an outage) starts
/// late instead of staying SCHEDULED for ever. Progress is kept apart from the email sweeps',
/// which look back only so far.
pub async fn start_due_through(store: &Store, minute: i64) -> Result<ScheduleReport, StoreError> {
    let campaigns = store.campaigns();
    let (from, version) = match campaigns.due_progress().await? {
        Some((next, version)) => (next, Some(version)),
        None => (minute - FIRST_LOOK_BACK_MINUTES, None),
    };
    let to = minute.min(from + MINUTES_PER_TICK - 1);
    let mut report = ScheduleReport::default();
    for m in from..=to {
        let done = start_due(store, m).await?;
        report.started += done.started;
        report.cancelled += done.cancelled;
    }
    if to >= from {
        campaigns.save_due_progress(to + 1, version).await?;
    }
    Ok(report)
}

/// Starts the campaigns scheduled for `minute` (Unix seconds / 60).
pub async fn start_due(store: &Store, minute: i64) -> Result<ScheduleReport, StoreError> {
    let mut report = ScheduleReport::default();
    for due in store.campaigns().due_in_minute(minute).await? {
        start_one(store, minute, due, &mut report).await?;
    }
    Ok(report)
}

async fn start_one(
    store: &Store,
    minute: i64,
    due: DueCampaign,
    report: &mut ScheduleReport,
) -> Result<(), StoreError> {
    let campaigns = store.campaigns();
    let current = campaigns.get_versioned(due.project, due.campaign).await?;
    let Some((campaign, version)) = current.filter(|(c, _)| {
        c.status == CampaignStatus::Scheduled
            && c.scheduled_for
                .is_some_and(|at| at.unix_seconds().div_euclid(60) == minute)
    }) else {
        // Deleted, sent now, cancelled or rescheduled since: its entry here is stale.
        return campaigns.forget_due(minute, due).await;
    };
    let now = Timestamp::now();
    let refusal = match store.projects().get(due.project).await? {
        Some(project) => lifecycle::check_start(store, &project, &campaign).await?,
        None => Some(StartRefusal::ProjectDisabled),
    };
    let outcome = match refusal {
        None => lifecycle::start_sending(store, due.project, &campaign, version, now)
            .await
            .map(|_| report.started += 1),
        Some(refusal) => lifecycle::cancel(
            store,
            due.project,
            &campaign,
            version,
            refusal.cancel_reason(),
            now,
        )
        .await
        .map(|_| report.cancelled += 1),
    };
    match outcome {
        Ok(()) => Ok(()),
        // Changed by its user at the same moment: the change stands, a later tick sees it.
        Err(CampaignError::Conflict) => Ok(()),
        Err(CampaignError::Store(e)) => Err(e),
        Err(e) => {
            tracing::warn!(campaign_id = %due.campaign, error = %e, "a scheduled campaign could not start");
            Ok(())
        }
    }
}
