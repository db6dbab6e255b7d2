//! A mailer wrapper for the local deployment: after each successful send it reports Send and
//! Delivery feedback the way SES does (SES-shaped bodies, [`plunk_domain::feedback::notification`])
//! onto the feedback queue, so the outbox and SMTP mailers take the same feedback path as SES.
//!
//! The notifications are delayed by [`FEEDBACK_DELAY`]: the sender records `SENT` right after the
//! provider call, and feedback that overtook it would make that write lose its version check.
//! A notification that cannot be queued is logged and dropped; the message was sent, so the send
//! itself does not fail.

use super::{MailError, Mailer, OutgoingEmail};
use crate::queue::Queue;
use async_trait::async_trait;
use plunk_domain::feedback::notification::{eventbridge_body, Notification};
use plunk_domain::feedback::FeedbackKind;
use plunk_domain::Timestamp;
use std::sync::Arc;
use std::time::Duration;

/// How long the emitted notifications stay invisible on the queue.
pub const FEEDBACK_DELAY: Duration = Duration::from_secs(1);

/// Wraps a mailer; reports Send and Delivery for every message it sends.
pub struct FeedbackEmitting<M> {
    inner: M,
    queue: Arc<dyn Queue>,
}

impl<M: Mailer> FeedbackEmitting<M> {
    /// `inner` sends; `queue` is the feedback queue.
    pub fn new(inner: M, queue: Arc<dyn Queue>) -> Self {
        Self { inner, queue }
    }

    /// The wrapped mailer.
    pub fn inner(&self) -> &M {
        &self.inner
    }
}

#[async_trait]
impl<M: Mailer> Mailer for FeedbackEmitting<M> {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        let message_id = self.inner.send(email).await?;
        let sent_at = Timestamp::now();
        for kind in [FeedbackKind::Send, FeedbackKind::Delivery] {
            let body = eventbridge_body(&Notification {
                kind: &kind,
                message_id: &message_id,
                email_id: email.email_id,
                project_id: email.project_id,
                from: &email.from.email,
                to: &email.to.email,
                subject: &email.subject,
                sent_at,
                at: Timestamp::now(),
            });
            if let Err(e) = self.queue.send(&body, FEEDBACK_DELAY).await {
                tracing::warn!(email_id = %email.email_id, error = %e,
                    kind = kind.provider_name(), "could not queue local feedback");
            }
        }
        Ok(message_id)
    }

    async fn account_send_rate(&self) -> Option<f64> {
        self.inner.account_send_rate().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailer::Mailbox;
    use crate::memory::MemoryQueue;
    use plunk_domain::feedback::ses::{parse, Parsed};
    use uuid::Uuid;

    struct Fixed(Result<String, MailError>);

    #[async_trait]
    impl Mailer for Fixed {
        async fn send(&self, _: &OutgoingEmail) -> Result<String, MailError> {
            self.0.clone()
        }
    }

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            email_id: Uuid::from_u128(1),
            project_id: Uuid::from_u128(2),
            from: Mailbox {
                name: None,
                email: "hello@acme.io".into(),
            },
            to: Mailbox {
                name: None,
                email: "ada@example.org".into(),
            },
            reply_to: None,
            subject: "Hi".into(),
            html: "<p>Hi</p>".into(),
            text: "Hi".into(),
            headers: vec![],
            attachments: vec![],
            configuration_set: None,
        }
    }

    #[tokio::test]
    async fn a_sent_message_is_reported_as_sent_and_delivered() {
        let queue = Arc::new(MemoryQueue::default());
        let mailer = FeedbackEmitting::new(Fixed(Ok("local-7".into())), queue.clone());

        assert_eq!(mailer.send(&email()).await.unwrap(), "local-7");

        let kinds: Vec<FeedbackKind> = queue
            .bodies()
            .iter()
            .map(|b| match parse(b) {
                Ok(Parsed::Event(e)) => {
                    assert_eq!(e.message_id, "local-7");
                    assert_eq!(e.email_id, Some(Uuid::from_u128(1)));
                    assert_eq!(e.project_id, Some(Uuid::from_u128(2)));
                    e.kind
                }
                other => panic!("not an event: {other:?}"),
            })
            .collect();
        assert_eq!(kinds, [FeedbackKind::Send, FeedbackKind::Delivery]);
    }

    #[tokio::test]
    async fn a_failed_send_reports_nothing() {
        let queue = Arc::new(MemoryQueue::default());
        let mailer = FeedbackEmitting::new(
            Fixed(Err(MailError::Transient("down".into()))),
            queue.clone(),
        );
        assert!(mailer.send(&email()).await.is_err());
        assert!(queue.bodies().is_empty());
    }
}
