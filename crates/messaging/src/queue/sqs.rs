//! SQS adapter: one Amazon SQS standard queue (or any SQS-compatible endpoint, such as moto's
//! server) reached through `aws-sdk-sqs`, by queue URL. Redrive to the dead-letter queue is the
//! queue's own `RedrivePolicy` (created by the SAM template in AWS, by
//! [`create_queue_with_dead_letter_queue`] in tests).
//!
//! SQS counts in whole seconds: a delay or visibility timeout is rounded up to the next second
//! (a message is never exposed early), a long-poll wait is rounded down (a receive never waits
//! longer than asked; under a second is a short poll).
//!
//! Errors: throttling, 5xx answers, timeouts and failures to reach SQS are
//! [`QueueError::Unavailable`]; an unknown, stale or no-longer-in-flight receipt is
//! [`QueueError::InvalidReceipt`]; anything else is [`QueueError::Other`] with SQS's code and
//! message. Message bodies are never logged or put in errors.

use super::{Queue, QueueError, ReceivedMessage};
use async_trait::async_trait;
use aws_sdk_sqs::config::BehaviorVersion;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use std::time::Duration;

/// One SQS queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    /// The SQS client.
    pub client: Client,
    /// The queue URL.
    pub url: String,
}

impl SqsQueue {
    /// Wraps a client and a queue URL.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// A queue reached with the default AWS configuration (environment, profile, instance role),
    /// optionally at another endpoint (an emulator such as moto).
    pub async fn from_env(url: &str, endpoint: Option<&str>) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let config = loader.load().await;
        Self::new(Client::new(&config), url)
    }
}

/// Creates (or finds) the standard queue `name` and its dead-letter queue `<name>-dlq`, with a
/// `RedrivePolicy` moving a message to the dead-letter queue after `max_receive_count` receives.
/// Returns `(queue, dead_letter_queue)`. For tests and emulators; in AWS the SAM template creates
/// the queues.
pub async fn create_queue_with_dead_letter_queue(
    client: &Client,
    name: &str,
    max_receive_count: u32,
) -> Result<(SqsQueue, SqsQueue), QueueError> {
    let dlq_url = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .map_err(|e| sdk_error("CreateQueue", e))?
        .queue_url
        .ok_or_else(|| QueueError::Other("CreateQueue returned no queue URL".into()))?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| sdk_error("GetQueueAttributes", e))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| QueueError::Other("GetQueueAttributes returned no QueueArn".into()))?;
    let policy = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receive_count.to_string(),
    });
    let url = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
        .send()
        .await
        .map_err(|e| sdk_error("CreateQueue", e))?
        .queue_url
        .ok_or_else(|| QueueError::Other("CreateQueue returned no queue URL".into()))?;
    Ok((
        SqsQueue::new(client.clone(), url),
        SqsQueue::new(client.clone(), dlq_url),
    ))
}

/// Whole seconds, rounded up.
fn seconds_up(d: Duration) -> i32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.min(i32::MAX as u64) as i32
}

/// Whole seconds, rounded down.
fn seconds_down(d: Duration) -> i32 {
    d.as_secs().min(i32::MAX as u64) as i32
}

/// The last dotted part of an error code (`AWS.SimpleQueueService.MessageNotInflight` →
/// `MessageNotInflight`).
fn short_code(code: &str) -> &str {
    code.rsplit('.').next().unwrap_or(code)
}

fn is_throttling(code: &str) -> bool {
    matches!(
        short_code(code),
        "RequestThrottled"
            | "ThrottlingException"
            | "Throttling"
            | "KmsThrottled"
            | "ServiceUnavailable"
            | "InternalError"
            | "InternalFailure"
    )
}

fn sdk_error<E>(operation: &str, e: SdkError<E>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = format!("sqs {operation}: {}", DisplayErrorContext(&e));
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            QueueError::Unavailable(message)
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let text = service.err().message().unwrap_or_default();
            match short_code(code) {
                "ReceiptHandleIsInvalid" | "MessageNotInflight" | "InvalidReceiptHandle" => {
                    QueueError::InvalidReceipt
                }
                // SQS answers a stale receipt on ChangeMessageVisibility with "Value … for
                // parameter ReceiptHandle is invalid. Reason: Message does not exist or is not
                // available for visibility timeout change."
                "InvalidParameterValue" if text.contains("ReceiptHandle") => {
                    QueueError::InvalidReceipt
                }
                _ if is_throttling(code) || service.raw().status().is_server_error() => {
                    QueueError::Unavailable(message)
                }
                _ => QueueError::Other(message),
            }
        }
        _ => QueueError::Other(message),
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, body: &str, delay: Duration) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(seconds_up(delay))
            .send()
            .await
            .map_err(|e| sdk_error("SendMessage", e))?;
        Ok(())
    }

    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError> {
        if bodies.is_empty() {
            return Ok(());
        }
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|e| QueueError::Other(format!("sqs SendMessageBatch entry: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sdk_error("SendMessageBatch", e))?;
        let failed = out.failed();
        if failed.is_empty() {
            return Ok(());
        }
        // The other entries were enqueued; retrying the whole batch may duplicate them, which
        // at-least-once consumers tolerate.
        let detail = failed
            .iter()
            .map(|f| {
                format!(
                    "entry {}: {} {}",
                    f.id(),
                    f.code(),
                    f.message().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let message = format!(
            "sqs SendMessageBatch: {} of {} entries failed: {detail}",
            failed.len(),
            bodies.len()
        );
        if failed
            .iter()
            .all(|f| !f.sender_fault() || is_throttling(f.code()))
        {
            Err(QueueError::Unavailable(message))
        } else {
            Err(QueueError::Other(message))
        }
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.min(i32::MAX as usize) as i32)
            .visibility_timeout(seconds_up(visibility))
            .wait_time_seconds(seconds_down(wait))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| sdk_error("ReceiveMessage", e))?;
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(1);
                match (m.message_id, m.receipt_handle) {
                    (Some(message_id), Some(receipt)) => Ok(ReceivedMessage {
                        message_id,
                        receipt,
                        body: m.body.unwrap_or_default(),
                        receive_count,
                    }),
                    _ => Err(QueueError::Other(
                        "sqs ReceiveMessage: a message without id or receipt handle".into(),
                    )),
                }
            })
            .collect()
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteMessage", e))?;
        Ok(())
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds_up(visibility))
            .send()
            .await
            .map_err(|e| sdk_error("ChangeMessageVisibility", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_for_hiding_and_down_for_waiting() {
        assert_eq!(seconds_up(Duration::ZERO), 0);
        assert_eq!(seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(seconds_up(Duration::from_secs(30)), 30);
        assert_eq!(seconds_down(Duration::from_millis(1999)), 1);
        assert_eq!(seconds_down(Duration::from_millis(500)), 0);
    }

    #[test]
    fn query_compatible_error_codes_are_matched_by_their_last_part() {
        assert_eq!(
            short_code("AWS.SimpleQueueService.MessageNotInflight"),
            "MessageNotInflight"
        );
        assert_eq!(
            short_code("ReceiptHandleIsInvalid"),
            "ReceiptHandleIsInvalid"
        );
        assert!(is_throttling("AWS.SimpleQueueService.RequestThrottled"));
        assert!(!is_throttling("InvalidParameterValue"));
    }
}
