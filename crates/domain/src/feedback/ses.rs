//! Parses the body of one SQS message carrying Amazon SES feedback. SES event publishing
//! reaches the queue in one of these shapes:
//!
//! - SNS → SQS: the SNS envelope (`Type: "Notification"`, `Message` = the SES event as a JSON
//!   string); subscription handshakes (`SubscriptionConfirmation`, `UnsubscribeConfirmation`)
//!   are ignored;
//! - SNS → SQS with raw message delivery: the body is the SES event itself;
//! - EventBridge → SQS: `{"source": "aws.ses", "detail-type": "Email Bounced", "detail": {…}}`.
//!
//! The SES event names its type in `eventType` (configuration-set event publishing) or, in
//! identity notifications, `notificationType`. Types the platform does not act on are ignored.

use super::event::{BounceType, FeedbackKind, ProviderEvent};
use super::{EMAIL_ID_TAG, PROJECT_ID_TAG};
use crate::time::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use uuid::Uuid;

/// What one message body holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A notification to apply.
    Event(ProviderEvent),
    /// A well-formed message with nothing to do; the message can be deleted.
    Ignored(Ignored),
}

/// Why a well-formed message is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// An SNS message other than a notification (the `Type`, e.g. `SubscriptionConfirmation`).
    SnsMessage(String),
    /// An EventBridge event from another source than `aws.ses` (the `source`).
    OtherSource(String),
    /// An event type the platform does not act on (e.g. `Subscription`, `Received`, or an
    /// EventBridge SES event that is not about an email, by its `detail-type`).
    EventType(String),
}

/// A message body that cannot be understood.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The body, the SNS `Message` or a field of the SES event is not what SES sends.
    #[error("invalid SES notification: {0}")]
    Invalid(#[from] serde_json::Error),
    /// Valid JSON, but neither an SNS envelope, an EventBridge event nor an SES event.
    #[error("not an SNS, EventBridge or SES message")]
    UnknownShape,
    /// A field the event type requires is missing.
    #[error("SES {event_type} event without `{field}`")]
    Missing {
        event_type: &'static str,
        field: &'static str,
    },
}

/// Parses one SQS message body.
pub fn parse(body: &str) -> Result<Parsed, ParseError> {
    let Value::Object(top) = serde_json::from_str::<Value>(body)? else {
        return Err(ParseError::UnknownShape);
    };
    if let Some(kind) = top.get("Type").and_then(Value::as_str) {
        if kind != "Notification" {
            return Ok(Parsed::Ignored(Ignored::SnsMessage(kind.to_owned())));
        }
        let message = top
            .get("Message")
            .and_then(Value::as_str)
            .ok_or(ParseError::UnknownShape)?;
        return match serde_json::from_str::<Value>(message)? {
            Value::Object(event) => ses_event(event),
            _ => Err(ParseError::UnknownShape),
        };
    }
    if let Some(detail_type) = top.get("detail-type").and_then(Value::as_str) {
        match top.get("source").and_then(Value::as_str) {
            Some("aws.ses") | None => {}
            Some(other) => return Ok(Parsed::Ignored(Ignored::OtherSource(other.to_owned()))),
        }
        return match top.get("detail") {
            Some(Value::Object(event)) if type_of(event).is_some() => ses_event(event.clone()),
            _ => Ok(Parsed::Ignored(Ignored::EventType(detail_type.to_owned()))),
        };
    }
    if type_of(&top).is_some() {
        return ses_event(top);
    }
    Err(ParseError::UnknownShape)
}

/// `eventType`, else the older `notificationType`.
fn type_of(event: &Map<String, Value>) -> Option<&str> {
    event
        .get("eventType")
        .or_else(|| event.get("notificationType"))
        .and_then(Value::as_str)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesEvent {
    mail: Mail,
    bounce: Option<Bounce>,
    complaint: Option<Complaint>,
    delivery: Option<Delivery>,
    open: Option<Stamped>,
    click: Option<Click>,
    reject: Option<Reject>,
    failure: Option<Failure>,
    delivery_delay: Option<DeliveryDelay>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mail {
    timestamp: Timestamp,
    message_id: String,
    #[serde(default)]
    destination: Vec<String>,
    #[serde(default)]
    tags: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    email_address: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bounce {
    bounce_type: String,
    #[serde(default)]
    bounce_sub_type: String,
    #[serde(default)]
    bounced_recipients: Vec<Recipient>,
    timestamp: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Complaint {
    #[serde(default)]
    complained_recipients: Vec<Recipient>,
    timestamp: Option<Timestamp>,
    complaint_feedback_type: Option<String>,
}

#[derive(Deserialize)]
struct Delivery {
    #[serde(default)]
    recipients: Vec<String>,
    timestamp: Option<Timestamp>,
}

#[derive(Deserialize)]
struct Stamped {
    timestamp: Option<Timestamp>,
}

#[derive(Deserialize)]
struct Click {
    timestamp: Option<Timestamp>,
    link: String,
}

#[derive(Deserialize)]
struct Reject {
    reason: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Failure {
    error_message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryDelay {
    timestamp: Option<Timestamp>,
    #[serde(default)]
    delay_type: String,
    expiration_time: Option<Timestamp>,
    #[serde(default)]
    delayed_recipients: Vec<Recipient>,
}

fn addresses(list: Vec<Recipient>) -> Vec<String> {
    list.into_iter().map(|r| r.email_address).collect()
}

/// The SES event types the platform acts on.
const KNOWN_TYPES: [&str; 9] = [
    "Send",
    "Delivery",
    "Open",
    "Click",
    "Bounce",
    "Complaint",
    "Reject",
    "DeliveryDelay",
    "Rendering Failure",
];

/// Builds the event from an SES event object whose type is known to be present.
fn ses_event(raw: Map<String, Value>) -> Result<Parsed, ParseError> {
    let event_type = type_of(&raw).unwrap_or_default().to_owned();
    let Some(&known) = KNOWN_TYPES.iter().find(|t| **t == event_type) else {
        return Ok(Parsed::Ignored(Ignored::EventType(event_type)));
    };
    let missing = |field| ParseError::Missing {
        event_type: known,
        field,
    };
    let e: SesEvent = serde_json::from_value(Value::Object(raw))?;
    // (kind, own timestamp, own recipient list); both fall back to the mail object.
    let (kind, at, recipients) = match known {
        "Send" => (FeedbackKind::Send, None, Vec::new()),
        "Delivery" => {
            let d = e.delivery.ok_or_else(|| missing("delivery"))?;
            (FeedbackKind::Delivery, d.timestamp, d.recipients)
        }
        "Open" => {
            let o = e.open.ok_or_else(|| missing("open"))?;
            (FeedbackKind::Open, o.timestamp, Vec::new())
        }
        "Click" => {
            let c = e.click.ok_or_else(|| missing("click"))?;
            (
                FeedbackKind::Click { link: c.link },
                c.timestamp,
                Vec::new(),
            )
        }
        "Bounce" => {
            let b = e.bounce.ok_or_else(|| missing("bounce"))?;
            let kind = FeedbackKind::Bounce {
                bounce_type: BounceType::parse(&b.bounce_type),
                sub_type: b.bounce_sub_type,
            };
            (kind, b.timestamp, addresses(b.bounced_recipients))
        }
        "Complaint" => {
            let c = e.complaint.ok_or_else(|| missing("complaint"))?;
            let kind = FeedbackKind::Complaint {
                feedback_type: c.complaint_feedback_type,
            };
            (kind, c.timestamp, addresses(c.complained_recipients))
        }
        "Reject" => {
            let r = e.reject.ok_or_else(|| missing("reject"))?;
            (FeedbackKind::Reject { reason: r.reason }, None, Vec::new())
        }
        "DeliveryDelay" => {
            let d = e.delivery_delay.ok_or_else(|| missing("deliveryDelay"))?;
            let kind = FeedbackKind::DeliveryDelay {
                delay_type: d.delay_type,
                expiration_time: d.expiration_time,
            };
            (kind, d.timestamp, addresses(d.delayed_recipients))
        }
        _ => {
            let f = e.failure.ok_or_else(|| missing("failure"))?;
            let kind = FeedbackKind::RenderingFailure {
                error_message: f.error_message,
            };
            (kind, None, Vec::new())
        }
    };
    let tag = |name: &str| {
        e.mail
            .tags
            .get(name)
            .and_then(|values| values.first())
            .and_then(|v| Uuid::parse_str(v).ok())
    };
    let (email_id, project_id) = (tag(EMAIL_ID_TAG), tag(PROJECT_ID_TAG));
    Ok(Parsed::Event(ProviderEvent {
        message_id: e.mail.message_id,
        email_id,
        project_id,
        timestamp: at.unwrap_or(e.mail.timestamp),
        recipients: if recipients.is_empty() {
            e.mail.destination
        } else {
            recipients
        },
        kind,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &str = r#""mail":{"timestamp":"2026-03-01T09:30:00.702Z","messageId":"m-1",
        "destination":["ada@example.org"],"tags":{"email_id":["0193a1f2-5b80-7e44-9b02-7c1d2e3f4a56"]}}"#;

    fn event(body: &str) -> ProviderEvent {
        match parse(body).unwrap() {
            Parsed::Event(e) => e,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    #[test]
    fn raw_ses_events_are_read_without_an_envelope() {
        let e = event(&format!(
            r#"{{"eventType":"Open","open":{{"timestamp":"2026-03-01T09:41:17.530Z"}},{MAIL}}}"#
        ));
        assert_eq!(e.kind, FeedbackKind::Open);
        assert_eq!(e.timestamp.to_string(), "2026-03-01T09:41:17.530Z");
        assert_eq!(e.recipients, ["ada@example.org"]);
        assert_eq!(
            e.email_id.map(|u| u.to_string()).as_deref(),
            Some("0193a1f2-5b80-7e44-9b02-7c1d2e3f4a56")
        );
    }

    #[test]
    fn send_and_reject_take_the_mail_timestamp() {
        let e = event(&format!(
            r#"{{"eventType":"Reject","reject":{{"reason":"Bad content"}},{MAIL}}}"#
        ));
        assert_eq!(e.timestamp.to_string(), "2026-03-01T09:30:00.702Z");
        assert_eq!(
            e.kind,
            FeedbackKind::Reject {
                reason: "Bad content".into()
            }
        );
    }

    #[test]
    fn unknown_event_types_are_ignored() {
        let body = format!(r#"{{"eventType":"Subscription","subscription":{{}},{MAIL}}}"#);
        assert_eq!(
            parse(&body).unwrap(),
            Parsed::Ignored(Ignored::EventType("Subscription".into()))
        );
    }

    #[test]
    fn a_missing_type_object_is_an_error() {
        let body = format!(r#"{{"eventType":"Bounce",{MAIL}}}"#);
        assert!(matches!(
            parse(&body),
            Err(ParseError::Missing {
                field: "bounce",
                ..
            })
        ));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(parse("{not json"), Err(ParseError::Invalid(_))));
        assert!(matches!(parse("[1,2]"), Err(ParseError::UnknownShape)));
        assert!(matches!(parse(r#"{"a":1}"#), Err(ParseError::UnknownShape)));
        let bad_inner = r#"{"Type":"Notification","Message":"{oops"}"#;
        assert!(matches!(parse(bad_inner), Err(ParseError::Invalid(_))));
        let bad_time = r#"{"eventType":"Send","mail":{"timestamp":"yesterday","messageId":"m"}}"#;
        assert!(matches!(parse(bad_time), Err(ParseError::Invalid(_))));
    }

    #[test]
    fn a_garbled_email_id_tag_leaves_the_message_id_to_match_on() {
        let body = r#"{"eventType":"Send","send":{},"mail":{"timestamp":"2026-03-01T09:30:00.702Z",
            "messageId":"m-2","tags":{"email_id":["not-a-uuid"]}}}"#;
        let e = event(body);
        assert_eq!(e.email_id, None);
        assert_eq!(e.message_id, "m-2");
    }

    #[test]
    fn eventbridge_events_from_other_sources_are_ignored() {
        let body = r#"{"version":"0","detail-type":"EC2 Instance State-change Notification",
            "source":"aws.ec2","detail":{}}"#;
        assert_eq!(
            parse(body).unwrap(),
            Parsed::Ignored(Ignored::OtherSource("aws.ec2".into()))
        );
        let status = r#"{"version":"0","detail-type":"Sending Status Disabled","source":"aws.ses","detail":{}}"#;
        assert_eq!(
            parse(status).unwrap(),
            Parsed::Ignored(Ignored::EventType("Sending Status Disabled".into()))
        );
    }
}
