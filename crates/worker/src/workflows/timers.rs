//! Workflow timers, worked in the scheduler's tick: the end of each DELAY and the timeout of
//! each WAIT_FOR_EVENT is an item in the minute it falls in, so the tick of minute `M` finds
//! every execution due in `M` by reading that minute's partitions and queues a message for
//! each. Nothing sleeps and no queue holds a message for days. Progress (minute, shard,
//! position) is saved after every page: a crash repeats at most a page (the engine ignores an
//! execution that is not due), and a minute with more timers than one tick's budget goes on in
//! the next tick.

use crate::workflows::engine::Job;
use crate::workflows::start::enqueue;
use plunk_messaging::queue::Queue;
use plunk_store::keys::WORKFLOW_TIMER_SHARDS;
use plunk_store::repo::executions::{DueTimer, TimerProgress};
use plunk_store::table::StoreError;
use plunk_store::Store;

/// Timers read per page.
const PAGE: usize = 100;
/// Minutes a tick goes back after an outage (timer items live two days).
const MAX_CATCH_UP_MINUTES: i64 = 24 * 60;
/// How long after its minute a timer still stored is fired again (within the items' two days).
const REFIRE_AFTER_MINUTES: [i64; 3] = [60, 4 * 60, 24 * 60];

/// Queues the executions whose timers are due up to `now_ms`, about `budget` of them; returns
/// how many.
pub async fn work(
    store: &Store,
    queue: &dyn Queue,
    now_ms: i64,
    budget: usize,
) -> Result<usize, StoreError> {
    let executions = store.executions();
    let minute = now_ms.div_euclid(60_000);
    let (mut progress, mut version) = match executions.timers_progress().await? {
        Some((progress, version)) => (progress, Some(version)),
        None => (
            TimerProgress {
                minute,
                shard: 0,
                position: None,
            },
            None,
        ),
    };
    if progress.minute < minute - MAX_CATCH_UP_MINUTES {
        tracing::warn!(
            from = progress.minute,
            "workflow timers older than a day skipped after an outage"
        );
        progress = TimerProgress {
            minute: minute - MAX_CATCH_UP_MINUTES,
            shard: 0,
            position: None,
        };
    }
    let mut fired = 0;
    let mut unsaved = false;
    while progress.minute <= minute && fired < budget {
        let (timers, next) = executions
            .due_timers(
                progress.minute,
                progress.shard,
                progress.position.clone(),
                PAGE,
            )
            .await?;
        enqueue(queue, &jobs_of(&timers)).await?;
        fired += timers.len();
        match next {
            Some(position) => progress.position = Some(position),
            None => {
                progress.position = None;
                progress.shard += 1;
                if progress.shard == WORKFLOW_TIMER_SHARDS {
                    progress.shard = 0;
                    // The current minute stays open: timers may still be written into it.
                    if progress.minute == minute {
                        break;
                    }
                    for after in REFIRE_AFTER_MINUTES {
                        fired += refire(store, queue, progress.minute - after).await?;
                    }
                    progress.minute += 1;
                }
            }
        }
        unsaved = true;
        if !timers.is_empty() {
            if !executions.save_timers_progress(&progress, version).await? {
                return Ok(fired);
            }
            version = Some(version.map_or(1, |v| v + 1));
            unsaved = false;
        }
    }
    if unsaved {
        executions.save_timers_progress(&progress, version).await?;
    }
    Ok(fired)
}

fn jobs_of(timers: &[DueTimer]) -> Vec<Job> {
    timers
        .iter()
        .map(|t| Job {
            project: t.project,
            workflow: t.workflow,
            execution: t.execution,
            event: None,
        })
        .collect()
}

/// Queues again every execution whose timer of `minute` is still stored (see the module
/// documentation); how many.
async fn refire(store: &Store, queue: &dyn Queue, minute: i64) -> Result<usize, StoreError> {
    let mut refired = 0;
    for shard in 0..WORKFLOW_TIMER_SHARDS {
        let mut position = None;
        loop {
            let (timers, next) = store
                .executions()
                .due_timers(minute, shard, position, PAGE)
                .await?;
            if !timers.is_empty() {
                tracing::warn!(
                    minute,
                    count = timers.len(),
                    "workflow executions still on a past timer (message lost); queued again"
                );
            }
            enqueue(queue, &jobs_of(&timers)).await?;
            refired += timers.len();
            match next {
                Some(next) => position = Some(next),
                None => break,
            }
        }
    }
    Ok(refired)
}
