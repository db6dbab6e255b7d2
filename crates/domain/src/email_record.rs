//! Email records (spec events-and-emails.md §4–§5): one per recipient of every send, with the
//! status a user can always see.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Where an email is in its life (events-and-emails.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EmailStatus {
    Pending,
    Sending,
    Sent,
    Delivered,
    Opened,
    Clicked,
    Bounced,
    Complained,
    Failed,
    Suppressed,
}

impl EmailStatus {
    /// Every status, for query validation.
    pub const ALL: [EmailStatus; 10] = [
        Self::Pending,
        Self::Sending,
        Self::Sent,
        Self::Delivered,
        Self::Opened,
        Self::Clicked,
        Self::Bounced,
        Self::Complained,
        Self::Failed,
        Self::Suppressed,
    ];

    /// The status as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Sending => "SENDING",
            Self::Sent => "SENT",
            Self::Delivered => "DELIVERED",
            Self::Opened => "OPENED",
            Self::Clicked => "CLICKED",
            Self::Bounced => "BOUNCED",
            Self::Complained => "COMPLAINED",
            Self::Failed => "FAILED",
            Self::Suppressed => "SUPPRESSED",
        }
    }

    /// Parses the API spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Rank for feedback (events-and-emails.md §4): `PENDING/SENDING/FAILED` 0 < `SENT` 1 <
    /// `DELIVERED` 2 < `OPENED` 3 < `CLICKED` 4 < `BOUNCED` 5 < `COMPLAINED` 6. `SUPPRESSED`
    /// ranks above all, as nothing may replace it.
    pub fn precedence(self) -> u8 {
        match self {
            Self::Pending | Self::Sending | Self::Failed => 0,
            Self::Sent => 1,
            Self::Delivered => 2,
            Self::Opened => 3,
            Self::Clicked => 4,
            Self::Bounced => 5,
            Self::Complained => 6,
            Self::Suppressed => u8::MAX,
        }
    }
}

/// Origin of an email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceType {
    Transactional,
    Campaign,
    Workflow,
}

/// Send priority class: transactional before workflow before campaign (spec README §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendClass {
    Transactional,
    Workflow,
    Campaign,
}

impl SendClass {
    /// Every class, highest priority first.
    pub const ALL: [SendClass; 3] = [Self::Transactional, Self::Workflow, Self::Campaign];

    /// Position in [`SendClass::ALL`]: 0 for transactional, the highest priority.
    pub fn rank(self) -> usize {
        self as usize
    }
}

/// An email record as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailRecord {
    pub id: Uuid,
    pub contact_id: Option<Uuid>,
    pub to: String,
    pub to_name: Option<String>,
    pub from: String,
    pub from_name: String,
    pub reply_to: Option<String>,
    /// The unrendered subject until sent, the rendered one after.
    pub subject: String,
    pub source_type: SourceType,
    pub template_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub workflow_id: Option<Uuid>,
    pub workflow_execution_id: Option<Uuid>,
    pub marketing: bool,
    pub tracking: bool,
    pub test: bool,
    pub status: EmailStatus,
    pub error: Option<String>,
    pub attempts: u32,
    pub message_id: Option<String>,
    pub opens: u32,
    pub clicks: u32,
    pub bounce_type: Option<String>,
    pub bounce_sub_type: Option<String>,
    pub queued_at: Option<Timestamp>,
    pub sending_at: Option<Timestamp>,
    pub sent_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub opened_at: Option<Timestamp>,
    pub clicked_at: Option<Timestamp>,
    pub bounced_at: Option<Timestamp>,
    pub complained_at: Option<Timestamp>,
    pub delayed_at: Option<Timestamp>,
    pub failed_at: Option<Timestamp>,
    pub suppressed_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A stored attachment: its bytes live in blob storage under `blob_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAttachment {
    pub filename: String,
    pub content_type: String,
    /// `attachment` or `inline`.
    pub disposition: String,
    pub content_id: Option<String>,
    pub blob_key: String,
    pub size: usize,
}

/// What the sender needs besides the record, kept until the email is sent: the unrendered
/// content, custom headers, attachments and the one-shot values (spec public-api.md §1.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailContent {
    pub subject: String,
    /// The HTML body, or empty when it is kept in blob storage under `body_blob`.
    pub body: String,
    /// Where a body too large for a table item is kept (spec README §2 "Large content").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_blob: Option<String>,
    pub headers: Vec<(String, String)>,
    pub attachments: Vec<StoredAttachment>,
    pub one_shot: Map<String, Value>,
    /// The type that classifies this email: its template's (the campaign's for campaign mail),
    /// `None` without one. It tells MARKETING mail (localised footer) from HEADLESS mail (none),
    /// templates.md §4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_type: Option<crate::template::TemplateType>,
    /// Workflow mail: the execution's context, the `event` variable of its template.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub event: Map<String, Value>,
    /// Campaign mail: `subject` and `body` are empty here and read from this campaign at send
    /// time (a campaign cannot change while it sends), so a million recipients do not each store
    /// a copy of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_content: Option<Uuid>,
}

/// Which sender made an email, and what it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `/v1/send`.
    Transactional,
    /// A campaign's fan-out (or its test send).
    Campaign { campaign_id: Uuid },
    /// A workflow's `SEND_EMAIL` step.
    Workflow {
        workflow_id: Uuid,
        execution_id: Uuid,
    },
}

/// What every sender supplies for a new email; the rest of the record follows from the status
/// it starts in ([`EmailRecord::queued`], [`EmailRecord::suppressed`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEmail {
    pub id: Uuid,
    pub contact_id: Option<Uuid>,
    pub to: String,
    pub to_name: Option<String>,
    pub from: String,
    pub from_name: String,
    pub reply_to: Option<String>,
    /// The unrendered subject.
    pub subject: String,
    pub origin: Origin,
    pub template_id: Option<Uuid>,
    pub marketing: bool,
    pub tracking: bool,
    pub test: bool,
}

impl EmailRecord {
    fn new(email: NewEmail, status: EmailStatus, now: Timestamp) -> Self {
        let (source_type, campaign_id, workflow_id, workflow_execution_id) = match email.origin {
            Origin::Transactional => (SourceType::Transactional, None, None, None),
            Origin::Campaign { campaign_id } => {
                (SourceType::Campaign, Some(campaign_id), None, None)
            }
            Origin::Workflow {
                workflow_id,
                execution_id,
            } => (
                SourceType::Workflow,
                None,
                Some(workflow_id),
                Some(execution_id),
            ),
        };
        Self {
            id: email.id,
            contact_id: email.contact_id,
            to: email.to,
            to_name: email.to_name,
            from: email.from,
            from_name: email.from_name,
            reply_to: email.reply_to,
            subject: email.subject,
            source_type,
            template_id: email.template_id,
            campaign_id,
            workflow_id,
            workflow_execution_id,
            marketing: email.marketing,
            tracking: email.tracking,
            test: email.test,
            status,
            error: None,
            attempts: 0,
            message_id: None,
            opens: 0,
            clicks: 0,
            bounce_type: None,
            bounce_sub_type: None,
            queued_at: None,
            sending_at: None,
            sent_at: None,
            delivered_at: None,
            opened_at: None,
            clicked_at: None,
            bounced_at: None,
            complained_at: None,
            delayed_at: None,
            failed_at: None,
            suppressed_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// A new email waiting to be sent (`PENDING`).
    pub fn queued(email: NewEmail, now: Timestamp) -> Self {
        let mut record = Self::new(email, EmailStatus::Pending, now);
        record.queued_at = Some(now);
        record
    }

    /// A new email that will never be sent: its address is suppressed for `reason`.
    pub fn suppressed(email: NewEmail, reason: &str, now: Timestamp) -> Self {
        let mut record = Self::new(email, EmailStatus::Suppressed, now);
        record.suppress(reason, now);
        record
    }

    /// `PENDING` → `SENDING`: a sender claimed it.
    pub fn claim(&mut self, now: Timestamp) {
        self.status = EmailStatus::Sending;
        self.sending_at = Some(now);
        self.updated_at = now;
    }

    /// A claim handed back before the provider was called: `PENDING` again.
    pub fn release_claim(&mut self, now: Timestamp) {
        self.status = EmailStatus::Pending;
        self.updated_at = now;
    }

    /// The provider accepted the message as `message_id`, with the rendered `subject`.
    pub fn mark_sent(&mut self, message_id: String, subject: String, now: Timestamp) {
        self.status = EmailStatus::Sent;
        self.message_id = Some(message_id);
        self.subject = subject;
        self.sent_at = Some(now);
        self.error = None;
        self.updated_at = now;
    }

    /// Merges a send recorded by `sent` (a claimed record the provider accepted) into this
    /// record, which changed since the claim (feedback arrived first, or a sweep ended it): the
    /// rendered subject, the attempt count and the message id are kept, `sentAt` is set unless
    /// feedback set it, and the status moves to `SENT` unless it is already further on or the
    /// provider proved the message unsent. True when this set `sentAt`.
    pub fn merge_send(&mut self, sent: &EmailRecord, now: Timestamp) -> bool {
        let newly_sent = self.sent_at.is_none();
        self.sent_at = self.sent_at.or(sent.sent_at);
        self.message_id = self.message_id.clone().or(sent.message_id.clone());
        self.subject = sent.subject.clone();
        self.attempts = self.attempts.max(sent.attempts);
        let proven_unsent = self.error.as_deref().is_some_and(|e| {
            e.starts_with(crate::feedback::apply::REJECTED_PREFIX)
                || e.starts_with(crate::feedback::apply::RENDER_FAILED_PREFIX)
        });
        if self.status.precedence() < EmailStatus::Sent.precedence() && !proven_unsent {
            self.status = EmailStatus::Sent;
            self.error = None;
        }
        self.updated_at = now;
        newly_sent
    }

    /// The provider failed for now: `PENDING` with the reason, for a later attempt.
    pub fn retry_later(&mut self, error: impl Into<String>, now: Timestamp) {
        self.status = EmailStatus::Pending;
        self.error = Some(error.into());
        self.updated_at = now;
    }

    /// Ends the email `SUPPRESSED` for `reason` (the suppression's reason).
    pub fn suppress(&mut self, reason: &str, now: Timestamp) {
        self.status = EmailStatus::Suppressed;
        self.error = Some(reason.to_owned());
        self.suppressed_at = Some(now);
        self.updated_at = now;
    }

    /// Moves the record to `FAILED` with `error` (unless it already ended).
    pub fn fail(&mut self, error: impl Into<String>, now: Timestamp) {
        self.status = EmailStatus::Failed;
        self.error = Some(error.into());
        self.failed_at = Some(now);
        self.updated_at = now;
    }

    /// The `email.*` event `name` about this email at `at`: the base data of
    /// events-and-emails.md §2 with the members of `extra`. Every email event is built here.
    pub fn event(&self, name: &str, extra: Value, at: Timestamp) -> crate::event::Event {
        crate::event::Event {
            id: crate::id::new_id(),
            name: name.to_owned(),
            contact_id: self.contact_id,
            contact_email: Some(self.to.clone()),
            email_id: Some(self.id),
            data: event_data(self, extra),
            source: crate::event::EventSource::System,
            created_at: at,
        }
    }
}

/// Bodies above this many bytes are kept in blob storage, once per request, rather than in each
/// recipient's content item. Far below DynamoDB's 400 KB item limit because of cost: a table
/// write costs a unit per KB for every recipient (8 KB: about $5 per million, as much as an S3
/// PUT, which a request pays once however many recipients share it), and every later read of
/// the item grows with it too (docs/benchmarks.md, "Cost").
pub const INLINE_BODY_LIMIT: usize = 8 * 1024;

/// Base data of `email.*` events (events-and-emails.md §2), with the members of `extra` added.
pub fn event_data(record: &EmailRecord, extra: Value) -> Map<String, Value> {
    let mut data = serde_json::json!({
        "emailId": record.id,
        "messageId": record.message_id,
        "subject": record.subject,
        "from": record.from,
        "fromName": record.from_name,
        "templateId": record.template_id,
        "campaignId": record.campaign_id,
        "workflowId": record.workflow_id,
        "sourceType": record.source_type,
    });
    if let (Value::Object(base), Value::Object(more)) = (&mut data, extra) {
        base.extend(more);
    }
    data.as_object().cloned().unwrap_or_default()
}

/// Subject after rendering: CR/LF become spaces, cut to 998 characters (public-api.md §1.3).
pub fn clean_subject(rendered: &str) -> String {
    rendered
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .take(998)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_their_api_spelling() {
        for s in EmailStatus::ALL {
            assert_eq!(EmailStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(EmailStatus::parse("sent"), None);
    }

    #[test]
    fn subjects_lose_line_breaks_and_are_cut() {
        assert_eq!(clean_subject("a\r\nb\nc"), "a  b c");
        assert_eq!(clean_subject(&"é".repeat(1200)).chars().count(), 998);
    }
}
