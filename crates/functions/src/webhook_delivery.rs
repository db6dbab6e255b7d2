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
    let mut tasks = Vec::new();
    for message in event.payload.records {
        let Some(id) = message.message_id.clone() else {
            tracing::error!("SQS record without messageId ignored");
            continue;
        };
        let worker = worker.clone();
        let body = message.body.unwrap_or_default();
        tasks.push((id, tokio::spawn(async move { worker.process(&body).await })));
    }
    let mut response = SqsBatchResponse::default();
    for (id, task) in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(message_id = %id, error = %e, "webhook job comes back");
                response.add_failure(id);
            }
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "webhook task failed");
                response.add_failure(id);
            }
        }
    }
    Ok(response)
}
