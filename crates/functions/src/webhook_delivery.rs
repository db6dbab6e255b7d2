//! The webhook-delivery function: an SQS event of webhook jobs in, attempts made concurrently,
//! a partial batch response out (a job whose store or queue step failed comes back).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use plunk_worker::webhooks::WebhookWorker;

/// Handles one SQS event.
pub async fn handle(
    worker: &WebhookWorker,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(
        crate::concurrent_batch::handle(event.payload, "webhook job", |body| {
            let worker = worker.clone();
            async move { worker.process(&body).await }
        })
        .await,
    )
}
