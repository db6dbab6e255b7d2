//! The workflow-worker function: an SQS event of workflow jobs in, each execution advanced
//! concurrently, a partial batch response out (a job whose store or queue step failed comes
//! back; its steps already recorded are not run again).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use plunk_store::table::StoreError;
use plunk_worker::workflows::engine::{Engine, Job};

/// Handles one SQS event.
pub async fn handle(
    engine: &Engine,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(
        crate::concurrent_batch::handle(event.payload, "workflow job", |body| {
            let engine = engine.clone();
            async move {
                match serde_json::from_str::<Job>(&body) {
                    Ok(job) => engine.advance(&job).await,
                    Err(e) => {
                        // Retrying cannot mend it: dropped (logged), not failed.
                        tracing::error!(error = %e, "dropping a workflow message that is not a job");
                        Ok::<(), StoreError>(())
                    }
                }
            }
        })
        .await,
    )
}
