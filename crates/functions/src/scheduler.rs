//! The scheduler's Lambda handler: any event (EventBridge sends one a minute) runs one
//! [`Scheduler::tick`] at the current time and answers its report. While a campaign still reads
//! its audience, the invocation then tops the campaign queue up every few seconds for most of
//! its minute ([`Scheduler::top_up_fan_outs`]), so campaigns keep only a short lead queued and a
//! campaign that starts is not queued behind minutes of another's mail. The workflow timers due
//! by then are queued after the tick.

use lambda_runtime::{Error, LambdaEvent};
use plunk_messaging::queue::Queue;
use plunk_worker::clock::{Clock, SystemClock};
use plunk_worker::scheduler::Scheduler;
use serde_json::{json, Value};

/// Workflow timers one tick queues at most (the rest go on in the next tick).
const WORKFLOW_TIMER_BUDGET: usize = 50_000;

/// Runs one tick, then queues the workflow executions whose timers are due; a store failure
/// fails the invocation, so EventBridge retries it.
pub async fn handle(
    scheduler: &Scheduler,
    workflow_queue: &dyn Queue,
    _event: LambdaEvent<Value>,
) -> Result<Value, Error> {
    let started = std::time::Instant::now();
    let now_ms = SystemClock.now_ms();
    let report = scheduler.tick(now_ms).await?;
    let timers = plunk_worker::workflows::timers::work(
        &scheduler.store,
        workflow_queue,
        now_ms,
        WORKFLOW_TIMER_BUDGET,
    )
    .await?;
    let topped_up = if report.campaigns_fanning > 0 {
        scheduler.top_up_fan_outs(started, &SystemClock).await?
    } else {
        Default::default()
    };
    if report.requeued > 0 || report.failed > 0 {
        tracing::info!(
            minutes_swept = report.minutes_swept,
            requeued = report.requeued,
            failed = report.failed,
            "scheduler tick"
        );
    }
    Ok(json!({
        "minutesSwept": report.minutes_swept,
        "requeued": report.requeued,
        "failed": report.failed,
        "campaignRecipients": report.campaign_recipients as usize + topped_up.recipients,
        "workflowTimers": timers,
    }))
}
