//! The scheduler's Lambda handler: any event (EventBridge sends one a minute) runs one
//! [`Scheduler::tick`] at the current time and answers its report.

use lambda_runtime::{Error, LambdaEvent};
use plunk_worker::clock::{Clock, SystemClock};
use plunk_worker::scheduler::Scheduler;
use serde_json::{json, Value};

/// Runs one tick; a store failure fails the invocation, so EventBridge retries it.
pub async fn handle(scheduler: &Scheduler, _event: LambdaEvent<Value>) -> Result<Value, Error> {
    let report = scheduler.tick(SystemClock.now_ms()).await?;
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
    }))
}
