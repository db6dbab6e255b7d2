//! Builds SES-shaped notification bodies: an SES event-publishing record inside the EventBridge
//! envelope, exactly what the deployed feedback queue receives. The local deployment uses them so
//! that its feedback takes the same path as real SES feedback ([`super::ses::parse`] and on):
//! the outbox and SMTP mailers report Send and Delivery this way, and `plunk simulate` injects
//! bounces, complaints, opens and clicks.

use super::event::FeedbackKind;
use super::{EMAIL_ID_TAG, PROJECT_ID_TAG};
use crate::time::Timestamp;
use serde_json::{json, Value};
use uuid::Uuid;

/// The configuration set named in local notifications.
pub const LOCAL_CONFIGURATION_SET: &str = "plunk-local";

/// What one notification is about.
#[derive(Debug, Clone)]
pub struct Notification<'a> {
    pub kind: &'a FeedbackKind,
    /// The provider message id the sender recorded.
    pub message_id: &'a str,
    pub email_id: Uuid,
    pub project_id: Uuid,
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    /// When the provider accepted the message (`mail.timestamp`).
    pub sent_at: Timestamp,
    /// When this event happened (ignored for Send, Reject and Rendering Failure, which carry
    /// `mail.timestamp` only).
    pub at: Timestamp,
}

/// EventBridge's `detail-type` for an SES event type.
fn detail_type(kind: &FeedbackKind) -> &'static str {
    match kind {
        FeedbackKind::Send => "Email Sent",
        FeedbackKind::Delivery => "Email Delivered",
        FeedbackKind::Open => "Email Opened",
        FeedbackKind::Click { .. } => "Email Clicked",
        FeedbackKind::Bounce { .. } => "Email Bounced",
        FeedbackKind::Complaint { .. } => "Email Complaint Received",
        FeedbackKind::Reject { .. } => "Email Rejected",
        FeedbackKind::DeliveryDelay { .. } => "Email Delivery Delayed",
        FeedbackKind::RenderingFailure { .. } => "Email Rendering Failed",
    }
}

/// The SES event record (`detail`).
pub fn ses_event(n: &Notification<'_>) -> Value {
    let at = n.at;
    let feedback_id = format!("{}-{}", n.message_id, at.unix_millis());
    let recipient = json!([{ "emailAddress": n.to }]);
    let (member, body) = match n.kind {
        FeedbackKind::Send => ("send", json!({})),
        FeedbackKind::Delivery => (
            "delivery",
            json!({
                "timestamp": at,
                "processingTimeMillis": (at.unix_millis() - n.sent_at.unix_millis()).max(0),
                "recipients": [n.to],
                "smtpResponse": "250 2.0.0 OK",
                "reportingMTA": "localhost",
            }),
        ),
        FeedbackKind::Open => (
            "open",
            json!({ "timestamp": at, "ipAddress": "127.0.0.1", "userAgent": "plunk" }),
        ),
        FeedbackKind::Click { link } => (
            "click",
            json!({
                "timestamp": at,
                "link": link,
                "linkTags": {},
                "ipAddress": "127.0.0.1",
                "userAgent": "plunk",
            }),
        ),
        FeedbackKind::Bounce {
            bounce_type,
            sub_type,
        } => (
            "bounce",
            json!({
                "bounceType": bounce_type.as_str(),
                "bounceSubType": sub_type,
                "bouncedRecipients": [{
                    "emailAddress": n.to,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }],
                "timestamp": at,
                "feedbackId": feedback_id,
                "reportingMTA": "dns; localhost",
            }),
        ),
        FeedbackKind::Complaint { feedback_type } => (
            "complaint",
            json!({
                "complainedRecipients": recipient,
                "timestamp": at,
                "feedbackId": feedback_id,
                "complaintFeedbackType": feedback_type,
            }),
        ),
        FeedbackKind::Reject { reason } => ("reject", json!({ "reason": reason })),
        FeedbackKind::DeliveryDelay {
            delay_type,
            expiration_time,
        } => (
            "deliveryDelay",
            json!({
                "timestamp": at,
                "delayType": delay_type,
                "expirationTime": expiration_time,
                "delayedRecipients": recipient,
            }),
        ),
        FeedbackKind::RenderingFailure { error_message } => (
            "failure",
            json!({ "errorMessage": error_message, "templateName": "" }),
        ),
    };
    let mut tags = serde_json::Map::new();
    tags.insert(
        "ses:configuration-set".into(),
        json!([LOCAL_CONFIGURATION_SET]),
    );
    tags.insert(EMAIL_ID_TAG.into(), json!([n.email_id]));
    tags.insert(PROJECT_ID_TAG.into(), json!([n.project_id]));
    let mut event = json!({
        "eventType": n.kind.provider_name(),
        "mail": {
            "timestamp": n.sent_at,
            "source": n.from,
            "messageId": n.message_id,
            "destination": [n.to],
            "headersTruncated": false,
            "commonHeaders": {
                "from": [n.from],
                "to": [n.to],
                "messageId": n.message_id,
                "subject": n.subject,
            },
            "tags": tags,
        },
    });
    if let Value::Object(map) = &mut event {
        map.insert(member.into(), body);
    }
    event
}

/// The SQS message body EventBridge delivers for this notification.
pub fn eventbridge_body(n: &Notification<'_>) -> String {
    json!({
        "version": "0",
        "id": crate::id::new_id(),
        "detail-type": detail_type(n.kind),
        "source": "aws.ses",
        "account": "000000000000",
        "time": n.at,
        "region": "local",
        "resources": [],
        "detail": ses_event(n),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::event::BounceType;
    use crate::feedback::ses::{parse, Parsed};

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(1_772_357_400_000 + ms).expect("in range")
    }

    #[test]
    fn every_kind_parses_back_to_the_same_event() {
        let kinds = [
            FeedbackKind::Send,
            FeedbackKind::Delivery,
            FeedbackKind::Open,
            FeedbackKind::Click {
                link: "https://acme.io/x".into(),
            },
            FeedbackKind::Bounce {
                bounce_type: BounceType::Permanent,
                sub_type: "General".into(),
            },
            FeedbackKind::Complaint {
                feedback_type: Some("abuse".into()),
            },
            FeedbackKind::Reject {
                reason: "Bad content".into(),
            },
            FeedbackKind::DeliveryDelay {
                delay_type: "MailboxFull".into(),
                expiration_time: Some(at(86_400_000)),
            },
            FeedbackKind::RenderingFailure {
                error_message: "missing".into(),
            },
        ];
        let (email_id, project_id) = (Uuid::from_u128(1), Uuid::from_u128(2));
        for kind in kinds {
            let n = Notification {
                kind: &kind,
                message_id: "local-1",
                email_id,
                project_id,
                from: "hello@acme.io",
                to: "ada@example.org",
                subject: "Hi",
                sent_at: at(0),
                at: at(2_000),
            };
            let Ok(Parsed::Event(e)) = parse(&eventbridge_body(&n)) else {
                panic!("{kind:?} does not parse");
            };
            assert_eq!(e.kind, kind);
            assert_eq!(e.message_id, "local-1");
            assert_eq!(
                (e.email_id, e.project_id),
                (Some(email_id), Some(project_id))
            );
            assert_eq!(e.recipients, ["ada@example.org"]);
            let expected = match kind {
                FeedbackKind::Send | FeedbackKind::Reject { .. } => at(0),
                FeedbackKind::RenderingFailure { .. } => at(0),
                _ => at(2_000),
            };
            assert_eq!(e.timestamp, expected, "{kind:?}");
        }
    }
}
