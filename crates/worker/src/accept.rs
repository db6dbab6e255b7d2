//! The accept step every sender shares: `/v1/send`, a campaign's fan-out and a workflow's
//! `SEND_EMAIL` step hand it a resolved message and its recipients, and it
//!
//! 1. checks what will be rendered (Liquid syntax) and the sender domain;
//! 2. checks every recipient before anything is written: the contact data each upsert will
//!    merge stays within its limit, a MARKETING message goes to subscribed contacts only, and
//!    which addresses are suppressed;
//! 3. stores what the recipients share once (a body too large for a table item, attachments);
//! 4. per recipient: upserts the contact (or takes the one given), writes the email record
//!    (`PENDING`, or `SUPPRESSED` with its `email.suppressed` event) and its queued content;
//! 5. queues the `PENDING` emails on their class's queue: those this call wrote (a campaign's
//!    also when an earlier attempt wrote them, since its fan-out owns their queueing).
//!
//! A rejection in steps 1–2 writes nothing. Email ids are the caller's, so a retried request (the
//! same idempotency key), a resumed fan-out page or a repeated workflow step writes each email
//! once, and queues a transactional or workflow email at most once. A failed enqueue (or a crash
//! before it) leaves records the scheduler's sweep queues again. Errors are [`AcceptError`]s; HTTP maps
//! them to the envelope, a fan-out to its own retry.

use bytes::Bytes;
use plunk_domain::contact::{Contact, DataChange};
use plunk_domain::email_record::{
    EmailContent, EmailRecord, EmailStatus, NewEmail, Origin, SendClass, StoredAttachment,
    INLINE_BODY_LIMIT,
};
use plunk_domain::event::SubscriptionSource;
use plunk_domain::send_request::{AttachmentInput, NamedAddress};
use plunk_domain::template::{check_syntax, TemplateType};
use plunk_domain::{EmailAddress, FieldCode, FieldError, Timestamp};
use plunk_messaging::blob::{prefix, BlobStore};
use plunk_messaging::send_queues::{SendJob, SendQueues};
use plunk_store::repo::contacts::{ContactError, CurrentContact};
use plunk_store::repo::domains::SenderRejection;
use plunk_store::repo::suppressions::Suppression;
use plunk_store::table::StoreError;
use plunk_store::Store;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use uuid::Uuid;

/// What the accept step needs: the store, blob storage and the send queues.
#[derive(Clone)]
pub struct Acceptor {
    pub store: Store,
    pub blobs: Arc<dyn BlobStore>,
    pub queues: SendQueues,
}

/// One message as its sender resolved it (template applied, sender chosen), the same for every
/// recipient until rendering.
#[derive(Debug, Clone)]
pub struct Message {
    /// The unrendered subject and HTML body.
    pub subject: String,
    pub body: String,
    pub from: EmailAddress,
    pub from_name: String,
    pub reply_to: Option<String>,
    pub headers: Vec<(String, String)>,
    pub attachments: Vec<AttachmentInput>,
    /// Values for rendering only, never stored on contacts.
    pub one_shot: Map<String, Value>,
    /// The `event` variable of the template: a workflow execution's context (empty elsewhere).
    pub event: Map<String, Value>,
    /// The template used, with its type (MARKETING gets the footer and needs subscribers).
    pub template: Option<(Uuid, TemplateType)>,
    pub marketing: bool,
    pub tracking: bool,
    pub test: bool,
    pub origin: Origin,
    /// The queue (priority) it is sent from.
    pub class: SendClass,
    /// Names where shared content is stored (a request's or a campaign's id): content written
    /// again for the same root replaces itself.
    pub content_root: Uuid,
    /// The campaign (and its type) whose stored subject and body the sender reads at send
    /// time, instead of a copy per recipient (campaign mail: the campaign cannot change while
    /// it sends).
    pub content_of_campaign: Option<(Uuid, TemplateType)>,
}

/// One recipient with the email id the caller chose for it.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub email_id: Uuid,
    pub contact: RecipientContact,
}

/// Who a recipient is.
#[derive(Debug, Clone)]
pub enum RecipientContact {
    /// An address to upsert as a contact with `change` (and `subscribed` when given), as
    /// `/v1/send` does.
    Upsert {
        address: NamedAddress,
        change: DataChange,
        subscribed: Option<bool>,
    },
    /// A contact that exists already (a campaign's audience, a workflow's contact): nothing
    /// about it changes.
    Existing(Contact),
    /// An address without a contact (a campaign's test send to someone not in the project):
    /// no contact is created, the email renders with empty data.
    Address(EmailAddress),
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// `None` for a bare address.
    pub contact_id: Option<Uuid>,
    pub contact_email: String,
    pub email_id: Uuid,
    pub status: EmailStatus,
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// Field problems (template syntax, contact data past its limit); nothing was written.
    #[error("invalid message")]
    Invalid(Vec<FieldError>),
    /// The sender's domain may not be used by the project; nothing was written.
    #[error("sender domain {domain} not verified")]
    SenderNotVerified {
        domain: String,
        reason: SenderRejection,
    },
    /// A MARKETING message to unsubscribed addresses; nothing was written.
    #[error("unsubscribed recipients")]
    Unsubscribed(Vec<String>),
    /// Blob storage failed (`what` was being stored); retryable.
    #[error("{what} storage is unavailable")]
    BlobUnavailable { what: &'static str },
    /// A contact changed between the checks and the writes so that its upsert now fails;
    /// retryable (what was written is kept by the email ids).
    #[error("a contact changed while the message was accepted")]
    ContactChanged,
    /// A contact could not be written.
    #[error(transparent)]
    Contact(ContactError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who one email is addressed to.
struct Addressee {
    contact_id: Option<Uuid>,
    email: String,
    name: Option<String>,
}

/// A recipient after the read-only checks.
struct Checked {
    recipient: Recipient,
    current: Option<CurrentContact>,
    suppression: Option<Suppression>,
}

impl Acceptor {
    /// Accepts `message` for `recipients` in `project` (see the module documentation).
    pub async fn accept(
        &self,
        project: Uuid,
        message: &Message,
        recipients: Vec<Recipient>,
    ) -> Result<Vec<Accepted>, AcceptError> {
        self.accept_with(project, message, recipients, false).await
    }

    /// [`Self::accept`] for email ids that no earlier attempt can have written (a campaign page
    /// read for the first time by the one holder of its fan-out): records and their content are
    /// written in batches (`BatchWriteItem`) instead of one conditional write each.
    pub async fn accept_new(
        &self,
        project: Uuid,
        message: &Message,
        recipients: Vec<Recipient>,
    ) -> Result<Vec<Accepted>, AcceptError> {
        self.accept_with(project, message, recipients, true).await
    }

    async fn accept_with(
        &self,
        project: Uuid,
        message: &Message,
        recipients: Vec<Recipient>,
        batched: bool,
    ) -> Result<Vec<Accepted>, AcceptError> {
        self.check_message(project, message).await?;
        let checked = self.check_recipients(project, message, recipients).await?;
        let content = match message.content_of_campaign {
            Some((campaign, campaign_type)) => EmailContent {
                subject: String::new(),
                body: String::new(),
                body_blob: None,
                headers: message.headers.clone(),
                attachments: Vec::new(),
                one_shot: message.one_shot.clone(),
                template_type: Some(campaign_type),
                event: Map::new(),
                campaign_content: Some(campaign),
            },
            None => self.store_shared(project, message).await?,
        };
        let now = Timestamp::now();
        let mut accepted = Vec::with_capacity(checked.len());
        let mut jobs = Vec::new();
        let mut batch = Vec::new();
        for c in checked {
            let to = self
                .contact_of(project, c.recipient.contact, c.current)
                .await?;
            let (contact_id, contact_email) = (to.contact_id, to.email.clone());
            let record = record_of(message, to, c.recipient.email_id, c.suppression, now);
            let status = record.status;
            // A record an earlier attempt wrote is queued again only for a campaign (its fan-out
            // owns the queueing); transactional and workflow mail left PENDING by that attempt is
            // re-queued by the scheduler's sweep, so a repeated accept never queues it twice.
            let queue = if batched {
                batch.push(record.clone());
                true
            } else {
                let created = self.write_email(project, &content, &record, now).await?;
                created || message.class == SendClass::Campaign
            };
            if status == EmailStatus::Pending && queue {
                jobs.push(SendJob {
                    project_id: project,
                    email_id: record.id,
                    class: message.class,
                });
            }
            accepted.push(Accepted {
                contact_id,
                contact_email,
                email_id: record.id,
                status,
            });
        }
        if !batch.is_empty() {
            let entries: Vec<(&EmailRecord, Option<&EmailContent>)> = batch
                .iter()
                .map(|r| (r, (r.status == EmailStatus::Pending).then_some(&content)))
                .collect();
            self.store.emails().accept_new(project, &entries).await?;
            for record in batch.iter().filter(|r| r.status == EmailStatus::Suppressed) {
                self.record_suppressed(project, record, now).await?;
            }
        }
        // A failure here leaves PENDING records that the scheduler's sweep queues again.
        if let Err(e) = self.queues.enqueue(&jobs).await {
            tracing::warn!(error = %e, "enqueue failed; the sweep will queue these emails");
        }
        Ok(accepted)
    }

    /// Liquid syntax of what will be rendered, and the sender domain.
    async fn check_message(&self, project: Uuid, message: &Message) -> Result<(), AcceptError> {
        let mut syntax = Vec::new();
        // A campaign's content was checked when it was written and cannot change while it
        // sends: a fan-out page does not parse a body of up to 512 KB again.
        let sources = if message.content_of_campaign.is_some() {
            Vec::new()
        } else {
            vec![("subject", &message.subject), ("body", &message.body)]
        };
        for (field, source) in sources {
            if let Err(e) = check_syntax(source) {
                syntax.push(FieldError::new(
                    field,
                    FieldCode::TemplateSyntax,
                    format!("line {}, column {}: {}", e.line, e.column, e.message),
                ));
            }
        }
        if !syntax.is_empty() {
            return Err(AcceptError::Invalid(syntax));
        }
        if let Err((domain, reason)) = self
            .store
            .domains()
            .check_sender(project, &message.from)
            .await?
        {
            return Err(AcceptError::SenderNotVerified { domain, reason });
        }
        Ok(())
    }

    /// Per recipient, read-only: the merge each upsert will make, the subscription after it,
    /// and suppression. The contacts read here are what the upserts start from.
    async fn check_recipients(
        &self,
        project: Uuid,
        message: &Message,
        recipients: Vec<Recipient>,
    ) -> Result<Vec<Checked>, AcceptError> {
        let contacts = self.store.contacts();
        let mut checked = Vec::with_capacity(recipients.len());
        let mut refused = Vec::new();
        let mut merge_errors = Vec::new();
        let mut addresses = Vec::with_capacity(recipients.len());
        for (i, recipient) in recipients.into_iter().enumerate() {
            let (address, current, subscribed_after) = match &recipient.contact {
                RecipientContact::Upsert {
                    address,
                    change,
                    subscribed,
                } => {
                    let current = contacts.current(project, &address.email).await?;
                    let mut merged = current
                        .contact()
                        .map(|c| c.data.clone())
                        .unwrap_or_default();
                    if change.apply(&mut merged).is_err() {
                        merge_errors.push(FieldError::new(
                            "data",
                            FieldCode::TooBig,
                            format!(
                                "Merged into the contact of to[{i}] ({}), the data would exceed {} bytes",
                                address.email,
                                plunk_domain::contact::MAX_DATA_BYTES
                            ),
                        ));
                    }
                    let after = subscribed
                        .or(current.contact().map(|c| c.subscribed))
                        .unwrap_or(false);
                    (address.email.clone(), Some(current), after)
                }
                RecipientContact::Existing(contact) => {
                    (contact.email.clone(), None, contact.subscribed)
                }
                RecipientContact::Address(address) => (address.clone(), None, false),
            };
            if message.marketing && !subscribed_after {
                refused.push(address.to_string());
            }
            addresses.push(address);
            checked.push(Checked {
                recipient,
                current,
                suppression: None,
            });
        }
        // Eventually consistent, one batched read per 100: the worker checks again,
        // consistently, before sending.
        let suppressions = self
            .store
            .suppressions()
            .get_many_eventually(project, &addresses)
            .await?;
        for (c, suppression) in checked.iter_mut().zip(suppressions) {
            c.suppression = suppression;
        }
        if !merge_errors.is_empty() {
            return Err(AcceptError::Invalid(merge_errors));
        }
        if !refused.is_empty() {
            return Err(AcceptError::Unsubscribed(refused));
        }
        Ok(checked)
    }

    /// Stores what every recipient shares, once: attachments, and a body too large for a table
    /// item. Returns the content each recipient's queued item holds.
    async fn store_shared(
        &self,
        project: Uuid,
        message: &Message,
    ) -> Result<EmailContent, AcceptError> {
        let root = message.content_root;
        let mut attachments = Vec::with_capacity(message.attachments.len());
        for (i, a) in message.attachments.iter().enumerate() {
            let key = prefix::attachment_key(project, root, i);
            self.put_blob(&key, a.content.clone(), "Attachment").await?;
            attachments.push(StoredAttachment {
                filename: a.filename.clone(),
                content_type: a.content_type.clone(),
                disposition: a.disposition.as_str().to_owned(),
                content_id: a.content_id.clone(),
                blob_key: key,
                size: a.content.len(),
            });
        }
        let (body, body_blob) = if message.body.len() > INLINE_BODY_LIMIT {
            let key = prefix::body_key(project, root);
            self.put_blob(&key, message.body.clone().into_bytes(), "Body")
                .await?;
            (String::new(), Some(key))
        } else {
            (message.body.clone(), None)
        };
        Ok(EmailContent {
            subject: message.subject.clone(),
            body,
            body_blob,
            headers: message.headers.clone(),
            attachments,
            one_shot: message.one_shot.clone(),
            template_type: message.template.map(|(_, t)| t),
            event: message.event.clone(),
            campaign_content: None,
        })
    }

    async fn put_blob(
        &self,
        key: &str,
        bytes: Vec<u8>,
        what: &'static str,
    ) -> Result<(), AcceptError> {
        self.blobs.put(key, Bytes::from(bytes)).await.map_err(|e| {
            tracing::warn!(error = %e, key, "blob storage failed");
            AcceptError::BlobUnavailable { what }
        })
    }

    /// Who the recipient's email is addressed to: its contact, upserted from the state the
    /// checks read or the one given, and the display name (the request's for an address, the
    /// contact data's `name` for an existing contact); or a bare address.
    async fn contact_of(
        &self,
        project: Uuid,
        recipient: RecipientContact,
        current: Option<CurrentContact>,
    ) -> Result<Addressee, AcceptError> {
        match (recipient, current) {
            (RecipientContact::Existing(contact), _) => Ok(Addressee {
                contact_id: Some(contact.id),
                email: contact.email.to_string(),
                name: contact
                    .data
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            }),
            (RecipientContact::Address(address), _) => Ok(Addressee {
                contact_id: None,
                email: address.to_string(),
                name: None,
            }),
            (
                RecipientContact::Upsert {
                    address,
                    change,
                    subscribed,
                },
                current,
            ) => {
                let contacts = self.store.contacts();
                let current = match current {
                    Some(current) => current,
                    None => contacts.current(project, &address.email).await?,
                };
                let outcome = contacts
                    .upsert_from(
                        project,
                        &address.email,
                        current,
                        subscribed,
                        false,
                        &change,
                        SubscriptionSource::Send,
                    )
                    .await
                    .map_err(|e| match e {
                        // Checked above; a concurrent write grew the contact since.
                        ContactError::Invalid(_) => AcceptError::ContactChanged,
                        other => AcceptError::Contact(other),
                    })?;
                Ok(Addressee {
                    contact_id: Some(outcome.contact.id),
                    email: outcome.contact.email.to_string(),
                    name: address.name,
                })
            }
        }
    }

    /// Writes one recipient's record (and content, or `email.suppressed`) unless an earlier
    /// attempt did; whether this call created it.
    async fn write_email(
        &self,
        project: Uuid,
        content: &EmailContent,
        record: &EmailRecord,
        now: Timestamp,
    ) -> Result<bool, AcceptError> {
        let queued = (record.status == EmailStatus::Pending).then_some(content);
        let created = self.store.emails().accept(project, record, queued).await?;
        if created && record.status == EmailStatus::Suppressed {
            self.record_suppressed(project, record, now).await?;
        }
        Ok(created)
    }

    /// `email.suppressed` of a record created `SUPPRESSED`.
    async fn record_suppressed(
        &self,
        project: Uuid,
        record: &EmailRecord,
        now: Timestamp,
    ) -> Result<(), AcceptError> {
        let event = record.event(
            "email.suppressed",
            json!({ "suppressionReason": record.error }),
            now,
        );
        self.store.events().record(project, &event).await?;
        Ok(())
    }
}

/// One recipient's new record: `PENDING`, or `SUPPRESSED` when the address is.
fn record_of(
    message: &Message,
    to: Addressee,
    email_id: Uuid,
    suppression: Option<Suppression>,
    now: Timestamp,
) -> EmailRecord {
    let new = NewEmail {
        id: email_id,
        contact_id: to.contact_id,
        to: to.email,
        to_name: to.name,
        from: message.from.to_string(),
        from_name: message.from_name.clone(),
        reply_to: message.reply_to.clone(),
        subject: message.subject.clone(),
        origin: message.origin,
        template_id: message.template.map(|(id, _)| id),
        marketing: message.marketing,
        tracking: message.tracking,
        test: message.test,
    };
    match &suppression {
        Some(s) => EmailRecord::suppressed(new, s.reason.as_str(), now),
        None => EmailRecord::queued(new, now),
    }
}
