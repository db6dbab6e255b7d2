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
}

impl EmailRecord {
    /// Moves the record to `FAILED` with `error` (unless it already ended).
    pub fn fail(&mut self, error: impl Into<String>, now: Timestamp) {
        self.status = EmailStatus::Failed;
        self.error = Some(error.into());
        self.failed_at = Some(now);
        self.updated_at = now;
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
