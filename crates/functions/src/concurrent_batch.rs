//! An SQS event worked concurrently, one task per message, answered with a partial batch
//! response: a message whose work failed (or whose task panicked) comes back, the others are
//! deleted.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use std::future::Future;

/// Runs `work(body)` for every record of `event` at once; `what` names the messages in logs.
pub async fn handle<F, Fut, E>(event: SqsEvent, what: &'static str, work: F) -> SqsBatchResponse
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let mut tasks = Vec::new();
    for message in event.records {
        let Some(id) = message.message_id.clone() else {
            tracing::error!("SQS record without messageId ignored");
            continue;
        };
        tasks.push((id, tokio::spawn(work(message.body.unwrap_or_default()))));
    }
    let mut response = SqsBatchResponse::default();
    for (id, task) in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(message_id = %id, error = %e, "{what} comes back");
                response.add_failure(id);
            }
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "{what} task failed");
                response.add_failure(id);
            }
        }
    }
    response
}
