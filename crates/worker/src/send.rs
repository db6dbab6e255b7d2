//! The send worker: turns one queued email into a
//! sent one, or ends it in a state the user can see.
//!
//! Per job: skip anything not `PENDING` (duplicates and redeliveries send nothing); read the
//! queued content (and a body kept in blob storage); re-check the project, the sender domain,
//! the suppression list and, for marketing mail, the subscription; render once with the
//! hosted-page links; add the unsubscribe headers and footer where they apply and read the
//! attachments — all before the pace, so an email that ends here never takes a slot of the
//! shared rate; then take a slot from the global pace; claim the email `PENDING → SENDING` with
//! a version condition (only one sender wins); hand the message to the provider; record `SENT`
//! and `email.sent`. Throttling and transient errors put the email back to `PENDING` with
//! its attempt count and ask for a retry with back-off; after five attempts, or on a permanent
//! error, the email is `FAILED` with the reason and `email.failed`.

use crate::pacing::Pacer;
use bytes::Bytes;
use plunk_domain::email_record::{
    clean_subject, EmailContent, EmailRecord, EmailStatus, SendClass,
};
use plunk_domain::page_token::HostedUrls;
use plunk_domain::{EmailAddress, Timestamp};
use plunk_messaging::blob::BlobStore;
use plunk_messaging::mailer::{Attachment, Disposition, MailError, Mailbox, Mailer, OutgoingEmail};
use plunk_messaging::send_queues::SendJob;
use plunk_store::repo::emails::Versioned;
use plunk_store::table::StoreError;
use plunk_store::Store;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Attempts before a throttled or failing email is given up.
pub const MAX_ATTEMPTS: u32 = 5;
/// A claim without a provider answer for this long is given up.
pub const STALE_CLAIM_MS: i64 = 15 * 60 * 1000;
/// How old the project settings behind the `disabled` check may be: with the check just before
/// the claim, no email of a project reaches the provider more than this (plus one provider call)
/// after `plunk project disable` returns; admin-cli.md promises 5 s.
pub const DISABLED_CHECK_MAX_AGE: Duration = Duration::from_secs(2);
/// When a message finds its email claimed by another sender, it comes back after this long.
/// Ten receives (the dead-letter threshold) then span more than the stale-claim window, so the
/// message itself ends a claim whose sender died.
pub const CLAIMED_ELSEWHERE_RETRY: Duration = Duration::from_secs(120);

/// What the queue should do with a job's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delete the message: the email reached a state the user can see.
    Done,
    /// Leave the message to come back after this delay.
    RetryAfter(Duration),
}

/// Settings of the sender.
#[derive(Debug, Clone, Default)]
pub struct SenderConfig {
    /// Provider configuration set with open and click tracking.
    pub configuration_set_tracked: Option<String>,
    /// Provider configuration set without tracking.
    pub configuration_set_untracked: Option<String>,
    /// The deployment's public API base URL (`PLUNK_PUBLIC_URL`), where the hosted pages are.
    /// Without it, emails carry no hosted-page links (the variables render empty and no
    /// `List-Unsubscribe` is added).
    pub public_url: Option<String>,
}

/// How the worker renders an email ([`crate::render::render_email`] unless a test replaces it).
pub type RenderFn = fn(
    &plunk_domain::project::Project,
    Option<&plunk_domain::contact::Contact>,
    &str,
    &EmailContent,
    Option<&HostedUrls>,
) -> Result<crate::render::Rendered, crate::render::RenderFailure>;

/// Sends queued emails.
#[derive(Clone)]
pub struct SendWorker {
    pub store: Store,
    pub mailer: Arc<dyn Mailer>,
    pub blobs: Arc<dyn BlobStore>,
    pub pacer: Pacer,
    pub config: SenderConfig,
    /// The renderer: the template engine, or a stand-in in tests.
    pub render: RenderFn,
    /// The campaigns of campaign mail (content and status), each read at most every 2 s.
    pub campaigns: Arc<crate::campaigns::cache::CampaignCache>,
}

impl SendWorker {
    /// A worker over these ports that renders with the template engine.
    pub fn new(
        store: Store,
        mailer: Arc<dyn Mailer>,
        blobs: Arc<dyn BlobStore>,
        pacer: Pacer,
        config: SenderConfig,
    ) -> Self {
        Self {
            store,
            mailer,
            blobs,
            pacer,
            config,
            render: crate::render::render_email,
            campaigns: Arc::default(),
        }
    }
}

/// Back-off before retry `attempt` (1-based): 2, 4, 8, 16 … seconds, at most 15 minutes.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempt.clamp(1, 10)).min(900))
}

fn now() -> Timestamp {
    Timestamp::now()
}

impl SendWorker {
    async fn event(
        &self,
        project: uuid::Uuid,
        record: &EmailRecord,
        name: &str,
        extra: Value,
    ) -> Result<(), StoreError> {
        let event = record.event(name, extra, now());
        self.store.events().record(project, &event).await
    }

    /// Saves `sent` (the claimed record, now accepted by the provider). When the record changed
    /// since the claim — provider feedback arrived first, or the stale-claim sweep ended it — the
    /// send is merged into the current record instead ([`EmailRecord::merge_send`]). Returns the
    /// saved record and whether this call set `sentAt`.
    async fn record_sent(
        &self,
        project: uuid::Uuid,
        claimed: &EmailRecord,
        sent: Versioned,
    ) -> Result<(EmailRecord, bool), StoreError> {
        let emails = self.store.emails();
        match emails
            .save(project, claimed, &sent.record, sent.version)
            .await
        {
            Ok(_) => return Ok((sent.record, true)),
            Err(e) if !e.is_condition_failed() => return Err(e),
            Err(_) => {}
        }
        for _ in 0..8 {
            let Some(mut current) = emails.get_versioned(project, sent.record.id).await? else {
                return Ok((sent.record, false));
            };
            let before = current.record.clone();
            let newly_sent = current.record.merge_send(&sent.record, now());
            match emails
                .save(project, &before, &current.record, current.version)
                .await
            {
                Ok(_) => return Ok((current.record, newly_sent)),
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(
            "the email changed concurrently too often while recording its send".into(),
        ))
    }

    /// Ends `record` as `FAILED` with `error` (and `email.failed`).
    async fn fail(
        &self,
        project: uuid::Uuid,
        mut v: Versioned,
        error: String,
    ) -> Result<Outcome, StoreError> {
        let before = v.record.clone();
        v.record.fail(error.clone(), now());
        match self
            .store
            .emails()
            .save(project, &before, &v.record, v.version)
            .await
        {
            Ok(_) => {
                tracing::info!(email_id = %v.record.id, %error, "email failed");
                self.event(
                    project,
                    &v.record,
                    "email.failed",
                    json!({ "error": error, "attempts": v.record.attempts }),
                )
                .await?;
                Ok(Outcome::Done)
            }
            Err(e) if e.is_condition_failed() => Ok(Outcome::Done),
            Err(e) => Err(e),
        }
    }

    /// Removes the record of an email whose contact was deleted (contacts.md: its email records
    /// go with it), without an event. A record that changed meanwhile is left to its new owner.
    async fn forget(&self, project: uuid::Uuid, v: Versioned) -> Result<Outcome, StoreError> {
        match self
            .store
            .emails()
            .delete(project, v.record.id, v.version)
            .await
        {
            Ok(()) => {
                tracing::info!(email_id = %v.record.id, "the contact was deleted; email removed unsent");
                Ok(Outcome::Done)
            }
            Err(e) if e.is_condition_failed() => Ok(Outcome::Done),
            Err(e) => Err(e),
        }
    }

    /// The queued content of `record`, its body read back from blob storage when it was kept
    /// there. `Ok(Err(reason))` when it is no longer kept (the email fails with the reason); a
    /// blob store failure is `Err`, so the message is retried.
    async fn content(
        &self,
        project_id: uuid::Uuid,
        record: &EmailRecord,
    ) -> Result<Result<EmailContent, String>, StoreError> {
        let Some(mut content) = self.store.emails().content(project_id, record).await? else {
            return Ok(Err(
                "CONTENT_EXPIRED: the queued content is no longer kept".into()
            ));
        };
        if let Some(campaign) = content.campaign_content {
            match self
                .campaigns
                .get(&self.store, project_id, campaign)
                .await?
            {
                Some(c) => {
                    content.subject = c.subject.clone();
                    content.body = c.body.clone();
                }
                None => return Ok(Err("CAMPAIGN_CANCELLED: the campaign was deleted".into())),
            }
        }
        if let Some(key) = content.body_blob.clone() {
            match self.blobs.get(&key).await {
                Ok(Some(bytes)) => content.body = String::from_utf8_lossy(&bytes).into_owned(),
                Ok(None) => {
                    return Ok(Err(
                        "CONTENT_EXPIRED: the queued body is no longer kept".into()
                    ))
                }
                Err(e) => return Err(StoreError::Unavailable(format!("body storage: {e}"))),
            }
        }
        Ok(Ok(content))
    }

    /// Whether the campaign of a campaign email (not a test send) is still SENDING
    /// (campaigns.md §4: the worker checks before each send), from a read at most 2 s old.
    async fn campaign_still_sending(
        &self,
        project_id: uuid::Uuid,
        record: &EmailRecord,
    ) -> Result<bool, StoreError> {
        let Some(campaign) = record.campaign_id.filter(|_| !record.test) else {
            return Ok(true);
        };
        use plunk_domain::campaign::CampaignStatus;
        let mut current = self
            .campaigns
            .get(&self.store, project_id, campaign)
            .await?;
        // A campaign email exists only once its campaign is SENDING: a DRAFT or SCHEDULED copy
        // (kept when a test send read the campaign moments before it started) is out of date.
        if current
            .as_ref()
            .is_some_and(|c| matches!(c.status, CampaignStatus::Draft | CampaignStatus::Scheduled))
        {
            current = self
                .campaigns
                .read(&self.store, project_id, campaign)
                .await?;
        }
        Ok(current.is_some_and(|c| c.status == CampaignStatus::Sending))
    }

    /// Ends the email of `job` `FAILED` with `INTERNAL_ERROR: <reason>` after processing it
    /// panicked, unless it already reached another state. The reason is cut to 500 characters.
    pub async fn fail_after_panic(&self, job: SendJob, reason: &str) -> Result<(), StoreError> {
        let reason: String = reason.chars().take(500).collect();
        let emails = self.store.emails();
        let Some(v) = emails.get_versioned(job.project_id, job.email_id).await? else {
            return Ok(());
        };
        if !matches!(v.record.status, EmailStatus::Pending | EmailStatus::Sending) {
            return Ok(());
        }
        // A concurrent change (the record moved on meanwhile) leaves the record as it is.
        self.fail(job.project_id, v, format!("INTERNAL_ERROR: {reason}"))
            .await
            .map(|_| ())
    }

    /// Processes one job. Store failures come back as `Err` (the message is retried).
    pub async fn process(&self, job: SendJob) -> Result<Outcome, StoreError> {
        let project_id = job.project_id;
        let emails = self.store.emails();
        let Some(v) = emails.get_versioned(project_id, job.email_id).await? else {
            return Ok(Outcome::Done);
        };
        match v.record.status {
            EmailStatus::Pending => {}
            // Someone else holds the claim: this message is the email's only way back if that
            // sender fails, so it returns later rather than being deleted. A claim older than
            // the stale window means that sender died after claiming: the outcome is unknown.
            EmailStatus::Sending => {
                let stale = v
                    .record
                    .sending_at
                    .is_some_and(|at| now().unix_millis() - at.unix_millis() > STALE_CLAIM_MS);
                if stale {
                    return self
                        .fail(project_id, v, "SEND_OUTCOME_UNKNOWN".into())
                        .await;
                }
                return Ok(Outcome::RetryAfter(CLAIMED_ELSEWHERE_RETRY));
            }
            _ => return Ok(Outcome::Done),
        }
        let project = self
            .store
            .projects()
            .get_cached_within(project_id, DISABLED_CHECK_MAX_AGE)
            .await?;
        let Some(project) = project.filter(|p| !p.disabled) else {
            return self.fail(project_id, v, "PROJECT_DISABLED".into()).await;
        };
        if !self.campaign_still_sending(project_id, &v.record).await? {
            return self.fail(project_id, v, "CAMPAIGN_CANCELLED".into()).await;
        }

        // The content before the slot: it never changes, and a body in blob storage takes a
        // round trip that would otherwise sit between the slot and the provider call, where
        // the pace's margin is only a few milliseconds a send.
        let content = match self.content(project_id, &v.record).await? {
            Ok(content) => content,
            Err(reason) => return self.fail(project_id, v, reason).await,
        };

        // Everything that can end the email without sending it — the re-checks, the render, the
        // attachments — before the pace: an email that will not be sent never takes a slot of
        // the account's rate (which all projects share), and no store or blob round trip sits
        // between the slot and the provider call.
        let outgoing = match self.prepare(&project, &v, &content).await? {
            Ok(outgoing) => outgoing,
            Err(outcome) => return Ok(outcome),
        };

        // The pace next, so a claim is never held while waiting for a slot.
        let slot = self.pacer.take(job.class).await?;
        self.pacer.wait_for(slot).await;

        // The emergency stop once more after the wait for the slot, so `plunk project disable`
        // holds within seconds even for mail that was already paced (a read per project every
        // DISABLED_CHECK_MAX_AGE, not per email).
        let disabled = self
            .store
            .projects()
            .get_cached_within(project_id, DISABLED_CHECK_MAX_AGE)
            .await?
            .is_none_or(|p| p.disabled);
        if disabled {
            return self.fail(project_id, v, "PROJECT_DISABLED".into()).await;
        }
        if !self.campaign_still_sending(project_id, &v.record).await? {
            return self.fail(project_id, v, "CAMPAIGN_CANCELLED".into()).await;
        }

        // Claim: exactly one sender moves PENDING → SENDING.
        let mut record = v.record.clone();
        record.claim(now());
        let version = match emails.save(project_id, &v.record, &record, v.version).await {
            Ok(version) => version,
            // Another sender claimed it first (or the record changed since it was read); come
            // back to see how that ended.
            Err(e) if e.is_condition_failed() => {
                return Ok(Outcome::RetryAfter(CLAIMED_ELSEWHERE_RETRY))
            }
            Err(e) => return Err(e),
        };
        let claimed = Versioned { record, version };
        let mut provider_called = false;
        match self
            .deliver(project_id, claimed.clone(), outgoing, &mut provider_called)
            .await
        {
            Ok(outcome) => Ok(outcome),
            // A store failure before the provider was called: nothing was sent, so hand the
            // email back (`PENDING`) for the retry instead of leaving a claim that would end as
            // SEND_OUTCOME_UNKNOWN. After the call, the claim stays for reconciliation.
            Err(e) if !provider_called => {
                let mut back = claimed.record.clone();
                back.release_claim(now());
                if let Err(revert) = emails
                    .save(project_id, &claimed.record, &back, claimed.version)
                    .await
                {
                    tracing::warn!(email_id = %back.id, error = %revert, "could not hand the claim back");
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The re-checks at send time, the render and the provider message: `Ok(message)` to send,
    /// or `Err(outcome)` when the email ended here (`FAILED`, `SUPPRESSED`) or changed under us.
    async fn prepare(
        &self,
        project: &plunk_domain::project::Project,
        read: &Versioned,
        content: &EmailContent,
    ) -> Result<Result<OutgoingEmail, Outcome>, StoreError> {
        let project_id = project.id;
        let emails = self.store.emails();
        let mut v = read.clone();
        let end = |outcome: Result<Outcome, StoreError>| outcome.map(Err);

        // First: a deleted contact's email is removed with the rest of its history, and nothing
        // new may name the contact (no `email.failed`, no `email.suppressed`).
        let contact = match v.record.contact_id {
            // Consistent: the request that queued this email may have just changed the contact's
            // data, which the email renders.
            Some(id) => match self.store.contacts().get(project_id, id).await? {
                Some(c) => Some(c),
                None => return end(self.forget(project_id, v).await),
            },
            None => None,
        };

        // Re-checks at send time.
        let Ok(from) = EmailAddress::parse(&v.record.from) else {
            return end(self.fail(project_id, v, "DOMAIN_NOT_VERIFIED".into()).await);
        };
        if self
            .store
            .domains()
            .check_sender(project_id, &from)
            .await?
            .is_err()
        {
            return end(self.fail(project_id, v, "DOMAIN_NOT_VERIFIED".into()).await);
        }
        let Ok(to) = EmailAddress::parse(&v.record.to) else {
            return end(self
                .fail(project_id, v, "REJECTED: invalid recipient".into())
                .await);
        };
        // Consistent: a suppressed address is never sent to.
        if let Some(s) = self.store.suppressions().get(project_id, &to).await? {
            let before = v.record.clone();
            v.record.suppress(s.reason.as_str(), now());
            emails
                .save(project_id, &before, &v.record, v.version)
                .await?;
            self.event(
                project_id,
                &v.record,
                "email.suppressed",
                json!({ "suppressionReason": s.reason.as_str() }),
            )
            .await?;
            return Ok(Err(Outcome::Done));
        }
        if v.record.marketing && !contact.as_ref().is_some_and(|c| c.subscribed) {
            return end(self
                .fail(project_id, v, "CONTACT_UNSUBSCRIBED".into())
                .await);
        }
        // The hosted-page links of this email: the token names the contact and this email.
        let urls = match (&self.config.public_url, v.record.contact_id) {
            (Some(base), Some(contact_id)) => {
                let token = self.store.page_tokens().await?.sign(
                    contact_id,
                    Some(v.record.id),
                    &v.record.to,
                );
                Some(HostedUrls::new(base, &token))
            }
            _ => None,
        };

        // Render once.
        let rendered = match (self.render)(
            project,
            contact.as_ref(),
            &v.record.to,
            content,
            urls.as_ref(),
        ) {
            Ok(r) => r,
            Err(error) => {
                return end(self
                    .fail(project_id, v, format!("RENDER_FAILED: {error}"))
                    .await)
            }
        };
        match self
            .outgoing(project_id, &v.record, content, rendered, urls.as_ref())
            .await
        {
            Ok(outgoing) => Ok(Ok(outgoing)),
            Err(message) => end(self.fail(project_id, v, message).await),
        }
    }

    /// The provider call of a claimed email and its final state.
    async fn deliver(
        &self,
        project_id: uuid::Uuid,
        mut v: Versioned,
        outgoing: OutgoingEmail,
        provider_called: &mut bool,
    ) -> Result<Outcome, StoreError> {
        let emails = self.store.emails();
        let claimed = v.record.clone();
        v.record.attempts += 1;
        *provider_called = true;
        match self.mailer.send(&outgoing).await {
            Ok(message_id) => {
                v.record
                    .mark_sent(message_id, outgoing.subject.clone(), now());
                // A crash between the provider call and this write is reconciled from the
                // provider's Send event, which carries the email id tag.
                let (record, newly_sent) = self.record_sent(project_id, &claimed, v).await?;
                // Feedback that recorded the send first has emitted `email.sent` itself.
                if newly_sent {
                    let sent_at = record.sent_at;
                    self.event(
                        project_id,
                        &record,
                        "email.sent",
                        json!({ "sentAt": sent_at }),
                    )
                    .await?;
                }
                tracing::info!(email_id = %record.id, "email sent");
                Ok(Outcome::Done)
            }
            Err(MailError::Permanent(message)) => {
                self.fail(project_id, v, format!("REJECTED: {message}"))
                    .await
            }
            Err(MailError::Throttled(message) | MailError::Transient(message)) => {
                if v.record.attempts >= MAX_ATTEMPTS {
                    return self
                        .fail(project_id, v, format!("PROVIDER_ERROR: {message}"))
                        .await;
                }
                let before = v.record.clone();
                v.record
                    .retry_later(format!("PROVIDER_ERROR: {message}"), now());
                emails
                    .save(project_id, &before, &v.record, v.version)
                    .await?;
                tracing::warn!(email_id = %v.record.id, attempts = v.record.attempts, "provider failed; will retry");
                Ok(Outcome::RetryAfter(backoff(v.record.attempts)))
            }
        }
    }

    /// Builds the provider message: unsubscribe headers and footer, attachments from blob
    /// storage, the configuration set.
    async fn outgoing(
        &self,
        project_id: uuid::Uuid,
        record: &EmailRecord,
        content: &EmailContent,
        rendered: crate::render::Rendered,
        urls: Option<&HostedUrls>,
    ) -> Result<OutgoingEmail, String> {
        let finished = crate::render::finish(&rendered, record.marketing, content, urls);
        let mut attachments = Vec::with_capacity(content.attachments.len());
        for a in &content.attachments {
            let bytes: Bytes = self
                .blobs
                .get(&a.blob_key)
                .await
                .map_err(|e| format!("ATTACHMENT_UNAVAILABLE: {e}"))?
                .ok_or_else(|| {
                    "ATTACHMENT_UNAVAILABLE: the attachment is no longer kept".to_owned()
                })?;
            attachments.push(Attachment {
                filename: a.filename.clone(),
                content_type: a.content_type.clone(),
                disposition: if a.disposition == "inline" {
                    Disposition::Inline
                } else {
                    Disposition::Attachment
                },
                content_id: a.content_id.clone(),
                content: bytes.to_vec(),
            });
        }
        let configuration_set = if record.tracking {
            self.config.configuration_set_tracked.clone()
        } else {
            self.config.configuration_set_untracked.clone()
        };
        Ok(OutgoingEmail {
            email_id: record.id,
            project_id,
            from: Mailbox {
                name: Some(record.from_name.clone()),
                email: record.from.clone(),
            },
            to: Mailbox {
                name: record.to_name.clone(),
                email: record.to.clone(),
            },
            reply_to: record.reply_to.clone(),
            subject: clean_subject(&rendered.subject),
            text: finished.text,
            html: finished.html,
            headers: finished.headers,
            attachments,
            configuration_set,
        })
    }

    /// The class a record is sent at.
    pub fn class_of(record: &EmailRecord) -> SendClass {
        match record.source_type {
            plunk_domain::email_record::SourceType::Transactional => SendClass::Transactional,
            plunk_domain::email_record::SourceType::Workflow => SendClass::Workflow,
            plunk_domain::email_record::SourceType::Campaign => SendClass::Campaign,
        }
    }
}
