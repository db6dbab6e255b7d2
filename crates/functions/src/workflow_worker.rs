//! The workflow-worker function: an SQS event of workflow jobs in (executions to advance,
//! deleted workflows to purge), worked concurrently, a partial batch response out (a job whose store or queue step failed comes
//! back; its steps already recorded are not run again).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use plunk_worker::workflows::engine::Engine;

/// Handles one SQS event.
pub async fn handle(
    engine: &Engine,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(
        crate::concurrent_batch::handle(event.payload, "workflow job", |body| {
            let engine = engine.clone();
            async move { engine.work(&body).await }
        })
        .await,
    )
}
