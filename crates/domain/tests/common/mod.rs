//! Shared builders for the feedback tests.
#![allow(dead_code)]

use plunk_domain::email_record::{EmailRecord, EmailStatus, SourceType};
use plunk_domain::feedback::{FeedbackKind, ProviderEvent};
use plunk_domain::Timestamp;
use uuid::Uuid;

/// The email id carried by the sample notifications in `tests/events/ses/`.
pub const SAMPLE_EMAIL_ID: &str = "0193a1f2-5b80-7e44-9b02-7c1d2e3f4a56";
/// The project id carried by the sample notifications.
pub const SAMPLE_PROJECT_ID: &str = "0193a1f0-3c00-7d21-8a4e-5f6b7c8d9e01";
/// The SES message id of the sample notifications.
pub const SAMPLE_MESSAGE_ID: &str = "0100018e2a7f6c3d-5e8b1a2c-4d6f-4b1e-9a3c-7e2d1f0b9c8a-000000";

/// `2026-03-01T09:30:00Z` plus `ms` milliseconds.
pub fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_772_357_400_000 + ms).expect("in range")
}

/// A campaign email the sender recorded as `SENT` at `at(0)`.
pub fn sent_email() -> EmailRecord {
    EmailRecord {
        id: Uuid::parse_str(SAMPLE_EMAIL_ID).expect("uuid"),
        contact_id: Some(Uuid::from_u128(7)),
        to: "ada@example.org".into(),
        to_name: Some("Ada".into()),
        from: "billing@acme.io".into(),
        from_name: "Acme".into(),
        reply_to: None,
        subject: "Your receipt".into(),
        source_type: SourceType::Campaign,
        template_id: None,
        campaign_id: Some(Uuid::from_u128(9)),
        workflow_id: None,
        workflow_execution_id: None,
        marketing: true,
        tracking: true,
        test: false,
        status: EmailStatus::Sent,
        error: None,
        attempts: 1,
        message_id: Some(SAMPLE_MESSAGE_ID.into()),
        opens: 0,
        clicks: 0,
        bounce_type: None,
        bounce_sub_type: None,
        queued_at: Some(at(-500)),
        sending_at: Some(at(-200)),
        sent_at: Some(at(0)),
        delivered_at: None,
        opened_at: None,
        clicked_at: None,
        bounced_at: None,
        complained_at: None,
        delayed_at: None,
        failed_at: None,
        suppressed_at: None,
        created_at: at(-500),
        updated_at: at(0),
    }
}

/// A notification about the sample message for `ada@example.org`.
pub fn event(ms: i64, kind: FeedbackKind) -> ProviderEvent {
    ProviderEvent {
        message_id: SAMPLE_MESSAGE_ID.into(),
        email_id: Uuid::parse_str(SAMPLE_EMAIL_ID).ok(),
        project_id: Uuid::parse_str(SAMPLE_PROJECT_ID).ok(),
        timestamp: at(ms),
        recipients: vec!["ada@example.org".into()],
        kind,
    }
}
