//! The workflow-worker function: an SQS event of workflow jobs in, each execution advanced
//! concurrently, a partial batch response out (a job whose store or queue step failed comes
//! back; its steps already recorded are not run again).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use plunk_worker::workflows::engine::{Engine, Job};

/// Handles one SQS event.
pub async fn handle(
    engine: &Engine,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let mut tasks = Vec::new();
    for message in event.payload.records {
        let Some(id) = message.message_id.clone() else {
            tracing::error!("SQS record without messageId ignored");
            continue;
        };
        let body = message.body.unwrap_or_default();
        let job = match serde_json::from_str::<Job>(&body) {
            Ok(job) => job,
            Err(e) => {
                // Retrying cannot mend it: dropped (logged), not failed.
                tracing::error!(message_id = %id, error = %e, "dropping a workflow message that is not a job");
                continue;
            }
        };
        let engine = engine.clone();
        tasks.push((id, tokio::spawn(async move { engine.advance(&job).await })));
    }
    let mut response = SqsBatchResponse::default();
    for (id, task) in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(message_id = %id, error = %e, "workflow job comes back");
                response.add_failure(id);
            }
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "workflow task failed");
                response.add_failure(id);
            }
        }
    }
    Ok(response)
}
