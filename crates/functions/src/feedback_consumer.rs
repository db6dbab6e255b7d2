//! The feedback queue's Lambda handler: an SQS event (up to 10 SES notifications, delivered by
//! EventBridge) in, a partial batch response out.
//!
//! Each message is applied by the [`FeedbackWorker`]; messages are handled one after another,
//! since several notifications of one email in a batch would only race for its record.
//! A message that was handled in any way (applied, duplicate, ignored, discarded) is not
//! reported, so Lambda deletes it; one that failed ([`plunk_worker::feedback::FeedbackError`])
//! is reported in `batchItemFailures` and returns after the queue's visibility timeout (the
//! marker of an applied notification keeps the retry from applying it twice). The handler itself
//! never fails: a failed invocation would return the whole batch.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use plunk_worker::feedback::FeedbackWorker;
use tracing::Instrument;

/// Handles one SQS event.
pub async fn handle(
    worker: &FeedbackWorker,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let mut response = SqsBatchResponse::default();
    for message in event.payload.records {
        let Some(id) = message.message_id.clone() else {
            tracing::error!("SQS record without messageId ignored");
            continue;
        };
        let span = tracing::info_span!("feedback_message", message_id = %id);
        let body = message.body.as_deref().unwrap_or_default();
        match worker.handle(body).instrument(span).await {
            Ok(handled) => tracing::debug!(message_id = %id, ?handled, "feedback handled"),
            Err(e) => {
                tracing::warn!(message_id = %id, error = %e, "feedback failed; retried later");
                response.add_failure(id);
            }
        }
    }
    Ok(response)
}
