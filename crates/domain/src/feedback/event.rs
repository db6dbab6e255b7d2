//! One provider notification as the platform understands it, whatever envelope it came in.

use crate::time::Timestamp;
use uuid::Uuid;

/// How a bounce ended (SES `bounceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BounceType {
    Permanent,
    Transient,
    Undetermined,
}

impl BounceType {
    /// The provider's spelling, also used in `bounceType` of the record and of `email.bounce`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permanent => "Permanent",
            Self::Transient => "Transient",
            Self::Undetermined => "Undetermined",
        }
    }

    /// Parses the provider's spelling. Anything else counts as `Undetermined`: an unknown kind
    /// of bounce is treated like a hard one rather than dropped.
    pub fn parse(raw: &str) -> Self {
        match raw {
            "Permanent" => Self::Permanent,
            "Transient" => Self::Transient,
            _ => Self::Undetermined,
        }
    }

    /// Permanent and undetermined bounces end delivery to the address (spec §2).
    pub fn is_hard(self) -> bool {
        !matches!(self, Self::Transient)
    }
}

/// What the provider reports, with what that kind of report carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedbackKind {
    /// The provider accepted the message.
    Send,
    /// The recipient's server accepted the message.
    Delivery,
    /// The tracking pixel was loaded.
    Open,
    /// A tracked link was followed.
    Click { link: String },
    /// The message bounced; `sub_type` is the provider's `bounceSubType`.
    Bounce {
        bounce_type: BounceType,
        sub_type: String,
    },
    /// The recipient marked the message as spam; `feedback_type` is `complaintFeedbackType`.
    Complaint { feedback_type: Option<String> },
    /// The provider accepted, then refused to send the message (e.g. a virus).
    Reject { reason: String },
    /// Delivery is being retried.
    DeliveryDelay {
        delay_type: String,
        expiration_time: Option<Timestamp>,
    },
    /// The provider could not render a provider-side template.
    RenderingFailure { error_message: String },
}

impl FeedbackKind {
    /// The provider's event type (SES `eventType`).
    pub fn provider_name(&self) -> &'static str {
        match self {
            Self::Send => "Send",
            Self::Delivery => "Delivery",
            Self::Open => "Open",
            Self::Click { .. } => "Click",
            Self::Bounce { .. } => "Bounce",
            Self::Complaint { .. } => "Complaint",
            Self::Reject { .. } => "Reject",
            Self::DeliveryDelay { .. } => "DeliveryDelay",
            Self::RenderingFailure { .. } => "Rendering Failure",
        }
    }

    /// The system event it emits: `email.` + the provider type lowercased without spaces
    /// (events-and-emails.md §2), except Send, which is `email.sent`.
    pub fn event_name(&self) -> &'static str {
        match self {
            Self::Send => "email.sent",
            Self::Delivery => "email.delivery",
            Self::Open => "email.open",
            Self::Click { .. } => "email.click",
            Self::Bounce { .. } => "email.bounce",
            Self::Complaint { .. } => "email.complaint",
            Self::Reject { .. } => "email.reject",
            Self::DeliveryDelay { .. } => "email.deliverydelay",
            Self::RenderingFailure { .. } => "email.renderingfailure",
        }
    }
}

/// One provider notification about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEvent {
    /// The provider's message id (SES `mail.messageId`).
    pub message_id: String,
    /// The platform's email id from the message tag [`super::EMAIL_ID_TAG`], when present
    /// (identity-level notifications carry no tags).
    pub email_id: Option<Uuid>,
    /// The email's project from the message tag [`super::PROJECT_ID_TAG`], when present.
    pub project_id: Option<Uuid>,
    /// When it happened: the type's own timestamp (`bounce.timestamp`, `open.timestamp` …),
    /// or `mail.timestamp` for Send, Reject and Rendering Failure.
    pub timestamp: Timestamp,
    /// The recipients it concerns (the type's recipient list, else the message destination).
    pub recipients: Vec<String>,
    pub kind: FeedbackKind,
}

impl ProviderEvent {
    /// The key a notification is processed at most once under (spec §1): message id, event
    /// type, event timestamp and recipients (lowercased, sorted). Stable across envelopes, so
    /// the same SES event reaching us through SNS and EventBridge is one event.
    pub fn dedupe_key(&self) -> String {
        let mut recipients: Vec<String> = self
            .recipients
            .iter()
            .map(|r| r.trim().to_lowercase())
            .collect();
        recipients.sort();
        recipients.dedup();
        format!(
            "{}|{}|{}|{}",
            self.message_id,
            self.kind.provider_name(),
            self.timestamp,
            recipients.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(recipients: &[&str], kind: FeedbackKind) -> ProviderEvent {
        ProviderEvent {
            message_id: "0100-abc-000000".into(),
            email_id: None,
            project_id: None,
            timestamp: Timestamp::parse_rfc3339("2026-03-01T09:30:02.114Z").unwrap(),
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
            kind,
        }
    }

    #[test]
    fn dedupe_key_names_message_type_time_and_recipient() {
        let e = event(&["Ada@Example.org"], FeedbackKind::Delivery);
        assert_eq!(
            e.dedupe_key(),
            "0100-abc-000000|Delivery|2026-03-01T09:30:02.114Z|ada@example.org"
        );
    }

    #[test]
    fn dedupe_key_ignores_recipient_order_but_not_the_event_type() {
        let a = event(&["b@x.io", "a@x.io"], FeedbackKind::Open);
        let b = event(&["a@x.io", "b@x.io"], FeedbackKind::Open);
        assert_eq!(a.dedupe_key(), b.dedupe_key());
        let c = event(&["a@x.io", "b@x.io"], FeedbackKind::Delivery);
        assert_ne!(a.dedupe_key(), c.dedupe_key());
    }

    #[test]
    fn unknown_bounce_types_count_as_hard() {
        assert_eq!(BounceType::parse("Permanent"), BounceType::Permanent);
        assert!(!BounceType::parse("Transient").is_hard());
        assert!(BounceType::parse("Something").is_hard());
    }
}
