//! The send queues' Lambda handler: an SQS event (up to 10 jobs) in, a partial batch response
//! out (ARCHITECTURE §5).
//!
//! Every message of the batch is processed at once (the shared pace spaces the provider calls):
//! - `Done`: not reported, so Lambda deletes the message;
//! - `RetryAfter(delay)`: the message's visibility is first changed to the back-off (on the queue
//!   named by its `eventSourceARN`), then the message is reported in `batchItemFailures`, so it
//!   returns after the back-off rather than after the queue's visibility timeout. When the
//!   visibility cannot be changed, the message is still reported and returns after the timeout.
//! - a task that panicked is reported too.
//!
//! The handler itself never fails: a failed invocation would return the whole batch.

use crate::adapters::QueuesByName;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Error, LambdaEvent};
use plunk_messaging::send_queues::SendJob;
use plunk_worker::consumer;
use plunk_worker::send::{Outcome, SendWorker};
use tracing::Instrument;

/// Handles one SQS event.
pub async fn handle(
    worker: &SendWorker,
    queues: &QueuesByName,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let jobs: Vec<Option<SendJob>> = event
        .payload
        .records
        .iter()
        .map(|m| {
            m.body
                .as_deref()
                .and_then(|b| serde_json::from_str::<SendJob>(b).ok())
        })
        .collect();
    consumer::announce(worker, jobs.iter().flatten().map(|job| job.class)).await;
    let mut tasks = Vec::with_capacity(event.payload.records.len());
    for (message, job) in event.payload.records.into_iter().zip(jobs) {
        let Some(id) = message.message_id.clone() else {
            // Nothing to report it by; SQS always sets the id.
            tracing::error!("SQS record without messageId ignored");
            continue;
        };
        let span = tracing::info_span!(
            "send_message",
            message_id = %id,
            email_id = tracing::field::Empty,
            class = tracing::field::Empty,
        );
        if let Some(job) = job {
            span.record("email_id", tracing::field::display(job.email_id));
            span.record("class", tracing::field::debug(job.class));
        }
        let (worker, queues) = (worker.clone(), queues.clone());
        let task =
            tokio::spawn(async move { one(&worker, &queues, &message).await }.instrument(span));
        tasks.push((id, task));
    }
    let mut response = SqsBatchResponse::default();
    for (id, task) in tasks {
        match task.await {
            Ok(true) => {}
            Ok(false) => response.add_failure(id),
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "send task failed");
                response.add_failure(id);
            }
        }
    }
    Ok(response)
}

/// Processes one message; false when it must come back.
async fn one(worker: &SendWorker, queues: &QueuesByName, message: &SqsMessage) -> bool {
    let body = message.body.as_deref().unwrap_or_default();
    let delay = match consumer::handle(worker, body).await {
        Outcome::Done => return true,
        Outcome::RetryAfter(delay) => delay,
    };
    let queue = message
        .event_source_arn
        .as_deref()
        .and_then(|arn| queues.by_arn(arn));
    match (queue, message.receipt_handle.as_deref()) {
        (Some(queue), Some(receipt)) => {
            if let Err(e) = queue.change_visibility(receipt, delay).await {
                tracing::warn!(
                    error = %e,
                    "cannot delay the retry; it returns after the visibility timeout"
                );
            }
        }
        _ => tracing::warn!(
            queue = message.event_source_arn.as_deref().unwrap_or_default(),
            "unknown queue; the retry returns after its visibility timeout"
        ),
    }
    tracing::info!(retry_after_s = delay.as_secs(), "send retried later");
    false
}
