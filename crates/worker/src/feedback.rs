//! The feedback worker (spec feedback-and-unsubscribe.md §1–§3, ARCHITECTURE §5.4): applies one
//! provider notification to its email record.
//!
//! Per message: parse it ([`ses::parse`]); find the email by the `email_id` and `project_id`
//! tags every message of ours carries (a notification without both, for an unknown email, or
//! whose message id differs from the one the sender recorded is discarded); fold it into the
//! record ([`feedback::apply`]); then write, in ONE transaction, the marker of its dedupe key,
//! the record (version-conditioned), the `email.*` events and the campaign counter additions
//! ([`plunk_store::repo::feedback`]). A version conflict reads and applies again; an existing
//! marker means the notification was applied before, so nothing is written twice. Events
//! reach webhooks and counters through the store's change feed.
//!
//! After the transaction, a hard bounce or complaint suppresses the address and unsubscribes the
//! contact (source `bounce`/`complaint`, attributed to the email). Both steps are safe to
//! repeat, and the marker keeps them as pending until they are done, so a failure in between is
//! finished when the message comes back.

use plunk_domain::email_record::EmailRecord;
use plunk_domain::event::{Event, EventSource, SubscriptionChange};
use plunk_domain::feedback::{self, ses, ProviderEvent};
use plunk_domain::{EmailAddress, Timestamp};
use plunk_messaging::queue::Queue;
use plunk_store::repo::feedback::{AppliedFeedback, Commit, PendingContactEffect};
use plunk_store::repo::suppressions::SuppressionCause;
use plunk_store::table::StoreError;
use plunk_store::{ContactError, Store};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use uuid::Uuid;

/// How many times a notification that lost a race for its email is applied again.
const MAX_ATTEMPTS: usize = 10;

/// What became of one message. Every variant means "delete the message".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The notification changed the email (record, events, counters, contact effect).
    Applied { email_id: Uuid },
    /// The notification was applied before; a contact effect it left pending is now done.
    Duplicate { email_id: Uuid },
    /// The notification changes nothing (e.g. an open of an untracked email).
    Unchanged { email_id: Uuid },
    /// A well-formed message with nothing to apply (an SNS handshake, an event type the
    /// platform does not act on).
    Ignored,
    /// A message that cannot be matched to an email.
    Discarded(Discard),
}

/// Why a message was discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// Not a notification SES sends.
    Unreadable,
    /// Without the `email_id` and `project_id` tags (not sent by this platform, or an identity
    /// notification).
    MissingTags,
    /// No such email (deleted, or another deployment's).
    UnknownEmail,
    /// The email's recorded provider message id is another one.
    MessageIdMismatch,
}

/// A failure that a later delivery of the same message may not meet: retry it.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ContactError> for FeedbackError {
    fn from(e: ContactError) -> Self {
        match e {
            ContactError::Store(e) => Self::Store(e),
            // Setting only the subscription cannot meet the other cases.
            other => Self::Store(StoreError::Other(other.to_string())),
        }
    }
}

/// Applies provider notifications.
#[derive(Clone)]
pub struct FeedbackWorker {
    pub store: Store,
}

impl FeedbackWorker {
    /// Handles one queue message body. `Err` means "leave the message for a retry".
    pub async fn handle(&self, body: &str) -> Result<Handled, FeedbackError> {
        match ses::parse(body) {
            Ok(ses::Parsed::Event(event)) => self.apply(&event).await,
            Ok(ses::Parsed::Ignored(why)) => {
                tracing::debug!(?why, "feedback message ignored");
                Ok(Handled::Ignored)
            }
            Err(e) => {
                // A body that does not parse now never will: drop it loudly.
                tracing::warn!(error = %e, "unreadable feedback message dropped");
                Ok(Handled::Discarded(Discard::Unreadable))
            }
        }
    }

    /// Applies one parsed notification.
    pub async fn apply(&self, event: &ProviderEvent) -> Result<Handled, FeedbackError> {
        let (Some(project), Some(email_id)) = (event.project_id, event.email_id) else {
            tracing::debug!(message_id = %event.message_id, "feedback without our tags discarded");
            return Ok(Handled::Discarded(Discard::MissingTags));
        };
        let dedupe_key = event.dedupe_key();
        for _ in 0..MAX_ATTEMPTS {
            let Some(current) = self.store.emails().get_versioned(project, email_id).await? else {
                tracing::debug!(%email_id, "feedback for an unknown email discarded");
                return Ok(Handled::Discarded(Discard::UnknownEmail));
            };
            if current
                .record
                .message_id
                .as_deref()
                .is_some_and(|m| m != event.message_id)
            {
                tracing::debug!(%email_id, "feedback for another provider message discarded");
                return Ok(Handled::Discarded(Discard::MessageIdMismatch));
            }
            let outcome = feedback::apply(&current.record, event);
            if outcome.record == current.record
                && outcome.events.is_empty()
                && outcome.contact.is_none()
            {
                return Ok(Handled::Unchanged { email_id });
            }
            let events: Vec<Event> = outcome
                .events
                .iter()
                .map(|e| system_event(&outcome.record, e))
                .collect();
            // Test sends update the email only (spec §2).
            let pending =
                outcome
                    .contact
                    .filter(|_| !outcome.record.test)
                    .map(|c| PendingContactEffect {
                        contact_id: outcome.record.contact_id,
                        address: outcome.record.to.clone(),
                        source: c.source,
                        reason: c.reason,
                        email_id,
                        campaign_id: outcome.record.campaign_id,
                    });
            let applied = AppliedFeedback {
                dedupe_key: &dedupe_key,
                record: &outcome.record,
                version: current.version,
                events: &events,
                counters: &outcome.counters,
                pending: pending.clone(),
            };
            match self.store.feedback().commit(project, applied).await? {
                Commit::Applied => {
                    tracing::info!(%email_id, kind = event.kind.provider_name(),
                        status = outcome.record.status.as_str(), "feedback applied");
                    if let Some(effect) = pending {
                        self.carry_out(project, &dedupe_key, &effect).await?;
                    }
                    return Ok(Handled::Applied { email_id });
                }
                Commit::AlreadyApplied => {
                    let marker = self.store.feedback().marker(project, &dedupe_key).await?;
                    if let Some(effect) = marker.and_then(|m| m.pending) {
                        self.carry_out(project, &dedupe_key, &effect).await?;
                    }
                    tracing::debug!(%email_id, "duplicate feedback");
                    return Ok(Handled::Duplicate { email_id });
                }
                Commit::EmailChanged => continue,
            }
        }
        Err(StoreError::Unavailable("the email changed concurrently too often".into()).into())
    }

    /// Suppresses the address and unsubscribes the contact, then clears the marker's pending
    /// effect. Each step is safe to repeat: an existing suppression is kept, an unsubscribed
    /// (or deleted) contact is left alone without an event.
    async fn carry_out(
        &self,
        project: Uuid,
        dedupe_key: &str,
        effect: &PendingContactEffect,
    ) -> Result<(), FeedbackError> {
        let address = EmailAddress::parse(&effect.address).ok();
        match &address {
            Some(address) => {
                let cause = SuppressionCause {
                    email_id: Some(effect.email_id),
                    campaign_id: effect.campaign_id,
                    note: None,
                };
                self.store
                    .suppressions()
                    .add(project, address, effect.reason, cause)
                    .await?;
            }
            None => {
                tracing::warn!(email_id = %effect.email_id, "recipient is not an address; not suppressed")
            }
        }
        let contact = match (effect.contact_id, &address) {
            (Some(id), _) => Some(id),
            (None, Some(address)) => self.store.contacts().id_by_email(project, address).await?,
            (None, None) => None,
        };
        if let Some(contact) = contact {
            let change = SubscriptionChange {
                source: effect.source,
                reason: None,
                email_id: Some(effect.email_id),
                campaign_id: effect.campaign_id,
            };
            // A deleted contact has nothing to unsubscribe (feedback-and-unsubscribe.md §2).
            match self
                .store
                .contacts()
                .set_subscribed(project, contact, false, &change)
                .await
            {
                Ok(_) | Err(ContactError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.store.feedback().settle(project, dedupe_key).await?;
        Ok(())
    }
}

/// The stored event of one emitted system event.
fn system_event(record: &EmailRecord, e: &feedback::SystemEvent) -> Event {
    Event {
        id: plunk_domain::id::new_id(),
        name: e.name.to_owned(),
        contact_id: record.contact_id,
        contact_email: Some(record.to.clone()),
        email_id: Some(record.id),
        data: e.data.clone(),
        source: EventSource::System,
        created_at: Timestamp::now(),
    }
}

/// How long a received message stays hidden while it is processed.
pub const VISIBILITY: Duration = Duration::from_secs(60);
/// When a message that failed comes back.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long the loop waits when the queue is empty.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Receives one batch and handles it; false when the queue was empty (or unreadable).
pub async fn drain_once(worker: &FeedbackWorker, queue: &Arc<dyn Queue>) -> bool {
    let messages = match queue.receive(10, VISIBILITY, Duration::ZERO).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "feedback queue receive failed");
            return false;
        }
    };
    if messages.is_empty() {
        return false;
    }
    for m in messages {
        let span = tracing::info_span!("feedback_message", message_id = %m.message_id);
        let result = match worker.handle(&m.body).instrument(span).await {
            Ok(_) => queue.delete(&m.receipt).await,
            Err(e) => {
                tracing::warn!(error = %e, "feedback failed; retrying");
                queue.change_visibility(&m.receipt, RETRY_AFTER).await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "feedback queue acknowledgement failed");
        }
    }
    true
}

/// The local loop over the embedded feedback queue (in AWS the SQS event source plays this
/// role). Runs until the process ends.
pub async fn run(worker: FeedbackWorker, queue: Arc<dyn Queue>) {
    loop {
        if !drain_once(&worker, &queue).await {
            tokio::time::sleep(IDLE_POLL).await;
        }
    }
}
